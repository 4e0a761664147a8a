"""Write line protocol to InfluxDB over HTTP, in batches, with bounded retries.

Used by ``riverguard replay --influx-url URL`` to backfill or re-score
recorded data, and by ``riverguard pull`` to write its points back.
Standard library only (``urllib``).

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
with InfluxDB's own message, except a batch refused for its data (400, 422:
a line InfluxDB cannot parse, a field type conflict): it is split in halves,
posted again, until each refused metric is alone; those are reported and
counted, the others written, and the backfill (or ``pull``) goes on (unless
the refusal looks systematic: :data:`MAX_REFUSED_PER_BATCH`). Comment and
blank lines are not sent. ``--skip-metrics N`` sends nothing for the first
``N`` metrics (they are still scored, so the models are the same): a backfill
that stopped resumes where InfluxDB's answers ended, and says so when it stops.

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

from .lineprotocol import MAY_BE_UNSIGNED, metric_lines, signed_unsigned
from .log import Log, RateLimit, plural
from .signals import deferred

__all__ = [
    "DATA_REFUSED", "DEFAULT_BATCH_SIZE", "MAX_BACKOFF", "MAX_REFUSED_PER_BATCH", "InfluxError", "InfluxWriter",
    "OptionError", "WriteError",
    "add_arguments", "create_database", "from_args", "not_influx2", "post", "retry_wait", "retryable_status",
]

DEFAULT_BATCH_SIZE = 5000
DEFAULT_RETRIES = 5
#: HTTP statuses of a write refused for what it holds (a line InfluxDB cannot parse, a field type
#: conflict, a field named ``time``...): 1.x answers 400, 2.x 400 or 422. The writer splits such a
#: batch to find the lines at fault; 401, 403, 404, 413 say nothing against a line and still stop it.
DATA_REFUSED = (400, 422)
#: More metrics refused than this in one batch stop the writer (a backfill: exit 1, with the resume hint): so
#: many refusals have one cause to fix (a field stored with another type, the wrong database), and
#: isolating them costs about 2k*log2(n/k) more requests
#: for k refused among n. Against a local InfluxDB 1.6, in a batch of 5 000 (about 30 ms clean): one
#: refused line takes ~25 more requests, 75–100 ms in all; 100 spread over it ~1 200 requests, 1.2–1.4 s.
MAX_REFUSED_PER_BATCH = 100
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
    ``influx2``: the answer was InfluxDB 2.x's JSON error (``{"code": ..., "message": ...}``); a server
    without 2.x's API (InfluxDB 1.x: a plain ``404 page not found``) does not send one.
    ``fix``: what to change, when the writer that gave up can tell (:class:`InfluxWriter`); else None.
    """

    def __init__(
        self,
        message: str,
        retryable: bool = False,
        retry_after: float | None = None,
        *,
        status: int | None = None,
        reason: str | None = None,
        influx2: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.reason = reason
        self.influx2 = influx2
        self.fix: str | None = None


def not_influx2(url: str, err: InfluxError | None) -> str | None:
    """What to do when a request to InfluxDB 2.x's API (``--bucket``: a backfill's write, a pull's query) got a 404
    that is not 2.x's JSON error: the server at ``url`` has no such API (InfluxDB 1.x, or not InfluxDB). None for
    any other outcome."""
    if err is None or err.status != 404 or err.influx2:
        return None
    return (f"{url} does not look like InfluxDB 2.x (its 404 is not 2.x's JSON error): for InfluxDB 1.x give --db"
            " (and --username/--password-env) instead of --bucket, --org and --token-env, or fix --influx-url")


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


def create_database(db: str, option: str = "--db") -> str:
    """What to do about an InfluxDB 1.x database the server does not have, given with ``option``.

    >>> create_database("scored", "--to-db")
    'create the database (InfluxQL: CREATE DATABASE "scored") or fix --to-db'
    """
    return f'create the database (InfluxQL: CREATE DATABASE "{db}") or fix {option}'


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
            "--precision", choices=["ns", "us", "ms", "s"], default=None,  # (None: not given, ns; the unit check)
            help="the unit of the input's timestamps, for the models' event time and for InfluxDB (default: ns)",
        )


