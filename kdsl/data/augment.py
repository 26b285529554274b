"""Augmentation without a model: image flips for the model adapters, and rephrased records for
checking that mined rules generalise beyond the exact wording they were mined from.

Images: the KDSL paper fine-tunes Qwen2-VL with horizontal-flip augmentation, so that is the one
transformation here (Pillow's ``ImageOps.mirror``). ``augment_image(image, seed)`` flips or not,
decided by the seed.

Text: ``rephrase(record, seed, n)`` returns n variants of a record (a dict with ``user``,
``agent`` and ``ocr`` strings, turns joined by ``\\n``). Each variant

1. drops or moves *filler* turns of ``user`` and ``agent`` (greetings, 在吗, 好的, 谢谢, ``<http>``,
   image placeholders): turns that carry no intent, so their presence and position must not
   change a rule's decision; every other turn is kept, in order;
2. swaps words of ``user`` and ``agent`` for synonyms from a small e-commerce lexicon
   (多少钱 → 什么价格, 发货 → 寄出, a turn-initial 亲 → 您好, ...);
3. adds OCR-like noise to ``ocr`` only (a visually similar character, 己 → 已; rarely a character
   dropped or doubled), the kind of error OCR makes and typing does not.

Everything is deterministic under the seed, and no function mutates its input.

    >>> record = {"user": "你好\\n这个多少钱\\n什么时候发货", "agent": "亲，稍等", "ocr": None}
    >>> variants = rephrase(record, seed=7, n=3)
    >>> len(variants), variants == rephrase(record, seed=7, n=3), record["user"]
    (3, True, '你好\\n这个多少钱\\n什么时候发货')
"""

from __future__ import annotations

import random
import re
import unicodedata

# ---------------------------------------------------------------------------------------- images


def flip_horizontal(image):
    """The mirror image (left and right swapped), a new ``PIL.Image``.

    >>> from PIL import Image
    >>> image = Image.frombytes("L", (3, 1), bytes([0, 100, 255]))
    >>> list(flip_horizontal(image).tobytes())
    [255, 100, 0]
    """
    from PIL import ImageOps

    return ImageOps.mirror(image)


def augment_image(image, seed: int | str, flip_probability: float = 0.5):
    """A new image, flipped horizontally or not as ``seed`` decides; the input is left as it is.

    To double a training set instead, add ``flip_horizontal(image)`` beside every image.
    """
    rng = random.Random(f"kdsl-image:{seed}")
    return flip_horizontal(image) if rng.random() < flip_probability else image.copy()


# ------------------------------------------------------------------------------- text: lexicon

# Groups of interchangeable words in customer-service chat. A word belongs to one group at most.
# Single characters are left out on purpose: as substrings they sit inside unrelated words
# (咋 in 咋样, 券 in 优惠券), so replacing them would break the words around them.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("多少钱", "什么价格", "啥价格", "价格多少"),
    ("发货", "寄出"),
    ("快递", "物流"),
    ("退款", "退钱"),
    ("退货", "退回去"),
    ("换货", "调换"),
    ("衣服", "衣物"),
    ("能不能", "可不可以", "能否"),
    ("怎么样", "咋样", "怎样"),
    ("怎么", "如何"),
    ("什么时候", "啥时候", "何时"),
    ("客服", "掌柜", "店家"),
    ("有没有", "是否有"),
    ("是不是", "是否"),
    ("尺码", "码数"),
    ("尺寸", "大小"),
    ("便宜点", "优惠点", "便宜一点"),
    ("优惠券", "优惠卷"),  # the misspelling is as common as the word
    ("包邮", "免运费"),
    ("质量", "品质"),
    ("商品", "宝贝"),
    ("订单", "单子"),
    ("没收到", "没有收到"),
    ("请问", "想问下", "问一下"),
    ("谢谢", "感谢", "多谢"),
    ("不好意思", "抱歉"),
    ("现在", "目前"),
    ("一直", "总是"),
    ("马上", "立刻"),
    ("保修", "质保"),
    ("好用吗", "好不好用"),
    ("坏了", "坏掉了"),
    ("麻烦", "劳烦"),
)
# A greeting opening a turn ("亲，稍等"); anywhere else 亲 is part of a word (亲肤, 亲戚).
GREETINGS = ("亲亲", "亲", "您好", "你好")
_GREETING = re.compile(rf"^({'|'.join(GREETINGS)})(?=[，,！!～~。.\s]|$)", re.MULTILINE)

_SYNONYM_OF = {word: group for group in SYNONYMS for word in group}
# Longest first, so that 怎么样 is taken whole before 怎么 is tried at the same place.
_WORD = re.compile("|".join(map(re.escape, sorted(_SYNONYM_OF, key=len, reverse=True))))

# Whole turns that carry no intent. A turn made only of these (and punctuation) is a filler.
# Not 收到: from a user it may mean the parcel arrived, which decides some intents.
FILLERS = (
    "你好", "您好", "亲亲", "亲", "在吗", "在不在", "在么", "在嘛", "好的", "好滴", "好", "嗯嗯", "嗯",
    "哦哦", "哦", "ok", "okay", "谢谢你", "谢谢亲", "谢谢", "多谢", "感谢", "知道了", "辛苦了",
    "哈哈", "哈", "呢", "呀", "啊", "嘛", "<http>", "<image>", "[图片]", "【图片】", "[表情]",
)
_FILLER = re.compile("|".join(map(re.escape, sorted(FILLERS, key=len, reverse=True))))

