"""``Engine``: compiled rules that score Arrow tables and single records.

    >>> import kdsl.engine
    >>> engine = kdsl.engine.loads('rule r: intent = "气泡" when user has "气泡"')
    >>> engine.predict({"user": "洗完有很多气泡"})["intent_rule"]
    'r'
"""

from __future__ import annotations

import itertools
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kdsl.dsl import ast
from kdsl.dsl.checker import RuleSet
from kdsl.dsl.text import normalize_text
from kdsl.engine import reference
from kdsl.engine.compiler import Plan, compile_rules
from kdsl.engine.kernel import evaluate_rows
from kdsl.engine.matcher import AtomMatcher
from kdsl.engine.normalize import normalize_array
from kdsl.errors import InputError  # the input table does not fit the rules (a missing column, a wrong type)
from kdsl.record import MODEL_LABEL, TASK, record_problem

SOURCES = ("rule", "model")
BATCH_ROWS = 65536  # rows normalised and scanned together: buffers stay small and are reused
CALIBRATION_ROWS = 4096  # rows whose atom hit rates choose the rule triggers
_NO_ROWS = np.zeros((0, 0), dtype=np.uint8)
_ROW_ZERO = np.zeros(1, dtype=np.int64)


class Engine:
    """Rules compiled for execution. Build one with ``kdsl.engine.load`` or ``loads``."""

    def __init__(self, rules: RuleSet):
        self.ruleset = rules
        self.plan: Plan = compile_rules(rules)
        self._string_codes = [{lit: j for j, lit in enumerate(lits)} for lits in self.plan.string_literals]
        self._target_index = {t: j for j, t in enumerate(self.plan.targets)}
        self._calibrated = False
        self._one_record_kernel = None
        self._calibration_lock = threading.Lock()
        self._live: Engine | None = None  # set by reload(): the engine every call is served by

    def reload(self, paths) -> None:
        """Load and compile the rules under ``paths``, then swap them in at once: calls already
        running finish on the old rules, later calls use the new ones. When the new rules do not
        load (``kdsl.errors.RuleError`` with every diagnostic), the old ones stay in service.

        The public methods and ``rules``, ``targets``, ``fields``, ``output_columns`` follow the
        swap; ``plan`` and ``ruleset`` keep describing the rules this object was built with (its
        own calls still in flight use them), and ``current`` is the engine now in service.

        >>> engine.reload("rules/")      # doctest: +SKIP
        """
        from kdsl.dsl.loader import load_rules

        fresh = Engine(load_rules(paths))  # raises before anything is swapped
        # One reference assignment: a public call reads ``_live`` once and is served by that
        # engine from start to end; nothing an engine computes with is ever modified.
        self._live = fresh

    @property
    def current(self) -> "Engine":
        """The engine serving calls: this one, or the one the last ``reload`` compiled."""
        return self._live or self

    def _calibrate(self, offsets, data, rows: int) -> None:
        """Re-choose rule triggers by how often each atom occurs in the first rows seen, so that
        a conjunction is tried only where its rarest atom occurs. Results never depend on it."""
        plan = self.plan
        frequency = np.zeros(int(plan.arrays["atom_base"][-1]), dtype=np.float64)
        for f, atoms in enumerate(plan.atoms):
            matcher = AtomMatcher.build(atoms)  # every atom, not only the current triggers
            sample = pa.LargeStringArray.from_buffers(
                rows, pa.py_buffer(offsets[f][: rows + 1]), pa.py_buffer(data[f]))
            _, ids = matcher.scan_column(sample)
            lo = int(plan.arrays["atom_base"][f])
            frequency[lo : lo + len(plan.atoms[f])] = np.bincount(ids, minlength=len(plan.atoms[f]))
        length = np.array([len(a.encode()) for atoms in plan.atoms for a in atoms] or [1], dtype=np.float64)
        cost = frequency + 1.0 / length  # among atoms seen equally often, the longer first
        plan.retrigger(cost.__getitem__)
        self._calibrated = True

    # ---------------------------------------------------------------------------- introspection
    @property
    def rules(self) -> tuple[ast.Rule, ...]:
        """Every rule, in load order."""
        return self.current.ruleset.rules

    @property
    def targets(self) -> list[str]:
        return list(self.current.plan.targets)

    @property
    def fields(self) -> list[str]:
        """The input columns the engine reads (``task`` and ``model_label`` when present)."""
        plan = self.current.plan
        return plan.columns + [c for c in (TASK, MODEL_LABEL) if c not in plan.columns]

    @property
    def output_columns(self) -> list[str]:
        return _output_names(self.current.plan)

    # ---------------------------------------------------------------------------------- scoring
    def score(self, table: pa.Table | pa.RecordBatch, threads: int = 1) -> pa.Table | pa.RecordBatch:
        """Append the output columns (``T``, ``T_rule``, ``T_source`` per target) to ``table``."""
        if self._live is not None:
            return self._live.score(table, threads)
        if isinstance(table, pa.RecordBatch):
            if table.num_rows <= BATCH_ROWS:
                return self._score_batch(table, threads)
            parts = [self._score_batch(table.slice(i, BATCH_ROWS), threads)
                     for i in range(0, table.num_rows, BATCH_ROWS)]
            return pa.concat_batches(parts)
        self._check_input(table.schema)
        batches = [self._score_batch(b, threads) for b in table.to_batches(max_chunksize=BATCH_ROWS)]
        schema = self._output_schema(table.schema)
        return pa.Table.from_batches(batches, schema=schema)

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """``schema`` with the output columns appended."""
        return self.current._output_schema(schema)

    def _output_schema(self, schema: pa.Schema) -> pa.Schema:
        names = _output_names(self.plan)
        for name in names:
            if name in schema.names:
                raise InputError(f"the input already has a column '{name}', which the engine writes")
        return pa.schema(list(schema) + [pa.field(n, pa.string()) for n in names])

    def check_input(self, schema: pa.Schema) -> None:
        """Raise ``InputError`` unless ``schema`` has every column the rules read, of a usable
        type."""
        self.current._check_input(schema)

    def _check_input(self, schema: pa.Schema) -> None:
        kinds = self.ruleset.column_kinds
        missing = [c for c in self.plan.columns if c and c not in schema.names]
        if missing:
            raise InputError(f"the input has no column {', '.join(map(repr, missing))}, which the rules "
                             f"use; columns present: {', '.join(schema.names)}")
        for name in self.plan.columns:
            if not name:
                continue
            kind = kinds.get(name)
            column_type = schema.field(name).type
            wants_number = kind == "number"
            ok = (pa.types.is_integer(column_type) or pa.types.is_floating(column_type)) if wants_number \
                else (pa.types.is_string(column_type) or pa.types.is_large_string(column_type)
                      or pa.types.is_null(column_type))
            if not ok and not pa.types.is_null(column_type):
                raise InputError(f"column '{name}' has type {column_type}; the rules use it as a "
                                 f"{'number' if wants_number else 'string'}")

    def _score_batch(self, batch: pa.RecordBatch, threads: int = 1) -> pa.RecordBatch:
        self._check_input(batch.schema)
        schema = self._output_schema(batch.schema)
        n = batch.num_rows
        winners, _ = self._evaluate(batch, threads)
        outputs = self._output_columns(winners, batch)
        return pa.RecordBatch.from_arrays(list(batch.columns) + outputs, schema=schema)

    def matches(self, table: pa.Table | pa.RecordBatch) -> np.ndarray:
        """A boolean matrix: [row, i] is True when ``self.plan.rules[i]`` holds for the row
        (every rule, not only the deciding one; rows outside a rule's task are False)."""
        if self._live is not None:
            return self._live.matches(table)
        if isinstance(table, pa.Table):
            self._check_input(table.schema)
            parts = [self._evaluate(b, collect=True)[1] for b in table.to_batches(max_chunksize=BATCH_ROWS)]
            return np.concatenate(parts) if parts else np.zeros((0, len(self.plan.rules)), bool)
        self._check_input(table.schema)
        return self._evaluate(table, collect=True)[1]

    def _evaluate(self, batch: pa.RecordBatch, threads: int = 1, collect: bool = False):
        """Run the kernel over one batch: (winners[row, target], fired[row, rule] or None)."""
        plan = self.plan
        n = batch.num_rows
        offsets, data, numbers, strings, row_target = self._prepare(batch)

        if not self._calibrated and n:
            with self._calibration_lock:
                if not self._calibrated:
                    self._calibrate(offsets, data, min(n, CALIBRATION_ROWS))
        winners = np.full((n, max(len(plan.targets), 1)), -1, dtype=np.int32)
        pending = np.zeros(n, dtype=np.uint8)
        fired = np.zeros((n, len(plan.rules)) if collect else (0, 0), dtype=np.uint8)
        inputs = plan.kernel_inputs
        texts = (inputs.tables, tuple(offsets), tuple(data), inputs.scan_maps)
        columns = (numbers, strings, row_target)

        def run(rows, resolved, pending_out):
            evaluate_rows(rows, texts, inputs.program, columns, resolved, winners, pending_out, fired)

        all_rows = np.arange(n, dtype=np.int64)
        if threads > 1 and n > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda rows: run(rows, _NO_ROWS, pending), np.array_split(all_rows, threads)))
        else:
            run(all_rows, _NO_ROWS, pending)

        rows = np.flatnonzero(pending)
        if rows.size:
            resolved = self._resolve(pc.take(batch, pa.array(rows)).to_pylist())
            run(rows.astype(np.int64), resolved, np.zeros(n, dtype=np.uint8))
        return winners, (fired.astype(bool) if collect else None)

    def _prepare(self, batch: pa.RecordBatch):
        """The kernel's view of a batch: per scanned field the normalised text's offsets and
        bytes, the numeric columns, the string columns' codes, and each row's target index."""
        plan = self.plan
        n, names = batch.num_rows, batch.schema.names
        column = batch.column
        offsets, data, lengths = [], [], {}
        measured = {name for name, source in plan.number_columns if source == "len"}
        for name in plan.text_fields:
            if name in measured:
                normalized, lengths[name] = normalize_array(column(name), with_lengths=True)
            else:
                normalized = normalize_array(column(name) if name else pa.nulls(n, pa.string()))
            offsets.append(np.frombuffer(normalized.buffers()[1], dtype=np.int64)[normalized.offset:])
            data.append(_data_buffer(normalized))
        numbers = np.empty((len(plan.number_columns), n), dtype=np.float64)
        for slot, (name, source) in enumerate(plan.number_columns):
            if source == "len":
                numbers[slot] = lengths[name] if name in lengths else normalize_array(column(name), with_lengths=True)[1]
            else:
                numbers[slot] = _as_float(column(name))
        strings = np.empty((len(plan.string_columns), n), dtype=np.int64)
        for slot, name in enumerate(plan.string_columns):
            strings[slot] = _codes(column(name), plan.string_literals[slot])
        row_target = self._row_targets(column("task") if "task" in names else None, n)
        return offsets, data, numbers, strings, row_target

    def _resolve(self, rows: list[dict]) -> np.ndarray:
        """Evaluate every deferred predicate (regex, fuzzy, ...) on the given rows in Python."""
        resolved = np.zeros((len(rows), max(len(self.plan.deferred), 1)), dtype=np.uint8)
        for k, row in enumerate(rows):
            record = reference.Record(row)
            for d, predicate in enumerate(self.plan.deferred):
                resolved[k, d] = reference.predicate_holds(predicate, record)
        return resolved

    def _row_targets(self, task, n) -> np.ndarray:
        if task is None:
            return np.full(n, -1, dtype=np.int64)
        return _codes(task, self.plan.targets, missing=-2, null=-2)

    def _output_columns(self, winners: np.ndarray, batch: pa.RecordBatch) -> list[pa.Array]:
        plan = self.plan
        names = pa.array([r.name for r in plan.rules], pa.string())
        labels = pa.array([r.label for r in plan.rules], pa.string())
        model = batch.column(MODEL_LABEL) if MODEL_LABEL in batch.schema.names else None
        if model is not None and not pa.types.is_string(model.type):
            model = model.cast(pa.string())
        task = batch.column("task") if "task" in batch.schema.names else None
        columns = []
        for t, target in enumerate(plan.targets):
            won = winners[:, t]
            index = pa.array(won, mask=won < 0)
            rule_names = pc.take(names, index)
            rule_labels = pc.take(labels, index)
            feed = model
            if feed is not None and task is not None:
                feed = pc.if_else(pc.equal(task, target), feed, pa.nulls(len(feed), pa.string()))
            final = rule_labels if feed is None else pc.coalesce(rule_labels, feed)
            source = pc.if_else(pc.is_valid(rule_names), "rule",
                                pc.if_else(pc.is_valid(final), "model", pa.scalar(None, pa.string())))
            columns += [final, rule_names, source.cast(pa.string())]
        return columns

    # ------------------------------------------------------------------------------- one record
    def predict(self, record: dict) -> dict:
        """Outputs for one record (a dict of column -> value; a missing key is null).

        >>> engine.predict({"user": "漏水了", "model_label": "是否好用"})   # doctest: +SKIP
        {'intent': '反馈密封性不好', 'intent_rule': 'leak_feedback', 'intent_source': 'rule'}
        """
        if self._live is not None:
            return self._live.predict(record)
        _check_record(record)
        plan = self.plan
        normalized = [normalize_text(v if isinstance(v, str) else None) for v in map(record.get, plan.text_fields)]
        # One buffer for all fields: field f of the single row is blob[bounds[f]:bounds[f + 1]].
        blob = np.frombuffer("".join(normalized).encode(), dtype=np.uint8)
        bounds = np.array(list(itertools.accumulate((len(t.encode()) for t in normalized), initial=0)), np.int64)
        bounds.flags.writeable = False  # the kernel's signature takes read-only text buffers
        lengths = dict(zip(plan.text_fields, map(len, normalized)))

        def number(name, source):
            if source != "len":
                return record.get(name)
            return lengths[name] if name in lengths else len(normalize_text(record.get(name)))

        numbers = np.array([_number(number(*column)) for column in plan.number_columns],
                           dtype=np.float64).reshape(-1, 1)
        strings = np.array([-1 if record.get(name) is None else
                            self._string_codes[slot].get(record.get(name), len(plan.string_literals[slot]))
                            for slot, name in enumerate(plan.string_columns)], dtype=np.int64).reshape(-1, 1)
        has_task = "task" in record
        row_target = np.array([self._target_index.get(record["task"], -2) if has_task else -1], dtype=np.int64)
        winners = np.full((1, max(len(plan.targets), 1)), -1, dtype=np.int32)
        pending = np.zeros(1, dtype=np.uint8)
        n = len(plan.text_fields)
        inputs = plan.kernel_inputs
        texts = (inputs.tables, tuple(bounds[f : f + 2] for f in range(n)), (blob,) * n, inputs.scan_maps)
        columns = (numbers, strings, row_target)
        args = [_ROW_ZERO, texts, inputs.program, columns, _NO_ROWS, winners, pending, _NO_ROWS]
        self._run_one(args)
        if pending[0]:
            args[4] = self._resolve([record])
            self._run_one(args)
        model_label = record.get(MODEL_LABEL)
        result = {}
        for t, target in enumerate(plan.targets):
            rule = plan.rules[winners[0, t]] if winners[0, t] >= 0 else None
            feed = model_label if (not has_task or record["task"] == target) else None
            if rule is not None:
                result.update({target: rule.label, f"{target}_rule": rule.name, f"{target}_source": "rule"})
            else:
                result.update({target: feed, f"{target}_rule": None,
                               f"{target}_source": "model" if feed is not None else None})
        return result

    def _run_one(self, args) -> None:
        """``evaluate_rows(*args)`` for one record, skipping numba's argument typing after the
        first call (a quarter of a single record's latency goes into it)."""
        if self._one_record_kernel is None:
            evaluate_rows(*args)
            signature = tuple(numba.typeof(a) for a in args)
            self._one_record_kernel = evaluate_rows.overloads[signature].entry_point
        else:
            self._one_record_kernel(*args)

    def explain(self, record: dict, why_not: bool = False, rule: str | None = None) -> list[dict]:
        """Every rule that matches ``record``: the deciding rule of each target first, then the
        rest in the order they are tried, each with the literals that matched and their
        character offsets in the normalised text.

        With ``why_not``: instead, every rule of the record's ``label`` (or the rule named
        ``rule``) that does not match, with the first term that failed, what the text held
        instead and the smallest edit that makes it match (see ``kdsl.engine.why_not``).
        """
        _check_record(record)
        if self._live is not None:
            return self._live.explain(record, why_not, rule)
        if why_not or rule is not None:
            from kdsl.engine.why_not import why_not as explain_misses

            return explain_misses(self.ruleset, record, rule)
        decided = reference.winners(self.ruleset, record)
        has_task = "task" in record
        norm = reference.Record(record)
        found = []
        for rank, rule in enumerate(self.plan.rules):
            if has_task and record["task"] != rule.target:
                continue
            if not reference.holds(rule.condition, norm):
                continue
            found.append({
                "rule": rule.name, "target": rule.target, "label": rule.label,
                "priority": rule.priority, "winner": decided.get(rule.target) is rule,
                "location": str(rule.name_span), "matches": _matched_literals(rule.condition, norm),
            })
        return sorted(found, key=lambda m: not m["winner"])


