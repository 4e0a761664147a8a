"""What every InfluxDB source shares: the rows it yields, HTTP with clear errors, batching on time.

A source yields *batches* of rows, each row ``(time, line, scored, error)``:
the point's time (ns), its line protocol (None when it cannot be rebuilt),
whether it already carries a riverguard score field, and why it could not be
rebuilt. Rows come in time order, and every batch ends on a complete
timestamp: all points of the batch's last time are in it, so "everything up
to this time was scored" is true after each batch.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from ..influx import InfluxError, post

__all__ = ["ReadError", "Row", "Source", "complete_batches"]


class Row(NamedTuple):
    time: int
    line: bytes | None
    scored: bool
    error: str | None


class ReadError(InfluxError):
    """A query that failed; ``retryable`` for a server that is down or overloaded."""


class Source:
    """What the 1.x and 2.x readers share: the server, the request headers, the chunk size.

    A source names a measurement's high-water mark (``key``), checks that
    the database or bucket exists (``check``), lists the measurements (and
    which of some names it does not hold: ``missing``), finds the first and
    last points' times (for the progress bar) and yields the points of a time
    range as batches of :class:`Row` (``rows``).
    """

    #: Headers of every query request (the Accept and Content-Type of the API).
    request_headers: dict[str, str] = {}
    label = ""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        chunk_size: int = 10000,
        score_suffix: str = "_anomaly_score",
        score_field: str = "anomaly_score",
        timeout: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.headers = {"User-Agent": "riverguard", **(headers or {}), **self.request_headers}
        self.chunk_size = chunk_size
        #: What marks a point already scored: a field ending with ``score_suffix``, or ``score_field`` itself.
        self.score_suffix = score_suffix
        self.score_field = score_field
        self.timeout = timeout

    def request(self, url: str, body: bytes) -> http.client.HTTPResponse:
        """POST a query; InfluxDB's 2xx answer, open to be read, or :class:`ReadError` (as :func:`influx.post`)."""
        return post(url, body, self.headers, self.timeout, ReadError)[1]

    def key(self, measurement: str) -> str:  # pragma: no cover - each source has its own
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`ReadError` when what is read is not there (a server that says so itself need not check)."""

    def measurements(self) -> list[str]:  # pragma: no cover
        raise NotImplementedError

    def missing(self, names: list[str]) -> list[str]:
        """Which of ``names`` the source holds no measurement of (none known: a source that cannot tell)."""
        return []

    def time_range(self, measurement: str, lo: int | None, hi: int | None) -> tuple[int, int] | None:
        """The times of the measurement's first and last points in ``(lo, hi]``, or None."""
        first = self.end_time(measurement, lo, hi, last=False)
        if first is None:
            return None
        last = self.end_time(measurement, lo, hi, last=True)
        return None if last is None else (first, last)

    def end_time(self, measurement: str, lo: int | None, hi: int | None, last: bool) -> int | None:  # pragma: no cover
        """The time of the measurement's first (or ``last``) point in ``(lo, hi]``, or None: one query."""
        raise NotImplementedError

    def rows(self, measurement: str, lo: int | None, hi: int | None) -> Iterator[list[Row]]:  # pragma: no cover
        raise NotImplementedError


def read_line(resp: http.client.HTTPResponse) -> bytes:
    """One line of a streamed answer (b"" at its end); an answer cut short is a retryable :class:`ReadError`.

    Cut short: a chunked answer that stops before its last chunk (http.client
    raises), or one that ends before its Content-Length (http.client returns
    what came: the bytes still owed say so). An answer that ends without one
    of these (closed by the server, no length given) is taken as complete.
    """
    try:
        line = resp.readline()
    except (OSError, http.client.HTTPException) as err:
        raise ReadError(f"connection lost while reading: {err!r}", retryable=True) from None
    if resp.length and not line.endswith(b"\n"):  # (readline stops at the Content-Length, or earlier at the end)
        raise ReadError(
            f"connection lost while reading: the answer ended {resp.length} bytes before its Content-Length", True
        )
    return line


def json_document(line: bytes) -> dict:
    """One JSON document of InfluxDB's answer, with ``-0`` kept as the float ``-0.0``.

    JSON (and InfluxDB, which writes an integral float without a decimal
    point) spells the float -0.0 as ``-0``, which Python's parser reads as the
    integer 0: only a document that holds the token pays for the slower path.
    """
    try:
        if b"-0," in line or b"-0]" in line:
            return json.loads(line, parse_int=_int_keeping_negative_zero)
        return json.loads(line)
    except ValueError as err:  # a complete answer (read_line tells one cut short): asking again gives the same
        raise ReadError(
            f"the answer is not InfluxDB's JSON ({err}): {line[:200]!r}; is the URL InfluxDB's, not a proxy's page?"
        ) from None


def _int_keeping_negative_zero(text: str) -> int | float:
    return -0.0 if text == "-0" else int(text)


def complete_batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    """Cut time-ordered rows into batches of about ``size`` that end on a complete timestamp."""
    batch: list[Row] = []
    for row in rows:
        if len(batch) >= size and row.time != batch[-1].time:
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch
