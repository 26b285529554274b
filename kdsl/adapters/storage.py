"""A model directory on disk: ``config.json`` (what the model is) and ``weights.safetensors``
(its tensors). Never pickle: loading a model must not run code from the directory.

The directory is written whole or not at all: into a hidden temporary directory beside the
target, then renamed into place, so that an interrupted ``kdsl train`` leaves the previous model
(or nothing) rather than a config without weights.

    >>> with kdsl.io.atomic_directory("model/") as tmp:          # doctest: +SKIP
    ...     write_config(tmp, {"adapter": "baseline"})
"""

from __future__ import annotations

import json
from pathlib import Path

from kdsl.adapters.base import AdapterError

CONFIG, WEIGHTS = "config.json", "weights.safetensors"
FORMAT_VERSION = 1


def write_config(directory, config: dict) -> None:
    config = {"format": FORMAT_VERSION, **config}
    (Path(directory) / CONFIG).write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n",
                                          encoding="utf-8")


def read_config(directory) -> dict:
    """The model's config; AdapterError when the directory is not a model directory."""
    path = Path(directory) / CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdapterError(f"{directory}: not a model directory (no {CONFIG})") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise AdapterError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(config, dict) or "adapter" not in config:
        raise AdapterError(f"{path}: no 'adapter' named")
    if config.get("format") != FORMAT_VERSION:
        raise AdapterError(f"{path}: format {config.get('format')!r}; this kdsl reads {FORMAT_VERSION}")
    return config


def write_weights(directory, tensors: dict) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(Path(directory) / WEIGHTS))


def read_weights(directory) -> dict:
    from safetensors.torch import load_file

    path = Path(directory) / WEIGHTS
    if not path.exists():
        raise AdapterError(f"{directory}: no {WEIGHTS}")
    return load_file(str(path))
