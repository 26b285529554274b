"""The baseline exported to ONNX: onnxruntime gives the torch model's labels and scores (within
1e-4), with and without images, for joint and separate networks; bad export directories are
AdapterErrors; onnxruntime is imported with its telemetry off."""

import json
import os

import pytest

import kdsl.adapters
from kdsl.adapters import AdapterError
from kdsl.adapters.baseline import BaselineAdapter

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
baseline_onnx = pytest.importorskip("kdsl.adapters.baseline_onnx")

TINY = {"buckets": 2 ** 10, "text_dim": 8, "image_size": 16, "hidden": 16, "epochs": 10, "batch_size": 8,
        "learning_rate": 1e-2}


def scores(table):
    return [[entry["score"] for entry in topk or []] for topk in table.column("model_topk").to_pylist()]


@pytest.mark.parametrize("tasks", ["joint", "separate"])
def test_onnxruntime_matches_torch(synthetic, tmp_path, tasks):
    table, root = synthetic
    BaselineAdapter.train(table, images=root, tasks=tasks, **TINY).save(tmp_path / "model")
    files = kdsl.adapters.export(tmp_path / "model", tmp_path / "export")
    assert files == (["network0.onnx"] if tasks == "joint" else ["network0.onnx", "network1.onnx"])
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == sorted(files + ["config.json"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export")]  # atomic: no leftovers
    torch_model = BaselineAdapter.load(tmp_path / "model")
    onnx_model = baseline_onnx.OnnxBaselineAdapter.load(tmp_path / "export")
    assert onnx_model.labels == torch_model.labels and onnx_model.settings == torch_model.settings
    assert onnx_model.providers[-1] == "CPUExecutionProvider"
    # With images and without (then no image at all reaches the graph: an empty batch of them);
    # the separate scene network sees rows without any text (an empty batch of ids).
    for images in (root, None):
        expected, got = torch_model.predict(table, images=images), onnx_model.predict(table, images=images)
        assert got.column("model_label").to_pylist() == expected.column("model_label").to_pylist()
        for want, have in zip(scores(expected), scores(got)):
            assert have == pytest.approx(want, abs=1e-4)
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"


def test_bad_export_directories_are_adapter_errors(synthetic, tmp_path):
    table, root = synthetic
    BaselineAdapter.train(table, images=root, **{**TINY, "epochs": 1}).save(tmp_path / "model")
    with pytest.raises(AdapterError, match="not an ONNX export"):
        baseline_onnx.OnnxBaselineAdapter.load(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "config.json").write_text(json.dumps({**config, "runtime": "onnx", "networks": {"joint": "network0.onnx"}}))
    with pytest.raises(AdapterError, match="no network0.onnx"):
        baseline_onnx.OnnxBaselineAdapter.load(fake)
    (fake / "network0.onnx").write_bytes(b"not a model")
    with pytest.raises(AdapterError, match="onnxruntime cannot load it"):
        baseline_onnx.OnnxBaselineAdapter.load(fake)
    with pytest.raises(AdapterError, match="--runtime onnx"):
        BaselineAdapter.load(fake)
