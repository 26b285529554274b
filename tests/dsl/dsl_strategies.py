"""Hypothesis strategies for kdsl tests: random syntax trees, and messy source text for them.

``programs()`` draws an ``ast.Program``-shaped list of statements; ``messy_source(statements,
rnd, comments)`` writes them the way a person might: odd spacing, redundant parentheses, clauses
in any order, explicit defaults (``priority 0``, ``meta {}``), blank lines and comments between
any two tokens. Parsing that text gives back exactly the statements (``strict`` compares them,
types included, since ``True == 1`` and ``1 == 1.0`` in Python).

    >>> import random
    >>> rule = ast.Rule("r", "intent", "x", ast.Has(ast.Field("user"), "one", ("好",)))
    >>> "has" in messy_source([rule], random.Random(0), [])
    True
"""

from __future__ import annotations

import dataclasses
import json
import random

from hypothesis import strategies as st

from kdsl.dsl import ast

KEYWORDS = {
    "kdsl", "labels", "field", "let", "rule", "when", "priority", "meta", "example",
    "counterexample", "has", "matches", "fuzzy", "count", "len", "near", "in", "not", "and", "or",
    "any", "all", "true", "false", "null", "text", "number", "string",
}

names = st.from_regex(r"[A-Za-z_\u4e00-\u9fff][A-Za-z0-9_\u4e00-\u9fff]{0,8}", fullmatch=True).filter(
    lambda name: name not in KEYWORDS)
field_names = st.one_of(
    st.sampled_from(["user", "agent", "ocr", "turns", "model.score", "model.label", "sku"]),
    st.builds(lambda a, b: f"{a}.{b}", names, names), names)
fields = st.builds(ast.Field, field_names)
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["漏水", "物流详情", 'a"b', "back\\slash", "tab\tnew\nline", "\u2028", "😀"]),
    st.text(alphabet="漏水渗好用排物流", min_size=30, max_size=60))
numbers = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False))
scalars = st.one_of(texts, numbers, st.booleans(), st.none())
comparisons = st.sampled_from(ast.COMPARISONS)


def _regex_pattern_units():
    # A pattern as the parser returns it: `\/` in the source becomes `/`, other escapes stay.
    plain = st.characters(blacklist_characters="/\\\n", blacklist_categories=("Cs",))
    escaped = st.characters(blacklist_characters="/\n", blacklist_categories=("Cs",)).map(lambda c: "\\" + c)
    return st.one_of(plain, escaped, st.just("/"))


patterns = st.lists(_regex_pattern_units(), min_size=1, max_size=8).map("".join)

