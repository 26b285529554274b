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


def _scene_table():
    # Screenshot text as `kdsl ocr` writes it: one line per text box, nothing in user or agent.
    texts = {"物流页面-物流跟踪页面": ["物流详情\n运输中\n快递已揽收", "物流详情\n派送中\n快递员电话", "运输中\n物流详情\n已签收",
                                "快递已揽收\n物流详情"],
             "退款页面": ["退款详情\n退款金额\n¥29.9", "申请退款\n退款金额\n退款原因", "退款详情\n退款成功", "退款金额\n退款详情"]}
    rows = [(f"s{label}{i}{k}", text, label) for i in range(2) for label in texts for k, text in enumerate(texts[label])]
    return pa.table({"id": [r[0] for r in rows], "task": ["scene"] * len(rows), "user": [None] * len(rows),
                     "agent": [None] * len(rows), "ocr": [r[1] for r in rows], "label": [r[2] for r in rows]})


def test_mine_scene_rows_from_their_ocr_text(tmp_path):
    table = pa.Table.from_pylist(_table().to_pylist() + _scene_table().to_pylist())
    pq.write_table(table, tmp_path / "train.ocr.parquet")
    out = tmp_path / "scene.kdsl"
    result = _mine(tmp_path, tmp_path / "train.ocr.parquet", "-o", out, "--task", "scene", "--min-reward", "0.5")
    assert result.exit_code == 0, result.output
    engine = kdsl.engine.load(out)
    assert {r.label for r in engine.rules} == {"物流页面-物流跟踪页面", "退款页面"}
    assert {r.target for r in engine.rules} == {"scene"} and "ocr has" in out.read_text()
    assert engine.predict({"ocr": "物流详情\n运输中", "task": "scene"})["scene"] == "物流页面-物流跟踪页面"
    assert engine.predict({"ocr": "退款详情", "task": "scene"})["scene"] == "退款页面"


def test_no_words_mines_from_every_ngram(tmp_path):
    # 买一 marks every 发货 row here, but it cuts 一份 / 一盒 in two: only --no-words may use it.
    texts = {"发货": ["买一份发几支", "买一盒发几个"] * 2, "套装": ["有套装吗", "套装怎么卖", "套装多少钱", "套装有货吗"]}
    rows = [{"id": f"{label}{k}{i}", "task": "intent", "user": f"{t}{i}", "label": label}
            for i in range(3) for label in texts for k, t in enumerate(texts[label])]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    rules = {}
    for flag in ("--words", "--no-words"):
        out = tmp_path / f"{flag}.kdsl"
        assert _mine(tmp_path, tmp_path / "train.parquet", "-o", out, "--min-reward", 0.5, flag).exit_code == 0
        rules[flag] = out.read_text()
    assert 'user has "买一"' in rules["--no-words"]
    assert '"买一"' not in rules["--words"] and 'intent = "发货"' in rules["--words"]


def _model_aware_table():
    """Rows where the model is right on 上市时间 and wrong on 发行 (see tests/mining/test_model_aware.py)."""
    rows = [("上市", f"请问上市时间是{i}号吗", "上市", 0.9) for i in range(12)]
    rows += [("上市", t, "价格", 0.4) for t in ("哪年发行", "发行日期呢", "几时发行", "发行了没", "啥时候发行")]
    rows += [("价格", "发行价多少钱", "价格", 0.8)] + [("价格", f"多少钱一个{i}号", "价格", 0.9) for i in range(12)]
    train = pa.table({"id": [str(k) for k in range(len(rows))], "task": ["intent"] * len(rows),
                      "user": [r[1] for r in rows], "label": [r[0] for r in rows]})
    oof = pa.table({"id": [str(k) for k in range(len(rows))], "model_label": [r[2] for r in rows],
                    "model_score": pa.array([r[3] for r in rows], pa.float32())})
    return train, oof


