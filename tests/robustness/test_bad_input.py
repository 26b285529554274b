"""Bad input found by hand and by fuzzing (issue "Bad input, signals, memory and paths"): each
case is `error: ...` and exit 2 — never a traceback, never a silent wrong answer."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import kdsl.engine
from kdsl.errors import InputError
from cli_invoke import run

RULE = 'rule leak: intent = "漏水" when user has "漏水"\n'


def assert_clean_error(code, out, *needles):
    assert code == 2, out
    assert out.startswith("error: ") and "Traceback" not in out, out
    for needle in needles:
        assert needle in out, out


def labelled(**overrides):
    columns = {"id": ["a", "b", "c", "d"], "task": ["intent"] * 4,
               "user": ["洗衣机漏水了", "漏水怎么办", "怎么排水", "排水慢"],
               "label": ["漏水", "漏水", "排水", "排水"], "model_label": ["排水"] * 4}
    columns.update(overrides)
    return pa.table(columns)


@pytest.fixture
def rules(tmp_path):
    path = tmp_path / "r.kdsl"
    path.write_text(RULE, encoding="utf-8")
    return path


def parquet(tmp_path, table, name="in.parquet"):
    path = tmp_path / name
    pq.write_table(table, path)
    return path


# ---- lone surrogates: a rule literal (the compiler encodes it) and a label (Arrow writes it)

@pytest.mark.parametrize("source", ['rule r: intent = "x" when user has "\\ud800"',
                                    'rule r: intent = "\\udfff" when user has "漏水"'])
def test_a_lone_surrogate_in_a_rule_file_is_a_located_error(tmp_path, source):
    path = tmp_path / "bad.kdsl"
    path.write_text(source + "\n", encoding="utf-8")
    code, out = run("score", parquet(tmp_path, labelled()), "-r", path, "-o", tmp_path / "out.parquet")
    assert_clean_error(code, out, "bad.kdsl:1:", "lone surrogate")
    assert not (tmp_path / "out.parquet").exists()


def test_a_lone_surrogate_in_a_challenge_sample_rejects_that_sample(tmp_path):
    samples = [{"id": "a", "instruction": "Picture 1: <image>", "image": ["a.jpg"], "output": "退款"},
               {"id": "b", "instruction": "Picture 1: <image>", "image": ["b.jpg"], "output": "\ud800"}]
    source = tmp_path / "in.json"
    source.write_text(json.dumps(samples), encoding="utf-8")  # ensure_ascii: "\ud800" as an escape
    code, out = run("import", "tianchi", source, "-o", tmp_path / "out.parquet")
    assert_clean_error(code, out, "item 1", "lone surrogate")
    code, out = run("import", "tianchi", source, "-o", tmp_path / "out.parquet", "--skip-bad")
    assert code == 0, out
    assert pq.read_table(tmp_path / "out.parquet").column("id").to_pylist() == ["a"]


# ---- integer columns where the record table has strings

@pytest.mark.parametrize("column", ["label", "user"])
def test_mine_with_an_integer_column(tmp_path, column):
    table = labelled(**{column: [0, 1, 0, 1]})
    code, out = run("mine", parquet(tmp_path, table), "-o", tmp_path / "rules.kdsl")
    assert_clean_error(code, out, f"column '{column}' is int64; expected string")
    assert not (tmp_path / "rules.kdsl").exists()


def test_train_with_an_integer_user(tmp_path):
    code, out = run("train", parquet(tmp_path, labelled(user=[1, 2, 3, 4])), "-o", tmp_path / "m", "--epochs", "1")
    assert_clean_error(code, out, "column 'user' is int64")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    train = folder / "train.parquet"
    pq.write_table(labelled(), train)
    code, out = run("train", train, "-o", folder / "model", "--epochs", "1")
    assert code == 0, out
    return folder / "model"


def test_predict_with_an_integer_user(tmp_path, model):
    code, out = run("predict", parquet(tmp_path, labelled(user=[1, 2, 3, 4])), "-m", model, "-o", tmp_path / "p.parquet")
    assert_clean_error(code, out, "column 'user' is int64")


def test_predict_without_a_user_column_is_an_error_not_blind_guesses(tmp_path, model):
    code, out = run("predict", parquet(tmp_path, labelled().drop_columns(["user"])), "-m", model,
                    "-o", tmp_path / "p.parquet")
    assert_clean_error(code, out, "no 'user' column")
    assert not (tmp_path / "p.parquet").exists()


@pytest.mark.parametrize("command", ["stats", "eval"])
def test_stats_and_eval_with_an_integer_label_refuse_instead_of_scoring_zero(tmp_path, rules, command):
    data = parquet(tmp_path, labelled(label=[1, 1, 2, 2], model_label=["1", "1", "2", "2"]))
    code, out = run("stats", rules, "-d", data) if command == "stats" else run("eval", data)
    assert_clean_error(code, out, "column 'label' is int64; expected string")


@pytest.mark.parametrize("ids, row_id", [([1, 2, 3, 4], "1"), ([1, 2, 3, 4], "x")])
def test_explain_with_an_integer_id(tmp_path, rules, ids, row_id):
    code, out = run("explain", parquet(tmp_path, labelled(id=ids)), "-r", rules, "--id", row_id)
    assert_clean_error(code, out, "column 'id' is int64; expected string")


def test_explain_with_a_duplicate_id_refuses_to_pick_one(tmp_path, rules):
    code, out = run("explain", parquet(tmp_path, labelled(id=["a", "b", "a", "c"])), "-r", rules, "--id", "a")
    assert_clean_error(code, out, "2 rows have id 'a'")


def test_explain_finds_ids_by_text_and_label(tmp_path, rules):
    data = parquet(tmp_path, labelled())
    code, out = run("explain", data, "-r", rules, "--find", "漏水")
    assert code == 0, out
    assert [line.split("\t")[0] for line in out.splitlines()] == ["a", "b"]
    code, out = run("explain", data, "-r", rules, "--label", "排水")
    assert code == 0 and [line.split("\t")[0] for line in out.splitlines()] == ["c", "d"], out
    code, out = run("explain", data, "-r", rules)
    assert_clean_error(code, out, "--find")


# ---- outputs that cannot be written

@pytest.mark.parametrize("command", ["score", "predict", "mine"])
@pytest.mark.parametrize("where", ["missing folder", "a directory"])
def test_an_output_in_a_missing_folder_or_naming_a_directory(tmp_path, rules, model, command, where):
    data = parquet(tmp_path, labelled())
    output = tmp_path / "nowhere" / "out.x" if where == "missing folder" else tmp_path
    args = {"score": ["score", data, "-r", rules, "-o", output],
            "predict": ["predict", data, "-m", model, "-o", output],
            "mine": ["mine", data, "-o", output, "--iterations", "5"]}[command]
    code, out = run(*args)
    assert_clean_error(code, out, "no folder" if where == "missing folder" else "is a directory")


# ---- a challenge file nested 100,000 deep

@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_import_of_deeply_nested_json(tmp_path, suffix):
    source = tmp_path / f"deep{suffix}"
    source.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    code, out = run("import", "tianchi", source, "-o", tmp_path / "out.parquet")
    assert_clean_error(code, out, "nested too deeply")


# ---- a directory of Parquet files must agree on its columns, whichever file comes first

@pytest.mark.parametrize("string_first", [True, False])
def test_a_directory_of_parquet_files_with_mixed_schemas(tmp_path, rules, string_first):
    folder = tmp_path / "parts"
    folder.mkdir()
    strings, integers = labelled(), labelled(label=[1, 2, 3, 4])
    pq.write_table(strings if string_first else integers, folder / "part-0.parquet")
    pq.write_table(integers if string_first else strings, folder / "part-1.parquet")
    code, out = run("eval", folder)
    assert_clean_error(code, out, "part-1.parquet", "same schema")


# ---- dictionary-encoded strings (pandas' category) are strings

def test_dictionary_encoded_string_columns_are_read_as_strings(tmp_path, rules):
    plain = labelled()
    encoded = pa.table({name: (pc_dictionary(column) if pa.types.is_string(column.type) else column)
                        for name, column in zip(plain.column_names, plain.columns)})
    assert pa.types.is_dictionary(encoded.schema.field("user").type)
    for name, table in (("plain", plain), ("encoded", encoded)):
        code, out = run("score", parquet(tmp_path, table, f"{name}.parquet"), "-r", rules, "-o", tmp_path / f"{name}.out.parquet")
        assert code == 0, out
    scored = pq.read_table(tmp_path / "encoded.out.parquet")
    assert scored.column("intent").to_pylist() == pq.read_table(tmp_path / "plain.out.parquet").column("intent").to_pylist()
    assert scored.column("intent").to_pylist()[:2] == ["漏水", "漏水"]
    code, out = run("eval", tmp_path / "encoded.out.parquet", "--json")
    assert code == 0 and json.loads(out)["scores"]["final"]["DIS"] == 1.0, out


def pc_dictionary(column):
    import pyarrow.compute as pc

    return pc.dictionary_encode(column)


# ---- the library: a record that is not a dict

@pytest.mark.parametrize("record", [["洗衣机漏水了"], "洗衣机漏水了", None, {"user": 5}])
def test_engine_predict_and_explain_check_the_record(record):
    engine = kdsl.engine.loads(RULE)
    with pytest.raises(InputError, match="record"):
        engine.predict(record)
    with pytest.raises(InputError, match="record"):
        engine.explain(record)


# ---- what an output may replace, through the commands

def test_fmt_refuses_a_read_only_file_and_writes_through_a_symlink(tmp_path):
    messy = 'rule   leak : intent = "漏水"   when user has "漏水"\n'
    read_only = tmp_path / "ro.kdsl"
    read_only.write_text(messy, encoding="utf-8")
    read_only.chmod(0o444)
    code, out = run("fmt", read_only)
    assert_clean_error(code, out, "read-only")
    assert read_only.read_text(encoding="utf-8") == messy
    real = tmp_path / "real.kdsl"
    real.write_text(messy, encoding="utf-8")
    link = tmp_path / "link.kdsl"
    link.symlink_to(real)
    code, out = run("fmt", link)
    assert code == 0, out
    assert link.is_symlink() and real.read_text(encoding="utf-8") != messy


def test_score_refuses_to_replace_a_non_regular_file(tmp_path, rules):
    """-o /dev/null as root replaced the device node; a FIFO stands in for it here (a regression
    must not break the test machine's /dev/null)."""
    import os
    import stat

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, out = run("score", parquet(tmp_path, labelled()), "-r", rules, "-o", fifo)
    assert_clean_error(code, out, "not a regular file")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_the_pipeline_reads_tables_through_the_record_check(tmp_path):
    from kdsl.io import read_parquet

    with pytest.raises(InputError, match="column 'label' is int64"):
        read_parquet(parquet(tmp_path, labelled(label=[1, 2, 3, 4])))
