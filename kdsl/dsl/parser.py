"""Source text -> ``Program``: Lark (LALR, contextual lexer) over ``grammar/kdsl.lark``.

    >>> from kdsl.dsl import parse
    >>> parse('rule r: intent = "是否好用" when user has "好用"').rules[0].label
    '是否好用'

Syntax errors become ``RuleError`` with the file, line and column, the line itself and what was
expected at that point; nothing else escapes.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import lark
from lark import Token, Transformer, v_args

from kdsl.dsl import ast
from kdsl.dsl.errors import Diagnostic, RuleError
from kdsl.errors import RuleLimitError
from kdsl.limits import MAX_LITERAL_CHARS, MAX_RULE_FILE_BYTES

GRAMMAR = "kdsl.lark"

# How the grammar's terminals read in an error message.
_TERMINAL_NAMES = {
    "NAME": "a name", "STRING": "a string", "REGEX": "a /regex/", "INT": "an integer",
    "SIGNED_INT": "an integer", "SIGNED_NUMBER": "a number", "CMP": "a comparison (== != < <= > >=)",
    "FIELD_TYPE": "a field type (text, number, string)", "TRUE": "true", "FALSE": "false",
    "NULL": "null", "$END": "the end of the file", "COLON": "':'", "COMMA": "','", "EQUAL": "'='",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'",
    "DOT": "'.'",
}


@functools.cache
def _parser() -> lark.Lark:
    text = resources.files("kdsl.dsl").joinpath(GRAMMAR).read_text(encoding="utf-8")
    return lark.Lark(text, parser="lalr", lexer="contextual", propagate_positions=True,
                     maybe_placeholders=False, cache=False)


def parse(source: str, path: str = "<string>") -> ast.Program:
    """Parse kdsl source into a ``Program``; raise ``RuleError`` on a syntax error."""
    comments: list[ast.Comment] = []
    if len(source) > MAX_RULE_FILE_BYTES:  # characters <= bytes: checked again on the file's size
        raise RuleLimitError([Diagnostic(f"{len(source)} characters; a rule file may hold at most "
                                         f"{MAX_RULE_FILE_BYTES} bytes", ast.Span(path, 1, 1, 1, 2))])
    try:
        tree = _parser().parse(source)
    except lark.exceptions.UnexpectedInput as error:
        raise RuleError([_syntax_diagnostic(error, source, path)]) from None
    for token in _parser().lex(source, dont_ignore=True) if "#" in source else ():
        if token.type == "COMMENT":
            comments.append(ast.Comment(str(token).rstrip(), token.line, token.column))
    _check_nesting(tree, source, path)
    try:
        statements = _ToAst(path, source).transform(tree)
    except lark.exceptions.VisitError as error:
        if isinstance(error.orig_exc, RuleError):
            raise error.orig_exc from None
        raise
    return ast.Program(path, source, tuple(statements), tuple(comments))


# Deeper trees would exhaust Python's recursion in the tree transformer, and later in every
# recursive walk of a condition; real conditions nest a few levels.
MAX_NESTING = 100


def _check_nesting(tree: lark.Tree, source: str, path: str) -> None:
    """Raise ``RuleError`` at the first node nested more than ``MAX_NESTING`` deep."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            message = f"condition nested more than {MAX_NESTING} levels deep; simplify it"
            raise RuleError([Diagnostic(message, _span(path, node.meta), source)])
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, lark.Tree))


def _syntax_diagnostic(error: lark.exceptions.UnexpectedInput, source: str, path: str) -> Diagnostic:
    line, column = max(error.line, 1), max(error.column, 1)
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        char = source[error.pos_in_stream] if error.pos_in_stream < len(source) else ""
        width = 1
        if char in ('"', "/"):
            what = "string" if char == '"' else "regex"
            span = ast.Span(path, line, column, line, column + 1)
            return Diagnostic(f"unterminated {what}; expected a closing {char} on the same line", span, source)
        found, expected = repr(char) if char else "end of file", error.allowed
    elif isinstance(error, lark.exceptions.UnexpectedEOF):
        found, expected, width = "end of file", error.expected, 1
        line, column = _end_position(source)
    else:
        token = error.token
        found = "end of file" if token.type == "$END" else repr(str(token))
        expected = getattr(error, "accepts", None) or error.expected
        width = max(1, len(str(token)))
        if token.type == "$END":
            line, column = _end_position(source)
    span = ast.Span(path, line, column, line, column + width)
    return Diagnostic(f"unexpected {found}; expected {_describe(expected)}", span, source)


