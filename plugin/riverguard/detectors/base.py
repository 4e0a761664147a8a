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

A detector may also explain itself (``[output] explain``): before a sample is
scored, :meth:`Detector.explain` gives the value it expects and the band of
values it would not flag at that moment; after a sample was flagged,
:meth:`Detector.reason` names the kind of evidence (one of :data:`REASONS`).
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

from .params import Param, defaults, resolve, signature

__all__ = ["REASONS", "Detector", "Explanation", "Factory", "flag_limit", "flagged", "outside", "settings_from"]


#: The words :meth:`Detector.reason` may return (the README lists them with their meaning).
REASONS = ("spike", "dip", "level_shift", "volatility", "burst", "stuck", "time_of_day", "novelty")

#: What :meth:`Detector.explain` returns: the expected value and the band's lower and upper edges.
#: An element that is None or not finite is not written (no band yet, or a side without a limit).
Explanation = tuple[float | None, float | None, float | None]


def outside(x: float, explanation: Explanation) -> str | None:
    """``spike`` above the band, ``dip`` below it, None inside it (or beyond an edge that was left out)."""
    _, lower, upper = explanation
    if upper is not None and x > upper:
        return "spike"
    if lower is not None and x < lower:
        return "dip"
    return None


def flagged(score: float, threshold: float) -> bool:
    """Whether ``score`` sets the flag at ``threshold``, as the engine decides it (on the written score).

    >>> flagged(0.9989996, 0.999), flagged(0.9989994, 0.999)
    (True, False)
    """
    if score < threshold - 1e-5:
        return False
    if score > threshold + 1e-5:
        return True
    text = b"%.6g" % score
    return float(text) >= threshold


