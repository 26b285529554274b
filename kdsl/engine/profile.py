"""Where scoring time goes, per rule: ``kdsl score --profile`` (after YARA-X's ``--profiling``).

Profiling is a separate pass over a sample of rows, run only when asked, so that the scoring
kernel carries no timers or counters. For the sample:

1. Each scanned field is normalised and searched once with the engine's own matchers (the trigger
   atoms): that gives the total *literal scanning* time per field and, per row, the atoms found.
2. Per rule, *literal scanning* is the time to search the sample for that rule's trigger atoms
   alone, with a matcher built from them only: what keeping those literals costs. (The real scan
   shares one pass among all rules, so these times add up to more than the field totals.)
3. Per rule, *condition checks* is the time the kernel's own ``_rule`` takes on the rule's
   candidate rows (rows where one of its trigger atoms occurs, or every row for a rule with no
   trigger), including the atoms it looks up lazily; rows left undecided because a regex, fuzzy,
   count or near predicate is needed are then evaluated by the reference interpreter, and that
   time is reported as ``deferred_seconds``.
4. Per trigger atom: the rows it occurs in times the rules it triggers, i.e. the candidate rule
   checks it causes. The atoms with most are where a more specific literal pays off.

    >>> report = profile(engine, table)          # doctest: +SKIP
    >>> report["slowest"][0]["rule"]             # doctest: +SKIP
    'leak_feedback'
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
from numba import njit

from kdsl.engine import reference
from kdsl.engine.engine import Engine
from kdsl.engine.kernel import _rule
from kdsl.engine.matcher import AtomMatcher

PROFILE_ROWS = 65536  # rows profiled by default: enough for stable times, a second or so of work
_NO_RESOLVED = np.zeros((0, 0), dtype=np.uint8)


@njit(cache=True, nogil=True)
def _check_rule(r, rows, hit_ptr, hit_atoms, texts, program, numbers, strings, outcome):
    """Evaluate rule ``r`` on ``rows`` as the kernel does (atoms found by the scan marked seen,
    others looked up on demand); outcome[k] = 0 false, 1 true, 2 needs a deferred predicate."""
    offsets, data = texts
    (atom_base, atom_field, atom_bytes, atom_ptr, scanned, trigger_ptr, trigger_rules, always_rules,
     rule_target, term_ptr, term_kind, term_a, term_b, term_atoms, code_op, code_arg, pred_kind,
     pred_a, pred_b, pred_value, guard_ptr, guard_atoms, max_stack, n_targets) = program
    n_atoms = atom_base[-1]
    seen = np.zeros(n_atoms + 1, dtype=np.uint8)
    touched = np.zeros(n_atoms + 1, dtype=np.int64)
    stack = np.empty(max(max_stack, 1), dtype=np.uint8)
    atoms = (seen, touched, scanned, atom_field, atom_bytes, atom_ptr, offsets, data)
    preds = (pred_kind, pred_a, pred_b, pred_value, guard_ptr, guard_atoms)
    terms = (term_ptr, term_kind, term_a, term_b, term_atoms)
    resolved = np.zeros((0, 0), dtype=np.uint8)
    for k in range(rows.shape[0]):
        i = rows[k]
        for h in range(hit_ptr[i], hit_ptr[i + 1]):
            seen[hit_atoms[h]] = 1
        outcome[k] = _rule(r, i, k, stack, terms, code_op, code_arg, atoms, preds, numbers, strings, resolved)
        for h in range(hit_ptr[i], hit_ptr[i + 1]):
            seen[hit_atoms[h]] = 0
        for j in range(1, touched[0] + 1):
            seen[touched[j]] = 0
        touched[0] = 0


def profile(engine: Engine, table: pa.Table | pa.RecordBatch, rows: int = PROFILE_ROWS, repeat: int = 3) -> dict:
    """Profile ``engine`` on the first ``rows`` rows of ``table`` (see the module docstring).
    Every time is the best of ``repeat`` runs: on a shared machine a run that was preempted
    says nothing about the rule.

    Returns ``rows``, ``score_seconds`` (the engine scoring the sample, for scale),
    ``scan_seconds`` per field, ``rules`` (per rule: ``scan_seconds``, ``check_seconds``,
    ``deferred_seconds``, ``candidates``, ``holds``), ``slowest`` (the ten slowest rules) and
    ``hot_atoms`` (the ten atoms causing most candidate rule checks).
    """
    engine = engine.current  # after a reload: the rules in service
    batch = table.slice(0, rows)
    batch = batch.combine_chunks().to_batches()[0] if isinstance(batch, pa.Table) and batch.num_rows \
        else batch if isinstance(batch, pa.RecordBatch) else pa.RecordBatch.from_pylist([], schema=table.schema)
    n = batch.num_rows
    engine.check_input(batch.schema)
    engine.score(batch)  # calibrates the triggers first, so that the profile sees the triggers in use
    score_seconds = min(_timed(engine.score, batch) for _ in range(repeat))
    plan = engine.plan
    inputs = plan.kernel_inputs
    arrays = plan.arrays
    offsets, data, numbers, strings, row_target = engine._prepare(batch)
    fields = [pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets[f][: n + 1]), pa.py_buffer(data[f]))
              for f in range(len(plan.text_fields))]

    # 1. the engine's scan, per field; per row the global ids of the atoms found
    scan_seconds, per_field = {}, []
    for f, name in enumerate(plan.text_fields):
        matcher = AtomMatcher(inputs.tables[f], len(inputs.scan_maps[f]))
        row_ptr, ids = matcher.scan_column(fields[f])
        scan_seconds[name or "(none)"] = min(_timed(matcher.scan_column, fields[f]) for _ in range(repeat))
        per_field.append((row_ptr, inputs.scan_maps[f][ids].astype(np.int64)))
    row_of_hit = np.concatenate([np.repeat(np.arange(n), np.diff(p)) for p, _ in per_field] or [np.zeros(0, int)])
    atom_of_hit = np.concatenate([a for _, a in per_field] or [np.zeros(0, np.int64)])
    order = np.argsort(row_of_hit, kind="stable")
    hit_atoms = atom_of_hit[order]
    hit_ptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(hit_ptr, row_of_hit + 1, 1)
    hit_ptr = np.cumsum(hit_ptr)

    n_atoms = int(arrays["atom_base"][-1])
    atom_rows = np.bincount(atom_of_hit, minlength=n_atoms)
    trigger_ptr, trigger_rules = arrays["trigger_ptr"], arrays["trigger_rules"]
    triggers_of = [[] for _ in plan.rules]
    for a in range(n_atoms):
        for r in trigger_rules[trigger_ptr[a] : trigger_ptr[a + 1]]:
            triggers_of[r].append(a)
    always = set(arrays["always_rules"].tolist())
    literal = [(plan.text_fields[f], lit) for f, atoms in enumerate(plan.atoms) for lit in atoms]

    texts = (tuple(offsets), tuple(data))
    records = None
    no_rows = np.zeros(0, dtype=np.int64)

    def call_overhead(r):  # what one call costs with nothing to do (argument typing, dispatch)
        return min(_timed(_check_rule, r, no_rows, hit_ptr, hit_atoms, texts, inputs.program, numbers,
                          strings, np.zeros(0, np.uint8)) for _ in range(3))

    overhead = call_overhead(0) if plan.rules else 0.0
    per_rule = []
    for r, rule in enumerate(plan.rules):
        target = plan.targets.index(rule.target)
        in_task = (row_target == -1) | (row_target == target)
        if r in always:
            candidate = in_task
        else:
            candidate = np.zeros(n, dtype=bool)
            hit_rows = row_of_hit[np.isin(atom_of_hit, triggers_of[r])]
            candidate[hit_rows] = True
            candidate &= in_task
        candidate_rows = np.flatnonzero(candidate).astype(np.int64)
        # 2. scanning for this rule's trigger literals alone
        rule_scan = 0.0
        for f, name in enumerate(plan.text_fields):
            mine = [literal[a][1] for a in triggers_of[r] if literal[a][0] == name]
            if mine:
                matcher = AtomMatcher.build(mine)
                rule_scan += min(_timed(matcher.scan_column, fields[f]) for _ in range(repeat))
        # 3. condition checks on the candidate rows, then the deferred ones in Python
        outcome = np.zeros(len(candidate_rows), dtype=np.uint8)
        check = max(0.0, min(_timed(_check_rule, r, candidate_rows, hit_ptr, hit_atoms, texts, inputs.program,
                                    numbers, strings, outcome) for _ in range(repeat)) - overhead)
        undecided = candidate_rows[outcome == 2]
        deferred, holds = 0.0, int((outcome == 1).sum())
        if undecided.size:
            records = batch.to_pylist() if records is None else records
            started = time.perf_counter()
            holds += sum(reference.holds(rule.condition, reference.Record(records[i])) for i in undecided)
            deferred = time.perf_counter() - started
        per_rule.append({"rule": rule.name, "target": rule.target, "location": str(rule.name_span),
                         "scan_seconds": rule_scan, "check_seconds": check, "deferred_seconds": deferred,
                         "candidates": int(candidate_rows.size), "holds": holds})
    hot = []
    for a in range(n_atoms):
        triggered = int(trigger_ptr[a + 1] - trigger_ptr[a])
        if triggered and atom_rows[a]:
            hot.append({"field": literal[a][0], "literal": literal[a][1], "rows": int(atom_rows[a]),
                        "rules_triggered": triggered, "candidate_checks": int(atom_rows[a]) * triggered})
    hot.sort(key=lambda h: -h["candidate_checks"])
    slowest = sorted(per_rule, key=lambda p: -(p["scan_seconds"] + p["check_seconds"] + p["deferred_seconds"]))
    return {"rows": n, "score_seconds": score_seconds, "scan_seconds": scan_seconds, "rules": per_rule,
            "slowest": slowest[:10], "hot_atoms": hot[:10]}


def _timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def render_profile(report: dict) -> str:
    """The profile as text: totals, the ten slowest rules, the hottest atoms."""
    from kdsl.text_table import text_table

    def ms(seconds):
        return f"{seconds * 1000:.2f}"

    lines = [f"profiled {report['rows']} rows: scoring took {ms(report['score_seconds'])} ms; literal scan "
             + ", ".join(f"{field} {ms(t)} ms" for field, t in report["scan_seconds"].items())]
    lines.append("\nslowest rules (ms; scan: its trigger literals alone; checks: conditions on its candidate rows)")
    lines.append(text_table([["rule", "scan", "checks", "deferred", "candidates", "holds", "location"]]
                            + [[p["rule"], ms(p["scan_seconds"]), ms(p["check_seconds"]), ms(p["deferred_seconds"]),
                                str(p["candidates"]), str(p["holds"]), p["location"]] for p in report["slowest"]],
                            right=range(1, 6)))
    lines.append("\natoms triggering the most candidate rule checks")
    lines.append(text_table([["field", "literal", "rows", "rules", "checks"]]
                            + [[h["field"], h["literal"], str(h["rows"]), str(h["rules_triggered"]),
                                str(h["candidate_checks"])] for h in report["hot_atoms"]], right=range(2, 5)))
    return "\n".join(lines)
