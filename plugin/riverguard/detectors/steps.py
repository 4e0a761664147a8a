# cython: infer_types=True, annotation_typing=False, warn.unreachable=False
"""The steps of riverguard's own likelihood detectors (``sentinel``, ``context``), one class each.

A :class:`Pipeline` runs one sample through its steps (see
:class:`~riverguard.detectors.sentinel.Sentinel` for what each does):

1. a *surprise* step (:class:`Surprise`; the detector's own: sentinel's
   level transitions, context's patterns) and the :class:`PredictionError`
   give a raw score in [0, 1];
2. :class:`Likelihood` turns its short average into a log-scaled tail probability;
3. :class:`Extremes` (new extremes of the range) and :class:`TimeOfDay`
   (the range and mean of each time-of-day slot) may raise the score;
4. :class:`Stuck` scores a run of repeated values, :class:`Spike` (off
   unless a rule sets ``spike``) a value far from the recent level in robust
   deviations, :class:`Shift` (off unless a rule sets ``shift``) a recent
   level far from the long-run mean, and :class:`Spread` (off unless a rule
   sets ``spread``) a recent size of the sample-to-sample change far above
   its long-run mean;
5. nothing scores before ``learn`` samples (the rule's ``warmup``), or
   ``learn_time`` seconds of event time (and ``learn // 4`` samples);
6. :class:`Suppression` damps the scores after a report, for ``suppress``
   samples or ``suppress_time`` seconds of event time, whichever ends first.

Each step declares its parameters (``PARAMS``, see
:mod:`riverguard.detectors.params`) and its learned state (``STATE``,
``BUFFERS``), saved in one flat record whose layout is derived from those
names. A new statistic is one more name in ``STATE`` (and its type in
the step's class in ``steps.pxd``); a new parameter one more :class:`Param`
(and its type in ``Settings`` in ``steps.pxd``): the constructor, validation,
config checks, the rule fingerprint and the docs follow. The settings live
once per rule, in one :class:`Settings` object that every step of every
series of the rule refers to (``cfg``); a series holds only its learned
state. A step with a ``SWITCH`` (a parameter that is
0 while the step is off) is left out of the pipeline while it is off: it then
holds no state, costs nothing, and leaves the rule fingerprint as it was
before the step existed (:meth:`Pipeline.state_identity`).

This module is plain Python, and is compiled with Cython (pure-Python mode:
``steps.pxd`` beside it only adds C types) when a C compiler is there at
install time. ``RIVERGUARD_PURE_PYTHON=1`` runs this source uncompiled.
"""

try:
    import cython
except ImportError:  # no Cython: this module runs as the plain Python it is
    from riverguard import _compiled as cython  # type: ignore[no-redef]

from .base import Detector, flag_limit, settings_from
from .params import MAX_COUNT, Param

if cython.compiled:
    from cython.cimports.cpython.bytes import PyBytes_AS_STRING, PyBytes_FromStringAndSize
    from cython.cimports.cpython.mem import PyMem_Calloc, PyMem_Free
    from cython.cimports.libc.math import copysign, erfc, exp, fabs, floor, fmod, log, log1p, nextafterf
    from cython.cimports.libc.string import memcpy
    from cython.cimports.riverguard.detectors._pyfloat import floordiv, int_within, log10, sqrt, to_int
else:
    from array import array
    from math import copysign, erfc, exp, fabs, floor, fmod, log, log1p, log10, sqrt
    from operator import floordiv

    to_int = int_within = int

import sys
from math import nextafter
from struct import Struct
from struct import error as StructError

__all__ = [
    "Counter", "Extremes", "Likelihood", "Pipeline", "PredictionError", "Spike", "Step", "Stuck", "Suppression", "Surprise",
    "TimeOfDay", "Views", "read_record",
]  # fmt: skip

_SQRT1_2 = 0.7071067811865476  # math.sqrt(0.5)
_DAY = 86400.0
_NAN = float("nan")  # "no event time" (never saved in the state, where infinity stands for it)
_INF = float("inf")
_LITTLE = sys.byteorder == "little"  # buffers are saved little-endian
#: the largest 4-byte float: what a slot of the time-of-day step keeps is bounded by it (:func:`_f32`)
_FLT_MAX = 3.4028234663852886e38
_F32 = Struct("<f")  # (the plain build's rounding to a 4-byte float, and its neighbours: _f32_out)
_U32 = Struct("<I")
_MAX_COUNT = 1 << 62  # no real series counts this far: a larger count comes from a tampered file
_MAX_SIGNED = 1 << 31  # a SIGNED int in a step's STATE is an index or a side (a C int)


# which evidence a score came from (Pipeline._why, kept in Suppression._why, for the reason of a flag)
_WHY_SURPRISE = 1
_WHY_ERROR = 2
_WHY_HOUR = 3
_WHY_EXTREME = 4
_WHY_STUCK = 5
_WHY_SPIKE = 6
_WHY_SHIFT = 7
_WHY_SPREAD = 8
_WHY_BURST = 9
_WHY_PEAK = 10
_WHY_LONE = 11
#: the evidence of each of those codes, by name (for reports and benchmarks: the codes are C ints when compiled)
EVIDENCE = {
    _WHY_SURPRISE: "likelihood (surprise)", _WHY_ERROR: "likelihood (error)", _WHY_HOUR: "hour",
    _WHY_EXTREME: "extreme", _WHY_STUCK: "stuck", _WHY_SPIKE: "spike", _WHY_SHIFT: "shift",
    _WHY_SPREAD: "spread", _WHY_BURST: "burst", _WHY_PEAK: "peak", _WHY_LONE: "lone",
}  # fmt: skip
#: weight of the newest interval in the usual interval of a series (Pipeline.span)
_RHYTHM = 0.1
#: a deviation smaller than this fraction of the level is rounding, not a spike
_ROUNDING = 1e-9
#: the shift step: the most a distance counts in the typical distance (in typical distances), and the windows
#: the typical distance spans
_SHIFT_DEV_CLIP = 3.0
_SHIFT_MEMORY = 30.0
#: the shift and spread steps: the windows their long-run means span at least (with the default settings, at a
#: usual interval of 5.76 s and longer, the 1 / value_long samples they span are more: 25 windows of 20 intervals)
_SHIFT_LONG = 24.0
#: the stuck step: the mark of a run that was reported
_REPORTED = -2.0
#: the spike step's bursts of far-out values: a burst holds at least this many (a weighted count); a cluster of
#: far-out values ends once its count has fallen under this share of its largest, a reported one under the second
#: (the aftermath of a burst, far-out values for about 14 minutes after it, is part of it)
_FAR_COUNT = 3.0
_FAR_END = 0.25
_FAR_AFTER = 0.0625
#: ... and bursts are reported once the series has this many far_time behind it, its samples times its usual
#: interval (an hour by default: a young series has no clusters of its own yet to set the bar)
_FAR_YOUTH = 12.0
#: what a series' own statistics of days remember, in event time: the spike step's largest cluster of far-out
#: values and the shift step's floor under its typical distance (two days, the likelihood's long_time in sentinel)
_LONG_MEMORY = 2.0 * _DAY
#: the shift step: its typical distance never falls under this share of the same distance's mean over
#: _LONG_MEMORY of event time (a night or hours of a constant value do not shrink it to nothing)
_SHIFT_FLOOR = 0.25
#: the shift step: while the recent level is ``shift`` typical distances or more from a settled long-run mean,
#: the long-run mean learns at this share of its weight (an incident does not become the mean the next one is
#: judged against, nor its aftermath a distance that widens the typical one)
_SHIFT_HOLD = 0.1
#: ... and a shift that was reported may be reported again once the distance has fallen under this share of the
#: bar (a lasting change, held near the bar, does not cross it again and again)
_SHIFT_REARM = 0.75
#: the views step: days of daily peaks kept (their median is the usual peak), and the fewest that make it; the
#: samples before its rise scores (its means average them first); its time constants; a peak with a rise lasts
#: _PEAK_TIME of event time before it is reported, two are _PEAK_QUIET apart at least
_PEAK_DAYS = 14
_PEAK_FEW = 3
_VIEW_WARM = 30
_WEEK = 7.0 * _DAY
_PEAK_TIME = 3600.0
_PEAK_QUIET = _DAY
#: ... its lone values: the time constant of their level and deviation; the hours whose largest deviations are
#: kept (the current one and the 25 before it), those a lone value stands out from (the last _LONE_HOURS, and
#: from _LONE_DAY - 1 to _LONE_DAY + 1 hours back: the same hours a day before), by this factor; the usual
#: interval they are looked for at (a minute or finer, give or take half); the least time between two reports
_LONE_TIME = 3600.0
_LONE_RING = 26
_LONE_HOURS = 12
_LONE_DAY = 24
_LONE_STANDOUT = 1.5
_LONE_FINE = 90.0
_LONE_QUIET = 6.0 * 3600.0
#: the counter step: the fewest rises that make a counter (a series that has not fallen for counter_time)
_COUNTER_RISES = 3
_COUNTER_SAMPLES = 20.0
#: the new-extremes step: an excursion whose values were beyond the range for this many usual intervals or more
#: (its spells back inside included, not the calm that ended it) is an episode, not learned into the range once
#: reported and over
_EPISODE = 20.0
#: what an episode not learned owes (seconds of event time), and the debt beyond which the next one is learned
_EPISODE_COST = _LONG_MEMORY
_EPISODE_DEBT = 2.0 * _EPISODE_COST
#: ... and the recent level is back once inside the range before the episode by this fraction of it, each side
_EPISODE_INNER = 0.25
#: a wild value: one further than this many widths of the range before it beyond that range, once the series has
#: learned; it is learned as one this far beyond (:func:`_bound`), so that a lone one (a sensor's error code)
#: does not blind the steps for days; a lasting change is in the range after one value
_LONG_CLIP = 10.0
#: a value beyond this size is no measurement (a sensor's or a program's error: its square, a variance's step,
#: would overflow a double): flagged, never learned
_HUGE = 1e150
#: the stuck step: a series seldom repeats if fewer than this share of the steps from a new value start a run;
#: how many times the longest run before it a freeze at a reading inside the range must last to be forgiven in
#: a series that repeats more often; the longest run it counts (its lengths are C ints)
_STUCK_RARE = 0.01
_STUCK_INSIDE = 10.0
_MAX_RUN = (1 << 31) - 1
#: the stuck step's ``rests`` bits: the current run's value came back to the floor, to the ceiling of the range
#: seen; the longest ended run's had, and that floor, that ceiling has not moved since
_RUN_FLOOR = 1
_RUN_CEILING = 2
_RECORD_FLOOR = 4
_RECORD_CEILING = 8
#: ... and that the latest sample was a value beyond +_HUGE, beyond -_HUGE (no measurement, never learned: a
#: run of them is flagged once, at its first, as a run of repeats is; the next ordinary sample clears them)
_WILD_HIGH = 16
_WILD_LOW = 32


# -- buffers: C arrays when compiled, bytearray / array('d') when not (indexed alike) ---------------
# (zeroed_bytes, bytes_io and free_buffer serve context.py and sentinel.py too, cimported through steps.pxd)


def _calloc(n, size):
    """Compiled: ``n`` zeroed items of ``size`` bytes, exactly (an item more costs 16 B with the allocator's
    rounding, per buffer and series); at least one, so that 0 is not NULL."""
    p = PyMem_Calloc(n if n else 1, size)
    if not p:
        raise MemoryError()
    return p


def zeroed_bytes(n):
    """A zeroed buffer of ``n`` bytes (compiled: :func:`_calloc`)."""
    if cython.compiled:
        return cython.cast(cython.p_uchar, _calloc(n, 1))
    return bytearray(n)


def zeroed_doubles(n):
    """A zeroed buffer of ``n`` doubles (compiled: :func:`_calloc`)."""
    if cython.compiled:
        return cython.cast(cython.p_double, _calloc(n, 8))
    return array("d", bytes(8 * n))


def _cut(cuts, m, a, b):
    """Add ``a`` and ``b`` to the ``m`` cut points in ``cuts`` where finite; the new count."""
    if -_INF < a < _INF:
        cuts[m] = a
        m += 1
    if -_INF < b < _INF:
        cuts[m] = b
        m += 1
    return m


def free_buffer(p):
    if cython.compiled:
        PyMem_Free(p)


def bytes_io(buf, n, data):
    """Save or restore ``buf``, ``n`` bytes: with ``data`` None, ``buf`` as bytes; else copy ``data`` into
    ``buf`` if it is ``n`` bytes, and whether it was."""
    if data is None:
        if cython.compiled:
            return PyBytes_FromStringAndSize(cython.cast(cython.p_char, buf), n)
        return bytes(buf)
    if type(data) is not bytes or len(data) != n:
        return False
    if cython.compiled:
        memcpy(buf, PyBytes_AS_STRING(data), n)
    else:
        buf[:] = data
    return True


def doubles_io(buf, n, data):
    """Save or restore ``buf``, ``n`` doubles, as little-endian bytes: with ``data`` None, ``buf`` as bytes;
    else copy ``data`` into ``buf`` if it is ``n`` doubles, and whether it was."""
    if data is None:
        if cython.compiled:
            out = PyBytes_FromStringAndSize(cython.cast(cython.p_char, buf), 8 * n)
        else:
            out = buf.tobytes()
        return out if _LITTLE else _swapped(out)
    if type(data) is not bytes or len(data) != 8 * n:
        return False
    if not _LITTLE:
        data = _swapped(data)
    if cython.compiled:
        memcpy(buf, PyBytes_AS_STRING(data), 8 * n)
    else:
        buf[:] = array("d", data)
    return True


def zeroed_floats(n):
    """A zeroed buffer of ``n`` 4-byte floats (compiled: :func:`_calloc`)."""
    if cython.compiled:
        return cython.cast(cython.p_float, _calloc(n, 4))
    return array("f", bytes(4 * n))


def _clip(x, c):
    """``x`` within ``-c .. c`` (``c`` >= 0; NaN stays NaN)."""
    if x > c:
        return c
    if x < -c:
        return -c
    return x


def _f32(x):
    """``x`` bounded by the largest 4-byte float (NaN stays NaN): what a float buffer may keep without becoming
    infinite where a double would not (still a double: a store rounds it to the nearest float; :func:`_f32_out`
    rounds toward a side)."""
    return _clip(x, _FLT_MAX)


def _f32_out(x, side):
    """``x`` bounded by :func:`_f32` and rounded to a 4-byte float: to the nearest (``side`` 0), else to the one
    at or below it (``side`` < 0: a range's low) or at or above it (> 0: its high), so that a range kept as floats
    holds every value it saw; rounded to the nearest, a value seen again could fall beyond a slot's range and be
    flagged (a series far from 0, kept as values: ``day_detrend`` false)."""
    b = _f32(x)
    if cython.compiled:
        f = cython.cast(cython.float, b)
        if side > 0 and f < b:
            f = nextafterf(f, _FLT_MAX)
        elif side < 0 and f > b:
            f = nextafterf(f, -_FLT_MAX)
        return f
    f = _F32.unpack(_F32.pack(b))[0]
    if (side > 0 and f < b) or (side < 0 and f > b):
        if f == 0.0:
            return 1.401298464324817e-45 if side > 0 else -1.401298464324817e-45  # (the smallest float)
        bits = _U32.unpack(_F32.pack(f))[0]
        f = _F32.unpack(_U32.pack(bits + 1 if (f > 0.0) == (side > 0) else bits - 1))[0]
    return f


def floats_io(buf, n, data, side):
    """Save or restore ``buf``, ``n`` 4-byte floats, as the ``n`` doubles they are (:func:`doubles_io`), so a
    checkpoint reads the same either way; one written when they were doubles is read each value bounded and
    rounded to a float by :func:`_f32_out` toward ``side`` (a range's low, down; its high, up)."""
    wide = zeroed_doubles(n)
    try:
        if data is None:
            for i in range(n):
                wide[i] = buf[i]
            return doubles_io(wide, n, None)
        if not doubles_io(wide, n, data):
            return False
        for i in range(n):
            buf[i] = _f32_out(wide[i], side)
        return True
    finally:
        free_buffer(wide)


def _swapped(data):
    """8-byte words of ``data`` with their bytes reversed (big-endian machines only)."""
    return b"".join([data[i : i + 8][::-1] for i in range(0, len(data), 8)])


# scratch space of Pipeline.explain_into: the surprise of each level, and the band's cut points (11 pairs, three
# singles and the inner edges of at most 16 levels: 40); and its answer for Pipeline.explain (the expected value and the band's edges)
_LEVELS = zeroed_doubles(16)
_CUTS = zeroed_doubles(40)
_BAND = zeroed_doubles(3)

# -- what a threshold implies (explanations) ---------------------------------------------------------

def _limits_for(threshold, damp, scale, pmin, below):
    """``(eff, u, ud)`` for a rule's threshold: the smallest score flagged (as written, 6 digits), and the
    smallest ``(short average - mean) / sd`` whose likelihood score reaches ``eff``, as is (``u``) and
    damped (``ud``: a damped likelihood score is at most ``below``, :func:`_below`); inf: never, -inf: always.
    Worked out once per rule and threshold (:meth:`Settings.limits`).

    >>> eff, u, ud = _limits_for(0.5, 0.5, 0.1, 1e-12, 1.0)  # flagged from 0.4999995 (written as 0.5)
    >>> round(eff, 12), round(u, 3), round(ud, 3)
    (0.4999995, 4.265, 6.361)
    >>> _limits_for(0.5, 0.5, 0.1, 1e-12, _below(0.5))[2]  # damped, the likelihood stays under fire = 0.5
    inf
    """
    eff = flag_limit(_itself, threshold)
    ud = _likely_limit(eff, damp, scale, pmin) if eff <= below else _INF
    return eff, _likely_limit(eff, 1.0, scale, pmin), ud


def _quiet_cap(below, damp):
    """The largest score that, multiplied by ``damp``, is at most ``below`` (inf for ``damp`` 0).

    >>> c = _quiet_cap(_below(0.5), 0.9)
    >>> c * 0.9 <= _below(0.5) < nextafter(c, 1.0) * 0.9
    True
    """
    if not damp > 0.0:
        return _INF
    cap = below / damp
    while cap * damp > below:
        cap = nextafter(cap, 0.0)
    while nextafter(cap, _INF) * damp <= below:
        cap = nextafter(cap, _INF)
    return cap


def _below(fire):
    """The largest score not flagged at ``fire`` (as written, 6 digits): where a damped likelihood score stops
    (:func:`_quiet_cap`, :meth:`Pipeline.process`)."""
    return nextafter(flag_limit(_itself, fire), 0.0)


def _itself(score):
    """A score as a function of itself: ``flag_limit(_itself, threshold)`` is the smallest score flagged."""
    return score


def _deviation(cfg, s2, mu, gap):
    """The standard deviation :class:`Likelihood` measures its short average's distance in: the long-run one
    (variance ``s2``), at least ``min_sd``; for a series sampled ``gap`` seconds apart as a rule, finer than
    ``fine_time``, and surprised rarely, at least the deviation of ``min_sd ** 2 + mu * (poisson - mu) *
    log10(fine_time / gap)``.

    The short average holds about ``1 / poisson`` samples (9 at ``short`` 0.2), so ``mu / poisson`` raw scores
    at their cap on average, ``mu`` its long-run mean. Under one, the average is a sum of a few capped steps
    whose tail is far heavier than the Gaussian one the score puts on it: in a count that is 0 most seconds,
    two errors a few seconds apart are routine yet seven standard deviations out. ``mu * poisson`` is the
    short average's variance were its raw scores Poisson at that mean; times ``1 - mu / poisson``, the
    widening fades out as the count of them becomes large enough for the Gaussian tail to hold (mu at
    ``poisson`` and above: none); once per decade of sampling finer than ``fine_time``, the interval the
    likelihood's bar was set at (docs/detection.md, "Sparse counts at fine sampling").
    """
    sd = sqrt(s2)
    floor = cfg.min_sd
    ft = cfg.fine_time
    if gap < ft and gap > 0.0 and mu > 0.0 and mu < cfg.poisson:
        floor = sqrt(cfg.min_var + mu * (cfg.poisson - mu) * log10(ft / gap))
    return sd if sd >= floor else floor


#: settings that change how a sample is scored, not what a series' state holds: left out of a rule's
#: fingerprint (Pipeline.state_identity), so checkpoints carry over when one changes (an upgrade too)
_SCORING = frozenset(("fine_time",))


def _likely(u, f, scale, pmin):
    """:meth:`Likelihood.score` of a short average ``u`` standard deviations above its mean, times ``f``."""
    p = 0.5 * erfc(u * _SQRT1_2)
    return (-log10(p) * scale if p > pmin else 1.0) * f


