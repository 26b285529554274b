"""Canonical, idempotent formatting of kdsl source (``kdsl fmt``) that keeps every comment.

    >>> print(format_source('rule r:intent="是否好用" when (user has "好用")  # why'), end="")
    rule r: intent = "是否好用"
        when user has "好用"  # why

The style ``kdsl fmt`` writes:

- ``kdsl N`` only where the source has that header (its absence is part of the program).
- One blank line between top-level items. Consecutive declarations of the same kind
  (``labels``, ``field`` or ``let``) form a group: inside it a blank line is kept where the
  source had one (never more than one), so writers can sub-group related names.
- Width is counted in terminal cells, a CJK character taking two (as in an editor): a line of
  100 Chinese characters is as hard to read as one of 200 Latin letters.
- ``labels T = [...]`` and ``let N = any(...)``/``all(...)`` stay on one line up to 100 cells;
  longer ones, and ones with comments between their strings, put one string per line,
  indented 4, with a trailing comma.
- ``rule NAME: TARGET = "LABEL"``, then its clauses indented 4 spaces in the order ``when``,
  ``priority`` (left out when 0, which is the default), ``meta`` (left out when empty),
  ``example``s, ``counterexample``s. Meta and records are written on one line,
  ``meta { key: value, ... }``, ``example { user: "..." }``, ``example {}``.
- Conditions get the fewest parentheses that keep the same tree under ``not`` > ``and`` > ``or``
  (tightest first): ``(a and b) or c`` becomes ``a and b or c``, while ``(a or b) or c`` keeps
  its parentheses because it is a different tree from ``a or b or c``. A condition breaks before
  each top-level ``or``/``and`` when ``    when ...`` would be wider than 100 cells or when a
  comment sits between its top-level operands; continuation lines are indented 9 spaces, under
  the condition after ``when ``. Deeper operands are not broken.
- Strings are ``json.dumps(s, ensure_ascii=False)``, except that lone surrogates and the line
  separators U+0085, U+2028 and U+2029 are written ``\\uXXXX``. Regexes are ``/.../`` with
  ``/`` written ``\\/``. Integers stay integers; other numbers are Python's shortest
  round-tripping ``repr`` (``0.6`` stays ``0.6``).

Comments are kept, each exactly once and in their original order:

- a comment on a line of its own stays before the code that follows it, at that code's
  indentation; an indented comment just before the next top-level item stays at the end of the
  rule above it (it usually belongs to that rule, e.g. a commented-out clause);
- a comment after code stays at the end of the output line that holds that code;
- where a clause moves to its canonical place, or several source lines join into one output
  line, a comment that can no longer trail its code keeps its order by going on a line of its
  own right after the comment before it;
- a blank line after a top-level comment (a section heading) is kept; comments after the last
  item stay at the end of the file, after a blank line if the source had one there.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import unicodedata
from dataclasses import dataclass

import lark

from kdsl.dsl import ast
from kdsl.dsl.parser import _parser, parse

MAX_WIDTH = 100
INDENT = " " * 4
CONTINUATION = " " * len(INDENT + "when ")

Position = tuple[int, int]  # (line, column), 1-based, as Lark counts them
Slot = tuple[int, int]  # (output line index, one of the slot kinds below)

# Where a comment goes relative to output line L, in output order: at the end of the rule that
# precedes L (before the blank separator), on its own line before L, or trailing L.
TAIL, BEFORE, TRAILING = 0, 1, 2


def format_source(source: str, path: str = "<string>") -> str:
    """Parse and format kdsl source; raise ``RuleError`` when it does not parse.

    >>> print(format_source('let a=any( "x","y", )'), end="")
    let a = any("x", "y")
    """
    return format_program(parse(source, path))


def format_program(program: ast.Program) -> str:
    """The canonical text of ``program``, its comments placed by their positions in
    ``program.source``.

    A program built in code (empty source, no comments) formats too; comments whose places
    cannot be found in the source go to the end of the file.
    """
    positions = _SourcePositions(program)
    # Break the conditions and lists that have comments between their parts in the source,
    # unless every such comment has to move elsewhere (the break would not survive a second run).
    forced = {item for item, statement in enumerate(program.statements)
              if positions.comment_between_parts(item, statement)}
    while True:
        layout = _Layout(program, positions, forced)
        placements = _place_comments(program, positions, layout)
        kept = forced & layout.items_with_comments_between_parts(placements)
        if kept == forced:
            return layout.render(placements)
        forced = kept


def format_condition(condition: ast.Condition) -> str:
    """A condition on one line with the fewest parentheses that keep its tree.

    >>> from kdsl.dsl import parse
    >>> rule = parse('rule r: t = "x" when (a has "1" or (b has "2" and not (c has "3")))').rules[0]
    >>> format_condition(rule.condition)
    'a has "1" or b has "2" and not c has "3"'
    """
    if isinstance(condition, ast.Or):
        return " or ".join(_operand(o, ast.Or) for o in condition.operands)
    if isinstance(condition, ast.And):
        return " and ".join(_operand(o, ast.And) for o in condition.operands)
    if isinstance(condition, ast.Not):
        return "not " + _operand(condition.operand, ast.Not)
    return _predicate(condition)


def _operand(node: ast.Condition, parent: type) -> str:
    """``node`` as an operand of ``parent`` (``ast.Or``, ``ast.And`` or ``ast.Not``).

    Parentheses go where precedence needs them, and also around an ``or`` inside ``or`` or an
    ``and`` inside ``and``: flattening those would give a different tree.
    """
    text = format_condition(node)
    needs_parentheses = isinstance(node, ast.Or) or (isinstance(node, ast.And) and parent is not ast.Or)
    return f"({text})" if needs_parentheses else text


def _predicate(node: ast.Predicate) -> str:
    field = node.field.name
    if isinstance(node, ast.Has):
        if node.ref is not None:
            return f"{field} has {node.ref}"
        return f"{field} has {_literal_set(node.mode, node.literals)}"
    if isinstance(node, ast.Matches):
        return f"{field} matches {_regex(node.pattern)}"
    if isinstance(node, ast.Measure):
        literal = "" if node.literal is None else ", " + _string(node.literal)
        return f"{node.function}({field}{literal}) {node.op} {_value(node.value)}"
    if isinstance(node, ast.Near):
        return f"near({field}, {_string(node.first)}, {_string(node.second)}, {node.distance})"
    if isinstance(node, ast.Compare):
        return f"{field} {node.op} {_value(node.value)}"
    if isinstance(node, ast.In):
        return f"{field} in ({', '.join(_value(v) for v in node.values)})"
    raise TypeError(f"not a kdsl condition: {node!r}")


def _literal_set(mode: str, literals: tuple[str, ...]) -> str:
    if mode == "one":
        return _string(literals[0])
    return f"{mode}({', '.join(_string(s) for s in literals)})"


# json.dumps leaves these raw: lone surrogates cannot be written as UTF-8, and editors and
# str.splitlines() take U+0085, U+2028 and U+2029 for line breaks.
_ESCAPED_RAW = re.compile("[\ud800-\udfff\x85\u2028\u2029]")


def _string(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    return _ESCAPED_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _regex(pattern: str) -> str:
    # The parser unescapes `\/` to `/` and nothing else, so this restores the written form.
    return "/" + pattern.replace("/", "\\/") + "/"


def _value(value: ast.Scalar) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):  # the parser reads a number beyond float range as infinity
            return "1e999" if value > 0 else "-1e999"
        if math.isnan(value):
            raise ValueError("NaN cannot be written in kdsl")
        return repr(value)
    return _string(value)


def _record(record: ast.Record) -> str:
    entries = ", ".join(f"{f.name}: {_value(v)}" for f, v in record.entries)
    return f"{{ {entries} }}" if entries else "{}"


# --- where things were in the source ---------------------------------------------------------

def _width(text: str) -> int:
    """Terminal cells: a CJK character takes two, as in the editors rules are written in."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _start(span_or_meta) -> Position | None:
    line = getattr(span_or_meta, "line", 0) or 0
    return (line, span_or_meta.column) if line > 0 else None


