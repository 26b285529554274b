"""``kdsl pipeline CONFIG.toml``: import → OCR → mine → train (with and without flips) → predict →
score with the mined rules → evaluate → the seesaw check → ``report.md``, each step's artefact in
one output folder.

A step is skipped on a rerun when its inputs did not change: the content hashes of its input
files plus its config section, stored per step in ``OUTPUT/.steps.json``, and its outputs exist.

    output = "run"                # relative paths are relative to the config file
    [data]
    train = "train.json"          # challenge JSON (or train_table = "train.parquet", a record table)
    dev = "dev.json"              # (or dev_table = "dev.parquet")
    images = "images"             # optional: the folder image_paths are relative to
    [ocr]
    enabled = false
    [mining]
    tasks = ["intent"]            # one rule file per task: rules/intent.kdsl, rules/scene.kdsl
    proposer = "ngram"            # or "llm" with llm_model = "path/to/a/local/causal-lm"
    seed = 0
    max_predicates = 5
    min_reward = 0.8
    [model]
    adapter = "baseline"          # or "qwen2vl" with base = "path/to/Qwen2-VL-7B-Instruct"
    epochs = 25
    seed = 0
    options = {}                  # passed to the adapter's training (e.g. learning_rate = 5e-6)
    [seesaw]
    seeds = [0, 1, 2]             # baseline trained jointly and separately per seed; [] skips it
"""

from __future__ import annotations

import hashlib
import json
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

from kdsl.io import atomic_path, write_text_atomically

STEPS_FILE = ".steps.json"
VARIANTS = ("noflip", "flip")  # model trained without / with horizontal-flip augmentation
TASKS = ("intent", "scene")
ADAPTERS = ("baseline", "qwen2vl")
PROPOSERS = ("ngram", "llm")

# section -> {key: (types, default)}
SCHEMA: dict[str, dict[str, tuple]] = {
    "data": {"train": ((str,), None), "dev": ((str,), None), "train_table": ((str,), None),
             "dev_table": ((str,), None), "images": ((str,), None)},
    "ocr": {"enabled": ((bool,), False)},
    "mining": {"tasks": ((list,), ["intent"]), "proposer": ((str,), "ngram"), "llm_model": ((str,), None),
               "seed": ((int,), 0), "max_predicates": ((int,), 5), "min_reward": ((int, float), 0.8),
               "select_folds": ((int,), 3), "model_aware": ((bool,), False), "oof_folds": ((int,), 5)},
    "model": {"adapter": ((str,), "baseline"), "base": ((str,), None), "epochs": ((int,), 25),
              "seed": ((int,), 0), "options": ((dict,), {})},
    "seesaw": {"seeds": ((list,), [0, 1, 2]), "epochs": ((int,), None)},
}
TOP_LEVEL = {"output"} | set(SCHEMA)


class PipelineError(ValueError):
    """A config or input the pipeline cannot use; the message says which and why."""


# ------------------------------------------------------------------------------------- config


def load_config(path) -> dict:
    """The validated config: every section with its defaults filled in, paths made absolute
    (relative ones are taken from the config file's folder)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineError(f"{path}: cannot read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise PipelineError(f"{path}: not valid TOML ({error})") from None
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        raise PipelineError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(TOP_LEVEL))}")
    if "output" not in raw:
        raise PipelineError(f"{path}: missing key 'output' (the folder to write into)")
    if not isinstance(raw["output"], str):
        raise PipelineError(f"{path}: 'output' must be a string")
    base = path.parent
    config: dict = {"output": str((base / raw["output"]).resolve())}
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise PipelineError(f"{path}: [{section}] must be a table")
        unknown = sorted(set(given) - set(keys))
        if unknown:
            raise PipelineError(f"{path}: unknown key(s) in [{section}]: {', '.join(unknown)}; "
                                f"known: {', '.join(keys)}")
        values = {}
        for key, (types, default) in keys.items():
            value = given.get(key, default)
            if value is not None and (not isinstance(value, types) or (bool not in types and isinstance(value, bool))):
                names = " or ".join({"list": "an array", "dict": "a table"}.get(t.__name__, t.__name__) for t in types)
                raise PipelineError(f"{path}: [{section}] {key} must be {names}, not {value!r}")
            values[key] = value
        config[section] = values
    _check_values(config, path)
    return config


def _check_values(config: dict, path: Path) -> None:
    def fail(message: str):
        raise PipelineError(f"{path}: {message}")

    base = path.parent
    data, mining, model, seesaw = config["data"], config["mining"], config["model"], config["seesaw"]
    for split in ("train", "dev"):
        if (data[split] is None) == (data[f"{split}_table"] is None):
            fail(f"[data] needs exactly one of '{split}' (challenge JSON) or '{split}_table' (record-table Parquet)")
    for key in ("train", "dev", "train_table", "dev_table", "images"):
        if data[key] is not None:
            data[key] = str((base / data[key]).resolve())
            target = Path(data[key])
            if key == "images" and not target.is_dir():
                fail(f"[data] images: no such folder {target}")
            if key != "images" and not target.is_file():
                fail(f"[data] {key}: no such file {target}")
    if config["ocr"]["enabled"] and data["images"] is None:
        fail("[ocr] enabled needs [data] images")
    tasks = mining["tasks"]
    if not tasks or any(t not in TASKS for t in tasks) or len(set(tasks)) != len(tasks):
        fail(f"[mining] tasks must be a non-empty array of distinct tasks among {', '.join(TASKS)}, not {tasks!r}")
    if mining["proposer"] not in PROPOSERS:
        fail(f"[mining] proposer must be one of {', '.join(PROPOSERS)}, not {mining['proposer']!r}")
    if (mining["proposer"] == "llm") != (mining["llm_model"] is not None):
        fail("[mining] llm_model (a local model folder) goes with proposer = \"llm\", and only with it")
    if mining["llm_model"] is not None:
        mining["llm_model"] = str((base / mining["llm_model"]).resolve())
    if not 1 <= mining["max_predicates"] <= 20:
        fail("[mining] max_predicates must be between 1 and 20")
    if not 0 <= mining["min_reward"] <= 1:
        fail("[mining] min_reward must be between 0 and 1")
    if mining["select_folds"] != 0 and mining["select_folds"] < 2:
        fail("[mining] select_folds must be 0 (keep every task's rules) or at least 2")
    if model["adapter"] not in ADAPTERS:
        fail(f"[model] adapter must be one of {', '.join(ADAPTERS)}, not {model['adapter']!r}")
    if (model["adapter"] == "qwen2vl") != (model["base"] is not None):
        fail("[model] base (a local Qwen2-VL folder) goes with adapter = \"qwen2vl\", and only with it")
    if model["base"] is not None:
        model["base"] = str((base / model["base"]).resolve())
        if not Path(model["base"]).is_dir():
            fail(f"[model] base: no such folder {model['base']}")
    if model["epochs"] < 1:
        fail("[model] epochs must be at least 1")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seesaw["seeds"]):
        fail(f"[seesaw] seeds must be an array of integers, not {seesaw['seeds']!r}")
    if seesaw["epochs"] is None:
        seesaw["epochs"] = model["epochs"] if model["adapter"] == "baseline" else SCHEMA["model"]["epochs"][1]
    elif seesaw["epochs"] < 1:
        fail("[seesaw] epochs must be at least 1")


# -------------------------------------------------------------------------------------- steps


def file_hash(path: Path) -> str:
    """sha256 of a file's content, or of a folder's files (names and contents, sorted)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else "").encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class Runner:
    """Runs steps, skipping those whose signature (input hashes + settings) is recorded as done."""

    def __init__(self, output: Path, log: Callable[[str], None]):
        self.output = output
        self.log = log
        self.state_path = output / STEPS_FILE
        try:
            self.state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            self.state = {}
        self.outcomes: dict[str, str] = {}

    def step(self, name: str, inputs: list[Path], settings, outputs: list[Path], work: Callable[[], None]) -> None:
        signature = {"inputs": {str(p): file_hash(p) for p in inputs}, "settings": settings}
        if self.state.get(name) == signature and all(p.exists() for p in outputs):
            self.outcomes[name] = "skipped"
            self.log(f"{name}: up to date, skipped")
            return
        self.log(f"{name}: running")
        started = time.perf_counter()
        work()
        self.log(f"{name}: done in {time.perf_counter() - started:.1f} s")
        self.state[name] = signature
        self.outcomes[name] = "ran"
        write_text_atomically(self.state_path, json.dumps(self.state, indent=2, ensure_ascii=False) + "\n")


