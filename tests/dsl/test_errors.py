"""Golden error messages: ``tests/fixtures/errors/NAME.kdsl`` must fail to load with exactly the
text of ``NAME.err`` (``str(KdslError)`` plus a final newline).

The file is read with ``kdsl.dsl.parse_file`` under its path relative to the repository root
(``tests/fixtures/errors/NAME.kdsl``, which is what the message names) and checked alone with
``kdsl.dsl.check``. To add a case, write ``NAME.kdsl`` and run

    KDSL_UPDATE_GOLDEN=1 pytest tests/dsl/test_errors.py

which (re)writes every ``.err`` file; review the diff before committing it.
"""

from __future__ import annotations

import pytest

from dsl_golden import FIXTURES, ROOT, assert_golden
from kdsl.dsl import KdslError, check, parse_file

CASES = sorted((FIXTURES / "errors").glob("*.kdsl"))


def load_error(relative_path: str) -> KdslError:
    try:
        check([parse_file(relative_path)])
    except KdslError as error:
        return error
    raise AssertionError(f"{relative_path} loaded without an error")


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_error_message(case, monkeypatch):
    monkeypatch.chdir(ROOT)
    relative_path = case.relative_to(ROOT).as_posix()
    error = load_error(relative_path)
    assert all(d.span.line >= 1 and d.span.column >= 1 for d in error.diagnostics)
    assert all(str(d).startswith(f"{relative_path}:") for d in error.diagnostics)
    assert_golden(case.with_suffix(".err"), str(error) + "\n")


def test_every_expected_message_has_its_source():
    orphans = [e.name for e in (FIXTURES / "errors").glob("*.err") if not e.with_suffix(".kdsl").exists()]
    assert not orphans


def test_there_are_enough_cases():
    assert len(CASES) >= 12