def _likely_limit(eff, f, scale, pmin):
    if _likely(-40.0, f, scale, pmin) >= eff:
        return -_INF
    if _likely(40.0, f, scale, pmin) < eff:
        return _INF
    lo = -40.0
    hi = 40.0
    while True:
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            return hi
        if _likely(mid, f, scale, pmin) >= eff:
            hi = mid
        else:
            lo = mid


# -- steps ---------------------------------------------------------------------------------------------


class Settings:
    """The settings of one rule's detectors, resolved (``values``), each also under its own name, and what
    follows from them: one object per rule, which every step of every series of the rule refers to (``cfg``).

    A series holds only its learned state: the settings are the same for every
    series of a rule, and a copy in each step of each series cost about 250
    bytes a series (docs/performance.md). Never changed once made (a rule whose settings change makes
    new detectors, see ``Engine.reconfigure``). A detector whose surprise step
    has settings of its own subclasses it (``SentinelSettings``), and names in
    ``LEVELS`` the one that counts the surprise step's levels (``nlevels``,
    which the pipeline reads through this class, per sample).
    """

    LEVELS = None

    def __init__(self, values):
        self.values = values
        for name, value in values.items():
            setattr(self, name, value)
        self.slots = self.day_slots * (2 if self.weekend_slots else 1)  # TimeOfDay's slots (weekends apart)
        self.width = _DAY / self.day_slots if self.day_slots else 0.0  # and their length in seconds
        self.scale = -1.0 / log10(self.pmin)  # -log10(p) * scale: the score of tail probability p
        self.nlevels = values[self.LEVELS] if self.LEVELS else 0  # the surprise step's levels
        # what the steps work out of their settings per sample, worked out once here
        self.fading_keep = 1.0 - self.fading  # PredictionError: the weight the older values keep
        self.day_fading_keep = 1.0 - self.day_fading  # TimeOfDay: the same in a slot
        self.short_keep = 1.0 - self.short  # Likelihood: the weight the earlier raw scores keep in the average
        # Likelihood's _deviation: the floor as a variance; the short average's variance per unit of a Poisson rate
        # of raw scores, which is also 1 / the samples it holds
        self.min_var = self.min_sd * self.min_sd
        self.poisson = self.short / (2.0 - self.short)
        self.extreme_sd_sq = self.extreme_sd * self.extreme_sd  # Extremes: far, in long-run variances
        self.spike_forget_keep = 1.0 - self.spike_forget  # Spike: what the largest deviation keeps per sample
        self.shift_forget_keep = 1.0 - self.shift_forget  # Shift, Spread: what the largest distance keeps per sample
        self.learn_quarter = self.learn // 4  # spikes count, and learn_time may end the learning, from here
        # in a suppression: the largest score not flagged at fire, where a damped likelihood score stops, and the
        # largest likelihood score that, damped, stays there (the pipeline stops it at that before comparing steps)
        self.fire_below = _below(self.fire)
        self.quiet_cap = _quiet_cap(self.fire_below, self.damp)
        # what explain_into needs of a threshold (limits): the last threshold explained (NaN: none yet), the
        # smallest score flagged at it, and the smallest standardised short average the likelihood flags, without
        # and with the damping (_limits_for); and the smallest one whose likelihood score, undamped, outscores a
        # time-of-day extreme (day_score; the same at any threshold)
        # the views step's decays over a day, a week and an hour for an interval of vdt seconds (NaN: none yet;
        # Views.observe works them out again for another interval: the series of a rule share theirs)
        self.vdt = _NAN
        self.vday = 0.0
        self.vweek = 0.0
        self.vhour = 0.0
        self.xthr = _NAN
        self.xeff = _INF
        self.xu = _INF
        self.xud = _INF
        self.xday = _INF
        self.xdayq = _INF

    def limits(self, threshold):
        """Set ``xthr`` to ``threshold`` and ``xeff``, ``xu`` and ``xud`` to its limits (:func:`_limits_for`), and
        ``xday`` (the same limit for ``day_score``, undamped; ``xdayq`` in a suppression, where the likelihood's
        score stops at ``quiet_cap``).

        :meth:`Pipeline.explain_into` calls it when ``threshold`` is not ``xthr``: once per rule, whose series
        all explain at the rule's threshold."""
        self.xeff, self.xu, self.xud = _limits_for(threshold, self.damp, self.scale, self.pmin, self.fire_below)
        self.xday = _likely_limit(self.day_score, 1.0, self.scale, self.pmin)
        # in a suppression the likelihood's score stops at quiet_cap: above it, it hides no time-of-day extreme
        self.xdayq = self.xday if self.day_score <= self.quiet_cap else _INF
        self.xthr = threshold
        return 0

    def __repr__(self):
        return f"{type(self).__name__}({self.values!r})"


