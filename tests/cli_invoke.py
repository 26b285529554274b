"""The one way tests run a ``kdsl`` command in-process (``tests`` is on pytest's pythonpath):
``code, output = run("check", rules_path)``."""

from click.testing import CliRunner

from kdsl.cli import main


def run(*args):
    """(exit code, output) of ``kdsl ARGS...``; arguments may be paths or numbers."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output
