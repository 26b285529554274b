"""Checked rules -> a ``Plan``: flat numpy arrays the numba kernel (kernel.py) executes.

What the plan holds, and why:
- **atoms**: every distinct normalised literal per text field, found in one pass by that field's
  ``AtomMatcher``; a hit sets one entry of a per-row ``seen`` array.
- **predicates** (leaves): ``HAS`` an atom; ``NUM`` comparisons on numeric columns (and on
  ``len(FIELD)``); ``STR_EQ``/``STR_NE`` on string columns, dictionary-coded per batch; and
  ``DEFERRED`` predicates (regex, fuzzy, count, near, string ordering) that Python evaluates
  only for rows where the kernel could not decide without them.
- **code**: each rule's condition in postfix, evaluated with three-valued (Kleene) logic so that a
  deferred predicate is "unknown" until resolved; ``guard`` atoms that a deferred predicate needs
  (``count(f, "x") >= 1`` needs ``x``) make it false without Python when they are absent.
- **triggers**: for each atom, the rules whose condition cannot hold unless that atom occurs;
  per row only rules triggered by a hit atom, plus the few rules with no trigger, are evaluated.
Rules are numbered by rank: grouped by target, then highest priority first, ties in load order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kdsl.dsl import ast
from kdsl.dsl.checker import RuleSet
from kdsl.dsl.text import normalize_text
from kdsl.engine.matcher import AtomMatcher

# Predicate kinds and condition opcodes, shared with kernel.py.
HAS, NUM, STR_EQ, STR_NE, DEFERRED = 0, 1, 2, 3, 4
OP_PRED, OP_NOT, OP_AND, OP_OR = 0, 1, 2, 3
NUM_OPS = {"==": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}


@dataclass
class Plan:
    rules: list[ast.Rule]                      # by rank
    targets: list[str]
    text_fields: list[str]                     # columns scanned for atoms
    atoms: list[list[str]]                     # per text field, normalised literals
    matchers: list[AtomMatcher]
    number_columns: list[tuple[str, str]]      # (column, "value" | "len")
    string_columns: list[str]
    string_literals: list[list[str]]           # per string column, the literals it is compared with
    deferred: list[ast.Predicate]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

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
        elif isinstance(node, ast.Compare) and self.kinds[node.field.name] == "number":
            slot = self.number_slot(node.field.column, "value")
            code.append((OP_PRED, self.predicate(NUM, slot, NUM_OPS[node.op], float(node.value))))
        elif isinstance(node, ast.Compare) and node.op in ("==", "!="):
            slot, index = self.string_slot(node.field.column, node.value)
            code.append((OP_PRED, self.predicate(STR_EQ if node.op == "==" else STR_NE, slot, index, 0.0)))
        elif isinstance(node, ast.Measure) and node.function == "len":
            slot = self.number_slot(node.field.column, "len")
            code.append((OP_PRED, self.predicate(NUM, slot, NUM_OPS[node.op], float(node.value))))
        else:
            code.append((OP_PRED, self.defer(node)))

    def defer(self, node: ast.Predicate) -> int:
        guard = []
        if isinstance(node, ast.Near):
            guard = [self.atom(node.field.column, node.first), self.atom(node.field.column, node.second)]
        elif isinstance(node, ast.Measure) and node.function == "count" and _needs_one(node.op, node.value):
            guard = [self.atom(node.field.column, node.literal)]
        if node not in self.deferred:
            self.deferred.append(node)
        return self.predicate(DEFERRED, self.deferred.index(node), 0, 0.0, guard)

    def trigger(self, node: ast.Condition) -> list[tuple[int, int]] | None:
        """Atoms of which at least one must occur for ``node`` to hold, or None."""
        if isinstance(node, ast.Has):
            literals = node.literals
            if node.mode == "all":  # any one of them will do; the longest is likely the rarest
                literals = [max(literals, key=lambda s: len(normalize_text(s)))]
            return [self.atom(node.field.column, lit) for lit in literals]
        if isinstance(node, ast.And):
            options = [t for t in map(self.trigger, node.operands) if t is not None]
            return min(options, key=len) if options else None
        if isinstance(node, ast.Or):
            options = [self.trigger(o) for o in node.operands]
            if any(t is None for t in options):
                return None
            return list(dict.fromkeys(a for t in options for a in t))
        if isinstance(node, ast.Near):
            return [self.atom(node.field.column, node.first)]
        if isinstance(node, ast.Measure) and node.function == "count" and _needs_one(node.op, node.value):
            return [self.atom(node.field.column, node.literal)]
        return None


def _needs_one(op: str, value: float) -> bool:
    """Whether ``count(...) OP value`` can only hold when the literal occurs at least once."""
    return (op in (">=", "==") and value >= 1) or (op == ">" and value >= 0)


def compile_rules(rules: RuleSet) -> Plan:
    """Compile checked rules into a ``Plan``."""
    builder = _Builder(rules)
    ranked = [r for target in rules.targets for r in rules.ranked(target)]
    codes, triggers = [], []
    for rule in ranked:
        code: list[tuple[int, int]] = []
        builder.emit(rule.condition, code)
        codes.append(code)
        triggers.append(builder.trigger(rule.condition))

    if not builder.text_fields:  # the kernel expects at least one scanned field
        builder.text_fields.append("")
        builder.atoms.append([])
    base = np.zeros(len(builder.atoms) + 1, dtype=np.int64)
    base[1:] = np.cumsum([len(a) for a in builder.atoms])

    def global_id(slot_atom):
        return int(base[slot_atom[0]] + slot_atom[1])

    n_atoms, n_rules = int(base[-1]), len(ranked)
    triggered_by: list[list[int]] = [[] for _ in range(n_atoms)]
    always = []
    for rank, trigger in enumerate(triggers):
        if trigger is None:
            always.append(rank)
        for atom in trigger or ():
            triggered_by[global_id(atom)].append(rank)

    pred_rows = builder.pred_rows
    arrays = {
        "atom_base": base,
        "trigger_ptr": _offsets(triggered_by),
        "trigger_rules": np.array([r for rs in triggered_by for r in rs], dtype=np.int32),
        "always_rules": np.array(always, dtype=np.int32),
        "rule_target": np.array([rules.targets.index(r.target) for r in ranked], dtype=np.int32),
        "code_ptr": _offsets(codes),
        "code_op": np.array([op for c in codes for op, _ in c], dtype=np.int32),
        "code_arg": np.array([arg for c in codes for _, arg in c], dtype=np.int32),
        "pred_kind": np.array([p[0] for p in pred_rows], dtype=np.int32),
        "pred_a": np.array([p[1] for p in pred_rows], dtype=np.int64),
        "pred_b": np.array([p[2] for p in pred_rows], dtype=np.int64),
        "pred_value": np.array([p[3] for p in pred_rows], dtype=np.float64),
        "guard_ptr": _offsets(builder.guards),
        "guard_atoms": np.array([global_id(a) for g in builder.guards for a in g], dtype=np.int64),
        "max_stack": np.int64(max((len(c) for c in codes), default=1)),
    }
    # HAS predicates refer to global atom ids.
    has = arrays["pred_kind"] == HAS
    arrays["pred_a"][has] = base[arrays["pred_a"][has]] + arrays["pred_b"][has]
    return Plan(
        rules=ranked, targets=list(rules.targets), text_fields=builder.text_fields,
        atoms=builder.atoms, matchers=[AtomMatcher.build(a) for a in builder.atoms],
        number_columns=builder.number_columns, string_columns=builder.string_columns,
        string_literals=builder.string_literals, deferred=builder.deferred, arrays=arrays,
    )


def _offsets(lists) -> np.ndarray:
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    return offsets