# Pairs OCR confuses in screenshots of shop pages (and a few Latin/digit pairs in order numbers).
SIMILAR_CHARACTERS: tuple[str, ...] = (
    "己已巳", "未末", "土士", "人入八", "日曰", "大太犬", "王玉", "贝见", "天夭", "干千于",
    "戊戌戍", "元无", "问间", "拔拨", "候侯", "折拆", "刀力", "今令", "免兔", "鸟乌", "历厉",
    "买卖", "货贷", "账帐", "壁璧", "O0", "l1I", "S5", "B8", "Z2",
)
_LOOKALIKES = {ch: group.replace(ch, "") for group in SIMILAR_CHARACTERS for ch in group}


# ------------------------------------------------------------------------- text: transformations


def is_filler(turn: str) -> bool:
    """True for a turn that says nothing about the intent: only greetings, thanks, "在吗", links
    or image placeholders, with any punctuation.

    >>> is_filler("你好，在吗？"), is_filler("<http>"), is_filler("好的谢谢"), is_filler("在吗能退款吗")
    (True, True, True, False)
    """
    core = "".join(ch for ch in turn.casefold() if not _is_punctuation_or_space(ch))
    return bool(core) and not _FILLER.sub("", core)


def move_fillers(record: dict, seed, drop_probability: float = 0.5, move_probability: float = 0.3) -> dict:
    """Drop each filler turn of ``user`` and ``agent`` with ``drop_probability``, and move each
    kept one elsewhere with ``move_probability``. Other turns stay, in their order; a field is
    never left without a turn. ``turns`` (when a number) loses one per dropped turn.

    >>> move_fillers({"user": "你好\\n漏水了\\n谢谢"}, seed=1, drop_probability=1.0)["user"]
    '漏水了'
    """
    rng = _rng(seed)
    out, dropped = dict(record), 0
    for field in ("user", "agent"):
        text = record.get(field)
        if not text:
            continue
        turns = text.split("\n")
        kept = [t for t in turns if not (is_filler(t) and rng.random() < drop_probability)]
        if not kept:  # a dialogue of fillers only: keep one, it still is the dialogue
            kept = [rng.choice(turns)]
        dropped += len(turns) - len(kept)
        for turn in [t for t in kept if is_filler(t)]:
            if rng.random() < move_probability:
                kept.remove(turn)
                kept.insert(rng.randrange(len(kept) + 1), turn)
        out[field] = "\n".join(kept)
    if isinstance(record.get("turns"), int) and dropped:
        out["turns"] = max(record["turns"] - dropped, 0)
    return out


def substitute_synonyms(record: dict, seed, probability: float = 0.5) -> dict:
    """Replace each lexicon word of ``user`` and ``agent`` (and a greeting opening a turn) by
    another of its group, each with ``probability``.

    >>> substitute_synonyms({"user": "亲，发货了吗\\n想退款"}, seed=3, probability=1.0)["user"] in (
    ...     "您好，寄出了吗\\n想退钱", "你好，寄出了吗\\n想退钱", "亲亲，寄出了吗\\n想退钱")
    True
    """
    rng = _rng(seed)

    def swap(words: tuple[str, ...]):
        def replace(match: re.Match) -> str:
            word = match.group(0)
            if rng.random() >= probability:
                return word
            return rng.choice([w for w in words if w != word])
        return replace

    out = dict(record)
    for field in ("user", "agent"):
        text = record.get(field)
        if text:
            text = _GREETING.sub(swap(GREETINGS), text)
            out[field] = _WORD.sub(lambda m: swap(_SYNONYM_OF[m.group(0)])(m), text)
    return out


def ocr_noise(record: dict, seed, similar: float = 0.05, drop: float = 0.01, double: float = 0.01) -> dict:
    """Corrupt ``ocr`` as OCR does: each character that has a look-alike becomes one with
    probability ``similar``; any character is dropped with ``drop`` or doubled with ``double``.
    Line breaks are kept, so the lines (one per image or text block) stay as they were.

    >>> ocr_noise({"ocr": "已签收"}, seed=0, similar=1.0)["ocr"]
    '己签收'
    """
    rng = _rng(seed)
    text = record.get("ocr")
    if not text:
        return dict(record)
    chars = []
    for ch in text:
        if ch == "\n":
            chars.append(ch)
        elif ch in _LOOKALIKES and rng.random() < similar:
            chars.append(rng.choice(_LOOKALIKES[ch]))
        else:
            roll = rng.random()
            chars.append("" if roll < drop else ch * 2 if roll < drop + double else ch)
    return {**record, "ocr": "".join(chars)}


def rephrase(record: dict, seed: int | str, n: int = 1) -> list[dict]:
    """``n`` variants of ``record``: fillers dropped or moved, synonyms swapped, OCR noise added.

    Variant ``i`` depends only on ``seed`` and ``i``, so asking for more variants keeps the first
    ones. A record with nothing to vary (no filler, no lexicon word, no OCR text) comes back as a
    copy of itself. Keys other than ``user``, ``agent``, ``ocr`` and ``turns`` are copied as they
    are, ``id`` included: give the variants new ids before putting them in one table with it.
    """
    variants = []
    for i in range(n):
        rng = random.Random(f"kdsl-rephrase:{seed}:{i}")
        variant = move_fillers(record, rng)
        variant = substitute_synonyms(variant, rng)
        variants.append(ocr_noise(variant, rng))
    return variants


def _rng(seed) -> random.Random:
    """A ``random.Random`` passes through (so that steps can share one); a seed makes a new one.
    String seeds are hashed by ``random`` itself, not by ``hash()``, so they are stable across
    runs."""
    return seed if isinstance(seed, random.Random) else random.Random(f"kdsl-augment:{seed}")


def _is_punctuation_or_space(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] in "PS" and ch not in "<>[]【】"
