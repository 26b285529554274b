"""OCR of the record table's images: fill the ``ocr`` column from ``image_paths``.

The engine is RapidOCR (PP-OCR models run by onnxruntime on the CPU) with the models that ship
inside the ``rapidocr`` wheel: kdsl names the model files itself, so RapidOCR never reaches its
download code, and OCR works on a machine without network access (onnxruntime's telemetry is
turned off too, below).

>>> files = image_files(table.column("image_paths"), Path("data/images"))    # doctest: +SKIP
>>> texts, report = recognise_images(files, workers=4)                       # doctest: +SKIP
>>> table = with_ocr(table, texts)                                           # doctest: +SKIP
>>> table.column("ocr")[0].as_py()                                           # doctest: +SKIP
'9:52\\n< 包裹详情 ...\\n派送中\\n菜鸟速递CN5092535900705 复制\\n预计明天送达 ...'

The text of one image is its lines in reading order (``reading_order``), NFKC-normalised (not
case-folded: the rule engine folds case itself, and the column stays faithful to the screen).
A row's images are joined by ``\\n``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import json
import multiprocessing
import os
import signal
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from kdsl.data.images import ImageFile, ImageRejected
from kdsl.data.ocr_cache import NoCache, OcrCache, default_cache_directory, image_key
from kdsl.data.reading_order import TextBox, reading_order
from kdsl.errors import DependencyError, InputError
from kdsl.ort import disable_telemetry

# onnxruntime (1.32 here) on Linux reports usage to Microsoft over the network and keeps a
# database under ~/.cache/Microsoft unless this is set when onnxruntime is first imported (a
# later call to onnxruntime.disable_telemetry_events() does not stop it). OCR stays offline.
disable_telemetry()  # kdsl.ort: ORT_DISABLE_TELEMETRY=1, before onnxruntime loads

# Bump when the text made from the engine's boxes changes (reading order, normalisation), so
# that cached texts written by the old code are not reused.
TEXT_LAYOUT_VERSION = 1

# The models in rapidocr 3.10's wheel (``rapidocr/models``), by the pipeline stage that uses them.
BUNDLED_MODELS = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",  # carries its character list, so no dictionary download
}

# RapidOCR's own defaults, written out because they shape the text and so belong in the cache key.
ENGINE_SETTINGS = {
    "Global.use_cls": True,  # turns 180°-rotated text (photos) upright; costs ~5 % on screenshots
    "Global.text_score": 0.5,  # lines recognised with less confidence are dropped
}

ImageEngine = Callable[[bytes], str]  # image file bytes -> its text; raises UnreadableImage


class OcrEngineError(DependencyError):
    """The OCR engine cannot run at all (not installed, models missing, a worker died)."""


class UnreadableImage(InputError):
    """One image could not be decoded or read; its text is null and the run goes on."""


@dataclass
class OcrReport:
    """What happened to the images of a run, for the message printed at its end."""

    images: int = 0
    from_cache: int = 0
    recognised: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (image path, reason)

    def problems(self, limit: int = 5) -> str:
        """The unreadable images, the first ``limit`` of them by name, one per line.

        >>> OcrReport(3, 0, 1, [("a.jpg", "no such file"), ("b.jpg", "truncated")]).problems(1)
        '2 unreadable images (their text is null):\\n  a.jpg: no such file\\n  ... and 1 more'
        """
        if not self.unreadable:
            return ""
        count = len(self.unreadable)
        lines = [f"{count} unreadable image{'s' if count > 1 else ''} (their text is null):"]
        lines += [f"  {name}: {reason}" for name, reason in self.unreadable[:limit]]
        if count > limit:
            lines.append(f"  ... and {count - limit} more")
        return "\n".join(lines)


# ---- the engine -----------------------------------------------------------------------------


def bundled_models() -> dict[str, Path]:
    """The model files inside the installed rapidocr package, found without importing it."""
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        raise OcrEngineError("OCR needs rapidocr and onnxruntime: pip install rapidocr onnxruntime")
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    paths = {stage: models / name for stage, name in BUNDLED_MODELS.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        # Deliberately no fallback to RapidOCR's downloader: OCR must not depend on the network.
        raise OcrEngineError(f"rapidocr's bundled models are missing ({', '.join(missing)}); "
                             f"install rapidocr 3.10, whose wheel carries them")
    return paths


def engine_id() -> str:
    """A short name for everything that decides the text of an image: RapidOCR's version, its
    models, the settings and the text layout. Cached texts live under this name.

    >>> len(engine_id())                          # doctest: +SKIP
    16
    """
    models = {stage: [path.name, path.stat().st_size] for stage, path in bundled_models().items()}
    identity = {
        "rapidocr": importlib.metadata.version("rapidocr"),
        "models": models,
        "settings": ENGINE_SETTINGS,
        "layout": TEXT_LAYOUT_VERSION,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


class RapidOcrEngine:
    """RapidOCR with the bundled models, turning an image file's bytes into its text.

    >>> engine = RapidOcrEngine(threads=1)                                   # doctest: +SKIP
    >>> engine(Path("refund.jpg").read_bytes()).splitlines()[:2]             # doctest: +SKIP
    ['11:57 HD', '< 退款详情 ...']
    """

    def __init__(self, threads: int = 1):
        try:
            from rapidocr import RapidOCR
        except ImportError as error:
            raise OcrEngineError(f"OCR needs rapidocr and onnxruntime ({error})") from None
        params = {f"{stage}.model_path": str(path) for stage, path in bundled_models().items()}
        params.update(ENGINE_SETTINGS)
        params.update({
            "Global.log_level": "error",  # RapidOCR logs every model load at INFO
            # One pool of threads per worker process; workers × threads ≈ cores.
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        })
        self._ocr = RapidOCR(params=params)

    def __call__(self, data: bytes) -> str:
        image = decode_image(data)
        result = self._ocr(image)  # a decoded image, never a str: RapidOCR fetches URL strings
        corners, texts = result.boxes, result.txts
        if corners is None or not texts:
            return ""
        return image_text(TextBox.from_corners(t, c) for t, c in zip(texts, corners))


def decode_image(data: bytes):
    """Decode an image file with Pillow, upright (EXIF orientation applied), as RGB or RGBA.

    Decoding here rather than inside RapidOCR gives readable errors and applies the EXIF
    rotation that phone photos carry, which RapidOCR skips for in-memory images.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        image = ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise UnreadableImage("not an image file Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UnreadableImage(f"cannot decode: {error}") from None
    # Palette and 16-bit images would reach RapidOCR as one grey channel of palette indices.
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def image_text(boxes: Iterable[TextBox]) -> str:
    """The text of one image: its boxes' lines in reading order, NFKC-normalised.

    >>> image_text([TextBox("派送中", 79, 71, 133, 95), TextBox("包裹详情", 142, 28, 210, 49)])
    '包裹详情\\n派送中'
    >>> image_text([TextBox("ＡＢＣ，１２３", 0, 0, 90, 20)])
    'ABC,123'
    """
    return unicodedata.normalize("NFKC", "\n".join(reading_order(boxes)))


def build_engine(threads: int) -> ImageEngine:
    """The engine a worker uses (tests replace this to count or fake OCR)."""
    return RapidOcrEngine(threads)


# ---- many images, in worker processes, through the cache ------------------------------------


def default_workers() -> int:
    """min(4, the CPUs this process may use): OCR is CPU-bound, one process per core."""
    return min(4, _usable_cpus())


def recognise_images(
    files: Mapping[str, Path],
    cache: OcrCache | NoCache | None = None,
    workers: int = 1,
    progress: bool = False,
) -> tuple[dict[str, str | None], OcrReport]:
    """The text of every image in ``files`` (name -> path), null for one that cannot be read.

    Cached texts are used first; only the rest reach the engine, in ``workers`` processes (1: in
    this process). Each result is cached as it arrives, so an interrupted run resumes.
    ``cache=None`` uses the default directory (see ``ocr_cache.default_cache_directory``).

    >>> texts, report = recognise_images({"a.jpg": Path("images/a.jpg")}, workers=2)  # doctest: +SKIP
    >>> report.recognised, texts["a.jpg"][:4]                                        # doctest: +SKIP
    (1, '包裹详情')
    """
    from tqdm import tqdm

    if cache is None:
        cache = open_cache()
    texts: dict[str, str | None] = {}
    report = OcrReport(images=len(files))
    by_content: dict[str, list[str]] = {}  # content key -> names awaiting its OCR
    bar = tqdm(total=len(files), unit="img", desc="ocr", disable=not progress)

    def settle(name: str, text: str | None, reason: str | None = None) -> None:
        texts[name] = text
        if reason is not None:
            report.unreadable.append((name, reason))
        bar.update()

    def images_to_recognise() -> Iterator[tuple[str, bytes]]:
        for name, path in files.items():
            try:
                data = path.read_bytes()
            except ImageRejected as error:  # outside the root, not a regular file, too large
                settle(name, None, error.reason)
                continue
            except OSError as error:
                settle(name, None, "no such file" if isinstance(error, FileNotFoundError)
                       else error.strerror or str(error))
                continue
            key = image_key(data)
            cached = cache.get(key)
            if cached is not None:
                report.from_cache += 1
                settle(name, cached)
            elif key in by_content:  # the same picture under another name: read it once
                by_content[key].append(name)
            else:
                by_content[key] = [name]
                yield key, data

    try:
        with _executor(workers) as submit:
            for key, outcome in _bounded(submit, images_to_recognise(), window=2 * workers):
                for name in by_content.pop(key):
                    try:
                        text = outcome.result()
                    except UnreadableImage as error:
                        settle(name, None, str(error))
                    else:
                        report.recognised += 1
                        settle(name, text)
                if outcome.exception() is None:
                    cache.put(key, outcome.result())
    except BrokenProcessPool:
        raise OcrEngineError("an OCR worker process died (out of memory?); results so far are "
                             "cached, so a re-run with fewer workers resumes") from None
    finally:
        bar.close()
    report.unreadable.sort()
    return texts, report


def open_cache(directory: str | Path | None = None) -> OcrCache | NoCache:
    """The cache in ``directory``, else in the default one; ``NoCache`` when that is turned off."""
    directory = default_cache_directory() if directory is None else Path(directory)
    return NoCache() if directory is None else OcrCache(directory, engine_id())


def _bounded(submit, jobs: Iterator[tuple[str, bytes]], window: int) -> Iterator[tuple[str, Future]]:
    """Submit ``jobs`` keeping at most ``window`` in flight, so that image bytes waiting for a
    worker never fill memory; yield (key, finished future) as they complete."""
    pending: dict[Future, str] = {}
    for key, data in jobs:
        pending[submit(data)] = key
        if len(pending) >= window:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            yield from ((pending.pop(f), f) for f in done)
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        yield from ((pending.pop(f), f) for f in done)


class _executor:
    """``with _executor(n) as submit``: ``submit(image bytes) -> Future of its text``, run in
    ``n`` worker processes, or in this process when ``n`` is 1 (no start-up cost, and tests can
    replace ``build_engine``). On an error or an interrupt, queued work is cancelled."""

    def __init__(self, workers: int):
        self.workers = workers
        self.threads = max(1, _usable_cpus() // workers)
        self.pool: ProcessPoolExecutor | None = None
        self.engine: ImageEngine | None = None

    def __enter__(self):
        if self.workers == 1:
            return self._submit_here
        # "spawn": a forked child would inherit the threads of pyarrow and onnxruntime mid-state.
        self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_ignore_interrupts)
        return lambda data: self.pool.submit(_recognise_in_worker, data, self.threads)

    def __exit__(self, kind, error, traceback):
        if self.pool is not None:
            self.pool.shutdown(wait=error is None, cancel_futures=error is not None)

    def _submit_here(self, data: bytes) -> Future:
        if self.engine is None:
            self.engine = build_engine(self.threads)
        future: Future = Future()
        try:
            future.set_result(_read(self.engine, data))
        except UnreadableImage as error:
            future.set_exception(error)
        return future


_worker_engine: ImageEngine | None = None  # one per worker process, built on its first image


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group; the parent alone handles it (cancelling the queue),
    # instead of every worker printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _recognise_in_worker(data: bytes, threads: int) -> str:
    global _worker_engine
    if _worker_engine is None:
        _worker_engine = build_engine(threads)
    return _read(_worker_engine, data)


def _read(engine: ImageEngine, data: bytes) -> str:
    try:
        return engine(data)
    except (UnreadableImage, OcrEngineError):
        raise
    except Exception as error:  # noqa: BLE001  (one odd image must not end a run over thousands)
        raise UnreadableImage(f"OCR failed: {type(error).__name__}: {error}") from None


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ---- the table --------------------------------------------------------------------------------


def image_files(image_paths: pa.Array | pa.ChunkedArray, root: Path) -> dict[str, ImageFile]:
    """Every distinct image named in an ``image_paths`` column, to be read under ``root``
    (``kdsl.data.images``: a path leaving the root is reported unreadable, never read).

    >>> image_files(pa.array([["a.jpg", "b.jpg"], None, ["a.jpg"]]), Path("img"))["b.jpg"]
    ImageFile(root=PosixPath('img'), name='b.jpg')
    """
    names = pc.unique(pc.drop_null(pc.list_flatten(image_paths))).to_pylist()
    return {name: ImageFile(Path(root), name) for name in sorted(names)}


def ocr_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with a string ``ocr`` column: replaced where it was, else added at the end."""
    ocr = pa.field("ocr", pa.string())
    index = schema.get_field_index("ocr")
    return schema.set(index, ocr) if index >= 0 else schema.append(ocr)


def with_ocr(batch: pa.RecordBatch | pa.Table, texts: Mapping[str, str | None]):
    """``batch`` with its ``ocr`` column filled from ``texts`` (image name -> text).

    A row's images' texts are joined by ``\\n``; images without text add nothing; a row whose
    every image was unreadable gets null; a row without images keeps the ``ocr`` it had.

    >>> batch = pa.table({"image_paths": [["a.jpg", "b.jpg"], [], ["bad.jpg"]]})
    >>> with_ocr(batch, {"a.jpg": "退款详情", "b.jpg": "¥398.00", "bad.jpg": None})["ocr"].to_pylist()
    ['退款详情\\n¥398.00', None, None]
    """
    names = batch.schema.names
    before = batch.column("ocr").to_pylist() if "ocr" in names else [None] * batch.num_rows
    filled = [
        _row_text(images, texts) if images else kept
        for images, kept in zip(batch.column("image_paths").to_pylist(), before)
    ]
    column = pa.array(filled, pa.string())
    if "ocr" in names:
        return batch.set_column(names.index("ocr"), "ocr", column)
    return batch.append_column("ocr", column)


def _row_text(images: list[str | None], texts: Mapping[str, str | None]) -> str | None:
    found = [texts[name] for name in images if name is not None]
    if all(text is None for text in found):
        return None
    return "\n".join(text for text in found if text)
