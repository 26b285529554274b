"""Which rows each predicate holds for, computed once with the compiled engine, as bitsets.

Every distinct predicate becomes one rule; ``Engine.matches`` evaluates them all in one pass;
each column of its result becomes a Python int whose bit i is row i. A conjunction's rows are
then the AND of its predicates' ints, and counting them is ``int.bit_count()``: the search never
goes back to the text, and what it counts is exactly what the engine will do with the rule.

    >>> from kdsl.dsl import ast
    >>> has = ast.Has(ast.Field("user"), "one", ("漏水",))
    >>> rows = [{"user": "洗衣机漏水"}, {"user": "排水"}, {"user": "又漏水了"}]
    >>> [bin(b) for b in predicate_bits([has, ast.Not(has)], rows, "intent")]
    ['0b101', '0b10']
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from kdsl.dsl import ast
from kdsl.dsl.checker import check
from kdsl.engine import Engine
from kdsl.record import TEXT_FIELDS


def predicate_bits(predicates: list[ast.Condition], rows: list[dict], task: str) -> list[int]:
    """One bitset per predicate over ``rows`` (dicts with text fields, and ``model_label`` /
    ``model_score`` when guards read them; all taken to be of ``task``). Predicates may repeat;
    each is evaluated once."""
    distinct = list(dict.fromkeys(predicates))
    if not distinct:
        return []
    rules = tuple(ast.Rule(f"p{i}", task, "_", _inline(predicate)) for i, predicate in enumerate(distinct))
    engine = Engine(check([ast.Program("<mining>", "", rules)]))
    columns = {"task": pa.array([task] * len(rows), pa.string()),
               **{f: pa.array([r.get(f) for r in rows], pa.string()) for f in TEXT_FIELDS}}
    # The model's prediction, for guards (model.score < 0.7, model.label in (...)).
    if any("model_label" in r for r in rows):
        columns["model_label"] = pa.array([r.get("model_label") for r in rows], pa.string())
        columns["model_score"] = pa.array([r.get("model_score") for r in rows], pa.float64())
    table = pa.table(columns)
    fired = engine.matches(table)
    rank = {rule.name: k for k, rule in enumerate(engine.plan.rules)}
    bits = {predicate: to_bits(fired[:, rank[f"p{i}"]]) for i, predicate in enumerate(distinct)}
    return [bits[p] for p in predicates]


def _inline(predicate: ast.Condition) -> ast.Condition:
    """A named literal set (``user has 问价``, from a lexicon) with its literals in place: the
    program compiled here declares no ``let``."""
    if isinstance(predicate, ast.Has) and predicate.ref is not None:
        return ast.Has(predicate.field, predicate.mode, predicate.literals)
    if isinstance(predicate, ast.Not):
        return ast.Not(_inline(predicate.operand))
    return predicate


def to_bits(mask: np.ndarray) -> int:
    """A boolean vector as an int, element i at bit i."""
    return int.from_bytes(np.packbits(np.asarray(mask, bool), bitorder="little").tobytes(), "little")


def rows_where(bits: int) -> list[int]:
    """Indices of the set bits, ascending."""
    mask = np.unpackbits(np.frombuffer(bits.to_bytes((bits.bit_length() + 7) // 8, "little"), np.uint8),
                         bitorder="little")
    return np.flatnonzero(mask).tolist()
