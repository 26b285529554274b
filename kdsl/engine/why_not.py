"""Why a rule did not fire on a record: the first term that failed, what the text held instead,
and the smallest edit that makes the rule fire.

A rule's condition is read as a conjunction of terms (the operands of its top-level ``and``, or
the whole condition). Terms are tried in source order with the reference interpreter; the first
false one is *the* reason. For each false term an edit is proposed:

- ``FIELD has "x"`` / ``has any(...)``: the substring of the text nearest to a literal (rapidfuzz's ``fuzz.ratio`` over
  windows about the literal's length, similarity 0-100) and the edit "also accept that substring";
- ``has all(...)``: the same for each literal that is missing;
- ``not FIELD has ...``: the excluded literal that occurs (with its offset), and the edit "drop it
  from the exclusion" (or drop the term when it was the only one);
- ``fuzzy`` / ``count`` / ``len`` / numeric comparisons: the value the record has, and the edit
  "move the bound to it"; ``==``/``in`` on strings: accept the record's value;
- ``near``: the closest distance between the two literals, and the edit "allow that distance";
- anything else (``matches``, a nested ``not``): the edit "drop the term".

Each false term gets its own edit; the edits together are applied to the rule and the result is
checked with the reference interpreter (``fires_after_edit``), so a proposed edit is never
claimed to work when it does not.

    >>> from kdsl.dsl import check, parse
    >>> rules = check([parse('rule r: intent = "漏" when user has "漏水"')])
    >>> miss = why_not(rules, {"user": "底下漏了水", "label": "漏"})[0]
    >>> miss["term"], miss["nearest"], miss["edit"]
    ('user has "漏水"', '漏了水', "also accept '漏了水'")
"""

from __future__ import annotations

import dataclasses
import math

from rapidfuzz import fuzz

from kdsl.dsl import ast
from kdsl.dsl.checker import RuleSet
from kdsl.dsl.formatter import format_condition
from kdsl.dsl.text import normalize_text
from kdsl.engine import reference
from kdsl.errors import InputError


def why_not(rules: RuleSet, record: dict, rule: str | None = None) -> list[dict]:
    """For each rule of ``record["label"]`` (within the record's task, when it has one) that does
    not hold, or for the rule named ``rule`` if it does not hold: a dict with ``rule``,
    ``location``, ``term`` (the first false term), ``field``, ``literal``, ``nearest``,
    ``similarity``, ``start``/``end`` (offsets of ``nearest`` in the normalised text), ``found``
    (what the record held, in words), ``edit`` (in words; ``edits``: one per false term),
    ``condition_after_edit`` (every false term repaired) and ``fires_after_edit``. Rules that hold are left out."""
    if rule is not None:
        chosen = [r for r in rules.rules if r.name == rule]
        if not chosen:
            raise InputError(f"no rule named {rule!r}")
    else:
        label = record.get("label")
        if label is None:
            raise InputError("the record has no label; name the rule to explain")
        task = record.get("task")
        chosen = [r for r in rules.rules if r.label == label and (task is None or r.target == task)]
    norm = reference.Record(record)
    return [_explain_miss(r, norm) for r in chosen if not reference.holds(r.condition, norm)]


def _explain_miss(rule: ast.Rule, record: reference.Record) -> dict:
    terms = list(rule.condition.operands) if isinstance(rule.condition, ast.And) else [rule.condition]
    failing = [i for i, term in enumerate(terms) if not reference.holds(term, record)]
    repairs = [_repair(terms[i], record) for i in failing]
    first = dict(repairs[0])
    edited = list(terms)
    for i, repair in zip(failing, repairs):
        edited[i] = repair["replacement"]
    kept = [t for t in edited if t is not None]
    condition = None if not kept else kept[0] if len(kept) == 1 else ast.And(tuple(kept))
    fires = condition is None or reference.holds(condition, record)
    first.pop("replacement")
    return {
        "rule": rule.name, "target": rule.target, "label": rule.label, "location": str(rule.name_span),
        "term": format_condition(terms[failing[0]]), "term_location": str(terms[failing[0]].span),
        "failed_terms": len(failing), **first, "edits": [r["edit"] for r in repairs],
        "condition_after_edit": format_condition(condition) if condition is not None else "(always)",
        "fires_after_edit": bool(fires),
    }


