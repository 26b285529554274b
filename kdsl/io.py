"""Files in and out: atomic writes, so that a failed or interrupted job leaves no partial output,
and reading a Parquet file or a directory of them as one source."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import tempfile
import threading
import types
from pathlib import Path

from kdsl.errors import InputError


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


def write_table_atomically(table, path) -> None:
    """``table`` (Arrow) as the Parquet file ``path``, written whole or not at all."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a fresh temporary directory; on success it replaces ``path`` (an existing directory
    there is swapped out, then removed); on any error it is removed.

    >>> with atomic_directory("model/") as tmp:          # doctest: +SKIP
    ...     write_config(tmp, {"adapter": "baseline"})
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            # os.replace cannot put a directory over a non-empty one: move the old one aside
            # first, so that at every moment `path` is either the old directory or the new one.
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "previous")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_parquet(path):
    """A Parquet file — or a directory of them, as ``--ray`` and Spark write — opened for
    reading with ``ParquetFile``'s interface (schema_arrow, metadata.num_rows, read,
    iter_batches); InputError when it is missing or not Parquet.

    >>> open_parquet("scored/").read(columns=["id"])       # doctest: +SKIP
    """
    import pyarrow.parquet as pq

    try:
        return ParquetDirectory(path) if Path(path).is_dir() else pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(f"{path}: not a readable Parquet file ({error})") from None


def read_parquet(path, columns=None):
    """The whole table of a Parquet file or directory (``columns``: only those); InputError as
    for ``open_parquet``."""
    return open_parquet(path).read(columns=columns)


class ParquetDirectory:
    """The Parquet files of a directory as one source, in the surface of ``pq.ParquetFile``
    that kdsl uses."""

    def __init__(self, path):
        import pyarrow.dataset as ds

        self.dataset = ds.dataset(path, format="parquet")
        if not self.dataset.files:
            raise ValueError("a directory without Parquet files")
        self.schema_arrow = self.dataset.schema
        self.metadata = types.SimpleNamespace(num_rows=self.dataset.count_rows())

    def read(self, columns=None):
        return self.dataset.to_table(columns=columns)

    def iter_batches(self, batch_size=65536, columns=None):
        return self.dataset.to_batches(columns=columns, batch_size=batch_size)


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
