"""kdsl.data.ocr: reading order, the content-keyed cache, unreadable images, and real OCR of the
tmm-sim screenshots with RapidOCR's bundled models."""

from __future__ import annotations

import io
import json
import unicodedata
from pathlib import Path

import pyarrow as pa
import pytest

from kdsl.data import ocr
from kdsl.data.images import ImageFile
from kdsl.data.ocr_cache import NoCache, OcrCache, default_cache_directory, image_key
from kdsl.data.reading_order import TextBox, reading_order

TMM_SIM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tmm-sim"

# Scene screenshots of tmm-sim's dev split, by their label, and words their screens show.
TRACKING = "27883e49-5cf5-47ed-ace5-1a7b2612e701-602-0.jpg"  # 物流页面-物流跟踪页面
REFUND = "6b6f2dd8-bdf1-4600-a72d-7b73686c7809-241-0.jpg"  # 退款页面
ORDER = "a70c72fd-cdc4-4c7c-b998-5f94d829b150-2162-0.jpg"  # 订单详情页面


@pytest.fixture(scope="module")
def tmm_sim_images():
    images = TMM_SIM / "images"
    if not images.is_dir():
        pytest.skip(f"the shared tmm-sim data is not at {TMM_SIM}")
    return images


# ---- reading order ------------------------------------------------------------------------------


def test_boxes_of_one_row_read_left_to_right_whatever_order_they_come_in():
    boxes = [
        TextBox("不想要了", 336, 438, 392, 456),
        TextBox("退款原因", 24, 439, 80, 455),
        TextBox("¥398.00", 342, 468, 392, 484),
        TextBox("退款金额", 24, 467, 80, 485),
    ]
    assert reading_order(boxes) == ["退款原因 不想要了", "退款金额 ¥398.00"]


def test_lines_read_top_to_bottom_and_close_lines_stay_apart():
    # A wrapped paragraph: lines two pixels apart must not merge.
    boxes = [
        TextBox("一站", 47, 510, 78, 530),
        TextBox("快件已在【郑州航空港集散中心】装车，准备发往下", 48, 495, 327, 511),
        TextBox("07-19 15:54", 48, 529, 110, 543),
    ]
    assert reading_order(boxes) == ["快件已在【郑州航空港集散中心】装车，准备发往下", "一站", "07-19 15:54"]


def test_a_tall_box_joins_its_line_without_swallowing_its_neighbours():
    boxes = [
        TextBox("店铺优惠", 24, 468, 80, 484),
        TextBox("需付款", 24, 500, 72, 518),
        TextBox("¥265.41", 330, 494, 392, 524),  # a large price, taller than the label
        TextBox("订单编号", 24, 560, 80, 578),
        TextBox("-¥25.90", 344, 468, 392, 484),
    ]
    assert reading_order(boxes) == ["店铺优惠 -¥25.90", "需付款 ¥265.41", "订单编号"]


def test_tilted_boxes_use_their_bounds_and_blank_texts_are_dropped():
    left = TextBox.from_corners("包裹", [[10, 12], [60, 10], [61, 30], [11, 32]])
    right = TextBox.from_corners("详情", [[70, 11], [120, 9], [121, 29], [71, 31]])
    assert (left.left, left.top, left.right, left.bottom) == (10, 10, 61, 32)
    assert reading_order([right, TextBox("  ", 0, 0, 5, 5), left]) == ["包裹 详情"]
    assert reading_order([]) == []


def test_image_text_is_nfkc_normalised_but_not_case_folded():
    text = ocr.image_text([TextBox("运费（快递）ＡＢＣ", 0, 0, 200, 20), TextBox("Ｓ码", 0, 30, 40, 50)])
    assert text == "运费(快递)ABC\nS码"


# ---- the table ------------------------------------------------------------------------------------


def test_image_files_lists_each_image_once_under_the_root():
    column = pa.chunked_array([[["b.jpg", "a.jpg"], None], [[], ["a.jpg", None]]])
    assert ocr.image_files(column, Path("root")) == {"a.jpg": ImageFile(Path("root"), "a.jpg"),
                                                     "b.jpg": ImageFile(Path("root"), "b.jpg")}


