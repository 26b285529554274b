"""Data in and out of the record table (``docs/record-table.md``): challenge-format import,
OCR of screenshots, augmentations and the challenge's submission file.

Modules: ``tianchi`` (one challenge sample -> one record), ``importing`` (a challenge file ->
records, bad samples kept apart), ``ocr`` with ``ocr_cache`` and ``reading_order`` (fill
``ocr`` from the images), ``augment`` (flips, rephrasings), ``submission`` (``id,predict``).

    >>> from kdsl.data import import_samples
    >>> sample = {"id": "a", "instruction": "Picture 1: <image>", "image": ["a-0.jpg"],
    ...           "output": "退款页面"}
    >>> [(row["id"], row["task"], row["label"]) for row in import_samples([("item 0", sample)]).rows]
    [('a', 'scene', '退款页面')]
"""

from kdsl.data.augment import augment_image, rephrase
from kdsl.data.importing import import_samples, read_samples
from kdsl.data.ocr import image_files, recognise_images, with_ocr
from kdsl.data.submission import TargetColumns, predictions, write_submission
from kdsl.data.tianchi import to_record

__all__ = ["TargetColumns", "augment_image", "image_files", "import_samples", "predictions",
           "read_samples", "recognise_images", "rephrase", "to_record", "with_ocr",
           "write_submission"]
