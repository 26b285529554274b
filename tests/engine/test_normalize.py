"""normalize_array must agree byte for byte with normalize_text, the spec's definition."""

import string
import unicodedata

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdsl.engine.normalize import _classify_code_points, normalize_array, normalize_one, normalize_text


def expected(values):
    return [normalize_text(v) for v in values]


def check(arr, values):
    """normalize_array(arr) equals the reference, with lengths, as a valid null-free column."""
    result, lengths = normalize_array(arr, with_lengths=True)
    assert result.type == pa.large_string()
    assert result.null_count == 0
    result.validate(full=True)
    want = expected(values)
    assert result.to_pylist() == want
    assert lengths.dtype == np.int64
    assert lengths.tolist() == [len(w) for w in want]
    assert normalize_array(arr).equals(result)


def code_points(lo, hi):
    return st.characters(min_codepoint=lo, max_codepoint=hi)


# Each alphabet targets a way the fast path could go wrong.
chinese = code_points(0x4E00, 0x9FFF)
ascii_chars = st.sampled_from(string.ascii_letters + string.digits + string.punctuation + " ")
fullwidth = st.sampled_from("，？！：（）Ａ１ｚ～。、；【】\u3000") | code_points(0xFF01, 0xFF5E)
halfwidth = code_points(0xFF61, 0xFFDC)  # katakana with separate voicing marks, Hangul jamo
combining = code_points(0x0300, 0x036F) | st.sampled_from(
    "\u3099\u309a\u09be\u09d7\u0b3e\u0cd5\u0dca\u0f71\u0f72\u0f80\u1b35\u0345"
)
hangul = code_points(0x1100, 0x11FF) | code_points(0x3131, 0x318E) | code_points(0xAC00, 0xD7A3)
composable = st.sampled_from("aeiouAEIOUnNcCyYsSzZ<>=あかさはカハ\u09c7\u0b47\u0cc6\u0dd9ᄀ가각")
emoji = code_points(0x1F300, 0x1FAFF) | st.sampled_from("\u200d\ufe0f\u20e3")
# Case folding and compatibility mappings with odd lengths, incl. > 4 UTF-8 bytes.
special = st.sampled_from("ßẞſİıΣσςﬃﬅ㈱㍻ﷺ½¼ℌ℡™…Ǆǅǆŉ𝐀𝔄ｶﾞﾟ㌀⑳ꭰ\u0390\u1e9e\u0149")
any_char = st.characters(codec="utf-8")  # Arrow strings cannot hold surrogates

alphabet = st.one_of(
    chinese, ascii_chars, fullwidth, halfwidth, combining, hangul, composable, emoji, special, any_char
)
texts = st.one_of(
    st.text(alphabet, max_size=30),
    st.text(max_size=20),
    st.text(st.one_of(chinese, fullwidth, ascii_chars), min_size=500, max_size=3000),
    st.just(""),
)
values = st.lists(st.one_of(st.none(), texts), max_size=30)
arrow_types = st.sampled_from([pa.string(), pa.large_string()])

fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(values, arrow_types)
def test_matches_reference(values, arrow_type):
    check(pa.array(values, type=arrow_type), values)


@fast
@given(values, arrow_types, st.data())
def test_sliced_arrays(values, arrow_type, data):
    start = data.draw(st.integers(0, len(values)))
    stop = data.draw(st.integers(start, len(values)))
    check(pa.array(values, type=arrow_type)[start:stop], values[start:stop])


