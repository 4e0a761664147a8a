"""Read points from InfluxDB 2.x with Flux, paged by time, from annotated CSV.

Each page is one query over ``[start, stop)``::

    from(bucket: "B") |> range(start: time(v: START), stop: time(v: STOP))
      |> filter(fn: (r) => r._measurement == "M")
      |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")

The pivot gives one table per series with a column per field. The annotated
CSV says the rest: ``#group`` true marks the tags (the group key, less
``_start``, ``_stop`` and ``_measurement``), ``#datatype`` each field's type
(``double``, ``long``, ``unsignedLong``, ``string``, ``boolean``). A page's
rows are sorted by time, and the page length adapts so a page holds about
``chunk_size`` points: a year never sits in memory.

Tested against recorded answers only: no InfluxDB 2.x server was available.
"""

from __future__ import annotations

import calendar
import codecs
import csv
import http.client
import json
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

from ..influx import not_influx2
from .points import KINDS, Layout, RebuildError
from .source import ReadError, Row, Source, complete_batches, read_line

__all__ = ["FluxSource", "flux_string", "read_annotated_csv"]

_MIN_PAGE = 10**9  # 1 s
_MAX_PAGE = 366 * 86400 * 10**9
_FIRST_PAGE = 3600 * 10**9
#: Flux's CSV opens every header with its own columns: the annotation column (no label), then
#: ``result`` and ``table``. The table's columns follow under their own labels, so a tag or field
#: named ``result`` or ``table`` is a second column of that name: these are known by position.
_LEAD = ("", "result", "table")
#: The table's columns that are not the point's tags or fields (found after the lead).
_META = {"_start", "_stop", "_measurement", "_time", "_field", "_value"}


def _lead(header: list[str]) -> int:
    """How many of Flux's own columns (:data:`_LEAD`) open ``header``."""
    n = 0
    while n < len(_LEAD) and n < len(header) and header[n] == _LEAD[n]:
        n += 1
    return n


def flux_string(text: str) -> str:
    """A Flux string literal.

    >>> print(flux_string('cpu "a" ${x}'))
    "cpu \\"a\\" \\${x}"
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


def csv_time_ns(text: str) -> int:
    """A Flux ``dateTime:RFC3339`` / ``RFC3339Nano`` cell (UTC, ``Z``) as ns since the epoch.

    Only the form InfluxDB writes, read by position (a cell per point); anything
    else is a :class:`ReadError`. A time a user gives, with any offset, is
    :func:`riverguard.pull.rfc3339_ns`'s.

    >>> csv_time_ns("2023-11-14T22:13:20.000000001Z"), csv_time_ns("1970-01-01T00:00:00Z")
    (1700000000000000001, 0)
    """
    try:
        if text[-1] != "Z" or text[10] != "T":
            raise ValueError
        seconds = calendar.timegm(
            (int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]), int(text[17:19]))
        )
        frac = text[19:-1]
        nanos = int((frac[1:] + "000000000")[:9]) if frac else 0
        if frac and (frac[0] != "." or not frac[1:].isdigit()):
            raise ValueError
    except (ValueError, IndexError):
        raise ReadError(f"unexpected time {text[:40]!r} in the annotated CSV") from None
    return seconds * 10**9 + nanos


def _boolean(cell: str) -> bool:
    if cell == "true":
        return True
    if cell == "false":
        return False
    raise ValueError(cell)


def _unsigned(cell: str) -> int:
    value = int(cell)
    if value < 0:
        raise ValueError(cell)
    return value


_PARSE = {"double": float, "long": int, "unsignedLong": _unsigned, "string": str, "boolean": _boolean}


class _Table:
    """One table's columns: where the time, measurement, tags and typed fields are."""

    def __init__(
        self, header: list[str], datatypes: list[str], groups: list[str], score_suffix: str, score_field: str = ""
    ) -> None:
        lead = _lead(header)
        own = header[lead:]
        if "_time" not in own or "_measurement" not in own:
            raise ReadError(f"the answer has no _time or _measurement column (columns: {', '.join(header)[:200]})")
        self.time = header.index("_time", lead)
        self.measurement = header.index("_measurement", lead)
        columns = [(i, name) for i, name in enumerate(header) if i >= lead and name not in _META]
        self.tags = [i for i, name in columns if groups[i] == "true"]
        self.fields = [i for i, name in columns if groups[i] != "true"]
        for i in self.fields:
            if datatypes[i] not in KINDS:
                raise ReadError(f"field {header[i]!r} has a datatype riverguard cannot write: {datatypes[i]!r}")
        self.header = header
        self.parsers = [_PARSE[datatypes[i]] for i in self.fields]
        self.datatypes = datatypes
        self.score_suffix = score_suffix
        self.score_field = score_field
        self._layouts: dict[str, Layout] = {}

    def layout(self, measurement: str) -> Layout:
        layout = self._layouts.get(measurement)
        if layout is None:
            layout = self._layouts[measurement] = Layout(
                measurement,
                [self.header[i] for i in self.tags],
                [(self.header[i], self.datatypes[i]) for i in self.fields],
                self.score_suffix,
                score_field=self.score_field,
            )
        return layout

    def row(self, cells: list[str]) -> Row:
        time = csv_time_ns(cells[self.time])
        values: list[Any] = [cells[i] for i in self.tags]
        for i, parse in zip(self.fields, self.parsers):
            cell = cells[i]
            if cell == "":
                values.append(None)  # null (and, unavoidably, an empty string: the CSV cannot tell them apart)
                continue
            try:
                values.append(parse(cell))
            except ValueError:
                return Row(time, None, False, f"field {self.header[i]}: {cell[:40]!r} is not a {self.datatypes[i]}")
        layout = self.layout(cells[self.measurement])
        try:
            return Row(time, layout.line(time, values), layout.scored(values), None)
        except RebuildError as err:
            return Row(time, None, False, str(err))


