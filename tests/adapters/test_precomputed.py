"""The precomputed adapter: prediction columns copied in, checked against the row's task."""

import pyarrow as pa
import pytest

import kdsl.adapters
from kdsl.adapters import AdapterError
from kdsl.adapters.precomputed import PrecomputedAdapter

LABELS = {"intent": ["发货", "退款"], "scene": ["退款页面"]}
LOG = pa.table({
    "id": ["a", "b", "c", "d"],
    "task": ["intent", "scene", "intent", "weather"],
    "pred": ["退款", "退款页面", None, "晴"],
    "prob": [0.75, 0.5, None, 0.9],
})


def test_copies_predictions_into_the_standard_columns():
    out = PrecomputedAdapter(LABELS, "pred", "prob").predict(LOG)
    assert out.column("model_label").to_pylist() == ["退款", "退款页面", None, None]
    assert out.column("model_score").to_pylist() == [0.75, 0.5, None, None]
    assert out.column("model_topk").to_pylist()[0] == [{"label": "退款", "score": 0.75}]
    assert out.column("pred").to_pylist() == LOG.column("pred").to_pylist()  # passes through


def test_a_label_outside_the_rows_task_is_an_error_naming_the_row():
    log = LOG.set_column(2, "pred", pa.array(["退款页面", "退款页面", None, None]))
    with pytest.raises(AdapterError, match=r"row 'a': predicted label '退款页面' is not a intent label"):
        PrecomputedAdapter(LABELS, "pred", "prob").predict(log)


def test_labels_are_learned_from_a_labelled_table_and_saved(tmp_path):
    train = pa.table({"task": ["intent", "intent", "scene"], "label": ["退款", "发货", "退款页面"]})
    adapter = PrecomputedAdapter.train(train, label_column="pred", score_column="prob")
    assert adapter.labels == LABELS
    adapter.save(tmp_path / "m")
    loaded = kdsl.adapters.load(tmp_path / "m")
    assert isinstance(loaded, PrecomputedAdapter)
    assert loaded.predict(LOG).equals(adapter.predict(LOG))


def test_without_a_score_column_a_prediction_counts_as_certain():
    out = PrecomputedAdapter(LABELS, "pred", None).predict(LOG.drop_columns(["prob"]))
    assert out.column("model_score").to_pylist() == [1.0, 1.0, None, None]


def test_default_columns_are_replaced_in_place():
    log = pa.table({"task": ["intent"], "model_label": ["发货"], "model_score": pa.array([0.5], pa.float32())})
    out = PrecomputedAdapter(LABELS).predict(log)
    assert out.column_names == ["task", "model_label", "model_score", "model_topk"]


def test_missing_columns_are_errors():
    with pytest.raises(AdapterError, match="no prediction column 'pred'"):
        PrecomputedAdapter(LABELS, "pred").predict(pa.table({"task": ["intent"]}))
    with pytest.raises(AdapterError, match="no 'task' column"):
        PrecomputedAdapter(LABELS, "pred").predict(pa.table({"pred": ["退款"]}))
    single = PrecomputedAdapter({"intent": ["退款"]}, "pred").predict(pa.table({"pred": ["退款"]}))
    assert single.column("model_label").to_pylist() == ["退款"]


def test_unknown_adapter_names_are_errors():
    with pytest.raises(AdapterError, match="unknown adapter 'qwen'"):
        kdsl.adapters.adapter_class("qwen")
