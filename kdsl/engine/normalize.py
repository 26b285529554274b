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

The common case, 64 bytes at a time
-----------------------------------
Chinese customer-service text is mostly ASCII and ideographs U+4000..U+9FFF
(3-byte sequences led by E4..E9), and all such a character ever needs is A-Z
lowered.  Before each code point the kernel classifies the next 64 bytes with
four AVX-512 byte compares (ASCII, continuation, E4..E9 lead, A-Z), takes the
longest prefix that is valid UTF-8 of those kinds only (a continuation byte
exactly where a lead expects one; a sequence cut by the window is left for
the next step) and copies it with one 64-byte store that lowers A-Z on the
way.  Only the code point after the prefix -- a full-width comma, U+3000, an
emoji, an upper-case letter inside a run that is being verified -- takes the
per-code-point table path above.  The check that a column is already
normalised (``_changes_nothing``, which then shares the input's buffer) uses
the same masks with A-Z counted as a change.  The table build asserts that
U+4000..U+9FFF still normalises to itself in the running Python's Unicode.

Measured (100,000 rows of bench/engine.py's log, 35 MB, one core, CPU time,
best of 5, load 5-9 on the shared 2-core VM):

    text                         table path only   with the vector prefix
    raw (61-95 % of rows change)     820 MB/s          1,150-1,250 MB/s
    already normalised (shared)      850 MB/s          1,700-1,750 MB/s

Single values (``Engine.predict``) go through :func:`normalize_one`: CPython's
NFKC is C code that returns at once when its quick check passes, but one
full-width comma fails that check and costs a full decomposition and
recomposition; replacing the common full-width forms first (exact, see
``_COMMON_FULLWIDTH``) cut the three fields of a bench record from 28-48 µs
to 4-6 µs (load ~9, so both inflated alike).  ``str.translate`` with a table was 2x slower than plain
NFKC, and ``re.sub`` with a callback 2-3x slower than the ``replace`` chain.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from typing import NamedTuple

import numpy as np
import pyarrow as pa
from llvmlite import ir
from numba import njit, types
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros
from numba.extending import intrinsic

from kdsl.dsl.text import normalize_text  # the definition; this module applies it to columns

__all__ = ["normalize_array", "normalize_one", "normalize_text"]

_CODE_POINT_LIMIT = 0x110000
# The kernel maps malformed UTF-8 to this index; its table entry is _COMPLEX.
_MALFORMED = _CODE_POINT_LIMIT
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

# One int64 per code point.  A non-negative entry packs the normalised UTF-8
# (up to 4 bytes, little-endian in bits 0-31), its byte length (bits 32-39)
# and its length in code points (bits 40-47), so identity and mapped
# characters take the same branch-free path through the kernel.  Negative
# entries are the rare cases.
_BYTE_LENGTH_SHIFT = 32
_CHAR_COUNT_SHIFT = 40
_PACKED_MAX_BYTES = 4
_COMPLEX = -1
_LONG_BASE = -2  # entry _LONG_BASE - k: replacement k is longer than 4 bytes

if sys.byteorder != "little":  # packed entries and the 4-byte loads rely on it
    raise ImportError("kdsl.engine.normalize needs a little-endian machine")


class _CodePointTable(NamedTuple):
    entries: np.ndarray  # int64[0x110001], see _COMPLEX / _LONG_BASE above
    long_offsets: np.ndarray  # int64[k + 1] into long_bytes
    long_bytes: np.ndarray  # uint8: UTF-8 of replacements longer than 4 bytes
    long_lengths: np.ndarray  # int64[k]: code points in each long replacement


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


def _classify_code_points() -> tuple[list[int], dict[int, str]]:
    """(complex code points, {code point: replacement}) -- the rest are identity.

    A code point is context-free when its full compatibility decomposition
    starts with a starter that never composes with a preceding character:
    then nothing before it can reorder or compose across it (see the module
    docstring).
    """
    candidates = _nontrivial_code_points()
    second_halves = _composition_second_halves(candidates)
    complex_code_points = sorted(second_halves | set(_SURROGATES))
    replacements = {}
    for cp in candidates:
        if cp in second_halves:
            continue
        char = chr(cp)
        first = unicodedata.normalize("NFKD", char)[0]
        if unicodedata.combining(first) or ord(first) in second_halves:
            complex_code_points.append(cp)
            continue
        mapped = normalize_text(char)
        if mapped != char:
            replacements[cp] = mapped
    return complex_code_points, replacements


def _packed_entry(utf8: bytes, char_count: int) -> int:
    return int.from_bytes(utf8, "little") | len(utf8) << _BYTE_LENGTH_SHIFT | char_count << _CHAR_COUNT_SHIFT


def _identity_entries(cp: np.ndarray) -> np.ndarray:
    """Packed entries for every code point in ``cp`` as its own normalisation."""

    def continuation(shift):
        return 0x80 | ((cp >> shift) & 0x3F)

    one = cp
    two = (0xC0 | (cp >> 6)) | continuation(0) << 8
    three = (0xE0 | (cp >> 12)) | continuation(6) << 8 | continuation(0) << 16
    four = (0xF0 | (cp >> 18)) | continuation(12) << 8 | continuation(6) << 16 | continuation(0) << 24
    width = 1 + (cp >= 0x80) + (cp >= 0x800) + (cp >= 0x10000)
    utf8 = np.choose(width - 1, [one, two, three, four])
    return utf8 | width.astype(np.int64) << _BYTE_LENGTH_SHIFT | np.int64(1) << _CHAR_COUNT_SHIFT


def _build_code_point_table() -> _CodePointTable:
    complex_code_points, replacements = _classify_code_points()
    entries = np.empty(_CODE_POINT_LIMIT + 1, dtype=np.int64)
    entries[:_CODE_POINT_LIMIT] = _identity_entries(np.arange(_CODE_POINT_LIMIT, dtype=np.int64))
    long_replacements = []
    for cp, mapped in replacements.items():
        encoded = mapped.encode("utf-8")
        if len(encoded) <= _PACKED_MAX_BYTES:
            entries[cp] = _packed_entry(encoded, len(mapped))
        else:
            entries[cp] = _LONG_BASE - len(long_replacements)
            long_replacements.append(mapped)
    entries[complex_code_points] = _COMPLEX
    entries[_MALFORMED] = _COMPLEX
    lo, hi = _CJK_IDENTITY_RANGE  # the vector path copies these without looking them up
    if (entries[lo:hi] != _identity_entries(np.arange(lo, hi, dtype=np.int64))).any():
        raise AssertionError(f"U+{lo:04X}..U+{hi - 1:04X} no longer normalises to itself")

    encoded_long = [m.encode("utf-8") for m in long_replacements]
    long_offsets = np.zeros(len(encoded_long) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded_long], out=long_offsets[1:])
    return _CodePointTable(
        entries=entries,
        long_offsets=long_offsets,
        long_bytes=np.frombuffer(b"".join(encoded_long), dtype=np.uint8).copy(),
        long_lengths=np.array([len(m) for m in long_replacements], dtype=np.int64),
    )


