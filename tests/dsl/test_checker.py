"""The checker: one test per kind of problem, name resolution, and rule sets loaded from several
files."""

from __future__ import annotations

import re

import pytest

from kdsl.dsl import BUILTIN_FIELDS, KdslError, check, parse
from kdsl.dsl.ast import Has


def check_sources(*sources: str):
    """Check sources loaded together as ``a.kdsl``, ``b.kdsl``, ... in that order."""
    return check([parse(source, f"{chr(ord('a') + i)}.kdsl") for i, source in enumerate(sources)])


def errors_of(*sources: str) -> list[str]:
    """``path:line:col: message`` of every problem found."""
    with pytest.raises(KdslError) as caught:
        check_sources(*sources)
    return [f"{d.span}: {d.message}" for d in caught.value.diagnostics]


def rule(condition: str, head: str = 'rule r: intent = "x"') -> str:
    return f"{head}\n    when {condition}\n"


# --- a valid rule set ------------------------------------------------------------------------

def test_valid_rules_load_in_order_with_targets_fields_and_labels():
    rules = check_sources(
        'labels intent = ["漏水", "好用"]\nfield sku: text\nfield price: number\n'
        + rule('sku has "洗衣机" and price > 100', 'rule first: intent = "漏水"')
        + rule("model.score < 0.6", 'rule low: scene = "退款页面"\n    priority 5'),
        rule('user has "好用"', 'rule second: intent = "好用"\n    priority 5'))
    assert [r.name for r in rules.rules] == ["first", "low", "second"]
    assert rules.targets == ("intent", "scene")
    assert rules.labels == {"intent": ("漏水", "好用")}
    assert rules.fields == {**BUILTIN_FIELDS, "sku": "text", "price": "number"}
    assert [r.name for r in rules.ranked("intent")] == ["second", "first"]
    assert rules.rule("low").priority == 5


def test_ties_in_priority_keep_load_order_across_files():
    rules = check_sources(rule('user has "a"', 'rule b1: t = "x"'), rule('user has "a"', 'rule a1: t = "x"'))
    assert [r.name for r in rules.ranked("t")] == ["b1", "a1"]


# --- names -----------------------------------------------------------------------------------

def test_let_names_resolve_to_their_literals():
    rules = check_sources('let leak = any("漏水", "渗水")\nlet both = all("a", "b")\nlet one = "排水"\n'
                          + rule("user has leak and user has both and not user has one"))
    leak, both, not_one = rules.rules[0].condition.operands
    assert leak == Has(leak.field, "any", ("漏水", "渗水"), "leak")
    assert (both.mode, both.literals) == ("all", ("a", "b"))
    assert (not_one.operand.mode, not_one.operand.literals) == ("one", ("排水",))


def test_let_names_are_local_to_their_file():
    assert errors_of('let leak = "漏水"\n' + rule("user has leak"), rule("user has leak", 'rule s: t = "y"')) == [
        "b.kdsl:2:10: unknown name 'leak'; define it with 'let leak = any(...)'"]


def test_unknown_let_name_suggests_a_close_one():
    assert errors_of('let leak = "漏水"\n' + rule("user has leek")) == [
        "a.kdsl:3:10: unknown name 'leek'; did you mean 'leak'?"]


def test_let_defined_twice():
    assert errors_of('let a = "x"\nlet a = "y"\n') == ["a.kdsl:2:1: 'a' is already defined at a.kdsl:1:1"]


def test_duplicate_rule_names_across_files_name_both_places():
    assert errors_of(rule('user has "a"', "rule leak: t = \"x\""),
                     "\n\n" + rule('user has "b"', "rule leak: t = \"y\"")) == [
        "b.kdsl:3:6: duplicate rule name 'leak'; first defined at a.kdsl:1:6"]