def from_args(
    args: argparse.Namespace,
    log: Log,
    *,
    on_refused: Callable[[bytes], str] | None = None,
    refusals: RateLimit | None = None,
    option: str | None = None,
) -> InfluxWriter | None:
    """The writer the ``replay`` (or ``pull``) options ask for, or None without ``--influx-url``;
    ``on_refused``, ``refusals``, ``option``: see :class:`InfluxWriter`.

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
        credentials=(
            f"--username {args.username} --password-env {args.password_env}" if basic
            else f"--token-env {args.token_env}" if token else None
        ),
        skip=getattr(args, "skip_metrics", 0),
        precision=getattr(args, "precision", None) or "ns",
        batch_size=args.batch_size,
        retries=args.retries,
        log=log,
        on_refused=on_refused,
        refusals=refusals,
        option=option,
    )


class InfluxWriter:
    """A binary sink (``write``/``flush``/``close``) that posts line protocol in batches.

    ``write`` must receive whole metrics (riverguard's replay always does);
    a metric whose string value spans lines is kept in one piece.

    A batch refused for its data (:data:`DATA_REFUSED`) is split until each
    refused metric is alone: it gets an ``E!`` line (its name, its start and
    InfluxDB's reason), is counted in ``refused``, and the rest is written.
    Its name is its number, as ``--skip-metrics`` counts (the backfill), or
    what ``on_refused`` returns, called with the line (from the thread that
    writes: ``pull`` names the point, and notes it). Those ``E!`` lines are
    rate-limited by ``refusals`` (default: 10 a second, this writer's own;
    ``pull`` gives its writers one limit for its whole run).

    >>> import io
    >>> def influx(body):  # refuses any body holding a "+1" value, as InfluxDB 1.x
    ...     calls.append(body.count(b"\\n"))
    ...     if b"=+1" in body:
    ...         raise WriteError("refused", status=400, reason="unable to parse: invalid boolean")
    >>> calls, out = [], io.StringIO()
    >>> w = InfluxWriter("http://x", db="d", batch_size=8, post=influx, log=Log("info", out))
    >>> w.write(b"".join(b"m v=%s %d\\n" % (b"+1" if i == 5 else b"1", i) for i in range(8)))
    >>> calls, w.lines, w.refused, w.acknowledged
    ([8, 4, 4, 2, 1, 1, 2], 7, 1, 8)
    >>> print(out.getvalue(), end="")
    E! [riverguard] metric 6: InfluxDB refused it (HTTP 400): unable to parse: invalid boolean; not written: m v=+1 5
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
        credentials: str | None = None,
        skip: int = 0,
        precision: str = "ns",
        batch_size: int = DEFAULT_BATCH_SIZE,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.5,
        timeout: float = 30.0,
        log: Log | None = None,
        post: Callable[[bytes], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_refused: Callable[[bytes], str] | None = None,
        refusals: RateLimit | None = None,
        option: str | None = None,
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
        self.db, self.bucket, self.org = db, bucket, org
        #: InfluxDB 1.x (``--db``) has no unsigned integers ("invalid number"): write them as signed ones, as
        #: Telegraf's influxdb output does (``influx_uint_support = false``); how many, and how many were cut
        #: to the most a signed one holds.
        self.signed = bucket is None
        self.unsigned = self.unsigned_cut = 0
        #: the values rewritten in each metric still pending, by its number (:attr:`_done` counts from 0)
        self._unsigned_pending: dict[int, tuple[int, int]] = {}
        #: the options the credentials came from, for a message (never the secret itself), or None
        self.credentials = credentials
        #: the option that named the database or bucket written, for a message: ``--db`` or ``--bucket``
        #: unless given (``pull``'s ``--to-db``, ``--to-bucket``)
        self.option = option or ("--bucket" if bucket is not None else "--db")
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
        self.on_refused = on_refused
        self._pending: list[bytes] = []
        self._failed = False
        self._closed = False
        #: metrics written so far, batches sent whole (split or not), retries that were needed, seconds spent posting
        self.lines = 0
        self.batches = 0
        self.retried = 0
        self.post_seconds = 0.0
        #: metrics InfluxDB refused (each alone, reported), and the requests spent splitting batches to find them
        self.refused = 0
        self.split_requests = 0
        self._done = 0  # metrics of the batches dealt with (written or refused), after those skipped
        self._refused_done = 0  # of which refused
        self._batch_refused = 0  # refused so far in the batch being sent (counted in refused once it is done)
        self._refusals = refusals or RateLimit(burst=10, period=1.0, what=("metric InfluxDB refused", "metrics InfluxDB refused"))

    # -- the sink --------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._failed:
            return
        pending = self._pending
        signed = self.signed and MAY_BE_UNSIGNED.search(data) is not None
        for line in metric_lines(data):  # (a string value may hold a newline)
            if line and line[:1] != b"#" and line.strip():
                if self.skip:  # (--skip-metrics: not sent, so not rewritten nor counted either)
                    self.skip -= 1
                    continue
                # a CRLF line ending: riverguard reads the line, InfluxDB refuses it ("bad timestamp")
                line = line[:-1] if line[-1:] == b"\r" else line
                if signed and MAY_BE_UNSIGNED.search(line):
                    line, rewritten, cut = signed_unsigned(line)
                    if rewritten:  # counted once InfluxDB answered for its batch (:meth:`_send`)
                        self._unsigned_pending[self._done + len(pending)] = (rewritten, cut)
                pending.append(line)
        self._send_pending(self.batch_size)

    def flush(self) -> None:
        self._send_pending(1)

    def _send_pending(self, least: int) -> None:
        """Send what is pending in batches of at most ``batch_size`` while ``least`` metrics at least are (a
        batch leaves it once InfluxDB answered for it, counted in the same step; one a stop cut short stays
        there, in front of the next ones: :meth:`_send`)."""
        pending = self._pending
        while len(pending) >= least and not self._failed:
            self._send(pending[: self.batch_size])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.flush()
        self.report_held()
        if self.unsigned:
            told = (f"{plural(self.unsigned, 'unsigned integer value')} (123u) written as signed (123i): InfluxDB 1.x"
                    " has no unsigned type; Telegraf's influxdb output does the same (influx_uint_support = false)")
            if self.unsigned_cut:
                self.log.warn(f"{told}; {self.unsigned_cut} of them above 9223372036854775807, written as"
                              " 9223372036854775807i, as Telegraf does")
            else:
                self.log.info(told)
        if not self._failed and self.batches:
            rate = self.lines / self.post_seconds if self.post_seconds > 0 else 0.0
            summary = (
                f"wrote {plural(self.lines, 'metric')} in {self.batches} batch(es) to {self.target} at {self.url}"
                f" ({self.retried} retried, {rate:,.0f} metrics/s while posting)"
            )
            if self.refused:
                self.log.error(
                    f"{summary}; InfluxDB refused {self.refused} metric(s), not written (the E! lines above say"
                    f" which and why; {self.split_requests} more requests isolated them)"
                )
            else:
                self.log.info(summary)

    def report_held(self) -> None:
        """At the end: one ``W!`` line for the refused metrics the rate limit kept from their ``E!`` line, if any."""
        self._refusals.report_held(self.log, final=True)

    @property
    def acknowledged(self) -> int:
        """Metrics InfluxDB has answered for, written or refused, counting those skipped with ``--skip-metrics``.

        Whole batches only: a batch a failure interrupted is sent again on resuming (the points of it
        InfluxDB did write are the same points again, which changes nothing).
        """
        return self.skipped_total - self.skip + self._done

    @property
    def resume_from(self) -> int:
        """The ``--skip-metrics`` a run stopped now resumes with: :attr:`acknowledged`, or, before any batch of
        this run was, the run's own (those not yet skipped are skipped again)."""
        return self.acknowledged if self._done else self.skipped_total

    def skipped_past_the_end(self) -> str:
        """What to say when ``--skip-metrics N`` asked to skip more metrics than there were: none was sent."""
        return (
            f"--skip-metrics {self.skipped_total} is more than the {plural(self.skipped_total - self.skip, 'metric')} replayed:"
            f" nothing was sent to {self.target} at {self.url}"
        )

    def resume_hint(self, err: InfluxError | None = None) -> str:
        """What to say when a backfill stops on ``err``: what to fix, if riverguard can tell (a database or
        bucket the server does not have, credentials refused, too large a batch), how far it got, and how to
        go on from there. When no batch of this run was acknowledged, resuming is running the same command
        again (its own ``--skip-metrics``, if any): no ``--skip-metrics N`` to copy."""
        fix = self._fix(err)
        if self._done == 0:
            start = "backfill stopped at its first batch"
            if self.skipped_total:
                start += f" (after the {plural(self.skipped_total, 'metric')} skipped with --skip-metrics)"
            if fix:
                return f"{start}: {fix}, then run the same command again"
            if err is not None and err.retryable:
                return f"{start}: run the same command again"
            return f"{start}: fix this, then run the same command again"
        done = self.acknowledged
        notes = []
        if self.skipped_total:
            notes.append(f"the first {self.skipped_total - self.skip} skipped with --skip-metrics")
        if self._refused_done:
            notes.append(f"{self._refused_done} refused, reported above")
        return (
            f"backfill stopped: {plural(done, 'metric')} acknowledged by InfluxDB"
            + (f" ({'; '.join(notes)})" if notes else "")
            + (f"; {fix}" if fix else "")
            + f"; to resume, run the same command with --skip-metrics {done}"
        )

    def _fix(self, err: InfluxError | None) -> str | None:
        """What to change, for a refusal no line is at fault for and no retry mends; None when unknown."""
        status = err.status if err is not None else None
        if status == 404:  # 1.x: database not found; 2.x: bucket or organization not found
            if self.bucket is not None and (advice := not_influx2(self.url, err)):
                return advice
            if self.bucket is not None:
                return f"create the bucket {self.bucket!r} in organization {self.org!r}, or fix {self.option} or --org"
            return create_database(self.db, self.option)
        if status == 401:
            if self.credentials:
                return f"InfluxDB did not accept the credentials ({self.credentials}): fix them"
            return "InfluxDB asks for credentials: give --username and --password-env (1.x) or --token-env"
        if status == 403:
            if self.credentials:
                return (f"the credentials ({self.credentials}) may not write to {self.target}: give them write"
                        " access to it, or other credentials")
            return f"InfluxDB does not let a client without credentials write to {self.target}: give credentials"
        if status == 413:
            return f"the batch was too large for InfluxDB: give a smaller --batch-size (this one: {self.batch_size})"
        return None

    # -- posting ---------------------------------------------------------------

    def _send(self, batch: list[bytes]) -> None:
        """Post one batch, the front of what is pending (split if refused for its data); a WriteError stops
        the writer.

        Once InfluxDB answered for all of it, the batch is counted and taken off what is pending in one
        step, SIGTERM and SIGINT held off across it (:func:`~riverguard.signals.deferred`). A stop
        (KeyboardInterrupt: ``replay`` stopped) before that leaves it unknown whether InfluxDB took it: it is
        not counted, and stays in front of what is pending, for :meth:`close` to send again (the same points
        again change nothing). So :attr:`lines` and :attr:`acknowledged` count what InfluxDB answered for,
        and every metric written before the stop is: no batch is lost between them.
        """
        self._batch_refused = 0
        try:
            try:
                self._post_retrying(batch)
            except WriteError as err:
                if err.status not in DATA_REFUSED:
                    raise
                self._split(batch, 0, len(batch), err)
        except WriteError:
            self._failed = True
            self.refused += self._batch_refused  # (reported: a failed writer's count says them too)
            raise
        with deferred():
            del self._pending[: len(batch)]
            self.lines += len(batch) - self._batch_refused
            self.refused += self._batch_refused
            self._refused_done = self.refused
            self.batches += 1
            if self._unsigned_pending:
                for number in range(self._done, self._done + len(batch)):
                    rewritten, cut = self._unsigned_pending.pop(number, (0, 0))
                    self.unsigned += rewritten
                    self.unsigned_cut += cut
            self._done += len(batch)

    def _split(self, batch: list[bytes], lo: int, hi: int, err: WriteError) -> None:
        """``batch[lo:hi]`` was refused for its data (``err``): post each half again, down to single metrics.

        InfluxDB 1.x writes the points of a batch it can and refuses the rest ("partial write"), 2.x may
        write none: posting the good lines again is harmless either way, the same points with the same
        values. Depth first, in order, so the metrics are reported in order.
        """
        if hi - lo == 1:
            self._refuse(batch, lo, err)
            return
        mid = (lo + hi) // 2
        for a, b in ((lo, mid), (mid, hi)):
            self.split_requests += 1
            try:
                self._post_retrying(batch[a:b])
            except WriteError as sub:
                if sub.status not in DATA_REFUSED:
                    raise
                self._split(batch, a, b, sub)

    def _refuse(self, batch: list[bytes], i: int, err: WriteError) -> None:
        """``batch[i]``, posted alone, was refused for its data: say so (rate-limited) and count it (in
        :attr:`refused` once the batch is done: :meth:`_send`)."""
        self._batch_refused += 1
        name = self.on_refused(batch[i]) if self.on_refused else f"metric {self.acknowledged + i + 1}"
        if self._refusals.allow(self.log):
            line = batch[i].decode("utf-8", "backslashreplace")
            snippet = line if len(line) <= 120 else line[:120] + "..."
            self.log.error(f"{name}: InfluxDB refused it (HTTP {err.status}): {err.reason}; not written: {snippet}")
        if self._batch_refused > MAX_REFUSED_PER_BATCH:
            raise self._systematic(batch, err)

    def _systematic(self, batch: list[bytes], err: WriteError) -> WriteError:
        """The error that stops a writer whose refusals are no longer a line here and there (more than
        :data:`MAX_REFUSED_PER_BATCH` in ``batch``; ``err``: the last one)."""
        self.report_held()
        first = self.acknowledged + 1
        return WriteError(
            f"InfluxDB refused more than {MAX_REFUSED_PER_BATCH} of the {len(batch)} metrics of the batch of metrics"
            f" {first}-{first + len(batch) - 1}"
            f" ({self.target} at {self.url}; the last answer: HTTP {err.status}: {err.reason}): such a refusal"
            " has a cause to fix first, such as a field stored with another type (rename it or write to another"
            " database), not a bad line here and there",
            status=err.status,
            reason=err.reason,
        )

    def _post_retrying(self, batch: list[bytes]) -> None:
        """Post ``batch``, retrying as the writer's options say; raises :class:`WriteError` when it gives up."""
        body = b"\n".join(batch) + b"\n"
        delay = self.backoff
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                self._post(body)
                self.post_seconds += time.monotonic() - started
                return
            except WriteError as err:
                self.post_seconds += time.monotonic() - started
                if not err.retryable:
                    err.fix = self._fix(err)
                    raise
                if attempt >= self.retries:
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
    message, influx2 = _message(payload, resp.reason)
    retryable = retryable_status(status)
    wait = _retry_after(resp.getheader("Retry-After")) if retryable else None
    said = f"InfluxDB refused {refused} (HTTP {status})" if refused and not retryable else f"HTTP {status}"
    raise error(f"{said}: {message}", retryable, wait, status=status, reason=message, influx2=influx2)


def _message(raw: bytes, reason: str) -> tuple[str, bool]:
    r"""InfluxDB's own error message, ``{"error": ...}`` (1.x) or ``{"message": ...}`` (2.x), and whether the
    answer was InfluxDB 2.x's JSON error (a ``code`` and a ``message``).

    >>> _message(b'{"code":"not found","message":"bucket \\"b\\" not found"}', "Not Found")
    ('bucket "b" not found', True)
    >>> _message(b'{"error":"database not found: \\"x\\""}', "Not Found"), _message(b"404 page not found\n", "")
    (('database not found: "x"', False), ('404 page not found', False))
    """
    text = raw.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    influx2 = False
    if isinstance(doc, dict):
        influx2 = isinstance(doc.get("code"), str) and isinstance(doc.get("message"), str)
        for key in ("error", "message"):
            if isinstance(doc.get(key), str):
                text = doc[key]
                break
    text = text or reason or "no message"
    return (text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."), influx2


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
