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


class KdslError(Exception):
    """The root: every error kdsl raises on purpose."""


class InputError(KdslError, ValueError):
    """Input data that kdsl cannot use: a table, a challenge file, a record, an image path.

    The message names the file and the row id or index, and what was expected."""


class ConfigError(KdslError, ValueError):
    """A configuration or option that cannot be used (a pipeline TOML key, an adapter option)."""


class ModelError(KdslError, ValueError):
    """A model folder or adapter that cannot be loaded, trained or exported."""


class LimitError(KdslError, ValueError):
    """An input asks for more than kdsl allows (a literal too long, a model too large)."""


class DependencyError(KdslError, RuntimeError):
    """An optional dependency or external engine is missing or failed (OCR, Ray, an LLM)."""
