"""Reading ``.kdsl`` files and directories from disk."""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
from importlib import resources
from pathlib import Path

from kdsl.dsl import ast
from kdsl.dsl.checker import RuleSet, check
from kdsl.dsl.errors import Diagnostic, RuleError
from kdsl.errors import InputError
from kdsl.dsl.parser import parse


def rule_files(paths) -> list[Path]:
    """The ``.kdsl`` files named by ``paths`` (files, or directories searched recursively), in
    load order: the order given, and sorted path order within a directory."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.rglob("*.kdsl"))
            if not found:
                raise _file_error(path, "no .kdsl files in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise _file_error(path, "no such file or directory")
    return files


def parse_file(path) -> ast.Program:
    """Read and parse one file; unreadable or non-UTF-8 input is a located ``RuleError``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise _file_error(path, f"cannot read: {error.strerror or error}") from None
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        span = ast.Span(str(path), line, column, line, column + 1)
        raise RuleError([Diagnostic("not valid UTF-8; kdsl files are UTF-8", span)]) from None
    return _cached_parse(source.removeprefix("\ufeff"), str(path))


def _cached_parse(source: str, path: str) -> ast.Program:
    """``parse``, remembered on disk by content: Lark parses ~2,000 rules a second, and a large
    rule base is loaded far more often than it changes. ``KDSL_CACHE_DIR`` moves the cache;
    ``KDSL_CACHE_DIR=""`` turns it off. A cache entry that cannot be read is ignored."""
    directory = _cache_directory()
    if directory is None:
        return parse(source, path)
    key = hashlib.sha256(f"{_parser_fingerprint()}\0{path}\0{source}".encode()).hexdigest()
    entry = directory / f"{key}.pickle"
    try:
        with entry.open("rb") as file:
            program = pickle.load(file)
        if isinstance(program, ast.Program) and program.source == source:
            return program
    except Exception:  # missing, truncated or from another version: parse again
        pass
    program = parse(source, path)
    partial = entry.with_suffix(f".{os.getpid()}.partial")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(pickle.dumps(program, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(partial, entry)  # readers never see a half-written entry
    except OSError:
        partial.unlink(missing_ok=True)  # a read-only home directory only costs speed
    return program


def _cache_directory() -> Path | None:
    configured = os.environ.get("KDSL_CACHE_DIR")
    if configured is not None:
        return Path(configured) / "parsed" if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kdsl" / "parsed"


@functools.cache
def _parser_fingerprint() -> str:
    """Changes whenever the grammar or the code that builds the syntax tree changes."""
    digest = hashlib.sha256()
    package = resources.files("kdsl.dsl")
    for name in ("kdsl.lark", "parser.py", "ast.py"):
        digest.update(package.joinpath(name).read_bytes())
    return digest.hexdigest()


def load_rules(paths) -> RuleSet:
    """Parse and check every rule file under ``paths`` (a file, a directory, or a list of them).

    >>> rules = load_rules("rules/")          # doctest: +SKIP
    >>> [r.name for r in rules.rules][:2]     # doctest: +SKIP
    ['leak_feedback', 'tracking_page']
    """
    programs, diagnostics = [], []
    for file in rule_files(paths):
        try:
            programs.append(parse_file(file))
        except UnreadableInput:
            raise
        except RuleError as error:
            diagnostics.extend(error.diagnostics)
    if diagnostics:
        raise RuleError(diagnostics)
    return check(programs)


class UnreadableInput(RuleError, InputError):
    """A path that is missing, unreadable or holds no rule files (as opposed to bad rules)."""


def _file_error(path: Path, message: str) -> UnreadableInput:
    return UnreadableInput([Diagnostic(message, ast.Span(str(path), 0, 0, 0, 0))])
