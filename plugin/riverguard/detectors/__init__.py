"""The detector registry: one module per detector.

``sentinel`` (the default), ``context`` and ``zscore`` are riverguard's own,
written in River's idiom (``zscore`` keeps its moments with ``river.stats``);
``hst`` and ``pad`` wrap River's ``HalfSpaceTrees`` and
``PredictiveAnomalyDetection``.

A detector's module is imported the first time the detector is asked for, so
a rule set that does not use River's models never imports River (start-up).

>>> sorted(REGISTRY)
['context', 'hst', 'pad', 'river', 'sentinel', 'zscore']
>>> resolve("default").name
'sentinel'
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, MutableMapping
from typing import Any

from .base import Detector
from .context import Context
from .sentinel import Sentinel

__all__ = ["COMPILED", "DEFAULT", "Context", "HST", "PAD", "REGISTRY", "Detector", "RiverModel", "Sentinel", "ZScore", "resolve"]

#: Detectors whose module imports River: loaded on first use (name -> module, class).
_LAZY = {"zscore": ("zscore", "ZScore"), "hst": ("hst", "HST"), "pad": ("pad", "PAD"), "river": ("river_spec", "RiverModel")}


class _Registry(MutableMapping[str, "type[Detector]"]):
    """Detector classes by name; a River-based one is imported when it is first looked up."""

    def __init__(self, loaded: dict[str, type[Detector]], lazy: dict[str, tuple[str, str]]) -> None:
        self._loaded = loaded
        self._lazy = dict(lazy)

    def __getitem__(self, name: str) -> type[Detector]:
        cls = self._loaded.get(name)
        if cls is None:
            module, attr = self._lazy[name]  # KeyError for an unknown name
            cls = self._loaded[name] = getattr(importlib.import_module(f".{module}", __name__), attr)
        return cls

    def __setitem__(self, name: str, cls: type[Detector]) -> None:
        self._lazy.pop(name, None)
        self._loaded[name] = cls

    def __delitem__(self, name: str) -> None:
        found = self._loaded.pop(name, None) is not None
        if self._lazy.pop(name, None) is None and not found:
            raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter([*self._loaded, *(n for n in self._lazy if n not in self._loaded)])

    def __len__(self) -> int:
        return len(set(self._loaded) | set(self._lazy))


REGISTRY: MutableMapping[str, type[Detector]] = _Registry({cls.name: cls for cls in (Sentinel, Context)}, _LAZY)

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


def __getattr__(name: str) -> Any:
    """``detectors.HST`` and the other River-based classes, imported on first use."""
    for module, attr in _LAZY.values():
        if attr == name:
            return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
