"""User-facing errors: ``path:line:col: message``, the source line, and a caret under the span.

    rules/intent.kdsl:12:17: unknown field 'usr'; did you mean 'user'?
       12 |     when usr has "漏水"
          |          ^^^
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from kdsl.dsl.ast import Span
from kdsl.errors import LimitError


@dataclass(frozen=True)
class Diagnostic:
    message: str
    span: Span
    source: str = ""  # the whole file, to quote the offending line

    def __str__(self) -> str:
        return f"{self.span}: {self.message}" + _excerpt(self.source, self.span)


def _excerpt(source: str, span: Span) -> str:
    lines = source.split("\n")  # as the parser counts lines: U+2028 and the like are not breaks
    if not (1 <= span.line <= len(lines)):
        return ""
    text = lines[span.line - 1].removesuffix("\r")
    end = span.end_column if span.end_line == span.line and span.end_column > span.column else span.column + 1
    end = min(max(end, span.column + 1), len(text) + 2)
    # Wide (CJK) characters take two terminal cells; pad the caret line to match.
    pad = "".join("\t" if ch == "\t" else " " * cell_width(ch) for ch in text[: span.column - 1])
    carets = "^" * max(1, sum(cell_width(ch) for ch in text[span.column - 1 : end - 1]))
    gutter = f"{span.line:>5} | "
    return f"\n{gutter}{text}\n{' ' * (len(gutter) - 2)}| {pad}{carets}"


def cell_width(ch: str) -> int:
    """Terminal cells a character takes: 2 for wide (CJK) characters."""
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


class KdslError(Exception):
    """One or more located problems in kdsl source. ``str()`` renders them all."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.span.path, d.span.line, d.span.column))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class RuleLimitError(KdslError, LimitError):
    """A rule file asks for more than kdsl allows (``kdsl.limits``): located like any problem
    in a rule file, and a ``kdsl.errors.LimitError``."""


def did_you_mean(name: str, choices) -> str:
    """``"; did you mean 'user'?"`` when a choice is close to ``name``, else ``""``."""
    from rapidfuzz import fuzz, process, utils

    choices = [c for c in choices if c != name]
    best = process.extractOne(name, choices, scorer=fuzz.WRatio, processor=utils.default_process, score_cutoff=60)
    return f"; did you mean '{best[0]}'?" if best else ""
