"""The workbench's data and evaluation: one labelled table, one directory of rule files.

A ``Session`` loads the table once, normalises its text columns once (the engine then finds
them already normalised and skips that work), and keeps what the saved rules do on it: which
rows each rule holds on, and per row and target the deciding rule and the runner-up. Evaluating
the rule being edited then costs one compile of that rule alone and one ``matches`` pass over
the table; its effect on the rule base comes from the kept winners without re-running any
other rule:

- the rule *wins* a row when it holds there and outranks the deciding rule of the saved base
  without it (the runner-up when the deciding rule is its own saved version);
- a row is *fixed* when the final label (rule, else ``model_label``) becomes right, *broken*
  when it was right and is no longer;
- a *conflict* is another rule of the same target, with another label, holding on the same row.

Nothing here runs code from a rule file: rules are parsed and checked by ``kdsl.dsl`` (regexes
are RE2) and evaluated by the engine. Saving writes only the rule file being edited, formatted,
atomically, and only when the whole rule base checks.

    >>> session = Session("kdsl/samples/sample.parquet", "kdsl/samples/rules")   # doctest: +SKIP
    >>> session.evaluate("intent.kdsl", source, line=14)["rule"]["hits"]        # doctest: +SKIP
    1
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa

from kdsl.dsl import ast
from kdsl.dsl.checker import RuleSet, check
from kdsl.dsl.formatter import format_program
from kdsl.dsl.loader import parse_file, rule_files
from kdsl.dsl.parser import parse
from kdsl.engine import reference
from kdsl.engine.engine import Engine, _matched_literals
from kdsl.engine.normalize import normalize_array
from kdsl.errors import InputError, LimitError, RuleError
from kdsl.io import open_parquet, write_text_atomically
from kdsl.record import TEXT_FIELDS

MAX_SOURCE_BYTES = 1 << 20  # a rule file the page may send: 1 MiB (the sample's is 4 KB)
PAGE_ROWS = 20
CANDIDATE_ROWS = 20000  # rows the miner counts candidates on (a sample of the task's rows)


class Session:
    """A table and a rule directory, as the workbench page sees them."""

    def __init__(self, data_path, rules_dir, max_source_bytes: int = MAX_SOURCE_BYTES):
        self.rules_dir = Path(rules_dir)
        self.max_source_bytes = max_source_bytes
        self.table = _read_table(data_path)
        self.has_model = "model_label" in self.table.schema.names
        self.labels = np.array(self.table.column("label").to_pylist(), dtype=object)
        self.models = np.array(self.table.column("model_label").cast(pa.string()).to_pylist(), dtype=object) \
            if self.has_model else np.full(self.table.num_rows, None, dtype=object)
        self.tasks = np.array(self.table.column("task").to_pylist(), dtype=object) \
            if "task" in self.table.schema.names else None
        self.files = {f.relative_to(self.rules_dir).as_posix(): f for f in rule_files([self.rules_dir])}
        self._lock = threading.Lock()
        self._programs = {name: parse_file(path) for name, path in self.files.items()}
        self._base = _Base.build(self, self._programs)

    # ------------------------------------------------------------------------------- the files
    def sources(self) -> dict[str, str]:
        """Rule file (relative to the rule directory) -> its text on disk."""
        return {name: program.source for name, program in self._programs.items()}

    def _program(self, name: str, source: str) -> ast.Program:
        if name not in self.files:
            raise InputError(f"{name!r} is not one of the rule files of {self.rules_dir}")
        if len(source.encode("utf-8")) > self.max_source_bytes:
            raise LimitError(f"{name}: the rule file is over {self.max_source_bytes} bytes")
        return parse(source, str(self.files[name]))

    def check(self, name: str, source: str) -> tuple[ast.Program | None, RuleSet | None, list[dict]]:
        """Parse ``source`` as the file ``name`` and check it with the other (saved) files:
        (program, rule set, diagnostics as dicts)."""
        try:
            program = self._program(name, source)
        except RuleError as error:
            return None, None, [_diagnostic(d) for d in error.diagnostics]
        programs = [program if n == name else p for n, p in self._programs.items()]
        try:
            return program, check(programs), []
        except RuleError as error:
            return program, None, [_diagnostic(d) for d in error.diagnostics]

    def save(self, name: str, source: str) -> str:
        """Write ``source``, formatted, to the file ``name`` if the rule base then checks; return
        the formatted text. Raises ``kdsl.errors.RuleError`` (diagnostics) and writes nothing
        otherwise."""
        program = self._program(name, source)
        check([program if n == name else p for n, p in self._programs.items()])
        formatted = format_program(program)
        reparsed = parse(formatted, str(self.files[name]))
        with self._lock:
            write_text_atomically(self.files[name], formatted)
            programs = dict(self._programs, **{name: reparsed})
            self._base = _Base.build(self, programs)
            self._programs = programs
        return formatted

    # -------------------------------------------------------------------------- the edited rule
    def evaluate(self, name: str, source: str, line: int = 0, offset: int = 0) -> dict:
        """Diagnostics for ``source`` (the file ``name`` as edited) and, when it checks, what the
        rule at ``line`` (1-based; the nearest rule above it, else the first) does on the
        data; ``offset`` pages through its matching rows."""
        program, rules, diagnostics = self.check(name, source)
        result = {"diagnostics": diagnostics, "rule": None}
        if rules is None or not program.rules:
            return result
        above = [r for r in program.rules if r.span.line <= max(line, 1)]
        written = above[-1] if above else program.rules[0]
        rule = rules.rule(written.name)
        result["rule"] = self._rule_report(rules, rule, name, offset)
        return result

    def _rule_report(self, rules: RuleSet, rule: ast.Rule, name: str, offset: int) -> dict:
        base = self._base
        engine = Engine(dataclasses.replace(rules, rules=(rule,)))
        hits = np.flatnonzero(engine.matches(self.table)[:, 0])
        labels = self.labels[hits]
        labelled = labels != None  # noqa: E711 (element-wise)
        correct = int((labels == rule.label).sum())
        target = base.targets.index(rule.target) if rule.target in base.targets else None
        before = base.final(target, hits, exclude=rule.name) if target is not None else self.models[hits]
        rival = base.winner(target, hits, exclude=rule.name) if target is not None else np.full(hits.size, -1)
        key = (-rule.priority, base.file_order.get(name, len(base.file_order)), rule.span.line)
        wins = np.array([r < 0 or key < base.keys[r] for r in rival], dtype=bool)
        after = np.where(wins, rule.label, before)
        truth = self.labels[hits]
        fixes = int(((after == truth) & (before != truth) & labelled).sum())
        breaks = int(((after != truth) & (before == truth) & labelled).sum())
        mask = np.zeros(self.table.num_rows, dtype=bool)
        mask[hits] = True
        conflicts = []
        for j, other in enumerate(base.rules):
            if other.name == rule.name or other.target != rule.target or other.label == rule.label:
                continue
            shared = int(mask[base.rows[j]].sum())
            if shared:
                conflicts.append({"rule": other.name, "label": other.label, "rows": shared,
                                  "location": str(other.name_span)})
        conflicts.sort(key=lambda c: -c["rows"])
        page = hits[offset : offset + PAGE_ROWS]
        return {
            "name": rule.name, "target": rule.target, "label": rule.label, "priority": rule.priority,
            "line": rule.span.line, "hits": int(hits.size), "labelled": int(labelled.sum()),
            "correct": correct, "precision": correct / int(labelled.sum()) if labelled.any() else None,
            "wins": int(wins.sum()), "fixes": fixes,
            "breaks": breaks, "has_model": self.has_model,
            "conflicts": conflicts[:10], "offset": offset, "rows": self._rows(page, rule.condition),
        }

    def _rows(self, indices: np.ndarray, condition: ast.Condition | None = None) -> list[dict]:
        columns = [c for c in ("id", "label", "model_label", *TEXT_FIELDS) if c in self.table.schema.names]
        rows = self.table.select(columns).take(pa.array(indices, pa.int64())).to_pylist()
        for row in rows:
            row["matches"] = _matched_literals(condition, reference.Record(row)) if condition is not None else []
        return rows

    # ----------------------------------------------------------------- where to write the next rule
    def unresolved(self) -> dict:
        """Rows no saved rule decides and the model gets wrong (every row no rule decides when
        the table has no ``model_label``), grouped by label, largest group first."""
        base = self._base
        undecided = np.ones(self.table.num_rows, dtype=bool)
        for t in range(len(base.targets)):
            in_task = base.in_task[t]
            undecided &= ~(in_task & (base.first[t] >= 0))
        wrong = undecided & (self.labels != None)  # noqa: E711
        if self.has_model:
            wrong &= self.models != self.labels
        groups = {}
        for i in np.flatnonzero(wrong):
            task = self.tasks[i] if self.tasks is not None else None
            groups.setdefault((task or "", self.labels[i]), []).append(int(i))
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        return {"has_model": self.has_model, "rows": int(wrong.sum()),
                "groups": [{"task": task or None, "label": label, "rows": len(rows),
                            "sample": self._rows(np.array(rows[:5]))} for (task, label), rows in ordered]}

    def candidates(self, label: str, top_k: int = 15) -> list[dict]:
        """Literals the miner (``kdsl.mining.candidates``) proposes for ``label``, counted on the
        rows of the label's task."""
        from kdsl.mining.candidates import propose

        if label not in set(self.labels.tolist()):
            raise InputError(f"no row has the label {label!r}")
        rows = np.flatnonzero(self.labels == label)
        task = self.tasks[rows[0]] if self.tasks is not None else None
        pool = np.flatnonzero((self.tasks == task) & (self.labels != None)) if task is not None \
            else np.flatnonzero(self.labels != None)  # noqa: E711
        pool = pool[:: max(1, pool.size // CANDIDATE_ROWS)]
        columns = [c for c in ("label", *TEXT_FIELDS) if c in self.table.schema.names]
        found = propose(self.table.select(columns).take(pa.array(pool, pa.int64())).to_pylist(), top_k=top_k,
                        fields=[c for c in TEXT_FIELDS if c in columns])
        return [{"predicate": c.text, "support": c.support, "precision": round(c.precision, 3),
                 "score": round(c.score, 3)} for c in found.get(label, [])]


@dataclasses.dataclass
class _Base:
    """What the saved rules do on the table."""

    rules: list[ast.Rule]                 # by rank, as the engine numbers them
    rows: list[np.ndarray]                # per rule, the rows it holds on
    keys: list[tuple]                     # per rule, its place in the order rules are tried
    targets: list[str]
    first: list[np.ndarray]               # per target: rank of the deciding rule per row, or -1
    second: list[np.ndarray]              # per target: rank of the runner-up, or -1
    in_task: list[np.ndarray]
    models: np.ndarray
    file_order: dict[str, int]

    @classmethod
    def build(cls, session: Session, programs: dict[str, ast.Program]) -> "_Base":
        file_order = {name: k for k, name in enumerate(programs)}
        order_of_path = {str(session.files[name]): k for name, k in file_order.items()}
        rules = check(list(programs.values()))
        engine = Engine(rules)
        fired = engine.matches(session.table) if engine.plan.rules else np.zeros((session.table.num_rows, 0), bool)
        ranked = engine.plan.rules
        n = session.table.num_rows
        first, second, in_task = [], [], []
        for target in engine.targets:
            ranks = [r for r, rule in enumerate(ranked) if rule.target == target]
            top, runner = np.full(n, -1, np.int32), np.full(n, -1, np.int32)
            for r in ranks:  # in rank order: the first rule that holds decides, the next is runner-up
                holds = fired[:, r]
                runner[(top >= 0) & (runner < 0) & holds] = r
                top[(top < 0) & holds] = r
            first.append(top)
            second.append(runner)
            in_task.append(np.ones(n, bool) if session.tasks is None else session.tasks == target)
        keys = [(-r.priority, order_of_path.get(r.span.path, len(order_of_path)), r.span.line) for r in ranked]
        return cls(rules=list(ranked), rows=[np.flatnonzero(fired[:, r]) for r in range(len(ranked))], keys=keys,
                   targets=list(engine.targets), first=first, second=second, in_task=in_task,
                   models=session.models, file_order=file_order)

    def winner(self, target: int, rows: np.ndarray, exclude: str) -> np.ndarray:
        """The deciding rule of ``rows`` when the rule named ``exclude`` is left out."""
        top, runner = self.first[target][rows], self.second[target][rows]
        excluded = next((r for r, rule in enumerate(self.rules) if rule.name == exclude), -2)
        return np.where(top == excluded, runner, top)

    def final(self, target: int, rows: np.ndarray, exclude: str) -> np.ndarray:
        """The final label of ``rows`` (deciding rule, else ``model_label``) without ``exclude``."""
        won = self.winner(target, rows, exclude)
        labels = np.array([r.label for r in self.rules] + [None], dtype=object)
        model = np.where(self.in_task[target][rows], self.models[rows], None)
        return np.where(won >= 0, labels[won], model)


def _read_table(path) -> pa.Table:
    """The table with its text columns normalised once (list columns, which no rule reads, are
    left out); InputError when it is unreadable or has no ``label``."""
    source = open_parquet(path)
    table = source.read(columns=[f.name for f in source.schema_arrow if not pa.types.is_nested(f.type)])
    if "label" not in table.schema.names:
        raise InputError(f"{path}: no 'label' column; the workbench needs labelled rows")
    for name in TEXT_FIELDS:
        if name in table.schema.names:
            column = table.column(name)
            if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                raise InputError(f"{path}: column {name!r} has type {column.type}; expected text")
            table = table.set_column(table.schema.get_field_index(name), name, normalize_array(column))
    return table.combine_chunks()


def _diagnostic(diagnostic) -> dict:
    span = diagnostic.span
    return {"path": span.path, "line": span.line, "column": span.column, "end_line": span.end_line,
            "end_column": span.end_column, "message": diagnostic.message}
