"""The WWW2025 Taobao multimodal intent challenge format -> rows of the record table.

An intent sample's ``instruction`` embeds a dialogue between ``<用户与客服的对话 START>`` and
``<用户与客服的对话 END>``, one ``用户:`` / ``客服:`` line per turn, images inline as ``<image>``;
a scene sample is ``Picture 1: <image>`` and a prompt. ``image`` lists the files in the order of
the ``<image>`` placeholders.

    >>> row = to_record({"id": "a", "instruction": "<用户与客服的对话 START>\\n用户: <image>\\n"
    ...                  "用户: 漏水了\\n客服: 您好\\n<用户与客服的对话 END>", "image": ["a-0.jpg"]})
    >>> row["user"], row["agent"], row["image_turns"]
    ('漏水了', '您好', [0])
"""

from __future__ import annotations

import re

DIALOGUE = re.compile(r"<用户与客服的对话 START>(.*?)<用户与客服的对话 END>", re.S)
SPEAKER = re.compile(r"^(用户|客服)\s*[:：]\s?(.*)$")
IMAGE = "<image>"
ROLES = {"用户": "user", "客服": "agent"}


class FormatError(ValueError):
    """A sample that does not follow the challenge format; the message names what is wrong."""


def split_dialogue(instruction: str) -> list[tuple[str, str]]:
    """The turns of an intent sample as (role, text) pairs, ``role`` being user or agent.

    A line without a speaker continues the previous turn.
    """
    match = DIALOGUE.search(instruction)
    if match is None:
        raise FormatError("no '<用户与客服的对话 START>' ... 'END>' block in the instruction")
    turns: list[tuple[str, str]] = []
    for line in match.group(1).strip("\n").split("\n"):
        speaker = SPEAKER.match(line)
        if speaker:
            turns.append((ROLES[speaker.group(1)], speaker.group(2)))
        elif turns:
            role, text = turns[-1]
            turns[-1] = (role, f"{text}\n{line}")
        elif line.strip():
            raise FormatError(f"dialogue line without '用户:' or '客服:': {line[:40]!r}")
    return turns


def to_record(sample: dict) -> dict:
    """One challenge sample -> one row of the record table (DESIGN.md)."""
    for key in ("id", "instruction"):
        if not isinstance(sample.get(key), str):
            raise FormatError(f"missing or non-string '{key}'")
    instruction = sample["instruction"]
    images = sample.get("image") or []
    if isinstance(images, str):
        images = [images]
    is_dialogue = "<用户与客服的对话 START>" in instruction
    user, agent, image_turns = [], [], []
    turns = split_dialogue(instruction) if is_dialogue else []
    for index, (role, text) in enumerate(turns):
        image_turns += [index] * text.count(IMAGE)
        text = text.replace(IMAGE, "").strip()
        if text:
            (user if role == "user" else agent).append(text)
    if not is_dialogue:
        image_turns = [-1] * instruction.count(IMAGE)  # a scene sample's images belong to no turn
    if len(image_turns) != len(images):
        raise FormatError(f"{len(images)} image file(s) for {len(image_turns)} <image> placeholder(s)")
    output = sample.get("output")
    return {
        "id": sample["id"],
        "task": "intent" if is_dialogue else "scene",
        "user": "\n".join(user) if user else None,
        "agent": "\n".join(agent) if agent else None,
        "ocr": None,
        "turns": len(turns),
        "n_images": len(images),
        "image_paths": list(images),
        "image_turns": image_turns,
        "label": output if isinstance(output, str) and output else None,
        "instruction": instruction,
    }
