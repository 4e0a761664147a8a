"""What every detector provides.

A detector watches one series. For each sample it is asked for a score first
(``score_one``) and then taught the sample (``learn_one``); the score is a
float in [0, 1], higher meaning more anomalous. ``t`` is the metric's event
time in seconds (None when the metric carries no timestamp).

Settings are declared once in ``PARAMS`` (:class:`~riverguard.detectors.params.Param`)
and stored under their own names; learned state lives in attributes that start
with an underscore, as in River. ``sentinel`` and ``context`` are compiled
classes (they cannot inherit from this one): they provide the same methods and
are registered as virtual subclasses.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from typing import Any, ClassVar

from .params import Param, resolve, signature

__all__ = ["Detector"]


class Detector(abc.ABC):
    """Base class of riverguard's detectors."""

    # Empty, so a detector that declares __slots__ has no per-instance __dict__ (memory per series).
    __slots__ = ()

    #: The name used in rules (``detector = "..."``).
    name: ClassVar[str]
    #: A score at or above this sets the flag, unless the rule sets ``threshold``.
    default_threshold: ClassVar[float]
    #: Samples a series sees before it may be flagged, unless the rule sets ``warmup``.
    default_warmup: ClassVar[int]
    #: True for a detector that takes a dict of several features (``scope = "metric"``).
    multivariate: ClassVar[bool] = False
    #: The parameters, each declared once (name, default, valid range, doc).
    PARAMS: ClassVar[tuple[Param, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__signature__ = signature(cls.PARAMS)  # type: ignore[attr-defined]  # for help() and inspect

    def __init__(self, **params: Any) -> None:
        for name, value in resolve(type(self).PARAMS, params, type(self).name).items():
            setattr(self, name, value)
        self._start()

    def _start(self) -> None:
        """Set up the learned state (the settings are stored)."""

    @abc.abstractmethod
    def score_one(self, x: float, t: float | None = None) -> float:
        """Score ``x`` against what was learned so far, in [0, 1]."""

    @abc.abstractmethod
    def learn_one(self, x: float, t: float | None = None) -> None:
        """Update the model with ``x``."""

    def process(self, x: float, t: float | None = None) -> float:
        """Score ``x``, then learn it."""
        score = self.score_one(x, t)
        self.learn_one(x, t)
        return score

    @classmethod
    def factory(cls, params: dict[str, Any]) -> Callable[[], Detector]:
        """What makes a fresh detector for each new series of a rule with ``params`` (built once per rule)."""
        return functools.partial(cls, **params)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The detector's parameters and their default values."""
        return {p.name: p.default for p in cls.PARAMS}

    def dump_state(self) -> dict[str, Any] | None:
        """Learned state as a mapping of names to plain data (numbers, booleans, bytes, mappings), or None.

        None (the default) lets the checkpoint codec walk the object's
        attributes instead. Detectors that live on the hot path override this
        and :meth:`load_state` with a compact form: a checkpoint of 100 000
        series must save and load in well under Telegraf's 5 s grace period.
        """
        return None

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`dump_state` returned; raise ValueError on bad data."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The settings this instance was built with."""
        return {name: getattr(self, name) for name in self.defaults()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
