"""Engine.reload: an atomic swap of the rule set under concurrent predict() calls."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

import kdsl.engine
from kdsl.engine.stats import rule_stats
from kdsl.errors import RuleError

OLD = 'kdsl 1\nrule old: intent = "旧" when user has "漏水"\n'
NEW = 'kdsl 1\nrule new: intent = "新" when user has "漏水"\nrule other: intent = "别" when user has "排水"\n'


def test_reload_swaps_while_threads_predict_and_every_answer_is_old_or_new(tmp_path):
    path = tmp_path / "r.kdsl"
    path.write_text(OLD, encoding="utf-8")
    engine = kdsl.engine.load(path)
    seen, errors, stop = set(), [], threading.Event()

    def predict():
        try:
            while not stop.is_set():
                out = engine.predict({"user": "漏水了"})
                seen.add((out["intent"], out["intent_rule"]))
                table = engine.score(pa.table({"user": ["漏水了", "排水"]}))
                seen.add(tuple(table.column("intent_rule").to_pylist()))
        except Exception as error:  # reported below: any exception is a failure of the swap
            errors.append(error)

    threads = [threading.Thread(target=predict) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for k in range(8):  # back and forth, so that swaps land in the middle of many calls
            path.write_text(NEW if k % 2 == 0 else OLD, encoding="utf-8")
            engine.reload(path)
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    # Each answer came wholly from one rule set: never the old label with the new rule's name.
    assert seen <= {("旧", "old"), ("新", "new"), ("old", None), ("new", "other")}
    assert engine.predict({"user": "漏水"})["intent_rule"] == "old"  # the last reload read OLD
    path.write_text(NEW, encoding="utf-8")
    engine.reload(path)
    assert engine.predict({"user": "漏水"})["intent_rule"] == "new"
    assert [r.name for r in engine.rules] == ["new", "other"] and engine.targets == ["intent"]
    assert [r.name for r in engine.current.plan.rules] == ["new", "other"]
    assert [r["rule"] for r in rule_stats(engine, pa.table({"user": ["排水"], "label": ["别"]}))] == ["new", "other"]


def test_a_failed_reload_keeps_the_old_rules_and_reports_the_diagnostics(tmp_path):
    path = tmp_path / "r.kdsl"
    path.write_text(OLD, encoding="utf-8")
    engine = kdsl.engine.load(path)
    path.write_text('rule bad: intent = "x" when usr has "a"\n', encoding="utf-8")
    with pytest.raises(RuleError, match="unknown field 'usr'"):
        engine.reload(path)
    assert engine.predict({"user": "漏水"})["intent_rule"] == "old"
    with pytest.raises(RuleError, match="no such file"):
        engine.reload(tmp_path / "missing.kdsl")
    assert engine.explain({"user": "漏水"})[0]["rule"] == "old"


def test_a_call_in_flight_when_the_swap_lands_finishes_on_the_old_rules(tmp_path):
    path = tmp_path / "r.kdsl"
    path.write_text(OLD, encoding="utf-8")
    engine = kdsl.engine.load(path)
    prepare = engine._prepare

    def swap_midway(batch):  # the reload lands after scoring began, before the kernel runs
        path.write_text(NEW, encoding="utf-8")
        engine.reload(path)
        return prepare(batch)

    engine._prepare = swap_midway
    scored = engine.score(pa.table({"user": ["漏水了", "排水"]}))
    assert scored.column("intent").to_pylist() == ["旧", None]
    assert scored.column("intent_rule").to_pylist() == ["old", None]
    after = engine.score(pa.table({"user": ["漏水了", "排水"]}))
    assert after.column("intent_rule").to_pylist() == ["new", "other"]
