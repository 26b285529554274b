"""Record tables on disk: one Parquet file or a directory of them, streamed in batches with
memory bounded by the batch size, and checked against the record schema in one place.

Every command reads its input through :func:`open_parquet` and checks the columns it uses
with :func:`check_columns`, so that a wrong type is one clear error before any work, not a
traceback (``kdsl mine`` with an integer ``label``) or a silent wrong answer (``kdsl eval``
with an integer ``label`` scoring F1 0) halfway through.

    >>> import pyarrow as pa
    >>> check_columns(pa.schema([("id", pa.int64())]), "t.parquet")
    Traceback (most recent call last):
    ...
    kdsl.errors.InputError: t.parquet: column 'id' is int64; expected string

Dictionary-encoded string columns (what pandas' ``category`` and some writers produce) are
accepted and decoded to plain strings as they are read; a directory whose files disagree on a
column's type is an error naming the file, whatever order the files come in.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from kdsl.data.schema import RECORD_SCHEMA
from kdsl.errors import InputError

TEXT_FIELDS = ("user", "agent", "ocr")
# The model's columns (kdsl.adapters.base.PREDICTION_FIELDS), by the kind a reader needs.
_MODEL_TYPES = {"model_label": pa.string(), "model_score": pa.float32()}
EXPECTED = {field.name: field.type for field in RECORD_SCHEMA} | _MODEL_TYPES


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


def _accepts(expected: pa.DataType, actual: pa.DataType) -> bool:
    """A null column fits any type, an integer one a number, a list of nulls any list."""
    want, have = _kind(expected), _kind(actual)
    return have in (want, "null") or (want, have) == ("number", "integer") \
        or (want.startswith("list<") and have == "list<null>")


def check_columns(schema: pa.Schema, where, columns=None, require=(), require_text=False) -> None:
    """Raise :class:`InputError` naming ``where`` unless every record-table column of
    ``columns`` (default: all of ``schema``) has the record schema's type, every column of
    ``require`` is present, and (``require_text``) at least one text column is.

    Columns the record schema does not define (rule outputs, extra data) are not checked.
    """
    names = schema.names
    missing = [c for c in require if c not in names]
    if missing:
        raise InputError(f"{where}: no {', '.join(map(repr, missing))} column{'s' * (len(missing) > 1)}; columns present: "
                         f"{', '.join(names) or 'none'}")
    if require_text and not any(f in names for f in TEXT_FIELDS):
        raise InputError(f"{where}: no text column ({', '.join(TEXT_FIELDS)}); columns present: "
                         f"{', '.join(names) or 'none'}")
    for name in names if columns is None else [c for c in columns if c in names]:
        expected = EXPECTED.get(name)
        actual = schema.field(name).type
        if expected is not None and not _accepts(expected, actual):
            raise InputError(f"{where}: column '{name}' is {actual}; expected {_kind(expected)}")


def check_record(record, where="record") -> Mapping:
    """``record`` if it is a mapping of column -> value whose record-table values have their
    types (None: null); else :class:`InputError`.

    >>> check_record(["漏水了"])
    Traceback (most recent call last):
    ...
    kdsl.errors.InputError: record: expected a dict of column -> value, not list
    """
    if not isinstance(record, Mapping):
        raise InputError(f"{where}: expected a dict of column -> value, not {type(record).__name__}")
    python = {"string": str, "integer": int, "number": (int, float)}
    for name, value in record.items():
        expected = EXPECTED.get(name)
        wanted = python.get(_kind(expected)) if expected is not None else None
        if value is not None and wanted is not None and (not isinstance(value, wanted) or isinstance(value, bool)):
            raise InputError(f"{where}: '{name}' is {type(value).__name__}; expected {_kind(expected)}")
    return record


def decoded_type(data_type: pa.DataType) -> pa.DataType:
    """``data_type`` with dictionary encoding removed (at any depth of lists)."""
    if pa.types.is_dictionary(data_type):
        return decoded_type(data_type.value_type)
    if pa.types.is_list(data_type):
        return pa.list_(pa.field(data_type.value_field.name, decoded_type(data_type.value_type)))
    if pa.types.is_large_list(data_type):
        return pa.large_list(pa.field(data_type.value_field.name, decoded_type(data_type.value_type)))
    return data_type


def decoded_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([field.with_type(decoded_type(field.type)) for field in schema], metadata=schema.metadata)


def decode(data):
    """A table or record batch with its dictionary-encoded columns as plain values."""
    target = decoded_schema(data.schema)
    return data if target.equals(data.schema) else data.cast(target)


def open_parquet(path) -> ParquetSource:
    """A Parquet file, or a directory of them (what ``--ray`` and Spark write), as one source
    with ``pq.ParquetFile``'s surface: ``schema_arrow``, ``metadata.num_rows``, ``read`` and
    ``iter_batches``. :class:`InputError` when it is missing, not Parquet, or a directory whose
    files disagree on their columns.

    >>> source = open_parquet("train.parquet")                          # doctest: +SKIP
    >>> for batch in source.iter_batches(batch_size=8192, columns=["user"]):  # doctest: +SKIP
    ...     ...
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        return ParquetSource(path)
    except InputError:
        raise
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(f"{path}: not a readable Parquet file ({error})") from None