def test_with_ocr_joins_a_rows_images_and_keeps_rows_without_images():
    batch = pa.record_batch({
        "id": ["two", "none", "bad", "blank", "mixed"],
        "ocr": [None, "kept", "old", None, None],
        "image_paths": [["a", "b"], [], ["bad"], ["blank"], ["bad", "blank", "a"]],
    })
    texts = {"a": "包裹详情\n派送中", "b": "复制", "bad": None, "blank": ""}
    filled = ocr.with_ocr(batch, texts)
    assert filled.schema.names == ["id", "ocr", "image_paths"]
    assert filled.column("ocr").to_pylist() == ["包裹详情\n派送中\n复制", "kept", None, "", "包裹详情\n派送中"]
    appended = ocr.with_ocr(batch.drop_columns(["ocr"]), texts)
    assert appended.schema.names == ["id", "image_paths", "ocr"]
    assert ocr.ocr_schema(batch.drop_columns(["ocr"]).schema).names == appended.schema.names


# ---- many images: cache, failures, workers ------------------------------------------------------


@pytest.fixture
def engine(fake_ocr):
    return fake_ocr


def write_images(folder: Path, contents: dict[str, bytes]) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in contents}


def test_a_second_run_reads_the_cache_and_never_calls_the_engine(tmp_path, engine):
    files = write_images(tmp_path / "img", {"a.jpg": "退款详情".encode(), "b.jpg": b"copy", "c.jpg": b"copy"})
    cache = OcrCache(tmp_path / "cache", engine_id="test")
    texts, report = ocr.recognise_images(files, cache)
    assert texts == {"a.jpg": "退款详情", "b.jpg": "copy", "c.jpg": "copy"}
    assert engine.calls == 2  # b and c have the same bytes: read once
    assert report.images == 3 and report.from_cache + report.recognised == 3 and not report.unreadable

    again, report = ocr.recognise_images(files, OcrCache(tmp_path / "cache", engine_id="test"))
    assert again == texts and engine.calls == 2
    assert (report.from_cache, report.recognised) == (3, 0)

    ocr.recognise_images(files, OcrCache(tmp_path / "cache", engine_id="another model"))
    assert engine.calls == 4  # a different engine does not reuse these texts


def test_cache_entries_are_small_json_files_keyed_by_content(tmp_path):
    cache = OcrCache(tmp_path, engine_id="e1")
    key = image_key(b"image bytes")
    cache.put(key, "包裹详情")
    entry = tmp_path / "e1" / key[:2] / f"{key}.json"
    assert json.loads(entry.read_text(encoding="utf-8")) == {"image_sha256": key, "engine": "e1", "text": "包裹详情"}
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temporary file left
    assert cache.get(key) == "包裹详情" and cache.get(image_key(b"other")) is None
    entry.write_text("{truncated", encoding="utf-8")
    assert cache.get(key) is None  # a damaged entry is a miss, not an error
    assert NoCache().get(key) is None


def test_the_cache_directory_follows_kdsl_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("KDSL_CACHE_DIR", str(tmp_path))
    assert default_cache_directory() == tmp_path / "ocr"
    monkeypatch.setenv("KDSL_CACHE_DIR", "")
    assert default_cache_directory() is None
    assert isinstance(ocr.open_cache(), NoCache)
    monkeypatch.delenv("KDSL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_directory() == tmp_path / "xdg" / "kdsl" / "ocr"


def test_unreadable_and_missing_images_give_null_and_a_report(tmp_path, engine):
    files = write_images(tmp_path / "img", {"ok.jpg": b"fine", "bad.jpg": b"corrupt", "odd.jpg": b"crash"})
    files["gone.jpg"] = tmp_path / "img" / "gone.jpg"
    cache = OcrCache(tmp_path / "cache", engine_id="test")
    texts, report = ocr.recognise_images(files, cache)
    assert texts == {"ok.jpg": "fine", "bad.jpg": None, "odd.jpg": None, "gone.jpg": None}
    assert report.unreadable == [
        ("bad.jpg", "not an image file Pillow can read"),
        ("gone.jpg", "no such file"),
        ("odd.jpg", "OCR failed: RuntimeError: onnxruntime fell over"),
    ]
    assert report.problems(limit=2).splitlines() == [
        "3 unreadable images (their text is null):",
        "  bad.jpg: not an image file Pillow can read",
        "  gone.jpg: no such file",
        "  ... and 1 more",
    ]
    ocr.recognise_images(files, cache)
    assert engine.calls == 5  # failures are not cached: a fixed file is read next time


def test_an_engine_that_cannot_start_stops_the_run(tmp_path, monkeypatch):
    def broken(threads):
        raise ocr.OcrEngineError("rapidocr's bundled models are missing")

    monkeypatch.setattr(ocr, "build_engine", broken)
    files = write_images(tmp_path, {"a.jpg": b"x"})
    with pytest.raises(ocr.OcrEngineError, match="bundled models"):
        ocr.recognise_images(files, NoCache())


def test_decode_image_rejects_what_is_not_an_image():
    from PIL import Image

    with pytest.raises(ocr.UnreadableImage, match="not an image file"):
        ocr.decode_image(b"GIF89a? no")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, "JPEG")
    with pytest.raises(ocr.UnreadableImage, match="cannot decode"):
        ocr.decode_image(buffer.getvalue()[:300])  # truncated
    palette = io.BytesIO()
    Image.new("P", (8, 8)).save(palette, "PNG")
    assert ocr.decode_image(palette.getvalue()).mode == "RGB"


