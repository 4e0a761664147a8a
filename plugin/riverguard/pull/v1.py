"""Read points from InfluxDB 1.x with InfluxQL, streamed (``chunked=true``), in time order.

The schema comes first: ``SHOW TAG KEYS`` and ``SHOW FIELD KEYS`` say which
columns are tags and what type each field has (JSON alone cannot tell the
float 3.0 from the integer 3). The points are then selected with every tag and
field named and aliased (``"host"::tag AS "t0"``, ``"usage"::field AS "f0"``),
so a tag and a field of the same name cannot be confused, without
``GROUP BY``: one stream for the whole measurement, ordered by time across
its series, as Telegraf would have delivered them.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

from ..influx import create_database
from .points import KINDS, Layout, RebuildError
from .source import ReadError, Row, Source, complete_batches, json_document, read_line

__all__ = ["InfluxQLSource", "quote_ident"]


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes.

    >>> quote_ident('cpu "total"')
    '"cpu \\\\"total\\\\""'
    """
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


#: Query errors of InfluxDB 1.x that say the server is busy, not that the query is wrong: retried.
_BUSY = ("max-concurrent-queries limit exceeded", "query-timeout limit exceeded", "query interrupted")


def _busy(error: object) -> bool:
    """Whether InfluxDB's error message says the server is busy (so ``pull --follow`` tries again).

    >>> _busy("max-concurrent-queries limit exceeded(20, 20)"), _busy("database not found: x")
    (True, False)
    """
    return isinstance(error, str) and any(text in error for text in _BUSY)


