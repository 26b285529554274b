"""The baseline model as ONNX: ``export`` writes a directory that onnxruntime runs without torch,
and ``OnnxBaselineAdapter`` predicts with it (``kdsl export-onnx``, ``kdsl predict --runtime onnx``).

Each network of the model (``joint``, or one per task) becomes one ``.onnx`` file holding the
whole network: text embedding, image CNN, head, task mask and softmax. Featurisation (hashed
n-grams, thumbnails) stays in Python, shared with the torch path, and is described by the
settings in ``config.json``, beside the labels. The graph's inputs:

- ``ids`` int64 [n_ids]: every row's hashed n-gram ids, concatenated, field by field;
- ``id_bags`` int64 [n_ids]: the bag each id belongs to, ``row * 3 + field`` (EmbeddingBag's
  offsets, spelled out, so that the bag mean is a Gather and a ScatterElements-add, which ONNX
  has);
- ``images`` float32 [n_images, 3, size, size] in [0, 1], and ``image_rows`` int64 [n_images];
- ``mask`` bool [n_rows, n_classes]: the classes of each row's task.

Its output ``probabilities`` float32 [n_rows, n_classes] is 0 outside the row's task.

The export uses torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``), which needs
the ``onnx`` and ``onnxscript`` packages; running the export needs only ``onnxruntime``.

    >>> export("model/", "model.onnx/")                                       # doctest: +SKIP
    >>> OnnxBaselineAdapter.load("model.onnx/").predict(dev, images="data/images")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from kdsl.adapters.base import AdapterError
from kdsl.adapters.baseline import BaselineAdapter, Settings
from kdsl.adapters.storage import read_config, write_config
from kdsl.io import atomic_directory

INPUTS = ("ids", "id_bags", "images", "image_rows", "mask")
OUTPUT = "probabilities"
OPSET = 18


def _exportable(network):
    """``network`` (a BaselineNetwork, in eval mode) as a module that the exporter can trace:
    the same weights and arithmetic, with the EmbeddingBag mean and the per-row image mean
    written as index_add over row numbers, and without a branch on the number of images."""
    import torch
    from torch import nn

    from kdsl.adapters.network import FIELDS, IMAGE_FEATURES

    class Exportable(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, ids, id_bags, images, image_rows, mask):
            n_rows = mask.shape[0]
            weight = self.net.text.weight
            embedded = torch.nn.functional.embedding(ids, weight)
            text = torch.zeros(n_rows * FIELDS, weight.shape[1], dtype=weight.dtype).index_add(0, id_bags, embedded)
            text_counts = torch.zeros(n_rows * FIELDS, 1, dtype=weight.dtype).index_add(
                0, id_bags, torch.ones_like(embedded[:, :1]))
            text = (text / text_counts.clamp(min=1)).reshape(n_rows, -1)
            features = self.net.image(images)
            summed = torch.zeros(n_rows, IMAGE_FEATURES, dtype=weight.dtype).index_add(0, image_rows, features)
            counts = torch.zeros(n_rows, 1, dtype=weight.dtype).index_add(
                0, image_rows, torch.ones_like(features[:, :1]))
            image = summed / counts.clamp(min=1)
            logits = self.net.head(torch.cat([text, image, (counts > 0).to(weight.dtype)], dim=1))
            return logits.masked_fill(~mask, float("-inf")).softmax(-1)

    return Exportable(network).eval()


def _export_network(network, settings: Settings, n_classes: int, path: Path) -> None:
    import torch
    from torch.export import Dim

    # Example sizes all different and above 1, so that the exporter specialises none of them.
    n_rows, n_ids, n_images, size = 3, 7, 5, settings.image_size
    example = (
        torch.randint(0, settings.buckets, (n_ids,)),
        torch.tensor([0, 0, 2, 3, 5, 6, 8]),
        torch.rand(n_images, 3, size, size),
        torch.tensor([0, 0, 1, 2, 2]),
        torch.ones(n_rows, n_classes, dtype=torch.bool),
    )
    rows, ids, images = Dim("n_rows", min=0), Dim("n_ids", min=0), Dim("n_images", min=0)
    shapes = {"ids": {0: ids}, "id_bags": {0: ids}, "images": {0: images}, "image_rows": {0: images},
              "mask": {0: rows}}
    quiet_export(_exportable(network), example, path, list(INPUTS), [OUTPUT], shapes)


def quiet_export(module, example: tuple, path: Path, inputs: list[str], outputs: list[str], shapes: dict) -> None:
    """``torch.onnx.export(..., dynamo=True)`` of ``module`` to ``path``, without the progress
    lines and warnings the exporter prints (none is for our users)."""
    import torch

    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        quiet.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping torchvision::nms"
        try:
            program = torch.onnx.export(module, example, dynamo=True, opset_version=OPSET, input_names=inputs,
                                        output_names=outputs, dynamic_shapes=shapes, verbose=False)
            program.save(str(path))
        finally:
            quiet.setLevel(level)


def export(model_dir, output) -> list[str]:
    """Export the model in ``model_dir`` (baseline or qwen2vl) to the directory ``output``
    (written atomically); the names of the .onnx files written. AdapterError for another kind
    of model, or when the exporter's packages are missing."""
    from kdsl.adapters import load

    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise AdapterError(f"exporting to ONNX needs onnx and onnxscript: pip install onnx onnxscript ({error})") \
            from None
    adapter = load(model_dir)
    if adapter.name == "qwen2vl":
        from kdsl.adapters.qwen2vl_onnx import export as export_qwen2vl

        return export_qwen2vl(adapter, output)
    if not isinstance(adapter, BaselineAdapter):
        raise AdapterError(f"{model_dir}: a {adapter.name} model; only baseline and qwen2vl models export to ONNX")
    from kdsl.adapters.baseline import _classes

    files = {key: f"network{i}.onnx" for i, key in enumerate(adapter.networks)}
    with atomic_directory(output) as tmp:
        for key, network in adapter.networks.items():
            _export_network(network, adapter.settings, len(_classes(adapter.labels, key)), Path(tmp) / files[key])
        write_config(tmp, {"adapter": adapter.name, "runtime": "onnx", "labels": adapter.labels,
                           "settings": asdict(adapter.settings), "networks": files,
                           "inputs": list(INPUTS), "output": OUTPUT, "opset": OPSET})
    return list(files.values())


