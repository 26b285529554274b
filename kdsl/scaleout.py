"""Scale-out: the engine (or a model adapter) over a Parquet log on a Ray cluster, or in Spark.

    kdsl score log.parquet -r rules/ -o scored.parquet --ray                 # a local Ray
    kdsl score log.parquet -r rules/ -o scored.parquet --ray=head:6379       # a cluster

Ray reads the input (``ray.data.read_parquet``), scores record batches in actors that each
compile the rules once (``map_batches`` with ``batch_format="pyarrow"``) and writes the parts
with ``write_parquet``: the output is a *directory* of Parquet files, readable as one table
(``pyarrow.parquet.read_table(OUT)``), with the local path's rows and columns, not necessarily
in input order. It is written to a temporary directory beside the target and renamed into
place, so a failed run leaves no output.

Spark gets the same engine through ``mapInArrow``::

    scorer = ArrowScorer(kdsl.engine.load("rules/").ruleset)
    df.mapInArrow(scorer, scorer.spark_schema(df.schema))
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from pathlib import Path

import pyarrow as pa

from kdsl.dsl.checker import RuleSet
from kdsl.errors import DependencyError

BLOCK_BYTES = 32 * 1024 * 1024


class ScaleOutError(DependencyError):
    """Ray missing, a cluster that cannot be reached, a worker that failed for no input reason."""


# -------------------------------------------------------------------------------------- engine
_ENGINES: dict[str, object] = {}  # token -> Engine, one per process (a Spark Python worker)


class ArrowScorer:
    """``engine.score`` over an iterator of record batches, for Spark's ``mapInArrow``.

    Pickles as the rule set only; the engine is compiled on first use in each process and
    kept there, so a reused Spark Python worker compiles it once, not once per task.
    """

    def __init__(self, rules: RuleSet, columns: list[str] | None = None, threads: int = 1):
        self.rules, self.columns, self.threads = rules, columns, threads
        self.token = uuid.uuid4().hex

    @property
    def engine(self):
        from kdsl.engine import Engine

        engine = _ENGINES.get(self.token)
        if engine is None:
            engine = _ENGINES[self.token] = Engine(self.rules)
        return engine

    def __call__(self, batches):
        for batch in batches:
            yield self.score(batch)

    def score(self, batch):
        """One batch (or table) scored, with only ``columns`` when they were given."""
        scored = self.engine.score(batch, threads=self.threads)
        return scored if self.columns is None else scored.select(self.columns)

    def spark_schema(self, schema):
        """The Spark schema of the output for an input DataFrame schema (``df.schema``)."""
        from pyspark.sql.types import StringType, StructField, StructType

        names = schema.names + self.engine.output_columns if self.columns is None else self.columns
        return StructType([schema[c] if c in schema.names else StructField(c, StringType()) for c in names])


class _ScoreBatches:
    """A Ray actor's work: the engine compiled once, then every batch it is given."""

    def __init__(self, rules: RuleSet, columns: list[str] | None, threads: int):
        self.scorer = ArrowScorer(rules, columns, threads)
        self.scorer.engine  # noqa: B018  (compiled at actor start, not in the first batch)

    def __call__(self, table: pa.Table) -> pa.Table:
        return self.scorer.score(table)


class _PredictBatches:
    """A Ray actor's work: the model loaded once, as `kdsl predict` loads it."""

    def __init__(self, model_dir: str, runtime: str, images: str | None, overrides: dict):
        import kdsl.adapters

        self.adapter = kdsl.adapters.load(model_dir, runtime, overrides)  # overrides: a precomputed model's columns
        self.images = images

    def __call__(self, table: pa.Table) -> pa.Table:
        schema = self.adapter.output_schema(table.schema)
        return self.adapter.predict(table, images=self.images).select(schema.names).cast(schema)


# ----------------------------------------------------------------------------------------- ray
def score_on_ray(input_path, rules: RuleSet, output, *, columns: list[str] | None = None,
                 select: list[str] | None = None, batch_size: int = 65536, threads: int = 1,
                 workers: int | None = None, address: str | None = None) -> None:
    """Score ``input_path`` into the Parquet directory ``output`` on Ray.

    ``columns``: the input columns to read (default all); ``select``: the output columns, in
    order (default: those read, then the engine's). ``workers``: actors (default: Ray scales
    from 1 up to what the cluster has); each asks for ``threads`` CPUs. ``address``: the
    cluster (``None``: ``ray.init()``'s own choice: ``RAY_ADDRESS``, a cluster started on
    this machine, else a new local one).
    """
    def plan(ray, dataset):
        return dataset.map_batches(
            _ScoreBatches, fn_constructor_args=(rules, select, threads), batch_size=batch_size,
            batch_format="pyarrow", num_cpus=threads, compute=_pool(ray, workers, threads))

    _run(plan, input_path, output, columns, address)


