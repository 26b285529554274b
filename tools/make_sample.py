"""Rebuild the bundled sample: kdsl/samples/sample.parquet and the images it names.

Imports tmm-sim dev.json with the importer (`kdsl import tianchi`), draws a few dozen rows of each
task, copies their images into kdsl/samples/images/ (recompressed when large, so that the wheel
stays small), reads the text of each row's screenshots with `kdsl ocr`'s engine (from the
original images; the OCR cache makes a rebuild fast) and writes the rows with image_paths
relative to that folder, so the demo needs no OCR. Needs Pillow and `kdsl[ocr]`.

    python tools/make_sample.py ../shared/data/tmm-sim
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from kdsl.data import ocr
from kdsl.data.importing import import_samples, read_samples
from kdsl.record import record_table
from kdsl.io import atomic_path

ROWS = {"intent": 60, "scene": 40}  # the demo's rules are intent rules: give them more rows
SEED = 7
COPY_AS_IS = 40_000  # bytes; a larger image is downscaled and recompressed
LONG_SIDE, QUALITY = 800, 70  # still legible for OCR of phone screenshots
BUDGET = 4_000_000  # bytes for all of samples/, images included

samples_dir = Path(__file__).resolve().parents[1] / "kdsl" / "samples"


def draw(rows: list[dict]) -> list[dict]:
    rng = random.Random(SEED)
    drawn = []
    for task, count in ROWS.items():
        drawn += rng.sample([r for r in rows if r["task"] == task], count)
    return drawn


def copy_image(source: Path, target: Path) -> None:
    """Copy one image, downscaled and recompressed when it is large."""
    if source.stat().st_size <= COPY_AS_IS:
        shutil.copyfile(source, target)
        return
    with Image.open(source) as image:
        image = image.convert("RGB")
        image.thumbnail((LONG_SIDE, LONG_SIDE))
        image.save(target, "JPEG", quality=QUALITY, optimize=True)


def main(data_root: Path) -> None:
    imported = import_samples(read_samples(data_root / "dev.json"))
    if imported.rejects:
        sys.exit(f"{len(imported.rejects)} rejected sample(s): {imported.rejects[0].message()}")
    sample = draw(imported.rows)
    images_dir = samples_dir / "images"
    shutil.rmtree(images_dir, ignore_errors=True)  # drop the images of an earlier draw
    images_dir.mkdir()
    for row in sample:
        for name in row["image_paths"]:
            copy_image(data_root / "images" / name, images_dir / name)
    table = record_table(sample)
    files = ocr.image_files(table.column("image_paths"), data_root / "images")
    texts, _ = ocr.recognise_images(files, ocr.open_cache(), workers=ocr.default_workers())
    table = ocr.with_ocr(table, texts).select(table.schema.names)
    with atomic_path(samples_dir / "sample.parquet") as tmp:
        pq.write_table(table, tmp)
    size = sum(p.stat().st_size for p in samples_dir.rglob("*") if p.is_file())
    images = sum(len(row["image_paths"]) for row in sample)
    print(f"{len(sample)} rows ({ROWS}), {images} images -> {samples_dir} ({size / 1e6:.2f} MB)")
    if size > BUDGET:
        sys.exit(f"the sample is {size / 1e6:.2f} MB, over the {BUDGET / 1e6:.0f} MB budget")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/tmm-sim"))
