"""Mined rules as a formatted ``.kdsl`` file that passes ``kdsl check``.

The file declares the task's labels (those present in the data), then one rule per survivor,
best first, each with its priority, ``meta { source: "mined", support, precision, reward,
confidence }`` and one ``example`` taken from the training rows it matched, so that
``kdsl check`` re-verifies every rule against real text.

    >>> from kdsl.dsl import ast
    >>> has = ast.Has(ast.Field("user"), "one", ("漏水",))
    >>> rule = MinedRule("漏水", (has,), 3, 1.0, 0.9, 0.91, 0, 0, {"user": "又漏水了"}, 91)
    >>> print(render("intent", ("排水", "漏水"), [rule]), end="")
    kdsl 1
    <BLANKLINE>
    labels intent = ["排水", "漏水"]
    <BLANKLINE>
    rule 漏水_1: intent = "漏水"
        when user has "漏水"
        priority 91
        meta { source: "mined", support: 3, precision: 1.0, reward: 0.91, confidence: 0.9 }
        example { user: "又漏水了" }
"""

from __future__ import annotations

import re

from kdsl.dsl import ast, check
from kdsl.dsl.formatter import format_program
from kdsl.dsl.parser import parse
from kdsl.io import write_text_atomically
from kdsl.mining.mined import MinedRule

_NOT_NAME = re.compile(r"[^A-Za-z0-9_\u4e00-\u9fff]+")  # the grammar's NAME characters


def render(task: str, labels: tuple[str, ...], rules: list[MinedRule]) -> str:
    """The formatted source; raises ``RuleError`` if it would not check (a bug, not bad input)."""
    names: set[str] = set()
    statements: list[ast.Statement] = [ast.Header(1), ast.LabelsDecl(task, tuple(labels))]
    for rule in rules:
        statements.append(ast.Rule(
            _unique_name(rule.label, names), task, rule.label, rule.condition, rule.priority,
            meta=(("source", "mined"), ("support", rule.support), ("precision", round(rule.precision, 3)),
                  ("reward", round(rule.reward, 3)), ("confidence", round(rule.confidence, 3))),
            examples=(ast.Record(tuple((ast.Field(f), v) for f, v in rule.example.items())),)))
    source = format_program(ast.Program("<mined>", "", tuple(statements)))
    check([parse(source, "<mined>")])
    return source


def write(path, task: str, labels: tuple[str, ...], rules: list[MinedRule]) -> None:
    """``render`` into ``path``, atomically."""
    write_text_atomically(path, render(task, labels, rules))


def _unique_name(label: str, taken: set[str]) -> str:
    """``LABEL_k`` with characters a name cannot have replaced by ``_``: 退货页面_1."""
    stem = _NOT_NAME.sub("_", label).strip("_") or "rule"
    if not re.match(r"[A-Za-z_\u4e00-\u9fff]", stem):
        stem = "r_" + stem
    k = 1
    while f"{stem}_{k}" in taken:
        k += 1
    taken.add(f"{stem}_{k}")
    return f"{stem}_{k}"
