"""Z-score detector: distance from an exponentially weighted mean."""

from __future__ import annotations

import math
from typing import Any

from river import stats

from .base import Detector, Explanation, flag_limit
from .params import Param

__all__ = ["ZScore"]

_SQRT2 = math.sqrt(2.0)


def _tail(z: float) -> float:
    return math.erf(z / _SQRT2)


class ZScore(Detector):
    """Tail probability of a value under an exponentially weighted Gaussian.

    The running mean and variance come from ``river.stats.EWMean`` and
    ``river.stats.EWVar``. A value ``z`` standard deviations away from the mean
    scores ``erf(z / sqrt(2))``: the probability that a Gaussian sample lies
    closer to the mean than it does (two-sided). A score of 0.999 is about
    3.3 standard deviations. A series that has not varied yet scores 1.0 on
    its first change.

    Explained (``[output] explain``) as the mean, and the mean plus or minus
    the distance in standard deviations that scores the rule's threshold
    (3.29 at 0.999): exact, the band is this detector's whole evidence.

    Parameters
    ----------
    Declared in ``ZScore.PARAMS`` (see ``docs/parameters.md``).

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

    PARAMS = (
        Param("fading_factor", 0.02, "Weight of the newest sample in the mean and variance "
              "(about 1 / fading_factor samples are remembered).", low=0.0, high=1.0, low_open=True, high_open=True),
        Param("min_std", 0.0, "Floor under the standard deviation, in the series' own unit (0: none), so a nearly "
              "constant series is not flagged for tiny wiggles.", low=0.0),
    )  # fmt: skip
    STATE_LAYOUT = "n,mean,var"
    fading_factor: float
    min_std: float

    def _start(self) -> None:
        self._mean = stats.EWMean(self.fading_factor)
        self._var = stats.EWVar(self.fading_factor)
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

    def explain(self, threshold: float, t: float | None = None) -> Explanation | None:
        if self._n == 0:
            return None
        mean = self._mean.get()
        std = max(math.sqrt(max(self._var.get(), 0.0)), self.min_std)
        if std == 0.0:  # any change scores 1.0
            return mean, mean, mean
        half = flag_limit(_tail, threshold) * std
        return mean, mean - half, mean + half

    def dump_state(self) -> dict[str, Any]:
        return {"n": self._n, "mean": self._mean._ewmean.__getstate__(), "var": self._var._ewvar.__getstate__()}

    def load_state(self, state: dict[str, Any]) -> None:
        if type(state) is not dict or set(state) != {"n", "mean", "var"}:
            raise ValueError("bad zscore state")
        n, mean, var = state["n"], state["mean"], state["var"]
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
