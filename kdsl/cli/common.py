"""What every command shares: the group, input errors, loading rules and Parquet files."""

from __future__ import annotations

import types
from pathlib import Path

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
    """A Parquet file — or a directory of them, as ``--ray`` and Spark write — opened for
    reading with ``ParquetFile``'s interface (schema_arrow, metadata.num_rows, read,
    iter_batches); InputProblem when it is missing or not Parquet."""
    import pyarrow.parquet as pq

    try:
        return ParquetDirectory(path) if Path(path).is_dir() else pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputProblem(f"{path}: no such file") from None
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise InputProblem(f"{path}: not a readable Parquet file ({error})") from None


class ParquetDirectory:
    """The Parquet files of a directory as one source, in the surface of ``pq.ParquetFile``
    that the commands use."""

    def __init__(self, path):
        import pyarrow.dataset as ds

        self.dataset = ds.dataset(path, format="parquet")
        if not self.dataset.files:
            raise ValueError("a directory without Parquet files")
        self.schema_arrow = self.dataset.schema
        self.metadata = types.SimpleNamespace(num_rows=self.dataset.count_rows())

    def read(self, columns=None):
        return self.dataset.to_table(columns=columns)

    def iter_batches(self, batch_size=65536, columns=None):
        return self.dataset.to_batches(columns=columns, batch_size=batch_size)
