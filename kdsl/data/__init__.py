"""Data in and out of the record table: challenge-format import (``tianchi``, ``importing``),
submission export (``submission``), OCR of screenshots (``ocr``), augmentations (``augment``)
and the Arrow schema of DESIGN.md (``schema``)."""
