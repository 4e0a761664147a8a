"""riverguard's detectors as River anomaly detectors, for River code.

Each class here is a thin subclass of the riverguard detector of the same
name and of ``river.base.AnomalyDetector``: ``learn_one(x)`` and
``score_one(x)`` take River's feature dict, the settings are the detector's
own (stored under their own names, so River's ``clone``, ``_get_params`` and
``repr`` work), and ``river.checks``' estimator checks pass (see the README,
"Use riverguard's detectors from River", for the ones that do not apply).
The scores are those riverguard writes: ``score_one`` then ``learn_one`` on
a sample gives the score the engine's ``process`` gives it.

This module imports River; riverguard's engine never imports it (the default
detector runs on floats, without River, so that ``riverguard run`` starts
fast). Import it from River code only::

    from riverguard.river import Sentinel

**The value.** ``sentinel``, ``context``, ``zscore`` and ``pad`` watch one
value: ``x`` holds one feature (any name), besides the time (below). A dict
without it (a missing value, River's way) scores 0.0 and teaches nothing,
and so does a value that is NaN or infinite (a missing value too: one
would otherwise spoil the learned means for good); a dict with two is a
ValueError. ``HST`` takes every feature of ``x``, a NaN or infinite one
left out as missing.

**The time.** riverguard's default detectors use the value's event time
(the time of day, and learning and suppression bounded in days). River
passes estimators nothing but ``x``: its filters (``anomaly.QuantileFilter``),
``evaluate.progressive_val_score`` and ``compose.Pipeline`` (whose last step's
``learn_one`` gets ``x`` alone) forward ``x`` only. So the time travels in
``x``, under the key named by ``time_key`` (a ``datetime``, naive meaning
UTC, or seconds since the epoch); in a pipeline, pass it around the scaling
with a union, ``(compose.Select("v") | preprocessing.StandardScaler()) +
compose.Select("at")``. Called directly, ``learn_one`` and ``score_one``
also take a keyword ``t`` (seconds, as riverguard's engine calls its
detectors, or a ``datetime``); where both are given, ``t`` wins. Without
either, the time-of-day step is skipped and everything counts samples.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import math
from typing import Any, ClassVar

from river import base

from .detectors import context as _context
from .detectors import hst as _hst
from .detectors import pad as _pad
from .detectors import sentinel as _sentinel
from .detectors import zscore as _zscore
from .detectors.params import Param, signature

__all__ = ["HST", "PAD", "Context", "Sentinel", "ZScore"]

#: The one setting the River classes add to the detector's own.
TIME_KEY = Param("time_key", None, "The key of x that holds the value's time (a datetime, naive meaning UTC, or "
                 "seconds since the epoch), or None.", values="a feature name or None")  # fmt: skip


def _seconds(when: Any) -> float:
    """An event time in seconds since the epoch (UTC)."""
    if isinstance(when, _dt.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)
        return when.timestamp()
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return float(when)
    raise TypeError(f"the time must be a datetime or seconds since the epoch, got {when!r}")


def _rebuild(cls: type, params: dict[str, Any], state: dict[str, Any]) -> Any:
    """Unpickle: a fresh detector with ``params`` and the learned ``state``."""
    det = cls(**params)
    det.load_state(state)
    return det


class _RiverFacing(base.AnomalyDetector):
    """What every River-facing detector adds to riverguard's: River's dict in, time from ``x`` or ``t``.

    A subclass names the riverguard detector it adapts as its second base;
    its constructor then takes that detector's settings and ``time_key``.
    """

    #: The riverguard detector adapted (the subclass's other base).
    _detector: ClassVar[type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._detector = next(b for b in cls.__mro__ if hasattr(b, "PARAMS") and not issubclass(b, _RiverFacing))
        detector = cls._detector
        declared = (*detector.PARAMS, TIME_KEY)
        keywords = signature(declared)

        def __init__(self: _RiverFacing, **params: Any) -> None:
            self.time_key = params.pop("time_key", None)
            detector.__init__(self, **params)

        # River reads the settings from the constructor's signature (clone, _get_params, repr).
        self_ = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        __init__.__signature__ = keywords.replace(parameters=[self_, *keywords.parameters.values()])  # type: ignore[attr-defined]
        __init__.__doc__ = f"A {cls.__name__} with the given settings (see the class docstring)."
        cls.__init__ = __init__  # type: ignore[method-assign]
        cls.__signature__ = keywords  # type: ignore[attr-defined]
        if cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("{settings}", _settings(declared))

    def _time(self, x: dict[Any, Any], t: float | None) -> float | None:
        if t is not None:
            return _seconds(t)
        key = self.time_key
        if key is not None and key in x:
            return _seconds(x[key])
        return None

    def _value(self, x: dict[Any, Any]) -> Any:
        """The value ``x`` holds (None for none); ValueError for several."""
        found = [k for k in x if k != self.time_key]
        if not found:
            return None
        if len(found) > 1:
            raise ValueError(
                f"{type(self).__name__} watches one value, x has {len(found)}: {found!r} "
                f"(set time_key for the time, or use HST for several features)"
            )
        value = float(x[found[0]])
        return value if math.isfinite(value) else None  # NaN, inf: missing

    def learn_one(self, x: dict[Any, Any], t: float | None = None) -> None:  # type: ignore[override]
        value = self._value(x)
        if value is not None:
            self._detector.learn_one(self, value, self._time(x, t))

    def score_one(self, x: dict[Any, Any], t: float | None = None) -> float:  # type: ignore[override]
        value = self._value(x)
        if value is None:
            return 0.0
        return self._detector.score_one(self, value, self._time(x, t))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (and deep-copied) as settings plus the detector's compact learned state."""
        state = self.dump_state()
        if state is None:
            return object.__reduce__(self)
        return _rebuild, (type(self), self._get_params(), state)


