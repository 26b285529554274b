"""Multi-literal ("atom") matcher for normalised UTF-8 text, callable from numba.

Every rule literal of a text field is an atom; for each row we need the set of
atoms that occur in it (exact ``atom in text`` semantics, overlaps included).

Algorithm
---------
Each atom is keyed by its first two code points (2-8 bytes), or by its only
code point when it has one.  A row is scanned in blocks of 56 bytes:

1. *Code-point starts.*  One 64-byte vector compare (``_lead_mask64``) gives
   a bit per byte that is not a UTF-8 continuation byte.  Only those positions
   can start an atom (a third of the bytes for Chinese), and the same mask
   gives key lengths for free: the key at bit j ends at the second set bit
   after j, so nothing is decoded per byte.
2. *Filter, branch-free.*  At each code-point start the 2-code-point key (and
   the 1-code-point key, if any atom is a single code point) is read with one
   unaligned 8-byte load, masked, hashed with one multiply and looked up in a
   bitmap (256 bits per key, at most 2^20 bits = 128 KB, so L1/L2-resident).
   Results are OR-ed into 64-bit "survivor" masks instead of branching:
   whether a position passes is unpredictable, and a mispredict costs more
   than the probe.
3. *Verify survivors.*  For each survivor bit: linear-probing lookup of the
   exact key, then each atom of that key is compared with two masked 8-byte
   windows (a byte loop only past 16 bytes) and recorded via ``seen``/``hits``.

Measured (bench/matcher_micro.py: 100 MB of Zipf Chinese text, rows 80-200 B,
one core of a 2.6 GHz Sapphire Rapids VM, thread CPU time, via ``scan_column``;
a bare loop over ``scan_row``, as the engine runs it, is 0-10 % faster):

    atoms   MB/s   hits/row      atoms   MB/s   hits/row
    1,000   ~640     2.2         10,000  ~300    12.3
    2,000   ~570     3.4         20,000  ~240    16.1
    5,000   ~430     6.8
    (pyahocorasick driven from Python on the same rows: 6-13 MB/s)

Where the time goes: the filter alone runs ~1 GB/s (~1.3 GB/s when no atom is
a single code point: one probe per position instead of two); each survivor
costs ~50-60 cycles (table and entry cache misses, loop-exit mispredicts).
At 5,000 atoms a row has ~8 survivors, almost all real hits, so filter and
verification take about half each; at 20,000 verification dominates.

Tried and dropped (same data, same machine):
* stepping code point by code point, branching on each filter hit:
  ~330 / 280 / 170 MB/s at 1k / 5k / 20k atoms (mispredicts, serial decode);
* AVX-512 filter over every byte (vpermb windows, vpmullq, vpgatherqq):
  750 MB/s for the filter alone, gathers cost ~13 cycles each here;
* letting LLVM vectorise the per-position probe: it does not;
* an exact 2-choice cuckoo table instead of the bitmap (two loads per probe):
  13-38 % slower; cuckoo or inline-record layouts for verification: no gain;
* hashing each code point once and combining pairs (LLVM re-derives a second
  multiply), one merged survivor loop, branch-free appends: within noise;
* 128 or 512 bits per key, 2^18 or 2^21 bits maximum: no better.

Not tried (issue 15): a second filter window (FDR-style) against false survivors at 5,000+
atoms. With the 256-bit-per-key bitmap a survivor at 5,000 atoms is a real hit ~85 % of the time
(6.8 hits vs ~8 survivors per row, above), so a second window could remove at most ~15 % of the
verifications, ~7 % of the scan; the scan is ~1/3 of the engine's time at 5,000 rules.

Caveats: texts are assumed to be valid UTF-8; invalid bytes cannot make the
scanner read outside ``data`` or report a false match, but may hide matches.
Bytes of neighbouring rows may be loaded (and masked away), never matched.
``_nrt=False`` (numba's switch for reference counting) is what makes the
inlined helpers cheap; it means these kernels must not allocate.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from llvmlite import ir
from numba import njit, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

__all__ = ["AtomMatcher", "scan_row"]

U = np.uint64
HASH_MUL = 0x9E3779B97F4A7C15
_MUL = U(HASH_MUL)
_STRIDE = 56  # block step: every key of a position < 56 ends inside the 64-byte lead mask
_FILTER_BITS_PER_KEY = 256
_MIN_FILTER_LOG2, _MAX_FILTER_LOG2 = 12, 20  # 512 B .. 128 KB: L1/L2 resident

# P_* index the int64 params array (tables[0]).
P_FILTER_SHIFT, P_TABLE_SHIFT, P_HAS_SHORT = range(3)
# An entry is ENTRY_WORDS uint64: atom bytes 0-8, bytes 8-16 (zero padded), id | byte length << 32.
ENTRY_WORDS = 3


# ---------------------------------------------------------------------------
# Raw loads.  Numba has no unaligned or vector loads; both compile to a single
# instruction.  They do no bounds checks: callers guarantee the range is inside
# the array.


@intrinsic
def _load_u64(typingctx, data, pos):
    """data[pos:pos+8] as a little-endian uint64 (unaligned)."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        return builder.load(builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)
    return types.uint64(data, types.intp), codegen


