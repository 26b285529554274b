"""A small rule directory and table for the workbench tests."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench_sources import LEAK, OTHER


@pytest.fixture
def workspace(tmp_path):
    """(data path, rule directory): rows with label and model_label; two rule files."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "leak.kdsl").write_text(LEAK, encoding="utf-8")
    (rules / "other.kdsl").write_text(OTHER, encoding="utf-8")
    data = tmp_path / "data.parquet"
    pq.write_table(pa.table({
        "id": ["a", "b", "c", "d", "e", "f"],
        "task": ["intent"] * 6,
        "user": ["底下漏水了", "排水管漏水", "渗水了", "好用吗", "渗水 好用", "还渗水"],
        "label": ["漏水", "排水", "漏水", "好用", "好用", "漏水"],
        "model_label": ["排水", "排水", "好用", "好用", "好用", "漏水"],
        "image_paths": [["x.jpg"]] * 6,
    }), data)
    return data, rules