def _settings(params: tuple[Param, ...]) -> str:
    """The detector's settings in the docstring's Parameters section, from their declarations."""
    lines = []
    for p in params:
        lines += [p.name, f"    {p.doc} Default {p.default!r}; {p.describe()}."]
    return "\n    ".join(lines)


class Sentinel(_RiverFacing, _sentinel.Sentinel):
    """riverguard's default detector (``riverguard.detectors.Sentinel``) as a River anomaly detector.

    Anomaly likelihood of recent surprise (sequence and prediction error),
    new extremes, time-of-day extremes, stuck values, and suppression of a
    run of detections: the steps are described in
    ``riverguard.detectors.Sentinel``. Scores are in [0, 1]; 0.5 is the
    threshold riverguard flags at. Nothing scores above 0 before ``learn``
    samples (or, with times, 3 days of event time and ``learn // 4``
    samples). ``x`` holds one value, and its time under ``time_key`` (see
    :mod:`riverguard.river`).

    Parameters
    ----------
    {settings}

    Examples
    --------
    >>> import datetime as dt
    >>> import random
    >>> from riverguard.river import Sentinel
    >>> rng = random.Random(7)
    >>> det = Sentinel(time_key="at")
    >>> start = dt.datetime(2026, 11, 2)
    >>> scores = []
    >>> for i in range(1500):
    ...     x = {"temp": 10.0 + rng.gauss(0.0, 1.0), "at": start + dt.timedelta(minutes=i)}
    ...     scores.append(det.score_one(x))
    ...     det.learn_one(x)
    >>> sum(score >= 0.5 for score in scores)
    0
    >>> det.score_one({"temp": 25.0, "at": start + dt.timedelta(days=2)})  # a new extreme
    1.0
    >>> det.clone().time_key  # a fresh detector with the same settings
    'at'

    References
    ----------
    [^1]: Ahmad, S., Lavin, A., Purdy, S. and Agha, Z., 2017. Unsupervised
    real-time anomaly detection for streaming data. Neurocomputing, 262.
    [^2]: Lavin, A. and Ahmad, S., 2015. Evaluating real-time anomaly detection
    algorithms: the Numenta Anomaly Benchmark. ICMLA.
    """


class Context(_RiverFacing, _context.Context):
    """riverguard's ``context`` detector (``riverguard.detectors.Context``) as a River anomaly detector.

    Novelty of the recent pattern of quantised values (CAD OSE style), with
    sentinel's likelihood, extremes, stuck values and suppression. Scores are
    in [0, 1]; riverguard flags at 0.5. ``x`` holds one value, and its time
    under ``time_key`` (see :mod:`riverguard.river`).

    Parameters
    ----------
    {settings}

    Examples
    --------
    >>> import math
    >>> import random
    >>> from riverguard.river import Context
    >>> rng = random.Random(7)
    >>> det = Context()
    >>> scores = []
    >>> for i in range(3000):
    ...     x = {"load": 10.0 + 5.0 * math.sin(i / 10.0) + rng.gauss(0.0, 0.3)}
    ...     scores.append(det.score_one(x))
    ...     det.learn_one(x)
    >>> sum(score >= 0.5 for score in scores)
    0
    >>> det.score_one({"load": 30.0})  # a new extreme
    1.0

    References
    ----------
    [^1]: Smirnov, M., 2016. Contextual Anomaly Detector (CAD OSE), NAB.
    """


