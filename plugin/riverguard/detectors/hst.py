"""Half-space trees over the value and its change, scaled online to [0, 1]."""

from __future__ import annotations

import math

from river import anomaly, preprocessing, stats

from .base import Detector, Explanation, flagged
from .params import Param
from .river_spec import measured

_N_TREES, _HEIGHT, _WINDOW = measured("anomaly.HalfSpaceTrees")

__all__ = ["HST"]


#: hst's band is found by scoring this many values, evenly spaced over the range seen widened by a
#: quarter on each side.
GRID = 17


class HST(Detector):
    """``river.anomaly.HalfSpaceTrees`` on two features: the value and its last change.

    With ``scope = "metric"`` the features are the metric's fields instead.

    Half-space trees assume features in [0, 1], so each feature goes through
    an online ``river.preprocessing.MinMaxScaler`` first; a value beyond the
    range seen so far is clipped to the edge, where the trees hold the least
    mass. River's raw score (in [0, 1]) sits high even on normal data, so it
    is calibrated against its own running mean and standard deviation
    (``river.stats.EWMean``/``EWVar``): the result is ``erf(z / sqrt(2))`` for a
    raw score ``z`` deviations above its usual level, 0 below it. The trees
    are built from ``seed``: every series with the same settings behaves
    identically.

    Explained (``[output] explain``) by probing: ``GRID`` values evenly spaced
    over the range seen so far, widened by a quarter of it on each side, are
    scored as if they came next (their change from the last value included).
    The expected value is the probe with the lowest score (the nearest to the
    last value among equals); the band runs from it to the last probes on
    either side that are not flagged, and an edge that reaches the end of the
    probes is left out (no limit found). An approximation to a grid step:
    half-space trees score regions of the (value, change) plane, not a
    distance. It costs ``GRID`` tree walks per sample.

    Parameters
    ----------
    Declared in ``HST.PARAMS`` (see ``docs/parameters.md``); scores mean
    little before the first window of ``window_size`` samples is complete,
    hence the default warm-up.

    Examples
    --------
    >>> import random
    >>> from riverguard.detectors import HST
    >>> rng = random.Random(7)
    >>> det = HST(seed=1)
    >>> normal = [det.process(50.0 + rng.gauss(0.0, 1.0)) for _ in range(400)]
    >>> sum(score >= det.default_threshold for score in normal[200:])
    3
    >>> round(det.process(90.0), 2)
    0.97

    References
    ----------
    [^1]: Tan, S.C., Ting, K.M. and Liu, T.F., 2011. Fast anomaly detection for
    streaming data. IJCAI.
    """

    name = "hst"
    default_threshold = 0.97
    default_warmup = 200
    multivariate = True

    PARAMS = (
        # (The bounds of River's HalfSpaceTrees, as a river rule's model spec takes them; defaults of our own.)
        _N_TREES.but(doc="Number of trees (each series builds them all at its first sample)."),
        _HEIGHT.but(default=6, doc="Height of each tree: memory, and the time a new series takes to build its "
                    "trees, grow as n_trees * 2 ** height (10 trees of height 12: 24 MB and 0.3 s per series)."),
        _WINDOW.but(default=100, doc="Samples per reference window."),
        Param("seed", 42, "Seed of the trees' random split points.", low=-(2**63), high=2**63 - 1),
    )
    n_trees: int
    height: int
    window_size: int
    seed: int

    def _start(self) -> None:
        self._trees = anomaly.HalfSpaceTrees(
            n_trees=self.n_trees, height=self.height, window_size=self.window_size, seed=self.seed
        )
        self._scaler = preprocessing.MinMaxScaler()
        self._raw_mean = stats.EWMean(0.02)
        self._raw_var = stats.EWVar(0.02)
        self._last: float | None = None
        self._n = 0

    def _raw(self, x: float | dict[str, float]) -> dict[str, float]:
        """One field: its value and its change; several (``scope = "metric"``): the fields themselves."""
        if isinstance(x, dict):
            return x
        return {"x": x, "dx": 0.0 if self._last is None else x - self._last}

    def _features(self, x: float | dict[str, float]) -> dict[str, float]:
        scaled = self._scaler.transform_one(self._raw(x))
        return {k: min(1.0, max(0.0, v)) for k, v in scaled.items()}

    def score_one(self, x: float | dict[str, float], t: float | None = None) -> float:  # type: ignore[override]
        return self._calibrated(x, learn=False)

    def process(self, x: float | dict[str, float], t: float | None = None) -> float:  # type: ignore[override]
        score = self._calibrated(x, learn=True)
        self.learn_one(x, t)
        return score

    def explain(self, threshold: float, t: float | None = None) -> Explanation | None:
        if self._n < self.window_size or self._last is None:
            return None  # nothing is flagged yet
        lo = self._scaler.min["x"].get()
        hi = self._scaler.max["x"].get()
        span = hi - lo
        if not span > 0.0 or not math.isfinite(span):
            return None
        start, step = lo - span / 4.0, span * 1.5 / (GRID - 1)
        probes = [start + i * step for i in range(GRID)]
        scores = [self._calibrated(p, learn=False) for p in probes]
        last = self._last
        best = min(range(GRID), key=lambda i: (scores[i], abs(probes[i] - last)))
        if flagged(scores[best], threshold):
            return probes[best], None, None
        i = j = best
        while i > 0 and not flagged(scores[i - 1], threshold):
            i -= 1
        while j < GRID - 1 and not flagged(scores[j + 1], threshold):
            j += 1
        return probes[best], probes[i] if i > 0 else None, probes[j] if j < GRID - 1 else None

    def _calibrated(self, x: float | dict[str, float], learn: bool) -> float:
        """The raw tree score against its own history; ``learn`` also adds it to that history."""
        if self._n == 0:
            return 0.0
        raw = float(self._trees.score_one(self._features(x)))
        mean, std = self._raw_mean.get(), math.sqrt(max(self._raw_var.get(), 0.0))
        if self._n < self.window_size:  # the first window's trees are still empty
            return 0.0
        if learn:
            self._raw_mean.update(raw)
            self._raw_var.update(raw)
        if raw <= mean:
            return 0.0
        return 1.0 if std == 0.0 else math.erf((raw - mean) / std / math.sqrt(2.0))

    def learn_one(self, x: float | dict[str, float], t: float | None = None) -> None:  # type: ignore[override]
        self._scaler.learn_one(self._raw(x))
        self._trees.learn_one(self._features(x))
        if not isinstance(x, dict):
            self._last = x
        self._n += 1
