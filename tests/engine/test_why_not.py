"""explain(why_not=True): the first failed term, what the text held instead, and an edit that is
checked to make the rule fire (kdsl/engine/why_not.py)."""

from __future__ import annotations

import pytest

import kdsl.engine
from kdsl.engine import reference
from kdsl.dsl import check, parse
from kdsl.errors import InputError

RULES = '''
kdsl 1
rule leak: intent = "漏水"
    when user has any("漏水", "渗水") and not user has any("排水", "下水")
rule season: intent = "季节"
    when user has all("夏天", "穿") and turns >= 3
rule fuzzy_refund: scene = "退款"
    when fuzzy(ocr, "退款详情") >= 95
rule spaced: intent = "漏水"
    when near(user, "底", "漏", 1)
'''


@pytest.fixture(scope="module")
def engine():
    return kdsl.engine.loads(RULES, "r.kdsl")


def misses(engine, record, rule=None):
    return {m["rule"]: m for m in engine.explain(record, why_not=True, rule=rule)}


def test_a_missing_literal_gets_its_nearest_substring_and_an_edit_that_fires(engine):
    record = {"user": "底下漏了水啊", "label": "漏水"}
    leak = misses(engine, record)["leak"]
    assert leak["term"] == 'user has any("漏水", "渗水")'
    assert (leak["literal"], leak["nearest"]) == ("漏水", "漏了水")
    assert record["user"][leak["start"]:leak["end"]] == "漏了水"
    assert leak["similarity"] == 80.0  # fuzz.ratio("漏水", "漏了水")
    assert leak["edit"] == "also accept '漏了水'"
    assert leak["fires_after_edit"] is True
    assert leak["condition_after_edit"].startswith('user has any("漏水", "渗水", "漏了水")')


def test_an_excluded_literal_that_occurs_is_shown_with_its_offset(engine):
    leak = misses(engine, {"user": "排水管漏水", "label": "漏水"})["leak"]
    assert leak["term"] == 'not user has any("排水", "下水")'
    assert (leak["nearest"], leak["start"], leak["end"]) == ("排水", 0, 2)
    assert leak["edit"] == "stop excluding '排水'"
    assert leak["condition_after_edit"] == 'user has any("漏水", "渗水") and not user has "下水"'
    assert leak["fires_after_edit"]


def test_every_failed_term_is_repaired_and_the_result_verified(engine):
    record = {"user": "秋天穿吗", "turns": 1, "label": "季节"}
    season = misses(engine, record)["season"]
    assert season["failed_terms"] == 2
    assert season["nearest"] == "秋天"
    assert season["condition_after_edit"] == 'user has all("秋天", "穿") and turns >= 1'
    after = check([parse(f'rule x: intent = "季节" when {season["condition_after_edit"]}')]).rules[0]
    assert reference.holds(after.condition, reference.Record(record))


def test_measures_and_near_report_the_value_the_record_has(engine):
    refund = misses(engine, {"ocr": "退款详细", "task": "scene"}, rule="fuzzy_refund")["fuzzy_refund"]
    assert refund["found"] == "fuzzy(ocr, '退款详情') is 85.7"
    assert refund["edit"] == "change the bound to 85.7" and refund["fires_after_edit"]
    spaced = misses(engine, {"user": "底下会漏", "label": "漏水"})["spaced"]
    assert spaced["found"] == "'底' and '漏' are 3 apart" and spaced["fires_after_edit"]


def test_rules_that_fire_are_left_out_and_bad_requests_raise(engine):
    assert misses(engine, {"user": "漏水了", "label": "漏水"}).keys() == {"spaced"}
    assert misses(engine, {"user": "x", "label": "other"}) == {}
    with pytest.raises(InputError, match="no rule named 'nope'"):
        engine.explain({"user": "x"}, why_not=True, rule="nope")
    with pytest.raises(InputError, match="no label"):
        engine.explain({"user": "x"}, why_not=True)
