"""The compiled engine and the reference interpreter agree on random rules and random records.

Rules are built as syntax trees (not text) so that every predicate kind, nesting, priority tie and
task layout is reachable; texts mix CJK, ASCII of both cases, full-width forms, combining marks,
emoji, nulls and empty strings, drawn from a small alphabet so that literals actually occur.
"""

from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdsl.dsl import ast, check
from kdsl.dsl.text import normalize_text
from kdsl.engine import Engine, reference

ALPHABET = ["漏", "水", "排", "好", "用", "a", "A", "b", "Ａ", "１", "1", "😀", "é", "e", "\u0301",
            " ", "，", ",", "ß", "\u3000"]
TEXT_FIELDS = ["user", "agent", "ocr"]
TARGETS = ["intent", "scene"]
LABELS = ["漏水", "好用", "排水方式"]

literal = st.text(st.sampled_from(ALPHABET), min_size=1, max_size=3).filter(lambda s: normalize_text(s) != "")
text = st.one_of(st.none(), st.text(st.sampled_from(ALPHABET), max_size=24),
                 st.text(st.sampled_from(ALPHABET), max_size=6).map(lambda s: s * 200))
op = st.sampled_from(ast.COMPARISONS)
field = st.sampled_from(TEXT_FIELDS).map(ast.Field)


