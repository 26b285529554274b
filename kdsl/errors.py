"""One root for every error kdsl raises on purpose, as lark has ``LarkError`` and sqlglot
``SqlglotError``.

A caller catches :class:`KdslError` to handle any problem kdsl reports (bad rules, bad data, a
bad model folder, a missing optional dependency, a limit exceeded); anything else that escapes
is a bug. Each area has a subclass, mixed with the builtin it resembles so that existing
``except ValueError`` code keeps working. Messages speak of the library's own terms (arguments,
config keys, columns), never of command-line flags: the CLI translates every ``KdslError`` once,
at its edge, into ``error: …`` and exit status 2.

    >>> try:
    ...     raise InputError("table.parquet: column 'user' is missing")
    ... except KdslError as error:
    ...     print(type(error).__name__, "-", error)
    InputError - table.parquet: column 'user' is missing
    >>> issubclass(InputError, ValueError)
    True
"""

from __future__ import annotations

import contextlib


class KdslError(Exception):
    """The root: every error kdsl raises on purpose."""


class RuleError(KdslError):
    """Rules that do not load: one or more located problems (``kdsl.dsl.errors.Diagnostic``),
    each naming file, line and column. ``str()`` renders them all, in file and line order."""

    def __init__(self, diagnostics: list):
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.span.path, d.span.line, d.span.column))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class InputError(KdslError, ValueError):
    """Input data that kdsl cannot use: a table, a challenge file, a record, an image path.

    The message names the file and the row id or index, and what was expected."""


class ConfigError(KdslError, ValueError):
    """A configuration or option that cannot be used (a pipeline TOML key, an adapter option)."""


class ModelError(KdslError, ValueError):
    """A model folder or adapter that cannot be loaded, trained or exported."""


class LimitError(KdslError, ValueError):
    """An input asks for more than kdsl allows (a literal too long, a model too large)."""


class RuleLimitError(RuleError, LimitError):
    """A rule file asks for more than kdsl allows (``kdsl.limits``: a literal too long, a file
    too large): located like any problem in a rule file, and a ``LimitError``."""


class DependencyError(KdslError, RuntimeError):
    """An optional dependency or external engine is missing or failed (OCR, Ray, an LLM)."""


@contextlib.contextmanager
def context(where: str):
    """Prefix ``where: `` to the message of a ``KdslError`` raised inside (the file or config
    section that a library call was given as a table or a value, and so cannot name itself).
    A ``RuleError`` names its own files and lines, a ``DependencyError`` is about no input: both
    are left as they are.

    >>> with context("dev.parquet"):
    ...     raise InputError("no 'label' column")
    Traceback (most recent call last):
    kdsl.errors.InputError: dev.parquet: no 'label' column
    """
    try:
        yield
    except (RuleError, DependencyError):
        raise
    except KdslError as error:
        error.args = (f"{where}: {error}",)
        raise
