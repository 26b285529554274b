"""Test-session setup shared by every test module."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_parse_cache(tmp_path_factory):
    """Keep the on-disk parse cache of kdsl.dsl.loader out of the user's home directory."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("KDSL_CACHE_DIR", str(tmp_path_factory.mktemp("kdsl-cache")))
    yield
    monkeypatch.undo()
