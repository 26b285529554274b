"""The one place kdsl imports onnxruntime from.

onnxruntime (1.32 here) on Linux reports usage to Microsoft over the network and keeps a
database under ~/.cache/Microsoft unless ``ORT_DISABLE_TELEMETRY=1`` is set when onnxruntime is
first imported (a later ``onnxruntime.disable_telemetry_events()`` does not stop it). Every kdsl
module that may load onnxruntime, directly or through a library such as RapidOCR, calls
``disable_telemetry()`` at import time, or imports onnxruntime through ``onnxruntime()``.

    >>> disable_telemetry()
    >>> import os; os.environ["ORT_DISABLE_TELEMETRY"]
    '1'
"""

from __future__ import annotations

import os


def disable_telemetry() -> None:
    """Set ``ORT_DISABLE_TELEMETRY=1`` (unless the user set it) before onnxruntime loads; child
    processes inherit it."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def onnxruntime():
    """The onnxruntime module, imported with telemetry off; ImportError when it is missing."""
    disable_telemetry()
    import onnxruntime as ort

    return ort
