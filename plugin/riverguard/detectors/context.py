# cython: infer_types=True, annotation_typing=False, warn.unreachable=False
"""Context: novelty of recent value patterns (CAD OSE style), calibrated into likelihoods.

Plain Python, compiled with Cython when a C compiler is there at install time
(``context.pxd`` beside it only adds C types; see :mod:`riverguard.detectors.steps`).
"""

try:
    import cython
except ImportError:  # no Cython: this module runs as the plain Python it is
    from riverguard import _compiled as cython  # type: ignore[no-redef]

import math  # noqa: F401 (the Examples use it)

from .params import MAX_COUNT, Param
from .steps import Pipeline, Settings, Surprise, compose

if cython.compiled:
    from cython.cimports.riverguard.detectors.steps import bytes_io, free_buffer, zeroed_bytes
else:
    from .steps import bytes_io, free_buffer, zeroed_bytes

__all__ = ["Context", "ContextSettings", "Patterns"]

#: Odd 32-bit multipliers (fixed: hashing must not depend on the process).
_MULT = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1, 0xD3A2646C | 1, 0xFD7046C5, 0xB55A4F09)


_PLANS = {}


def _plan(orders):
    """Per order: (mask of its history bits, hash multiplier); one tuple per setting, shared by its series."""
    plan = _PLANS.get(orders)
    if plan is None:
        plan = _PLANS[orders] = tuple(((1 << (4 * (k + 1))) - 1, _MULT[j]) for j, k in enumerate(orders))
    return plan


class ContextSettings(Settings):
    """Context's settings (one object per rule): the shared steps' and :class:`Patterns`' (``levels``, ...),
    and what follows from Patterns' for its table and hashing."""

    LEVELS = "levels"

    def __init__(self, values):
        Settings.__init__(self, values)
        orders = self.orders
        self.size = 1 << self.table_bits
        self.hash_shift = 32 - self.table_bits
        self.tmask = (1 << self.table_bits) - 1
        self.inv = 1.0 / len(orders)
        self.hmask = (1 << (4 * (max(orders) + 1))) - 1
        self.plan = _plan(orders)


@cython.no_gc
@cython.cclass
class Patterns(Surprise):
    """Step 1a of context: the fraction of the sample's recent level patterns never seen.

    Each sample is quantised into ``levels`` levels of the range seen so far;
    the ``k`` previous levels followed by the current one form a context for
    each ``k`` in ``orders``. Every context is hashed (fixed multiplicative
    hashing of integers) into one shared table of ``2 ** table_bits``
    saturating byte counts, halved every ``halve_every`` samples so that old
    patterns fade.
    """

    PARAMS = (
        Param("levels", 6, "Quantisation levels of the range seen so far.", low=2, high=16),
        Param("orders", (1, 2, 3, 5, 7), "Context lengths: the number of previous levels in each context.",
              items=Param("order", 0, "", low=0, high=7), length=(1, 8)),
        Param("table_bits", 10, "The count table has 2 ** table_bits entries.", low=6, high=12),
        Param("halve_every", 4096, "Samples between halvings of the count table.", low=1, high=MAX_COUNT),
    )  # fmt: skip
    # the previous levels, 4 bits each, newest lowest; the count table
    STATE = ("hist",)
    BUFFERS = ("table",)

    def __init__(self, cfg):
        self.cfg = cfg
        self._hist = 0
        self._table = zeroed_bytes(cfg.size)

    def __dealloc__(self):
        free_buffer(self._table)

    def raw(self, q, n):
        hist = ((self._hist << 4) | q) & self.cfg.hmask
        self._hist = hist
        table = self._table
        shift = self.cfg.hash_shift
        tmask = self.cfg.tmask
        unseen = 0
        for mask, mult in self.cfg.plan:
            i = (((hist & mask) * mult) >> shift) & tmask
            c = table[i]
            if c == 0:
                unseen += 1
            if c < 255:
                table[i] = c + 1
        if n % self.cfg.halve_every == 0:  # old patterns fade
            for i in range(self.cfg.size):
                table[i] = table[i] >> 1
        return unseen * self.cfg.inv

    def peek(self, out):
        plan = self.cfg.plan
        levels = self.cfg.levels
        table = self._table
        shift = self.cfg.hash_shift
        tmask = self.cfg.tmask
        for q in range(levels):
            hist = ((self._hist << 4) | q) & self.cfg.hmask
            unseen = 0
            for j in range(len(plan)):
                mask, mult = plan[j]
                i = (((hist & mask) * mult) >> shift) & tmask
                if table[i] == 0:
                    # raw() counts a context as it goes: one that an earlier order of this sample
                    # hashed to the same entry has been seen by then
                    seen = False
                    for k in range(j):
                        mask2, mult2 = plan[k]
                        if (((hist & mask2) * mult2) >> shift) & tmask == i:
                            seen = True
                    if not seen:
                        unseen += 1
            out[q] = unseen * self.cfg.inv
        return levels

    def _buffer(self, name, data):
        return bytes_io(self._table, self.cfg.size, data)

    def _fits(self):
        return self._hist <= self.cfg.hmask


_STEPS, _SETTINGS, _PARAMS, _LAYOUT = compose(Patterns, ContextSettings, pmin=1e-12, day_slots=12)


@cython.no_gc
@cython.cclass
class Context(Pipeline):
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
       time-of-day extreme in a suppression another kind of report started),
       and the likelihood's stay under ``fire``.

    Without event times the time-of-day check is skipped. State is the count
    table (1 KiB by default), the slot ranges, means and variances (0.8 KiB
    with 12 two-hour slots, weekends apart) and about thirty numbers.

    Parameters
    ----------
    Declared once in the ``PARAMS`` of the step that uses them
    (:class:`Patterns` here, the steps shared with sentinel in
    :mod:`riverguard.detectors.steps`); ``Context.PARAMS`` lists them all,
    ``docs/parameters.md`` shows them as a table. Two defaults differ from
    sentinel's: ``pmin`` is 1e-12 and ``day_slots`` 12 (two-hour slots keep
    a series within 4 KiB).

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

    STEPS = _STEPS
    SETTINGS = _SETTINGS
    PARAMS = _PARAMS
    STATE_LAYOUT = _LAYOUT
    name = "context"
    default_threshold = 0.5
    default_warmup = Pipeline.LEARN.default  # the rule's warmup is the detector's learn