def run(config: dict, log: Callable[[str], None] = lambda line: None) -> dict[str, str]:
    """Run every step of the pipeline; returns {step: "ran" | "skipped"}."""
    output = Path(config["output"])
    output.mkdir(parents=True, exist_ok=True)
    runner = Runner(output, log)
    data, images = config["data"], config["data"]["images"]
    tables = {split: output / f"{split}.parquet" for split in ("train", "dev")}
    sources = [Path(data[s] or data[f"{s}_table"]) for s in ("train", "dev")]
    runner.step("import", sources, data, list(tables.values()), lambda: _import(data, tables))

    if config["ocr"]["enabled"]:
        ocr_tables = {split: output / f"{split}.ocr.parquet" for split in tables}
        runner.step("ocr", list(tables.values()), {**config["ocr"], "images": images},
                    list(ocr_tables.values()), lambda: _ocr(tables, ocr_tables, images, log))
        tables = ocr_tables

    mining = config["mining"]
    mine_inputs = [tables["train"]]
    oof = None
    if mining["model_aware"]:  # mine against the baseline's out-of-fold predictions on train
        oof = output / "train.oof.parquet"
        oof_settings = {"folds": mining["oof_folds"], "epochs": config["seesaw"]["epochs"], "images": images,
                        "seed": mining["seed"]}
        runner.step("predict-train-oof", [tables["train"]], oof_settings, [oof],
                    lambda: _out_of_fold(tables["train"], oof, oof_settings))
        mine_inputs.append(oof)
    rules = [output / "rules" / f"{task}.kdsl" for task in mining["tasks"]]
    for task, path in zip(mining["tasks"], rules):
        runner.step(f"mine-{task}", mine_inputs, mining, [path],
                    lambda t=task, p=path: _mine(tables["train"], p, t, mining, log, oof))

    selection = output / "selection.json"
    selected = [path.with_suffix(".selected.kdsl") for path in rules]
    select_settings = {**mining, "epochs": config["seesaw"]["epochs"], "images": images}
    runner.step("select-rules", [tables["train"], *rules], select_settings, [selection, *selected],
                lambda: _select(tables["train"], rules, selection, select_settings, log))

    models = {v: output / f"model-{v}" for v in VARIANTS}
    predicted = {v: output / f"dev.pred-{v}.parquet" for v in VARIANTS}
    scored = {v: output / f"dev.scored-{v}.parquet" for v in VARIANTS}
    for variant in VARIANTS:
        settings = {**config["model"], "flip": variant == "flip", "images": images}
        runner.step(f"train-{variant}", [tables["train"]], settings, [models[variant]],
                    lambda v=variant, s=settings: _train(tables["train"], models[v], s, log))
        runner.step(f"predict-{variant}", [tables["dev"], models[variant]], {"images": images},
                    [predicted[variant]], lambda v=variant: _predict(tables["dev"], models[v], predicted[v], images))
        runner.step(f"score-{variant}", [predicted[variant], selection, *selected], {}, [scored[variant]],
                    lambda v=variant: _score(predicted[v], _kept(selection, selected), scored[v]))

    evaluation = output / "evaluation.json"
    runner.step("evaluate", list(scored.values()), {"tasks": mining["tasks"]}, [evaluation],
                lambda: _evaluate(scored, evaluation, mining["tasks"]))
    seesaw = output / "seesaw.json"
    seesaw_settings = {**config["seesaw"], "images": images}
    runner.step("seesaw", [tables["train"], tables["dev"]], seesaw_settings, [seesaw],
                lambda: _seesaw(tables["train"], tables["dev"], seesaw, seesaw_settings, log))
    report = output / "report.md"
    runner.step("report", [evaluation, seesaw, selection, scored["flip"], scored["noflip"]], {}, [report],
                lambda: _report(output, evaluation, seesaw, selection, scored, report, log))
    return runner.outcomes