@functools.cache
def _code_point_table() -> _CodePointTable:
    # Built on first use (~0.15 s), not at import, so importing stays cheap.
    return _build_code_point_table()


@functools.cache
def _changed_code_points() -> np.ndarray:
    """uint8 per code point (and one more for malformed input): 1 where normalisation changes
    the character, 0 where it is left as it is."""
    entries = _code_point_table().entries
    identity = _identity_entries(np.arange(_CODE_POINT_LIMIT, dtype=np.int64))
    return np.append(entries[:-1] != identity, True).astype(np.uint8)


@njit(cache=True, nogil=True)
def _changes_nothing(data, start, end, changed):
    """Whether every character of data[start:end] normalises to itself (valid UTF-8 only)."""
    pos = start
    while pos < end:
        if pos + _VECTOR_BYTES <= data.shape[0]:
            plain, _ = _plain_prefix(data, pos, end, False)
            pos += plain
            if plain:
                continue
        b0 = data[pos]
        if b0 < 0x80:
            if changed[b0]:
                return False
            pos += 1
        elif 0xE4 <= b0 <= 0xE9 and pos + 3 <= end and (data[pos + 1] & 0xC0) == 0x80 \
                and (data[pos + 2] & 0xC0) == 0x80:
            pos += 3  # U+4000..U+9FFF: CJK ideographs, all unchanged
        else:
            cp, width = _decode_utf8(data, pos, end)
            if changed[cp]:
                return False
            pos += width
    return True


