"""``kdsl ocr``: fills `ocr`, passes other columns through, reports bad images, refuses bad input
with exit 2, and never leaves a partial output."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kdsl.data import ocr
from cli_invoke import run

TMM_SIM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tmm-sim"
REFUND = "6b6f2dd8-bdf1-4600-a72d-7b73686c7809-241-0.jpg"  # a 退款页面 screenshot of dev.json


@pytest.fixture
def engine(fake_ocr):
    return fake_ocr


@pytest.fixture
def dataset(tmp_path):
    """A record table of four rows over an image folder; one image is corrupt, one missing."""
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    (images / "a.jpg").write_bytes("包裹详情".encode())
    (images / "sub" / "b.jpg").write_bytes("¥398.00".encode())
    (images / "bad.jpg").write_bytes(b"corrupt\xff\xd8")
    table = pa.table({
        "id": ["r1", "r2", "r3", "r4"],
        "user": ["看下物流", "退款", None, "hi"],
        "ocr": [None, None, "typed by hand", None],
        "image_paths": pa.array([["a.jpg", "sub/b.jpg"], ["bad.jpg", "gone.jpg"], [], ["a.jpg"]],
                                pa.list_(pa.string())),
        "turns": pa.array([2, 1, 1, 3], pa.int32()),
    })
    path = tmp_path / "in.parquet"
    pq.write_table(table, path)
    return path, images, tmp_path / "cache"


def test_fills_ocr_and_passes_everything_else_through(dataset, tmp_path, engine):
    source, images, cache = dataset
    before = source.read_bytes()
    out = tmp_path / "out.parquet"
    code, output = run("ocr", source, "-o", out, "--images", images, "--cache", cache, "--workers", 1)
    assert code == 0, output
    result, original = pq.read_table(out), pq.read_table(source)
    assert result.schema == original.schema  # `ocr` kept its place
    assert result.drop_columns(["ocr"]).equals(original.drop_columns(["ocr"]))
    assert result.column("ocr").to_pylist() == ["包裹详情\n¥398.00", None, "typed by hand", "包裹详情"]
    assert source.read_bytes() == before
    assert "ocr: 4 images (0 from cache, 2 recognised, 2 unreadable), 4 rows" in output
    assert "2 unreadable images (their text is null):\n  bad.jpg: not an image file Pillow can read\n" \
           "  gone.jpg: no such file" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "images", "in.parquet", "out.parquet"]


def test_a_second_run_is_served_by_the_cache(dataset, tmp_path, engine):
    source, images, cache = dataset
    run("ocr", source, "-o", tmp_path / "one.parquet", "--images", images, "--cache", cache, "--workers", 1)
    calls = engine.calls
    code, output = run("ocr", source, "-o", tmp_path / "two.parquet", "--images", images, "--cache", cache,
                       "--workers", 1)
    assert code == 0, output
    assert (calls, engine.calls) == (3, 4)  # only the corrupt image is tried again
    assert "2 from cache, 0 recognised, 2 unreadable" in output
    assert pq.read_table(tmp_path / "one.parquet").equals(pq.read_table(tmp_path / "two.parquet"))


def test_an_ocr_column_is_added_when_the_input_has_none(tmp_path, engine):
    images = tmp_path / "images"
    images.mkdir()
    (images / "x.png").write_bytes(b"text")
    pq.write_table(pa.table({"id": ["a", "b"], "image_paths": [["x.png"], None]}), tmp_path / "in.parquet")
    code, output = run("ocr", tmp_path / "in.parquet", "-o", tmp_path / "out.parquet", "--images", images,
                       "--no-cache", "--workers", 1)
    assert code == 0, output
    assert pq.read_table(tmp_path / "out.parquet").to_pydict() == {
        "id": ["a", "b"], "image_paths": [["x.png"], None], "ocr": ["text", None]}


def test_a_table_without_images_needs_no_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(ocr, "build_engine", lambda threads: pytest.fail("engine built"))
    pq.write_table(pa.table({"id": ["a"], "image_paths": pa.array([[]], pa.list_(pa.string()))}),
                   tmp_path / "in.parquet")
    code, output = run("ocr", tmp_path / "in.parquet", "-o", tmp_path / "out.parquet", "--images", tmp_path)
    assert code == 0 and "ocr: 0 images" in output, output
    assert pq.read_table(tmp_path / "out.parquet").column("ocr").to_pylist() == [None]


def test_an_engine_that_cannot_start_leaves_no_output(dataset, tmp_path, monkeypatch):
    def broken(threads):
        raise ocr.OcrEngineError("rapidocr's bundled models are missing")

    monkeypatch.setattr(ocr, "build_engine", broken)
    source, images, _ = dataset
    out = tmp_path / "out.parquet"
    out.write_bytes(b"previous output")
    code, output = run("ocr", source, "-o", out, "--images", images, "--no-cache", "--workers", 1)
    assert code == 1 and output.startswith("error: rapidocr's bundled models are missing")
    assert "Traceback" not in output and out.read_bytes() == b"previous output"


def test_a_failure_while_writing_leaves_no_partial_file(dataset, tmp_path, engine, monkeypatch):
    def fail(batch, texts):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ocr, "with_ocr", fail)
    source, images, _ = dataset
    code, _ = run("ocr", source, "-o", tmp_path / "out.parquet", "--images", images, "--no-cache",
                  "--workers", 1)
    assert code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "in.parquet"]


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("not parquet", "not a readable Parquet file"),
    ("no image_paths", "no 'image_paths' column"),
    ("image_paths not a list", "column 'image_paths' is string; expected list<string>"),
    ("no images folder", "--images"),
    ("output is input", "would overwrite the input"),
])
def test_bad_input_exits_2_with_a_message(tmp_path, case, message):
    source, out, images = tmp_path / "in.parquet", tmp_path / "out.parquet", tmp_path
    if case == "not parquet":
        source.write_text("id,ocr\n1,x\n")
    elif case == "no image_paths":
        pq.write_table(pa.table({"id": ["a"]}), source)
    elif case == "image_paths not a list":
        pq.write_table(pa.table({"id": ["a"], "image_paths": ["a.jpg"]}), source)
    elif case == "no images folder":
        pq.write_table(pa.table({"id": ["a"], "image_paths": [["a.jpg"]]}), source)
        images = tmp_path / "nowhere"
    elif case == "output is input":
        pq.write_table(pa.table({"id": ["a"], "image_paths": [["a.jpg"]]}), source)
        out = source
    code, output = run("ocr", source, "-o", out, "--images", images)
    assert code == 2 and output.startswith("error: ") and message in output, output
    assert "Traceback" not in output
    assert not (tmp_path / "out.parquet").exists()


def test_real_screenshot_end_to_end(tmp_path):
    images = TMM_SIM / "images"
    if not (images / REFUND).is_file():
        pytest.skip(f"the shared tmm-sim data is not at {TMM_SIM}")
    pq.write_table(pa.table({"id": ["s1"], "image_paths": [[REFUND]]}), tmp_path / "in.parquet")
    code, output = run("ocr", tmp_path / "in.parquet", "-o", tmp_path / "out.parquet", "--images", images,
                       "--cache", tmp_path / "cache", "--workers", 1)
    assert code == 0, output
    text = pq.read_table(tmp_path / "out.parquet").column("ocr")[0].as_py()
    assert "退款详情" in text and "商家已同意退款" in text and "退款原因 不想要了" in text.splitlines()
