"""Sentinel: sequence surprise, prediction error, new extremes and stuck values, calibrated into likelihoods."""

from __future__ import annotations

import math
from typing import Any

from .base import Detector

_SQRT1_2 = math.sqrt(0.5)


_INT, _FLOAT = {int}, {float}


class Sentinel(Detector):
    """Anomaly likelihood of recent surprise, with new-extreme detection and suppression.

    Each sample goes through six cheap steps, all strictly online:

    1. **Surprise.** Two raw scores in [0, 1], the larger is kept:

       - *sequence surprise*: the value is quantised into ``bins`` levels of
         the range seen so far, and a second-order Markov model (decayed counts
         of level ``b`` after the two previous levels) gives the probability of
         the observed level in its context; the raw score is
         ``1 - gain * P(level | context)`` (a context never seen scores 1);
       - *prediction error*: the distance from an exponentially weighted mean,
         in exponentially weighted standard deviations, divided by ``z_scale``
         and capped at 1.
    2. **Likelihood.** The raw score's short exponential average (weight
       ``short``, about ``1 / short`` samples) is compared with the long-run
       mean and variance of that average (weight ``long``): the Gaussian tail
       probability ``p`` of the current average is reported on a log scale,
       ``score = -log10(p) / -log10(pmin)``. ``p = 1e-6`` scores 0.5 and
       ``p = 1e-12`` scores 1.0, so strong detections stay distinct after
       rounding to 6 decimals (as in HTM's anomaly likelihood).
    3. **New extremes.** A value more than ``margin`` of the range seen so far
       above the maximum or below the minimum, and more than ``extreme_sd``
       long-run standard deviations from the long-run mean, scores ``extreme``
       (the second condition keeps a noisy series whose range is still
       growing with a slow drift from firing).
    4. **Stuck value.** "The same value as the previous one" is modelled as a
       two-state Markov chain (decayed counts, weight ``repeat_decay``): a run
       of ``L`` repeats has probability ``P(repeat | new) * P(repeat |
       repeat) ** (L - 1)``, with both estimated before the run started; its
       ``-log10`` goes through the same log scale. A series that repeats
       values often (or is constant) expects long runs and does not fire; a
       run is reported once, and only if it started after ``learn`` samples.
    5. **Minimum history.** Nothing scores above 0 before ``learn`` samples.
    6. **Suppression.** Once the score reaches ``fire``, the next ``suppress``
       scores are multiplied by ``damp``: a run of detections is reported
       once, strong new extremes still get through.

    The event time ``t`` is not needed: the detector counts samples. It keeps
    about 2 KiB per series (the count table is a ``bytearray``) and uses no
    randomness, so it is deterministic.

    Parameters
    ----------
    bins
        Quantisation levels of the range seen so far (2 to 15).
    gain
        How strongly a frequent transition lowers the sequence surprise: a
        level seen with probability ``1 / gain`` or more in its context scores 0.
    prior
        Pseudo-count added to every level when estimating the probability.
    fading
        Weight of the newest sample in the mean and variance of the values.
    z_scale
        Standard deviations of prediction error that make a raw score of 1.
    short
        Weight of the newest raw score in its short average, in (0, 1].
    long
        Weight of the newest short average in its long-run mean and variance.
    min_sd
        Floor under the long-run standard deviation of the short average.
    pmin
        Smallest tail probability told apart; it scores 1.0.
    margin
        Fraction of the range seen so far beyond which a new extreme is flagged.
    extreme
        The score of a new extreme, in [0, 1].
    fire
        Score at or above which suppression starts.
    suppress
        Samples suppressed after a score reaches ``fire``.
    damp
        Factor applied to suppressed scores, in [0, 1].
    extreme_sd
        Long-run standard deviations from the long-run mean a new extreme needs.
    learn
        Samples seen before anything may score above 0 (and before a run of
        repeats may be scored).
    repeat_decay
        Weight of the newest step in the repeat statistics.
    value_long
        Weight of the newest value in the long-run mean and variance of the
        values (used by the new-extreme check).

    Examples
    --------
    >>> import random
    >>> from riverguard.detectors import Sentinel
    >>> rng = random.Random(7)
    >>> det = Sentinel()
    >>> normal = [det.process(10.0 + rng.gauss(0.0, 1.0), 60.0 * i) for i in range(1500)]
    >>> sum(score >= det.default_threshold for score in normal[det.default_warmup:])
    1
    >>> det.process(25.0, 90000.0)  # a new extreme
    1.0
    >>> [round(det.process(10.0 + rng.gauss(0.0, 1.0)), 3) for _ in range(3)]  # suppressed
    [0.026, 0.025, 0.033]

    References
    ----------
    [^1]: Ahmad, S., Lavin, A., Purdy, S. and Agha, Z., 2017. Unsupervised
    real-time anomaly detection for streaming data. Neurocomputing, 262.
    (Anomaly likelihood and the new-extreme "spatial anomaly" check.)
    [^2]: Smirnov, M., 2016. Contextual Anomaly Detector (CAD OSE), NAB.
    [^3]: Lavin, A. and Ahmad, S., 2015. Evaluating real-time anomaly detection
    algorithms: the Numenta Anomaly Benchmark. ICMLA.
    """

    __slots__ = (
        "bins",
        "gain",
        "prior",
        "fading",
        "z_scale",
        "short",
        "long",
        "min_sd",
        "pmin",
        "margin",
        "extreme",
        "fire",
        "suppress",
        "damp",
        "extreme_sd",
        "learn",
        "repeat_decay",
        "value_long",
        "_avg",
        "_b1",
        "_b2",
        "_c0",
        "_c1",
        "_counts",
        "_hi",
        "_k0",
        "_k1",
        "_lmean",
        "_lo",
        "_lvar",
        "_mean",
        "_mu",
        "_n",
        "_prev",
        "_quiet",
        "_rep",
        "_run",
        "_s2",
        "_scale",
        "_step",
        "_totals",
        "_var",
    )

    name = "sentinel"
    default_threshold = 0.5
    default_warmup = 50

    def __init__(
        self,
        bins: int = 12,
        gain: float = 4.0,
        prior: float = 0.1,
        fading: float = 0.05,
        z_scale: float = 4.0,
        short: float = 0.2,
        long: float = 0.001,
        min_sd: float = 0.05,
        pmin: float = 1e-12,
        margin: float = 0.05,
        extreme: float = 1.0,
        fire: float = 0.5,
        suppress: int = 400,
        damp: float = 0.5,
        extreme_sd: float = 3.0,
        learn: int = 200,
        repeat_decay: float = 0.001,
        value_long: float = 0.002,
    ) -> None:
        if type(bins) is not int or not 2 <= bins <= 15:
            raise ValueError("bins must be an integer in [2, 15]")
        if not gain > 0.0 or not prior > 0.0 or not z_scale > 0.0:
            raise ValueError("gain, prior and z_scale must be > 0")
        if not 0.0 < fading < 1.0 or not 0.0 < short <= 1.0 or not 0.0 < long < 1.0:
            raise ValueError("fading and long must be in (0, 1), short in (0, 1]")
        if not min_sd > 0.0 or not 0.0 < pmin < 0.5 or not margin >= 0.0:
            raise ValueError("min_sd must be > 0, pmin in (0, 0.5), margin >= 0")
        if not 0.0 <= extreme <= 1.0 or not 0.0 <= damp <= 1.0 or not 0.0 < fire:
            raise ValueError("extreme and damp must be in [0, 1], fire > 0")
        if not extreme_sd >= 0.0 or type(learn) is not int or learn < 0 or not 0.0 < repeat_decay < 1.0:
            raise ValueError("extreme_sd must be >= 0, learn an integer >= 0, repeat_decay in (0, 1)")
        if not 0.0 < value_long < 1.0:
            raise ValueError("value_long must be in (0, 1)")
        if type(suppress) is not int or suppress < 0:
            raise ValueError("suppress must be an integer >= 0")
        self.bins = bins
        self.gain = gain
        self.prior = prior
        self.fading = fading
        self.z_scale = z_scale
        self.short = short
        self.long = long
        self.min_sd = min_sd
        self.pmin = pmin
        self.margin = margin
        self.extreme = extreme
        self.fire = fire
        self.suppress = suppress
        self.damp = damp
        self.extreme_sd = extreme_sd
        self.learn = learn
        self.repeat_decay = repeat_decay
        self.value_long = value_long
        self._lmean = self._lvar = 0.0  # long-run mean and variance of the values
        self._scale = -1.0 / math.log10(pmin)
        self._n = 0
        self._lo = self._hi = 0.0  # range seen so far
        self._mean = self._var = 0.0  # EW mean and variance of the values
        self._b1 = self._b2 = 0  # the two previous levels
        self._counts = bytearray(bins**3)  # decayed counts of (b2, b1) -> b
        self._totals = bytearray(bins**2)  # their sum per context (<= 255)
        self._avg = 0.0  # short average of the raw score
        self._mu = self._s2 = 0.0  # long-run mean and variance of the short average
        self._quiet = 0  # suppressed samples left
        self._prev = 0.0  # the previous value
        # repeats ("same value as the previous one") as a two-state Markov chain:
        # decayed counts of steps from a non-repeat (c0, k0 of them repeats) and from a repeat (c1, k1)
        self._c0 = self._k0 = self._c1 = self._k1 = 0.0
        self._rep = False  # the previous step was a repeat
        self._run = 0.0  # -log10 probability of the current run of repeats (-1: not scored)
        self._step = 0.0  # -log10 P(repeat | repeat) frozen at the start of the run

    def score_one(self, x: float, t: float | None = None) -> float:
        """Score ``x`` without learning it (the likelihood as if ``x`` were next)."""
        probe = type(self)(**self.params())
        probe.load_state(self.dump_state())
        return probe.process(x, t)

    def learn_one(self, x: float, t: float | None = None) -> None:
        self.process(x, t)

    def process(self, x: float, t: float | None = None) -> float:
        n = self._n
        self._n = n + 1
        if n == 0:
            self._lo = self._hi = self._mean = self._prev = self._lmean = x
            return 0.0
        # 4. stuck value: probability of the current run of repeats
        stuck = 0.0
        rep = x == self._prev
        self._prev = x
        r = self.repeat_decay
        keep = 1.0 - r
        if self._rep:
            c1 = self._c1 * keep + 1.0
            k1 = self._k1 * keep + rep
            if rep:
                run = self._run
                if run >= 0.0:
                    run += self._step
                    stuck = run * self._scale
                    if stuck >= self.fire:
                        run = -1.0  # a stuck run is reported once
                    self._run = run
            # the counts before this step decide P(repeat | repeat) for the rest of the run
            self._c1, self._k1 = c1, k1
        else:
            if rep:
                if n > self.learn:
                    self._run = -math.log10((self._k0 + 0.5) / (self._c0 + 1.0))
                    self._step = -math.log10((self._k1 + 0.5) / (self._c1 + 1.0))
                    stuck = self._run * self._scale
                else:
                    self._run = -1.0
            self._c0 = self._c0 * keep + 1.0
            self._k0 = self._k0 * keep + rep
        self._rep = rep
        lo = self._lo
        hi = self._hi
        span = hi - lo
        bins = self.bins
        # 3. new extremes (relative to the range before this value)
        ext = 0.0
        if x > hi:
            self._hi = x
            ext = x - hi
        elif x < lo:
            self._lo = x
            ext = lo - x
        # ... that is also far from the long-run mean, in long-run standard deviations
        lam = self.value_long if n * self.value_long > 1.0 else 1.0 / n
        dl = x - self._lmean
        if ext > 0.0:
            far = dl * dl > self.extreme_sd * self.extreme_sd * self._lvar
        self._lmean += lam * dl
        self._lvar = (1.0 - lam) * (self._lvar + lam * dl * dl)
        # 1a. sequence surprise: P(level | two previous levels)
        if span > 0.0:
            b = int((x - lo) / span * bins)
            b = 0 if b < 0 else (bins - 1 if b >= bins else b)
        else:
            b = 0
        row = self._b2 * bins + self._b1
        i = row * bins + b
        counts = self._counts
        totals = self._totals
        c = counts[i]
        total = totals[row]
        prior = self.prior
        raw = 1.0 - self.gain * (c + prior) / (total + prior * bins)
        if total == 255:  # halve the context's counts (forget slowly)
            base = row * bins
            total = 0
            for j in range(base, base + bins):
                h = counts[j] >> 1
                counts[j] = h
                total += h
            c = counts[i]
        counts[i] = c + 1
        totals[row] = total + 1
        self._b2 = self._b1
        self._b1 = b
        # 1b. prediction error against the EW mean
        d = x - self._mean
        var = self._var
        if var > 0.0:
            z = abs(d) / (math.sqrt(var) * self.z_scale)
            if z > 1.0:
                z = 1.0
        else:
            z = 0.0 if d == 0.0 else 1.0
        if z > raw:
            raw = z
        elif raw < 0.0:
            raw = 0.0
        a = self.fading
        self._mean += a * d
        self._var = (1.0 - a) * (var + a * d * d)
        # 2. likelihood of the short average against its long-run distribution
        avg = self._avg + self.short * (raw - self._avg)
        self._avg = avg
        mu = self._mu
        s2 = self._s2
        sd = math.sqrt(s2)
        if sd < self.min_sd:
            sd = self.min_sd
        dm = avg - mu
        p = 0.5 * math.erfc(dm / sd * _SQRT1_2)
        lam = self.long if n * self.long > 1.0 else 1.0 / n
        self._mu = mu + lam * dm
        self._s2 = (1.0 - lam) * (s2 + lam * dm * dm)
        score = -math.log10(p) * self._scale if p > self.pmin else 1.0
        if ext > self.margin * span and far and self.extreme > score:
            score = self.extreme
        if stuck > score:
            score = stuck if stuck < 1.0 else 1.0
        if n < self.learn:
            score = 0.0
        # 6. suppression
        if self._quiet:
            self._quiet -= 1
            score *= self.damp
        elif score >= self.fire:
            self._quiet = self.suppress
        return score

    def dump_state(self) -> list[Any]:
        return [
            self._n, float(self._lo), float(self._hi), float(self._mean), float(self._var), self._b1, self._b2,
            bytes(self._counts), bytes(self._totals), float(self._avg), float(self._mu), float(self._s2), self._quiet,
            float(self._lmean), float(self._lvar), float(self._prev), float(self._c0), float(self._k0),
            float(self._c1), float(self._k1), int(self._rep), float(self._run), float(self._step),
        ]  # fmt: skip

    def load_state(self, state: list[Any]) -> None:
        try:
            (n, lo, hi, mean, var, b1, b2, counts, totals, avg, mu, s2, quiet,
             lmean, lvar, prev, c0, k0, c1, k1, rep, run, step) = state  # fmt: skip
        except (TypeError, ValueError):
            raise ValueError("bad sentinel state") from None
        bins = self.bins
        if (
            {type(n), type(b1), type(b2), type(quiet), type(rep)} != _INT
            or min(n, b1, b2, quiet, rep) < 0
            or {type(v) for v in (lo, hi, mean, var, avg, mu, s2, lmean, lvar, prev, c0, k0, c1, k1, run, step)} != _FLOAT
            or type(counts) is not bytes
            or len(counts) != bins**3
            or type(totals) is not bytes
            or len(totals) != bins**2
            or b1 >= bins
            or b2 >= bins
            or rep > 1
        ):
            raise ValueError("bad sentinel state")
        self._n, self._lo, self._hi, self._mean, self._var = n, lo, hi, mean, var
        self._b1, self._b2, self._quiet = b1, b2, quiet
        self._avg, self._mu, self._s2 = avg, mu, s2
        self._lmean, self._lvar, self._prev = lmean, lvar, prev
        self._c0, self._k0, self._c1, self._k1 = c0, k0, c1, k1
        self._rep, self._run, self._step = bool(rep), run, step
        self._counts = bytearray(counts)
        # The per-context totals are saved rather than re-summed (144 sums per series made
        # loading 100 000 series take seconds). Totals that disagree with the counts can only
        # come from a tampered file: they skew that series' scores or fail it (logged, unscored).
        self._totals = bytearray(totals)
