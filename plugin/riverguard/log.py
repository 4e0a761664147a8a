"""Logging to stderr with Telegraf's level prefixes (``E! W! I! D!``)."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import TextIO

__all__ = ["LEVELS", "Log", "Progress", "RateLimit", "Unreadable", "iso_ns", "os_reason", "plural", "printable", "read_text"]

LEVELS = {"error": 0, "warn": 1, "info": 2, "debug": 3}
_PREFIX = {0: "E! ", 1: "W! ", 2: "I! ", 3: "D! "}
#: Control characters (C0, DEL, C1) as text: a message quotes input bytes, which must neither break the
#: line nor reach a terminal or Telegraf's log as escape sequences.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def iso_ns(ns: int) -> str:
    """``ns`` (nanoseconds since the epoch) in RFC 3339 to the nanosecond, as messages and ``state`` show times.

    >>> iso_ns(1_700_000_000 * 10**9), iso_ns(1_700_000_000_000_000_001)
    ('2023-11-14T22:13:20Z', '2023-11-14T22:13:20.000000001Z')
    >>> iso_ns(10**30)  # beyond what a calendar date holds: the number
    '1000000000000000000000000000000 ns'
    """
    seconds, rest = divmod(ns, 10**9)
    try:
        stamp = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return f"{ns} ns"
    return f"{stamp}.{rest:09d}Z".replace(".000000000Z", "Z")


def plural(n: int, one: str, many: str | None = None) -> str:
    """``n`` and the noun that goes with it, as every count in a message says it: ``one`` for 1, else ``many``
    (by default ``one`` + "s").

    >>> plural(1, "metric"), plural(0, "metric"), plural(2, "anomaly", "anomalies"), plural(1, "anomaly", "anomalies")
    ('1 metric', '0 metrics', '2 anomalies', '1 anomaly')
    """
    return f"{n} {one}" if n == 1 else f"{n} {one + 's' if many is None else many}"


def os_reason(err: OSError) -> str:
    """Why a file named could not be opened, as every message says it: ``no such file``, else the system's words.

    >>> os_reason(FileNotFoundError(2, "No such file or directory")), os_reason(PermissionError(13, "Permission denied"))
    ('no such file', 'Permission denied')
    """
    return "no such file" if isinstance(err, FileNotFoundError) else (err.strerror or str(err))


class Unreadable(ValueError):
    """A file that :func:`read_text` cannot read; the message says which and why."""


def read_text(path: Path, kind: str) -> str:
    """The UTF-8 text of the file at ``path`` (a byte order mark dropped), a ``kind`` of file (``"a CSV file"``).

    Raises :class:`Unreadable` with the message every command gives: ``PATH: no such file``, ``PATH: is a
    folder, not KIND``, ``PATH: cannot read: REASON``, ``PATH:LINE: not UTF-8 text``.
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise Unreadable(f"{path}: is a folder, not {kind}") from None
    except OSError as err:
        reason = os_reason(err)
        raise Unreadable(f"{path}: {reason}" if reason == "no such file" else f"{path}: cannot read: {reason}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise Unreadable(f"{path}:{line}: not UTF-8 text") from None


def printable(text: str) -> str:
    """``text`` with its control characters escaped, as :class:`Log` writes every message."""
    return text.translate(_CONTROLS)


class Log:
    r"""Writes one line per message; Telegraf maps the prefix to its own log level.

    Control characters are written escaped (``\n``, ``\x1b``), so a message is one line of plain text:

    >>> import io
    >>> out = io.StringIO()
    >>> Log("error", out).error("bad\x1b[31m\tline\r\n\x7f\x9b")
    >>> out.getvalue()
    'E! [riverguard] bad\\x1b[31m\\tline\\r\\n\\x7f\\x9b\n'
    """

    def __init__(self, level: str = "info", stream: TextIO | None = None) -> None:
        self.level = LEVELS[level]
        self.stream = stream if stream is not None else sys.stderr

    def _write(self, level: int, message: str) -> None:
        if level <= self.level:
            text = printable(message)
            try:
                self.stream.write(_PREFIX[level] + "[riverguard] " + text + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stderr gone: nothing sensible left to do

    def error(self, message: str) -> None:
        self._write(0, message)

    def warn(self, message: str) -> None:
        self._write(1, message)

    def info(self, message: str) -> None:
        self._write(2, message)

    def debug(self, message: str) -> None:
        self._write(3, message)


class RateLimit:
    """Allow ``burst`` events per ``period`` seconds; count what was held back, and say it in one line, at
    most one such line per ``period`` (:meth:`report_held`) and a last one at the end (``final``).

    ``what`` names the events in that line, one and many (``("unparsable metric", "unparsable metrics")``: ``1 more
    unparsable metric was not reported``, ``3 more unparsable metrics were not reported``); a plain string is both.

    >>> clock = iter([0.0, 0.1, 0.2, 5.0]).__next__
    >>> rl = RateLimit(burst=2, period=1.0, clock=clock)
    >>> [rl.allow() for _ in range(3)], rl.suppressed
    ([True, True, False], 1)
    >>> rl.allow(), rl.take_suppressed(), rl.suppressed
    (True, 1, 0)
    >>> import sys
    >>> rl = RateLimit(burst=0, what="series whose detector failed")
    >>> rl.allow(), rl.allow(), rl.report_held(Log("info", sys.stdout))
    W! [riverguard] 2 more series whose detector failed were not reported (rate limit)
    (False, False, None)

    The line that counts them is limited too: within a period of the last one, the count waits (for the
    next period, or the end):

    >>> clock = iter([0.0, 0.5, 0.6, 0.9, 1.6, 1.7, 1.8]).__next__
    >>> rl, log = RateLimit(burst=0, clock=clock, what="message"), Log("info", sys.stdout)
    >>> rl.allow(), rl.report_held(log), rl.allow(), rl.report_held(log), rl.report_held(log)
    W! [riverguard] 1 more message was not reported (rate limit)
    W! [riverguard] 1 more message was not reported (rate limit)
    (False, None, False, None, None)
    >>> rl.allow(), rl.report_held(log, final=True)
    W! [riverguard] 1 more message was not reported (rate limit)
    (False, None)
    """

    def __init__(self, burst: int = 10, period: float = 1.0, clock=time.monotonic,
                 what: str | tuple[str, str] = ("message", "messages")) -> None:
        self.burst = burst
        self.period = period
        self.clock = clock
        self.what = (what, what) if isinstance(what, str) else what
        self._window_start = float("-inf")
        self._count = 0
        self._told_at = float("-inf")  # when the last line about the events held back was written
        self.suppressed = 0

    def allow(self, log: Log | None = None) -> bool:
        """Whether this event may be reported; with ``log``, an allowed one first says what was held back."""
        now = self.clock()
        if now - self._window_start >= self.period:
            self._window_start = now
            self._count = 0
        if self._count < self.burst:
            self._count += 1
            if log is not None:
                self.report_held(log)
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """Events suppressed since the last call (to report them once)."""
        n, self.suppressed = self.suppressed, 0
        return n

    def report_held(self, log: Log, final: bool = False) -> None:
        """One ``W!`` line for the events held back since the last one, if any, and if that one is a
        ``period`` old (``final``: however recent it was; at the end, so that no count is lost)."""
        if not self.suppressed:
            return
        now = self.clock()
        if not final and now - self._told_at < self.period:
            return
        self._told_at = now
        held = self.take_suppressed()
        one, many = self.what
        log.warn(f"{plural(held, 'more ' + one, 'more ' + many)} {'was' if held == 1 else 'were'} not reported (rate limit)")


class Progress:
    """A progress bar on stderr; callers create it only when stderr is a terminal."""

    def __init__(self, total: int, label: str) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.last = -1
        self.label = label

    def __call__(self, n: int) -> None:
        self.done += n
        percent = min(100, self.done * 100 // self.total)
        if percent != self.last:
            self.last = percent
            bar = "#" * (percent // 4)
            sys.stderr.write(f"\r{self.label} [{bar:<25}] {percent:3d}%")
            sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
