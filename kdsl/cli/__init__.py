"""The ``kdsl`` command line: one click group; each module of this package adds its commands.

Exit status: 0 success; 1 when ``check``, ``test`` or ``fmt --check`` find something (or the OCR
engine cannot run); 2 for a usage error or input that cannot be used (a missing file, a bad
Parquet file, rules that do not compile). Errors name the file, line and column; no traceback
reaches the user for bad input. Commands translate no errors themselves: the library raises
``kdsl.errors.KdslError`` subclasses and the group (``kdsl.cli.common.KdslGroup``) prints each
one as ``error: …``, in one place.
"""

from kdsl.cli.common import main
from kdsl.cli import rules, scoring  # noqa: F401  (they register their commands on main)
from kdsl.cli import evaluate  # noqa: F401
from kdsl.cli import data  # noqa: F401
from kdsl.cli import ocr  # noqa: F401
from kdsl.cli import models  # noqa: F401
from kdsl.cli import mine  # noqa: F401
from kdsl.cli import pipeline  # noqa: F401
from kdsl.cli import workbench  # noqa: F401

__all__ = ["main"]
