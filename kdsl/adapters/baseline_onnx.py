"""The baseline model as ONNX: ``OnnxBaselineAdapter.export`` writes a directory that onnxruntime
runs without torch, and ``OnnxBaselineAdapter`` predicts with it (``kdsl export-onnx``,
``kdsl predict --runtime onnx``).

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

The shared plumbing (exporter, sessions, ``ExportedModel``) is in ``kdsl.adapters.onnx``.

    >>> kdsl.adapters.export("model/", "model.onnx/")                        # doctest: +SKIP
    >>> OnnxBaselineAdapter.load("model.onnx/").predict(dev, images="data/images")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from kdsl.adapters.base import AdapterError
from kdsl.adapters.baseline import BaselineAdapter, Settings, output_classes
from kdsl.adapters.onnx import OPSET, ExportedModel, open_session, quiet_export
from kdsl.adapters.storage import write_config
from kdsl.io import atomic_directory

INPUTS = ("ids", "id_bags", "images", "image_rows", "mask")
OUTPUT = "probabilities"


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


class OnnxBaselineAdapter(ExportedModel, BaselineAdapter):
    """A baseline model run by onnxruntime from an export directory; predicts as
    ``BaselineAdapter`` does (same featurisation and top-k), cannot train or save."""

    name = "baseline"

    @classmethod
    def export(cls, adapter: BaselineAdapter, output) -> list[str]:
        """Write ``adapter``'s networks to the directory ``output`` (atomically), one .onnx file
        each, and config.json; the names of the .onnx files."""
        files = {key: f"network{i}.onnx" for i, key in enumerate(adapter.networks)}
        with atomic_directory(output) as tmp:
            for key, network in adapter.networks.items():
                _export_network(network, adapter.settings, len(output_classes(adapter.labels, key)),
                                Path(tmp) / files[key])
            write_config(tmp, {"adapter": adapter.name, "runtime": "onnx", "labels": adapter.labels,
                               "settings": asdict(adapter.settings), "networks": files,
                               "inputs": list(INPUTS), "output": OUTPUT, "opset": OPSET})
        return list(files.values())

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
