"""Z-score detector: distance from an exponentially weighted mean."""

from __future__ import annotations

import math
from typing import Any

from river import stats

from .base import Detector

_SQRT2 = math.sqrt(2.0)


class ZScore(Detector):
    """Tail probability of a value under an exponentially weighted Gaussian.

    The running mean and variance come from ``river.stats.EWMean`` and
    ``river.stats.EWVar``. A value ``z`` standard deviations away from the mean
    scores ``erf(z / sqrt(2))``: the probability that a Gaussian sample lies
    closer to the mean than it does (two-sided). A score of 0.999 is about
    3.3 standard deviations. A series that has not varied yet scores 1.0 on
    its first change.

    Parameters
    ----------
    fading_factor
        Weight of the newest sample in the mean and variance, in (0, 1).
        Smaller values remember longer (about ``1 / fading_factor`` samples).
    min_std
        A floor under the standard deviation, in the series' own unit, so a
        nearly constant series is not flagged for tiny wiggles. 0 disables it.

    Examples
    --------
    >>> import random
    >>> from riverguard.detectors import ZScore
    >>> rng = random.Random(42)
    >>> det = ZScore(fading_factor=0.05)
    >>> normal = [det.process(rng.gauss(10.0, 1.0)) for _ in range(300)]
    >>> sum(score >= det.default_threshold for score in normal[30:])
    1
    >>> round(det.process(25.0), 3)
    1.0

    References
    ----------
    [^1]: Finch, T., 2009. Incremental calculation of weighted mean and variance.
    """

    name = "zscore"
    default_threshold = 0.999
    default_warmup = 30

    def __init__(self, fading_factor: float = 0.02, min_std: float = 0.0) -> None:
        if not 0.0 < fading_factor < 1.0:
            raise ValueError("fading_factor must be in (0, 1)")
        if not min_std >= 0.0:
            raise ValueError("min_std must be >= 0")
        self.fading_factor = fading_factor
        self.min_std = min_std
        self._mean = stats.EWMean(fading_factor)
        self._var = stats.EWVar(fading_factor)
        self._n = 0

    def score_one(self, x: float, t: float | None = None) -> float:
        if self._n == 0:
            return 0.0
        deviation = abs(x - self._mean.get())
        std = max(math.sqrt(max(self._var.get(), 0.0)), self.min_std)
        if std == 0.0:
            return 0.0 if deviation == 0.0 else 1.0
        z = deviation / std
        return 1.0 if z != z else math.erf(z / _SQRT2)  # inf / inf: as far out as it gets

    def dump_state(self) -> list[Any]:
        return [self._n, self._mean._ewmean.__getstate__(), self._var._ewvar.__getstate__()]

    def load_state(self, state: list[Any]) -> None:
        n, mean, var = state
        if type(n) is not int or type(mean) is not bytes or type(var) is not bytes:
            raise ValueError("bad zscore state")
        self._n = n
        self._mean._ewmean.__setstate__(mean)
        self._var._ewvar.__setstate__(var)

    def learn_one(self, x: float, t: float | None = None) -> None:
        self._mean.update(x)
        self._var.update(x)
        self._n += 1
        if not (math.isfinite(self._mean.get()) and math.isfinite(self._var.get())):
            # Values near the float limit overflow the running moments: start over from this
            # value rather than carry inf/nan (which would leave the series unscored for good).
            self._mean = stats.EWMean(self.fading_factor)
            self._var = stats.EWVar(self.fading_factor)
            self._mean.update(x)
            self._var.update(x)
            self._n = 1