class ZScore(_RiverFacing, _zscore.ZScore):
    """riverguard's ``zscore`` detector as a River anomaly detector: the tail probability of a value.

    The two-sided Gaussian tail probability of the value under an
    exponentially weighted mean and variance: a value 3.3 standard
    deviations out scores 0.999. ``x`` holds one value (its time, if any, is
    not used).

    Parameters
    ----------
    {settings}

    Examples
    --------
    >>> import random
    >>> from riverguard.river import ZScore
    >>> rng = random.Random(42)
    >>> det = ZScore(fading_factor=0.05)
    >>> scores = []
    >>> for _ in range(300):
    ...     x = {"v": rng.gauss(10.0, 1.0)}
    ...     scores.append(det.score_one(x))
    ...     det.learn_one(x)
    >>> sum(score >= 0.999 for score in scores[30:])
    1
    >>> round(det.score_one({"v": 25.0}), 3)
    1.0

    References
    ----------
    [^1]: Finch, T., 2009. Incremental calculation of weighted mean and variance.
    """


class PAD(_RiverFacing, _pad.PAD):
    """riverguard's ``pad`` detector as a River anomaly detector: the error of a one-step forecast.

    ``river.anomaly.PredictiveAnomalyDetection`` around a Holt-Winters (or
    SNARIMAX) forecaster, scoring 0.0 until the forecaster can predict and on
    an exact prediction. ``x`` holds one value (its time, if any, is not used).

    Parameters
    ----------
    {settings}

    Examples
    --------
    >>> import math
    >>> from riverguard.river import PAD
    >>> det = PAD()
    >>> scores = []
    >>> for i in range(200):
    ...     x = {"v": 10 + math.sin(i / 5)}
    ...     scores.append(det.score_one(x))
    ...     det.learn_one(x)
    >>> round(max(scores[50:]), 2)
    0.6
    >>> det.score_one({"v": 30.0})
    1.0

    References
    ----------
    [^1]: Laptev, N., Amizadeh, S. and Flint, I., 2015. Generic and scalable
    framework for automated time-series anomaly detection. KDD.
    """


class HST(_RiverFacing, _hst.HST):
    """riverguard's ``hst`` detector as a River anomaly detector: calibrated half-space trees.

    ``river.anomaly.HalfSpaceTrees`` over the features of ``x``, each scaled
    online to [0, 1] (a value beyond the range seen is clipped), with the raw
    score calibrated against its own running mean and deviation, as
    riverguard's ``scope = "metric"`` rules do. A feature missing from ``x``
    is simply absent; the time under ``time_key`` is not a feature. (riverguard's per-field rules feed the value and its
    change; here the features are what ``x`` holds.)

    Parameters
    ----------
    {settings}

    Examples
    --------
    >>> import random
    >>> from riverguard.river import HST
    >>> rng = random.Random(7)
    >>> det = HST(seed=1)
    >>> scores = []
    >>> for _ in range(400):
    ...     x = {"cpu": 50.0 + rng.gauss(0.0, 1.0), "mem": 30.0 + rng.gauss(0.0, 1.0)}
    ...     scores.append(det.score_one(x))
    ...     det.learn_one(x)
    >>> sum(score >= 0.97 for score in scores[200:])
    1
    >>> round(det.score_one({"cpu": 90.0, "mem": 70.0}), 2)  # both far out
    0.97

    References
    ----------
    [^1]: Tan, S.C., Ting, K.M. and Liu, T.F., 2011. Fast anomaly detection for
    streaming data. IJCAI.
    """

    def _value(self, x: dict[Any, Any]) -> Any:
        """Every finite feature but the time (a new dict: ``x`` is never kept or changed)."""
        features = {}
        for k, v in x.items():
            if k != self.time_key:
                value = float(v)
                if math.isfinite(value):  # NaN, inf: missing
                    features[k] = value
        return features or None

    def learn_one(self, x: dict[Any, Any], t: float | None = None) -> None:  # type: ignore[override]
        """Also add the sample's raw score to the history it is calibrated against (as the engine does)."""
        features = self._value(x)
        if features is not None:
            self._calibrated(features, learn=True)
            _hst.HST.learn_one(self, features, self._time(x, t))
