# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, annotation_typing=False
"""Per-field scoring, the engine's inner loop: one source, compiled when a C compiler is there.

:func:`riverguard.stream.feed` calls :func:`run` on the input buffer. ``run``
takes every metric that :func:`riverguard._plainline.scan` reads as *plain*
(nearly every metric Telegraf writes), whose field keys are distinct, none
named like riverguard's added fields, and whose series are all known; it
stops at the first line that is anything else and returns its position:
``Splitter`` and :meth:`Engine.process <riverguard.engine.Engine.process>`
take that one, scoring it with :func:`score`. A plain line with a new series
goes to :func:`score` too (the rules that route a new series live in the
engine). Both score each value with :func:`_field`, the one definition of
what a series keeps and what is written.

This file runs as plain Python, and Cython compiles it (types in
``_hotpath.pxd``): compiled, ``run`` creates no Python object per field
but the series key, and calls the compiled default detector at C level.
``RIVERGUARD_PURE_PYTHON=1`` runs this same file uncompiled;
tests/test_hotpath.py checks that both builds write the same bytes and leave
the engine in the same state.

The few ``if cython.compiled:`` branches below are byte primitives (append
to the output, join two slices, find a byte or a substring, a double as
text) that Python spells with slices, ``find`` and ``%``; everything else
runs the same code in both builds.
"""

from __future__ import annotations

import math
import weakref
from bisect import bisect_left, insort

try:
    import cython
except ImportError:  # Cython is not installed: this runs as the plain Python it is
    from . import _compiled as cython

from .lineprotocol import parse, unescape

from ._plainline import BOOLEAN, MAX_FIELDS

if not cython.compiled:  # compiled, they come through _hotpath.pxd (C-level calls)
    from math import floor

    from ._plainline import Plain, scan

__all__ = ["UNBOUND", "Binding", "Clock", "Series", "checked_score", "format_score", "format_band", "run", "score", "verdict"]

_BOOLEAN = BOOLEAN  # (a C copy in the compiled build)
_NAN = float("nan")  # "no value" in an explanation


@cython.no_gc  # no cycle runs through it (a rule holds no binding)
@cython.cclass
class Binding:
    """What the series of one field key under one rule share (``Engine.bound``): one object for them all.

    ``rule`` and what the hot path reads of it (its effective threshold and
    the samples it holds back, copied in for speed), the field's added-field
    prefixes ``names`` (``Engine.added_names``; None for a ``scope =
    "metric"`` model, which writes the metric's names) and its
    explanation-field prefixes ``explain`` (``Engine.explain_names``, or
    None when its rule does not explain). A series points to its binding
    instead of holding these five (32 bytes less per compiled series).
    """

    if not cython.compiled:  # compiled, the attributes are C fields (_hotpath.pxd)
        __slots__ = ("rule", "names", "explain", "threshold", "warmup")

    def __init__(self, rule, names=None, explain=None) -> None:
        self.rule = rule
        self.names = names
        self.explain = explain
        self.threshold = rule.effective_threshold if rule else 1.0
        self.warmup = rule.held_back if rule else 0


#: The binding of a series that no rule takes (unscored).
UNBOUND = Binding(None)


@cython.no_gc  # no cycle runs through a series: untracked, it saves the collector's 16-byte header per series
@cython.cclass
class Series:
    """What riverguard keeps for one series: its model, counts and last time, and its :class:`Binding`."""

    if not cython.compiled:  # compiled, the attributes are C fields (_hotpath.pxd)
        __slots__ = ("binding", "detector", "seen", "last_time", "seen_at", "anomalies", "failed", "used", "run_seen")

    def __init__(self, binding, detector) -> None:
        #: When the series was last seen: a stamp of :func:`clock`, the engine's order of eviction and expiry.
        touch(self)
        #: Its rule and field's :class:`Binding` (None: :data:`UNBOUND`), set again when a new config keeps its model.
        self.binding = UNBOUND if binding is None else binding
        self.detector = detector
        #: Samples since its model started, and anomalies flagged by it: 32-bit counts that stop at
        #: :data:`COUNT_END` (136 years of samples at one a second).
        self.seen = 0
        #: Its last timestamp (ns; None: none yet, or its samples have none).
        self.last_time = None
        #: When it was last seen: the stream's clock (``Clock.now``) at its last sample, or that sample's
        #: timestamp if later (:data:`NO_HORIZON`: seen without one before the clock was known,
        #: :func:`clock_known`; :data:`NOT_SEEN` before its first sample). Stale before ``Clock.horizon``.
        self.seen_at = NOT_SEEN
        self.anomalies = 0
        self.failed = False
        #: Whether a sample of it arrived in this process (:func:`arrive`): not checkpointed, so False for a
        #: series restored until its next sample (the summary of a replay or a one-off pull tells them apart).
        self.run_seen = False

    @property
    def rule(self):
        """The rule the series is under (None: no rule takes it)."""
        return self.binding.rule


