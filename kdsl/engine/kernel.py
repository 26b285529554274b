"""The numba kernel: find each row's trigger atoms, then try the rules they trigger in rank order.

See compiler.py for the plan it executes. Per block of rows: every scanned field is searched for
its trigger atoms (one ``AtomMatcher`` pass per field and row); then, row by row, the rules
triggered by a hit (plus rules with no trigger) are tried in rank order until each target is
decided. Atoms that are not triggers are looked up in the row's text only when a candidate rule
asks for them, and remembered for the rest of the row.

Values of a condition: 0 false, 1 true, 2 unknown (a deferred predicate not yet resolved).
``seen[atom]``: 1 present; 0 absent for a scanned atom, not yet looked up for another; 2 absent.

Threads: the kernel is ``nogil``; ``Engine._evaluate`` gives each thread its own row slice of a
batch (normalised, scanned and evaluated there), so nothing here is shared but read-only plans.

Where the time goes (bench/engine.py's raw log, 65,536 rows = 23 MB, one core, load ~5-9):
normalising 0.020 s at any rule count; scanning for trigger atoms 0.025 / 0.037 / 0.053 s at
100 / 1,000 / 5,000 rules; trying candidate rules the rest, 0.017 / 0.041 / 0.080 s.

Tried and dropped:
* pair triggers -- a rule triggered by one atom is tried only where a second atom it needs (a
  top-level positive ``has``, already scanned because it triggers other rules) occurs too. On
  20,000 rows it cuts candidate tries per row from 8.3 to 7.2 at 1,000 rules and 39.7 to 32.7
  at 5,000 (counted with the reference row sets; allowing partners that are not scanned yet
  would reach 5.8 and 28.0 but scans 73-81 more atoms). Measured A/B in one process on 100,000
  rows: 0.163 -> 0.163 s at 1,000 rules, 0.252 -> 0.245 s at 5,000 (-0.3 % / -2.8 %, within
  noise): the kernel stops at a target's first holding rule, so most extra candidates are never
  tried, and a try costs ~40 ns. Not kept.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

from kdsl.engine.compiler import (DEFERRED, HAS, NUM, OP_AND, OP_NOT, OP_PRED, STR_EQ, T_ANY,
                                  T_CODE, T_NONE, T_NOT_PRED)
from kdsl.engine.matcher import scan_row

UNKNOWN = 2
ABSENT = 2
BLOCK = 512  # rows scanned field by field before they are evaluated


@njit(cache=True, nogil=True, _nrt=False)
def _contains(data, start, end, needle, needle_start, needle_end):
    """Whether needle[needle_start:needle_end] occurs in data[start:end] (UTF-8 on both sides,
    so a byte match is a character match)."""
    n = needle_end - needle_start
    first = needle[needle_start]
    for p in range(start, end - n + 1):
        if data[p] == first:
            j = 1
            while j < n and data[p + j] == needle[needle_start + j]:
                j += 1
            if j == n:
                return True
    return False


@njit(cache=True, nogil=True, _nrt=False)
def _atom(a, i, seen, touched, scanned, atom_field, atom_bytes, atom_ptr, offsets, data):
    """1 if atom ``a`` occurs in row ``i`` of its field, else 0."""
    state = seen[a]
    if state == 1:
        return 1
    if state == ABSENT or scanned[a]:
        return 0
    f = atom_field[a]
    found = _contains(data[f], offsets[f][i], offsets[f][i + 1], atom_bytes, atom_ptr[a], atom_ptr[a + 1])
    seen[a] = 1 if found else ABSENT
    touched[0] += 1
    touched[touched[0]] = a
    return 1 if found else 0


@njit(cache=True, nogil=True, _nrt=False)
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


@njit(cache=True, nogil=True, _nrt=False)
def _predicate(p, i, k, atoms, preds, numbers, strings, resolved):
    seen, touched, scanned, atom_field, atom_bytes, atom_ptr, offsets, data = atoms
    pred_kind, pred_a, pred_b, pred_value, guard_ptr, guard_atoms = preds
    kind = pred_kind[p]
    if kind == HAS:
        return _atom(pred_a[p], i, seen, touched, scanned, atom_field, atom_bytes, atom_ptr, offsets, data)
    if kind == NUM:
        return _compare(numbers[pred_a[p], i], pred_b[p], pred_value[p])
    if kind == DEFERRED:
        for g in range(guard_ptr[p], guard_ptr[p + 1]):
            if _atom(guard_atoms[g], i, seen, touched, scanned, atom_field, atom_bytes, atom_ptr,
                     offsets, data) == 0:
                return 0
        if resolved.shape[0] > 0:
            return resolved[k, pred_a[p]]
        return UNKNOWN
    code = strings[pred_a[p], i]
    if kind == STR_EQ:
        return code == pred_b[p]
    return code >= 0 and code != pred_b[p]  # STR_NE: null is never unequal


@njit(cache=True, nogil=True, _nrt=False)
def _code(start, end, i, k, stack, code_op, code_arg, atoms, preds, numbers, strings, resolved):
    """Run postfix code[start:end] (a nested condition) with three-valued logic."""
    top = 0
    for c in range(start, end):
        op = code_op[c]
        if op == OP_PRED:
            stack[top] = _predicate(code_arg[c], i, k, atoms, preds, numbers, strings, resolved)
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


@njit(cache=True, nogil=True, _nrt=False)
def _rule(r, i, k, stack, terms, code_op, code_arg, atoms, preds, numbers, strings, resolved):
    """A rule's conjunction of terms: 0 at the first false term, else 2 if any was unknown."""
    term_ptr, term_kind, term_a, term_b, term_atoms = terms
    seen, touched, scanned, atom_field, atom_bytes, atom_ptr, offsets, data = atoms
    value = 1
    for t in range(term_ptr[r], term_ptr[r + 1]):
        kind = term_kind[t]
        if kind == T_ANY or kind == T_NONE:
            found = 0
            for j in range(term_a[t], term_b[t]):
                if _atom(term_atoms[j], i, seen, touched, scanned, atom_field, atom_bytes, atom_ptr,
                         offsets, data):
                    found = 1
                    break
            v = found if kind == T_ANY else 1 - found
        elif kind == T_CODE:
            v = _code(term_a[t], term_b[t], i, k, stack, code_op, code_arg, atoms, preds, numbers,
                      strings, resolved)
        else:
            v = _predicate(term_a[t], i, k, atoms, preds, numbers, strings, resolved)
            if kind == T_NOT_PRED and v != UNKNOWN:
                v = 1 - v
        if v == 0:
            return 0
        if v == UNKNOWN:
            value = UNKNOWN
    return value


