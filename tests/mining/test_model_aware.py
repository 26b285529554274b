"""Model-aware mining: rules scored by their effect on the model's out-of-fold predictions."""

import pyarrow as pa
import pytest

from kdsl.errors import InputError
from kdsl.mining.crossval import final_labels, rule_effects
from kdsl.mining.filtering import is_guard
from kdsl.mining.mcts import Search, SearchConfig
from kdsl.mining.miner import MiningConfig, mine
from kdsl.mining.predictions import fold_of_rows, join_predictions, predictions_by_id
from kdsl.mining.thesaurus import lexicon_sets, parse_cilin, propose_synonyms
from kdsl.mining.candidates import propose
from kdsl.metrics import weighted_f1


def _rows():
    """Label 上市 says 上市时间 in 12 rows the model gets right, and 发行 in 5 rows the model
    calls 价格 (one 价格 row says 发行 too, and the model is right there)."""
    rows = []
    for i in range(12):
        rows.append(("上市", f"请问上市时间是{i}号吗", "上市", 0.9))
    for text in ("哪年发行", "发行日期呢", "几时发行", "发行了没", "啥时候发行"):
        rows.append(("上市", text, "价格", 0.4))
    rows.append(("价格", "发行价多少钱", "价格", 0.8))
    for i in range(12):
        rows.append(("价格", f"多少钱一个{i}号", "价格", 0.9))
    return [{"id": str(k), "user": text, "label": label, "model_label": model, "model_score": score}
            for k, (label, text, model, score) in enumerate(rows)]


def _without_predictions(rows):
    return [{k: v for k, v in r.items() if k not in ("model_label", "model_score")} for r in rows]


def _f1(result, rows):
    return weighted_f1([r["label"] for r in rows], final_labels("intent", result.labels, result.rules, rows))


def test_a_model_aware_rule_beats_a_precise_rule_that_only_agrees_with_the_model():
    rows = _rows()
    config = MiningConfig(min_reward=0.6, min_net=0.5, held_out_share=0.1, variants=0)
    precise = mine(_without_predictions(rows), "intent", MiningConfig(min_reward=0.8, held_out_share=0.1, variants=0))
    aware = mine(rows, "intent", config)
    # The precision-only miner finds the 上市时间 rule, where the model is already right: no gain.
    assert any("上市" in r.text for r in precise.rules if r.label == "上市")
    precise_effects = rule_effects("intent", precise.labels, precise.rules, rows)
    assert sum(e.net for e in precise_effects.values()) == 0
    # The model-aware miner aims at the rows the model gets wrong, and drops the redundant rule.
    assert any(r.label == "上市" and "发行" in r.text for r in aware.rules)
    assert any("上市" in r.text and r.label == "上市" for r in aware.redundant)
    assert all(r.net is not None and r.net >= 0.5 for r in aware.rules)
    model = weighted_f1([r["label"] for r in rows], [r["model_label"] for r in rows])
    assert _f1(aware, rows) > _f1(precise, rows) == pytest.approx(model)


def test_guards_are_candidates_with_predictions_only():
    rows = _rows()
    aware = mine(rows, "intent", MiningConfig(min_reward=0.6, held_out_share=0.1, variants=0))
    plain = mine(_without_predictions(rows), "intent", MiningConfig(min_reward=0.6, held_out_share=0.1, variants=0))
    assert aware.proposed["guard"] > 0 and "guard" not in plain.proposed
    assert not plain.redundant and not plain.harmful
    for rule in aware.rules:  # a guard never stands alone
        assert any(not is_guard(p) for p in rule.predicates)


def test_or_action_grows_a_literal_set():
    # Candidate 0 and 1 each hold on part of the label's rows; together on all of them.
    bits = [0b000011, 0b001100, 0b110000]
    search = Search(bits, positives=0b001111, copies=1,
                    config=SearchConfig(iterations=50, max_alternatives=2, min_support=1), groups=["user"] * 3)
    found = search.run(seed=0)
    grown = found[((0,), (1,))]
    assert grown.bits == 0b001111 and grown.precision == 1.0 and grown.tp == 4
    assert ((0,), (2,)) not in found  # an `or` that adds no row of the label is no action
    # Without max_alternatives there is no literal set.
    plain = Search(bits, positives=0b001111, copies=1, config=SearchConfig(iterations=50, min_support=1)).run(seed=0)
    assert all(not alternatives for _, alternatives in plain)


