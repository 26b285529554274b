"""``kdsl fmt``: golden files, the style rules one by one, and properties on random programs.

Golden files: ``tests/fixtures/format/NAME.in.kdsl`` formats to exactly ``NAME.out.kdsl``.
To add a case, write ``NAME.in.kdsl`` and run

    KDSL_UPDATE_GOLDEN=1 pytest tests/dsl/test_formatter.py

which (re)writes every ``.out.kdsl``; review the diff before committing it.

Properties, for any source ``s`` that parses: ``fmt(fmt(s)) == fmt(s)``; ``parse(fmt(s))`` is the
same program as ``parse(s)`` (types of values included) with the same comments in the same order.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl_strategies import comment_texts, damaged, messy_source, programs, strict
from dsl_golden import FIXTURES, assert_golden
from kdsl.dsl import KdslError, ast, parse
from kdsl.dsl.formatter import format_condition, format_program, format_source

CASES = sorted((FIXTURES / "format").glob("*.in.kdsl"))


def assert_same_program(before: str, after: str) -> None:
    """``after`` means what ``before`` means and keeps its comments, in order."""
    old, new = parse(before), parse(after)
    assert strict(new.statements) == strict(old.statements)
    assert [c.text for c in new.comments] == [c.text for c in old.comments]


def fmt(source: str) -> str:
    """Format, checking on the way that the result means the same and is a fixed point."""
    formatted = format_source(source)
    assert_same_program(source, formatted)
    assert format_source(formatted) == formatted
    return formatted


# --- golden files ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c.name.removesuffix(".in.kdsl") for c in CASES])
def test_golden(case):
    source = case.read_text(encoding="utf-8")
    formatted = format_source(source, case.name)
    assert_golden(case.with_name(case.name.replace(".in.kdsl", ".out.kdsl")), formatted)
    assert_same_program(source, formatted)
    assert format_source(formatted) == formatted


def test_golden_cases_cover_the_language():
    assert len(CASES) >= 8
    everything = " ".join(c.read_text(encoding="utf-8") for c in CASES)
    for construct in ["kdsl 1", "labels", "field", "let", "has any(", "has all(", "matches",
                      "\\/", "fuzzy(", "count(", "len(", "near(", " in (", "==", "!=", "<=", ">=",
                      "model.score", "model.label", "turns", "not (", "priority", "meta",
                      "example", "counterexample", "#", "rule 漏水"]:
        assert construct in everything, construct


# --- style -----------------------------------------------------------------------------------

def test_canonical_rule():
    assert fmt('rule leak_feedback:intent="反馈密封性不好" counterexample{user:"排水管漏水怎么处理"}'
               ' example{user:"洗衣机底下一直漏水"} meta{source:"mined",support:37,precision:0.97}'
               ' priority 80 when (user has leak) and not (user has "排水")') == '''\
rule leak_feedback: intent = "反馈密封性不好"
    when user has leak and not user has "排水"
    priority 80
    meta { source: "mined", support: 37, precision: 0.97 }
    example { user: "洗衣机底下一直漏水" }
    counterexample { user: "排水管漏水怎么处理" }
'''


def condition_of(text: str) -> ast.Condition:
    return parse(f'rule r: t = "x" when {text}').rules[0].condition


@pytest.mark.parametrize("written, canonical", [
    ('(a has "1")', 'a has "1"'),
    ('(a has "1" and b has "2") or c has "3"', 'a has "1" and b has "2" or c has "3"'),
    ('a has "1" and (b has "2" or c has "3")', 'a has "1" and (b has "2" or c has "3")'),
    ('(a has "1" or b has "2") or c has "3"', '(a has "1" or b has "2") or c has "3"'),
    ('a has "1" and (b has "2" and c has "3")', 'a has "1" and (b has "2" and c has "3")'),
    ('not (a has "1")', 'not a has "1"'),
    ('not (not a has "1")', 'not not a has "1"'),
    ('not (a has "1" and b has "2")', 'not (a has "1" and b has "2")'),
    ('(not a has "1") and b has "2"', 'not a has "1" and b has "2"'),
])
def test_fewest_parentheses_that_keep_the_tree(written, canonical):
    assert format_condition(condition_of(written)) == canonical
    assert condition_of(canonical) == condition_of(written)


@pytest.mark.parametrize("written, canonical", [
    ('"漏水"', '"漏水"'),
    ('"\\u6f0f\\u6c34"', '"漏水"'),
    ('"say \\"hi\\""', '"say \\"hi\\""'),
    ('"tab\\tline\\nback\\\\slash\\/"', '"tab\\tline\\nback\\\\slash/"'),
    ('"\\u2028"', '"\\u2028"'),
    # a lone surrogate ('"\\ud800"') is an error now: tests/robustness/test_bad_input.py
])
def test_strings_are_requoted_canonically(written, canonical):
    assert fmt(f'let a = {written}') == f"let a = {canonical}\n"


@pytest.mark.parametrize("written, canonical", [
    ("0.6", "0.6"), ("80", "80"), ("-3", "-3"), ("+3", "3"), ("007", "7"), ("0.50", "0.5"),
    (".5", "0.5"), ("1e3", "1000.0"), ("1.5e-7", "1.5e-07"), ("1e20", "1e+20"), ("-0.0", "-0.0"),
    ("1e999", "1e999"), ("-1e999", "-1e999"),
])
def test_numbers_keep_their_value_and_type(written, canonical):
    assert fmt(f'rule r: t = "x" when turns > {written}') == f'rule r: t = "x"\n    when turns > {canonical}\n'


@pytest.mark.parametrize("pattern", [r"\d+\/天", r"a\\\/b", r"[\/]", r"\\"])
def test_regexes_keep_their_escaped_slashes(pattern):
    source = f'rule r: t = "x" when user matches /{pattern}/'
    assert f"/{pattern}/" in fmt(source)


def test_defaults_are_left_out():
    assert fmt('rule r: t = "x" priority 0 meta {} when a has "1"') == 'rule r: t = "x"\n    when a has "1"\n'


def test_header_is_kept_only_when_written():
    assert fmt('kdsl 1 let a = "x"') == 'kdsl 1\n\nlet a = "x"\n'
    assert fmt('let a = "x"') == 'let a = "x"\n'


def test_declarations_of_a_kind_stay_grouped():
    assert fmt('field a: text\nfield b: text\n\n\nfield c: text\nlet x = "1"\nlet y = "2"\n'
               'rule r: t = "x" when a has x\nrule s: t = "y" when b has y') == '''\
field a: text
field b: text

field c: text

let x = "1"
let y = "2"

rule r: t = "x"
    when a has x

rule s: t = "y"
    when b has y
'''


def test_long_condition_breaks_before_top_level_operators():
    words = ", ".join(f'"词语{i}"' for i in range(8))
    formatted = fmt(f'rule r: t = "x" when user has any({words}) and not user has "排水" or turns > 3')
    assert formatted == f'''\
rule r: t = "x"
    when user has any({words}) and not user has "排水"
         or turns > 3
'''


def test_width_counts_cjk_characters_as_two_cells():
    ascii_rule = 'rule r: t = "x" when user has "' + "a" * 30 + '" or user has "' + "b" * 30 + '"'
    cjk_rule = ascii_rule.replace("a" * 30, "漏" * 30).replace("b" * 30, "水" * 30)
    assert fmt(ascii_rule).count("\n") == 2
    assert fmt(cjk_rule).count("\n") == 3


def test_long_lists_put_one_string_per_line():
    labels = [f"标签{i}-很长的名字" for i in range(10)]
    formatted = fmt("labels intent = [" + ",".join(f'"{label}"' for label in labels) + "]")
    assert formatted == "labels intent = [\n" + "".join(f'    "{label}",\n' for label in labels) + "]\n"


def test_program_built_in_code_formats():
    rule = ast.Rule("r", "intent", "是否好用",
                    ast.Or((ast.Has(ast.Field("user"), "one", ("好用",)),
                            ast.Compare(ast.Field("model.score"), ">", 0.9))), priority=3,
                    meta=(("source", "mined"),))
    program = ast.Program("<built>", "", (ast.Header(1), rule))
    assert format_program(program) == '''\
kdsl 1

rule r: intent = "是否好用"
    when user has "好用" or model.score > 0.9
    priority 3
    meta { source: "mined" }
'''


def test_resolved_has_keeps_its_name():
    condition = ast.Has(ast.Field("user"), "any", ("漏水", "渗水"), ref="leak")
    assert format_condition(condition) == "user has leak"


def test_empty_program():
    assert format_source("") == ""
    assert format_source("\n\n") == ""


# --- comments --------------------------------------------------------------------------------

def test_comments_stay_where_they_were():
    source = '''\
# header

# leak rules
rule leak: intent = "反馈密封性不好"  # the rule
    # the condition
    when user has "漏水"  # direct
         or user has "渗水"  # synonym
    priority 80
    # priority 90

# tail
'''
    assert fmt(source) == source


def test_comment_of_a_moved_clause_keeps_its_order():
    assert fmt('rule r: t = "x"\n    priority 5  # five\n    when a has "1"  # one\n') == '''\
rule r: t = "x"
    when a has "1"
    priority 5  # five
    # one
'''


def test_comments_of_joined_lines_keep_their_order():
    assert fmt('let a = any("x", "y")  # one\n# two\nlet b = any(\n"x" # three\n)  # four\n') == '''\
let a = any("x", "y")  # one
# two
let b = any("x")  # three
# four
'''


def test_comments_between_list_strings_break_the_list():
    source = 'labels intent = [\n    "a",  # first\n    # before b\n    "b",\n]\n'
    assert fmt(source) == source


def test_indented_comment_before_next_rule_stays_with_the_rule_above():
    source = 'rule a: t = "x"\n    when u has "1"\n    # priority 3\n\nrule b: t = "y"\n    when u has "2"\n'
    assert fmt(source) == source
    moved = fmt(source.replace("    # priority 3\n\n", "\n    # priority 3\n"))
    assert moved == source


# --- properties ------------------------------------------------------------------------------

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(programs(), st.randoms(use_true_random=False), st.lists(comment_texts, max_size=6))
def test_formatting_keeps_meaning_and_comments_and_is_idempotent(statements, rnd, comments):
    fmt(messy_source(statements, rnd, comments))


@settings(FAST, max_examples=60)
@given(programs(), st.randoms(use_true_random=False), st.lists(comment_texts, min_size=5, max_size=15))
def test_dense_comments_survive_formatting(statements, rnd, comments):
    fmt(messy_source(statements, rnd, comments, comment_rate=0.7))


@FAST
@given(programs())
def test_formatted_built_programs_parse_back(statements):
    formatted = format_program(ast.Program("<built>", "", tuple(statements)))
    assert strict(parse(formatted).statements) == strict(tuple(statements))
    assert format_source(formatted) == formatted


@settings(FAST, max_examples=100)
@given(damaged())
def test_odd_sources_that_parse_format_well(source):
    """Cut-and-spliced sources: the ones that still parse put comments and tokens in odd places."""
    try:
        parse(source)
    except KdslError:
        return
    fmt(source)
