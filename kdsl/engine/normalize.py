"""Text normalisation shared by the rule engine: NFKC followed by case folding.

The DSL spec says that both the text and every literal are normalised with
Unicode NFKC and case-folded before matching, and that a null text is the
empty string.  :func:`normalize_text` is that definition, verbatim; everything
else here is a fast, byte-for-byte identical way of applying it to a whole
Arrow column.

How the fast path stays exact
-----------------------------
NFKC is not a per-character mapping in general: combining marks are reordered
and characters compose with their neighbours.  But when the full compatibility
decomposition of *every* character in a row starts with a starter (canonical
combining class 0) that is never the second half of a canonical composition,
no reordering or composition can cross a character boundary, so the row's
NFKC is the concatenation of each character's NFKC.  Case folding is
context-free, so the same holds after ``casefold()``.

Each code point is therefore classified once into

* identity -- it normalises to itself (all CJK ideographs, most ASCII, ...);
* mapped   -- it normalises, on its own and in any context, to a fixed string
  (A-Z, full-width forms, U+3000, ligatures, circled digits, ...);
* complex  -- it may interact with its neighbours (combining marks, Hangul
  vowel/trailing jamo, ...), so the whole row is handed to
  :func:`normalize_text`.

A numba kernel walks the Arrow UTF-8 buffers, copies identity characters,
substitutes mapped ones and flags rows holding a complex character or
malformed UTF-8; those rows are normalised in Python and spliced back in.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import NamedTuple

import numpy as np
import pyarrow as pa
from numba import njit

__all__ = ["normalize_text", "normalize_array"]

_IDENTITY = -1
_COMPLEX = -2
_CODE_POINT_LIMIT = 0x110000
_SURROGATES = range(0xD800, 0xE000)
# Hangul syllables compose algorithmically (L+V -> LV, LV+T -> LVT) rather
# than through decomposition data, so their second halves are listed here.
_HANGUL_VOWEL_JAMO = range(0x1161, 0x1176)
_HANGUL_TRAILING_JAMO = range(0x11A8, 0x11C3)
# U+0345 has the highest canonical combining class (240).  Putting it in
# front of every character makes NFKD reorder any other combining mark, so a
# single C-level is_normalized() call screens a whole block of code points.
_PROBE_MARK = "\u0345"
_BLOCK_SIZE = 256


def normalize_text(s: str | None) -> str:
    """Normalise one text as the DSL spec requires: NFKC, then case folding.

    A null text (``None``) normalises to the empty string.
    """
    return "" if s is None else unicodedata.normalize("NFKC", s).casefold()


class _CodePointTables(NamedTuple):
    action: np.ndarray  # int32[0x110000]: _IDENTITY, _COMPLEX or replacement id
    replacement_offsets: np.ndarray  # int64[k + 1] into replacement_bytes
    replacement_bytes: np.ndarray  # uint8: UTF-8 of every replacement
    replacement_lengths: np.ndarray  # int64[k]: code points per replacement


def _block_is_trivially_identity(block: str) -> bool:
    """True when no code point in ``block`` decomposes, combines or case-folds."""
    probe = _PROBE_MARK + _PROBE_MARK.join(block)
    return block.casefold() == block and unicodedata.is_normalized("NFKD", probe)


def _nontrivial_code_points() -> list[int]:
    found = []
    for start in range(0, _CODE_POINT_LIMIT, _BLOCK_SIZE):
        if start in _SURROGATES:
            continue  # never valid in UTF-8; marked complex separately
        block = "".join(map(chr, range(start, start + _BLOCK_SIZE)))
        if not _block_is_trivially_identity(block):
            found.extend(range(start, start + _BLOCK_SIZE))
    return found


def _composition_second_halves(candidates: list[int]) -> set[int]:
    """Code points that can be the second character of a canonical composition.

    Every character with a decomposition is among ``candidates`` (a trivial
    block has none).  Composition exclusions are included on purpose: being
    too cautious only sends a few more rows to the slow path.
    """
    seconds = set(_HANGUL_VOWEL_JAMO) | set(_HANGUL_TRAILING_JAMO)
    for cp in candidates:
        decomposition = unicodedata.decomposition(chr(cp))
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:
                seconds.add(int(parts[1], 16))
    return seconds


def _build_code_point_tables() -> _CodePointTables:
    candidates = _nontrivial_code_points()
    second_halves = _composition_second_halves(candidates)

    action = np.full(_CODE_POINT_LIMIT, _IDENTITY, dtype=np.int32)
    action[_SURROGATES.start : _SURROGATES.stop] = _COMPLEX
    action[sorted(second_halves)] = _COMPLEX

    replacements: list[bytes] = []
    replacement_lengths: list[int] = []
    for cp in candidates:
        if cp in second_halves:
            continue
        char = chr(cp)
        first = unicodedata.normalize("NFKD", char)[0]
        if unicodedata.combining(first) or ord(first) in second_halves:
            # Its decomposition could reorder or compose with what precedes it.
            action[cp] = _COMPLEX
            continue
        mapped = normalize_text(char)
        if mapped != char:
            action[cp] = len(replacements)
            replacements.append(mapped.encode("utf-8"))
            replacement_lengths.append(len(mapped))

    offsets = np.zeros(len(replacements) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in replacements], out=offsets[1:])
    return _CodePointTables(
        action=action,
        replacement_offsets=offsets,
        replacement_bytes=np.frombuffer(b"".join(replacements), dtype=np.uint8).copy(),
        replacement_lengths=np.asarray(replacement_lengths, dtype=np.int64),
    )


@functools.cache
def _code_point_tables() -> _CodePointTables:
    # Built on first use (~0.1 s), not at import, so importing stays cheap.
    return _build_code_point_tables()


@njit(cache=True, nogil=True)
def _decode_utf8(data, pos, end):
    """Return (code point, byte length) at ``pos``, or (-1, 0) if malformed."""
    b0 = np.int64(data[pos])
    if b0 < 0x80:
        return b0, 1
    if b0 < 0xC2:
        return -1, 0
    if b0 < 0xE0:
        if pos + 1 >= end:
            return -1, 0
        b1 = np.int64(data[pos + 1])
        if (b1 & 0xC0) != 0x80:
            return -1, 0
        return ((b0 & 0x1F) << 6) | (b1 & 0x3F), 2
    if b0 < 0xF0:
        if pos + 2 >= end:
            return -1, 0
        b1 = np.int64(data[pos + 1])
        b2 = np.int64(data[pos + 2])
        if (b1 & 0xC0) != 0x80 or (b2 & 0xC0) != 0x80:
            return -1, 0
        cp = ((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F)
        if cp < 0x800:  # overlong; surrogates are caught by the table
            return -1, 0
        return cp, 3
    if b0 < 0xF5:
        if pos + 3 >= end:
            return -1, 0
        b1 = np.int64(data[pos + 1])
        b2 = np.int64(data[pos + 2])
        b3 = np.int64(data[pos + 3])
        if (b1 & 0xC0) != 0x80 or (b2 & 0xC0) != 0x80 or (b3 & 0xC0) != 0x80:
            return -1, 0
        cp = ((b0 & 0x07) << 18) | ((b1 & 0x3F) << 12) | ((b2 & 0x3F) << 6) | (b3 & 0x3F)
        if cp < 0x10000 or cp >= 0x110000:
            return -1, 0
        return cp, 4
    return -1, 0


@njit(cache=True, nogil=True)
def _normalize_rows(
    in_offsets,
    in_data,
    validity,
    validity_offset,
    first_row,
    row_base,
    out_offsets,
    out_data,
    out_pos,
    char_counts,
    needs_slow_path,
    action,
    replacement_offsets,
    replacement_bytes,
    replacement_lengths,
):
    """Normalise rows ``first_row..`` of one chunk into the shared output.

    Output row ``row_base + i`` receives input row ``i``.  Rows needing the
    slow path (and nulls) are left empty.  Returns ``(next_row, out_pos)``;
    ``next_row`` short of the row count means ``out_data`` is full and must be
    grown before calling again from ``next_row``.
    """
    n_rows = in_offsets.shape[0] - 1
    capacity = out_data.shape[0]
    has_validity = validity.shape[0] > 0
    for row in range(first_row, n_rows):
        out_row = row_base + row
        row_out_start = out_pos
        chars = 0
        slow = False
        is_valid = True
        if has_validity:
            bit = validity_offset + row
            is_valid = (validity[bit >> 3] >> (bit & 7)) & 1 == 1
        if is_valid:
            pos = np.int64(in_offsets[row])
            end = np.int64(in_offsets[row + 1])
            while pos < end:
                cp, width = _decode_utf8(in_data, pos, end)
                if cp < 0:
                    slow = True
                    break
                todo = action[cp]
                if todo == _IDENTITY:  # copy the input bytes
                    if out_pos + width > capacity:
                        return row, row_out_start
                    for k in range(width):
                        out_data[out_pos + k] = in_data[pos + k]
                    out_pos += width
                    chars += 1
                elif todo == _COMPLEX:  # the whole row goes to Python
                    slow = True
                    break
                else:
                    r_start = replacement_offsets[todo]
                    r_len = replacement_offsets[todo + 1] - r_start
                    if out_pos + r_len > capacity:
                        return row, row_out_start
                    for k in range(r_len):
                        out_data[out_pos + k] = replacement_bytes[r_start + k]
                    out_pos += r_len
                    chars += replacement_lengths[todo]
                pos += width
        if slow:
            out_pos = row_out_start
            chars = 0
            needs_slow_path[out_row] = True
        char_counts[out_row] = chars
        out_offsets[out_row + 1] = out_pos
    return n_rows, out_pos


@njit(cache=True, nogil=True)
def _splice_rows(fast_offsets, fast_data, slow_rows, slow_offsets, slow_data):
    """Insert the slow rows' bytes into the (empty) slots the kernel left."""
    n_rows = fast_offsets.shape[0] - 1
    offsets = np.empty(n_rows + 1, dtype=np.int64)
    data = np.empty(fast_offsets[n_rows] + slow_offsets[-1], dtype=np.uint8)
    offsets[0] = 0
    pos = 0
    next_fast_row = 0
    for k in range(slow_rows.shape[0] + 1):
        stop_row = slow_rows[k] if k < slow_rows.shape[0] else n_rows
        # Fast rows before the next slow row move as one contiguous block.
        src_start = fast_offsets[next_fast_row]
        src_end = fast_offsets[stop_row]
        data[pos : pos + src_end - src_start] = fast_data[src_start:src_end]
        shift = pos - src_start
        for row in range(next_fast_row, stop_row):
            offsets[row + 1] = fast_offsets[row + 1] + shift
        pos += src_end - src_start
        if k < slow_rows.shape[0]:
            length = slow_offsets[k + 1] - slow_offsets[k]
            data[pos : pos + length] = slow_data[slow_offsets[k] : slow_offsets[k + 1]]
            pos += length
            offsets[stop_row + 1] = pos
            next_fast_row = stop_row + 1
    return offsets, data


