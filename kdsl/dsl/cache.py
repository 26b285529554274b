"""The parse cache: parsed ``.kdsl`` files remembered on disk as JSON data, never as code.

Lark parses ~2,000 rules a second, and a large rule base is loaded far more often than it
changes, so ``kdsl.dsl.loader.parse_file`` keeps each file's syntax tree under
``~/.cache/kdsl/parsed`` (``KDSL_CACHE_DIR`` moves it, ``KDSL_CACHE_DIR=""`` turns it off),
named by a hash of the parser's own source, the file's path and its text.

An entry is two lines of JSON: a header ``{"format", "kdsl", "parser", "sha256"}`` and the tree,
each node an object tagged with its class (``{"@": "Has", "field": ..., "span": [...]}``). An
entry is used only when every check passes: the format, the kdsl version and the parser
fingerprint are this process's, the tree's SHA-256 equals the header's, every node is a class
of ``kdsl.dsl.ast`` with exactly its fields, each field holds its annotated type, and the tree's
path and source equal the file's. Anything else — a truncated or foreign file, a pickle, a tree
from another version — is ignored and the file is parsed again; reading an entry only ever
builds ``kdsl.dsl.ast`` dataclasses from JSON values, so a file planted in the cache directory
cannot run code.

    >>> from kdsl.dsl.parser import parse
    >>> program = parse('rule r: intent = "x" when user has "漏水"', "r.kdsl")
    >>> text = dumps(program)
    >>> loads(text, program.path, program.source) == program
    True
    >>> loads(text.replace("漏水", "渗水"), program.path, program.source) is None   # digest fails
    True
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import hashlib
import json
import os
import stat
import types
import typing
from importlib import resources
from pathlib import Path

from kdsl import __version__
from kdsl.dsl import ast

FORMAT = 1

_NODES = {cls.__name__: cls for cls in vars(ast).values()
          if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == ast.__name__}


def cache_directory() -> Path | None:
    """Where parsed files are kept; None when ``KDSL_CACHE_DIR`` is set to the empty string."""
    configured = os.environ.get("KDSL_CACHE_DIR")
    if configured is not None:
        return Path(configured) / "parsed" if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kdsl" / "parsed"


@functools.cache
def parser_fingerprint() -> str:
    """Changes whenever the grammar or the code that builds the syntax tree changes."""
    digest = hashlib.sha256()
    package = resources.files("kdsl.dsl")
    for name in ("kdsl.lark", "parser.py", "ast.py", "cache.py"):
        digest.update(package.joinpath(name).read_bytes())
    return digest.hexdigest()


def entry_path(directory: Path, path: str, source: str) -> Path:
    """The cache file for ``source`` read from ``path``."""
    key = hashlib.sha256(f"{parser_fingerprint()}\0{path}\0{source}".encode()).hexdigest()
    return directory / f"{key}.json"


def read(entry: Path, path: str, source: str) -> ast.Program | None:
    """The program stored in ``entry``, or None when it is missing or does not verify. Only a
    regular file of plausible size is read (a FIFO planted there would block, a huge or endless
    file would be read whole)."""
    limit = _MAX_ENTRY_PER_SOURCE_BYTE * len(source.encode()) + _ENTRY_OVERHEAD_BYTES
    try:
        status = entry.stat()
        if not stat.S_ISREG(status.st_mode) or status.st_size > limit:
            return None
        with entry.open("rb") as file:
            text = file.read(limit + 1).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return loads(text, path, source) if len(text) <= limit else None


# An entry is a few times its source (a 5,000-rule file: 5.7 times); far more is not an entry.
_MAX_ENTRY_PER_SOURCE_BYTE = 32
_ENTRY_OVERHEAD_BYTES = 1 << 20


def write(entry: Path, program: ast.Program) -> None:
    """Store ``program`` atomically (readers never see half an entry); a cache directory that
    cannot be written only costs speed."""
    partial = entry.with_suffix(f".{os.getpid()}.partial")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(dumps(program), encoding="utf-8")
        os.replace(partial, entry)
    except OSError:
        partial.unlink(missing_ok=True)


def dumps(program: ast.Program) -> str:
    """The cache entry for ``program``: a header line, then the tree as JSON."""
    tree = json.dumps(_encode(program, program.path), ensure_ascii=False, separators=(",", ":"))
    header = {"format": FORMAT, "kdsl": __version__, "parser": parser_fingerprint(),
              "sha256": hashlib.sha256(tree.encode()).hexdigest()}
    return json.dumps(header) + "\n" + tree


def loads(text: str, path: str, source: str) -> ast.Program | None:
    """The program of a cache entry if it verifies (see the module docstring), else None."""
    header_line, _, tree = text.partition("\n")
    try:
        header = json.loads(header_line)
        if header != {"format": FORMAT, "kdsl": __version__, "parser": parser_fingerprint(),
                      "sha256": hashlib.sha256(tree.encode()).hexdigest()}:
            return None
        # The collector would walk the growing heap again and again while a large tree is
        # built (5,000 rules: 0.75 s instead of 0.28 s); nothing here makes reference cycles.
        collecting = gc.isenabled()
        gc.disable()
        try:
            program = _decode_program(json.loads(tree))
        finally:
            if collecting:
                gc.enable()
    except (ValueError, TypeError, RecursionError, _Invalid):
        return None
    return program if program.path == path and program.source == source else None


def _encode(value, path: str):
    if isinstance(value, ast.Span):  # the file's own path is implied, not repeated per span
        where = [value.line, value.column, value.end_line, value.end_column]
        return where if value.path == path else [value.path, *where]
    if dataclasses.is_dataclass(value):
        encoded = {"@": type(value).__name__}
        for f in dataclasses.fields(value):
            encoded[f.name] = _encode(getattr(value, f.name), path)
        return encoded
    if isinstance(value, tuple):
        return [_encode(item, path) for item in value]
    return value  # str, int, float, bool or None


class _Invalid(Exception):
    """A cache entry's tree does not have the shape of ``kdsl.dsl.ast``."""


