"""``mine``: training rows of one task in, ranked rules out (the steps of ``kdsl mine``).

    >>> rows = [{"id": str(i), "user": text, "label": label} for i, (text, label) in enumerate(
    ...     [("洗衣机漏水了", "漏水"), ("底下一直漏水", "漏水"), ("漏水怎么办", "漏水"), ("又漏水了", "漏水"),
    ...      ("怎么排水", "排水"), ("排水管在哪", "排水"), ("排水慢", "排水"), ("排水口堵了", "排水")] * 3)]
    >>> result = mine(rows, "intent", MiningConfig(min_reward=0.5))
    >>> [(r.label, r.text) for r in result.rules]
    [('排水', 'user has "排水"'), ('漏水', 'user has "漏水"')]
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from kdsl.dsl import ast
from kdsl.errors import InputError
from kdsl.mining.bitsets import predicate_bits
from kdsl.mining.candidates import Candidate, propose
from kdsl.mining.filtering import filter_model_aware, filter_rules, is_guard, rank
from kdsl.mining.llm_proposer import blend_reward
from kdsl.mining.mcts import Search, SearchConfig
from kdsl.mining.mined import MinedRule
from kdsl.mining.confidence import Estimator, ModelAwareObjective, PrecisionObjective
from kdsl.mining.validation import split_held_out, validation_examples
from kdsl.record import LABEL, MINING_COLUMNS, TASK, TEXT_FIELDS

# Where candidate n-grams come from, per task. An intent is what the user asks: the agent's
# reply echoes the topic of whatever was asked, so its n-grams fit a label by accident. A scene
# is a screenshot, whose only text is its OCR.
CANDIDATE_FIELDS = {"intent": ("user", "ocr"), "scene": ("ocr",)}
SOURCES = ("ngram", "word", "thesaurus", "lexicon", "llm", "guard")  # what `kdsl mine` reports
SCORE_GUARDS = (0.5, 0.7, 0.9)  # model.score < t, offered to the search with predictions
CONFUSED_GUARDS = 2  # model.label in (...) of the labels the model most often says instead

# Where candidate predicates come from: the n-grams of the rows alone, or a local language model's
# proposals merged with them (``kdsl.mining.llm_proposer``); ``proposer`` builds the latter.
PROPOSERS = ("ngram", "llm")


@dataclass(frozen=True)
class MiningConfig:
    seed: int = 0
    max_predicates: int = 5
    min_reward: float = 0.8  # reward (without predictions) / precision estimate (with) a rule needs
    top_k: int = 40  # positive candidates per label (plus top_k // 4 `not` forms)
    iterations: int = 300  # MCTS iterations per label
    variants: int = 2  # rephrased copies of each training row among the validation examples
    held_out_share: float = 0.2  # of the training rows, when no validation rows are given
    tolerance: float = 0.1  # held-out error rate a rule may have
    max_rules: int = 8  # per label
    min_candidate_score: float = 0.5  # Wilson bound of an n-gram's precision, to be a candidate
    proposal_weight: float = 0.0  # of a proposer's self-assessed confidence in the reward (llm_proposer.blend_reward)
    words: bool = True  # only n-grams that cut no jieba word, plus longer words, are candidates (candidates.aligned)
    estimator: str = "wilson"  # of a rule's precision: wilson (lower bound at z) or beta (kdsl.mining.confidence)
    z: float = 1.0
    prior_strength: float = 2.0  # pseudo-rows of the Beta prior at the label's base rate
    disjunctions: int = 0  # literals the search's `or` action may add to a rule's first predicate
    alternative_score: float = 0.75  # candidate score (Wilson bound) a literal needs to join a literal set
    thesaurus: bool = False  # Cilin synonyms of word candidates as literal sets (kdsl.mining.thesaurus)
    min_net: float = 0.5  # with predictions: expected net training rows a rule must fix
    rule_prior: float | None = None  # with predictions: prior mean of a rule's precision (None: the label's base rate)
    guards: bool = True  # with predictions: model.score / model.label guards among the candidates
    keep_precise: bool = False  # with predictions: also keep the precise rules the miner without them keeps,
    #                             unless they break more training rows than they fix


@dataclass(frozen=True)
class LabelSummary:
    label: str
    rules: int
    training_rows: int
    coverage: float  # share of the label's mining rows its rules match
    held_out_fired: int  # held-out rows its rules match
    held_out_precision: float | None  # None when they match none
    net_fixed: float | None = None  # with predictions: expected net training rows its rules fix


@dataclass(frozen=True)
class MiningResult:
    task: str
    labels: tuple[str, ...]
    rules: list[MinedRule]
    summary: list[LabelSummary]
    proposed: dict[str, int] = field(default_factory=dict)  # candidates per source
    redundant: list[MinedRule] = field(default_factory=list)  # with predictions: only agree with the model
    harmful: list[MinedRule] = field(default_factory=list)  # with predictions: net rows fixed <= 0


def mine(rows: list[dict], task: str, config: MiningConfig = MiningConfig(),
         validation: list[dict] | None = None,
         progress: Callable[[str], None] = lambda label: None,
         proposer: Callable[[list[dict], dict], dict] | None = None,
         lexicon: list[ast.LetDecl] = ()) -> MiningResult:
    """Mine rules for ``task`` from ``rows`` (dicts with ``label`` and text fields).

    When every row also has ``model_label`` and ``model_score`` (out-of-fold predictions,
    ``kdsl.mining.predictions``), mining is *model-aware*: a rule is scored by the rows it would
    fix minus those it would break when overriding the model, rules that only agree with the
    model are dropped (``MiningResult.redundant``), and guards on the model's prediction are
    candidates. With ``validation`` rows, they join the validation examples and serve as the
    held-out rows; without, a share of the training rows is held out. ``progress(label)`` is
    called as each label's search ends. ``proposer(mining_rows, ngram_candidates)``, when given,
    returns the candidates to search instead of the n-gram ones (``kdsl.mining.llm_proposer``).
    ``lexicon``: ``let`` sets to offer as candidates (``kdsl.mining.thesaurus.lexicon_sets``).
    """
    model_aware = bool(rows) and all(r.get("model_label") is not None for r in rows)
    if validation is None:
        mining_rows, held_out = split_held_out(rows, config.seed, config.held_out_share)
    else:
        mining_rows, held_out = rows, validation
    examples = validation_examples(mining_rows, config.seed, config.variants, extra=validation or ())
    fields = CANDIDATE_FIELDS.get(task, TEXT_FIELDS)
    proposals = propose(mining_rows, top_k=config.top_k, fields=fields,
                        min_score=config.min_candidate_score, segment=config.words)
    if proposer is not None:
        proposals = proposer(mining_rows, proposals)
    proposals = _with_knowledge(proposals, mining_rows, fields, config, lexicon)
    if model_aware and config.guards:
        proposals = _with(proposals, _guards(mining_rows))
    proposed = Counter(c.source for label in proposals for c in proposals[label])
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
    said = _bits_by_label(examples, "model_label") if model_aware else {}
    right = _bits_where(examples, lambda e: e.get("model_label") == e.get("label")) if model_aware else 0
    held_said = _bits_by_label(held_out, "model_label") if model_aware else {}
    held_right = _bits_where(held_out, lambda e: e.get("model_label") == e.get("label")) if model_aware else 0
    base_rate = {label: (b & originals).bit_count() / max(1, originals.bit_count()) for label, b in positives.items()}
    estimator = Estimator(config.estimator, config.z, config.prior_strength)
    accuracy = (right & originals).bit_count() / max(1, originals.bit_count()) if model_aware else 0.0

    found = []
    copies = config.variants + 1
    search_config = SearchConfig(iterations=config.iterations, max_predicates=config.max_predicates,
                                 max_alternatives=config.disjunctions)
    for label in sorted(proposals):
        candidates = [c.predicate for c in proposals[label]]
        if model_aware:
            objective = ModelAwareObjective(positives.get(label, 0), right, said.get(label, 0), copies,
                                            base_rate.get(label, 0.0), accuracy, config.prior_strength, estimator,
                                            rule_prior=config.rule_prior)
        else:
            objective = PrecisionObjective(positives.get(label, 0), copies, estimator, base_rate.get(label, 0.0))
        search = Search([example_bits[p] for p in candidates], positives.get(label, 0), copies=copies,
                        config=search_config, objective=objective,
                        groups=[_group(c, config.alternative_score) for c in proposals[label]])
        for scored in search.run(seed=f"{config.seed}:{label}").values():
            chosen = _predicates(candidates, scored.indices, scored.alternatives)
            value = objective.score(scored.bits)
            used = [proposals[label][i] for i in scored.indices + scored.alternatives]
            found.append(MinedRule(
                label, chosen, (scored.bits & positives.get(label, 0) & originals).bit_count(),
                scored.precision, scored.confidence,
                blend_reward(scored.reward, used, config.proposal_weight),
                scored.bits,
                _held_out(candidates, scored, held_out_bits),
                net=value.net, fixed=value.fixed, broken=value.broken))
        progress(label)

    redundant, harmful = [], []
    if model_aware:
        fixable = {label: b & ~said.get(label, 0) for label, b in positives.items()}

        def held_out_effect(rule: MinedRule) -> tuple[int, int]:
            changed = rule.held_out_bits & ~held_said.get(rule.label, 0)
            return ((changed & held_out_positives.get(rule.label, 0)).bit_count(), (changed & held_right).bit_count())

        outcome = filter_model_aware(found, min_precision=config.min_reward, min_net=config.min_net,
                                     covered=positives, held_out_positives=held_out_positives,
                                     held_out_effect=held_out_effect, tolerance=config.tolerance,
                                     max_rules=config.max_rules)
        survivors, redundant, harmful = outcome.kept, outcome.redundant, outcome.harmful
        if config.keep_precise:
            survivors = _with_precise(survivors, found, config, positives, held_out_positives)
        eligible = fixable
    else:
        survivors = filter_rules(found, min_reward=config.min_reward, positives=positives,
                                 held_out_positives=held_out_positives, tolerance=config.tolerance,
                                 max_rules=config.max_rules)
        eligible = positives
    survivors = [replace(r, example=_example(r, examples, mining_rows, r.bits & eligible.get(r.label, 0) & originals
                                             or r.bits & positives[r.label] & originals))
                 for r in survivors]
    labels = tuple(sorted({r["label"] for r in rows}))
    summary = _summarise(labels, survivors, mining_rows, examples, originals, positives, held_out_positives)
    return MiningResult(task, labels, survivors, summary, dict(proposed), redundant, harmful)


def _with_precise(survivors: list[MinedRule], found: list[MinedRule], config: MiningConfig, positives,
                  held_out_positives) -> list[MinedRule]:
    """``survivors`` plus the rules the precision-only filters keep (reward = the precision
    estimate) that do not break more training rows than they fix, ranked by precision."""
    precise = filter_rules([replace(r, reward=r.confidence) for r in found], min_reward=config.min_reward,
                           positives=positives, held_out_positives=held_out_positives,
                           tolerance=config.tolerance, max_rules=config.max_rules)
    taken = {(r.label, r.predicates) for r in survivors}
    extra = [r for r in precise if (r.label, r.predicates) not in taken and (r.broken or 0) <= (r.fixed or 0)]
    return rank(survivors + extra, by_confidence=True)


def _with(proposals: dict[str, list[Candidate]], extra: dict[str, list[Candidate]]) -> dict[str, list[Candidate]]:
    """Per label, ``proposals`` then the ``extra`` candidates with a predicate not already there."""
    merged = {}
    for label in sorted(set(proposals) | set(extra)):
        chosen = list(proposals.get(label, ()))
        seen = {c.predicate for c in chosen}
        for candidate in extra.get(label, ()):
            if candidate.predicate not in seen:
                seen.add(candidate.predicate)
                chosen.append(candidate)
        merged[label] = chosen
    return merged


def _with_knowledge(proposals, rows, fields, config: MiningConfig, lexicon) -> dict[str, list[Candidate]]:
    """The thesaurus's literal sets and the lexicon's ``let`` sets added to ``proposals``."""
    from kdsl.mining.thesaurus import cilin, propose_lexicon, propose_synonyms

    if config.thesaurus:
        proposals = _with(proposals, propose_synonyms(proposals, rows, fields, cilin()))
    if lexicon:
        proposals = _with(proposals, propose_lexicon(list(lexicon), rows, fields[:1]))
    return proposals


def _guards(rows: list[dict]) -> dict[str, list[Candidate]]:
    """Per label: ``model.score < t`` for each of ``SCORE_GUARDS``, and ``model.label in (...)``
    of each of the ``CONFUSED_GUARDS`` labels the model says most often instead of it (on the
    training rows it gets wrong), and of them together."""
    confused: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        if r["model_label"] != r["label"]:
            confused[r["label"]][r["model_label"]] += 1
    found = {}
    for label in sorted({r["label"] for r in rows}):
        guards = [ast.Compare(ast.Field("model.score"), "<", t) for t in SCORE_GUARDS]
        top = [other for other, _ in sorted(confused[label].items(), key=lambda x: (-x[1], x[0]))[:CONFUSED_GUARDS]]
        guards += [ast.In(ast.Field("model.label"), (other,)) for other in top]
        if len(top) > 1:
            guards.append(ast.In(ast.Field("model.label"), tuple(top)))
        found[label] = [Candidate(label, g, 0, 0.0, 0.0, "guard") for g in guards]
    return found


def _group(candidate: Candidate, min_score: float) -> str | None:
    """The key under which a candidate may join a literal set: a positive text ``has`` (not
    ``all``) of a field, grouped by field, that scores at least ``min_score`` on its own (a
    literal seen in one or two rows would let a set collect accidents, one row each)."""
    predicate = candidate.predicate
    if isinstance(predicate, ast.Has) and predicate.mode != "all" and not is_guard(predicate) \
            and candidate.score >= min_score:
        return predicate.field.name
    return None


def _predicates(candidates: list[ast.Condition], indices: tuple[int, ...],
                alternatives: tuple[int, ...]) -> tuple[ast.Condition, ...]:
    """The rule's predicates: the first one merged with its alternatives into one literal set."""
    first = candidates[indices[0]]
    if alternatives:
        literals = tuple(dict.fromkeys(w for i in (indices[0], *alternatives) for w in candidates[i].literals))
        first = ast.Has(first.field, "any", literals)
    return (first, *(candidates[i] for i in indices[1:]))


