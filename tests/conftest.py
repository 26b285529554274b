"""Test-session setup shared by every test module."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_parse_cache(tmp_path_factory):
    """Keep the on-disk parse cache of kdsl.dsl.loader out of the user's home directory."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("KDSL_CACHE_DIR", str(tmp_path_factory.mktemp("kdsl-cache")))
    yield
    monkeypatch.undo()


class CountingOcrEngine:
    """Stands in for RapidOCR: the 'text' of an image is its bytes; b"corrupt..." is unreadable
    and b"crash..." makes the engine itself fail. ``calls`` counts the images it was given."""

    def __init__(self):
        self.calls = 0

    def __call__(self, data: bytes) -> str:
        from kdsl.data import ocr

        self.calls += 1
        if data.startswith(b"corrupt"):
            raise ocr.UnreadableImage("not an image file Pillow can read")
        if data.startswith(b"crash"):
            raise RuntimeError("onnxruntime fell over")
        return data.decode()


@pytest.fixture
def fake_ocr(monkeypatch):
    """kdsl.data.ocr with its engine replaced by a ``CountingOcrEngine``."""
    from kdsl.data import ocr

    fake = CountingOcrEngine()
    monkeypatch.setattr(ocr, "build_engine", lambda threads: fake)
    return fake