# --------------------------------------------------------------------------------- the work


def _write_table(table, path: Path) -> None:
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _read_table(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as error:  # noqa: BLE001  (pyarrow raises several types for a non-Parquet file)
        raise PipelineError(f"{path}: not a readable Parquet file ({error})") from None


def _import(data: dict, tables: dict[str, Path]) -> None:
    from kdsl.data.importing import SourceError, import_samples, read_samples
    from kdsl.data.schema import record_table

    for split, target in tables.items():
        if data[f"{split}_table"] is not None:
            table = _read_table(Path(data[f"{split}_table"]))
            for column in ("task", "label"):
                if column not in table.column_names:
                    raise PipelineError(f"{data[f'{split}_table']}: no {column!r} column")
        else:
            try:
                result = import_samples(read_samples(data[split]))
            except SourceError as error:
                raise PipelineError(str(error)) from None
            if result.rejects:
                raise PipelineError(f"{data[split]}: {len(result.rejects)} sample(s) cannot be imported; "
                                    f"first: {result.rejects[0].message()}")
            if not result.rows:
                raise PipelineError(f"{data[split]}: no samples")
            table = record_table(result.rows)
        _write_table(table, target)


def _ocr(tables: dict[str, Path], ocr_tables: dict[str, Path], images: str, log: Callable[[str], None]) -> None:
    from kdsl.data import ocr as ocr_data
    from kdsl.data.ocr_cache import NoCache

    for split, source in tables.items():
        table = _read_table(source)
        if "image_paths" not in table.column_names:
            raise PipelineError(f"{source}: no 'image_paths' column to read images from")
        files = ocr_data.image_files(table.column("image_paths"), Path(images))
        try:
            cache = ocr_data.open_cache() if files else NoCache()
            texts, report = ocr_data.recognise_images(files, cache, workers=ocr_data.default_workers())
        except ocr_data.OcrEngineError as error:
            raise PipelineError(str(error)) from None
        log(f"ocr: {split}: {report.images} images ({report.from_cache} from cache, {report.recognised} "
            f"recognised, {len(report.unreadable)} unreadable)")
        schema = ocr_data.ocr_schema(table.schema)
        _write_table(ocr_data.with_ocr(table, texts).select(schema.names), ocr_tables[split])


def _out_of_fold(train: Path, target: Path, settings: dict) -> None:
    """The baseline's out-of-fold predictions on the training rows (``kdsl.mining.predictions``);
    the baseline stands in for whatever model is configured, as in select-rules."""
    from kdsl.mining.predictions import out_of_fold

    options = {"epochs": settings["epochs"]} if settings["epochs"] else {}
    _write_table(out_of_fold(_read_table(train), "baseline", folds=settings["folds"], fold_seed=settings["seed"],
                             images=settings["images"], seed=settings["seed"], **options), target)


def _mine(train: Path, rules: Path, task: str, mining: dict, log: Callable[[str], None], oof: Path | None = None) -> None:
    from kdsl.errors import KdslError
    from kdsl.mining.predictions import join_predictions, read_predictions

    table = _read_table(train)
    rows = _labelled_rows(table, task)
    if not rows:
        raise PipelineError(f"{train}: no labelled rows of task {task!r} to mine")
    if not any(r.get(f) for r in rows for f in ("user", "agent", "ocr")):
        log(f"mine-{task}: the {task} rows carry no text (scene rows need [ocr] enabled); no rules")
    if oof is not None:
        try:
            rows = join_predictions(rows, read_predictions(oof), str(oof))
        except KdslError as error:
            raise PipelineError(str(error)) from None
    source, count = _mined_source(rows, task, mining)
    rules.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(rules, source)
    log(f"mine-{task}: {count} rule(s) -> {rules}")


def _labelled_rows(table, task: str) -> list[dict]:
    columns = [c for c in ("id", "task", "user", "agent", "ocr", "label") if c in table.column_names]
    return [r for r in table.select(columns).to_pylist() if r["label"] is not None and r.get("task", task) == task]


def _mined_source(rows: list[dict], task: str, mining: dict) -> tuple[str, int]:
    """The formatted rule file mined from ``rows``, and its number of rules."""
    from kdsl.mining.pipeline import MiningConfig, mine
    from kdsl.mining.writer import render

    config = MiningConfig(seed=mining["seed"], max_predicates=mining["max_predicates"],
                          min_reward=float(mining["min_reward"]))
    result = mine(rows, task, config, proposer=_llm_proposer(mining, task))
    return render(task, result.labels, result.rules), len(result.rules)


def _select(train: Path, rules: list[Path], target: Path, settings: dict, log: Callable[[str], None]) -> None:
    """Which mined rules to use: k-fold cross-validation on the training rows only. Per fold, the
    baseline (with flips) is trained on the other folds and predicts the held-out fold; every
    mined rule's net effect there (rows it fixes minus rows it breaks when overriding the model,
    ``kdsl.mining.crossval.rule_effects``) is summed over the folds, and a rule is kept when that
    sum is positive. The kept rules of each task are written to ``rules/TASK.selected.kdsl``; a
    task is kept when it keeps a rule. The baseline stands in for whatever model is configured.
    The rules were mined on every training row, so their effect is measured on rows they have
    seen, but against a model that has not."""
    import kdsl.engine
    from kdsl.adapters.baseline import BaselineAdapter
    from kdsl.evaluation import evaluate
    from kdsl.mining.writer import keep_rules
    from kdsl.report import TASK_SCORE

    tasks, folds = settings["tasks"], settings["select_folds"]
    sources = {task: path.read_text(encoding="utf-8") for task, path in zip(tasks, rules)}
    if folds == 0:
        for task, path in zip(tasks, rules):
            write_text_atomically(path.with_suffix(".selected.kdsl"), sources[task])
        write_text_atomically(target, json.dumps({"folds": 0, "kept": tasks, "tasks": {}}, indent=2) + "\n")
        return
    table = _read_table(train)
    engines = {task: kdsl.engine.loads(sources[task], f"<{task} rules>") for task in tasks}
    held_predictions = []
    net: dict[str, dict[str, int]] = {t: {r.name: 0 for r in engines[t].rules} for t in tasks}
    for fold in range(folds):
        log(f"select-rules: fold {fold + 1}/{folds}")
        fit = table.take([i for i in range(table.num_rows) if i % folds != fold])
        held = table.take([i for i in range(table.num_rows) if i % folds == fold])
        model = BaselineAdapter.train(fit, images=settings["images"], epochs=settings["epochs"],
                                      seed=settings["seed"], flip=True)
        predicted = model.predict(held, images=settings["images"])
        held_predictions.append(predicted)
        for task in tasks:
            for name, change in _rule_changes(engines[task].score(predicted), task).items():
                net[task][name] += change
    summary = {"folds": folds, "tasks": {}, "kept": []}
    for task, path in zip(tasks, rules):
        kept_rules = sorted(name for name, change in net[task].items() if change > 0)
        source = keep_rules(sources[task], kept_rules)
        write_text_atomically(path.with_suffix(".selected.kdsl"), source)
        engine = kdsl.engine.loads(source, f"<{task} selected rules>")
        model_scores, rule_scores = [], []
        for predicted in held_predictions:
            scores = evaluate(engine.score(predicted))["scores"]
            model_scores.append(scores["model"][TASK_SCORE[task]])
            # No rule kept: the engine writes no output and the model's answer stands.
            rule_scores.append(scores.get("final", scores["model"])[TASK_SCORE[task]])
        pairs = [(m, r) for m, r in zip(model_scores, rule_scores) if m is not None and r is not None]
        gain = sum(r - m for m, r in pairs) / len(pairs) if pairs else 0.0
        kept = bool(kept_rules)
        summary["tasks"][task] = {"model": model_scores, "rules": rule_scores, "score": TASK_SCORE[task],
                                  "gain": gain, "kept": kept, "rule_net": net[task], "kept_rules": kept_rules}
        if kept:
            summary["kept"].append(task)
        log(f"select-rules: {task}: {len(kept_rules)} of {len(net[task])} rules kept "
            f"(net rows fixed > 0 on held-out folds; {TASK_SCORE[task]} {gain:+.4f} with them)")
    write_text_atomically(target, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def _rule_changes(scored, task: str) -> dict[str, int]:
    """Per rule that decided a row of ``task``: rows it fixed minus rows it broke."""
    changes: dict[str, int] = {}
    columns = [scored.column(c).to_pylist() for c in ("task", "label", "model_label", task, f"{task}_rule")]
    for row_task, gold, model, final, rule in zip(*columns):
        if rule is None or row_task != task or gold is None:
            continue
        changes[rule] = changes.get(rule, 0) + (final == gold) - (model == gold)
    return changes


def _kept(selection: Path, rules: list[Path]) -> list[Path]:
    kept = set(json.loads(selection.read_text(encoding="utf-8"))["kept"])
    return [path for path in rules if path.name.split(".")[0] in kept]


def _llm_proposer(mining: dict, task: str):
    if mining["proposer"] != "llm":
        return None
    from kdsl.mining.llm_proposer import LlmConfig, LlmProposer, LlmUnavailable

    try:
        return LlmProposer(mining["llm_model"], LlmConfig(), task=task)
    except LlmUnavailable as error:
        raise PipelineError(f"[mining] llm_model: {error}") from None


def _train(train: Path, model: Path, settings: dict, log: Callable[[str], None]) -> None:
    from kdsl.adapters import AdapterError, adapter_class

    if settings["adapter"] == "qwen2vl":  # flips each image with a probability while it trains
        extra = {"model": settings["base"], "flip_probability": 0.5 if settings["flip"] else 0.0}
    else:
        extra = {"flip": settings["flip"]}
    try:
        adapter = adapter_class(settings["adapter"]).train(
            _read_table(train), images=settings["images"], log=log, epochs=settings["epochs"],
            seed=settings["seed"], **extra, **settings["options"])
        adapter.save(model)
    except AdapterError as error:
        raise PipelineError(f"[model]: {error}") from None


def _predict(dev: Path, model: Path, target: Path, images) -> None:
    import kdsl.adapters
    from kdsl.adapters import AdapterError

    try:
        _write_table(kdsl.adapters.load(model).predict(_read_table(dev), images=images), target)
    except AdapterError as error:
        raise PipelineError(f"{dev}: {error}") from None


def _score(predicted: Path, rules: list[Path], target: Path) -> None:
    import kdsl.engine
    from kdsl.dsl import KdslError
    from kdsl.engine import InputError

    try:
        engine = kdsl.engine.load([str(p) for p in rules])
        _write_table(engine.score(_read_table(predicted)), target)
    except (KdslError, InputError) as error:
        raise PipelineError(f"{', '.join(map(str, rules))}: {error}") from None


def _evaluate(scored: dict[str, Path], target: Path, tasks: list[str]) -> None:
    from kdsl.evaluation import evaluate
    from kdsl.report import rule_changes

    results = {"tasks": tasks, "variants": {}}
    for variant, path in scored.items():
        table = _read_table(path)
        results["variants"][variant] = {"report": evaluate(table),
                                        "rules": [c for t in tasks for c in rule_changes(table, t)]}
    write_text_atomically(target, json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def _seesaw(train: Path, dev: Path, target: Path, settings: dict, log: Callable[[str], None]) -> None:
    """The paper's Figure 1 check with the baseline: both tasks trained jointly by one network vs
    separately by one network each, per-task F1 on dev, for every seed."""
    from kdsl.adapters.baseline import TASK_MODES, BaselineAdapter
    from kdsl.metrics import task_scores

    train_table, dev_table = _read_table(train), _read_table(dev)
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


def _report(output: Path, evaluation: Path, seesaw: Path, selection: Path, scored: dict[str, Path], target: Path,
            log: Callable[[str], None]) -> None:
    from kdsl.report import render_report, write_figures

    results = json.loads(evaluation.read_text(encoding="utf-8"))
    seesaw_runs = json.loads(seesaw.read_text(encoding="utf-8"))
    chosen = json.loads(selection.read_text(encoding="utf-8"))
    figures = write_figures(output, results, {v: _read_table(p) for v, p in scored.items()}, log)
    write_text_atomically(target, render_report(results, seesaw_runs, figures, chosen))
