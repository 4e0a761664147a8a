"""InfluxDB line protocol: split a byte stream into metrics, parse them, add fields.

riverguard never re-serialises a user's metric. It finds where each metric
starts and ends, reads what it needs (measurement, tags, numeric fields,
timestamp), and writes the original bytes back with new fields inserted
after the last field. Everything works on ``bytes``: names keep their escaping
and non-UTF-8 bytes pass through untouched.

>>> m = parse(b'cpu,host=a usage_idle=97.5,n=3i,msg="x" 1700000000000000000')
>>> m.measurement, m.tags, m.timestamp
(b'cpu', [(b'host', b'a')], 1700000000000000000)
>>> [(f.key, f.kind, f.number) for f in m.fields]
[(b'usage_idle', 'f', 97.5), (b'n', 'i', 3.0), (b'msg', 's', None)]
>>> insert_fields(m, b',x=1')
b'cpu,host=a usage_idle=97.5,n=3i,msg="x",x=1 1700000000000000000'
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import NamedTuple, NoReturn

from ._plainline import FLOAT, TIMESTAMP, Plain, integer, scan
from ._plainline import fields as plain_fields

__all__ = [
    "FLOAT",
    "Field",
    "Metric",
    "ParseError",
    "Record",
    "LEAD",
    "SKIPPED",
    "Splitter",
    "build_line",
    "escape_key",
    "escape_measurement",
    "host_name",
    "insert_fields",
    "metric_lines",
    "parse",
    "raw_fields",
    "signed_unsigned",
    "timestamp_at",
    "unescape",
    "whole_end",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1

# A name may hold any byte but its delimiters; a backslash escapes the next byte. Possessive (`++`): a
# name ends at its first delimiter, so giving bytes back can never make a match.
_MEASUREMENT = rb"(?:[^\\, \n]|\\[^\n])++"
_KEY = rb"(?:[^\\,= \n]|\\[^\n])++"
_TAG = rb",(" + _KEY + rb")=(" + _KEY + rb")"
#: What InfluxDB 1.x skips after the space that ends the tags or the fields, besides more spaces, and before a
#: metric (its skipWhitespace; checked on influxd 1.6): a tab or a NUL in place of that space belongs to the name
#: or value before it. So a name starting with one cannot come first in a line, nor right after such a space.
SKIPPED = ("\t", "\x00")
#: What InfluxDB 1.x skips before a metric or a comment (the same skipWhitespace): spaces and SKIPPED bytes.
LEAD = b" " + "".join(SKIPPED).encode()
# Between measurement and fields, and fields and timestamp: a space, then any spaces and SKIPPED bytes.
_GAP = re.compile(rb" [" + LEAD + rb"]*")
# The measurement and tags (group 1; the measurement alone: group 2) and the gap after them.
_NAMES = rb"((" + _MEASUREMENT + rb")(?:" + _TAG + rb")*+)"
_HEAD = re.compile(_NAMES + _GAP.pattern)
_NAMES_ONLY = re.compile(_NAMES)
_TAGS = re.compile(_TAG)
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.S)  # possessive: no backtracking over a long value
_BARE = rb'[^, \r\n"]++'
# One field: key (group 1) and value as written (group 2), a quoted string or a bare token.
_FIELD = re.compile(rb"(" + _KEY + rb")=(" + _STRING.pattern + rb"|" + _BARE + rb")", re.S)
_FIELD_KEY = re.compile(rb"(" + _KEY + rb")=")
_SIGNED = re.compile(rb"[+-]?[0-9]+i")
_UNSIGNED = re.compile(rb"\+?[0-9]+u")
_TRAILER = re.compile(rb" *\r?")
_BOOLEANS = {
    b"t": True, b"T": True, b"true": True, b"True": True, b"TRUE": True,
    b"f": False, b"F": False, b"false": False, b"False": False, b"FALSE": False,
}
_UNESCAPE = re.compile(rb"\\([,= \\\"])")


class ParseError(ValueError):
    """A metric that is not valid line protocol: ``reason`` at byte ``pos``."""

    def __init__(self, reason: str, pos: int, *, open_quote: bool = False) -> None:
        super().__init__(f"{reason} at column {pos + 1}")
        self.reason = reason
        self.pos = pos
        self.open_quote = open_quote


class Field(NamedTuple):
    """One field: raw escaped key, kind (``f i u s b``), numeric value or None."""

    key: bytes
    kind: str
    number: float | None


@dataclass(slots=True)
class Metric:
    """A parsed metric. ``raw`` excludes the terminating newline."""

    raw: bytes
    measurement: bytes
    tags: list[tuple[bytes, bytes]]
    fields: list[Field]
    fields_end: int
    timestamp: int | None


_new_field = tuple.__new__


def parse(line: bytes) -> Metric:
    """Parse one metric (without its newline), in any thread. Raise :class:`ParseError`."""
    # No backslash/quote test first: the compiled scan stops at the first one anyway, and the
    # test cost plain lines more than it saved the others (docs/performance.md).
    metric = _parse_plain(line)
    if metric is not None:
        return metric
    return _parse_general(line)


def _parse_plain(line: bytes) -> Metric | None:
    """The metric :func:`riverguard._plainline.scan` reads from a plain line, or None for any other line.

    The general parser then decides (and finds the error, if any). Both give
    the same result on every line this accepts.
    """
    # A scratch of its own per call, not one shared by the module: ``pull`` parses from its writer's thread
    # too, and a shared one got the other thread's fields. Compiled, it costs ~35 ns a call, and ``parse``
    # reads only the lines the hot path does not (1 800 of the 216 000 of a replay: unmeasurable).
    p = Plain()
    if not scan(line, 0, len(line), p):
        return None
    items = line[: p.head_end].split(b",")
    tags = [tuple(item.split(b"=")) for item in items[1:]]
    fields = [_new_field(Field, f) for f in plain_fields(line, p)]
    return Metric(line, items[0], tags, fields, p.fields_end, p.ts if p.has_ts else None)  # type: ignore[arg-type]


def _parse_general(line: bytes) -> Metric:
    head, found, end = _read(line)
    fields = [
        Field(f[1], "s", None) if line[f.start(2)] == 0x22 else _bare_field(f[1], f[2], f.start(2))  # '"': a string
        for f in found
    ]
    tags = _TAGS.findall(line, head.end(2), head.end(1))
    if len(tags) > 1 and len(dict(tags)) < len(tags):
        _duplicate_tag(line, head.end(2), head.end(1))
    return Metric(line, head[2], tags, fields, end, _timestamp_after(line, end))


def _read(line: bytes) -> tuple[re.Match[bytes], list[re.Match[bytes]], int]:
    """The grammar of a metric up to its fields, for :func:`parse` and :func:`raw_fields`: the match of
    :data:`_HEAD`, each field's match of :data:`_FIELD`, and where the field set ends."""
    head = _HEAD.match(line)
    if head is None:
        _head_error(line)
    pos, n = head.end(), len(line)
    found = []
    while True:
        f = _FIELD.match(line, pos)
        if f is None:
            _field_error(line, pos)
        found.append(f)
        pos = f.end()
        if pos < n and line[pos] == 0x2C:  # ','
            pos += 1
            continue
        return head, found, pos


