"""What a newcomer tripped over: a silent first compile."""

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

import kdsl.engine
from kdsl.cli import main


def test_a_cold_numba_cache_is_announced_by_score_and_mine(tmp_path, monkeypatch):
    monkeypatch.setattr(kdsl.engine, "kernels_compiled", lambda: False)
    pq.write_table(pa.table({"id": ["a", "b", "c", "d"], "task": ["intent"] * 4,
                             "user": ["洗衣机漏水了", "漏水怎么办", "怎么排水", "排水慢"],
                             "label": ["漏水", "漏水", "排水", "排水"]}), tmp_path / "in.parquet")
    (tmp_path / "r.kdsl").write_text('rule leak: intent = "漏水" when user has "漏水"\n', encoding="utf-8")
    for args in (["score", "-r", tmp_path / "r.kdsl", "-o", tmp_path / "out.parquet"],
                 ["mine", "-o", tmp_path / "mined.kdsl", "--iterations", "5"]):
        result = CliRunner().invoke(main, [args[0], str(tmp_path / "in.parquet"), *map(str, args[1:])])
        assert result.exit_code == 0, result.output
        assert "compiling the rule engine's kernels" in result.output

