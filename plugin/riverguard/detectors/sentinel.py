# cython: infer_types=True, annotation_typing=False, warn.unreachable=False
"""Sentinel, riverguard's default detector: sequence surprise, prediction error, new extremes and stuck values, calibrated into likelihoods.

Plain Python, compiled with Cython when a C compiler is there at install time
(``sentinel.pxd`` beside it only adds C types; see :mod:`riverguard.detectors.steps`).
"""

try:
    import cython
except ImportError:  # no Cython: this module runs as the plain Python it is
    from riverguard import _compiled as cython  # type: ignore[no-redef]

from .params import Param
from .steps import Pipeline, Settings, Surprise, compose

if cython.compiled:
    from cython.cimports.cpython.bytes import PyBytes_AS_STRING, PyBytes_FromStringAndSize
    from cython.cimports.riverguard.detectors.steps import bytes_io, free_buffer, zeroed_bytes
else:
    from .steps import bytes_io, free_buffer, zeroed_bytes

__all__ = ["Sentinel", "SentinelSettings", "Transitions"]


def _row_total(counts, first, bins):
    """The total of the ``bins`` counts of one context, from ``counts[first]``."""
    if cython.compiled:
        total = 0
        for j in range(first, first + bins):
            total += counts[j]
        return total
    return sum(counts[first : first + bins])


def _totals(counts, bins, data):
    """The total of each context's counts (``bins ** 2`` contexts of ``bins`` counts each) as bytes, with ``data``
    None; else whether ``data`` is those totals (never when one passes 255: only from a tampered state)."""
    n = bins * bins
    if cython.compiled:
        if data is None:
            out = PyBytes_FromStringAndSize(cython.NULL, n)
            sums = cython.cast(cython.p_uchar, PyBytes_AS_STRING(out))
            for row in range(n):
                sums[row] = _row_total(counts, row * bins, bins)  # <= 255: _buffer refuses counts beyond
            return out
        if type(data) is not bytes or len(data) != n:
            return False
        sums = cython.cast(cython.p_uchar, PyBytes_AS_STRING(data))
        for row in range(n):
            if _row_total(counts, row * bins, bins) != sums[row]:
                return False
        return True
    try:
        totals = bytes(map(sum, zip(*[counts[j::bins] for j in range(bins)])))  # row by row, at C speed
    except ValueError:  # a context beyond 255
        totals = None
    return totals if data is None else type(data) is bytes and data == totals


class SentinelSettings(Settings):
    """Sentinel's settings (one object per rule): the shared steps' and :class:`Transitions`' (``bins``, ...)."""

    LEVELS = "bins"

    def __init__(self, values):
        Settings.__init__(self, values)
        self.prior_mass = self.prior * self.bins  # the prior of a whole context (Transitions)


@cython.no_gc
@cython.cclass
class Transitions(Surprise):
    """Step 1a of sentinel: sequence surprise from a second-order Markov model of quantised levels.

    The value is quantised into ``bins`` levels of the range seen so far
    (:func:`~riverguard.detectors.steps._level`); decayed
    counts of level ``b`` after the two previous levels give the probability of
    the observed level in its context, and the raw score is
    ``1 - gain * P(level | context)`` (a context never seen scores 1).
    """

    PARAMS = (
        Param("bins", 10, "Quantisation levels of the range seen so far.", low=2, high=15),
        Param("gain", 4.0, "A level seen with probability 1 / gain or more in its context scores 0.",
              low=0.0, low_open=True),
        Param("prior", 0.1, "Pseudo-count added to every level when estimating the probability.",
              low=0.0, low_open=True),
    )  # fmt: skip
    # the two previous levels (b1 the newest); counts of each level after each pair of levels
    # (bins ** 3 saturating bytes); "totals", the total of each pair's counts (bins ** 2), is not kept
    # but summed when needed, and saved as it always was (see _buffer)
    STATE = ("b1", "b2")
    BUFFERS = ("counts", "totals")

    def __init__(self, cfg):
        self.cfg = cfg
        bins = cfg.bins
        self._b1 = 0
        self._b2 = 0
        self._counts = zeroed_bytes(bins * bins * bins)

    def __dealloc__(self):
        free_buffer(self._counts)

    def raw(self, b, n):
        bins = self.cfg.bins
        row = self._b2 * bins + self._b1
        first = row * bins
        i = first + b
        counts = self._counts
        c = counts[i]
        total = _row_total(counts, first, bins)
        prior = self.cfg.prior
        raw = 1.0 - self.cfg.gain * (c + prior) / (total + self.cfg.prior_mass)
        if total == 255:  # halve the context's counts (forget slowly)
            for j in range(first, first + bins):
                counts[j] = counts[j] >> 1
            c = counts[i]
        # c + 1 <= 255: a context's counts total at most 255 (the halving keeps them there, and _buffer refuses
        # saved counts and totals that do not), so c <= 127 after a halving and c <= total <= 254 without
        counts[i] = c + 1
        self._b2 = self._b1
        self._b1 = b
        return raw

    def peek(self, out):
        bins = self.cfg.bins
        first = (self._b2 * bins + self._b1) * bins  # the context (as in raw): its counts from first, and their total
        prior = self.cfg.prior
        counts = self._counts
        total = _row_total(counts, first, bins) + self.cfg.prior_mass
        for b in range(bins):
            out[b] = 1.0 - self.cfg.gain * (counts[first + b] + prior) / total
        return bins

    def _buffer(self, name, data):
        bins = self.cfg.bins
        if name == "counts":
            return bytes_io(self._counts, bins * bins * bins, data)
        # "totals" (loaded after "counts"): the total of each context's counts, saved as when it was kept
        # (the same records and fingerprints). Every total ever kept was that sum: it started at 0 with
        # the counts, grew by 1 with one of them, and a halving set it to the sum of the halved counts.
        # Saved totals that are not those sums (or counts of a context beyond 255 in all) can only come
        # from a tampered file: refused.
        return _totals(self._counts, bins, data)

    def _fits(self):
        bins = self.cfg.bins
        return self._b1 < bins and self._b2 < bins


