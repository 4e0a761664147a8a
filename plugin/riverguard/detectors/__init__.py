"""The detector registry: one module per detector, each built on River.

>>> sorted(REGISTRY)
['hst', 'pad', 'zscore']
>>> resolve("default").name
'zscore'
"""

from __future__ import annotations

from .base import Detector
from .hst import HST
from .pad import PAD
from .zscore import ZScore

__all__ = ["DEFAULT", "HST", "PAD", "REGISTRY", "Detector", "ZScore", "resolve"]

REGISTRY: dict[str, type[Detector]] = {cls.name: cls for cls in (ZScore, HST, PAD)}

#: The recommended detector, used by ``detector = "default"`` and without a config.
DEFAULT = "zscore"


def resolve(name: str) -> type[Detector]:
    """The detector class registered under ``name`` (``"default"`` included)."""
    return REGISTRY[DEFAULT if name == "default" else name]
