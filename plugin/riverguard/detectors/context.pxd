# cython: language_level=3
# C types for context.py (Cython pure-Python mode): nothing here but declarations.

cimport cython
from libc.stdint cimport int64_t, uint64_t

from riverguard.detectors.steps cimport Pipeline, Settings, Surprise


cdef class ContextSettings(Settings):
    cdef public int levels, table_bits
    cdef public tuple orders
    cdef public int64_t halve_every
    # what follows from them, for Patterns
    cdef readonly Py_ssize_t size
    cdef readonly int hash_shift
    cdef readonly uint64_t tmask, hmask
    cdef readonly double inv
    cdef readonly tuple plan


cdef class Patterns(Surprise):
    cdef readonly ContextSettings cfg
    cdef public int64_t _hist
    cdef unsigned char *_table

    @cython.locals(hist=uint64_t, table="unsigned char *", shift=int, tmask=uint64_t,
                   unseen=int, mask=uint64_t, mult=uint64_t, i=Py_ssize_t, c=int)
    cdef double raw(self, int q, int64_t n) except? -2.0
    @cython.locals(levels=int, table="unsigned char *", shift=int, tmask=uint64_t, q=int,
                   hist=uint64_t, unseen=int, j=Py_ssize_t, k=Py_ssize_t, mask=uint64_t, mult=uint64_t,
                   mask2=uint64_t, mult2=uint64_t, i=uint64_t, seen=bint, plan=tuple)
    cdef int peek(self, double *out) except -1
    cdef object _buffer(self, str name, object data)
    cdef bint _fits(self) except -1


cdef class Context(Pipeline):
    pass