def test_mine_with_predictions_reports_and_writes_rules_that_check_and_test(tmp_path):
    train, oof = _model_aware_table()
    pq.write_table(train, tmp_path / "train.parquet")
    pq.write_table(oof, tmp_path / "oof.parquet")
    out = tmp_path / "rules.kdsl"
    result = _mine(tmp_path, tmp_path / "train.parquet", "-o", out, "--predictions", tmp_path / "oof.parquet",
                   "--min-reward", 0.6, "--disjunctions", 2)
    assert result.exit_code == 0, result.output
    assert "candidates proposed: ngram" in result.output and "guard" in result.output
    assert "dropped as redundant (only agree with the model)" in result.output
    assert "net rows fixed" in result.output
    text = out.read_text()
    assert "发行" in text and "net_fixed" in text
    for command in ("check", "test"):
        checked = CliRunner().invoke(main, [command, str(out)])
        assert checked.exit_code == 0, checked.output


def test_thesaurus_and_lexicon_candidates_appear_in_the_output(tmp_path):
    rows = [{"id": f"{label}{i}", "task": "intent", "user": text, "label": label}
            for i in range(3) for label, text in (("上市", "什么时候上市"), ("上市", "上市了吗"),
                                                   ("价格", "价格多少"), ("价格", "多少钱"))]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    lexicon = tmp_path / "lexicon.kdsl"
    lexicon.write_text('kdsl 1\nlet 问价 = any("多少钱", "价格", "什么价")\n', encoding="utf-8")
    out = tmp_path / "rules.kdsl"
    result = _mine(tmp_path, tmp_path / "train.parquet", "-o", out, "--thesaurus", "--lexicon", lexicon,
                   "--min-reward", 0.5)
    assert result.exit_code == 0, result.output
    line = next(l for l in result.output.splitlines() if l.startswith("candidates proposed"))
    counts = dict(part.rsplit(" ", 1) for part in line.removeprefix("candidates proposed: ").split(", "))
    assert int(counts["thesaurus"]) > 0 and int(counts["lexicon"]) > 0
    text = out.read_text()
    assert 'let 问价 = any("多少钱", "价格", "什么价")' in text and "user has 问价" in text
    assert CliRunner().invoke(main, ["check", str(out)]).exit_code == 0


@pytest.mark.parametrize("change, message", [
    (lambda oof: oof.slice(1), "no prediction for training row id '0'"),
    (lambda oof: oof.drop(["model_score"]), "missing column(s) model_score"),
])
def test_bad_predictions_exit_2(tmp_path, change, message):
    train, oof = _model_aware_table()
    pq.write_table(train, tmp_path / "train.parquet")
    pq.write_table(change(oof), tmp_path / "oof.parquet")
    result = CliRunner().invoke(main, ["mine", str(tmp_path / "train.parquet"), "-o", str(tmp_path / "out.kdsl"),
                                       "--predictions", str(tmp_path / "oof.parquet")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out.kdsl").exists()


def test_the_summary_lines_up_chinese_labels():
    from kdsl.cli.mine import summary_table
    from kdsl.mining.miner import LabelSummary, MiningResult
    from kdsl.text_table import width

    summary = [LabelSummary("漏水", 1, 12, 0.5, 3, 1.0), LabelSummary("排水方式", 12, 4, 1.0, 0, None),
               LabelSummary("ab", 3, 120, 0.25, 10, 0.9)]
    lines = summary_table(MiningResult("intent", ("ab", "排水方式", "漏水"), [], summary)).splitlines()
    assert lines[0].startswith("candidates proposed: ngram 0") and lines[-1] == "rules kept 0"
    lines = lines[1:-1]  # the table
    assert lines[0].startswith("label     rules") and set(lines[1]) == {"-", " "}
    assert len({width(line) for line in lines}) == 1  # every column ends at the same terminal cell
    assert lines[2].startswith("漏水" + " " * 10 + "1  ") and lines[3].startswith("排水方式" + " " * 5 + "12  ")