def _decode_program(tree) -> ast.Program:
    if type(tree) is not dict or type(tree.get("path")) is not str:
        raise _Invalid("program")
    return _decoder(ast.Program)(tree, tree["path"])


# Decoders, one per annotation of kdsl.dsl.ast, built once: ``decode(value, path)`` turns parsed
# JSON into the annotated type, checking it all the way down (``path``: the file's, for spans).

@functools.cache
def _decoder(annotation):
    if annotation is ast.Span:
        return _decode_span
    if annotation in _NODES.values():
        return _node_decoder(annotation)
    origin, members = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple:
        return _tuple_decoder(members)
    if origin in (typing.Union, types.UnionType):
        return _union_decoder(members)
    return _scalar_decoder(_scalar_types((annotation,)))


def _decode_span(value, path):
    if type(value) is list and all(type(n) is int for n in value[-4:]):
        if len(value) == 4:
            return ast.Span(path, *value)
        if len(value) == 5 and type(value[0]) is str:
            return ast.Span(*value)
    raise _Invalid("span")


@functools.cache
def _node_decoder(cls):
    name, fields = cls.__name__, []

    def decode(value, path):
        if not fields:  # resolved on first use: the node types refer to each other
            fields.extend((field, _decoder(kind)) for field, kind in _field_types(cls).items())
        if type(value) is not dict or value.get("@") != name or len(value) != len(fields) + 1:
            raise _Invalid(f"not a {name}")
        try:
            return cls(**{field: decode_field(value[field], path) for field, decode_field in fields})
        except KeyError:
            raise _Invalid(f"not a {name}") from None

    return decode


def _tuple_decoder(members):
    if len(members) == 2 and members[1] is Ellipsis:
        def decode(value, path):
            if type(value) is not list:
                raise _Invalid("not a list")
            item = _decoder(members[0])
            return tuple(item(v, path) for v in value)
    else:
        def decode(value, path):
            if type(value) is not list or len(value) != len(members):
                raise _Invalid("not a pair")
            return tuple(_decoder(kind)(v, path) for v, kind in zip(value, members))
    return decode


def _union_decoder(members):
    nodes = {cls.__name__: _node_decoder(cls) for cls in members if cls in _NODES.values()}
    scalars = _scalar_types(members)

    def decode(value, path):
        if type(value) is dict:
            node = nodes.get(value.get("@"))
            if node is None:
                raise _Invalid("unknown node")
            return node(value, path)
        if type(value) in scalars:
            return value
        raise _Invalid("not in the union")

    return decode


def _scalar_types(annotations) -> frozenset:
    allowed = {kind for kind in annotations if kind in (str, int, float, bool, type(None))}
    if float in allowed:
        allowed.add(int)  # an int is a valid float, as in Python's typing
    return frozenset(allowed)


def _scalar_decoder(allowed):
    if not allowed:
        raise TypeError("kdsl.dsl.ast has a field type the cache cannot store")

    def decode(value, path):
        if type(value) not in allowed:  # exact types: a bool is no int here
            raise _Invalid("wrong type")
        return value

    return decode


@functools.cache
def _field_types(cls) -> dict[str, object]:
    hints = typing.get_type_hints(cls, vars(ast))
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}