def _head_error(line: bytes) -> NoReturn:
    """Raise the error of a line whose measurement, tags and the gap after them do not match :data:`_HEAD`."""
    m = _NAMES_ONLY.match(line)
    if m is None:
        raise ParseError("missing measurement name", 0)
    pos = m.end()
    if line[pos : pos + 1] == b",":
        raise ParseError("invalid tag (expected key=value)", pos + 1)
    if line[pos : pos + 1] == b"\\":  # trailing backslash
        raise ParseError("backslash at end of name", pos)
    raise ParseError("expected a space before the field set", pos)


def _duplicate_tag(line: bytes, pos: int, end: int) -> NoReturn:
    """Raise the error of a line whose tags (``line[pos:end]``) give a key twice (InfluxDB 1.x refuses it: "duplicate
    tags"), at the second. Keys compare as written, as there."""
    seen = set()
    for tag in _TAGS.finditer(line, pos, end):
        if tag[1] in seen:
            shown = tag[1][:40].decode("utf-8", "backslashreplace")
            raise ParseError(f'duplicate tags (key "{shown}" given twice)', tag.start(1))
        seen.add(tag[1])
    raise AssertionError("no tag key twice")  # pragma: no cover - called only when there is one


def _field_error(line: bytes, pos: int) -> NoReturn:
    """Raise the error of a field at ``pos`` that does not match :data:`_FIELD`."""
    k = _FIELD_KEY.match(line, pos)
    if k is None:
        raise ParseError("invalid field (expected key=value)", pos)
    pos = k.end()
    if line[pos : pos + 1] == b'"':
        raise ParseError("unterminated string value", pos, open_quote=True)
    raise ParseError("missing field value", pos)


