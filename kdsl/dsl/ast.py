"""The kdsl syntax tree: frozen dataclasses, each carrying the span it was parsed from.

The tree is faithful to the source (``has leak`` keeps the name ``leak``); ``kdsl.dsl.resolve``
returns a copy in which names are replaced by their literals, ready for the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class Span:
    """Where a node came from: 1-based line and column of its first and last character."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}" if self.line else self.path


NOWHERE = Span("<built>", 0, 0, 0, 0)

Scalar = Union[str, int, float, bool, None]

# Comparison operators as written; kdsl/engine/ops.py evaluates them.
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class Field:
    """A column reference. ``name`` is as written (``model.score``); ``column`` is the column."""

    name: str
    span: Span = field(default=NOWHERE, compare=False)

    @property
    def column(self) -> str:
        return self.name.replace(".", "_")


@dataclass(frozen=True)
class Has:
    """``FIELD has "a"`` (mode ``one``), ``has any(...)``, ``has all(...)`` or ``has NAME``.

    For ``has NAME`` the parser sets ``ref``; ``resolve`` fills ``mode`` and ``literals``.
    """

    field: Field
    mode: str  # "one" | "any" | "all"
    literals: tuple[str, ...]
    ref: str | None = None
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Matches:
    field: Field
    pattern: str
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Measure:
    """A numeric function of a text compared with a number.

    ``fuzzy(FIELD, "lit") >= N``, ``count(FIELD, "lit") >= N`` and ``len(FIELD) > N``
    (``literal`` is None for ``len``).
    """

    function: str  # "fuzzy" | "count" | "len"
    field: Field
    literal: str | None
    op: str
    value: float
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Near:
    """``near(FIELD, "a", "b", N)``: both occur with at most N characters between their starts."""

    field: Field
    first: str
    second: str
    distance: int
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str
    value: Scalar
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class In:
    field: Field
    values: tuple[Scalar, ...]
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Not:
    operand: "Condition"
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class And:
    operands: tuple["Condition", ...]
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Or:
    operands: tuple["Condition", ...]
    span: Span = field(default=NOWHERE, compare=False)


Predicate = Union[Has, Matches, Measure, Near, Compare, In]
Condition = Union[Predicate, Not, And, Or]
PREDICATES = (Has, Matches, Measure, Near, Compare, In)


@dataclass(frozen=True)
class Header:
    version: int
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class LabelsDecl:
    target: str
    labels: tuple[str, ...]
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class FieldDecl:
    name: str
    type: str  # "text" | "number" | "string"
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class LetDecl:
    name: str
    mode: str  # "one" | "any" | "all"
    literals: tuple[str, ...]
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Record:
    """An ``example`` or ``counterexample`` record: field name as written -> value."""

    entries: tuple[tuple[Field, Scalar], ...]
    span: Span = field(default=NOWHERE, compare=False)

    def as_row(self) -> dict[str, Scalar]:
        """The record as a row of the record table (``model.score`` -> ``model_score``)."""
        return {f.column: v for f, v in self.entries}


@dataclass(frozen=True)
class Rule:
    name: str
    target: str
    label: str
    condition: Condition | None  # None only while a missing `when` is being reported
    priority: int = 0
    meta: tuple[tuple[str, Scalar], ...] = ()
    examples: tuple[Record, ...] = ()
    counterexamples: tuple[Record, ...] = ()
    span: Span = field(default=NOWHERE, compare=False)
    # Spans of the pieces errors point at; not part of a rule's meaning.
    name_span: Span = field(default=NOWHERE, compare=False)
    label_span: Span = field(default=NOWHERE, compare=False)


Statement = Union[Header, LabelsDecl, FieldDecl, LetDecl, Rule]


@dataclass(frozen=True)
class Comment:
    text: str  # including the leading '#'
    line: int
    column: int


@dataclass(frozen=True)
class Program:
    """One parsed ``.kdsl`` file."""

    path: str
    source: str
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = ()

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(s for s in self.statements if isinstance(s, Rule))


def walk(condition: Condition):
    """Yield every node of a condition, parents before children."""
    yield condition
    if isinstance(condition, Not):
        yield from walk(condition.operand)
    elif isinstance(condition, (And, Or)):
        for operand in condition.operands:
            yield from walk(operand)
