# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, annotation_typing=False
"""The line-protocol codec's parser for plain metrics: one source, compiled when a C compiler is there.

A metric is *plain* when it is one physical line with no backslash, no
double quote and no control byte; a measurement, tags sorted by key as
Telegraf writes them (each key once), numeric or boolean fields, an
optional timestamp; single spaces. That is nearly every metric Telegraf writes. :func:`scan` reads
such a line into a :class:`Plain` record (offsets into the buffer, values
as doubles) and says False for anything else, which the general parser in
:mod:`riverguard.lineprotocol` then reads (and reports, if it is wrong).
Both give the same result on every line :func:`scan` accepts
(tests/test_parser_fastpath.py).

This file runs as plain Python, and Cython compiles it (types in
``_plainline.pxd``) into C that creates no Python object at all: the engine's
hot loop (:mod:`riverguard._hotpath`) calls it at C level.

>>> line = Plain()
>>> scan(b"cpu,host=a idle=97.5,n=3i,ok=true 1700000000000000000", 0, 53, line)
True
>>> line.nfields, line.number[0], line.number[1], chr(line.kind[2]), line.ts
(3, 97.5, 3.0, 'b', 1700000000000000000)
>>> scan(b'cpu,host=a msg="x" 1', 0, 20, line)
False
"""

from __future__ import annotations

import re

try:
    import cython
except ImportError:  # Cython is not installed: this runs as the plain Python it is
    from . import _compiled as cython  # noqa: F401 - what the compiled build reads of cython

__all__ = ["BOOLEAN", "FLOAT", "MAX_FIELDS", "TIMESTAMP", "Plain", "fields", "integer", "number_value", "scan"]

#: A line with more fields than this is left to the general parser.
MAX_FIELDS = 64
#: A numeric value longer than this (in bytes) is left to the general parser.
MAX_NUMBER = 64
_MAX_FIELDS = MAX_FIELDS  # (C copies in the compiled build)
_MAX_NUMBER = MAX_NUMBER

# Field kinds, as the codec's Field.kind letters.
KIND_FLOAT, KIND_INT, KIND_UINT, KIND_BOOL = 102, 105, 117, 98  # f i u b
#: The kind code of a boolean field in a :class:`Plain` record (KIND_BOOL, which compiled is C-only).
BOOLEAN = KIND_BOOL

