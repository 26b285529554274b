"""AtomMatcher against the oracle {i for i, a in enumerate(atoms) if a in text}."""

import ctypes
import mmap
import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from kdsl.engine.matcher import AtomMatcher, scan_row


def oracle(atoms, text):
    return {i for i, a in enumerate(atoms) if a in text}


def check_csr(matcher, atoms, texts, result):
    row_ptr, ids = result
    assert row_ptr.dtype == np.int64 and ids.dtype == np.int32
    assert len(row_ptr) == len(texts) + 1 and row_ptr[0] == 0
    for r, text in enumerate(texts):
        got = ids[row_ptr[r]:row_ptr[r + 1]].tolist()
        assert len(got) == len(set(got)), "ids must be distinct per row"
        assert set(got) == (set() if text is None else oracle(atoms, text)), (r, text)


# Few distinct characters so atoms share prefixes and occur often; every UTF-8 width is present
# (ASCII, 2-byte, 3-byte CJK, 4-byte emoji) plus NUL, whose zero bytes look like key padding.
CHARS = "ab1 éж的一是不了人我在有他这中大来上😀🀄\x00"
char = st.sampled_from(CHARS)
atom = st.text(CHARS, min_size=1, max_size=8)


@st.composite
def atoms_and_texts(draw):
    base = draw(st.lists(atom, min_size=0, max_size=25))
    derived = []
    for a in base[:6]:  # prefixes, suffixes, duplicates and long extensions of other atoms
        cut = draw(st.integers(1, len(a)))
        derived += [a[:cut], a[-cut:], a, a * draw(st.integers(2, 4))]
    atoms = draw(st.permutations(base + derived))
    pieces = st.one_of(st.sampled_from(atoms), char) if atoms else char
    texts = draw(st.lists(st.lists(pieces, max_size=60).map("".join), min_size=1, max_size=8))
    return atoms, texts


fast_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast_settings
@given(atoms_and_texts())
def test_find_matches_oracle(case):
    atoms, texts = case
    matcher = AtomMatcher.build(atoms)
    assert matcher.n_atoms == len(atoms)
    for text in texts:
        assert matcher.find(text) == oracle(atoms, text)


@fast_settings
@given(atoms_and_texts(), st.data())
def test_scan_column_matches_oracle(case, data):
    atoms, texts = case
    texts = [None if data.draw(st.integers(0, 5)) == 0 else t for t in texts]
    matcher = AtomMatcher.build(atoms)
    for typ in (pa.string(), pa.large_string()):
        arr = pa.array(texts, typ)
        check_csr(matcher, atoms, texts, matcher.scan_column(arr))
        lo = data.draw(st.integers(0, len(texts)))
        hi = data.draw(st.integers(lo, len(texts)))
        check_csr(matcher, atoms, texts[lo:hi], matcher.scan_column(arr.slice(lo, hi - lo)))


def test_long_rows_and_block_boundaries():
    # Atoms straddling every offset of the 56/64-byte blocks, long atoms (> 16 bytes, memcmp path).
    rng = np.random.default_rng(7)
    alphabet = list("的一是不了人我在有他这中大来上个们到说国和地也子时道出而要于就下得可你年生ab1é😀")
    atoms = ["".join(rng.choice(alphabet, rng.integers(1, 9))) for _ in range(300)]
    atoms += ["我们的订单什么时候发货呢请尽快处理", "退款退款退款退款退款退款", "x" * 40, "中国" * 10]
    texts = []
    for _ in range(300):
        parts = [atoms[i] if rng.random() < 0.3 else "".join(rng.choice(alphabet, 3))
                 for i in rng.integers(0, len(atoms), rng.integers(0, 40))]
        texts.append("".join(parts))
    matcher = AtomMatcher.build(atoms)
    check_csr(matcher, atoms, texts, matcher.scan_column(pa.array(texts)))
    for text in texts[:50]:
        assert matcher.find(text) == oracle(atoms, text)


def test_chunked_and_empty_inputs():
    atoms = ["退款", "退", "款退", "ab", "b", "退款退款"]
    matcher = AtomMatcher.build(atoms)
    chunks = [["退款退款", None, ""], [], ["xab", "款退款"]]
    arr = pa.chunked_array([pa.array(c, pa.string()) for c in chunks], pa.string())
    texts = [t for c in chunks for t in c]
    check_csr(matcher, atoms, texts, matcher.scan_column(arr))
    check_csr(matcher, atoms, [], matcher.scan_column(pa.chunked_array([], pa.string())))
    check_csr(matcher, atoms, [], matcher.scan_column(pa.array([], pa.large_string())))
    check_csr(matcher, atoms, [None, None], matcher.scan_column(pa.array([None, None], pa.string())))
    assert matcher.find("") == set()