def _repair(term: ast.Condition, record: reference.Record) -> dict:
    """What the record holds instead of ``term`` and the term that would hold (``replacement``;
    None: drop the term)."""
    result = {"field": None, "literal": None, "nearest": None, "similarity": None, "start": None,
              "end": None, "found": "", "edit": "", "replacement": None}
    negated = isinstance(term, ast.Not)
    inner = term.operand if negated else term
    if hasattr(inner, "field"):
        result["field"] = inner.field.name
    if isinstance(inner, ast.Has) and negated:
        text = record.text(inner.field)
        present = [lit for lit in inner.literals if normalize_text(lit) in text]
        literal = present[0]
        start = text.find(normalize_text(literal))
        result.update(literal=literal, nearest=literal, similarity=100.0, start=start,
                      end=start + len(normalize_text(literal)),
                      found=f"{inner.field.name} holds the excluded {literal!r} at {start}")
        rest = tuple(lit for lit in inner.literals if lit not in present)
        if rest:
            replacement = ast.Not(dataclasses.replace(inner, literals=rest, ref=None,
                                                      mode="any" if len(rest) > 1 else "one"))
            result.update(edit=f"stop excluding {', '.join(map(repr, present))}", replacement=replacement)
        else:
            result.update(edit=f"drop the term `{format_condition(term)}`")
        return result
    if isinstance(inner, ast.Has) and not negated:
        text = record.text(inner.field)
        missing = [lit for lit in inner.literals if normalize_text(lit) not in text]
        best = max((_nearest(lit, text) + (lit,) for lit in missing), key=lambda t: t[0])
        score, start, end, literal = best
        nearest = text[start:end]
        result.update(literal=literal, nearest=nearest or None, similarity=round(score, 1),
                      start=start if nearest else None, end=end if nearest else None)
        if not nearest:
            result.update(found=f"{inner.field.name} is empty", edit=f"drop the term `{format_condition(term)}`")
            return result
        result["found"] = f"{inner.field.name} holds {nearest!r} (similarity {score:.0f} to {literal!r})"
        if inner.mode == "all":
            # Each missing literal is swapped for its nearest substring.
            swapped = tuple(text[slice(*_nearest(lit, text)[1:])] if lit in missing else lit
                            for lit in inner.literals)
            replacement = dataclasses.replace(inner, literals=tuple(dict.fromkeys(swapped)), ref=None)
            result.update(edit="use " + ", ".join(
                f"{text[slice(*_nearest(lit, text)[1:])]!r} for {lit!r}" for lit in missing), replacement=replacement)
        else:
            replacement = dataclasses.replace(inner, literals=inner.literals + (nearest,), mode="any", ref=None)
            result.update(edit=f"also accept {nearest!r}", replacement=replacement)
        return result
    if negated:
        result.update(found=f"`{format_condition(inner)}` holds", edit=f"drop the term `{format_condition(term)}`")
        return result
    if isinstance(inner, ast.Measure):
        value = reference.measure(inner, record.text(inner.field))
        shown = f"{inner.function}({inner.field.name}{', ' + repr(inner.literal) if inner.literal else ''})"
        result.update(literal=inner.literal, found=f"{shown} is {round(value, 1):g}")
        if inner.function == "fuzzy":
            start, end = _nearest(inner.literal, record.text(inner.field))[1:]
            result.update(nearest=record.text(inner.field)[start:end], similarity=round(value, 1), start=start, end=end)
        replacement = dataclasses.replace(inner, value=_bound(inner.op, value))
        result.update(edit=f"change the bound to {_bound(inner.op, value):g}", replacement=replacement)
        return result
    if isinstance(inner, ast.Near):
        text = record.text(inner.field)
        firsts = reference.occurrences(text, normalize_text(inner.first))
        seconds = reference.occurrences(text, normalize_text(inner.second))
        if firsts and seconds:
            distance = min(abs(i - j) for i in firsts for j in seconds)
            result.update(found=f"{inner.first!r} and {inner.second!r} are {distance} apart",
                          edit=f"allow a distance of {distance}",
                          replacement=dataclasses.replace(inner, distance=distance))
            return result
        literal = inner.first if not firsts else inner.second
        score, start, end = _nearest(literal, text)
        result.update(literal=literal, nearest=text[start:end] or None, similarity=round(score, 1),
                      start=start, end=end, found=f"{inner.field.name} lacks {literal!r}",
                      edit=f"drop the term `{format_condition(term)}`")
        return result
    if isinstance(inner, (ast.Compare, ast.In)):
        value = record.value(inner.field)
        result["found"] = f"{inner.field.name} is {value!r}"
        if value is None or (isinstance(value, float) and math.isnan(value)):
            result["edit"] = f"drop the term `{format_condition(term)}` (the value is null)"
        elif isinstance(inner, ast.In):
            result.update(edit=f"also accept {value!r}",
                          replacement=dataclasses.replace(inner, values=inner.values + (value,)))
        elif inner.op in ("==", "!=") or isinstance(value, str):
            result.update(edit=f"compare with {value!r}", replacement=dataclasses.replace(inner, op="==", value=value))
        else:
            result.update(edit=f"change the bound to {_bound(inner.op, value):g}",
                          replacement=dataclasses.replace(inner, value=_bound(inner.op, value)))
        return result
    if isinstance(inner, ast.Or):
        # The alternative that comes closest decides what is shown; its repair stands for the term.
        options = [_repair(o, record) for o in inner.operands]
        best = max(options, key=lambda o: (o["replacement"] is not None, o["similarity"] or 0))
        if best["replacement"] is not None:
            index = options.index(best)
            operands = list(inner.operands)
            operands[index] = best["replacement"]
            best["replacement"] = ast.Or(tuple(operands))
        return best
    if isinstance(inner, ast.And):
        failing = [o for o in inner.operands if not reference.holds(o, record)]
        first = _repair(failing[0], record)
        repaired = [_repair(o, record)["replacement"] if o in failing else o for o in inner.operands]
        kept = tuple(o for o in repaired if o is not None)
        first["replacement"] = None if not kept else kept[0] if len(kept) == 1 else ast.And(kept)
        return first
    if isinstance(inner, ast.Matches):
        result.update(found=f"{inner.field.name} has no match for /{inner.pattern}/",
                      edit=f"drop the term `{format_condition(term)}`")
    return result