def _timestamp_after(line: bytes, pos: int) -> int | None:
    """The timestamp of ``line`` whose field set ends at ``pos`` (None: none): the gap, the timestamp, the
    trailer (spaces, a CR), nothing else."""
    n = len(line)
    timestamp = None
    if pos < n and line[pos:] != b"\r":  # CRLF line ending without a timestamp
        s = _GAP.match(line, pos)
        if s is None:
            raise ParseError("expected ',' or a space after the field value", pos)
        pos = s.end()
        ts = TIMESTAMP.match(line, pos)
        if ts is not None:
            timestamp = integer(ts.group(), 19)
            if timestamp is None or not _INT64_MIN <= timestamp <= _INT64_MAX:
                raise ParseError("timestamp out of range", pos)
            pos = ts.end()
        trailer = _TRAILER.match(line, pos)
        pos = trailer.end() if trailer else pos
        if pos < n:
            raise ParseError("unexpected data after the timestamp", pos)
    return timestamp


def _bare_field(key: bytes, token: bytes, pos: int) -> Field:
    last = token[-1]
    if last == 0x69:  # 'i'
        if _SIGNED.fullmatch(token):
            value = integer(token[:-1], 19)
            if value is None or not _INT64_MIN <= value <= _INT64_MAX:
                raise ParseError("integer out of range", pos)
            return Field(key, "i", float(value))
    elif last == 0x75:  # 'u'
        if _UNSIGNED.fullmatch(token):
            value = integer(token[:-1], 20)
            if value is None or value > _UINT64_MAX:
                raise ParseError("unsigned integer out of range", pos)
            return Field(key, "u", float(value))
    elif FLOAT.fullmatch(token):
        number = float(token)
        if number in (float("inf"), float("-inf")):
            raise ParseError("float out of range", pos)
        return Field(key, "f", number)
    elif token in _BOOLEANS:
        return Field(key, "b", None)
    shown = token[:40].decode("utf-8", "backslashreplace")
    raise ParseError(f'invalid field value "{shown}"', pos)


def timestamp_at(metric: Metric) -> int:
    """Where the timestamp of ``metric`` (one that has a timestamp) starts in its raw bytes: after the gap
    that follows the fields (spaces and tabs), not at the last space (a trailer may hold spaces)."""
    gap = _GAP.match(metric.raw, metric.fields_end)
    return gap.end() if gap else metric.fields_end


def insert_fields(metric: Metric, extra: bytes) -> bytes:
    """The metric's original bytes with ``extra`` (``,k=v...``) after its last field."""
    raw, at = metric.raw, metric.fields_end
    return raw[:at] + extra + raw[at:]


