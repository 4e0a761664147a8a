"""C-level interface of the compiled sentinel twin (see _sentinel_c.pyx), for the compiled hot path."""

from libc.stdint cimport int64_t


cdef class Sentinel:
    # parameters (the Python class's names)
    cdef readonly int bins
    cdef readonly double gain, prior, fading, z_scale, short, long, min_sd, pmin, margin, extreme, fire
    cdef readonly int64_t suppress
    cdef readonly double damp, extreme_sd
    cdef readonly int64_t learn
    cdef readonly double repeat_decay, value_long
    cdef readonly int day_slots
    cdef readonly bint weekend_slots
    cdef readonly double day_margin
    cdef readonly int day_visits
    cdef readonly double day_score, day_fading
    cdef readonly bint day_detrend, day_through, stuck_longest
    cdef double _day_width, _scale
    cdef dict _params
    cdef Py_ssize_t _ncounts, _ntotals
    # learned state
    cdef int64_t _n, _quiet, _len, _maxlen
    cdef double _lo, _hi, _rlo, _rhi, _mean, _var, _lmean, _lvar, _avg, _mu, _s2, _prev
    cdef double _c0, _k0, _c1, _k1, _run, _step
    cdef bint _rep, _qday
    cdef int _b1, _b2, _slots
    cdef int64_t _dslot
    cdef unsigned char *_counts
    cdef unsigned char *_totals
    cdef unsigned char *_dvis
    cdef double *_dlo
    cdef double *_dhi
    cdef double *_dstat


    cdef _configure(self, dict p)
    cdef double _surprise(self, double x, double lo, double span) except? -2.0
    cpdef double process(self, double x, object t=*) except? -1.0
