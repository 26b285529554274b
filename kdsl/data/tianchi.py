"""The WWW2025 Taobao multimodal intent challenge format -> rows of the record table.

An intent sample's ``instruction`` embeds a dialogue between ``<用户与客服的对话 START>`` and
``<用户与客服的对话 END>``, one ``用户:`` / ``客服:`` line per turn (full-width ``：`` too), images
inline as ``<image>``, links as ``<http>``; the prompt around the block carries the label list.
A scene sample is ``Picture 1: <image>`` and a prompt. ``image`` lists the files in the order of
the ``<image>`` placeholders.

    >>> row = to_record({"id": "a", "instruction": "对话<用户与客服的对话 START>\\n用户: <image>\\n"
    ...                  "用户: 漏水了\\n客服: \\n<用户与客服的对话 END>[\\"气泡\\"]", "image": ["a-0.jpg"]})
    >>> row["task"], row["user"], row["agent"], row["turns"], row["image_turns"]
    ('intent', '漏水了', None, 3, [0])
"""

from __future__ import annotations

import re

from kdsl.data.images import image_path_problem
from kdsl.errors import InputError

START, END = "<用户与客服的对话 START>", "<用户与客服的对话 END>"
DIALOGUE = re.compile(re.escape(START) + r"(.*?)" + re.escape(END), re.S)
SPEAKER = re.compile(r"^[ \t\u3000]*(用户|客服)[ \t\u3000]*[:：][ \t\u3000]?(.*)$", re.S)
IMAGE = "<image>"
# Links reach us as a placeholder, sometimes quoted ("<http>"); keep one bare token so that a rule
# can still test that the user sent a link.
QUOTED_LINK = re.compile(r"[\"“”]\s*<http>\s*[\"“”]")
ROLES = {"用户": "user", "客服": "agent"}
# How the prompts tell the two tasks apart when the dialogue markers are damaged or absent.
INTENT_PROMPT = re.compile(r"多轮对话|意图分类标签|" + re.escape(START) + "|" + re.escape(END))
SCENE_PROMPT = re.compile(r"Picture \d+\s*[:：]\s*<image>|识图")
# Prompt text that must never end up inside user or agent text (a misplaced END marker would
# otherwise pour the 23-label list into the last turn).
PROMPT_LEAK = re.compile(re.escape(START) + "|" + re.escape(END) + r"|以下是可以参考的分类标签")


class FormatError(InputError):
    """A sample that does not follow the challenge format; the message names what is wrong."""


def split_dialogue(instruction: str) -> list[tuple[str, str]]:
    """The turns of an intent sample as (role, raw text) pairs, ``role`` being user or agent.

    A line without a speaker continues the previous turn; an empty reply (``客服: ``) is a turn
    with empty text; placeholders (``<image>``, ``<http>``) are left in the text.

    >>> split_dialogue("<用户与客服的对话 START>\\n用户：在吗\\n还在吗\\n客服: \\n<用户与客服的对话 END>")
    [('user', '在吗\\n还在吗'), ('agent', '')]
    """
    blocks = DIALOGUE.findall(instruction.replace("\r\n", "\n"))
    if not blocks:
        missing = "END" if START in instruction else "START"
        raise FormatError(f"no dialogue block: '<用户与客服的对话 {missing}>' not found")
    if len(blocks) > 1:
        raise FormatError(f"{len(blocks)} dialogue blocks; expected one")
    turns: list[tuple[str, str]] = []
    for line in blocks[0].strip("\n").split("\n"):
        if PROMPT_LEAK.search(line):
            raise FormatError(f"the dialogue block contains prompt text: {line[:40]!r}")
        speaker = SPEAKER.match(line)
        if speaker:
            turns.append((ROLES[speaker.group(1)], speaker.group(2).rstrip()))
        elif turns:
            role, text = turns[-1]
            turns[-1] = (role, f"{text}\n{line.rstrip()}")
        elif line.strip():
            raise FormatError(f"dialogue line without '用户:' or '客服:': {line[:40]!r}")
    if not turns:
        raise FormatError("the dialogue block has no turn")
    return turns


