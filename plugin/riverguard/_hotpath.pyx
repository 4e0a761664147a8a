# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled twin of the engine for plain metrics (the common case), built when a C compiler is there.

:func:`riverguard.stream.feed` calls :func:`run` on the input buffer.
``run`` handles, entirely in C, every metric that is *plain*: one physical
line with no backslash, no double quote and no control byte; measurement,
sorted tags, numeric or boolean fields with distinct keys, an optional
timestamp; single spaces; no field already named like riverguard's added
fields; every series already known. It stops at the first line that is not
plain and returns its position: the Python engine (``Splitter`` and
``Engine.process``) takes that one, then ``run`` goes on. A plain line whose
series are new is scored by ``Engine._score`` (rule routing stays in Python).

The contract is strict: for every line ``run`` accepts, the output bytes and
every change to the engine (counters, series order, detector state) are
exactly what the Python path produces. ``tests/test_hotpath.py`` checks that
on generated streams. Anything doubtful is left to Python rather than guessed.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_DelItem, PyDict_GetItem, PyDict_SetItem
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_AsDouble, PyFloat_CheckExact
from cpython.long cimport PyLong_FromLongLong
from cpython.ref cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.math cimport isinf
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from cpython.mem cimport PyMem_Free
from libc.string cimport memchr, memcmp, memcpy, strlen

from .detectors._sentinel_c cimport Sentinel as CompiledSentinel
from .lineprotocol import parse as _parse

cdef extern from "Python.h":
    double PyOS_string_to_double(const char *s, char **endptr, PyObject *overflow_exception) except? -1.0
    char *PyOS_double_to_string(double val, char format_code, int precision, int flags, int *type) except NULL

DEF MAX_FIELDS = 64
DEF MAX_TAGS = 64
DEF MAX_NUMBER = 64

cdef enum Kind:
    NUMBER = 0
    BOOLEAN = 1

cdef struct FieldTok:
    Py_ssize_t key  # absolute offsets into the buffer
    Py_ssize_t key_len
    int kind
    double number

cdef struct Line:
    Py_ssize_t start  # the line is buf[start:end], the newline at end
    Py_ssize_t end
    Py_ssize_t head_end  # the space after measurement and tags
    Py_ssize_t fields_end
    bint has_ts
    int64_t ts
    int nfields


cdef struct OutBuf:
    char *data
    Py_ssize_t len
    Py_ssize_t cap


