"""Loading rule files and directories, and the on-disk parse cache."""

from __future__ import annotations

import pytest

from kdsl.dsl import KdslError, load_rules, parse_file
from kdsl.dsl.loader import UnreadableInput

RULE = 'rule r: intent = "x" when user has "漏水"\n'


def test_cache_returns_the_same_program_without_parsing(tmp_path, monkeypatch):
    monkeypatch.setenv("KDSL_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "r.kdsl"
    path.write_text(RULE, encoding="utf-8")
    first = parse_file(path)
    assert len(list((tmp_path / "cache" / "parsed").glob("*.json"))) == 1
    monkeypatch.setattr("kdsl.dsl.loader.parse", lambda *a: pytest.fail("parsed again"))
    assert parse_file(path) == first


def test_cache_is_keyed_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("KDSL_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "r.kdsl"
    path.write_text(RULE, encoding="utf-8")
    parse_file(path)
    path.write_text(RULE.replace("漏水", "渗水"), encoding="utf-8")
    assert parse_file(path).rules[0].condition.literals == ("渗水",)


def test_a_corrupt_cache_entry_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("KDSL_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "r.kdsl"
    path.write_text(RULE, encoding="utf-8")
    parse_file(path)
    for entry in (tmp_path / "cache" / "parsed").glob("*.json"):
        entry.write_bytes(b"not json")
    assert parse_file(path).rules[0].name == "r"


def test_empty_cache_dir_turns_the_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv("KDSL_CACHE_DIR", "")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "r.kdsl"
    path.write_text(RULE, encoding="utf-8")
    parse_file(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.kdsl"]


def test_syntax_errors_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("KDSL_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "r.kdsl"
    path.write_text("rule r: intent =", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(KdslError, match="r.kdsl:1:"):
            parse_file(path)


def test_directories_load_recursively_in_path_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.kdsl").write_text('rule late: intent = "x" when user has "a"', encoding="utf-8")
    (tmp_path / "a.kdsl").write_text('rule early: intent = "x" when user has "a"', encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not rules", encoding="utf-8")
    assert [r.name for r in load_rules(tmp_path).rules] == ["early", "late"]


def test_duplicate_names_across_files_name_both_places(tmp_path):
    (tmp_path / "a.kdsl").write_text(RULE, encoding="utf-8")
    (tmp_path / "b.kdsl").write_text("\n" + RULE, encoding="utf-8")
    with pytest.raises(KdslError) as error:
        load_rules(tmp_path)
    assert f"{tmp_path / 'b.kdsl'}:2:6: duplicate rule name 'r'; first defined at {tmp_path / 'a.kdsl'}:1:6" in str(error.value)


@pytest.mark.parametrize("make", [lambda p: p / "missing.kdsl", lambda p: p])
def test_missing_files_and_empty_directories_are_unreadable_input(tmp_path, make):
    with pytest.raises(UnreadableInput):
        load_rules(make(tmp_path))


def test_invalid_utf8_is_located(tmp_path):
    path = tmp_path / "bad.kdsl"
    path.write_bytes(b'rule r: intent = "x"\n  when user has "\xff"\n')
    with pytest.raises(KdslError, match=r"bad.kdsl:2:18: not valid UTF-8"):
        parse_file(path)