class Step:
    """One step: parameters (``PARAMS``) and learned state (``STATE``, ``BUFFERS``).

    The settings are the rule's, shared (``cfg``, a :class:`Settings`); a
    step reads one back under its own name (``det.spikes.spike``). A scalar
    in ``STATE`` lives in the attribute ``"_" + name``; its type is the type
    it has in a fresh step (float, int >= 0, or bool). ``BUFFERS`` names the
    step's own arrays, saved as bytes through :meth:`_dump_buffer` and
    :meth:`_load_buffer`, which a step with buffers provides as one :meth:`_buffer`. The detector saves every step's state in one flat
    record whose layout is derived from these names (:func:`_describe`).
    """

    PARAMS = ()
    STATE = ()
    SIGNED = ()  # names in STATE whose int may also be -1 ("none")
    SMALL = ()  # names in STATE whose int is a C int (below 2 ** 31)
    BUFFERS = ()  # names of the step's own arrays in its state (bytes)
    SWITCH = None  # a parameter that is 0 while the step is off: the pipeline then leaves the step out
    USES = ()  # the names of other steps' settings it also reads (kept in the fingerprint while it is on)

    def __getattr__(self, name):
        """A setting of this step, read under its own name (``step.spike``) from the rule's settings."""
        if name in _names(type(self)):
            return getattr(self.cfg, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _dump_buffer(self, name):
        """The buffer ``name`` (one of ``BUFFERS``) as bytes."""
        return self._buffer(name, None)

    def _load_buffer(self, name, data):
        """Restore what :meth:`_dump_buffer` gave for ``name``; False if ``data`` does not fit."""
        if data is None:
            return False
        return self._buffer(name, data)

    def _buffer(self, name, data):
        """The buffer ``name`` (one of ``BUFFERS``) as bytes (``data`` None), or ``data`` restored into it and
        whether it fit: :func:`bytes_io` or :func:`doubles_io` of the array that ``name`` is, and its size."""
        raise KeyError(name)

    def _fits(self):
        """Whether the restored scalars fit the settings (a tampered file may hold any number)."""
        return True


_NAMES = {}


def _names(cls):
    """The names of a step class's settings (a set, worked out once per class)."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = frozenset(p.name for p in cls.PARAMS)
    return names


# -- the saved state: one flat record -----------------------------------------------------------------

#: The version of the record's form; it is in ``STATE_LAYOUT`` (and so in the rule fingerprint).
_RECORD = 2
# the kinds of scalar in a record
_FLOAT = 0
_INT = 1
_BOOL = 2
_RECORDS = {}


def _describe(steps):
    """How the state of a pipeline with ``steps`` (``(attribute, step)`` pairs, steps built; None for a
    step that is off, which holds no state) is saved.

    Returns ``(packer, scalars, buffers, layout)``: ``packer`` a ``Struct`` of the record's scalars,
    ``scalars`` ``(step attribute, ((attribute, kind, lowest, highest + 1), ...))`` per step,
    ``buffers`` ``(step attribute, buffer name)`` per buffer, ``kind`` being ``_FLOAT``, ``_INT`` or
    ``_BOOL`` (the bounds are for the integers that a saved int or bool may hold). The record
    (:meth:`Pipeline.dump_state`) is ``[scalars, *buffers]``: ``scalars`` packs ``n``, ``t0``, ``t1``, ``gap`` and
    every step's ``STATE`` in order, 8 bytes each, little-endian (a float as a double, an int as
    int64, a bool as 0 or 1); then each step's ``BUFFERS`` as bytes. ``layout`` names every part
    with its type (buffers with their size in bytes), all derived from the steps' declarations.
    """
    steps = [(name, step) for name, step in steps if step is not None]
    codes = "<qddd"
    names = [f"record {_RECORD}:", "n:q", "t0:d", "t1:d", "gap:d"]
    scalars = []
    buffers = []
    for name, step in steps:
        cls = type(step)
        fresh = cls(step.cfg)  # (the types a fresh step has: a learned value may be an int where a float is kept,
        mine = []  # such as a duration from integer event times, uncompiled)
        for s in cls.STATE:
            attr = sys.intern("_" + s)
            kind = type(getattr(fresh, attr))
            if kind is float:
                mine.append((attr, _FLOAT, 0, 0))
            elif kind is bool:
                mine.append((attr, _BOOL, 0, 2))
            elif kind is not int:
                raise TypeError(f"{cls.__name__}.{attr} is a {kind.__name__}: a scalar in STATE must be a float, int or bool")
            elif s in cls.SIGNED:  # a small number (an index, a side), or -1
                mine.append((attr, _INT, -1, _MAX_SIGNED))
            elif s in cls.SMALL:  # a count kept in a C int
                mine.append((attr, _INT, 0, _MAX_SIGNED))
            else:
                mine.append((attr, _INT, 0, _MAX_COUNT))
            codes += "d" if kind is float else "q"
            names.append(f"{name}.{s}:{'d' if kind is float else ('?' if kind is bool else 'q')}")
        scalars.append((sys.intern(name), tuple(mine)))
        for b in cls.BUFFERS:
            buffers.append((sys.intern(name), sys.intern(b)))
    sizes = [f"{name}.{b}:{len(step._dump_buffer(b))}" for name, step in steps for b in type(step).BUFFERS]
    return Struct(codes), tuple(scalars), tuple(buffers), " ".join(names + ["|"] + sizes)


def _record(det):
    """:func:`_describe` of the detector (worked out once per class and set of steps that are on)."""
    cls = type(det)
    known = _RECORDS.get(cls)
    if known is None:
        known = _RECORDS[cls] = ({}, tuple(sys.intern(name) for name, step in cls.STEPS if step.SWITCH is not None))
    records, switched = known
    on = tuple([getattr(det, name) is not None for name in switched])
    rec = records.get(on)
    if rec is None:
        rec = records[on] = _describe([(name, getattr(det, name)) for name, _ in cls.STEPS])
    return rec


def _duration(v):
    """Whether ``v`` is a duration a restored state may hold: a finite number >= 0, or NaN (unknown)."""
    return v != v or 0.0 <= v < _INF


def _long_weight(cfg, n):
    """The weight of the newest of ``n`` >= 1 values in a long-run mean: ``value_long``, or the running mean's
    ``1 / n`` while that is larger."""
    return _running(cfg.value_long, n)


def _running(lam, n):
    """The weight of the newest of ``n`` >= 1 values in a mean weighted ``lam``: ``lam``, or the running mean's
    ``1 / n`` while that is larger (the first values are averaged)."""
    return lam if n * lam > 1.0 else 1.0 / n


def _paid(owe, span):
    """A debt of episodes not learned (``owe`` seconds of event time: the new-extremes step's, the stuck
    step's) after a sample that stands for ``span`` seconds has paid it (NaN, 0: a sample without event
    time, or a late one, pays nothing)."""
    if span > 0.0 and owe > 0.0:
        owe -= span
        return owe if owe > 0.0 else 0.0
    return owe


def _forgives(owe):
    """Whether one more reported episode (the new-extremes step's, a freeze of the stuck step, a cluster of the
    spike step) is forgiven, not learned, with ``owe`` seconds of event time owed: while less than
    ``_EPISODE_DEBT`` is; a forgiven one owes ``_EPISODE_COST`` more (:func:`_paid` pays it off)."""
    return owe < _EPISODE_DEBT


def _on_side(d, side):
    """Whether a distance ``d`` from a long-run mean is on a side that counts: ``side`` +1 above only, -1 below
    only, 0 either (:meth:`Level.judge`)."""
    return side == 0 or (d > 0.0) == (side > 0)


def _lone(need, slack):
    """How long an excursion must have lasted to be a new extreme, for ``extreme_time`` ``need`` and half the
    usual interval ``slack``: two usual intervals, at least ``need`` and at most twice it (0 with ``need``
    0). So a lone value beyond the range is no new extreme at one sample a minute, as it is none at 10 s
    (:meth:`Extremes.observe`); one that stands for twice ``need`` or more (5 minutes, an hour) still is."""
    two = 4.0 * slack
    if two < need:
        return need
    if two > need + need:
        return need + need
    return two


def _owing(owe):
    """Whether ``owe`` is a debt of episodes that a run can have written: one more is forgiven only while less
    than ``_EPISODE_DEBT`` is owed (:func:`_forgives`), and each owes ``_EPISODE_COST``."""
    return 0.0 <= owe < _EPISODE_DEBT + _EPISODE_COST


def _lasts(run, need, slack):
    """Whether something that has lasted ``run`` seconds of event time (NaN: unknown, as good as lasting) has
    lasted ``need`` (0: anything has), give or take ``slack`` (for an excursion, half the usual interval: a
    sample a minute apart lasts a minute though the clock put it 59.9 s after the one before)."""
    return need == 0.0 or not run < need - slack


def _scale(s, level):
    """A step's scale ``s``, at least ``1e-9`` of the size of ``level`` (a series that moves by a rounding error
    has no spikes or shifts at that scale)."""
    floor = _ROUNDING * abs(level)
    return s if s > floor else floor


def _window(cfg, gap):
    """The event time (seconds) that the level shift step's recent level spans (and the spread and counter steps'
    recent means), for a series whose usual interval is ``gap``: ``shift_time``, or ``shift_samples`` intervals."""
    w = cfg.shift_samples * gap
    return w if w > cfg.shift_time else cfg.shift_time


def _share(part, whole, n):
    """The weight of the newest of ``n`` >= 1 samples in an exponentially weighted mean: ``part / whole`` (the
    event time it stands for, over the time the mean spans), at least ``1 / n`` (the first samples are averaged)
    and at most 1 (a first interval longer than the whole span, before the usual interval is known, replaces
    the mean rather than overshooting it)."""
    w = part / whole
    if w * n >= 1.0:
        return w if w < 1.0 else 1.0
    return 1.0 / n


def _hides(score, on, through, hour, day_score):
    """Whether a step's ``score``, not flagged (``on`` False: damped in a suppression), still hides a time-of-day
    extreme that would get through the suppression (``through``; ``hour``: the slot's range bounds some value):
    it outscores it, so the pipeline reports it instead, damped (:meth:`Pipeline.explain_into`)."""
    return not on and through and score > day_score and hour


def _bound(x, lo, hi):
    """``x``, or, if it is wild (further than ``_LONG_CLIP`` widths of the range ``lo .. hi`` before it beyond
    that range: any value beyond a range of width 0), the value that far beyond. The one definition of a wild
    value: what the pipeline learns it as (:meth:`Pipeline.process`), and a lone one's excursion is an
    episode (:meth:`Extremes.observe`)."""
    w = _LONG_CLIP * (hi - lo)
    if x > hi + w:
        return hi + w
    if x < lo - w:
        return lo - w
    return x


def _reach(k, record, top):
    """The smallest deviation (in a step's scale) that counts now: ``k``, or ``record`` of the largest seen."""
    r = record * top
    return r if r > k else k


def _level(x, lo, span, levels):
    """The level of ``x`` among ``levels`` equal parts of the range ``lo .. lo + span`` seen before it.

    ``int((x - lo) / span * levels)`` clamped to ``0 .. levels - 1``; 0 when the
    range is empty. Clamped before the conversion, so a value however far
    beyond a tiny range gets the last level.
    """
    if span > 0.0:
        q = (x - lo) / span * levels
        if q >= levels:
            return levels - 1
        if q >= 1.0:
            return int_within(q)  # (1 <= q < levels)
    return 0


class Surprise(Step):
    """Step 1a, the detector's own: how unexpected a value is given the recent ones (a raw score <= 1).

    It sees the value as its level: :func:`_level` of the range seen before it,
    in ``cfg.nlevels`` levels (the setting its :class:`Settings` names in ``LEVELS``).
    """

    def raw(self, b, n):
        """Learn a value of level ``b`` and return its surprise; ``n`` >= 1 samples before it."""
        raise NotImplementedError

    def peek(self, out):
        """The surprise :meth:`raw` would give a value of each level, into ``out[level]``; learns nothing."""
        raise NotImplementedError


@cython.no_gc
@cython.cclass
class PredictionError(Step):
    """Step 1b: distance from an exponentially weighted mean, in its standard deviations."""

    PARAMS = (
        Param("fading", 0.05, "Weight of the newest sample in the mean and variance of the values.",
              low=0.0, high=1.0, low_open=True, high_open=True),
        Param("z_scale", 4.0, "Standard deviations of prediction error that make a raw score of 1.", low=0.0, low_open=True),
    )  # fmt: skip
    STATE = ("mean", "var")

    def __init__(self, cfg):
        self.cfg = cfg
        self._mean = 0.0
        self._var = 0.0

    def score(self, x):
        """The raw score of ``x`` (capped at 1); :meth:`learn` follows."""
        d = x - self._mean
        var = self._var
        if var > 0.0:
            z = abs(d) / (sqrt(var) * self.cfg.z_scale)
            if z > 1.0:
                z = 1.0
        else:
            z = 0.0 if d == 0.0 else 1.0
        return z

    def learn(self, x):
        d = x - self._mean
        var = self._var
        a = self.cfg.fading
        self._mean += a * d
        self._var = self.cfg.fading_keep * (var + a * d * d)


@cython.no_gc
@cython.cclass
class TimeOfDay(Step):
    """Steps 1b and 3 for the hour: the mean, variance and range of each time-of-day slot.

    :meth:`observe` returns the prediction error against the slot's mean (if
    larger than ``z``) and sets ``hit`` when the value is beyond the slot's range.
    """

    PARAMS = (
        Param("day_slots", 24, "Time-of-day slots per day (0 turns the time-of-day step off).", low=0, high=96),
        Param("weekend_slots", True, "Give Saturdays and Sundays (UTC) slots of their own."),
        Param("day_margin", 0.1, "Fraction of the range seen so far beyond a slot's range that is flagged.", low=0.0),
        Param("day_visits", 7, "Passes through a slot before it is checked.", low=1, high=255),
        Param("day_score", 0.6, "The score of a time-of-day extreme.", low=0.0, high=1.0),
        Param("day_fading", 0.02, "Weight of the newest sample in each slot's mean and variance (0: off).",
              low=0.0, high=1.0, high_open=True),
        Param("day_detrend", True, "Slots keep the value's deviation from the long-run mean, not the value."),
        Param("day_width", 0.0, "A slot is checked only once the values seen in it spread over more than this "
              "fraction of the range seen so far (0: off, every slot is checked).", low=0.0, high=1.0),
    )  # fmt: skip
    STATE = ("slot",)
    SIGNED = ("slot",)
    BUFFERS = ("lo", "hi", "visits", "stat")

    def __init__(self, cfg):
        self.cfg = cfg
        self._slot = -1  # the previous sample's slot (-1: none yet)
        self.hit = False
        self.ready = False  # the last value's slot could say whether it was far from the slot's mean (Views)
        self.far_mean = False  # the last value was z_scale of its slot's deviations from the slot's mean (Views)
        # per slot: the range seen (_lo: every slot's low, then every slot's high), the passes through it
        # (<= 255), and the mean and variance (interleaved); the range, mean and variance as 4-byte floats, each
        # bounded by _f32 when stored (768 B a series less than doubles with 48 slots, and the same flags on both
        # corpora: docs/performance.md)
        slots = cfg.slots
        if cython.compiled:  # one block (lo, hi, stat, visits): one allocation's overhead per series, not four
            n = cython.cast(cython.Py_ssize_t, slots)
            lo = zeroed_floats(4 * n + (n + 3) // 4)
            self._lo = lo
            self._stat = lo + 2 * n
            self._visits = cython.cast(cython.p_uchar, lo + 4 * n)
        else:
            self._lo = zeroed_floats(2 * slots)
            self._visits = zeroed_bytes(slots)
            self._stat = zeroed_floats(2 * slots)

    def __dealloc__(self):
        free_buffer(self._lo)  # (the whole block)

    def slot_at(self, t):
        """The slot of event time ``t`` (seconds, or None), or -1 when there is none (no time, or the step is off)."""
        width = self.cfg.width
        if not width or t is None:
            return -1
        tt = t
        if not -1e15 < tt < 1e15:
            return -1
        day = floordiv(tt, _DAY)
        slot = to_int(floordiv(tt - day * _DAY, width))
        per_day = self.cfg.day_slots
        if slot >= per_day:  # rounding, with a width that does not divide the day
            slot = per_day - 1
        if self.cfg.weekend_slots and (to_int(day) + 3) % 7 >= 5:  # 1970-01-01 was a Thursday
            slot += per_day
        if not 0 <= slot < self.cfg.slots:
            raise IndexError("time-of-day slot out of range")
        return slot

    def _known(self, vis, dlo, dhi, span):
        """Whether a slot visited ``vis`` times whose values spread over ``dlo``..``dhi`` is checked
        (``span``: the range seen so far): visited ``day_visits`` times, and its values spread over
        more than ``day_width`` of the range (width 0: whatever their spread)."""
        return vis >= self.cfg.day_visits and (not self.cfg.day_width or dhi - dlo > self.cfg.day_width * span)

    def settled(self, t, gap):
        """The slot of event time ``t`` if its mean and variance say what is far for the hour, else -1: the series
        has passed through it on an earlier day, and (``gap`` the usual interval) the slot has seen as many samples
        as its mean and variance remember (``1 / day_fading``: two passes at one sample a minute, five at 5
        minutes, 50 hourly). Used for new extremes (:meth:`far`), not for the slot's own checks."""
        slot = self.slot_at(t)
        if slot < 0 or not self.cfg.day_fading:
            return -1
        return slot if self._remembers(self._visits[slot], gap) else -1

    def _remembers(self, vis, gap):
        """Whether a slot passed through ``vis`` times has seen as many samples as its mean and variance remember
        (``gap`` the usual interval; with ``day_fading``): :meth:`settled`'s rule."""
        return vis >= 2 and vis * self.cfg.width * self.cfg.day_fading >= gap

    def says_far(self, vis, dvar, gap):
        """Whether a slot passed through ``vis`` times, of variance ``dvar``, says whether a value is far from its
        mean (:attr:`ready`, the views step's third view): a variance, and ``day_visits`` passes or
        :meth:`settled`'s rule (with ``day_fading``)."""
        return dvar > 0.0 and (vis >= self.cfg.day_visits or self._remembers(vis, gap))

    def reach(self, slot, span):
        """How far from the mean of ``slot`` (:meth:`settled`) a value is far for the hour: ``extreme_sd`` of the
        slot's standard deviations, and ``day_margin`` of the range seen so far (``span``), so that a series
        whose hours vary little, such as a slow drift, is not far for every wiggle."""
        h = self.cfg.extreme_sd * sqrt(self._stat[2 * slot + 1])
        m = self.cfg.day_margin * span
        return h if h > m else m

    def far(self, x, lmean, t, gap, span):
        """Whether ``x`` (event time ``t``; ``lmean`` the long-run mean, ``gap`` the usual interval and ``span``
        the range seen so far, before ``x``) is far from the mean of its slot, one that says (:meth:`settled`):
        more than :meth:`reach` from it."""
        slot = self.settled(t, gap)
        if slot < 0:
            return False
        v = x - lmean if self.cfg.day_detrend else x
        return fabs(v - self._stat[2 * slot]) > self.reach(slot, span)

    def observe(self, x, lmean, t, span, var, z_scale, z, gap):
        """Learn ``x`` in its slot (event time ``t``); return the larger of ``z`` and the error against the slot.

        ``lmean`` is the long-run mean, ``span`` the range before ``x``, ``var``
        the variance of the values (PredictionError's, before ``x``), ``gap`` the
        usual interval. Sets :attr:`hit` (beyond the slot's range), and, where
        the slot has been visited ``day_visits`` times or is :meth:`settled`
        (``ready``), :attr:`far_mean`: ``x`` is ``z_scale`` of the slot's
        standard deviations from its mean (the views step's third view).
        """
        self.hit = False
        self.far_mean = False
        self.ready = False
        slot = self.slot_at(t)
        if slot < 0:
            return z
        # the slots keep the value's deviation from the long-run mean (day_detrend), so a series
        # that grows or sinks over weeks does not set a new record for the hour every day
        v = x - lmean if self.cfg.day_detrend else x
        vis = self._visits[slot]  # passes through the slot before this sample
        # the prediction error against the slot's EW mean, in the slot's EW standard deviations
        if self.cfg.day_fading:
            i = 2 * slot
            if vis:
                ds = v - self._stat[i]
                dvar = self._stat[i + 1]
                if self.says_far(vis, dvar, gap):
                    self.ready = True
                    self.far_mean = abs(ds) >= z_scale * sqrt(dvar)
                if vis >= self.cfg.day_visits and dvar > 0.0:
                    zs = abs(ds) / (sqrt(dvar) * z_scale)
                    if zs > z:
                        z = zs if zs < 1.0 else 1.0
                a = self.cfg.day_fading
                self._stat[i] = _f32(self._stat[i] + a * ds)
                self._stat[i + 1] = _f32(self.cfg.day_fading_keep * (dvar + a * ds * ds))
            else:  # a slot starts at the value, with the variance of the recent values
                self._stat[i] = _f32(v)
                self._stat[i + 1] = _f32(var)
        # new extremes for the time of day: beyond the range seen in this slot on earlier days, once
        # the slot has been visited day_visits times and its values spread over day_width of the
        # range (a slot that has only seen one value, such as the zeros of a sparse count, says
        # nothing about what is unusual at that hour)
        if vis:
            dlo = self._lo[slot]
            dhi = self._lo[self.cfg.slots + slot]
            known = self._known(vis, dlo, dhi, span)
            if v < dlo:
                self.hit = known and dlo - v > self.cfg.day_margin * span
                self._lo[slot] = _f32_out(v, -1)
            elif v > dhi:
                self.hit = known and v - dhi > self.cfg.day_margin * span
                self._lo[self.cfg.slots + slot] = _f32_out(v, 1)
        else:  # (the low rounded down, the high up: the range holds v)
            self._lo[slot] = _f32_out(v, -1)
            self._lo[self.cfg.slots + slot] = _f32_out(v, 1)
        if slot != self._slot:
            self._slot = slot
            if vis < 255:
                self._visits[slot] = vis + 1
        return z

    def _buffer(self, name, data):
        slots = self.cfg.slots
        if name == "visits":
            return bytes_io(self._visits, slots, data)
        if name == "stat":
            return floats_io(self._stat, 2 * slots, data, 0)
        at = 0 if name == "lo" else slots  # the highs follow the lows
        side = -1 if name == "lo" else 1
        if cython.compiled:
            return floats_io(self._lo + at, slots, data, side)
        return floats_io(memoryview(self._lo)[at : at + slots], slots, data, side)

    def _fits(self):
        return self._slot < self.cfg.slots


@cython.no_gc
@cython.cclass
class Likelihood(Step):
    """Step 2: the raw score's short average against its long-run mean and variance, on a log scale.

    The long-run mean and variance weigh each sample by ``long`` (about the
    last ``1 / long`` samples) and, with ``long_time``, by at most its
    interval over ``long_time``: they remember at least ``long_time``
    seconds of event time, so at fine sampling (``1 / long`` samples are
    under 3 hours at 10 seconds) a daily rhythm is not taken for a change
    every few hours. Coarser sampling, where ``1 / long`` samples span more
    than ``long_time``, is not affected.
    """

    PARAMS = (
        Param("short", 0.2, "Weight of the newest raw score in its short average.", low=0.0, high=1.0, low_open=True),
        Param("long", 0.001, "Weight of the newest short average in its long-run mean and variance.",
              low=0.0, high=1.0, low_open=True, high_open=True),
        Param("min_sd", 0.05, "Floor under the long-run standard deviation of the short average.", low=0.0, low_open=True),
        Param("pmin", 1e-13, "Smallest tail probability told apart; it scores 1.0.",
              low=0.0, high=0.5, low_open=True, high_open=True),
        Param("long_time", 0.0, "Seconds of event time the long-run mean and variance of the short average "
              "remember at least: a sample weighs at most its interval over long_time (0: samples only).", low=0.0),
        Param("fine_time", 0.0, "Sampling interval in seconds the floor under the standard deviation is set for: "
              "per decade of finer sampling, a series whose short average holds fewer than one capped raw score "
              "on average gets a wider floor (its tail is heavier than the Gaussian one; 0: min_sd alone).",
              low=0.0),
    )  # fmt: skip
    STATE = ("avg", "mu", "s2")

    def __init__(self, cfg):
        self.cfg = cfg
        self.built = False  # (the last sample's, for the reason of a flag; not state)
        self._avg = 0.0
        self._mu = 0.0
        self._s2 = 0.0

    def score(self, raw, n, dt, gap):
        """Learn ``raw`` (the ``n``-th, n >= 1, ``dt`` seconds after the previous one, NaN: unknown; ``gap``
        seconds apart as a rule) and return the likelihood score of its short average."""
        short = self.cfg.short
        prev = self._avg
        avg = prev + short * (raw - prev)
        self._avg = avg
        mu = self._mu
        # most of the evidence came from earlier samples: a run of them, not this one alone
        self.built = self.cfg.short_keep * (prev - mu) >= short * (raw - mu)
        s2 = self._s2
        sd = _deviation(self.cfg, s2, mu, gap)
        dm = avg - mu
        p = 0.5 * erfc(dm / sd * _SQRT1_2)
        if n * self.cfg.long > 1.0:
            lam = self.cfg.long
            if self.cfg.long_time:
                w = dt / self.cfg.long_time  # (NaN without event times: no bound)
                if w < lam:
                    lam = w if w > 0.0 else 0.0  # (a repeated or earlier timestamp: not learned)
        else:
            lam = 1.0 / n
        self._mu = mu + lam * dm
        self._s2 = (1.0 - lam) * (s2 + lam * dm * dm)
        return -log10(p) * self.cfg.scale if p > self.cfg.pmin else 1.0


@cython.no_gc
@cython.cclass
class Extremes(Step):
    """Step 3: the range seen so far, the long-run mean and variance, and new extremes beyond them."""

    PARAMS = (
        Param("margin", 0.05, "Fraction of the range seen so far beyond which a new extreme is flagged.", low=0.0),
        Param("extreme", 1.0, "The score of a new extreme.", low=0.0, high=1.0),
        Param("extreme_sd", 3.0, "Long-run standard deviations from the long-run mean a new extreme needs (or as "
              "many of its time-of-day slot's from the slot's mean, once the slot has seen as many samples as it "
              "remembers, on two days or more).", low=0.0),
        Param("value_long", 0.002, "Weight of the newest value in the long-run mean and variance of the values.",
              low=0.0, high=1.0, low_open=True, high_open=True),
        Param("extreme_time", 0.0, "Seconds of event time an excursion beyond the range must have lasted for a "
              "new extreme, and two usual intervals (but at most twice extreme_time), each sample counting its "
              "interval, at most twice the usual one; it ends once the values have been back inside as long (0: "
              "one sample).",
              low=0.0),
        Param("extreme_once", False, "A new extreme that continues a climb already reported (no value back inside "
              "the range since) is not reported again while the suppression lasts."),
    )  # fmt: skip
    # the range seen so far (lo, hi); the range as it was when the current excursion beyond it began
    # (rlo, rhi); the long-run mean and variance of the values (lmean, lvar); whether the values
    # have stayed beyond the range, on the side of the last new extreme, since it (climb: +1 above,
    # -1 below, 0 not); the event time the current excursion beyond the range has lasted (run; NaN:
    # unknown) and the time the values have been back inside during it (calm; -1: no excursion); the range
    # before the current excursion, once it is reported (olo, ohi; inf, -inf: not reported); the event time
    # the episodes not learned still owe (owe: see observe)
    STATE = ("lo", "hi", "rlo", "rhi", "lmean", "lvar", "climb", "run", "calm", "olo", "ohi", "owe")
    SIGNED = ("climb",)

    def __init__(self, cfg):
        self.cfg = cfg
        self._lo = 0.0
        self._hi = 0.0
        self._rlo = 0.0
        self._rhi = 0.0
        self._lmean = 0.0
        self._lvar = 0.0
        self._climb = 0
        self._run = 0.0
        self._calm = -1.0
        self._olo = _INF
        self._ohi = -_INF
        self._owe = 0.0
        self.again = False
        self.held = 0

    def first(self, x):
        self._lo = self._hi = self._rlo = self._rhi = self._lmean = x

    def observe(self, x, n, span, slack, counter, level, learnt, day, t):
        """Learn ``x`` (as ``learnt`` in the long-run mean and variance: the pipeline's bound on a wild value,
        :func:`_bound`; n >= 1 samples before it, ``span`` the event time it stands for and ``slack`` half the
        usual interval: see :meth:`Pipeline.span`; ``counter``: the series is a cumulative counter,
        :class:`Counter`; ``level``: the recent level before it; ``day`` the time-of-day step and ``t`` the event
        time); True if it is a new extreme (else ``held`` is the side
        of a new extreme that its excursion has not lasted long enough for, 0 if none: :meth:`report`
        reports it).

        A new extreme is beyond the range as it was when the current excursion
        began (a slow slide to a new low is measured from where it left the
        range) by more than ``margin`` of that range, and far from the
        long-run mean (``extreme_sd`` long-run standard deviations) or from
        the mean of its hour (:meth:`TimeOfDay.far`: a rate that drops to
        zero where its daily swing spreads the long-run variance), once the excursion has lasted ``extreme_time`` and two
        usual intervals, up to twice ``extreme_time`` (:func:`_lone`: at one
        sample a minute a lone value is learned as at 10 s; one that stands
        for two minutes or more is enough); the
        next excursion is measured from the range as it is now. An excursion
        begins with a value beyond the range (either side; a swing from one
        side to the other goes on with it) and ends once the values have
        been back inside as long (at once with 0, or with any sample of a
        series sampled at least twice that slowly); until then the
        values it set are measured from the range before it, so a lone
        record of a finely sampled series is learned, not reported (the
        pipeline reports it still if it is also a spike). An excursion that was
        reported, had values beyond the range for ``_EPISODE`` usual intervals
        or more, and ended with the recent level (``level``) back in the middle
        of the range as it was before it (``_EPISODE_INNER`` of that range in
        from either end; a level that stays away is learned), was an episode,
        not the range: the range is that again, so that a like episode later
        is reported again (the sensor that misbehaves every hour or so at 1 s).
        So is one reported although too short to be a new extreme (a lone
        value that is also a spike, :meth:`Pipeline.process`), and a lone
        wild value (:func:`_bound`) at any sampling: a sensor's lone error
        value (``9999``, ``1e12``) leaves the range as it was, and moves the
        long-run mean and variance as ``learnt`` (``_LONG_CLIP`` widths of the
        range beyond it) would, so that it does not hide what comes after.
        A range of width 0 (a series that had been one constant) has no middle
        that the level comes back to but by a rounding error: its episode is
        back when the value that ends it is that constant, and then the
        long-run mean and variance are the constant's again (and the spike
        step's, :meth:`Pipeline.process`), as before the episode.
        While the level is back in the middle, a value beyond that range keeps
        the episode going (where an excursion outlasts its first value back
        inside: ``extreme_time`` more than half the usual interval), so that
        one incident is one episode. Each episode not learned owes
        ``_EPISODE_COST`` (two days), paid by the event time each later sample
        stands for, and one is not learned only while less than
        ``_EPISODE_DEBT`` (four days) is owed: so an episode that recurs as a
        routine more often than every two days is reported a few times (four
        if hourly, five if daily), then learned; rarer ones are reported each
        time. A counter's new high
        is how it counts: it is no excursion, and the reference follows it.
        ``again`` says whether a new extreme continues the climb of the previous
        one (on the same side, no value back inside the range or beyond its
        other side in between).
        """
        lo = self._lo
        hi = self._hi
        self._owe = _paid(self._owe, span)
        if x > hi:
            self._hi = x
        elif x < lo:
            self._lo = x
        rlo = self._rlo
        rhi = self._rhi
        ext = 0.0
        side = 0
        if x > rhi:
            ext = x - rhi
            side = 1
        elif x < rlo:
            ext = rlo - x
            side = -1
        if counter and side > 0:  # how a counter counts: no excursion (one in progress is over)
            ext = 0.0
            side = 0
            self._run = 0.0
            self._calm = -1.0
            self._olo = _INF
            self._ohi = -_INF
        need = self.cfg.extreme_time
        last = _lone(need, slack)
        if side != 0:  # the excursion goes on, or begins with the interval this value stands for
            self._run = span if self._calm < 0.0 else self._run + span
            self._calm = 0.0
        elif not self._calm < 0.0:  # back inside during an excursion: it ends once calm as long as it must last
            calm = self._calm + span
            # (a reported episode: the recent level is back in the middle of the range before it)
            back = False
            if self._olo < _INF:
                inner = _EPISODE_INNER * (self._ohi - self._olo)
                if inner > 0.0:
                    back = self._olo + inner <= level <= self._ohi - inner
                else:  # (a series that had been one constant: the value back at it)
                    back = x == self._olo
            if back and (x > self._ohi or x < self._olo):
                calm = 0.0  # a value beyond the range before a reported episode, around a level back: it goes on
            if _lasts(calm, last, slack):
                # a reported episode is over, the level back: not learned (see above)
                beyond = self._run - self._calm  # (the time its values were beyond the range)
                wild = beyond <= 3.0 * slack and (_bound(self._hi, self._olo, self._ohi) != self._hi
                                                  or _bound(self._lo, self._olo, self._ohi) != self._lo)
                if (back and (beyond >= _EPISODE * (slack + slack) or not _lasts(beyond, last, slack) or wild)
                        and _forgives(self._owe)):
                    self._lo = self._olo
                    self._hi = self._ohi
                    self._owe += _EPISODE_COST
                    if self._olo == self._ohi:  # a series that has been one constant: its mean, its variance 0
                        self._lmean = self._olo
                        self._lvar = 0.0
                self._olo = _INF
                self._ohi = -_INF
                self._run = 0.0
                self._calm = -1.0
            else:
                self._run += span
                self._calm = calm
        if self._calm < 0.0:  # no excursion: the reference catches up with the range
            self._rlo = self._lo
            self._rhi = self._hi
        if side != self._climb:  # back inside, or beyond the other side: the climb is over
            self._climb = 0
        lam = _long_weight(self.cfg, n)
        dl = x - self._lmean
        far = False
        if ext > 0.0 and ext > self.cfg.margin * (rhi - rlo):  # far from the long-run mean, or from the hour's
            far = dl * dl > self.cfg.extreme_sd_sq * self._lvar or day.far(x, self._lmean, t, slack + slack, hi - lo)
        if learnt != x:  # (a wild value: as one _LONG_CLIP widths of the range beyond it)
            dl = learnt - self._lmean
        self._lmean += lam * dl
        self._lvar = (1.0 - lam) * (self._lvar + lam * dl * dl)
        self.held = 0
        if far:
            if _lasts(self._run, last, slack):
                self.report(side)
                return True
            self.held = side
        return False

    def settle(self):
        """End any excursion: the reference is the range seen so far. The pipeline calls this while the series
        learns, so scoring starts from the range, not from a reference that an excursion begun with the second
        sample still holds (at 1 s or 10 s, noise keeps going beyond the first value on one side or the other,
        so that excursion would never end, and the first far value after the learning would be reported however
        short, measured from the first value)."""
        self._run = 0.0
        self._calm = -1.0
        self._olo = _INF
        self._ohi = -_INF
        self._rlo = self._lo
        self._rhi = self._hi

    def _fits(self):
        return (_duration(self._run) and (self._calm == -1.0 or _duration(self._calm))
                and ((self._olo == _INF and self._ohi == -_INF)
                     or (self._calm >= 0.0 and self._lo <= self._olo <= self._ohi <= self._hi))
                and _owing(self._owe))

    def report(self, side):
        """Report a new extreme on ``side`` (+1 above, -1 below): the next excursion is measured from the range
        as it is now, and ``again`` says whether it continues the climb of the previous one; the range before the
        excursion is kept, if this is its first report."""
        if self._olo == _INF:
            self._olo = self._rlo
            self._ohi = self._rhi
        self._rlo = self._lo
        self._rhi = self._hi
        self.again = self._climb != 0
        self._climb = side
        self.held = 0


@cython.no_gc
@cython.cclass
class Stuck(Step):
    """Step 4: a run of repeated values, scored by its probability under a two-state repeat Markov chain."""

    PARAMS = (
        Param("repeat_decay", 0.001, "Weight of the newest step in the repeat statistics (at most the usual "
              "interval over two days, so that they remember two days of event time at least).",
              low=0.0, high=1.0, low_open=True, high_open=True),
        Param("stuck_longest", True, "Score a run of repeats only while it is longer than every earlier run."),
    )  # fmt: skip
    # the previous value; decayed counts of steps from a non-repeat (c0, k0 of them repeats) and from
    # a repeat (c1, k1); whether the previous step was a repeat; -log10 probability of the current run
    # (-1: not scored, -2: reported) and -log10 P(repeat | repeat) frozen at its start; its length, the
    # longest ended run (C ints); the event time the freezes that set no record still owe; where the runs
    # were (rests: 1, 2 if the current run's value came back to the floor, the ceiling of the range seen; 4, 8
    # if the longest ended run's had, and that floor, ceiling has not moved since: see score)
    STATE = ("prev", "c0", "k0", "c1", "k1", "rep", "run", "step", "len", "maxlen", "owe", "rests")
    SMALL = ("len", "maxlen", "rests")

    def __init__(self, cfg):
        self.cfg = cfg  # (its log scale is the likelihood's; a run is reported once: when it reaches fire)
        self._prev = 0.0
        self._c0 = 0.0
        self._k0 = 0.0
        self._c1 = 0.0
        self._k1 = 0.0
        self._rep = False
        self._run = 0.0
        self._step = 0.0
        self._len = 0
        self._maxlen = 0
        self._owe = 0.0
        self._rests = 0

    def first(self, x):
        self._prev = x
        self._rests = 3  # (the first value is the floor and the ceiling)

    def wild(self, x):
        """A value beyond +-_HUGE (no measurement, never learned): whether it starts a run of them on its side
        (flagged once, at its first, as a run of repeats is). The rest of the state, the previous value included,
        is left as it was: the lines after the run are those without it; the next ordinary sample ends it."""
        side = _WILD_HIGH if x > 0.0 else _WILD_LOW
        rests = self._rests
        self._rests = (rests & ~(_WILD_HIGH | _WILD_LOW)) | side
        return not rests & side

    def _fits(self):
        return _owing(self._owe) and 0 <= self._rests <= 63

    def score(self, x, scoring, span, lo, hi, gap):
        """Learn ``x``; the score of the run of repeats it continues (0.0 if none). ``scoring``: a new run may be
        scored; ``span``: the event time ``x`` stands for (:meth:`Pipeline.span`), which pays the freezes' debt;
        ``lo``, ``hi``: the range seen before ``x`` (:class:`Extremes`).

        With ``stuck_longest``, a reported freeze was an episode (as the new-extremes step's), and sets no
        record, so that the next freeze is reported too, if it is more than twice as long as the longest run
        before it in a series that seldom repeats (fewer than ``_STUCK_RARE`` of its steps from a new value
        start a run), or ``_STUCK_INSIDE`` times as long at a reading strictly inside the range seen, however
        often the series repeats by itself (a coarse sensor: its readings repeat one step in four, but it
        never holds one for minutes). A run whose value came back to the floor (or the ceiling) already
        seen, where the longest run so far was too and the floor has not moved since (``rests``: a solar
        output at 0.0 each night, an idle count), is the series at rest, not a freeze: it sets the record. A
        stall at a new high (a counter, a gauge that climbs) or low, or a sensor pegged at its highest
        reading, is a freeze; a record set while the series learns (``scoring`` false: a first reading
        repeated) tells nothing of where it rests. A freeze
        forgiven owes ``_EPISODE_COST`` (two days, paid by the event time of the samples after it), and none
        is forgiven while ``_EPISODE_DEBT`` (four days) is owed: a hold that recurs as a routine more often
        than every two days is reported a few times, then sets the record. A
        run about as long as the record (a routine hold whose length varies a little) sets it as before."""
        stuck = 0.0
        v = self._prev
        rep = x == v
        self._prev = x
        rests = self._rests & ~(_WILD_HIGH | _WILD_LOW)  # (an ordinary sample: a run of wild values is over)
        if x < lo:  # a new low: neither the current run nor the record's is at the floor any more
            rests &= ~(_RUN_FLOOR | _RECORD_FLOOR)
        elif x > hi:
            rests &= ~(_RUN_CEILING | _RECORD_CEILING)
        forgot = False
        self._owe = _paid(self._owe, span)
        if rep:
            if self._len < _MAX_RUN:
                self._len += 1
        else:
            record = True
            if self._run == _REPORTED:
                self._forget_run(self._keep(gap))
                self._run = -1.0
                forgot = True
                if self.cfg.stuck_longest and _forgives(self._owe) and self._forgiven(v, lo, hi, rests):
                    self._owe += _EPISODE_COST
                    record = False
            if record and self._len > self._maxlen:
                self._maxlen = self._len
                # (the record's place is the ended run's; a run that ended while the series learns, a first
                # reading repeated, say, tells nothing of where it rests)
                rests = (rests & (_RUN_FLOOR | _RUN_CEILING)) * (1 + _RECORD_FLOOR) if scoring else 0
            # the next run's place: back at the floor or the ceiling seen before it (a night at 0.0)
            rests = ((rests & (_RECORD_FLOOR | _RECORD_CEILING)) | (_RUN_FLOOR if x == lo else 0)
                     | (_RUN_CEILING if x == hi else 0))
            self._len = 0
        self._rests = rests
        # with stuck_longest, a run is scored only while it is longer than every run before it
        longest = self._len > self._maxlen or not self.cfg.stuck_longest
        keep = self._keep(gap)
        if forgot:
            pass  # the step that ended a reported run is the run's too, and is forgotten with it
        elif self._rep:
            c1 = self._c1 * keep + 1.0
            k1 = self._k1 * keep + rep
            if rep:
                run = self._run
                if run >= 0.0:
                    run += self._step
                    stuck = run * self.cfg.scale if longest else 0.0
                    if stuck >= self.cfg.fire:
                        run = _REPORTED  # a stuck run is reported once
                    self._run = run
            # the counts before this step decide P(repeat | repeat) for the rest of the run
            self._c1 = c1
            self._k1 = k1
        else:
            if rep:
                if scoring:
                    self._run = -log10((self._k0 + 0.5) / (self._c0 + 1.0))
                    self._step = -log10((self._k1 + 0.5) / (self._c1 + 1.0))
                    stuck = self._run * self.cfg.scale if longest else 0.0
                else:
                    self._run = -1.0
            self._c0 = self._c0 * keep + 1.0
            self._k0 = self._k0 * keep + rep
        self._rep = rep
        return stuck

    def _forgiven(self, v, lo, hi, rests):
        """Whether the reported run of ``v`` that has just ended (``rests`` its place, ``lo``, ``hi`` the
        range) was a freeze to forgive (see :meth:`score`): far longer than the record, twice in a series that
        seldom repeats and is not at rest, ten times at a reading inside the range."""
        at_rest = ((rests & (_RUN_FLOOR | _RECORD_FLOOR)) == (_RUN_FLOOR | _RECORD_FLOOR)
                   or (rests & (_RUN_CEILING | _RECORD_CEILING)) == (_RUN_CEILING | _RECORD_CEILING))
        if self._k0 < _STUCK_RARE * self._c0 and not at_rest and self._len - self._maxlen > self._maxlen:
            return True
        return lo < v < hi and self._len > _STUCK_INSIDE * self._maxlen

    def _keep(self, gap):
        """The weight the earlier steps keep at each step of a series whose usual interval is ``gap`` (0:
        unknown): ``1 - repeat_decay``, but so that the statistics remember at least ``_LONG_MEMORY`` (two
        days) of event time: a night at 0.0, a setpoint held for hours, a gauge between outages at 1 s or 10 s
        is remembered from one day to the next, not for 1000 samples (17 minutes at 1 s)."""
        lam = self.cfg.repeat_decay
        if gap > 0.0 and gap < lam * _LONG_MEMORY:
            lam = gap / _LONG_MEMORY
        return 1.0 - lam

    def _forget_run(self, keep):
        """A reported run has ended: it was an incident, not how the series repeats, so its repeat steps
        leave the repeat statistics (whether it sets the record of the longest run is :meth:`score`'s
        call), decayed as they were, by ``keep`` (:meth:`_keep`)."""
        # the run's len - 1 steps from a repeat each added 1 to c1 and k1, then decayed with the rest
        steps = self._len - 1
        added = (1.0 - keep ** steps) / (1.0 - keep) if keep < 1.0 else float(steps)
        self._c1 = self._c1 - added if self._c1 > added else 0.0
        self._k1 = self._k1 - added if self._k1 > added else 0.0


@cython.no_gc
@cython.cclass
class Spike(Step):
    """Step 4b, off when ``spike`` is 0: a value far from the recent level, in robust deviations, for long enough.

    The deviation ``z = |x - mean| / mad`` uses an exponentially weighted mean
    and mean absolute deviation (weight ``spike_fading``), which a single
    spike moves far less than it moves a variance. A value ``spike`` or more
    of them away scores ``spike_score``, if ``z`` is also at least
    ``spike_record`` times the largest ``z`` seen since ``learn // 4``
    samples (a series whose spikes are routine does not report each one),
    and if the spike has lasted ``spike_time`` seconds of event time: each
    sample of the run stands for its interval since the previous sample, at
    most twice the series' usual interval (:meth:`Pipeline.span`: an
    exponentially weighted mean of the intervals, each clipped at 4 times
    it), so the first sample after a
    gap is not a lasting spike, and a late sample adds nothing. A spike still
    too short leaves the largest ``z`` seen alone, so the rest of its run is
    judged against the record as it stood when the run began. One sample of
    an hourly series stands for an hour, and a spike in it is reported at
    once; at 5 minutes a spike would have to stay out for 6 samples in a row,
    which the mean and mean absolute deviation, following a lasting change,
    do not allow at the default ``spike_fading`` (the deviation of the sixth
    sample of a jump is at most about 10), so there single-sample bursts,
    routine at fine sampling (tweet counts, CPU), are not reported, and a
    sustained change is the other steps' to judge. Without event times, or
    with ``spike_time`` 0, one sample is enough.
    That largest ``z`` fades by ``spike_forget`` each sample (a memory of
    about 1 000 samples by default), so one huge incident does not silence
    the step for good. An exact repeat of the previous value moves the mean
    but not the mean absolute deviation: a flat stretch does not shrink the
    scale toward 0, which would make the first ordinary value after it a
    huge ``z`` (a false spike, and a record no later spike could reach).
    Below 1.0, a spike reported inside a suppression is damped under the
    threshold. While ``spike`` is 0 the pipeline leaves this step out. See
    docs/detection.md ("Spikes that last") for what it gains and costs on
    each corpus.

    With ``far`` > 0 the step also reports bursts of sparse spikes, which
    the time gate cannot see at fine sampling (each spike stands for one
    interval): a value ``far`` or more mads from the mean, the first of a run
    of such values (a run is one event: a lasting spike, a level change, a
    smoothed average's burst), is a far-out value; they are counted in event
    time (an exponentially weighted count over ``far_time`` seconds). A
    *cluster* of them begins with one and ends once the count has fallen
    under a quarter of its largest (a reported one, under a sixteenth: the
    aftermath of a burst is part of it). A count of 3 or more that is also
    ``far_record`` times the largest count of the series' earlier clusters
    (fading over two days of event time) is a burst: it scores
    ``spike_score``, once per cluster, once the series has about an hour
    behind it (its samples times its usual interval: 12 ``far_time``; until
    then its clusters set the record as they grow, one that never ends too).
    The record fades only between clusters. A cluster's largest count
    becomes that record when it ends, unless it was reported (as a burst,
    or by any other kind of evidence while it lasted) and is forgiven: as
    an episode of the new-extremes step, a reported cluster owes two days
    of event time, paid by the samples after it, and is forgiven while less
    than four days are owed. So clusters that are the series' routine
    (latency spikes that bring others) set the bar, a burst far beyond them
    is reported, and a burst like the last reported one is reported again,
    until such bursts come back so often that they are the routine (a few
    times in a row). At 5 minutes a ``far_time`` of 300 s holds one sample,
    and the count never reaches 3; without event times the count is not
    kept. See docs/detection.md ("Bursts beyond the clusters").
    """

    PARAMS = (
        Param("spike", 0.0, "Robust deviations (|x - EW mean| / EW mean absolute deviation) that make a spike "
              "(0: the spike step is off).", low=0.0),
        Param("spike_fading", 0.02, "Weight of the newest sample in the spike step's mean and mean absolute deviation.",
              low=0.0, high=1.0, low_open=True, high_open=True),
        Param("spike_record", 0.5, "A spike must also reach this fraction of the largest deviation seen so far (0: any).",
              low=0.0),
        Param("spike_score", 0.9, "The score of a spike.", low=0.0, high=1.0),
        Param("spike_forget", 0.001, "Fraction by which the largest deviation seen (for spike_record) fades each "
              "sample (0: never).", low=0.0, high=1.0, high_open=True),
        Param("spike_time", 1800.0, "Seconds of event time a run of spikes must have lasted, each sample counting "
              "its interval, at most twice the usual one (0: one sample is enough).", low=0.0),
        Param("far", 0.0, "Mean absolute deviations (as for spike) that make a far-out value, counted for bursts of "
              "sparse spikes (0: not counted).", low=0.0),
        Param("far_time", 300.0, "Seconds of event time over which far-out values are counted.", low=0.0,
              low_open=True),
        Param("far_record", 2.0, "A burst of far-out values must also count this many times the largest count of "
              "the series' earlier clusters of them (0: any).", low=0.0),
    )  # fmt: skip
    # the EW mean and mean absolute deviation of the values; the largest deviation seen (in mads, fading);
    # the event time the current run of spikes has lasted (NaN: unknown); the count of far-out values (EW over
    # far_time); the largest count of the current cluster of them (negative: the cluster was reported; 0: none);
    # the largest count of the earlier clusters (fading); the debt of reported clusters forgiven (seconds of
    # event time). The count's sign bit says whether the latest value it saw was far out (:meth:`far_prev`).
    STATE = ("mean", "mad", "top", "run", "count", "peak", "crec", "owe")
    SWITCH = "spike"

    def __init__(self, cfg):
        self.cfg = cfg
        self._mean = 0.0
        self._mad = 0.0
        self._top = 0.0
        self._run = 0.0
        self._count = 0.0
        self._peak = 0.0
        self._crec = 0.0
        self._owe = 0.0

    def first(self, x):
        self._mean = x

    def constant(self, c):
        """The series had been ``c`` only, and a glitch it did not learn is over: the mean and scale are ``c``'s
        again (every value learned was ``c``)."""
        self._mean = c
        self._mad = 0.0

    def _fits(self):
        return (_duration(self._run) and fabs(self._count) < _INF and -_INF < self._peak < _INF
                and 0.0 <= self._crec < _INF and _owing(self._owe))

    def far_count(self, span):
        """The count of far-out values before one that stands for ``span`` > 0 seconds is added."""
        c = fabs(self._count)
        return c * exp(-span / self.cfg.far_time) if c > 0.0 else 0.0  # (none yet, the usual case: no exp)

    def burst(self, c):
        """Whether a count ``c`` of far-out values is a burst to report: 3 or more, ``far_record`` times the
        largest count of the earlier clusters, in a cluster not reported already."""
        return self._peak >= 0.0 and c >= _FAR_COUNT and c >= self.cfg.far_record * self._crec

    def reported(self):
        """The series was reported: the current cluster of far-out values, if any, is a reported one."""
        if self._peak > 0.0:
            self._peak = -self._peak

    def far_prev(self):
        """Whether the latest value the count has seen was far out: the count's sign bit (so the step fits 96
        bytes; -0.0 too, should a long run of far-out values wear the count down to nothing)."""
        return copysign(1.0, self._count) < 0.0

    def far_width(self, counting, span):
        """How far from the mean the next value (standing for ``span``) completes a burst of far-out values;
        0.0: none does."""
        if not (self.cfg.far > 0.0 and counting and span > 0.0) or self.far_prev():
            return 0.0
        unit = self.unit()
        if unit > 0.0 and self.burst(self.far_count(span) + 1.0):
            return self.cfg.far * unit
        return 0.0

    def far_out(self, z, span, old):
        """Learn a value ``z`` mads from the mean, standing for ``span`` > 0 seconds, into the count of far-out
        values and the clusters of them; whether it completes a burst (never while the series is not ``old``
        enough: then a cluster sets the record as it grows, so that one that never ends, far-out values at a
        steady rate, sets it too; and the record fades only between clusters)."""
        out = z >= self.cfg.far
        far = out and not self.far_prev()  # (the first of a run: a run is one event)
        c = self.far_count(span) + (1.0 if far else 0.0)
        self._count = -c if out else c
        out = old and self.burst(c)
        rec = self._crec
        if rec > 0.0 and self._peak == 0.0:  # (the record fades over _LONG_MEMORY of event time, between clusters)
            rec *= (_LONG_MEMORY - span) / _LONG_MEMORY if span < _LONG_MEMORY else 0.0
        peak = self._peak
        if far or peak != 0.0:  # (a cluster begins with a far-out value)
            said = peak < 0.0 or out
            top = -peak if peak < 0.0 else peak
            if c > top:
                top = c
            if not old and top > rec:  # (young: a cluster is the bar as it grows, one that never ends too)
                rec = top
            if c < (_FAR_AFTER if said else _FAR_END) * top:  # over: its largest count is the record, or forgiven
                if said and _forgives(self._owe):  # (forgiven: it owes, as an episode does)
                    self._owe += _EPISODE_COST
                elif top > rec:
                    rec = top
                peak = 0.0
            else:
                peak = -top if said else top
            self._peak = peak
        self._crec = rec
        self._owe = _paid(self._owe, span)
        return out

    def lasting(self, span):
        """Whether a spike that stands for ``span`` seconds (:meth:`Pipeline.span`) has lasted ``spike_time``
        (without event times: yes)."""
        return _lasts(self._run + span, self.cfg.spike_time, 0.0)

    def width(self):
        """How far from the mean a value is a spike now (``reach()`` scales), 0.0 while the scale is 0."""
        unit = self.unit()
        return self.reach() * unit if unit > 0.0 else 0.0

    def bar(self):
        """How far from the mean a value, however long, is a spike now (``spike_record`` included); -1.0 where
        none is. Where the scale is 0 (an exact constant at 0.0: the scale is at least ``1e-9`` of any other),
        0.0: any other value is one, infinitely far out, as it is many deviations out beside any other exact
        constant."""
        unit = self.unit()
        if unit > 0.0:
            w = self.reach() * unit
            return w if w > 0.0 else -1.0
        return 0.0

    def sharp(self, x):
        """Whether ``x`` would be a spike, however long (before it is learned): beyond :meth:`bar`."""
        w = self.bar()
        return w >= 0.0 and x != self._mean and abs(x - self._mean) >= w

    def unit(self):
        """The scale of a deviation: the mean absolute deviation, at least ``1e-9`` of the mean's size."""
        return _scale(self._mad, self._mean)

    def reach(self):
        """The smallest deviation (in mads) that is a spike now: ``spike``, or ``spike_record`` of the largest seen."""
        return _reach(self.cfg.spike, self.cfg.spike_record, self._top)

    def score(self, x, counting, repeat, span, old, learnt):
        """Learn ``x`` (as ``learnt``: the pipeline's bound on a wild value); ``spike_score`` if it is a spike,
        else 0.0. ``counting``: spikes count (and the largest is kept); ``repeat``: ``x`` repeats the previous
        value exactly (the stuck step's verdict); ``span``: the event time ``x`` stands for
        (:meth:`Pipeline.span`; NaN: unknown); ``old``: the series is old enough for a burst of far-out values
        to be reported (:meth:`far_out`: its samples times its usual interval make an hour)."""
        mean = self._mean
        mad = self._mad
        d = x - mean
        ad = abs(d)
        unit = self.unit()
        z = ad / unit if unit > 0.0 else 0.0
        out = 0.0
        if counting and self.cfg.far > 0.0 and span > 0.0 and self.far_out(z, span, old):
            out = self.cfg.spike_score
        if counting:
            top = self._top * self.cfg.spike_forget_keep
            if z >= self.reach():
                run = self._run + span
                self._run = run
                if _lasts(run, self.cfg.spike_time, 0.0):
                    out = self.cfg.spike_score
                    if z > top:
                        top = z
                # (a spike that has not lasted yet leaves the largest deviation seen alone: the rest of its
                # run is judged against the record as it stood when the run began)
            else:
                self._run = 0.0
                if z > top:
                    top = z
            self._top = top
        else:
            self._run = 0.0
        a = self.cfg.spike_fading
        if learnt != x:  # (a wild value is learned as the bound: it does not blow the scale up for hours)
            d = learnt - mean
            ad = abs(d)
        mean += a * d
        if not repeat:  # (a repeat leaves the scale as it is)
            mad += a * (ad - mad)
        if mad - mad == 0.0 and mean - mean == 0.0:
            self._mean = mean
            self._mad = mad
        else:  # values near the float limit overflowed: start over from this value
            self._mean = x
            self._mad = 0.0
        return out


@cython.no_gc
@cython.cclass
class Level(Step):
    """What the level shift and spread steps share (:class:`Shift`, :class:`Spread`): a recent level over a
    window of event time, measured from a long-run mean in its own typical distance, judged by :meth:`judge`.

    Not a step of its own. Each subclass keeps what is its own beside it (the
    level shift step the floor under its typical distance, the spread step
    the latest value), so neither holds the other's state.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self._mean = 0.0
        self._dev = 0.0
        self._top = 0.0
        self._run = 0.0
        self._long = 0.0

    def _fits(self):
        return ((self._run == -1.0 or _duration(self._run)) and 0.0 <= self._dev < _INF and 0.0 <= self._top < _INF
                and -_INF < self._long < _INF)

    def long_weight(self, n, gap):
        """The weight of the newest of ``n`` >= 1 values in the step's long-run mean (the spread step's too), for
        a series whose usual interval is ``gap``: ``value_long`` (as the new-extremes step's mean), but at most
        one over ``_SHIFT_LONG`` windows of the usual interval (so that at fine sampling it spans many of the
        windows the recent level spans, not a few), and the running mean's ``1 / n`` while that is larger."""
        lam = self.cfg.value_long
        if gap > 0.0:
            span = _SHIFT_LONG * self.window(gap)  # seconds (more than 1 / lam samples below 5.76 s)
            if span * lam > gap:
                lam = gap / span
        return _running(lam, n)

    def window(self, gap):
        """The event time (seconds) the recent level spans, for a series whose usual interval is ``gap``."""
        return _window(self.cfg, gap)

    def unit(self, lmean, floor):
        """The typical distance of the recent level from the long-run mean ``lmean``: with ``floor`` (the level
        shift step's) at least ``_SHIFT_FLOOR`` of its mean over two days (:class:`Shift`'s ``ldev``), and at least
        ``1e-9`` of ``lmean``'s size."""
        d = self._dev
        if floor:
            f = _SHIFT_FLOOR * cython.cast(Shift, self)._ldev
            if f > d:
                d = f
        return _scale(d, lmean)

    def weight(self, n, span, window):
        """The weight of a value standing for ``span`` seconds (``n`` >= 1 samples before it) in the recent
        level, which spans ``window`` (:meth:`window`)."""
        return _share(span, window + span, n)

    def ready(self, span):
        """Whether the next value, standing for ``span`` seconds, may complete a shift: a shift in progress that
        has lasted (``shift_time_last``) with it, not one reported already."""
        return span > 0.0 and self._run >= 0.0 and _lasts(self._run + span, self.cfg.shift_time_last, 0.0)

    def upper(self, a, unit, lmean, r):
        """The smallest next value (weight ``a``) that moves the recent level ``r`` or more above ``lmean``, at
        least the recent level (a value as far out as the level was); inf: none. A value moves the level by
        ``a * (x - level)``, one typical distance ``unit`` at most."""
        level = self._mean
        up = r - (level - lmean)
        hu = _INF if up > unit else (level + up / a if up > -unit else -_INF)
        return hu if hu > level else level

    def lower(self, a, unit, lmean, r):
        """The largest next value that moves the recent level ``r`` or more below ``lmean``, at most the recent
        level; -inf: none (:meth:`upper`, downwards)."""
        level = self._mean
        down = -r - (level - lmean)
        hl = -_INF if down < -unit else (level + down / a if down < unit else _INF)
        return hl if hl < level else level

    def move(self, x, a, unit):
        """How far ``x`` moves the recent level, its weight being ``a``: one typical distance ``unit`` at most."""
        step = a * (x - self._mean)
        if step > unit:
            return unit
        if step < -unit:
            return -unit
        return step

    def judge(self, x, lmean, n, counting, span, gap, reach, side, floor, rearm):
        """:meth:`score`, with ``reach`` the smallest distance (in typical distances) that is a shift, with ``side``
        +1 if only a level above ``lmean`` counts (:class:`Spread`), -1 if only one below, 0 if either, with
        ``floor`` the floor under the typical distance kept (the level shift step's; :class:`Spread` does not keep
        it), and with ``rearm`` the share of ``reach`` the distance must fall under (or cross to a side that does
        not count) before a shift that was reported may be reported again."""
        if not span > 0.0:
            return 0.0
        cfg = self.cfg
        mean = self._mean
        unit = self.unit(lmean, floor)
        window = self.window(gap)
        a = self.weight(n, span, window)
        # (while the typical distance settles, every value moves the level as far as it weighs)
        m = mean + (self.move(x, a, unit) if counting else a * (x - mean))
        d = m - lmean
        if not d - d == 0.0:  # values near the float limit overflowed: start over from this value
            self._mean = x
            self._dev = 0.0
            self._run = 0.0
            return 0.0
        ad = abs(d)
        z = ad / unit if unit > 0.0 else 0.0
        out = 0.0
        if counting:
            top = self._top * cfg.shift_forget_keep
            counts = _on_side(d, side)
            if z >= reach and counts:
                if self._run >= 0.0:  # (-1: this shift was reported; once is enough)
                    run = self._run + span
                    self._run = run
                    # reported at a value as far out as the recent level was (not once the values are back)
                    if _lasts(run, cfg.shift_time_last, 0.0) and (x >= mean if d > 0.0 else x <= mean):
                        out = cfg.shift_score
                        self._run = -1.0
            elif self._run >= 0.0 or z < rearm * reach or not counts:
                self._run = 0.0
            if z > top and z < _INF and counts:
                top = z
            self._top = top
            c = _SHIFT_DEV_CLIP * unit
            if ad > c:
                ad = c
        self._mean = m
        self._dev += _share(span, _SHIFT_MEMORY * window, n) * (ad - self._dev)
        if floor:  # (the level shift step: the floor under its typical distance remembers two days)
            cython.cast(Shift, self)._ldev += _share(span, _LONG_MEMORY, n) * (ad - cython.cast(Shift, self)._ldev)
        return out




@cython.no_gc
@cython.cclass
class Shift(Level):
    """Step 4c, off when ``shift`` is 0: the recent level far from the long-run mean, for long enough.

    The recent level is an exponentially weighted mean of the values over a
    window of event time: ``shift_time`` seconds, or ``shift_samples`` of
    the series' usual intervals if that is longer (2 minutes at 1 s, 200 s
    at 10 s, 20 minutes at one sample a minute, 20 hours hourly), so it
    always averages many samples. Its distance from the long-run mean (the
    step's own, which remembers about 500 samples as the new-extremes
    step's does, and at least 24 windows: 48 minutes at 1 s rather than 8)
    is measured in its own typical size: the mean of that distance over
    the last 30 windows (from the first sample on; each distance counts at
    most 3 typical sizes, so a shift in progress barely widens the scale
    that judges it), and at least a quarter of that distance's mean over
    two days of event time, so that hours of a constant value (a night at
    0, a gauge at 1) do not shrink it to nothing and make the next move,
    routine or not, a huge shift. Once the step counts (``learn // 4`` samples), one sample
    moves the recent level by one typical size at most, so a lone outlier
    is never a level shift: it takes ``shift`` samples at least. While the
    recent level is ``shift`` typical sizes or more from the long-run mean
    (a shift in progress), the long-run mean learns at a tenth of its
    weight (:meth:`holds`), so an incident does not become the mean the next
    one is measured from, nor its aftermath a distance that widens the
    typical size the next one is judged by.

    A distance of ``shift`` typical sizes or more scores ``shift_score`` if
    it is also at least ``shift_record`` times the largest distance seen
    lately (fading by ``shift_forget`` a sample: a series whose level moves
    routinely does not report each move), once it has lasted
    ``shift_time_last`` seconds of event time (each sample counting its
    interval, at most twice the usual one), at a value at least as far out
    as the recent level was (not at one that has fallen back below the
    lagging level). A shift is reported once (``run`` is then -1): the step
    waits for the distance to fall under three quarters of the bar it
    crossed (``_SHIFT_REARM``), so a level that stays away for an hour
    is not reported again each time the suppression after the report ends,
    nor when noise carries a distance that falls slowly (held) back over
    the bar. The spike step sees one value far out,
    the likelihood sees surprise that the recent mean soon absorbs; this
    step sees a level that stays away, such as 2 to 4 standard deviations
    of a sensor sampled every second, for a few minutes. Without event
    times it is not used; a late sample is not learned. See
    docs/detection.md ("Level shifts").
    """

    PARAMS = (
        Param("shift", 0.0, "Typical distances of the recent level from the long-run mean that make a level "
              "shift (0: the shift step is off).", low=0.0),
        Param("shift_time", 120.0, "Seconds of event time the recent level spans at least.", low=0.0, low_open=True),
        Param("shift_samples", 20.0, "Usual intervals the recent level spans at least.", low=0.0),
        Param("shift_record", 0.5, "A shift must also reach this fraction of the largest distance seen lately "
              "(0: any).", low=0.0),
        Param("shift_forget", 0.001, "Fraction by which the largest distance seen (for shift_record) fades each "
              "sample (0: never).", low=0.0, high=1.0, high_open=True),
        Param("shift_score", 0.9, "The score of a level shift.", low=0.0, high=1.0),
        Param("shift_time_last", 30.0, "Seconds of event time a shift must have lasted, each sample counting its "
              "interval, at most twice the usual one (0: one sample).", low=0.0),
    )  # fmt: skip
    # the recent level; the typical distance of the recent level from the long-run mean; the largest
    # distance seen (in typical distances, fading); the event time the current shift has lasted (-1: reported);
    # the long-run mean; the mean of that distance over two days of event time (under the typical distance's floor)
    STATE = ("mean", "dev", "top", "run", "long", "ldev")
    SWITCH = "shift"

    def __init__(self, cfg):
        Level.__init__(self, cfg)
        self._ldev = 0.0

    def first(self, x):
        self._mean = x
        self._long = x if x - x == 0.0 else 0.0

    def _fits(self):
        return Level._fits(self) and 0.0 <= self._ldev < _INF

    def learn_long(self, x, n, gap, counting, side):
        """Learn ``x``, the newest of ``n`` >= 1 values, into the long-run mean, weighted as :meth:`long_weight`
        says for the usual interval ``gap``; by ``_SHIFT_HOLD`` of that while the step counts (``counting``),
        the mean has settled (past the running mean of its first values, whose weight times ``n`` is 1) and
        the recent level is a shift (:meth:`holds`, ``side`` as for :meth:`score`). A mean that overflows starts
        over from ``x``; a value that is not finite is not learned."""
        w = self.long_weight(n, gap)
        if counting and w * n > 1.0 and self.holds(side):
            w *= _SHIFT_HOLD
        m = self._long + w * (x - self._long)
        if m - m == 0.0:
            self._long = m
        elif x - x == 0.0:
            self._long = x

    def reach(self):
        """The smallest distance (in typical distances) that is a shift now: ``shift``, or ``shift_record`` of
        the largest seen."""
        return _reach(self.cfg.shift, self.cfg.shift_record, self._top)

    def score(self, x, n, counting, span, gap, side):
        """Learn ``x``; ``shift_score`` if the recent level has moved far enough from the long-run mean for long
        enough, else 0.0. ``n`` >= 1: samples before it;
        ``counting``: shifts count (and the largest is kept); ``span``: the event time ``x`` stands for
        (:meth:`Pipeline.span`; NaN without event times, 0 for a late sample: not learned); ``gap``: the
        usual interval before ``x``; ``side``: -1 if only a level below the long-run mean counts (a counter's,
        :class:`Counter`), else 0."""
        out = self.judge(x, self._long, n, counting, span, gap, self.reach(), side, True, _SHIFT_REARM)
        if span > 0.0:  # (as the recent level: nothing without event times, nor from a late sample)
            self.learn_long(x, n, gap, counting, side)
        return out

    def holds(self, side):
        """Whether the long-run mean is held: the recent level ``shift`` typical distances or more away from it on
        a side that counts (``side``, as for :meth:`score`: a shift in progress, reported or not); never while
        the typical distance is 0 (:meth:`Level.judge` sees no shift then). A level that stays away for good
        still becomes the long-run mean, ten times slower, and sooner as the typical distance widens with it."""
        lmean = self._long
        d = self._mean - lmean
        unit = self.unit(lmean, True)
        return unit > 0.0 and abs(d) >= self.cfg.shift * unit and _on_side(d, side)


@cython.no_gc
@cython.cclass
class Spread(Level):
    """Step 4d, off when ``spread`` is 0: the values change from one sample to the next far more than usual,
    for long enough.

    The level shift step (:class:`Shift`, whose settings it shares but
    ``shift``) applied to the size of each change, ``|x - previous value|``:
    its recent mean (over ``shift_time`` or ``shift_samples`` usual
    intervals), measured from its own long-run mean (with the level shift
    step's weight, :meth:`Level.long_weight`: ``value_long``, but spanning
    24 windows at least, 48 minutes at 1 s, so that it does not follow a
    burst of a few minutes part of the way; each change counting at most
    what moves the recent size by 3 typical distances, so one spike does not
    raise it for hours; a reported burst, while it lasts, is not learned
    into it at all, so the next burst is not measured against this one) in
    its own typical distance, ``spread`` typical distances or more
    above it for ``shift_time_last`` seconds of event time, at least
    ``shift_record`` of the largest such distance seen lately, scores
    ``shift_score`` at a change at least as large as the recent size. Only a rise counts (noisier values,
    oscillation, a burst of spikes, vibration); calmer values are no
    incident here (a stuck value is :class:`Stuck`'s). Reported once, until
    the recent size falls under ``spread`` typical distances again; one sample
    moves the recent size by one typical distance at most, so a lone jump is
    never a spread. Unlike a new extreme it judges each burst against what
    is usual now, not against every value seen: a burst like one reported
    an hour ago is reported again. Without event times it is not used. See
    docs/detection.md ("Bursts of change").
    """

    PARAMS = (
        Param("spread", 0.0, "Typical distances above its long-run mean that the recent mean size of the "
              "sample-to-sample change must reach (0: the spread step is off).", low=0.0),
    )  # fmt: skip
    # the Shift step's state for the size of the change; the latest value in time order (a late sample is not
    # the value the next change is measured from)
    STATE = ("mean", "dev", "top", "run", "long", "last")
    SWITCH = "spread"
    USES = ("shift_time", "shift_samples", "shift_record", "shift_forget", "shift_score", "shift_time_last")

    def __init__(self, cfg):
        Level.__init__(self, cfg)
        self._last = 0.0

    def first(self, x):
        self._mean = 0.0
        self._long = 0.0
        self._last = x

    def _fits(self):
        return Level._fits(self) and 0.0 <= self._long < _INF and 0.0 <= self._mean < _INF and self._last == self._last

    def reach_up(self):
        """The smallest rise (in typical distances) that is a burst now: ``spread``, or ``shift_record`` of the
        largest seen."""
        return _reach(self.cfg.spread, self.cfg.shift_record, self._top)

    def observe(self, x, n, counting, span, gap):
        """Learn the change from the latest value in time order to ``x``; ``shift_score`` if the recent size of
        the changes has risen far enough for long enough, else 0.0 (the arguments as :meth:`Shift.score`'s; a
        late sample, ``span`` 0, is not learned, and the next change is measured from the value before it; nor
        is a change into the long-run mean while a reported burst lasts)."""
        if span == 0.0:
            return 0.0
        y = abs(x - self._last)
        self._last = x
        if not (span > 0.0 and y < _INF):
            return 0.0
        ylong = self._long
        if counting:  # (the long-run mean learns a change at most _SHIFT_DEV_CLIP typical moves of the recent size
            # above it, so one spike does not raise it for hours: the recent size moves one typical distance at most)
            c = self._mean + _SHIFT_DEV_CLIP * self.unit(ylong, False) / self.weight(n, span, self.window(gap))
            if y > c:
                yl = c
            else:
                yl = y
        else:
            yl = y
        out = self.judge(y, ylong, n, counting, span, gap, self.reach_up(), 1, False, 1.0)
        if self._run != -1.0:  # (a reported burst, while it lasts, is not learned as what is usual)
            self._long = ylong + Level.long_weight(self, n, gap) * (yl - ylong)  # (a direct call, not through the table)
        return out


@cython.no_gc
@cython.cclass
class Counter(Step):
    """Step 4e, off when ``counter_time`` is 0: a cumulative counter, and bursts of its increase.

    A series that has risen for ``counter_time`` seconds of event time (or
    20 usual intervals, if longer) without a fall, 3 times at least, is
    taken for a cumulative counter, as Telegraf writes network errors,
    bytes received or context switches (the time runs from the first rise
    after the last fall, so a gauge that sat still and then climbs in an
    incident is not one; with ``sentinel``'s day, neither is a gauge with a
    daily rhythm, which falls every day). A counter's new highs are how it counts: while a
    series is one, the new-extremes step does not report a new high and the
    level shift step does not report a level above the long-run mean; a
    fall (a reset), a run of repeats (a counter that stops, :class:`Stuck`)
    and the likelihood are judged as before. What matters is how fast it
    counts: its recent increase (the sum of its rises, each fading as the
    level shift step's recent level fades: about the increase over
    ``shift_time``, or ``shift_samples`` usual intervals) more than
    ``counter_burst`` times the largest peak of it seen before scores
    ``extreme`` (a peak is learned once it is past, so a pace that keeps
    rising is judged against the peaks before it, not against itself). A
    burst lasts until the recent increase is back under that largest peak,
    is reported once, and is not learned as usual, so the next burst is
    measured against the counter's usual pace, not against this one (a
    faster pace that lasts hours becomes the usual one, as the two-day
    memory learns it). Bursts are judged from the first samples on, so one
    before the series is known to count is not learned either (it is not
    reported). An error counter that gains one now and then is
    quiet; ten errors at once, or one every sample for a minute, are a
    burst. Without event times it is not used; a late sample is not
    learned. See docs/detection.md ("Counters").
    """

    PARAMS = (
        Param("counter_time", 0.0, "Seconds of event time a series must have risen for without a fall (3 rises "
              "and 20 usual intervals at least) to be taken for a cumulative counter: its new highs and level "
              "shifts up are not reported, bursts of its increase are (0: the counter step is off).", low=0.0),
        Param("counter_burst", 4.0, "A counter's recent increase, as a multiple of the largest peak of it seen "
              "before, that is a burst.", low=1.0),
    )  # fmt: skip
    # rises since the last fall (at most _COUNTER_RISES); the event time since the first of them;
    # the latest value in time order; the recent increase;
    # the largest peak of the recent increase seen (not of a burst); whether a burst lasts
    STATE = ("rises", "since", "last", "rise", "top", "said")
    SWITCH = "counter_time"
    USES = ("shift_time", "shift_samples", "extreme")

    def __init__(self, cfg):
        self.cfg = cfg
        self._rises = 0
        self._since = 0.0
        self._last = 0.0
        self._rise = 0.0
        self._top = 0.0
        self._said = False

    def first(self, x):
        self._last = x

    def _fits(self):
        return (self._rises <= _COUNTER_RISES and 0.0 <= self._since < _INF and self._last == self._last
                and 0.0 <= self._rise < _INF and 0.0 <= self._top < _INF)

    def counts(self, gap):
        """Whether the series is a counter now (before the next sample; ``gap``: its usual interval):
        ``_COUNTER_RISES`` rises or more and no fall since the first of them, ``counter_time`` seconds of event
        time ago or ``_COUNTER_SAMPLES`` usual intervals, whichever is longer."""
        need = _COUNTER_SAMPLES * gap
        if need < self.cfg.counter_time:
            need = self.cfg.counter_time
        return self._rises >= _COUNTER_RISES and self._since >= need

    def bar(self):
        """The recent increase above which a burst begins now: ``counter_burst`` times the largest peak seen."""
        return self.cfg.counter_burst * self._top

    def fade(self, n, span, gap):
        """What is left of the recent increase after ``span`` seconds (``n`` >= 1 samples before; ``gap`` the usual
        interval): the weight the level shift step gives the older values."""
        return 1.0 - _share(span, _window(self.cfg, gap) + span, n)

    def observe(self, x, n, scoring, span, gap, counts):
        """Learn ``x`` (the arguments as :meth:`Shift.score`'s; ``counts``: :meth:`counts` before ``x``, which the
        pipeline works out once); ``extreme`` if the counter's recent increase is a burst, else 0.0."""
        if not span > 0.0:  # (no event times, or a late sample: the next rise is measured from the value before it)
            return 0.0
        inc = x - self._last
        self._last = x
        if inc < 0.0:  # a fall: a gauge, or the counter was reset
            self._rises = 0
            self._since = 0.0
            inc = 0.0
        elif self._rises > 0:  # (the time runs from the first rise: a flat stretch before it is no counting)
            self._since += span
            if inc > 0.0 and self._rises < _COUNTER_RISES:
                self._rises += 1
        elif inc > 0.0:
            self._rises = 1
        if not inc < _INF:  # (a value near the float limit: no increase)
            inc = 0.0
        prev = self._rise
        r = prev * self.fade(n, span, gap) + inc
        if not r < _INF:  # (increases near the float limit overflowed: start over from this one)
            r = inc
        self._rise = r
        top = self._top
        out = 0.0
        if self._said:  # a burst lasts until the pace is back to the usual one, and is not learned as usual; a
            # faster pace that lasts (hours, as the long memory sees it) becomes the usual one
            if r <= top:
                self._said = False
            else:
                self._top = top + _share(span, _LONG_MEMORY, n) * (r - top)
        elif top > 0.0 and r > self.bar():  # (judged from the start: a burst before the series
            # is known to count is not learned either; it is reported only once it is, and the step counts)
            self._said = True
            if counts and scoring:
                out = self.cfg.extreme
        elif r < prev and prev > top:  # a peak of the recent increase, learned once it is past (a pace
            # that keeps rising is judged against the peaks before it, not against itself)
            self._top = prev
        return out


def _decay(gap, tau):
    """The weight of a sample ``gap`` seconds after the one before in an exponentially weighted mean of time
    constant ``tau`` seconds: ``1 - exp(-gap / tau)`` (0 for a late sample, or none before)."""
    return 1.0 - exp(-gap / tau) if gap > 0.0 else 0.0


def _ew(a, n):
    """The weight ``a`` (:func:`_decay`) of the newest of ``n`` >= 1 samples, at least ``1 / n`` (the first
    samples make a plain mean, not the first value's echo)."""
    b = 1.0 / n
    return a if a > b else b


def _kth(values, first, n, extra, k):
    """The ``k``-th smallest (from 0) of ``values[first:n]`` and ``extra`` (NaN: none) (quadratic: 15 values
    at most, a day's peaks, once a day)."""
    last = n if extra != extra else n + 1
    for i in range(first, last):
        v = values[i] if i < n else extra
        below = 0
        same = 0
        for j in range(first, last):
            w = values[j] if j < n else extra
            if w < v:
                below += 1
            elif w == v:
                same += 1
        if below <= k < below + same:
            return v
    return 0.0


def _median(values, first, n, extra):
    """The median of ``values[first:n]`` and ``extra`` (NaN: none), of one value at least."""
    m = n - first + (0 if extra != extra else 1)
    half = m // 2
    if m % 2:
        return _kth(values, first, n, extra, half)
    return 0.5 * (_kth(values, first, n, extra, half - 1) + _kth(values, first, n, extra, half))


@cython.no_gc
@cython.cclass
class Views(Step):
    """Step 7, off when ``peak`` is 0: two more views of the series, which back the hour's and the range's reports and add one kind.

    *Peak*: the excursion of the value above a level (an exponentially
    weighted mean over a day that follows a fall at once and a rise at a
    quarter of that rate), in units of the series' usual daily peak: the
    median of the largest excursion of each of the last 14 UTC days (from
    the fourth day on; the unit at least 5 % of the mean magnitude, and 1
    while every value so far is a whole number, as a count's one more is no
    peak). *Rise*: the logarithm of the value (plus a tenth of the mean
    magnitude) against its exponentially weighted level of the last week,
    in units of the mean absolute deviation of the logarithm (at least 0.05,
    5 %), from a week after the first sample on. Both measure the value
    against the state before it, so each is linear or monotonic in the
    value and the band of :meth:`Pipeline.explain` stays exact.

    - **Agreement.** A time-of-day extreme or a new extreme (step 3) counts
      only where one of the views agrees: the peak or the rise is ``agree``
      (2) or more in size, up or down, or the value is ``z_scale`` of its
      time-of-day slot's standard deviations from the slot's mean.
      Otherwise the score is what the other evidence gives: a daily
      pattern broken, or a new record, that nothing else shows is the
      commonest false alarm on both corpora. A view that cannot see yet
      does not object: the agreement is asked once the peak has three
      days' peaks behind it, the rise a week (and 30 samples), or the
      slot its ``day_visits`` passes or is settled (at one sample a minute
      and finer, the second day; its mean follows a lasting excursion
      within a few samples, so there a lasting record on the second or
      third day may go unbacked). A new extreme that no view backs is
      still taken by the new-extremes step for one reported (its range and
      episodes go on as after a report).
    - **Peaks.** A peak ``peak`` (3) times the usual one, with a rise of
      ``rise`` (2) or more at the same sample, lasting an hour of event
      time, scores ``extreme``, once a run and a day apart at least: a
      crash rate or a request rate several times its usual daily peak. It
      neither starts nor is damped by a suppression (step 6).
    - **Lone values.** In a series sampled once a minute or more often, a
      value ``lone`` (6) or more deviations above its level of the last
      hour (the rise's measure over an hour: the logarithm against its
      exponentially weighted level, in its mean absolute deviations), and
      1.5 times as far as the largest of each of the last 12 hours and of
      the same hours a day before (so a daily job's minute is reported the
      first day, not every day), is a lone value if the next sample is
      back under half that: that next sample
      scores ``extreme`` (a lone value is known to be one only then), 6
      hours apart at least. In a series of whole numbers the value must
      be ``lone`` times the step to one count more above the level (a
      count's one more is no lone value). A job that comes back on
      another period (every other day, weekly) is reported at each run. A single minute at several times the minutes
      around it, unlike anything of the last half day: a job's burst of
      requests, a sensor's glitch. Routine single-sample bursts (a load
      average, a latency) are as large as each other and do not stand
      out. It neither starts nor is damped by a suppression, and a value
      flagged already (at ``fire``) is not reported again on the next.

    Without event times the step says nothing. See docs/detection.md
    ("Views that agree, built", "Lone values").
    """

    PARAMS = (
        Param("peak", 0.0, "A peak this many times the usual daily peak, with a rise (rise) at the same sample, "
              "lasting an hour, is reported (0: the views step is off).", low=0.0),
        Param("rise", 2.0, "Deviations of the logarithm above its level of the last week that, with a peak, "
              "are reported.", low=0.0, low_open=True),
        Param("agree", 2.0, "A time-of-day extreme or a new extreme counts only where the peak or the rise is "
              "this large, up or down, or the value is z_scale of its slot's deviations from the slot's mean "
              "(0: always).", low=0.0),
        Param("lone", 6.0, "Deviations of the logarithm above its level of the last hour of a lone value (one "
              "sample, 1.5 times as far as the largest of the last 12 hours and of the same hours a day before, "
              "the next back under half), reported at one sample a minute or finer (0: not looked for).", low=0.0),
    )  # fmt: skip
    # the mean magnitude (a week); every value a whole number; the peak's level; the UTC day and the largest
    # excursion of it so far; the days' largest excursions kept (in peaks, oldest first) and their median; the
    # logarithm's level and mean absolute deviation over a week; the time the peak and rise have lasted, whether
    # the run was reported, and the time of the last report; the logarithm's level and mean absolute deviation
    # over an hour, the hour (of event time) of the newest of the last _LONE_RING hours' largest deviations from
    # them (in tops, by the hour's number modulo _LONE_RING), whether the latest value may be a lone one, and the
    # time of the last lone value reported
    STATE = ("mag", "whole", "level", "day", "top", "days", "usual", "wlevel", "wdev", "run", "done", "tpeak",
             "hlevel", "hdev", "hour", "pend", "tlone")
    SMALL = ("days",)
    BUFFERS = ("peaks", "tops")
    SWITCH = "peak"
    USES = ("z_scale", "extreme")

    def __init__(self, cfg):
        self.cfg = cfg
        self._mag = 0.0
        self._whole = True
        self._level = 0.0
        self._day = -_INF
        self._top = -_INF
        self._days = 0
        self._usual = 0.0
        self._wlevel = 0.0
        self._wdev = 0.0
        self._run = 0.0
        self._done = False
        self._tpeak = -_INF
        self._hlevel = 0.0
        self._hdev = 0.0
        self._hour = -_INF
        self._pend = False
        self._tlone = -_INF
        self.agrees = True
        self._peaks = zeroed_doubles(_PEAK_DAYS)
        self._tops = zeroed_doubles(_LONE_RING)

    def __dealloc__(self):
        free_buffer(self._peaks)
        free_buffer(self._tops)

    def _buffer(self, name, data):
        buf = self._peaks
        n = _PEAK_DAYS
        if name == "tops":
            buf = self._tops
            n = _LONE_RING
        if data is None:
            return doubles_io(buf, n, None)
        if not doubles_io(buf, n, data):
            return False
        for i in range(n):  # (restored: every day's peak and every hour's deviation a finite number, as a
            if not -_INF < buf[i] < _INF:  # series sets only those; the deviations 0 or more)
                return False
            if name == "tops" and buf[i] < 0.0:
                return False
        return True

    def _fits(self):
        return (0 <= self._days <= _PEAK_DAYS and 0.0 <= self._mag < _INF and -_INF < self._usual < _INF
                and 0.0 <= self._wdev < _INF and -_INF < self._wlevel < _INF and -_INF < self._level < _INF
                and (self._day == -_INF or -_INF < self._day < _INF) and self._top < _INF and self._top == self._top
                and 0.0 <= self._run < _INF and self._tpeak < _INF and self._tpeak == self._tpeak
                and -_INF < self._hlevel < _INF and 0.0 <= self._hdev < _INF and self._hour < _INF
                and self._hour == self._hour and self._tlone < _INF and self._tlone == self._tlone)

    def _log(self, x):
        """The logarithm the rise measures: of the value (0 if below), plus a tenth of the mean magnitude."""
        return log((x if x > 0.0 else 0.0) + 0.1 * self._mag + 1e-12)

    def first(self, x, now):
        self._mag = fabs(x)
        self._whole = x == floor(x)
        self._level = x
        self._wlevel = self._log(x)
        self._hlevel = self._wlevel
        if -_INF < now < _INF:
            self._day = floor(now / _DAY) + 0.0  # (a float, never -0.0: the same state in both builds)
            self._top = 0.0
            self._hour = floor(now / _LONE_TIME) + 0.0

    def rolls(self, now):
        """Whether event time ``now`` (finite) begins a new UTC day whose predecessor's largest excursion is kept
        (a late sample belongs to the day it came in)."""
        return floor(now / _DAY) + 0.0 > self._day and self._top > -_INF

    def rolled(self):
        """``(days, usual)``: the days' peaks kept and their median once the current day is over (:meth:`roll`),
        for the band, which must not change the state."""
        days = self._days
        first = 1 if days == _PEAK_DAYS else 0
        return days - first + 1, _median(self._peaks, first, days, self._top)

    def roll(self, now):
        """Start the UTC day of event time ``now`` (finite) if it is a new one, keeping the largest excursion of
        the day that ended with the last ``_PEAK_DAYS`` days', and their median."""
        d = floor(now / _DAY) + 0.0
        if d > self._day:
            if self._top > -_INF:
                peaks = self._peaks
                days = self._days
                if days < _PEAK_DAYS:
                    peaks[days] = self._top
                    self._days = days + 1
                else:
                    for i in range(_PEAK_DAYS - 1):
                        peaks[i] = peaks[i + 1]
                    peaks[_PEAK_DAYS - 1] = self._top
                self._usual = _median(peaks, 0, self._days, _NAN)
            self._day = d
            self._top = -_INF

    def unit(self, usual):
        """The peak's unit for the usual daily peak ``usual``: at least 5 % of the mean magnitude (and 1 for whole
        numbers)."""
        unit = usual
        f = 0.05 * self._mag
        if f > unit:
            unit = f
        least = 1.0 if self._whole else 1e-12
        return unit if unit > least else least

    def scale(self):
        """The rise's unit: the logarithm's mean absolute deviation over a week, at least 0.05."""
        return self._wdev if self._wdev > 0.05 else 0.05

    def rise_edge(self, k):
        """The least value whose rise is ``k`` (> 0) or more, and the greatest whose rise is ``-k`` or less
        (-inf: none); the inverse of :meth:`_log`."""
        s = k * self.scale()
        up = self._edge(self._wlevel + s)
        down = self._edge(self._wlevel - s)
        return (up if up > 0.0 else -_INF), (down if down >= 0.0 else -_INF)

    def _edge(self, y):
        """The value whose logarithm (:meth:`_log`) is ``y``: negative where no value's is (every value's is above)."""
        return exp(y) - (0.1 * self._mag + 1e-12)

    def hscale(self):
        """The lone values' unit: the logarithm's mean absolute deviation over an hour, at least 0.05."""
        return self._hdev if self._hdev > 0.05 else 0.05

    def counted(self):
        """The lone values' least unit where every value so far is a whole number: the logarithm's step from the
        hour's level to one count more (a count's one more is no lone value), else 0.0."""
        if not self._whole:
            return 0.0
        c = -self._hlevel  # (log(1 + e ** c): c itself beyond 30, the same to 13 digits, and no overflow)
        return c if c > 30.0 else log1p(exp(c))

    def hwarm(self, n, now, t0):
        """Whether a sample after ``n`` others at event time ``now`` (the first at ``t0``) is measured against the
        hour's level: ``_VIEW_WARM`` samples and an hour."""
        return n >= _VIEW_WARM and now - t0 >= _LONE_TIME

    def lone_edge(self, n, now, t0):
        """While the latest value may be a lone one (:attr:`_pend`) and a report is due: the value under which the
        next one (after ``n`` others, at event time ``now``) reports it (inf: every value; -inf: none), else
        -inf. Its deviation is under half of ``lone`` there."""
        if not self._pend or now - self._tlone < _LONE_QUIET:
            return -_INF
        if not self.hwarm(n, now, t0):
            return _INF
        e = self._edge(self._hlevel + 0.5 * self.cfg.lone * self.hscale())
        return e if e > 0.0 else -_INF

    def _tops_max(self):
        """The largest deviation of the last ``_LONE_HOURS`` hours (the current one, as far as it has gone, and
        the 11 before it) and of the same hours a day before (0.0: none above it)."""
        m = 0.0
        i = self._slot(self._hour) + _LONE_RING
        for j in range(_LONE_HOURS):
            v = self._tops[(i - j) % _LONE_RING]
            if v > m:
                m = v
        for j in range(_LONE_DAY - 1, _LONE_DAY + 2):
            v = self._tops[(i - j) % _LONE_RING]
            if v > m:
                m = v
        return m

    def _slot(self, hour):
        """The index in tops of the hour numbered ``hour`` (a whole float; exact at any size)."""
        r = fmod(hour, _LONE_RING)
        if r < 0.0:
            r += _LONE_RING
        return int(r) % _LONE_RING

    def ready(self, days, n, now, t0):
        """Whether the peak (``days`` >= three days' peaks) or the rise (a week and ``_VIEW_WARM`` samples) can see,
        for a sample after ``n`` others at event time ``now`` (the first at ``t0``)."""
        return days >= _PEAK_FEW or (n >= _VIEW_WARM and now - t0 >= _WEEK)

    def roll_hours(self, now):
        """Start the hour of event time ``now`` (finite) in tops if it is a new one (the hours between at 0)."""
        h = floor(now / _LONE_TIME) + 0.0
        last = self._hour
        if h > last:
            if h - last >= _LONE_RING:
                for i in range(_LONE_RING):
                    self._tops[i] = 0.0
            else:
                i = self._slot(last)
                for _ in range(int(h - last)):
                    i = (i + 1) % _LONE_RING
                    self._tops[i] = 0.0
            self._hour = h

    def observe(self, x, n, now, dt, t0, span, gap, far_mean, day_ready):
        """Learn ``x``, sample ``n`` + 1 (``n`` >= 1; event time ``now``, ``dt`` seconds after the latest one, the
        first at ``t0``, standing for ``span``; ``gap``: the series' usual interval; ``far_mean``: ``z_scale`` of
        its slot's deviations from its slot's mean, ``day_ready``: that slot can say so); set :attr:`agrees`, and
        return ``_WHY_PEAK`` or ``_WHY_LONE`` for a report of its own, else 0."""
        self.agrees = True
        if not -_INF < now < _INF:  # (no event time: nothing to say)
            return 0
        cfg = self.cfg
        self.roll(now)
        # the views, against the state before x
        excursion = x - self._level
        p = excursion / self.unit(self._usual) if self._days >= _PEAK_FEW else 0.0
        scale = self.scale()
        y = self._log(x)
        dw = y - self._wlevel
        if dt != cfg.vdt:  # (the decays of an interval, kept per rule: the series of a rule share theirs)
            cfg.vdt = dt
            cfg.vday = _decay(dt, _DAY)
            cfg.vweek = _decay(dt, _WEEK)
            cfg.vhour = _decay(dt, _LONE_TIME)
        warm = n >= _VIEW_WARM
        m = dw / scale if warm and now - t0 >= _WEEK else 0.0
        k = cfg.agree
        self.agrees = (not k or not (day_ready or self.ready(self._days, n, now, t0)) or fabs(p) >= k
                       or fabs(m) >= k or far_mean)  # (views that cannot see yet do not object)
        # a lone value: the latest value may be one (pend), and it is if this one is back under half of lone
        lone = 0
        if cfg.lone:
            hscale = self.hscale()
            dh = y - self._hlevel
            s = dh / hscale if self.hwarm(n, now, t0) else 0.0
            if self._pend and now - self._tlone >= _LONE_QUIET and s < 0.5 * cfg.lone:
                lone = _WHY_LONE
            self.roll_hours(now)
            self._pend = (s >= cfg.lone and gap <= _LONE_FINE and dh >= cfg.lone * self.counted()
                          and s >= _LONE_STANDOUT * self._tops_max())
            i = self._slot(self._hour)
            if s > self._tops[i]:
                self._tops[i] = s
            a = cfg.vhour
            self._hlevel += _ew(a, n + 1) * (_clip(dh, 3.0 * hscale) if warm else dh)
            ad = fabs(dh)
            self._hdev += _ew(a, n) * ((ad if ad < 5.0 * hscale or not warm else 5.0 * hscale) - self._hdev)
        # then learn x
        if self._whole and x != floor(x):
            self._whole = False
        week = cfg.vweek
        self._mag += _ew(week, n + 1) * (fabs(x) - self._mag)
        if excursion > self._top:
            self._top = excursion
        self._level += _ew(cfg.vday, n + 1) * excursion * (1.0 if excursion < 0.0 else 0.25)
        self._wlevel += _ew(week, n + 1) * (_clip(dw, 3.0 * scale) if warm else dw)
        a = fabs(dw)
        self._wdev += _ew(week, n) * ((a if a < 5.0 * scale or not warm else 5.0 * scale) - self._wdev)
        # a peak that lasts an hour, with a rise
        if p >= cfg.peak and m >= cfg.rise:
            if span > 0.0:  # (NaN: the sample before had no event time; it stands for none)
                self._run += span
            if not self._done and self._run >= _PEAK_TIME:
                self._done = True
                if now - self._tpeak >= _PEAK_QUIET:
                    self._tpeak = now
                    return _WHY_PEAK
        else:
            self._run = 0.0
            self._done = False
        if lone:
            self._tlone = now
        return lone


@cython.no_gc
@cython.cclass
class Suppression(Step):
    """Step 6: after a report, the next scores are damped, so a run of detections is reported once.

    The suppression lasts ``suppress`` samples, or ``suppress_time`` seconds of
    event time if that ends first: 400 samples are 33 hours at 5 minutes but 16
    days hourly, which would hide every later incident. In a suppression the
    pipeline stops the likelihood's score at ``quiet_cap``, so that damped it
    stays under ``fire``: the likelihood at its cap (1.0), damped by 0.5,
    would otherwise be reported again at each sample while the incident that
    started the suppression lasts (a new extreme, 1.0, still gets through).
    """

    PARAMS = (
        Param("fire", 0.5, "Score at or above which suppression starts.", low=0.0, low_open=True),
        Param("suppress", 400, "Samples suppressed after a score reaches fire.", low=0, high=MAX_COUNT),
        Param("suppress_time", 0.0, "Seconds of event time after which a suppression ends even if suppress "
              "samples have not passed (0: samples only).", low=0.0),
        Param("damp", 0.5, "Factor applied to suppressed scores.", low=0.0, high=1.0),
        Param("day_through", True, "A time-of-day extreme gets through a suppression another kind of report started."),
    )  # fmt: skip
    # samples still suppressed; whether a time-of-day extreme started the suppression; the event
    # time of the report that started it (inf: none)
    STATE = ("quiet", "qday", "tfire")

    def __init__(self, cfg):
        self.cfg = cfg
        self._quiet = 0
        self._qday = False
        self._tfire = _INF
        self._why = 0  # the pipeline's evidence of its last score (not state: see Pipeline._why)
        self.counter = None  # the pipeline's counter step (not this step's state: see Pipeline.counter)
        self.views = None  # the pipeline's views step (not this step's state: see Pipeline.views)

    def active(self, now):
        """True while a suppression lasts at event time ``now`` (NaN: none)."""
        return self._quiet > 0 and not (self.cfg.suppress_time and now - self._tfire >= self.cfg.suppress_time)

    def apply(self, score, tod, now):
        """The score as reported; ``tod``: it is a time-of-day extreme; ``now``: the event time (NaN: none)."""
        quiet = self._quiet if self.active(now) else 0  # (suppress_time passed: 0; never without event times)
        if quiet:
            self._quiet = quiet - 1
            if tod and not self._qday and self.cfg.day_through:
                if score >= self.cfg.fire:
                    self._quiet = self.cfg.suppress
                    self._qday = True
                    self._tfire = now if now == now else _INF
            else:
                score *= self.cfg.damp
        else:
            self._quiet = 0
            if score >= self.cfg.fire:
                self._quiet = self.cfg.suppress
                self._qday = tod
                self._tfire = now if now == now else _INF
        return score


# -- the detector ----------------------------------------------------------------------------------


@cython.no_gc
@cython.cclass
class Pipeline:
    """Surprise -> likelihood, with new extremes, the time of day, stuck values, spikes, level shifts and suppression.

    A detector names its steps in ``STEPS``: ``(attribute, step class)``,
    the first being its :class:`Surprise`. Its ``PARAMS`` are the steps'
    (and ``learn``), with the detector's own defaults where they differ; its
    ``SETTINGS``, the :class:`Settings` class that holds them, one object per
    rule shared by the rule's series and their steps (``cfg``). Settings are
    read under their own names (``det.bins``); the learned state is saved as
    one flat record (:meth:`dump_state`) and read by name with
    :meth:`state_by_name`.
    """

    STEPS = ()
    SETTINGS = Settings
    LEARN = Param("learn", 200, "Samples before anything scores above 0 (a rule sets it by its warmup, not in params).", low=0,
                  high=MAX_COUNT)
    WARMUP_PARAM = "learn"
    LEARN_TIME = Param("learn_time", 0.0, "Seconds of event time after the first sample after which scoring may "
                       "start before the rule's warmup samples, once a quarter of them have been seen "
                       "(0: samples only).", low=0.0)
    PARAMS = ()

    # what makes a rule's detectors, and the defaults: Detector's own (a compiled class cannot inherit from it)
    factory = vars(Detector)["factory"]
    defaults = vars(Detector)["defaults"]

    def __init__(self, **params):
        self._setup(settings_from(type(self), params))

    @classmethod
    def shared_settings(cls, values):
        """The :class:`Settings` of resolved ``values``, made once per rule (by its factory) for all its series."""
        return cls.SETTINGS(values)

    def _setup(self, cfg):
        """Build the steps on the rule's settings ``cfg`` (shared, never changed)."""
        self.cfg = cfg
        self._n = 0
        self._t0 = _INF  # the first event time seen (inf: none yet)
        self._t1 = _NAN  # the latest event time seen (NaN: none yet)
        self._gap = 0.0  # the series' usual interval between samples (0: none yet; see span)
        steps = type(self).STEPS
        self.surprise = steps[0][1](cfg)
        self.error = PredictionError(cfg)
        self.day = TimeOfDay(cfg)
        self.likelihood = Likelihood(cfg)
        self.extremes = Extremes(cfg)
        self.stuck = Stuck(cfg)
        self.spikes = Spike(cfg) if cfg.spike else None  # (off: left out, see Step.SWITCH)
        self.shifts = Shift(cfg) if cfg.shift else None
        self.spreads = Spread(cfg) if cfg.spread else None
        self.suppression = Suppression(cfg)
        self.suppression.counter = Counter(cfg) if cfg.counter_time else None  # (see counter)
        self.suppression.views = Views(cfg) if cfg.peak else None  # (see views)

    @property
    def counter(self):
        """The counter step (:class:`Counter`; None while it is off). The suppression step holds it, in its
        object's padding, as it holds ``_why``: the pipeline is 144 B, one 144 B block, and one more reference
        would take a 160 B block."""
        return self.suppression.counter

    @property
    def views(self):
        """The views step (:class:`Views`; None while it is off), held by the suppression step as the counter
        step is (:attr:`counter`)."""
        return self.suppression.views

    def __getattr__(self, name):
        """A setting, read under its own name (``det.pmin``) from the rule's settings."""
        values = self.cfg.values
        if name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def _why(self):
        """The evidence of the last score (a ``_WHY_`` code, for the reason of a flag; not state). The
        suppression step holds it (in the compiled object's padding): the pipeline is 144 B, not 152 (a 160 B
        block)."""
        return self.suppression._why

    def params(self):
        """The settings this instance was built with."""
        return dict(self.cfg.values)

    @classmethod
    def state_identity(cls, params):
        """``(params, layout)`` that identify the learned state of a rule with ``params`` (every setting): the
        settings of a step that is off are left out (they change nothing), and the layout holds the steps that
        are on. A rule that switches no step on has the same fingerprint as a rule without those settings
        (without ``spike``). The settings in ``_SCORING`` are left out too: they change how a sample is scored,
        not what a series' state holds, so a checkpoint carries over when they change."""
        out = {name: value for name, value in params.items() if name not in _SCORING}
        on = [step for _, step in cls.STEPS if step.SWITCH is None or params[step.SWITCH]]
        used = {name for step in on for name in step.USES}
        for _, step in cls.STEPS:
            if step not in on:
                for p in step.PARAMS:
                    if p.name not in used:
                        del out[p.name]
        return out, _layout(cls.STEPS, cls.SETTINGS(params))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.cfg.values.items())
        return f"{type(self).__name__}({args})"

    def score_one(self, x, t=None):
        """Score ``x`` without learning it (the likelihood as if ``x`` were next).

        A twin holding this detector's settings and state processes ``x``. It is
        built from the settings already resolved, not through the class's
        constructor: a subclass's own (``riverguard.river``'s) would check every
        setting again (about 14 of the 22 us a score took that way).
        """
        cls = type(self)
        twin = cls.__new__(cls)
        twin._setup(self.cfg)
        twin.load_state(self.dump_state())
        return twin.process(x, t)

    def learn_one(self, x, t=None):
        self.process(x, t)

    def process(self, x, t=None):
        """Score ``x`` (event time ``t`` in seconds, or None), then learn it."""
        x = float(x)  # (an integer field's value: compiled, x is a C double already)
        n = self._n
        if fabs(x) > _HUGE:  # no measurement: flagged (past the learning), never learned (it would overflow)
            self.suppression._why = _WHY_EXTREME
            if n == 0 or self._warming(n, _NAN if t is None else t, self._t0):
                return 0.0
            return 1.0 if self.stuck.wild(x) else 0.0  # (a sensor stuck at it: flagged once, Stuck.wild)
        self._n = n + 1
        now = _NAN if t is None else t
        if self._t0 == _INF and now == now:  # the first event time seen
            self._t0 = now
        t1 = self._t1
        dt = now - t1  # seconds since the latest sample (NaN: unknown; < 0: a late sample)
        if now > t1 or t1 != t1:
            self._t1 = now
        span = self.span(dt)
        gap = self._gap  # the usual interval before this sample
        slack = 0.5 * gap
        if dt > 0.0:
            self._rhythm(dt)
        extremes = self.extremes
        if n == 0:
            extremes.first(x)
            self.error._mean = x
            self.stuck.first(x)
            if self.spikes is not None:
                self.spikes.first(x)
            if self.shifts is not None:
                self.shifts.first(x)
            if self.spreads is not None:
                self.spreads.first(x)
            if self.suppression.counter is not None:
                self.suppression.counter.first(x)
            if self.suppression.views is not None:
                self.suppression.views.first(x, now)
            return 0.0
        stuck = self.stuck.score(x, n > self.cfg.learn, span, extremes._lo, extremes._hi, gap)  # 4. a run of repeats
        lo = extremes._lo  # the range before x
        lmean = extremes._lmean  # the long-run mean before x
        width = extremes._hi - lo
        spikes = self.spikes
        counter = self.suppression.counter
        counts = False  # the series is a cumulative counter (before x)
        burst = 0.0
        if counter is not None:  # 4e. a counter, and a burst of its increase
            counts = span > 0.0 and counter.counts(gap)  # (without event times the step is not used)
            burst = counter.observe(x, n, n >= self.cfg.learn_quarter, span, gap, counts)
        learnt = x  # past the learning, a wild value is learned as one _LONG_CLIP widths of the range beyond it
        if n >= self.cfg.learn and width > 0.0:  # (a series that was constant learns its first change as it is)
            learnt = _bound(x, lo, extremes._hi)
        # 3. new extremes (an episode is over where the recent level is back: the level shift step's, else x)
        new_extreme = extremes.observe(x, n, span, slack, counts, x if self.shifts is None else self.shifts._mean,
                                       learnt, self.day, t)
        if width > 0.0 and extremes._hi == extremes._lo and spikes is not None:
            # an episode in a series that had been one constant is over (Extremes.observe): the spike step's mean
            # and scale are that constant's again, as they were before it (as the long-run mean and variance are)
            spikes.constant(extremes._lo)
        if extremes.held and spikes is not None and n >= self.cfg.learn_quarter and spikes.sharp(x):
            extremes.report(extremes.held)  # too short an excursion, but a spike: at once
            new_extreme = True
        if new_extreme and extremes.again and self.cfg.extreme_once and self.suppression.active(now):
            new_extreme = False  # the climb that was reported goes on: not a distinct incident
        surprise = self.surprise
        raw = surprise.raw(_level(x, lo, width, self.cfg.nlevels), n)  # 1a. surprise
        error = self.error
        var = error._var
        z0 = error.score(x)  # 1b. prediction error, for the series and for the time of day
        day = self.day
        z = day.observe(x, extremes._lmean, t, width, var, self.cfg.z_scale, z0, gap)
        # which evidence the score comes from (for the reason of a flag)
        why = _WHY_SURPRISE if raw >= z else (_WHY_HOUR if z > z0 else _WHY_ERROR)
        if z > raw:
            raw = z
        elif raw < 0.0:
            raw = 0.0
        error.learn(x)
        views = self.suppression.views
        own = 0  # 7. the views step's own report (its evidence), if any
        agrees = True  # a time-of-day extreme or a new extreme counts (7: a view agrees)
        if views is not None:
            own = views.observe(x, n, now, dt, self._t0, span, gap, day.far_mean, day.ready)
            agrees = views.agrees
        score = self.likelihood.score(raw, n, dt, gap)  # 2. likelihood
        if score > self.cfg.quiet_cap and self.suppression.active(now):
            score = self.cfg.quiet_cap  # damped, it stays under fire: before another step may outscore it
        tod = False  # the score is a time-of-day extreme
        if day.hit and agrees and self.cfg.day_score > score:
            score = self.cfg.day_score
            tod = True
            why = _WHY_HOUR
        if new_extreme and agrees and self.cfg.extreme >= score:  # (a tie: the extreme, which gets through a suppression)
            score = self.cfg.extreme
            tod = False
            why = _WHY_EXTREME
        if stuck > score:
            score = stuck if stuck < 1.0 else 1.0
            tod = False
            why = _WHY_STUCK
        if spikes is not None:  # 4b. a spike that lasts (on in sentinel, opt-in in context)
            spike = spikes.score(x, n >= self.cfg.learn_quarter, self.stuck._rep, span, self._grown(n, gap), learnt)
            if spike > score:
                score = spike
                tod = False
                why = _WHY_SPIKE
        shifts = self.shifts
        if shifts is not None:
            shift = shifts.score(x, n, n >= self.cfg.learn_quarter, span, gap, -1 if counts else 0)
            if shift > score:
                score = shift
                tod = False
                why = _WHY_SHIFT
        spreads = self.spreads
        if spreads is not None:
            spread = spreads.observe(x, n, n >= self.cfg.learn_quarter, span, gap)
            if spread > score:
                score = spread
                tod = False
                why = _WHY_SPREAD
        if burst > 0.0 and burst >= score:
            score = burst
            tod = False
            why = _WHY_BURST
        self.suppression._why = why
        warming = self._warming(n, now, self._t0)
        if warming:  # 5. minimum history
            score = 0.0
            extremes.settle()  # (no excursion outlives the learning: see Extremes.settle)
        out = self.suppression.apply(score, tod, now)  # 6. suppression
        if out >= self.cfg.fire and spikes is not None:  # (a cluster of far-out values while reported: see Spike)
            spikes.reported()
        if own and not warming and self.cfg.extreme > out:  # (neither damped by a suppression nor starting one)
            out = self.cfg.extreme
            self.suppression._why = own
        if out >= self.cfg.fire and views is not None:  # (a value reported already is not reported again as lone)
            views._pend = False
        return out

    def span(self, dt):
        """The event time that a sample ``dt`` seconds after the latest one stands for (in the duration of an
        excursion or a spike): ``dt``, at most twice the series' usual interval (so the first sample after a
        gap is not a lasting change); 0 for a late sample, NaN without event times."""
        g = self._gap + self._gap
        if g > 0.0 and dt > g:
            return g
        if dt < 0.0:
            return 0.0
        return dt

    def _rhythm(self, dt):
        """Learn an interval of ``dt`` > 0 seconds into the usual interval: an exponentially weighted mean of
        the intervals, each clipped at 4 times it (a gap moves it little)."""
        g = self._gap
        if g > 0.0:
            self._gap = g + _RHYTHM * ((dt if dt < 4.0 * g else 4.0 * g) - g)
        else:
            self._gap = dt

    def _grown(self, n, gap):
        """Whether a series with ``n`` samples before this one, ``gap`` seconds apart as a rule, is old enough
        for the spike step to report a burst of far-out values: about an hour of its samples (``_FAR_YOUTH``
        ``far_time``), however early its first timestamp."""
        return n * gap >= _FAR_YOUTH * self.cfg.far_time

    def _warming(self, n, now, t0):
        """Whether a sample after ``n`` others (at event time ``now``; the first was at ``t0``) scores 0: fewer
        than ``learn`` samples before it, unless ``learn_time`` seconds of event time and a quarter of them."""
        return n < self.cfg.learn and not (self.cfg.learn_time and n >= self.cfg.learn_quarter and now - t0 >= self.cfg.learn_time)

    # -- explanations ([output] explain) ------------------------------------------------------

    def explain(self, threshold, t=None):
        """Before the next sample (event time ``t``): ``(expected, lower, upper)``, None before any sample.

        ``expected`` is the exponentially weighted mean of the values (weight
        ``fading``). ``lower`` and ``upper`` bound the values around it that
        would not score ``threshold`` at this moment, with every step that
        reads the value: the prediction error (the series' and the time-of-day
        slot's) and the surprise of each level through the likelihood of the
        short average, new extremes (not a counter's new highs), time-of-day
        extremes, spikes, level shifts, bursts of change and a counter's
        bursts (when those steps are on), and the damping of a suppression in progress. A repeat of the previous value may still be
        flagged inside (stuck). When the expected value itself would be
        flagged, the nearest such range; when every value would be,
        ``lower == upper == expected``. An edge is None when nothing on that
        side would be flagged; both are None before the detector scores
        (``learn``). Learns nothing.
        """
        k = self.explain_into(threshold, t, _BAND)
        if k == 0:
            return None
        lower = _BAND[1]
        upper = _BAND[2]
        return (_BAND[0], lower if lower == lower else None, upper if upper == upper else None)

    def reason(self, x, explanation=None):
        """Why ``x``, just processed and flagged, was: the evidence that made the score.

        ``stuck`` (a run of repeats), ``time_of_day`` (beyond the range of the
        slot, or far from the slot's mean), ``novelty`` (an unusual sequence of
        levels or pattern); ``spike`` or ``dip`` for a spike (step 4b: one
        sample, never a level shift; ``spike`` too for a lone value, step 7,
        which is reported on the sample after it); ``level_shift`` for a level shift (4c),
        ``volatility`` for a burst of change (4d), ``burst`` for a burst of a
        counter's increase (4e); for a new extreme or the likelihood of prediction
        errors, ``level_shift`` when the recent level (the expected value) had
        moved more than one long-run standard deviation from the long-run
        mean towards ``x``, or the likelihood was built up over earlier
        samples more than by ``x``; else ``spike`` or ``dip`` as ``x`` is
        above or below the expected value.
        """
        why = self.suppression._why
        if why == _WHY_STUCK:
            return "stuck"
        if why == _WHY_HOUR:
            return "time_of_day"
        if why == _WHY_SURPRISE:
            return "novelty"
        expected = self.error._mean  # (it has learned x: still on the same side of x)
        if explanation is not None and explanation[0] is not None:
            expected = explanation[0]
        if why == _WHY_SPIKE:
            return "spike" if x >= expected else "dip"
        if why == _WHY_LONE:  # (the lone value was the sample before x)
            return "spike"
        if why == _WHY_SHIFT:
            return "level_shift"
        if why == _WHY_SPREAD:
            return "volatility"
        if why == _WHY_BURST:
            return "burst"
        # the recent level had moved from the long-run mean by more than a long-run standard deviation,
        # towards x; or the likelihood of the errors was built up over earlier samples
        ext = self.extremes
        moved = expected - ext._lmean
        if (moved * moved > ext._lvar and (moved > 0.0) == (x > ext._lmean)) or (
            why == _WHY_ERROR and self.likelihood.built
        ):
            return "level_shift"
        return "spike" if x >= expected else "dip"

    def explain_into(self, threshold, t, out):
        """:meth:`explain` into ``out[0]``, ``out[1]``, ``out[2]`` (the expected value, the band's lower and upper
        edges; NaN: none; the caller's, not kept in every series); 0 before any sample, 1 for the expected value
        alone (no band yet), 2 with the band."""
        n = self._n
        out[1] = _NAN
        out[2] = _NAN
        if n == 0:
            out[0] = _NAN
            return 0
        error = self.error
        mean = error._mean
        out[0] = mean
        now = _NAN if t is None else t
        t0 = self._t0
        if t0 == _INF and now == now:
            t0 = now
        if self._warming(n, now, t0):
            return 1  # 5. nothing is scored yet
        sup = self.suppression
        lik = self.likelihood
        cfg = self.cfg
        if threshold != cfg.xthr:
            cfg.limits(threshold)
        eff = cfg.xeff  # the smallest score flagged at threshold
        quiet = sup.active(now)
        f = self.cfg.damp if quiet else 1.0
        through = quiet and self.cfg.day_through and not sup._qday
        ext = self.extremes
        lo = ext._lo
        width = ext._hi - lo
        lmean = ext._lmean
        sp = self.span(now - self._t1)  # the event time the next sample stands for, give or take slack
        ctr = self.suppression.counter
        counts = ctr is not None and sp > 0.0 and ctr.counts(self._gap)  # a cumulative counter: no new high, no level above
        # 1 + 2. the likelihood: a raw score of rmax or more is flagged (rmax > 1: none is); in a suppression that a
        # time-of-day extreme gets through, one of rday or more outscores that extreme (day_score), so the pipeline
        # reports the likelihood instead, damped: it hides the extreme (ymask), as a spike does
        sd = _deviation(self.cfg, lik._s2, lik._mu, self._gap)
        u = cfg.xud if quiet else cfg.xu
        rmax = _INF
        if u < _INF:
            rmax = lik._avg + (lik._mu + u * sd - lik._avg) / self.cfg.short
        rday = _INF
        if through and cfg.xdayq < _INF:
            rday = lik._avg + (lik._mu + cfg.xdayq * sd - lik._avg) / self.cfg.short
        if rmax <= 0.0 or rmax != rmax:
            out[1] = mean  # flagged whatever the value
            out[2] = mean
            return 2
        zl = -_INF  # the series' prediction error: zl < x < zu
        zu = _INF
        nb = 0  # levels of the surprise that some value is flagged at (0: none)
        if rmax <= 1.0:
            zh = rmax * self.cfg.z_scale * sqrt(error._var)
            if zh == 0.0:  # a series that never varied: any change scores 1
                out[1] = mean
                out[2] = mean
                return 2
            zl = mean - zh
            zu = mean + zh
        yall = rday <= 0.0  # every value's raw score hides a time-of-day extreme
        yl = -_INF  # a raw score under rday, from the series' prediction error: yl < x < yu
        yu = _INF
        if rday <= 1.0 and not yall:
            yh = rday * self.cfg.z_scale * sqrt(error._var)
            yl = mean - yh
            yu = mean + yh
        ry = rmax if rmax < rday else rday
        if ry <= 1.0:
            nb = self.surprise.peek(_LEVELS)
            bad = False
            for b in range(nb):
                if _LEVELS[b] >= ry:
                    bad = True
            if not bad:
                nb = 0
            elif not width > 0.0:  # every value is of the first level
                if _LEVELS[0] >= rmax:
                    out[1] = mean
                    out[2] = mean
                    return 2
                yall = yall or _LEVELS[0] >= rday
                nb = 0
        # 1b + 3. the time-of-day slot: its prediction error (with the likelihood) and its range
        sl = -_INF  # sl < x < su
        su = _INF
        tl = -_INF  # tl <= x <= tu
        tu = _INF
        vl = -_INF  # a raw score under rday, from the slot's prediction error: vl < x < vu
        vu = _INF
        day = self.day
        slot = day.slot_at(t)
        lam = _long_weight(self.cfg, n)
        shrink = (1.0 - lam) if self.cfg.day_detrend else 1.0  # the slot keeps (x - lmean') = shrink * (x - lmean)
        base = lmean if self.cfg.day_detrend else 0.0
        if slot >= 0 and shrink > 0.0:
            vis = day._visits[slot]
            if vis and vis >= self.cfg.day_visits:
                if ry <= 1.0 and self.cfg.day_fading:
                    dvar = day._stat[2 * slot + 1]
                    if dvar > 0.0:
                        c = day._stat[2 * slot]
                        if rmax <= 1.0:
                            h = rmax * self.cfg.z_scale * sqrt(dvar)
                            sl = base + (c - h) / shrink
                            su = base + (c + h) / shrink
                        if rday <= 1.0 and not yall:
                            h = rday * self.cfg.z_scale * sqrt(dvar)
                            vl = base + (c - h) / shrink
                            vu = base + (c + h) / shrink
                dlo = day._lo[slot]
                dhi = day._lo[self.cfg.slots + slot]
                if (
                    day._known(vis, dlo, dhi, width) and not yall
                    and (self.cfg.day_score if through else self.cfg.day_score * f) >= eff
                ):
                    dm = self.cfg.day_margin * width
                    tl = base + (dlo - dm) / shrink
                    tu = base + (dhi + dm) / shrink
        ymask = rday <= 1.0 and (tl > -_INF or tu < _INF)
        # 3. new extremes: beyond the reference range by its margin (xl, xu), and far (d) from the long-run mean
        # (with extreme_once, not on the side of the last new extreme while a suppression lasts and the
        # values have stayed beyond the range there since: it would continue that climb)
        xon = self.cfg.extreme * f >= eff
        xl = -_INF
        xu = _INF
        d = 0.0
        lower = zl if zl > sl else sl
        if tl > lower:
            lower = tl
        upper = zu if zu < su else su
        if tu < upper:
            upper = tu
        hole = False
        spk = self.spikes
        slack = 0.5 * self._gap
        fl = lmean  # fl <= x <= fu: not far from the long-run mean nor from the hour's (Extremes.observe)
        fu = lmean
        ql = _INF  # an excursion that has not lasted yet: a new extreme only if also a spike (x <= ql, x >= qu)
        qu = -_INF
        # a new extreme not flagged (damped) still hides a time-of-day extreme that would get through a
        # suppression (xmask), as a spike or a level shift does
        hour = tl > -_INF or tu < _INF
        xmask = _hides(self.cfg.extreme, xon, through, hour, self.cfg.day_score)
        if (xon or xmask) and not _lasts(ext._run + sp, _lone(self.cfg.extreme_time, slack), slack):
            w = spk.bar() if spk is not None and n >= self.cfg.learn_quarter else -1.0
            if w >= 0.0:
                ql = spk._mean - w
                qu = spk._mean + w
            else:
                xon = False
                xmask = False
        if xon or xmask:
            mx = self.cfg.margin * (ext._rhi - ext._rlo)
            xl = ext._rlo - mx
            xu = ext._rhi + mx
            if qu > xu:
                xu = qu
            if ql < xl:
                xl = ql
            if self.cfg.extreme_once and quiet:
                if ext._climb > 0:
                    xu = _INF
                elif ext._climb < 0:
                    xl = -_INF
            if counts:  # a counter's new high is how it counts
                xu = _INF
            d = self.cfg.extreme_sd * sqrt(ext._lvar)
            fl = lmean - d
            fu = lmean + d
            hs = day.settled(t, self._gap)
            if hs >= 0:
                h = day.reach(hs, width)
                c = base + day._stat[2 * hs]
                if c - h > fl:
                    fl = c - h
                if c + h < fu:
                    fu = c + h
                if fl > fu:  # every value is far
                    fl = _INF
                    fu = -_INF
        if xon:
            # above xu, the values in fl..fu are not flagged
            if fu <= xu:
                up = xu
            elif fl <= xu:
                up = fu
            else:
                up = _NAN
                hole = True
            if fl >= xl:
                down = xl
            elif fu >= xl:
                down = fl
            else:
                down = _NAN
                hole = True
            if up < upper:
                upper = up
            if down > lower:
                lower = down
        hole = hole or xmask
        # 4b. spikes: a value reach() mads or more from the spike step's mean (pl < x < pu: not a spike) scores
        # spike_score, damped in any suppression; where it is not flagged it may still hide a time-of-day extreme
        # that would get through a suppression (mask: the spike outscores it, and is damped)
        pl = -_INF
        pu = _INF
        spon = False
        mask = False
        w = 0.0
        if spk is not None:
            if spk.lasting(sp):
                w = spk.width()
            wf = spk.far_width(n >= self.cfg.learn_quarter and self._grown(n, self._gap), sp)  # (a burst: nearer)
            if wf > 0.0 and not (0.0 < w < wf):
                w = wf
        if w > 0.0:
            spon = self.cfg.spike_score * f >= eff
            mask = _hides(self.cfg.spike_score, spon, through, hour, self.cfg.day_score)
            if spon or mask:
                pl = spk._mean - w
                pu = spk._mean + w
            if spon:
                if pl > lower:
                    lower = pl
                if pu < upper:
                    upper = pu
            hole = hole or mask
        # 4c. level shifts: a value that leaves the recent level reach() typical distances or more from the
        # long-run mean, and is at least as far out as the recent level was (hl < x < hu: not a shift); 4d. bursts
        # of change: a value whose change from the latest one lifts the recent size of the changes reach_up()
        # typical distances or more above its long-run mean, and is at least as large as that size was (gl < x <
        # gu: not a burst). Both score shift_score once they have lasted, damped in any suppression (son: flagged);
        # where one is not flagged it may still hide a time-of-day extreme, as a spike does (smask)
        son = self.cfg.shift_score * f >= eff
        smask = _hides(self.cfg.shift_score, son, through, hour, self.cfg.day_score)
        hl = -_INF
        hu = _INF
        hon = False
        hmask = False
        shf = self.shifts
        if (son or smask) and shf is not None and n >= self.cfg.learn_quarter and shf.ready(sp):
            unit = shf.unit(shf._long, True)
            if unit > 0.0:
                a = shf.weight(n, sp, shf.window(self._gap))
                r = shf.reach() * unit
                hu = _INF if counts else shf.upper(a, unit, shf._long, r)
                hl = shf.lower(a, unit, shf._long, r)
                hon = son
                hmask = smask
        gl = -_INF
        gu = _INF
        gon = False
        gmask = False
        spr = self.spreads
        if (son or smask) and spr is not None and n >= self.cfg.learn_quarter and spr.ready(sp):
            unit = spr.unit(spr._long, False)
            if unit > 0.0:
                # a change of ymin or more from the latest value (inf: none) completes the burst
                ymin = spr.upper(spr.weight(n, sp, spr.window(self._gap)), unit, spr._long, spr.reach_up() * unit)
                gl = spr._last - ymin
                gu = spr._last + ymin
                gon = son
                gmask = smask
        # 4e. a counter's burst: a value more than cu above the latest one lifts the recent increase over the bar
        # (cu: none; -inf: every value, its recent increase being over the bar already), scoring extreme
        cu = _INF
        con = False
        cmask = False
        if counts and n >= self.cfg.learn_quarter and sp > 0.0 and not ctr._said and ctr._top > 0.0:
            con = self.cfg.extreme * f >= eff
            cmask = _hides(self.cfg.extreme, con, through, hour, self.cfg.day_score)
            if con or cmask:
                need = ctr.bar() - ctr._rise * ctr.fade(n, sp, self._gap)
                cu = ctr._last + need if need >= 0.0 else -_INF
        if hon:
            if hl > lower:
                lower = hl
            if hu < upper:
                upper = hu
        if con and cu < upper:
            upper = cu
        if gon:
            if gl > lower:
                lower = gl
            if gu < upper:
                upper = gu
        hole = hole or hmask or gmask or cmask
        # 7. the views step: a time-of-day extreme or a new extreme counts only where a view agrees (agree: x >= al
        # or x <= ad; everywhere while gate is off), a peak with a rise that completes its hour scores extreme
        # (x >= pk; inf: none), and so does a value back under half of lone after a lone one (x < le; -inf: none).
        # Its day is rolled here as the sample will roll it (the same event time, next).
        vw = self.suppression.views
        gate = False
        al = _INF
        ad = -_INF
        pk = _INF
        le = -_INF
        if vw is not None and -_INF < now < _INF:
            vdays = vw._days
            usual = vw._usual
            if vw.rolls(now):  # (the sample will start a new day: its peaks as they will be, the state unchanged)
                vdays, usual = vw.rolled()
            ka = self.cfg.agree
            dready = False  # the slot can say whether the value is far from its mean (TimeOfDay.ready)
            if slot >= 0 and self.cfg.day_fading:
                dvar = day._stat[2 * slot + 1]
                if day.says_far(day._visits[slot], dvar, self._gap):  # (z_scale of its deviations: far_mean)
                    dready = True
                    h = self.cfg.z_scale * sqrt(dvar)
                    c = day._stat[2 * slot]
                    if shrink > 0.0:
                        al = base + (c + h) / shrink
                        ad = base + (c - h) / shrink
                    elif fabs(c) >= h:  # (the slot keeps 0 whatever the value)
                        al = -_INF
            if ka and (dready or vw.ready(vdays, n, now, t0)):
                gate = True
                if vdays >= _PEAK_FEW:
                    unit = vw.unit(usual)
                    if vw._level + ka * unit < al:
                        al = vw._level + ka * unit
                    if vw._level - ka * unit > ad:
                        ad = vw._level - ka * unit
                if n >= _VIEW_WARM and now - t0 >= _WEEK:
                    up, down = vw.rise_edge(ka)
                    if up < al:
                        al = up
                    if down > ad:
                        ad = down
            if (vdays >= _PEAK_FEW and n >= _VIEW_WARM and now - t0 >= _WEEK and not vw._done
                    and vw._run + sp >= _PEAK_TIME and now - vw._tpeak >= _PEAK_QUIET and self.cfg.extreme >= eff):
                pk = vw._level + self.cfg.peak * vw.unit(usual)
                up, down = vw.rise_edge(self.cfg.rise)
                if up > pk:
                    pk = up
            if self.cfg.lone and self.cfg.extreme >= eff:  # a lone value before: reported where x < le
                le = vw.lone_edge(n, now, t0)
        if not nb and not hole and not ymask and not gate and pk == _INF and le == -_INF:
            # every constraint is an interval: the band is where they overlap
            if lower > upper:
                out[1] = mean  # every value would be flagged
                out[2] = mean
            else:
                out[1] = lower if lower > -_INF else _NAN
                out[2] = upper if upper < _INF else _NAN
            return 2
        # otherwise the segments between the sorted cut points: each is flagged or not as a whole, and
        # the band is the run of unflagged ones that holds the expected value (or the nearest to it)
        cuts = _CUTS
        m = 0
        m = _cut(cuts, _cut(cuts, m, zl, zu), sl, su)
        m = _cut(cuts, _cut(cuts, m, tl, tu), xl, xu)
        if xon or xmask:
            m = _cut(cuts, m, fl, fu)
        m = _cut(cuts, m, pl, pu)
        m = _cut(cuts, _cut(cuts, _cut(cuts, m, hl, hu), gl, gu), cu, _INF)
        if gate:
            m = _cut(cuts, m, ad, al)
        m = _cut(cuts, _cut(cuts, m, pk, _INF), le, _INF)
        if ymask:
            m = _cut(cuts, _cut(cuts, m, yl, yu), vl, vu)
        if nb:
            for b in range(1, nb):
                cuts[m] = lo + b * width / nb
                m += 1
        for i in range(1, m):
            v = cuts[i]
            j = i - 1
            while j >= 0 and cuts[j] > v:
                cuts[j + 1] = cuts[j]
                j -= 1
            cuts[j + 1] = v
        best = _INF
        start = _NAN
        inside = False
        for k in range(m + 1):
            left = -_INF if k == 0 else cuts[k - 1]
            right = _INF if k == m else cuts[k]
            if k == 0:
                x = right - 1.0 - abs(right)
            elif k == m:
                x = left + 1.0 + abs(left)
            else:
                x = 0.5 * (left + right)
            ok = left <= right and zl < x < zu and sl < x < su and (
                tl <= x <= tu or (gate and ad < x < al) or (mask and not pl < x < pu) or (hmask and not hl < x < hu) or (gmask and not gl < x < gu)
                or (cmask and x > cu)
                or (xmask and (x > xu or x < xl) and not fl <= x <= fu)
                or (ymask and not (yl < x < yu and vl < x < vu and (
                    not nb or _LEVELS[_level(x, lo, width, nb)] < rday
                )))
            )
            if ok and spon:
                ok = pl < x < pu
            if ok and hon:
                ok = hl < x < hu
            if ok and gon:
                ok = gl < x < gu
            if ok and con:
                ok = x <= cu
            if ok and xon and (x > xu or x < xl) and not (gate and ad < x < al):
                ok = fl <= x <= fu
            if ok and (x >= pk or x < le):
                ok = False
            if ok and nb:
                ok = _LEVELS[_level(x, lo, width, nb)] < rmax  # x's level, as the surprise step sees it
            if ok and not inside:
                start = left
                inside = True
            if inside and (not ok or k == m):
                end = right if ok else left
                dist = 0.0 if start <= mean <= end else (start - mean if mean < start else mean - end)
                if dist < best:
                    best = dist
                    out[1] = start if start > -_INF else _NAN
                    out[2] = end if end < _INF else _NAN
                inside = False
        if best == _INF:  # every value would be flagged
            out[1] = mean
            out[2] = mean
        return 2

    def dump_state(self):
        """The learned state as one flat record, ``[scalars, *buffers]`` (plain bytes; see :func:`_describe`
        and ``STATE_LAYOUT``); :meth:`state_by_name` shows it by name."""
        packer, scalars, buffers, _ = _record(self)
        values = [self._n, self._t0, self._t1, self._gap]
        for name, fields in scalars:
            step = getattr(self, name)
            for attr, _, _, _ in fields:
                values.append(getattr(step, attr))
        out = [packer.pack(*values)]
        for name, buffer in buffers:
            step = getattr(self, name)
            out.append(step._dump_buffer(buffer))
        return out

    def load_state(self, state):
        """Restore what :meth:`dump_state` gave; ValueError if it does not fit.

        The detector is then partly restored: restore into a fresh one
        (``Sentinel.factory(params).restore(state)``), as checkpoints do.
        """
        packer, scalars, buffers, _ = _record(self)
        form = type(state)
        if (
            (form is not list and form is not tuple)
            or len(state) != len(buffers) + 1
            or type(state[0]) is not bytes
            or len(state[0]) != packer.size
        ):
            raise ValueError(f"bad {type(self).name} state")
        values = packer.unpack(state[0])
        n = values[0]
        if not 0 <= n < _MAX_COUNT:
            raise ValueError(f"bad {type(self).name} state (n)")
        self._n = n
        self._t0 = values[1]
        self._t1 = values[2]
        self._gap = values[3]
        if not 0.0 <= self._gap < _INF:
            raise ValueError(f"bad {type(self).name} state (gap)")
        i = 4
        for name, fields in scalars:
            step = getattr(self, name)
            for attr, kind, low, high in fields:
                v = values[i]
                i += 1
                if kind != _FLOAT:
                    q = v
                    if q < low or q >= high:
                        raise ValueError(f"bad {type(self).name} state ({name})")
                    if kind == _BOOL:
                        v = q == 1
                setattr(step, attr, v)
            if not step._fits():
                raise ValueError(f"bad {type(self).name} state ({name})")
        i = 1
        for name, buffer in buffers:
            step = getattr(self, name)
            if not step._load_buffer(buffer, state[i]):
                raise ValueError(f"bad {type(self).name} state ({name}.{buffer})")
            i += 1

    def state_by_name(self):
        """The learned state by name, for reading: ``{"n": .., "t0": .., "t1": .., "gap": .., step: {name: value}}``, every name
        from the steps' ``STATE`` and ``BUFFERS`` (what :meth:`dump_state` saves, read by :func:`read_record`)."""
        return read_record(_record(self)[3], self.dump_state())


def read_record(layout, record):
    """A record that :meth:`Pipeline.dump_state` saved, by name: ``{"n": .., "t0": .., "t1": .., "gap": .., step: {name: value}}``.

    ``layout`` is the layout it was saved in (``STATE_LAYOUT``, or a rule's
    :meth:`Pipeline.state_identity`); buffers are given as the bytes saved.
    ValueError if the record does not fit the layout.
    """
    head, _, tail = layout.partition(" | ")
    _, known, names = head.partition(": ")
    fields = [f.rsplit(":", 1) for f in names.split()]
    buffers = [b.rsplit(":", 1) for b in tail.split()]
    if not known or any(len(part) != 2 for part in fields + buffers):
        raise ValueError(f"not a state layout: {layout[:60]!r}")
    if type(record) is not list or len(record) != 1 + len(buffers) or type(record[0]) is not bytes:
        raise ValueError("the record does not fit its layout")
    try:
        values = Struct("<" + "".join(["d" if code == "d" else "q" for _, code in fields])).unpack(record[0])
    except StructError:
        raise ValueError("the record does not fit its layout") from None
    out = {}
    for (name, code), v in zip(fields, values):
        step, _, key = name.rpartition(".")
        (out.setdefault(step, {}) if step else out)[key] = (v == 1) if code == "?" else v
    for (name, _), data in zip(buffers, record[1:]):
        step, _, key = name.rpartition(".")
        out.setdefault(step, {})[key] = data
    return out


def compose(surprise, settings, **defaults):
    """``(STEPS, SETTINGS, PARAMS, STATE_LAYOUT)`` of a pipeline whose surprise step is ``surprise``.

    ``settings`` is the :class:`Settings` subclass with the surprise step's own
    settings, which the pipeline takes as its ``SETTINGS``; ``defaults`` override the steps' defaults. ``STATE_LAYOUT`` names every
    part of the saved record, in order, with its type (:func:`_describe`), for
    the steps that have a ``SWITCH`` off (as by default); it goes into the rule
    fingerprint (through :meth:`Pipeline.state_identity`, which adds the steps
    a rule switches on), so a checkpoint saved in another layout starts fresh
    rather than being misread.
    """
    steps = (
        ("surprise", surprise),
        ("error", PredictionError),
        ("day", TimeOfDay),
        ("likelihood", Likelihood),
        ("extremes", Extremes),
        ("stuck", Stuck),
        ("spikes", Spike),
        ("shifts", Shift),
        ("spreads", Spread),
        ("counter", Counter),
        ("views", Views),
        ("suppression", Suppression),
    )
    params = [p for _, step in steps for p in step.PARAMS] + [Pipeline.LEARN, Pipeline.LEARN_TIME]
    unknown = set(defaults) - {p.name for p in params}
    if unknown:
        raise TypeError(f"no such parameters: {', '.join(sorted(unknown))}")
    params = [p.but(default=defaults[p.name]) if p.name in defaults else p for p in params]
    return steps, settings, tuple(params), _layout(steps, settings({p.name: p.default for p in params}))


def _layout(steps, cfg):
    """The saved record's layout (:func:`_describe`) with the steps on under the settings ``cfg``."""
    return _describe([(name, _built(step, cfg)) for name, step in steps])[3]


def _built(step, cfg):
    """A ``step`` built on ``cfg``, or None if it has a ``SWITCH`` that ``cfg`` turns off."""
    return step(cfg) if step.SWITCH is None or cfg.values[step.SWITCH] else None
