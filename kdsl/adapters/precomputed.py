"""The ``precomputed`` adapter: predictions that a log already carries, in columns named by the
config, checked against the labels of each row's task and copied into the standard columns.

Use it to run rules over the output of a model served elsewhere: nothing is learned except the
label sets (from a labelled table, or given).

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
    labels_by_task,
    row_tasks,
    with_predictions,
)
from kdsl.adapters.storage import atomic_directory, read_config, write_config


class PrecomputedAdapter(Adapter):
    name = "precomputed"

    def __init__(self, labels: dict[str, list[str]], label_column: str = "model_label",
                 score_column: str | None = "model_score"):
        self.labels = labels
        self.label_column = label_column
        self.score_column = score_column

    @classmethod
    def train(cls, table, labels=None, label_column="model_label", score_column="model_score", **options):
        if options:
            raise AdapterError(f"the precomputed adapter takes no option {', '.join(map(repr, options))}")
        return cls(labels_by_task(table, labels), label_column, score_column)

    def save(self, directory) -> None:
        with atomic_directory(directory) as tmp:
            write_config(tmp, {"adapter": self.name, "labels": self.labels,
                               "label_column": self.label_column, "score_column": self.score_column})

    @classmethod
    def load(cls, directory):
        config = read_config(directory)
        return cls(config["labels"], config["label_column"], config.get("score_column"))

    def predict(self, table: pa.Table, images=None) -> pa.Table:
        if self.label_column not in table.column_names:
            raise AdapterError(f"no prediction column {self.label_column!r}")
        predicted = table.column(self.label_column).to_pylist()
        # Without a score column the prediction is taken as certain: there is nothing to weigh it by.
        if self.score_column and self.score_column in table.column_names:
            scores = table.column(self.score_column).to_pylist()
        else:
            scores = [None if label is None else 1.0 for label in predicted]
        tasks = row_tasks(table, self.labels)
        ids = table.column("id").to_pylist() if "id" in table.column_names else range(table.num_rows)
        allowed = {task: set(labels) for task, labels in self.labels.items()}
        labels_out, scores_out, topk = [], [], []
        for row_id, task, label, score in zip(ids, tasks, predicted, scores):
            if task not in allowed or label is None:
                labels_out.append(None), scores_out.append(None), topk.append(None)
                continue
            if label not in allowed[task]:
                raise AdapterError(f"row {row_id!r}: predicted label {label!r} is not a {task} label")
            labels_out.append(label), scores_out.append(score)
            topk.append([{"label": label, "score": score}])
        return with_predictions(table, labels_out, scores_out, topk)
