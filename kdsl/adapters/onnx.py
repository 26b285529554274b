"""What every ONNX form of an adapter shares: exporting a torch module quietly, opening an
onnxruntime session on the best provider there is, and ``ExportedModel``, the mixin of an
adapter that runs from an export directory (it predicts, but neither trains nor saves).

Each exporting adapter names its ONNX class in ``export_class`` (``baseline_onnx``,
``qwen2vl_onnx``); ``kdsl.adapters.export`` and ``kdsl.adapters.load_export`` dispatch to it.
The export uses torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``), which needs
the ``onnx`` and ``onnxscript`` packages; running an export needs only ``onnxruntime``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from kdsl.adapters.base import AdapterError
from kdsl.adapters.storage import read_config

OPSET = 18


def require_exporter() -> None:
    """AdapterError unless the exporter's packages (onnx, onnxscript) are installed."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise AdapterError(f"exporting to ONNX needs onnx and onnxscript: pip install onnx onnxscript ({error})") \
            from None


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
        raise AdapterError(f"running an ONNX export needs onnxruntime: pip install onnxruntime ({error})") from None
    path = Path(directory) / name
    if not path.is_file():
        raise AdapterError(f"{directory}: no {name}")
    try:
        return ort.InferenceSession(str(path), providers=providers(ort))
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
        raise AdapterError(f"{path}: onnxruntime cannot load it ({error})") from None


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
