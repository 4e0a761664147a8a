"""Context: novelty of recent value patterns (CAD OSE style), calibrated into likelihoods."""

from __future__ import annotations

import functools
import math  # noqa: F401 (the Examples use it)
from typing import Any

from ._likelihood import _Likelihood

#: ``bytes.translate`` table that halves every count (the table's slow forgetting).
_HALVE = bytes(i >> 1 for i in range(256))
#: Odd 32-bit multipliers (fixed: hashing must not depend on the process).
_MULT = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1, 0xD3A2646C | 1, 0xFD7046C5, 0xB55A4F09)


@functools.cache
def _plan(orders: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Per order: (mask of its history bits, hash multiplier)."""
    return tuple(((1 << (4 * (k + 1))) - 1, _MULT[j]) for j, k in enumerate(orders))


class Context(_Likelihood):
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
       mean in ``z_scale`` standard deviations (capped at 1) when larger, or
       from the mean of the time-of-day slot in that slot's standard
       deviations (weight ``day_fading``; see Sentinel).
       Long orders see a whole daily shape (a flat middle, a missing dip), short
       ones a single unusual step.
    2. **Likelihood.** The raw score's short exponential average (weight
       ``short``) is compared with the long-run mean and variance of that
       average (weight ``long``): the Gaussian tail probability ``p`` is put on
       a log scale, ``score = -log10(p) / -log10(pmin)``.
    3. **New extremes.** A value more than ``margin`` of the range beyond it,
       and more than ``extreme_sd`` long-run standard deviations from the
       long-run mean, scores ``extreme``; the range is taken as it was when the
       current excursion beyond it began (see Sentinel). A value beyond the
       range seen at this time of day on earlier days scores ``day_score``
       (see Sentinel).
    4. **Stuck value.** A run of repeats is scored by its probability under a
       two-state repeat Markov chain, reported once per run.
    5. **Minimum history.** Nothing scores above 0 before ``learn`` samples.
    6. **Suppression.** Once the score reaches ``fire``, the next ``suppress``
       scores are multiplied by ``damp`` (with ``day_through``, not a
       time-of-day extreme in a suppression another kind of report started).

    Without event times the time-of-day check is skipped. State is the count
    table (1 KiB by default), the slot ranges, means and variances (0.8 KiB with 12 two-hour
    slots, weekends apart) and about thirty numbers.

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
    (the others)
        The steps shared with :class:`~riverguard.detectors.Sentinel` take its
        parameters, with the same names and meanings (see its documentation):
        ``fading``, ``z_scale``, ``short``, ``long``, ``min_sd``, ``pmin``,
        ``margin``, ``extreme``, ``fire``, ``suppress``, ``damp``,
        ``extreme_sd``, ``learn``, ``repeat_decay``, ``value_long``,
        ``day_slots``, ``weekend_slots``, ``day_margin``, ``day_visits``,
        ``day_score``, ``day_fading``, ``day_detrend``, ``day_through`` and
        ``stuck_longest``. Only two defaults differ: ``pmin`` is 1e-12 and
        ``day_slots`` 12 (two-hour slots keep a series within 4 KiB).

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
        "_hashes",
        "_shift",
        "_tmask",
        "_inv",
        "_hmask",
        "_hist",
        "_table",
    )

    name = "context"
    default_threshold = 0.5
    default_warmup = 50

    def __init__(
        self,
        levels: int = 6,
        orders: tuple[int, ...] = (1, 2, 3, 5, 7),
        table_bits: int = 10,
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
        day_slots: int = 12,  # two-hour slots: the slot means and variances keep a series within 4 KiB
        weekend_slots: bool = True,
        day_margin: float = 0.1,
        day_visits: int = 7,
        day_score: float = 0.6,
        day_fading: float = 0.02,
        day_detrend: bool = True,
        day_through: bool = True,
        stuck_longest: bool = True,
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
        self.levels = levels
        self.orders = orders
        self.table_bits = table_bits
        self.halve_every = halve_every
        self._setup(
            fading, z_scale, short, long, min_sd, pmin, margin, extreme, fire, suppress, damp, extreme_sd, learn,
            repeat_decay, value_long, day_slots, weekend_slots, day_margin, day_visits, day_score,
            day_fading, day_detrend, day_through, stuck_longest,
        )  # fmt: skip
        self._hashes = _plan(orders)  # shared between instances
        self._shift = 32 - table_bits
        self._tmask = (1 << table_bits) - 1
        self._inv = 1.0 / len(orders)
        self._hmask = (1 << (4 * (max(orders) + 1))) - 1
        self._hist = 0  # the previous levels, 4 bits each, newest lowest
        self._table = bytearray(1 << table_bits)

    def _surprise(self, x: float, lo: float, span: float, n: int) -> float:
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
        return unseen * self._inv

    def _dump_surprise(self) -> list[Any]:
        return [self._hist, bytes(self._table)]

    def _load_surprise(self, part: list[Any]) -> bool:
        if len(part) != 2:
            return False
        hist, table = part
        if (
            type(hist) is not int
            or hist < 0
            or type(table) is not bytes
            or len(table) != 1 << self.table_bits
            or hist > self._hmask
        ):
            return False
        self._hist = hist
        self._table = bytearray(table)
        return True