def predict_on_ray(input_path, model_dir, output, *, images=None, batch_size: int = 4096,
                   runtime: str = "torch", overrides: dict | None = None, workers: int | None = None,
                   gpus: float | None = None, address: str | None = None) -> None:
    """``kdsl predict`` on Ray: each actor loads the model once. ``overrides``: adapter
    attributes to set (a precomputed model's ``label_column``...). ``gpus``: GPUs per actor;
    ``None`` gives 1 to an adapter that wants one (``Adapter.wants_gpu``) when the cluster has
    GPUs, else 0. ``model_dir`` and ``images`` must be reachable at the same path on every
    node."""
    from kdsl.adapters.storage import read_config

    adapter = read_config(model_dir)["adapter"]  # a bad model directory fails here, not in a worker
    model_dir = str(Path(model_dir).resolve())
    images = None if images is None else str(Path(images).resolve())

    def plan(ray, dataset):
        cluster_gpus = ray.cluster_resources().get("GPU", 0)
        wanted = gpus_per_worker(adapter, cluster_gpus) if gpus is None else gpus
        if gpus is None and _wants_gpu(adapter) and not cluster_gpus:
            print(f"note: the Ray cluster has no GPU; {adapter} runs on CPUs", file=sys.stderr)
        return dataset.map_batches(
            _PredictBatches, fn_constructor_args=(model_dir, runtime, images, overrides or {}),
            batch_size=batch_size, batch_format="pyarrow", num_cpus=1, num_gpus=wanted,
            compute=_pool(ray, workers, 1))

    _run(plan, input_path, output, None, address)


def gpus_per_worker(adapter: str, cluster_gpus: float) -> int:
    """One GPU per actor for an adapter that wants one (with torch, or onnxruntime-gpu), when
    the cluster has any."""
    return int(_wants_gpu(adapter) and cluster_gpus > 0)


def _wants_gpu(adapter: str) -> bool:
    from kdsl.adapters import adapter_class

    return adapter_class(adapter).wants_gpu


def _pool(ray, workers, cpus_each):
    """A fixed pool of ``workers`` actors; ``None``: Ray's autoscaling pool, from one actor."""
    if workers is None:
        return None
    cpus = ray.cluster_resources().get("CPU", 0)
    if workers * cpus_each >= cpus:
        # Ray would wait forever for a CPU to read or write with: fail now instead.
        raise ScaleOutError(f"{workers} workers of {cpus_each} CPU each take all {cpus:g} CPUs of the Ray "
                            f"cluster, leaving none to read and write Parquet; ask for fewer workers")
    return ray.data.ActorPoolStrategy(size=workers)


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise ScaleOutError("scaling out needs Ray: pip install 'kdsl[ray]'") from None
    return ray


def _run(plan, input_path, output, columns, address) -> None:
    from kdsl.io import atomic_directory

    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address or None, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise ScaleOutError(f"cannot start or reach Ray at {address or 'the default address'}: {error}") \
                from None
    # Progress: Ray's bars on a terminal; elsewhere its progress log lines, which are INFO.
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    saved = context.target_max_block_size
    # Row order is not kept: Ray's preserve_order still lets write_parquet swap pieces of
    # blocks between files (Ray 2.60), and costs throughput.
    # A block goes to one actor whole, and one Parquet file is read as one stream: blocks
    # smaller than Ray's default (128 MiB) spread one file over several workers.
    context.target_max_block_size = BLOCK_BYTES
    try:
        # Workers resolve relative paths against their own directory: hand them absolute ones.
        dataset = ray.data.read_parquet(str(Path(input_path).resolve()))
        if columns is not None:
            dataset = dataset.select_columns(columns)
        with atomic_directory(Path(output).resolve()) as tmp:
            plan(ray, dataset).write_parquet(str(tmp))
    except ray.exceptions.RayError as error:
        raise _input_cause(error) or error
    finally:
        context.target_max_block_size = saved
        if started:
            ray.shutdown()


def _input_cause(error: BaseException):
    """The engine's or adapter's own error inside Ray's wrapper, so that bad input reads the
    same as on the local path. Ray hands back only the worker's traceback, as text."""
    from kdsl.adapters.base import AdapterError
    from kdsl.engine import InputError

    kinds = {f"{kind.__module__}.{kind.__qualname__}": kind for kind in (InputError, AdapterError)}
    found = re.findall(rf"^({'|'.join(map(re.escape, kinds))}): (.*)$", str(error), re.MULTILINE)
    if not found:
        return None
    name, message = found[-1]
    return kinds[name](message)