def _nearest(literal: str, text: str) -> tuple[float, int, int]:
    """(similarity 0-100, start, end) of the substring of ``text`` nearest to ``literal``:
    of the windows one character shorter to one longer than the literal (but never a lone
    character for a longer literal: accepting 天 for 夏天 is no useful edit), the one with the
    highest ``fuzz.ratio``; ties go to the longer, then the earlier window. (rapidfuzz's
    ``partial_ratio_alignment`` prefers exactly such lone characters at the text's edges.)"""
    literal = normalize_text(literal)
    if not text or not literal:
        return 0.0, 0, 0
    best = (-1.0, 0, 0, 0)
    for size in range(max(min(2, len(literal)), len(literal) - 1), len(literal) + 2):
        for start in range(0, max(1, len(text) - size + 1)):
            window = text[start : start + size]
            score = fuzz.ratio(literal, window)
            if (score, len(window), -start) > (best[0], best[3], -best[1]):
                best = (score, start, start + len(window), len(window))
    return best[0], best[1], best[2]


def _bound(op: str, value: float) -> float:
    """The bound that lets ``value OP bound`` hold, as close to the old one as the value allows
    (a whole number is written as one)."""
    bound = _raw_bound(op, value)
    return int(bound) if float(bound).is_integer() else bound


def _raw_bound(op: str, value: float) -> float:
    if op == ">=":
        return math.floor(value * 10) / 10  # one decimal, as rule writers write bounds
    if op == "<=":
        return math.ceil(value * 10) / 10
    if op == "==":
        return value
    if op == "<":
        return math.floor(value) + 1
    if op == ">":
        return math.ceil(value) - 1
    return value + 1  # "!="
