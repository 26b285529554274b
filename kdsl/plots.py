"""Charts for reports — confusion matrices and grouped bars — with readable Chinese labels
(matplotlib, no display needed).

Matplotlib's default font has no CJK glyphs, so labels such as ``物流页面-物流跟踪页面`` would be
drawn as empty boxes. ``cjk_font()`` finds an installed CJK font (Noto Sans CJK, Source Han Sans,
WenQuanYi, ...); on Debian/Ubuntu ``apt-get install fonts-wqy-microhei`` (1.6 MB) provides one.

    >>> from kdsl.metrics import confusion
    >>> write_confusion_png(confusion(["退款", "物流"], ["退款", "退款"]), "final, intent",
    ...                     "confusion.png")        # doctest: +SKIP
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np

from kdsl.io import atomic_path
from kdsl.metrics import Confusion

# Families known to cover simplified Chinese, best first; matched against the names matplotlib
# reads from the font files.
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
    "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Sarasa Gothic SC", "Droid Sans Fallback",
    "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC", "Hiragino Sans GB", "AR PL UMing CN",
    "AR PL UKai CN",
)
# Substrings of font file names of the same families, to find a font installed after matplotlib
# built its font cache (the cache is only rebuilt when matplotlib's version changes).
CJK_FILES = ("notosanscjk", "notoserifcjk", "sourcehansans", "wqy", "droidsansfallback", "msyh",
             "simhei", "pingfang", "ukai", "uming")
NO_PREDICTION = "(none)"


@functools.cache
def cjk_font() -> str | None:
    """The family name of an installed CJK font, or None."""
    from matplotlib import font_manager

    def known() -> str | None:
        installed = {f.name for f in font_manager.fontManager.ttflist}
        return next((family for family in CJK_FAMILIES if family in installed), None)

    family = known()
    if family is None:
        for path in font_manager.findSystemFonts():
            if any(part in Path(path).name.lower() for part in CJK_FILES):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        font_manager.fontManager.addfont(path)
                    except (OSError, RuntimeError, ValueError):  # an unreadable font file: try the next
                        continue
        family = known()
    return family


def write_confusion_png(matrix: Confusion, title: str, path) -> None:
    """Draw ``matrix`` (rows: true label, columns: prediction; cells: counts, shaded by the share
    of the row) and write it to ``path`` atomically. A "(none)" column appears when some rows got
    no prediction."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no global state, no display

    counts = matrix.matrix if matrix.unpredicted else matrix.matrix[:, :-1]
    columns = list(map(str, matrix.labels)) + ([NO_PREDICTION] if matrix.unpredicted else [])
    rows = list(map(str, matrix.labels))
    font = cjk_font()
    size = 3.0 + 0.45 * max(len(columns), 4) + 0.12 * max(map(len, columns + [""]))
    figure = Figure(figsize=(size, size * 0.9), layout="constrained")
    axes = figure.add_subplot()
    # Fonts are set per text object, not in rcParams, so that nothing global changes.
    text = {"fontfamily": [font, "DejaVu Sans"]} if font else {}
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals != 0)
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    axes.set_xticks(range(len(columns)), columns, rotation=60, ha="right", rotation_mode="anchor", **text)
    axes.set_yticks(range(len(rows)), rows, **text)
    axes.set_xlabel("predicted", **text)
    axes.set_ylabel("true", **text)
    axes.set_title(title, **text)
    if len(columns) <= 40:  # beyond that the numbers no longer fit in their cells
        for (i, j), count in np.ndenumerate(counts):
            if count:
                axes.text(j, i, str(count), ha="center", va="center", fontsize=8,
                          color="white" if shares[i, j] > 0.5 else "black")
    with warnings.catch_warnings(), atomic_path(path) as tmp:
        # Without a CJK font every Chinese glyph warns; the caller has said so once already.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.savefig(tmp, format="png", dpi=120)


def write_bars_png(groups: dict[str, dict[str, float | None]], series: tuple[str, ...], title: str, path) -> None:
    """A grouped bar chart: one group per key of ``groups`` (e.g. an ablation setting), one bar
    per name in ``series`` (e.g. DIS, ISS, OSS) labelled with its value; written atomically.

        >>> write_bars_png({"model": {"DIS": 0.4, "OSS": 0.5}, "+ rules": {"DIS": 0.5, "OSS": 0.6}},
        ...                ("DIS", "OSS"), "ablation", "ablation.png")    # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    font = cjk_font()
    text = {"fontfamily": [font, "DejaVu Sans"]} if font else {}
    figure = Figure(figsize=(2.0 + 1.6 * len(groups), 4.2), layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / max(len(series), 1)
    for k, name in enumerate(series):
        values = [groups[g].get(name) for g in groups]
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        bars = axes.bar(xs, [v or 0.0 for v in values], width, label=name)
        axes.bar_label(bars, labels=["-" if v is None else f"{v:.3f}" for v in values], fontsize=7, padding=2)
    axes.set_xticks(range(len(groups)), list(groups), **text)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("weighted F1")
    axes.set_title(title, **text)
    axes.legend(loc="upper left", ncols=len(series), fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)


def write_overlap_png(names: list[str], overlap, conflict, title: str, path) -> None:
    """A rule x rule heatmap: cell (i, j) is the number of rows on which both rules hold, red
    where their labels differ (a conflict), blue where they agree; written atomically.

        >>> write_overlap_png(["a", "b"], [[3, 1], [1, 2]], [[0, 1], [1, 0]], "overlaps",
        ...                   "overlap.png")    # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    overlap, conflict = np.asarray(overlap, dtype=float), np.asarray(conflict, dtype=float)
    if not names:  # nothing shared: say so rather than draw an empty axis
        overlap, conflict = np.zeros((1, 1)), np.zeros((1, 1))
        title = f"{title}: no two rules hold on the same row"
    font = cjk_font()
    text = {"fontfamily": [font, "DejaVu Sans"]} if font else {}
    size = 3.0 + 0.35 * max(len(names), 4) + 0.08 * max(map(len, names + [""]))
    figure = Figure(figsize=(size, size * 0.9), layout="constrained")
    axes = figure.add_subplot()
    off_diagonal = overlap.copy()
    np.fill_diagonal(off_diagonal, 0)
    scale = max(off_diagonal.max(), 1.0)
    # Agreeing overlaps count positive, conflicts negative: one diverging colour map shows both.
    signed = np.where(conflict > 0, -off_diagonal, off_diagonal) / scale
    image = axes.imshow(signed, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    axes.set_xticks(range(len(names)), names, rotation=60, ha="right", rotation_mode="anchor", fontsize=7, **text)
    axes.set_yticks(range(len(names)), names, fontsize=7, **text)
    axes.set_title(title, **text)
    if len(names) <= 40:
        for (i, j), count in np.ndenumerate(off_diagonal):
            if count:
                axes.text(j, i, f"{count:g}", ha="center", va="center", fontsize=6,
                          color="white" if abs(signed[i, j]) > 0.5 else "black")
    figure.colorbar(image, ax=axes, label="shared rows / most shared (red: labels differ)", shrink=0.6)
    with warnings.catch_warnings(), atomic_path(path) as tmp:
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.savefig(tmp, format="png", dpi=120)
