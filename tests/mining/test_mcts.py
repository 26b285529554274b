import random

from kdsl.dsl import ast
from kdsl.engine import reference
from kdsl.mining.bitsets import predicate_bits
from kdsl.mining.mcts import Search, SearchConfig
from kdsl.mining.confidence import wilson_lower_bound

WORDS = ["漏水", "排水", "气泡", "好用", "生锈"]


def _data(seed=3, n=60):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        text = "".join(rng.sample(WORDS, rng.randint(1, 3)))
        rows.append({"user": text, "agent": rng.choice(["亲", "排水口", None]),
                     "label": "漏水" if "漏水" in text and rng.random() < 0.9 else "其他"})
    predicates = [ast.Has(ast.Field(f), "one", (w,)) for f in ("user", "agent") for w in WORDS]
    predicates += [ast.Not(p) for p in predicates[:3]]
    return rows, predicates


def _search(rows, predicates, copies=1):
    bits = predicate_bits(predicates, rows, "intent")
    positives = sum(1 << i for i, r in enumerate(rows) if r["label"] == "漏水")
    return Search(bits, positives, copies, SearchConfig(iterations=100, max_predicates=3))


def test_same_seed_same_result():
    rows, predicates = _data()
    assert _search(rows, predicates).run(seed=5) == _search(rows, predicates).run(seed=5)


def test_rewards_equal_a_direct_computation_with_the_reference_interpreter():
    rows, predicates = _data()
    found = _search(rows, predicates, copies=2).run(seed=1)
    assert found
    for (indices, _), scored in found.items():
        condition = ast.And(tuple(predicates[i] for i in indices))
        matched = [r for r in rows if reference.holds(condition, reference.Record(r))]
        tp = sum(r["label"] == "漏水" for r in matched)
        assert (scored.fired, scored.tp) == (len(matched), tp)
        assert scored.precision == (tp / len(matched) if matched else 0.0)
        assert scored.reward == wilson_lower_bound(tp / 2, len(matched) / 2)


def test_search_respects_max_predicates_and_min_support():
    rows, predicates = _data()
    for (indices, _), scored in _search(rows, predicates).run(seed=2).items():
        assert 1 <= len(indices) <= 3 and list(indices) == sorted(indices)
        assert scored.tp >= 2 or len(indices) == 1