@intrinsic
def _lead_mask64(typingctx, data, pos):
    """Bit k set iff data[pos+k] is not a UTF-8 continuation byte (10xxxxxx)."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        vec = ir.VectorType(ir.IntType(8), 64)
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), vec.as_pointer())
        top2 = builder.and_(builder.load(ptr, align=1), ir.Constant(vec, [0xC0] * 64))
        is_lead = builder.icmp_unsigned("!=", top2, ir.Constant(vec, [0x80] * 64))
        return builder.bitcast(is_lead, ir.IntType(64))
    return types.uint64(data, types.intp), codegen


# ---------------------------------------------------------------------------
# Kernel helpers.  _nrt=False: these are inlined into per-code-point loops, where
# numba's reference counting of their array arguments cost ~17x in throughput.

_inline = njit(inline="always", _nrt=False)


@_inline
def _low_mask(nbytes):
    """Mask of the low nbytes bytes, 1 <= nbytes <= 8."""
    return ~U(0) >> U(64 - 8 * nbytes)


@_inline
def _first_set(bits):
    return np.intp(trailing_zeros(bits))


@_inline
def _load_window(data, i, end):
    """data[i:i+8] as uint64 with bytes at or past `end` zeroed; never reads outside data."""
    n = len(data)
    if n >= 8:
        j = min(i, n - 8)  # near the buffer end, load earlier and shift
        w = _load_u64(data, j) >> U(8 * (i - j))
    else:
        w = U(0)
        for k in range(n - i):
            w |= U(data[i + k]) << U(8 * k)
    return w & _low_mask(min(8, end - i))


@_inline
def _filter_bit(bitmap, shift, key):
    f = (key * _MUL) >> shift
    return (bitmap[f >> U(6)] >> (f & U(63))) & U(1)  # unsigned index: no negative-index fixup


@_inline
def _block_leads(data, pos, end, fast):
    """Code-point starts of data[pos:pos+64]; positions at or past `end` count as starts
    so that a key running off the row gets a (rejected) length instead of garbage."""
    if fast:
        leads = _lead_mask64(data, pos)
    else:
        leads = U(0)
        for k in range(min(64, len(data) - pos)):
            leads |= U((data[pos + k] & 0xC0) != 0x80) << U(k)
    if end - pos < 64:
        leads |= ~U(0) << U(end - pos)
    return leads


@_inline
def _block_filter(bitmap, shift, data, pos, leads, limit, fast, with_short):
    """Survivor masks (bit j = position pos+j) for 2-code-point and 1-code-point keys."""
    long_pass = U(0)
    short_pass = U(0)
    rest = leads
    j = _first_set(rest)
    rest &= rest - U(1)
    j2 = _first_set(rest)  # start of the 2nd code point
    while j < limit:
        rest &= rest - U(1)
        j3 = _first_set(rest)  # start of the 3rd code point = end of the 2-code-point key
        w = _load_u64(data, pos + j) if fast else _load_window(data, pos + j, len(data))
        long_pass |= _filter_bit(bitmap, shift, w & _low_mask(min(j3 - j, 8))) << U(j)
        if with_short:
            short_pass |= _filter_bit(bitmap, shift, w & _low_mask(min(j2 - j, 8))) << U(j)
        j = j2
        j2 = j3
    return long_pass, short_pass


@_inline
def _report(slots, table_shift, entries, rest_offsets, blob, key, data, i, end, seen, hits, n_hits):
    """Record every atom keyed `key` that occurs at data[i:]."""
    slot_mask = U(len(slots) // 2 - 1)
    s = (key * _MUL) >> table_shift
    while slots[U(2) * s + U(1)] != 0 and slots[U(2) * s] != key:  # linear probing; 0 = empty
        s = (s + U(1)) & slot_mask
    bucket = slots[U(2) * s + U(1)]  # first entry << 32 | count
    first = np.intp(bucket >> U(32))
    head = _load_window(data, i, end)
    tail = _load_window(data, i + 8, end) if i + 8 < end else U(0)
    for e in range(first, first + np.intp(bucket & U(0xFFFFFFFF))):
        rec = ENTRY_WORDS * e
        meta = entries[rec + 2]
        size = np.intp(meta >> U(32))
        atom = np.intp(meta & U(0xFFFFFFFF))
        # Both windows are always compared (an empty mask passes): selects, not branches.
        head_mask = _low_mask(min(size, 8))
        tail_mask = _low_mask(min(size - 8, 8)) if size > 8 else U(0)
        match = (i + size <= end) & ((head & head_mask) == entries[rec]) & ((tail & tail_mask) == entries[rec + 1])
        if size > 16 and match:
            off = rest_offsets[atom]
            for k in range(16, size):
                if data[i + k] != blob[off + k - 16]:
                    match = False
                    break
        if match and seen[atom] == 0:
            seen[atom] = 1
            hits[n_hits] = atom
            n_hits += 1
    return n_hits


@njit(cache=True, nogil=True, _nrt=False)
def scan_row(tables, data, start, end, seen, hits, n_hits):
    """Scan data[start:end] (uint8). For each atom occurring there whose seen[atom] == 0,
    set seen[atom] = 1 and hits[n_hits] = atom; n_hits += 1. Return n_hits.
    Caller clears `seen` afterwards using hits; len(seen), len(hits) >= n_atoms."""
    params, bitmap, slots, entries, rest_offsets, blob = tables
    filter_shift = U(params[P_FILTER_SHIFT])
    table_shift = U(params[P_TABLE_SHIFT])
    has_short = params[P_HAS_SHORT] != 0
    for pos in range(start, end, _STRIDE):
        fast = pos + 64 <= len(data)  # the 64-byte vector load and every 8-byte key load stay inside data
        leads = _block_leads(data, pos, end, fast)
        limit = min(_STRIDE, end - pos)
        # Three instantiations so the hot loop carries neither the bounds-safe path nor a dead probe.
        if fast and has_short:
            long_pass, short_pass = _block_filter(bitmap, filter_shift, data, pos, leads, limit, True, True)
        elif fast:
            long_pass, short_pass = _block_filter(bitmap, filter_shift, data, pos, leads, limit, True, False)
        else:
            long_pass, short_pass = _block_filter(bitmap, filter_shift, data, pos, leads, limit, False, has_short)
        while long_pass:
            j = _first_set(long_pass)
            long_pass &= long_pass - U(1)
            after = leads & ~((U(2) << U(j)) - U(1))
            key_len = min(_first_set(after & (after - U(1))) - j, 8)
            key = _load_window(data, pos + j, end) & _low_mask(key_len)
            n_hits = _report(slots, table_shift, entries, rest_offsets, blob, key,
                             data, pos + j, end, seen, hits, n_hits)
        while short_pass:
            j = _first_set(short_pass)
            short_pass &= short_pass - U(1)
            after = leads & ~((U(2) << U(j)) - U(1))
            key_len = min(_first_set(after) - j, 8)
            key = _load_window(data, pos + j, end) & _low_mask(key_len)
            n_hits = _report(slots, table_shift, entries, rest_offsets, blob, key,
                             data, pos + j, end, seen, hits, n_hits)
    return n_hits


# ---------------------------------------------------------------------------
# Drivers (NRT on: they allocate).


@njit(cache=True, nogil=True)
def _scan_bytes(tables, n_atoms, data):
    seen = np.zeros(max(n_atoms, 1), np.uint8)
    hits = np.empty(max(n_atoms, 1), np.int32)
    n = scan_row(tables, data, 0, len(data), seen, hits, 0)
    return hits[:n].copy()


@njit(cache=True, nogil=True)
def _scan_rows(tables, n_atoms, data, offsets, validity, validity_offset):
    """CSR of atom ids per row; validity is an Arrow bitmap (empty = no nulls)."""
    n_rows = len(offsets) - 1
    seen = np.zeros(max(n_atoms, 1), np.uint8)
    row_ptr = np.zeros(n_rows + 1, np.int64)
    ids = np.empty(4 * n_rows + n_atoms + 1, np.int32)
    n_ids = 0
    for r in range(n_rows):
        if len(validity):
            b = validity_offset + r
            if (validity[b >> 3] >> (b & 7)) & 1 == 0:
                row_ptr[r + 1] = n_ids
                continue
        if len(ids) - n_ids < n_atoms + 1:  # room for every atom: scan_row appends to ids directly
            grown = np.empty(2 * len(ids) + n_atoms, np.int32)
            grown[:n_ids] = ids[:n_ids]
            ids = grown
        n = scan_row(tables, data, np.intp(offsets[r]), np.intp(offsets[r + 1]), seen, ids, n_ids)
        for k in range(n_ids, n):
            seen[ids[k]] = 0
        n_ids = n
        row_ptr[r + 1] = n_ids
    return row_ptr, ids[:n_ids]


# ---------------------------------------------------------------------------
# Building the tables.


def _filter_log2(n_keys: int) -> int:
    want = int(np.ceil(np.log2(max(n_keys, 1) * _FILTER_BITS_PER_KEY)))
    return min(max(want, _MIN_FILTER_LOG2), _MAX_FILTER_LOG2)


def _hash(key: int) -> int:
    return (key * HASH_MUL) & 0xFFFFFFFFFFFFFFFF


def _bitmap(keys, log2: int) -> np.ndarray:
    bits = np.zeros(1 << (log2 - 6), np.uint64)
    for key in keys:
        f = _hash(key) >> (64 - log2)
        bits[f >> 6] |= np.uint64(1 << (f & 63))
    return bits


def _word(chunk: bytes) -> int:
    """Up to 8 bytes as a little-endian integer (zero padded)."""
    return int.from_bytes(chunk, "little")


class AtomMatcher:
    """Finds which of a fixed list of literals occur in UTF-8 texts."""

    def __init__(self, tables: tuple, n_atoms: int):
        self.tables = tables
        self.n_atoms = n_atoms

    @classmethod
    def build(cls, atoms: list[str]) -> "AtomMatcher":
        """Atom id = index in `atoms`; duplicates allowed (every id is reported)."""
        # Key value -> atom ids.  Both key kinds share one table and one filter: a 1- and a
        # 2-code-point key can only be equal through NUL padding ("x" vs "x\0"), which just
        # merges two buckets, and verification compares whole atoms anyway.
        buckets: dict[int, list[int]] = {}
        encoded = []
        has_short = False
        for atom_id, atom in enumerate(atoms):
            if not isinstance(atom, str) or not atom:
                raise ValueError(f"atom {atom_id} must be a non-empty str, got {atom!r}")
            raw = atom.encode("utf-8")
            encoded.append(raw)
            has_short |= len(atom) == 1
            key_len = len(atom[:2].encode("utf-8"))
            buckets.setdefault(int.from_bytes(raw[:key_len], "little"), []).append(atom_id)

        table_log2 = max(int(np.ceil(np.log2(max(len(buckets), 1) * 2))), 1)  # load <= 1/2
        slots = np.zeros(2 << table_log2, np.uint64)  # key, first entry << 32 | count (0 = empty)
        entries: list[int] = []
        rest_offsets = np.zeros(max(len(atoms), 1), np.int64)  # where bytes 16.. of an atom sit in blob
        blob = bytearray()
        for key, ids in buckets.items():
            s = _hash(key) >> (64 - table_log2)
            while slots[2 * s + 1]:
                s = (s + 1) & ((1 << table_log2) - 1)
            slots[2 * s] = key
            slots[2 * s + 1] = ((len(entries) // ENTRY_WORDS) << 32) | len(ids)
            for atom_id in ids:
                raw = encoded[atom_id]
                entries += [_word(raw[:8]), _word(raw[8:16]), atom_id | (len(raw) << 32)]
                rest_offsets[atom_id] = len(blob)
                blob += raw[16:]

        filter_log2 = _filter_log2(len(buckets))
        params = np.zeros(3, np.int64)
        params[P_FILTER_SHIFT] = 64 - filter_log2
        params[P_TABLE_SHIFT] = 64 - table_log2
        params[P_HAS_SHORT] = has_short
        tables = (
            params,
            _bitmap(buckets, filter_log2),
            slots,
            np.array(entries or [0] * ENTRY_WORDS, np.uint64),
            rest_offsets,
            np.frombuffer(bytes(blob) + b"\0", np.uint8).copy(),
        )
        return cls(tables, len(atoms))

    def find(self, text: str) -> set[int]:
        """Ids of the atoms occurring in `text` (convenience, for tests)."""
        data = np.frombuffer(text.encode("utf-8"), np.uint8)
        return set(_scan_bytes(self.tables, self.n_atoms, data).tolist())

    def scan_column(self, arr) -> tuple[np.ndarray, np.ndarray]:
        """CSR result: row_ptr (int64, len n+1) and atom ids (int32), distinct atom ids per row
        (any order). Nulls = empty. Accepts string / large_string (or castable) Arrow arrays,
        chunked or not."""
        if isinstance(arr, pa.ChunkedArray):
            parts = [self.scan_column(chunk) for chunk in arr.chunks]
            if not parts:
                return np.zeros(1, np.int64), np.zeros(0, np.int32)
            row_ptrs, base = [np.zeros(1, np.int64)], 0
            for row_ptr, _ in parts:
                row_ptrs.append(row_ptr[1:] + base)
                base += row_ptr[-1]
            return np.concatenate(row_ptrs), np.concatenate([ids for _, ids in parts])
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = arr.cast(pa.large_string())
        if len(arr) == 0:
            return np.zeros(1, np.int64), np.zeros(0, np.int32)
        validity_buf, offsets_buf, data_buf = arr.buffers()
        offset_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
        offsets = np.frombuffer(offsets_buf, offset_type)[arr.offset: arr.offset + len(arr) + 1]
        data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
        if arr.null_count and validity_buf is not None:
            validity = np.frombuffer(validity_buf, np.uint8)
        else:
            validity = np.zeros(0, np.uint8)
        return _scan_rows(self.tables, self.n_atoms, data, offsets, validity, arr.offset)
