"""Write line protocol to InfluxDB over HTTP, in batches, with bounded retries.

Used by ``riverguard replay --influx-url URL`` to backfill or re-score
recorded data. Standard library only (``urllib``).

- InfluxDB 1.x: ``--db NAME`` (and optionally ``--rp``) -> ``POST /write``;
  ``--username NAME --password-env VAR`` authenticate with HTTP Basic auth
  (every 1.x release accepts it).
- InfluxDB 2.x: ``--bucket NAME --org ORG --token-env VAR`` -> ``POST /api/v2/write``
  with ``Authorization: Token <value of $VAR>``. ``--token-env`` works with
  ``--db`` too (InfluxDB 1.8+ accepts ``Token user:password``).

Batches hold at most ``batch_size`` metrics (5000 by default, as Telegraf's
influxdb outputs). A batch answered with 5xx or 429, or lost to a connection
error or timeout, is retried with exponential backoff (``Retry-After`` is
honoured, capped), at most ``retries`` times; any other 4xx stops at once
with InfluxDB's own message. Comment and blank lines are not sent.
``--skip-metrics N`` sends nothing for the first ``N`` metrics (they are
still scored, so the models are the same): a backfill that stopped resumes
where InfluxDB's acknowledgements ended, and says so when it stops.

>>> w = InfluxWriter("http://127.0.0.1:8086", db="metrics", batch_size=2, post=lambda body: calls.append(body))
>>> calls = []
>>> w.write(b"a x=1 1\\n# comment\\nb x=2 2\\nc x=3 3\\n")
>>> calls
[b'a x=1 1\\nb x=2 2\\n']
>>> w.close(); calls[-1], w.lines, w.batches
(b'c x=3 3\\n', 3, 2)
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import time
import urllib.parse
from collections.abc import Callable

from .lineprotocol import metric_lines
from .log import Log

__all__ = [
    "DEFAULT_BATCH_SIZE", "MAX_BACKOFF", "InfluxError", "InfluxWriter", "OptionError", "WriteError",
    "add_arguments", "from_args", "post", "retry_wait", "retryable_status",
]

DEFAULT_BATCH_SIZE = 5000
DEFAULT_RETRIES = 5
#: The longest wait before asking InfluxDB again, for whoever waits: a batch's retries here and
#: ``pull --follow``'s next pass after a failed one. A longer ``Retry-After`` is cut to this.
MAX_BACKOFF = 60.0
_MAX_MESSAGE = 500


class InfluxError(Exception):
    """A request to InfluxDB that failed.

    ``retryable``: the same request may succeed later (the server could not be
    reached, timed out, answered 5xx or 429); otherwise it never will (any
    other 4xx: bad credentials, no such database, a point refused).
    ``retry_after``: the server's ``Retry-After``, in seconds, if it sent one.
    ``status`` and ``reason``: the HTTP status and InfluxDB's own message, when it answered.
    """

    def __init__(
        self,
        message: str,
        retryable: bool = False,
        retry_after: float | None = None,
        *,
        status: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.reason = reason


class WriteError(InfluxError):
    """A batch InfluxDB refused (4xx) or that could not be delivered after the retries."""


def retryable_status(status: int) -> bool:
    """Whether an HTTP answer means "try again later" (5xx, 429 Too Many Requests) rather than "never".

    >>> [s for s in (400, 401, 404, 413, 429, 500, 503) if retryable_status(s)]
    [429, 500, 503]
    """
    return status >= 500 or status == 429


def retry_wait(backoff: float, retry_after: float | None) -> float:
    """Seconds before the next attempt: the backoff or the server's ``Retry-After``, the longer, capped.

    >>> retry_wait(2.0, None), retry_wait(2.0, 7.0), retry_wait(2.0, 0.0), retry_wait(128.0, None)
    (2.0, 7.0, 2.0, 60.0)
    """
    return min(max(backoff, retry_after or 0.0), MAX_BACKOFF)


class OptionError(Exception):
    """Inconsistent ``--influx-*`` options."""


def add_arguments(
    parser: argparse.ArgumentParser,
    title: str = "write to InfluxDB (backfill / re-scoring)",
    description: str = "with --influx-url the scored output goes to InfluxDB instead of stdout",
    *,
    replay: bool = True,
) -> None:
    """Add the ``--influx-url`` option group to ``riverguard replay``, or (``replay=False``) to ``pull``,
    whose input has no precision and no metrics to skip."""
    group = parser.add_argument_group(title, description)
    group.add_argument("--influx-url", metavar="URL", help="InfluxDB base URL, e.g. http://localhost:8086")
    group.add_argument("--db", metavar="NAME", help="InfluxDB 1.x database (POST /write)")
    group.add_argument("--rp", metavar="NAME", help="InfluxDB 1.x retention policy (default: the database's)")
    group.add_argument("--bucket", metavar="NAME", help="InfluxDB 2.x bucket (POST /api/v2/write)")
    group.add_argument("--org", metavar="ORG", help="InfluxDB 2.x organisation (name or id)")
    group.add_argument(
        "--token-env", metavar="VAR", help="environment variable holding the API token (sent as 'Token ...')"
    )
    group.add_argument("--username", metavar="NAME", help="InfluxDB 1.x user (HTTP Basic auth, with --password-env)")
    group.add_argument("--password-env", metavar="VAR", help="environment variable holding the --username's password")
    if replay:
        group.add_argument(
            "--skip-metrics", type=int, default=0, metavar="N",
            help="score but do not send the first N metrics (resume a backfill that stopped; it prints N)",
        )
    group.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
        help=f"metrics per write request (default: {DEFAULT_BATCH_SIZE})",
    )
    group.add_argument(
        "--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
        help=f"retries of a batch on 5xx/429/connection errors (default: {DEFAULT_RETRIES})",
    )
    if replay:
        group.add_argument(
            "--precision", choices=["ns", "us", "ms", "s"], default="ns",
            help="the unit of the input's timestamps, for the models' event time and for InfluxDB (default: ns)",
        )


def from_args(args: argparse.Namespace, log: Log) -> InfluxWriter | None:
    """The writer the ``replay`` options ask for, or None without ``--influx-url``.

    Raises :class:`OptionError` for inconsistent options.
    """
    url = getattr(args, "influx_url", None)
    if not url:
        for opt in ("db", "rp", "bucket", "org", "token_env", "username", "password_env", "skip_metrics"):
            if getattr(args, opt, None):
                raise OptionError(f"--{opt.replace('_', '-')} needs --influx-url")
        return None
    if getattr(args, "output", None):
        raise OptionError("--output and --influx-url exclude each other")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise OptionError(f"--influx-url {url!r}: expected http://host:port or https://host:port")
    if bool(args.db) == bool(args.bucket):
        raise OptionError("give exactly one of --db (InfluxDB 1.x) or --bucket (InfluxDB 2.x)")
    if args.bucket and not args.org:
        raise OptionError("--bucket needs --org")
    if args.bucket and not args.token_env:
        raise OptionError("--bucket needs --token-env VAR (the environment variable holding the token)")
    if args.db and (args.org):
        raise OptionError("--org goes with --bucket (InfluxDB 2.x), not --db")
    if args.rp and not args.db:
        raise OptionError("--rp goes with --db (InfluxDB 1.x)")
    if bool(args.username) != bool(args.password_env):
        raise OptionError("--username and --password-env go together")
    if args.username and not args.db:
        raise OptionError("--username goes with --db (InfluxDB 1.x); InfluxDB 2.x uses --token-env")
    if args.username and args.token_env:
        raise OptionError("give --username/--password-env or --token-env, not both")
    basic = None
    if args.username:
        password = os.environ.get(args.password_env)
        if password is None:
            raise OptionError(f"--password-env {args.password_env}: that environment variable is not set")
        basic = (args.username, password)
    if getattr(args, "skip_metrics", 0) < 0:
        raise OptionError("--skip-metrics must be at least 0")
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise OptionError(f"--token-env {args.token_env}: that environment variable is not set or empty")
    if args.batch_size < 1:
        raise OptionError("--batch-size must be at least 1")
    if args.retries < 0:
        raise OptionError("--retries must be at least 0")
    return InfluxWriter(
        url,
        db=args.db,
        rp=args.rp,
        bucket=args.bucket,
        org=args.org,
        token=token,
        basic=basic,
        skip=getattr(args, "skip_metrics", 0),
        precision=getattr(args, "precision", "ns"),
        batch_size=args.batch_size,
        retries=args.retries,
        log=log,
    )


class InfluxWriter:
    """A binary sink (``write``/``flush``/``close``) that posts line protocol in batches.

    ``write`` must receive whole metrics (riverguard's replay always does);
    a metric whose string value spans lines is kept in one piece.
    """

    def __init__(
        self,
        url: str,
        *,
        db: str | None = None,
        rp: str | None = None,
        bucket: str | None = None,
        org: str | None = None,
        token: str | None = None,
        basic: tuple[str, str] | None = None,
        skip: int = 0,
        precision: str = "ns",
        batch_size: int = DEFAULT_BATCH_SIZE,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.5,
        timeout: float = 30.0,
        log: Log | None = None,
        post: Callable[[bytes], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = url.rstrip("/")
        if bucket is not None:
            query = {"bucket": bucket, "org": org or "", "precision": precision}
            self.endpoint = f"{base}/api/v2/write?{urllib.parse.urlencode(query)}"
            self.target = f"bucket {bucket!r}"
        else:
            query = {"db": db or "", "precision": precision}
            if rp:
                query["rp"] = rp
            self.endpoint = f"{base}/write?{urllib.parse.urlencode(query)}"
            self.target = f"database {db!r}"
        self.url = base
        self.headers = {"Content-Type": "text/plain; charset=utf-8", "User-Agent": "riverguard"}
        if token:
            self.headers["Authorization"] = f"Token {token}"
        elif basic:
            pair = f"{basic[0]}:{basic[1]}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        #: Metrics still to be skipped (``--skip-metrics``) and how many were asked for.
        self.skip = self.skipped_total = skip
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.log = log or Log("error")
        self._post = post or self._http_post
        self._sleep = sleep
        self._pending: list[bytes] = []
        self._failed = False
        self._closed = False
        #: metrics and requests written so far, retries that were needed, seconds spent posting
        self.lines = 0
        self.batches = 0
        self.retried = 0
        self.post_seconds = 0.0

    # -- the sink --------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._failed:
            return
        pending = self._pending
        for line in metric_lines(data):  # (a string value may hold a newline)
            if line and line[:1] != b"#" and line.strip():
                # a CRLF line ending: riverguard reads the line, InfluxDB refuses it ("bad timestamp")
                pending.append(line[:-1] if line[-1:] == b"\r" else line)
        if self.skip:
            dropped = min(self.skip, len(pending))
            del pending[:dropped]
            self.skip -= dropped
        while len(pending) >= self.batch_size:
            batch = pending[: self.batch_size]
            del pending[: self.batch_size]
            self._send(batch)

    def flush(self) -> None:
        if self._pending and not self._failed:
            batch, self._pending = self._pending, []
            self._send(batch)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.flush()
        if not self._failed and self.batches:
            rate = self.lines / self.post_seconds if self.post_seconds > 0 else 0.0
            self.log.info(
                f"wrote {self.lines} metrics in {self.batches} batch(es) to {self.target} at {self.url}"
                f" ({self.retried} retried, {rate:,.0f} metrics/s while posting)"
            )

    @property
    def acknowledged(self) -> int:
        """Metrics InfluxDB has acknowledged, counting those skipped with ``--skip-metrics``."""
        return self.skipped_total - self.skip + self.lines

    def resume_hint(self) -> str:
        """What to say when a backfill stops: how far it got and how to go on from there."""
        done = self.acknowledged
        return (
            f"backfill stopped: {done} metrics acknowledged by InfluxDB"
            + (f" (the first {self.skipped_total - self.skip} skipped with --skip-metrics)" if self.skipped_total else "")
            + f"; to resume, run the same command with --skip-metrics {done}"
        )

    # -- posting ---------------------------------------------------------------

    def _send(self, batch: list[bytes]) -> None:
        body = b"\n".join(batch) + b"\n"
        delay = self.backoff
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                self._post(body)
                self.post_seconds += time.monotonic() - started
                self.lines += len(batch)
                self.batches += 1
                return
            except WriteError as err:
                self.post_seconds += time.monotonic() - started
                if not err.retryable:
                    self._failed = True
                    raise
                if attempt >= self.retries:
                    self._failed = True
                    raise WriteError(
                        f"{self.target} at {self.url}: giving up after {attempt + 1} attempt(s): {err}", retryable=True
                    ) from None
                attempt += 1
                self.retried += 1
                wait = retry_wait(delay, err.retry_after)
                self.log.warn(f"write to {self.url} failed ({err}); retry {attempt}/{self.retries} in {wait:g}s")
                self._sleep(wait)
                delay = min(delay * 2, MAX_BACKOFF)

    def _http_post(self, body: bytes) -> None:
        """One POST; raises :class:`WriteError` (``retryable`` or not) unless InfluxDB answered 2xx."""
        conn, _ = post(self.endpoint, body, self.headers, self.timeout, WriteError, refused=f"the write to {self.target}")
        conn.close()


def post(
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    timeout: float,
    error: type[InfluxError],
    *,
    refused: str | None = None,
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """POST ``body`` to ``url``: the connection (for the caller to close) and InfluxDB's 2xx answer, unread.

    Any other outcome raises ``error``. No answer (connection refused, name
    unknown, reset, timed out) is retryable. An answer other than 2xx says
    InfluxDB's message (``HTTP 404: database not found``), is retryable for
    5xx and 429 with the server's ``Retry-After``, and for any other 4xx names
    what was ``refused`` if given (``InfluxDB refused the write to ... (HTTP
    404): ...``). InfluxDB may answer (404 database not found, 401...) and
    close the connection before reading a large body: the send then fails
    with a broken pipe, but the answer is there to be read; when it is not
    (or only its start is), the message says what did come, and the send
    error when nothing did.
    """
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.netloc, timeout=timeout)
    path = parts.path + ("?" + parts.query if parts.query else "")
    try:
        send_error: OSError | None = None
        try:
            conn.request("POST", path, body=body, headers=headers)
        except (ConnectionRefusedError, socket.gaierror) as err:
            raise error(f"cannot connect to {parts.netloc}: {err}", retryable=True) from None
        except (BrokenPipeError, ConnectionResetError) as err:
            send_error = err
        except (OSError, http.client.HTTPException) as err:
            raise error(f"connection error: {err!r}", retryable=True) from None
        try:
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as err:
            raise error(f"connection error: {send_error or err!r}", retryable=True) from None
        if 200 <= resp.status < 300:
            return conn, resp
        try:
            payload = resp.read()
        except http.client.IncompleteRead as err:  # the answer's start came: say it
            payload = err.partial
        except (OSError, http.client.HTTPException):
            payload = b""
    except InfluxError:
        conn.close()
        raise
    conn.close()
    status = resp.status
    message = _message(payload, resp.reason)
    if retryable_status(status):
        wait = _retry_after(resp.getheader("Retry-After"))
        raise error(f"HTTP {status}: {message}", True, wait, status=status, reason=message)
    if refused:
        raise error(f"InfluxDB refused {refused} (HTTP {status}): {message}", status=status, reason=message)
    raise error(f"HTTP {status}: {message}", status=status, reason=message)


def _message(raw: bytes, reason: str) -> str:
    """InfluxDB's own error message: ``{"error": ...}`` (1.x) or ``{"message": ...}`` (2.x)."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for key in ("error", "message"):
            if isinstance(doc.get(key), str):
                text = doc[key]
                break
    text = text or reason or "no message"
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