_INT64_MAX = 9223372036854775807
_INF = float("inf")
#: A float field value as line protocol writes it (the codec's grammar, :mod:`riverguard.lineprotocol`).
FLOAT = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: A timestamp: an optional '-' and digits (the codec's grammar).
TIMESTAMP = re.compile(rb"-?[0-9]+")

#: The bytes that end an item (',' and a space), split it ('='), or make a line not plain (a backslash,
#: a double quote, control bytes); any other byte is an item's ordinary content (:func:`_ordinary`).
_SPECIAL = b',= "\\' + bytes(range(32))
_ORDINARY = re.compile(b"[^" + b"".join(b"\\x%02x" % c for c in _SPECIAL) + b"]*")  # uncompiled
if cython.compiled:  # a table: one load per byte
    for _c in _SPECIAL:
        _STOPS[_c] = 1

# 10**0 .. 10**22: every one an exact double.
_POW10 = (1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
          1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22)


class Plain:
    """One plain line of a buffer: where its parts are, and its fields' values.

    ``key[k]``/``key_len[k]`` locate field ``k``'s key in the buffer,
    ``kind[k]`` is its kind letter's code, ``number[k]`` its value (0.0 for
    a boolean); ``head_end`` is the space after measurement and tags,
    ``fields_end`` the end of the field set, ``ts`` the timestamp if
    ``has_ts``.
    """

    def __init__(self) -> None:
        self.start = 0
        self.end = 0
        self.head_end = 0
        self.fields_end = 0
        self.has_ts = False
        self.ts = 0
        self.value = 0  # scratch: the last integer read
        self.eq = 0  # scratch: where the last item's '=' is
        self.nfields = 0
        if not cython.compiled:  # compiled, these are C arrays of MAX_FIELDS (zeroed)
            self.key = [0] * MAX_FIELDS
            self.key_len = [0] * MAX_FIELDS
            self.kind = [0] * MAX_FIELDS
            self.number = [0.0] * MAX_FIELDS


def _float_token(b: bytes, i: int, end: int) -> bool:
    """``[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?``: the codec's :data:`FLOAT`, exactly.

    Uncompiled, the regular expression itself; compiled, this loop.
    """
    if not cython.compiled:
        return FLOAT.fullmatch(b, i, end) is not None
    whole = 0
    frac = 0
    expo = 0
    if i < end and (b[i] == 43 or b[i] == 45):  # + -
        i += 1
    while i < end and 48 <= b[i] <= 57:
        i += 1
        whole += 1
    if i < end and b[i] == 46:  # .
        i += 1
        while i < end and 48 <= b[i] <= 57:
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
        while i < end and 48 <= b[i] <= 57:
            i += 1
            expo += 1
        if expo == 0:
            return False
    return i == end


def _decimal(b: bytes, i: int, end: int) -> float:
    """The double ``float()`` reads from a token :func:`_float_token` accepted.

    Uncompiled, ``float()`` itself. Compiled, Clinger's fast path first: a
    mantissa below 2**53 and a power of ten up to 22 are both exact doubles,
    so one multiplication or division gives the correctly rounded value.
    Anything else goes to ``float()``.
    """
    if not cython.compiled:
        return float(b[i:end])
    negative = False
    exp_negative = False
    m = 0
    digits = 0
    frac = 0
    e = 0
    start = i
    if b[i] == 45:
        negative = True
        i += 1
    elif b[i] == 43:
        i += 1
    dot = False
    while i < end and (48 <= b[i] <= 57 or (b[i] == 46 and not dot)):  # the digits, leading zeros skipped
        c = b[i]
        if c == 46:
            dot = True
        else:
            if m or c != 48:
                if digits == 18:
                    return float(b[start:end])
                m = m * 10 + (c - 48)
                digits += 1
            if dot:
                frac += 1
        i += 1
    if i < end:  # an exponent
        i += 1
        if b[i] == 45:
            exp_negative = True
            i += 1
        elif b[i] == 43:
            i += 1
        while i < end:
            if e > 1000:
                return float(b[start:end])
            e = e * 10 + (b[i] - 48)
            i += 1
        if exp_negative:
            e = -e
    if m > 9007199254740992:  # 2**53
        return float(b[start:end])
    e -= frac
    if m == 0:
        v = 0.0
    elif 0 <= e <= 22:
        v = m * _POW10[e]
    elif -22 <= e < 0:
        v = m / _POW10[-e]
    else:
        return float(b[start:end])
    return -v if negative else v


def integer(text: bytes, digits: int) -> int | None:
    """``int(text)`` of a sign and decimal digits, or None when it has more than ``digits`` significant digits.

    Checked first because Python refuses to convert more than 4300 digits
    (ValueError, which would stop the stream), and a 64-bit value has 20 at most.
    Leading zeros do not count (Go's ParseInt, InfluxDB's, takes them).

    >>> integer(b"-0042", 19), integer(b"9" * 5000, 19), integer(b"0" * 5000 + b"7", 19)
    (-42, None, 7)
    """
    if len(text) <= digits:
        return int(text)
    sign = text[:1] if text[:1] in (b"+", b"-") else b""
    significant = text[len(sign) :].lstrip(b"0")
    if len(significant) > digits:
        return None
    return int(sign + (significant or b"0"))


def _int64(b: bytes, i: int, end: int, line: Plain) -> bool:
    """``b[i:end]``: an optional ``-`` and one or more digits (:data:`TIMESTAMP`), nothing else, within int64;
    the value in ``line.value``. Uncompiled, the regular expression and ``int()``; compiled, this loop."""
    if not cython.compiled:
        if TIMESTAMP.fullmatch(b, i, end) is None:
            return False
        value = integer(b[i:end], 19)
        if value is None or not -_INT64_MAX - 1 <= value <= _INT64_MAX:
            return False
        line.value = value
        return True
    negative = i < end and b[i] == 45
    if negative:
        i += 1
    limit = _INT64_MAX
    limit += negative  # 2**63 for a negative number (unsigned when compiled)
    acc = 0
    if i >= end:
        return False
    while i < end:
        if not 48 <= b[i] <= 57:
            return False
        d = b[i] - 48
        if acc > (limit - d) // 10:
            return False
        acc = acc * 10 + d
        i += 1
    if not negative:
        line.value = acc
    elif acc == limit:
        line.value = -_INT64_MAX - 1
    else:
        value = acc
        line.value = -value
    return True


def _unsigned(b: bytes, i: int, end: int) -> bool:
    """``b[i:end]``: one or more digits and nothing else, within uint64."""
    n = end - i
    if n <= 0 or n > 20:
        return False
    for k in range(i, end):
        if not 48 <= b[k] <= 57:
            return False
    return n < 20 or b[i:end] <= b"18446744073709551615"


def _boolean(b: bytes, i: int, end: int) -> bool:
    size = end - i
    c = b[i]
    if size == 1:
        return c == 116 or c == 84 or c == 102 or c == 70  # t T f F
    if size == 4:
        return c in (116, 84) and b[i:end] in (b"true", b"True", b"TRUE")
    if size == 5:
        return c in (102, 70) and b[i:end] in (b"false", b"False", b"FALSE")
    return False


def _compare(b: bytes, i: int, ni: int, j: int, nj: int) -> int:
    """How ``b[i:i+ni]`` compares to ``b[j:j+nj]`` as bytes: <0, 0, >0 (uncompiled: as the bytes objects do)."""
    if not cython.compiled:
        x = b[i : i + ni]
        y = b[j : j + nj]
        return (x > y) - (x < y)
    k = 0
    while k < ni and k < nj:
        if b[i + k] != b[j + k]:
            return b[i + k] - b[j + k]
        k += 1
    return ni - nj


def fields(b: bytes, line: Plain) -> list:
    """The line's fields as ``(key, kind letter, value or None)``, for the codec's Metric (not the hot loop).

    >>> line = Plain()
    >>> scan(b"m v=1.5,n=2i,ok=T", 0, 17, line)
    True
    >>> fields(b"m v=1.5,n=2i,ok=T", line)
    [(b'v', 'f', 1.5), (b'n', 'i', 2.0), (b'ok', 'b', None)]
    """
    out = []
    for k in range(line.nfields):
        kind = line.kind[k]
        out.append((b[line.key[k]:line.key[k] + line.key_len[k]], chr(kind), None if kind == KIND_BOOL else line.number[k]))
    return out


def number_value(token: bytes) -> object:
    """The double :func:`scan` reads from a float field value, or None if it leaves the token to the general parser.

    >>> number_value(b"-1.5e3"), number_value(b"1e400"), number_value(b"0x1")
    (-1500.0, None, None)
    """
    n = len(token)
    if n == 0 or n > _MAX_NUMBER or not _float_token(token, 0, n):
        return None
    v = _decimal(token, 0, n)
    if v == _INF or v == -_INF:
        return None
    return v


def _item(b: bytes, i: int, end: int, line: Plain) -> int:
    """Where the item at ``b[i:]`` ends (a ',', a space or ``end``), its '=' in ``line.eq`` (-1 if none).

    -1 if the item holds a backslash, a quote, a control byte or two '='.
    """
    line.eq = -1
    i = _ordinary(b, i, end)
    if i < end and b[i] == 61:  # =
        line.eq = i
        i = _ordinary(b, i + 1, end)
        if i < end and b[i] == 61:
            return -1  # a second '='
    if i < end and b[i] != 44 and b[i] != 32:  # not a ',' or a space: a backslash, a quote, a control byte
        return -1
    return i


def _ordinary(b: bytes, i: int, end: int) -> int:
    """The first position from ``i`` of a byte of :data:`_SPECIAL` in ``b[:end]``, or ``end``."""
    if cython.compiled:
        while i < end:
            c = b[i]
            if _STOPS[c]:
                break
            i += 1
        return i
    return _ORDINARY.match(b, i, end).end()


def scan(b: bytes, start: int, end: int, line: Plain) -> bool:
    """Read the plain line ``b[start:end]`` (no newline) into ``line``; False if it is anything else."""
    if end <= start or b[start] == 35:  # '#'
        return False
    # measurement and tags: items split by ',' up to a space; every tag key=value, non-empty, sorted
    i = _item(b, start, end, line)
    if i <= start or i == end:
        return False  # empty measurement, a byte that is not plain, or no field set
    prev_key = -1
    prev_key_len = 0
    while b[i] == 44:  # at a ','
        item = i + 1
        i = _item(b, item, end, line)
        eq = line.eq
        if i < 0 or i == end or eq <= item or eq + 1 >= i:
            return False  # not plain, no field set, no '=', an empty key or an empty value
        key_len = eq - item
        if prev_key >= 0 and _compare(b, prev_key, prev_key_len, item, key_len) >= 0:
            return False  # unsorted tags (the general parser's metric is sorted by the engine), or a key twice
        prev_key = item
        prev_key_len = key_len
    sp1 = i
    # fields: key=value items split by ',' up to a space or the end
    nf = 0
    i = sp1 + 1
    while True:
        item = i
        i = _item(b, item, end, line)
        eq = line.eq
        if i < 0 or eq <= item or eq + 1 >= i:
            return False
        if nf == _MAX_FIELDS:
            return False
        line.key[nf] = item
        line.key_len[nf] = eq - item
        last = b[i - 1]
        if 48 <= last <= 57 or last == 46:  # a float
            if i - eq - 1 > _MAX_NUMBER or not _float_token(b, eq + 1, i):
                return False
            number = _decimal(b, eq + 1, i)
            if number == _INF or number == -_INF:
                return False  # out of range: the general parser reports it
            line.kind[nf] = KIND_FLOAT
            line.number[nf] = number
        elif last == 105:  # i: int64
            if not _int64(b, eq + 1, i - 1, line):
                return False
            line.kind[nf] = KIND_INT
            line.number[nf] = float(line.value)
        elif last == 117:  # u: uint64
            if not _unsigned(b, eq + 1, i - 1):
                return False
            line.kind[nf] = KIND_UINT
            line.number[nf] = float(int(b[eq + 1:i - 1]))
        elif _boolean(b, eq + 1, i):
            line.kind[nf] = KIND_BOOL
            line.number[nf] = 0.0
        else:
            return False
        nf += 1
        if i == end or b[i] == 32:
            break
        i += 1  # past ','
    # the timestamp: an optional '-' and digits, within int64
    line.has_ts = i < end
    line.ts = 0
    if i < end:
        if not _int64(b, i + 1, end, line):
            return False
        line.ts = line.value
    line.start = start
    line.end = end
    line.head_end = sp1
    line.fields_end = i
    line.nfields = nf
    return True
