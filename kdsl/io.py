"""Files in and out: atomic writes, so that a failed or interrupted job leaves no partial output.

An output is written to a hidden temporary beside its target, ``.NAME.HOST-PID.RANDOM.partial``,
and renamed over the target only once it is complete. An error, Ctrl-C or SIGTERM (the CLI
treats it as Ctrl-C, :func:`sigterm_as_interrupt`) removes the temporary; a run killed outright
(SIGKILL, a power cut) cannot, so the next write to the same target removes the leftovers whose
process is gone. The target keeps what a user expects of ``>``: a new file gets the umask's
mode, an existing one keeps its mode, a symlink is written through to its target; a directory,
a device, a FIFO or a socket is refused, and so is a read-only file.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import stat
import tempfile
import threading
import types
from pathlib import Path

import pyarrow as pa

from kdsl.errors import InputError

PARTIAL = ".partial"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename,
    on any error (KeyboardInterrupt included) it is removed and ``path`` is left as it was.
    :class:`InputError` when ``path`` cannot be written (see the module's docstring).

    >>> with atomic_path("out.parquet") as tmp:      # doctest: +SKIP
    ...     write_parquet(table, tmp)
    """
    target = writable_target(path)
    remove_leftovers(target)
    existing = target.stat() if target.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=_partial_prefix(target), suffix=PARTIAL, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, stat.S_IMODE(existing.st_mode) if existing else 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a fresh temporary directory; on success it replaces ``path`` (an existing directory
    or file there is swapped out, then removed); on any error it is removed. Parents are created;
    a device, FIFO or socket at ``path`` is refused.

    >>> with atomic_directory("model/") as tmp:      # doctest: +SKIP
    ...     (tmp / "config.json").write_text("{}")
    """
    path = Path(path)
    if path.exists() and not (path.is_dir() or path.is_file()):  # an old output file is replaced
        raise InputError(f"{path}: not a directory or a regular file (a device, FIFO or socket)")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    existing = path.stat() if path.exists() else None
    tmp = Path(tempfile.mkdtemp(prefix=_partial_prefix(path), suffix=PARTIAL, dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, stat.S_IMODE(existing.st_mode) if existing else 0o777 & ~_umask())
        if path.exists():
            # os.replace cannot put a directory over a non-empty one: move the old one aside
            # first, so that at every moment `path` is either the old directory or the new one.
            old = Path(tempfile.mkdtemp(prefix=_partial_prefix(path), suffix=PARTIAL, dir=path.parent))
            os.replace(path, old / "old")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def writable_target(path) -> Path:
    """The file an atomic write of ``path`` replaces: ``path``, or a symlink's final target.
    :class:`InputError` for a missing folder, a directory, a non-regular file, a read-only file.

    >>> writable_target("/dev/null")
    Traceback (most recent call last):
    ...
    kdsl.errors.InputError: /dev/null: not a regular file (a device, FIFO or socket); kdsl writes regular files only
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if not target.parent.is_dir():
        raise InputError(f"{path}: no folder {target.parent} to write into")
    try:
        status = target.stat()
    except FileNotFoundError:
        return target
    if stat.S_ISDIR(status.st_mode):
        raise InputError(f"{path}: is a directory; name a file to write")
    if not stat.S_ISREG(status.st_mode):
        raise InputError(f"{path}: not a regular file (a device, FIFO or socket); kdsl writes regular files only")
    if not status.st_mode & 0o222 or not os.access(target, os.W_OK):
        raise InputError(f"{path}: the file is read-only; kdsl does not replace it")
    return target


def write_text_atomically(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:64] or "host"


def _partial_prefix(target: Path) -> str:
    """``.NAME.HOST-PID.``: whose temporary this is, so that a later run can tell a leftover."""
    return f".{target.name}.{_host()}-{os.getpid()}."


