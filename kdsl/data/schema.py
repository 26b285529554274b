"""The record table of docs/record-table.md as an Arrow schema."""

import pyarrow as pa

RECORD_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("task", pa.string()),
    pa.field("user", pa.string()),
    pa.field("agent", pa.string()),
    pa.field("ocr", pa.string()),
    pa.field("turns", pa.int32()),
    pa.field("n_images", pa.int32()),
    pa.field("image_paths", pa.list_(pa.string())),
    pa.field("image_turns", pa.list_(pa.int32())),  # the turn of each image; -1: not in a dialogue
    pa.field("label", pa.string()),
    pa.field("instruction", pa.string()),
])


def record_table(rows: list[dict], schema: pa.Schema = RECORD_SCHEMA) -> pa.Table:
    """Rows (dicts) -> a table with the record schema; columns a row lacks are null."""
    names = [f.name for f in schema if any(f.name in row for row in rows)] or schema.names
    return pa.Table.from_pylist(rows, schema=pa.schema([schema.field(n) for n in names]))
