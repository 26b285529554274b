"""The rule writer's commands: explain --why-not, stats for a rule base, score --profile, serve
(bad input: a clear error, exit 2, nothing written)."""

from __future__ import annotations

import json
from importlib import resources

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_invoke import run


SAMPLE = resources.files("kdsl") / "samples"
RULES = '''kdsl 1
rule leak: intent = "漏水" when user has "漏水"
    priority 10
rule leak_too: intent = "漏水" when user has any("漏", "渗") and not user has "排水"
rule drain: intent = "排水" when user has "排水"
rule wet: intent = "排水" when user has "水" and not user has "漏水"
'''


@pytest.fixture
def files(tmp_path):
    rules = tmp_path / "rules.kdsl"
    rules.write_text(RULES, encoding="utf-8")
    data = tmp_path / "data.parquet"
    pq.write_table(pa.table({
        "id": ["a", "b", "c", "d", "e", "f"],
        "user": ["底下漏水了", "漏水还渗", "排水管漏水", "怎么排水", "水管", "渗了"],
        "label": ["漏水", "排水", "排水", "排水", "排水", "漏水"],
    }), data)
    return rules, data


def test_stats_has_the_overlap_matrix_wrong_rows_and_label_noise(files, tmp_path):
    rules, data = files
    code, out = run("stats", rules, "-d", data, "--json", "--errors", "5")
    assert code == 0
    report = json.loads(out)
    matrix = report["matrix"]
    assert matrix["names"] == ["leak", "leak_too", "drain", "wet"]
    assert matrix["rows"] == [3, 3, 2, 2]  # leak: a b c; leak_too: a b f; drain: c d; wet: d e
    assert matrix["pairs"] == [
        {"a": "leak", "b": "leak_too", "rows": 2, "conflict": False},
        {"a": "leak", "b": "drain", "rows": 1, "conflict": True},
        {"a": "drain", "b": "wet", "rows": 1, "conflict": False},
    ]
    assert [r["id"] for r in report["errors"]["leak"]] == ["b", "c"]
    # b: leak and leak_too (both 漏水) hold, label 排水; their precision 1/3 and 2/3 is not >= 0.9
    assert report["noise"] == []
    code, out = run("stats", rules, "-d", data, "--json", "--noise-precision", "0.3")
    noise = json.loads(out)["noise"]
    assert [(n["id"], n["suggested"], n["rules"]) for n in noise] == [("b", "漏水", ["leak", "leak_too"])]
    plot = tmp_path / "overlap.png"
    code, out = run("stats", rules, "-d", data, "--errors", "1", "--plot", plot)
    assert code == 0 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rules sharing rows" in out and "1!" in out and "wrong rows of leak:" in out
    table = out[out.index("rules sharing rows"):].splitlines()
    assert table[3].split() == ["1", "leak", "漏水", "3", "·", "2", "1!"]  # the busiest rule first


def test_stats_without_labels_fails_cleanly(files, tmp_path):
    rules, _ = files
    data = tmp_path / "nolabel.parquet"
    pq.write_table(pa.table({"user": ["x"]}), data)
    plot = tmp_path / "p.png"
    code, out = run("stats", rules, "-d", data, "--plot", plot)
    assert code == 2 and "no 'label' column" in out and not plot.exists()


def test_explain_why_not_on_the_sample():
    data, rules = SAMPLE / "sample.parquet", SAMPLE / "rules"
    code, out = run("explain", data, "-r", rules, "--id", "2171f14b17272606762881616deea1", "--why-not", "--json")
    assert code == 0
    (miss,) = json.loads(out)["why_not"]
    assert (miss["rule"], miss["nearest"], miss["fires_after_edit"]) == ("season_question", "秋天", True)
    code, out = run("explain", data, "-r", rules, "--id", "2171f14b17272606762881616deea1", "--why-not")
    assert code == 0 and "first failed term: user has season" in out and "also accept '秋天'" in out
    code, out = run("explain", data, "-r", rules, "--id", "2171f14b17272606762881616deea1", "--why-not",
                    "--rule", "nope")
    assert code == 2 and "no rule named 'nope'" in out
    code, out = run("explain", data, "-r", rules, "--id", "x", "--rule", "bubbles")
    assert code == 2 and "--rule: only with --why-not" in out


def test_score_profile_on_the_sample(tmp_path):
    out_path = tmp_path / "out.parquet"
    code, out = run("score", SAMPLE / "sample.parquet", "-r", SAMPLE / "rules", "-o", out_path, "--profile")
    assert code == 0 and out_path.exists()
    assert "profiled 100 rows" in out and "slowest rules" in out and "atoms triggering" in out


def test_serve_rejects_bad_input_before_binding(tmp_path, files):
    pytest.importorskip("starlette", reason="the 'serve' extra is not installed")
    rules, data = files
    code, out = run("serve", tmp_path / "missing.parquet", "--rules", rules.parent)
    assert code == 2 and "no such file" in out
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "r.kdsl").write_text('rule r: intent = "x" when usr has "a"\n', encoding="utf-8")
    code, out = run("serve", data, "--rules", bad)
    assert code == 2 and "unknown field 'usr'" in out


def test_serve_binds_to_loopback_unless_told_otherwise(files, monkeypatch):
    pytest.importorskip("uvicorn", reason="the 'serve' extra is not installed")
    import kdsl.workbench.app

    rules, data = files
    calls = []
    monkeypatch.setattr(kdsl.workbench.app, "serve", lambda session, host, port: calls.append((host, port)))
    assert run("serve", data, "--rules", rules.parent)[0] == 0
    assert run("serve", data, "--rules", rules.parent, "--port", "9000", "--host", "0.0.0.0")[0] == 0
    assert calls == [("127.0.0.1", 8765), ("0.0.0.0", 9000)]


def test_why_not_and_profile_refuse_what_they_cannot_do(files, tmp_path):
    rules, _ = files
    data = tmp_path / "unlabelled.parquet"
    pq.write_table(pa.table({"id": ["a"], "user": ["漏了"]}), data)
    code, out = run("explain", data, "-r", rules, "--id", "a", "--why-not")
    assert code == 2 and "the record has no label; name the rule to explain" in out
    code, out = run("explain", data, "-r", rules, "--id", "a", "--why-not", "--rule", "leak")
    assert code == 0 and "first failed term: user has \"漏水\"" in out
    out_path = tmp_path / "out.parquet"
    code, out = run("score", data, "-r", rules, "-o", out_path, "--profile", "--ray")
    assert code == 2 and "--profile: not with --ray" in out and not out_path.exists()


def test_stats_on_the_sample_where_no_rules_share_rows(tmp_path):
    plot = tmp_path / "overlap.png"
    code, out = run("stats", SAMPLE / "rules", "-d", SAMPLE / "sample.parquet", "--plot", plot)
    assert code == 0 and "no two rules hold on the same row" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
