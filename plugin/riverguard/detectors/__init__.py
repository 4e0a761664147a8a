"""The detector registry: one module per detector.

``sentinel`` (the default), ``context`` and ``zscore`` are riverguard's own,
written in River's idiom (``zscore`` keeps its moments with ``river.stats``);
``hst`` and ``pad`` wrap River's ``HalfSpaceTrees`` and
``PredictiveAnomalyDetection``.

>>> sorted(REGISTRY)
['context', 'hst', 'pad', 'sentinel', 'zscore']
>>> resolve("default").name
'sentinel'
"""

from __future__ import annotations

import os

from .base import Detector
from .context import Context
from .hst import HST
from .pad import PAD
from .sentinel import Sentinel
from .zscore import ZScore

__all__ = ["COMPILED", "DEFAULT", "Context", "HST", "PAD", "REGISTRY", "Detector", "Sentinel", "ZScore", "resolve"]

REGISTRY: dict[str, type[Detector]] = {cls.name: cls for cls in (Sentinel, ZScore, HST, PAD, Context)}

#: ``sentinel``'s compiled twin (same scores and state, ~10x faster), used when it was built,
#: unless RIVERGUARD_PURE_PYTHON is set. :class:`Sentinel` above stays the definition.
COMPILED: dict[str, type] = {}
try:
    from ._sentinel_c import Sentinel as _CompiledSentinel
except ImportError:  # built without a C compiler
    pass
else:
    Detector.register(_CompiledSentinel)
    COMPILED["sentinel"] = _CompiledSentinel
if not os.environ.get("RIVERGUARD_PURE_PYTHON"):
    REGISTRY.update(COMPILED)  # type: ignore[arg-type]

#: The recommended detector, used by ``detector = "default"`` and without a config.
DEFAULT = "sentinel"


def resolve(name: str) -> type[Detector]:
    """The detector class registered under ``name`` (``"default"`` included)."""
    return REGISTRY[DEFAULT if name == "default" else name]