@njit(cache=True, nogil=True)
def _null_rows_are_empty(offsets, validity, validity_offset):
    for row in range(offsets.shape[0] - 1):
        bit = validity_offset + row
        if not (validity[bit >> 3] >> (bit & 7)) & 1 and offsets[row] != offsets[row + 1]:
            return False
    return True


@njit(cache=True, nogil=True)
def _char_counts(offsets, data):
    counts = np.empty(offsets.shape[0] - 1, dtype=np.int64)
    for row in range(counts.shape[0]):
        n = 0
        for pos in range(offsets[row], offsets[row + 1]):
            n += (data[pos] & 0xC0) != 0x80
        counts[row] = n
    return counts


def _unchanged(arr) -> pa.LargeStringArray | None:
    """``arr`` itself as a LargeStringArray without nulls, sharing its data buffer, when
    normalising would change nothing (a log that was normalised before); else None."""
    chunks = _string_chunks(arr)
    if len(chunks) != 1:
        return None
    chunk = _as_chunk(chunks[0])
    if chunk.validity.size and not _null_rows_are_empty(chunk.offsets, chunk.validity, chunk.validity_offset):
        return None
    if not _changes_nothing(chunk.data, chunk.offsets[0], chunk.offsets[-1], _changed_code_points()):
        return None
    offsets = chunk.offsets.astype(np.int64)
    return pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets),
                                            chunks[0].buffers()[2], null_count=0)


# The kernel moves whole 4-byte words with unaligned loads and stores, which
# is ~30% faster than byte by byte; numba has no such operation, so it is
# emitted directly.  Packed table entries assume a little-endian machine.
@intrinsic
def _load_u32(typingctx, array, index):
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        pointer = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(32).as_pointer())
        word = builder.load(pointer)
        word.align = 1
        return word

    return types.uint32(array, index), codegen


@intrinsic
def _store_u32(typingctx, array, index, value):
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        pointer = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(32).as_pointer())
        store = builder.store(builder.trunc(args[2], ir.IntType(32)), pointer)
        store.align = 1
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@njit(inline="always")
def _peek_u32(data, pos):
    """The (up to) 4 bytes at ``pos`` as a little-endian int, zeros past the end."""
    if pos + 4 <= data.shape[0]:
        return np.int64(_load_u32(data, pos))
    word = np.int64(0)
    for k in range(data.shape[0] - pos):
        word |= np.int64(data[pos + k]) << (8 * k)
    return word


# The common case, 64 bytes at a time.  Chinese customer-service text is mostly ASCII and
# CJK ideographs in U+4000..U+9FFF (3-byte sequences led by E4..E9), and the only change any of
# those needs is ASCII upper to lower case.  One vector pass classifies 64 bytes into bit masks;
# the longest prefix of valid ASCII / ideograph sequences is copied with a single lowering vector
# store, and only the code point after it (a full-width comma, U+3000, an emoji, ...) takes the
# per-code-point table path.
_VECTOR_BYTES = 64
_U64 = np.uint64


