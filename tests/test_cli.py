"""The command line: exit codes, messages, atomic outputs (docs/cli.md, "Exit status")."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kdsl.engine.engine import Engine
from cli_invoke import run

RULES = '''kdsl 1
labels intent = ["反馈密封性不好", "排水方式"]

rule leak: intent = "反馈密封性不好"
    when user has "漏水" and not user has "排水"
    priority 10
    example { user: "底下漏水了" }
    counterexample { user: "排水管漏水" }

rule drain: intent = "排水方式"
    when user has "排水"
    example { user: "怎么排水" }
'''


@pytest.fixture
def rules(tmp_path):
    path = tmp_path / "rules.kdsl"
    path.write_text(RULES, encoding="utf-8")
    return path


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "log.parquet"
    table = pa.table({
        "id": ["a", "b", "c", "d"],
        "user": ["底下漏水了", "排水管漏水", "你好", None],
        "label": ["反馈密封性不好", "排水方式", "排水方式", None],
        "extra": [1, 2, 3, 4],
    })
    pq.write_table(table, path, row_group_size=2)
    return path


def test_check_passes_good_rules(rules):
    code, out = run("check", rules)
    assert code == 0
    assert "ok: 2 rules in 1 file(s)" in out


def test_check_reports_located_errors_with_exit_1(tmp_path):
    bad = tmp_path / "bad.kdsl"
    bad.write_text('rule r: intent = "x"\n    when usr has "漏水"\n', encoding="utf-8")
    code, out = run("check", bad)
    assert code == 1
    assert f"{bad}:2:10: unknown field 'usr'; did you mean 'user'?" in out
    assert "    2 |     when usr has" in out
    assert "Traceback" not in out


def test_check_fails_on_a_failing_example(tmp_path):
    path = tmp_path / "r.kdsl"
    path.write_text('rule r: intent = "x" when user has "a"\n    example { user: "b" }\n', encoding="utf-8")
    code, out = run("check", path)
    assert code == 1
    assert "rule r does not match its example" in out


def test_check_of_a_missing_path_exits_2(tmp_path):
    code, out = run("check", tmp_path / "nope.kdsl")
    assert code == 2
    assert "no such file or directory" in out


def test_test_command_counts_examples(rules):
    code, out = run("test", rules)
    assert code == 0
    assert "3 passed, 0 failed" in out


def test_score_writes_outputs_and_passthrough(rules, data, tmp_path):
    out = tmp_path / "out.parquet"
    code, _ = run("score", data, "-r", rules, "-o", out)
    assert code == 0
    scored = pq.read_table(out)
    assert scored.column("intent_rule").to_pylist() == ["leak", "drain", None, None]
    assert scored.column("extra").to_pylist() == [1, 2, 3, 4]


def test_a_directory_of_parquet_files_is_read_as_one_table(rules, data, tmp_path):
    """What `--ray` and Spark write can be scored, evaluated or explained like one file."""
    parts = tmp_path / "parts"
    parts.mkdir()
    table = pq.read_table(data)
    pq.write_table(table.slice(0, 3), parts / "part-0.parquet")
    pq.write_table(table.slice(3), parts / "part-1.parquet")
    assert run("score", parts, "-r", rules, "-o", tmp_path / "a.parquet")[0] == 0
    assert run("score", data, "-r", rules, "-o", tmp_path / "b.parquet")[0] == 0
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(tmp_path / "b.parquet"))
    scored_parts = tmp_path / "scored"
    scored_parts.mkdir()
    pq.write_table(pq.read_table(tmp_path / "a.parquet"), scored_parts / "part-0.parquet")
    code, out = run("eval", scored_parts, "--json")
    assert code == 0, out
    assert json.loads(out)["rows"]["labelled"] == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = run("score", empty, "-r", rules, "-o", tmp_path / "c.parquet")
    assert code == 2 and "a directory without Parquet files" in out


def test_score_keep_selects_passthrough_columns(rules, data, tmp_path):
    out = tmp_path / "out.parquet"
    code, _ = run("score", data, "-r", rules, "-o", out, "--keep", "id", "--threads", "2")
    assert code == 0
    assert pq.read_table(out).schema.names == ["id", "intent", "intent_rule", "intent_source"]


@pytest.mark.parametrize("problem", ["missing", "not_parquet", "missing_column", "same_path", "bad_rules"])
def test_score_input_errors_exit_2_and_write_nothing(problem, rules, data, tmp_path):
    out = tmp_path / "out.parquet"
    source = data
    if problem == "missing":
        source = tmp_path / "nope.parquet"
    elif problem == "not_parquet":
        source = tmp_path / "text.parquet"
        source.write_text("hello")
    elif problem == "missing_column":
        source = tmp_path / "nouser.parquet"
        pq.write_table(pa.table({"id": ["a"]}), source)
    elif problem == "same_path":
        out = data
    elif problem == "bad_rules":
        rules.write_text("rule r: intent = when", encoding="utf-8")
    before = data.read_bytes()
    code, message = run("score", source, "-r", rules, "-o", out)
    assert code == 2, message
    assert message.startswith("error: ") and "Traceback" not in message
    assert data.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    if problem != "same_path":
        assert not out.exists()


def test_interrupted_score_leaves_no_output(rules, data, tmp_path, monkeypatch):
    calls = []

    def interrupted(self, batch, threads=1):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return original(self, batch, threads)

    original = Engine.score
    monkeypatch.setattr(Engine, "score", interrupted)
    out = tmp_path / "out.parquet"
    code, _ = run("score", data, "-r", rules, "-o", out, "--batch-size", "2")
    assert code != 0 and len(calls) == 2
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.parquet")]


def test_explain_shows_the_deciding_rule_and_offsets(rules, data):
    code, out = run("explain", data, "-r", rules, "--id", "b", "--json")
    assert code == 0
    explained = json.loads(out)
    assert explained["outputs"]["intent_rule"] == "drain"
    assert explained["matches"][0] == {
        "rule": "drain", "target": "intent", "label": "排水方式", "priority": 0, "winner": True,
        "location": f"{rules}:10:6", "matches": [{"field": "user", "literal": "排水", "start": 0, "end": 2}],
    }
    code, out = run("explain", data, "-r", rules, "--id", "zzz")
    assert code == 2 and "no row with id 'zzz'" in out


def test_stats_reports_coverage_precision_overlaps_and_conflicts(rules, data):
    rules.write_text(RULES + 'rule any_water: intent = "反馈密封性不好" when user has "水"\n', encoding="utf-8")
    code, out = run("stats", rules, "-d", data, "--json")
    assert code == 0
    by_rule = {row["rule"]: row for row in json.loads(out)["rules"]}
    # rows: a "底下漏水了" (leak, any_water), b "排水管漏水" (drain, any_water), c, d: none
    assert {k: by_rule["leak"][k] for k in ("rows", "coverage", "overlaps", "conflicts", "correct", "precision", "wins")} == \
        {"rows": 1, "coverage": 0.25, "overlaps": 1.0, "conflicts": 0.0, "correct": 1, "precision": 1.0, "wins": 1}
    assert by_rule["drain"]["conflicts"] == 1.0 and by_rule["drain"]["wins"] == 1
    water = by_rule["any_water"]
    assert (water["rows"], water["conflicts"], water["correct"], water["incorrect"], water["wins"]) == (2, 0.5, 1, 1, 0)
    code, out = run("stats", rules, "-d", data)
    assert code == 0 and "coverage" in out.splitlines()[0]
