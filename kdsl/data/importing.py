"""Read a challenge file (a JSON list, or JSON lines) into record rows, keeping the bad samples
apart with the reason each one was refused.

    >>> result = import_samples([("item 0", {"id": "a", "instruction": "Picture 1: <image>",
    ...                                      "image": ["a-0.jpg"], "output": "退款页面"}),
    ...                          ("item 1", {"instruction": "Picture 1: <image>"})])
    >>> [row["label"] for row in result.rows], [r.message() for r in result.rejects]
    (['退款页面'], ["item 1: missing 'id'"])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from kdsl.data.images import ImageRejected, locate_image
from kdsl.data.tianchi import FormatError, to_record
from kdsl.errors import InputError

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


class SourceError(InputError):
    """The file as a whole cannot be read (not JSON, not a list, no sample)."""


@dataclass
class Reject:
    """A sample that was not imported: where it is, its id when it has one, and why."""

    where: str
    id: str | None
    reason: str
    sample: object

    def message(self) -> str:
        who = f" (id {self.id!r})" if self.id is not None else ""
        return f"{self.where}{who}: {self.reason}"

    def to_json(self) -> str:
        record = {"where": self.where, "id": self.id, "reason": self.reason, "sample": self.sample}
        text = json.dumps(record, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (a reason to reject): keep it as an escape
            text = json.dumps(record)
        return text


@dataclass
class Imported:
    rows: list[dict] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def read_samples(path) -> Iterator[tuple[str, object]]:
    """(location, sample) pairs of a challenge file: ``item N`` (0-based, as in ``jq '.[N]'``)
    for a JSON list, ``line N`` (1-based) for JSON lines (``.jsonl`` / ``.ndjson``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SourceError(f"{path}: is a directory, not a JSON file") from None
    except UnicodeDecodeError as error:
        raise SourceError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    text = text.removeprefix("\ufeff")  # files saved by Windows tools often start with a BOM
    if path.suffix.lower() in JSON_LINES_SUFFIXES:
        return _json_lines(path, text)
    try:
        samples = json.loads(text)
    except RecursionError:
        raise SourceError(f"{path}: JSON nested too deeply to be a challenge file") from None
    except json.JSONDecodeError as error:
        hint = ("; it looks like JSON lines: name it .jsonl"
                if error.msg == "Extra data" and text.lstrip().startswith("{") else "")
        raise SourceError(f"{path}:{error.lineno}:{error.colno}: not JSON ({error.msg}){hint}") from None
    if not isinstance(samples, list):
        raise SourceError(f"{path}: expected a JSON list of samples, found a JSON {_json_type(samples)}")
    return ((f"item {index}", sample) for index, sample in enumerate(samples))


def _json_lines(path: Path, text: str) -> Iterator[tuple[str, object]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
        except json.JSONDecodeError as error:
            # One broken line is one bad sample, not a broken file: yield it for the caller to reject.
            sample = _Unreadable(f"not JSON ({error.msg} at column {error.colno})", line)
        except RecursionError:
            sample = _Unreadable("JSON nested too deeply", line[:200])
        yield f"line {number}", sample


@dataclass
class _Unreadable:
    reason: str
    text: str


def import_samples(located: Iterable[tuple[str, object]]) -> Imported:
    """Convert every sample; a sample that cannot be converted, or repeats an earlier id,
    becomes a Reject instead of a row.
    """
    result = Imported()
    first_seen: dict[str, str] = {}
    for where, sample in located:
        if isinstance(sample, _Unreadable):
            result.rejects.append(Reject(where, None, sample.reason, sample.text))
            continue
        sample_id = sample.get("id") if isinstance(sample, dict) else None
        sample_id = sample_id if isinstance(sample_id, str) else None
        try:
            row = to_record(sample)
            if row["id"] in first_seen:
                raise FormatError(f"duplicate id, first seen at {first_seen[row['id']]}")
        except FormatError as error:
            result.rejects.append(Reject(where, sample_id, str(error), sample))
            continue
        first_seen[row["id"]] = where
        result.rows.append(row)
    return result


def missing_images(rows: Iterable[dict], root) -> list[str]:
    """The image paths of ``rows`` with no regular file inside ``root``, each once, in order.
    A path that leaves the root (a symlink out of it) counts as missing whatever is there, so
    that the report tells nothing about files outside the root (``kdsl.data.images``).

    >>> missing_images([{"image_paths": ["x.jpg", "x.jpg"]}], "/nonexistent")
    ['x.jpg']
    """
    seen: set[str] = set()
    missing: list[str] = []
    for row in rows:
        for name in row["image_paths"]:
            if name not in seen:
                seen.add(name)
                try:
                    found = locate_image(root, name).is_file()
                except ImageRejected:
                    found = False
                if not found:
                    missing.append(name)
    return missing


def _json_type(value) -> str:
    return {dict: "object", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)