def _byte_range_mask(lo: int, hi: int):
    """An intrinsic: bit k set iff lo <= data[pos + k] <= hi, for 64 bytes (no bounds check)."""

    @intrinsic
    def mask(typingctx, data, pos):
        def codegen(context, builder, signature, args):
            vec = ir.VectorType(ir.IntType(8), _VECTOR_BYTES)
            base = context.make_array(signature.args[0])(context, builder, args[0]).data
            pointer = builder.bitcast(builder.gep(base, [args[1]]), vec.as_pointer())
            shifted = builder.sub(builder.load(pointer, align=1), ir.Constant(vec, [lo] * _VECTOR_BYTES))
            inside = builder.icmp_unsigned("<=", shifted, ir.Constant(vec, [hi - lo] * _VECTOR_BYTES))
            return builder.bitcast(inside, ir.IntType(64))

        return types.uint64(data, types.intp), codegen

    return mask


_ascii_mask = _byte_range_mask(0x00, 0x7F)
_continuation_mask = _byte_range_mask(0x80, 0xBF)
_ideograph_lead_mask = _byte_range_mask(0xE4, 0xE9)  # U+4000..U+9FFF
_upper_mask = _byte_range_mask(0x41, 0x5A)
_CJK_IDENTITY_RANGE = (0x4000, 0xA000)  # every code point here normalises to itself


@intrinsic
def _store_lowered64(typingctx, src, pos, dst, out_pos):
    """dst[out_pos:out_pos+64] = src[pos:pos+64] with A-Z lowered (no bounds check)."""

    def codegen(context, builder, signature, args):
        vec = ir.VectorType(ir.IntType(8), _VECTOR_BYTES)
        src_base = context.make_array(signature.args[0])(context, builder, args[0]).data
        dst_base = context.make_array(signature.args[2])(context, builder, args[2]).data
        data = builder.load(builder.bitcast(builder.gep(src_base, [args[1]]), vec.as_pointer()), align=1)
        shifted = builder.sub(data, ir.Constant(vec, [0x41] * _VECTOR_BYTES))
        upper = builder.icmp_unsigned("<=", shifted, ir.Constant(vec, [25] * _VECTOR_BYTES))
        lowered = builder.add(data, builder.select(upper, ir.Constant(vec, [0x20] * _VECTOR_BYTES),
                                                   ir.Constant(vec, [0] * _VECTOR_BYTES)))
        builder.store(lowered, builder.bitcast(builder.gep(dst_base, [args[3]]), vec.as_pointer()), align=1)
        return context.get_dummy_value()

    return types.void(src, pos, dst, out_pos), codegen