def clean_turn(text: str) -> str:
    """A turn's text as rules see it: without image placeholders, links as a bare ``<http>``.

    >>> clean_turn('看下这个 "<http>" <image>')
    '看下这个 <http>'
    """
    text = QUOTED_LINK.sub("<http>", text.replace(IMAGE, ""))
    return "\n".join(line.strip() for line in text.strip().split("\n") if line.strip())


def task_of(instruction: str) -> str:
    """``intent`` for a dialogue prompt, ``scene`` for a picture prompt."""
    if INTENT_PROMPT.search(instruction):
        return "intent"
    if SCENE_PROMPT.search(instruction):
        return "scene"
    raise FormatError("neither a dialogue prompt ('<用户与客服的对话 START>') nor a scene prompt "
                      "('Picture 1: <image>')")


def to_record(sample: dict) -> dict:
    """One challenge sample -> one row of the record table (docs/record-table.md).

    Raises FormatError, naming what is wrong, for a sample that cannot be read.
    """
    if not isinstance(sample, dict):
        raise FormatError(f"a sample is a JSON object, not {type(sample).__name__}")
    sample_id = sample.get("id")
    if not isinstance(sample_id, str) or not sample_id.strip():
        raise FormatError("missing 'id'" if sample_id is None else "'id' is not a non-empty string")
    instruction = sample.get("instruction")
    if not isinstance(instruction, str):
        raise FormatError("missing 'instruction'" if instruction is None else "'instruction' is not a string")
    images = _image_list(sample.get("image"))
    task = task_of(instruction)
    user, agent, image_turns, turns = [], [], [], []
    if task == "intent":
        turns = split_dialogue(instruction)
        before, after = instruction.split(START, 1)[0], instruction.rsplit(END, 1)[-1]
        image_turns = [-1] * before.count(IMAGE)  # an image outside the dialogue belongs to no turn
        for index, (role, text) in enumerate(turns):
            image_turns += [index] * text.count(IMAGE)
            text = clean_turn(text)
            if text:
                (user if role == "user" else agent).append(text)
        image_turns += [-1] * after.count(IMAGE)
    else:
        image_turns = [-1] * instruction.count(IMAGE)  # a scene sample's images belong to no turn
    if len(image_turns) != len(images):
        raise FormatError(f"{len(images)} image file(s) for {len(image_turns)} <image> placeholder(s)")
    for name in images:
        problem = image_path_problem(name)
        if problem:
            raise FormatError(f"image {name[:80]!r}: {problem}")
    for key in ("id", "instruction", "output"):
        _check_unicode(key, sample.get(key))
    return {
        "id": sample_id,
        "task": task,
        "user": "\n".join(user) if user else None,
        "agent": "\n".join(agent) if agent else None,
        "ocr": None,
        "turns": len(turns),
        "n_images": len(images),
        "image_paths": images,
        "image_turns": image_turns,
        "label": _label(sample.get("output")),
        "instruction": instruction,
    }


def _check_unicode(key: str, value) -> None:
    """JSON's ``"\\ud800"`` decodes to a lone surrogate, which no UTF-8 file (Parquet) can hold."""
    if isinstance(value, str):
        surrogate = next((i for i, ch in enumerate(value) if "\ud800" <= ch <= "\udfff"), None)
        if surrogate is not None:
            raise FormatError(f"'{key}' holds a lone surrogate \\u{ord(value[surrogate]):04x} at character "
                              f"{surrogate}; it is not valid Unicode text")


def _image_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]  # some exports write a single image as a bare string
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FormatError("'image' is not a list of file names")
    return list(value)


def _label(output) -> str | None:
    """The ground truth; test sets have no ``output`` or an empty one."""
    if output is None or output == "":
        return None
    if not isinstance(output, str):
        raise FormatError("'output' is not a string")
    return output.strip()
