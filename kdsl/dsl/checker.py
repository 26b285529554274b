"""Validation and name resolution: parsed programs -> one ``RuleSet`` the engine can compile.

Everything wrong is collected and raised together as one ``RuleError``: unknown fields or names
(with a did-you-mean), duplicate rule names (both locations), labels outside a declared ``labels``
set, type errors such as ``len(model.score)``, invalid RE2 patterns, empty literals.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kdsl.dsl import ast
from kdsl.dsl.errors import Diagnostic, Related, RuleError, did_you_mean
from kdsl.dsl.text import compile_regex, normalize_text
from kdsl.record import BUILTIN_FIELDS, LIST_FIELDS

LANGUAGE_VERSION = 1


@dataclass(frozen=True)
class RuleSet:
    """Checked rules, ready for the engine: names resolved, in load order.

    ``fields`` maps every usable field (built-in and declared) to its kind; ``targets`` lists
    every target that has rules or declared labels, in order of first appearance.
    """

    rules: tuple[ast.Rule, ...]
    fields: dict[str, str]
    labels: dict[str, tuple[str, ...]]
    targets: tuple[str, ...]
    programs: tuple[ast.Program, ...] = ()

    @property
    def column_kinds(self) -> dict[str, str]:
        """Like ``fields``, keyed by column name (``model_score``, not ``model.score``)."""
        return {ast.Field(name).column: kind for name, kind in self.fields.items()}

    def rule(self, name: str) -> ast.Rule:
        return next(r for r in self.rules if r.name == name)

    def ranked(self, target: str) -> list[ast.Rule]:
        """The rules of ``target`` in the order they are tried: highest priority first, ties in
        load order (files in path order, then position in the file)."""
        rules = [r for r in self.rules if r.target == target]
        return sorted(rules, key=lambda r: -r.priority)  # stable: keeps load order on ties


def check(programs: list[ast.Program]) -> RuleSet:
    """Validate programs loaded together (in load order) and resolve ``let`` names.

    Raises ``RuleError`` listing every problem found.
    """
    return _Checker(programs).run()


class _Checker:
    def __init__(self, programs: list[ast.Program]):
        self.programs = programs
        self.diagnostics: list[Diagnostic] = []
        self.source = ""

    def error(self, message: str, span: ast.Span, related: tuple[Related, ...] = ()) -> None:
        self.diagnostics.append(Diagnostic(message, span, self.source, related))

    def run(self) -> RuleSet:
        fields = dict(BUILTIN_FIELDS)
        labels: dict[str, tuple[str, ...]] = {}
        label_spans: dict[str, ast.Span] = {}
        rule_spans: dict[str, Related] = {}  # name -> its first definition
        rules: list[ast.Rule] = []
        targets: list[str] = []

        # Declarations first, across all files: a rule may use a field declared in another file.
        for program in self.programs:
            self.source = program.source
            for statement in program.statements:
                if isinstance(statement, ast.Header) and statement.version != LANGUAGE_VERSION:
                    self.error(f"unsupported kdsl version {statement.version}; expected 'kdsl 1'",
                               statement.span)
                elif isinstance(statement, ast.FieldDecl):
                    if statement.name in fields or statement.name in LIST_FIELDS:
                        self.error(f"field '{statement.name}' is already defined", statement.span)
                    fields[statement.name] = statement.type
                elif isinstance(statement, ast.LabelsDecl):
                    self._check_labels(statement, labels, label_spans)
                    if statement.target not in targets:
                        targets.append(statement.target)

        for program in self.programs:
            self.source = program.source
            lets: dict[str, ast.LetDecl] = {}
            for statement in program.statements:
                if isinstance(statement, ast.LetDecl):
                    if statement.name in lets:
                        first = lets[statement.name].span
                        self.error(f"'{statement.name}' is already defined at {first}", statement.span,
                                   (Related("first defined here", first, self.source),))
                    self._check_literals(statement.literals, statement.span)
                    lets[statement.name] = statement
                elif isinstance(statement, ast.Rule):
                    if statement.name in rule_spans:
                        first = rule_spans[statement.name]
                        self.error(f"duplicate rule name '{statement.name}'; first defined at {first.span}",
                                   statement.name_span, (first,))
                    else:
                        rule_spans[statement.name] = Related("first defined here", statement.name_span, self.source)
                    rules.append(self._check_rule(statement, fields, labels, lets))
                    if statement.target not in targets:
                        targets.append(statement.target)

        if self.diagnostics:
            raise RuleError(self.diagnostics)
        return RuleSet(tuple(rules), fields, labels, tuple(targets), tuple(self.programs))

    def _check_labels(self, decl: ast.LabelsDecl, labels, label_spans) -> None:
        seen = set()
        for label in decl.labels:
            if label in seen:
                self.error(f"label '{label}' is listed twice for target '{decl.target}'", decl.span)
            seen.add(label)
        if decl.target in BUILTIN_FIELDS or decl.target in LIST_FIELDS:
            self.error(f"target '{decl.target}' is the name of a column; choose another", decl.span)
        previous = labels.get(decl.target)
        if previous is not None and set(previous) != set(decl.labels):
            self.error(f"labels for '{decl.target}' differ from those declared at "
                       f"{label_spans[decl.target]}", decl.span)
        labels.setdefault(decl.target, decl.labels)
        label_spans.setdefault(decl.target, decl.span)

    def _check_literals(self, literals, span: ast.Span) -> None:
        for literal in literals:
            if not normalize_text(literal):
                self.error("empty literal: it would match every text; expected a non-empty string",
                           span)

    def _check_rule(self, rule: ast.Rule, fields, labels, lets) -> ast.Rule:
        if rule.target in fields or rule.target in LIST_FIELDS:
            self.error(f"target '{rule.target}' is the name of a column; choose another",
                       rule.name_span)
        declared = labels.get(rule.target)
        if declared is not None and rule.label not in declared:
            self.error(f"label '{rule.label}' is not declared for '{rule.target}'"
                       f"{did_you_mean(rule.label, declared)}", rule.label_span)
        keys = [key for key, _ in rule.meta]
        for key in {k for k in keys if keys.count(k) > 1}:
            self.error(f"meta key '{key}' appears twice in rule {rule.name}", rule.name_span)
        condition = self._check_condition(rule.condition, fields, lets)
        for record in rule.examples + rule.counterexamples:
            for field, value in record.entries:
                kind = self._field_kind(field, fields)
                if kind is not None and value is not None:
                    self._check_value_kind(field, kind, value, field.span)
        return dataclasses.replace(rule, condition=condition)

    def _field_kind(self, field: ast.Field, fields) -> str | None:
        if field.name in LIST_FIELDS:
            self.error(f"field '{field.name}' is a list; rules cannot test it", field.span)
            return None
        if field.name not in fields:
            hint = did_you_mean(field.name, fields) or (
                f"; declare other columns first, e.g. 'field {field.name.replace('.', '_')}: text'")
            self.error(f"unknown field '{field.name}'{hint}", field.span)
            return None
        return fields[field.name]

    def _check_value_kind(self, field: ast.Field, kind: str, value, span: ast.Span) -> None:
        if isinstance(value, bool) or value is None:
            written = {None: "null", True: "true", False: "false"}[value]
            self.error(f"'{field.name}' cannot be compared with {written}; expected a "
                       f"{'number' if kind == 'number' else 'string'}", span)
        elif kind == "number" and not isinstance(value, (int, float)):
            self.error(f"'{field.name}' is a number; expected a number, not {value!r}", span)
        elif kind != "number" and not isinstance(value, str):
            self.error(f"'{field.name}' is a {kind} field; expected a string, not {value!r}", span)

    def _check_condition(self, node: ast.Condition, fields, lets) -> ast.Condition:
        if isinstance(node, ast.Not):
            return dataclasses.replace(node, operand=self._check_condition(node.operand, fields, lets))
        if isinstance(node, (ast.And, ast.Or)):
            operands = tuple(self._check_condition(o, fields, lets) for o in node.operands)
            return dataclasses.replace(node, operands=operands)

        kind = self._field_kind(node.field, fields)
        if isinstance(node, (ast.Compare, ast.In)):
            for value in (node.values if isinstance(node, ast.In) else (node.value,)):
                if kind is not None:
                    self._check_value_kind(node.field, kind, value, node.span)
            return node

        if kind == "number":
            what = {ast.Has: "has", ast.Matches: "matches", ast.Near: "near()"}.get(type(node))
            what = what or f"{node.function}()"
            self.error(f"{what} needs a text field; '{node.field.name}' is a number", node.field.span)
        if isinstance(node, ast.Has):
            if node.ref is not None:
                let = lets.get(node.ref)
                if let is None:
                    hint = did_you_mean(node.ref, lets) or f"; define it with 'let {node.ref} = any(...)'"
                    self.error(f"unknown name '{node.ref}'{hint}", node.span)
                    return node
                return dataclasses.replace(node, mode=let.mode, literals=let.literals)
            self._check_literals(node.literals, node.span)
        elif isinstance(node, ast.Matches):
            try:
                compile_regex(node.pattern)
            except ValueError as error:
                self.error(f"invalid RE2 pattern /{node.pattern}/: {error}", node.span)
        elif isinstance(node, ast.Measure):
            if node.literal is not None:
                self._check_literals((node.literal,), node.span)
            if node.function == "fuzzy" and not 0 <= node.value <= 100:
                self.error(f"fuzzy() scores are 0 to 100; {node.value} is outside", node.span)
        elif isinstance(node, ast.Near):
            self._check_literals((node.first, node.second), node.span)
        return node