@intrinsic
def _popcount64(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(bits), codegen


@njit(inline="always")
def _low_bits(k):
    return ~_U64(0) if k >= 64 else (_U64(1) << _U64(k)) - _U64(1)


@njit(inline="always")
def _plain_prefix(data, pos, end, upper_is_plain):
    """(k, chars): data[pos:pos+k] is valid UTF-8 made only of ASCII (without A-Z unless
    ``upper_is_plain``) and code points U+4000..U+9FFF, ends on a code point boundary, and holds
    ``chars`` code points.  ``pos`` must start a code point and pos + 64 <= len(data)."""
    ascii_bytes = _ascii_mask(data, pos)
    if not upper_is_plain:
        ascii_bytes &= ~_upper_mask(data, pos)
    continuation = _continuation_mask(data, pos)
    leads = _ideograph_lead_mask(data, pos)
    expected = (leads << _U64(1)) | (leads << _U64(2))  # where a lead's two continuations sit
    bad = ~(ascii_bytes | continuation | leads) | (continuation ^ expected)
    limit = end - pos
    if limit < 64:
        bad |= ~_U64(0) << _U64(limit)
    k = 64 if bad == 0 else np.int64(trailing_zeros(bad))
    starts = (ascii_bytes | leads) & _low_bits(k)
    if starts:  # a sequence cut by the prefix's end (or by the block's) is left for later
        last = 63 - np.int64(leading_zeros(starts))
        if (leads >> _U64(last)) & _U64(1) and last + 3 > k:
            k = last
            starts &= _low_bits(k)
    return k, np.int64(_popcount64(starts))


@njit(cache=True, nogil=True)
def _decode_utf8(data, pos, end):
    """(code point, byte length) at ``pos``; (_MALFORMED, 1) if malformed."""
    b0 = np.int64(data[pos])
    if b0 < 0x80:
        return b0, 1
    if b0 < 0xC2 or b0 > 0xF4:
        return _MALFORMED, 1
    width = 2 if b0 < 0xE0 else (3 if b0 < 0xF0 else 4)
    if pos + width > end:
        return _MALFORMED, 1
    cp = b0 & (0x7F >> width)
    for k in range(1, width):
        byte = np.int64(data[pos + k])
        if (byte & 0xC0) != 0x80:
            return _MALFORMED, 1
        cp = (cp << 6) | (byte & 0x3F)
    # Overlong forms and code points past U+10FFFF; surrogates are in the table.
    if cp < (0x80, 0x800, 0x10000)[width - 2] or cp >= _CODE_POINT_LIMIT:
        return _MALFORMED, 1
    return cp, width


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
    entries,
    long_offsets,
    long_bytes,
    long_lengths,
):
    """Normalise rows ``first_row..`` of one chunk into the shared output.

    Output row ``row_base + i`` receives input row ``i``.  Rows needing the
    slow path (and nulls) are left empty.  Returns ``(next_row, out_pos)``;
    ``next_row`` short of the row count means ``out_data`` is full and must be
    grown before calling again from ``next_row``.
    """
    n_rows = in_offsets.shape[0] - 1
    # The hot loop always stores 4 bytes, so it needs that much headroom.
    fast_limit = out_data.shape[0] - _PACKED_MAX_BYTES
    has_validity = validity.shape[0] > 0
    for row in range(first_row, n_rows):
        out_row = row_base + row
        row_out_start = out_pos
        chars = 0
        pos = np.int64(in_offsets[row])
        end = np.int64(in_offsets[row + 1])
        if has_validity:
            bit = validity_offset + row
            if (validity[bit >> 3] >> (bit & 7)) & 1 == 0:
                end = pos  # null: normalises to ""
        while pos < end:
            # Hot loop: everything it cannot finish with one packed entry
            # breaks out to the rare cases below.
            while pos < end:
                if pos + _VECTOR_BYTES <= in_data.shape[0] and out_pos + _VECTOR_BYTES <= out_data.shape[0]:
                    plain, plain_chars = _plain_prefix(in_data, pos, end, True)
                    if plain:
                        _store_lowered64(in_data, pos, out_data, out_pos)
                        pos += plain
                        out_pos += plain
                        chars += plain_chars
                        if pos >= end:
                            break
                word = _peek_u32(in_data, pos)
                b0 = word & 0xFF
                if b0 < 0x80:
                    cp = b0
                    width = 1
                elif 0xE1 <= b0 <= 0xEF and pos + 3 <= end:
                    # 3-byte sequence led by E1..EF (no overlong forms): CJK.
                    cp = ((b0 & 0x0F) << 12) | ((word >> 2) & 0xFC0) | ((word >> 16) & 0x3F)
                    if (word & 0xC0C000) != 0x808000:  # continuation bytes?
                        cp = _MALFORMED
                    width = 3
                else:
                    cp, width = _decode_utf8(in_data, pos, end)
                entry = entries[cp]
                if entry < 0 or out_pos > fast_limit:
                    break
                _store_u32(out_data, out_pos, entry)
                out_pos += (entry >> _BYTE_LENGTH_SHIFT) & 0xFF
                chars += entry >> _CHAR_COUNT_SHIFT
                pos += width
            if pos >= end:
                break
            if entry == _COMPLEX:
                needs_slow_path[out_row] = True
                out_pos = row_out_start
                chars = 0
                break
            if entry >= 0:
                return row, row_out_start  # out of room
            k = _LONG_BASE - entry
            start = long_offsets[k]
            length = long_offsets[k + 1] - start
            if out_pos + length > out_data.shape[0]:
                return row, row_out_start
            out_data[out_pos : out_pos + length] = long_bytes[start : start + length]
            out_pos += length
            chars += long_lengths[k]
            pos += width
        char_counts[out_row] = chars
        out_offsets[out_row + 1] = out_pos
    return n_rows, out_pos


