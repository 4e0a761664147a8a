# cython: language_level=3
"""C versions of the float operations whose C meaning differs from Python's, with Python's meaning.

The compiled detector modules (steps.py, sentinel.py, context.py) cimport these
when compiled; run as plain Python they use ``math`` and the operators. Same
result bits, same exceptions: compiled and uncompiled builds of one source
give byte-identical output (tests/test_compiled.py).
"""

from libc.math cimport copysign, floor, fmod, isinf, isnan, log10 as c_log10, sqrt as c_sqrt
from libc.stdint cimport int64_t


cdef inline double floordiv(double vx, double wx) except? -1.0:
    """Python's float ``vx // wx`` (Objects/floatobject.c, _float_div_mod)."""
    cdef double mod, div, fdiv
    if wx == 0.0:
        raise ZeroDivisionError("float floor division by zero")
    mod = fmod(vx, wx)
    div = (vx - mod) / wx
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


cdef inline int64_t to_int(double v) except? -1:
    """Python's ``int(v)`` for a float, within int64 (raises as Python does on inf and NaN)."""
    if isnan(v):
        raise ValueError("cannot convert float NaN to integer")
    if isinf(v):
        raise OverflowError("cannot convert float infinity to integer")
    if v >= 9.2e18 or v <= -9.2e18:
        # Python would give a huge int; every use here compares or clamps it.
        return <int64_t>9000000000000000000 if v > 0 else -<int64_t>9000000000000000000
    return <int64_t>v


cdef inline int64_t int_within(double v) noexcept:
    """Python's ``int(v)`` for a float the caller knows is within int64 (no checks: it stays inlined)."""
    return <int64_t>v


cdef inline double sqrt(double v) except? -1.0:
    """``math.sqrt``: ValueError below 0."""
    if v < 0.0:
        raise ValueError("math domain error")
    return c_sqrt(v)


cdef inline double log10(double v) except? -1.0:
    """``math.log10``: ValueError at and below 0."""
    if v <= 0.0:
        raise ValueError("math domain error")
    return c_log10(v)
