"""Rebuild kdsl/samples/sample.parquet: a few dozen rows of each task from tmm-sim dev.

    python tools/make_sample.py ../shared/data/tmm-sim
"""

import json
import random
import sys
from pathlib import Path

import pyarrow.parquet as pq

from kdsl.data.schema import record_table
from kdsl.data.tianchi import to_record

root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/tmm-sim")
rows = [to_record(s) for s in json.loads((root / "dev.json").read_text(encoding="utf-8"))]
rng = random.Random(7)
sample = rng.sample([r for r in rows if r["task"] == "intent"], 60)
sample += rng.sample([r for r in rows if r["task"] == "scene"], 30)
for row in sample:
    del row["instruction"]  # the prompt is the same for every row; keep the sample small
out = Path(__file__).resolve().parents[1] / "kdsl" / "samples" / "sample.parquet"
pq.write_table(record_table(sample), out)
print(f"{len(sample)} rows -> {out}")
