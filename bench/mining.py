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

``--model-aware`` runs instead the issue's measurement of model-aware mining (``kdsl mine
--predictions``): on JDDC dev.jsonl and test.jsonl with 10 and 30 training utterances per intent
(the rest measured) and on tmm-sim intent rows (train → dev), the CPU baseline is trained on the
training rows (text only) and its 5-fold out-of-fold predictions on them are made
(``kdsl.mining.predictions.out_of_fold``); both are cached as Parquet under
``bench/data/mining-cache`` (delete it to retrain). Then the weighted F1 on the measured rows of
the baseline alone, with the precision-only rules (``MiningConfig()``, the miner without
predictions) and with the model-aware rules (``MODEL_AWARE``, chosen by cross-validation on
training rows, see docs/mining.md), the rules' precision and coverage, rows fixed and broken and
mining time; RIPPER's precision/coverage on the same split with ``--ripper`` (slow).
``--cv`` prints the cross-validation on the training rows that chose ``MODEL_AWARE`` (the
measured rows are not read). ``--only NAME[,NAME]`` restricts to those data sets (e.g. ``jddc-dev-10``).
"""

from __future__ import annotations

import json
import os
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
from kdsl.mining.crossval import CV_GRID, MODEL_AWARE, cross_validate, final_labels, rule_effects
from kdsl.record import MODEL_LABEL, SCORES, TEXT_FIELDS

# The shared data folder beside the checkout; KDSL_BENCH_DATA overrides it (a git worktree).
DATA = Path(os.environ.get("KDSL_BENCH_DATA", Path(__file__).resolve().parents[1] / "../shared/data"))
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
    train, measured = jddc_split("dev", per_label, seed)
    return evaluate(measured, train, ("user",))


CACHE = Path(__file__).resolve().parent / "data" / "mining-cache"


def jddc_split(split: str, per_label: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(training rows, measured rows): ``per_label`` utterances per intent of jddc/SPLIT.jsonl
    drawn with ``seed``, and the rest."""
    rows = [json.loads(line) for line in (DATA / "jddc" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [{"id": r["id"], "task": "intent", "user": r["text"], "label": r["label"]} for r in rows]
    by_label = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r)
    rng = random.Random(seed)
    train_ids = {r["id"] for label in sorted(by_label) for r in rng.sample(by_label[label], per_label)}
    return [r for r in rows if r["id"] in train_ids], [r for r in rows if r["id"] not in train_ids]


def tmm_intent_split() -> tuple[list[dict], list[dict]]:
    with tempfile.TemporaryDirectory() as tmp:
        tables = _tmm_tables(tmp)
    columns = ("id", "task", "user", "agent", "label")
    return tuple([{c: r.get(c) for c in columns} for r in tables[s].to_pylist() if r["task"] == "intent"]
                 for s in ("train", "dev"))


def with_baseline(name: str, train: list[dict], measured: list[dict]) -> tuple[list[dict], list[dict], float]:
    """The rows with the CPU baseline's predictions: out-of-fold (5 folds) on ``train``, from the
    model trained on all of ``train`` on ``measured``; cached under ``CACHE``. Also the seconds
    the baseline took (0 when cached)."""
    import pyarrow.parquet as pq

    from kdsl.adapters import adapter_class
    from kdsl.record import record_table
    from kdsl.mining.predictions import join_predictions, out_of_fold, predictions_by_id

    CACHE.mkdir(parents=True, exist_ok=True)
    oof_path, measured_path = CACHE / f"{name}.oof.parquet", CACHE / f"{name}.measured.parquet"
    started = time.perf_counter()
    if not (oof_path.exists() and measured_path.exists()):
        table = record_table(train)
        pq.write_table(out_of_fold(table, "baseline", folds=5, fold_seed=0, seed=0), oof_path)
        model = adapter_class("baseline").train(table, seed=0)
        predicted = model.predict(record_table(measured)).select(["id", "model_label", "model_score"])
        pq.write_table(predicted, measured_path)
    seconds = time.perf_counter() - started
    return (join_predictions(train, predictions_by_id(pq.read_table(oof_path), str(oof_path))),
            join_predictions(measured, predictions_by_id(pq.read_table(measured_path), str(measured_path))), seconds)


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("model_label", "model_score")} for r in rows]


