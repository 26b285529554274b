"""Image files named by a table or a challenge file, read only from inside their data root.

Every reader of an image — ``kdsl ocr``, the baseline's thumbnails, the Qwen2-VL adapter, the
importer's report of missing images — goes through this module, so that one set of rules holds:

- a name is relative and stays inside the root: an absolute path, a ``..`` component, an empty
  name or a NUL byte is refused (:func:`image_path_problem`), and so is a symlink that resolves
  outside the root (its target is never looked at, so a refusal tells nothing of what exists
  there);
- only a regular file is read (not ``/dev/zero``, not a FIFO that would block forever), and at
  most ``MAX_IMAGE_BYTES`` of it.

A refused image is an :class:`ImageRejected` with the reason; callers report it per row.

    >>> image_path_problem("../etc/passwd")
    "'..' leaves the images root"
    >>> read_image("data/images", "a-0.jpg")[:2]        # doctest: +SKIP
    b'\\xff\\xd8'
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kdsl.errors import InputError
from kdsl.limits import MAX_IMAGE_BYTES


class ImageRejected(InputError):
    """An image that is not read: ``name`` and the ``reason``."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason
        super().__init__(f"image {name!r}: {reason}")


def image_path_problem(name) -> str | None:
    """Why ``name`` cannot name an image under a root (None: it can), from the name alone."""
    if not isinstance(name, str) or not name:
        return "an image path is a non-empty string"
    if "\0" in name:
        return "a NUL byte in the path"
    if any("\ud800" <= ch <= "\udfff" for ch in name):
        return "a lone surrogate in the path (not valid Unicode)"
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "an absolute path; image paths are relative to the images root"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "'..' leaves the images root"
    return None


def locate_image(root, name: str) -> Path:
    """The file ``name`` names inside ``root`` (symlinks resolved), or :class:`ImageRejected`."""
    problem = image_path_problem(name)
    if problem:
        raise ImageRejected(name, problem)
    base = Path(os.path.realpath(root))
    path = Path(os.path.realpath(base / name))
    if path != base and base not in path.parents:
        raise ImageRejected(name, "a symlink that leaves the images root")
    return path


def read_image(root, name: str, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of image ``name`` under ``root``: a regular file of at most ``limit`` bytes
    inside the root, or :class:`ImageRejected` saying why not."""
    path = locate_image(root, name)
    try:
        # O_NONBLOCK: a FIFO swapped in after the check must not block; O_NOFOLLOW: nor a symlink.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageRejected(name, "no such file") from None
    except OSError as error:
        raise ImageRejected(name, error.strerror or str(error)) from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ImageRejected(name, "not a regular file")
        if status.st_size > limit:
            raise ImageRejected(name, f"{status.st_size} bytes; the limit is {limit}")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > limit:  # grew while being read
        raise ImageRejected(name, f"more than {limit} bytes; the limit is {limit}")
    return data


def open_image(root, name: str):
    """Image ``name`` under ``root`` as a PIL image, opened from the bytes :func:`read_image`
    returns (decoded lazily, so that ``draft`` still works); :class:`ImageRejected` when it is
    refused or not an image."""
    import io

    from PIL import Image, UnidentifiedImageError

    data = read_image(root, name)
    try:
        return Image.open(io.BytesIO(data))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise ImageRejected(name, f"not an image Pillow can read ({error})") from None


@dataclass(frozen=True)
class ImageFile:
    """Image ``name`` under ``root``, read on demand through :func:`read_image` (the same
    ``read_bytes()`` as a ``Path``, with the containment rules)."""

    root: Path
    name: str

    def read_bytes(self) -> bytes:
        return read_image(self.root, self.name)