@fast
@given(st.lists(values, max_size=5), arrow_types, st.data())
def test_chunked_arrays(chunks, arrow_type, data):
    arrays = []
    for chunk in chunks:
        skip = data.draw(st.integers(0, len(chunk)))  # some chunks are slices
        arrays.append(pa.array(chunk, type=arrow_type)[skip:])
        del chunk[:skip]
    check(pa.chunked_array(arrays, type=arrow_type), [v for chunk in chunks for v in chunk])


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("ＡＢＣ，", "abc,"),
        ("Straße", "strasse"),
        ("e\u0301", "é"),
        (None, ""),
        ("", ""),
        ("请问ＶＩＰ会员？\u3000可以吗！", "请问vip会员? 可以吗!"),
        ("ｶﾞｲﾄﾞ", "ガイド"),
        ("\u1100\u1161\u11a8", "각"),
        ("㈱ﷺ", "(株)صلى الله عليه وسلم"),
    ],
)
def test_known_cases(text, normalized):
    assert normalize_text(text) == normalized
    assert normalize_array(pa.array([text], pa.string())).to_pylist() == [normalized]


def test_every_code_point_alone():
    """Exhausts the per-code-point table, fast and slow entries alike."""
    chars = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp < 0xE000]
    check(pa.array(chars, type=pa.string()), chars)


