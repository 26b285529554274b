"""``kdsl eval``: model alone, rules alone and final prediction, as text, JSON and PNGs."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from kdsl.cli import main
from cli_invoke import run


def write(tmp_path, columns, name="scored.parquet"):
    path = tmp_path / name
    pq.write_table(pa.table(columns), path)
    return path


# Five labelled intent rows, two labelled scene rows, one unlabelled row. Rules decide two intent
# rows (one rightly) and one scene row (rightly); elsewhere the model's answer passes through.
FULL = {
    "id": list("abcdefgh"),
    "task": ["intent"] * 5 + ["scene"] * 3,
    "label": ["退款", "退款", "物流", "物流", "发货", "退款页面", "支付页面", None],
    "model_label": ["物流", "退款", "物流", "退款", None, "支付页面", "支付页面", "退款页面"],
    "intent": ["退款", "退款", "发货", "退款", None, None, None, None],
    "intent_rule": ["r1", None, "r2", None, None, None, None, None],
    "intent_source": ["rule", "model", "rule", "model", None, None, None, None],
    "scene": [None] * 5 + ["退款页面", "支付页面", "退款页面"],
    "scene_rule": [None] * 5 + ["s1", None, None],
    "scene_source": [None] * 5 + ["rule", "model", "model"],
}


def test_text_report_puts_model_rules_and_final_side_by_side(tmp_path):
    code, out = run("eval", write(tmp_path, FULL))
    assert code == 0, out
    assert "7 labelled rows (5 intent, 2 scene); 1 without a label skipped" in out
    lines = out.splitlines()
    start = lines.index(next(line for line in lines if line.split() == ["DIS", "ISS", "OSS"]))
    names = [line.split("  ")[0] for line in lines[start + 2:start + 6]]
    assert names == ["model", "rules coverage", "rules precision", "final"]
    assert lines[start + 3].split()[2:] == ["40.0%", "(2)", "50.0%", "(1)", "42.9%", "(3)"]
    assert lines[start + 4].split()[2:] == ["50.0%", "100.0%", "66.7%"]
    assert "rows without a prediction (counted as wrong): model 1, final 1" in out
    assert "final prediction, intent:" in out and "final prediction, scene:" in out
    assert "Traceback" not in out


def test_json_report_has_every_number(tmp_path):
    code, out = run("eval", write(tmp_path, FULL), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["rows"] == {"total": 8, "labelled": 7, "unlabelled": 1, "by_task": {"intent": 5, "scene": 2}}
    assert set(report["scores"]) == {"model", "final"}
    final = report["scores"]["final"]
    # intent final: 退款 退款 | 发货 退款 | None  vs  退款 退款 物流 物流 发货
    # 退款: tp2 fp1 fn0 -> 0.8 (support 2); 物流: tp0 fn2 -> 0 (2); 发货: tp0 fp1 fn1 -> 0 (1)
    assert final["DIS"] == pytest.approx(0.8 * 2 / 5)
    assert final["ISS"] == 1.0
    assert report["rules"]["ISS"] == {"rows": 2, "decided": 1, "correct": 1, "coverage": 0.5, "precision": 1.0}
    assert report["unpredicted"] == {"model": 1, "final": 1}
    assert report["per_label"]["prediction"] == "final"
    intent = {row["label"]: row for row in report["per_label"]["tasks"]["intent"]}
    assert intent["退款"] == {"label": "退款", "precision": pytest.approx(2 / 3), "recall": 1.0,
                              "f1": pytest.approx(0.8), "support": 2, "predicted": 3}


def test_rules_coverage_counts_only_rows_a_rule_decided(tmp_path):
    report = json.loads(run("eval", write(tmp_path, FULL), "--json")[1])
    # intent rows decided by a rule: a (right) and c (wrong); scene: f (right); g is the model's
    assert report["rules"]["DIS"] == {"rows": 5, "decided": 2, "correct": 1, "coverage": 0.4, "precision": 0.5}
    assert report["rules"]["OSS"] == {"rows": 7, "decided": 3, "correct": 2,
                                      "coverage": pytest.approx(3 / 7), "precision": pytest.approx(2 / 3)}


def test_without_model_columns_the_model_row_is_omitted(tmp_path):
    columns = {k: v for k, v in FULL.items() if not k.startswith("model")}
    code, out = run("eval", write(tmp_path, columns), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert set(report["scores"]) == {"final"}
    assert "model" not in run("eval", write(tmp_path, columns))[1].split()


def test_without_rule_outputs_only_the_model_is_scored(tmp_path):
    columns = {k: FULL[k] for k in ("id", "task", "label", "model_label")}
    code, out = run("eval", write(tmp_path, columns), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert set(report["scores"]) == {"model"} and "rules" not in report
    assert report["per_label"]["prediction"] == "model"
    code, out = run("eval", write(tmp_path, columns))
    assert "rules coverage" not in out and "model prediction, intent:" in out


def test_a_task_the_rules_have_no_target_for_keeps_the_models_answer(tmp_path):
    columns = {k: v for k, v in FULL.items() if not k.startswith("scene")}
    report = json.loads(run("eval", write(tmp_path, columns), "--json")[1])
    assert report["scores"]["final"]["ISS"] == report["scores"]["model"]["ISS"]


def test_without_a_task_column_rows_take_the_one_target(tmp_path):
    columns = {k: FULL[k][:5] for k in ("label", "model_label", "intent", "intent_rule", "intent_source")}
    report = json.loads(run("eval", write(tmp_path, columns), "--json")[1])
    assert report["rows"]["by_task"] == {"intent": 5}
    assert report["scores"]["final"]["DIS"] == report["scores"]["final"]["OSS"]


def test_without_a_task_column_several_targets_need_task(tmp_path):
    columns = {k: v for k, v in FULL.items() if k != "task"}
    path = write(tmp_path, columns)
    code, out = run("eval", path)
    assert code == 2
    assert "no 'task' column and several targets (intent, scene)" in out
    code, out = run("eval", path, "--task", "scene", "--json")
    assert code == 0, out
    assert json.loads(out)["rows"]["by_task"] == {"scene": 7}


def test_model_only_without_tasks_scores_oss_alone(tmp_path):
    report = json.loads(run("eval", write(tmp_path, {"label": ["a", "b"], "model_label": ["a", "a"]}), "--json")[1])
    assert report["scores"]["model"]["DIS"] is None and report["scores"]["model"]["OSS"] == pytest.approx(1 / 3)
    assert set(report["per_label"]["tasks"]) == {"all"}


@pytest.mark.parametrize("columns, message", [
    ({"model_label": ["a"]}, "no 'label' column"),
    ({"label": ["a"], "user": ["x"]}, "nothing to evaluate"),
    ({"label": pa.array([None, None], pa.string()), "model_label": ["a", "b"]}, "no labelled rows"),
    ({"label": [[1], [2]], "model_label": ["a", "b"]}, "column 'label' is list<"),
])
def test_unusable_tables_exit_2(tmp_path, columns, message):
    code, out = run("eval", write(tmp_path, columns))
    assert code == 2
    assert out.startswith("error: ") and message in out
    assert "Traceback" not in out


def test_missing_and_non_parquet_files_exit_2(tmp_path):
    code, out = run("eval", tmp_path / "nope.parquet")
    assert code == 2 and "no such file" in out
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    code, out = run("eval", bad)
    assert code == 2 and "not a readable Parquet file" in out


def test_scored_by_the_engine_end_to_end(tmp_path):
    rules = tmp_path / "r.kdsl"
    rules.write_text('rule leak: intent = "漏水" when user has "漏水"\n', encoding="utf-8")
    data = write(tmp_path, {"id": ["a", "b"], "task": ["intent", "intent"], "user": ["漏水了", "你好"],
                            "label": ["漏水", "排水"], "model_label": ["排水", "排水"]}, "in.parquet")
    scored = tmp_path / "out.parquet"
    assert run("score", data, "-r", rules, "-o", scored)[0] == 0
    report = json.loads(run("eval", scored, "--json")[1])
    assert report["scores"]["model"]["DIS"] == pytest.approx(1 / 3)
    assert report["scores"]["final"]["DIS"] == 1.0
    assert report["rules"]["DIS"]["coverage"] == 0.5


PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_one_png_per_task_and_prediction(tmp_path):
    folder = tmp_path / "plots"
    code, out = run("eval", write(tmp_path, FULL), "--plot", folder)
    assert code == 0, out
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["confusion-final-intent.png", "confusion-final-scene.png",
                     "confusion-model-intent.png", "confusion-model-scene.png"]
    assert all((folder / n).read_bytes().startswith(PNG) for n in names)


def test_plot_without_a_cjk_font_warns_and_still_writes(tmp_path, monkeypatch):
    import kdsl.plots

    monkeypatch.setattr(kdsl.plots, "cjk_font", lambda: None)
    columns = {k: FULL[k] for k in ("task", "label", "model_label")}
    result = CliRunner().invoke(main, ["eval", str(write(tmp_path, columns)), "--plot", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert "no CJK font found" in result.output
    assert (tmp_path / "p" / "confusion-model-intent.png").read_bytes().startswith(PNG)


def test_plot_into_a_file_exits_2(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("")
    code, out = run("eval", write(tmp_path, FULL), "--plot", taken / "sub")
    assert code == 2 and out.startswith("error: --plot") and "Traceback" not in out


def test_plot_into_a_file_without_a_cjk_font_puts_the_error_first(tmp_path, monkeypatch):
    """On a machine without a CJK font the font warning must not come before the error."""
    import kdsl.plots

    monkeypatch.setattr(kdsl.plots, "cjk_font", lambda: None)
    taken = tmp_path / "taken"
    taken.write_text("")
    code, out = run("eval", write(tmp_path, FULL), "--plot", taken / "sub")
    assert code == 2 and out.startswith("error: --plot") and "no CJK font" not in out


def test_an_installed_cjk_font_is_found():
    """CI installs one (fonts-wqy-microhei); the finder must see it even if matplotlib's font cache
    predates it. Without one on this machine there is nothing to find."""
    from pathlib import Path

    from matplotlib import font_manager

    from kdsl.plots import CJK_FILES, cjk_font

    files = [f for f in font_manager.findSystemFonts() if any(p in Path(f).name.lower() for p in CJK_FILES)]
    if not files:
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-microhei)")
    assert cjk_font() is not None
