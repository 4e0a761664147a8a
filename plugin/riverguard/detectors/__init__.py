"""The detector registry: one module per detector.

``sentinel`` (the default), ``context`` and ``zscore`` are riverguard's own,
written in River's idiom (``sentinel`` and ``context`` are built from the steps
in :mod:`riverguard.detectors.steps`; ``zscore`` keeps its moments with
``river.stats``); ``hst`` and ``pad`` wrap River's ``HalfSpaceTrees`` and
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
import types
from collections.abc import Iterator, MutableMapping
from typing import Any, NamedTuple

from .._compiled import is_compiled
from .._compiled import uncompiled as _uncompiled

#: Modules written in Cython's pure-Python mode: compiled at install time when a C compiler is there,
#: plain Python otherwise (or with RIVERGUARD_PURE_PYTHON set).
COMPILED_MODULES = ("steps", "sentinel", "context")


def uncompiled(module: str) -> types.ModuleType:
    """This folder's module ``module`` imported from its source as plain Python, beside the compiled one."""
    return _uncompiled(f"detectors.{module}")


from . import context as _context_module, sentinel as _sentinel_module
from .base import Detector
from .context import Context
from .params import Param
from .sentinel import Sentinel

__all__ = [
    "COMPILED", "COMPILED_MODULES", "DEFAULT", "REGISTRY", "Context", "Detector", "HST", "PAD", "RiverModel",
    "Sentinel", "ZScore", "is_compiled", "resolve", "rule_params", "steps_of", "uncompiled",
]  # fmt: skip


class _Lazy(NamedTuple):
    """A detector whose module imports River, and what the config asks of its class without importing it
    (a test holds them equal to the class's)."""

    module: str
    attr: str
    #: The class's ``multivariate``: listing the detectors ``scope = "metric"`` takes imports nothing.
    multivariate: bool
    #: The names of its :func:`rule_params`: telling where a misplaced key belongs imports nothing.
    params: tuple[str, ...]


#: Detectors whose module imports River: loaded on first use.
_LAZY = {
    "zscore": _Lazy("zscore", "ZScore", False, ("fading_factor", "min_std")),
    "hst": _Lazy("hst", "HST", True, ("n_trees", "height", "window_size", "seed")),
    "pad": _Lazy("pad", "PAD", False, ("forecaster", "alpha", "beta", "p", "d", "q", "n_std")),
    "river": _Lazy("river_spec", "RiverModel", True, ("model", "window")),
}  # fmt: skip


def rule_params(cls: type) -> tuple[Param, ...]:
    """The parameters of detector ``cls`` a rule may set in ``[rule.params]``: all but the one its warmup
    sets (``WARMUP_PARAM``)."""
    learns_by = getattr(cls, "WARMUP_PARAM", None)
    return tuple(p for p in cls.PARAMS if p.name != learns_by)


class _Registry(MutableMapping[str, "type[Detector]"]):
    """Detector classes by name; a River-based one is imported when it is first looked up."""

    def __init__(self, loaded: dict[str, type[Detector]], lazy: dict[str, _Lazy]) -> None:
        self._loaded = loaded
        self._lazy = dict(lazy)

    def __getitem__(self, name: str) -> type[Detector]:
        cls = self._loaded.get(name)
        if cls is None:
            lazy = self._lazy[name]  # KeyError for an unknown name
            cls = self._loaded[name] = getattr(importlib.import_module(f".{lazy.module}", __name__), lazy.attr)
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

    def multivariate(self) -> list[str]:
        """The names of the detectors that take several features (``scope = "metric"``), sorted; imports none."""
        names = {name for name, cls in self._loaded.items() if getattr(cls, "multivariate", False)}
        names.update(name for name, lazy in self._lazy.items() if lazy.multivariate and name not in self._loaded)
        return sorted(names)

    def rule_params(self) -> dict[str, tuple[str, ...]]:
        """The names of each detector's :func:`rule_params`, by detector name; imports none."""
        names = {name: tuple(p.name for p in rule_params(cls)) for name, cls in self._loaded.items()}
        names.update((name, lazy.params) for name, lazy in self._lazy.items() if name not in self._loaded)
        return names


REGISTRY: _Registry = _Registry({cls.name: cls for cls in (Sentinel, Context)}, _LAZY)

Detector.register(Sentinel)
Detector.register(Context)

#: The detectors running compiled (for ``riverguard --version`` and the benchmarks).
COMPILED: dict[str, type] = {
    cls.name: cls for cls, module in ((Sentinel, _sentinel_module), (Context, _context_module)) if is_compiled(module)
}

#: The recommended detector, used by ``detector = "default"`` and without a config.
DEFAULT = "sentinel"


def resolve(name: str) -> type[Detector]:
    """The detector class registered under ``name`` (``"default"`` included)."""
    return REGISTRY[DEFAULT if name == "default" else name]


def __getattr__(name: str) -> Any:
    """``detectors.HST`` and the other River-based classes, imported on first use."""
    for lazy in _LAZY.values():
        if lazy.attr == name:
            return getattr(importlib.import_module(f".{lazy.module}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def steps_of(cls: type) -> list[tuple[str, tuple[Any, ...]]]:
    """``(step name, its parameters)`` for each step of ``cls`` (one group for a detector without steps)."""
    steps = getattr(cls, "STEPS", None)
    if not steps:
        return [(cls.name, tuple(cls.PARAMS))]
    groups = [(type_.__name__, tuple(type_.PARAMS)) for _, type_ in steps]
    declared = {p.name for _, params in groups for p in params}
    own = tuple(p for p in cls.PARAMS if p.name not in declared)
    # the detector's own defaults where they differ from the step's
    by_name = {p.name: p for p in cls.PARAMS}
    groups = [(name, tuple(by_name[p.name] for p in params)) for name, params in groups]
    return [g for g in groups if g[1]] + ([(cls.name, own)] if own else [])
