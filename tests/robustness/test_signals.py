"""A `kdsl score` stopped mid-write by SIGTERM (what `timeout`, `docker stop` and Kubernetes send)
leaves nothing beside its output, like Ctrl-C; one killed outright (SIGKILL) leaves a
recognisable temporary that the next run on the same output removes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
ROWS = 400_000


@pytest.fixture(scope="module")
def big_input(tmp_path_factory):
    folder = tmp_path_factory.mktemp("signals")
    texts = ["洗衣机漏水了怎么办", "物流到哪里了", "你好", "退款什么时候到账"]
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(ROWS)],
                             "user": [texts[i % 4] for i in range(ROWS)]}), folder / "in.parquet")
    (folder / "r.kdsl").write_text('rule leak: intent = "漏水" when user has "漏水"\n', encoding="utf-8")
    return folder


def _start_scoring(folder: Path, output: Path, batch_size: int = 64) -> subprocess.Popen:
    """Small batches: the run is slow enough to be caught mid-write."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", "from kdsl.cli import main; main()", "score", str(folder / "in.parquet"),
         "-r", str(folder / "r.kdsl"), "-o", str(output), "--batch-size", str(batch_size)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".partial")]


def _wait_for_partial(process: subprocess.Popen, folder: Path, timeout: float = 120) -> None:
    """Until the output's temporary exists and has data in it: the run is mid-write."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.stat().st_size > 0 for p in _partials(folder) if p.exists()):
            return
        if process.poll() is not None:
            pytest.fail(f"kdsl score ended before it could be interrupted: {process.stderr.read().decode()}")
        time.sleep(0.02)
    process.kill()
    pytest.fail("kdsl score never started writing")


def test_sigterm_mid_write_removes_the_partial_output(big_input, tmp_path):
    output = tmp_path / "out.parquet"
    process = _start_scoring(big_input, output)
    _wait_for_partial(process, tmp_path)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0 and process.returncode != -signal.SIGTERM, stderr.decode()
    assert list(tmp_path.iterdir()) == [], "SIGTERM left files behind"


def test_leftovers_of_a_sigkilled_run_are_removed_by_the_next_run(big_input, tmp_path):
    output = tmp_path / "out.parquet"
    process = _start_scoring(big_input, output)
    _wait_for_partial(process, tmp_path)
    process.kill()
    process.wait(timeout=60)
    (left,) = _partials(tmp_path)
    assert left.name.startswith(".out.parquet.") and f"-{process.pid}." in left.name
    rerun = _start_scoring(big_input, output, batch_size=65536)
    _, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr.decode()
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]
    assert pq.read_metadata(output).num_rows == ROWS
