"""The baseline adapter: learns, keeps each row to its task's labels, saves without pickle,
reloads exactly, is deterministic under a seed and flips images while training."""

import json

import pyarrow as pa
import pytest
import torch

import kdsl.adapters
from kdsl.adapters import AdapterError
from kdsl.adapters import baseline as baseline_module
from kdsl.adapters.base import TOPK_TYPE
from kdsl.adapters.baseline import BaselineAdapter
from kdsl.io import atomic_directory

# Small enough to train in well under a second.
TINY = {"buckets": 2 ** 10, "text_dim": 8, "image_size": 16, "hidden": 16, "epochs": 30, "batch_size": 8,
            "learning_rate": 1e-2}


def train(table, root, **options):
    return BaselineAdapter.train(table, images=root, **{**TINY, **options})


def test_learns_both_tasks_and_answers_only_with_the_rows_task_labels(synthetic):
    table, root = synthetic
    out = train(table, root).predict(table, images=root)
    assert out.schema.field("model_topk").type == TOPK_TYPE
    assert out.schema.field("model_score").type == pa.float32()
    labels = {"intent": {"退款", "发货"}, "scene": {"红页面", "蓝页面"}}
    right = 0
    for row in out.to_pylist():
        assert row["model_label"] in labels[row["task"]]
        assert {t["label"] for t in row["model_topk"]} <= labels[row["task"]]
        assert row["model_topk"][0] == {"label": row["model_label"], "score": row["model_score"]}
        # The softmax is over the row's task only: its labels' probabilities sum to 1.
        assert sum(t["score"] for t in row["model_topk"]) == pytest.approx(1.0, abs=1e-5)
        right += row["model_label"] == row["label"]
    assert right >= 0.9 * out.num_rows


def test_rows_of_an_unknown_task_get_nulls(synthetic):
    table, root = synthetic
    adapter = train(table, root, epochs=1)
    odd = pa.table({"id": ["x", "y"], "task": ["weather", None], "user": ["退款", "退款"]})
    out = adapter.predict(odd)
    assert out.column("model_label").to_pylist() == [None, None]
    assert out.column("model_topk").to_pylist() == [None, None]


def test_save_and_load_give_identical_predictions_without_pickle(synthetic, tmp_path):
    table, root = synthetic
    adapter = train(table, root, epochs=3)
    adapter.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "weights.safetensors"]
    config = json.loads((tmp_path / "model" / "config.json").read_text(encoding="utf-8"))
    assert config["adapter"] == "baseline" and config["labels"]["scene"] == ["红页面", "蓝页面"]
    loaded = kdsl.adapters.load(tmp_path / "model")
    assert isinstance(loaded, BaselineAdapter)
    assert loaded.predict(table, images=root).equals(adapter.predict(table, images=root))


def test_training_is_deterministic_under_a_seed(synthetic):
    table, root = synthetic
    first, again, other = (train(table, root, epochs=2, seed=s) for s in (7, 7, 8))

    def weights(adapter):
        return adapter.networks["joint"].state_dict()

    assert all(torch.equal(v, weights(again)[k]) for k, v in weights(first).items())
    assert not all(torch.equal(v, weights(other)[k]) for k, v in weights(first).items())


def test_training_flips_images_through_kdsl_augment(synthetic, monkeypatch):
    table, root = synthetic
    calls, flipped = [], []
    original = baseline_module.augment_image

    def counting(image, seed):
        out = original(image, seed)
        calls.append(seed)
        flipped.append(out.tobytes() != image.tobytes())
        return out

    monkeypatch.setattr(baseline_module, "augment_image", counting)
    train(table, root, epochs=3)
    assert len(calls) == 3 * 12  # every readable image once per epoch; the missing one is skipped
    assert 0 < sum(flipped) < len(flipped)  # some flipped, some not


def test_separate_tasks_train_one_network_per_task(synthetic, tmp_path):
    table, root = synthetic
    adapter = train(table, root, tasks="separate", epochs=3)
    assert sorted(adapter.networks) == ["intent", "scene"]
    adapter.save(tmp_path / "m")
    out = kdsl.adapters.load(tmp_path / "m").predict(table, images=root)
    assert out.equals(adapter.predict(table, images=root))
    for row in out.to_pylist():
        assert row["model_label"] in ({"退款", "发货"} if row["task"] == "intent" else {"红页面", "蓝页面"})


def test_given_labels_are_kept_even_when_no_row_uses_them(synthetic):
    table, root = synthetic
    adapter = train(table, root, epochs=1, labels={"intent": ["催促"]})
    assert adapter.labels["intent"] == ["催促", "发货", "退款"]


def test_without_images_the_image_branch_sees_zeros(synthetic):
    table, _ = synthetic
    out = train(table, None, epochs=2).predict(table)
    assert out.column("model_label").null_count == 0


def test_bad_options_and_data_are_adapter_errors(synthetic):
    table, root = synthetic
    with pytest.raises(AdapterError, match="no option"):
        train(table, root, colour="red")
    with pytest.raises(AdapterError, match="tasks must be"):
        train(table, root, tasks="both")
    with pytest.raises(AdapterError, match="the baseline adapter's options"):
        train(table, root, epochs="3")
    with pytest.raises(AdapterError, match="no 'label' column"):
        train(table.drop_columns(["label"]), root)
    with pytest.raises(AdapterError, match="several tasks"):
        train(table, root, epochs=1).predict(table.drop_columns(["task"]))


def test_a_failed_save_leaves_the_previous_model(synthetic, tmp_path):
    table, root = synthetic
    train(table, root, epochs=1).save(tmp_path / "model")
    before = (tmp_path / "model" / "weights.safetensors").read_bytes()
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "model") as tmp:
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("interrupted")
    assert (tmp_path / "model" / "weights.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "model"]


def test_a_directory_that_is_not_a_model_is_an_adapter_error(tmp_path):
    with pytest.raises(AdapterError, match="not a model directory"):
        kdsl.adapters.load(tmp_path)


def test_each_text_field_is_its_own_bag():
    """A long OCR dump must not dilute the user's words: they are averaged separately."""
    import numpy as np

    from kdsl.adapters.features import encode, text_ids

    short = text_ids({"user": "退款"}, buckets=1024)
    long = text_ids({"user": "退款", "ocr": "订单详情" * 200}, buckets=1024)
    assert [len(bag) for bag in short] == [7, 0, 0]
    assert np.array_equal(short[0], long[0]) and len(long[2]) > 1000
    batch = encode([short, long], [[], []], size=8)
    assert batch.offsets.tolist() == [0, 7, 7, 7, 14, 14]
    net = baseline_module.BaselineNetwork(buckets=1024, text_dim=4, image_size=8, hidden=4, classes=2).eval()
    inputs = {"ids": torch.from_numpy(batch.ids), "offsets": torch.from_numpy(batch.offsets),
              "images": torch.from_numpy(batch.images), "image_rows": torch.from_numpy(batch.image_rows)}
    text = net.text(inputs["ids"], inputs["offsets"]).reshape(2, 3, -1)
    assert torch.equal(text[0, 0], text[1, 0])  # the user's bag is the same with or without OCR
    assert net(**inputs, mask=torch.ones(2, 2, dtype=torch.bool)).shape == (2, 2)