def test_a_duplicate_rule_quotes_its_first_definition_from_the_other_file():
    with pytest.raises(KdslError) as caught:
        check_sources('rule leak: t = "x"\n    when user has "a"\n', '\nrule leak: t = "y"\n    when user has "b"\n')
    assert str(caught.value) == "\n".join([
        "b.kdsl:2:6: duplicate rule name 'leak'; first defined at a.kdsl:1:6",
        "    2 | rule leak: t = \"y\"",
        "      |      ^^^^",
        "     ::: a.kdsl:1:6",
        "    1 | rule leak: t = \"x\"",
        "      |      ---- first defined here"])


def test_a_let_defined_twice_quotes_the_first_definition():
    with pytest.raises(KdslError) as caught:
        check_sources('let a = "x"\nlet a = "y"\n')
    assert str(caught.value).splitlines()[-2:] == ['    1 | let a = "x"', "      | ----------- first defined here"]


# --- fields ----------------------------------------------------------------------------------

def test_unknown_field_suggests_a_close_one():
    assert errors_of(rule('usr has "a"')) == ["a.kdsl:2:10: unknown field 'usr'; did you mean 'user'?"]


def test_unknown_field_without_a_close_one_suggests_declaring_it():
    assert errors_of(rule('shop_name.x has "a"')) == [
        "a.kdsl:2:10: unknown field 'shop_name.x'; declare other columns first, e.g. "
        "'field shop_name_x: text'"]


def test_field_declared_in_another_file_is_known():
    check_sources(rule('sku has "洗衣机"'), "field sku: text\n")


def test_field_declared_twice_or_over_a_builtin():
    assert errors_of("field sku: text\n", "field sku: number\nfield user: text\nfield image_paths: text\n") == [
        "b.kdsl:1:1: field 'sku' is already defined",
        "b.kdsl:2:1: field 'user' is already defined",
        "b.kdsl:3:1: field 'image_paths' is already defined"]


def test_list_field_cannot_be_tested():
    assert errors_of(rule('image_paths has "a"')) == [
        "a.kdsl:2:10: field 'image_paths' is a list; rules cannot test it"]


# --- types -----------------------------------------------------------------------------------

@pytest.mark.parametrize("condition, message", [
    ("len(model.score) > 3", "2:14: len() needs a text field; 'model.score' is a number"),
    ('turns has "a"', "2:10: has needs a text field; 'turns' is a number"),
    ("turns matches /a/", "2:10: matches needs a text field; 'turns' is a number"),
    ('near(n_images, "a", "b", 3)', "2:15: near() needs a text field; 'n_images' is a number"),
    ('fuzzy(turns, "a") > 50', "2:16: fuzzy() needs a text field; 'turns' is a number"),
    ('count(turns, "a") > 1', "2:16: count() needs a text field; 'turns' is a number"),
    ('turns == "3"', "2:10: 'turns' is a number; expected a number, not '3'"),
    ("model.label == 3", "2:10: 'model.label' is a string field; expected a string, not 3"),
    ("user != 0.5", "2:10: 'user' is a text field; expected a string, not 0.5"),
    ("label == null", "2:10: 'label' cannot be compared with null; expected a string"),
    ("turns > true", "2:10: 'turns' cannot be compared with true; expected a number"),
    ('task in ("intent", 1)', "2:10: 'task' is a string field; expected a string, not 1"),
])
def test_type_errors(condition, message):
    assert errors_of(rule(condition)) == [f"a.kdsl:{message}"]


def test_numbers_compare_with_ints_and_floats():
    check_sources(rule("turns > 3 and model.score >= 0.5 and n_images in (1, 2.0)"))


def test_example_records_are_checked_like_conditions():
    assert errors_of(rule('user has "a"') + '    example { usr: "a", turns: "3", ocr: null }\n') == [
        "a.kdsl:3:15: unknown field 'usr'; did you mean 'user'?",
        "a.kdsl:3:25: 'turns' is a number; expected a number, not '3'"]


# --- literals, patterns, thresholds ----------------------------------------------------------

