"""Inputs of the baseline network, computed from a record table.

Text: the character n-grams (1 to 3) of ``user``, ``agent`` and ``ocr``, each tagged with its
field (so that 退款 said by the user and 退款 read on a screenshot are different features),
hashed into a fixed number of buckets with CRC-32: stable across runs and machines, unlike
Python's ``hash``. Text is NFKC-normalised and case-folded first, as the rule engine does.

Images: thumbnails (RGB, ``size``×``size``, aspect not kept: screenshots are all tall) of up to
``MAX_IMAGES`` images per row, read with Pillow from ``image_paths`` under a data root. A missing
or unreadable image is left out; a row without images gets zeros from the image branch.

Each field is its own bag of ids, so that a long OCR dump does not drown out the user's few
words in one shared average:

    >>> user, agent, ocr = text_ids({"user": "退款", "agent": None, "ocr": None}, buckets=1024)
    >>> len(user), len(agent), len(ocr)  # 退 款, ^退 退款 款$, ^退款 退款$ (^, $: start and end)
    (7, 0, 0)
"""

from __future__ import annotations

import unicodedata
import zlib
from dataclasses import dataclass

import numpy as np

from kdsl.data.images import ImageRejected, open_image
from kdsl.record import TEXT_FIELDS

MAX_CHARS = 1024  # per field: long OCR dumps add cost, not signal
MAX_IMAGES = 4  # per row
NGRAMS = (1, 2, 3)


def text_ids(record: dict, buckets: int) -> list[np.ndarray]:
    """Hashed n-gram ids of one record, one int64 array per field of ``TEXT_FIELDS`` (empty for
    a missing field). ``^`` and ``$`` mark a field's start and end so that a turn-initial word
    differs from the same word mid-sentence."""
    bags = []
    for field in TEXT_FIELDS:
        ids = []
        text = record.get(field)
        if text:
            text = "^" + unicodedata.normalize("NFKC", text[:MAX_CHARS]).casefold() + "$"
            prefix = f"{field}\x1f"
            for n in NGRAMS:
                for start in range(len(text) - n + 1):
                    gram = text[start:start + n]
                    if gram not in ("^", "$"):
                        ids.append(zlib.crc32((prefix + gram).encode("utf-8")) % buckets)
        bags.append(np.asarray(ids, dtype=np.int64))
    return bags


def thumbnail(root, name: str, size: int):
    """A ``size``×``size`` RGB thumbnail (a PIL image) of image ``name`` under ``root``
    (``kdsl.data.images``), or None when it is refused or cannot be read."""
    from PIL import Image

    try:
        with open_image(root, name) as image:
            # JPEG decodes at 1/2, 1/4 or 1/8 scale for free: most of the time spent on a large
            # screenshot would otherwise go to pixels the resize throws away.
            image.draft("RGB", (size * 2, size * 2))
            return image.convert("RGB").resize((size, size), Image.BILINEAR)
    except (ImageRejected, OSError, ValueError, Image.DecompressionBombError):
        return None


def row_thumbnails(table, root, size: int) -> list[list]:
    """Thumbnails of every row's images (at most MAX_IMAGES each); empty lists without a root."""
    if root is None or "image_paths" not in table.column_names:
        return [[] for _ in range(table.num_rows)]
    rows = []
    for paths in table.column("image_paths").to_pylist():
        images = (thumbnail(root, p, size) for p in (paths or [])[:MAX_IMAGES] if p)
        rows.append([image for image in images if image is not None])
    return rows


@dataclass
class Encoded:
    """One batch as the network reads it: EmbeddingBag ids and offsets, a stack of image
    arrays and the row each image belongs to."""

    ids: np.ndarray  # int64, all rows' n-gram ids concatenated, field by field
    offsets: np.ndarray  # int64, where each (row, field) bag starts: len(TEXT_FIELDS) per row
    images: np.ndarray  # float32 (n_images, 3, size, size), in [0, 1]
    image_rows: np.ndarray  # int64 (n_images,)
    n_rows: int


def encode(text: list[list[np.ndarray]], images: list[list], size: int) -> Encoded:
    """Put rows' text ids (``text_ids``'s bags) and thumbnails (PIL images) into one batch."""
    bags = [bag for row in text for bag in row]
    lengths = np.fromiter((len(b) for b in bags), dtype=np.int64, count=len(bags))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    ids = np.concatenate(bags) if len(bags) and lengths.sum() else np.zeros(0, np.int64)
    arrays = [np.asarray(image, dtype=np.float32) for row in images for image in row]
    stacked = (np.stack(arrays).transpose(0, 3, 1, 2) / 255.0 if arrays
               else np.zeros((0, 3, size, size), np.float32))
    image_rows = np.asarray([i for i, row in enumerate(images) for _ in row], dtype=np.int64)
    return Encoded(ids, offsets, stacked.astype(np.float32), image_rows, len(text))
