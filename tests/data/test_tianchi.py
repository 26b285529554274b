"""The challenge format: dialogue splitting, malformed samples, and the full tmm-sim files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from kdsl.data.importing import SourceError, import_samples, missing_images, read_samples
from kdsl.data.tianchi import FormatError, clean_turn, split_dialogue, to_record

TMM_SIM = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tmm-sim"
INTENT_PROMPT = "你是一个电商客服专家，请根据用户与客服的多轮对话判断用户的意图分类标签。\n"
LABEL_LIST = '\n请直接只输出分类标签结果。以下是可以参考的分类标签为：["反馈密封性不好","气泡"]\n'
SCENE_PROMPT = "Picture 1: <image>\n你是一个电商领域识图专家。分类标签:[\"退款页面\",\"退货页面\"]。"


def dialogue(*lines: str) -> str:
    """An intent instruction around ``lines``, as the challenge writes it."""
    return INTENT_PROMPT + "<用户与客服的对话 START>\n" + "\n".join(lines) + "\n<用户与客服的对话 END>" + LABEL_LIST


def intent_sample(*lines: str, **fields) -> dict:
    images = sum(line.count("<image>") for line in lines)
    return {"id": "s1", "instruction": dialogue(*lines), "input": "", "output": "气泡",
            "image": [f"s1-{k}.jpg" for k in range(images)], **fields}


@pytest.fixture(scope="module")
def tmm_sim():
    if not (TMM_SIM / "train.json").exists():
        pytest.skip(f"the shared tmm-sim data is not at {TMM_SIM}")
    return TMM_SIM


# --- splitting dialogues ---------------------------------------------------------------------

def test_a_line_without_speaker_continues_the_turn():
    turns = split_dialogue(dialogue("用户: 第一行", "第二行", "客服: 好的"))
    assert turns == [("user", "第一行\n第二行"), ("agent", "好的")]


def test_empty_agent_turns_count_as_turns_but_add_no_text():
    row = to_record(intent_sample("用户: 在吗", "客服: ", "用户: 有货吗", "客服:"))
    assert (row["turns"], row["user"], row["agent"]) == (4, "在吗\n有货吗", None)


def test_image_only_turns_place_their_images_and_add_no_text():
    row = to_record(intent_sample("用户: <image>", "客服: 收到", "用户: <image><image>", "用户: 漏水了"))
    assert row["user"] == "漏水了"
    assert row["image_turns"] == [0, 2, 2]
    assert row["n_images"] == 3 and row["image_paths"] == ["s1-0.jpg", "s1-1.jpg", "s1-2.jpg"]


def test_links_become_one_bare_placeholder():
    row = to_record(intent_sample('用户: "<http>"', "用户: 看这个 <http>", "客服: 活动 <http>"))
    assert row["user"] == "<http>\n看这个 <http>"
    assert row["agent"] == "活动 <http>"
    assert clean_turn("“<http>”") == "<http>"


def test_full_width_colon_and_missing_space_are_speakers():
    assert split_dialogue(dialogue("用户：你好", "客服:您好", "用户 ： 在吗")) == [
        ("user", "你好"), ("agent", "您好"), ("user", "在吗")]


def test_the_prompt_label_list_never_reaches_the_text():
    row = to_record(intent_sample("用户: 有气泡", "客服: 抱歉"))
    assert "分类标签" not in row["user"] + row["agent"]
    assert "反馈密封性不好" not in row["user"] + row["agent"]


def test_a_scene_sample_has_images_outside_any_turn():
    row = to_record({"id": "p", "instruction": SCENE_PROMPT, "output": "退款页面", "image": ["p-0.jpg"]})
    assert (row["task"], row["turns"], row["user"], row["image_turns"], row["label"]) == \
        ("scene", 0, None, [-1], "退款页面")


@pytest.mark.parametrize("output", [None, "", "absent"])
def test_samples_without_output_import_with_a_null_label(output):
    sample = intent_sample("用户: 在吗")
    if output == "absent":
        del sample["output"]
    else:
        sample["output"] = output
    assert to_record(sample)["label"] is None


def test_a_single_image_may_be_a_bare_string():
    row = to_record({"id": "p", "instruction": SCENE_PROMPT, "image": "p-0.jpg"})
    assert row["image_paths"] == ["p-0.jpg"]


# --- malformed samples -----------------------------------------------------------------------

@pytest.mark.parametrize("change, reason", [
    (lambda s: s.pop("id"), "missing 'id'"),
    (lambda s: s.update(id=""), "'id' is not a non-empty string"),
    (lambda s: s.update(instruction=["用户: 在吗"]), "'instruction' is not a string"),
    (lambda s: s.update(image=[]), "0 image file(s) for 1 <image> placeholder(s)"),
    (lambda s: s.update(image=["a.jpg", "b.jpg"]), "2 image file(s) for 1 <image> placeholder(s)"),
    (lambda s: s.update(image=[3]), "'image' is not a list of file names"),
    (lambda s: s.update(output=3), "'output' is not a string"),
    (lambda s: s.update(instruction=INTENT_PROMPT + "用户: 在吗" + LABEL_LIST),
     "no dialogue block: '<用户与客服的对话 START>' not found"),
    (lambda s: s.update(instruction=s["instruction"].replace("<用户与客服的对话 END>", "")),
     "no dialogue block: '<用户与客服的对话 END>' not found"),
    (lambda s: s.update(instruction=s["instruction"].replace("<用户与客服的对话 START>\n", "<用户与客服的对话 START>\n在吗\n")),
     "dialogue line without '用户:' or '客服:'"),
    (lambda s: s.update(instruction="请分类。"), "neither a dialogue prompt"),
])
def test_malformed_samples_say_what_is_wrong(change, reason):
    sample = intent_sample("用户: <image>", "客服: 您好")
    change(sample)
    with pytest.raises(FormatError) as error:
        to_record(sample)
    assert reason in str(error.value)


def test_a_misplaced_end_marker_is_an_error_not_a_label_list_in_the_text():
    instruction = dialogue("用户: 在吗").replace("<用户与客服的对话 START>", "<用户与客服的对话 START>\n用户: a\n<用户与客服的对话 START>", 1)
    with pytest.raises(FormatError, match="prompt text"):
        split_dialogue(instruction)


def test_import_samples_rejects_bad_and_repeated_samples_with_their_location():
    good = intent_sample("用户: 在吗")
    result = import_samples([("item 0", good), ("item 1", {"instruction": "x"}), ("item 2", dict(good)),
                             ("item 3", "text")])
    assert [row["id"] for row in result.rows] == ["s1"]
    assert [r.message() for r in result.rejects] == [
        "item 1: missing 'id'",
        "item 2 (id 's1'): duplicate id, first seen at item 0",
        "item 3: a sample is a JSON object, not str",
    ]


def test_json_lines_name_lines_and_a_broken_line_is_one_reject(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(intent_sample("用户: 在吗"), ensure_ascii=False) + "\n\n{broken\n", encoding="utf-8")
    result = import_samples(read_samples(path))
    assert len(result.rows) == 1
    assert result.rejects[0].message().startswith("line 3: not JSON")


@pytest.mark.parametrize("text, message", [
    ("{\"id\": 1}", "expected a JSON list of samples, found a JSON object"),
    ("not json", "not JSON"),
    ('{"id": "a"}\n{"id": "b"}\n', "it looks like JSON lines"),
])
def test_a_file_that_is_not_a_json_list_is_a_source_error(tmp_path, text, message):
    path = tmp_path / "in.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError, match=message):
        read_samples(path)


def test_missing_images_are_listed_once_each(tmp_path):
    (tmp_path / "here.jpg").write_bytes(b"")
    rows = [{"image_paths": ["here.jpg", "gone.jpg"]}, {"image_paths": ["gone.jpg", "lost.jpg"]}]
    assert missing_images(rows, tmp_path) == ["gone.jpg", "lost.jpg"]


# --- the tmm-sim files -----------------------------------------------------------------------

@pytest.mark.parametrize("split, intent, scene", [("train", 300, 700), ("dev", 150, 350)])
def test_tmm_sim_imports_every_row_with_its_label(tmm_sim, split, intent, scene):
    samples = json.loads((tmm_sim / f"{split}.json").read_text(encoding="utf-8"))
    result = import_samples(read_samples(tmm_sim / f"{split}.json"))
    assert result.rejects == []
    rows = result.rows
    assert Counter(row["task"] for row in rows) == {"intent": intent, "scene": scene}
    # The expected counts come from the JSON alone: scene prompts start with "Picture".
    expected = Counter(("scene" if s["instruction"].startswith("Picture") else "intent", s["output"]) for s in samples)
    assert Counter((row["task"], row["label"]) for row in rows) == expected
    for row, sample in zip(rows, samples):
        text = (row["user"] or "") + (row["agent"] or "")
        assert "分类标签" not in text and "<image>" not in text and "用户与客服的对话" not in text
        assert row["n_images"] == len(row["image_paths"]) == len(row["image_turns"]) == len(sample["image"])
        if row["task"] == "intent":
            turns = split_dialogue(sample["instruction"])
            assert all(turns[t][0] == "user" for t in row["image_turns"])  # only users send images
    assert missing_images(rows, tmm_sim / "images") == []
