# Types for _plainline.py (Cython pure-Python mode): this file adds C types and nothing else.
cimport cython
from libc.stdint cimport int64_t, uint64_t

ctypedef unsigned char uchar

cdef enum:
    CAPACITY = 64  # MAX_FIELDS in _plainline.py

cdef int64_t _INT64_MAX
cdef Py_ssize_t _MAX_FIELDS, _MAX_NUMBER
cdef double _INF
cdef int KIND_FLOAT, KIND_INT, KIND_UINT, KIND_BOOL
cdef double _POW10[23]
cdef unsigned char _STOPS[256]

@cython.final
cdef class Plain:
    cdef public Py_ssize_t start, end, head_end, fields_end, nfields
    cdef public bint has_ts
    cdef public int64_t ts, value
    cdef public Py_ssize_t eq
    cdef public Py_ssize_t key[CAPACITY]
    cdef public Py_ssize_t key_len[CAPACITY]
    cdef public int kind[CAPACITY]
    cdef public double number[CAPACITY]

@cython.locals(whole=Py_ssize_t, frac=Py_ssize_t, expo=Py_ssize_t)
cdef bint _float_token(bytes b, Py_ssize_t i, Py_ssize_t end) except -1

@cython.locals(negative=bint, exp_negative=bint, m=uint64_t, digits=int, frac=long, e=long, start=Py_ssize_t,
               v=double, dot=bint, c=uchar)
cdef double _decimal(bytes b, Py_ssize_t i, Py_ssize_t end) except? -1.0

@cython.locals(negative=bint, limit=uint64_t, acc=uint64_t, d=uint64_t, value=int64_t)
cdef bint _int64(bytes b, Py_ssize_t i, Py_ssize_t end, Plain line) except -1

@cython.locals(n=Py_ssize_t, k=Py_ssize_t)
cdef bint _unsigned(bytes b, Py_ssize_t i, Py_ssize_t end) except -1

@cython.locals(size=Py_ssize_t, c=uchar)
cdef bint _boolean(bytes b, Py_ssize_t i, Py_ssize_t end) except -1

@cython.locals(k=Py_ssize_t)
cdef int _compare(bytes b, Py_ssize_t i, Py_ssize_t ni, Py_ssize_t j, Py_ssize_t nj) except? -999

@cython.locals(out=list, k=Py_ssize_t, kind=int)
cpdef list fields(bytes b, Plain line)

@cython.locals(n=Py_ssize_t, v=double)
cpdef object number_value(bytes token)

cdef Py_ssize_t _item(bytes b, Py_ssize_t i, Py_ssize_t end, Plain line) except -2
@cython.locals(c=uchar)
cdef inline Py_ssize_t _ordinary(bytes b, Py_ssize_t i, Py_ssize_t end) noexcept

@cython.locals(sp1=Py_ssize_t, i=Py_ssize_t,
               item=Py_ssize_t, eq=Py_ssize_t, key_len=Py_ssize_t, prev_key=Py_ssize_t,
               prev_key_len=Py_ssize_t, nf=Py_ssize_t,
               last=uchar, number=double)
cpdef bint scan(bytes b, Py_ssize_t start, Py_ssize_t end, Plain line) except -1
