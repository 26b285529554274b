"""The record contract: the columns of the record table, the tasks, their scores and the model's
columns — defined here once, for every layer (language, engine, mining, models, evaluation).

This is the ground floor: it imports nothing from kdsl, so any module may import it.

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
#: ``text`` supports matching (has, matches, fuzzy, count, len, near); ``string`` and ``text``
#: compare as strings.
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
