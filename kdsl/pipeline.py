"""``kdsl pipeline CONFIG.toml``: import → OCR → mine → train (with and without flips) → predict →
score with the mined rules → evaluate → ``report.md``, each step's artefact in one output folder.

A step is skipped on a rerun when its inputs did not change: the content hashes of its input
files plus its config section, stored per step in ``OUTPUT/.steps.json``, and its outputs exist.

    [data]
    train = "train.json"          # challenge JSON (or train_table = "train.parquet", a record table)
    dev = "dev.json"              # (or dev_table = "dev.parquet")
    images = "images"             # optional: the folder image_paths are relative to
    [ocr]
    enabled = false
    [mining]
    seed = 0
    max_predicates = 5
    min_reward = 0.8
    task = "intent"
    [model]
    adapter = "baseline"
    epochs = 25
    seed = 0
    output = "run"                # top-level key; relative paths are relative to the config file
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable
from pathlib import Path

from kdsl.io import atomic_path, write_text_atomically

STEPS_FILE = ".steps.json"
VARIANTS = ("noflip", "flip")  # model trained without / with horizontal-flip augmentation

# section -> {key: (types, default)}; a default of REQUIRED must be given.
REQUIRED = object()
SCHEMA: dict[str, dict[str, tuple]] = {
    "data": {"train": ((str,), None), "dev": ((str,), None), "train_table": ((str,), None),
             "dev_table": ((str,), None), "images": ((str,), None)},
    "ocr": {"enabled": ((bool,), False)},
    "mining": {"seed": ((int,), 0), "max_predicates": ((int,), 5), "min_reward": ((int, float), 0.8),
               "task": ((str,), "intent")},
    "model": {"adapter": ((str,), "baseline"), "epochs": ((int,), 25), "seed": ((int,), 0)},
}
TOP_LEVEL = {"output"} | set(SCHEMA)
ABLATION = (  # row name, model variant, prediction (evaluate's "model" or "final")
    ("model alone", "noflip", "model"),
    ("+ augmentation", "flip", "model"),
    ("+ rule engine", "noflip", "final"),
    ("both = KDSL", "flip", "final"),
)


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
                names = " or ".join(t.__name__ for t in types)
                raise PipelineError(f"{path}: [{section}] {key} must be {names}, not {value!r}")
            values[key] = value
        config[section] = values
    data = config["data"]
    for split in ("train", "dev"):
        if (data[split] is None) == (data[f"{split}_table"] is None):
            raise PipelineError(f"{path}: [data] needs exactly one of '{split}' (challenge JSON) "
                                f"or '{split}_table' (record-table Parquet)")
    for key in ("train", "dev", "train_table", "dev_table", "images"):
        if data[key] is not None:
            data[key] = str((base / data[key]).resolve())
            target = Path(data[key])
            if key == "images" and not target.is_dir():
                raise PipelineError(f"{path}: [data] images: no such folder {target}")
            if key != "images" and not target.is_file():
                raise PipelineError(f"{path}: [data] {key}: no such file {target}")
    if config["ocr"]["enabled"] and data["images"] is None:
        raise PipelineError(f"{path}: [ocr] enabled needs [data] images")
    if config["model"]["adapter"] != "baseline":
        raise PipelineError(f"{path}: [model] adapter: only 'baseline' is supported, not {config['model']['adapter']!r}")
    if config["model"]["epochs"] < 1:
        raise PipelineError(f"{path}: [model] epochs must be at least 1")
    if not 1 <= config["mining"]["max_predicates"] <= 20:
        raise PipelineError(f"{path}: [mining] max_predicates must be between 1 and 20")
    if not 0 <= config["mining"]["min_reward"] <= 1:
        raise PipelineError(f"{path}: [mining] min_reward must be between 0 and 1")
    return config


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
        work()
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
                    list(ocr_tables.values()), lambda: _ocr(tables, ocr_tables, images))
        tables = ocr_tables

    rules = output / "rules" / "mined.kdsl"
    runner.step("mine", [tables["train"]], config["mining"], [rules],
                lambda: _mine(tables["train"], rules, config["mining"]))

    models = {v: output / f"model-{v}" for v in VARIANTS}
    predicted = {v: output / f"dev.pred-{v}.parquet" for v in VARIANTS}
    scored = {v: output / f"dev.scored-{v}.parquet" for v in VARIANTS}
    for variant in VARIANTS:
        settings = {**config["model"], "flip": variant == "flip", "images": images}
        runner.step(f"train-{variant}", [tables["train"]], settings, [models[variant]],
                    lambda v=variant, s=settings: _train(tables["train"], models[v], s))
        runner.step(f"predict-{variant}", [tables["dev"], models[variant]], {"images": images},
                    [predicted[variant]], lambda v=variant: _predict(tables["dev"], models[v], predicted[v], images))
        runner.step(f"score-{variant}", [predicted[variant], rules], {}, [scored[variant]],
                    lambda v=variant: _score(predicted[v], rules, scored[v]))

    evaluation = output / "evaluation.json"
    runner.step("evaluate", list(scored.values()), {"task": config["mining"]["task"]}, [evaluation],
                lambda: _evaluate(scored, evaluation, config["mining"]["task"]))
    report = output / "report.md"
    runner.step("report", [evaluation], {}, [report], lambda: _report(evaluation, report))
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


def _ocr(tables: dict[str, Path], ocr_tables: dict[str, Path], images: str) -> None:
    from kdsl.data import ocr as ocr_data
    from kdsl.data.ocr_cache import NoCache

    for split, source in tables.items():
        table = _read_table(source)
        if "image_paths" not in table.column_names:
            raise PipelineError(f"{source}: no 'image_paths' column to read images from")
        files = ocr_data.image_files(table.column("image_paths"), Path(images))
        try:
            cache = ocr_data.open_cache() if files else NoCache()
            texts, _ = ocr_data.recognise_images(files, cache, workers=ocr_data.default_workers())
        except ocr_data.OcrEngineError as error:
            raise PipelineError(str(error)) from None
        schema = ocr_data.ocr_schema(table.schema)
        _write_table(ocr_data.with_ocr(table, texts).select(schema.names), ocr_tables[split])


def _mine(train: Path, rules: Path, mining: dict) -> None:
    from kdsl.mining.pipeline import MiningConfig, mine
    from kdsl.mining.writer import write

    table = _read_table(train)
    task = mining["task"]
    columns = [c for c in ("id", "task", "user", "agent", "ocr", "label") if c in table.column_names]
    rows = [r for r in table.select(columns).to_pylist() if r["label"] is not None and r.get("task", task) == task]
    if not rows:
        raise PipelineError(f"{train}: no labelled rows of task {task!r} to mine")
    config = MiningConfig(seed=mining["seed"], max_predicates=mining["max_predicates"],
                          min_reward=float(mining["min_reward"]))
    result = mine(rows, task, config)
    rules.parent.mkdir(parents=True, exist_ok=True)
    write(rules, task, result.labels, result.rules)


def _train(train: Path, model: Path, settings: dict) -> None:
    from kdsl.adapters import AdapterError, adapter_class

    try:
        adapter = adapter_class(settings["adapter"]).train(
            _read_table(train), images=settings["images"], epochs=settings["epochs"],
            seed=settings["seed"], flip=settings["flip"])
        adapter.save(model)
    except AdapterError as error:
        raise PipelineError(f"{train}: {error}") from None


def _predict(dev: Path, model: Path, target: Path, images) -> None:
    import kdsl.adapters
    from kdsl.adapters import AdapterError

    try:
        _write_table(kdsl.adapters.load(model).predict(_read_table(dev), images=images), target)
    except AdapterError as error:
        raise PipelineError(f"{dev}: {error}") from None


def _score(predicted: Path, rules: Path, target: Path) -> None:
    import kdsl.engine
    from kdsl.dsl import KdslError
    from kdsl.engine import InputError

    try:
        engine = kdsl.engine.load(rules)
        _write_table(engine.score(_read_table(predicted)), target)
    except (KdslError, InputError) as error:
        raise PipelineError(f"{rules}: {error}") from None


def _evaluate(scored: dict[str, Path], target: Path, task: str) -> None:
    from kdsl.evaluation import evaluate

    results = {"task": task, "variants": {}}
    for variant, path in scored.items():
        table = _read_table(path)
        results["variants"][variant] = {"report": evaluate(table), "rules": rule_changes(table, task)}
    write_text_atomically(target, json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def rule_changes(table, task: str) -> list[dict]:
    """Per rule that decided a row of ``task``: rows decided, predictions it changed (its label
    differs from ``model_label``), correct decisions and precision; most changes first."""
    names = table.column_names
    if f"{task}_rule" not in names:
        return []
    counts: dict[str, dict] = {}
    for row in table.select([c for c in ("task", "label", "model_label", task, f"{task}_rule", f"{task}_source")
                             if c in names]).to_pylist():
        if row.get("task", task) != task or row[f"{task}_source"] != "rule":
            continue
        cell = counts.setdefault(row[f"{task}_rule"], {"rule": row[f"{task}_rule"], "label": row[task],
                                                       "decided": 0, "changed": 0, "correct": 0, "labelled": 0})
        cell["decided"] += 1
        cell["changed"] += row[task] != row.get("model_label")
        if row.get("label") is not None:
            cell["labelled"] += 1
            cell["correct"] += row[task] == row["label"]
    for cell in counts.values():
        cell["precision"] = cell["correct"] / cell["labelled"] if cell["labelled"] else None
    return sorted(counts.values(), key=lambda c: (-c["changed"], -c["decided"], c["rule"]))


def _cell(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_report(results: dict, top: int = 10) -> str:
    variants = results["variants"]
    lines = ["# KDSL pipeline report", "", "## Ablation (dev, class-weighted F1)", "",
             "| setting | DIS | ISS | OSS |", "|---|---:|---:|---:|"]
    for name, variant, prediction in ABLATION:
        scores = variants[variant]["report"]["scores"].get(prediction)
        if scores is None:  # no rule outputs (no rules mined): the final answer is the model's
            scores = variants[variant]["report"]["scores"]["model"]
        lines.append(f"| {name} | {_cell(scores.get('DIS'))} | {_cell(scores.get('ISS'))} | {_cell(scores.get('OSS'))} |")
    rows = variants["flip"]["report"]["rows"]
    tasks = ", ".join(f"{n} {t}" for t, n in rows["by_task"].items())
    lines += ["", f"{rows['labelled']} labelled dev rows ({tasks}).", "",
              f"## Rules that changed the most predictions (KDSL, task {results['task']})", ""]
    changes = variants["flip"]["rules"][:top]
    if not changes:
        lines.append("No rule decided a dev row.")
    else:
        lines += ["| rule | label | changed | decided | precision |", "|---|---|---:|---:|---:|"]
        for c in changes:
            lines.append(f"| {c['rule']} | {c['label']} | {c['changed']} | {c['decided']} | {_cell(c['precision'])} |")
    return "\n".join(lines) + "\n"


def _report(evaluation: Path, target: Path) -> None:
    write_text_atomically(target, render_report(json.loads(evaluation.read_text(encoding="utf-8"))))
