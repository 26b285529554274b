"""The model's predictions on the training rows, which model-aware mining aims its rules at.

A rule can only improve the final prediction where the model is wrong, so the miner needs to
know where the model errs on rows it did not learn from: *out-of-fold* predictions. ``out_of_fold``
makes them by k-fold on the training table (folds stratified by label, deterministic): every row
is predicted by an adapter trained on the other folds. ``read_predictions`` loads such a table
(``id``, ``model_label``, ``model_score``) from Parquet and ``join_predictions`` attaches it to
the mining rows by ``id``, refusing a table that lacks a column or a training row's id.

    >>> rows = [{"id": "a", "user": "漏水", "label": "漏水"}]
    >>> join_predictions(rows, {"a": ("排水", 0.4)}, "oof.parquet")[0]["model_label"]
    '排水'
    >>> join_predictions(rows, {}, "oof.parquet")
    Traceback (most recent call last):
    ...
    kdsl.errors.InputError: oof.parquet: no prediction for training row id 'a' (1 of 1 rows missing)
"""

from __future__ import annotations

import random
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc

from kdsl.errors import InputError
from kdsl.record import ID, MODEL_LABEL, MODEL_SCORE

OOF_COLUMNS = (ID, MODEL_LABEL, MODEL_SCORE)  # a predictions table for mining
FOLD = "fold"  # out_of_fold also says which fold predicted each row


def fold_of_rows(labels: list, folds: int, seed=0) -> list[int]:
    """A fold number per row: each label's rows dealt round-robin over the folds in a shuffled
    order (``seed``), so every fold holds about the same share of every label.

    >>> fold_of_rows(["a", "a", "b", "b"], folds=2)
    [1, 0, 1, 0]
    """
    by_label: dict = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    rng = random.Random(f"kdsl-folds:{seed}")
    fold = [0] * len(labels)
    offset = 0
    for label in sorted(by_label, key=str):
        indices = by_label[label]
        rng.shuffle(indices)
        for k, index in enumerate(indices):
            fold[index] = (offset + k) % folds
        offset += len(indices)
    return fold


def out_of_fold(table: pa.Table, adapter: str = "baseline", folds: int = 5, fold_seed: int = 0,
                images=None, **options) -> pa.Table:
    """``id``, ``model_label``, ``model_score`` (and ``fold``) for every labelled row of ``table``, each from
    an adapter (``kdsl.adapters.adapter_class(adapter)``) trained on the other folds with
    ``options`` (e.g. the adapter's ``seed``; ``fold_seed`` deals the folds). Labels are given to every fold's adapter, so a label
    absent from a fold's training rows is still one it may predict.

        >>> oof = out_of_fold(train_table, folds=5, epochs=25, seed=0)   # doctest: +SKIP
    """
    from kdsl.adapters import adapter_class
    from kdsl.adapters.base import labels_by_task

    if folds < 2:
        raise InputError(f"out-of-fold predictions need at least 2 folds, not {folds}")
    labelled = table.filter(pc.is_valid(table.column("label")))
    labels = labels_by_task(labelled)
    fold = fold_of_rows(labelled.column("label").to_pylist(), folds, fold_seed)
    ids = labelled.column("id").to_pylist()
    predicted_label: list = [None] * labelled.num_rows
    predicted_score: list = [None] * labelled.num_rows
    for k in range(folds):
        held = [i for i, f in enumerate(fold) if f == k]
        fit = [i for i, f in enumerate(fold) if f != k]
        if not held:
            continue
        where = {"images": images} if images is not None else {}  # not every adapter reads images
        model = adapter_class(adapter).train(labelled.take(fit), labels=labels, **where, **options)
        out = model.predict(labelled.take(held), images=images)
        for i, label, score in zip(held, out.column("model_label").to_pylist(), out.column("model_score").to_pylist()):
            predicted_label[i], predicted_score[i] = label, score
    return pa.table({ID: pa.array(ids, pa.string()), MODEL_LABEL: pa.array(predicted_label, pa.string()),
                     MODEL_SCORE: pa.array(predicted_score, pa.float32()), FOLD: pa.array(fold, pa.int32())})


def predictions_by_id(table: pa.Table, source: str = "predictions") -> dict[str, tuple[str | None, float | None]]:
    """``{id: (model_label, model_score)}`` of a predictions table; InputError naming ``source``
    when a column is missing or an id repeats."""
    missing = [c for c in OOF_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}; "
                         f"a predictions table has {', '.join(OOF_COLUMNS)}")
    found: dict = {}
    for row_id, label, score in zip(*(table.column(c).to_pylist() for c in OOF_COLUMNS)):
        if row_id in found:
            raise InputError(f"{source}: id {row_id!r} appears more than once")
        found[row_id] = (label, None if score is None else float(score))
    return found


def read_predictions(path) -> dict[str, tuple[str | None, float | None]]:
    """``predictions_by_id`` of a Parquet file; InputError when it is missing or unreadable."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as error:  # noqa: BLE001  (pyarrow raises several types for a non-Parquet file)
        raise InputError(f"{path}: not a readable Parquet file ({error})") from None
    return predictions_by_id(table, str(path))


def join_predictions(rows: list[dict], predictions: dict, source: str = "predictions") -> list[dict]:
    """Copies of ``rows`` with ``model_label`` and ``model_score`` from ``predictions`` (by
    ``id``); InputError when a row has no id or no prediction."""
    missing = [r.get("id") for r in rows if r.get("id") not in predictions]
    if missing:
        raise InputError(f"{source}: no prediction for training row id {missing[0]!r} "
                         f"({len(missing)} of {len(rows)} rows missing)")
    return [{**r, "model_label": predictions[r["id"]][0], "model_score": predictions[r["id"]][1]} for r in rows]
