"""The parser: the tree built for every construct, and that no input makes it fail other than
with a located ``KdslError``."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl_strategies import TOKENS, comment_texts, damaged, messy_source, programs, strict
from kdsl.dsl import KdslError, parse
from kdsl.dsl.ast import (
    And, Compare, Field, FieldDecl, Has, Header, In, LabelsDecl, LetDecl, Matches, Measure, Near,
    Not, Or, Record, Rule,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def condition(text: str):
    """The condition of a one-rule program ``when TEXT``."""
    return parse(f'rule r: intent = "x" when {text}').rules[0].condition


def has(field: str, literal: str) -> Has:
    return Has(Field(field), "one", (literal,))


A, B, C = has("user", "a"), has("user", "b"), has("user", "c")


# --- declarations ----------------------------------------------------------------------------

def test_header_and_declarations():
    program = parse('kdsl 1\nlabels intent = ["反馈密封性不好", "是否好用",]\nlabels scene = []\n'
                    'field sku: text\nfield price: number\nfield shop: string\n'
                    'let leak = any("漏水", "渗水")\nlet both = all("a", "b")\nlet one = "x"\n')
    assert program.statements == (
        Header(1),
        LabelsDecl("intent", ("反馈密封性不好", "是否好用")),
        LabelsDecl("scene", ()),
        FieldDecl("sku", "text"), FieldDecl("price", "number"), FieldDecl("shop", "string"),
        LetDecl("leak", "any", ("漏水", "渗水")), LetDecl("both", "all", ("a", "b")),
        LetDecl("one", "one", ("x",)),
    )


def test_empty_source_is_an_empty_program():
    assert parse("").statements == ()
    assert parse("  \n# only a comment\n").statements == ()


def test_let_of_a_name_is_an_error():
    with pytest.raises(KdslError, match="let b must be a string, any"):
        parse('let a = "x"\nlet b = a')


# --- predicates ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ('user has "漏水"', Has(Field("user"), "one", ("漏水",))),
    ('user has any("漏水", "渗水",)', Has(Field("user"), "any", ("漏水", "渗水"))),
    ('ocr has all("运输中", "快递")', Has(Field("ocr"), "all", ("运输中", "快递"))),
    ("user has leak", Has(Field("user"), "one", (), "leak")),
    (r"user matches /\d+\/天/", Matches(Field("user"), r"\d+/天")),
    (r"user matches /a\\\/b/", Matches(Field("user"), r"a\\/b")),
    ('fuzzy(ocr, "物流详情") >= 85', Measure("fuzzy", Field("ocr"), "物流详情", ">=", 85)),
    ('count(user, "漏") > 2', Measure("count", Field("user"), "漏", ">", 2)),
    ("len(user) <= 0.5", Measure("len", Field("user"), None, "<=", 0.5)),
    ('near(user, "洗衣机", "漏水", 10)', Near(Field("user"), "洗衣机", "漏水", 10)),
    ("model.score < 0.6", Compare(Field("model.score"), "<", 0.6)),
    ('model.label != "是否好用"', Compare(Field("model.label"), "!=", "是否好用")),
    ("turns == 3", Compare(Field("turns"), "==", 3)),
    ("turns >= -1", Compare(Field("turns"), ">=", -1)),
    ("turns > 1e3", Compare(Field("turns"), ">", 1000.0)),
    ("label == null", Compare(Field("label"), "==", None)),
    ('task in ("intent", "scene",)', In(Field("task"), ("intent", "scene"))),
    ("turns in (1, 2.5, true, false, null)", In(Field("turns"), (1, 2.5, True, False, None))),
])
def test_predicates(text, expected):
    assert strict(condition(text)) == strict(expected)


def test_field_reference_names_its_column():
    field = condition("model.score > 0.5").field
    assert (field.name, field.column) == ("model.score", "model_score")
    assert (field.span.line, field.span.column, field.span.end_column) == (1, 27, 38)


# --- boolean structure -----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ('user has "a" or user has "b" and not user has "c"', Or((A, And((B, Not(C)))))),
    ('not user has "a" and user has "b"', And((Not(A), B))),
    ('(user has "a" or user has "b") and user has "c"', And((Or((A, B)), C))),
    ('user has "a" and user has "b" and user has "c"', And((A, B, C))),
    ('(user has "a" and user has "b") and user has "c"', And((And((A, B)), C))),
    ('not not user has "a"', Not(Not(A))),
    ('not (user has "a" or user has "b")', Not(Or((A, B)))),
    ('((user has "a"))', A),
])
def test_precedence_not_and_or(text, expected):
    assert condition(text) == expected


# --- rules -----------------------------------------------------------------------------------

def test_rule_clauses_in_any_order():
    rule = parse('''
rule 漏水反馈: intent = "反馈密封性不好"
    example { user: "洗衣机底下一直漏水", model.score: 0.9 }
    meta { source: "mined", support: 37, precision: 0.97, checked: true, note: null }
    priority -5
    counterexample { user: "排水管漏水怎么处理" }
    when user has "漏水"
    example {}
''').rules[0]
    assert rule == Rule(
        "漏水反馈", "intent", "反馈密封性不好", has("user", "漏水"), -5,
        (("source", "mined"), ("support", 37), ("precision", 0.97), ("checked", True), ("note", None)),
        (Record(((Field("user"), "洗衣机底下一直漏水"), (Field("model.score"), 0.9))), Record(())),
        (Record(((Field("user"), "排水管漏水怎么处理"),)),),
    )
    assert rule.examples[0].as_row() == {"user": "洗衣机底下一直漏水", "model_score": 0.9}


def test_rule_spans_point_at_name_and_label():
    rule = parse('\nrule leak: intent = "漏水"\n  when user has "a"', "x.kdsl").rules[0]
    assert str(rule.span) == "x.kdsl:2:1"
    assert (rule.name_span.line, rule.name_span.column, rule.name_span.end_column) == (2, 6, 10)
    assert (rule.label_span.column, rule.label_span.end_column) == (21, 25)


@pytest.mark.parametrize("source, message", [
    ('rule r: t = "x" priority 1', "rule r has no 'when' clause"),
    ('rule r: t = "x" when a has "1" when a has "2"', "second 'when' clause (the first is at line 1)"),
    ('rule r: t = "x" when a has "1" priority 1 priority 2', "second 'priority' clause"),
    ('rule r: t = "x" when a has "1" meta {} meta {}', "second 'meta' clause"),
])
def test_clause_count_errors(source, message):
    with pytest.raises(KdslError, match=re.escape(message)):
        parse(source)


def test_comments_are_collected_with_positions():
    program = parse('# top\nrule r: t = "x"  # trailing\n    when user has "#no" and user matches /#no/\n'
                    '    # inside\n# end   \n')
    assert [(c.text, c.line, c.column) for c in program.comments] == [
        ("# top", 1, 1), ("# trailing", 2, 18), ("# inside", 4, 5), ("# end", 5, 1)]


def test_an_integer_too_long_for_python_is_a_located_error():
    with pytest.raises(KdslError, match="1:26: .*too long"):
        parse('rule r: t = "x" when a > ' + "9" * 5000)


@pytest.mark.parametrize("condition", ['not ' * 500 + 'a has "b"',
                                       '(' * 500 + 'a has "b"' + ' or a has "c")' * 500])
def test_absurd_nesting_is_a_located_error(condition):
    with pytest.raises(KdslError, match="nested more than 100 levels deep"):
        parse(f'rule r: t = "x" when {condition}')


def test_deep_but_sane_nesting_parses():
    assert parse('rule r: t = "x" when ' + "not " * 90 + 'a has "b"').rules[0].priority == 0


# --- properties ------------------------------------------------------------------------------

@FAST
@given(programs(), st.randoms(use_true_random=False), st.lists(comment_texts, max_size=5))
def test_any_layout_of_a_program_parses_to_that_program(statements, rnd, comments):
    source = messy_source(statements, rnd, comments)
    program = parse(source)
    assert strict(program.statements) == strict(tuple(statements))
    assert [c.text for c in program.comments] == comments


token_soup = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join) | st.lists(
    st.sampled_from(TOKENS), max_size=40).map(" ".join)


def assert_parses_or_fails_cleanly(source: str) -> None:
    try:
        parse(source, "fuzz.kdsl")
    except KdslError as error:
        assert error.diagnostics
        for diagnostic in error.diagnostics:
            assert diagnostic.span.line >= 1 and diagnostic.span.column >= 1
        assert "fuzz.kdsl:" in str(error)


@FAST
@given(st.text())
def test_arbitrary_text_parses_or_fails_with_a_located_error(source):
    assert_parses_or_fails_cleanly(source)


@settings(FAST, max_examples=400)
@given(token_soup)
def test_spliced_tokens_parse_or_fail_with_a_located_error(source):
    assert_parses_or_fails_cleanly(source)


@settings(FAST, max_examples=100)
@given(damaged())
def test_damaged_programs_fail_with_a_located_error(source):
    """Valid source with a random cut or splice: the errors a person actually makes."""
    assert_parses_or_fails_cleanly(source)


def test_fuzz_corpus_examples():
    # Inputs that once needed care: end of file in every position, lone quotes and slashes.
    for source in ["", "rule", 'rule r: t = "', "rule r: t = \"x\" when a matches /", "\n\n\n#",
                   "kdsl", "kdsl 1\n\n", "let a = any(", "labels t = [\"a\"", "\ufeffrule"]:
        assert_parses_or_fails_cleanly(source)
    rnd = random.Random(7)
    for _ in range(200):
        assert_parses_or_fails_cleanly("".join(rnd.choice(TOKENS) for _ in range(rnd.randint(1, 30))))
