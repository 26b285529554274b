"""The kdsl engine: compile rules once, then score Arrow tables or single records.

    >>> import kdsl.engine
    >>> import pyarrow as pa
    >>> engine = kdsl.engine.loads('rule leak: intent = "反馈密封性不好" when user has "漏水"')
    >>> engine.predict({"user": "洗衣机漏水", "model_label": "是否好用"})
    {'intent': '反馈密封性不好', 'intent_rule': 'leak', 'intent_source': 'rule'}
    >>> engine.score(pa.table({"user": ["一直漏水", "好用吗"]})).column("intent_source").to_pylist()
    ['rule', None]

``load(path)`` does the same for a file, a directory of them, or a list of paths.
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