@njit(cache=True, nogil=True)
def evaluate_rows(rows, texts, program, columns, resolved, winners, pending, fired):
    """Decide ``rows`` (indices into the batch).

    texts: per scanned field, (matcher tables, offsets, data, matcher id -> atom id);
    program: ``Plan.program``; columns: (numbers[slot, row], string codes[slot, row],
    row_target[row]) where row_target is the row's target index, -1 for every target, -2 none.
    Writes winners[row, target] = rank of the deciding rule (or leaves -1), and pending[row] = 1
    when a rule needed a deferred predicate that ``resolved`` (rows x deferred) lacks.
    When ``fired`` has columns, every rule is tried and fired[row, rank] = 1 for each that holds.
    """
    tables, offsets, data, scan_maps = texts
    (atom_base, atom_field, atom_bytes, atom_ptr, scanned, trigger_ptr, trigger_rules, always_rules,
     rule_target, term_ptr, term_kind, term_a, term_b, term_atoms, code_op, code_arg, pred_kind,
     pred_a, pred_b, pred_value, guard_ptr, guard_atoms, max_stack, n_targets) = program
    numbers, strings, row_target = columns
    collect = fired.shape[1] > 0
    n_fields = len(tables)
    n_atoms = atom_base[-1]
    n_rules = rule_target.shape[0]
    seen = np.zeros(n_atoms + 1, dtype=np.uint8)
    touched = np.zeros(n_atoms + 1, dtype=np.int64)  # [0]: count, then atoms looked up this row
    dedup = np.zeros(n_atoms + 1, dtype=np.uint8)     # scan_row's per-row, per-field scratch
    block_rows = min(BLOCK, rows.shape[0])
    hits = np.empty(block_rows * 16 + n_atoms, dtype=np.int32)
    run_start = np.empty((block_rows, n_fields), dtype=np.int64)  # a row's hits in one field:
    run_end = np.empty((block_rows, n_fields), dtype=np.int64)    # hits[run_start:run_end]
    # Candidate rules of a row as a bitmap over ranks: reading it word by word yields them in
    # rank order without sorting.
    candidate_words = np.zeros((n_rules + 63) // 64 + 1, dtype=np.uint64)
    decided = np.zeros(max(n_targets, 1), dtype=np.uint8)
    stack = np.empty(max(max_stack, 1), dtype=np.uint8)
    atoms = (seen, touched, scanned, atom_field, atom_bytes, atom_ptr, offsets, data)
    preds = (pred_kind, pred_a, pred_b, pred_value, guard_ptr, guard_atoms)
    terms = (term_ptr, term_kind, term_a, term_b, term_atoms)
    n_always = always_rules.shape[0]
    for block in range(0, rows.shape[0], BLOCK):
        end = min(block + BLOCK, rows.shape[0])
        # Scan field by field: picking a field's matcher out of the tuple costs more than
        # scanning a short row, so it is done once per block, not once per row.
        n_hits = 0
        for f in range(n_fields):
            field_tables, field_offsets, field_data, scan_map = tables[f], offsets[f], data[f], scan_maps[f]
            for k in range(block, end):
                i = rows[k]
                run_start[k - block, f] = n_hits
                run_end[k - block, f] = n_hits
                if row_target[i] == -2:
                    continue
                if n_hits + scan_map.shape[0] > hits.shape[0]:
                    grown = np.empty(2 * hits.shape[0] + scan_map.shape[0], dtype=np.int32)
                    grown[:n_hits] = hits[:n_hits]
                    hits = grown
                before = n_hits
                n_hits = scan_row(field_tables, field_data, field_offsets[i], field_offsets[i + 1],
                                  dedup, hits, n_hits)
                for h in range(before, n_hits):
                    dedup[hits[h]] = 0
                    hits[h] = scan_map[hits[h]]
                run_end[k - block, f] = n_hits
        for k in range(block, end):
            i = rows[k]
            only = row_target[i]
            if only == -2:
                continue  # the row's task is none of the targets
            low, high = candidate_words.shape[0], -1
            for f in range(n_fields):
                for h in range(run_start[k - block, f], run_end[k - block, f]):
                    a = hits[h]
                    seen[a] = 1
                    for t in range(trigger_ptr[a], trigger_ptr[a + 1]):
                        r = trigger_rules[t]
                        w = r >> 6
                        candidate_words[w] |= np.uint64(1) << np.uint64(r & 63)
                        low, high = min(low, w), max(high, w)
            for j in range(n_always):
                r = always_rules[j]
                w = r >> 6
                candidate_words[w] |= np.uint64(1) << np.uint64(r & 63)
                low, high = min(low, w), max(high, w)
            n_open = n_targets if only < 0 else 1
            for w in range(low, high + 1):
                word = candidate_words[w]
                candidate_words[w] = 0
                while word and n_open > 0:
                    r = (w << 6) + trailing_zeros(word)
                    word &= word - np.uint64(1)
                    target = rule_target[r]
                    if decided[target] or (only >= 0 and target != only):
                        continue
                    value = _rule(r, i, k, stack, terms, code_op, code_arg, atoms, preds, numbers,
                                  strings, resolved)
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
            for f in range(n_fields):
                for h in range(run_start[k - block, f], run_end[k - block, f]):
                    seen[hits[h]] = 0
            for j in range(1, touched[0] + 1):
                seen[touched[j]] = 0
            touched[0] = 0
            decided[:] = 0
