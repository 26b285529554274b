"""The Spark recipe of docs/scale-out.md (``mapInArrow`` with ``kdsl.scaleout.ArrowScorer``) on local[2]:
the same rows and values as ``Engine.score``. Skipped where pyspark is not installed."""

import shutil
import sys
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import kdsl.engine
from kdsl.scaleout import ArrowScorer

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("pyspark needs Java (17 or later)", allow_module_level=True)
SAMPLES = Path(str(resources.files("kdsl") / "samples"))


def test_spark_recipe_equals_local(tmp_path, monkeypatch):
    from pyspark.sql import SparkSession

    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # workers need kdsl: this interpreter
    table = pq.read_table(SAMPLES / "sample.parquet", columns=["id", "task", "user", "agent", "ocr", "label"])
    pq.write_table(table, tmp_path / "log.parquet", row_group_size=25)
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "2").getOrCreate())
    try:
        # The recipe, as in docs/scale-out.md:
        df = spark.read.parquet(str(tmp_path / "log.parquet"))
        scorer = ArrowScorer(kdsl.engine.load(SAMPLES / "rules").ruleset)
        df.mapInArrow(scorer, scorer.spark_schema(df.schema)).write.parquet(str(tmp_path / "scored"))
        # Some columns only, output and input ones interleaved:
        some = ArrowScorer(scorer.rules, columns=["id", "intent", "label", "intent_rule"])
        df.mapInArrow(some, some.spark_schema(df.schema)).write.parquet(str(tmp_path / "some"))
    finally:
        spark.stop()
    want = kdsl.engine.load(SAMPLES / "rules").score(table).sort_by("id")
    got = pq.read_table(tmp_path / "scored").sort_by("id")
    assert got.column_names == want.column_names
    assert got.to_pylist() == want.to_pylist()
    assert pa.compute.sum(pa.compute.equal(got.column("intent_source"), "rule")).as_py() > 0
    assert pq.read_table(tmp_path / "some").sort_by("id").to_pylist() == want.select(some.columns).to_pylist()
