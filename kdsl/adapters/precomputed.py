"""The ``precomputed`` adapter: predictions that a log already carries, in columns named by the
config, checked against the labels of each row's task and copied into the standard columns.

Use it to run rules over the output of a model served elsewhere: nothing is learned except the
label sets (from a labelled table, or given). Columns: ``label_column`` (required), ``score_column``
(a probability; when absent, the top-k entry of the label, else 1.0; the default ``model_score``
may be missing from the input, a column named otherwise may not) and ``topk_column`` (optional,
``list<struct<label: string, score: float32>>``, every label of the row's task).

    >>> import pyarrow as pa
    >>> adapter = PrecomputedAdapter.train(pa.table({"task": ["intent"], "label": ["退款"]}),
    ...                                    label_column="pred", score_column="prob")
    >>> out = adapter.predict(pa.table({"task": ["intent"], "pred": ["退款"], "prob": [0.9]}))
    >>> out.column("model_label").to_pylist(), out.column("model_topk").to_pylist()[0][0]["label"]
    (['退款'], '退款')
"""

from __future__ import annotations

import pyarrow as pa

from kdsl.adapters.base import (
    Adapter,
    AdapterError,
    Option,
    labels_by_task,
    row_tasks,
    with_predictions,
)
from kdsl.adapters.storage import read_config, write_config
from kdsl.io import atomic_directory
from kdsl.record import MODEL_LABEL, MODEL_SCORE, TOPK_TYPE

DEFAULT_SCORE = MODEL_SCORE


class PrecomputedAdapter(Adapter):
    name = "precomputed"
    options = (
        Option("label_column", str, "the column of predicted labels (model_label)"),
        Option("score_column", str, "the column of their probabilities (model_score)"),
        Option("topk_column", str, "a list<struct<label, score>> column of the best labels (none by default)"),
    )
    load_options = ("label_column", "score_column", "topk_column")
    learns = False

    def __init__(self, labels: dict[str, list[str]], label_column: str = MODEL_LABEL,
                 score_column: str | None = DEFAULT_SCORE, topk_column: str | None = None):
        self.labels = labels
        self.label_column = label_column
        self.score_column = score_column
        self.topk_column = topk_column

    @classmethod
    def train(cls, table, labels=None, images=None, log=None, label_column=MODEL_LABEL, score_column=DEFAULT_SCORE,
              topk_column=None, **options):
        if options:
            raise AdapterError(f"the precomputed adapter takes no option {', '.join(map(repr, options))}")
        return cls(labels_by_task(table, labels), label_column, score_column, topk_column)

    def save(self, directory) -> None:
        with atomic_directory(directory) as tmp:
            write_config(tmp, {"adapter": self.name, "labels": self.labels, "label_column": self.label_column,
                               "score_column": self.score_column, "topk_column": self.topk_column})

    @classmethod
    def load(cls, directory):
        config = read_config(directory)
        try:
            return cls(config["labels"], config["label_column"], config.get("score_column"),
                       config.get("topk_column"))
        except KeyError as error:
            raise AdapterError(f"{directory}: config.json is not a precomputed model's (no {error})") from None

    def _column(self, table: pa.Table, name: str, role: str) -> list:
        if name not in table.column_names:
            raise AdapterError(f"no {role} column {name!r} in the input (its columns: {', '.join(table.column_names)})")
        if role != "top-k":
            return table.column(name).to_pylist()
        try:
            return table.column(name).cast(TOPK_TYPE).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise AdapterError(f"top-k column {name!r} is {table.column(name).type}, not "
                               "list<struct<label: string, score: float>>") from None

    def predict(self, table: pa.Table, images=None) -> pa.Table:
        predicted = self._column(table, self.label_column, "prediction")
        scores = None
        # The default score column may be absent (a log of labels only); one named otherwise may not.
        if self.score_column and (self.score_column != DEFAULT_SCORE or DEFAULT_SCORE in table.column_names):
            scores = self._column(table, self.score_column, "score")
        given_topk = self._column(table, self.topk_column, "top-k") if self.topk_column else [None] * table.num_rows
        tasks = row_tasks(table, self.labels)
        ids = table.column("id").to_pylist() if "id" in table.column_names else range(table.num_rows)
        allowed = {task: set(labels) for task, labels in self.labels.items()}
        labels_out, scores_out, topk = [], [], []
        for row_id, task, label, score, best in zip(ids, tasks, predicted, scores or [None] * len(ids), given_topk):
            if task not in allowed or label is None:
                labels_out.append(None), scores_out.append(None), topk.append(None)
                continue
            for name in [label] + [entry["label"] for entry in best or []]:
                if name not in allowed[task]:
                    raise AdapterError(f"row {row_id!r}: predicted label {name!r} is not a {task} label")
            if scores is None:
                # Without a score column, the label's top-k entry; else the prediction counts as certain.
                score = next((entry["score"] for entry in best or [] if entry["label"] == label), 1.0)
            labels_out.append(label), scores_out.append(score)
            topk.append(best or [{"label": label, "score": score}])
        return with_predictions(table, labels_out, scores_out, topk)