class _SourcePositions:
    """Positions in ``program.source`` of what the formatter writes at the start of a line.

    The syntax tree keeps spans of statements and conditions only, so the clause keywords and
    the strings of ``labels``/``let`` lists are found in Lark's parse tree of the same source.
    Without comments nothing needs anchoring and the source is not parsed again.
    """

    def __init__(self, program: ast.Program):
        self.program = program
        self.lines = program.source.split("\n")  # Lark counts lines by "\n" only
        self.comments = sorted((c.line, c.column) for c in program.comments)
        self.items: list[dict] | None = self._tree_items() if program.comments else None

    def _tree_items(self) -> list[dict] | None:
        try:
            tree = _parser().parse(self.program.source)
        except lark.exceptions.LarkError:
            return None
        items = [c for c in tree.children if isinstance(c, lark.Tree)]
        if len(items) != len(self.program.statements):
            return None
        return [self._item(item) for item in items]

    @staticmethod
    def _item(item: lark.Tree) -> dict:
        found: dict = {}
        if item.data == "rule":
            for clause in item.children:
                if isinstance(clause, lark.Tree) and clause.data.endswith("_clause"):
                    found.setdefault(clause.data.removesuffix("_clause"), []).append(_start(clause.meta))
        elif item.data == "labels_decl" or (
                item.data == "let_decl" and item.children[-1].data in ("any_literals", "all_literals")):
            group = item if item.data == "labels_decl" else item.children[-1]
            strings = [c for c in group.children if isinstance(c, lark.Tree) and c.data == "string"]
            found["elements"] = [_start(s.meta) for s in strings]
            found["close"] = (group.meta.end_line, group.meta.end_column - 1)  # the `]` or `)`
        return found

    def anchor(self, item: int, key: str, index: int = 0) -> Position | None:
        if self.items is None:
            return None
        found = self.items[item].get(key)
        if found is None:
            return None
        return found if key == "close" else (found[index] if index < len(found) else None)

    def statement_start(self, statement) -> Position | None:
        return _start(statement.span) if self.items is not None else None

    def node_start(self, node) -> Position | None:
        return _start(node.span) if self.items is not None else None

    def comment_between_parts(self, item: int, statement: ast.Statement) -> bool:
        """Whether a comment lies between the start of what a statement may break into lines
        (a rule's condition, a ``labels`` or ``let`` list) and the start of its last part (last
        top-level operand, last string): it can stay there only if that is broken into lines."""
        if self.items is None:
            return False
        first = last = None
        if isinstance(statement, ast.Rule) and isinstance(statement.condition, (ast.And, ast.Or)):
            first, last = _start(statement.condition.span), _start(statement.condition.operands[-1].span)
        elif isinstance(statement, (ast.LabelsDecl, ast.LetDecl)) and self.items[item].get("elements"):
            first, last = _start(statement.span), self.items[item]["elements"][-1]
        if not (first and last):
            return False
        after_first = bisect.bisect_left(self.comments, first)
        return after_first < len(self.comments) and self.comments[after_first] < last

    def is_trailing(self, comment: ast.Comment) -> bool:
        return self._line(comment.line)[: comment.column - 1].strip() != ""

    def blank_after(self, comment: ast.Comment) -> bool:
        return comment.line < len(self.lines) and not self._line(comment.line + 1).strip()

    def blank_before(self, comment: ast.Comment) -> bool:
        return comment.line > 1 and not self._line(comment.line - 1).strip()

    def _line(self, number: int) -> str:
        # A program built in code may carry comments without the source they came from.
        return self.lines[number - 1] if 1 <= number <= len(self.lines) else ""

    def blank_between(self, previous, current) -> bool:
        """Whether the source has an empty line between two statements."""
        start, end = previous.span.end_line, current.span.line
        return 0 < start < end <= len(self.lines) and any(
            not self._line(number).strip() for number in range(start + 1, end))


