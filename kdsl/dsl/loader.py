"""Reading ``.kdsl`` files and directories from disk."""

from __future__ import annotations

from pathlib import Path

from kdsl.dsl import ast, cache
from kdsl.dsl.checker import RuleSet, check
from kdsl.dsl.errors import Diagnostic, RuleError
from kdsl.errors import RuleLimitError
from kdsl.limits import MAX_RULE_FILE_BYTES
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
        with path.open("rb") as file:
            data = file.read(MAX_RULE_FILE_BYTES + 1)  # a huge (or endless: /dev/zero) file is not read whole
    except OSError as error:
        raise _file_error(path, f"cannot read: {error.strerror or error}") from None
    if len(data) > MAX_RULE_FILE_BYTES:
        raise RuleLimitError([Diagnostic(f"larger than {MAX_RULE_FILE_BYTES} bytes, the limit for a rule file",
                                         ast.Span(str(path), 0, 0, 0, 0))])
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
    """``parse``, remembered on disk by content (``kdsl.dsl.cache``: JSON data, verified on
    load; an entry that does not verify is ignored and rebuilt)."""
    directory = cache.cache_directory()
    if directory is None:
        return parse(source, path)
    entry = cache.entry_path(directory, path, source)
    program = cache.read(entry, path, source)
    if program is None:
        program = parse(source, path)
        cache.write(entry, program)
    return program


def load_rules(paths) -> RuleSet:
    """Parse and check every rule file under ``paths`` (a file, a directory, or a list of them).

    >>> from importlib import resources
    >>> rules = load_rules(resources.files("kdsl") / "samples" / "rules")   # the demo's rules
    >>> rules.targets, [r.name for r in rules.rules][:2]
    (('intent',), ['restock_question', 'season_question'])
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
