# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled twin of :class:`riverguard.detectors.sentinel.Sentinel` (built when a C compiler is there).

``sentinel.py`` is the definition: its documentation, its parameters and its
arithmetic. This module repeats that arithmetic in C, operation for
operation and in the same order, so every score is the same double and
``dump_state`` gives the same list: checkpoints move freely between the two,
and output stays byte-identical with or without a compiler. Python's own
rules are kept where they could differ from C's: floor division of floats,
``int()`` of a float (raising on infinity and NaN), ``math.sqrt`` and
``math.log10`` raising on a domain error, indexing with negative numbers.
``tests/test_sentinel_twin.py`` checks all of it on generated series,
timestamps and damaged states.

The registry uses this class for ``sentinel`` unless ``RIVERGUARD_PURE_PYTHON``
is set. Parameters are validated by the Python class (once per parameter
set): both accept and refuse the same settings.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport copysign, erfc, floor, fmod, isinf, isnan, log10, sqrt
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

import sys

from .sentinel import Sentinel as _Reference

cdef double _DAY = 86400.0
cdef double _SQRT1_2 = sqrt(0.5)
cdef bint _SWAP = sys.byteorder != "little"
cdef dict _VALID = {}


cdef inline double _floordiv(double vx, double wx):
    """Python's float ``vx // wx`` (Objects/floatobject.c, _float_div_mod), wx != 0."""
    cdef double mod = fmod(vx, wx)
    cdef double div = (vx - mod) / wx
    cdef double fdiv
    if mod:
        if (wx < 0) != (mod < 0):
            mod += wx
            div -= 1.0
    if div:
        fdiv = floor(div)
        if div - fdiv > 0.5:
            fdiv += 1.0
    else:
        fdiv = copysign(0.0, vx / wx)
    return fdiv


cdef inline int64_t _to_int(double v) except? -1:
    """Python's ``int(v)`` for a float, within int64 (raises as Python does on inf and NaN)."""
    if isnan(v):
        raise ValueError("cannot convert float NaN to integer")
    if isinf(v):
        raise OverflowError("cannot convert float infinity to integer")
    if v >= 9.2e18 or v <= -9.2e18:
        # Python would give a huge int; every use here compares or indexes with it.
        return <int64_t>9000000000000000000 if v > 0 else -<int64_t>9000000000000000000
    return <int64_t>v


cdef inline double _sqrt(double v) except? -1.0:
    if v < 0.0:
        raise ValueError("math domain error")
    return sqrt(v)


cdef inline double _log10(double v) except? -1.0:
    if v <= 0.0:
        raise ValueError("math domain error")
    return log10(v)


cdef inline Py_ssize_t _index(int64_t i, Py_ssize_t size, str what) except -1:
    """Python's indexing rule: negative counts from the end, out of range raises IndexError."""
    if i < 0:
        i += size
    if i < 0 or i >= size:
        raise IndexError(f"{what} index out of range")
    return <Py_ssize_t>i


cdef bytes _pack(double *a, Py_ssize_t n):
    cdef bytes out = PyBytes_FromStringAndSize(<char *>a, n * 8)
    cdef unsigned char *p
    cdef unsigned char tmp
    cdef Py_ssize_t i, j
    if _SWAP:
        p = <unsigned char *>PyBytes_AS_STRING(out)
        for i in range(n):
            for j in range(4):
                tmp = p[8 * i + j]
                p[8 * i + j] = p[8 * i + 7 - j]
                p[8 * i + 7 - j] = tmp
    return out


cdef void _unpack(bytes data, double *a, Py_ssize_t n):
    cdef unsigned char *p = <unsigned char *>a
    cdef unsigned char tmp
    cdef Py_ssize_t i, j
    memcpy(a, PyBytes_AS_STRING(data), n * 8)
    if _SWAP:
        for i in range(n):
            for j in range(4):
                tmp = p[8 * i + j]
                p[8 * i + j] = p[8 * i + 7 - j]
                p[8 * i + 7 - j] = tmp


