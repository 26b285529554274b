"""The on-disk parse cache holds data, not code: entries are JSON, verified on load, and anything
that does not verify — a pickle included — is ignored and rebuilt, never executed."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from dsl_golden import FIXTURES
from kdsl.dsl import RuleError, cache, load_rules, parse, parse_file

RULES = '''kdsl 1
labels intent = ["漏水", "好用"]
let leak = any("漏水", "渗水")
rule leak: intent = "漏水"
    when user has leak and not user has "排水" or fuzzy(ocr, "物流详情") >= 85
    priority 80
    meta { source: "mined", support: 37, precision: 0.97 }
    example { user: "一直漏水", model.score: 0.5 }
'''


@pytest.fixture
def rule_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KDSL_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "r.kdsl"
    path.write_text(RULES, encoding="utf-8")
    return path


def entries(rule_file):
    return list((rule_file.parent / "cache" / "parsed").glob("*.json"))


class RunsCode:
    """Unpickling this writes a marker file: the proof that a loader executed the cache."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_an_entry_is_json_with_a_versioned_header(rule_file):
    parse_file(rule_file)
    [entry] = entries(rule_file)
    header, tree = entry.read_text(encoding="utf-8").split("\n", 1)
    assert json.loads(header).keys() == {"format", "kdsl", "parser", "sha256"}
    assert json.loads(tree)["@"] == "Program"


@pytest.mark.parametrize("old_name", [False, True])
def test_a_pickle_that_runs_code_is_never_executed(rule_file, tmp_path, old_name):
    fresh = parse_file(rule_file)
    [entry] = entries(rule_file)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(RunsCode(marker))
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(RunsCode(probe))).close()
    assert probe.exists()  # the payload really runs code when unpickled
    # Plant it where the cache reads, and where the pickle cache used to read.
    (entry.with_suffix(".pickle") if old_name else entry).write_bytes(payload)
    assert repr(parse_file(rule_file)) == repr(fresh)
    assert load_rules(rule_file).rules[0].name == "leak"
    assert not marker.exists()
    assert cache.read(entry, str(rule_file), RULES) is not None  # rebuilt, and verifies


def _tamper_tree(text: str, change) -> str:
    """Rewrite the tree and fix the header's digest, as an attacker who read this module would."""
    header, tree = text.split("\n", 1)
    tree = json.dumps(change(json.loads(tree)), ensure_ascii=False)
    header = json.loads(header)
    header["sha256"] = cache.hashlib.sha256(tree.encode()).hexdigest()
    return json.dumps(header) + "\n" + tree


def _rule(tree):
    return tree["statements"][3]


def _set(tree, where, key, value):
    where(tree)[key] = value
    return tree


TAMPERINGS = {
    "truncated": lambda text: text[: len(text) // 2],
    "not json": lambda text: "\x80garbage",
    "digest mismatch": lambda text: text.replace('"漏水"', '"渗水"'),
    "other format": lambda text: text.replace('"format": 1', '"format": 99', 1),
    "other kdsl version": lambda text: text.replace('"kdsl": "', '"kdsl": "9', 1),
    "unknown node": lambda text: _tamper_tree(text, lambda t: _set(t, _rule, "condition",
                                                                   {"@": "os.system", "command": "touch x"})),
    "node of the wrong kind": lambda text: _tamper_tree(text, lambda t: _set(t, _rule, "condition",
                                                                             _rule(t)["examples"][0])),
    "extra field": lambda text: _tamper_tree(text, lambda t: _set(t, _rule, "__class__", "x")),
    "missing field": lambda text: _tamper_tree(text, lambda t: (_rule(t).pop("priority"), t)[1]),
    "wrong type": lambda text: _tamper_tree(text, lambda t: _set(t, _rule, "priority", "80")),
    "bool for an int": lambda text: _tamper_tree(text, lambda t: _set(t, _rule, "priority", True)),
    "bad span": lambda text: _tamper_tree(text, lambda t: _set(t, _rule, "span", [1, 2])),
    "other source": lambda text: _tamper_tree(text, lambda t: _set(t, lambda t: t, "source", "x")),
    "other path": lambda text: _tamper_tree(text, lambda t: _set(t, lambda t: t, "path", "elsewhere.kdsl")),
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_a_tampered_entry_is_ignored_and_rebuilt(rule_file, tamper):
    fresh = parse_file(rule_file)
    [entry] = entries(rule_file)
    text = entry.read_text(encoding="utf-8")
    tampered = tamper(text)
    assert tampered != text
    entry.write_bytes(tampered.encode("utf-8", "surrogateescape"))
    assert cache.read(entry, str(rule_file), RULES) is None
    assert repr(parse_file(rule_file)) == repr(fresh)
    assert entry.read_text(encoding="utf-8") == text  # rebuilt


def test_a_tampered_label_with_a_valid_shape_still_needs_the_same_source(rule_file):
    """A well-formed tree of other rules under this file's name is still caught: its source
    differs from the file's. (Only the source text is trusted.)"""
    parse_file(rule_file)
    [entry] = entries(rule_file)
    other = parse(RULES.replace('"漏水"', '"好用"', 1), str(rule_file))
    entry.write_text(cache.dumps(other), encoding="utf-8")
    assert parse_file(rule_file).rules[0].label == "漏水"


def _golden_sources():
    for path in sorted(FIXTURES.rglob("*.kdsl")):
        source = path.read_text(encoding="utf-8")
        try:
            yield path.name, parse(source, path.name)
        except RuleError:  # a syntax-error fixture has no tree to cache
            continue


GOLDEN = list(_golden_sources())


def test_the_golden_fixtures_parse():
    assert len(GOLDEN) >= 20


@pytest.mark.parametrize("program", [p for _, p in GOLDEN], ids=[n for n, _ in GOLDEN])
def test_every_golden_fixture_round_trips_through_the_cache(program, tmp_path):
    entry = tmp_path / "entry.json"
    cache.write(entry, program)
    restored = cache.read(entry, program.path, program.source)
    assert restored == program
    assert repr(restored) == repr(program)  # spans and comments too (equality ignores spans)


def test_a_read_only_cache_directory_only_costs_speed(rule_file, tmp_path):
    directory = tmp_path / "cache" / "parsed"
    directory.mkdir(parents=True)
    directory.chmod(0o500)
    try:
        if os.access(directory, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        assert parse_file(rule_file).rules[0].name == "leak"
        assert entries(rule_file) == []
    finally:
        directory.chmod(0o700)


def test_a_fifo_or_an_oversized_file_in_place_of_an_entry_is_not_read(rule_file):
    parse_file(rule_file)
    [entry] = entries(rule_file)
    entry.unlink()
    os.mkfifo(entry)  # reading it would block forever
    assert parse_file(rule_file).rules[0].name == "leak"
    entry.unlink()
    entry.write_bytes(b" " * (32 * len(RULES.encode()) + (1 << 20) + 1))
    assert cache.read(entry, str(rule_file), RULES) is None
    assert parse_file(rule_file).rules[0].name == "leak"
    assert cache.read(entry, str(rule_file), RULES) is not None  # rebuilt
