"""``kdsl pipeline CONFIG.toml``: the whole job from one config file (see ``kdsl.pipeline``), and
``kdsl demo``: the same job on the bundled sample.

    kdsl pipeline run.toml
    kdsl demo -o kdsl-demo
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from kdsl.cli.common import main
from kdsl.errors import InputError

# The bundled sample is tiny (two or three training rows per label), so the demo asks less of a
# mined rule than the default min_reward = 0.8 would; see report.md for how its rules fared.
DEMO_CONFIG = """\
# kdsl demo: the whole KDSL pipeline on the bundled sample (rerun: kdsl pipeline demo.toml)
# Paths are relative to this file; the folder can be moved as a whole.
output = "."
[data]
train_table = "input/train.parquet"
dev_table = "input/dev.parquet"
images = "input/images"
[ocr]
enabled = false    # the sample already carries its screenshots' OCR text
[mining]
tasks = ["intent", "scene"]
min_reward = 0.5
[model]
adapter = "baseline"
epochs = 25
[seesaw]
seeds = [0, 1, 2]
"""


SCORE_NAMES = ("DIS: Dialogue Intent Score (weighted F1 on the intent rows); ISS: Image Scene Score "
               "(the scene rows); OSS: Overall Score (all rows pooled).")
TOO_SMALL = ("The sample is too small to rank these rows: with two or three rows per label, one row more or "
             "less right moves a score by several points; `kdsl pipeline` on real data ranks them.")


def _run_pipeline(config_path) -> dict:
    from kdsl.pipeline import load_config, run

    config = load_config(config_path)
    outcomes = run(config, log=lambda line: click.echo(line, err=True))
    ran = sum(v == "ran" for v in outcomes.values())
    click.echo(f"{ran} step(s) ran, {len(outcomes) - ran} skipped -> {config['output']}/report.md", err=True)
    return config


@main.command()
@click.argument("config_path", metavar="CONFIG.toml", type=click.Path())
def pipeline(config_path):
    """Import, OCR (optional), mine rules, train with and without flips, predict, score, evaluate,
    run the seesaw check and write report.md into the config's output folder. Steps whose inputs
    did not change since the last run are skipped (OUTPUT/.steps.json)."""
    _run_pipeline(config_path)


@main.command()
@click.option("-o", "--output", default="kdsl-demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo's outputs.")
def demo(output):
    """Run the whole KDSL pipeline on the bundled sample (two thirds train, one third dev): mine
    rules, train the baseline with and without flips, score with the rules, evaluate, and print
    the ablation table. OUTPUT/demo.toml reruns it with `kdsl pipeline`."""
    import json
    from importlib import resources

    import pyarrow.parquet as pq

    from kdsl.io import atomic_path, write_table_atomically, write_text_atomically
    from kdsl.report import ablation_table, rule_gains

    samples = Path(str(resources.files("kdsl") / "samples"))
    out = Path(output)
    try:
        (out / "input").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{out}: cannot make the folder ({error.strerror})") from None
    table = pq.read_table(samples / "sample.parquet")
    for name, keep in (("train", lambda i: i % 3 != 0), ("dev", lambda i: i % 3 == 0)):
        write_table_atomically(table.take([i for i in range(table.num_rows) if keep(i)]), out / "input" / f"{name}.parquet")
    # The images are copied beside the tables, so that demo.toml names nothing inside the
    # installed package (a path into a venv breaks when the venv moves or is rebuilt).
    images = out / "input" / "images"
    images.mkdir(exist_ok=True)
    for image in (samples / "images").iterdir():
        copy = images / image.name
        if not copy.exists() or copy.stat().st_size != image.stat().st_size:
            with atomic_path(copy) as tmp:
                shutil.copyfile(image, tmp)
    config_path = out / "demo.toml"
    write_text_atomically(config_path, DEMO_CONFIG)
    config = _run_pipeline(config_path)
    results = json.loads((Path(config["output"]) / "evaluation.json").read_text(encoding="utf-8"))
    click.echo(f"\nKDSL ablation on the bundled sample's dev third (class-weighted F1):\n\n{ablation_table(results)}\n")
    click.echo(SCORE_NAMES)
    click.echo(TOO_SMALL)
    for line in rule_gains(results):
        click.echo(line.replace("**", ""))
    click.echo(f"\nreport: {out / 'report.md'}; rules: {out / 'rules'}; rerun: kdsl pipeline {config_path}")