class Detector(abc.ABC):
    """Base class of riverguard's detectors."""

    # Empty, so a detector that declares __slots__ has no per-instance __dict__ (memory per series).
    __slots__ = ()

    #: The name used in rules (``detector = "..."``).
    name: ClassVar[str]
    #: A score at or above this sets the flag, unless the rule sets ``threshold``.
    default_threshold: ClassVar[float]
    #: Samples a series sees before it may be scored or flagged, unless the rule sets ``warmup``.
    default_warmup: ClassVar[int]
    #: The parameter that the rule's ``warmup`` sets (the detector's own learning length), or None.
    WARMUP_PARAM: ClassVar[str | None] = None
    #: True for a detector that takes a dict of several features (``scope = "metric"``).
    multivariate: ClassVar[bool] = False
    #: The parameters, each declared once (name, default, valid range, doc).
    PARAMS: ClassVar[tuple[Param, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__signature__ = signature(cls.PARAMS)  # type: ignore[attr-defined]  # for help() and inspect

    def __init__(self, **params: Any) -> None:
        self._setup(settings_from(type(self), params))

    @classmethod
    def shared_settings(cls, values: dict[str, Any]) -> Any:
        """What ``_setup`` is given for every series of a rule whose resolved settings are ``values``, made
        once per rule by its :class:`Factory`: here ``values`` itself (the steps pipeline makes one
        settings object that the rule's series share)."""
        return values

    def _setup(self, values: dict[str, Any]) -> None:
        """Store the resolved settings and set up the learned state."""
        for name, value in values.items():
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

    def explain(self, threshold: float, t: float | None = None) -> Explanation | None:
        """Before the next sample (at event time ``t``) is scored: ``(expected, lower, upper)``, or None.

        ``expected`` is the value the detector expects at this moment;
        ``lower`` and ``upper`` bound the values that would score below
        ``threshold`` (not be flagged) at this moment. Where a detector's
        evidence is not a band of values, the closest honest approximation
        (its docstring says which). Learns nothing. The default: nothing to say.
        """
        return None

    def reason(self, x: float, explanation: Explanation | None) -> str:
        """Why ``x``, just scored and flagged, was flagged: one of :data:`REASONS` (or a word of the detector's own).

        ``explanation`` is what :meth:`explain` returned before ``x`` was scored.
        The default: ``spike`` above the band, ``dip`` below it, ``novelty``
        inside it (the value was not unusual, the way it came was); without a
        band, ``spike`` or ``dip`` as ``x`` is above or below the expected value.
        """
        if explanation is None:
            return "novelty"
        beyond = outside(x, explanation)
        if beyond is not None:
            return beyond
        expected, lower, upper = explanation
        if lower is not None and upper is not None and math.isfinite(lower) and math.isfinite(upper):
            return "novelty"
        return "dip" if expected is not None and x < expected else "spike"

    @classmethod
    def factory(cls, params: dict[str, Any]) -> Factory:
        """What makes the detectors of a rule with ``params`` (built once per rule, the settings resolved there)."""
        return Factory(cls, resolve(cls.PARAMS, params, cls.name))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The detector's parameters and their default values."""
        return defaults(cls.PARAMS)

    def dump_state(self) -> dict[str, Any] | list[Any] | None:
        """Learned state as plain data (numbers, booleans, bytes, lists, mappings), or None.

        None (the default) lets the checkpoint codec walk the object's
        attributes instead. Detectors that live on the hot path override this
        and :meth:`load_state` with a compact form: a checkpoint of 100 000
        series must save and load in well under Telegraf's 5 s grace period.
        ``zscore`` saves a mapping by name; ``sentinel`` and ``context`` save
        one flat record in the order their ``STATE_LAYOUT`` names (read it by
        name with their ``state_by_name()``).
        """
        return None

    def load_state(self, state: Any) -> None:
        """Restore what :meth:`dump_state` returned; raise ValueError on bad data."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The settings this instance was built with."""
        return {name: getattr(self, name) for name in self.defaults()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def settings_from(cls: Any, params: dict[str, Any]) -> Any:
    """What ``_setup`` is given by the constructor of detector class ``cls`` called with ``params``: the
    resolved and checked settings, made into ``cls.shared_settings`` of them, as a :class:`Factory` does for
    a rule (so both ways of building a detector build it alike; the steps pipeline's constructor too)."""
    return cls.shared_settings(resolve(cls.PARAMS, params, cls.name))


class Factory:
    """Makes the detectors of one rule, whose settings were resolved and checked once.

    Calling it gives a fresh detector for a new series; :meth:`restore` one
    with a checkpointed state. When the class that defines the detector's
    ``__init__`` also defines ``_setup`` (:class:`Detector` and the steps
    pipeline do: their constructor only resolves its keywords and hands them
    to ``_setup``), the detector is built with ``__new__`` and ``_setup``,
    from what ``shared_settings`` made of the settings resolved here, once:
    shared by the rule's series, never changed. Otherwise (a subclass with a
    constructor of its own) the constructor is called with them.
    """

    __slots__ = ("cls", "values", "_shared")

    def __init__(self, cls: Any, values: dict[str, Any]) -> None:
        self.cls = cls
        self.values = values
        init = next(vars(k) for k in cls.__mro__ if "__init__" in vars(k))
        self._shared = cls.shared_settings(values) if "_setup" in init else None

    def __call__(self) -> Any:
        shared = self._shared
        if shared is None:
            return self.cls(**self.values)
        detector = self.cls.__new__(self.cls)
        detector._setup(shared)
        return detector

    def restore(self, state: Any) -> Any:
        """A detector holding ``state`` (what its ``dump_state`` gave); ValueError if it does not fit."""
        detector = self()
        detector.load_state(state)
        return detector


@functools.cache
def flag_limit(score: Callable[[float], float], threshold: float) -> float:
    """The smallest ``u >= 0`` whose ``score(u)`` is flagged at ``threshold`` (``score`` non-decreasing), or inf.

    For detectors whose score grows with one distance: the band's half-width in that distance.

    >>> round(flag_limit(lambda u: min(u, 1.0), 0.5), 12)
    0.4999995
    """
    if flagged(score(0.0), threshold):
        return 0.0
    hi = 1.0
    while not flagged(score(hi), threshold):
        hi *= 2.0
        if hi > 1e300:
            return math.inf
    lo = 0.0
    for _ in range(200):  # to the float's resolution
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if flagged(score(mid), threshold):
            hi = mid
        else:
            lo = mid
    return hi

