"""The kdsl engine: compile rules once, then score Arrow tables or single records.

    >>> import kdsl.engine
    >>> engine = kdsl.engine.load("rules/")                 # doctest: +SKIP
    >>> engine.score(table)                                 # doctest: +SKIP
    >>> engine.predict({"user": "洗衣机漏水", "model_label": "是否好用"})   # doctest: +SKIP
"""

from __future__ import annotations

from kdsl.dsl import check, load_rules, parse
from kdsl.engine.engine import Engine, InputError


def load(path) -> Engine:
    """Load and compile a ``.kdsl`` file, a directory of them (recursively), or a list of paths."""
    return Engine(load_rules(path))


def loads(source: str, path: str = "<string>") -> Engine:
    """Compile rules given as source text."""
    return Engine(check([parse(source, path)]))


__all__ = ["Engine", "InputError", "load", "loads"]