predicates = st.one_of(
    st.builds(lambda f, mode, lits: ast.Has(f, mode, tuple(lits[:1]) if mode == "one" else tuple(lits)),
              fields, st.sampled_from(["one", "any", "all"]), st.lists(texts, min_size=1, max_size=3)),
    st.builds(lambda f, ref: ast.Has(f, "one", (), ref), fields, names),
    st.builds(ast.Matches, fields, patterns),
    st.builds(ast.Measure, st.sampled_from(["fuzzy", "count"]), fields, texts, comparisons, numbers),
    st.builds(lambda f, op, n: ast.Measure("len", f, None, op, n), fields, comparisons, numbers),
    st.builds(ast.Near, fields, texts, texts, st.integers(0, 500)),
    st.builds(ast.Compare, fields, comparisons, scalars),
    st.builds(lambda f, values: ast.In(f, tuple(values)), fields, st.lists(scalars, min_size=1, max_size=3)),
)
conditions = st.recursive(
    predicates,
    lambda inner: st.one_of(
        st.builds(ast.Not, inner),
        st.builds(lambda ops: ast.And(tuple(ops)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda ops: ast.Or(tuple(ops)), st.lists(inner, min_size=2, max_size=3))),
    max_leaves=8)
records = st.builds(lambda entries: ast.Record(tuple(entries)),
                    st.lists(st.tuples(fields, scalars), max_size=3))
rules = st.builds(
    ast.Rule, names, names, texts, conditions, st.integers(-1000, 1000) | st.just(0),
    st.lists(st.tuples(names, scalars), max_size=3).map(tuple),
    st.lists(records, max_size=2).map(tuple), st.lists(records, max_size=2).map(tuple))
declarations = st.one_of(
    st.builds(lambda t, labels: ast.LabelsDecl(t, tuple(labels)), names, st.lists(texts, max_size=12)),
    st.builds(ast.FieldDecl, names, st.sampled_from(["text", "number", "string"])),
    st.builds(lambda n, mode, lits: ast.LetDecl(n, mode, tuple(lits[:1]) if mode == "one" else tuple(lits)),
              names, st.sampled_from(["one", "any", "all"]), st.lists(texts, min_size=1, max_size=12)),
)


@st.composite
def programs(draw) -> list[ast.Statement]:
    """Statements of one file: an optional header, then declarations and rules in any order."""
    header = draw(st.lists(st.builds(ast.Header, st.integers(0, 3)), max_size=1))
    return header + draw(st.lists(st.one_of(declarations, rules), max_size=5))


comment_texts = st.text(max_size=10).map(lambda t: "#" + t.replace("\n", " ").rstrip())

# Pieces of kdsl text, valid and not, for splicing into sources.
TOKENS = [
    "kdsl", "1", "labels", "field", "let", "rule", "when", "priority", "meta", "example",
    "counterexample", "has", "matches", "fuzzy", "count", "len", "near", "in", "not", "and", "or",
    "any", "all", "true", "false", "null", "text", "number", "user", "model.score", "漏水", "r",
    "intent", '"a"', '"漏水"', '"\\q"', '"\\u12"', '"unterminated', "/re/", "/a\\/b/", "/(/",
    "/open", "0.6", "-3", "1e5", "99999999999999999999", "==", "!=", "<", "<=", ">", ">=", "=",
    ":", ",", ".", "(", ")", "[", "]", "{", "}", "#", "# comment\n", "\n", " ", "\t", "\r\n",
    "\ufeff", "\u2028", "\x00", "@", "好", "'", "\\",
]


@st.composite
def damaged(draw) -> str:
    """The source of a random program, with comments, then cut and spliced at one random place."""
    statements = draw(programs())
    source = messy_source(statements, draw(st.randoms(use_true_random=False)),
                          draw(st.lists(comment_texts, max_size=4)))
    at = draw(st.integers(0, len(source)))
    insert = draw(st.sampled_from(["", *TOKENS]))
    cut = draw(st.integers(0, 3))
    return source[:at] + insert + source[at + cut:]


# --- writing a tree out the way a person might -----------------------------------------------

def strict(value):
    """A structure that is equal only for identical trees: node types, field values and the
    Python types of scalars (``True``, ``1`` and ``1.0`` differ); spans are left out."""
    if dataclasses.is_dataclass(value):
        return (type(value).__name__,) + tuple(
            (f.name, strict(getattr(value, f.name))) for f in dataclasses.fields(value) if f.compare)
    if isinstance(value, (tuple, list)):
        return tuple(strict(v) for v in value)
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def messy_source(statements, rnd: random.Random, comments: list[str], comment_rate: float = 0.15) -> str:
    """Source text for ``statements`` with random layout; ``comments`` are spread over it, one
    after a token with probability ``comment_rate``, the rest at the end."""
    return _MessyWriter(rnd, comment_rate).program(statements, comments)


class _MessyWriter:
    def __init__(self, rnd: random.Random, comment_rate: float):
        self.rnd, self.comment_rate = rnd, comment_rate

    def program(self, statements, comments: list[str]) -> str:
        rnd, pending, out = self.rnd, list(comments), []
        for statement in statements:
            out.append(rnd.choice(["\n", "\n\n", "\n\n\n", " "]))
            for token in self.statement(statement):
                out.append(self.separator(pending))
                out.append(token)
        out.extend(f"\n{rnd.choice(['', '    '])}{c}" for c in pending)
        return "".join(out).lstrip(" ") + rnd.choice(["", "\n", "\n\n"])

    def separator(self, pending: list[str]) -> str:
        rnd = self.rnd
        if pending and rnd.random() < self.comment_rate:
            comment = pending.pop(0)
            return rnd.choice([f"  {comment}\n    ", f"\n{comment}\n", f"\n        {comment}\n  "])
        return rnd.choice([" ", " ", "  ", "\n    ", "\t"])

    def string(self, text: str) -> str:
        return json.dumps(text, ensure_ascii=self.rnd.random() < 0.5)

    def value(self, value) -> str:
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return self.string(value)
        return self.number(value)

    @staticmethod
    def number(value) -> str:
        if value in (float("inf"), float("-inf")):
            return "1e999" if value > 0 else "-1e999"  # read back as infinity
        return repr(value)

    def items(self, texts) -> list[str]:
        """Comma-separated tokens, sometimes with a trailing comma."""
        tokens = []
        for index, text in enumerate(texts):
            tokens += ([","] if index else []) + [text]
        if texts and self.rnd.random() < 0.3:
            tokens.append(",")
        return tokens

    def strings(self, texts) -> list[str]:
        return self.items([self.string(t) for t in texts])

    def statement(self, statement) -> list[str]:
        if isinstance(statement, ast.Header):
            return ["kdsl", str(statement.version)]
        if isinstance(statement, ast.LabelsDecl):
            return ["labels", statement.target, "=", "[", *self.strings(statement.labels), "]"]
        if isinstance(statement, ast.FieldDecl):
            return ["field", statement.name, ":", statement.type]
        if isinstance(statement, ast.LetDecl):
            if statement.mode == "one":
                return ["let", statement.name, "=", self.string(statement.literals[0])]
            return ["let", statement.name, "=", statement.mode, "(", *self.strings(statement.literals), ")"]
        return self.rule(statement)

    def record(self, entries) -> list[str]:
        """``{ key: value, ... }``; keys are names (meta) or fields (examples)."""
        pairs = [f"{getattr(key, 'name', key)} : {self.value(value)}" for key, value in entries]
        return ["{", *self.items(pairs), "}"]

    def rule(self, rule: ast.Rule) -> list[str]:
        rnd = self.rnd
        clauses = [["when", *self.condition(rule.condition, 0)]]
        if rule.priority or rnd.random() < 0.2:
            clauses.append(["priority", str(rule.priority)])
        if rule.meta or rnd.random() < 0.2:
            clauses.append(["meta", *self.record(rule.meta)])
        examples = [["example", *self.record(r.entries)] for r in rule.examples]
        counters = [["counterexample", *self.record(r.entries)] for r in rule.counterexamples]
        # Clauses in any order; examples keep their order among themselves (counterexamples too).
        order = ["c"] * len(clauses) + ["e"] * len(examples) + ["x"] * len(counters)
        rnd.shuffle(order)
        queues = {"c": iter(rnd.sample(clauses, len(clauses))), "e": iter(examples), "x": iter(counters)}
        tokens = ["rule", rule.name, ":", rule.target, "=", self.string(rule.label)]
        for kind in order:
            tokens += next(queues[kind])
        return tokens

    def condition(self, node, context: int) -> list[str]:
        """Tokens of ``node`` as an operand of a construct binding at ``context`` (0: top,
        1: or, 2: and, 3: not): parenthesised when needed, and sometimes when not."""
        binding = {ast.Or: 1, ast.And: 2, ast.Not: 3}.get(type(node), 4)
        if isinstance(node, (ast.Or, ast.And)):
            keyword, inner = ("or", 2) if isinstance(node, ast.Or) else ("and", 3)
            tokens = []
            for index, operand in enumerate(node.operands):
                tokens += ([keyword] if index else []) + self.condition(operand, inner)
        elif isinstance(node, ast.Not):
            tokens = ["not", *self.condition(node.operand, 3)]
        else:
            tokens = self.predicate(node)
        if binding < context or self.rnd.random() < 0.15:
            return ["(", *tokens, ")"]
        return tokens

    def predicate(self, node) -> list[str]:
        field = node.field.name
        if isinstance(node, ast.Has):
            if node.ref is not None:
                return [field, "has", node.ref]
            if node.mode == "one":
                return [field, "has", self.string(node.literals[0])]
            return [field, "has", node.mode, "(", *self.strings(node.literals), ")"]
        if isinstance(node, ast.Matches):
            return [field, "matches", "/" + node.pattern.replace("/", "\\/") + "/"]
        if isinstance(node, ast.Measure):
            literal = [",", self.string(node.literal)] if node.literal is not None else []
            return [node.function, "(", field, *literal, ")", node.op, self.number(node.value)]
        if isinstance(node, ast.Near):
            return ["near", "(", field, ",", self.string(node.first), ",", self.string(node.second),
                    ",", str(node.distance), ")"]
        if isinstance(node, ast.Compare):
            return [field, node.op, self.value(node.value)]
        return [field, "in", "(", *self.items([self.value(v) for v in node.values]), ")"]
