"""Per-rule statistics on labelled data, after Snorkel's ``lf_summary``.

For each rule: coverage (share of the rows of its task on which it holds), overlaps (share of
those rows on which another rule of the same target also holds), conflicts (... another rule with
a different label holds), correct / incorrect against ``label``, precision, and how many rows it
decides (wins).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from kdsl.engine.engine import Engine
from kdsl.errors import InputError
from kdsl.text_table import text_table


def rule_stats(engine: Engine, table: pa.Table, fired: np.ndarray | None = None) -> list[dict]:
    """One dict per rule, in the order rules are tried (``fired``: ``engine.matches(table)``,
    when the caller has it already)."""
    engine = engine.current  # after a reload, the rules in service (``plan`` is the built one's)
    if "label" not in table.schema.names:
        raise InputError("the data has no 'label' column; stats need labelled rows")
    fired = engine.matches(table) if fired is None else fired
    scored = engine.score(table)
    labels = np.array(table.column("label").to_pylist(), dtype=object)
    tasks = np.array(table.column("task").to_pylist(), dtype=object) if "task" in table.schema.names else None
    rules = engine.plan.rules
    rows = []
    for target in engine.targets:
        ranks = [i for i, r in enumerate(rules) if r.target == target]
        in_task = np.ones(len(labels), bool) if tasks is None else tasks == target
        n_task = int(in_task.sum())
        wins = Counter(scored.column(f"{target}_rule").to_pylist())
        block = fired[:, ranks]
        # Per row: how many rules of the target hold, and how many of them say each label; a
        # rule overlaps where more than itself holds, conflicts where one with another label does.
        holding = block.sum(axis=1)
        said = {label: block[:, [j for j, r in enumerate(ranks) if rules[r].label == label]].sum(axis=1)
                for label in {rules[r].label for r in ranks}}
        for j, rank in enumerate(ranks):
            rule = rules[rank]
            hit = np.flatnonzero(block[:, j])
            covered = int(hit.size)
            truth = labels[hit]
            correct = int((truth == rule.label).sum())
            labelled = int((truth != None).sum())  # noqa: E711 (element-wise)
            overlapping = int((holding[hit] > 1).sum())
            conflicting = int((holding[hit] > said[rule.label][hit]).sum())
            rows.append({
                "rule": rule.name, "target": target, "label": rule.label, "priority": rule.priority,
                "coverage": covered / n_task if n_task else 0.0, "rows": covered,
                "overlaps": overlapping / covered if covered else 0.0,
                "conflicts": conflicting / covered if covered else 0.0,
                "correct": correct, "incorrect": labelled - correct,
                "precision": correct / labelled if labelled else None,
                "wins": wins.get(rule.name, 0),
                "location": str(rule.name_span),
            })
    return rows


def rule_base_stats(engine: Engine, table: pa.Table, errors: int = 0, noise_rules: int = 2,
                    noise_precision: float = 0.9, noise_min_rows: int = 3) -> dict:
    """The whole rule base at once, from one ``matches`` pass:

    - ``rules``: ``rule_stats``;
    - ``matrix``: the rule x rule overlap matrix, sparse: ``names`` and ``labels`` (rules in the
      order tried), ``rows`` (each rule's row count: the diagonal) and ``pairs``, one per two rules
      that hold together on some row: ``a``, ``b`` (names), ``rows`` (how many) and ``conflict``
      (their labels differ), most shared rows first (``overlap_block`` makes it dense);
    - ``errors``: per rule, up to ``errors`` rows where it holds and ``label`` differs;
    - ``noise``: label-noise candidates, rows on which at least ``noise_rules`` *precise* rules
      (precision >= ``noise_precision`` on at least ``noise_min_rows`` labelled rows, counting
      the row itself) agree on one label that is not the row's, and no precise rule says otherwise.
      A person should look at these rows: the label may be wrong.

    >>> report = rule_base_stats(engine, table, errors=3)     # doctest: +SKIP
    >>> report["matrix"]["pairs"][0]                           # doctest: +SKIP
    {'a': 'leak', 'b': 'any_water', 'rows': 4, 'conflict': False}
    """
    engine = engine.current
    if "label" not in table.schema.names:
        raise InputError("the data has no 'label' column; stats need labelled rows")
    fired = engine.matches(table)
    rules = engine.plan.rules
    summary = rule_stats(engine, table, fired=fired)
    first, second, shared = shared_rows(fired)
    order = np.lexsort((second, first, -shared))
    pairs = [{"a": rules[first[k]].name, "b": rules[second[k]].name, "rows": int(shared[k]),
              "conflict": rules[first[k]].label != rules[second[k]].label} for k in order]
    labels = np.array(table.column("label").to_pylist(), dtype=object)
    ids = table.column("id").to_pylist() if "id" in table.schema.names else list(range(table.num_rows))
    texts = table.column("user").to_pylist() if "user" in table.schema.names else [None] * table.num_rows

    def row(i):
        return {"id": ids[i], "label": labels[i], "user": texts[i]}

    wrong = {}
    if errors > 0:
        for rank, rule in enumerate(rules):
            bad = np.flatnonzero(fired[:, rank] & (labels != rule.label) & (labels != None))  # noqa: E711
            wrong[rule.name] = [row(i) for i in bad[:errors]]
    precise = np.array([s["precision"] is not None and s["precision"] >= noise_precision
                        and s["correct"] + s["incorrect"] >= noise_min_rows for s in summary], dtype=bool)
    by_name = {s["rule"]: s for s in summary}
    noise = []
    for i in np.flatnonzero(fired[:, precise].sum(axis=1) >= noise_rules):
        agreeing = [rules[r] for r in np.flatnonzero(fired[i] & precise)]
        said = {r.label for r in agreeing}
        if len(said) != 1 or labels[i] is None or labels[i] in said:
            continue
        noise.append({**row(i), "suggested": agreeing[0].label,
                      "rules": [r.name for r in agreeing],
                      "precision": [round(by_name[r.name]["precision"], 3) for r in agreeing]})
    return {
        "rules": summary,
        "matrix": {"names": [r.name for r in rules], "labels": [r.label for r in rules],
                   "rows": fired.sum(axis=0).astype(int).tolist(), "pairs": pairs},
        "errors": wrong,
        "noise": noise,
    }


def shared_rows(fired: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every two rules i < j that hold together on some row of ``fired`` (rows x rules):
    (i, j, rows shared). Costs the sum over rows of (rules holding)², not rules² x rows as a
    dense product would (5,000 rules: 25 M cells per row)."""
    row_of, rule_of = np.nonzero(fired)  # sorted by row, then rule
    n_rules = fired.shape[1]
    if row_of.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, row_of[1:] != row_of[:-1]])
    sizes = np.diff(np.r_[starts, row_of.size])
    size_of_hit = np.repeat(sizes, sizes)
    start_of_hit = np.repeat(starts, sizes)
    # each hit paired with every hit of its row: left repeated, partners enumerated
    left = np.repeat(np.arange(row_of.size), size_of_hit)
    step = np.arange(left.size) - np.repeat(np.cumsum(size_of_hit) - size_of_hit, size_of_hit)
    right = np.repeat(start_of_hit, size_of_hit) + step
    a, b = rule_of[left], rule_of[right]
    keep = a < b
    keys, counts = np.unique(a[keep].astype(np.int64) * n_rules + b[keep], return_counts=True)
    return keys // n_rules, keys % n_rules, counts


