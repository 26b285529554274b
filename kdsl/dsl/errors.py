"""User-facing errors: ``path:line:col: message``, the source line, and a caret under the span.

    rules/intent.kdsl:12:17: unknown field 'usr'; did you mean 'user'?
       12 |     when usr has "漏水"
          |          ^^^

A problem with two places (a rule name defined twice) quotes the second place too, under the
first, marked with dashes and a label, as YARA-X and rustc do; a place in another file is
introduced by ``:::`` and its location:

    rules/b.kdsl:3:6: duplicate rule name 'leak'; first defined at rules/a.kdsl:1:6
        3 | rule leak: intent = "y"
          |      ^^^^
         ::: rules/a.kdsl:1:6
        1 | rule leak: intent = "x"
          |      ---- first defined here

The errors themselves are ``kdsl.errors.RuleError`` (re-exported here), which carries the list
of diagnostics.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from kdsl.dsl.ast import Span
from kdsl.errors import RuleError


@dataclass(frozen=True)
class Related:
    """A second place a diagnostic points at (e.g. the first definition of a duplicate name)."""

    label: str
    span: Span
    source: str = ""


@dataclass(frozen=True)
class Diagnostic:
    message: str
    span: Span
    source: str = ""  # the whole file, to quote the offending line
    related: tuple[Related, ...] = ()

    def __str__(self) -> str:
        text = f"{self.span}: {self.message}" + _excerpt(self.source, self.span)
        for other in self.related:
            if other.span.path != self.span.path:
                text += f"\n{' ' * 5}::: {other.span}"
            text += _excerpt(other.source, other.span, mark="-", label=other.label)
        return text


def _excerpt(source: str, span: Span, mark: str = "^", label: str = "") -> str:
    lines = source.split("\n")  # as the parser counts lines: U+2028 and the like are not breaks
    if not (1 <= span.line <= len(lines)):
        return ""
    text = lines[span.line - 1].removesuffix("\r")
    end = span.end_column if span.end_line == span.line and span.end_column > span.column else span.column + 1
    end = min(max(end, span.column + 1), len(text) + 2)
    # Wide (CJK) characters take two terminal cells; pad the caret line to match.
    pad = "".join("\t" if ch == "\t" else " " * cell_width(ch) for ch in text[: span.column - 1])
    carets = mark * max(1, sum(cell_width(ch) for ch in text[span.column - 1 : end - 1]))
    gutter = f"{span.line:>5} | "
    return f"\n{gutter}{text}\n{' ' * (len(gutter) - 2)}| {pad}{carets}" + (f" {label}" if label else "")


def cell_width(ch: str) -> int:
    """Terminal cells a character takes: 2 for wide (CJK) characters."""
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def did_you_mean(name: str, choices) -> str:
    """``"; did you mean 'user'?"`` when a choice is close to ``name``, else ``""``."""
    from rapidfuzz import fuzz, process, utils

    choices = [c for c in choices if c != name]
    best = process.extractOne(name, choices, scorer=fuzz.WRatio, processor=utils.default_process, score_cutoff=60)
    return f"; did you mean '{best[0]}'?" if best else ""

__all__ = ["Diagnostic", "Related", "RuleError", "cell_width", "did_you_mean"]
