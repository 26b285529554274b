"""Fuzz targets shared by the suite's hypothesis tests (tests/fuzz/test_fuzz.py, a few examples in
CI) and the long run (bench/fuzz.py): mutate a golden input, run it through a pipeline, and sort
the outcome into "ok", "clean" (an error kdsl raises on purpose, with a message) or a crash
(anything else escapes: the exception is raised to the caller).

A mutation is a short list of edits chosen by ``choose(n) -> int in [0, n)``, so that hypothesis
(``data.draw``) and a seeded ``random.Random`` drive the same code.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

# Fragments that reach the corners: escapes (lone surrogates included), quotes, brackets,
# keywords, numbers at the edges, wide and invisible characters, line breaks of every kind.
FRAGMENTS = [
    '"', "\\", '\\"', "\\u", "\\ud800", "\\udfff", "\\ud83d\\ude00", "\\x00", "\\n", "(", ")", "[", "]",
    "{", "}", ",", ":", "=", "==", "!=", "<", ">=", " and ", " or ", "not ", " when ", " has ", " matches ",
    "rule ", "let ", "field ", "labels ", "priority ", "example ", "counterexample ", "meta ", "any(", "all(",
    "fuzzy(", "count(", "len(", "near(", "user", "agent", "ocr", "model.label", "model.score", "intent",
    "scene", "0", "-1", "1e308", "99999999999999999999", "0.5", "#", "\n", "\r\n", "\r", "\u2028", "\t",
    "\u3000", "漏水", "退款", "ｆｕｌｌ", "\u200b", "\ufeff", "𝕏", "\x00", "\x7f", "kdsl 1\n", "(?i)", ".*",
    "\\d+", "(a|b)*", "\\1",
]


def _mutate(text: str, choose, edits: int) -> str:
    for _ in range(edits):
        kind = choose(5)
        at = choose(len(text) + 1)
        if kind == 0:  # insert a fragment
            text = text[:at] + FRAGMENTS[choose(len(FRAGMENTS))] + text[at:]
        elif kind == 1 and text:  # delete a span
            text = text[:at] + text[at + 1 + choose(16):]
        elif kind == 2 and text:  # duplicate a span
            span = text[at:at + 1 + choose(40)]
            text = text[:at] + span + span + text[at:]
        elif kind == 3 and text:  # replace a character by a nearby code point
            if at < len(text):
                text = text[:at] + chr((ord(text[at]) + choose(64) - 32) % 0x110000) + text[at + 1:]
        else:  # swap two halves around a point
            text = text[at:] + text[:at]
    return text


def rule_fixtures() -> list[str]:
    """Every golden rule file: formatter inputs and outputs, error fixtures, the sample's rules."""
    files = sorted(FIXTURES.rglob("*.kdsl")) + sorted((ROOT / "kdsl" / "samples" / "rules").glob("*.kdsl"))
    return [f.read_text(encoding="utf-8") for f in files]


def mutated_rules(choose, fixtures: list[str]) -> str:
    return _mutate(fixtures[choose(len(fixtures))], choose, 1 + choose(4))


def language(source: str) -> str:
    """parse -> check -> format (which must parse again and be a fixpoint) -> compile -> one
    prediction. Returns "ok" or "clean"; a crash or a broken formatter raises."""
    import kdsl.engine
    from kdsl.dsl import KdslError, check, parse
    from kdsl.dsl.formatter import format_program
    from kdsl.errors import KdslError as LibraryError

    try:
        program = parse(source, "fuzz.kdsl")
    except (KdslError, LibraryError) as error:
        assert str(error), "an error without a message"
        return "clean"
    formatted = format_program(program)
    again = parse(formatted, "fuzz.kdsl")  # a formatted program must parse ...
    assert format_program(again) == formatted, "formatting is not a fixpoint"  # ... and be stable
    try:
        rules = check([program])
    except (KdslError, LibraryError) as error:
        assert str(error), "an error without a message"
        return "clean"
    engine = kdsl.engine.Engine(rules)
    engine.predict({"user": "洗衣机漏水了", "agent": "您好", "ocr": None, "model_label": "退款", "model_score": 0.5})
    return "ok"


SAMPLES = [
    {"id": "i1", "instruction": "你是客服。<用户与客服的对话 START>\n用户: <image>\n用户: 洗衣机漏水了\n客服: 您好\n"
     "<用户与客服的对话 END>\n以下是可以参考的分类标签为：[\"反馈密封性不好\",\"退款\"]", "image": ["i1-0.jpg"],
     "output": "反馈密封性不好"},
    {"id": "s1", "instruction": "Picture 1: <image>\n请识图判断场景", "image": ["s1-0.jpg"], "output": "物流页面"},
    {"id": "s2", "instruction": "Picture 1: <image>", "image": "s2-0.jpg"},
]


def challenge_fixture() -> list[str]:
    """The same samples as a JSON list and as JSON lines."""
    return [json.dumps(SAMPLES, ensure_ascii=False, indent=1),
            "\n".join(json.dumps(s, ensure_ascii=False) for s in SAMPLES) + "\n"]


def mutated_challenge(choose) -> tuple[str, str]:
    """(suffix, text): a JSON list or JSON lines, mutated."""
    index = choose(2)
    return (".json", ".jsonl")[index], _mutate(challenge_fixture()[index], choose, 1 + choose(6))


def challenge_import(suffix: str, text: str) -> str:
    """read -> convert -> the record table -> Parquet, as `kdsl import tianchi` does. "ok" when
    some sample was imported, "clean" when the file or every sample was refused with a reason."""
    import pyarrow.parquet as pq

    from kdsl.data.importing import SourceError, import_samples, read_samples
    from kdsl.record import record_table

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"in{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            result = import_samples(read_samples(path))
        except SourceError as error:
            assert str(error)
            return "clean"
    for reject in result.rejects:
        assert reject.reason
        reject.to_json().encode("utf-8")  # the rejects file must be writable
    if not result.rows:
        return "clean"
    pq.write_table(record_table(result.rows), io.BytesIO())
    return "ok"