def providers(ort) -> list[str]:
    """CUDA when this onnxruntime has it (onnxruntime-gpu), CPU always; onnxruntime falls back
    to the CPU by itself when CUDA is built in but no GPU can be used."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def open_session(directory, name: str):
    """An onnxruntime session of ``directory/name`` on ``providers``; AdapterError when
    onnxruntime or the file is missing or the file is not a model onnxruntime can load."""
    try:
        from kdsl.ort import onnxruntime

        ort = onnxruntime()
    except ImportError as error:
        raise AdapterError(f"--runtime onnx needs onnxruntime: pip install onnxruntime ({error})") from None
    path = Path(directory) / name
    if not path.is_file():
        raise AdapterError(f"{directory}: no {name}")
    try:
        return ort.InferenceSession(str(path), providers=providers(ort))
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
        raise AdapterError(f"{path}: onnxruntime cannot load it ({error})") from None


def load_export(directory):
    """The adapter of an export directory from ``export``, whichever model it holds."""
    if read_config(directory).get("adapter") == "qwen2vl":
        from kdsl.adapters.qwen2vl_onnx import OnnxQwen2VLAdapter

        return OnnxQwen2VLAdapter.load(directory)
    return OnnxBaselineAdapter.load(directory)


class ExportedModel:
    """What every ONNX export shares: it predicts, but neither trains nor saves, and its
    directory must be an export (``export_config``)."""

    runtime = "onnx"

    @classmethod
    def train(cls, table, labels=None, **options):
        raise AdapterError(f"an ONNX export cannot be trained; train a {cls.name} model and export it")

    def save(self, directory) -> None:
        raise AdapterError("an ONNX export is written by `kdsl export-onnx`, not saved")

    @staticmethod
    def export_config(directory) -> dict:
        config = read_config(directory)
        if config.get("runtime") != "onnx":
            raise AdapterError(f"{directory}: not an ONNX export (make one with `kdsl export-onnx {directory} -o DIR`)")
        return config


class OnnxBaselineAdapter(ExportedModel, BaselineAdapter):
    """A baseline model run by onnxruntime from an export directory; predicts as
    ``BaselineAdapter`` does (same featurisation and top-k), cannot train or save."""

    name = "baseline"

    @classmethod
    def load(cls, directory) -> OnnxBaselineAdapter:
        config = cls.export_config(directory)
        try:
            settings = Settings(**config["settings"])
            labels = config["labels"]
            files = dict(config["networks"])
        except (KeyError, TypeError, ValueError) as error:
            raise AdapterError(f"{directory}: config.json is not an ONNX export's ({error})") from None
        return cls(labels, settings, {key: open_session(directory, name) for key, name in files.items()})

    @property
    def providers(self) -> list[str]:
        """The execution providers the sessions actually use, most preferred first."""
        return next(iter(self.networks.values())).get_providers()

    def _probabilities(self, session, encoded, mask: np.ndarray) -> np.ndarray:
        lengths = np.diff(np.append(encoded.offsets, len(encoded.ids)))
        feed = {"ids": encoded.ids, "id_bags": np.repeat(np.arange(len(lengths), dtype=np.int64), lengths),
                "images": encoded.images, "image_rows": encoded.image_rows, "mask": mask}
        return session.run([OUTPUT], feed)[0]


def load(directory) -> OnnxBaselineAdapter:
    return OnnxBaselineAdapter.load(directory)


__all__ = ["OnnxBaselineAdapter", "export", "load", "load_export"]