class InfluxQLSource(Source):
    """Points of database ``db`` (retention policy ``rp``) at ``url``; ``option`` names ``db`` in messages
    (``--db``, or ``--to-db`` for the target of the scores)."""

    request_headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}

    def __init__(self, url: str, db: str, rp: str | None = None, option: str = "--db", **options: Any) -> None:
        super().__init__(url, **options)
        self.db = db
        self.rp = rp
        #: Layouts read in this pass (:meth:`check` starts a pass): the late check and the read of a
        #: measurement ask once.
        self._layouts: dict[str, Layout | None] = {}
        self.option = option
        self.label = f"database {db!r}" + (f" (retention policy {rp!r})" if rp else "")

    def key(self, measurement: str) -> str:
        """The name of this measurement's high-water mark in the state file."""
        return f"influxql:{self.db}/{self.rp or ''}/{measurement}"

    # -- queries ---------------------------------------------------------------

    def _post(self, query: str, chunked: bool = False):  # type: ignore[no-untyped-def]
        params = {"db": self.db, "q": query, "epoch": "ns"}
        if chunked:
            params.update(chunked="true", chunk_size=str(self.chunk_size))
        return self.request(self.url + "/query", urllib.parse.urlencode(params).encode())

    def _results(self, query: str, chunked: bool = False) -> Iterator[dict[str, Any]]:
        """Each result document of ``query`` (one per chunk when chunked); errors raise :class:`ReadError`."""
        resp = self._post(query, chunked)
        partial = False  # the last chunk said more were coming
        try:
            while True:
                line = read_line(resp)
                if not line:
                    if partial:  # the connection ended cleanly, but the answer did not
                        raise ReadError("connection lost while reading: the answer ended before its last chunk", True)
                    return
                if not line.strip():
                    continue
                doc = json_document(line)
                if "error" in doc:
                    raise ReadError(f"InfluxDB: {doc['error']}", _busy(doc["error"]))
                partial = False
                for result in doc.get("results", ()):
                    if "error" in result:
                        raise ReadError(f"InfluxDB refused {query[:200]!r}: {result['error']}", _busy(result["error"]))
                    partial = partial or bool(result.get("partial"))
                    yield result
                if not chunked:
                    return
        finally:
            resp.close()

    def _values(self, query: str) -> list[list[Any]]:
        return [row for result in self._results(query) for s in result.get("series", ()) for row in s.get("values", ())]

    def _from(self, measurement: str) -> str:
        if self.rp:
            return f"{quote_ident(self.db)}.{quote_ident(self.rp)}.{quote_ident(measurement)}"
        return quote_ident(measurement)

    def check(self) -> None:
        """A missing database or retention policy is an error, though InfluxDB 1.x does not always say so.

        It answers SHOW MEASUREMENTS on a missing database with no measurement,
        and lists a database's measurements whatever the policy: a misspelled
        ``rp`` is refused only by a query of a measurement's points or fields,
        so one of a database with no points yet would read nothing for ever.
        """
        self._layouts.clear()
        if self.db not in {row[0] for row in self._values("SHOW DATABASES")}:
            raise ReadError(f"database not found: {self.db}: {create_database(self.db, self.option)}")
        if self.rp:
            policies = [row[0] for row in self._values(f"SHOW RETENTION POLICIES ON {quote_ident(self.db)}")]
            if self.rp not in policies:
                has = ", ".join(map(repr, policies)) if policies else "none"
                raise ReadError(
                    f"retention policy {self.rp!r} not found in database {self.db!r} (its retention policies: {has})"
                )

    def measurements(self) -> list[str]:
        return [row[0] for row in self._values("SHOW MEASUREMENTS")]

    def missing(self, names: list[str]) -> list[str]:
        known = set(self.measurements())
        return [name for name in names if name not in known]

    def layout(self, measurement: str) -> Layout | None:
        """The measurement's tags and typed fields, or None when it has no field (asked once a pass)."""
        if measurement in self._layouts:
            return self._layouts[measurement]
        layout = self._layouts[measurement] = self._layout(measurement)
        return layout

    def _layout(self, measurement: str) -> Layout | None:
        source = self._from(measurement)
        tags = [row[0] for row in self._values(f"SHOW TAG KEYS FROM {source}")]
        fields = [(row[0], row[1]) for row in self._values(f"SHOW FIELD KEYS FROM {source}")]
        unknown = sorted({kind for _, kind in fields if kind not in KINDS})
        if unknown:
            raise ReadError(f"measurement {measurement!r}: unknown field type(s) {', '.join(unknown)}")
        if not fields:
            return None
        return Layout(measurement, tags, fields, self.score_suffix, offset=1, score_field=self.score_field)

    @staticmethod
    def _where(lo: int | None, hi: int | None) -> str:
        terms = []
        if lo is not None:
            terms.append(f"time > {lo}")
        if hi is not None:
            terms.append(f"time <= {hi}")
        return (" WHERE " + " AND ".join(terms)) if terms else ""

    def end_time(self, measurement: str, lo: int | None, hi: int | None, last: bool) -> int | None:
        where = f"SELECT * FROM {self._from(measurement)}{self._where(lo, hi)} ORDER BY time"
        found = self._values(f"{where} {'DESC' if last else 'ASC'} LIMIT 1")
        return found[0][0] if found else None

    def rows(self, measurement: str, lo: int | None, hi: int | None) -> Iterator[list[Row]]:
        """The measurement's points in ``(lo, hi]`` (ns; None: unbounded), batched on complete timestamps."""
        layout = self.layout(measurement)
        if layout is None:
            return iter(())
        return complete_batches(self._rows(layout, lo, hi), self.chunk_size)

    def _rows(self, layout: Layout, lo: int | None, hi: int | None) -> Iterator[Row]:
        select = [f"{quote_ident(key)}::tag AS \"t{i}\"" for i, key in enumerate(layout.tags)]
        select += [f"{quote_ident(key)}::field AS \"f{j}\"" for j, key in enumerate(layout.field_keys)]
        query = (
            f"SELECT {', '.join(select)} FROM {self._from(layout.measurement)}{self._where(lo, hi)} ORDER BY time ASC"
        )
        line, scored = layout.line, layout.scored
        for result in self._results(query, chunked=True):
            for series in result.get("series", ()):
                for values in series.get("values", ()):
                    time = values[0]
                    try:
                        yield Row(time, line(time, values), scored(values), None)
                    except RebuildError as err:
                        yield Row(time, None, False, str(err))
