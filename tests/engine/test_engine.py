"""Unit tests of the engine's public API and of the override semantics of docs/language.md (section 8)."""

from __future__ import annotations

import pyarrow as pa
import pytest

import kdsl.engine
from kdsl.engine import InputError

RULES = '''
kdsl 1
labels intent = ["反馈密封性不好", "排水方式", "是否好用"]
labels scene = ["退款页面", "物流页面-物流跟踪页面"]

let leak = any("漏水", "渗水")

rule leak: intent = "反馈密封性不好"
    when user has leak and not user has "排水"
    priority 80
rule drain: intent = "排水方式"
    when user has "排水"
    priority 10
rule drain_too: intent = "是否好用"
    when user has "排水"
    priority 10
rule refund_page: scene = "退款页面"
    when ocr has all("退款", "金额") or fuzzy(ocr, "退款详情") >= 90
rule unsure: intent = "是否好用"
    when model.score < 0.3 and turns >= 2
    priority -5
'''


@pytest.fixture(scope="module")
def engine():
    return kdsl.engine.loads(RULES, "rules.kdsl")


def table(**columns):
    types = {"model_score": pa.float32(), "turns": pa.int32()}
    return pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in columns.items()})


def test_highest_priority_wins_and_ties_go_to_the_rule_loaded_first(engine):
    scored = engine.score(table(user=["洗衣机漏水", "排水管漏水", "怎么排水"], agent=[None] * 3,
                                ocr=[None] * 3, model_label=[None] * 3, model_score=[None] * 3,
                                turns=[None] * 3))
    assert scored.column("intent_rule").to_pylist() == ["leak", "drain", "drain"]
    assert scored.column("intent").to_pylist() == ["反馈密封性不好", "排水方式", "排水方式"]
    assert scored.column("intent_source").to_pylist() == ["rule", "rule", "rule"]


def test_model_label_fills_rows_no_rule_decides(engine):
    scored = engine.score(table(user=["你好", "你好"], agent=[None, None], ocr=[None, None],
                                model_label=["是否好用", None], model_score=[0.9, 0.9], turns=[1, 1]))
    assert scored.column("intent").to_pylist() == ["是否好用", None]
    assert scored.column("intent_source").to_pylist() == ["model", None]
    assert scored.column("intent_rule").to_pylist() == [None, None]


def test_task_column_restricts_rows_to_their_target(engine):
    scored = engine.score(table(task=["intent", "scene", None], user=["漏水"] * 3, agent=[None] * 3,
                                ocr=["退款 金额"] * 3, model_label=["排水方式"] * 3,
                                model_score=[0.9] * 3, turns=[1] * 3))
    assert scored.column("intent").to_pylist() == ["反馈密封性不好", None, None]
    assert scored.column("scene").to_pylist() == [None, "退款页面", None]
    # model_label feeds only the row's own target
    scored = engine.score(table(task=["scene"], user=["你好"], agent=[None], ocr=["你好"],
                                model_label=["物流页面-物流跟踪页面"], model_score=[0.9], turns=[1]))
    assert scored.column("scene_source").to_pylist() == ["model"]
    assert scored.column("intent_source").to_pylist() == [None]


def test_null_numbers_never_compare_true(engine):
    scored = engine.score(table(user=["你好"], agent=[None], ocr=[None], model_label=[None],
                                model_score=[None], turns=[3]))
    assert scored.column("intent_rule").to_pylist() == [None]


def test_text_is_matched_after_nfkc_and_case_folding():
    engine = kdsl.engine.loads('rule r: intent = "x" when user has "ＡＰＰ" and agent has "abc"')
    assert engine.predict({"user": "能连app吗", "agent": "ABC"})["intent_rule"] == "r"
    assert engine.predict({"user": "能连ａｐｐ吗", "agent": "ａｂｃ"})["intent_rule"] == "r"
    assert engine.predict({"user": "能连ap p吗", "agent": "abc"})["intent_rule"] is None


def test_predict_matches_score(engine):
    record = {"user": "洗衣机漏水", "agent": None, "ocr": "退款金额 12 元", "model_label": "是否好用",
              "model_score": 0.2, "turns": 4}
    assert engine.predict(record) == {
        "intent": "反馈密封性不好", "intent_rule": "leak", "intent_source": "rule",
        "scene": "退款页面", "scene_rule": "refund_page", "scene_source": "rule",
    }


def test_explain_lists_every_matching_rule_winner_first_with_offsets(engine):
    record = {"user": "排水管渗水了", "model_score": 0.1, "turns": 2}
    explained = engine.explain(record)
    assert [m["rule"] for m in explained if m["target"] == "intent"] == ["drain", "drain_too", "unsure"]
    assert explained[0]["winner"] and not explained[1]["winner"]
    assert explained[0]["matches"] == [{"field": "user", "literal": "排水", "start": 0, "end": 2}]
    assert explained[0]["location"] == "rules.kdsl:11:6"


def test_fields_names_the_columns_read(engine):
    assert set(engine.fields) == {"user", "ocr", "model_score", "turns", "task", "model_label"}
    assert [r.name for r in engine.rules] == ["leak", "drain", "drain_too", "refund_page", "unsure"]


def test_missing_column_is_a_clear_error(engine):
    with pytest.raises(InputError, match="no column 'ocr'"):
        engine.score(table(user=["x"], model_score=[1.0], turns=[1]))


def test_wrong_column_type_is_a_clear_error(engine):
    bad = pa.table({"user": pa.array([1]), "ocr": pa.array(["x"]), "model_score": pa.array([1.0]),
                    "turns": pa.array([1])})
    with pytest.raises(InputError, match="column 'user' has type int64"):
        engine.score(bad)


def test_output_column_clash_is_an_error(engine):
    clash = table(user=["x"], ocr=["x"], model_score=[1.0], turns=[1], intent=["old"])
    with pytest.raises(InputError, match="already has a column 'intent'"):
        engine.score(clash)


def test_record_batches_and_empty_tables(engine):
    empty = table(user=[], ocr=[], model_score=[], turns=[])
    assert engine.score(empty).num_rows == 0
    assert "intent_rule" in engine.score(empty).schema.names
    batch = table(user=["漏水"], ocr=[None], model_score=[None], turns=[None]).to_batches()[0]
    assert isinstance(engine.score(batch), pa.RecordBatch)


def test_load_reads_a_directory_in_path_order(tmp_path):
    (tmp_path / "b.kdsl").write_text('rule second: intent = "b" when user has "x"', encoding="utf-8")
    (tmp_path / "a.kdsl").write_text('rule first: intent = "a" when user has "x"', encoding="utf-8")
    engine = kdsl.engine.load(tmp_path)
    assert engine.predict({"user": "x"})["intent_rule"] == "first"


def test_many_rules_sharing_atoms():
    rules = "\n".join(f'rule r{i}: intent = "l{i % 7}" when user has "漏水" and user has "{i}号"'
                      for i in range(300))
    engine = kdsl.engine.loads(rules)
    # "3号", "23号" and "123号" all occur in "123号"; the first loaded wins
    assert engine.predict({"user": "漏水 123号"})["intent_rule"] == "r3"
    assert engine.predict({"user": "漏水 299号"})["intent_rule"] == "r9"
    assert engine.predict({"user": "299号"})["intent_rule"] is None
