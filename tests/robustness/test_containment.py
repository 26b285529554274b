"""Image paths stay inside the images root (kdsl.data.images), for every reader: `kdsl ocr`,
the baseline's thumbnails, the Qwen2-VL adapter's images, the import's missing-image report."""

from __future__ import annotations

import io
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from kdsl.adapters.features import row_thumbnails
from kdsl.adapters.qwen2vl import _row_images
from kdsl.cli import main
from kdsl.data import ocr
from kdsl.data.images import ImageRejected, read_image
from kdsl.data.importing import missing_images
from kdsl.data.ocr_cache import NoCache


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def layout(tmp_path):
    """images/ (the root) with one good image and links; secret.png beside it, outside."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "ok.png").write_bytes(_png())
    (tmp_path / "secret.png").write_bytes(_png())
    (root / "out-link.png").symlink_to(tmp_path / "secret.png")
    (root / "in-link.png").symlink_to(root / "ok.png")
    (root / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(root / "fifo.png")
    return root


BAD = {
    "../secret.png": "'..' leaves the images root",
    "sub/../../secret.png": "'..' leaves the images root",
    "ABSOLUTE": "an absolute path",
    "out-link.png": "a symlink that leaves the images root",
    "zero.png": "a symlink that leaves the images root",
    "fifo.png": "not a regular file",
    "missing.png": "no such file",
    "sub": "not a regular file",
}


def _name(layout, name):
    return str(layout.parent / "secret.png") if name == "ABSOLUTE" else name


@pytest.mark.parametrize("name", sorted(BAD))
def test_read_image_refuses_with_the_reason(layout, name):
    with pytest.raises(ImageRejected) as error:
        read_image(layout, _name(layout, name))
    assert error.value.reason.startswith(BAD[name])


def test_read_image_reads_regular_files_inside_the_root_and_bounds_their_size(layout):
    assert read_image(layout, "ok.png") == read_image(layout, "in-link.png") == _png()
    with pytest.raises(ImageRejected, match="the limit is 10"):
        read_image(layout, "ok.png", limit=10)


def test_ocr_reports_each_refused_image_with_its_reason(layout, monkeypatch):
    seen = []
    monkeypatch.setattr(ocr, "build_engine", lambda threads: lambda data: seen.append(data) or "text")
    names = ["ok.png"] + [_name(layout, n) for n in BAD]
    texts, report = ocr.recognise_images(ocr.image_files(pa.array([names]), layout), NoCache(), workers=1)
    assert texts["ok.png"] == "text" and seen == [_png()]
    reasons = dict(report.unreadable)
    assert {_name(layout, n): reasons[_name(layout, n)][:len(BAD[n])] for n in BAD} == \
        {_name(layout, n): BAD[n] for n in BAD}


def test_the_ocr_command_leaves_outside_files_unread(layout, tmp_path, monkeypatch):
    monkeypatch.setattr(ocr, "build_engine", lambda threads: lambda data: "秘密" if data == _png() else "")
    table = pa.table({"id": ["a", "b", "c"], "image_paths": [["../secret.png"], [str(tmp_path / "secret.png")],
                                                             ["out-link.png"]]})
    pq.write_table(table, tmp_path / "in.parquet")
    result = CliRunner().invoke(main, ["ocr", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"),
                                       "--images", str(layout), "--no-cache", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "out.parquet").column("ocr").to_pylist() == [None, None, None]
    assert "leaves the images root" in result.output and "absolute path" in result.output


def test_thumbnails_and_qwen2vl_images_skip_refused_paths(layout):
    names = ["ok.png", "../secret.png", "out-link.png", "fifo.png", "zero.png"]
    thumbs = row_thumbnails(pa.table({"image_paths": [names]}), layout, 4)
    assert len(thumbs[0]) == 1
    assert len(_row_images({"image_paths": names}, layout)) == 1


def test_the_missing_image_report_tells_nothing_about_outside_files(layout):
    rows = [{"image_paths": ["ok.png", "out-link.png", "in-link.png"]}]
    assert missing_images(rows, layout) == ["out-link.png"]


@pytest.mark.parametrize("path, reason", [("../x.jpg", "'..' leaves"), ("/etc/passwd", "absolute path")])
def test_import_rejects_a_sample_whose_image_path_leaves_the_root(tmp_path, path, reason):
    samples = [{"id": "a", "instruction": "Picture 1: <image>", "image": [path], "output": "退款"}]
    (tmp_path / "in.json").write_text(json.dumps(samples), encoding="utf-8")
    result = CliRunner().invoke(main, ["import", "tianchi", str(tmp_path / "in.json"), "-o", str(tmp_path / "o.parquet")])
    assert result.exit_code == 2 and reason in result.output, result.output
