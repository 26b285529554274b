"""What a rule file or a model folder may ask for is bounded (kdsl.limits), with a LimitError
raised before anything is allocated."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import kdsl.engine
from kdsl.cli import main
from kdsl.dsl.loader import parse_file
from kdsl.errors import KdslError, LimitError
from kdsl.limits import MAX_LITERAL_CHARS, MAX_RULE_FILE_BYTES


def test_a_literal_longer_than_the_limit_is_a_located_limit_error():
    source = f'rule r: intent = "x" when user has "{"a" * (MAX_LITERAL_CHARS + 1)}"'
    with pytest.raises(LimitError, match=f"the limit is {MAX_LITERAL_CHARS}") as error:
        kdsl.engine.loads(source, "big.kdsl")
    assert str(error.value).startswith("big.kdsl:1:36:")
    kdsl.engine.loads(f'rule r: intent = "x" when user has "{"a" * MAX_LITERAL_CHARS}"')  # at the limit: fine


def test_a_rule_file_larger_than_the_limit_is_not_read_whole(tmp_path):
    path = tmp_path / "huge.kdsl"
    with path.open("wb") as file:
        file.truncate(MAX_RULE_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(LimitError, match="the limit for a rule file"):
        parse_file(path)
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code in (1, 2) and "limit" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("setting, value, message", [
    ("buckets", 10 ** 11, "buckets = 100000000000 is above the limit"),
    ("hidden", 10 ** 9, "hidden = 1000000000 is above the limit"),
    ("text_dim", 1024, "buckets × text_dim"),
])
def test_a_model_config_asking_for_too_much_is_refused_before_allocating(tmp_path, setting, value, message):
    train = tmp_path / "train.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["a", "b"], "task": ["intent"] * 2, "user": ["漏水", "排水"],
                             "label": ["漏水", "排水"]}), train)
    assert CliRunner().invoke(main, ["train", str(train), "-o", str(tmp_path / "m"), "--epochs", "1"]).exit_code == 0
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["settings"][setting] = value
    if setting == "text_dim":
        config["settings"]["buckets"] = 2 ** 22
    config_path.write_text(json.dumps(config))
    from kdsl.adapters.baseline import BaselineAdapter

    with pytest.raises(LimitError, match=message):
        BaselineAdapter.load(tmp_path / "m")
    result = CliRunner().invoke(main, ["predict", str(train), "-m", str(tmp_path / "m"), "-o", str(tmp_path / "p.parquet")])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_limit_errors_are_kdsl_errors():
    assert issubclass(LimitError, KdslError)
