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
    """The formatted source; raises ``RuleError`` if it would not check (a bug, not bad input).

    A literal set that comes from a lexicon (it has a name) or that two rules share is declared
    once as ``let NAME = any(...)`` and referred to by name."""
    names: set[str] = set()
    lets = _shared_sets(rules)
    statements: list[ast.Statement] = [ast.Header(1), ast.LabelsDecl(task, tuple(labels))]
    statements += [ast.LetDecl(name, mode, literals) for (mode, literals), name in lets.items()]
    for rule in rules:
        meta = [("source", "mined"), ("support", rule.support), ("precision", round(rule.precision, 3)),
                ("reward", round(rule.reward, 3)), ("confidence", round(rule.confidence, 3))]
        if rule.net is not None:  # mined against the model's predictions
            meta += [("net_fixed", round(rule.net, 2)), ("fixed", round(rule.fixed, 2)), ("broken", round(rule.broken, 2))]
        statements.append(ast.Rule(
            _unique_name(rule.label, names), task, rule.label, _named(rule.condition, lets), rule.priority,
            meta=tuple(meta),
            examples=(ast.Record(tuple((ast.Field(f), v) for f, v in rule.example.items())),)))
    source = format_program(ast.Program("<mined>", "", tuple(statements)))
    check([parse(source, "<mined>")])
    return source


def _literal_sets(condition: ast.Condition):
    if isinstance(condition, ast.Has) and len(condition.literals) > 1:
        yield condition
    for child in getattr(condition, "operands", ()) or ((condition.operand,) if isinstance(condition, ast.Not) else ()):
        yield from _literal_sets(child)


def _shared_sets(rules: list[MinedRule]) -> dict[tuple[str, tuple[str, ...]], str]:
    """(mode, literals) -> let name, for the sets with a lexicon name or used by two rules."""
    uses: dict[tuple[str, tuple[str, ...]], list[str | None]] = {}
    for rule in rules:
        for has in _literal_sets(rule.condition):
            uses.setdefault((has.mode, has.literals), []).append(has.ref)
    lets, taken = {}, set()
    for key, refs in uses.items():
        given = next((r for r in refs if r), None)
        if given or len(refs) > 1:
            stem = given or "词_" + _NOT_NAME.sub("_", key[1][0]).strip("_")
            name, k = stem, 1
            while name in taken:
                k += 1
                name = f"{stem}_{k}"
            taken.add(name)
            lets[key] = name
    return lets


def _named(condition: ast.Condition, lets: dict) -> ast.Condition:
    """``condition`` with every declared literal set referred to by its name."""
    if isinstance(condition, ast.Has):
        name = lets.get((condition.mode, condition.literals))
        return ast.Has(condition.field, condition.mode, condition.literals, name) if name else \
            ast.Has(condition.field, condition.mode, condition.literals)
    if isinstance(condition, ast.Not):
        return ast.Not(_named(condition.operand, lets))
    if isinstance(condition, (ast.And, ast.Or)):
        return type(condition)(tuple(_named(c, lets) for c in condition.operands))
    return condition


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


def keep_rules(source: str, names) -> str:
    """The rule file ``source`` with only the rules named in ``names`` (labels and ``let`` sets
    kept), formatted.

        >>> text = 'kdsl 1\\nlabels intent = ["a"]\\nrule a_1: intent = "a"\\n    when user has "x"\\n'
        >>> "a_1" in keep_rules(text, []), "a_1" in keep_rules(text, ["a_1"])
        (False, True)
    """
    keep = set(names)
    program = parse(source, "<mined>")
    statements = tuple(s for s in program.statements if not isinstance(s, ast.Rule) or s.name in keep)
    return format_program(ast.Program(program.path, "", statements))

