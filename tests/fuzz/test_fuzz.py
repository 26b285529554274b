"""Mutation fuzzing of the language (golden fixtures through parse/check/format/compile) and of
the challenge importer: a few examples in CI; ``KDSL_FUZZ_EXAMPLES=N`` for a longer run
(bench/fuzz.py runs the same targets for counts)."""

from __future__ import annotations

import os

from fuzz_targets import challenge_import, language, mutated_challenge, mutated_rules, rule_fixtures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("KDSL_FUZZ_EXAMPLES", "40"))
FIXTURES = rule_fixtures()
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 100,
                    suppress_health_check=list(HealthCheck))


def _chooser(data):
    return lambda n: data.draw(st.integers(0, max(n - 1, 0)))


@SETTINGS
@given(st.data())
def test_mutated_rule_files_fail_cleanly_or_work(data):
    assert language(mutated_rules(_chooser(data), FIXTURES)) in ("ok", "clean")


@SETTINGS
@given(st.data())
def test_mutated_challenge_files_fail_cleanly_or_import(data):
    assert challenge_import(*mutated_challenge(_chooser(data))) in ("ok", "clean")
