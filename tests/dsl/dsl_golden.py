"""Golden files shared by the fixture tests: compare, or rewrite when ``KDSL_UPDATE_GOLDEN=1``."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root; fixture paths are relative to it
FIXTURES = ROOT / "tests" / "fixtures"
UPDATE = os.environ.get("KDSL_UPDATE_GOLDEN") == "1"


def assert_golden(expected_file: Path, actual: str) -> None:
    """``actual`` must equal the file's text; with ``KDSL_UPDATE_GOLDEN=1`` the file is
    rewritten instead (review the diff before committing it)."""
    if UPDATE:
        expected_file.write_text(actual, encoding="utf-8")
        return
    assert expected_file.exists(), f"{expected_file} is missing; run with KDSL_UPDATE_GOLDEN=1 to create it"
    expected = expected_file.read_text(encoding="utf-8")
    assert actual == expected, f"{expected_file.relative_to(ROOT)} differs"
