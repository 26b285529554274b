"""What ``kdsl eval`` reports about a scored record table: the model alone, the rules alone, and the
final prediction, side by side, scored as the challenge scores them (``kdsl.metrics``).

- **model**: ``model_label`` against ``label``;
- **rules**: on the rows of each task, the share a rule decided (``T_source == "rule"``) and the
  share of those it got right;
- **final**: the output column ``T`` of the row's task ``T``. For a task the rules have no target
  for, the engine wrote no column and the model's answer stands, so it is ``model_label``.

Rows without ``label`` are left out and counted. Without a ``task`` column every row is of the
task of the one target present (or of ``task=`` when given).

    >>> import pyarrow as pa
    >>> table = pa.table({"task": ["intent", "intent"], "label": ["a", "b"],
    ...                   "model_label": ["a", "a"], "intent": ["a", "b"],
    ...                   "intent_rule": [None, "r"], "intent_source": ["model", "rule"]})
    >>> report = evaluate(table)
    >>> report["scores"]["model"]["DIS"], report["scores"]["final"]["DIS"], report["rules"]["DIS"]["precision"]
    (0.3333333333333333, 1.0, 1.0)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from kdsl.errors import InputError
from kdsl.metrics import Confusion, confusion, task_scores
from kdsl.record import LABEL, MODEL_LABEL, OVERALL, SCORE_OF_TASK, TASK


class EvaluationError(InputError):
    """The table cannot be evaluated; the message says why."""


def targets_in(names: list[str]) -> list[str]:
    """The targets the rule engine wrote: every ``T`` with ``T``, ``T_rule`` and ``T_source``."""
    return [n for n in names if f"{n}_rule" in names and f"{n}_source" in names]


def needed_columns(names: list[str]) -> list[str]:
    """The columns ``evaluate`` reads, so a caller can read no others from a wide file."""
    wanted = {TASK, LABEL, MODEL_LABEL}
    for target in targets_in(names):
        wanted |= {target, f"{target}_rule", f"{target}_source"}
    return [n for n in names if n in wanted]


class _Rows:
    """The labelled rows as object arrays, with each row's task."""

    def __init__(self, table: pa.Table, task: str | None):
        names = table.schema.names
        if LABEL not in names:
            raise EvaluationError("no 'label' column: evaluation needs the true labels")
        self.targets = targets_in(names)
        if MODEL_LABEL not in names and not self.targets:
            raise EvaluationError("nothing to evaluate: no 'model_label' column and no rule outputs "
                                  "(T, T_rule, T_source); score the table with `kdsl score` first")
        labels = _strings(table, LABEL)
        keep = labels != None  # noqa: E711 (element-wise)
        self.total, self.unlabelled = len(labels), int((~keep).sum())
        self.label = labels[keep]
        self.task = self._tasks(table, task)[keep]
        self.model = _strings(table, MODEL_LABEL)[keep] if MODEL_LABEL in names else None
        self.columns = {t: _strings(table, t)[keep] for t in self.targets}
        self.sources = {t: _strings(table, f"{t}_source")[keep] for t in self.targets}
        if not len(self.label):
            raise EvaluationError(f"no labelled rows (all {self.total} rows have a null 'label')")

    def _tasks(self, table: pa.Table, task: str | None) -> np.ndarray:
        if task is not None:
            return np.full(table.num_rows, task, dtype=object)
        if TASK in table.schema.names:
            return _strings(table, TASK)
        if len(self.targets) > 1:
            raise EvaluationError(f"no 'task' column and several targets ({', '.join(self.targets)}): "
                                  "cannot tell which prediction each row is judged on; give the task")
        # One target: every row is of its task. None: the model's rows have no known task, so
        # only the pooled score (OSS) means anything.
        return np.full(table.num_rows, self.targets[0] if self.targets else None, dtype=object)

    def final(self) -> np.ndarray:
        """Each row's final prediction: the output column of its task, else the model's answer."""
        fallback = self.model if self.model is not None else np.full(len(self.label), None, dtype=object)
        out = fallback.copy()
        for target, column in self.columns.items():
            rows = self.task == target
            out[rows] = column[rows]
        return out

    def by_task(self):
        """(task, row mask) for each task present, tasks sorted; rows of no task under None."""
        tasks = sorted({t for t in self.task if t is not None})
        return [(t, self.task == t) for t in tasks] or [(None, np.ones(len(self.label), bool))]


def evaluate(table: pa.Table, task: str | None = None) -> dict:
    """The report as a JSON-ready dict: ``rows``, ``scores`` (model and/or final, each DIS/ISS/OSS),
    ``rules`` (coverage and precision per score), ``unpredicted`` (rows without an answer) and
    ``per_label`` (per task, for the final prediction, or the model's when there are no rules)."""
    rows = _Rows(table, task)
    predictions = {}
    if rows.model is not None:
        predictions["model"] = rows.model
    if rows.targets:
        predictions["final"] = rows.final()
    judged = "final" if "final" in predictions else "model"
    report = {
        "rows": {
            "total": rows.total, "labelled": len(rows.label), "unlabelled": rows.unlabelled,
            "by_task": {str(t): int(mask.sum()) for t, mask in rows.by_task()},
        },
        "scores": {name: task_scores(rows.label, pred, rows.task) for name, pred in predictions.items()},
        "unpredicted": {name: int((pred == None).sum()) for name, pred in predictions.items()},  # noqa: E711
        "per_label": {
            "prediction": judged,
            "tasks": {str(t): [s.as_dict() for s in c.per_label()]
                      for t, c in confusions(rows, predictions[judged]).items()},
        },
    }
    if rows.targets:
        report["rules"] = _rule_scores(rows)
    return report


def confusion_matrices(table: pa.Table, task: str | None = None) -> dict[str, dict[str, Confusion]]:
    """``{"final" | "model": {task: Confusion}}`` for plotting; the task is ``"all"`` when unknown."""
    rows = _Rows(table, task)
    out = {}
    if rows.targets:
        out["final"] = confusions(rows, rows.final())
    if rows.model is not None:
        out["model"] = confusions(rows, rows.model)
    return out


def confusions(rows: _Rows, predictions: np.ndarray) -> dict[str, Confusion]:
    return {("all" if t is None else t): confusion(rows.label[mask], predictions[mask])
            for t, mask in rows.by_task()}


def _rule_scores(rows: _Rows) -> dict[str, dict]:
    """Per score name: rows of the task, rows a rule decided, how many rightly, coverage, precision."""
    decided = np.zeros(len(rows.label), bool)
    correct = np.zeros(len(rows.label), bool)
    for target in rows.targets:
        by_rule = (rows.task == target) & (rows.sources[target] == "rule")
        decided |= by_rule
        correct |= by_rule & (rows.columns[target] == rows.label)
    groups = [(SCORE_OF_TASK.get(t, t), mask) for t, mask in rows.by_task() if t is not None]
    groups.append((OVERALL, np.ones(len(rows.label), bool)))
    out = {name: None for name in SCORE_OF_TASK.values()}
    for name, mask in groups:
        n, d, c = int(mask.sum()), int((decided & mask).sum()), int((correct & mask).sum())
        out[name] = {"rows": n, "decided": d, "correct": c,
                     "coverage": d / n if n else None, "precision": c / d if d else None}
    return out


def _strings(table: pa.Table, name: str) -> np.ndarray:
    """A column as an object array of str / None, whatever its Arrow type (ints become text)."""
    column = table.column(name)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        try:
            column = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise EvaluationError(f"column {name!r} is {column.type}, not text") from None
    values = column.to_pylist()
    return np.fromiter(values, dtype=object, count=len(values))