# ---- RapidOCR on real screenshots ---------------------------------------------------------------


@pytest.fixture(scope="module")
def screenshots(tmm_sim_images, tmp_path_factory):
    """One real run over three screenshots, a corrupt file and a missing one, in two worker
    processes (the path `kdsl ocr` takes), with a private cache."""
    folder = tmp_path_factory.mktemp("screens")
    files = {name: tmm_sim_images / name for name in (TRACKING, REFUND, ORDER)}
    files["corrupt.jpg"] = folder / "corrupt.jpg"
    files["corrupt.jpg"].write_bytes((tmm_sim_images / REFUND).read_bytes()[:2000])
    files["missing.jpg"] = folder / "missing.jpg"
    cache = ocr.open_cache(folder / "cache")
    texts, report = ocr.recognise_images(files, cache, workers=2)
    return files, cache, texts, report


def test_tracking_page_text_in_reading_order(screenshots):
    text = screenshots[2][TRACKING]
    for words in ("包裹详情", "派送中", "菜鸟速递", "预计明天送达", "济南转运中心", "包裹正在等待揽收"):
        assert words in text
    lines = text.splitlines()
    title = next(i for i, line in enumerate(lines) if "包裹详情" in line)
    status = next(i for i, line in enumerate(lines) if "派送中" in line)
    assert title < status


def test_refund_page_labels_and_values_share_a_line(screenshots):
    lines = screenshots[2][REFUND].splitlines()
    for words in ("退款详情", "商家已同意退款", "退款信息"):
        assert any(words in line for line in lines)
    assert "退款原因 不想要了" in lines  # label left, value right: one line, in that order
    assert any(line.startswith("退款总金额") and "398" in line for line in lines)


def test_order_page_text_is_nfkc(screenshots):
    text = screenshots[2][ORDER]
    for words in ("订单详情", "交易关闭", "订单编号", "商品总价"):
        assert words in text
    assert "运费(快递)" in text  # the screen shows full-width （）
    for text in screenshots[2].values():
        assert text is None or unicodedata.normalize("NFKC", text) == text


def test_real_unreadable_images_are_reported_not_fatal(screenshots):
    texts, report = screenshots[2], screenshots[3]
    assert texts["corrupt.jpg"] is None and texts["missing.jpg"] is None
    assert [name for name, _ in report.unreadable] == ["corrupt.jpg", "missing.jpg"]
    assert (report.images, report.recognised) == (5, 3)


def test_real_results_are_cached(screenshots, monkeypatch):
    files, cache, texts, _ = screenshots

    def no_engine(threads):
        raise AssertionError("the engine was started although every text is cached")

    monkeypatch.setattr(ocr, "build_engine", no_engine)
    readable = {name: files[name] for name in (TRACKING, REFUND, ORDER)}
    again, report = ocr.recognise_images(readable, cache, workers=1)
    assert again == {name: texts[name] for name in readable} and report.from_cache == 3


def test_known_text_rendered_with_a_cjk_font_is_read_back(tmp_path):
    from PIL import Image, ImageDraw, ImageFont

    fonts = [Path(p) for p in (
        "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    )]
    font_path = next((p for p in fonts if p.is_file()), None)
    if font_path is None:
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-microhei or fonts-noto-cjk)")
    font = ImageFont.truetype(str(font_path), 28)
    image = Image.new("RGB", (480, 200), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 20), "物流详情", font=font, fill="black")
    draw.text((20, 90), "退款金额", font=font, fill="black")
    draw.text((320, 90), "（12元）", font=font, fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    text = ocr.RapidOcrEngine(threads=1)(buffer.getvalue())
    assert text.splitlines() == ["物流详情", "退款金额 (12元)"]


def test_onnxruntime_telemetry_is_turned_off_before_onnxruntime_loads():
    import os

    # Set on importing kdsl.data.ocr, inherited by the worker processes; onnxruntime reads it once.
    assert os.environ.get("ORT_DISABLE_TELEMETRY") == "1"