def read_annotated_csv(
    lines: Iterable[str], score_suffix: str = "_anomaly_score", score_field: str = "anomaly_score"
) -> Iterator[Row]:
    """The rows of a Flux answer in annotated CSV (``#datatype``, ``#group``, ``#default``), table by table.

    An error table (columns ``error``, ``reference``) raises :class:`ReadError` with Flux's message.
    """
    datatypes: list[str] = []
    groups: list[str] = []
    table: _Table | None = None
    header: list[str] | None = None
    for cells in csv.reader(lines):
        if not cells or cells == [""]:  # a blank line ends a table (its annotations too)
            datatypes, groups, table, header = [], [], None, None
            continue
        first = cells[0]
        if first.startswith("#"):
            if first == "#datatype":
                datatypes, table, header = cells, None, None
            elif first == "#group":
                groups = cells
            continue
        if header is None:
            header = cells
            if "error" in header and "reference" in header and "_time" not in header:
                table = None
                continue
            if len(datatypes) != len(header) or len(groups) != len(header):
                raise ReadError("the answer is not annotated CSV with #datatype and #group annotations")
            table = _Table(header, datatypes, groups, score_suffix, score_field)
            continue
        if table is None:  # a row of an error table
            message = cells[header.index("error")] if len(cells) == len(header) else ",".join(cells)
            raise ReadError(f"InfluxDB (Flux): {message}")
        if len(cells) != len(header):
            raise ReadError(f"a CSV row has {len(cells)} cells for {len(header)} columns")
        yield table.row(cells)


