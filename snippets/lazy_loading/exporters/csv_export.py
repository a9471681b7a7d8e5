"""The "csv" exporter. Importing this module is what registers it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from . import registry

__all__ = ["export_csv"]


# --8<-- [start:provider]
@registry.register("csv")  # a side effect of the import
def export_csv(rows: Iterable[Sequence[object]]) -> str:
    """The rows as CSV text."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


# --8<-- [end:provider]
