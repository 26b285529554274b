"""Precision and coverage of mined rules on held-out data (``python bench/mining.py``).

- tmm-sim intent rows: mine on train.json, measure on dev.json;
- JDDC: 10 utterances per intent from jddc/dev.jsonl to mine on, the rest of dev.jsonl to measure.

Precision = share of the rows a rule decides whose label is right; coverage = share of the rows
a rule decides. Peer: RIPPER (the ``wittgenstein`` package) is a later step.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa

from kdsl.engine import loads
from kdsl.mining.pipeline import MiningConfig, mine
from kdsl.mining.writer import render

DATA = Path(__file__).resolve().parents[1] / "../shared/data"


def evaluate(rows: list[dict], train: list[dict], task: str = "intent") -> dict:
    started = time.perf_counter()
    result = mine(train, task, MiningConfig())
    seconds = time.perf_counter() - started
    engine = loads(render(task, result.labels, result.rules))
    table = pa.table({c: pa.array([r.get(c) for r in rows], pa.string()) for c in ("task", "user", "agent", "ocr")})
    scored = engine.score(table).to_pylist()
    decided = [(s["intent"], r["label"]) for s, r in zip(scored, rows) if s["intent_rule"]]
    per_label = defaultdict(lambda: [0, 0])
    for r, s in zip(rows, scored):
        per_label[r["label"]][1] += 1
        per_label[r["label"]][0] += bool(s["intent_rule"])
    return {"rules": len(result.rules), "mining_s": round(seconds, 2),
            "precision": round(sum(p == t for p, t in decided) / len(decided), 3) if decided else None,
            "coverage": round(len(decided) / len(rows), 3),
            "labels_with_rules": sum(1 for v in per_label.values() if v[0]), "labels": len(per_label)}


def tmm_sim() -> dict:
    from click.testing import CliRunner
    from kdsl.cli import main
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        tables = {}
        for split in ("train", "dev"):
            out = f"{tmp}/{split}.parquet"
            CliRunner().invoke(main, ["import", "tianchi", str(DATA / "tmm-sim" / f"{split}.json"), "-o", out])
            tables[split] = [r for r in pq.read_table(out).to_pylist() if r["task"] == "intent"]
    return evaluate(tables["dev"], tables["train"])


def jddc(per_label: int = 10, seed: int = 0) -> dict:
    rows = [json.loads(line) for line in open(DATA / "jddc" / "dev.jsonl", encoding="utf-8")]
    rows = [{"id": r["id"], "task": "intent", "user": r["text"], "label": r["label"]} for r in rows]
    by_label = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r)
    rng = random.Random(seed)
    train_ids = {r["id"] for label in sorted(by_label) for r in rng.sample(by_label[label], per_label)}
    return evaluate([r for r in rows if r["id"] not in train_ids], [r for r in rows if r["id"] in train_ids])


if __name__ == "__main__":
    for name, run in (("tmm-sim intent (train -> dev)", tmm_sim), ("jddc (10 per intent -> rest of dev)", jddc)):
        print(name, json.dumps(run(), ensure_ascii=False))
        sys.stdout.flush()
