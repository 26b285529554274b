"""``kdsl demo``: the pipeline on the bundled sample, ending with the ablation table; the tutorial's
(docs/tutorial.md) loop (edit a mined rule, check, rerun) works on its output."""

import json

import pytest
from click.testing import CliRunner

import kdsl.cli.pipeline
from kdsl.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "kdsl-demo"
    with pytest.MonkeyPatch.context() as patch:  # fewer epochs and seeds: the plumbing, not the scores
        patch.setattr(kdsl.cli.pipeline, "DEMO_CONFIG", kdsl.cli.pipeline.DEMO_CONFIG
                      .replace("epochs = 25", "epochs = 2").replace("seeds = [0, 1, 2]", "seeds = [0]"))
        result = CliRunner().invoke(main, ["demo", "-o", str(folder)])
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_demo_ends_with_the_ablation_table(demo):
    folder, output = demo
    table = output[output.index("| setting | DIS | ISS | OSS |"):]
    for row in ("model alone", "+ augmentation", "+ rule engine", "both = KDSL"):
        assert f"| {row} |" in table
    evaluation = json.loads((folder / "evaluation.json").read_text())
    oss = evaluation["variants"]["flip"]["report"]["scores"]["final"]["OSS"]
    assert f"| both = KDSL | " in table and f"{oss:.4f} |" in table.split("both = KDSL")[1].splitlines()[0]
    assert (folder / "report.md").exists() and (folder / "demo.toml").exists()


def test_the_mined_rules_check_and_their_examples_pass(demo):
    folder, _ = demo
    assert "rule " in (folder / "rules" / "intent.kdsl").read_text(encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(main, ["check", str(folder / "rules")]).exit_code == 0
    tested = runner.invoke(main, ["test", str(folder / "rules")])
    assert tested.exit_code == 0, tested.output


def test_an_edited_rule_reruns_only_scoring_and_the_report(demo):
    folder, _ = demo
    rules = folder / "rules" / "intent.kdsl"
    original = rules.read_text(encoding="utf-8")
    try:
        label = original.split('labels intent = [\n    "', 1)[1].split('"', 1)[0]
        rules.write_text(original + f'\n# a rule writer\'s edit\nrule every_dialogue: intent = "{label}"\n'
                         '    when len(user) >= 0\n    priority 1000\n', encoding="utf-8")
        result = CliRunner().invoke(main, ["pipeline", str(folder / "demo.toml")])
        assert result.exit_code == 0, result.output
        for step in ("score-flip", "score-noflip", "evaluate", "report"):
            assert f"{step}: running" in result.output
        for step in ("mine-intent", "train-flip", "predict-flip", "seesaw"):
            assert f"{step}: up to date, skipped" in result.output
        assert "every_dialogue" in rules.read_text(encoding="utf-8")  # the edit is kept
        evaluation = json.loads((folder / "evaluation.json").read_text())
        assert {r["rule"] for r in evaluation["variants"]["flip"]["rules"] if r["task"] == "intent"} == {"every_dialogue"}
    finally:
        rules.write_text(original, encoding="utf-8")


def test_demo_toml_names_nothing_outside_its_folder(demo):
    """A path into the installed package breaks when the venv moves; the images are copied."""
    folder, _ = demo
    text = (folder / "demo.toml").read_text(encoding="utf-8")
    assert "site-packages" not in text and '= "/' not in text
    assert len(list((folder / "input" / "images").iterdir())) > 0


def test_demo_spells_out_the_scores_and_says_the_sample_cannot_rank_the_rows(demo):
    _, output = demo
    assert "DIS: Dialogue Intent Score" in output and "ISS: Image Scene Score" in output
    assert "OSS: Overall Score" in output and "too small to rank these rows" in output


def test_each_training_step_logs_one_line_not_one_per_epoch(demo):
    _, output = demo
    epoch_lines = [line for line in output.splitlines() if "epoch" in line]
    assert len([line for line in epoch_lines if line.startswith("train:")]) == 2, epoch_lines  # flip, noflip
    assert not any(": epoch " in line and not line.startswith("train:") for line in epoch_lines), epoch_lines


def test_a_rule_edit_that_changes_no_row_still_reruns_evaluate_and_report(demo):
    folder, _ = demo
    rules = folder / "rules" / "intent.kdsl"
    original = rules.read_text(encoding="utf-8")
    try:
        rules.write_text(original + "\n# a rule writer's note: nothing else changes\n", encoding="utf-8")
        result = CliRunner().invoke(main, ["pipeline", str(folder / "demo.toml")])
        assert result.exit_code == 0, result.output
        for step in ("evaluate", "report"):
            assert f"{step}: running (changed: " in result.output and "rules/intent.kdsl" in result.output
    finally:
        rules.write_text(original, encoding="utf-8")
