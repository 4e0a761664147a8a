"""The metric each labelled row becomes in ``riverguard evaluate`` (light: the CLI parser imports it)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["FIELD", "FILE_TAGS", "MEASUREMENT", "Shape"]

MEASUREMENT = "nab"
FIELD = "value"
#: The tags that tell each file's series apart: the file's folder and its name.
FILE_TAGS = ("category", "file")


class Shape(NamedTuple):
    """The metric each labelled row becomes: its measurement, its one field, and tags added to
    :data:`FILE_TAGS` (``evaluate --measurement --field --tag``), so that the rules written for a series
    score the file as that series."""

    measurement: str = MEASUREMENT
    field: str = FIELD
    tags: tuple[tuple[str, str], ...] = ()