def _chunks(arr) -> list[pa.Array]:
    if isinstance(arr, pa.ChunkedArray):
        chunks = arr.chunks
        arrow_type = arr.type
    else:
        chunks = [arr]
        arrow_type = getattr(arr, "type", None)
    if arrow_type not in (pa.string(), pa.large_string()):
        raise TypeError(f"expected a string or large_string Arrow array, got {arrow_type!r}")
    return chunks


def _chunk_buffers(chunk: pa.Array):
    """Offsets (this slice only), data and validity bitmap as numpy views."""
    validity_buf, offsets_buf, data_buf = chunk.buffers()
    offset_type = np.int64 if chunk.type == pa.large_string() else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=offset_type)[chunk.offset : chunk.offset + len(chunk) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    if chunk.null_count and validity_buf is not None:
        validity = np.frombuffer(validity_buf, dtype=np.uint8)
    else:
        validity = np.empty(0, np.uint8)  # empty means "all valid" to the kernel
    return offsets, data, validity


def _grown(buffer: np.ndarray, used: int) -> np.ndarray:
    bigger = np.empty(max(2 * buffer.shape[0], 1024), dtype=np.uint8)
    bigger[:used] = buffer[:used]
    return bigger


def normalize_array(arr, with_lengths: bool = False):
    """Apply :func:`normalize_text` to every value of an Arrow string column.

    ``arr`` is a ``pa.StringArray``, ``pa.LargeStringArray`` or a
    ``pa.ChunkedArray`` of either; slices and nulls are fine.  Returns a
    ``pa.LargeStringArray`` without nulls (a null becomes ``""``) whose i-th
    value equals ``normalize_text(arr[i].as_py())``.  With ``with_lengths``
    the result is ``(array, lengths)``, ``lengths`` being an int64 numpy
    array of each normalised value's length in code points.
    """
    chunks = _chunks(arr)
    tables = _code_point_tables()
    n_rows = sum(len(chunk) for chunk in chunks)
    out_offsets = np.zeros(n_rows + 1, dtype=np.int64)
    char_counts = np.zeros(n_rows, dtype=np.int64)
    needs_slow_path = np.zeros(n_rows, dtype=np.bool_)

    chunk_buffers = [_chunk_buffers(chunk) for chunk in chunks if len(chunk)]
    # Normalised text is rarely longer than its source, so the input size is a
    # good first guess; the kernel pauses when it runs out of room.
    input_bytes = sum(int(offsets[-1] - offsets[0]) for offsets, _, _ in chunk_buffers)
    out_data = np.empty(input_bytes + 64, dtype=np.uint8)
    out_pos = 0
    row_base = 0
    for chunk, (offsets, data, validity) in zip((c for c in chunks if len(c)), chunk_buffers):
        next_row = 0
        while True:
            next_row, out_pos = _normalize_rows(
                offsets, data, validity, chunk.offset, next_row, row_base,
                out_offsets, out_data, out_pos, char_counts, needs_slow_path,
                *tables,
            )
            if next_row == len(chunk):
                break
            out_data = _grown(out_data, out_pos)
        row_base += len(chunk)

    slow_rows = np.flatnonzero(needs_slow_path)
    if slow_rows.size:
        out_offsets, out_data = _splice_slow_rows(chunk_buffers, chunks, slow_rows, out_offsets, out_data, char_counts)
    else:
        out_data = out_data[:out_pos]

    result = pa.LargeStringArray.from_buffers(
        n_rows, pa.py_buffer(out_offsets), pa.py_buffer(out_data), null_count=0
    )
    return (result, char_counts) if with_lengths else result


def _splice_slow_rows(chunk_buffers, chunks, slow_rows, out_offsets, out_data, char_counts):
    """Normalise the flagged rows in Python and merge them into the output."""
    row_starts = np.cumsum([0] + [len(c) for c in chunks if len(c)])
    encoded = []
    for row in slow_rows.tolist():
        chunk_index = int(np.searchsorted(row_starts, row, side="right")) - 1
        offsets, data, _ = chunk_buffers[chunk_index]
        local = row - row_starts[chunk_index]
        text = data[offsets[local] : offsets[local + 1]].tobytes().decode("utf-8")
        normalized = normalize_text(text)
        char_counts[row] = len(normalized)
        encoded.append(normalized.encode("utf-8"))
    slow_offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=slow_offsets[1:])
    slow_data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return _splice_rows(out_offsets, out_data, slow_rows.astype(np.int64), slow_offsets, slow_data)
