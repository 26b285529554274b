"""A scored table -> the challenge's submission: one ``id,predict`` line per row.

Each row's prediction comes from the column named by its ``task`` (``intent`` / ``scene``: the
engine's final label for that target), or from ``model_label`` when the table has no such column;
``--target-column`` names other columns.

    >>> import pyarrow as pa
    >>> table = pa.table({"id": ["a", "b"], "task": ["intent", "scene"],
    ...                   "intent": ["气泡", None], "model_label": ["x", "退款页面"]})
    >>> predictions(table, TargetColumns())
    [('a', '气泡'), ('b', '退款页面')]
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

import pyarrow as pa

from kdsl.errors import InputError
from kdsl.record import MODEL_LABEL, TASKS

HEADER = ("id", "predict")


class SubmissionError(InputError):
    """The table cannot give a submission (no id column, duplicate ids, no column to read)."""


@dataclass
class TargetColumns:
    """Where each row's prediction is read: ``every`` for all rows, else ``by_task[task]``, else
    the column named like the task, else ``model_label``.
    """

    every: str | None = None
    by_task: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, specs) -> "TargetColumns":
        """From ``--target-column`` values: ``COLUMN`` (every row) or ``TASK=COLUMN``.

        >>> TargetColumns.parse(["intent=intent_v2"]).by_task
        {'intent': 'intent_v2'}
        """
        columns = cls()
        for spec in specs:
            task, sep, column = spec.partition("=")
            if not sep:
                if columns.every is not None:
                    raise SubmissionError(f"two columns for every row: {columns.every!r} and {spec!r}")
                columns.every = spec.strip()
            elif not task.strip() or not column.strip():
                raise SubmissionError(f"target column {spec!r}: expected TASK=COLUMN or COLUMN")
            else:
                columns.by_task[task.strip()] = column.strip()
        return columns

    def needed(self, names) -> list[str]:
        """The columns of a table with ``names`` that predictions may be read from."""
        wanted = {self.every, MODEL_LABEL, *TASKS, *self.by_task.values()}
        return [n for n in names if n in wanted]

    def column_for(self, task: str | None, names) -> str:
        if self.every is not None:
            column = self.every
        elif task in self.by_task:
            column = self.by_task[task]
        elif task in names:
            column = task
        elif MODEL_LABEL in names:
            column = MODEL_LABEL  # a table scored by a model alone has no per-task columns
        else:
            raise SubmissionError(f"no column {task!r} or {MODEL_LABEL!r} to read the predictions "
                                  f"of {task!r} rows from")
        if column not in names:
            raise SubmissionError(f"no column {column!r} (asked for as a target column)")
        return column


def predictions(table: pa.Table, targets: TargetColumns) -> list[tuple[str, str | None]]:
    """(id, prediction) for every row in order; the prediction is None where the row has none."""
    names = table.column_names
    if "id" not in names:
        raise SubmissionError("no 'id' column")
    if targets.every is None and "task" not in names:
        raise SubmissionError("no 'task' column to choose each row's prediction column; "
                              "name a target column for every row")
    ids = table.column("id").to_pylist()
    _check_ids(ids)
    tasks = table.column("task").to_pylist() if "task" in names else [None] * len(ids)
    values = {}  # column name -> its values, read once
    pairs = []
    for index, (row_id, task) in enumerate(zip(ids, tasks)):
        if task is None and targets.every is None:
            pairs.append((row_id, None))
            continue
        column = targets.column_for(task, names)
        if column not in values:
            values[column] = table.column(column).to_pylist()
        value = values[column][index]
        pairs.append((row_id, str(value) if value not in (None, "") else None))
    return pairs


def _check_ids(ids) -> None:
    if None in ids:
        raise SubmissionError(f"{ids.count(None)} row(s) without an id")
    seen, repeated = set(), {}
    for row_id in ids:
        if row_id in seen:
            repeated[row_id] = None  # a dict keeps the order in which repeats were found
        seen.add(row_id)
    if repeated:
        repeated = list(repeated)
        shown = ", ".join(map(repr, repeated[:5]))
        raise SubmissionError(f"{len(repeated)} id(s) on more than one row: {shown}"
                              + (" ..." if len(repeated) > 5 else ""))


def write_submission(path, pairs) -> None:
    """Write ``id,predict`` lines, UTF-8, ``\\n`` line ends; a missing prediction is empty."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows((row_id, label or "") for row_id, label in pairs)