def _output_names(plan: Plan) -> list[str]:
    return [f"{t}{suffix}" for t in plan.targets for suffix in ("", "_rule", "_source")]


def _matched_literals(condition: ast.Condition, record: reference.Record) -> list[dict]:
    """Literals of the positive (not negated) text predicates that occur, with offsets."""
    matches = []

    def visit(node, negated):
        if isinstance(node, ast.Not):
            visit(node.operand, not negated)
        elif isinstance(node, (ast.And, ast.Or)):
            for operand in node.operands:
                visit(operand, negated)
        elif not negated and isinstance(node, (ast.Has, ast.Near, ast.Measure, ast.Matches)):
            text = record.text(node.field)
            if isinstance(node, ast.Matches):
                m = reference.compile_regex(node.pattern).search(text)
                spans = [(m.group(0), m.start(), m.end())] if m else []
            else:
                literals = {ast.Has: lambda n: n.literals, ast.Near: lambda n: (n.first, n.second),
                            ast.Measure: lambda n: (n.literal,) if n.literal else ()}[type(node)](node)
                spans = []
                for literal in literals:
                    literal = normalize_text(literal)
                    spans += [(literal, s, s + len(literal)) for s in reference.occurrences(text, literal)]
            for literal, start, end in spans:
                entry = {"field": node.field.name, "literal": literal, "start": start, "end": end}
                if entry not in matches:
                    matches.append(entry)

    visit(condition, False)
    return matches


def _data_buffer(array: pa.Array) -> np.ndarray:
    buffer = array.buffers()[2]
    return np.frombuffer(buffer if buffer is not None else b"", dtype=np.uint8)


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _as_float(column: pa.Array) -> np.ndarray:
    if pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN


def _codes(column: pa.Array, literals, missing=None, null=-1) -> np.ndarray:
    """Index of each value in ``literals``; ``missing`` (default len(literals)) when absent,
    ``null`` for nulls."""
    missing = len(literals) if missing is None else missing
    if pa.types.is_null(column.type):
        return np.full(len(column), null, dtype=np.int64)
    codes = pc.index_in(column, value_set=pa.array(list(literals), column.type))
    codes = pc.fill_null(codes, missing).to_numpy(zero_copy_only=False).astype(np.int64)
    if column.null_count:
        codes[np.asarray(column.is_null())] = null
    return codes


def _check_record(record) -> None:
    problem = record_problem(record)
    if problem:
        raise InputError(f"record: {problem}")
