"""Every bound kdsl puts on what an untrusted source (a rule file, a model folder, an image, a
challenge file) may ask for, in one place, so that each is checked before anything is allocated
and documented once (docs/robustness.md).

Exceeding one raises :class:`kdsl.errors.LimitError` (or, inside a rule file, a located
diagnostic that is also a ``LimitError``) naming the value, the limit and where it came from.

    >>> check_range("buckets", 10 ** 11, 1, MODEL_LIMITS["buckets"], "model/config.json")
    Traceback (most recent call last):
    ...
    kdsl.errors.LimitError: model/config.json: buckets = 100000000000 is above the limit of 4194304
"""

from __future__ import annotations

from kdsl.errors import LimitError

#: One string literal of a rule file (a phrase, a regex, a label), in characters. Phrases are
#: words or short sentences; a 10 MB literal made the matcher take 1.85 GB.
MAX_LITERAL_CHARS = 4096
#: One rule file, in bytes: a mined rule base of 20,000 rules is about 2 MB.
MAX_RULE_FILE_BYTES = 8 * 1024 * 1024
#: One image file read for OCR, thumbnails or Qwen2-VL (a phone screenshot is well under 5 MB).
MAX_IMAGE_BYTES = 32 * 1024 * 1024

#: The largest value of each size-like model setting a model folder's config.json may hold
#: (its defaults are far below): the network is allocated from them before any weight is read.
MODEL_LIMITS = {
    "buckets": 2 ** 22,
    "text_dim": 1024,
    "image_size": 1024,
    "hidden": 8192,
    "top_k": 1000,
    "epochs": 100_000,
    "batch_size": 1 << 20,
    "gradient_accumulation": 1 << 16,
    "cutoff": 1 << 17,
    "lora_rank": 4096,
}
#: Text embedding parameters (buckets × text_dim) of the baseline: 2**27 floats = 512 MB.
MAX_EMBEDDING_PARAMETERS = 2 ** 27


def check_range(name: str, value, low, high, where: str) -> None:
    """:class:`LimitError` unless ``low <= value <= high``."""
    if value > high:
        raise LimitError(f"{where}: {name} = {value} is above the limit of {high}")
    if value < low:
        raise LimitError(f"{where}: {name} = {value} is below the minimum of {low}")


def check_model_settings(settings, where: str = "model settings") -> None:
    """Every size-like field of a settings dataclass (see ``MODEL_LIMITS``) within its bound,
    and every one of them an int: ``TypeError`` otherwise (the adapters report a wrong type as
    a bad option or a bad config)."""
    for name, high in MODEL_LIMITS.items():
        if not hasattr(settings, name):
            continue
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} = {value!r} is not an integer")
        check_range(name, value, 0, high, where)