class FluxSource(Source):
    """Points of bucket ``bucket`` of organisation ``org`` at ``url``."""

    request_headers = {"Content-Type": "application/json", "Accept": "application/csv", "Accept-Encoding": "identity"}

    def __init__(self, url: str, bucket: str, org: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.bucket = bucket
        self.org = org
        self.label = f"bucket {bucket!r}"
        #: Page length (ns) for the next query; it adapts to the data's density.
        self.page = _FIRST_PAGE

    def request(self, url: str, body: bytes) -> http.client.HTTPResponse:
        """As :meth:`Source.request`; a 404 from a server without 2.x's API says so (as a backfill's write does)."""
        try:
            return super().request(url, body)
        except ReadError as err:
            advice = not_influx2(self.url, err)
            if advice is None:
                raise
            raise ReadError(f"{err}; {advice}", err.retryable, err.retry_after, status=err.status,
                            reason=err.reason, influx2=err.influx2) from None

    def key(self, measurement: str) -> str:
        return f"flux:{self.org}/{self.bucket}/{measurement}"

    # -- queries ---------------------------------------------------------------

    def request_body(self, flux: str) -> bytes:
        """The JSON of ``POST /api/v2/query``: the query and the annotated-CSV dialect."""
        dialect = {
            "header": True,
            "delimiter": ",",
            "annotations": ["datatype", "group", "default"],
            "dateTimeFormat": "RFC3339Nano",
        }
        return json.dumps({"query": flux, "type": "flux", "dialect": dialect}).encode()

    def _lines(self, flux: str) -> Iterator[str]:
        url = f"{self.url}/api/v2/query?{urllib.parse.urlencode({'org': self.org})}"
        resp = self.request(url, self.request_body(flux))
        decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        try:
            while True:
                raw = read_line(resp)
                if not raw:
                    return
                yield decode(raw)
        finally:
            resp.close()

    def _from(self, measurement: str, start: int, stop: int) -> str:
        return (
            f"from(bucket: {flux_string(self.bucket)})\n"
            f"  |> range(start: time(v: {start}), stop: time(v: {stop}))\n"
            f"  |> filter(fn: (r) => r._measurement == {flux_string(measurement)})\n"
        )

    def page_query(self, measurement: str, start: int, stop: int) -> str:
        """Flux for the points of ``measurement`` in ``[start, stop)`` (ns), one column per field."""
        return self._from(measurement, start, stop) + (
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
        )

    def _column(self, flux: str, name: str) -> list[str]:
        """The cells of column ``name`` in every table of the answer to ``flux``."""
        cells_out: list[str] = []
        header: list[str] | None = None
        for cells in csv.reader(self._lines(flux)):
            if not cells or cells == [""]:
                header = None
            elif cells[0].startswith("#"):
                continue
            elif header is None:
                header = cells
            elif name in header:
                cells_out.append(cells[header.index(name)])
            elif "error" in header:
                raise ReadError(f"InfluxDB (Flux): {cells[header.index('error')]}")
        return cells_out

    def measurements(self) -> list[str]:
        flux = f'import "influxdata/influxdb/schema"\nschema.measurements(bucket: {flux_string(self.bucket)})\n'
        return self._column(flux, "_value")

    def end_time(self, measurement: str, lo: int | None, hi: int | None, last: bool) -> int | None:
        start = 0 if lo is None else lo + 1
        stop = (hi + 1) if hi is not None else 2**62
        pick, keep = ("last", "max") if last else ("first", "min")
        # Only the times go into one table: group() refuses _value columns of several types (a float
        # field and an integer one: "schema collision").
        flux = self._from(measurement, start, stop) + (
            f'  |> {pick}()\n  |> keep(columns: ["_time"])\n  |> group()\n  |> {keep}(column: "_time")\n'
        )
        times = [csv_time_ns(cell) for cell in self._column(flux, "_time")]
        return (max(times) if last else min(times)) if times else None

    def rows(self, measurement: str, lo: int | None, hi: int | None) -> Iterator[list[Row]]:
        """The measurement's points in ``(lo, hi]`` (ns), batched on complete timestamps."""
        return complete_batches(self._pages(measurement, lo, hi), self.chunk_size)

    def _pages(self, measurement: str, lo: int | None, hi: int | None) -> Iterator[Row]:
        if lo is None:
            first = self.end_time(measurement, None, hi, last=False)
            if first is None:
                return
            lo = first - 1
        if hi is None:
            raise ValueError("a 2.x pull needs an upper bound")
        start = lo + 1  # range() includes its start, excludes its stop: (lo, hi] is [lo + 1, hi + 1)
        end = hi + 1
        while start < end:
            stop = min(start + self.page, end)
            rows = list(read_annotated_csv(
                self._lines(self.page_query(measurement, start, stop)), self.score_suffix, self.score_field
            ))
            rows.sort(key=_time)  # a table per series: merge them in time order (stable)
            yield from rows
            start = stop
            # Aim for about chunk_size points per page.
            if len(rows) > 2 * self.chunk_size:
                self.page = max(_MIN_PAGE, self.page // 2)
            elif len(rows) < self.chunk_size // 2:
                self.page = min(_MAX_PAGE, self.page * 2)


def _time(row: Row) -> int:
    return row.time
