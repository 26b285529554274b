"""What every command shares: the group, which is the CLI's one error edge, and loading rules.

Commands let every ``kdsl.errors.KdslError`` rise; the group turns it into ``error: …`` on
stderr and exit status 2 (1 when the OCR engine cannot run: the input itself was fine), so that
no traceback reaches the user for bad input and no command translates errors of its own.
"""

from __future__ import annotations

import click

from kdsl.errors import KdslError

EXIT_FINDINGS, EXIT_INPUT, EXIT_ENGINE = 1, 2, 1


class Failed(click.ClickException):
    """A ``KdslError`` on its way out: printed as ``error: ...``, exit status as ``exit_status``."""

    def __init__(self, error: KdslError):
        super().__init__(str(error))
        self.exit_code = exit_status(error)

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


def exit_status(error: KdslError) -> int:
    """2 for any error kdsl reports, but 1 when the OCR engine cannot run at all."""
    from kdsl.data.ocr import OcrEngineError

    return EXIT_ENGINE if isinstance(error, OcrEngineError) else EXIT_INPUT


class KdslGroup(click.Group):
    """The ``kdsl`` group: runs a command and translates any ``KdslError`` it raises, here once;
    SIGTERM (``timeout``, ``docker stop``, Kubernetes) stops a command as Ctrl-C does."""

    def invoke(self, ctx):
        from kdsl.io import sigterm_as_interrupt

        try:
            with sigterm_as_interrupt():  # outputs are cleaned up on SIGTERM as on Ctrl-C
                return super().invoke(ctx)
        except KdslError as error:
            raise Failed(error) from None


@click.group(cls=KdslGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kdsl")
def main():
    """kdsl: readable, correctable rules for e-commerce intent recognition."""


def load_engine(paths):
    """The rules under ``paths`` compiled; a ``RuleError`` naming every problem otherwise."""
    import kdsl.engine

    return kdsl.engine.load(list(paths))
