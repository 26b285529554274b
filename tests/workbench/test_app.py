"""The workbench's session and routes, through Starlette's TestClient (no browser needed)."""

from __future__ import annotations

import pytest

TestClient = pytest.importorskip("starlette.testclient", reason="the 'serve' and 'test' extras are not "
                                 "installed").TestClient

from kdsl.errors import InputError  # noqa: E402
from kdsl.workbench.app import create_app  # noqa: E402
from kdsl.workbench.session import Session  # noqa: E402

from workbench_sources import LEAK, OTHER  # noqa: E402


@pytest.fixture
def client(workspace):
    data, rules = workspace
    return TestClient(create_app(Session(data, rules, max_source_bytes=4096)), base_url="http://127.0.0.1:8765")


def evaluate(client, source, line, path="leak.kdsl", offset=0):
    response = client.post("/api/evaluate", json={"path": path, "source": source, "line": line, "offset": offset})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "kdsl workbench" in page.text and "/static/app.js" in page.text
    assert "function evaluate" in client.get("/static/app.js").text
    files = client.get("/api/files").json()
    assert files["files"] == {"leak.kdsl": LEAK, "other.kdsl": OTHER}
    assert files["has_model"] is True and files["rows"] == 6


def test_an_edited_rule_reports_hits_precision_fixes_breaks_and_conflicts(client):
    # rows: a 底下漏水了 (漏水, model 排水), c 渗水了 (漏水, model 好用), e 渗水 好用 (好用, model 好用),
    # f 还渗水 (漏水, model 漏水)
    edited = LEAK.replace('when user has "漏水" and', 'when user has any("漏水", "渗水") and')
    rule = evaluate(client, edited, line=6)["rule"]
    assert (rule["name"], rule["hits"], rule["correct"], rule["labelled"]) == ("leak", 4, 3, 4)
    assert rule["precision"] == 0.75
    # fixed: a (model 排水 -> 漏水), c (好用 -> 漏水); broken: e (好用 was right; the good rule
    # of other.kdsl has priority 0 < 10, so leak wins it); f was right and stays right
    assert (rule["wins"], rule["fixes"], rule["breaks"]) == (4, 2, 1)
    assert rule["conflicts"] == [{"rule": "good", "label": "好用", "rows": 1, "location": rule["conflicts"][0]["location"]}]
    assert [r["id"] for r in rule["rows"]] == ["a", "c", "e", "f"]
    assert rule["rows"][1]["matches"] == [{"field": "user", "literal": "渗水", "start": 0, "end": 2}]
    # the cursor picks the rule: line 8 is in drain
    assert evaluate(client, edited, line=9)["rule"]["name"] == "drain"
    assert evaluate(client, edited, line=6, offset=3)["rule"]["rows"][0]["id"] == "f"


def test_a_bad_rule_gets_located_diagnostics_and_no_report(client):
    result = evaluate(client, LEAK.replace("when user has", "when usr has", 1), line=6)
    assert result["rule"] is None
    (diagnostic,) = result["diagnostics"]
    assert (diagnostic["line"], diagnostic["column"]) == (6, 10)
    assert diagnostic["message"] == "unknown field 'usr'; did you mean 'user'?"
    syntax = evaluate(client, LEAK + "rule broken: intent = \n", line=1)
    assert syntax["rule"] is None and syntax["diagnostics"][0]["line"] == 11
    # a rule name clashing with another file is found with the other files
    clash = evaluate(client, LEAK + 'rule good: intent = "好用" when user has "好"\n', line=13)
    assert "good" in clash["diagnostics"][0]["message"]


def test_save_writes_the_formatted_file_only_when_it_checks(client, workspace):
    _, rules = workspace
    before = sorted(p.name for p in rules.iterdir())
    bad = client.post("/api/save", json={"path": "leak.kdsl", "source": LEAK.replace("user has", "usr has")})
    assert bad.status_code == 422 and bad.json()["diagnostics"][0]["line"] == 6
    assert (rules / "leak.kdsl").read_text(encoding="utf-8") == LEAK
    messy = LEAK.replace('rule drain: intent = "排水"\n    when user has "排水"', 'rule drain:intent="排水" when user has   "排水"')
    saved = client.post("/api/save", json={"path": "leak.kdsl", "source": messy})
    assert saved.status_code == 200
    assert (rules / "leak.kdsl").read_text(encoding="utf-8") == saved.json()["source"] == LEAK
    assert sorted(p.name for p in rules.iterdir()) == before  # no temporary files left
    assert (rules / "other.kdsl").read_text(encoding="utf-8") == OTHER
    # the saved rules are the new base: unresolved rows follow them
    assert client.get("/api/files").json()["files"]["leak.kdsl"] == LEAK


def test_paths_outside_the_rule_files_and_oversized_or_malformed_bodies_are_refused(client, workspace):
    data, rules = workspace
    for path in ("../data.parquet", "/etc/passwd", "new.kdsl"):
        response = client.post("/api/save", json={"path": path, "source": OTHER})
        assert response.status_code == 400 and "not one of the rule files" in response.json()["error"]
    assert sorted(p.name for p in rules.iterdir()) == ["leak.kdsl", "other.kdsl"]
    huge = client.post("/api/evaluate", json={"path": "leak.kdsl", "source": "#" * 20000, "line": 1})
    assert huge.status_code == 413
    limit = client.post("/api/save", json={"path": "leak.kdsl", "source": "# x\n" * 1100})
    assert limit.status_code == 400 and "over 4096 bytes" in limit.json()["error"]
    assert client.post("/api/evaluate", content=b"not json", headers={"content-type": "application/json"}).status_code == 400
    assert client.post("/api/evaluate", json={"path": "leak.kdsl", "source": LEAK, "line": -1}).status_code == 400


def test_unresolved_rows_are_grouped_by_label_with_candidates(client):
    unresolved = client.get("/api/unresolved").json()
    # no saved rule decides c (渗水了: 漏水, model 好用) -> the one row the model gets wrong
    assert unresolved["rows"] == 1
    assert [(g["task"], g["label"], g["rows"], [r["id"] for r in g["sample"]]) for g in unresolved["groups"]] == \
        [("intent", "漏水", 1, ["c"])]
    found = client.get("/api/candidates", params={"label": "漏水"}).json()["candidates"]
    assert found and all(c["predicate"].startswith(("user has", "not user has")) for c in found)
    assert any("渗水" in c["predicate"] for c in found)
    assert client.get("/api/candidates", params={"label": "nope"}).status_code == 400
    assert client.get("/api/candidates").status_code == 400


def test_a_table_without_labels_is_refused(tmp_path, workspace):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, rules = workspace
    pq.write_table(pa.table({"user": ["x"]}), tmp_path / "nolabel.parquet")
    with pytest.raises(InputError, match="no 'label' column"):
        Session(tmp_path / "nolabel.parquet", rules)


def test_other_sites_cannot_drive_it(client, workspace):
    """A page elsewhere can send a 'simple' cross-site POST (text/plain, no preflight) or reach
    the server under its own domain name (DNS rebinding): both are refused, nothing is written."""
    _, rules = workspace
    import json

    forged = json.dumps({"path": "leak.kdsl", "source": OTHER})
    response = client.post("/api/save", content=forged, headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert client.get("/api/files", headers={"host": "evil.example:8765"}).status_code == 400
    assert client.post("/api/save", json={"path": "leak.kdsl", "source": OTHER},
                       headers={"host": "evil.example"}).status_code == 400
    assert (rules / "leak.kdsl").read_text(encoding="utf-8") == LEAK
    assert client.get("/api/files", headers={"host": "localhost:8765"}).status_code == 200
