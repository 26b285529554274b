"""Plain-text tables for a terminal: every column padded to its widest cell, counted in terminal
cells (a CJK character takes two, ``kdsl.dsl.errors.cell_width``), so that Chinese labels line
up; columns two spaces apart, a dashed rule under the header, no trailing spaces.

    >>> print(text_table([["label", "rows"], ["漏水", "12"], ["排水方式", "3"]]))
    label     rows
    --------  ----
    漏水        12
    排水方式     3
"""

from __future__ import annotations

from collections.abc import Iterable

from kdsl.dsl.errors import cell_width


def width(text: str) -> int:
    """Terminal cells ``text`` takes."""
    return sum(cell_width(ch) for ch in text)


def text_table(rows: list[list[str]], right: Iterable[int] | None = None) -> str:
    """``rows`` (the header first, every cell a string) as aligned text. ``right``: the columns
    aligned right (default: every column but the first, as numbers are)."""
    widths = [max(width(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = set(range(1, len(widths)) if right is None else right)

    def line(row):
        cells = [" " * (w - width(cell)) + cell if i in right else cell + " " * (w - width(cell))
                 for i, (cell, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    lines = [line(row) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
