"""`kdsl import tianchi` and `kdsl export tianchi`: outputs, reports, exit codes, atomic writes."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_invoke import run


TMM_SIM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tmm-sim"
SCENE = "Picture 1: <image>\n你是一个电商领域识图专家。分类标签:[\"退款页面\",\"退货页面\"]。"
DIALOGUE = ("请根据用户与客服的多轮对话判断用户的意图分类标签。\n<用户与客服的对话 START>\n用户: {text}\n"
            "客服: \n<用户与客服的对话 END>\n以下是可以参考的分类标签为：[\"气泡\"]")


def scene(sample_id, label="退款页面", **fields):
    return {"id": sample_id, "instruction": SCENE, "input": "", "output": label,
            "image": [f"{sample_id}-0.jpg"], **fields}


def intent(sample_id, text="有气泡", label="气泡"):
    return {"id": sample_id, "instruction": DIALOGUE.format(text=text), "input": "", "output": label, "image": []}


def write_json(path, samples):
    path.write_text(json.dumps(samples, ensure_ascii=False), encoding="utf-8")
    return path


def leftovers(folder):
    """Temporary files that an atomic write would leave behind if it failed to clean up."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def tmm_sim():
    if not (TMM_SIM / "train.json").exists():
        pytest.skip(f"the shared tmm-sim data is not at {TMM_SIM}")
    return TMM_SIM


# --- import ----------------------------------------------------------------------------------

@pytest.mark.parametrize("split, intent_rows, scene_rows", [("train", 300, 700), ("dev", 150, 350)])
def test_import_of_tmm_sim(tmm_sim, tmp_path, split, intent_rows, scene_rows):
    out = tmp_path / f"{split}.parquet"
    code, output = run("import", "tianchi", tmm_sim / f"{split}.json", "-o", out, "--images", tmm_sim / "images")
    assert code == 0, output
    rows = intent_rows + scene_rows
    assert f"imported {rows} rows ({intent_rows} intent, {scene_rows} scene; {rows} labelled)" in output
    assert "warning" not in output
    table = pq.read_table(out)
    assert table.num_rows == rows
    assert Counter(table.column("task").to_pylist()) == {"intent": intent_rows, "scene": scene_rows}
    samples = json.loads((tmm_sim / f"{split}.json").read_text(encoding="utf-8"))
    assert Counter(table.column("label").to_pylist()) == Counter(s["output"] for s in samples)


def test_a_bad_row_names_its_id_or_index_exits_2_and_writes_nothing(tmp_path):
    source = write_json(tmp_path / "in.json", [scene("a"), scene("b", image=[]), {"instruction": SCENE}])
    out = tmp_path / "out.parquet"
    code, output = run("import", "tianchi", source, "-o", out)
    assert code == 2
    assert output.startswith(f"error: {source}: 2 of 3 sample(s) cannot be imported (--skip-bad imports the rest):")
    assert "item 1 (id 'b'): 0 image file(s) for 1 <image> placeholder(s)" in output
    assert "item 2: missing 'id'" in output
    assert not out.exists() and leftovers(tmp_path) == []