cdef int _grow(OutBuf *ob, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap = ob.cap
    cdef char *data
    if ob.len + extra <= cap:
        return 0
    while cap < ob.len + extra:
        cap = cap * 2 if cap else 1 << 16
    data = <char *>realloc(ob.data, cap)
    if data == NULL:
        raise MemoryError()
    ob.data = data
    ob.cap = cap
    return 0


cdef inline int _put(OutBuf *ob, const char *src, Py_ssize_t size) except -1:
    if ob.len + size > ob.cap:
        _grow(ob, size)
    memcpy(ob.data + ob.len, src, size)
    ob.len += size
    return 0


cdef inline int _put_bytes(OutBuf *ob, object data) except -1:
    return _put(ob, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef inline bint _digit(unsigned char c) nogil:
    return 48 <= c <= 57


cdef bint _float_token(const unsigned char *b, Py_ssize_t i, Py_ssize_t end) nogil:
    """``[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?``: the codec's FLOAT, exactly."""
    cdef Py_ssize_t whole = 0, frac = 0, expo = 0
    if i < end and (b[i] == 43 or b[i] == 45):  # + -
        i += 1
    while i < end and _digit(b[i]):
        i += 1
        whole += 1
    if i < end and b[i] == 46:  # .
        i += 1
        while i < end and _digit(b[i]):
            i += 1
            frac += 1
        if whole == 0 and frac == 0:
            return False
    elif whole == 0:
        return False
    if i < end and (b[i] == 101 or b[i] == 69):  # e E
        i += 1
        if i < end and (b[i] == 43 or b[i] == 45):
            i += 1
        while i < end and _digit(b[i]):
            i += 1
            expo += 1
        if expo == 0:
            return False
    return i == end


cdef double[23] _POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                         1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22]


cdef Py_ssize_t _digits(const unsigned char *b, Py_ssize_t i, Py_ssize_t end, uint64_t *m, int *sig) noexcept nogil:
    """Add the decimal digits at ``b[i:]`` to ``m`` (leading zeros skipped); the position after them,
    or -1 past 18 significant digits (``m`` could overflow)."""
    while i < end and _digit(b[i]):
        if m[0] or b[i] != 48:
            if sig[0] == 18:
                return -1
            m[0] = m[0] * 10 + (b[i] - 48)
            sig[0] += 1
        i += 1
    return i


cdef bint _fast_decimal(const unsigned char *b, Py_ssize_t i, Py_ssize_t end, double *out) noexcept nogil:
    """Clinger's fast path for a token :func:`_float_token` accepted: a mantissa below 2**53 and a power of
    ten up to 22 are both exact doubles, so one multiplication or division gives the correctly rounded
    value, the same double as Python's float(). False (use the general conversion) for anything else."""
    cdef bint negative = False, exp_negative = False
    cdef uint64_t m = 0
    cdef int digits = 0, frac = 0
    cdef long e = 0
    cdef double v
    cdef Py_ssize_t start
    if b[i] == 45:
        negative = True
        i += 1
    elif b[i] == 43:
        i += 1
    i = _digits(b, i, end, &m, &digits)
    if i < 0:
        return False
    if i < end and b[i] == 46:
        start = i + 1
        i = _digits(b, start, end, &m, &digits)
        if i < 0:
            return False
        frac = <int>(i - start)
    if i < end:  # an exponent
        i += 1
        if b[i] == 45:
            exp_negative = True
            i += 1
        elif b[i] == 43:
            i += 1
        while i < end:
            if e > 1000:
                return False
            e = e * 10 + (b[i] - 48)
            i += 1
        if exp_negative:
            e = -e
    if m > (<uint64_t>1 << 53):
        return False
    e -= frac
    if m == 0:
        v = 0.0
    elif 0 <= e <= 22:
        v = <double>m * _POW10[e]
    elif -22 <= e < 0:
        v = <double>m / _POW10[-e]
    else:
        return False
    out[0] = -v if negative else v
    return True


cdef inline bint _magnitude(const unsigned char *b, Py_ssize_t i, Py_ssize_t end, uint64_t limit, uint64_t *out) nogil:
    """``b[i:end]``: one or more digits and nothing else, at most ``limit``."""
    cdef uint64_t acc = 0, d
    if i >= end:
        return False
    while i < end:
        if not _digit(b[i]):
            return False
        d = b[i] - 48
        if acc > (limit - d) // 10:
            return False
        acc = acc * 10 + d
        i += 1
    out[0] = acc
    return True


cdef inline bint _int64(const unsigned char *b, Py_ssize_t i, Py_ssize_t end, int64_t *out) nogil:
    """``b[i:end]``: an optional ``-`` and digits, within int64 (what ``int()`` reads there)."""
    cdef bint negative = i < end and b[i] == 45
    cdef uint64_t acc
    if negative:
        i += 1
    if not _magnitude(b, i, end, ((<uint64_t>1) << 63) - (0 if negative else 1), &acc):
        return False
    if not negative:
        out[0] = <int64_t>acc
    elif acc == ((<uint64_t>1) << 63):
        out[0] = <int64_t>(-9223372036854775807) - 1
    else:
        out[0] = -<int64_t>acc
    return True


cdef bint _int_token(const unsigned char *b, Py_ssize_t i, Py_ssize_t end, bint signed, double *out) nogil:
    """An ``i`` (int64) or ``u`` (uint64) value's digits, as the float Python's ``float(int(..))`` gives."""
    cdef int64_t value
    cdef uint64_t magnitude
    if signed:
        if not _int64(b, i, end, &value):
            return False
        out[0] = <double>value
    else:
        if not _magnitude(b, i, end, <uint64_t>0xFFFFFFFFFFFFFFFF, &magnitude):
            return False
        out[0] = <double>magnitude
    return True


cdef bint _boolean(const unsigned char *b, Py_ssize_t i, Py_ssize_t end) nogil:
    cdef Py_ssize_t size = end - i
    if size == 1:
        return b[i] == 116 or b[i] == 84 or b[i] == 102 or b[i] == 70  # t T f F
    if size == 4:
        return (memcmp(b + i, b"true", 4) == 0 or memcmp(b + i, b"True", 4) == 0
                or memcmp(b + i, b"TRUE", 4) == 0)
    if size == 5:
        return (memcmp(b + i, b"false", 5) == 0 or memcmp(b + i, b"False", 5) == 0
                or memcmp(b + i, b"FALSE", 5) == 0)
    return False


cdef int _compare(const unsigned char *b, Py_ssize_t i, Py_ssize_t ni, Py_ssize_t j, Py_ssize_t nj) nogil:
    """bytes comparison of b[i:i+ni] and b[j:j+nj]: <0, 0, >0."""
    cdef int c = memcmp(b + i, b + j, ni if ni < nj else nj)
    if c:
        return c
    return (ni > nj) - (ni < nj)


cdef bint _contains(const unsigned char *b, Py_ssize_t start, Py_ssize_t end, const unsigned char *needle,
                    Py_ssize_t size) nogil:
    cdef Py_ssize_t i
    if size == 0:
        return True
    i = start
    while i + size <= end:
        if b[i] == needle[0] and memcmp(b + i, needle, size) == 0:
            return True
        i += 1
    return False


cdef int _plain(const unsigned char *b, Py_ssize_t start, Py_ssize_t end, Line *line, FieldTok *fields) except -1:
    """Parse a plain line into ``line`` and ``fields``; False if it is anything else."""
    cdef Py_ssize_t i, sp1 = -1, sp2 = -1, spaces = 0, item, eq, stop, prev_key = -1, prev_key_len = 0
    cdef Py_ssize_t prev_value = 0, prev_value_len = 0, key_len, value_len
    cdef unsigned char c, last
    cdef int order, ntags = 0, nf = 0
    cdef double number
    cdef char tmp[MAX_NUMBER + 1]
    if end <= start or b[start] == 35:  # '#'
        return False
    for i in range(start, end):
        c = b[i]
        if c == 32:
            spaces += 1
            if spaces == 1:
                sp1 = i
            elif spaces == 2:
                sp2 = i
            else:
                return False
        elif c == 92 or c == 34 or c < 32:  # backslash, quote, control bytes (\r, \t ...)
            return False
    if spaces == 0 or sp1 == start:
        return False
    stop = sp2 if spaces == 2 else end
    if stop == sp1 + 1:
        return False  # empty field set
    # timestamp
    line.has_ts = spaces == 2
    line.ts = 0
    if spaces == 2 and not _int64(b, sp2 + 1, end, &line.ts):
        return False
    # measurement and tags: items split by ',', every tag key=value, non-empty, no '=' in the value
    i = start
    while i < sp1 and b[i] != 44:
        i += 1
    if i == start:
        return False
    while i < sp1:  # at a ','
        item = i + 1
        eq = -1
        i = item
        while i < sp1 and b[i] != 44:
            if b[i] == 61:
                if eq >= 0:
                    return False  # '=' in the value
                eq = i
            i += 1
        if eq <= item or eq + 1 >= i:
            return False  # no '=', empty key or empty value
        key_len = eq - item
        value_len = i - eq - 1
        if prev_key >= 0:
            order = _compare(b, prev_key, prev_key_len, item, key_len)
            if order == 0:
                order = _compare(b, prev_value, prev_value_len, eq + 1, value_len)
            if order > 0:
                return False  # unsorted tags: Python sorts them
        prev_key, prev_key_len, prev_value, prev_value_len = item, key_len, eq + 1, value_len
        ntags += 1
        if ntags > MAX_TAGS:
            return False
    # fields
    i = sp1 + 1
    while True:
        item = i
        eq = -1
        while i < stop and b[i] != 44:
            if b[i] == 61:
                if eq >= 0:
                    return False
                eq = i
            i += 1
        if eq <= item or eq + 1 >= i:
            return False
        if nf == MAX_FIELDS:
            return False
        fields[nf].key = item
        fields[nf].key_len = eq - item
        last = b[i - 1]
        if _digit(last) or last == 46:
            value_len = i - eq - 1
            if value_len > MAX_NUMBER or not _float_token(b, eq + 1, i):
                return False
            if not _fast_decimal(b, eq + 1, i, &number):
                memcpy(tmp, b + eq + 1, value_len)
                tmp[value_len] = 0
                number = PyOS_string_to_double(tmp, NULL, NULL)  # what float() uses
                if isinf(number):
                    return False  # out of range: the Python parser reports it
            fields[nf].kind = NUMBER
            fields[nf].number = number
        elif last == 105 or last == 117:  # i u
            if not _int_token(b, eq + 1, i - 1, last == 105, &number):
                return False
            fields[nf].kind = NUMBER
            fields[nf].number = number
        elif _boolean(b, eq + 1, i):
            fields[nf].kind = BOOLEAN
        else:
            return False
        nf += 1
        if i >= stop:
            break
        i += 1  # past ','
    line.start = start
    line.end = end
    line.head_end = sp1
    line.fields_end = stop
    line.nfields = nf
    return True


cdef bint _distinct(const unsigned char *b, Line *line, FieldTok *fields) nogil:
    cdef int i, j
    for i in range(1, line.nfields):
        for j in range(i):
            if fields[i].key_len == fields[j].key_len and memcmp(b + fields[i].key, b + fields[j].key,
                                                                 fields[i].key_len) == 0:
                return False
    return True


def float_value(bytes token):
    """The float the compiled parser reads from a field value token, or None if it leaves the token to Python.

    For tests: the value must be the very double Python's ``float()`` gives.
    """
    cdef const unsigned char *b = <const unsigned char *>PyBytes_AS_STRING(token)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(token)
    cdef double number
    cdef char tmp[MAX_NUMBER + 1]
    if n == 0 or n > MAX_NUMBER or not _float_token(b, 0, n):
        return None
    if not _fast_decimal(b, 0, n, &number):
        memcpy(tmp, b, n)
        tmp[n] = 0
        number = PyOS_string_to_double(tmp, NULL, NULL)
    return number


cdef class Series:
    """Compiled twin of :class:`riverguard.engine.Series` (the same attributes, read from C directly)."""

    cdef public object rule, detector, last_time
    #: The three added-field prefixes of this series' field key (cached by the compiled path).
    cdef public object names
    cdef public double threshold
    cdef public long long warmup, seen, anomalies
    cdef public bint failed

    def __init__(self, rule, detector):
        self.rule = rule
        self.detector = detector
        self.threshold = rule.effective_threshold if rule else 1.0
        self.warmup = rule.effective_warmup if rule else 0
        self.seen = 0
        self.last_time = None
        self.anomalies = 0
        self.failed = False
        self.names = None


def run(engine, bytes buf, Py_ssize_t pos, list out):
    """Score the plain metrics of ``buf`` from ``pos``; append the output to ``out``.

    Return the position of the first line left to the Python engine (not
    plain, or not newline-terminated); ``len(buf)`` when all were handled.
    """
    cdef const char *b = PyBytes_AS_STRING(buf)
    cdef const unsigned char *u = <const unsigned char *>b
    cdef Py_ssize_t n = PyBytes_GET_SIZE(buf)
    cdef const char *nlp
    cdef Py_ssize_t nl, prefix_len, size
    cdef Line line
    cdef FieldTok fields[MAX_FIELDS]
    cdef OutBuf ob
    cdef char text[40]
    cdef char *formatted
    cdef char *key_buf = NULL
    cdef Py_ssize_t key_cap = 0
    cdef int k, flags
    cdef long long metrics
    cdef double score, threshold
    cdef bint flag, missing
    cdef long long seen
    cdef Series series
    cdef bytes score_suffix = engine.score_suffix
    cdef bytes flag_suffix = engine.flag_suffix
    cdef dict all_series = engine.series
    cdef PyObject *found_series[MAX_FIELDS]
    cdef list skeys = [None] * MAX_FIELDS
    ob.data = NULL
    ob.len = ob.cap = 0
    try:
        while pos < n:
            nlp = <const char *>memchr(b + pos, 10, n - pos)
            if nlp == NULL:
                break
            nl = nlp - b
            if not _plain(u, pos, nl, &line, fields):
                break
            if not _distinct(u, &line, fields):
                break
            if (_contains(u, pos, nl, <const unsigned char *>PyBytes_AS_STRING(score_suffix),
                          PyBytes_GET_SIZE(score_suffix))
                    or _contains(u, pos, nl, <const unsigned char *>PyBytes_AS_STRING(flag_suffix),
                                 PyBytes_GET_SIZE(flag_suffix))):
                break
            # -- as Engine.process: count, advance the clock, expire now and then
            metrics = engine.metrics + 1
            engine.metrics = metrics
            ts_obj = None
            t_obj = None
            if line.has_ts:
                ts_obj = PyLong_FromLongLong(line.ts)
                now = engine.now
                if now is None or ts_obj > now:
                    engine.now = ts_obj
                t_obj = <double>line.ts / 1e9
            if not metrics & 0xFFF:
                engine.expire()
            # -- the series keys; a new series sends the line to Engine._score (rules live there)
            prefix_len = line.head_end - pos + 1
            missing = False
            for k in range(line.nfields):
                if fields[k].kind != NUMBER:
                    continue
                size = prefix_len + fields[k].key_len
                if size > key_cap:
                    free(key_buf)
                    key_cap = size * 2 + 64
                    key_buf = <char *>malloc(key_cap)
                    if key_buf == NULL:
                        key_cap = 0
                        raise MemoryError()
                memcpy(key_buf, b + pos, prefix_len)
                memcpy(key_buf + prefix_len, b + fields[k].key, fields[k].key_len)
                skey = PyBytes_FromStringAndSize(key_buf, size)
                skeys[k] = skey
                found_series[k] = PyDict_GetItem(all_series, skey)
                if found_series[k] == NULL:
                    missing = True
            if missing:
                extra = engine._score(_parse(buf[pos:nl]))
                _put(&ob, b + pos, line.fields_end - pos)
                _put_bytes(&ob, extra)
                _put(&ob, b + line.fields_end, nl + 1 - line.fields_end)
                pos = nl + 1
                continue
            # -- as Engine._score
            _put(&ob, b + pos, line.fields_end - pos)
            flags = 0
            for k in range(line.nfields):
                if fields[k].kind != NUMBER:
                    continue
                skey = skeys[k]
                # (borrowed in the first pass; only this line's other series moved since: still alive)
                series = <Series>found_series[k]
                PyDict_DelItem(all_series, skey)
                PyDict_SetItem(all_series, skey, series)  # now the most recently seen
                if ts_obj is not None:
                    series.last_time = ts_obj
                detector = series.detector
                if detector is None:
                    continue
                try:
                    if type(detector) is CompiledSentinel:  # a C call, no Python objects
                        score = (<CompiledSentinel>detector).process(fields[k].number, t_obj)
                        if not 0.0 <= score <= 1.0:
                            score = PyFloat_AsDouble(_checked_score(score))
                    else:
                        score_obj = detector.process(fields[k].number, t_obj)
                        if PyFloat_CheckExact(score_obj):
                            score = PyFloat_AS_DOUBLE(score_obj)
                            if not 0.0 <= score <= 1.0:
                                score = PyFloat_AsDouble(_checked_score(score_obj))
                        else:
                            score_obj = _checked_score(score_obj)
                            score = PyFloat_AsDouble(score_obj)
                except Exception as err:  # no detector error may reach the stream
                    engine._detector_failed(series, skey, err)
                    continue
                seen = series.seen + 1
                series.seen = seen
                names = series.names
                if names is None:  # a new series (as Engine._score)
                    names = series.names = engine.added_names(PyBytes_FromStringAndSize(b + fields[k].key, fields[k].key_len))
                _put_bytes(&ob, <object>PyTuple_GET_ITEM(names, 0))
                if seen <= series.warmup:
                    _put(&ob, b"0.0", 3)
                    flag = False
                else:
                    # what Python's b"%.6g" % score calls (and faster than glibc's printf)
                    formatted = PyOS_double_to_string(score, 103, 6, 0, NULL)  # 'g'
                    size = strlen(formatted)
                    if size > 30:
                        PyMem_Free(formatted)
                        raise ValueError("score text too long")
                    memcpy(text, formatted, size)
                    PyMem_Free(formatted)
                    if memchr(text, 46, size) == NULL and memchr(text, 101, size) == NULL:
                        text[size] = 46
                        text[size + 1] = 48
                        size += 2
                    _put(&ob, text, size)
                    threshold = series.threshold
                    if score < threshold - 1e-5:
                        flag = False
                    elif score > threshold + 1e-5:
                        flag = True
                    else:
                        text[size] = 0
                        flag = PyOS_string_to_double(text, NULL, NULL) >= threshold
                    if flag:
                        series.anomalies += 1
                        flags += 1
                _put_bytes(&ob, <object>PyTuple_GET_ITEM(names, 1 if flag else 2))
            if flags:
                engine.anomalies += flags
            _put(&ob, b + line.fields_end, nl + 1 - line.fields_end)
            pos = nl + 1
    finally:
        free(key_buf)
        if ob.len:
            out.append(PyBytes_FromStringAndSize(ob.data, ob.len))
        free(ob.data)
    return pos


from .engine import checked_score as _checked_score
