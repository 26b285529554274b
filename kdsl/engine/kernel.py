"""The numba kernel: scan each row's texts for atoms, then try the row's candidate rules in rank
order with three-valued logic. See compiler.py for the plan it executes.

Values of a condition: 0 false, 1 true, 2 unknown (a deferred predicate not yet resolved).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from kdsl.engine.compiler import DEFERRED, HAS, NUM, OP_AND, OP_NOT, OP_OR, OP_PRED, STR_EQ
from kdsl.engine.matcher import scan_row

UNKNOWN = 2


@njit(cache=True, nogil=True)
def _compare(x, op, y):
    if np.isnan(x):
        return 0  # a comparison with a null number is false
    if op == 0:
        return x == y
    if op == 1:
        return x != y
    if op == 2:
        return x < y
    if op == 3:
        return x <= y
    if op == 4:
        return x > y
    return x >= y


@njit(cache=True, nogil=True)
def _predicate(p, i, k, seen, pred_kind, pred_a, pred_b, pred_value, guard_ptr, guard_atoms,
               numbers, strings, resolved):
    kind = pred_kind[p]
    if kind == HAS:
        return seen[pred_a[p]]
    if kind == NUM:
        return _compare(numbers[pred_a[p], i], pred_b[p], pred_value[p])
    if kind == DEFERRED:
        for g in range(guard_ptr[p], guard_ptr[p + 1]):
            if seen[guard_atoms[g]] == 0:
                return 0
        if resolved.shape[0] > 0:
            return resolved[k, pred_a[p]]
        return UNKNOWN
    code = strings[pred_a[p], i]
    if kind == STR_EQ:
        return code == pred_b[p]
    return code >= 0 and code != pred_b[p]  # STR_NE: null is never unequal


@njit(cache=True, nogil=True)
def _condition(r, i, k, stack, seen, code_ptr, code_op, code_arg, pred_kind, pred_a, pred_b,
               pred_value, guard_ptr, guard_atoms, numbers, strings, resolved):
    top = 0
    for c in range(code_ptr[r], code_ptr[r + 1]):
        op = code_op[c]
        if op == OP_PRED:
            stack[top] = _predicate(code_arg[c], i, k, seen, pred_kind, pred_a, pred_b, pred_value,
                                    guard_ptr, guard_atoms, numbers, strings, resolved)
            top += 1
        elif op == OP_NOT:
            v = stack[top - 1]
            stack[top - 1] = UNKNOWN if v == UNKNOWN else 1 - v
        else:
            n = code_arg[c]
            top -= n
            # AND: false wins, then unknown; OR: true wins, then unknown.
            decisive = 0 if op == OP_AND else 1
            result = 1 - decisive
            for j in range(top, top + n):
                v = stack[j]
                if v == decisive:
                    result = decisive
                    break
                if v == UNKNOWN:
                    result = UNKNOWN
            stack[top] = result
            top += 1
    return stack[0]


@njit(cache=True, nogil=True)
def evaluate_rows(rows, tables, offsets, data, atom_base, trigger_ptr, trigger_rules, always_rules,
                  rule_target, code_ptr, code_op, code_arg, pred_kind, pred_a, pred_b, pred_value,
                  guard_ptr, guard_atoms, max_stack, numbers, strings, row_target, resolved,
                  n_targets, winners, pending, fired):
    """For each row in ``rows``: winners[row, target] = rank of the deciding rule (or -1);
    pending[row] = 1 when a rule needed a deferred predicate that ``resolved`` lacks.

    When ``fired`` has columns, every rule is tried and fired[row, rank] = 1 for each that holds
    (for statistics); ``winners`` is then left alone."""
    collect = fired.shape[1] > 0
    n_atoms = atom_base[-1]
    n_rules = rule_target.shape[0]
    seen = np.zeros(max(n_atoms, 1), dtype=np.uint8)
    hits = np.empty(max(n_atoms, 1), dtype=np.int32)
    is_candidate = np.zeros(max(n_rules, 1), dtype=np.uint8)
    candidates = np.empty(max(n_rules, 1), dtype=np.int32)
    decided = np.zeros(max(n_targets, 1), dtype=np.uint8)
    stack = np.empty(max(max_stack, 1), dtype=np.uint8)
    n_always = always_rules.shape[0]
    for k in range(rows.shape[0]):
        i = rows[k]
        only = row_target[i]
        if only == -2:
            continue  # the row's task is none of the targets
        n_hits = 0
        for f in range(len(tables)):
            before = n_hits
            lo, hi = atom_base[f], atom_base[f + 1]
            n_hits = scan_row(tables[f], data[f], offsets[f][i], offsets[f][i + 1], seen[lo:hi], hits, n_hits)
            for h in range(before, n_hits):
                hits[h] += lo
        n_candidates = 0
        for h in range(n_hits):
            a = hits[h]
            for t in range(trigger_ptr[a], trigger_ptr[a + 1]):
                r = trigger_rules[t]
                if is_candidate[r] == 0:
                    is_candidate[r] = 1
                    candidates[n_candidates] = r
                    n_candidates += 1
        ordered = np.sort(candidates[:n_candidates])
        n_open = n_targets if only < 0 else 1
        c, a = 0, 0
        while n_open > 0 and (c < n_candidates or a < n_always):
            # Merge the triggered candidates with the always-tried rules, by rank.
            if a >= n_always or (c < n_candidates and ordered[c] < always_rules[a]):
                r = ordered[c]
                c += 1
            else:
                r = always_rules[a]
                a += 1
            target = rule_target[r]
            if decided[target] or (only >= 0 and target != only):
                continue
            value = _condition(r, i, k, stack, seen, code_ptr, code_op, code_arg, pred_kind, pred_a,
                               pred_b, pred_value, guard_ptr, guard_atoms, numbers, strings, resolved)
            if value == 0:
                continue
            if collect and value == 1:
                fired[i, r] = 1
                continue
            decided[target] = 1
            n_open -= 1
            if value == 1:
                winners[i, target] = r
            else:
                pending[i] = 1
        for h in range(n_hits):
            seen[hits[h]] = 0
        for j in range(n_candidates):
            is_candidate[candidates[j]] = 0
        decided[:] = 0