def test_no_atoms():
    matcher = AtomMatcher.build([])
    assert matcher.n_atoms == 0
    assert matcher.find("退款 anything") == set()
    row_ptr, ids = matcher.scan_column(pa.array(["退款", None, "x" * 200]))
    assert row_ptr.tolist() == [0, 0, 0, 0] and len(ids) == 0


def test_duplicates_report_every_id():
    matcher = AtomMatcher.build(["退款", "退款", "款", "款"])
    assert matcher.find("我要退款") == {0, 1, 2, 3}


def test_empty_atom_rejected():
    with pytest.raises(ValueError):
        AtomMatcher.build(["ok", ""])


def test_tiny_buffers_never_read_out_of_bounds():
    # Buffers shorter than one 8-byte load take the byte-wise path.
    atoms = ["a", "ab", "的", "的是", "😀"]
    matcher = AtomMatcher.build(atoms)
    for text in ["", "a", "ab", "的", "的是", "😀", "x的是", "ba的"]:
        assert matcher.find(text) == oracle(atoms, text)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses mprotect")
def test_reads_stay_inside_data():
    """Texts flush against inaccessible guard pages: any read outside `data` would crash."""
    page = mmap.PAGESIZE
    region = mmap.mmap(-1, 3 * page)
    anchor = ctypes.c_char.from_buffer(region)
    base = ctypes.addressof(anchor)
    del anchor
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    mem = np.frombuffer(region, np.uint8)
    atoms = ["的是", "a", "ab", "的", "😀", "人我在有他这中大来上个们到"]
    matcher = AtomMatcher.build(atoms)
    texts = ["", "a", "的", "ab的是", "😀的是", "的是" * 40, "人我在有他这中大来上个们到", "xa" * 50]
    try:
        assert libc.mprotect(base, page, 0) == 0 and libc.mprotect(base + 2 * page, page, 0) == 0
        for text in texts:
            raw = np.frombuffer(text.encode(), np.uint8)
            for data in (mem[2 * page - len(raw):2 * page], mem[page:page + len(raw)]):  # at the end, at the start
                data[:] = raw
                seen = np.zeros(len(atoms), np.uint8)
                hits = np.zeros(len(atoms), np.int32)
                n = scan_row(matcher.tables, data, 0, len(data), seen, hits, 0)
                assert set(hits[:n].tolist()) == oracle(atoms, text)
    finally:
        libc.mprotect(base, 3 * page, mmap.PROT_READ | mmap.PROT_WRITE)


def test_invalid_utf8_never_false_positive():
    atoms = ["的是", "ab", "是", "b\x80"]
    matcher = AtomMatcher.build(atoms)
    raw = [a.encode() for a in atoms]
    rng = np.random.default_rng(3)
    for _ in range(200):
        data = rng.choice(np.frombuffer(b"ab\x80\xe7\x9a\x84\xe6\x98\xaf\xff", np.uint8), rng.integers(0, 100))
        seen = np.zeros(len(atoms), np.uint8)
        hits = np.zeros(len(atoms), np.int32)
        n = scan_row(matcher.tables, data, 0, len(data), seen, hits, 0)
        assert set(hits[:n].tolist()) <= {i for i, a in enumerate(raw) if a in data.tobytes()}


@njit
def _user_kernel(tables, n_atoms, data, offsets):
    """What the engine does: call scan_row from its own numba code, reusing seen/hits."""
    seen = np.zeros(n_atoms, np.uint8)
    hits = np.empty(n_atoms, np.int32)
    counts = np.zeros(len(offsets) - 1, np.int64)
    for r in range(len(offsets) - 1):
        n = scan_row(tables, data, offsets[r], offsets[r + 1], seen, hits, 0)
        counts[r] = n
        for k in range(n):
            seen[hits[k]] = 0
    return counts


def test_scan_row_callable_from_numba():
    atoms = ["退款", "发货", "款", "ok"]
    texts = ["我要退款", "什么时候发货 ok", "", "退款退款发货"]
    matcher = AtomMatcher.build(atoms)
    raw = [t.encode() for t in texts]
    data = np.frombuffer(b"".join(raw), np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in raw])]).astype(np.int64)
    counts = _user_kernel(matcher.tables, matcher.n_atoms, data, offsets)
    assert counts.tolist() == [len(oracle(atoms, t)) for t in texts]
    # seen accumulates across calls until the caller clears it: an atom is reported once.
    seen = np.zeros(4, np.uint8)
    hits = np.zeros(4, np.int32)
    n = scan_row(matcher.tables, data, 0, len(raw[0]), seen, hits, 0)
    n = scan_row(matcher.tables, data, len(raw[0]) + len(raw[1]) + len(raw[2]), len(data), seen, hits, n)
    assert sorted(hits[:n].tolist()) == [0, 1, 2]
