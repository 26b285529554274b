"""Checked rules -> a ``Plan``: flat numpy arrays the numba kernel (kernel.py) executes.

What the plan holds, and why:
- **atoms**: every distinct normalised literal per text field, found in one pass by that field's
  ``AtomMatcher``; a hit sets one entry of a per-row ``seen`` array.
- **predicates** (leaves): ``HAS`` an atom; ``NUM`` comparisons on numeric columns (and on
  ``len(FIELD)``); ``STR_EQ``/``STR_NE`` on string columns, dictionary-coded per batch; and
  ``DEFERRED`` predicates (regex, fuzzy, count, near, string ordering) that Python evaluates
  only for rows where the kernel could not decide without them.
- **terms**: each rule is a conjunction of terms, checked cheapest first and abandoned at the
  first false one: "one of these atoms occurs", "none of these atoms occurs", a leaf predicate,
  or postfix **code** for a nested condition. Evaluation is three-valued (Kleene) so that a
  deferred predicate is "unknown" until resolved; ``guard`` atoms that a deferred predicate needs
  (``count(f, "x") >= 1`` needs ``x``) make it false without Python when they are absent.
- **triggers**: for each atom, the rules whose condition cannot hold unless that atom occurs;
  per row only rules triggered by a hit atom, plus the few rules with no trigger, are tried.
  Which atom triggers a conjunction is chosen by cost: at first the longest literal, and once
  the engine has seen data (``Plan.retrigger``), the atom that occurs least often.
Rules are numbered by rank: grouped by target, then highest priority first, ties in load order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from kdsl.dsl import ast
from kdsl.dsl.ast import PREDICATES
from kdsl.dsl.checker import RuleSet
from kdsl.dsl.text import normalize_text
from kdsl.engine.matcher import AtomMatcher

# Predicate kinds and condition opcodes, shared with kernel.py.
HAS, NUM, STR_EQ, STR_NE, DEFERRED = 0, 1, 2, 3, 4
OP_PRED, OP_NOT, OP_AND, OP_OR = 0, 1, 2, 3
T_ANY, T_NONE, T_PRED, T_NOT_PRED, T_CODE = 0, 1, 2, 3, 4
# The plan arrays the kernel takes, in order (see kernel.evaluate_rows), then the target count.
PROGRAM = ("atom_base", "atom_field", "atom_bytes", "atom_ptr", "scanned", "trigger_ptr", "trigger_rules",
           "always_rules", "rule_target",
           "term_ptr", "term_kind", "term_a", "term_b", "term_atoms", "code_op", "code_arg",
           "pred_kind", "pred_a", "pred_b", "pred_value", "guard_ptr", "guard_atoms", "max_stack")
NUM_OPS = {"==": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}


class KernelInputs(NamedTuple):
    """What the kernel needs besides the batch: per scanned field the matcher's tables and the
    map from matcher atom id to global atom id, and the program arrays (PROGRAM, then the number
    of targets)."""

    tables: tuple
    scan_maps: tuple
    program: tuple


@dataclass
class Plan:
    rules: list[ast.Rule]                      # by rank
    targets: list[str]
    text_fields: list[str]                     # columns scanned for atoms
    atoms: list[list[str]]                     # per text field, normalised literals
    number_columns: list[tuple[str, str]]      # (column, "value" | "len")
    string_columns: list[str]
    string_literals: list[list[str]]           # per string column, the literals it is compared with
    deferred: list[ast.Predicate]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    kernel_inputs: "KernelInputs | None" = None  # set by retrigger
    _builder: "_Builder | None" = None

    def retrigger(self, cost) -> None:
        """Choose each rule's trigger atoms to minimise ``cost(atom)`` (e.g. the atom's observed
        hit rate); the kernel then tries a rule only on rows where one of its triggers occurs."""
        n_atoms = int(self.arrays["atom_base"][-1])
        triggered_by: list[list[int]] = [[] for _ in range(n_atoms)]
        always = []
        for rank, rule in enumerate(self.rules):
            trigger = self._builder.trigger(rule.condition, cost)
            if trigger is None:
                always.append(rank)
            for atom in trigger[0] if trigger else ():
                triggered_by[atom].append(rank)
        self.arrays["trigger_ptr"] = _offsets(triggered_by)
        self.arrays["trigger_rules"] = np.array([r for rs in triggered_by for r in rs], dtype=np.int32)
        self.arrays["always_rules"] = np.array(always, dtype=np.int32)
        # Only trigger atoms are scanned for; every other atom is looked up in a row's text when
        # a candidate rule asks for it (YARA's split between atoms and verification).
        scanned = np.array([len(rules) > 0 for rules in triggered_by], dtype=np.uint8)
        base = self.arrays["atom_base"]
        scan_maps, matchers = [], []
        for f, atoms in enumerate(self.atoms):
            ids = np.flatnonzero(scanned[base[f] : base[f + 1]])
            scan_maps.append((ids + base[f]).astype(np.int32))
            matchers.append(AtomMatcher.build([atoms[j] for j in ids]))
        self.arrays["scanned"] = scanned
        program = tuple(self.arrays[name] for name in PROGRAM) + (np.int64(len(self.targets)),)
        # One assignment, so a thread that reads it never mixes two trigger choices.
        self.kernel_inputs = KernelInputs(tuple(m.tables for m in matchers), tuple(scan_maps), program)

    @property
    def columns(self) -> list[str]:
        """Every input column the plan reads."""
        names = self.text_fields + [c for c, _ in self.number_columns] + self.string_columns
        names += [p.field.column for p in self.deferred]
        return list(dict.fromkeys(names))


class _Builder:
    def __init__(self, rules: RuleSet):
        self.rules = rules
        self.kinds = rules.fields
        self.text_fields: list[str] = []
        self.atoms: list[list[str]] = []
        self.atom_index: dict[tuple[int, str], int] = {}  # (field slot, literal) -> local id
        self.number_columns: list[tuple[str, str]] = []
        self.string_columns: list[str] = []
        self.string_literals: list[list[str]] = []
        self.deferred: list[ast.Predicate] = []
        self.predicates: dict[tuple, int] = {}
        self.pred_rows: list[tuple[int, int, int, float]] = []
        self.guards: list[list[tuple[int, int]]] = []  # per predicate: (field slot, local atom)

    # slots ------------------------------------------------------------------------------------
    def atom(self, column: str, literal: str) -> tuple[int, int]:
        if column not in self.text_fields:
            self.text_fields.append(column)
            self.atoms.append([])
        slot = self.text_fields.index(column)
        literal = normalize_text(literal)
        key = (slot, literal)
        if key not in self.atom_index:
            self.atom_index[key] = len(self.atoms[slot])
            self.atoms[slot].append(literal)
        return slot, self.atom_index[key]

    def number_slot(self, column: str, source: str) -> int:
        if (column, source) not in self.number_columns:
            self.number_columns.append((column, source))
        return self.number_columns.index((column, source))

    def string_slot(self, column: str, literal: str) -> tuple[int, int]:
        if column not in self.string_columns:
            self.string_columns.append(column)
            self.string_literals.append([])
        slot = self.string_columns.index(column)
        if literal not in self.string_literals[slot]:
            self.string_literals[slot].append(literal)
        return slot, self.string_literals[slot].index(literal)

    def predicate(self, kind: int, a: int, b: int, value: float, guard=()) -> int:
        key = (kind, a, b, value)
        if key not in self.predicates:
            self.predicates[key] = len(self.pred_rows)
            self.pred_rows.append(key)
            self.guards.append(list(guard))
        return self.predicates[key]

    # conditions -> postfix code -----------------------------------------------------------------
    def emit(self, node: ast.Condition, code: list[tuple[int, int]]) -> None:
        if isinstance(node, ast.Not):
            self.emit(node.operand, code)
            code.append((OP_NOT, 0))
        elif isinstance(node, (ast.And, ast.Or)):
            for operand in node.operands:
                self.emit(operand, code)
            code.append((OP_AND if isinstance(node, ast.And) else OP_OR, len(node.operands)))
        elif isinstance(node, ast.Has):
            for literal in node.literals:
                code.append((OP_PRED, self.predicate(HAS, *self.atom(node.field.column, literal), 0.0)))
            if len(node.literals) > 1:
                code.append((OP_AND if node.mode == "all" else OP_OR, len(node.literals)))
        elif isinstance(node, ast.In):
            for value in node.values:
                self.emit(ast.Compare(node.field, "==", value), code)
            if len(node.values) > 1:
                code.append((OP_OR, len(node.values)))
        else:
            code.append((OP_PRED, self.leaf(node)))

    def leaf(self, node: ast.Predicate) -> int:
        """The predicate id of a comparison, ``len``, or deferred predicate."""
        if isinstance(node, ast.Compare) and self.kinds[node.field.name] == "number":
            slot = self.number_slot(node.field.column, "value")
            return self.predicate(NUM, slot, NUM_OPS[node.op], float(node.value))
        if isinstance(node, ast.Compare) and node.op in ("==", "!="):
            slot, index = self.string_slot(node.field.column, node.value)
            return self.predicate(STR_EQ if node.op == "==" else STR_NE, slot, index, 0.0)
        if isinstance(node, ast.Measure) and node.function == "len":
            slot = self.number_slot(node.field.column, "len")
            return self.predicate(NUM, slot, NUM_OPS[node.op], float(node.value))
        return self.defer(node)

    def terms(self, condition: ast.Condition, code: list[tuple[int, int]]) -> list[tuple]:
        """The rule as a conjunction of terms the kernel checks cheapest first, stopping at the
        first false one: (T_ANY | T_NONE, atoms) for ``has`` and ``not has``, (T_PRED |
        T_NOT_PRED, predicate) for other leaves, (T_CODE, start, end) for anything nested, whose
        postfix code is appended to ``code``."""
        terms = []
        for node in condition.operands if isinstance(condition, ast.And) else (condition,):
            negated = isinstance(node, ast.Not)
            inner = node.operand if negated else node
            if isinstance(inner, ast.Has) and (inner.mode == "any" or len(inner.literals) == 1):
                atoms = [self.global_atom(inner.field.column, lit) for lit in inner.literals]
                terms.append((T_NONE if negated else T_ANY, atoms))
            elif isinstance(inner, ast.Has) and not negated:  # all(...): one term per literal
                terms += [(T_ANY, [self.global_atom(inner.field.column, lit)]) for lit in inner.literals]
            elif isinstance(inner, PREDICATES) and not isinstance(inner, (ast.Has, ast.In)):
                terms.append((T_NOT_PRED if negated else T_PRED, self.leaf(inner)))
            else:
                start = len(code)
                self.emit(node, code)
                terms.append((T_CODE, start, len(code)))
        return sorted(terms, key=lambda t: t[0])  # atom tests first, then predicates, then code

    def defer(self, node: ast.Predicate) -> int:
        guard = []
        if isinstance(node, ast.Near):
            guard = [self.atom(node.field.column, node.first), self.atom(node.field.column, node.second)]
        elif isinstance(node, ast.Measure) and node.function == "count" and _needs_one(node.op, node.value):
            guard = [self.atom(node.field.column, node.literal)]
        if node not in self.deferred:
            self.deferred.append(node)
        return self.predicate(DEFERRED, self.deferred.index(node), 0, 0.0, guard)

    def trigger(self, node: ast.Condition, cost) -> tuple[list[int], float] | None:
        """The cheapest set of atoms (global ids) of which at least one must occur for ``node``
        to hold, with its cost (the sum of ``cost(atom)``), or None when there is no such set."""
        def of(literals):
            atoms = [self.global_atom(node.field.column, lit) for lit in literals]
            return atoms, sum(cost(a) for a in atoms)

        if isinstance(node, ast.Has):
            if node.mode == "all":  # any one of them will do: take the rarest
                return min((of([lit]) for lit in node.literals), key=lambda t: t[1])
            return of(node.literals)
        if isinstance(node, ast.Near):
            return min(of([node.first]), of([node.second]), key=lambda t: t[1])
        if isinstance(node, ast.Measure) and node.function == "count" and _needs_one(node.op, node.value):
            return of([node.literal])
        if isinstance(node, ast.And):
            options = [t for t in (self.trigger(o, cost) for o in node.operands) if t is not None]
            return min(options, key=lambda t: t[1]) if options else None
        if isinstance(node, ast.Or):
            options = [self.trigger(o, cost) for o in node.operands]
            if any(t is None for t in options):
                return None
            atoms = list(dict.fromkeys(a for t in options for a in t[0]))
            return atoms, sum(cost(a) for a in atoms)
        return None

    def global_atom(self, column: str, literal: str) -> int:
        slot, local = self.atom(column, literal)
        return sum(len(a) for a in self.atoms[:slot]) + local


def _needs_one(op: str, value: float) -> bool:
    """Whether ``count(...) OP value`` can only hold when the literal occurs at least once."""
    return (op in (">=", "==") and value >= 1) or (op == ">" and value >= 0)


def compile_rules(rules: RuleSet) -> Plan:
    """Compile checked rules into a ``Plan``."""
    builder = _Builder(rules)
    ranked = [r for target in rules.targets for r in rules.ranked(target)]
    # Register every literal first: global atom ids are only stable once all atoms are known.
    for rule in ranked:
        builder.emit(rule.condition, [])
    if not builder.text_fields:  # the kernel expects at least one scanned field
        builder.text_fields.append("")
        builder.atoms.append([])
    base = np.zeros(len(builder.atoms) + 1, dtype=np.int64)
    base[1:] = np.cumsum([len(a) for a in builder.atoms])
    code: list[tuple[int, int]] = []
    rule_terms = [builder.terms(rule.condition, code) for rule in ranked]
    terms = [t for ts in rule_terms for t in ts]
    atom_lists = [t[1] if t[0] in (T_ANY, T_NONE) else [] for t in terms]
    atom_starts = np.concatenate([[0], np.cumsum([len(a) for a in atom_lists])]).astype(np.int64)

    pred_rows = builder.pred_rows
    encoded = [lit.encode() for atoms in builder.atoms for lit in atoms]
    arrays = {
        "atom_base": base,
        "atom_bytes": np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8).copy(),
        "atom_ptr": _offsets(encoded),
        "atom_field": np.repeat(np.arange(len(builder.atoms)), np.diff(base)).astype(np.int64),
        "rule_target": np.array([rules.targets.index(r.target) for r in ranked], dtype=np.int32),
        "term_ptr": _offsets(rule_terms),
        "term_kind": np.array([t[0] for t in terms], dtype=np.int32),
        "term_a": np.array([atom_starts[j] if t[0] in (T_ANY, T_NONE) else t[1]
                            for j, t in enumerate(terms)], dtype=np.int64),
        "term_b": np.array([atom_starts[j + 1] if t[0] in (T_ANY, T_NONE) else (t[2] if t[0] == T_CODE else 0)
                            for j, t in enumerate(terms)], dtype=np.int64),
        "term_atoms": np.array([a for atoms in atom_lists for a in atoms], dtype=np.int64),
        "code_op": np.array([op for op, _ in code], dtype=np.int32),
        "code_arg": np.array([arg for _, arg in code], dtype=np.int32),
        "pred_kind": np.array([p[0] for p in pred_rows], dtype=np.int32),
        "pred_a": np.array([p[1] for p in pred_rows], dtype=np.int64),
        "pred_b": np.array([p[2] for p in pred_rows], dtype=np.int64),
        "pred_value": np.array([p[3] for p in pred_rows], dtype=np.float64),
        "guard_ptr": _offsets(builder.guards),
        "guard_atoms": np.array([base[s] + a for g in builder.guards for s, a in g], dtype=np.int64),
        "max_stack": np.int64(max(len(code), 1)),
    }
    # HAS predicates refer to global atom ids.
    has = arrays["pred_kind"] == HAS
    arrays["pred_a"][has] = base[arrays["pred_a"][has]] + arrays["pred_b"][has]
    plan = Plan(
        rules=ranked, targets=list(rules.targets), text_fields=builder.text_fields,
        atoms=builder.atoms,
        number_columns=builder.number_columns, string_columns=builder.string_columns,
        string_literals=builder.string_literals, deferred=builder.deferred, arrays=arrays,
    )
    plan._builder = builder
    literal_length = [len(lit.encode()) for atoms in builder.atoms for lit in atoms]
    plan.retrigger(lambda atom: 1.0 / literal_length[atom])  # before any data: longer is rarer
    return plan


def _offsets(lists) -> np.ndarray:
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    return offsets
