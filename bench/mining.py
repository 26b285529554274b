"""Precision and coverage of mined rules on held-out data (``python bench/mining.py``).

- tmm-sim intent rows: mine on train.json, measure on dev.json;
- JDDC: 10 utterances per intent from jddc/dev.jsonl to mine on, the rest of dev.jsonl to measure;
- tmm-sim scene rows, with ``--scene-train TRAIN.ocr.parquet --scene-dev DEV.ocr.parquet`` (tables
  that ``kdsl ocr`` filled; their scene rows are used, so a table may hold a subset of them): mine on
  the first, measure on the second, from the ``ocr`` column alone.

Precision = share of the rows a rule decides whose label is right; coverage = share of the rows
a rule decides. Peer: RIPPER (the ``wittgenstein`` package), one-vs-rest per label over binary
presence features of character 2-4-grams of ``user`` (and ``agent`` for tmm-sim), restricted to the
top ``RIPPER_TOP`` n-grams per label by support in that label's training rows. A row is decided by
RIPPER when exactly one label's ruleset fires (rows where several or none fire are undecided).

Then the coverage of tmm-sim dev's labels, and the issue's final number: weighted F1 (DIS, ISS,
OSS) on tmm-sim dev of the CPU baseline adapter trained on train, alone and with the mined rules
overriding it (and, with ``--scene-dev``, the scene rules overriding it on the dev scene rows that
table holds). ``--no-ripper`` skips the peer (about 1.5 minutes), ``--no-model`` the F1.
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
import wittgenstein as lw

from kdsl.engine import loads
from kdsl.mining.miner import MiningConfig, mine
from kdsl.mining.writer import render
from kdsl.record import MODEL_LABEL, SCORES, TEXT_FIELDS

DATA = Path(__file__).resolve().parents[1] / "../shared/data"
RIPPER_TOP = 150  # n-grams per label, by support among that label's training rows


def _grams(row: dict, fields: tuple[str, ...]) -> set[str]:
    out = set()
    for f in fields:
        text = row.get(f) or ""
        for n in (2, 3, 4):
            out.update(f"{f}:{text[i:i + n]}" for i in range(len(text) - n + 1))
    return out


def ripper(rows: list[dict], train: list[dict], fields: tuple[str, ...]) -> dict:
    """One-vs-rest RIPPER per label; a row is decided when exactly one label's ruleset fires."""
    import pandas as pd

    started = time.perf_counter()
    train_grams = [_grams(r, fields) for r in train]
    labels = sorted({r["label"] for r in train})
    models, n_rules = {}, 0
    for label in labels:
        support = defaultdict(int)
        for r, g in zip(train, train_grams):
            if r["label"] == label:
                for x in g:
                    support[x] += 1
        feats = sorted(support, key=lambda x: (-support[x], x))[:RIPPER_TOP]
        df = pd.DataFrame([[x in g for x in feats] for g in train_grams], columns=feats).astype(int).astype(str)
        df["y"] = [int(r["label"] == label) for r in train]
        clf = lw.RIPPER(random_state=0)
        clf.fit(df, class_feat="y", pos_class=1)
        models[label] = (clf, feats)
        n_rules += len(clf.ruleset_.rules)
    seconds = time.perf_counter() - started
    test_grams = [_grams(r, fields) for r in rows]
    fired = defaultdict(list)
    for label, (clf, feats) in models.items():
        if not clf.ruleset_.rules:
            continue
        X = pd.DataFrame([[x in g for x in feats] for g in test_grams], columns=feats).astype(int).astype(str)
        for i, hit in enumerate(clf.predict(X)):
            if hit:
                fired[i].append(label)
    decided = [(fired[i][0], r["label"]) for i, r in enumerate(rows) if len(fired[i]) == 1]
    return {"rules": n_rules, "mining_s": round(seconds, 2),
            "precision": round(sum(p == t for p, t in decided) / len(decided), 3) if decided else None,
            "coverage": round(len(decided) / len(rows), 3),
            "labels_with_rules": sum(1 for c, _ in models.values() if c.ruleset_.rules), "labels": len(labels)}


