"""A tiny synthetic record table that a baseline learns in a second: intent rows told apart by
their words, scene rows by the colour of their one image."""

import pyarrow as pa
import pytest
from PIL import Image

INTENT_WORDS = {"退款": "我要退款，钱什么时候退", "发货": "什么时候发货呀，急用"}
SCENE_COLOURS = {"红页面": (220, 30, 30), "蓝页面": (30, 30, 220)}


@pytest.fixture
def synthetic(tmp_path):
    """(table, image root): 12 intent rows, 12 scene rows, one scene row whose image is missing."""
    root = tmp_path / "images"
    root.mkdir()
    rows = []
    for i in range(12):
        label = list(INTENT_WORDS)[i % 2]
        rows.append({"id": f"i{i}", "task": "intent", "user": INTENT_WORDS[label] + "!" * i,
                     "agent": "亲，您好", "ocr": None, "image_paths": [], "label": label})
    for i in range(12):
        label = list(SCENE_COLOURS)[i % 2]
        name = f"s{i}.png"
        # A half-coloured image, so that a horizontal flip changes it.
        image = Image.new("RGB", (40, 80), (255, 255, 255))
        image.paste(Image.new("RGB", (20, 80), SCENE_COLOURS[label]), (0, 0))
        image.save(root / name)
        rows.append({"id": f"s{i}", "task": "scene", "user": None, "agent": None, "ocr": None,
                     "image_paths": [name], "label": label})
    rows.append({"id": "gone", "task": "scene", "user": None, "agent": None, "ocr": None,
                 "image_paths": ["missing.png"], "label": "红页面"})
    return pa.Table.from_pylist(rows), root
