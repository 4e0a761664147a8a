"""The detector registry: one module per detector, each built on River.

>>> sorted(REGISTRY)
['context', 'hst', 'pad', 'sentinel', 'zscore']
>>> resolve("default").name
'sentinel'
"""

from __future__ import annotations

from .base import Detector
from .context import Context
from .hst import HST
from .pad import PAD
from .sentinel import Sentinel
from .zscore import ZScore

__all__ = ["DEFAULT", "Context", "HST", "PAD", "REGISTRY", "Detector", "Sentinel", "ZScore", "resolve"]

REGISTRY: dict[str, type[Detector]] = {cls.name: cls for cls in (Sentinel, ZScore, HST, PAD, Context)}

#: The recommended detector, used by ``detector = "default"`` and without a config.
DEFAULT = "sentinel"


def resolve(name: str) -> type[Detector]:
    """The detector class registered under ``name`` (``"default"`` included)."""
    return REGISTRY[DEFAULT if name == "default" else name]