RUN_RIPPER = "--no-ripper" not in sys.argv


def evaluate(rows: list[dict], train: list[dict], fields: tuple[str, ...], task: str = "intent") -> dict:
    found = {"kdsl": kdsl(rows, train, task)}
    if RUN_RIPPER:
        found["ripper"] = ripper(rows, train, fields)
    return found


def kdsl(rows: list[dict], train: list[dict], task: str = "intent") -> dict:
    result, seconds = _mined(train, task)
    return _measure(rows, task, result, seconds)


_MINED: dict = {}


def _mined(train: list[dict], task: str):
    key = (task, tuple(r["id"] for r in train))
    if key not in _MINED:
        started = time.perf_counter()
        result = mine(train, task, MiningConfig())
        _MINED[key] = (result, time.perf_counter() - started)
    return _MINED[key]


def _measure(rows: list[dict], task: str, result, seconds: float) -> dict:
    engine = loads(render(task, result.labels, result.rules))
    table = pa.table({c: pa.array([r.get(c) for r in rows], pa.string()) for c in ("task", *TEXT_FIELDS)})
    scored = engine.score(table).to_pylist()
    decided = [(s[task], r["label"]) for s, r in zip(scored, rows) if s[f"{task}_rule"]]
    per_label = defaultdict(lambda: [0, 0])
    for r, s in zip(rows, scored):
        per_label[r["label"]][1] += 1
        per_label[r["label"]][0] += bool(s[f"{task}_rule"])
    return {"rules": len(result.rules), "mining_s": round(seconds, 2),
            "precision": round(sum(p == t for p, t in decided) / len(decided), 3) if decided else None,
            "coverage": round(len(decided) / len(rows), 3),
            "labels_with_rules": sum(1 for v in per_label.values() if v[0]), "labels": len(per_label),
            "per_label": dict(per_label)}


def _tmm_tables(tmp: str) -> dict:
    """Every row (both tasks) of tmm-sim train and dev, imported with ``kdsl import tianchi``."""
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from kdsl.cli import main

    tables = {}
    for split in ("train", "dev"):
        out = f"{tmp}/{split}.parquet"
        CliRunner().invoke(main, ["import", "tianchi", str(DATA / "tmm-sim" / f"{split}.json"), "-o", out])
        tables[split] = pq.read_table(out)
    return tables


def _option(name: str) -> str | None:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else None


def _scene_rows(path: str) -> list[dict]:
    import pyarrow.parquet as pq

    return [r for r in pq.read_table(path, columns=["id", "task", "ocr", "label"]).to_pylist()
            if r["task"] == "scene" and r["label"] is not None]


def scene(train_path: str, dev_path: str) -> dict:
    return evaluate(_scene_rows(dev_path), _scene_rows(train_path), ("ocr",), "scene")


