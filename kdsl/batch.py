"""Whole Parquet files through the rule engine or a model: streamed in record batches (bounded
memory), written atomically (a failed run leaves no output), locally or on Ray.

``kdsl score``, ``kdsl predict``, the pipeline's score and predict steps and ``kdsl.scaleout``
all go through here, so that which columns are read, what the output holds and how it is
written are decided in one place.

    >>> import kdsl.engine
    >>> engine = kdsl.engine.load("rules/")                                     # doctest: +SKIP
    >>> score_parquet(engine, "log.parquet", "scored.parquet", keep=["id"])     # doctest: +SKIP
    120000
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from kdsl.errors import InputError, context
from kdsl.io import atomic_path, open_parquet, prefetch

SCORE_BATCH_ROWS = 65536
PREDICT_BATCH_ROWS = 4096


@dataclass(frozen=True)
class ScoringPlan:
    """What scoring a file with ``engine`` reads and writes: ``read``, the input columns (those
    kept and those the rules use, in input order); ``schema``, the output's (kept columns, then
    the engine's)."""

    read: list[str]
    schema: pa.Schema


def scoring_plan(engine, schema: pa.Schema, keep: list[str] | None = None) -> ScoringPlan:
    """The plan for an input of ``schema``, keeping the columns ``keep`` (None: all of them);
    InputError for a column to keep that is not there, or an input that does not fit the rules."""
    names = schema.names
    kept = names if keep is None else list(keep)
    unknown = [c for c in kept if c not in names]
    if unknown:
        raise InputError(f"no column {', '.join(map(repr, unknown))} to keep")
    out_schema = engine.output_schema(schema)
    engine.check_input(schema)
    return ScoringPlan([c for c in names if c in kept or c in engine.fields],
                       pa.schema([out_schema.field(n) for n in kept + engine.output_columns]))


def refuse_overwrite(input_path, output) -> None:
    """InputError when writing ``output`` would replace ``input_path``."""
    if Path(output).resolve() == Path(input_path).resolve():
        raise InputError("the output would overwrite the input; choose another output")


def score_parquet(engine, input_path, output, *, keep: list[str] | None = None, threads: int = 1,
                  batch_size: int = SCORE_BATCH_ROWS, ray: str | None = None, workers: int | None = None,
                  progress: Callable[[int], None] = lambda rows: None) -> int:
    """Score the Parquet file (or directory) ``input_path`` with ``engine`` into ``output``; the
    number of rows. ``keep``: the input columns to copy (None: all). ``ray``: the address of a
    Ray cluster ("" for a local one) to score on with ``workers`` actors (None: as many as the
    cluster fits); the output is then a
    directory of Parquet files (``kdsl.scaleout``). ``progress(rows)`` after every batch.
    Errors about the input name it."""
    import pyarrow.parquet as pq

    refuse_overwrite(input_path, output)
    source = open_parquet(input_path)
    with context(input_path):
        plan = scoring_plan(engine, source.schema_arrow, keep)
        if ray is not None:
            from kdsl.scaleout import score_on_ray

            score_on_ray(input_path, engine.ruleset, output, columns=plan.read, select=plan.schema.names,
                         batch_size=batch_size, threads=threads, workers=workers, address=ray)
            return source.metadata.num_rows
        # Reading, scoring and writing overlap: the next batch is decoded and the previous one
        # encoded while the kernel scores the current one (all three release the GIL).
        batches = prefetch(source.iter_batches(batch_size=batch_size, columns=plan.read))
        rows = 0
        try:
            with atomic_path(output) as tmp, pq.ParquetWriter(tmp, plan.schema) as writer, \
                    ThreadPoolExecutor(1, thread_name_prefix="kdsl-write") as write:
                pending = None
                try:
                    for batch in batches:
                        scored = engine.score(batch, threads=threads).select(plan.schema.names)
                        if pending is not None:
                            pending.result()
                        pending = write.submit(writer.write_batch, scored)
                        rows += batch.num_rows
                        progress(batch.num_rows)
                finally:
                    if pending is not None:  # the file is closed only after its last write
                        pending.result()
        finally:
            batches.close()
    return rows


def predict_parquet(adapter, input_path, output, *, images=None, batch_size: int = PREDICT_BATCH_ROWS) -> int:
    """Add ``adapter``'s prediction columns to every row of ``input_path`` (a Parquet file or
    directory), streaming batches into ``output`` atomically; the number of rows. ``images``:
    the data root of ``image_paths``. Errors about the input name it."""
    import pyarrow.parquet as pq

    refuse_overwrite(input_path, output)
    # A model that learnt the intent task reads the dialogue: without a 'user' column every
    # prediction would be made from nothing, silently.
    reads_dialogue = adapter.learns and "intent" in adapter.labels
    source = open_parquet(input_path, require=("user",) if reads_dialogue else ())
    schema = adapter.output_schema(source.schema_arrow)
    rows = 0
    with context(input_path), atomic_path(output) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for batch in source.iter_batches(batch_size=batch_size):
            predicted = adapter.predict(pa.Table.from_batches([batch]), images=images)
            writer.write_table(predicted.select(schema.names).cast(schema))
            rows += batch.num_rows
    return rows


def find_rows(source, text: str | None = None, label: str | None = None, limit: int = 20,
              width: int = 60) -> tuple[list[dict], int]:
    """The first ``limit`` rows (``id``, ``label``, a one-line excerpt of their text) whose text
    fields contain ``text`` and whose ``label`` is ``label`` (None: any), and how many match in
    all: how a user finds the id to give ``kdsl explain``.

    >>> rows, total = find_rows(open_parquet("dev.parquet"), text="漏水")   # doctest: +SKIP
    >>> rows[0]                                                              # doctest: +SKIP
    {'id': 'a1', 'label': '反馈密封性不好', 'text': '洗衣机漏水了'}
    """
    import numpy as np
    import pyarrow.compute as pc

    from kdsl.record import TEXT_FIELDS

    names = source.schema_arrow.names
    if label is not None and "label" not in names:
        raise InputError("no 'label' column to find rows by label")
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
