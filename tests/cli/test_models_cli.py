"""``kdsl train`` and ``kdsl predict``: end to end, and bad input as ``error: ...`` exit 2."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from cli_invoke import run



@pytest.fixture
def data(tmp_path):
    """(train.parquet, image root): 8 intent rows and 4 scene rows with one image each."""
    root = tmp_path / "images"
    root.mkdir()
    rows = [{"id": f"i{i}", "task": "intent", "user": ["我要退款", "何时发货"][i % 2],
             "image_paths": [], "label": ["退款", "发货"][i % 2]} for i in range(8)]
    for i in range(4):
        Image.new("RGB", (20, 40), [(255, 0, 0), (0, 0, 255)][i % 2]).save(root / f"s{i}.png")
        rows.append({"id": f"s{i}", "task": "scene", "user": None, "image_paths": [f"s{i}.png"],
                     "label": ["红", "蓝"][i % 2]})
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path, root


def test_train_then_predict_end_to_end(data, tmp_path):
    train, root = data
    code, out = run("train", train, "-o", tmp_path / "model", "--images", root, "--epochs", "2", "--seed", "3")
    assert code == 0, out
    assert "trained baseline on 12 rows (intent: 2 labels, scene: 2 labels)" in out
    assert json.loads((tmp_path / "model" / "config.json").read_text())["settings"]["seed"] == 3
    code, out = run("predict", train, "-m", tmp_path / "model", "-o", tmp_path / "pred.parquet",
                    "--images", root, "--batch-size", "5")
    assert code == 0, out
    table = pq.read_table(tmp_path / "pred.parquet")
    assert table.num_rows == 12
    assert table.column_names[-3:] == ["model_label", "model_score", "model_topk"]
    for row in table.to_pylist():
        assert row["model_label"] in ({"退款", "发货"} if row["task"] == "intent" else {"红", "蓝"})


def test_separate_tasks_and_the_precomputed_adapter(data, tmp_path):
    train, _ = data
    code, out = run("train", train, "-o", tmp_path / "sep", "--epochs", "1", "--tasks", "separate")
    assert code == 0, out
    assert json.loads((tmp_path / "sep" / "config.json").read_text())["networks"] == ["intent", "scene"]
    code, out = run("train", train, "-o", tmp_path / "pre", "--adapter", "precomputed")
    assert code == 0, out
    log = pa.table({"id": ["a"], "task": ["intent"], "model_label": ["退款"], "model_score": [0.5]})
    pq.write_table(log, tmp_path / "log.parquet")
    code, out = run("predict", tmp_path / "log.parquet", "-m", tmp_path / "pre", "-o", tmp_path / "p.parquet")
    assert code == 0, out
    assert pq.read_table(tmp_path / "p.parquet").column("model_topk").to_pylist() == [[{"label": "退款", "score": 0.5}]]


def test_a_rejected_prediction_leaves_no_output(data, tmp_path):
    train, _ = data
    run("train", train, "-o", tmp_path / "pre", "--adapter", "precomputed")
    log = pa.table({"id": ["a"], "task": ["intent"], "model_label": ["红"]})
    pq.write_table(log, tmp_path / "log.parquet")
    code, out = run("predict", tmp_path / "log.parquet", "-m", tmp_path / "pre", "-o", tmp_path / "p.parquet")
    assert code == 2 and "error:" in out and "'红' is not a intent label" in out
    assert not (tmp_path / "p.parquet").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".p.parquet")]


@pytest.mark.parametrize("case", ["missing input", "not parquet", "no model", "no label", "bad adapter",
                                  "no images dir"])
def test_bad_input_exits_2_with_an_error_line(data, tmp_path, case):
    train, _ = data
    (tmp_path / "junk.parquet").write_text("not parquet")
    pq.write_table(pa.table({"id": ["a"], "task": ["intent"]}), tmp_path / "unlabelled.parquet")
    args = {
        "missing input": ["train", tmp_path / "nope.parquet", "-o", tmp_path / "m"],
        "not parquet": ["train", tmp_path / "junk.parquet", "-o", tmp_path / "m"],
        "no model": ["predict", train, "-m", tmp_path / "nothing", "-o", tmp_path / "o.parquet"],
        "no label": ["train", tmp_path / "unlabelled.parquet", "-o", tmp_path / "m"],
        "bad adapter": ["train", train, "-o", tmp_path / "m", "--adapter", "qwen"],
        "no images dir": ["train", train, "-o", tmp_path / "m", "--images", tmp_path / "nowhere"],
    }[case]
    code, out = run(*args)
    assert code == 2, out
    assert out.startswith("error: ") and "Traceback" not in out
    assert not (tmp_path / "m").exists() and not (tmp_path / "o.parquet").exists()


def test_export_onnx_then_predict_with_onnxruntime(data, tmp_path):
    pytest.importorskip("onnxscript")
    train, root = data
    assert run("train", train, "-o", tmp_path / "model", "--images", root, "--epochs", "2")[0] == 0
    code, out = run("export-onnx", tmp_path / "model", "-o", tmp_path / "export")
    assert code == 0, out
    assert "exported" in out and "network0.onnx" in out
    assert json.loads((tmp_path / "export" / "config.json").read_text())["runtime"] == "onnx"
    code, out = run("predict", train, "-m", tmp_path / "export", "--runtime", "onnx",
                    "-o", tmp_path / "onnx.parquet", "--images", root, "--batch-size", "5")
    assert code == 0, out
    assert "predicted 12 rows (onnxruntime: CPUExecutionProvider) ->" in out
    code, out = run("predict", train, "-m", tmp_path / "model", "-o", tmp_path / "torch.parquet", "--images", root)
    assert code == 0, out
    by_onnx, by_torch = pq.read_table(tmp_path / "onnx.parquet"), pq.read_table(tmp_path / "torch.parquet")
    assert by_onnx.column("model_label").to_pylist() == by_torch.column("model_label").to_pylist()
    for a, b in zip(by_onnx.column("model_score").to_pylist(), by_torch.column("model_score").to_pylist()):
        assert a == pytest.approx(b, abs=1e-4)


@pytest.mark.parametrize("case", ["export a missing model", "export a precomputed model", "onnx runtime on a torch model",
                                  "torch runtime on an export", "not an onnx file", "export over the model"])
def test_bad_onnx_input_exits_2_with_an_error_line(data, tmp_path, case):
    train, _ = data
    run("train", train, "-o", tmp_path / "pre", "--adapter", "precomputed")
    run("train", train, "-o", tmp_path / "model", "--epochs", "1")
    fake = tmp_path / "fake"  # an export directory, as far as its config goes
    fake.mkdir()
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    (fake / "config.json").write_text(json.dumps({**config, "runtime": "onnx", "networks": {"joint": "network0.onnx"}}))
    (fake / "network0.onnx").write_bytes(b"not an onnx file")
    args = {
        "export a missing model": ["export-onnx", tmp_path / "nothing", "-o", tmp_path / "x"],
        "export a precomputed model": ["export-onnx", tmp_path / "pre", "-o", tmp_path / "x"],
        "onnx runtime on a torch model": ["predict", train, "-m", tmp_path / "model", "--runtime", "onnx",
                                          "-o", tmp_path / "o.parquet"],
        "torch runtime on an export": ["predict", train, "-m", fake, "-o", tmp_path / "o.parquet"],
        "not an onnx file": ["predict", train, "-m", fake, "--runtime", "onnx", "-o", tmp_path / "o.parquet"],
        "export over the model": ["export-onnx", tmp_path / "model", "-o", tmp_path / "model"],
    }[case]
    code, out = run(*args)
    assert code == 2, out
    assert out.startswith("error: ") and "Traceback" not in out
    assert not (tmp_path / "x").exists() and not (tmp_path / "o.parquet").exists()


def test_precomputed_column_options(data, tmp_path):
    train, _ = data
    code, out = run("train", train, "-o", tmp_path / "pre", "--adapter", "precomputed", "--label-column", "pred",
                    "--score-column", "prob")
    assert code == 0, out
    assert json.loads((tmp_path / "pre" / "config.json").read_text())["label_column"] == "pred"
    topk = [[{"label": "退款", "score": 0.7}, {"label": "发货", "score": 0.3}]]
    pq.write_table(pa.table({"id": ["a"], "task": ["intent"], "pred": ["退款"], "prob": [0.6], "best": topk,
                             "other": ["发货"]}), tmp_path / "log.parquet")
    code, out = run("predict", tmp_path / "log.parquet", "-m", tmp_path / "pre", "-o", tmp_path / "p.parquet")
    assert code == 0, out
    row = pq.read_table(tmp_path / "p.parquet").to_pylist()[0]
    assert (row["model_label"], row["model_score"]) == ("退款", pytest.approx(0.6))
    # predict's options override the model's columns; the score then comes from the top-k
    code, out = run("predict", tmp_path / "log.parquet", "-m", tmp_path / "pre", "-o", tmp_path / "q.parquet",
                    "--label-column", "other", "--score-column", "model_score", "--topk-column", "best")
    assert code == 0, out
    row = pq.read_table(tmp_path / "q.parquet").to_pylist()[0]
    assert (row["model_label"], row["model_score"]) == ("发货", pytest.approx(0.3))
    assert [entry["label"] for entry in row["model_topk"]] == ["退款", "发货"]


@pytest.mark.parametrize("args, message", [
    (["--score-column", "nope"], "no score column 'nope' in the input (its columns: id, task, pred)"),
    (["--label-column", "gone"], "no prediction column 'gone' in the input"),
    (["--topk-column", "pred"], "top-k column 'pred' is string, not list<struct<label: string, score: float>>"),
])
def test_precomputed_column_errors_name_the_column(data, tmp_path, args, message):
    train, _ = data
    assert run("train", train, "-o", tmp_path / "pre", "--adapter", "precomputed", "--label-column", "pred")[0] == 0
    pq.write_table(pa.table({"id": ["a"], "task": ["intent"], "pred": ["退款"]}), tmp_path / "log.parquet")
    code, out = run("predict", tmp_path / "log.parquet", "-m", tmp_path / "pre", "-o", tmp_path / "p.parquet", *args)
    assert code == 2 and message in out, out
    assert not (tmp_path / "p.parquet").exists()


def test_column_options_belong_to_precomputed(data, tmp_path):
    train, _ = data
    code, out = run("train", train, "-o", tmp_path / "m", "--label-column", "pred")
    assert code == 2 and "--label-column: only for --adapter precomputed, not baseline" in out, out
    assert run("train", train, "-o", tmp_path / "m", "--epochs", "1")[0] == 0
    code, out = run("predict", train, "-m", tmp_path / "m", "-o", tmp_path / "p.parquet", "--score-column", "x")
    assert code == 2 and "--score-column: only for a precomputed model" in out, out