# Suppression and learning are also bounded in event time (3 days), and the time-of-day margin is
# wider; a time-of-day slot must have seen a spread of values, and a climb already reported is not
# reported again: issue 12, docs/detection.md "Two corpora"; spikes that last half an hour are
# reported, and the likelihood remembers at least two days: docs/detection.md "Spikes that last" and
# "A likelihood that remembers days"; a new extreme must have lasted a minute: docs/detection.md
# "Extremes that last a minute"; a level that stays away is reported: docs/detection.md "Level shifts";
# so is a burst of change, again and again: docs/detection.md "Bursts of change"; a cumulative counter's
# new highs are not news, a burst of its increase is: docs/detection.md "Counters"; a burst of sparse spikes
# far beyond the series' own clusters of them is reported: docs/detection.md "Bursts beyond the clusters"; a
# sparse count at fine sampling is not flagged for chance pairs: docs/detection.md "Sparse counts at fine sampling"; a
# time-of-day extreme or a new extreme needs a second view that agrees, and a peak several times the usual daily
# one is reported: docs/detection.md "Views that agree, built"; so is a lone minute that stands out from the
# last 12 hours and the same hours a day before: docs/detection.md "Lone values".
_STEPS, _SETTINGS, _PARAMS, _LAYOUT = compose(
    Transitions, SentinelSettings,
    day_margin=0.18, suppress_time=259200.0, learn_time=259200.0, day_width=0.05, extreme_once=True, spike=12.0,
    long_time=172800.0, extreme_time=60.0, shift=8.0, spread=10.0, counter_time=86400.0, far=6.0,
    fine_time=300.0, peak=3.0,
)


