"""``kdsl eval``: score a scored table against its labels, as the challenge would (DIS, ISS, OSS)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kdsl.cli.common import main
from kdsl.errors import InputError, context
from kdsl.io import open_parquet
from kdsl.record import OVERALL, SCORE_OF_TASK
from kdsl.text_table import text_table


@main.command(name="eval")
@click.argument("input_path", metavar="SCORED.parquet", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--plot", "plot_dir", default=None, type=click.Path(file_okay=False),
              help="Write confusion-matrix PNGs (one per task; final prediction and model) here.")
@click.option("--task", default=None, help="Judge every row as of this task (for a table without a "
              "'task' column scored with rules for several targets).")
def evaluate_command(input_path, as_json, plot_dir, task):
    """Weighted F1 of the model alone, coverage and precision of the rules alone, and weighted F1
    of the final prediction: DIS (intent rows), ISS (scene rows), OSS (all rows pooled); then a
    per-label table. Rows without a label are skipped."""
    from kdsl.evaluation import confusion_matrices, evaluate, needed_columns

    source = open_parquet(input_path)
    table = source.read(columns=needed_columns(source.schema_arrow.names))
    with context(input_path):
        report = evaluate(table, task)
        matrices = confusion_matrices(table, task) if plot_dir else {}
    if plot_dir:
        _plot(matrices, Path(plot_dir))
    click.echo(json.dumps(report, ensure_ascii=False, indent=2) if as_json else render(report))


def _plot(matrices, folder: Path) -> None:
    try:
        from kdsl.plots import cjk_font, write_confusion_png
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install matplotlib") from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--plot {folder}: cannot make the folder ({error.strerror})") from None
    # Warned only once the folder exists: an error must be the first line the user reads.
    if cjk_font() is None:
        click.echo("warning: no CJK font found (install fonts-noto-cjk or fonts-wqy-microhei); "
                   "Chinese labels will show as boxes", err=True)
    for prediction, by_task in matrices.items():
        for task, matrix in by_task.items():
            path = folder / f"confusion-{prediction}-{task}.png"
            write_confusion_png(matrix, f"{prediction} prediction, {task} ({matrix.matrix.sum()} rows)", path)
            click.echo(f"wrote {path}", err=True)


def render(report: dict) -> str:
    """The report as text: a summary line, the side-by-side scores, then per-label tables."""
    rows = report["rows"]
    tasks = ", ".join(f"{n} {t}" for t, n in rows["by_task"].items() if t != "None")
    lines = [(f"{rows['labelled']} labelled rows{f' ({tasks})' if tasks else ''}; "
              f"{rows['unlabelled']} without a label skipped")]
    names = _score_names(report)
    table = [[""] + names]
    for name, scores in report["scores"].items():
        if name == "final" and "rules" in report:
            rules = report["rules"]
            table.append(["rules coverage"] + [_share(rules[n], "coverage") for n in names])
            table.append(["rules precision"] + [_share(rules[n], "precision") for n in names])
        table.append([name] + [_number(scores.get(n)) for n in names])
    lines += ["", text_table(table)]
    unanswered = {k: v for k, v in report["unpredicted"].items() if v}
    if unanswered:
        lines.append("rows without a prediction (counted as wrong): "
                     + ", ".join(f"{k} {v}" for k, v in unanswered.items()))
    per_label = report["per_label"]
    for task, scores in per_label["tasks"].items():
        lines += ["", f"{per_label['prediction']} prediction, {task}:"]
        header = ["label", "precision", "recall", "f1", "support", "predicted"]
        lines.append(text_table([header] + [[str(s["label"])] + [_number(s[k]) for k in header[1:]] for s in scores]))
    return "\n".join(lines)


def _score_names(report: dict) -> list[str]:
    """DIS, ISS (those with a value somewhere), other tasks' scores, OSS last."""
    present = []
    for scores in report["scores"].values():
        present += [n for n, v in scores.items() if v is not None and n not in present]
    present.sort(key=lambda n: (n == OVERALL, n not in SCORE_OF_TASK.values(), n))
    return present


def _number(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _share(cell, key) -> str:
    if cell is None or cell[key] is None:
        return "-"
    return f"{cell[key]:.1%}" + (f" ({cell['decided']})" if key == "coverage" else "")
