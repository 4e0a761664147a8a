# Types for _hotpath.py (Cython pure-Python mode): this file adds C types and nothing else.
cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free
from libc.math cimport floor, ilogb
from libc.string cimport memchr, memcmp, memcpy, memmove, strlen

from riverguard._plainline cimport Plain, scan
from riverguard.detectors.sentinel cimport Sentinel as CompiledSentinel
from riverguard.detectors.steps cimport Pipeline as CompiledPipeline

cdef extern from "Python.h":
    char *PyOS_double_to_string(double val, char format_code, int precision, int flags, int *type) except NULL
    ctypedef struct PyByteArrayObject:
        Py_ssize_t ob_alloc
        Py_ssize_t ob_exports
        char *ob_bytes
        char *ob_start
    void Py_SET_SIZE(object o, Py_ssize_t size)

cdef int _BOOLEAN
cdef double _NAN
cdef double _p
cdef int _k
cdef Plain _LINE

@cython.no_gc
cdef class Binding:
    cdef public object rule, names, explain
    cdef public double threshold
    cdef public long long warmup

@cython.no_gc
cdef class Series:
    # 64 B: a header, 3 pointers, seen_at, 2 counts of 32 bits, used, and failed and run_seen (one byte each:
    # two C ints would make it 72 B, an 80-byte block)
    cdef public Binding binding
    cdef public object detector, last_time
    cdef public long long seen_at
    cdef public unsigned int seen, anomalies
    cdef public unsigned int used
    cdef public signed char failed, run_seen

cdef int WINDOW  # (the size of Clock's arrays)
cdef long long NO_HORIZON

@cython.final
cdef class Clock:
    cdef long long ring[127]
    cdef long long order[127]
    cdef public int count, at
    cdef public bint known
    cdef public long long now, ttl, horizon, newest, then
    cdef public long long ahead
    cpdef void set_ttl(self, long long ttl)
    cpdef bint on_time(self, long long t, long long newest)
    cdef void _set(self, long long now)
    @cython.locals(n=int, i=int, j=int, median="long long", prev="long long", newest=bint)
    cpdef bint advance(self, long long t)

cdef unsigned long long _gap(long long a, long long b) noexcept

cpdef bint far_ahead(long long t, long long now, long long newest, long long ttl) noexcept

@cython.locals(lo=int, hi=int, mid=int)
cdef int _bisect(long long *order, int n, long long t, bint right) noexcept

cdef unsigned int _clock
cdef unsigned int _CLOCK_END

cpdef unsigned int clock()

cpdef void set_clock(unsigned int value)

cpdef void touch(Series series)

@cython.locals(last_ns="long long", ts_ns="long long", stale=bint)
cpdef void arrive(object engine, Series series, bytes skey, object timestamp, Clock clock)

cdef long long NOT_SEEN
cdef unsigned int COUNT_END

@cython.locals(series=Series)
cpdef void clock_known(object held, long long now)

cpdef void restore(Series series, unsigned long long seen, object last_time, object seen_at, unsigned long long anomalies)

@cython.locals(top=Py_ssize_t)
cdef void _renumber()


@cython.locals(n=Py_ssize_t, need=Py_ssize_t, o="PyByteArrayObject *")
cdef char *_room(bytearray ob, Py_ssize_t size) except NULL

@cython.locals(size=Py_ssize_t)
cdef int _put(bytearray ob, bytes data, Py_ssize_t start, Py_ssize_t stop) except -1

@cython.locals(out=bytes)
cdef bytes _join(bytes b, Py_ssize_t a, Py_ssize_t a_len, Py_ssize_t c, Py_ssize_t c_len)

@cython.locals(at="const void *")
cdef Py_ssize_t _find_byte(bytes b, int c, Py_ssize_t start, Py_ssize_t end) except? -2

@cython.locals(size=Py_ssize_t, p="char *", q="char *", i=Py_ssize_t, last=Py_ssize_t, at="const void *")
cdef bint _contains(bytes b, Py_ssize_t start, Py_ssize_t end, bytes needle) except -1

cdef bytes _OWN

@cython.locals(p="char *")
cdef bint _own(bytes b, Py_ssize_t start, Py_ssize_t end) except -1

cpdef bytes format_score(double score)

@cython.locals(ob=bytearray)
cpdef bytes format_band(double value)

@cython.locals(s="char *", text=bytes, n=Py_ssize_t, bare=bint)
cdef bytes _format(double value, int digits)

cdef double _P10[23]

cdef int _ilogb(double av) noexcept

@cython.locals(av=double, e=int, top="long long", k=int, scaled=double, whole=double, frac=double, m="long long",
               n=int, last=int, i=int, dig="char[16]")
cdef int _quick_g(double value, int digits, char *buf) noexcept

@cython.locals(s="char *", size=Py_ssize_t, buf="char[40]")
cdef int _put_g(bytearray ob, double value, int digits) except -1

cdef double _value(object value) except? -1.0

@cython.locals(m=double, d=double)
cdef bint _alike(double a, double b) except -1

cdef int _band_digits(double e0, double e1, double e2) except -1

@cython.locals(j=Py_ssize_t, v=double, name=bytes, why=bytes, band=object, digits=int)
cdef int _explained(object engine, tuple names, int has, double e0, double e1, double e2, object detector, double x,
                    bint flag, bint warm, object keys, bytearray ob) except -1

cpdef object checked_score(object score)

@cython.locals(score=double)
cdef double _process(object detector, double x, object t) except? -1.0

@cython.locals(score=double, flag=int, names=tuple, has=int, e0=double, e1=double, e2=double,
               pipeline=CompiledPipeline, band=object, answer="double[3]")
cdef int _field(object engine, Series series, bytes skey, bytes kb, Py_ssize_t key, Py_ssize_t key_len, double number,
                object t, object timestamp, Clock clock, bytearray ob, bint with_flag, object keys) except -1

@cython.locals(threshold=double, flag=bint, text=bytes, prefix=bytes, suffix=bytes)
cpdef int verdict(Series series, double score, tuple names, bint with_flag, bytearray ob) except -1

@cython.locals(score_suffix=bytes, flag_suffix=bytes, raw=bytes, fields=list, all_series=dict, ob=bytearray,
               series=Series, skey=bytes, key=bytes, with_flag=bint, scored=int)
cpdef bytes score(object engine, object metric, bint write=*)

@cython.locals(i=Py_ssize_t, j=Py_ssize_t)
cdef bint _distinct(bytes b, Plain line) except -1

@cython.locals(k=Py_ssize_t)
cdef bint _same(bytes b, Py_ssize_t i, Py_ssize_t j, Py_ssize_t n) except -1

@cython.locals(line=Plain, n=Py_ssize_t, nl=Py_ssize_t, head=Py_ssize_t, k=Py_ssize_t, metrics="long long",
               flags="long long", missing=bint, score_suffix=bytes, flag_suffix=bytes, all_series=dict, found=list,
               skeys=list, ob=bytearray, skey=bytes, series=Series, extra=bytes, scored=int,
               fields_scored="long long", stamp_ns="long long", clock=Clock, known=bint)
cpdef Py_ssize_t run(object engine, bytes buf, Py_ssize_t pos, list out) except -1
