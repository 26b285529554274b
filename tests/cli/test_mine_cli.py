from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import kdsl.engine
from kdsl.cli import main

TMM = Path(__file__).resolve().parents[2] / "../shared/data/tmm-sim"


def _table(n=8):
    texts = {"漏水": ["洗衣机漏水了", "底下一直漏水", "漏水怎么办", "又漏水了"],
             "排水": ["怎么排水", "排水管在哪", "排水慢", "排水口堵了"]}
    rows = [(f"{label}{i}{k}", text, label) for i in range(n // 4) for label in texts
            for k, text in enumerate(texts[label])]
    return pa.table({"id": [r[0] for r in rows], "task": ["intent"] * len(rows),
                     "user": [r[1] for r in rows], "agent": [None] * len(rows), "ocr": [None] * len(rows),
                     "label": [r[2] for r in rows]})


def _mine(tmp_path, *args):
    return CliRunner().invoke(main, ["mine", *map(str, args)], catch_exceptions=False)


def test_mine_writes_rules_that_check_and_load(tmp_path):
    pq.write_table(_table(), tmp_path / "train.parquet")
    out = tmp_path / "rules.kdsl"
    result = _mine(tmp_path, tmp_path / "train.parquet", "-o", out, "--min-reward", "0.5")
    assert result.exit_code == 0, result.output
    assert "held-out precision" in result.output
    text = out.read_text()
    assert text.startswith("kdsl 1") and 'source: "mined"' in text and "example {" in text
    check = CliRunner().invoke(main, ["check", str(out)])
    assert check.exit_code == 0, check.output
    engine = kdsl.engine.load(out)
    assert {r.label for r in engine.rules} == {"漏水", "排水"}
    assert engine.predict({"user": "漏水了", "task": "intent"})["intent"] == "漏水"


def test_same_seed_same_file(tmp_path):
    pq.write_table(_table(), tmp_path / "train.parquet")
    for name in ("a.kdsl", "b.kdsl"):
        _mine(tmp_path, tmp_path / "train.parquet", "-o", tmp_path / name, "--seed", 4, "--min-reward", 0.5)
    assert (tmp_path / "a.kdsl").read_text() == (tmp_path / "b.kdsl").read_text()


@pytest.mark.parametrize("args, message", [
    (["missing.parquet"], "no such file"),
    (["train.parquet", "--task", "scene"], "no labelled rows of task 'scene'"),
    (["train.parquet", "--proposer", "gpt"], "unknown --proposer"),
    (["train.parquet", "--proposer", "llm"], "needs --model"),
    (["train.parquet", "--proposer", "llm", "--model", "no-such-folder"], "not a folder"),
    (["unlabelled.parquet"], "no 'label' column"),
])
def test_bad_input_exits_2(tmp_path, args, message):
    pq.write_table(_table(), tmp_path / "train.parquet")
    pq.write_table(_table().drop(["label"]), tmp_path / "unlabelled.parquet")
    result = CliRunner().invoke(main, ["mine", *[str(tmp_path / a) if a.endswith(".parquet") else a for a in args],
                                       "-o", str(tmp_path / "out.kdsl")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out.kdsl").exists()


def test_bad_option_exits_2(tmp_path):
    result = CliRunner().invoke(main, ["mine", "x.parquet", "-o", "y.kdsl", "--min-reward", "2"])
    assert result.exit_code == 2


@pytest.mark.skipif(not (TMM / "train.json").exists(), reason="tmm-sim data not present")
def test_mine_tmm_sim_intent_rows(tmp_path):
    train = tmp_path / "train.parquet"
    CliRunner().invoke(main, ["import", "tianchi", str(TMM / "train.json"), "-o", str(train)], catch_exceptions=False)
    out = tmp_path / "tmm.kdsl"
    result = _mine(tmp_path, train, "-o", out, "--iterations", 100)
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(main, ["check", str(out)]).exit_code == 0
    assert len(kdsl.engine.load(out).rules) >= 5
