"""The ``ocr`` command: fill a record table's ``ocr`` column by reading its images.

    kdsl ocr train.parquet -o train.ocr.parquet --images data/tmm-sim/images --workers 4
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kdsl.cli.common import main
from kdsl.errors import InputError
from kdsl.io import open_parquet


@main.command()
@click.argument("input_path", metavar="INPUT.parquet", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="Output Parquet file.")
@click.option("--images", "images_root", required=True, type=click.Path(),
              help="The data root that the paths in `image_paths` are relative to.")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="OCR processes (default: min(4, CPUs)).")
@click.option("--cache", "cache_dir", type=click.Path(), default=None,
              help="Cache of OCR results by image content (default: $KDSL_CACHE_DIR/ocr, else "
                   "~/.cache/kdsl/ocr).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
def ocr(input_path, output, images_root, workers, cache_dir, no_cache):
    """Read the text of every row's images into the `ocr` column.

    Text lines come in reading order, NFKC-normalised; a row's images are joined by newlines.
    Rows without images keep their `ocr`; an unreadable image gives null and is reported.
    Other columns pass through untouched.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kdsl.data import ocr as ocr_data
    from kdsl.data.ocr_cache import NoCache
    from kdsl.io import atomic_path

    if Path(output).resolve() == Path(input_path).resolve():
        raise InputError("the output would overwrite the input; choose another -o")
    if not Path(images_root).is_dir():
        raise InputError(f"--images {images_root}: no such directory")
    source = open_parquet(input_path, require=("image_paths",))  # a list of strings, if there
    schema = source.schema_arrow

    files = ocr_data.image_files(source.read(columns=["image_paths"]).column("image_paths"), Path(images_root))
    # Without images there is nothing to OCR: no engine, and no need for rapidocr at all.
    cache = NoCache() if no_cache or not files else ocr_data.open_cache(cache_dir)
    texts, report = ocr_data.recognise_images(files, cache, workers=workers or ocr_data.default_workers(),
                                              progress=sys.stderr.isatty())

    out_schema = ocr_data.ocr_schema(schema)
    with atomic_path(output) as tmp, pq.ParquetWriter(tmp, out_schema) as writer:
        for batch in source.iter_batches(batch_size=65536):
            writer.write_batch(ocr_data.with_ocr(batch, texts).select(out_schema.names))

    if report.unreadable:
        click.echo(report.problems(), err=True)
    click.echo(f"ocr: {report.images} images ({report.from_cache} from cache, {report.recognised} "
               f"recognised, {len(report.unreadable)} unreadable), {source.metadata.num_rows} rows "
               f"-> {output}", err=True)