@cython.no_gc
@cython.cclass
class Sentinel(Pipeline):
    """riverguard's default detector: anomaly likelihood of recent surprise, new extremes, spikes, stuck values.

    Each sample goes through seven cheap steps, all strictly online:

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
       mean and variance of that average (weight ``long``, and at most a
       sample's interval over ``long_time``: a memory of at least 1 000
       samples and two days of event time): the Gaussian tail
       probability ``p`` of the current average is reported on a log scale,
       ``score = -log10(p) / -log10(pmin)``. ``p = 10 ** -6.5`` scores 0.5 and
       ``p = 1e-13`` scores 1.0, so strong detections stay distinct after
       rounding to 6 decimals (as in HTM's anomaly likelihood). The standard
       deviation is at least ``min_sd``; for a series sampled finer than
       ``fine_time`` (5 minutes) whose short average holds less than one
       surprise on average (a sparse count at 1 s), the floor is wider per
       decade of finer sampling, as the tail of a few capped scores is far
       heavier than the Gaussian one.
    3. **New extremes.** A value more than ``margin`` of the range above the
       maximum or below the minimum, and more than ``extreme_sd`` long-run
       standard deviations from the long-run mean, scores ``extreme`` (the
       second condition keeps a noisy series whose range is still growing with
       a slow drift from firing); or, instead of the second, more than
       ``extreme_sd`` of its time-of-day slot's standard deviations and
       ``day_margin`` of the range from the slot's mean, once the slot has
       seen as many samples as its mean remembers (``1 / day_fading``) on
       two days or more (a rate that falls to zero, where a daily swing
       spreads the long-run variance so that zero is not 3 of its standard
       deviations away). The range is taken as it was when the current
       excursion beyond it began, so a slow slide to a new low is measured from
       where it left the range rather than step by step; after a detection, or
       once the excursion is over, the reference catches up with the range.
       The excursion must have lasted ``extreme_time`` (a minute) of event
       time and two usual intervals, up to twice ``extreme_time``, each
       sample standing for its interval (at most twice the usual one), and
       it is over once the values have been back inside as long:
       at 10 s or at one sample a minute a lone record, which noise sets now
       and then, is learned, not reported, unless it is also a spike (step
       4b's measure, however short), while one sample of a series sampled
       every 80 s or slower (5 minutes, an hour) is enough; a change
       that keeps the values beyond the range is reported after a minute
       (two samples a minute apart).

       *For the time of day*: the event time ``t`` (UTC) picks one of
       ``day_slots`` slots of the day (with ``weekend_slots``, Saturdays and
       Sundays have their own). Each slot keeps the range of the values seen
       in it; once the series has passed through the slot ``day_visits``
       times (on as many days), and the values seen in it spread over more
       than ``day_width`` of the range seen so far, a value more than
       ``day_margin`` of the range beyond the slot's range scores
       ``day_score`` (a dip at an hour that is normally busy, a missing daily
       peak; an hour that has only seen zeros says nothing about a stray 1). With
       ``day_detrend`` the slots keep the value's deviation from the long-run
       mean (weight ``value_long``) instead of the value, so a series that
       rises or sinks over weeks does not set a new record for the hour every
       day. With the defaults
       ``day_score * damp`` is below ``fire``: these are not reported while
       a suppression started by one of them lasts (see step 6).
    4. **Stuck value.** "The same value as the previous one" is modelled as a
       two-state Markov chain (decayed counts, weight ``repeat_decay``, at
       most the usual interval over two days of event time): a run
       of ``L`` repeats has probability ``P(repeat | new) * P(repeat |
       repeat) ** (L - 1)``, with both estimated before the run started; its
       ``-log10`` goes through the same log scale. A series that repeats
       values often (or is constant) expects long runs and does not fire; a
       run is reported once, and only if it started after ``learn`` samples;
       with ``stuck_longest``, only while it is longer than every earlier run.
       A reported run is an incident, not how the series repeats: when it
       ends, its repeats leave the statistics, and it sets the record unless
       it was far longer than every run before it (twice in a series that
       seldom repeats, unless it is at rest at the floor or ceiling of its
       range, ten times at a reading inside the range), while a debt
       allows, so a sensor that freezes again is reported again.

       *Spikes that last* (:class:`~riverguard.detectors.steps.Spike`): a
       value ``spike`` (12) or more exponentially weighted mean absolute
       deviations from the recent level scores ``spike_score``, even inside
       the range seen so far, once it has lasted ``spike_time`` (half an
       hour of event time since the last sample that was not a spike: one
       sample of an hourly series; ``0``: one sample at any rate). With
       ``far`` (6) a burst of sparse spikes scores the same: far-out
       values, ``far`` or more mads out (the first of each run), counted
       over ``far_time`` (5 minutes of event time), 3 at least and
       ``far_record`` (2) times the largest count of the series' earlier
       clusters of them not reported (at fine sampling only). With
       ``spike = 0`` the step is left out: no state, no cost.

       *Level shifts* (:class:`~riverguard.detectors.steps.Shift`): the
       recent level (an exponentially weighted mean over 2 minutes, or 20
       usual intervals if longer) ``shift`` (8) or more of its typical
       distances from the long-run mean scores ``shift_score`` once that has
       lasted ``shift_time_last`` (30 s of event time), and if it is at least
       half the largest such distance seen lately: a level that stays away,
       such as 2 to 4 standard deviations of a sensor sampled every second
       for a few minutes, which the recent mean of the prediction error soon
       absorbs. One sample moves the recent level by one typical distance
       at most, so a lone outlier is never a level shift. A shift is
       reported once; the step then waits for the level to come back within
       three quarters of the bar. While a shift lasts, the long-run
       mean learns at a tenth of its weight, so the next shift is measured
       from the series' level rather than from one pulled towards this
       incident. With ``shift = 0`` the step is left out.

       *Bursts of change* (:class:`~riverguard.detectors.steps.Spread`): the
       same rule applied to the size of each change, ``|x - previous
       value|``, measured from its own long-run mean: its recent mean
       ``spread`` (10) or more typical distances above it (a rise only) scores
       ``shift_score``: noise that grows, an oscillation, vibration, judged
       against what is usual now, so a burst like one reported an hour ago is
       reported again (a new extreme cannot: the range holds the first).
       With ``spread = 0`` the step is left out.
       *Counters* (:class:`~riverguard.detectors.steps.Counter`): a series
       that has risen for ``counter_time`` (a day, or 20 usual intervals if
       longer) without a fall, 3 times at least, counting from its first
       rise after the last fall, is a cumulative counter (a gauge with a
       daily rhythm falls within a day) (network errors,
       bytes received): its new highs and a level above the long-run mean
       are how it counts and are not reported. Its recent increase (its
       rises summed over the level shifts' window, each fading with the
       window) more than ``counter_burst`` (4) times the largest earlier
       peak of it scores ``extreme``: a burst, reported once and not learned
       as the usual pace. With ``counter_time = 0`` the step is left out.
    5. **Minimum history.** Nothing scores above 0 before ``learn`` samples (in a rule, its
       ``warmup``: 200 by default),
       or, with event times, before ``learn_time`` seconds (3 days; and
       ``learn // 4`` samples): 200 samples are 17 hours at 5 minutes but 8
       days hourly.
    6. **Suppression.** Once the score reaches ``fire``, the next ``suppress``
       scores are multiplied by ``damp``, or, with event times, those of the
       next ``suppress_time`` seconds (3 days) if that ends first: a run of
       detections is reported once, a distinct incident days later is
       reported again, strong new extremes still get through (a damped
       likelihood score stays under ``fire``: at its cap of 1.0 it would
       otherwise be reported again at each sample the incident lasts), except (with
       ``extreme_once``) one that continues the climb of the new extreme before
       it, no value having come back inside the range. With ``day_through``, a
       suppression started by a likelihood, a new extreme or a stuck value
       does not damp a time-of-day extreme: it is a different kind of
       evidence (a daily pattern broken), reported and followed by a
       suppression of its own, during which time-of-day extremes are damped.

    7. **Views that agree.** Two more views of the series
       (:class:`~riverguard.detectors.steps.Views`): the *peak*, the
       excursion above a day's level in units of the median of the last 14
       days' largest excursions, and the *rise*, the logarithm of the value
       against its level of the last week in mean absolute deviations. A
       time-of-day extreme or a new extreme is reported only where one of
       them is ``agree`` (2) or more in size, or the value is ``z_scale`` of
       its slot's standard deviations from the slot's mean (a view not
       ready yet does not object); and a peak ``peak`` (3) times the usual
       one with a rise of ``rise`` (2), lasting an hour, scores ``extreme``
       (a day apart at least, outside the suppression). At one sample a
       minute or finer, a *lone value* (one sample ``lone`` (6) deviations
       above the logarithm's level of the last hour, 1.5 times as far as
       any of the last 12 hours and of the same hours a day before, the
       next back under half) is reported on the next sample, 6 hours apart
       at least. With ``peak = 0`` the step is
       left out.

    Without event times the time-of-day step is skipped and everything else
    counts samples. The detector keeps about 3.6 KiB per series (3 640 B of memory at 100 000 series; the
    count table, the slot ranges, means and variances are C arrays when
    compiled, a ``bytearray`` and ``array`` objects when not) and uses no
    randomness, so it is deterministic.

    Parameters
    ----------
    Each is declared once, with its default, valid range and meaning, in
    the ``PARAMS`` of the step that uses it (:class:`Transitions` here, the
    shared steps in :mod:`riverguard.detectors.steps`); ``Sentinel.PARAMS``
    lists them all and ``docs/parameters.md`` shows them as a table. Read
    them back under their own names (``det.bins``); ``learn`` is set from
    the rule's ``warmup``.

    Examples
    --------
    >>> import random
    >>> from riverguard.detectors import Sentinel
    >>> rng = random.Random(7)
    >>> det = Sentinel()
    >>> normal = [det.process(10.0 + rng.gauss(0.0, 1.0), 60.0 * i) for i in range(1500)]
    >>> sum(score >= det.default_threshold for score in normal[det.default_warmup:])
    0
    >>> det.process(25.0, 90000.0)  # a new extreme
    1.0
    >>> [round(det.process(10.0 + rng.gauss(0.0, 1.0)), 3) for _ in range(3)]  # suppressed
    [0.034, 0.014, 0.014]

    References
    ----------
    [^1]: Ahmad, S., Lavin, A., Purdy, S. and Agha, Z., 2017. Unsupervised
    real-time anomaly detection for streaming data. Neurocomputing, 262.
    (Anomaly likelihood and the new-extreme "spatial anomaly" check.)
    [^2]: Smirnov, M., 2016. Contextual Anomaly Detector (CAD OSE), NAB.
    [^3]: Lavin, A. and Ahmad, S., 2015. Evaluating real-time anomaly detection
    algorithms: the Numenta Anomaly Benchmark. ICMLA.
    """

    STEPS = _STEPS
    SETTINGS = _SETTINGS
    PARAMS = _PARAMS
    STATE_LAYOUT = _LAYOUT
    name = "sentinel"
    default_threshold = 0.5
    default_warmup = Pipeline.LEARN.default  # the rule's warmup is the detector's learn
