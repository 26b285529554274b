"""Running the pipeline's steps: each is skipped when its inputs (content hashes) and settings
are those recorded in ``OUTPUT/.steps.json`` for its last run and its outputs exist."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from kdsl.io import write_text_atomically
from kdsl.pipeline import steps

STEPS_FILE = ".steps.json"
VARIANTS = ("noflip", "flip")  # model trained without / with horizontal-flip augmentation


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
        self.log(f"{name}: running{self._why(name, signature)}")
        started = time.perf_counter()
        work()
        self.log(f"{name}: done in {time.perf_counter() - started:.1f} s")
        self.state[name] = signature
        self.outcomes[name] = "ran"
        write_text_atomically(self.state_path, json.dumps(self.state, indent=2, ensure_ascii=False) + "\n")


    def _why(self, name: str, signature: dict) -> str:
        """`` (changed: rules/intent.kdsl)``: what differs from the last run of the step."""
        before = self.state.get(name)
        if before is None:
            return ""
        changed = [Path(p).relative_to(self.output) if Path(p).is_relative_to(self.output) else Path(p)
                   for p, digest in signature["inputs"].items() if before["inputs"].get(p) != digest]
        reasons = [str(p) for p in changed] + (["settings"] if before.get("settings") != signature["settings"] else [])
        return f" (changed: {', '.join(reasons)})" if reasons else " (an output is missing)"


def run(config: dict, log: Callable[[str], None] = lambda line: None) -> dict[str, str]:
    """Run every step of the pipeline; returns {step: "ran" | "skipped"}."""
    output = Path(config["output"])
    output.mkdir(parents=True, exist_ok=True)
    runner = Runner(output, log)
    data, images = config["data"], config["data"]["images"]
    tables = {split: output / f"{split}.parquet" for split in ("train", "dev")}
    sources = [Path(data[s] or data[f"{s}_table"]) for s in ("train", "dev")]
    runner.step("import", sources, data, list(tables.values()), lambda: steps.import_data(data, tables))

    if config["ocr"]["enabled"]:
        ocr_tables = {split: output / f"{split}.ocr.parquet" for split in tables}
        runner.step("ocr", list(tables.values()), {**config["ocr"], "images": images},
                    list(ocr_tables.values()), lambda: steps.ocr(tables, ocr_tables, images, log))
        tables = ocr_tables

    mining = config["mining"]
    # The baseline's k-fold predictions on train: model-aware mining aims at their errors, and
    # select-rules keeps the mined rules that fix more of them than they break.
    oof = output / "train.oof.parquet" if mining["select_folds"] else None
    if oof is not None:
        oof_settings = {"folds": mining["select_folds"], "epochs": config["seesaw"]["epochs"], "images": images,
                        "seed": mining["seed"]}
        runner.step("predict-train-oof", [tables["train"]], oof_settings, [oof],
                    lambda: steps.out_of_fold(tables["train"], oof, oof_settings))
    mine_oof = oof if mining["model_aware"] else None
    rules = [output / "rules" / f"{task}.kdsl" for task in mining["tasks"]]
    for task, path in zip(mining["tasks"], rules):
        runner.step(f"mine-{task}", [tables["train"], *([mine_oof] if mine_oof else [])], mining, [path],
                    lambda t=task, p=path: steps.mine(tables["train"], p, t, mining, log, mine_oof))

    selection = output / "selection.json"
    # The kept rules, in their own folder: `kdsl check rules/` must not see every rule twice.
    selected = [output / "rules-selected" / path.name for path in rules]
    runner.step("select-rules", [tables["train"], *([oof] if oof else []), *rules],
                {"tasks": mining["tasks"], "select_folds": mining["select_folds"]}, [selection, *selected],
                lambda: steps.select_rules(tables["train"], oof, rules, selected, selection, mining["tasks"], log))

    models = {v: output / f"model-{v}" for v in VARIANTS}
    predicted = {v: output / f"dev.pred-{v}.parquet" for v in VARIANTS}
    scored = {v: output / f"dev.scored-{v}.parquet" for v in VARIANTS}
    for variant in VARIANTS:
        settings = {**config["model"], "flip": variant == "flip", "images": images}
        runner.step(f"train-{variant}", [tables["train"]], settings, [models[variant]],
                    lambda v=variant, s=settings: steps.train(tables["train"], models[v], s, log))
        runner.step(f"predict-{variant}", [tables["dev"], models[variant]], {"images": images},
                    [predicted[variant]], lambda v=variant: steps.predict(tables["dev"], models[v], predicted[v], images))
        runner.step(f"score-{variant}", [predicted[variant], selection, *selected], {}, [scored[variant]],
                    lambda v=variant: steps.score(predicted[v], steps.kept_rules(selection, selected), scored[v]))

    evaluation = output / "evaluation.json"
    # The rule files are inputs of evaluate and report too: after a hand edit of a rule the
    # evaluation and report.md are redone even when the scored tables come out the same.
    runner.step("evaluate", [*scored.values(), *rules], {"tasks": mining["tasks"]}, [evaluation],
                lambda: steps.evaluate(scored, evaluation, mining["tasks"]))
    seesaw = output / "seesaw.json"
    seesaw_settings = {**config["seesaw"], "images": images}
    runner.step("seesaw", [tables["train"], tables["dev"]], seesaw_settings, [seesaw],
                lambda: steps.seesaw(tables["train"], tables["dev"], seesaw, seesaw_settings, log))
    report = output / "report.md"
    runner.step("report", [evaluation, seesaw, selection, scored["flip"], scored["noflip"], *rules], {}, [report],
                lambda: steps.report(output, evaluation, seesaw, selection, scored, report, log))
    return runner.outcomes
