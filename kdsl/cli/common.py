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


class _Group(click.Group):
    """SIGTERM handled as Ctrl-C; and (a bridge until the CLI's error edge lands) a
    ``kdsl.errors.KdslError`` from the library is ``error: ...`` and exit 2, like InputProblem."""

    def invoke(self, ctx):
        from kdsl.errors import KdslError as LibraryError
        from kdsl.io import sigterm_as_interrupt

        try:
            with sigterm_as_interrupt():  # outputs are cleaned up on SIGTERM as on Ctrl-C
                return super().invoke(ctx)
        except LibraryError as error:
            raise InputProblem(str(error)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kdsl")
def main():
    """kdsl: readable, correctable rules for e-commerce intent recognition."""


def load_engine(paths):
    import kdsl.engine

    try:
        return kdsl.engine.Engine(load_rules(list(paths)))
    except KdslError as error:
        raise InputProblem(str(error)) from None


def read_parquet(path, columns=None, require=(), require_text=False):
    """``kdsl.data.tables.open_parquet(path)``, its columns checked against the record schema
    (``check_columns``); InputProblem when it cannot be used."""
    from kdsl.data.tables import check_columns, open_parquet

    source = open_parquet(path)
    check_columns(source.schema_arrow, path, columns, require=require, require_text=require_text)
    return source
