"""kdsl.engine.profile: per-rule scan and check times, on the engine's own rules and triggers."""

from __future__ import annotations

import pyarrow as pa

import kdsl.engine
from kdsl.engine.profile import profile, render_profile

RULES = '''
kdsl 1
rule leak: intent = "漏水" when user has "漏水" and not user has "排水"
rule drain: intent = "排水" when user has "排水" priority 5
rule pattern: intent = "退款" when user matches /退.?款/
rule long: intent = "长" when len(user) > 6
'''


def test_profile_counts_candidates_and_holds_like_the_engine():
    engine = kdsl.engine.loads(RULES)
    users = ["底下漏水", "排水管漏水", "退了款", "你好", "我想退一下款了吗", None] * 50
    table = pa.table({"user": users})
    report = profile(engine, table, rows=200)
    assert report["rows"] == 200
    by_rule = {p["rule"]: p for p in report["rules"]}
    fired = engine.matches(table.slice(0, 200)).sum(axis=0)
    for rank, rule in enumerate(engine.plan.rules):
        assert by_rule[rule.name]["holds"] == fired[rank], rule.name
    # drain is tried only where its trigger 排水 occurs; the regex rule has no trigger: every row
    assert by_rule["drain"]["candidates"] == sum(1 for u in users[:200] if u and "排水" in u)
    assert by_rule["pattern"]["candidates"] == 200 and by_rule["pattern"]["deferred_seconds"] > 0
    assert by_rule["drain"]["scan_seconds"] > 0 and by_rule["long"]["scan_seconds"] == 0
    hot = {h["literal"]: h for h in report["hot_atoms"]}
    assert hot["排水"]["rows"] == by_rule["drain"]["candidates"] and hot["排水"]["candidate_checks"] == hot["排水"]["rows"]
    assert len(report["slowest"]) == 4
    text = render_profile(report)
    assert "slowest rules" in text and "排水" in text
