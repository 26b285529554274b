"""Files in and out: atomic writes, so that a failed or interrupted job leaves no partial output."""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename,
    on any error (KeyboardInterrupt included) it is removed and ``path`` is left as it was.

    >>> with atomic_path("out.parquet") as tmp:      # doctest: +SKIP
    ...     write_parquet(table, tmp)
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent or ".")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomically(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def prefetch(iterable, depth: int = 2):
    """Iterate ``iterable`` in a background thread, at most ``depth`` items ahead.

    Parquet decoding releases the GIL, so reading the next batch overlaps the caller's work on
    the current one. An exception in the iterable is raised in the caller; leaving the loop early
    stops the thread.
    """
    items: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def produce():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((end, None))
        except BaseException as error:  # handed to the caller, who raises it
            items.put((None, error))

    thread = threading.Thread(target=produce, name="kdsl-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = items.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
