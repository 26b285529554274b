"""What mined rules do to the model's predictions, and choosing mining settings by
cross-validation on the training rows only.

``rule_effects`` runs rules through the compiled engine over rows that carry the model's
prediction (``model_label``, ``model_score``) and counts, per rule, the rows where it decided the
final label and fixed or broke the model's answer; ``final_labels`` gives the final labels.

``cross_validate`` estimates how a mining configuration does on rows it has not seen, using the
training rows alone: the rows (with their *out-of-fold* predictions, ``kdsl.mining.predictions``)
are split into folds; rules mined on the other folds override the predictions of the held-out
fold, and the change of weighted F1 there, the share of rows the rules decide and the share of
those they get right are averaged over the folds. The out-of-fold prediction of a held-out row
comes from a model that never saw that row, and the rules never saw its label: both are honest
stand-ins for the model and rules on new data. ``choose`` runs it for a grid of configurations
and keeps the best mean gain among those whose decided rows are at least ``min_precision``
right. No measured split is read.

    >>> rows = [{"id": str(i), "user": u, "label": l, "model_label": m, "model_score": 0.5}
    ...         for i, (u, l, m) in enumerate([("漏水了", "漏水", "排水")] * 6 + [("排水慢", "排水", "排水")] * 6)]
    >>> score = cross_validate(rows, "intent", MiningConfig(min_reward=0.5, min_net=0.1), folds=3)
    >>> score.gain > 0, score.precision
    (True, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from kdsl.mining.mined import MinedRule
from kdsl.mining.miner import MiningConfig, mine
from kdsl.mining.predictions import fold_of_rows
from kdsl.record import MODEL_LABEL, MODEL_SCORE, TEXT_FIELDS


@dataclass(frozen=True)
class RuleEffect:
    """Rows where a rule decided the final label (``decided``), of them ``right``, and those
    where it changed the model's answer from wrong to right (``fixed``) or right to wrong
    (``broken``)."""

    decided: int = 0
    right: int = 0
    fixed: int = 0
    broken: int = 0

    @property
    def net(self) -> int:
        return self.fixed - self.broken


@dataclass(frozen=True)
class CvScore:
    """Means over the folds: weighted-F1 gain (points), share of rows decided by a rule
    (``coverage``), share of the decided rows right (``precision``, None when none decided)."""

    gain: float
    coverage: float
    precision: float | None
    rules: float


def _engine(task: str, labels, rules: list[MinedRule]):
    from kdsl.engine import loads
    from kdsl.mining.writer import render

    return loads(render(task, labels, rules), "<mined>")


def _decisions(task: str, labels, rules: list[MinedRule], rows: list[dict]) -> list[tuple[str, str | None]]:
    """Per row, (final label, the deciding rule's name or None)."""
    if not rules:
        return [(r.get("model_label"), None) for r in rows]
    columns = {"task": pa.array([task] * len(rows), pa.string()),
               **{c: pa.array([r.get(c) for r in rows], pa.string()) for c in TEXT_FIELDS},
               MODEL_LABEL: pa.array([r.get(MODEL_LABEL) for r in rows], pa.string()),
               MODEL_SCORE: pa.array([r.get(MODEL_SCORE) for r in rows], pa.float64())}
    scored = _engine(task, labels, rules).score(pa.table(columns))
    return list(zip(scored.column(task).to_pylist(), scored.column(f"{task}_rule").to_pylist()))


def final_labels(task: str, labels, rules: list[MinedRule], rows: list[dict]) -> list[str | None]:
    """The final label of each row when ``rules`` override its ``model_label``."""
    return [label for label, _ in _decisions(task, labels, rules, rows)]


def rule_effects(task: str, labels, rules: list[MinedRule], rows: list[dict]) -> dict[str, RuleEffect]:
    """Per rule name (as the writer names them: ``LABEL_k``), its ``RuleEffect`` on ``rows``."""
    decisions = _decisions(task, labels, rules, rows)
    return effects(task, [task] * len(rows), [r["label"] for r in rows], [r.get(MODEL_LABEL) for r in rows],
                   [label for label, _ in decisions], [rule for _, rule in decisions])


def effects(task: str, row_tasks, gold, model, final, deciding) -> dict[str, RuleEffect]:
    """Per deciding rule, its ``RuleEffect`` over the labelled rows of ``task``, from parallel
    columns: each row's task, label, model label, final label and deciding rule (None: none).

    >>> effects("intent", ["intent"] * 3, ["a", "a", "b"], ["b", "a", "b"], ["a", "a", "a"], ["r", "r", "r"])["r"].net
    0
    """
    counts: dict[str, list[int]] = {}
    for row_task, label, model_label, final_label, rule in zip(row_tasks, gold, model, final, deciding):
        if rule is None or row_task != task or label is None:
            continue
        c = counts.setdefault(rule, [0, 0, 0, 0])
        right, model_right = final_label == label, model_label == label
        c[0] += 1
        c[1] += right
        c[2] += right and not model_right
        c[3] += model_right and not right
    return {name: RuleEffect(*c) for name, c in counts.items()}


def cross_validate(rows: list[dict], task: str, config: MiningConfig, folds: int = 4, seed: int = 0,
                   model_aware: bool = True) -> CvScore:
    """``CvScore`` of mining with ``config`` on the training ``rows`` (with out-of-fold
    ``model_label`` / ``model_score``), by ``folds``-fold cross-validation. ``model_aware=False``
    mines without the predictions (the miner as it was) and still measures against them."""
    from kdsl.metrics import weighted_f1

    fold = fold_of_rows([r["label"] for r in rows], folds, seed=f"cv:{seed}")
    gains, coverages, decided, right, counts = [], [], 0, 0, []
    for k in range(folds):
        fit = [r for r, f in zip(rows, fold) if f != k]
        held = [r for r, f in zip(rows, fold) if f == k]
        if not held or not fit:
            continue
        if not model_aware:
            fit = [{k: v for k, v in r.items() if k not in ("model_label", "model_score")} for r in fit]
        result = mine(fit, task, config)
        decisions = _decisions(task, result.labels, result.rules, held)
        gold = [r["label"] for r in held]
        gains.append(100 * ((weighted_f1(gold, [d for d, _ in decisions]) or 0.0)
                            - (weighted_f1(gold, [r["model_label"] for r in held]) or 0.0)))
        hits = [(d, g) for (d, rule), g in zip(decisions, gold) if rule is not None]
        coverages.append(len(hits) / len(held))
        decided += len(hits)
        right += sum(d == g for d, g in hits)
        counts.append(len(result.rules))
    n = max(1, len(gains))
    return CvScore(sum(gains) / n, sum(coverages) / n, right / decided if decided else None, sum(counts) / n)


def choose(rows: list[dict], task: str, grid: list[MiningConfig], folds: int = 4, min_precision: float = 0.9,
           log=lambda config, score: None) -> tuple[MiningConfig, dict[MiningConfig, CvScore]]:
    """The configuration of ``grid`` with the best cross-validated gain among those whose decided
    rows are at least ``min_precision`` right (the first of ``grid`` when none is); with every
    configuration's score, the evidence."""
    scores = {}
    for config in grid:
        scores[config] = cross_validate(rows, task, config, folds)
        log(config, scores[config])
    fine = [c for c in grid if scores[c].precision is not None and scores[c].precision >= min_precision]
    best = max(fine, key=lambda c: scores[c].gain) if fine else grid[0]
    return best, scores


# The settings `kdsl mine --predictions` is measured with in bench/mining.py, chosen from
# CV_GRID by cross-validation on the training rows of the selection sets (JDDC dev.jsonl with 10
# and 30 utterances per intent, tmm-sim train): the best mean gain among the settings whose
# decided rows were at least 0.90 right on every set (docs/mining.md has the evidence; JDDC
# test.jsonl was never used to choose).
MODEL_AWARE = MiningConfig(held_out_share=0.0)
CV_GRID: list[tuple[str, MiningConfig, bool]] = [  # (name, config, model-aware)
    ("precision only", MiningConfig(), False),
    ("precision only, disjunctions 3", MiningConfig(disjunctions=3), False),
    ("model-aware", MiningConfig(), True),
    ("model-aware, no held-out share", MiningConfig(held_out_share=0.0), True),
    ("model-aware, no held-out, rule prior 0.9", MiningConfig(held_out_share=0.0, rule_prior=0.9), True),
    ("model-aware, no held-out, disjunctions 3", MiningConfig(held_out_share=0.0, disjunctions=3), True),
    ("model-aware, no held-out, thesaurus", MiningConfig(held_out_share=0.0, thesaurus=True), True),
    ("model-aware, no held-out, beta estimator", MiningConfig(held_out_share=0.0, estimator="beta",
                                                              prior_strength=1.0), True),
    ("model-aware, no held-out, beta, disjunctions 3", MiningConfig(held_out_share=0.0, estimator="beta",
                                                                    prior_strength=1.0, disjunctions=3), True),
    ("model-aware + precise rules", MiningConfig(keep_precise=True), True),
]
