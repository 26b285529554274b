"""``kdsl pipeline``: every artefact, the ablation report, reruns that skip, config errors."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import kdsl.engine
from kdsl.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "kdsl" / "samples"


def _config(folder: Path, **extra) -> Path:
    table = pq.read_table(SAMPLE / "sample.parquet")
    pq.write_table(table.take([i for i in range(table.num_rows) if i % 3]), folder / "train.parquet")
    pq.write_table(table.take([i for i in range(table.num_rows) if i % 3 == 0]), folder / "dev.parquet")
    text = (f'output = "out"\n[data]\ntrain_table = "train.parquet"\ndev_table = "dev.parquet"\n'
            f'images = "{(SAMPLE / "images").as_posix()}"\n[ocr]\nenabled = false\n'
            f'[mining]\nseed = 0\nmin_reward = {extra.get("min_reward", 0.5)}\ntasks = ["intent"]\n'
            f'[model]\nadapter = "baseline"\nepochs = 1\nseed = 0\n'
            f'[seesaw]\nseeds = [0, 1]\n')
    path = folder / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _run(config):
    return CliRunner().invoke(main, ["pipeline", str(config)])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline")
    config = _config(folder)
    result = _run(config)
    assert result.exit_code == 0, result.output
    return folder, config


def test_every_artefact_is_written(finished):
    out = finished[0] / "out"
    for name in ("train.parquet", "dev.parquet", "rules/intent.kdsl", "model-flip/config.json",
                 "model-noflip/config.json", "dev.pred-flip.parquet", "dev.scored-noflip.parquet",
                 "evaluation.json", "report.md", ".steps.json"):
        assert (out / name).exists(), name
    assert not list(out.glob("*.ocr.parquet"))  # OCR is off
    flip = json.loads((out / "model-flip" / "config.json").read_text())["settings"]["flip"]
    noflip = json.loads((out / "model-noflip" / "config.json").read_text())["settings"]["flip"]
    assert (flip, noflip) == (True, False)
    scored = pq.read_table(out / "dev.scored-flip.parquet")
    assert {"model_label", "intent", "intent_rule", "intent_source"} <= set(scored.column_names)


def test_report_has_the_four_ablation_rows(finished):
    report = (finished[0] / "out" / "report.md").read_text(encoding="utf-8")
    for row in ("| model alone |", "| + augmentation |", "| + rule engine |", "| both = KDSL |"):
        assert row in report
    assert "| DIS | ISS | OSS |" in report
    assert "Rules that changed the most predictions" in report


def test_report_states_the_rule_gain_the_seesaw_and_its_charts(finished):
    out = finished[0] / "out"
    report = (out / "report.md").read_text(encoding="utf-8")
    evaluation = json.loads((out / "evaluation.json").read_text())
    model = evaluation["variants"]["noflip"]["report"]["scores"]["model"]["OSS"]
    final = evaluation["variants"]["noflip"]["report"]["scores"]["final"]["OSS"]
    assert f"OSS {model:.4f} → {final:.4f} ({final - model:+.4f})" in report
    seesaw = json.loads((out / "seesaw.json").read_text())
    assert sorted((r["seed"], r["tasks"]) for r in seesaw["runs"]) == [
        (0, "joint"), (0, "separate"), (1, "joint"), (1, "separate")]
    assert "## Seesaw check" in report and "| joint |" in report and "| separate |" in report
    assert "Joint minus separate: DIS" in report
    pytest.importorskip("matplotlib")
    for name in ("ablation.png", "confusion-final-intent.png", "confusion-model-scene.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"]({name})" in report


def test_rule_sets_are_chosen_by_cross_validation_on_train(finished):
    out = finished[0] / "out"
    selection = json.loads((out / "selection.json").read_text())
    assert selection["folds"] == 3 and set(selection["tasks"]) == {"intent"}
    cell = selection["tasks"]["intent"]
    assert len(cell["model"]) == len(cell["rules"]) == 3
    # Per rule: kept when it fixes more held-out rows than it breaks, summed over the folds.
    assert set(cell["rule_net"]) == {r.name for r in kdsl.engine.load(out / "rules" / "intent.kdsl").rules}
    assert cell["kept_rules"] == sorted(name for name, net in cell["rule_net"].items() if net > 0)
    oof = pq.read_table(out / "train.oof.parquet")  # every training row, each predicted by one fold
    assert sorted(set(oof.column("fold").to_pylist())) == [0, 1, 2]
    selected = kdsl.engine.load(out / "rules-selected" / "intent.kdsl")
    assert sorted(r.name for r in selected.rules) == cell["kept_rules"]
    assert cell["kept"] == bool(cell["kept_rules"]) and selection["kept"] == (["intent"] if cell["kept"] else [])
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Rule sets used" in report and f"| intent | DIS |" in report
    scored = pq.read_table(out / "dev.scored-flip.parquet")
    assert ("intent_rule" in scored.column_names) == cell["kept"]


def test_select_folds_0_uses_every_rule_set(tmp_path):
    config = _config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace("min_reward", "select_folds = 0\nmin_reward"),
                      encoding="utf-8")
    assert _run(config).exit_code == 0
    assert json.loads((tmp_path / "out" / "selection.json").read_text())["kept"] == ["intent"]
    assert "intent_rule" in pq.read_table(tmp_path / "out" / "dev.scored-flip.parquet").column_names


def test_a_rerun_skips_every_step(finished):
    folder, config = finished
    steps = json.loads((folder / "out" / ".steps.json").read_text())
    assert {"import", "mine-intent", "select-rules", "train-flip", "train-noflip", "predict-flip", "score-noflip",
            "evaluate", "report"} <= set(steps)
    result = _run(config)
    assert result.exit_code == 0, result.output
    assert "13 skipped" in result.output and "0 step(s) ran" in result.output  # predict-train-oof is one
    assert "running" not in result.output


def test_a_changed_mining_section_reruns_only_what_depends_on_it(tmp_path):
    config = _config(tmp_path)
    assert _run(config).exit_code == 0
    _config(tmp_path, min_reward=0.6)
    result = _run(config)
    assert result.exit_code == 0, result.output
    for step in ("import", "train-flip", "train-noflip", "predict-flip", "predict-noflip"):
        assert f"{step}: up to date, skipped" in result.output
    assert "mine-intent: running" in result.output


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('output = "out"\n', ""), "missing key 'output'"),
    (lambda t: t + "colour = 1\n", "unknown key(s) in [seesaw]: colour"),
    (lambda t: t.replace('tasks = ["intent"]', 'tasks = ["intnet"]'), "[mining] tasks must be"),
    (lambda t: t.replace('tasks = ["intent"]', 'tasks = "intent"'), "[mining] tasks must be an array"),
    (lambda t: t.replace('seed = 0\nmin', 'proposer = "llm"\nseed = 0\nmin'), "llm_model"),
    (lambda t: t.replace('adapter = "baseline"', 'adapter = "qwen2vl"'), "[model] base"),
    (lambda t: t.replace('adapter = "baseline"', 'adapter = "bert"'), "[model] adapter must be one of"),
    (lambda t: t.replace("seeds = [0, 1]", 'seeds = ["a"]'), "[seesaw] seeds must be an array of integers"),
    (lambda t: t.replace("min_reward", "select_folds = 1\nmin_reward"), "select_folds must be 0"),
    (lambda t: t.replace("min_reward", "select_folds = 0\nmodel_aware = true\nmin_reward"),
     "model_aware mines against out-of-fold predictions"),
    (lambda t: t.replace("[ocr]", "[oops]\n[ocr]"), "unknown key(s) oops"),
    (lambda t: t.replace('"train.parquet"', '"missing.parquet"'), "no such file"),
    (lambda t: t.replace('train_table = "train.parquet"\n', ""), "exactly one of 'train'"),
    (lambda t: t.replace("epochs = 1", 'epochs = "one"'), "epochs must be int"),
    (lambda t: t.replace("[data]", "[data"), "not valid TOML"),
])
def test_a_bad_config_exits_2(tmp_path, edit, message):
    config = _config(tmp_path)
    config.write_text(edit(config.read_text(encoding="utf-8")), encoding="utf-8")
    result = _run(config)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_missing_config_exits_2(tmp_path):
    result = _run(tmp_path / "nope.toml")
    assert result.exit_code == 2 and "no such file" in result.output


def test_the_qwen2vl_adapter_runs_from_the_config(tmp_path, tiny_qwen2vl_dir):
    config = _config(tmp_path)
    for name, rows in (("train", 12), ("dev", 6)):  # a few rows: the plumbing, not the scores
        table = pq.read_table(tmp_path / f"{name}.parquet")
        pq.write_table(table.take(list(range(rows // 2)) + list(range(table.num_rows - rows // 2, table.num_rows))),
                       tmp_path / f"{name}.parquet")
    text = config.read_text(encoding="utf-8").replace(
        'adapter = "baseline"', f'adapter = "qwen2vl"\nbase = "{Path(tiny_qwen2vl_dir).as_posix()}"\n'
        'options = { gradient_accumulation = 4, cutoff = 256 }').replace("seeds = [0, 1]", "seeds = []")
    config.write_text(text, encoding="utf-8")
    result = _run(config)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    settings = {v: json.loads((out / f"model-{v}" / "config.json").read_text())["settings"] for v in ("flip", "noflip")}
    assert (settings["flip"]["flip_probability"], settings["noflip"]["flip_probability"]) == (0.5, 0.0)
    assert settings["flip"]["cutoff"] == 256
    assert pq.read_table(out / "dev.scored-flip.parquet").column("model_label").null_count == 0
    assert "Skipped ([seesaw] seeds is empty)" in (out / "report.md").read_text(encoding="utf-8")


def test_an_option_the_adapter_does_not_take_exits_2(tmp_path):
    config = _config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace('seed = 0\n[seesaw]', 'seed = 0\noptions = { colour = 1 }\n[seesaw]'),
                      encoding="utf-8")
    result = _run(config)
    assert result.exit_code == 2 and "colour" in result.output and "Traceback" not in result.output