# Parquet reading whose memory follows the batch, not the file: pyarrow's defaults pre-buffer
# (``pre_buffer=True`` reads whole column chunks ahead) and read every column chunk in one go
# (unbuffered streams); a buffered stream reads a chunk's pages READ_BUFFER bytes at a time.
READ_BUFFER = 1 << 20


def _parquet_format():
    import pyarrow.dataset as ds

    return ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(
        pre_buffer=False, use_buffered_stream=True, buffer_size=READ_BUFFER))


class ParquetSource:
    """See :func:`open_parquet`."""

    def __init__(self, path: Path):
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        self.path = path
        if path.is_dir():
            files = sorted(str(p) for p in path.rglob("*.parquet") if p.is_file() and not p.name.startswith("."))
            if not files:
                raise InputError(f"{path}: a directory without Parquet files")
            raw = pq.read_schema(files[0])
            first = decoded_schema(raw).remove_metadata()
            for file in files[1:]:
                other = decoded_schema(pq.read_schema(file)).remove_metadata()
                if not other.equals(first):
                    raise InputError(f"{path}: {Path(file).name} has other columns than {Path(files[0]).name} "
                                     f"({_difference(first, other)}); every file of a directory must have "
                                     "the same schema")
            self._dataset = ds.dataset(files, schema=raw, format=_parquet_format())
            self._file = None
            rows = self._dataset.count_rows()
        else:
            self._file = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
            self._dataset = None
            raw = self._file.schema_arrow
            rows = self._file.metadata.num_rows
        self.schema_arrow = decoded_schema(raw)
        self.metadata = types.SimpleNamespace(num_rows=rows)

    def read(self, columns=None) -> pa.Table:
        table = self._file.read(columns=columns) if self._file is not None else self._dataset.to_table(columns=columns)
        return decode(table)

    def iter_batches(self, batch_size=65536, columns=None):
        batches = (self._file.iter_batches(batch_size=batch_size, columns=columns) if self._file is not None
                   else self._dataset.to_batches(columns=columns, batch_size=batch_size))
        return (decode(batch) for batch in batches)


def _difference(a: pa.Schema, b: pa.Schema) -> str:
    parts = []
    for name in dict.fromkeys(a.names + b.names):
        ta = a.field(name).type if name in a.names else None
        tb = b.field(name).type if name in b.names else None
        if ta != tb:
            parts.append(f"'{name}': {ta or 'missing'} vs {tb or 'missing'}")
    return "; ".join(parts[:3]) or "column order"


def find_rows(source: ParquetSource, text: str | None = None, label: str | None = None, limit: int = 20,
              width: int = 60) -> tuple[list[dict], int]:
    """The first ``limit`` rows (``id``, ``label``, a one-line excerpt of their text) whose text
    fields contain ``text`` and whose ``label`` is ``label`` (None: any), and how many match in
    all: how a user finds the id to give ``kdsl explain``.

    >>> rows, total = find_rows(open_parquet("dev.parquet"), text="漏水")   # doctest: +SKIP
    >>> rows[0]                                                              # doctest: +SKIP
    {'id': 'a1', 'label': '反馈密封性不好', 'text': '洗衣机漏水了'}
    """
    import pyarrow.compute as pc

    names = source.schema_arrow.names
    if label is not None and "label" not in names:
        raise InputError(f"{source.path}: no 'label' column to find rows by label")
    fields = [f for f in TEXT_FIELDS if f in names]
    columns = ["id"] + fields + (["label"] if "label" in names else [])
    found, total = [], 0

    def flags(mask) -> np.ndarray:
        return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)

    for batch in source.iter_batches(columns=columns):
        keep = np.ones(batch.num_rows, bool)
        if text is not None:
            contains = np.zeros(batch.num_rows, bool)
            for name in fields:
                contains |= flags(pc.match_substring(batch.column(name), text))
            keep &= contains
        if label is not None:
            keep &= flags(pc.equal(batch.column("label"), label))
        matched = batch.filter(pa.array(keep))
        total += matched.num_rows
        for row in matched.slice(0, max(0, limit - len(found))).to_pylist():
            excerpt = " | ".join(row[f] for f in fields if row.get(f)).replace("\n", " ")
            found.append({"id": row["id"], "label": row.get("label"),
                          "text": excerpt[:width] + ("…" if len(excerpt) > width else "")})
    return found, total
