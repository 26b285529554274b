"""Remembered OCR results, one small JSON file per image, keyed by the image's content.

OCR costs about a second per screenshot on one core; the same images are read again on every
re-import, so a re-run should cost only the hashing. The key is the SHA-256 of the image's bytes
(a renamed or copied file is still found; an edited one is not), inside a folder named after the
engine that read it, so a new model or a change to how its output is laid out starts afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from kdsl.io import atomic_path


def image_key(data: bytes) -> str:
    """The cache key of an image: the SHA-256 of its bytes, in hex.

    >>> image_key(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()


def default_cache_directory() -> Path | None:
    """Where OCR results are kept: ``$KDSL_CACHE_DIR/ocr`` when that variable is set (an empty
    value turns caching off, as for the rule parse cache), else ``$XDG_CACHE_HOME/kdsl/ocr``,
    else ``~/.cache/kdsl/ocr``."""
    configured = os.environ.get("KDSL_CACHE_DIR")
    if configured is not None:
        return Path(configured) / "ocr" if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kdsl" / "ocr"


class OcrCache:
    """Texts by image key, for one engine.

    >>> cache = OcrCache("/tmp/kdsl-ocr", engine_id="0123abcd")     # doctest: +SKIP
    >>> cache.put(image_key(data), "包裹详情\\n派送中")                # doctest: +SKIP
    >>> cache.get(image_key(data))                                   # doctest: +SKIP
    '包裹详情\\n派送中'

    An entry that is missing, unreadable or not ours reads as a miss; a directory that cannot be
    written (a read-only home) only costs speed, never a failed run.
    """

    def __init__(self, directory, engine_id: str):
        self.directory = Path(directory) / engine_id
        self.engine_id = engine_id

    def get(self, key: str) -> str | None:
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("image_sha256") != key:
            return None
        text = entry.get("text")
        return text if isinstance(text, str) else None

    def put(self, key: str, text: str) -> None:
        path = self._path(key)
        entry = {"image_sha256": key, "engine": self.engine_id, "text": text}
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:  # concurrent readers never see half an entry
                tmp.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")

    def _path(self, key: str) -> Path:
        # Two-character shards keep directories small when millions of images are cached.
        return self.directory / key[:2] / f"{key}.json"


class NoCache:
    """Caching turned off: every lookup misses, nothing is written."""

    def get(self, key: str) -> None:
        return None

    def put(self, key: str, text: str) -> None:
        pass