def remove_leftovers(target) -> list[Path]:
    """Remove the temporaries of earlier writes of ``target`` whose process, on this host, is no
    longer running (a SIGKILLed run); return them. Those of live processes are left alone."""
    target = Path(target)
    pattern = re.compile(re.escape(f".{target.name}.{_host()}-") + r"(\d+)\.[^/]*" + re.escape(PARTIAL) + "$")
    removed = []
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            found = pattern.match(entry.name)
            if found and not _alive(int(found.group(1))):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM (what ``timeout``, ``docker stop`` and Kubernetes send) raises
    KeyboardInterrupt like Ctrl-C, so that every ``atomic_path`` and ``finally`` cleans up.
    Only the main thread can set a handler; elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def write_table_atomically(table, path) -> None:
    """``table`` (Arrow) as the Parquet file ``path``, written whole or not at all."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def decoded_type(data_type: pa.DataType) -> pa.DataType:
    """``data_type`` with dictionary encoding removed (at any depth of lists)."""
    if pa.types.is_dictionary(data_type):
        return decoded_type(data_type.value_type)
    if pa.types.is_list(data_type):
        return pa.list_(pa.field(data_type.value_field.name, decoded_type(data_type.value_type)))
    if pa.types.is_large_list(data_type):
        return pa.large_list(pa.field(data_type.value_field.name, decoded_type(data_type.value_type)))
    return data_type


def decoded_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([field.with_type(decoded_type(field.type)) for field in schema], metadata=schema.metadata)


def decode(data):
    """A table or record batch with its dictionary-encoded columns as plain values."""
    target = decoded_schema(data.schema)
    return data if target.equals(data.schema) else data.cast(target)


def open_parquet(path, require=(), require_text=False) -> ParquetSource:
    """A Parquet file, or a directory of them (what ``--ray`` and Spark write), as one source
    with ``pq.ParquetFile``'s surface: ``schema_arrow``, ``metadata.num_rows``, ``read`` and
    ``iter_batches``. :class:`InputError` when it is missing, not Parquet, a directory whose
    files disagree on their columns, or when its columns do not fit the record schema
    (``kdsl.record.schema_problem``, which ``require`` and ``require_text`` are passed to).
    Dictionary-encoded columns are decoded to plain values as they are read.

    >>> source = open_parquet("train.parquet")                          # doctest: +SKIP
    >>> for batch in source.iter_batches(batch_size=8192, columns=["user"]):  # doctest: +SKIP
    ...     ...
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        source = ParquetSource(path)
    except InputError:
        raise
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(f"{path}: not a readable Parquet file ({error})") from None
    from kdsl.record import schema_problem

    problem = schema_problem(source.schema_arrow, require=require, require_text=require_text)
    if problem:
        raise InputError(f"{path}: {problem}")
    return source


def read_parquet(path, columns=None):
    """The whole table of a Parquet file or directory (``columns``: only those); InputError as
    for ``open_parquet``."""
    return open_parquet(path).read(columns=columns)


# Parquet reading whose memory follows the batch, not the file: pyarrow's defaults pre-buffer
# (``pre_buffer=True`` reads whole column chunks ahead) and read every column chunk in one go
# (unbuffered streams); a buffered stream reads a chunk's pages READ_BUFFER bytes at a time.
READ_BUFFER = 1 << 20


def _parquet_format():
    import pyarrow.dataset as ds

    return ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(
        pre_buffer=False, use_buffered_stream=True, buffer_size=READ_BUFFER))


class ParquetSource:
    """See :func:`open_parquet`."""

    def __init__(self, path: Path):
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        self.path = path
        if path.is_dir():
            files = sorted(str(p) for p in path.rglob("*.parquet") if p.is_file() and not p.name.startswith("."))
            if not files:
                raise InputError(f"{path}: a directory without Parquet files")
            raw = pq.read_schema(files[0])
            first = decoded_schema(raw).remove_metadata()
            for file in files[1:]:
                other = decoded_schema(pq.read_schema(file)).remove_metadata()
                if not other.equals(first):
                    raise InputError(f"{path}: {Path(file).name} has other columns than {Path(files[0]).name} "
                                     f"({_difference(first, other)}); every file of a directory must have "
                                     "the same schema")
            self._dataset = ds.dataset(files, schema=raw, format=_parquet_format())
            self._file = None
            rows = self._dataset.count_rows()
        else:
            self._file = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
            self._dataset = None
            raw = self._file.schema_arrow
            rows = self._file.metadata.num_rows
        self.schema_arrow = decoded_schema(raw)
        self.metadata = types.SimpleNamespace(num_rows=rows)

    def read(self, columns=None) -> pa.Table:
        table = self._file.read(columns=columns) if self._file is not None else self._dataset.to_table(columns=columns)
        return decode(table)

    def iter_batches(self, batch_size=65536, columns=None):
        batches = (self._file.iter_batches(batch_size=batch_size, columns=columns) if self._file is not None
                   else self._dataset.to_batches(columns=columns, batch_size=batch_size))
        return (decode(batch) for batch in batches)


def _difference(a: pa.Schema, b: pa.Schema) -> str:
    parts = []
    for name in dict.fromkeys(a.names + b.names):
        ta = a.field(name).type if name in a.names else None
        tb = b.field(name).type if name in b.names else None
        if ta != tb:
            parts.append(f"'{name}': {ta or 'missing'} vs {tb or 'missing'}")
    return "; ".join(parts[:3]) or "column order"


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
