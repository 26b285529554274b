"""The model side: adapters that turn a record table into ``model_label`` / ``model_score`` /
``model_topk`` columns, for the rule engine to override.

Adapters are found by name, so that a model directory (whose ``config.json`` names its adapter)
loads without the caller knowing which kind it is. Modules are imported on first use: the
``precomputed`` adapter must not pay for importing torch.

    >>> sorted(ADAPTERS)
    ['baseline', 'precomputed', 'qwen2vl']
    >>> adapter_class("precomputed").name
    'precomputed'
"""

from __future__ import annotations

import importlib

from kdsl.adapters.base import Adapter, AdapterError

# name -> "module:class"
ADAPTERS = {
    "baseline": "kdsl.adapters.baseline:BaselineAdapter",
    "precomputed": "kdsl.adapters.precomputed:PrecomputedAdapter",
    "qwen2vl": "kdsl.adapters.qwen2vl:Qwen2VLAdapter",
}


def adapter_class(name: str) -> type[Adapter]:
    """The adapter class registered as ``name``; AdapterError for an unknown name."""
    try:
        module, _, cls = ADAPTERS[name].partition(":")
    except KeyError:
        raise AdapterError(f"unknown adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}") from None
    return getattr(importlib.import_module(module), cls)


def load(model_dir, runtime: str = "torch", columns: dict | None = None) -> Adapter:
    """Load a saved model directory, whatever its adapter; ``runtime="onnx"``: an export made
    by ``kdsl export-onnx``. ``columns``: a precomputed model's column names to read instead of
    the saved ones (``label_column``, ``score_column``, ``topk_column``; None keeps one).

    >>> adapter = load("model/")                 # doctest: +SKIP
    >>> scored = adapter.predict(table)          # doctest: +SKIP
    """
    if runtime == "onnx":
        from kdsl.adapters.onnx_export import load_export

        adapter = load_export(model_dir)
    else:
        from kdsl.adapters.storage import read_config

        adapter = adapter_class(read_config(model_dir)["adapter"]).load(model_dir)
    for key, value in (columns or {}).items():
        if value is not None:
            setattr(adapter, key, value)
    return adapter


__all__ = ["ADAPTERS", "Adapter", "AdapterError", "adapter_class", "load"]