def _held_out(candidates, scored, held_out_bits) -> int:
    group = _or(held_out_bits[candidates[i]] for i in (scored.indices[0], *scored.alternatives))
    return group & _and(held_out_bits[candidates[i]] for i in scored.indices[1:])


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


def _bits_by_label(rows: list[dict], column: str = "label") -> dict[str, int]:
    bits: dict[str, int] = defaultdict(int)
    for i, row in enumerate(rows):
        if row.get(column) is not None:
            bits[row[column]] |= 1 << i
    return bits


def _bits_where(rows: list[dict], test) -> int:
    return sum(1 << i for i, row in enumerate(rows) if test(row))


def _and(values) -> int:
    result = -1
    for value in values:
        result &= value
    return result


def _example(rule: MinedRule, examples: list[dict], rows: list[dict], matched: int) -> dict:
    """The shortest training row among the examples ``matched`` (rows of the label that the rule
    matches, the engine said so; with predictions, preferably those the model gets wrong), cut
    down to the fields the rule reads: its text, and the model's prediction where a guard reads it."""
    fields = sorted({p.operand.field.name if hasattr(p, "operand") else p.field.name for p in rule.predicates})
    sources = [examples[i]["source"] for i in range(matched.bit_length()) if matched >> i & 1]
    row = min((rows[s] for s in sources), key=lambda r: (sum(len(r.get(f) or "") for f in fields), r.get("id") or ""))
    return {f: row[f.replace(".", "_")] for f in fields
            if (f in TEXT_FIELDS or f.startswith("model.")) and row.get(f.replace(".", "_")) is not None}


def _summarise(labels, rules, mining_rows, examples, originals, positives, held_out_positives) -> list[LabelSummary]:
    summary = []
    for label in labels:
        mine = [r for r in rules if r.label == label]
        matched = _or(r.bits for r in mine) & positives.get(label, 0) & originals
        fired = _or(r.held_out_bits for r in mine)
        right = fired & held_out_positives.get(label, 0)
        count = sum(1 for r in mining_rows if r["label"] == label)
        nets = [r.net for r in mine if r.net is not None]
        summary.append(LabelSummary(label, len(mine), count, matched.bit_count() / count if count else 0.0,
                                    fired.bit_count(), right.bit_count() / fired.bit_count() if fired else None,
                                    sum(nets) if nets else None))
    return summary


def _or(values) -> int:
    result = 0
    for value in values:
        result |= value
    return result
