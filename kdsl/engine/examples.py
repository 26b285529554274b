"""Running the ``example`` and ``counterexample`` records of rules through the compiled engine."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from kdsl.dsl import ast
from kdsl.engine.engine import Engine


@dataclass(frozen=True)
class ExampleResult:
    rule: ast.Rule
    record: ast.Record
    expected: bool  # True for an example (the rule must hold), False for a counterexample
    passed: bool

    def __str__(self) -> str:
        kind = "example" if self.expected else "counterexample"
        verb = "does not match" if self.expected else "matches"
        return f"{self.record.span}: rule {self.rule.name} {verb} its {kind}"


def run_examples(engine: Engine) -> list[ExampleResult]:
    """Check every example (the rule holds) and counterexample (it does not) of every rule."""
    cases = [(rank, rule, record, expected)
             for rank, rule in enumerate(engine.plan.rules)
             for expected, records in ((True, rule.examples), (False, rule.counterexamples))
             for record in records]
    if not cases:
        return []
    kinds = engine.ruleset.column_kinds
    columns = {}
    for name in engine.fields:
        kind = kinds.get(name)
        values = []
        for _, rule, record, _ in cases:
            row = record.as_row()
            # A rule's example is about that rule: it is tried in the rule's own task.
            values.append(rule.target if name == "task" else row.get(name))
        columns[name] = pa.array(values, pa.float64() if kind == "number" else pa.string())
    fired = engine.matches(pa.table(columns))
    return [ExampleResult(rule, record, expected, bool(fired[k, rank]) == expected)
            for k, (rank, rule, record, expected) in enumerate(cases)]
