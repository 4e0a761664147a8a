"""Context: novelty of recent value patterns (CAD OSE style), calibrated into likelihoods."""

from __future__ import annotations

import functools
import math
from typing import Any

from .base import Detector

_SQRT1_2 = math.sqrt(0.5)
#: ``bytes.translate`` table that halves every count (the table's slow forgetting).
_HALVE = bytes(i >> 1 for i in range(256))
#: Odd 32-bit multipliers (fixed: hashing must not depend on the process).
_MULT = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1, 0xD3A2646C | 1, 0xFD7046C5, 0xB55A4F09)


@functools.cache
def _plan(orders: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Per order: (mask of its history bits, hash multiplier)."""
    return tuple(((1 << (4 * (k + 1))) - 1, _MULT[j]) for j, k in enumerate(orders))


class Context(Detector):
    """Novelty of the recent pattern of quantised values, as an anomaly likelihood.

    A compact, strictly online take on the Contextual Anomaly Detector (CAD
    OSE): each sample is quantised into ``levels`` levels of the range seen so
    far, and the last few levels form its *contexts*, one per order ``k`` in
    ``orders`` (the ``k`` previous levels followed by the current one). Every
    context is hashed (fixed multiplicative hashing of integers, so the
    detector is deterministic) into one shared table of ``2 ** table_bits``
    saturating byte counts, halved every ``halve_every`` samples so that old
    patterns fade. Then, as in Sentinel:

    1. **Surprise.** The raw score is the fraction of the sample's contexts
       never seen (count 0), or its distance from an exponentially weighted
       mean in ``z_scale`` standard deviations (capped at 1) when larger.
       Long orders see a whole daily shape (a flat middle, a missing dip), short
       ones a single unusual step.
    2. **Likelihood.** The raw score's short exponential average (weight
       ``short``) is compared with the long-run mean and variance of that
       average (weight ``long``): the Gaussian tail probability ``p`` is put on
       a log scale, ``score = -log10(p) / -log10(pmin)``.
    3. **New extremes.** A value more than ``margin`` of the range seen so far
       beyond it, and more than ``extreme_sd`` long-run standard deviations
       from the long-run mean, scores ``extreme``.
    4. **Stuck value.** A run of repeats is scored by its probability under a
       two-state repeat Markov chain, reported once per run.
    5. **Minimum history.** Nothing scores above 0 before ``learn`` samples.
    6. **Suppression.** Once the score reaches ``fire``, the next ``suppress``
       scores are multiplied by ``damp``.

    The event time ``t`` is not needed. State is the count table (2 KiB by
    default) and about thirty numbers.

    Parameters
    ----------
    levels
        Quantisation levels of the range seen so far (2 to 16).
    orders
        Context lengths: the number of previous levels in each context (1 to 7).
    table_bits
        The count table has ``2 ** table_bits`` entries (6 to 12).
    halve_every
        Samples between halvings of the count table.
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
        Samples seen before anything may score above 0.
    repeat_decay
        Weight of the newest step in the repeat statistics.
    value_long
        Weight of the newest value in the long-run mean and variance of the values.

    Examples
    --------
    >>> import random
    >>> from riverguard.detectors import Context
    >>> rng = random.Random(7)
    >>> det = Context()
    >>> wave = [10.0 + 5.0 * math.sin(i / 10.0) for i in range(3000)]
    >>> normal = [det.process(v + rng.gauss(0.0, 0.3)) for v in wave]
    >>> sum(score >= det.default_threshold for score in normal[det.default_warmup:])
    0
    >>> det.process(30.0)  # a new extreme
    1.0

    References
    ----------
    [^1]: Smirnov, M., 2016. Contextual Anomaly Detector (CAD OSE), NAB.
    [^2]: Ahmad, S., Lavin, A., Purdy, S. and Agha, Z., 2017. Unsupervised
    real-time anomaly detection for streaming data. Neurocomputing, 262.
    [^3]: Lavin, A. and Ahmad, S., 2015. Evaluating real-time anomaly detection
    algorithms: the Numenta Anomaly Benchmark. ICMLA.
    """

    __slots__ = (
        "levels",
        "orders",
        "table_bits",
        "halve_every",
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
        "_hashes",
        "_shift",
        "_tmask",
        "_inv",
        "_scale",
        "_hmask",
        "_n",
        "_lo",
        "_hi",
        "_mean",
        "_var",
        "_lmean",
        "_lvar",
        "_hist",
        "_table",
        "_avg",
        "_mu",
        "_s2",
        "_quiet",
        "_prev",
        "_c0",
        "_k0",
        "_c1",
        "_k1",
        "_rep",
        "_run",
        "_step",
    )

    name = "context"
    default_threshold = 0.5
    default_warmup = 50

    def __init__(
        self,
        levels: int = 6,
        orders: tuple[int, ...] = (1, 2, 3, 5, 7),
        table_bits: int = 11,
        halve_every: int = 4096,
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
        orders = tuple(orders)
        if type(levels) is not int or not 2 <= levels <= 16:
            raise ValueError("levels must be an integer in [2, 16]")
        if not orders or len(orders) > 8 or any(type(k) is not int or not 0 <= k <= 7 for k in orders):
            raise ValueError("orders must be 1 to 8 integers in [0, 7]")
        if type(table_bits) is not int or not 6 <= table_bits <= 12:
            raise ValueError("table_bits must be an integer in [6, 12]")
        if type(halve_every) is not int or halve_every < 1:
            raise ValueError("halve_every must be an integer >= 1")
        if not z_scale > 0.0 or not 0.0 < fading < 1.0 or not 0.0 < short <= 1.0 or not 0.0 < long < 1.0:
            raise ValueError("z_scale must be > 0, fading and long in (0, 1), short in (0, 1]")
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
        self.levels = levels
        self.orders = orders
        self.table_bits = table_bits
        self.halve_every = halve_every
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
        self._hashes = _plan(orders)  # shared between instances
        self._shift = 32 - table_bits
        self._tmask = (1 << table_bits) - 1
        self._inv = 1.0 / len(orders)
        self._scale = -1.0 / math.log10(pmin)
        self._hmask = (1 << (4 * (max(orders) + 1))) - 1
        self._n = 0
        self._lo = self._hi = 0.0  # range seen so far
        self._mean = self._var = 0.0  # EW mean and variance of the values
        self._lmean = self._lvar = 0.0  # long-run mean and variance of the values
        self._hist = 0  # the previous levels, 4 bits each, newest lowest
        self._table = bytearray(1 << table_bits)
        self._avg = 0.0
        self._mu = self._s2 = 0.0
        self._quiet = 0
        self._prev = 0.0
        self._c0 = self._k0 = self._c1 = self._k1 = 0.0
        self._rep = False
        self._run = 0.0
        self._step = 0.0

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
        # 4. stuck value
        stuck = 0.0
        rep = x == self._prev
        self._prev = x
        keep = 1.0 - self.repeat_decay
        if self._rep:
            c1 = self._c1 * keep + 1.0
            k1 = self._k1 * keep + rep
            if rep:
                run = self._run
                if run >= 0.0:
                    run += self._step
                    stuck = run * self._scale
                    if stuck >= self.fire:
                        run = -1.0
                    self._run = run
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
        # 3. new extremes
        ext = 0.0
        if x > hi:
            self._hi = x
            ext = x - hi
        elif x < lo:
            self._lo = x
            ext = lo - x
        lam = self.value_long if n * self.value_long > 1.0 else 1.0 / n
        dl = x - self._lmean
        far = ext > 0.0 and dl * dl > self.extreme_sd * self.extreme_sd * self._lvar
        self._lmean += lam * dl
        self._lvar = (1.0 - lam) * (self._lvar + lam * dl * dl)
        # 1a. context novelty
        levels = self.levels
        if span > 0.0:
            q = int((x - lo) / span * levels)
            q = 0 if q < 0 else (levels - 1 if q >= levels else q)
        else:
            q = 0
        hist = ((self._hist << 4) | q) & self._hmask
        self._hist = hist
        table = self._table
        shift = self._shift
        tmask = self._tmask
        unseen = 0
        for mask, mult in self._hashes:
            i = (((hist & mask) * mult) >> shift) & tmask
            c = table[i]
            if c == 0:
                unseen += 1
            if c < 255:
                table[i] = c + 1
        if n % self.halve_every == 0:
            self._table = table.translate(_HALVE)
        raw = unseen * self._inv
        # 1b. prediction error
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
        a = self.fading
        self._mean += a * d
        self._var = (1.0 - a) * (var + a * d * d)
        # 2. likelihood
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
            self._n, float(self._lo), float(self._hi), float(self._mean), float(self._var), self._hist,
            bytes(self._table), float(self._avg), float(self._mu), float(self._s2), self._quiet,
            float(self._lmean), float(self._lvar), float(self._prev), float(self._c0), float(self._k0),
            float(self._c1), float(self._k1), int(self._rep), float(self._run), float(self._step),
        ]  # fmt: skip

    def load_state(self, state: list[Any]) -> None:
        try:
            (n, lo, hi, mean, var, hist, table, avg, mu, s2, quiet,
             lmean, lvar, prev, c0, k0, c1, k1, rep, run, step) = state  # fmt: skip
        except (TypeError, ValueError):
            raise ValueError("bad context state") from None
        ints = (n, hist, quiet, rep)
        floats = (lo, hi, mean, var, avg, mu, s2, lmean, lvar, prev, c0, k0, c1, k1, run, step)
        if (
            any(type(v) is not int or v < 0 for v in ints)
            or any(type(v) is not float for v in floats)
            or type(table) is not bytes
            or len(table) != 1 << self.table_bits
            or hist > self._hmask
            or rep > 1
        ):
            raise ValueError("bad context state")
        self._n, self._lo, self._hi, self._mean, self._var = n, lo, hi, mean, var
        self._hist, self._quiet = hist, quiet
        self._avg, self._mu, self._s2 = avg, mu, s2
        self._lmean, self._lvar, self._prev = lmean, lvar, prev
        self._c0, self._k0, self._c1, self._k1 = c0, k0, c1, k1
        self._rep, self._run, self._step = bool(rep), run, step
        self._table = bytearray(table)
