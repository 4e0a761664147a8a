"""Sentinel: sequence surprise, prediction error, new extremes and stuck values, calibrated into likelihoods."""

from __future__ import annotations

from typing import Any

from ._likelihood import _INT, _Likelihood


class Sentinel(_Likelihood):
    """Anomaly likelihood of recent surprise, with new-extreme detection and suppression.

    Each sample goes through six cheap steps, all strictly online:

    1. **Surprise.** Two raw scores in [0, 1], the larger is kept:

       - *sequence surprise*: the value is quantised into ``bins`` levels of
         the range seen so far, and a second-order Markov model (decayed counts
         of level ``b`` after the two previous levels) gives the probability of
         the observed level in its context; the raw score is
         ``1 - gain * P(level | context)`` (a context never seen scores 1);
       - *prediction error*: the distance from an exponentially weighted
         mean, in exponentially weighted standard deviations, divided by ``z_scale``
         and capped at 1; with event times, the larger of that and the same
         distance from the mean of the time-of-day slot (see step 3) in that
         slot's standard deviations (weight ``day_fading``; a slot starts at
         its first value with the variance of the recent values, and counts
         once the series has passed through it ``day_visits`` times): a value
         normal for the series but not for the hour, such as a holiday.
    2. **Likelihood.** The raw score's short exponential average (weight
       ``short``, about ``1 / short`` samples) is compared with the long-run
       mean and variance of that average (weight ``long``): the Gaussian tail
       probability ``p`` of the current average is reported on a log scale,
       ``score = -log10(p) / -log10(pmin)``. ``p = 10 ** -6.5`` scores 0.5 and
       ``p = 1e-13`` scores 1.0, so strong detections stay distinct after
       rounding to 6 decimals (as in HTM's anomaly likelihood).
    3. **New extremes.** A value more than ``margin`` of the range above the
       maximum or below the minimum, and more than ``extreme_sd`` long-run
       standard deviations from the long-run mean, scores ``extreme`` (the
       second condition keeps a noisy series whose range is still growing with
       a slow drift from firing). The range is taken as it was when the current
       excursion beyond it began, so a slow slide to a new low is measured from
       where it left the range rather than step by step; after a detection, or
       once the value is back inside, the reference catches up with the range.

       *For the time of day*: the event time ``t`` (UTC) picks one of
       ``day_slots`` slots of the day (with ``weekend_slots``, Saturdays and
       Sundays have their own). Each slot keeps the range of the values seen
       in it; once the series has passed through the slot ``day_visits``
       times (on as many days), a value more than ``day_margin`` of the range
       seen so far beyond the slot's range scores ``day_score`` (a dip at an
       hour that is normally busy, a missing daily peak). With
       ``day_detrend`` the slots keep the value's deviation from the long-run
       mean (weight ``value_long``) instead of the value, so a series that
       rises or sinks over weeks does not set a new record for the hour every
       day. With the defaults
       ``day_score * damp`` is below ``fire``: these are not reported while
       a suppression started by one of them lasts (see step 6).
    4. **Stuck value.** "The same value as the previous one" is modelled as a
       two-state Markov chain (decayed counts, weight ``repeat_decay``): a run
       of ``L`` repeats has probability ``P(repeat | new) * P(repeat |
       repeat) ** (L - 1)``, with both estimated before the run started; its
       ``-log10`` goes through the same log scale. A series that repeats
       values often (or is constant) expects long runs and does not fire; a
       run is reported once, and only if it started after ``learn`` samples;
       with ``stuck_longest``, only while it is longer than every earlier run.
    5. **Minimum history.** Nothing scores above 0 before ``learn`` samples.
    6. **Suppression.** Once the score reaches ``fire``, the next ``suppress``
       scores are multiplied by ``damp``: a run of detections is reported
       once, strong new extremes still get through. With ``day_through``, a
       suppression started by a likelihood, a new extreme or a stuck value
       does not damp a time-of-day extreme: it is a different kind of
       evidence (a daily pattern broken), reported and followed by a
       suppression of its own, during which time-of-day extremes are damped.

    Without event times the time-of-day step is skipped; everything else
    counts samples. The detector keeps about 2.9 KiB of state per series (the
    count table is a ``bytearray``; the slot ranges, means and variances are
    ``array`` objects) and uses no randomness, so it is deterministic.

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
    day_slots
        Time-of-day slots per day (0 to 96; 0 turns the time-of-day step off).
    weekend_slots
        Give Saturdays and Sundays (UTC) slots of their own.
    day_margin
        Fraction of the range seen so far beyond a slot's range that is flagged.
    day_visits
        Passes through a slot before it is checked (1 to 255).
    day_score
        The score of a time-of-day extreme, in [0, 1].
    day_fading
        Weight of the newest sample in each time-of-day slot's mean and
        variance, for the prediction error against the slot (0 turns it off).
    day_detrend
        Compare the value's deviation from the long-run mean with the slot's
        range of deviations, rather than the value itself.
    day_through
        Let a time-of-day extreme through a suppression that another kind of
        report started (it is not damped, and starts a suppression of its own).
    stuck_longest
        Score a run of repeats only while it is longer than every run that has
        ended before it (a series that idles at a floor every night does not fire).

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
    [0.04, 0.048, 0.057]

    References
    ----------
    [^1]: Ahmad, S., Lavin, A., Purdy, S. and Agha, Z., 2017. Unsupervised
    real-time anomaly detection for streaming data. Neurocomputing, 262.
    (Anomaly likelihood and the new-extreme "spatial anomaly" check.)
    [^2]: Smirnov, M., 2016. Contextual Anomaly Detector (CAD OSE), NAB.
    [^3]: Lavin, A. and Ahmad, S., 2015. Evaluating real-time anomaly detection
    algorithms: the Numenta Anomaly Benchmark. ICMLA.
    """

    __slots__ = ("bins", "gain", "prior", "_b1", "_b2", "_counts", "_totals")

    name = "sentinel"
    default_threshold = 0.5
    default_warmup = 50

    def __init__(
        self,
        bins: int = 10,
        gain: float = 4.0,
        prior: float = 0.1,
        fading: float = 0.05,
        z_scale: float = 4.0,
        short: float = 0.2,
        long: float = 0.001,
        min_sd: float = 0.05,
        pmin: float = 1e-13,
        margin: float = 0.05,
        extreme: float = 1.0,
        fire: float = 0.5,
        suppress: int = 400,
        damp: float = 0.5,
        extreme_sd: float = 3.0,
        learn: int = 200,
        repeat_decay: float = 0.001,
        value_long: float = 0.002,
        day_slots: int = 24,
        weekend_slots: bool = True,
        day_margin: float = 0.1,
        day_visits: int = 7,
        day_score: float = 0.6,
        day_fading: float = 0.02,
        day_detrend: bool = True,
        day_through: bool = True,
        stuck_longest: bool = True,
    ) -> None:
        if type(bins) is not int or not 2 <= bins <= 15:
            raise ValueError("bins must be an integer in [2, 15]")
        if not gain > 0.0 or not prior > 0.0 or not z_scale > 0.0:
            raise ValueError("gain, prior and z_scale must be > 0")
        if not 0.0 < fading < 1.0 or not 0.0 < short <= 1.0 or not 0.0 < long < 1.0:
            raise ValueError("fading and long must be in (0, 1), short in (0, 1]")
        self.bins = bins
        self.gain = gain
        self.prior = prior
        self._setup(
            fading, z_scale, short, long, min_sd, pmin, margin, extreme, fire, suppress, damp, extreme_sd, learn,
            repeat_decay, value_long, day_slots, weekend_slots, day_margin, day_visits, day_score,
            day_fading, day_detrend, day_through, stuck_longest,
        )  # fmt: skip
        self._b1 = self._b2 = 0  # the two previous levels
        self._counts = bytearray(bins**3)  # decayed counts of (b2, b1) -> b
        self._totals = bytearray(bins**2)  # their sum per context (<= 255)

    def _surprise(self, x: float, lo: float, span: float, n: int) -> float:
        # 1a. sequence surprise: P(level | two previous levels)
        bins = self.bins
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
        return raw

    def _dump_surprise(self) -> list[Any]:
        return [self._b1, self._b2, bytes(self._counts), bytes(self._totals)]

    def _load_surprise(self, part: list[Any]) -> bool:
        if len(part) != 4:
            return False
        b1, b2, counts, totals = part
        bins = self.bins
        if (
            {type(b1), type(b2)} != _INT
            or min(b1, b2) < 0
            or type(counts) is not bytes
            or len(counts) != bins**3
            or type(totals) is not bytes
            or len(totals) != bins**2
            or b1 >= bins
            or b2 >= bins
        ):
            return False
        self._b1, self._b2 = b1, b2
        self._counts = bytearray(counts)
        # The per-context totals are saved rather than re-summed (144 sums per series made
        # loading 100 000 series take seconds). Totals that disagree with the counts can only
        # come from a tampered file: they skew that series' scores or fail it (logged, unscored).
        self._totals = bytearray(totals)
        return True
