"""The record contract: the columns of the record table, the tasks, their scores and the model's
columns — defined here once, for every layer (language, engine, mining, models, evaluation).

This is the ground floor: it imports nothing from kdsl, so any module may import it. It also
holds the one check of a table or a record against the contract (``schema_problem``,
``record_problem``), which every reader goes through (``kdsl.io.open_parquet``, the engine).

One row of the record table is one sample of the challenge: a dialogue (intent task) or a
screenshot (scene task), its text in ``TEXT_FIELDS``, its images, and its ``label`` when known.
A model adds ``PREDICTION_FIELDS``; rules read the columns of ``BUILTIN_FIELDS`` (by the names
rules use: ``model.score`` is the column ``model_score``).

    >>> TEXT_FIELDS, TASKS
    (('user', 'agent', 'ocr'), ('intent', 'scene'))
    >>> [SCORE_OF_TASK[task] for task in TASKS] + [OVERALL]
    ['DIS', 'ISS', 'OSS']
    >>> record_table([{"id": "1", "task": "intent", "user": "漏水了"}]).column_names
    ['id', 'task', 'user']
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

#: The text a rule can match and a model reads: what the user said, what the agent said, and
#: the text read from the row's images.
TEXT_FIELDS = ("user", "agent", "ocr")

#: The challenge's tasks; a row's ``task`` column holds one of them.
TASKS = ("intent", "scene")

# The challenge names its scores after the tasks: Dialogue Intent Score, Image Scene Score, and
# the Overall Score over both tasks' rows pooled together.
SCORE_OF_TASK = {"intent": "DIS", "scene": "ISS"}
OVERALL = "OSS"
SCORES = (*SCORE_OF_TASK.values(), OVERALL)

ID, TASK, LABEL = "id", "task", "label"

#: The columns mining reads from a labelled table (those present).
MINING_COLUMNS = (ID, TASK, *TEXT_FIELDS, LABEL)

RECORD_SCHEMA = pa.schema([
    pa.field(ID, pa.string(), nullable=False),
    pa.field(TASK, pa.string()),
    pa.field("user", pa.string()),
    pa.field("agent", pa.string()),
    pa.field("ocr", pa.string()),
    pa.field("turns", pa.int32()),
    pa.field("n_images", pa.int32()),
    pa.field("image_paths", pa.list_(pa.string())),
    pa.field("image_turns", pa.list_(pa.int32())),  # the turn of each image; -1: not in a dialogue
    pa.field(LABEL, pa.string()),
    pa.field("instruction", pa.string()),
])

# --- the model's columns: what an adapter adds and rules may read (``model.label`` ...)
MODEL_LABEL, MODEL_SCORE, MODEL_TOPK = "model_label", "model_score", "model_topk"
TOPK_TYPE = pa.list_(pa.struct([("label", pa.string()), ("score", pa.float32())]))
PREDICTION_FIELDS = [
    pa.field(MODEL_LABEL, pa.string()),
    pa.field(MODEL_SCORE, pa.float32()),
    pa.field(MODEL_TOPK, TOPK_TYPE),
]
PREDICTION_COLUMNS = [f.name for f in PREDICTION_FIELDS]

#: The fields every rule file may use without declaring them: name as rules write it -> kind.
#: ``text`` and ``string`` both support matching (has, matches, fuzzy, count, len, near) and
#: compare as strings — the kinds say what a column is for, not what it means
#: (docs/language.md §6); ``number`` only compares.
BUILTIN_FIELDS = {
    ID: "string", TASK: "string", "user": "text", "agent": "text", "ocr": "text",
    "turns": "number", "n_images": "number", LABEL: "string",
    "model.label": "string", "model.score": "number",
}
#: Columns of the record table that hold lists (a rule cannot read them as a field).
LIST_FIELDS = {"image_paths"}


def record_table(rows: list[dict], schema: pa.Schema = RECORD_SCHEMA) -> pa.Table:
    """Rows (dicts) -> a table with the record schema; columns a row lacks are null."""
    names = [f.name for f in schema if any(f.name in row for row in rows)] or schema.names
    return pa.Table.from_pylist(rows, schema=pa.schema([schema.field(n) for n in names]))


# ---- the one check of a table or a record against the contract

#: The type of every column the contract defines (the model's top-k list is the adapters' own).
EXPECTED = {field.name: field.type for field in RECORD_SCHEMA} | {
    field.name: field.type for field in PREDICTION_FIELDS if field.name != MODEL_TOPK}


def _kind(data_type: pa.DataType) -> str:
    """What a column holds, as far as kdsl cares: string, integer, number, null, list<...>."""
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    if pa.types.is_null(data_type):
        return "null"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    if pa.types.is_integer(data_type):
        return "integer"
    if pa.types.is_floating(data_type):
        return "number"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return f"list<{_kind(data_type.value_type)}>"
    return str(data_type)


# What record_problem checks a record's values against, worked out once: predict() calls it per record.
_EXPECTED_KIND = {name: _kind(data_type) for name, data_type in EXPECTED.items()}
_PYTHON_TYPE = {"string": str, "integer": int, "number": (int, float)}


def _accepts(expected: pa.DataType, actual: pa.DataType) -> bool:
    """A null column fits any type, an integer one a number, a list of nulls any list."""
    want, have = _kind(expected), _kind(actual)
    return have in (want, "null") or (want, have) == ("number", "integer") \
        or (want.startswith("list<") and have == "list<null>")


def schema_problem(schema: pa.Schema, columns=None, require=(), require_text=False) -> str | None:
    """What is wrong with a table of ``schema`` under the contract, or None: a record-table column
    of ``columns`` (default: all of ``schema``) not of the record schema's type, a column of
    ``require`` missing, or (``require_text``) no text column at all. Columns the contract does
    not define (rule outputs, extra data) are not checked. ``kdsl.io.open_parquet`` raises it
    as an ``InputError`` for every table kdsl reads.

    >>> schema_problem(pa.schema([("id", pa.int64())]))
    "column 'id' is int64; expected string"
    """
    names = schema.names
    present = f"columns present: {', '.join(names) or 'none'}"
    missing = [c for c in require if c not in names]
    if missing:
        return f"no {', '.join(map(repr, missing))} column{'s' * (len(missing) > 1)}; {present}"
    if require_text and not any(f in names for f in TEXT_FIELDS):
        return f"no text column ({', '.join(TEXT_FIELDS)}); {present}"
    for name in names if columns is None else [c for c in columns if c in names]:
        expected, actual = EXPECTED.get(name), schema.field(name).type
        if expected is not None and not _accepts(expected, actual):
            return f"column '{name}' is {actual}; expected {_kind(expected)}"
    return None


def record_problem(record) -> str | None:
    """What is wrong with one record (a mapping of column -> value; None is null) under the
    contract, or None. ``Engine.predict`` and ``explain`` raise it as an ``InputError``.

    >>> record_problem(["漏水了"]), record_problem({"user": 5}), record_problem({"user": "漏水了"})
    ('expected a dict of column -> value, not list', "'user' is int; expected string", None)
    """
    if not isinstance(record, Mapping):
        return f"expected a dict of column -> value, not {type(record).__name__}"
    for name, value in record.items():
        kind = _EXPECTED_KIND.get(name)
        wanted = _PYTHON_TYPE.get(kind)
        if value is not None and wanted is not None and (not isinstance(value, wanted) or isinstance(value, bool)):
            return f"'{name}' is {type(value).__name__}; expected {kind}"
    return None