def with_model(epochs: int | None = None) -> dict:
    """Weighted F1 (DIS / ISS / OSS) on tmm-sim dev of the CPU baseline trained on train alone,
    and of the baseline with the rules mined on train's intent rows overriding it. With
    ``--scene-train`` / ``--scene-dev``, rules mined on the OCR'd train scene rows override it on
    the dev scene rows that have OCR text; else only DIS can change."""
    from kdsl.adapters import adapter_class
    from kdsl.metrics import task_scores

    with tempfile.TemporaryDirectory() as tmp:
        tables = _tmm_tables(tmp)
    images = DATA / "tmm-sim" / "images"
    options = {"seed": 0, "images": str(images)} | ({"epochs": epochs} if epochs else {})
    started = time.perf_counter()
    adapter = adapter_class("baseline").train(tables["train"], **options)
    predicted = adapter.predict(tables["dev"], images=str(images))
    train_rows = [r for r in tables["train"].to_pylist() if r["task"] == "intent"]
    result, _ = _mined(train_rows, "intent")
    engine = loads(render("intent", result.labels, result.rules))
    columns = [c for c in ("task", *TEXT_FIELDS, MODEL_LABEL) if c in predicted.column_names]
    scored = engine.score(predicted.select(columns)).column("intent").to_pylist()
    gold, tasks = predicted.column("label").to_pylist(), predicted.column("task").to_pylist()
    model = predicted.column("model_label").to_pylist()
    combined = [s if t == "intent" else m for s, m, t in zip(scored, model, tasks)]
    if _option("--scene-train") and _option("--scene-dev"):
        result, _ = _mined(_scene_rows(_option("--scene-train")), "scene")
        ocr = {r["id"]: r["ocr"] for r in _scene_rows(_option("--scene-dev"))}
        ids = predicted.column("id").to_pylist()
        table = pa.table({"task": pa.array(tasks, pa.string()), "ocr": pa.array([ocr.get(i) for i in ids], pa.string())})
        rules = loads(render("scene", result.labels, result.rules)).score(table).to_pylist()
        combined = [s["scene"] if t == "scene" and s["scene_rule"] else c for s, c, t in zip(rules, combined, tasks)]
    return {"baseline": task_scores(gold, model, tasks), "baseline + rules": task_scores(gold, combined, tasks),
            "seconds": round(time.perf_counter() - started, 1)}


def tmm_sim() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tables = {split: [r for r in t.to_pylist() if r["task"] == "intent"] for split, t in _tmm_tables(tmp).items()}
    return evaluate(tables["dev"], tables["train"], ("user", "agent"))


def jddc(per_label: int = 10, seed: int = 0) -> dict:
    rows = [json.loads(line) for line in (DATA / "jddc" / "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [{"id": r["id"], "task": "intent", "user": r["text"], "label": r["label"]} for r in rows]
    by_label = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r)
    rng = random.Random(seed)
    train_ids = {r["id"] for label in sorted(by_label) for r in rng.sample(by_label[label], per_label)}
    return evaluate([r for r in rows if r["id"] not in train_ids], [r for r in rows if r["id"] in train_ids], ("user",))


if __name__ == "__main__":
    print(f"wittgenstein {lw.__version__} (RIPPER, top {RIPPER_TOP} char 2-4-grams per label, one-vs-rest)")
    print(f"{'dataset':38} {'miner':7} {'precision':>9} {'coverage':>8} {'rules':>5} {'labels w/ rules':>15} {'mining_s':>8}")
    runs = [("tmm-sim intent (train -> dev)", tmm_sim), ("jddc (10 per intent -> rest of dev)", jddc)]
    if _option("--scene-train") and _option("--scene-dev"):
        runs.append(("tmm-sim scene, OCR (train -> dev)", lambda: scene(_option("--scene-train"), _option("--scene-dev"))))
    tmm_per_label = {}
    for name, run in runs:
        for miner, m in run().items():
            print(f"{name:38} {miner:7} {m['precision']!s:>9} {m['coverage']:>8} {m['rules']:>5} "
                  f"{str(m['labels_with_rules']) + '/' + str(m['labels']):>15} {m['mining_s']:>8}")
            sys.stdout.flush()
            if miner == "kdsl" and name.startswith("tmm"):
                tmm_per_label[name] = m["per_label"]
    for name, per_label in tmm_per_label.items():
        print(f"\n{name}, per label: dev rows decided by a mined rule / rows")
        cells = [f"{label} {hit}/{n}" for label, (hit, n) in sorted(per_label.items(), key=lambda x: (-x[1][0] / x[1][1], x[0]))]
        for i in range(0, len(cells), 4):
            print("  " + "  ".join(f"{c:24}" for c in cells[i:i + 4]))
    if "--no-model" not in sys.argv:
        f1 = with_model()
        print(f"\ntmm-sim dev weighted F1, CPU baseline trained on train ({f1['seconds']}s), rules mined on train:")
        print(f"{'':18} {'DIS':>6} {'ISS':>6} {'OSS':>6}")
        for name in ("baseline", "baseline + rules"):
            print(f"{name:18} " + " ".join(f"{f1[name][k]:6.4f}" for k in SCORES))