@pytest.mark.parametrize("source", [
    rule('user has ""'), rule('user has any("a", "")'), rule('fuzzy(ocr, "") > 50'),
    rule('count(user, "") > 1'), rule('near(user, "a", "", 3)'), 'let e = all("")\n',
])
def test_empty_literal(source):
    [message] = errors_of(source)
    assert "empty literal: it would match every text" in message


def test_invalid_re2_pattern():
    assert errors_of(rule("user matches /(a/")) == ["a.kdsl:2:10: invalid RE2 pattern /(a/: missing ): (a"]


def test_backtracking_constructs_are_not_re2():
    [message] = errors_of(rule(r"user matches /(a)\1/"))
    assert message.startswith(r"a.kdsl:2:10: invalid RE2 pattern /(a)\1/:")


@pytest.mark.parametrize("threshold, ok", [(-1, False), (0, True), (85, True), (100, True), (100.5, False)])
def test_fuzzy_threshold_range(threshold, ok):
    source = rule(f'fuzzy(ocr, "物流") >= {threshold}')
    if ok:
        check_sources(source)
    else:
        assert errors_of(source) == [f"a.kdsl:2:10: fuzzy() scores are 0 to 100; {threshold} is outside"]


def test_unsupported_version():
    assert errors_of("kdsl 2\n") == ["a.kdsl:1:1: unsupported kdsl version 2; expected 'kdsl 1'"]
    check_sources("kdsl 1\n")


# --- labels and targets ----------------------------------------------------------------------

def test_label_not_declared_suggests_a_close_one():
    assert errors_of('labels intent = ["反馈密封性不好", "是否好用"]\n'
                     + rule('user has "a"', 'rule r: intent = "反馈密封性"')) == [
        "a.kdsl:2:18: label '反馈密封性' is not declared for 'intent'; did you mean '反馈密封性不好'?"]


def test_labels_declared_in_another_file_apply():
    assert errors_of(rule('user has "a"', 'rule r: intent = "别的"'), 'labels intent = ["是否好用"]\n') == [
        "a.kdsl:1:18: label '别的' is not declared for 'intent'"]


def test_labels_must_agree_across_files_and_not_repeat():
    assert errors_of('labels t = ["a", "b"]\n', 'labels t = ["b", "a"]\nlabels u = ["c", "c"]\nlabels t = ["a"]\n') == [
        "b.kdsl:2:1: label 'c' is listed twice for target 'u'",
        "b.kdsl:3:1: labels for 't' differ from those declared at a.kdsl:1:1"]


def test_target_cannot_be_a_column():
    assert errors_of(rule('user has "a"', 'rule r: user = "x"'), 'labels ocr = ["a"]\n') == [
        "a.kdsl:1:6: target 'user' is the name of a column; choose another",
        "b.kdsl:1:1: target 'ocr' is the name of a column; choose another"]


def test_meta_key_twice():
    assert errors_of(rule('user has "a"') + "    meta { a: 1, a: 2 }\n") == [
        "a.kdsl:1:6: meta key 'a' appears twice in rule r"]


# --- reporting -------------------------------------------------------------------------------

def test_every_problem_is_reported_at_once_in_file_order():
    messages = errors_of(rule('usr has "" and turns == "x"'), rule('user matches /(/', 'rule r: t = "y"'))
    assert [re.match(r"\S+:\d+:\d+", m).group() for m in messages] == [
        "a.kdsl:2:10", "a.kdsl:2:10", "a.kdsl:2:25", "b.kdsl:1:6", "b.kdsl:2:10"]


def test_error_quotes_the_line_with_a_caret_under_wide_characters():
    with pytest.raises(KdslError) as caught:
        check_sources('rule r: intent = "x"\n    when 漏水 has "a"\n')
    assert str(caught.value).splitlines()[1:] == ["    2 |     when 漏水 has \"a\"", "      |          ^^^^"]