@njit(cache=True, nogil=True)
def _splice_in_place(fast_offsets, offsets, data, slow_rows, slow_offsets, slow_data):
    """Move the fast rows to ``offsets`` and fill the slow rows' slots.

    Works back to front, copying each block of fast rows backwards, so every
    byte moves right (into room ``data`` already has) before anything
    overwrites it, and no second buffer is needed.
    """
    block_end = fast_offsets.shape[0] - 1
    for k in range(slow_rows.shape[0] - 1, -1, -1):
        row = slow_rows[k]
        # Fast rows row+1 .. block_end-1 move as one block.
        src = fast_offsets[row + 1]
        dst = offsets[row + 1]
        for i in range(fast_offsets[block_end] - src - 1, -1, -1):
            data[dst + i] = data[src + i]
        data[offsets[row] : offsets[row + 1]] = slow_data[slow_offsets[k] : slow_offsets[k + 1]]
        block_end = row


class _Chunk(NamedTuple):
    """One non-empty Arrow chunk as numpy views of its buffers."""

    offsets: np.ndarray  # int32 or int64, this slice's n + 1 offsets only
    data: np.ndarray  # uint8, the whole data buffer (offsets are absolute)
    validity: np.ndarray  # uint8 bitmap; empty when there are no nulls
    validity_offset: int


def _as_chunk(array: pa.Array) -> _Chunk:
    validity_buf, offsets_buf, data_buf = array.buffers()
    offset_type = np.int64 if array.type == pa.large_string() else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=offset_type)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    has_nulls = array.null_count and validity_buf is not None
    validity = np.frombuffer(validity_buf, dtype=np.uint8) if has_nulls else np.empty(0, np.uint8)
    return _Chunk(offsets, data, validity, array.offset)


def _string_chunks(arr) -> list[pa.Array]:
    """The non-empty string arrays making up ``arr`` (none for an all-null type)."""
    arrow_type = getattr(arr, "type", None)
    if arrow_type == pa.null():
        return []
    if arrow_type not in (pa.string(), pa.large_string()):
        raise TypeError(f"expected an Arrow string or large_string array, got {arrow_type}")
    arrays = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    return [array for array in arrays if len(array)]


def _grown(buffer: np.ndarray, used: int, needed: int = 0) -> np.ndarray:
    bigger = np.empty(max(2 * buffer.shape[0], needed, 1024), dtype=np.uint8)
    bigger[:used] = buffer[:used]
    return bigger


# The full-width forms U+FF01..U+FF5E and U+3000 are starters whose compatibility decomposition
# is one ASCII character, so replacing any of them by it leaves the text's NFKD, hence its NFKC,
# unchanged. These are the ones Chinese customer-service text is full of (bench/engine.py NOISE).
_COMMON_FULLWIDTH = tuple((c, unicodedata.normalize("NFKC", c)) for c in "，？！：（）\u3000")


def normalize_one(text: str | None) -> str:
    """:func:`normalize_text` of one value, faster on Chinese text (what ``Engine.predict`` uses).

    CPython's NFKC returns at once when its quick check passes, but one full-width comma fails
    it and costs a full decomposition and recomposition (~15 µs for 80 characters). The common
    full-width forms are replaced first, exactly (see _COMMON_FULLWIDTH), so that the quick
    check usually passes; any other character still gets the full NFKC.

    >>> normalize_one("请问ＶＩＰ会员？\u3000可以吗！")
    '请问vip会员? 可以吗!'
    """
    if text is None:
        return ""
    if not text.isascii():
        for fullwidth, ascii_char in _COMMON_FULLWIDTH:
            text = text.replace(fullwidth, ascii_char)
    return unicodedata.normalize("NFKC", text).casefold()


