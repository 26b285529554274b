"""Peak memory of ``kdsl score`` against the input's size: it streams record batches, so the
peak resident set should depend on the batch size, not on the number of rows.

    python bench/memory.py                          # 1M and 5M rows, batch 8,192 and 65,536
    python bench/memory.py --rows 200000,1000000 --batch-sizes 8192

Each measurement is one ``kdsl score`` child process (``posix_spawn``); its peak RSS is the
kernel's ``ru_maxrss`` for that child (``os.wait4``). The peer in the same run is the same command with
pyarrow's default reading put back (``pq.ParquetFile(..., pre_buffer=True, buffer_size=0)``,
the dataset's default options), which is what kdsl did before: the ratio shows what kdsl's
settings buy (``kdsl.io.open_parquet``: no pre-buffering, a 1 MiB buffered stream). Data (``bench/data/memory-v2-{rows}.parquet``, shaped like bench/engine.py's log):
``id``, ``task``, ``user`` / ``agent`` / ``ocr`` (6 / 16 / 12 phrases of 2–5 random hanzi plus
the row number, ≈ 60 / 170 / 130 B; ``ocr`` 40 % null), ``model_label``; row groups of 1M rows,
pyarrow's default. The peak includes numba compiling the kernels in the child (≈ 0.5 GB,
independent of the data). Rules: ``kdsl/samples/rules``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
RULES = ROOT / "kdsl" / "samples" / "rules"
CHUNK = 500_000

# The child: the kdsl command line, with pyarrow's read-ahead forced back on for the peer.
CHILD = """
import sys
if sys.argv[1] == "pre_buffer":
    import pyarrow.dataset as ds, pyarrow.parquet as pq
    import kdsl.io as tables
    original = pq.ParquetFile.__init__
    def init(self, *args, **kwargs):
        kwargs["pre_buffer"], kwargs["buffer_size"] = True, 0
        original(self, *args, **kwargs)
    pq.ParquetFile.__init__ = init
    tables._parquet_format = lambda: ds.ParquetFileFormat()
from kdsl.cli import main
sys.argv = ["kdsl"] + sys.argv[2:]
main()
"""


def make_data(rows: int) -> Path:
    path = DATA / f"memory-v2-{rows}.parquet"
    if path.exists() and pq.read_metadata(path).num_rows == rows:
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    hanzi = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    phrases = np.array(["".join(rng.choice(hanzi, size=rng.integers(2, 6))) for _ in range(400)]
                       + ["漏水", "退款", "物流", "发货", "坏了", "尺码", "安装"], dtype=object)
    labels = np.array(["排水", "漏水", "退款", "物流"], dtype=object)
    tmp = path.with_suffix(".partial")
    schema = pa.schema([("id", pa.string()), ("task", pa.string()), ("user", pa.string()), ("agent", pa.string()),
                        ("ocr", pa.string()), ("model_label", pa.string())])
    with pq.ParquetWriter(tmp, schema) as writer:
        buffered = []
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            def text(words: int) -> list[str]:
                picked = phrases[rng.integers(0, len(phrases), size=(n, words))]
                return ["".join(w) + str(start + i) for i, w in enumerate(picked)]

            ocr = text(12)
            for i in np.flatnonzero(rng.random(n) < 0.4):
                ocr[i] = None
            buffered.append(pa.table({"id": [f"r{start + i}" for i in range(n)], "task": ["intent"] * n,
                                      "user": text(6), "agent": text(16), "ocr": ocr,
                                      "model_label": labels[rng.integers(0, 4, n)].tolist()}))
            if sum(t.num_rows for t in buffered) >= 1_000_000 or start + n >= rows:
                writer.write_table(pa.concat_tables(buffered), row_group_size=1_000_000)
                buffered = []
    os.replace(tmp, path)
    return path


def peak_rss(mode: str, data: Path, batch_size: int) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one ``kdsl score`` of ``data``. The child is started with
    ``posix_spawn`` (no fork): a forked child's ``ru_maxrss`` starts at the parent's size, and
    this parent may have just generated gigabytes of data."""
    out = DATA / f"memory-out-{os.getpid()}.parquet"
    log = DATA / f"memory-log-{os.getpid()}.txt"
    argv = [sys.executable, "-c", CHILD, mode, "score", str(data), "-r", str(RULES), "-o", str(out),
            "--batch-size", str(batch_size)]
    started = time.perf_counter()
    pid = os.posix_spawn(sys.executable, argv, {**os.environ, "PYTHONPATH": str(ROOT)}, file_actions=[
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)])
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    message = log.read_text(errors="replace")[-2000:]
    log.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    if code != 0:
        raise SystemExit(f"kdsl score failed ({code}): {message}")
    return usage.ru_maxrss / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000000,5000000")
    parser.add_argument("--batch-sizes", default="8192,65536")
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                        help="Also measure with pyarrow's default reading (what kdsl did before).")
    args = parser.parse_args()
    sizes = [int(r) for r in args.rows.split(",")]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    modes = ["streaming"] + (["pre_buffer"] if args.peer else [])
    files = {rows: make_data(rows) for rows in sizes}
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, pyarrow {pa.__version__}")
    print("| reader | batch | " + " | ".join(f"{r:,} rows: peak RSS MB (s)" for r in sizes)
          + f" | {sizes[-1]:,} / {sizes[0]:,} |")
    print("|---|---:|" + "---:|" * len(sizes) + "---:|")
    for mode in modes:
        for batch in batches:
            results = [peak_rss(mode, files[rows], batch) for rows in sizes]
            cells = " | ".join(f"{mb:.0f} ({s:.0f})" for mb, s in results)
            print(f"| {mode} | {batch:,} | {cells} | {results[-1][0] / results[0][0]:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
