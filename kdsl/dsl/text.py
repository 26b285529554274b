"""The language's text semantics, shared by the checker, the reference interpreter and the engine.

Texts and literals are compared after Unicode NFKC normalisation and case folding; a null text is
the empty string. Regular expressions are RE2 (linear time) and run on the normalised text.
"""

from __future__ import annotations

import functools
import unicodedata

import re2


def normalize_text(text: str | None) -> str:
    """NFKC, then case-fold; ``None`` is ``""``.

    >>> normalize_text("ＡＢＣ，Straße")
    'abc,strasse'
    """
    return "" if text is None else unicodedata.normalize("NFKC", text).casefold()


@functools.lru_cache(maxsize=4096)
def compile_regex(pattern: str):
    """Compile an RE2 pattern; raise ``ValueError`` with RE2's reason when it is invalid."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print every bad pattern to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0]
        raise ValueError(reason.decode() if isinstance(reason, bytes) else str(reason)) from None