def predicates():
    has = st.builds(lambda f, mode, lits: ast.Has(f, mode, tuple(lits[:1]) if mode == "one" else tuple(lits)),
                    field, st.sampled_from(["one", "any", "all"]), st.lists(literal, min_size=1, max_size=3))
    matches = st.builds(ast.Matches, field, st.sampled_from(["a+", "^好", "水$", r"\d", "(漏|排)水", "a.b"]))
    fuzzy = st.builds(lambda f, lit, o, v: ast.Measure("fuzzy", f, lit, o, v), field, literal, op,
                      st.integers(0, 100))
    count = st.builds(lambda f, lit, o, v: ast.Measure("count", f, lit, o, v), field, literal, op,
                      st.integers(0, 3))
    length = st.builds(lambda f, o, v: ast.Measure("len", f, None, o, v), field, op, st.integers(0, 30))
    near = st.builds(ast.Near, field, literal, literal, st.integers(0, 5))
    score = st.builds(lambda o, v: ast.Compare(ast.Field("model.score"), o, v), op,
                      st.sampled_from([0.0, 0.25, 0.5, 1]))
    turns = st.builds(lambda o, v: ast.Compare(ast.Field("turns"), o, v), op, st.integers(0, 4))
    label = st.builds(lambda o, v: ast.Compare(ast.Field("model.label"), o, v),
                      st.sampled_from(["==", "!="]), st.sampled_from(LABELS))
    label_order = st.builds(lambda o, v: ast.Compare(ast.Field("model.label"), o, v),
                            st.sampled_from(["<", ">="]), st.sampled_from(LABELS))
    in_ = st.one_of(
        st.builds(lambda vs: ast.In(ast.Field("model.label"), tuple(vs)), st.lists(st.sampled_from(LABELS), min_size=1, max_size=3)),
        st.builds(lambda vs: ast.In(ast.Field("turns"), tuple(vs)), st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    # Atom-based predicates are drawn more often: they are what the kernel is built around.
    return st.one_of(has, has, has, matches, fuzzy, count, length, near, score, turns, label,
                     label_order, in_)


conditions = st.recursive(
    predicates(),
    lambda inner: st.one_of(
        st.builds(ast.Not, inner),
        st.builds(lambda xs: ast.And(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda xs: ast.Or(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=6,
)


@st.composite
def rule_sets(draw):
    n = draw(st.integers(1, 8))
    rules = [ast.Rule(f"r{i}", draw(st.sampled_from(TARGETS)), draw(st.sampled_from(LABELS)),
                      draw(conditions), draw(st.integers(0, 2))) for i in range(n)]
    return check([ast.Program("<test>", "", tuple(rules))])


@st.composite
def tables(draw):
    n = draw(st.integers(1, 12))
    columns = {name: pa.array([draw(text) for _ in range(n)], pa.string()) for name in TEXT_FIELDS}
    columns["model_label"] = pa.array([draw(st.one_of(st.none(), st.sampled_from(LABELS))) for _ in range(n)], pa.string())
    columns["model_score"] = pa.array([draw(st.one_of(st.none(), st.sampled_from([0.0, 0.25, 0.5, 0.9, 1.0]))) for _ in range(n)], pa.float32())
    columns["turns"] = pa.array([draw(st.one_of(st.none(), st.integers(0, 5))) for _ in range(n)], pa.int32())
    if draw(st.booleans()):
        columns["task"] = pa.array([draw(st.sampled_from(TARGETS + [None, "other"])) for _ in range(n)], pa.string())
    return pa.table(columns)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_score_agrees(rules, table, also_predict=False):
    engine = Engine(rules)
    scored = engine.score(table).to_pylist()
    for row, got in zip(table.to_pylist(), scored):
        expected = reference.outputs(rules, row)
        assert {k: got[k] for k in expected} == expected, row
        if also_predict:
            assert engine.predict(row) == expected, row


@SETTINGS
@given(rule_sets(), tables())
def test_score_agrees_with_reference(rules, table):
    assert_score_agrees(rules, table)


@SETTINGS
@given(rule_sets(), tables())
def test_predict_agrees_with_reference(rules, table):
    engine = Engine(rules)
    for row in table.to_pylist():
        assert engine.predict(row) == reference.outputs(rules, row), row


@SETTINGS
@given(rule_sets(), tables())
def test_every_matching_rule_is_found(rules, table):
    engine = Engine(rules)
    fired = engine.matches(table)
    for i, row in enumerate(table.to_pylist()):
        record = reference.Record(row)
        for rank, rule in enumerate(engine.plan.rules):
            applies = "task" not in row or row["task"] == rule.target
            assert fired[i, rank] == (applies and reference.holds(rule.condition, record)), (rule, row)


@settings(max_examples=40, deadline=None)
@given(rule_sets(), tables(), st.integers(2, 4))
def test_threads_and_batches_do_not_change_results(rules, table, threads):
    engine = Engine(rules)
    single = engine.score(table)
    assert engine.score(table, threads=threads).equals(single)
    rebatched = pa.Table.from_batches(table.to_batches(max_chunksize=3))
    assert engine.score(rebatched).equals(single)


@st.composite
def large_rule_sets(draw):
    """Hundreds of conjunctions over a small vocabulary: many rules share atoms, candidate lists
    span several 64-rule words, and priorities tie."""
    vocabulary = draw(st.lists(literal, min_size=3, max_size=12, unique_by=normalize_text))
    word = st.sampled_from(vocabulary)
    has = st.builds(lambda f, lits: ast.Has(f, "any" if len(lits) > 1 else "one", tuple(lits)),
                    field, st.lists(word, min_size=1, max_size=3))
    conjunct = st.one_of(has, has, st.builds(ast.Not, has),
                         st.builds(lambda v: ast.Compare(ast.Field("model.label"), "==", v), st.sampled_from(LABELS)))
    condition = st.lists(conjunct, min_size=1, max_size=4).map(lambda xs: xs[0] if len(xs) == 1 else ast.And(tuple(xs)))
    n = draw(st.integers(65, 300))
    rules = [ast.Rule(f"r{i}", draw(st.sampled_from(TARGETS)), draw(st.sampled_from(LABELS)),
                      draw(condition), draw(st.integers(0, 3))) for i in range(n)]
    return check([ast.Program("<test>", "", tuple(rules))])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(large_rule_sets(), tables())
def test_large_rule_sets_agree_with_reference(rules, table):
    assert_score_agrees(rules, table, also_predict=True)