def test_disjunctions_are_written_as_any():
    rows = [{"id": str(i), "user": text, "label": label} for i, (text, label) in enumerate(
        [("漏水了", "漏水"), ("又漏水", "漏水"), ("渗水了", "漏水"), ("一直渗水", "漏水"),
         ("怎么排水", "排水"), ("排水慢", "排水"), ("排水口", "排水"), ("排水管", "排水")] * 3)]
    result = mine(rows, "intent", MiningConfig(min_reward=0.5, disjunctions=2))
    assert any(p.mode == "any" and {"漏水", "渗水"} <= set(p.literals)
               for r in result.rules if r.label == "漏水" for p in r.predicates if hasattr(p, "mode"))


def test_thesaurus_offers_only_synonyms_no_other_label_uses():
    synonyms = parse_cilin(["Dj01B01= 上市 挂牌 发售", "Zz01A01= 价格 售价"])
    rows = [{"user": "什么时候上市", "label": "上市"}, {"user": "上市了吗", "label": "上市"},
            {"user": "发售价格", "label": "价格"}, {"user": "价格多少", "label": "价格"}]
    proposals = propose(rows, top_k=10, min_support=2)
    found = propose_synonyms(proposals, rows, ("user",), synonyms)
    sets = {c.predicate.literals for c in found["上市"]}
    assert ("上市", "挂牌") in sets  # 发售 is said by a 价格 row: not a validated synonym
    assert all(c.source == "thesaurus" for c in found["上市"])


def test_lexicon_sets_need_a_let(tmp_path):
    path = tmp_path / "lexicon.kdsl"
    path.write_text('kdsl 1\nlet 发布 = any("发布", "发行", "上市")\n', encoding="utf-8")
    assert [(s.name, s.literals) for s in lexicon_sets(path)] == [("发布", ("发布", "发行", "上市"))]
    (tmp_path / "empty.kdsl").write_text("kdsl 1\n", encoding="utf-8")
    with pytest.raises(InputError, match="no `let"):
        lexicon_sets(tmp_path / "empty.kdsl")


def test_predictions_must_cover_every_row_and_have_every_column():
    rows = [{"id": "a", "user": "x", "label": "l"}, {"id": "b", "user": "y", "label": "l"}]
    with pytest.raises(InputError, match="no prediction for training row id 'b'"):
        join_predictions(rows, {"a": ("l", 0.5)}, "oof.parquet")
    with pytest.raises(InputError, match="missing column.*model_score"):
        predictions_by_id(pa.table({"id": ["a"], "model_label": ["l"]}), "oof.parquet")


def test_folds_are_stratified_and_deterministic():
    labels = ["a"] * 10 + ["b"] * 5
    folds = fold_of_rows(labels, 5, seed=1)
    assert folds == fold_of_rows(labels, 5, seed=1)
    assert all(sum(1 for f, l in zip(folds, labels) if f == k and l == "a") == 2 for k in range(5))


def test_keep_precise_adds_the_precise_rules_that_do_no_harm():
    rows = _rows()
    config = MiningConfig(min_reward=0.6, min_net=0.5, held_out_share=0.1, variants=0, keep_precise=True)
    result = mine(rows, "intent", config)
    texts = {(r.label, r.text) for r in result.rules}
    assert ("上市", 'user has "上市"') in texts and any("发行" in t for _, t in texts)
    assert all((r.broken or 0) <= (r.fixed or 0) for r in result.rules)


def test_out_of_fold_predicts_every_labelled_row_once():
    from kdsl.mining.predictions import out_of_fold

    rows = _rows()
    # The precomputed adapter copies a column: fast, and the folds' bookkeeping is what is tested.
    table = pa.table({"id": [r["id"] for r in rows], "task": ["intent"] * len(rows),
                      "user": [r["user"] for r in rows], "label": [r["label"] for r in rows],
                      "pred": [r["model_label"] for r in rows], "prob": [r["model_score"] for r in rows]})
    oof = out_of_fold(table, "precomputed", folds=3, fold_seed=0, label_column="pred", score_column="prob")
    assert oof.column_names == ["id", "model_label", "model_score", "fold"]
    assert sorted(set(oof.column("fold").to_pylist())) == [0, 1, 2]
    assert oof.column("id").to_pylist() == table.column("id").to_pylist()
    assert oof.column("model_label").to_pylist() == table.column("pred").to_pylist()
    with pytest.raises(InputError, match="at least 2 folds"):
        out_of_fold(table, folds=1)
