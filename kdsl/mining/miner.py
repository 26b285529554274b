"""``mine``: training rows of one task in, ranked rules out (the steps of ``kdsl mine``).

    >>> rows = [{"id": str(i), "user": text, "label": label} for i, (text, label) in enumerate(
    ...     [("洗衣机漏水了", "漏水"), ("底下一直漏水", "漏水"), ("漏水怎么办", "漏水"), ("又漏水了", "漏水"),
    ...      ("怎么排水", "排水"), ("排水管在哪", "排水"), ("排水慢", "排水"), ("排水口堵了", "排水")] * 3)]
    >>> result = mine(rows, "intent", MiningConfig(min_reward=0.5))
    >>> [(r.label, r.text) for r in result.rules]
    [('排水', 'user has "排水"'), ('漏水', 'user has "漏水"')]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

from kdsl.errors import InputError
from kdsl.mining.bitsets import predicate_bits
from kdsl.mining.candidates import propose
from kdsl.mining.filtering import filter_rules
from kdsl.mining.llm_proposer import blend_reward
from kdsl.mining.mcts import Search, SearchConfig
from kdsl.mining.mined import MinedRule
from kdsl.mining.validation import split_held_out, validation_examples
from kdsl.record import LABEL, MINING_COLUMNS, TASK, TEXT_FIELDS

# Where candidate n-grams come from, per task. An intent is what the user asks: the agent's
# reply echoes the topic of whatever was asked, so its n-grams fit a label by accident. A scene
# is a screenshot, whose only text is its OCR.
CANDIDATE_FIELDS = {"intent": ("user", "ocr"), "scene": ("ocr",)}

# Where candidate predicates come from: the n-grams of the rows alone, or a local language model's
# proposals merged with them (``kdsl.mining.llm_proposer``); ``proposer`` builds the latter.
PROPOSERS = ("ngram", "llm")


@dataclass(frozen=True)
class MiningConfig:
    seed: int = 0
    max_predicates: int = 5
    min_reward: float = 0.8
    top_k: int = 40  # positive candidates per label (plus top_k // 4 `not` forms)
    iterations: int = 300  # MCTS iterations per label
    variants: int = 2  # rephrased copies of each training row among the validation examples
    held_out_share: float = 0.2  # of the training rows, when no validation rows are given
    tolerance: float = 0.1  # held-out error rate a rule may have
    max_rules: int = 8  # per label
    min_candidate_score: float = 0.5  # Wilson bound of an n-gram's precision, to be a candidate
    proposal_weight: float = 0.0  # of a proposer's self-assessed confidence in the reward (llm_proposer.blend_reward)
    words: bool = True  # only n-grams that cut no jieba word, plus longer words, are candidates (candidates.aligned)


@dataclass(frozen=True)
class LabelSummary:
    label: str
    rules: int
    training_rows: int
    coverage: float  # share of the label's mining rows its rules match
    held_out_fired: int  # held-out rows its rules match
    held_out_precision: float | None  # None when they match none


@dataclass(frozen=True)
class MiningResult:
    task: str
    labels: tuple[str, ...]
    rules: list[MinedRule]
    summary: list[LabelSummary]


def mine(rows: list[dict], task: str, config: MiningConfig = MiningConfig(),
         validation: list[dict] | None = None,
         progress: Callable[[str], None] = lambda label: None,
         proposer: Callable[[list[dict], dict], dict] | None = None) -> MiningResult:
    """Mine rules for ``task`` from ``rows`` (dicts with ``label`` and text fields).

    With ``validation`` rows, they join the validation examples and serve as the held-out rows;
    without, a share of the training rows is held out. ``progress(label)`` is called as each
    label's search ends. ``proposer(mining_rows, ngram_candidates)``, when given, returns the
    candidates to search instead of the n-gram ones (``kdsl.mining.llm_proposer``).
    """
    if validation is None:
        mining_rows, held_out = split_held_out(rows, config.seed, config.held_out_share)
    else:
        mining_rows, held_out = rows, validation
    examples = validation_examples(mining_rows, config.seed, config.variants, extra=validation or ())
    proposals = propose(mining_rows, top_k=config.top_k, fields=CANDIDATE_FIELDS.get(task, TEXT_FIELDS),
                        min_score=config.min_candidate_score, segment=config.words)
    if proposer is not None:
        proposals = proposer(mining_rows, proposals)
    predicates = [c.predicate for label in proposals for c in proposals[label]]
    # One engine pass over the examples and the held-out rows together, then split the bits.
    bits = dict(zip(predicates, predicate_bits(predicates, examples + held_out, task)))
    n = len(examples)
    example_bits = {p: b & ((1 << n) - 1) for p, b in bits.items()}
    held_out_bits = {p: b >> n for p, b in bits.items()}
    positives = _bits_by_label(examples)
    held_out_positives = _bits_by_label(held_out)
    originals = sum(1 << i for i, e in enumerate(examples)
                    if e["source"] is not None and (i == 0 or examples[i - 1]["source"] != e["source"]))

    found = []
    search_config = SearchConfig(iterations=config.iterations, max_predicates=config.max_predicates)
    for label in sorted(proposals):
        candidates = [c.predicate for c in proposals[label]]
        search = Search([example_bits[p] for p in candidates], positives[label],
                        copies=config.variants + 1, config=search_config)
        for scored in search.run(seed=f"{config.seed}:{label}").values():
            chosen = tuple(candidates[i] for i in scored.indices)
            found.append(MinedRule(
                label, chosen, (scored.bits & positives[label] & originals).bit_count(),
                scored.precision, scored.confidence,
                blend_reward(scored.reward, [proposals[label][i] for i in scored.indices], config.proposal_weight),
                scored.bits,
                _and(held_out_bits[p] for p in chosen)))
        progress(label)

    survivors = filter_rules(found, min_reward=config.min_reward, positives=positives,
                             held_out_positives=held_out_positives, tolerance=config.tolerance,
                             max_rules=config.max_rules)
    survivors = [replace(r, example=_example(r, examples, mining_rows, positives[r.label] & originals))
                 for r in survivors]
    labels = tuple(sorted({r["label"] for r in rows}))
    summary = _summarise(labels, survivors, mining_rows, examples, originals, positives, held_out_positives)
    return MiningResult(task, labels, survivors, summary)


def labelled_rows(table, task: str) -> list[dict]:
    """The rows of ``task`` that have a label (all rows, in a table without a ``task`` column),
    as dicts of the columns mining reads (``MINING_COLUMNS``, those present).

        >>> import pyarrow as pa
        >>> labelled_rows(pa.table({"task": ["intent", "scene", "intent"], "user": ["a", "b", "c"],
        ...                         "label": ["x", "y", None]}), "intent")
        [{'task': 'intent', 'user': 'a', 'label': 'x'}]
    """
    columns = [c for c in MINING_COLUMNS if c in table.column_names]
    return [r for r in table.select(columns).to_pylist() if r[LABEL] is not None and r.get(TASK, task) == task]


def training_rows(table, task: str) -> list[dict]:
    """``labelled_rows``, or an InputError when the table cannot be mined: no ``label`` column,
    no text column, or no labelled row of ``task``."""
    if LABEL not in table.column_names:
        raise InputError("no 'label' column; mining needs labelled rows")
    if not any(f in table.column_names for f in TEXT_FIELDS):
        raise InputError(f"no text column ({', '.join(TEXT_FIELDS)}) to mine")
    rows = labelled_rows(table, task)
    if not rows:
        raise InputError(f"no labelled rows of task '{task}'")
    return rows


def proposer(name: str, task: str, model=None, max_new_tokens: int | None = None):
    """The ``proposer`` argument of ``mine`` for the proposer called ``name`` (one of
    ``PROPOSERS``): None for "ngram", a ``LlmProposer`` of the local model folder ``model`` for
    "llm" (a ``DependencyError`` when it cannot be loaded). The callers check the names first,
    in their own terms (a flag, a config key)."""
    if name == "ngram":
        return None
    from kdsl.mining.llm_proposer import LlmConfig, LlmProposer

    config = LlmConfig() if max_new_tokens is None else LlmConfig(max_new_tokens=max_new_tokens)
    return LlmProposer(model, config, task=task)


def _bits_by_label(rows: list[dict]) -> dict[str, int]:
    bits: dict[str, int] = defaultdict(int)
    for i, row in enumerate(rows):
        if row.get("label") is not None:
            bits[row["label"]] |= 1 << i
    return bits


def _and(values) -> int:
    result = -1
    for value in values:
        result &= value
    return result


def _example(rule: MinedRule, examples: list[dict], rows: list[dict], eligible: int) -> dict:
    """The shortest training row of the rule's label that it matches (the engine said so), cut
    down to the text fields the rule reads."""
    fields = sorted({p.operand.field.name if hasattr(p, "operand") else p.field.name for p in rule.predicates})
    matched = rule.bits & eligible
    sources = [examples[i]["source"] for i in range(matched.bit_length()) if matched >> i & 1]
    row = min((rows[s] for s in sources), key=lambda r: (sum(len(r.get(f) or "") for f in fields), r.get("id") or ""))
    return {f: row[f] for f in fields if f in TEXT_FIELDS and row.get(f) is not None}


def _summarise(labels, rules, mining_rows, examples, originals, positives, held_out_positives) -> list[LabelSummary]:
    summary = []
    for label in labels:
        mine = [r for r in rules if r.label == label]
        matched = _or(r.bits for r in mine) & positives.get(label, 0) & originals
        fired = _or(r.held_out_bits for r in mine)
        right = fired & held_out_positives.get(label, 0)
        count = sum(1 for r in mining_rows if r["label"] == label)
        summary.append(LabelSummary(label, len(mine), count, matched.bit_count() / count if count else 0.0,
                                    fired.bit_count(), right.bit_count() / fired.bit_count() if fired else None))
    return summary


def _or(values) -> int:
    result = 0
    for value in values:
        result |= value
    return result