def effect(result, rows: list[dict], seconds: float) -> dict:
    """Weighted F1 of the baseline and of the baseline + ``result``'s rules on ``rows``, and what
    the rules did there."""
    from kdsl.metrics import weighted_f1

    gold = [r["label"] for r in rows]
    model = [r["model_label"] for r in rows]
    final = final_labels("intent", result.labels, result.rules, rows)
    effects = rule_effects("intent", result.labels, result.rules, rows).values()
    decided, right = sum(e.decided for e in effects), sum(e.right for e in effects)
    base, ruled = weighted_f1(gold, model), weighted_f1(gold, final)
    return {"baseline": base, "final": ruled, "gain": 100 * (ruled - base), "rules": len(result.rules),
            "precision": right / decided if decided else None, "coverage": decided / len(rows),
            "fixed": sum(e.fixed for e in effects), "broken": sum(e.broken for e in effects), "mining_s": seconds}


MODEL_AWARE_RUNS = {"jddc-dev-10": lambda: jddc_split("dev", 10), "jddc-dev-30": lambda: jddc_split("dev", 30),
                    "jddc-test-10": lambda: jddc_split("test", 10), "jddc-test-30": lambda: jddc_split("test", 30),
                    "tmm-sim-intent": tmm_intent_split}


def model_aware_runs() -> None:
    only = _option("--only")
    print(f"model-aware settings (chosen by CV on training rows, docs/mining.md): {_changed(MODEL_AWARE)}")
    print(f"{'data (train -> measured)':34} {'miner':12} {'F1 base':>7} {'F1 +rules':>9} {'gain pts':>8} "
          f"{'rules':>5} {'precision':>9} {'coverage':>8} {'fixed':>5} {'broken':>6} {'mining_s':>8}")
    for name, split in MODEL_AWARE_RUNS.items():
        if only and name not in only.split(","):
            continue
        train, measured = split()
        train, measured, baseline_s = with_baseline(name, train, measured)
        label = f"{name} ({len(train)} -> {len(measured)})"
        if "--cv" in sys.argv:
            for setting, config, aware in CV_GRID:
                started = time.perf_counter()
                score = cross_validate(train, "intent", config, folds=4, model_aware=aware)
                precision = "-" if score.precision is None else f"{score.precision:.3f}"
                print(f"CV on train of {name:16} {setting:44} gain {score.gain:+.2f} pts  coverage "
                      f"{score.coverage:.3f}  precision {precision}  rules {score.rules:.1f}  "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
            continue
        runs = [("precision", lambda: mine(_strip(train), "intent", MiningConfig())),
                ("model-aware", lambda: mine(train, "intent", MODEL_AWARE))]
        for miner, run in runs:
            started = time.perf_counter()
            result = run()
            m = effect(result, measured, time.perf_counter() - started)
            precision = "-" if m["precision"] is None else f"{m['precision']:.3f}"
            print(f"{label:34} {miner:12} {m['baseline']:7.4f} {m['final']:9.4f} {m['gain']:+8.2f} {m['rules']:5} "
                  f"{precision:>9} {m['coverage']:8.3f} {m['fixed']:5} {m['broken']:6} {m['mining_s']:8.1f}", flush=True)
        if "--ripper" in sys.argv and (not _option("--ripper-on") or name in _option("--ripper-on").split(",")):
            r = ripper(measured, train, ("user",) if name.startswith("jddc") else ("user", "agent"))
            print(f"{label:34} {'RIPPER':12} {'':7} {'':9} {'':8} {r['rules']:5} {r['precision']!s:>9} "
                  f"{r['coverage']:8.3f} {'':5} {'':6} {r['mining_s']:8.1f}", flush=True)


def _changed(config: MiningConfig) -> str:
    """The fields of ``config`` that differ from the defaults."""
    default = MiningConfig()
    return ", ".join(f"{k}={getattr(config, k)}" for k in config.__dataclass_fields__
                     if getattr(config, k) != getattr(default, k)) or "defaults"


if __name__ == "__main__" and "--model-aware" in sys.argv:
    model_aware_runs()
    sys.exit(0)


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