def test_skip_bad_writes_the_rejects_with_their_reasons(tmp_path):
    bad = {"id": "c", "instruction": 7}
    source = write_json(tmp_path / "in.json", [scene("a"), intent("b"), bad])
    out = tmp_path / "out.parquet"
    code, output = run("import", "tianchi", source, "-o", out, "--skip-bad")
    assert code == 0, output
    assert "imported 2 rows (1 intent, 1 scene; 2 labelled)" in output
    assert f"skipped 1 bad sample(s) -> {tmp_path / 'out.rejects.jsonl'}" in output
    assert pq.read_table(out).column("id").to_pylist() == ["a", "b"]
    rejects = [json.loads(line) for line in (tmp_path / "out.rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rejects == [{"where": "item 2", "id": "c", "reason": "'instruction' is not a string", "sample": bad}]


def test_skip_bad_with_nothing_importable_is_still_an_error(tmp_path):
    source = write_json(tmp_path / "in.json", [{"id": "a"}])
    code, output = run("import", "tianchi", source, "-o", tmp_path / "out.parquet", "--skip-bad")
    assert code == 2 and "none of the 1 sample(s) can be imported" in output
    assert list(tmp_path.iterdir()) == [source]


def test_a_test_set_without_output_imports_with_null_labels(tmp_path):
    samples = [scene("a"), intent("b")]
    for sample in samples:
        del sample["output"]
    code, output = run("import", "tianchi", write_json(tmp_path / "test.json", samples), "-o", tmp_path / "t.parquet")
    assert code == 0 and "0 labelled" in output
    assert pq.read_table(tmp_path / "t.parquet").column("label").to_pylist() == [None, None]


def test_missing_images_are_reported_once_and_are_not_fatal(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a-0.jpg").write_bytes(b"jpeg")
    source = write_json(tmp_path / "in.json", [scene(f"{k}") for k in "abcdefgh"])
    code, output = run("import", "tianchi", source, "-o", tmp_path / "out.parquet", "--images", images)
    assert code == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("warning")]
    assert warnings == [f"warning: 7 of 8 image file(s) not found under {images}: "
                        "'b-0.jpg', 'c-0.jpg', 'd-0.jpg', 'e-0.jpg', 'f-0.jpg' and 2 more"]


def test_json_lines_import(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(s, ensure_ascii=False) for s in [scene("a"), intent("b")]), encoding="utf-8")
    code, output = run("import", "tianchi", source, "-o", tmp_path / "out.parquet")
    assert code == 0 and "imported 2 rows" in output, output


@pytest.mark.parametrize("content, message", [
    ("hello", "not JSON (Expecting value)"),
    ('{"id": "a"}', "expected a JSON list of samples, found a JSON object"),
    ("[]", "no samples"),
])
def test_input_that_is_not_a_json_list_exits_2(tmp_path, content, message):
    source = tmp_path / "in.json"
    source.write_text(content, encoding="utf-8")
    code, output = run("import", "tianchi", source, "-o", tmp_path / "out.parquet")
    assert code == 2 and output.startswith("error: ") and message in output
    assert "Traceback" not in output and not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("problem", ["missing_input", "missing_images_dir", "no_output_folder", "same_path"])
def test_import_usage_problems_exit_2(tmp_path, problem):
    source = write_json(tmp_path / "in.json", [scene("a")])
    args = [source, "-o", tmp_path / "out.parquet"]
    if problem == "missing_input":
        args[0] = tmp_path / "nope.json"
    elif problem == "missing_images_dir":
        args += ["--images", tmp_path / "nope"]
    elif problem == "no_output_folder":
        args[2] = tmp_path / "nope" / "out.parquet"
    else:
        args[2] = source
    code, output = run("import", "tianchi", *args)
    assert code == 2 and output.startswith("error: ") and "Traceback" not in output, output


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def failing(table, where, **kwargs):
        Path(where).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", failing)
    source = write_json(tmp_path / "in.json", [scene("a")])
    code, _ = run("import", "tianchi", source, "-o", tmp_path / "out.parquet", "--skip-bad")
    assert code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json"]


# --- export ----------------------------------------------------------------------------------

def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_export_round_trip_takes_each_rows_task_column(tmp_path):
    source = write_json(tmp_path / "in.json", [scene("a"), intent("b"), scene("c", label="退货页面")])
    imported = tmp_path / "in.parquet"
    assert run("import", "tianchi", source, "-o", imported)[0] == 0
    table = pq.read_table(imported)
    labels = table.column("label").to_pylist()
    # what `kdsl score` would add: one column per target, null on rows of the other task
    table = table.append_column("intent", pa.array([l if t == "intent" else None for l, t in zip(labels, table.column("task").to_pylist())]))
    table = table.append_column("scene", pa.array([l if t == "scene" else None for l, t in zip(labels, table.column("task").to_pylist())]))
    pq.write_table(table, tmp_path / "scored.parquet")
    code, output = run("export", "tianchi", tmp_path / "scored.parquet", "-o", tmp_path / "submit.csv")
    assert code == 0 and "exported 3 rows" in output, output
    assert read_csv(tmp_path / "submit.csv") == [["id", "predict"], ["a", "退款页面"], ["b", "气泡"], ["c", "退货页面"]]
    assert (tmp_path / "submit.csv").read_bytes().startswith(b"id,predict\n")


def scored(tmp_path, **columns):
    path = tmp_path / "scored.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "task": ["intent", "scene"], **columns}), path)
    return path


def test_export_falls_back_to_model_label_when_the_task_column_is_absent(tmp_path):
    source = scored(tmp_path, intent=["气泡", None], model_label=["x", "退款页面"])
    assert run("export", "tianchi", source, "-o", tmp_path / "s.csv")[0] == 0
    assert read_csv(tmp_path / "s.csv")[1:] == [["a", "气泡"], ["b", "退款页面"]]


def test_target_column_overrides_for_every_row_or_one_task(tmp_path):
    source = scored(tmp_path, intent=["气泡", None], scene=[None, "退款页面"], label=["l1", "l2"])
    assert run("export", "tianchi", source, "-o", tmp_path / "s.csv", "--target-column", "label")[0] == 0
    assert read_csv(tmp_path / "s.csv")[1:] == [["a", "l1"], ["b", "l2"]]
    assert run("export", "tianchi", source, "-o", tmp_path / "s.csv", "--target-column", "scene=label")[0] == 0
    assert read_csv(tmp_path / "s.csv")[1:] == [["a", "气泡"], ["b", "l2"]]
    code, output = run("export", "tianchi", source, "-o", tmp_path / "s.csv", "--target-column", "nope")
    assert code == 2 and "no column 'nope'" in output


def test_rows_without_a_prediction_are_listed_unless_allowed(tmp_path):
    source = scored(tmp_path, intent=[None, None], scene=[None, "退款页面"])
    out = tmp_path / "s.csv"
    code, output = run("export", "tianchi", source, "-o", out)
    assert code == 2 and "1 row(s) without a prediction (--allow-missing writes them empty): 'a'" in output
    assert not out.exists() and leftovers(tmp_path) == []
    code, output = run("export", "tianchi", source, "-o", out, "--allow-missing")
    assert code == 0 and "1 without a prediction" in output
    assert read_csv(out)[1:] == [["a", ""], ["b", "退款页面"]]


@pytest.mark.parametrize("table, message", [
    ({"id": ["a", "a"], "task": ["scene", "scene"], "scene": ["x", "y"]}, "1 id(s) on more than one row: 'a'"),
    ({"id": ["a"], "scene": ["x"]}, "no 'task' column"),
    ({"task": ["scene"], "scene": ["x"]}, "no 'id' column"),
    ({"id": ["a"], "task": ["scene"]}, "no column 'scene' or 'model_label'"),
])
def test_export_input_problems_exit_2(tmp_path, table, message):
    pq.write_table(pa.table(table), tmp_path / "scored.parquet")
    code, output = run("export", "tianchi", tmp_path / "scored.parquet", "-o", tmp_path / "s.csv")
    assert code == 2 and message in output, output
    assert not (tmp_path / "s.csv").exists()


def test_a_failed_export_leaves_no_file(tmp_path, monkeypatch):
    import kdsl.data.submission as submission

    def failing(path, pairs):
        Path(path).write_text("id,predict\n", encoding="utf-8")
        raise KeyboardInterrupt

    monkeypatch.setattr(submission, "write_submission", failing)
    source = scored(tmp_path, intent=["气泡", None], scene=[None, "退款页面"])
    code, _ = run("export", "tianchi", source, "-o", tmp_path / "s.csv")
    assert code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored.parquet"]
