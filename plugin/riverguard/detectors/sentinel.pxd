# cython: language_level=3
# C types for sentinel.py (Cython pure-Python mode): nothing here but declarations.
#
# The compiled hot path (riverguard._hotpath) does
#     from .detectors.sentinel cimport Sentinel
# and calls (<Sentinel>detector).process(x, t) at C level (declared on steps.Pipeline).

cimport cython
from libc.stdint cimport int64_t

from riverguard.detectors.steps cimport Pipeline, Settings, Surprise


@cython.locals(total=int64_t, j=int64_t)
cdef inline int64_t _row_total(unsigned char *counts, int64_t first, int bins) noexcept
@cython.locals(n=Py_ssize_t, sums="unsigned char *", row=Py_ssize_t, out=bytes)
cdef object _totals(unsigned char *counts, int bins, object data)


cdef class SentinelSettings(Settings):
    cdef public int bins
    cdef public double gain, prior
    cdef readonly double prior_mass  # prior * bins


cdef class Transitions(Surprise):
    cdef readonly SentinelSettings cfg
    cdef public int64_t _b1, _b2
    cdef unsigned char *_counts

    @cython.locals(bins=int, row=int64_t, first=int64_t, i=int64_t, c=int64_t, total=int64_t, prior=double,
                   raw=double, j=int64_t, counts="unsigned char *")
    cdef double raw(self, int b, int64_t n) except? -2.0
    @cython.locals(bins=int, first=int64_t, prior=double, total=double,
                   counts="unsigned char *", b=int)
    cdef int peek(self, double *out) except -1
    @cython.locals(bins=int)
    cdef object _buffer(self, str name, object data)
    @cython.locals(bins=int)
    cdef bint _fits(self) except -1


cdef class Sentinel(Pipeline):
    pass
