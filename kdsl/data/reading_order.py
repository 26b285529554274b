"""Put the text boxes an OCR engine found into reading order: lines top to bottom, and the
boxes of one line left to right.

OCR engines return boxes in detection order, which on a phone screenshot splits a row such as
``退款金额 ... ¥398.00`` into unrelated pieces or lists a right-hand label before the left-hand
one. Rules match substrings of the text, so the text must read the way a person reads the screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import fmean

# Two boxes share a line when their vertical extents overlap by at least this share of the
# shorter one: a small badge beside a headline still joins it, the next line of a paragraph does
# not (lines on a screenshot are separated by a few pixels of leading, so their overlap is ~0).
SAME_LINE_OVERLAP = 0.5


@dataclass(frozen=True)
class TextBox:
    """One recognised piece of text and its axis-aligned bounds, in pixels (y grows downwards)."""

    text: str
    left: float
    top: float
    right: float
    bottom: float

    @classmethod
    def from_corners(cls, text: str, corners: Sequence[Sequence[float]]) -> TextBox:
        """From a quadrilateral's corner points (as OCR engines return them; possibly tilted).

        >>> TextBox.from_corners("包裹详情", [[142, 28], [210, 28], [210, 49], [142, 49]])
        TextBox(text='包裹详情', left=142.0, top=28.0, right=210.0, bottom=49.0)
        """
        xs = [float(point[0]) for point in corners]
        ys = [float(point[1]) for point in corners]
        return cls(text, min(xs), min(ys), max(xs), max(ys))

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


def reading_order(boxes: Iterable[TextBox]) -> list[str]:
    """The text of ``boxes`` as lines in reading order; the boxes of a line are joined by a space
    (so that two separate labels never fuse into one word). Boxes with blank text are dropped.

    >>> reading_order([
    ...     TextBox("¥398.00", 340, 236, 392, 252),
    ...     TextBox("退款信息", 24, 312, 88, 332),
    ...     TextBox("原路退回", 24, 234, 80, 252),
    ... ])
    ['原路退回 ¥398.00', '退款信息']
    """
    lines: list[list[TextBox]] = []
    for box in sorted((b for b in boxes if b.text.strip()), key=lambda b: (b.middle, b.left)):
        # Sorted by their middles, the boxes of one line arrive together, so a box can only
        # belong to the line begun last.
        if lines and _on_line(box, lines[-1]):
            lines[-1].append(box)
        else:
            lines.append([box])
    return [" ".join(b.text.strip() for b in sorted(line, key=lambda b: b.left)) for line in lines]


def _on_line(box: TextBox, line: list[TextBox]) -> bool:
    # The line's extent is the mean of its members', not their union, so that one tall box
    # (a big price) cannot make the line swallow the lines above and below it.
    top, bottom = fmean(b.top for b in line), fmean(b.bottom for b in line)
    overlap = min(box.bottom, bottom) - max(box.top, top)
    shorter = min(box.bottom - box.top, bottom - top)
    return overlap >= SAME_LINE_OVERLAP * shorter if shorter > 0 else overlap >= 0