def normalize_array(
    arr: pa.Array | pa.ChunkedArray, with_lengths: bool = False
) -> pa.LargeStringArray | tuple[pa.LargeStringArray, np.ndarray]:
    """Apply :func:`normalize_text` to every value of an Arrow string column.

    ``arr`` is a ``pa.StringArray``, ``pa.LargeStringArray`` or a
    ``pa.ChunkedArray`` of either; slices and nulls are fine, and so is an
    all-null column of type ``pa.null()``.  Returns a ``pa.LargeStringArray``
    without nulls (a null becomes ``""``) whose i-th value is byte for byte
    ``normalize_text(arr[i].as_py())``.  With ``with_lengths`` the result is
    ``(array, lengths)``, ``lengths`` being an int64 numpy array of each
    normalised value's length in code points (what ``len()`` gives).
    Malformed UTF-8 raises ``UnicodeDecodeError``, as ``as_py()`` would.
    """
    unchanged = _unchanged(arr)
    if unchanged is not None:
        if not with_lengths:
            return unchanged
        offsets = np.frombuffer(unchanged.buffers()[1], dtype=np.int64)
        return unchanged, _char_counts(offsets, np.frombuffer(unchanged.buffers()[2], dtype=np.uint8))
    chunks = [_as_chunk(array) for array in _string_chunks(arr)]
    n_rows = len(arr)
    table = _code_point_table()
    out_offsets = np.zeros(n_rows + 1, dtype=np.int64)
    char_counts = np.zeros(n_rows, dtype=np.int64)
    needs_slow_path = np.zeros(n_rows, dtype=np.bool_)
    # Normalised text is rarely longer than its source, so the input size is a
    # good first guess; the kernel pauses when it runs out of room.
    input_bytes = sum(int(chunk.offsets[-1] - chunk.offsets[0]) for chunk in chunks)
    out_data = np.empty(input_bytes + 64, dtype=np.uint8)
    out_pos = 0
    row_base = 0
    for chunk in chunks:
        chunk_rows = len(chunk.offsets) - 1
        next_row = 0
        while True:
            next_row, out_pos = _normalize_rows(
                *chunk,
                next_row,
                row_base,
                out_offsets,
                out_data,
                out_pos,
                char_counts,
                needs_slow_path,
                *table,
            )
            if next_row == chunk_rows:
                break
            out_data = _grown(out_data, out_pos)
        row_base += chunk_rows

    slow_rows = np.flatnonzero(needs_slow_path)
    if slow_rows.size:
        out_offsets, out_data = _with_slow_rows(chunks, slow_rows, out_offsets, out_data, char_counts)
    out_data = out_data[: out_offsets[-1]]

    result = pa.LargeStringArray.from_buffers(
        n_rows, pa.py_buffer(out_offsets), pa.py_buffer(out_data), null_count=0
    )
    return (result, char_counts) if with_lengths else result


def _with_slow_rows(chunks, slow_rows, out_offsets, out_data, char_counts):
    """Normalise the flagged rows in Python and splice them into the output."""
    chunk_starts = np.cumsum([0] + [len(chunk.offsets) - 1 for chunk in chunks])
    chunk_of_row = np.searchsorted(chunk_starts, slow_rows, side="right") - 1
    encoded = []
    for row, chunk_index in zip(slow_rows.tolist(), chunk_of_row.tolist()):
        offsets, data, _, _ = chunks[chunk_index]
        local = row - chunk_starts[chunk_index]
        text = data[offsets[local] : offsets[local + 1]].tobytes().decode("utf-8")
        normalized = normalize_text(text)
        char_counts[row] = len(normalized)
        encoded.append(normalized.encode("utf-8"))
    slow_lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    slow_offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(slow_lengths, out=slow_offsets[1:])
    # Each slow row pushes every later row right by its length.
    growth = np.zeros_like(out_offsets)
    growth[slow_rows + 1] = slow_lengths
    offsets = out_offsets + np.cumsum(growth)
    if offsets[-1] > out_data.shape[0]:
        out_data = _grown(out_data, int(out_offsets[-1]), int(offsets[-1]))
    slow_data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    _splice_in_place(out_offsets, offsets, out_data, slow_rows, slow_offsets, slow_data)
    return offsets, out_data
