"""What every adapter does, and the helpers they share.

An adapter is trained from a record table (or, for ``precomputed``, only told the labels), saved
to a model directory and loaded back, and adds three columns to a table:

- ``model_label`` (string): the chosen label, always one of the row's own task;
- ``model_score`` (float32): the probability of that label;
- ``model_topk`` (list<struct<label: string, score: float32>>): the best labels, best first.

A row whose task the model does not know gets nulls. Labels per task come from the training
data's ``label`` column, or are given (``labels={"intent": [...], "scene": [...]}``).

    >>> import pyarrow as pa
    >>> labels_by_task(pa.table({"task": ["intent", "scene", "intent"], "label": ["b", "x", "a"]}))
    {'intent': ['a', 'b'], 'scene': ['x']}
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from kdsl.errors import ModelError
from kdsl.record import LABEL, PREDICTION_COLUMNS, PREDICTION_FIELDS, TASK, TOPK_TYPE


class AdapterError(ModelError):
    """Input an adapter cannot use (a missing column, a label outside its task, a bad model
    directory, an option it does not take)."""


@dataclass(frozen=True)
class Option:
    """One option an adapter's ``train`` takes, declared by the adapter so that ``kdsl train``'s
    flags and the pipeline's ``[model]`` section are derived from it, not written again.

    ``name`` is the keyword (``--name-with-dashes`` on the command line unless ``flag`` says
    otherwise); ``kind`` is ``str``, ``int``, ``float``, ``bool`` (a flag), ``"dir"`` (an
    existing folder) or a tuple of choices; ``minimum`` bounds a number (``above``: strictly);
    ``required``: the adapter cannot train without it; ``requires``: only together with that
    (boolean) option; ``config_key``: the pipeline's own ``[model]`` key for it. A default is
    the adapter's own, said in ``help``.

        >>> Option("learning_rate", float, "AdamW learning rate", minimum=0, above=True, flag="--lr").cli_flag
        '--lr'
    """

    name: str
    kind: object = str
    help: str = ""
    minimum: float | None = None
    above: bool = False
    required: bool = False
    requires: str | None = None
    config_key: str | None = None
    flag: str | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


class Adapter(ABC):
    """Train, save, load, predict. Subclasses register in ``kdsl.adapters.ADAPTERS`` and declare
    what the callers need to know about them, so that no caller branches on an adapter's name:

    - ``options``: what ``train`` takes (``Option``); ``load_options``: the attributes a caller
      may set on a loaded model (a precomputed model's column names);
    - ``learns``: whether it fits anything (``precomputed`` only reads predictions);
    - ``reads_images``: whether ``images`` matters to it; ``wants_gpu``: one per worker when
      there are GPUs; ``keeps_checkpoint``: ``train`` takes ``checkpoint``/``resume``;
    - ``export_class``: ``"module:Class"`` of its ONNX form (``export(adapter, output)`` and
      ``load(directory)``), or None when it does not export.
    """

    name: ClassVar[str]
    labels: dict[str, list[str]]  # task -> its labels, sorted
    options: ClassVar[tuple[Option, ...]] = ()
    load_options: ClassVar[tuple[str, ...]] = ()
    learns: ClassVar[bool] = True
    reads_images: ClassVar[bool] = False
    wants_gpu: ClassVar[bool] = False
    keeps_checkpoint: ClassVar[bool] = False
    export_class: ClassVar[str | None] = None

    @classmethod
    @abstractmethod
    def train(cls, table: pa.Table, labels: dict[str, list[str]] | None = None, images=None, log=None,
              **options) -> Adapter:
        """A new adapter fitted to the labelled rows of ``table``. ``images``: the data root of
        ``image_paths``; ``log``: called with a line of progress now and then."""

    @classmethod
    def flip_options(cls, flip: bool) -> dict:
        """The training options that turn horizontal-flip augmentation on or off (the
        pipeline trains a model each way)."""
        return {}

    @abstractmethod
    def save(self, directory) -> None:
        """Write the model directory atomically (config.json, and weights.safetensors if any)."""

    @classmethod
    @abstractmethod
    def load(cls, directory) -> Adapter:
        """The adapter saved in ``directory``."""

    @abstractmethod
    def predict(self, table: pa.Table, images=None) -> pa.Table:
        """``table`` with the prediction columns added (replacing any already there).
        ``images``: the data root that ``image_paths`` are relative to; adapters that read no
        images ignore it."""

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema ``predict`` gives for input of ``schema``."""
        kept = [f for f in schema if f.name not in PREDICTION_COLUMNS]
        return pa.schema(kept + PREDICTION_FIELDS)


def settings_from(settings_class, options: dict, adapter: str):
    """``settings_class(**options)`` (a dataclass of training options), with an AdapterError
    naming the adapter for an option it does not take or a value of the wrong type."""
    unknown = set(options) - {f.name for f in dataclasses.fields(settings_class)}
    if unknown:
        raise AdapterError(f"the {adapter} adapter takes no option {', '.join(sorted(unknown))}")
    try:
        return settings_class(**options)
    except TypeError as error:  # e.g. epochs = "3": the range checks compare it with a number
        raise AdapterError(f"the {adapter} adapter's options: {error}") from None


def labels_by_task(table: pa.Table, given: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Every task's labels: those given, plus those its labelled rows use, sorted."""
    for column in (TASK, LABEL):
        if column not in table.column_names:
            raise AdapterError(f"training data has no {column!r} column")
    found: dict[str, set[str]] = {task: set(labels) for task, labels in (given or {}).items()}
    for task, label in zip(table.column("task").to_pylist(), table.column("label").to_pylist()):
        if task is not None and label is not None:
            found.setdefault(task, set()).add(label)
    if not any(found.values()):
        raise AdapterError("training data has no labelled row")
    return {task: sorted(labels) for task, labels in sorted(found.items()) if labels}


def row_tasks(table: pa.Table, known: dict[str, list[str]]) -> list[str | None]:
    """The task of every row. Without a ``task`` column, every row is of the model's one task
    (a model of several tasks cannot tell which applies, so that is an error)."""
    if "task" in table.column_names:
        return table.column("task").to_pylist()
    if len(known) == 1:
        return [next(iter(known))] * table.num_rows
    raise AdapterError(f"no 'task' column, and the model knows several tasks ({', '.join(known)})")


def with_predictions(table: pa.Table, labels: list, scores: list, topk: list) -> pa.Table:
    """``table`` with the three prediction columns set (old ones dropped)."""
    kept = table.drop_columns([c for c in PREDICTION_COLUMNS if c in table.column_names])
    arrays = [pa.array(labels, pa.string()), pa.array(scores, pa.float32()), pa.array(topk, TOPK_TYPE)]
    for field, array in zip(PREDICTION_FIELDS, arrays):
        kept = kept.append_column(field, array)
    return kept