def unescape(raw: bytes) -> str:
    """A name as text: escapes removed, invalid UTF-8 kept as backslash escapes."""
    if b"\\" in raw:
        raw = _UNESCAPE.sub(rb"\1", raw)
    return raw.decode("utf-8", "backslashreplace")


def escape_measurement(text: str) -> bytes:
    """Escape a measurement name for line protocol."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ").encode()


def raw_fields(line: bytes) -> tuple[bytes, dict[bytes, bytes], int | None]:
    """Measurement and tags as written, each field's raw value text by raw key, and the timestamp.

    For readers of lines riverguard wrote or :func:`parse` took (``riverguard
    evaluate``, the report, pull), which need the text of boolean fields that
    :func:`parse` does not keep. The line is read with :func:`parse`'s grammar
    (the same code: same reason, same column when refused); the values' text
    (and whether a tag key is given twice) is taken as written, not checked
    again: checking it made ``evaluate`` 30 % slower and the report of
    string-valued lines 57 % slower, for lines already checked.

    >>> raw_fields(b'm,t=1 a=1.5,b=true,s="x y" 7')
    (b'm,t=1', {b'a': b'1.5', b'b': b'true', b's': b'"x y"'}, 7)
    >>> raw_fields(b'm a=1 7\\t')  # a tab after the timestamp (influxd: "bad timestamp"), as parse() says
    Traceback (most recent call last):
    riverguard.lineprotocol.ParseError: unexpected data after the timestamp at column 8
    """
    head, found, end = _read(line)
    return head[1], dict(map(re.Match.groups, found)), _timestamp_after(line, end)


#: Whether data may hold an unsigned integer value (``=123u``): the quick test before :func:`signed_unsigned`.
MAY_BE_UNSIGNED = re.compile(rb"=\+?[0-9]+u")
# An unsigned value (group 1) in the field set of a line without quotes or backslashes.
_PLAIN_UNSIGNED = re.compile(rb"=(\+?[0-9]+u)(?![^,])")


def _in_line(err: ParseError, lead: int) -> ParseError:
    """``err`` of a line read after ``lead`` skipped bytes, its column in the line as written (them included)."""
    return ParseError(err.reason, err.pos + lead, open_quote=err.open_quote) if lead else err


def signed_unsigned(line: bytes) -> tuple[bytes, int, int]:
    """``line`` with each unsigned integer value (``123u``) written as a signed one (``123i``), as Telegraf's
    influxdb output does for InfluxDB 1.x (``influx_uint_support = false``; 1.x has no unsigned type): one
    above the signed range is written as its most (9223372036854775807i), as Telegraf does. Also how many
    values were rewritten, and how many of them were cut so. A line :func:`parse` refuses is left as it is;
    the bytes InfluxDB skips before a line (:data:`LEAD`) are kept, and the line after them is read.

    >>> signed_unsigned(b'm,t=9u free=123u,s="4u",big=18446744073709551615u 7')
    (b'm,t=9u free=123i,s="4u",big=9223372036854775807i 7', 2, 1)
    >>> signed_unsigned(b'  m free=1u 7')
    (b'  m free=1i 7', 1, 0)
    """
    lead = len(line) - len(line.lstrip(LEAD)) if line[:1] in LEAD else 0
    if b'"' not in line and b"\\" not in line:  # plain: the field set ends at the first space after the head
        head = _HEAD.match(line, lead)
        if head is None:
            return line, 0, 0
        start = head.end()
        end = line.find(b" ", start)
        spans = [m.span(1) for m in _PLAIN_UNSIGNED.finditer(line, start, len(line) if end < 0 else end)]
    else:
        try:
            spans = [(a + lead, b + lead) for a, b in
                     (f.span(2) for f in _read(line[lead:])[1] if _UNSIGNED.fullmatch(f[2]))]
        except ParseError:
            return line, 0, 0
    if not spans:
        return line, 0, 0
    parts, pos, cut = [], 0, 0
    for a, b in spans:
        value = int(line[a : b - 1])
        if value > _INT64_MAX:
            value, cut = _INT64_MAX, cut + 1
        parts += [line[pos:a], b"%di" % value]
        pos = b
    parts.append(line[pos:])
    return b"".join(parts), len(spans), cut


def escape_key(text: str, errors: str = "strict") -> bytes:
    """Escape a tag or field key for line protocol; ``errors`` as in :meth:`str.encode`."""
    return (
        text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")
    ).encode("utf-8", errors)


def host_name() -> str:
    """The ``host`` tag of riverguard's own lines (``collect``, the health line) unless told otherwise: this
    machine's name, as Telegraf's default ``host`` tag (Go's ``os.Hostname``, the kernel's node name)."""
    import socket

    return socket.gethostname() or "localhost"


def build_line(
    measurement: str,
    tags: dict[str, str],
    fields: dict[str, float | int | bool | str],
    timestamp: int | None = None,
) -> bytes:
    r"""One newline-terminated line of riverguard's OWN values (``collect``, self-monitoring), never a user's.

    Built by the ``influx-line-protocol`` library, which writes floats with
    ``%g``: 6 significant digits, fine for percentages and seconds, wrong for a
    user's values (riverguard never re-serialises those: it inserts its fields
    into the user's bytes). Around the library:

    - tags sorted by key, as Telegraf sends them; a tag with an empty value is
      left out (InfluxDB has no empty tags);
    - the measurement's backslashes are escaped (the library escapes only its
      commas and spaces, so ``a\ b`` would end the measurement at the space);
    - ints are written with ``i``, bools as ``t``/``f``; an int subclass or a
      numpy number is converted first (the library would quote it as a string);
    - NaN and infinities (InfluxDB refuses them), ints outside int64, newlines,
      empty names and a field key starting with a tab or a NUL (read without
      it, as InfluxDB reads it, when the first) raise ValueError; any other
      value type TypeError.

    >>> build_line("cpu", {"host": "a b", "cpu": "cpu0"}, {"idle": 97.123456789, "n": 3, "ok": True}, 1)
    b'cpu,cpu=cpu0,host=a\\ b idle=97.1235,n=3i,ok=t 1\n'
    """
    from influx_line_protocol import Metric as LibraryMetric  # here: `run` never builds a line

    if not fields:
        raise ValueError("a line needs at least one field")
    if _name(measurement, "measurement").startswith("#"):
        raise ValueError(f"measurement {measurement!r} would make the line a comment")
    line = LibraryMetric(measurement.replace("\\", "\\\\"))  # see the docstring
    for key in sorted(tags):
        if tags[key]:
            line.add_tag(_name(key, "tag key"), _name(tags[key], "tag value"))
    for key, value in fields.items():
        if key.startswith(SKIPPED):
            raise ValueError(f"field key {key!r}: starts with a byte InfluxDB skips before a first field")
        line.add_value(_name(key, "field key"), _own_value(key, value))
    if timestamp is not None:
        line.with_timestamp(operator.index(timestamp))
    return str(line).encode() + b"\n"


def _name(text: str, what: str) -> str:
    if not text or "\n" in text:
        raise ValueError(f"{what} {text!r}: line protocol has no empty names and no newlines in them")
    return text


def _own_value(key: str, value: object) -> float | int | bool | str:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) or (hasattr(value, "__index__") and not isinstance(value, float)):
        number = operator.index(value)  # type: ignore[arg-type]
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise ValueError(f"field {key!r}: {number} is outside the int64 range")
        return number
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float) or hasattr(value, "__float__"):
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number):
            raise ValueError(f"field {key!r}: {number} cannot be written as line protocol")
        return number
    raise TypeError(f"field {key!r}: cannot write a {type(value).__name__} as a field value")


def _keep_lead(metric: Metric, lead: bytes) -> None:
    """Make a metric parsed after leading whitespace describe the whole line (raw and offsets)."""
    metric.raw = lead + metric.raw
    metric.fields_end += len(lead)


class Record(NamedTuple):
    """One metric (or comment/blank line) cut from the stream.

    ``data`` holds the bytes including the newline (if any); ``metric`` is the
    parsed metric, ``error`` the reason it did not parse; both are None for a
    comment or blank line.
    """

    data: bytes
    metric: Metric | None
    error: ParseError | None


_new_record = tuple.__new__

# A metric whose string value opens a quote and crosses newlines may span at most this much.
MAX_MULTILINE = 8 * 1024 * 1024


class Splitter:
    """Cut complete metrics off the front of a growing buffer.

    A metric ends at a newline outside a quoted string field value. A quote
    left open at the end of a physical line joins the following lines only if
    the joined text is a valid metric: otherwise the first physical line is a
    malformed metric on its own and the next line starts afresh, so an
    unterminated quote never swallows the metrics after it.
    """

    def split(
        self, buf: bytes, *, final: bool = False, force: bool = False, start: int = 0, limit: int | None = None
    ) -> tuple[list[Record], int, bool]:
        """Return ``(records, consumed, pending)``: metrics cut from ``buf[start:]``, and where they end.

        ``final`` says no more input will come. ``pending`` says the first
        unconsumed metric waits for more input to close an open quote; pass
        ``force=True`` to give up waiting and treat its first line as malformed.
        ``limit`` stops after that many records; ``consumed`` counts from the
        start of ``buf``.
        """
        records: list[Record] = []
        pos, n = start, len(buf)
        find = buf.find
        while pos < n and (limit is None or len(records) < limit):
            nl = find(b"\n", pos)
            if nl < 0:
                if not final:
                    return records, pos, False
                nl = n
            line = buf[pos:nl]
            first = line[:1]
            lead = 0
            if first and first in LEAD:  # InfluxDB skips leading spaces, tabs and NULs (checked on influxd 1.6)
                lead = len(line) - len(line.lstrip(LEAD))
                first = line[lead : lead + 1]
            if first in (b"#", b"") or not line.strip():
                records.append(Record(buf[pos : nl + 1], None, None))
                pos = nl + 1
                continue
            try:
                metric = parse(line[lead:] if lead else line)
                if lead:
                    _keep_lead(metric, line[:lead])
                records.append(_new_record(Record, (buf[pos : nl + 1], metric, None)))
                pos = nl + 1
                continue
            except ParseError as err:
                if not err.open_quote:
                    records.append(Record(buf[pos : nl + 1], None, _in_line(err, lead)))
                    pos = nl + 1
                    continue
                error = err  # `err` is unbound after the except block
                outcome = self._multiline(buf, pos + lead, err, final or force)
            if outcome is None:  # waiting for input that may close the quote
                return records, pos, True
            if isinstance(outcome, Record):
                if lead:
                    _keep_lead(outcome.metric, line[:lead])  # type: ignore[arg-type]
                    outcome = Record(line[:lead] + outcome.data, outcome.metric, None)
                records.append(outcome)
                pos += len(outcome.data)
            else:
                records.append(Record(buf[pos : nl + 1], None, _in_line(error, lead)))
                pos = nl + 1
        return records, pos, False

    @staticmethod
    def still_pending(waiting: bytes, more: bytes) -> bool:
        r"""Whether a metric that :meth:`split` left ``pending`` (``waiting``: its bytes, from its start) is
        pending still with ``more`` after it, told without parsing it again. Its string value can close only
        at a quote: with none in ``more``, none after the last newline of ``waiting`` (a quote closed there
        waits for the newline after it) and within :data:`MAX_MULTILINE`, it waits on. False: parse it.

        >>> Splitter.still_pending(b's v="x\n', b"y\n"), Splitter.still_pending(b's v="x\n', b'y" 1\n')
        (True, False)
        """
        return (b'"' not in more and b'"' not in waiting[waiting.rfind(b"\n") + 1 :]
                and len(waiting) + len(more) <= MAX_MULTILINE)

    @staticmethod
    def _multiline(buf: bytes, start: int, err: ParseError, final: bool) -> Record | bool | None:
        """Try to read a metric whose string value spans lines.

        Returns the record, False when the joined text is not a metric, or
        None when more input is needed to decide.
        """
        n = len(buf)
        while True:
            close = _STRING.match(buf, start + err.pos)
            if close is None:
                if final or n - start > MAX_MULTILINE:
                    return False
                return None
            nl = buf.find(b"\n", close.end())
            if nl < 0:
                if not final:
                    return None
                nl = n
            if nl - start > MAX_MULTILINE:
                return False
            try:
                metric = parse(buf[start:nl])
            except ParseError as again:
                if again.open_quote and again.pos > err.pos:
                    err = again
                    continue
                return False
            return Record(buf[start : nl + 1], metric, None)


_split_one = Splitter().split


def _may_open(data: bytes, start: int, end: int) -> bool:
    """Whether the line ``data[start:end]`` may hold a string value open at its end (:func:`metric_lines`): its
    last quote follows a ``=``, or it has a backslash. Any other line is a metric of its own."""
    quote = data.rfind(b'"', start, end)
    return quote > start and (data[quote - 1] == 0x3D or data.find(b"\\", start, end) >= 0)  # '='


def whole_end(data: bytes) -> int:
    r"""Where the last whole metric of ``data`` (which starts with a metric) ends, as :meth:`Splitter.split`
    cuts while more may come: what follows is a line without its newline, or a metric waiting for its closing
    quote. Only a line that may hold an open quote (:func:`_may_open`) is parsed.

    >>> whole_end(b'a v=1\nb v=2'), whole_end(b'a s="x\ny" 1\n'), whole_end(b'a v=1\nb s="x\n')
    (6, 12, 6)
    """
    pos = 0
    find, rfind = data.find, data.rfind
    while (quote := find(b'"', pos)) >= 0:
        start = rfind(b"\n", pos, quote) + 1 or pos
        end = find(b"\n", quote)
        if end < 0:
            return start
        if not _may_open(data, start, end):
            pos = end + 1
            continue
        _, consumed, pending = _split_one(data, start=start, limit=1)
        if pending or consumed == start:
            return start
        pos = consumed
    return rfind(b"\n", pos) + 1 or pos


def metric_lines(data: bytes) -> list[bytes]:
    r"""The metrics of ``data``, all of it (nothing follows), each without its newline, cut as :class:`Splitter` cuts.

    A string value may hold a newline, and a quote left open on a bad line must not swallow the metrics
    after it. A string value opens at the quote after ``key=`` and, in a line without a backslash, closes
    at the next quote: only a line whose last quote follows a ``=``, or with a backslash, can hold an open
    one, and only such a line is read by the Splitter; any other line ends at its newline, as it would there.

    >>> metric_lines(b'a v=1 1\nb s="x\ny" 2\nc s="open 3\nd v=2')
    [b'a v=1 1', b'b s="x\ny" 2', b'c s="open 3', b'd v=2']
    """
    if b'"' not in data:  # no string value: every newline ends a metric
        lines = data.split(b"\n")
        if not lines[-1]:
            lines.pop()  # (after the last newline: nothing)
        return lines
    lines = []
    pos, n = 0, len(data)
    find = data.find
    while pos < n:
        nl = find(b"\n", pos)
        end = n if nl < 0 else nl
        if _may_open(data, pos, end):
            _, consumed, _ = _split_one(data, final=True, start=pos, limit=1)
            end = consumed - 1 if data[consumed - 1 : consumed] == b"\n" else consumed
        lines.append(data[pos:end])
        pos = end + 1
    return lines
