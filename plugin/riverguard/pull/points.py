"""Stored points back to line protocol, exactly as InfluxDB holds them.

A :class:`Layout` describes the columns one query returns (which are tags,
which are fields and of what type) and turns each row into one metric of line
protocol: tags sorted by key, empty tags left out, every field written with
its stored type (``1i`` stays an integer, ``1u`` unsigned, a float is written
with :func:`repr`, which round-trips every IEEE double bit for bit, never with
``%g``). A name or value that line protocol cannot carry raises
:class:`RebuildError`: the caller reports the point and skips it.

>>> layout = Layout("cpu", tags=["host"], fields=[("usage", "float"), ("n", "integer"), ("s", "string")])
>>> layout.line(1700000000000000000, ["a", 0.1, 3, 'say "hi"'])
b'cpu,host=a usage=0.1,n=3i,s="say \\\\"hi\\\\"" 1700000000000000000\\n'
>>> layout.line(5, ["", 2, None, None])
b'cpu usage=2.0 5\\n'
>>> layout.line(5, ["a\\nb", 2, None, None])
Traceback (most recent call last):
...
riverguard.pull.points.RebuildError: tag host: a newline cannot be written as line protocol

A point that already carries a score (a field's, or a whole metric's) is ``scored``:

>>> scored = Layout("m", [], [("v", "float"), ("v_anomaly_score", "float"), ("anomaly_score", "float")],
...                 "_anomaly_score", score_field="anomaly_score")
>>> scored.scored([1.0, None, None]), scored.scored([1.0, 0.5, None]), scored.scored([1.0, None, 0.5])
(False, True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..lineprotocol import SKIPPED

__all__ = ["KINDS", "Layout", "RebuildError"]

#: InfluxDB 1.x field types (SHOW FIELD KEYS) and 2.x annotated-CSV datatypes, as line-protocol kinds.
KINDS = {
    "float": "f", "double": "f",
    "integer": "i", "long": "i",
    "unsigned": "u", "unsignedLong": "u",
    "string": "s",
    "boolean": "b",
}


class RebuildError(ValueError):
    """A stored point that cannot be written back as line protocol (the message says why)."""


def _check_name(text: str, what: str) -> None:
    if "\n" in text:
        raise RebuildError(f"{what}: a newline cannot be written as line protocol")
    if "\\" in text:
        # A backslash stays literal in line protocol except before the characters it escapes.
        for i, ch in enumerate(text):
            if ch == "\\" and (i + 1 == len(text) or text[i + 1] in ",= "):
                raise RebuildError(f"{what} {text[:60]!r}: this backslash cannot be written as line protocol")


def escape_measurement(text: str) -> str:
    _check_name(text, "measurement")
    if not text or text.startswith(("#", *SKIPPED)):  # a comment, or read without its first byte
        raise RebuildError(f"measurement {text!r} cannot start a line of line protocol")
    return text.replace(",", "\\,").replace(" ", "\\ ")


def unescape_measurement(raw: bytes) -> str:
    """The measurement :func:`escape_measurement` wrote as ``raw`` (what a line riverguard wrote from it holds).

    Exact for every name it takes: it leaves any other backslash as it is, and refuses one before a comma or
    a space.

    >>> name = "a b,c\\\\d\\\\q"
    >>> unescape_measurement(escape_measurement(name).encode()) == name
    True
    """
    return raw.decode("utf-8", "surrogateescape").replace("\\,", ",").replace("\\ ", " ")


def escape_name(text: str, what: str) -> str:
    """A tag key, tag value or field key, escaped for line protocol."""
    if "\\" in text or "\n" in text:
        _check_name(text, what)
    return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _string(value: Any) -> str:
    if type(value) is not str:
        raise TypeError
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _float(value: Any) -> str:
    if type(value) is float:
        return repr(value)
    if type(value) is int:  # JSON writes an integral float without a decimal point ("3")
        return repr(float(value))
    raise TypeError


def _integer(value: Any) -> str:
    if type(value) is not int:
        raise TypeError
    return f"{value}i"


def _unsigned(value: Any) -> str:
    if type(value) is not int or value < 0:
        raise TypeError
    return f"{value}u"


def _boolean(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    raise TypeError


_FORMAT = {"f": _float, "i": _integer, "u": _unsigned, "s": _string, "b": _boolean}
_HEADS = 100_000  # measurement + tag sets remembered per layout (rebuilt when more come)


class Layout:
    """The columns of one query's rows: ``offset`` columns first, then the tags, then the fields.

    ``tags``: tag keys; ``fields``: ``(key, type)`` with a type of :data:`KINDS`.
    A field key that appears with two types (1.x keeps a field's type per
    shard) is written with the type its value shows, and a value that could be
    either (an integral number) raises :class:`RebuildError`.
    """

    def __init__(
        self,
        measurement: str,
        tags: Sequence[str],
        fields: Sequence[tuple[str, str]],
        score_suffix: str = "",
        offset: int = 0,
        score_field: str = "",
    ) -> None:
        self.measurement = measurement
        #: Tag keys in column order.
        self.tags = list(tags)
        #: Why no row of this layout can be rebuilt (a name line protocol cannot carry), or None.
        self.error: RebuildError | None = None

        def name(text: str, what: str) -> str:
            try:
                return escape_measurement(text) if what == "measurement" else escape_name(text, what)
            except RebuildError as err:
                self.error = self.error or err
                return ""

        self._measurement = name(measurement, "measurement")
        # Tags are written in key order, so the tag set comes out sorted (as Telegraf writes it).
        self._tag_order = sorted(range(len(tags)), key=lambda i: tags[i].encode())
        self._tag_prefixes = ["," + name(key, "tag key") + "=" for key in tags]
        self._tags = slice(offset, offset + len(tags))
        self._heads: dict[tuple[Any, ...], str] = {}
        types: dict[str, set[str]] = {}
        for key, kind in fields:
            types.setdefault(key, set()).add(KINDS[kind])
        #: Field keys in column order (a key stored with several types is one column).
        self.field_keys = list(types)
        self._fields = slice(offset + len(tags), offset + len(tags) + len(types))
        # A key starting with a byte InfluxDB skips after the space before the fields (SHOW FIELD KEYS sorts
        # it first) would be read without it there: such fields are written after the others.
        late = [key.startswith(SKIPPED) for key in self.field_keys]
        order = sorted(range(len(types)), key=late.__getitem__)
        self._order = order if order != sorted(order) else None
        self._late = any(late)
        self._field_columns = [
            (name(key, "field key") + "=", _FORMAT[next(iter(codes))] if len(codes) == 1 else _ambiguous(key, codes), key)
            for key, codes in ((self.field_keys[j], types[self.field_keys[j]]) for j in order)
        ]
        #: Columns of fields that are riverguard's own scores (``F<score_suffix>``, or a whole metric's ``score_field``).
        self.score_columns = [
            offset + len(tags) + j
            for j, key in enumerate(self.field_keys)
            if (score_suffix and key.endswith(score_suffix)) or (score_field and key == score_field)
        ]

    def _head(self, values: tuple[Any, ...]) -> str:
        """Measurement and tag set for these tag values (remembered)."""
        parts = [self._measurement]
        for i in self._tag_order:
            value = values[i]
            if value:  # null and "" mean: no such tag on this point
                key = self.tags[i]
                if type(value) is not str:
                    raise RebuildError(f"tag {key}: not a string ({value!r})")
                parts.append(self._tag_prefixes[i])
                parts.append(escape_name(value, f"tag {key}"))
        parts.append(" ")
        if len(self._heads) >= _HEADS:
            self._heads.clear()
        head = self._heads[values] = "".join(parts)
        return head

    def line(self, time: int, row: Sequence[Any]) -> bytes:
        """One metric of line protocol (newline-terminated); raises :class:`RebuildError`."""
        if self.error is not None:
            raise self.error
        values = tuple(row[self._tags])
        head = self._heads.get(values)
        if head is None:
            head = self._head(values)
        out = []
        values = row[self._fields]
        if self._order is not None:
            values = [values[j] for j in self._order]
        for (prefix, fmt, key), value in zip(self._field_columns, values):
            if value is None:
                continue
            if fmt is _float and type(value) is float:  # the common case, without a call
                out.append(prefix + repr(value))
                continue
            try:
                out.append(prefix + fmt(value))
            except TypeError:
                raise RebuildError(f"field {key}: unexpected value {value!r} for its type") from None
        if not out:
            raise RebuildError("no field value")
        if self._late and out[0][0] in SKIPPED:
            key = next(key for (_, _, key), value in zip(self._field_columns, values) if value is not None)
            raise RebuildError(f"field {key!r}: a first field cannot start with a tab or a NUL in line protocol")
        try:
            return f"{head}{','.join(out)} {time}\n".encode()
        except UnicodeEncodeError as err:
            raise RebuildError(f"not valid Unicode: {err}") from None

    def scored(self, row: Sequence[Any]) -> bool:
        """Whether the row already carries one of riverguard's score fields."""
        for i in self.score_columns:
            if row[i] is not None:
                return True
        return False


def _ambiguous(key: str, kinds: set[str]) -> Any:
    """The formatter for a field stored with several types: the value's own type decides."""

    def fmt(value: Any) -> str:
        if type(value) is float:
            if "f" in kinds:
                return _float(value)
        elif type(value) is int:
            numeric = kinds & {"f", "i", "u"}
            if len(numeric) == 1:
                return _FORMAT[numeric.pop()](value)
            raise RebuildError(
                f"field {key}: stored as {' and '.join(sorted(kinds))} in different shards; "
                f"the value {value} could be either"
            )
        elif type(value) is str and "s" in kinds:
            return _string(value)
        elif type(value) is bool and "b" in kinds:
            return _boolean(value)
        raise TypeError

    return fmt