def test_block_screening_misses_nothing():
    """The classification, which skips blocks wholesale, equals a scan of every code point."""
    second_halves = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))  # Hangul V and T
    for cp in range(0x110000):
        parts = unicodedata.decomposition(chr(cp)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            second_halves.add(int(parts[1], 16))
    complex_code_points = second_halves | set(range(0xD800, 0xE000))
    replacements = {}
    for cp in range(0x110000):
        if cp in complex_code_points:
            continue
        first = unicodedata.normalize("NFKD", chr(cp))[0]
        if unicodedata.combining(first) or ord(first) in second_halves:
            complex_code_points.add(cp)
        elif normalize_text(chr(cp)) != chr(cp):
            replacements[cp] = normalize_text(chr(cp))
    got_complex, got_replacements = _classify_code_points()
    assert set(got_complex) == complex_code_points
    assert got_replacements == replacements


@pytest.mark.parametrize(
    "values",
    [
        ["ﷺ" * 1000, "Ǆ" * 5000, "x", "㈱" * 300],  # fast rows outgrow the input
        ["x", "\u0f73" * 2000, "y", "\u0f73e\u0301" * 100, "z"],  # slow rows do
    ],
)
def test_output_longer_than_input_grows_the_buffer(values):
    assert sum(len(normalize_text(v).encode()) for v in values) > sum(len(v.encode()) for v in values)
    check(pa.array(values), values)


def test_null_slots_with_bytes_are_empty():
    # Arrow lets a null slot span data; it must still normalise to "".
    offsets = np.array([0, 3, 6, 9], dtype=np.int32)
    arr = pa.StringArray.from_buffers(
        3, pa.py_buffer(offsets), pa.py_buffer("ＡBC".encode()[:3] + b"abcDEF"), pa.py_buffer(b"\x05")
    )
    assert arr.to_pylist() == ["Ａ", None, "DEF"]
    check(arr, ["Ａ", None, "DEF"])


@pytest.mark.parametrize(
    "arr",
    [
        pa.array([], pa.string()),
        pa.array([None, None], pa.large_string()),
        pa.chunked_array([], pa.string()),
        pa.chunked_array([pa.array([], pa.large_string())]),
        pa.array([None, None, None]),  # type null: what an all-null column infers
    ],
)
def test_empty_and_all_null(arr):
    result, lengths = normalize_array(arr, with_lengths=True)
    assert result.to_pylist() == [""] * len(arr)
    assert lengths.tolist() == [0] * len(arr)


def test_malformed_utf8_fails_like_the_reference():
    offsets = pa.py_buffer(np.array([0, 1, 3], dtype=np.int32))
    arr = pa.StringArray.from_buffers(2, offsets, pa.py_buffer(b"a\xe4\xb8"))
    with pytest.raises(UnicodeDecodeError):
        arr[1].as_py()
    with pytest.raises(UnicodeDecodeError):
        normalize_array(arr)


def test_rejects_non_string_arrays():
    with pytest.raises(TypeError):
        normalize_array(pa.array([1, 2]))


def test_already_normalised_text_is_shared_not_copied():
    column = pa.array(["洗衣机漏水了", "abc 123，", None, ""]).slice(1)
    result, lengths = normalize_array(column, with_lengths=True)
    assert result.to_pylist() == ["abc 123,", "", ""]  # the full-width comma still changes
    clean = pa.array(["洗衣机漏水了", "abc 123,", None, "", "😀"])
    result, lengths = normalize_array(clean, with_lengths=True)
    assert result.to_pylist() == ["洗衣机漏水了", "abc 123,", "", "", "😀"]
    assert lengths.tolist() == [6, 8, 0, 0, 1]
    assert result.buffers()[2].address == clean.buffers()[2].address


def test_a_null_slot_with_bytes_behind_it_is_still_empty():
    # Arrow allows a null slot to span data; it must still normalise to "".
    data = pa.py_buffer("abcdef".encode())
    offsets = pa.py_buffer(np.array([0, 3, 6], dtype=np.int32).tobytes())
    validity = pa.py_buffer(bytes([0b01]))
    column = pa.StringArray.from_buffers(2, offsets, data, validity, null_count=1)
    assert normalize_array(column).to_pylist() == ["abc", ""]


@fast
@given(st.one_of(st.none(), texts))
def test_normalize_one_matches_reference(text):
    """The single-value path (full-width forms and U+3000 mapped before NFKC) is exact."""
    assert normalize_one(text) == normalize_text(text)


@pytest.mark.parametrize("cp", [0xFF00, 0xFF01, 0xFF5E, 0xFF5F, 0x3000, 0x2FFF, 0x3001])
@pytest.mark.parametrize("context", ["{}", "a{}\u0301", "{}\u0301", "\u1100{}\u1161", "Ａ{}ｶﾞ"])
def test_normalize_one_at_the_fullwidth_block_edges(cp, context):
    text = context.format(chr(cp))
    assert normalize_one(text) == normalize_text(text)


def test_the_characters_normalize_one_replaces_are_single_ascii_starters():
    from kdsl.engine.normalize import _COMMON_FULLWIDTH

    for fullwidth, ascii_char in _COMMON_FULLWIDTH:
        assert ord(fullwidth) == 0x3000 or 0xFF01 <= ord(fullwidth) <= 0xFF5E
        assert len(ascii_char) == 1 and ascii_char.isascii() and unicodedata.combining(fullwidth) == 0


# The vector prefix (64 bytes at a time) stops at the first byte that is not ASCII or part of a
# U+4000..U+9FFF ideograph; these place such bytes, and ideographs, across the window's edges.
EDGE_CHARS = ["\u3fff", "\u4000", "\u9fff", "\ua000", "\u3001", "，", "\u3000", "A", "Z", "@", "[",
              "😀", "é", "e\u0301", "\u1100\u1161", "水", "ａ"]


@pytest.mark.parametrize("prefix_bytes", [0, 1, 2, 61, 62, 63, 64, 65, 125, 126, 127, 128])
def test_vector_prefix_edges(prefix_bytes):
    ideographs, ascii_tail = divmod(prefix_bytes, 3)
    lead = "漏" * ideographs + "x" * ascii_tail  # exactly prefix_bytes of plain text
    values = [lead + c + "水Ab" * 30 for c in EDGE_CHARS] + [lead + c for c in EDGE_CHARS]
    values.append("洗" * 100)  # a long last row, so every row above is followed by 64+ bytes
    check(pa.array(values), values)
    check(pa.array(values[:-1]), values[:-1])  # and without it: the buffer-end path


@pytest.mark.parametrize("position", [0, 1, 62, 63, 64, 100])
def test_malformed_bytes_inside_a_plain_run_fail(position):
    good = ("漏水ab" * 40).encode()
    for bad in (b"\xe4\x41", b"\x80", b"\xe4\xb8", b"\xed\xa0\x80"):  # cut, stray, short, surrogate
        data = good[:position] + bad + good[position:]
        offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int32))
        arr = pa.StringArray.from_buffers(1, offsets, pa.py_buffer(data + b"x" * 64))
        with pytest.raises(UnicodeDecodeError):
            normalize_array(arr)
