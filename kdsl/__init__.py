"""kdsl: readable, correctable rules for e-commerce intent recognition.

Packages: ``kdsl.dsl`` (the language), ``kdsl.engine`` (compiled execution, ``load()``),
``kdsl.data`` (import, OCR, augmentation), ``kdsl.mining`` (rules from labelled rows),
``kdsl.adapters`` (models), ``kdsl.cli`` (the ``kdsl`` command). The documentation is in
``docs/`` (start with ``docs/language.md``).

    >>> import kdsl
    >>> kdsl.__version__ != ""
    True
"""

from importlib import metadata


def _installed_version() -> str:
    """The version of the installed distribution; ``0+unknown`` when kdsl runs from a source
    tree that was never installed."""
    try:
        return metadata.version("kdsl")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _installed_version()