def overlap_block(report: dict, max_rules: int = 30) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The dense corner of ``rule_base_stats``'s matrix worth looking at: the (at most
    ``max_rules``) rules sharing most rows with others, as (their indices in ``names``, shared
    rows [i][j] with each rule's own rows on the diagonal, conflict [i][j] True where the labels
    differ)."""
    matrix = report["matrix"]
    index = {name: i for i, name in enumerate(matrix["names"])}
    busy = np.zeros(len(index), dtype=np.int64)
    for pair in matrix["pairs"]:
        busy[index[pair["a"]]] += pair["rows"]
        busy[index[pair["b"]]] += pair["rows"]
    shown = [int(i) for i in np.argsort(-busy, kind="stable") if busy[i]][:max_rules]
    at = {rule: k for k, rule in enumerate(shown)}
    overlap = np.diag([matrix["rows"][i] for i in shown]).astype(np.int64).reshape(len(shown), len(shown))
    conflict = np.zeros(overlap.shape, dtype=bool)
    for pair in matrix["pairs"]:
        i, j = at.get(index[pair["a"]]), at.get(index[pair["b"]])
        if i is not None and j is not None:
            overlap[i, j] = overlap[j, i] = pair["rows"]
            conflict[i, j] = conflict[j, i] = pair["conflict"]
    return shown, overlap, conflict


def render_rule_base(report: dict, max_rules: int = 30) -> str:
    """``rule_base_stats``'s overlap matrix, wrong rows and label-noise candidates as text.

    The matrix lists the rules that share rows with another rule (at most ``max_rules``, those
    sharing most first), numbered; a cell is the number of shared rows, marked ``!`` where the
    two labels differ.
    """
    matrix = report["matrix"]
    shown, overlap, conflict = overlap_block(report, max_rules)
    busy = len({p["a"] for p in matrix["pairs"]} | {p["b"] for p in matrix["pairs"]})
    lines = []
    if not shown:
        lines.append("no two rules hold on the same row")
    else:
        header = ["#", "rule", "label", "rows"] + [str(k + 1) for k in range(len(shown))]
        body = []
        for k, i in enumerate(shown):
            cells = ["·" if k == m else f"{overlap[k, m]}{'!' if conflict[k, m] else ''}" if overlap[k, m] else ""
                     for m in range(len(shown))]
            body.append([str(k + 1), matrix["names"][i], matrix["labels"][i], str(overlap[k, k])] + cells)
        lines.append("rules sharing rows (cell: rows both hold on; '!': different labels)")
        lines.append(text_table([header] + body, right=[0, *range(3, len(header))]))
        if busy > len(shown):
            lines.append(f"... and {busy - len(shown)} more rules that share rows (see --json)")
    for name, rows in report["errors"].items():
        if rows:
            lines.append(f"\nwrong rows of {name}:")
            lines += [f"  {r['id']}  label={r['label']}  user={_short(r['user'])}" for r in rows]
    lines.append(f"\nlabel-noise candidates: {len(report['noise'])} row(s) where precise rules agree on another label")
    for r in report["noise"]:
        lines.append(f"  {r['id']}  label={r['label']}  rules say {r['suggested']} "
                     f"({', '.join(r['rules'])})  user={_short(r['user'])}")
    return "\n".join(lines)


def _short(text, limit: int = 60) -> str:
    text = (text or "").replace("\n", " / ")
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
