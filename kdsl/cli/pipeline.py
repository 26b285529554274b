"""``kdsl pipeline CONFIG.toml``: the whole job from one config file (see ``kdsl.pipeline``).

    kdsl pipeline run.toml
"""

from __future__ import annotations

import click

from kdsl.cli.common import InputProblem, main


@main.command()
@click.argument("config_path", metavar="CONFIG.toml", type=click.Path())
def pipeline(config_path):
    """Import, OCR (optional), mine rules, train with and without flips, predict, score, evaluate,
    and write report.md into the config's output folder. Steps whose inputs did not change since
    the last run are skipped (OUTPUT/.steps.json)."""
    from kdsl.pipeline import PipelineError, load_config, run

    try:
        config = load_config(config_path)
        outcomes = run(config, log=lambda line: click.echo(line, err=True))
    except PipelineError as error:
        raise InputProblem(str(error)) from None
    ran = sum(v == "ran" for v in outcomes.values())
    click.echo(f"{ran} step(s) ran, {len(outcomes) - ran} skipped -> {config['output']}/report.md", err=True)
