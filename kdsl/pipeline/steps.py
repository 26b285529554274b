"""The work of each pipeline step, file in, file out (``kdsl.pipeline.runner.run`` decides which
run): import, OCR, mine, select rules (cross-validated on the training rows), train, predict,
score, evaluate, the seesaw check and the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from kdsl.errors import context
from kdsl.io import read_parquet, write_table_atomically, write_text_atomically
from kdsl.mining.miner import labelled_rows
from kdsl.pipeline.config import PipelineError
from kdsl.record import LABEL, MODEL_LABEL, SCORE_OF_TASK, TASK, TEXT_FIELDS


def import_data(data: dict, tables: dict[str, Path]) -> None:
    from kdsl.data.importing import import_samples, read_samples
    from kdsl.record import record_table

    for split, target in tables.items():
        if data[f"{split}_table"] is not None:
            table = read_parquet(Path(data[f"{split}_table"]))
            for column in ("task", "label"):
                if column not in table.column_names:
                    raise PipelineError(f"{data[f'{split}_table']}: no {column!r} column")
        else:
            result = import_samples(read_samples(data[split]))
            if result.rejects:
                raise PipelineError(f"{data[split]}: {len(result.rejects)} sample(s) cannot be imported; "
                                    f"first: {result.rejects[0].message()}")
            if not result.rows:
                raise PipelineError(f"{data[split]}: no samples")
            table = record_table(result.rows)
        write_table_atomically(table, target)


def ocr(tables: dict[str, Path], ocr_tables: dict[str, Path], images: str, log: Callable[[str], None]) -> None:
    from kdsl.data import ocr as ocr_data
    from kdsl.data.ocr_cache import NoCache

    for split, source in tables.items():
        table = read_parquet(source)
        if "image_paths" not in table.column_names:
            raise PipelineError(f"{source}: no 'image_paths' column to read images from")
        files = ocr_data.image_files(table.column("image_paths"), Path(images))
        cache = ocr_data.open_cache() if files else NoCache()
        texts, report = ocr_data.recognise_images(files, cache, workers=ocr_data.default_workers())
        log(f"ocr: {split}: {report.images} images ({report.from_cache} from cache, {report.recognised} "
            f"recognised, {len(report.unreadable)} unreadable)")
        schema = ocr_data.ocr_schema(table.schema)
        write_table_atomically(ocr_data.with_ocr(table, texts).select(schema.names), ocr_tables[split])


def out_of_fold(train: Path, target: Path, settings: dict) -> None:
    """The baseline's out-of-fold predictions on the training rows (``kdsl.mining.predictions``,
    with flips as the configured model trains); the baseline stands in for whatever model is
    configured."""
    from kdsl.mining.predictions import out_of_fold as predict_out_of_fold

    options = {"epochs": settings["epochs"]} if settings["epochs"] else {}
    write_table_atomically(predict_out_of_fold(read_parquet(train), "baseline", folds=settings["folds"],
                                               fold_seed=settings["seed"], images=settings["images"],
                                               seed=settings["seed"], flip=True, **options), target)


def mine(train: Path, rules: Path, task: str, mining: dict, log: Callable[[str], None], oof: Path | None = None) -> None:
    """Mine ``task``'s rules from ``train`` into ``rules``; with ``oof`` (out-of-fold predictions
    on train), model-aware mining."""
    from kdsl.mining.predictions import join_predictions, read_predictions

    table = read_parquet(train)
    rows = labelled_rows(table, task)
    if not rows:
        raise PipelineError(f"{train}: no labelled rows of task {task!r} to mine")
    if not any(r.get(f) for r in rows for f in TEXT_FIELDS):
        log(f"mine-{task}: the {task} rows carry no text (scene rows need [ocr] enabled); no rules")
    if oof is not None:
        rows = join_predictions(rows, read_predictions(oof), str(oof))
    source, count = _mined_source(rows, task, mining)
    rules.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(rules, source)
    log(f"mine-{task}: {count} rule(s) -> {rules}")


def _mined_source(rows: list[dict], task: str, mining: dict) -> tuple[str, int]:
    """The formatted rule file mined from ``rows``, and its number of rules."""
    from kdsl.mining.miner import MiningConfig, mine, proposer
    from kdsl.mining.writer import render

    config = MiningConfig(seed=mining["seed"], max_predicates=mining["max_predicates"],
                          min_reward=float(mining["min_reward"]))
    result = mine(rows, task, config, proposer=proposer(mining["proposer"], task, mining["llm_model"]))
    return render(task, result.labels, result.rules), len(result.rules)


def select_rules(train: Path, oof: Path | None, rules: list[Path], selected: list[Path], target: Path,
                 tasks: list[str], log: Callable[[str], None]) -> None:
    """Which mined rules to use, by cross-validation on the training rows only: the baseline's
    out-of-fold predictions on train (``oof``, step predict-train-oof) stand in for the model on
    new rows; every mined rule's net effect on them (rows it fixes minus rows it breaks when
    overriding the model) is counted, and a mined rule is kept when it is positive. Rules a
    person wrote (no ``meta { source: "mined" }``) are always kept. The kept rules of each task are
    written to ``selected`` (``rules-selected/TASK.kdsl``); a task is used when it keeps a rule.
    The mined rules have seen every training row, so their effect is measured on rows they have
    seen, but against a model that has not. Without ``oof`` (select_folds = 0) every rule is kept."""
    import kdsl.engine
    from kdsl.evaluation import evaluate
    import pyarrow as pa

    from kdsl.mining.crossval import effects
    from kdsl.mining.predictions import FOLD, join_predictions, read_predictions
    from kdsl.mining.writer import keep_rules

    sources = {task: path.read_text(encoding="utf-8") for task, path in zip(tasks, rules)}
    selected[0].parent.mkdir(parents=True, exist_ok=True)
    if oof is None:
        for task, path in zip(tasks, selected):
            write_text_atomically(path, sources[task])
        write_text_atomically(target, json.dumps({"folds": 0, "kept": tasks, "tasks": {}}, indent=2) + "\n")
        return
    table = read_parquet(train)
    table = table.select([f.name for f in table.schema if not pa.types.is_list(f.type)])  # rules read no list
    rows = [r for r in table.to_pylist() if r.get("label") is not None]
    folds_of = dict(zip(*(read_parquet(oof).column(c).to_pylist() for c in ("id", FOLD))))
    predicted = pa.Table.from_pylist(join_predictions(rows, read_predictions(oof), str(oof)))
    folds = sorted(set(folds_of.values()))
    summary = {"folds": len(folds), "tasks": {}, "kept": []}
    for task, path in zip(tasks, selected):
        engine = kdsl.engine.loads(sources[task], f"<{task} rules>")
        net = {r.name: 0 for r in engine.rules if dict(r.meta).get("source") == "mined"}
        scored = engine.score(predicted)
        columns = [scored.column(c).to_pylist() for c in (TASK, LABEL, MODEL_LABEL, task, f"{task}_rule")]
        for name, effect in effects(task, *columns).items():
            if name in net:
                net[name] += effect.net
        kept = sorted(r.name for r in engine.rules if net.get(r.name, 1) > 0)
        source = keep_rules(sources[task], kept)
        write_text_atomically(path, source)
        final = kdsl.engine.loads(source, f"<{task} selected rules>").score(predicted)
        model_scores, rule_scores = [], []
        for fold in folds:
            held = final.filter(pa.array([folds_of[i] == fold for i in final.column("id").to_pylist()]))
            scores = evaluate(held)["scores"]
            model_scores.append(scores["model"][SCORE_OF_TASK[task]])
            # No rule kept: the engine writes no output and the model's answer stands.
            rule_scores.append(scores.get("final", scores["model"])[SCORE_OF_TASK[task]])
        pairs = [(m, r) for m, r in zip(model_scores, rule_scores) if m is not None and r is not None]
        gain = sum(r - m for m, r in pairs) / len(pairs) if pairs else 0.0
        summary["tasks"][task] = {"model": model_scores, "rules": rule_scores, "score": SCORE_OF_TASK[task],
                                  "gain": gain, "kept": bool(kept), "rule_net": net, "kept_rules": kept}
        if kept:
            summary["kept"].append(task)
        log(f"select-rules: {task}: {len(kept)} of {len(engine.rules)} rules kept "
            f"(net rows fixed > 0 on out-of-fold predictions; {SCORE_OF_TASK[task]} {gain:+.4f} with them)")
    write_text_atomically(target, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def kept_rules(selection: Path, rules: list[Path]) -> list[Path]:
    """The rule files (``rules-selected/TASK.kdsl``) of the tasks ``selection`` keeps."""
    kept = set(json.loads(selection.read_text(encoding="utf-8"))["kept"])
    return [path for path in rules if path.stem in kept]


def train(train: Path, model: Path, settings: dict, log: Callable[[str], None]) -> None:
    import kdsl.adapters

    cls = kdsl.adapters.adapter_class(settings["adapter"])
    keyed = {option.name: settings[option.config_key] for option in cls.options
             if option.config_key and settings[option.config_key] is not None}
    options = {"epochs": settings["epochs"], "seed": settings["seed"], **cls.flip_options(settings["flip"]),
               **keyed, **settings["options"]}
    table = read_parquet(train)
    # An adapter whose epochs are long enough to checkpoint (qwen2vl: minutes to hours) reports
    # every one; the baseline's take seconds, so only the last epoch's line is shown.
    epochs: list[str] = []
    with context("[model]"):
        adapter = kdsl.adapters.train(settings["adapter"], table, images=settings["images"],
                                      log=log if cls.keeps_checkpoint else epochs.append, **options)
    adapter.save(model)
    if epochs:
        log(f"train: {len(epochs)} epochs; last: {epochs[-1]}")


def predict(dev: Path, model: Path, target: Path, images) -> None:
    import kdsl.adapters
    from kdsl.batch import predict_parquet

    predict_parquet(kdsl.adapters.load(model), dev, target, images=images)


def score(predicted: Path, rules: list[Path], target: Path) -> None:
    import kdsl.engine
    from kdsl.batch import score_parquet

    score_parquet(kdsl.engine.load([str(p) for p in rules]), predicted, target)


def evaluate(scored: dict[str, Path], target: Path, tasks: list[str]) -> None:
    from kdsl.evaluation import evaluate
    from kdsl.report import rule_changes

    results = {"tasks": tasks, "variants": {}}
    for variant, path in scored.items():
        table = read_parquet(path)
        results["variants"][variant] = {"report": evaluate(table),
                                        "rules": [c for t in tasks for c in rule_changes(table, t)]}
    write_text_atomically(target, json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def seesaw(train: Path, dev: Path, target: Path, settings: dict, log: Callable[[str], None]) -> None:
    """The paper's Figure 1 check with the baseline: both tasks trained jointly by one network vs
    separately by one network each, per-task F1 on dev, for every seed."""
    from kdsl.adapters.baseline import TASK_MODES, BaselineAdapter
    from kdsl.metrics import task_scores

    train_table, dev_table = read_parquet(train), read_parquet(dev)
    runs = []
    for seed in settings["seeds"]:
        for mode in TASK_MODES:
            log(f"seesaw: seed {seed}, tasks {mode}")
            adapter = BaselineAdapter.train(train_table, images=settings["images"], tasks=mode,
                                            epochs=settings["epochs"], seed=seed, flip=True)
            predicted = adapter.predict(dev_table, images=settings["images"])
            scores = task_scores(predicted.column("label").to_pylist(), predicted.column("model_label").to_pylist(),
                                 predicted.column("task").to_pylist())
            runs.append({"seed": seed, "tasks": mode, "scores": scores})
    write_text_atomically(target, json.dumps({"epochs": settings["epochs"], "runs": runs}, indent=2) + "\n")


def report(output: Path, evaluation: Path, seesaw: Path, selection: Path, scored: dict[str, Path], target: Path,
            log: Callable[[str], None]) -> None:
    from kdsl.report import render_report, write_figures

    results = json.loads(evaluation.read_text(encoding="utf-8"))
    seesaw_runs = json.loads(seesaw.read_text(encoding="utf-8"))
    chosen = json.loads(selection.read_text(encoding="utf-8"))
    figures = write_figures(output, results, {v: read_parquet(p) for v, p in scored.items()}, log)
    write_text_atomically(target, render_report(results, seesaw_runs, figures, chosen))