# --- output lines ---------------------------------------------------------------------------

@dataclass
class _Line:
    indent: str
    text: str
    anchor: Position | None  # source position of the first token this line writes
    item: int  # index of the top-level statement it belongs to
    first: bool = False  # the first line of its statement
    blank_before: bool = False


class _Layout:
    """The code lines of a program, and which lines each broken condition or list took."""

    def __init__(self, program: ast.Program, positions: _SourcePositions, forced: set[int]):
        self.program, self.positions, self.forced = program, positions, forced
        self.lines: list[_Line] = []
        # Statement -> indices of the lines its condition or list was broken into (a list's
        # closing line left out): a comment between these lines keeps the break.
        self.broken_parts: dict[int, list[int]] = {}
        previous = None
        for item, statement in enumerate(program.statements):
            start = len(self.lines)
            self._statement(item, statement)
            self.lines[start].first = True
            self.lines[start].blank_before = previous is not None and (
                type(previous) is not type(statement)
                or isinstance(statement, (ast.Rule, ast.Header))
                or positions.blank_between(previous, statement))
            previous = statement

    def _add(self, indent: str, text: str, anchor: Position | None, item: int) -> None:
        self.lines.append(_Line(indent, text, anchor, item))

    def _statement(self, item: int, statement: ast.Statement) -> None:
        at = self.positions.statement_start(statement)
        if isinstance(statement, ast.Header):
            self._add("", f"kdsl {statement.version}", at, item)
        elif isinstance(statement, ast.LabelsDecl):
            self._list(item, f"labels {statement.target} = ", "[", statement.labels, "]", at)
        elif isinstance(statement, ast.FieldDecl):
            self._add("", f"field {statement.name}: {statement.type}", at, item)
        elif isinstance(statement, ast.LetDecl):
            head = f"let {statement.name} = "
            if statement.mode == "one":
                self._add("", head + _string(statement.literals[0]), at, item)
            else:
                self._list(item, head, statement.mode + "(", statement.literals, ")", at)
        elif isinstance(statement, ast.Rule):
            self._rule(item, statement, at)
        else:
            raise TypeError(f"not a kdsl statement: {statement!r}")

    def _list(self, item: int, head: str, opening: str, strings, closing: str, at) -> None:
        one_line = head + opening + ", ".join(map(_string, strings)) + closing
        if not strings or (_width(one_line) <= MAX_WIDTH and item not in self.forced):
            self._add("", one_line, at, item)
            return
        start = len(self.lines)
        self._add("", head + opening, at, item)
        for index, text in enumerate(strings):
            self._add(INDENT, _string(text) + ",", self.positions.anchor(item, "elements", index), item)
        self.broken_parts[item] = list(range(start, len(self.lines)))
        self._add("", closing, self.positions.anchor(item, "close"), item)

    def _rule(self, item: int, rule: ast.Rule, at) -> None:
        if rule.condition is None:
            raise ValueError(f"rule {rule.name} has no condition")
        anchor = self.positions.anchor
        self._add("", f"rule {rule.name}: {rule.target} = {_string(rule.label)}", at, item)
        self._when(item, rule.condition, anchor(item, "when"))
        if rule.priority != 0:
            self._add(INDENT, f"priority {rule.priority}", anchor(item, "priority"), item)
        if rule.meta:
            entries = ", ".join(f"{key}: {_value(value)}" for key, value in rule.meta)
            self._add(INDENT, f"meta {{ {entries} }}", anchor(item, "meta"), item)
        for index, record in enumerate(rule.examples):
            self._add(INDENT, "example " + _record(record), anchor(item, "example", index), item)
        for index, record in enumerate(rule.counterexamples):
            self._add(INDENT, "counterexample " + _record(record),
                      anchor(item, "counterexample", index), item)

    def _when(self, item: int, condition: ast.Condition, at) -> None:
        text = "when " + format_condition(condition)
        breakable = isinstance(condition, (ast.And, ast.Or)) and len(condition.operands) > 1
        if not breakable or (_width(INDENT + text) <= MAX_WIDTH and item not in self.forced):
            self._add(INDENT, text, at, item)
            return
        keyword = "or" if isinstance(condition, ast.Or) else "and"
        first, *rest = condition.operands
        start = len(self.lines)
        self._add(INDENT, "when " + _operand(first, type(condition)), at, item)
        for operand in rest:
            self._add(CONTINUATION, f"{keyword} {_operand(operand, type(condition))}",
                      self.positions.node_start(operand), item)
        self.broken_parts[item] = list(range(start, len(self.lines)))

    # --- comments ---------------------------------------------------------------------------

    def opens_item(self, index: int) -> bool:
        return index == len(self.lines) or self.lines[index].first

    def follows_rule(self, index: int) -> bool:
        """Whether the statement before the one that line ``index`` opens is a rule."""
        previous = self.lines[index].item - 1 if index < len(self.lines) else len(self.program.statements) - 1
        return previous >= 0 and isinstance(self.program.statements[previous], ast.Rule)

    def items_with_comments_between_parts(self, placements) -> set[int]:
        """The statements with a comment placed between the lines of a broken condition or list."""
        occupied = {slot for slot, _ in placements}
        return {item for item, lines in self.broken_parts.items()
                if any((i, TRAILING) in occupied for i in lines[:-1])
                or any((i, BEFORE) in occupied for i in lines[1:])}

    def render(self, placements: list[tuple[Slot, ast.Comment]]) -> str:
        by_slot: dict[Slot, list[ast.Comment]] = {}
        for slot, comment in placements:
            by_slot.setdefault(slot, []).append(comment)
        out: list[str] = []
        end = len(self.lines)
        for index in range(end + 1):
            line = self.lines[index] if index < end else None
            out.extend(INDENT + c.text for c in by_slot.get((index, TAIL), ()))
            before = by_slot.get((index, BEFORE), [])
            # Comments after the last item are set apart from it as they were in the source.
            blank = line.blank_before if line else bool(
                before and self.lines and self.positions.blank_before(before[0]))
            if blank:
                out.append("")
            # Blank lines after top-level comments are kept only where they cannot change how
            # the items themselves are separated.
            keep_blanks = self.opens_item(index) and (line is None or blank or line.item == 0)
            for position, comment in enumerate(before):
                out.append((line.indent if line else "") + comment.text)
                last_in_file = line is None and position == len(before) - 1
                if keep_blanks and not last_in_file and self.positions.blank_after(comment):
                    out.append("")
            if line:
                trailing = by_slot.get((index, TRAILING))
                out.append(line.indent + line.text + (f"  {trailing[0].text}" if trailing else ""))
        return "\n".join(out) + "\n" if out else ""


