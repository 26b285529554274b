"""Augmentation (kdsl/data/augment.py): deterministic, never mutating, never losing content."""

from __future__ import annotations

import copy
import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from kdsl.data.augment import (
    FILLERS,
    GREETINGS,
    SIMILAR_CHARACTERS,
    SYNONYMS,
    augment_image,
    flip_horizontal,
    is_filler,
    move_fillers,
    ocr_noise,
    rephrase,
    substitute_synonyms,
)

RECORD = {
    "id": "a1",
    "task": "intent",
    "user": "亲，在吗\n这个多少钱？\n什么时候发货\n洗衣机底下一直漏水\n谢谢",
    "agent": "亲，您好\n<http>\n亲，今天就能寄出哦\n好的",
    "ocr": "已签收 订单编号 8801\n退款成功 未使用的优惠券",
    "turns": 9,
    "label": "反馈密封性不好",
    "image_paths": ["a1-0.jpg"],
}


# ------------------------------------------------------------------------------------- images


def test_flip_of_a_small_image_is_its_mirror():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)  # 2 rows, 3 columns, RGB
    flipped = np.asarray(flip_horizontal(Image.fromarray(pixels)))
    assert (flipped == pixels[:, ::-1, :]).all()


def test_augment_image_is_deterministic_and_leaves_the_input_alone():
    pixels = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    outcomes = []
    for seed in range(20):
        first, again = augment_image(image, seed), augment_image(image, seed)
        assert first is not image
        assert first.tobytes() == again.tobytes()
        outcomes.append(np.array_equal(np.asarray(first), pixels[:, ::-1]))
    assert any(outcomes) and not all(outcomes)  # seeds decide, both ways
    assert (np.asarray(image) == pixels).all()
    assert np.array_equal(np.asarray(augment_image(image, 0, flip_probability=1.0)), pixels[:, ::-1])


# ---------------------------------------------------------------------------------------- text


def test_rephrase_is_deterministic_under_a_seed():
    assert rephrase(RECORD, 5, 4) == rephrase(RECORD, 5, 4)
    assert rephrase(RECORD, "s", 2) == rephrase(RECORD, "s", 2)
    assert rephrase(RECORD, 5, 2) == rephrase(RECORD, 5, 4)[:2]  # more variants keep the first ones


def test_different_seeds_give_different_variants():
    assert rephrase(RECORD, 1, 4) != rephrase(RECORD, 2, 4)
    variants = rephrase(RECORD, 1, 8)
    assert len({(v["user"], v["agent"], v["ocr"]) for v in variants}) > 1
    assert any(v != RECORD for v in variants)


def test_inputs_are_not_mutated():
    before = copy.deepcopy(RECORD)
    rephrase(RECORD, 3, 5)
    for step in (move_fillers, substitute_synonyms, ocr_noise):
        assert step(RECORD, 3) is not RECORD
    assert RECORD == before


def test_other_keys_are_copied():
    for variant in rephrase(RECORD, 0, 3):
        assert {k: variant[k] for k in ("id", "task", "label", "image_paths")} == \
            {k: RECORD[k] for k in ("id", "task", "label", "image_paths")}


def decisive(text):
    return [t for t in text.split("\n") if not is_filler(t)]


def test_decisive_turns_and_content_words_are_kept():
    for variant in rephrase(RECORD, 11, 20):
        for field in ("user", "agent"):
            before, after = decisive(RECORD[field]), decisive(variant[field])
            assert len(after) == len(before)
            assert all(_same_up_to_synonyms(b, a) for b, a in zip(before, after))
        assert "洗衣机底下一直漏水" in variant["user"] or "洗衣机底下总是漏水" in variant["user"]


TURN = st.sampled_from(["你好", "在吗？", "好的", "谢谢亲", "<http>", "[图片]", "洗衣机漏水",
                        "盖子密封不好", "能退款吗", "怎么排水", "尺码偏大", "304不锈钢"])


