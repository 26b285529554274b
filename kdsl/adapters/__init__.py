"""The model side: adapters that turn a record table into ``model_label`` / ``model_score`` /
``model_topk`` columns, for the rule engine to override.

Adapters are found by name, so that a model directory (whose ``config.json`` names its adapter)
loads without the caller knowing which kind it is. Modules are imported on first use: the
``precomputed`` adapter must not pay for importing torch. This registry dispatches ``train``,
``load``, ``export`` and ``load_export``; what a caller needs to know about an adapter (its
options, whether it wants a GPU, its ONNX form) the adapter class declares (``Adapter``).

    >>> sorted(ADAPTERS)
    ['baseline', 'precomputed', 'qwen2vl']
    >>> adapter_class("precomputed").name
    'precomputed'
"""

from __future__ import annotations

import importlib

from kdsl.adapters.base import Adapter, AdapterError, Option

# name -> "module:class"
ADAPTERS = {
    "baseline": "kdsl.adapters.baseline:BaselineAdapter",
    "precomputed": "kdsl.adapters.precomputed:PrecomputedAdapter",
    "qwen2vl": "kdsl.adapters.qwen2vl:Qwen2VLAdapter",
}


def adapter_class(name: str) -> type[Adapter]:
    """The adapter class registered as ``name``; AdapterError for an unknown name."""
    try:
        return _resolve(ADAPTERS[name])
    except KeyError:
        raise AdapterError(f"unknown adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}") from None


def adapter_classes() -> list[type[Adapter]]:
    """Every registered adapter class, in registry order (this imports them all)."""
    return [adapter_class(name) for name in ADAPTERS]


def declared_options(loading: bool = False) -> list[tuple[Option, list[str], str]]:
    """(option, names of the adapters declaring it, their helps joined) for every option the
    adapters declare (``loading``: only their ``load_options``), in registry then declaration
    order; the first declaration of a name gives its kind. ``kdsl train`` and ``kdsl predict``
    make their adapter flags from it."""
    found: dict[str, tuple] = {}
    for cls in adapter_classes():
        for option in cls.options:
            if loading and option.name not in cls.load_options:
                continue
            first, owners, helps = found.get(option.name, (option, [], []))
            found[option.name] = (first, owners + [cls.name], helps + [f"{cls.name}: {option.help}"])
    return [(option, owners, "; ".join(helps)) for option, owners, helps in found.values()]


def train(name: str, table, **options) -> Adapter:
    """Train the adapter ``name`` on ``table`` (``options``: see its ``options``).

    >>> model = train("baseline", table, images="data/images", epochs=8)   # doctest: +SKIP
    """
    return adapter_class(name).train(table, **options)


def load(model_dir, runtime: str = "torch", columns: dict | None = None) -> Adapter:
    """Load a saved model directory, whatever its adapter; ``runtime="onnx"``: an export made
    by ``export``. ``columns``: attributes to set on the loaded model, among its class's
    ``load_options`` (a precomputed model's ``label_column``, ``score_column``, ``topk_column``;
    None keeps one).

    >>> adapter = load("model/")                 # doctest: +SKIP
    >>> scored = adapter.predict(table)          # doctest: +SKIP
    """
    from kdsl.adapters.storage import read_config

    if runtime == "onnx":
        adapter = load_export(model_dir)
    else:
        adapter = adapter_class(read_config(model_dir)["adapter"]).load(model_dir)
    given = {key: value for key, value in (columns or {}).items() if value is not None}
    misfit = sorted(set(given) - set(adapter.load_options))
    if misfit:
        raise AdapterError(f"{model_dir}: a {adapter.name} model; {', '.join(misfit)} cannot be set on it")
    for key, value in given.items():
        setattr(adapter, key, value)
    return adapter


def export(model_dir, output) -> list[str]:
    """Export the model in ``model_dir`` to the directory ``output`` (written atomically) in its
    adapter's ONNX form; the names of the .onnx files written. AdapterError for a model whose
    adapter does not export, or when the exporter's packages are missing."""
    from kdsl.adapters.onnx import require_exporter

    require_exporter()
    adapter = load(model_dir)
    return _export_class(type(adapter), model_dir).export(adapter, output)


def load_export(directory) -> Adapter:
    """The adapter of an export directory from ``export``, whichever model it holds."""
    from kdsl.adapters.storage import read_config

    return _export_class(adapter_class(read_config(directory)["adapter"]), directory).load(directory)


def _export_class(cls: type[Adapter], directory):
    if cls.export_class is None:
        exporting = [c.name for c in adapter_classes() if c.export_class]
        raise AdapterError(f"{directory}: a {cls.name} model; only {' and '.join(exporting)} models export to ONNX")
    return _resolve(cls.export_class)


def _resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = ["ADAPTERS", "Adapter", "AdapterError", "Option", "adapter_class", "adapter_classes", "declared_options",
           "export", "load", "load_export", "train"]
