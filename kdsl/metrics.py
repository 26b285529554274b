"""The challenge's scores: class-weighted F1 per task (DIS, ISS) and pooled (OSS), per-label tables.

Weighted F1 is scikit-learn's ``f1_score(y_true, y_pred, average="weighted")``, recomputed with
numpy so that kdsl does not need scikit-learn at run time: the labels are every label present in
``y_true`` or ``y_pred``; each label's F1 is ``2·tp / (support + predicted)``; the score is their
mean weighted by support (the number of rows whose true label it is).

A missing prediction (``None``) is wrong: it counts as a false negative of the row's true label and
as a prediction of no label at all. That is what the challenge's scorer does with an empty answer
(scikit-learn sees ``""`` as one more label, whose support is 0, so it weighs nothing). It is not
dropped: dropping it would reward a system for abstaining on the rows it finds hard.

    >>> round(weighted_f1(["a", "a", "b"], ["a", "b", "b"]), 4)
    0.6667
    >>> weighted_f1(["a", "b"], ["a", None])      # the unanswered "b" is simply wrong
    0.5
    >>> task_scores(["a", "x"], ["a", "y"], ["intent", "scene"])
    {'DIS': 1.0, 'ISS': 0.0, 'OSS': 0.5}
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from kdsl.record import OVERALL, SCORE_OF_TASK



@dataclass(frozen=True)
class LabelScore:
    """One row of the per-label table (scikit-learn's ``classification_report``)."""

    label: Hashable
    precision: float
    recall: float
    f1: float
    support: int  # rows whose true label this is
    predicted: int  # rows predicted as this label

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Confusion:
    """A confusion matrix over the labels of ``y_true`` ∪ ``y_pred``, sorted.

    ``matrix[i, j]`` counts rows whose true label is ``labels[i]`` and whose prediction is
    ``labels[j]``; the extra last column counts rows that got no prediction.
    """

    labels: tuple
    matrix: np.ndarray  # int64, shape (len(labels), len(labels) + 1)

    @property
    def unpredicted(self) -> int:
        """How many rows got no prediction."""
        return int(self.matrix[:, -1].sum())

    def per_label(self, zero_division: float = 0.0) -> list[LabelScore]:
        """Precision, recall, F1 and support per label; ``zero_division`` is the precision of a
        label never predicted and the recall of a label never true, as in scikit-learn."""
        tp, support, predicted = self._counts()
        precision = _divide(tp, predicted, zero_division)
        recall = _divide(tp, support, zero_division)
        # Computed from the counts, not from precision and recall, exactly as scikit-learn does;
        # the denominator is never 0 for a label that occurs on either side.
        f1 = _divide(2 * tp, support + predicted, zero_division)
        return [LabelScore(label, float(p), float(r), float(f), int(s), int(n))
                for label, p, r, f, s, n in zip(self.labels, precision, recall, f1, support, predicted)]

    def weighted_f1(self) -> float | None:
        """Support-weighted mean F1; None when there are no rows."""
        tp, support, predicted = self._counts()
        if support.sum() == 0:
            return None
        return float(np.average(_divide(2 * tp, support + predicted, 0.0), weights=support))

    def _counts(self):
        square = self.matrix[:, :-1]
        tp = np.diagonal(square).astype(np.float64)
        return tp, self.matrix.sum(axis=1).astype(np.float64), square.sum(axis=0).astype(np.float64)


def confusion(y_true: Sequence, y_pred: Sequence) -> Confusion:
    """Count (true, predicted) pairs; ``y_pred`` may hold None (no prediction), ``y_true`` may not.

    >>> c = confusion(["a", "b", "b"], ["a", "a", None])
    >>> c.labels, c.matrix.tolist(), c.unpredicted
    (('a', 'b'), [[1, 0, 0], [1, 0, 1]], 1)
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if any(label is None for label in y_true):
        raise ValueError("a true label is None; leave unlabelled rows out")
    labels = tuple(sorted(set(y_true) | {p for p in y_pred if p is not None}))
    code = {label: i for i, label in enumerate(labels)}
    none = len(labels)  # the "no prediction" column
    rows = np.fromiter((code[t] for t in y_true), np.int64, count=len(y_true))
    columns = np.fromiter((none if p is None else code[p] for p in y_pred), np.int64, count=len(y_pred))
    width = len(labels) + 1
    counts = np.bincount(rows * width + columns, minlength=len(labels) * width)
    return Confusion(labels, counts.reshape(len(labels), width))


def weighted_f1(y_true: Sequence, y_pred: Sequence) -> float | None:
    """scikit-learn's ``f1_score(average="weighted")``; None for no rows (nothing to score)."""
    return confusion(y_true, y_pred).weighted_f1()


def per_label(y_true: Sequence, y_pred: Sequence, zero_division: float = 0.0) -> list[LabelScore]:
    """The per-label table, labels sorted.

    >>> [(s.label, s.precision, s.recall, s.support) for s in per_label(["a", "b"], ["a", "a"])]
    [('a', 0.5, 1.0, 1), ('b', 0.0, 0.0, 1)]
    """
    return confusion(y_true, y_pred).per_label(zero_division)


def task_scores(y_true: Sequence, y_pred: Sequence, tasks: Sequence) -> dict[str, float | None]:
    """DIS over the ``intent`` rows, ISS over the ``scene`` rows, OSS over every row pooled.

    Rows of any other task count in OSS and get a score under their task's own name. A task
    without rows scores None.
    """
    if not len(y_true) == len(y_pred) == len(tasks):
        raise ValueError("y_true, y_pred and tasks differ in length")
    y_true, y_pred, tasks = _objects(y_true), _objects(y_pred), _objects(tasks)
    scores: dict[str, float | None] = {name: None for name in SCORE_OF_TASK.values()}
    for task in sorted({t for t in tasks if t is not None}):
        rows = tasks == task
        scores[SCORE_OF_TASK.get(task, task)] = weighted_f1(y_true[rows], y_pred[rows])
    scores[OVERALL] = weighted_f1(y_true, y_pred)
    return scores


def _objects(values: Sequence) -> np.ndarray:
    """A 1-D object array (``np.asarray`` would turn a list of tuples into a 2-D array)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _divide(numerator: np.ndarray, denominator: np.ndarray, zero_division: float) -> np.ndarray:
    out = np.full(numerator.shape, zero_division, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out
