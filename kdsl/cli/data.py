"""Commands that move data in and out of the record table: ``import tianchi``, ``export tianchi``.

    kdsl import tianchi train.json -o train.parquet --images images/ --skip-bad
    kdsl export tianchi scored.parquet -o submit.csv
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from kdsl.cli.common import main
from kdsl.errors import InputError, context
from kdsl.io import open_parquet

SHOWN = 5  # how many ids or names an error message lists before "and N more"


@main.group("import")
def import_group():
    """Convert outside data into the record table (Parquet)."""


@main.group("export")
def export_group():
    """Write scored tables in outside formats."""


@import_group.command("tianchi")
@click.argument("input_path", metavar="INPUT.json", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output Parquet file.")
@click.option("--images", "image_root", type=click.Path(), default=None, metavar="DIR",
              help="Folder of the image files; every image path is checked against it.")
@click.option("--skip-bad", is_flag=True,
              help="Write samples that cannot be read to OUT.rejects.jsonl (with the reason) and import the rest.")
def import_tianchi(input_path, output, image_root, skip_bad):
    """Import a Taobao multimodal intent challenge file (a JSON list, or JSON lines: .jsonl).

    Writes one record-table row per sample: task, user and agent text, turns, images and the
    turn of each, label (from `output`, when present) and the raw instruction.
    """
    import pyarrow.parquet as pq

    from kdsl.data.importing import import_samples, missing_images, read_samples
    from kdsl.record import record_table
    from kdsl.io import atomic_path

    output = Path(output)
    _check_output(output, input_path)
    if image_root is not None and not Path(image_root).is_dir():
        raise InputError(f"--images {image_root}: no such folder")
    result = import_samples(read_samples(input_path))
    total = len(result.rows) + len(result.rejects)
    if total == 0:
        raise InputError(f"{input_path}: no samples")
    if result.rejects and not skip_bad:
        raise InputError(f"{input_path}: {len(result.rejects)} of {total} sample(s) cannot be imported "
                           f"(--skip-bad imports the rest):\n" + _listing(r.message() for r in result.rejects))
    if not result.rows:
        raise InputError(f"{input_path}: none of the {total} sample(s) can be imported:\n"
                           + _listing(r.message() for r in result.rejects))
    if image_root is not None:
        missing = missing_images(result.rows, image_root)
        if missing:
            images = len({name for row in result.rows for name in row["image_paths"]})
            click.echo(f"warning: {len(missing)} of {images} image file(s) not found under {image_root}: "
                       f"{_preview(missing)}", err=True)
    rejects_path = output.with_suffix(".rejects.jsonl")
    with atomic_path(output) as tmp:
        pq.write_table(record_table(result.rows), tmp)
        if skip_bad:  # written even when empty, so that a stale file from an earlier run cannot mislead
            with atomic_path(rejects_path) as rejects_tmp:
                rejects_tmp.write_text("".join(r.to_json() + "\n" for r in result.rejects), encoding="utf-8")
    tasks = Counter(row["task"] for row in result.rows)
    labelled = sum(row["label"] is not None for row in result.rows)
    click.echo(f"imported {len(result.rows)} rows ({tasks['intent']} intent, {tasks['scene']} scene; "
               f"{labelled} labelled) -> {output}", err=True)
    if skip_bad:
        click.echo(f"skipped {len(result.rejects)} bad sample(s) -> {rejects_path}", err=True)


@export_group.command("tianchi")
@click.argument("input_path", metavar="SCORED.parquet", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output CSV file.")
@click.option("--target-column", "target_specs", multiple=True, metavar="[TASK=]COLUMN",
              help="Read predictions from COLUMN for every row, or for the rows of TASK (repeatable). "
                   "Default: the column named like the row's task, else model_label.")
@click.option("--allow-missing", is_flag=True, help="Write rows without a prediction with an empty predict.")
def export_tianchi(input_path, output, target_specs, allow_missing):
    """Write the challenge's submission file: a UTF-8 CSV with header id,predict."""
    from kdsl.data.submission import TargetColumns, predictions, write_submission
    from kdsl.io import atomic_path

    output = Path(output)
    _check_output(output, input_path)
    source = open_parquet(input_path)
    names = source.schema_arrow.names
    with context(input_path):
        targets = TargetColumns.parse(target_specs)
        columns = [c for c in names if c in ("id", "task")] + targets.needed(names)
        pairs = predictions(source.read(columns=columns), targets)
    missing = [row_id for row_id, label in pairs if label is None]
    if missing and not allow_missing:
        raise InputError(f"{input_path}: {len(missing)} row(s) without a prediction "
                           f"(--allow-missing writes them empty): {_preview(missing)}")
    with atomic_path(output) as tmp:
        write_submission(tmp, pairs)
    note = f"; {len(missing)} without a prediction" if missing else ""
    click.echo(f"exported {len(pairs)} rows{note} -> {output}", err=True)


def _check_output(output: Path, input_path) -> None:
    """Refuse an output that would overwrite the input or that has no folder to go to."""
    if output.resolve() == Path(input_path).resolve():
        raise InputError("the output would overwrite the input; choose another -o")
    if not output.parent.is_dir():
        raise InputError(f"{output}: no folder {output.parent}")


def _preview(names) -> str:
    """The first few names, quoted, and how many more."""
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _listing(messages) -> str:
    """The first few messages, one per line, and how many more."""
    messages = list(messages)
    lines = [f"  {m}" for m in messages[:SHOWN]]
    if len(messages) > SHOWN:
        lines.append(f"  ... and {len(messages) - SHOWN} more")
    return "\n".join(lines)