def _end_position(source: str) -> tuple[int, int]:
    # Lines as Lark counts them ("\n" only), without the empty one after a final newline.
    lines = source.split("\n")
    if len(lines) > 1 and not lines[-1]:
        lines.pop()
    return len(lines), len(lines[-1].removesuffix("\r")) + 1


def _describe(expected) -> str:
    names = set()
    for terminal in expected or ():
        if terminal in _TERMINAL_NAMES:
            names.add(_TERMINAL_NAMES[terminal])
            continue
        pattern = _parser().get_terminal(terminal).pattern
        names.add(f"'{pattern.value}'" if pattern.type == "str" else terminal.lower())
    ordered = sorted(names)
    if len(ordered) > 1:
        return ", ".join(ordered[:-1]) + " or " + ordered[-1]
    return ordered[0] if ordered else "something else"


def _span(path: str, meta) -> ast.Span:
    return ast.Span(path, meta.line, meta.column, meta.end_line, meta.end_column)


@v_args(meta=True)
class _ToAst(Transformer):
    """Lark tree -> kdsl.dsl.ast nodes."""

    def __init__(self, path: str, source: str):
        super().__init__()
        self.path, self.source = path, source
        self.lines = source.split("\n")  # as Lark counts lines

    def _at(self, meta) -> ast.Span:
        return _span(self.path, meta)

    def _token_span(self, token: Token) -> ast.Span:
        return ast.Span(self.path, token.line, token.column, token.end_line, token.end_column)

    def _fail(self, message: str, span: ast.Span):
        raise RuleError([Diagnostic(message, span, self.source)])

    # literals -------------------------------------------------------------------------------
    def string(self, meta, children):
        token = children[0]
        try:
            value = json.loads(str(token))
        except json.JSONDecodeError as error:
            if error.msg.startswith("Invalid control character"):
                code = f"\\u{ord(str(token)[error.pos]):04x}"
                self._fail(f"control character in a string; write it as an escape such as {code}",
                           self._token_span(token))
            self._fail(f"invalid string escape ({error.msg})", self._token_span(token))
        if len(value) > MAX_LITERAL_CHARS:
            raise RuleLimitError([Diagnostic(f"a string of {len(value)} characters; the limit is "
                                             f"{MAX_LITERAL_CHARS}", self._token_span(token), self.source)])
        surrogate = next((ch for ch in value if "\ud800" <= ch <= "\udfff"), None)
        if surrogate is not None:
            # json.loads lets "\ud800" through; it cannot be encoded as UTF-8 by the matcher or Arrow.
            self._fail(f"lone surrogate \\u{ord(surrogate):04x} in a string; escape a character outside the "
                       "BMP as a surrogate pair or write it directly", self._token_span(token))
        return value

    def _int(self, token: Token) -> int:
        try:
            return int(token)
        except ValueError:  # Python refuses to convert more than 4300 digits
            self._fail(f"number too long ({len(token)} digits)", self._token_span(token))

    def number(self, meta, children):
        text = str(children[0])
        return float(text) if any(c in text for c in ".eE") else self._int(children[0])

    def signed_int(self, meta, children):
        return self._int(children[0])

    def TRUE(self, token):
        return True

    def FALSE(self, token):
        return False

    def NULL(self, token):
        return None

    def field(self, meta, children):
        return ast.Field(".".join(str(c) for c in children), self._at(meta))

    def one_literal(self, meta, children):
        return ("one", tuple(children), None)

    def any_literals(self, meta, children):
        return ("any", tuple(children), None)

    def all_literals(self, meta, children):
        return ("all", tuple(children), None)

    def literal_ref(self, meta, children):
        return ("one", (), str(children[0]))

    # predicates ------------------------------------------------------------------------------
    def has(self, meta, children):
        field, (mode, literals, ref) = children
        return ast.Has(field, mode, literals, ref, self._at(meta))

    def matches(self, meta, children):
        field, regex = children
        pattern = str(regex)[1:-1].replace("\\/", "/")
        return ast.Matches(field, pattern, self._at(meta))

    def _measure(self, function, meta, children):
        field, *literal, op, value = children
        return ast.Measure(function, field, literal[0] if literal else None, str(op), value, self._at(meta))

    def fuzzy(self, meta, children):
        return self._measure("fuzzy", meta, children)

    def count(self, meta, children):
        return self._measure("count", meta, children)

    def len(self, meta, children):
        return self._measure("len", meta, children)

    def near(self, meta, children):
        field, first, second, distance = children
        return ast.Near(field, first, second, self._int(distance), self._at(meta))

    def compare(self, meta, children):
        field, op, value = children
        return ast.Compare(field, str(op), value, self._at(meta))

    def in_(self, meta, children):
        field, *values = children
        return ast.In(field, tuple(values), self._at(meta))

    def not_(self, meta, children):
        return ast.Not(children[0], self._at(meta))

    def and_(self, meta, children):
        return ast.And(tuple(children), self._at(meta))

    def or_(self, meta, children):
        return ast.Or(tuple(children), self._at(meta))

    # statements ------------------------------------------------------------------------------
    def start(self, meta, children):
        return children

    def header(self, meta, children):
        return ast.Header(self._int(children[0]), self._at(meta))

    def labels_decl(self, meta, children):
        name, *labels = children
        return ast.LabelsDecl(str(name), tuple(labels), self._at(meta))

    def field_decl(self, meta, children):
        name, kind = children
        return ast.FieldDecl(str(name), str(kind), self._at(meta))

    def let_decl(self, meta, children):
        name, (mode, literals, ref) = children
        if ref is not None:
            self._fail(f"let {name} must be a string, any(...) or all(...), not the name '{ref}'",
                       self._at(meta))
        return ast.LetDecl(str(name), mode, literals, self._at(meta))

    def meta_entry(self, meta, children):
        return (str(children[0]), children[1])

    def record_entry(self, meta, children):
        return (children[0], children[1])

    def record(self, meta, children):
        return ast.Record(tuple(children), self._at(meta))

    def when_clause(self, meta, children):
        return ("when", children[0], self._at(meta))

    def priority_clause(self, meta, children):
        return ("priority", children[0], self._at(meta))

    def meta_clause(self, meta, children):
        return ("meta", tuple(children), self._at(meta))

    def example_clause(self, meta, children):
        return ("example", children[0], self._at(meta))

    def counterexample_clause(self, meta, children):
        return ("counterexample", children[0], self._at(meta))

    def rule(self, meta, children):
        name, target, label, *clauses = children
        fields = {"condition": None, "priority": 0, "meta": (), "examples": [], "counterexamples": []}
        seen: dict[str, ast.Span] = {}
        for kind, value, span in clauses:
            if kind in ("when", "priority", "meta") and kind in seen:
                self._fail(f"rule {name} has a second '{kind}' clause (the first is at line "
                           f"{seen[kind].line})", span)
            seen[kind] = span
            if kind == "when":
                fields["condition"] = value
            elif kind == "priority":
                fields["priority"] = value
            elif kind == "meta":
                fields["meta"] = value
            else:
                fields[kind + "s"].append(value)
        rule_span = self._at(meta)
        if fields["condition"] is None:
            self._fail(f"rule {name} has no 'when' clause; expected 'when CONDITION'", self._token_span(name))
        return ast.Rule(
            str(name), str(target), label, fields["condition"], fields["priority"], fields["meta"],
            tuple(fields["examples"]), tuple(fields["counterexamples"]), rule_span,
            name_span=self._token_span(name), label_span=self._label_span(meta, label),
        )

    def _label_span(self, meta, label: str) -> ast.Span:
        # The label string is the first string literal of the rule's header line.
        line = self.lines[meta.line - 1] if meta.line else ""
        quoted = json.dumps(label, ensure_ascii=False)
        column = line.find(quoted, meta.column - 1)
        if column < 0:
            return _span(self.path, meta)
        return ast.Span(self.path, meta.line, column + 1, meta.line, column + 1 + len(quoted))
