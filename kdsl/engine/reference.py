"""The reference interpreter: the language's meaning, written as plainly as possible.

It walks the checked syntax tree one record at a time. It is the oracle the compiled engine is
tested against (tests/engine/test_agreement.py), and the engine uses ``holds`` to finish rows
whose rules need predicates it does not compile (regex, fuzzy, count, near).
"""

from __future__ import annotations

import math
import operator

from rapidfuzz import fuzz

from kdsl.dsl import ast
from kdsl.dsl.checker import RuleSet
from kdsl.dsl.text import compile_regex, normalize_text

OPERATORS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
             ">": operator.gt, ">=": operator.ge}


class Record:
    """One row, with its texts normalised on first use."""

    def __init__(self, row: dict):
        self.row = row
        self._texts: dict[str, str] = {}

    def value(self, field: ast.Field):
        return self.row.get(field.column)

    def text(self, field: ast.Field) -> str:
        column = field.column
        if column not in self._texts:
            value = self.row.get(column)
            self._texts[column] = normalize_text(value if isinstance(value, str) else None)
        return self._texts[column]


def holds(condition: ast.Condition, record: Record) -> bool:
    """Whether ``condition`` is true of ``record``."""
    if isinstance(condition, ast.Not):
        return not holds(condition.operand, record)
    if isinstance(condition, ast.And):
        return all(holds(c, record) for c in condition.operands)
    if isinstance(condition, ast.Or):
        return any(holds(c, record) for c in condition.operands)
    return predicate_holds(condition, record)


def predicate_holds(predicate: ast.Predicate, record: Record) -> bool:
    if isinstance(predicate, ast.Has):
        text = record.text(predicate.field)
        found = (normalize_text(lit) in text for lit in predicate.literals)
        return all(found) if predicate.mode == "all" else any(found)
    if isinstance(predicate, ast.Matches):
        return compile_regex(predicate.pattern).search(record.text(predicate.field)) is not None
    if isinstance(predicate, ast.Measure):
        return OPERATORS[predicate.op](measure(predicate, record.text(predicate.field)), predicate.value)
    if isinstance(predicate, ast.Near):
        text = record.text(predicate.field)
        firsts = occurrences(text, normalize_text(predicate.first))
        seconds = occurrences(text, normalize_text(predicate.second))
        return any(abs(i - j) <= predicate.distance for i in firsts for j in seconds)
    value = record.value(predicate.field)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False  # a comparison with null is false, whatever the operator
    if isinstance(predicate, ast.In):
        return any(_equal(value, v) for v in predicate.values)
    if predicate.op in ("==", "!="):
        return _equal(value, predicate.value) == (predicate.op == "==")
    return OPERATORS[predicate.op](value, predicate.value)


def measure(predicate: ast.Measure, text: str) -> float:
    """The number a ``fuzzy``, ``count`` or ``len`` predicate compares."""
    if predicate.function == "len":
        return len(text)
    literal = normalize_text(predicate.literal)
    if predicate.function == "count":
        return text.count(literal)  # non-overlapping, left to right
    return fuzz.partial_ratio(literal, text)


def occurrences(text: str, literal: str) -> list[int]:
    """Start offsets of every (possibly overlapping) occurrence of ``literal`` in ``text``."""
    starts, at = [], text.find(literal)
    while at >= 0:
        starts.append(at)
        at = text.find(literal, at + 1)
    return starts


def _equal(value, literal) -> bool:
    if isinstance(literal, str) != isinstance(value, str):
        return False
    return value == literal


def winners(rules: RuleSet, row: dict) -> dict[str, ast.Rule | None]:
    """For every target, the rule that decides ``row`` (or None), per the override semantics."""
    record = Record(row)
    task = row.get("task", _NO_TASK_COLUMN)
    decided = {}
    for target in rules.targets:
        if task is not _NO_TASK_COLUMN and task != target:
            decided[target] = None
            continue
        decided[target] = next((r for r in rules.ranked(target) if holds(r.condition, record)), None)
    return decided


def outputs(rules: RuleSet, row: dict) -> dict[str, str | None]:
    """The output columns ``T``, ``T_rule``, ``T_source`` for one row.

    ``row`` holds the row's columns; a missing ``task`` key means the table has no task column.
    """
    has_task = "task" in row
    result = {}
    for target, rule in winners(rules, row).items():
        takes_part = not has_task or row["task"] == target
        model_label = row.get("model_label") if takes_part else None
        if rule is not None:
            result.update({target: rule.label, f"{target}_rule": rule.name, f"{target}_source": "rule"})
        elif model_label is not None:
            result.update({target: model_label, f"{target}_rule": None, f"{target}_source": "model"})
        else:
            result.update({target: None, f"{target}_rule": None, f"{target}_source": None})
    return result


_NO_TASK_COLUMN = object()
