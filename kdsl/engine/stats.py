"""Per-rule statistics on labelled data, after Snorkel's ``lf_summary``.

For each rule: coverage (share of the rows of its task on which it holds), overlaps (share of
those rows on which another rule of the same target also holds), conflicts (... another rule with
a different label holds), correct / incorrect against ``label``, precision, and how many rows it
decides (wins).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from kdsl.engine.engine import Engine
from kdsl.errors import InputError


def rule_stats(engine: Engine, table: pa.Table) -> list[dict]:
    """One dict per rule, in the order rules are tried."""
    if "label" not in table.schema.names:
        raise InputError("the data has no 'label' column; stats need labelled rows")
    fired = engine.matches(table)
    scored = engine.score(table)
    labels = np.array(table.column("label").to_pylist(), dtype=object)
    tasks = np.array(table.column("task").to_pylist(), dtype=object) if "task" in table.schema.names else None
    rules = engine.plan.rules
    rule_labels = np.array([r.label for r in rules], dtype=object)
    rows = []
    for target in engine.targets:
        ranks = [i for i, r in enumerate(rules) if r.target == target]
        in_task = np.ones(len(labels), bool) if tasks is None else tasks == target
        n_task = int(in_task.sum())
        winners = np.array(scored.column(f"{target}_rule").to_pylist(), dtype=object)
        block = fired[:, ranks]
        for j, rank in enumerate(ranks):
            rule = rules[rank]
            hit = block[:, j]
            others = np.delete(block, j, axis=1)
            differing = others[:, rule_labels[ranks][np.arange(len(ranks)) != j] != rule.label]
            covered = int(hit.sum())
            correct = int((hit & (labels == rule.label)).sum())
            labelled = int((hit & (labels != None)).sum())  # noqa: E711 (element-wise)
            rows.append({
                "rule": rule.name, "target": target, "label": rule.label, "priority": rule.priority,
                "coverage": covered / n_task if n_task else 0.0, "rows": covered,
                "overlaps": float((hit & others.any(axis=1)).sum() / covered) if covered else 0.0,
                "conflicts": float((hit & differing.any(axis=1)).sum() / covered) if covered else 0.0,
                "correct": correct, "incorrect": labelled - correct,
                "precision": correct / labelled if labelled else None,
                "wins": int((winners == rule.name).sum()),
                "location": str(rule.name_span),
            })
    return rows