cdef class Sentinel:
    """Compiled twin of the ``sentinel`` detector: same parameters, scores and state (see sentinel.py)."""

    name = "sentinel"
    default_threshold = _Reference.default_threshold
    default_warmup = _Reference.default_warmup

    def __cinit__(self, *args, **kwargs):
        self._counts = self._totals = self._dvis = NULL
        self._dlo = self._dhi = self._dstat = NULL

    def __dealloc__(self):
        PyMem_Free(self._counts)
        PyMem_Free(self._totals)
        PyMem_Free(self._dvis)
        PyMem_Free(self._dlo)
        PyMem_Free(self._dhi)
        PyMem_Free(self._dstat)

    def __init__(self, **params):
        # types and reprs in the key: 2 and 2.0, True and 1, 0.0 and -0.0 are different settings
        key = tuple([(k, type(v), repr(v)) for k, v in sorted(params.items())])
        resolved = _VALID.get(key)
        if resolved is None:
            resolved = _Reference(**params).params()  # raises what the Python class raises
            _VALID[key] = resolved
        self._configure(resolved)

    cdef _configure(self, dict p):
        cdef Py_ssize_t slots
        self._params = p
        self.bins = p["bins"]
        self._ncounts = self.bins * self.bins * self.bins
        self._ntotals = self.bins * self.bins
        self.gain = p["gain"]
        self.prior = p["prior"]
        self.fading = p["fading"]
        self.z_scale = p["z_scale"]
        self.short = p["short"]
        self.long = p["long"]
        self.min_sd = p["min_sd"]
        self.pmin = p["pmin"]
        self.margin = p["margin"]
        self.extreme = p["extreme"]
        self.fire = p["fire"]
        self.suppress = p["suppress"]
        self.damp = p["damp"]
        self.extreme_sd = p["extreme_sd"]
        self.learn = p["learn"]
        self.repeat_decay = p["repeat_decay"]
        self.value_long = p["value_long"]
        self.day_slots = p["day_slots"]
        self.weekend_slots = p["weekend_slots"]
        self.day_margin = p["day_margin"]
        self.day_visits = p["day_visits"]
        self.day_score = p["day_score"]
        self.day_fading = p["day_fading"]
        self.day_detrend = p["day_detrend"]
        self.day_through = p["day_through"]
        self.stuck_longest = p["stuck_longest"]
        self._day_width = _DAY / self.day_slots if self.day_slots else 0.0
        self._scale = -1.0 / log10(self.pmin)
        self._n = 0
        self._lo = self._hi = self._rlo = self._rhi = 0.0
        self._mean = self._var = self._lmean = self._lvar = 0.0
        self._avg = self._mu = self._s2 = 0.0
        self._quiet = 0
        self._qday = False
        self._prev = 0.0
        self._c0 = self._k0 = self._c1 = self._k1 = 0.0
        self._rep = False
        self._run = self._step = 0.0
        self._len = self._maxlen = 0
        self._b1 = self._b2 = 0
        slots = self.day_slots * (2 if self.weekend_slots else 1)
        self._slots = slots
        self._dslot = -1
        self._counts = <unsigned char *>PyMem_Malloc(self._ncounts)
        self._totals = <unsigned char *>PyMem_Malloc(self._ntotals)
        self._dvis = <unsigned char *>PyMem_Malloc(slots + 1)
        self._dlo = <double *>PyMem_Malloc(8 * slots + 8)
        self._dhi = <double *>PyMem_Malloc(8 * slots + 8)
        self._dstat = <double *>PyMem_Malloc(16 * slots + 8)
        if not (self._counts and self._totals and self._dvis and self._dlo and self._dhi and self._dstat):
            raise MemoryError()
        memset(self._counts, 0, self._ncounts)
        memset(self._totals, 0, self._ntotals)
        memset(self._dvis, 0, slots)
        memset(self._dlo, 0, 8 * slots)
        memset(self._dhi, 0, 8 * slots)
        memset(self._dstat, 0, 16 * slots)

    @classmethod
    def defaults(cls):
        return _Reference.defaults()

    def params(self):
        return dict(self._params)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"Sentinel({args})"

    # -- scoring ----------------------------------------------------------------------

    def score_one(self, x, t=None):
        """Score ``x`` without learning it (the likelihood as if ``x`` were next)."""
        cdef Sentinel probe = Sentinel(**self.params())
        probe.load_state(self.dump_state())
        return probe.process(x, t)

    def learn_one(self, x, t=None):
        self.process(x, t)

    cdef double _surprise(self, double x, double lo, double span) except? -2.0:
        cdef int bins = self.bins
        cdef int64_t bb
        cdef int b, row, i, base, j
        cdef unsigned int c, total, h
        cdef double raw
        if span > 0.0:
            bb = _to_int((x - lo) / span * bins)
            b = 0 if bb < 0 else (bins - 1 if bb >= bins else <int>bb)
        else:
            b = 0
        row = self._b2 * bins + self._b1
        i = row * bins + b
        c = self._counts[i]
        total = self._totals[row]
        raw = 1.0 - self.gain * (c + self.prior) / (total + self.prior * bins)
        if total == 255:
            base = row * bins
            total = 0
            for j in range(base, base + bins):
                h = self._counts[j] >> 1
                self._counts[j] = h
                total += h
            c = self._counts[i]
        if c + 1 > 255 or total + 1 > 255:  # only from a tampered state; Python's bytearray refuses it so
            raise ValueError("byte must be in range(0, 256)")
        self._counts[i] = c + 1
        self._totals[row] = total + 1
        self._b2 = self._b1
        self._b1 = b
        return raw

    cpdef double process(self, double x, object t=None) except? -1.0:
        cdef int64_t n = self._n
        cdef double stuck, keep, c1, k1, run, lo, hi, span, rlo, rhi, ext, lam, dl, raw, d, var, z, a
        cdef double avg, mu, s2, sd, dm, p, score, tt, day, dlo, dhi, v = 0.0, ds, dvar, zs
        cdef bint rep, far = False, tod, longest
        cdef int64_t slot = -1
        cdef Py_ssize_t si, i
        cdef int vis = 0  # set with the slot (slot >= 0)
        self._n = n + 1
        if n == 0:
            self._lo = self._hi = self._rlo = self._rhi = self._mean = self._prev = self._lmean = x
            return 0.0
        # 4. stuck value
        stuck = 0.0
        rep = x == self._prev
        self._prev = x
        if rep:
            self._len += 1
        else:
            if self._len > self._maxlen:
                self._maxlen = self._len
            self._len = 0
        longest = self._len > self._maxlen or not self.stuck_longest
        keep = 1.0 - self.repeat_decay
        if self._rep:
            c1 = self._c1 * keep + 1.0
            k1 = self._k1 * keep + (1.0 if rep else 0.0)
            if rep:
                run = self._run
                if run >= 0.0:
                    run += self._step
                    stuck = run * self._scale if longest else 0.0
                    if stuck >= self.fire:
                        run = -1.0
                    self._run = run
            self._c1 = c1
            self._k1 = k1
        else:
            if rep:
                if n > self.learn:
                    self._run = -_log10((self._k0 + 0.5) / (self._c0 + 1.0))
                    self._step = -_log10((self._k1 + 0.5) / (self._c1 + 1.0))
                    stuck = self._run * self._scale if longest else 0.0
                else:
                    self._run = -1.0
            self._c0 = self._c0 * keep + 1.0
            self._k0 = self._k0 * keep + (1.0 if rep else 0.0)
        self._rep = rep
        lo = self._lo
        hi = self._hi
        span = hi - lo
        if x > hi:
            self._hi = x
        elif x < lo:
            self._lo = x
        # 3. new extremes
        rlo = self._rlo
        rhi = self._rhi
        ext = 0.0
        if x > rhi:
            ext = x - rhi
        elif x < rlo:
            ext = rlo - x
        else:
            self._rlo = self._lo
            self._rhi = self._hi
        lam = self.value_long if n * self.value_long > 1.0 else 1.0 / n
        dl = x - self._lmean
        if ext > 0.0:
            far = dl * dl > self.extreme_sd * self.extreme_sd * self._lvar
        self._lmean += lam * dl
        self._lvar = (1.0 - lam) * (self._lvar + lam * dl * dl)
        # 1a. sequence surprise
        raw = self._surprise(x, lo, span)
        # 1b. prediction error
        d = x - self._mean
        var = self._var
        if var > 0.0:
            z = _sqrt(var) * self.z_scale
            if z == 0.0:
                raise ZeroDivisionError("float division by zero")
            z = abs(d) / z
            if z > 1.0:
                z = 1.0
        else:
            z = 0.0 if d == 0.0 else 1.0
        # the time-of-day slot (-1: none) and the prediction error against the slot's mean
        if self._day_width and t is not None:
            tt = t
            if -1e15 < tt < 1e15:
                day = _floordiv(tt, _DAY)
                slot = _to_int(_floordiv(tt - day * _DAY, self._day_width))
                if slot >= self.day_slots:
                    slot = self.day_slots - 1
                if self.weekend_slots and ((_to_int(day) + 3) % 7 + 7) % 7 >= 5:
                    slot += self.day_slots
                v = x - self._lmean if self.day_detrend else x
                vis = self._dvis[_index(slot, self._slots, "bytearray")]
                if self.day_fading:
                    i = _index(2 * slot, 2 * self._slots, "array")
                    if vis:
                        ds = v - self._dstat[i]
                        dvar = self._dstat[i + 1]
                        if vis >= self.day_visits and dvar > 0.0:
                            zs = _sqrt(dvar) * self.z_scale
                            if zs == 0.0:
                                raise ZeroDivisionError("float division by zero")
                            zs = abs(ds) / zs
                            if zs > z:
                                z = zs if zs < 1.0 else 1.0
                        a = self.day_fading
                        self._dstat[i] += a * ds
                        self._dstat[i + 1] = (1.0 - a) * (dvar + a * ds * ds)
                    else:
                        self._dstat[i] = v
                        self._dstat[i + 1] = var
        if z > raw:
            raw = z
        elif raw < 0.0:
            raw = 0.0
        a = self.fading
        self._mean += a * d
        self._var = (1.0 - a) * (var + a * d * d)
        # 2. likelihood
        avg = self._avg + self.short * (raw - self._avg)
        self._avg = avg
        mu = self._mu
        s2 = self._s2
        sd = _sqrt(s2)
        if sd < self.min_sd:
            sd = self.min_sd
        dm = avg - mu
        p = 0.5 * erfc(dm / sd * _SQRT1_2)
        lam = self.long if n * self.long > 1.0 else 1.0 / n
        self._mu = mu + lam * dm
        self._s2 = (1.0 - lam) * (s2 + lam * dm * dm)
        score = -_log10(p) * self._scale if p > self.pmin else 1.0
        tod = False
        # 3b. time of day
        if slot >= 0:
            si = _index(slot, self._slots, "array")
            if vis:
                dlo = self._dlo[si]
                dhi = self._dhi[si]
                if v < dlo:
                    if vis >= self.day_visits and dlo - v > self.day_margin * span and self.day_score > score:
                        score = self.day_score
                        tod = True
                    self._dlo[si] = v
                elif v > dhi:
                    if vis >= self.day_visits and v - dhi > self.day_margin * span and self.day_score > score:
                        score = self.day_score
                        tod = True
                    self._dhi[si] = v
            else:
                self._dhi[si] = v
                self._dlo[si] = v
            if slot != self._dslot:
                self._dslot = slot
                if vis < 255:
                    self._dvis[_index(slot, self._slots, "bytearray")] = vis + 1
        if ext > self.margin * (rhi - rlo) and far:
            if self.extreme > score:
                score = self.extreme
                tod = False
            self._rlo = self._lo
            self._rhi = self._hi
        if stuck > score:
            score = stuck if stuck < 1.0 else 1.0
            tod = False
        # 5. minimum history
        if n < self.learn:
            score = 0.0
        # 6. suppression
        if self._quiet:
            self._quiet -= 1
            if tod and not self._qday and self.day_through:
                if score >= self.fire:
                    self._quiet = self.suppress
                    self._qday = True
            else:
                score *= self.damp
        elif score >= self.fire:
            self._quiet = self.suppress
            self._qday = tod
        return score

    # -- state ------------------------------------------------------------------------

    def dump_state(self):
        return [
            self._n, self._lo, self._hi, self._mean, self._var,
            self._b1, self._b2,
            PyBytes_FromStringAndSize(<char *>self._counts, self._ncounts),
            PyBytes_FromStringAndSize(<char *>self._totals, self._ntotals),
            self._avg, self._mu, self._s2, self._quiet,
            self._lmean, self._lvar, self._prev, self._c0, self._k0,
            self._c1, self._k1, int(self._rep), self._run, self._step,
            self._rlo, self._rhi, _pack(self._dlo, self._slots), _pack(self._dhi, self._slots),
            PyBytes_FromStringAndSize(<char *>self._dvis, self._slots), self._dslot,
            self._len, self._maxlen, int(self._qday), _pack(self._dstat, 2 * self._slots),
        ]

    def load_state(self, state):
        bad = "bad sentinel state"
        try:
            values = list(state)
        except TypeError:
            raise ValueError(bad) from None
        if len(values) != 33:
            raise ValueError(bad)
        (n, lo, hi, mean, var, b1, b2, counts, totals, avg, mu, s2, quiet,
         lmean, lvar, prev, c0, k0, c1, k1, rep, run, step, rlo, rhi, dlo, dhi, dvis, dslot, rlen, maxlen, qday, dstat) = values
        for v in (n, quiet, rep, dslot, b1, b2, qday, rlen, maxlen):
            if type(v) is not int:
                raise ValueError(bad)
        if min(n, quiet, rep, qday, rlen, maxlen) < 0 or rep > 1 or qday > 1 or max(n, quiet, rlen, maxlen) >= 1 << 62:
            raise ValueError(bad)
        for v in (lo, hi, rlo, rhi, mean, var, avg, mu, s2, lmean, lvar, prev, c0, k0, c1, k1, run, step):
            if type(v) is not float:
                raise ValueError(bad)
        if type(dlo) is not bytes or type(dhi) is not bytes or type(dvis) is not bytes or type(dstat) is not bytes:
            raise ValueError(bad)
        if (len(dlo) != 8 * self._slots or len(dhi) != len(dlo) or len(dvis) != self._slots
                or len(dstat) != 2 * len(dlo)):
            raise ValueError(bad)
        if not -1 <= dslot < len(dvis):
            raise ValueError(bad)
        if (min(b1, b2) < 0 or type(counts) is not bytes or len(counts) != self._ncounts
                or type(totals) is not bytes or len(totals) != self._ntotals or b1 >= self.bins or b2 >= self.bins):
            raise ValueError(bad)
        self._n = n
        self._lo, self._hi, self._mean, self._var = lo, hi, mean, var
        self._quiet, self._qday = quiet, qday == 1
        self._avg, self._mu, self._s2 = avg, mu, s2
        self._lmean, self._lvar, self._prev = lmean, lvar, prev
        self._c0, self._k0, self._c1, self._k1 = c0, k0, c1, k1
        self._rep, self._run, self._step = rep == 1, run, step
        self._len, self._maxlen = rlen, maxlen
        self._rlo, self._rhi = rlo, rhi
        self._b1, self._b2 = b1, b2
        memcpy(self._counts, PyBytes_AS_STRING(counts), self._ncounts)
        memcpy(self._totals, PyBytes_AS_STRING(totals), self._ntotals)
        _unpack(dlo, self._dlo, self._slots)
        _unpack(dhi, self._dhi, self._slots)
        _unpack(dstat, self._dstat, 2 * self._slots)
        memcpy(self._dvis, PyBytes_AS_STRING(dvis), self._slots)
        self._dslot = dslot
