"""Weighted F1 and the challenge's scores (kdsl/metrics.py) against scikit-learn, the reference."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_recall_fscore_support

from kdsl.metrics import confusion, per_label, task_scores, weighted_f1

LABELS = ["退款", "物流", "发货", "a", "b", "商品材质"]
# scikit-learn cannot mix None with strings; the challenge scorer would see an empty answer.
NO_ANSWER = ""


@st.composite
def labelled(draw):
    n = draw(st.integers(1, 40))
    y_true = draw(st.lists(st.sampled_from(LABELS), min_size=n, max_size=n))
    y_pred = draw(st.lists(st.none() | st.sampled_from(LABELS + ["only predicted"]), min_size=n, max_size=n))
    return y_true, y_pred


def sklearn_view(y_pred):
    return [NO_ANSWER if p is None else p for p in y_pred]


@settings(max_examples=300, deadline=None)
@given(labelled(), st.sampled_from([0.0, 1.0]))
def test_weighted_f1_is_sklearns(data, zero_division):
    y_true, y_pred = data
    expected = f1_score(y_true, sklearn_view(y_pred), average="weighted", zero_division=zero_division)
    assert weighted_f1(y_true, y_pred) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(labelled(), st.sampled_from([0.0, 1.0]))
def test_per_label_table_is_sklearns(data, zero_division):
    y_true, y_pred = data
    table = per_label(y_true, y_pred, zero_division=zero_division)
    labels = [row.label for row in table]
    assert labels == sorted(set(y_true) | {p for p in y_pred if p is not None})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, s = precision_recall_fscore_support(y_true, sklearn_view(y_pred), labels=labels,
                                                     zero_division=zero_division)
    for row, *expected in zip(table, p, r, f, s):
        assert (row.precision, row.recall, row.f1, row.support) == pytest.approx(tuple(expected))
    assert sum(row.predicted for row in table) == sum(p is not None for p in y_pred)


def test_a_missing_prediction_is_wrong_not_dropped():
    assert weighted_f1(["a", "b"], ["a", None]) == 0.5
    assert weighted_f1(["a"], ["a"]) == 1.0
    assert confusion(["a", "b"], [None, None]).unpredicted == 2


def test_confusion_counts_pairs():
    matrix = confusion(["a", "a", "b", "b"], ["a", "b", "b", None])
    assert matrix.labels == ("a", "b")
    assert matrix.matrix.tolist() == [[1, 1, 0], [0, 1, 1]]


def test_no_rows_score_none_and_null_truth_is_refused():
    assert weighted_f1([], []) is None
    with pytest.raises(ValueError, match="None"):
        weighted_f1(["a", None], ["a", "a"])
    with pytest.raises(ValueError, match="2 true labels but 1"):
        weighted_f1(["a", "b"], ["a"])


def test_dis_iss_oss_on_a_hand_made_table():
    #        task     label         prediction
    rows = [("intent", "退款", "退款"),
            ("intent", "退款", "物流"),
            ("intent", "物流", "物流"),
            ("intent", "物流", None),
            ("scene", "退款页面", "退款页面"),
            ("scene", "支付页面", "退款页面")]
    tasks, y_true, y_pred = map(list, zip(*rows))
    scores = task_scores(y_true, y_pred, tasks)
    # intent: 退款 tp1 fn1 fp0 -> F1 2/3; 物流 tp1 fn1 fp1 -> F1 1/2; supports 2 and 2
    assert scores["DIS"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # scene: 退款页面 tp1 fp1 -> 2/3 (support 1); 支付页面 -> 0 (support 1)
    assert scores["ISS"] == pytest.approx(1 / 3)
    # pooled, the label sets being disjoint: the support-weighted mean of the six rows' labels
    assert scores["OSS"] == pytest.approx((2 * 2 / 3 + 2 * 1 / 2 + 2 / 3 + 0) / 6)
    assert scores["OSS"] == pytest.approx(f1_score(y_true, sklearn_view(y_pred), average="weighted"))


def test_a_task_without_rows_scores_none_and_other_tasks_keep_their_name():
    scores = task_scores(["a", "x"], ["a", "x"], ["intent", "ocr"])
    assert scores == {"DIS": 1.0, "ISS": None, "ocr": 1.0, "OSS": 1.0}
