"""`kdsl score --ray` and `kdsl.scaleout` on a local two-CPU Ray: the same rows as the local path."""

import hashlib
import sys
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import kdsl.engine
from kdsl import scaleout
from kdsl.cli import main

SAMPLES = Path(str(resources.files("kdsl") / "samples"))
RULES = SAMPLES / "rules"


@pytest.fixture
def log(tmp_path):
    """The bundled sample twenty times over (2,000 rows, unique ids), in row groups of 100."""
    table = pq.read_table(SAMPLES / "sample.parquet")
    table = pa.concat_tables([table] * 20)
    table = table.set_column(0, "id", pa.array([f"r{i}" for i in range(table.num_rows)], table.schema.field("id").type))
    path = tmp_path / "log.parquet"
    pq.write_table(table, path, row_group_size=100)
    return path


@pytest.fixture
def small_blocks(monkeypatch):
    # Small blocks, so that the 2,000 rows go through Ray as many blocks and output files.
    monkeypatch.setattr(scaleout, "BLOCK_BYTES", 32 * 1024)


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def score(*args):
    return CliRunner().invoke(main, ["score", *map(str, args)])


def test_cli_ray_output_equals_local(local_ray, log, tmp_path, small_blocks):
    extra = ["--keep", "id,label,image_paths"]  # a list column among those kept
    before = digest(log)
    local = score(log, "-r", RULES, "-o", tmp_path / "local.parquet", *extra)
    assert local.exit_code == 0, local.output
    ray_out = tmp_path / "ray.parquet"
    ray_out.write_bytes(b"an old output, replaced")
    result = score(log, "-r", RULES, "-o", ray_out, "--batch-size", "300", *extra, "--ray")
    assert result.exit_code == 0, result.output
    assert "on Ray" in result.output
    got, want = pq.read_table(ray_out), pq.read_table(tmp_path / "local.parquet")
    assert got.schema == want.schema
    assert got.sort_by("id").equals(want.sort_by("id"))  # Ray may reorder rows
    assert got.column("intent_source").to_pylist().count("rule") > 0
    assert len(list(ray_out.glob("*.parquet"))) > 1  # it did go through Ray in several parts
    assert digest(log) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_worker_input_error_leaves_no_output(local_ray, tmp_path):
    # The second file already has the engine's output column: a worker finds it, not the driver.
    folder = tmp_path / "log"
    folder.mkdir()
    pq.write_table(pa.table({"user": ["漏水了"]}), folder / "a.parquet")
    pq.write_table(pa.table({"user": ["漏水了"], "intent": ["x"]}), folder / "b.parquet")
    engine = kdsl.engine.loads('rule r: intent = "漏" when user has "漏水"')
    out = tmp_path / "out.parquet"
    with pytest.raises(kdsl.engine.InputError, match="already has a column 'intent'"):
        scaleout.score_on_ray(folder, engine.ruleset, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log"]


def test_predict_on_ray_equals_local(local_ray, log, tmp_path):
    from kdsl.adapters.precomputed import PrecomputedAdapter

    table = pq.read_table(log)
    PrecomputedAdapter.train(table).save(tmp_path / "model")
    adapter = PrecomputedAdapter.load(tmp_path / "model")
    adapter.label_column = "label"  # as `kdsl predict --label-column label` sets it
    scaleout.predict_on_ray(log, tmp_path / "model", tmp_path / "pred", batch_size=500, workers=1,
                            overrides={"label_column": "label"})
    got = pq.read_table(tmp_path / "pred").sort_by("id")
    want = adapter.predict(table).sort_by("id")
    assert got.equals(want.select(got.column_names).cast(got.schema))
    assert got.column("model_label").to_pylist() == want.column("label").to_pylist()


def test_too_many_workers_is_an_error_not_a_hang(local_ray, log, tmp_path):
    result = score(log, "-r", RULES, "-o", tmp_path / "out", "--ray", "--ray-workers", "2")
    assert result.exit_code == 2
    assert "take all 2 CPUs" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("adapter, cluster_gpus, expected", [
    ("qwen2vl", 8, 1), ("qwen2vl", 0, 0), ("baseline", 1, 0), ("precomputed", 1, 0)])
def test_gpu_placement(adapter, cluster_gpus, expected):
    assert scaleout.gpus_per_worker(adapter, cluster_gpus) == expected


def test_missing_ray_says_how_to_install(log, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = score(log, "-r", RULES, "-o", tmp_path / "out", "--ray")
    assert result.exit_code == 2
    assert "pip install 'kdsl[ray]'" in result.output


def test_ray_swallowing_the_input_is_explained(log, tmp_path):
    result = CliRunner().invoke(main, ["score", "--ray", str(log), "-r", str(RULES), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "not a Ray address" in result.output


def test_ray_workers_needs_ray(log, tmp_path):
    result = score(log, "-r", RULES, "-o", tmp_path / "out.parquet", "--ray-workers", "2")
    assert result.exit_code == 2
    assert "only with --ray" in result.output
    assert not (tmp_path / "out.parquet").exists()


def test_cli_connects_to_a_running_cluster(local_ray, log, tmp_path):
    # A second driver, as on a cluster: `kdsl score --ray=ADDRESS` joins the fixture's Ray.
    import subprocess

    address = local_ray.get_runtime_context().gcs_address
    command = [sys.executable, "-c", "import sys; from kdsl.cli import main; sys.argv[0] = 'kdsl'; main()",
               "score", str(log), "-r", str(RULES), "-o", str(tmp_path / "out"), "--keep", "id", f"--ray={address}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    got = pq.read_table(tmp_path / "out").sort_by("id")
    want = kdsl.engine.load(RULES).score(pq.read_table(log, columns=["id", "task", "user", "agent", "ocr"]))
    assert got.equals(want.select(got.column_names).sort_by("id"))


def test_predict_cli_on_ray_equals_local_predict(local_ray, log, tmp_path):
    from kdsl.adapters.precomputed import PrecomputedAdapter

    PrecomputedAdapter.train(pq.read_table(log)).save(tmp_path / "model")
    runner = CliRunner()
    common = ["predict", str(log), "-m", str(tmp_path / "model"), "--label-column", "label"]
    local = runner.invoke(main, [*common, "-o", str(tmp_path / "local.parquet")])
    assert local.exit_code == 0, local.output
    on_ray = runner.invoke(main, [*common, "-o", str(tmp_path / "ray"), "--ray", "--ray-workers", "1"])
    assert on_ray.exit_code == 0, on_ray.output
    got = pq.read_table(tmp_path / "ray").sort_by("id")
    want = pq.read_table(tmp_path / "local.parquet").sort_by("id")
    assert got.equals(want.select(got.column_names).cast(got.schema))
    alone = runner.invoke(main, [*common, "-o", str(tmp_path / "x.parquet"), "--ray-workers", "1"])
    assert alone.exit_code == 2 and "only with --ray" in alone.output