#: How many of the latest timestamps the stream's :class:`Clock` takes the median of.
WINDOW = 127
#: ``Clock.horizon`` before the clock is known: no series is stale.
NO_HORIZON = -(2**63)
#: ``Series.seen_at`` of a series made for a sample that has not arrived yet: it is not stale.
NOT_SEEN = 2**63 - 1
#: Where a series' ``seen`` and ``anomalies`` stop counting (32 bits each, to keep a compiled series 64 B).
COUNT_END = 0xFFFFFFFF


@cython.cclass
class Clock:
    """The stream's clock that ``series_ttl`` is measured on: the median of the last :data:`WINDOW` metric
    timestamps (of however many there are, from the third on), and never going back.

    A few timestamps far ahead (a host whose clock runs days ahead, one
    mistyped line) do not move it; the whole stream moving on does, within
    about half a window. ``horizon`` is ``now - ttl``: a series last seen
    (``Series.seen_at``) before it is stale. ``ahead`` counts the timestamps
    more than ``ttl`` ahead of it, ``newest`` is the latest of them and
    ``then`` the clock when it came (for the engine's warning). The window and ``now`` go into the
    checkpoint (:meth:`dump`, :meth:`load`): the clock is a function of the
    metrics seen, wherever a restart falls.
    """

    if not cython.compiled:  # compiled, the attributes are C fields and the window two C arrays (_hotpath.pxd)
        __slots__ = ("ring", "order", "count", "at", "known", "now", "ttl", "horizon", "ahead", "newest", "then")

    def __init__(self, ttl: int) -> None:
        if not cython.compiled:
            self.ring = []  # the window's timestamps as they came
            self.order = []  # and sorted
        self.count = 0
        self.at = 0
        self.known = False
        self.now = 0
        self.ttl = ttl
        self.horizon = NO_HORIZON
        self.ahead = 0
        self.newest = 0
        self.then = 0

    def set_ttl(self, ttl: int) -> None:
        """Measure staleness with ``ttl`` (ns, 0 to 2**63 - 1) from now on."""
        self.ttl = ttl
        self._set(self.now)

    def _set(self, now: int) -> None:
        self.now = now
        if not self.known:
            self.horizon = NO_HORIZON
        elif now >= NO_HORIZON + self.ttl:  # (no overflow)
            self.horizon = now - self.ttl
        else:
            self.horizon = NO_HORIZON

    def on_time(self, t: int, newest: int) -> bool:
        """Whether ``t`` (ns) may be the stream's newest event time after ``newest`` (the monitor's lag): not more
        than ``ttl`` past both this clock and ``newest`` (a host's clock far ahead, each of a batch of its
        timestamps too, is not; before the clock is known, any is)."""
        return not self.known or not far_ahead(t, self.now, newest, self.ttl)

    def advance(self, t: int) -> bool:
        """Take a metric's timestamp ``t`` (ns) into the window, and move ``now`` on to the median if it is later;
        True when ``t`` is ahead and the latest such (``newest``: the caller notes whose it is)."""
        newest = False
        if self.known:
            prev = self.ring[self.at - 1 if self.at > 0 else WINDOW - 1] if self.count else t
            # (ahead: far beyond the clock and a jump from the metric before, not a sparse stream the median trails)
            if far_ahead(t, self.now, prev, self.ttl):
                if self.ahead == 0 or t > self.newest:
                    self.newest = t
                    self.then = self.now
                    newest = True
                self.ahead += 1
        n = self.count
        if cython.compiled:  # one move of the timestamps between where the oldest leaves and where t goes
            i = _bisect(self.order, n, t, True)  # (after equal ones)
            if n == WINDOW:
                j = _bisect(self.order, WINDOW, self.ring[self.at], False)  # the oldest, leaving
                if j < i:  # order[j + 1:i] moves down by one
                    memmove(cython.address(self.order[j]), cython.address(self.order[j + 1]), (i - 1 - j) * 8)
                    i -= 1
                else:  # order[i:j] moves up by one
                    memmove(cython.address(self.order[i + 1]), cython.address(self.order[i]), (j - i) * 8)
            else:
                memmove(cython.address(self.order[i + 1]), cython.address(self.order[i]), (n - i) * 8)
                self.count = n + 1
            self.ring[self.at] = t
            self.order[i] = t
        else:
            ring, order = self.ring, self.order
            if n == WINDOW:
                del order[bisect_left(order, ring[self.at])]
                ring[self.at] = t
            else:
                ring.append(t)
                self.count = n + 1
            insort(order, t)
        self.at = self.at + 1 if self.at + 1 < WINDOW else 0
        n = self.count
        if n >= 3:  # (one timestamp, or one of two, is no majority)
            median = self.order[(n - 1) // 2]
            if not self.known or median > self.now:
                self.known = True
                self._set(median)
        return newest

    def window(self) -> list:
        """The window's timestamps, oldest first."""
        n = self.count
        start = self.at if n == WINDOW else 0
        return [self.ring[(start + k) % WINDOW] for k in range(n)]

    def dump(self) -> list:
        """``[now or None, window]``, for a checkpoint."""
        return [self.now if self.known else None, self.window()]

    def load(self, now: object, window: list) -> None:
        """Be the clock :meth:`dump` gave ``[now, window]`` (the warning counts start again)."""
        self.count = 0
        self.at = 0
        self.known = False
        if not cython.compiled:
            self.ring = []
            self.order = []
        for t in window[len(window) - WINDOW if len(window) > WINDOW else 0:]:
            self.advance(t)
        self.known = now is not None
        self._set(0 if now is None else now)
        self.ahead = 0


def _gap(a: int, b: int) -> int:
    """``a - b`` for ``a > b`` (compiled: as an unsigned 64-bit number, which holds it)."""
    if cython.compiled:
        return cython.cast(cython.ulonglong, a) - cython.cast(cython.ulonglong, b)
    return a - b


def far_ahead(t: int, now: int, newest: int, ttl: int) -> bool:
    """Whether the timestamp ``t`` (ns) is more than ``ttl`` past both the stream's clock ``now`` and ``newest``
    (the newest taken before it): a host's clock far ahead, not the stream's newest event time. The rule's one
    statement (:meth:`Clock.on_time`, :meth:`Clock.advance`, :func:`riverguard.engine.newest_on_time`).

    >>> far_ahead(10, 0, 0, 5), far_ahead(10, 0, 8, 5), far_ahead(10, 8, 0, 5)
    (True, False, False)
    """
    return t > now and _gap(t, now) > ttl and t > newest and _gap(t, newest) > ttl


def _bisect(order, n: int, t: int, right: bool) -> int:
    """Compiled only: where ``t`` goes in ``order[:n]`` (sorted): after equal ones if ``right``, else before."""
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if order[mid] < t or (right and order[mid] == t):
            lo = mid + 1
        else:
            hi = mid
    return lo


#: The next stamp :class:`Series` ``used`` takes: the order in which series were last seen (one clock for
#: every engine of the process; each engine only compares its own series' stamps). A stamp is 32 bits, in
#: the padding at the end of a compiled ``Series``: when the clock reaches ``_CLOCK_END``, every engine
#: (``ENGINES``) numbers its series again from 0 in the same order (:func:`_renumber`).
_clock = 0
_CLOCK_END = 0xFFFFFFFF
#: The engines whose series take stamps (:class:`riverguard.engine.Engine` adds itself).
ENGINES = weakref.WeakSet()


def clock() -> int:
    """The next stamp: every series seen so far has a smaller ``used``."""
    return _clock


def set_clock(value: int) -> None:
    """Tests: move the clock on to ``value`` (< 2^32), to reach the end of its range sooner."""
    global _clock
    if value > _clock:
        _clock = value


def touch(series: Series) -> None:
    """Mark ``series`` as seen now (the most recently seen of its engine)."""
    global _clock
    if _clock >= _CLOCK_END:
        _renumber()
    series.used = _clock
    _clock += 1


def arrive(engine, series: Series, skey: bytes, timestamp: object, clock: Clock) -> None:
    """``series`` (key ``skey``) has a sample, at ``timestamp`` (ns, or None), and the stream's ``clock`` has
    taken it.

    The series starts fresh first (``Engine.restart``) when it is stale:
    the clock moved on more than its ttl since the series was last seen
    (``seen_at`` before ``Clock.horizon``: what expiry drops, so a series
    starts fresh whether it was dropped or not), or its own timestamps
    jump on more than the ttl to a time the clock has reached (a gap in a
    series read after another, as in a file exported series by series; a
    timestamp far ahead of the clock is a host's wrong clock, not a gap).
    A series whose timestamps lag the clock, but which keeps coming, is
    not stale. It is now the most recently seen of its engine
    (:func:`touch`), seen in this run (``run_seen``), at ``clock.now`` or
    its timestamp if later; its last time is its latest timestamp (so one
    mistyped timestamp far ahead stays its last time, and its own gaps are
    not seen until its samples pass it; a timestamp far behind changes
    nothing).
    """
    last = series.last_time
    last_ns = 0
    ts_ns = 0
    if timestamp is not None:
        ts_ns = timestamp
    stale = series.seen_at < clock.horizon
    if last is not None:
        last_ns = last
        if not stale and timestamp is not None and clock.known:
            stale = ts_ns > last_ns and _gap(ts_ns, last_ns) > clock.ttl and not (
                ts_ns > clock.now and _gap(ts_ns, clock.now) > clock.ttl)
    if stale:
        engine.restart(series, skey)  # (which forgets its last time)
        last = None
    touch(series)
    series.run_seen = True
    if timestamp is None:
        series.seen_at = clock.now if clock.known else NO_HORIZON
    else:
        series.seen_at = ts_ns if not clock.known or ts_ns > clock.now else clock.now
        if last is None or ts_ns > last_ns:
            series.last_time = timestamp


def clock_known(held, now: int) -> None:
    """The stream's clock has just become known, at ``now``: the series ``held`` last seen before it by a
    sample without a timestamp (``seen_at`` is :data:`NO_HORIZON`) are seen at ``now``."""
    for series in held:
        if series.seen_at == NO_HORIZON:
            series.seen_at = now


def restore(series: Series, seen: int, last_time: object, seen_at: object, anomalies: int) -> None:
    """Set what a checkpoint holds of ``series`` (``seen_at`` None: seen before the clock was known); the
    counts stop at :data:`COUNT_END`."""
    series.seen = min(seen, COUNT_END)
    series.last_time = last_time
    series.seen_at = NO_HORIZON if seen_at is None else seen_at
    series.anomalies = min(anomalies, COUNT_END)


def _renumber() -> None:
    """Number each engine's series from 0, least recently seen first; the clock goes on after the largest."""
    global _clock
    top = 0
    for engine in list(ENGINES):
        top = max(top, engine.renumber())
    _clock = top


# -- byte-copying primitives: C when compiled, slices in Python ---------------------------


def _room(ob: bytearray, size: int):
    """Compiled only: make ``ob`` ``size`` bytes longer and return where they start (for the caller to fill).

    ``ob``'s length stays its used size; when it must grow, its capacity
    grows by half (bytearray's own growth is an eighth: a realloc every few
    appends, most of what writing a field cost).

    Within the capacity the size is set directly. Anything else goes through
    ``PyByteArray_Resize``, and so does a bytearray of which a view is held
    (``ob_exports``): it refuses with BufferError, as ``ob += data`` does.
    So a caller's ``ob`` (``verdict`` takes one from Python) behaves as in
    the uncompiled build (tests/test_hotpath.py).
    """
    n = PyByteArray_GET_SIZE(ob)
    need = n + size
    o = cython.cast(cython.pointer(PyByteArrayObject), ob)
    if o.ob_exports or need + (o.ob_start - o.ob_bytes) >= o.ob_alloc:
        PyByteArray_Resize(ob, need + (need >> 1) + 64)  # (never ob's size: it allocates)
    Py_SET_SIZE(ob, need)
    o.ob_start[need] = 0  # bytearray's trailing NUL
    return o.ob_start + n


def _put(ob: bytearray, data: bytes, start: int, stop: int) -> None:
    """Append ``data[start:stop]`` to ``ob``."""
    if cython.compiled:
        size = stop - start
        memcpy(_room(ob, size), PyBytes_AS_STRING(data) + start, size)
    else:
        ob += data[start:stop]


def _join(b: bytes, a: int, a_len: int, c: int, c_len: int) -> bytes:
    """``b[a:a + a_len] + b[c:c + c_len]``."""
    if cython.compiled:
        out = PyBytes_FromStringAndSize(cython.NULL, a_len + c_len)
        memcpy(PyBytes_AS_STRING(out), PyBytes_AS_STRING(b) + a, a_len)
        memcpy(PyBytes_AS_STRING(out) + a_len, PyBytes_AS_STRING(b) + c, c_len)
        return out
    return b[a:a + a_len] + b[c:c + c_len]


def _find_byte(b: bytes, c: int, start: int, end: int) -> int:
    """The first position of byte ``c`` in ``b[start:end]``, or -1."""
    if cython.compiled:
        at = memchr(PyBytes_AS_STRING(b) + start, c, end - start)
        return -1 if at == cython.NULL else cython.cast(cython.p_char, at) - PyBytes_AS_STRING(b)
    return b.find(c, start, end)


def _contains(b: bytes, start: int, end: int, needle: bytes) -> bool:
    """Whether ``needle`` occurs in ``b[start:end]``."""
    if cython.compiled:
        size = len(needle)
        if size == 0:
            return True
        p = PyBytes_AS_STRING(b)
        q = PyBytes_AS_STRING(needle)
        i = start
        last = end - size  # the last position a match can start at
        while i <= last:
            at = memchr(p + i, q[0], last - i + 1)  # the next candidate: the needle's first byte
            if at == cython.NULL:
                return False
            i = cython.cast(cython.p_char, at) - p
            if memcmp(p + i, q, size) == 0:
                return True
            i += 1
        return False
    return b.find(needle, start, end) >= 0


#: riverguard's own health metrics' measurement (``engine.MONITOR_MEASUREMENT``) as it starts a line.
_OWN = b"riverguard"


def _own(b: bytes, start: int, end: int) -> bool:
    """Whether the line ``b[start:end]`` is one of riverguard's own health metrics (measurement ``riverguard``)."""
    if end - start <= 10:
        return False
    if cython.compiled:
        p = PyBytes_AS_STRING(b) + start
        return memcmp(p, PyBytes_AS_STRING(_OWN), 10) == 0 and (p[10] == 44 or p[10] == 32)  # "," or " "
    return b.startswith(_OWN, start) and b[start + 10] in b", "


def format_score(score: float) -> bytes:
    """A score as line protocol: 6 significant digits, always with a decimal point or exponent.

    >>> format_score(0.0), format_score(0.5), format_score(0.123456789), format_score(1.5e-07)
    (b'0.0', b'0.5', b'0.123457', b'1.5e-07')
    """
    return _format(score, 6)


def format_band(value: float) -> bytes:
    """An explanation value: 12 significant digits (a band a user reads, without the noise of the last
    bits), always with a decimal point or exponent; the caller leaves NaN and infinities out.

    >>> format_band(97.5), format_band(3.0), format_band(1.0330080000000001), format_band(-1e16)
    (b'97.5', b'3.0', b'1.033008', b'-1e+16')
    """
    ob = bytearray()
    _put_g(ob, value, 12)  # (as the hot path writes it)
    return bytes(ob)


def _format(value: float, digits: int) -> bytes:
    """``b"%.<digits>g" % value``, with ``.0`` added when it has neither a point nor an exponent; with
    ``digits`` 0, ``repr(value)``: the fewest digits that read back as ``value``."""
    if cython.compiled:  # one bytes object, ".0" included (no concatenation: a score of 0 has no point)
        # what b"%.<digits>g" calls ('g'), or repr ('r')
        s = PyOS_double_to_string(value, 103 if digits else 114, digits, 0, cython.NULL)
        n = strlen(s)
        bare = memchr(s, 46, n) == cython.NULL and memchr(s, 101, n) == cython.NULL  # no "." and no "e"
        try:
            text = PyBytes_FromStringAndSize(cython.NULL, n + 2 if bare else n)
            memcpy(PyBytes_AS_STRING(text), s, n)
        finally:
            PyMem_Free(s)
        if bare:
            memcpy(PyBytes_AS_STRING(text) + n, b".0", 2)
        return text
    text = b"%.*g" % (digits, value) if digits else repr(value).encode()
    n = len(text)
    if _find_byte(text, 46, 0, n) < 0 and _find_byte(text, 101, 0, n) < 0:  # no "." and no "e"
        text += b".0"
    return text


if cython.compiled:  # 10.0 ** k for 0 <= k <= 22, exactly (each product is a power of ten a double holds)
    _p = 1.0
    for _k in range(23):
        _P10[_k] = _p
        _p *= 10.0


def _ilogb(av: float) -> int:
    """``floor(log2(av))`` for a positive finite ``av``."""
    if cython.compiled:
        return ilogb(av)
    return math.frexp(av)[1] - 1


def _quick_g(value: float, digits: int, buf: bytearray) -> int:
    """What :func:`_format` gives into ``buf``, when one product settles its rounding; its length, or 0 when
    ``PyOS_double_to_string`` must decide (compiled only: about four times faster, for the band's values).

    ``|value| * 10 ** k`` (one rounding, so within 2 ** -53 of exact) is
    rounded to a ``digits``-digit integer, unless its fraction is too near
    one half to tell which way the exact product rounds; then written as
    ``%g`` does: fixed for exponents from -4 to ``digits - 1``, else with one.
    """
    av = -value if value < 0.0 else value
    if not 1e-4 <= av < 1e15 or digits > 15 or digits < 1:
        return 0
    e = (_ilogb(av) * 1233) >> 12  # floor(log10(2 ** ilogb)): the decimal exponent, or one below it
    top = cython.cast(cython.longlong, _P10[digits])
    for _ in range(2):
        k = digits - 1 - e
        scaled = av * _P10[k] if k >= 0 else av / _P10[-k]
        whole = floor(scaled)
        frac = scaled - whole
        if 0.4999 < frac < 0.5001:
            return 0
        m = cython.cast(cython.longlong, whole) + (1 if frac > 0.5 else 0)
        if m >= top:
            e += 1
        elif m < top // 10:
            e -= 1
        else:
            break
    else:
        return 0
    last = digits  # significant digits, without trailing zeros
    while last > 1 and m % 10 == 0:
        m //= 10
        last -= 1
    for i in range(last - 1, -1, -1):
        dig[i] = 48 + m % 10
        m //= 10
    n = 0
    if value < 0.0:
        buf[0] = 45  # "-"
        n = 1
    if e >= digits:  # d.ddde+XX
        buf[n] = dig[0]
        n += 1
        if last > 1:
            buf[n] = 46
            n += 1
            for i in range(1, last):
                buf[n] = dig[i]
                n += 1
        buf[n] = 101  # "e+"
        buf[n + 1] = 43
        buf[n + 2] = 48 + e // 10
        buf[n + 3] = 48 + e % 10
        return n + 4
    if e < 0:  # 0.000ddd
        buf[n] = 48
        buf[n + 1] = 46
        n += 2
        for i in range(-1 - e):
            buf[n] = 48
            n += 1
        for i in range(last):
            buf[n] = dig[i]
            n += 1
        return n
    for i in range(e + 1 if e + 1 > last else last):  # ddd.ddd, or ddd00.0
        if i == e + 1:
            buf[n] = 46
            n += 1
        buf[n] = dig[i] if i < last else 48
        n += 1
    if last <= e + 1:
        buf[n] = 46
        buf[n + 1] = 48
        n += 2
    return n


def _put_g(ob: bytearray, value: float, digits: int) -> None:
    """Append what :func:`_format` gives to ``ob`` (a finite value), without making a bytes object of it."""
    if cython.compiled:
        size = _quick_g(value, digits, buf)
        if not size:  # the general conversion (at most 25 characters for up to 17 digits), or repr's
            s = PyOS_double_to_string(value, 103 if digits else 114, digits, 0, cython.NULL)
            size = strlen(s)
            memcpy(buf, s, size)
            PyMem_Free(s)
            if memchr(buf, 46, size) == cython.NULL and memchr(buf, 101, size) == cython.NULL:
                buf[size] = 46  # ".0"
                buf[size + 1] = 48
                size += 2
        memcpy(_room(ob, size), buf, size)
    else:
        ob += _format(value, digits)


# -- scoring ---------------------------------------------------------------------------


def checked_score(score: object) -> object:
    """A detector's score as written: NaN and infinities raise ValueError, the rest is clamped to [0, 1].

    >>> checked_score(0.25), checked_score(7.0), checked_score(-1)
    (0.25, 1.0, 0.0)
    """
    if not 0.0 <= score <= 1.0:
        if not math.isfinite(score):
            raise ValueError(f"detector returned a non-finite score ({score})")
        score = 1.0 if score > 1.0 else 0.0
    return score


def _process(detector: object, x: float, t: object) -> float:
    """The detector's checked score for ``x`` (it learns ``x`` too)."""
    if cython.compiled:
        if type(detector) is CompiledSentinel:  # a C call, no Python objects
            score = cython.cast(CompiledSentinel, detector).process(x, t)
            if 0.0 <= score <= 1.0:
                return score
            return checked_score(score)
    return checked_score(detector.process(x, t))


def _field(engine, series: Series, skey: bytes, kb: bytes, key: int, key_len: int, number: float, t: object,
           timestamp: object, clock: Clock, ob: bytearray, with_flag: bool, keys: object) -> int:
    """Score ``number`` in ``series`` and append its added fields to ``ob`` (None: it only learns, nothing is
    explained); 3 if it is flagged, 2 if it is scored and not flagged, 0 if it is not scored (no detector,
    or the detector failed).

    The field key is ``kb[key:key + key_len]``; ``with_flag`` is False when
    the metric already holds the flag field (only the score is added);
    ``keys`` the metric's field keys when it may hold added names (else None).
    The series is now the most recently seen of its engine (:func:`touch`).
    A stale series starts fresh first (:func:`arrive`, on the stream's ``clock``).
    """
    arrive(engine, series, skey, timestamp, clock)
    detector = series.detector
    if detector is None:
        return 0
    # (series.binding.x: compiled, no reference taken to the shared binding)
    explain = series.binding.explain if ob is not None else None
    has = 0
    e0 = e1 = e2 = _NAN
    if explain is not None:  # what the detector expected, before it learns the value
        try:
            if cython.compiled and isinstance(detector, CompiledPipeline):  # a C call, no tuple
                pipeline = cython.cast(CompiledPipeline, detector)
                has = pipeline.explain_into(series.binding.threshold, t, answer)
                e0 = answer[0]
                e1 = answer[1]
                e2 = answer[2]
            else:
                band = detector.explain(series.binding.threshold, t)
                if band is not None:
                    has = 2
                    e0 = _value(band[0])
                    e1 = _value(band[1])
                    e2 = _value(band[2])
        except Exception:  # noqa: BLE001 - an explanation that fails is left out; the score stays
            has = 0
    try:
        score = _process(detector, number, t)
    except Exception as err:  # noqa: BLE001 - no detector error may reach the stream
        engine._detector_failed(series, skey, err)
        return 0
    names = series.binding.names
    if names is None:  # (a binding made without them: Engine.bound gives every field's)
        names = engine.added_names(kb[key:key + key_len])
    flag = verdict(series, score, names, with_flag, ob)
    if explain is not None:
        _explained(engine, explain, has, e0, e1, e2, detector, number, flag, series.seen <= series.binding.warmup, keys, ob)
    return 2 | flag  # the caller counts engine.fields_scored (run: once per call, not a Python update per field)


def verdict(series: Series, score: float, names: tuple, with_flag: bool, ob: bytearray) -> int:
    """Count one scored sample of ``series``; append its score field, and its flag field when ``with_flag``,
    to ``ob`` (None: nothing written). Return 1 if it is flagged, else 0.

    ``names`` is ``(",K_score=", ",K_flag=true", ",K_flag=false")``. In the
    warm-up the score is written as 0.0 and nothing is flagged; after it,
    the flag follows the written score. A field's series (:func:`_field`)
    and a metric's model (``Engine._score_metric``) both end here.
    """
    if series.seen < COUNT_END:
        series.seen += 1
    flag = False
    text = None
    if series.seen <= series.binding.warmup:
        text = b"0.0"
    else:
        threshold = series.binding.threshold
        # The flag follows the written score; compare the text only near the threshold.
        if score < threshold - 1e-5:
            flag = False
        elif score > threshold + 1e-5:
            flag = True
        else:
            text = format_score(score)
            flag = float(text) >= threshold
        if flag and series.anomalies < COUNT_END:
            series.anomalies += 1
    if ob is None:
        return 1 if flag else 0
    if text is None:
        text = format_score(score)
    prefix = names[0]
    _put(ob, prefix, 0, len(prefix))
    _put(ob, text, 0, len(text))
    if with_flag:
        suffix = names[1] if flag else names[2]
        _put(ob, suffix, 0, len(suffix))
    return 1 if flag else 0


def _value(value: object) -> float:
    """A band element as a double: None (no value) is NaN."""
    return _NAN if value is None else float(value)


def _alike(a: float, b: float) -> bool:
    """Whether two different finite values are written alike at 12 significant digits (as a band's are)."""
    if a == b or a - a != 0.0 or b - b != 0.0:  # the same value, or one that is not written (NaN, infinite)
        return False
    m = a if a > -a else -a
    if b > m or -b > m:
        m = b if b > -b else -b
    d = a - b
    if d > 2e-11 * m or -d > 2e-11 * m:  # too far apart to round to one 12-digit value (the common case)
        return False
    return _format(a, 12) == _format(b, 12)


def _band_digits(e0: float, e1: float, e2: float) -> int:
    """The significant digits a band's values are written with: 12 (a band a user reads, without the noise
    of the last bits), or 0 (each value's shortest repr, which tells any two floats apart) when two
    different ones would be written alike at 12: around 1e14, a band narrower than about 0.001 had its
    lower and upper edges written equal."""
    if _alike(e0, e1) or _alike(e0, e2) or _alike(e1, e2):
        return 0
    return 12


def _explained(engine, names: tuple, has: int, e0: float, e1: float, e2: float, detector: object, x: float,
               flag: bool, warm: bool, keys: object, ob: bytearray) -> None:
    """Append the explanation fields of one scored value to ``ob``.

    ``e0``, ``e1``, ``e2`` are the expected value and the band's edges that
    the detector gave before it learned ``x`` (``has``: 0 when it gave
    nothing); NaN stands for none. The expected value is written when it is
    finite; the band only after the warm-up (nothing is flagged before) and
    each edge only when finite, all with as many digits as tell them apart
    (:func:`_band_digits`); the reason only when ``flag``. A name the
    metric already has (``keys``) is not added.
    """
    if has:
        digits = 12 if warm else _band_digits(e0, e1, e2)
        for j in range(1 if warm else 3):  # in the warm-up, the expected value only
            v = e0 if j == 0 else (e1 if j == 1 else e2)
            if v - v != 0.0:  # none, NaN or an infinity: left out
                continue
            name = names[j]
            if keys is not None and name[1:len(name) - 1] in keys:
                continue
            _put(ob, name, 0, len(name))
            _put_g(ob, v, digits)
    if flag:
        name = names[3]
        if keys is None or name[1:len(name) - 2] not in keys:
            _put(ob, name, 0, len(name))
            band = None
            if has:
                band = (e0 if e0 - e0 == 0.0 else None, e1 if e1 - e1 == 0.0 else None,
                        e2 if e2 - e2 == 0.0 else None)
            why = engine._reason(detector, x, band)
            _put(ob, why, 0, len(why))
            _put(ob, b'"', 0, 1)


def score(engine, metric, write: bool = True) -> bytes:
    """The fields to add to ``metric`` (``,K_score=...,K_flag=...`` for each numeric field); its series learn.
    Not ``write``: they only learn (and count), nothing is formatted or explained, and the result is empty.

    A field key given twice is scored once, at its last occurrence (the
    value InfluxDB keeps); a field that is itself an added field, or whose
    score field is already there, is left alone.
    """
    score_suffix = engine.score_suffix
    flag_suffix = engine.flag_suffix
    raw = metric.raw
    fields = metric.fields
    # Only a metric that mentions a suffix can hold an added field already.
    keys = {f[0] for f in fields} if score_suffix in raw or flag_suffix in raw else None
    if keys is not None or engine.metric_scope:
        engine.check_names(metric)  # a name riverguard adds, of another type: the user's, not scored for
    if len(fields) > 1:
        distinct = keys if keys is not None else {f[0] for f in fields}
        if len(distinct) != len(fields):
            last = {f[0]: i for i, f in enumerate(fields)}
            fields = [f for i, f in enumerate(fields) if last[f[0]] == i]
    timestamp = metric.timestamp
    t = None if timestamp is None else timestamp / 1e9
    clock = engine.clock  # (Engine.process moved it on)
    prefix = None
    all_series = engine.series
    ob = bytearray() if write else None
    together = None  # the fields a scope = "metric" model takes, by name
    scores = None if keys is None else {f[0] for f in fields if f[2] is not None}  # (riverguard's scores are numbers)
    for key, _kind, number in fields:
        if number is None:
            continue
        if keys is not None and (key + score_suffix in keys or engine.added_upstream(key, scores)):
            continue  # already scored upstream, or a field riverguard added upstream (a score, an explanation)
        if prefix is None:
            prefix = engine._prefix(metric)
        skey = prefix + key
        series = all_series.get(skey)
        if series is None:
            if engine.metric_scope:
                if key in engine._metric_keys and engine.metric_scope_in(metric.measurement):
                    continue  # a metric-level score or flag already there: never scored itself
                if engine._joins_metric(metric, prefix, key):
                    if together is None:
                        together = {}
                    together[unescape(key)] = number
                    continue
            series = engine.new_series(metric, key)
            engine.add_series(skey, series)  # (which may evict another)
        with_flag = keys is None or key + flag_suffix not in keys
        scored = _field(engine, series, skey, key, 0, len(key), number, t, timestamp, clock, ob, with_flag, keys)
        engine.anomalies += scored & 1
        engine.fields_scored += scored >> 1
    if together is not None:
        engine._score_metric(metric, prefix, together, t, ob)
    return b"" if ob is None else bytes(ob)


def _distinct(b: bytes, line: Plain) -> bool:
    """Whether the line's field keys are all different."""
    for i in range(1, line.nfields):
        for j in range(i):
            if line.key_len[i] == line.key_len[j] and _same(b, line.key[i], line.key[j], line.key_len[i]):
                return False
    return True


def _same(b: bytes, i: int, j: int, n: int) -> bool:
    """Whether ``b[i:i + n] == b[j:j + n]`` (uncompiled: that comparison itself)."""
    if not cython.compiled:
        return b[i : i + n] == b[j : j + n]
    for k in range(n):
        if b[i + k] != b[j + k]:
            return False
    return True


_LINE = Plain()


def run(engine, buf: bytes, pos: int, out: list) -> int:
    """Score the plain metrics of ``buf`` from ``pos``; append the output (one bytes object) to ``out``.

    Return the position of the first line left to the engine (not plain, or
    not newline-terminated); ``len(buf)`` when all were handled. Every change
    to the engine (counters, clock, series order, detector state) is what
    :meth:`Engine.process <riverguard.engine.Engine.process>` makes of the same line.
    """
    line = _LINE
    n = len(buf)
    score_suffix = engine.score_suffix
    flag_suffix = engine.flag_suffix
    all_series = engine.series
    found = [None] * MAX_FIELDS
    skeys = [None] * MAX_FIELDS
    ob = bytearray()
    fields_scored = 0
    # the last timestamp as an int object and in seconds: the lines of one collection share them (each series
    # keeps its last timestamp, one object per collection instead of one per line)
    stamp = None
    stamp_ns = 0
    stamp_s = None
    clock = engine.clock
    try:
        while pos < n:
            nl = _find_byte(buf, 10, pos, n)  # the newline
            if nl < 0:
                break
            if not scan(buf, pos, nl, line) or not _distinct(buf, line):
                break
            if _contains(buf, pos, nl, score_suffix) or _contains(buf, pos, nl, flag_suffix) or _own(buf, pos, nl):
                break
            # -- as Engine.process: count, advance the clock, expire now and then
            metrics = engine.metrics + 1
            engine.metrics = metrics
            timestamp = None
            t = None
            if line.has_ts:
                if stamp is None or line.ts != stamp_ns:
                    stamp_ns = line.ts
                    stamp = stamp_ns
                    stamp_s = stamp_ns / 1e9
                timestamp = stamp
                t = stamp_s
                known = clock.known
                if clock.advance(stamp_ns):  # (the latest timestamp far ahead: whose, for the warning)
                    engine.ahead_from = buf[pos:line.head_end]
                now = engine.now  # (as Engine.process: one far ahead of the clock and the newest on time is left out)
                if now is None or (timestamp > now and clock.on_time(stamp_ns, now)):
                    engine.now = timestamp
                if not known and clock.known:
                    engine.clock_known()
            if not metrics & 0xFFF:
                engine.expire()
            # -- the series keys; a new series sends the line to score() (the rules live in the engine)
            head = line.head_end - pos + 1
            missing = False
            for k in range(line.nfields):
                if line.kind[k] == _BOOLEAN:
                    continue
                skey = _join(buf, pos, head, line.key[k], line.key_len[k])
                skeys[k] = skey
                series = all_series.get(skey)
                found[k] = series
                if series is None:
                    missing = True
            _put(ob, buf, pos, line.fields_end)
            if missing:  # parsed again: the scan is 0.2-0.4 % of a new series' cost, the Metric is needed anyway
                extra = score(engine, parse(buf[pos:nl]))
                _put(ob, extra, 0, len(extra))
            else:
                flags = 0
                for k in range(line.nfields):
                    if line.kind[k] == _BOOLEAN:
                        continue
                    skey = skeys[k]
                    series = found[k]
                    scored = _field(engine, series, skey, buf, line.key[k], line.key_len[k], line.number[k], t,
                                    timestamp, clock, ob, True, None)
                    flags += scored & 1
                    fields_scored += scored >> 1
                if flags:
                    engine.anomalies += flags
            _put(ob, buf, line.fields_end, nl + 1)
            pos = nl + 1
    finally:
        if fields_scored:
            engine.fields_scored += fields_scored
        if len(ob):
            out.append(bytes(ob))
    return pos