@settings(max_examples=150, deadline=None)
@given(st.lists(TURN, min_size=1, max_size=8), st.lists(TURN, max_size=4), st.integers(0, 10**6))
def test_a_rephrasing_never_removes_a_turn_that_is_not_a_filler(user, agent, seed):
    record = {"user": "\n".join(user), "agent": "\n".join(agent) or None, "ocr": None}
    for variant in rephrase(record, seed, 3):
        # Fillers may go or move; the others stay, in order, and only synonyms change inside them.
        for field in ("user", "agent"):
            if record[field] is None:
                assert variant[field] is None
                continue
            original = decisive(record[field])
            assert len(decisive(variant[field])) == len(original)
            assert all(_same_up_to_synonyms(b, a) for b, a in zip(original, decisive(variant[field])))
            assert variant[field]  # never emptied


def _same_up_to_synonyms(before, after):
    greeting = re.compile(rf"^({'|'.join(GREETINGS)})(?=，)")
    before, after = greeting.sub("亲", before), greeting.sub("亲", after)
    undo = {w: group[0] for group in SYNONYMS for w in group}
    for word in sorted(undo, key=len, reverse=True):
        before, after = before.replace(word, undo[word]), after.replace(word, undo[word])
    return before == after


def test_steps_share_one_random_generator():
    rng = random.Random(0)
    assert move_fillers(RECORD, rng) is not None and rng.getstate() != random.Random(0).getstate()


def test_a_dialogue_of_fillers_keeps_one_turn():
    for seed in range(20):
        variant = move_fillers({"user": "你好\n在吗\n谢谢"}, seed, drop_probability=1.0)
        assert variant["user"] in ("你好", "在吗", "谢谢")


def test_turns_count_follows_dropped_turns():
    variant = move_fillers(RECORD, 0, drop_probability=1.0, move_probability=0.0)
    assert variant["user"] == "这个多少钱？\n什么时候发货\n洗衣机底下一直漏水"
    assert variant["agent"] == "亲，今天就能寄出哦"
    assert variant["turns"] == RECORD["turns"] - 5


@pytest.mark.parametrize("turn, filler", [
    ("你好", True), ("亲，在吗？", True), ("好的谢谢", True), ("<http>", True), ("[图片]", True),
    ("OK!", True), ("  ", False), ("收到了", False), ("在吗，能退款吗", False), ("漏水", False),
])
def test_fillers(turn, filler):
    assert is_filler(turn) is filler


def test_synonyms_swap_whole_words_and_greetings_only_at_a_turn_start():
    out = substitute_synonyms({"user": "亲，什么时候发货\n这款面料亲肤"}, 0, probability=1.0)["user"]
    first, second = out.split("\n")
    assert not first.startswith("亲，") and first.split("，")[0] in ("亲亲", "您好", "你好")
    assert "什么时候" not in first and "发货" not in first
    assert second == "这款面料亲肤"  # 亲 inside 亲肤 is no greeting
    # 怎么样 is one word, not 怎么 + 样
    assert substitute_synonyms({"user": "怎么样"}, 0, probability=1.0)["user"] in ("咋样", "怎样")


def test_ocr_noise_touches_only_ocr_and_keeps_lines():
    record = {"user": "已经签收", "ocr": "已签收\n未发货\n订单 8801"}
    noisy = ocr_noise(record, 1, similar=1.0, drop=0.0, double=0.0)
    assert noisy["user"] == "已经签收"
    assert noisy["ocr"].count("\n") == 2
    assert noisy["ocr"][0] in "己巳" and noisy["ocr"][4] == "末" and "8801" not in noisy["ocr"]
    assert ocr_noise(record, 1, similar=0.0, drop=0.0, double=0.0) == record
    assert ocr_noise({"ocr": None}, 1) == {"ocr": None}


def test_lexicon_groups_are_disjoint_and_lookalikes_are_unique():
    words = [w for group in SYNONYMS for w in group]
    assert len(words) == len(set(words))
    assert all(len(group) >= 2 and all(len(w) >= 2 for w in group) for group in SYNONYMS)
    characters = "".join(SIMILAR_CHARACTERS)
    assert len(characters) == len(set(characters))
    assert all(is_filler(f) for f in FILLERS)