def _place_comments(program: ast.Program, positions: _SourcePositions, layout: _Layout):
    """Give each comment, in source order, a slot next to the code it was next to; a comment
    whose natural slot would put it before the previous comment (or share a line's end with
    it) goes on its own line right after that comment instead."""
    lines = layout.lines
    anchored = sorted((line.anchor, index) for index, line in enumerate(lines) if line.anchor)
    anchors = [anchor for anchor, _ in anchored]
    placements: list[tuple[Slot, ast.Comment]] = []
    last: Slot | None = None
    for comment in program.comments:
        here = (comment.line, comment.column)
        after = bisect.bisect_left(anchors, here)  # index of the first anchor after the comment
        if positions.is_trailing(comment):
            slot = (anchored[after - 1][1], TRAILING) if after > 0 else (len(lines), BEFORE)
        else:
            index = anchored[after][1] if after < len(anchored) else len(lines)
            indented_after_rule = (comment.column > 1 and bool(lines) and layout.opens_item(index)
                                   and layout.follows_rule(index))
            slot = (index, TAIL if indented_after_rule else BEFORE)
        if last is not None and (slot < last or (slot == last and slot[1] == TRAILING)):
            slot = _slot_after(last, layout)
        placements.append((slot, comment))
        last = slot
    return placements


def _slot_after(slot: Slot, layout: _Layout) -> Slot:
    """The first slot for a comment on its own line after a comment placed at ``slot``."""
    index, kind = slot
    if kind != TRAILING:
        return slot
    following = index + 1
    if layout.opens_item(following) and layout.follows_rule(following):
        return (following, TAIL)
    return (following, BEFORE)
