"""What every command shares: the group, input errors, loading rules and Parquet files."""

from __future__ import annotations

import click

from kdsl.dsl import KdslError
from kdsl.dsl.loader import load_rules

EXIT_FINDINGS, EXIT_INPUT = 1, 2


class InputProblem(click.ClickException):
    """Bad input: printed as ``error: ...`` and exit status 2."""

    exit_code = EXIT_INPUT

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kdsl")
def main():
    """kdsl: readable, correctable rules for e-commerce intent recognition."""


def load_engine(paths):
    import kdsl.engine

    try:
        return kdsl.engine.Engine(load_rules(list(paths)))
    except KdslError as error:
        raise InputProblem(str(error)) from None


def read_parquet(path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputProblem(f"{path}: no such file") from None
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise InputProblem(f"{path}: not a readable Parquet file ({error})") from None
