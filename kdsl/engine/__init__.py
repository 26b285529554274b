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


def kernels_compiled() -> bool:
    """Whether numba's on-disk cache already holds the engine's kernels; False means the first
    use compiles them (about 30 s on a laptop core), which a command should say before it
    sits silent. Unknown (numba's cache layout changed): True, so that nothing is claimed."""
    import os

    from kdsl.engine.kernel import evaluate_rows

    try:
        return os.path.exists(evaluate_rows._cache._cache_file._index_path)
    except AttributeError:
        return True


COMPILE_NOTE = "note: compiling the rule engine's kernels with numba (about 30 s, once; cached afterwards)"

__all__ = ["COMPILE_NOTE", "Engine", "InputError", "kernels_compiled", "load", "loads"]
