"""``riverguard pull``: score points already stored in InfluxDB and write them back.

The same engine, rules, state and added fields as ``riverguard run``; the
input is a query instead of stdin. Each measurement is read in time order
(InfluxDB 1.x: :mod:`.v1`, InfluxQL streamed with ``chunked=true``; 2.x:
:mod:`.v2`, Flux paged by time), the measurements' rows merged by time into
one stream (:meth:`Puller._read`), every point rebuilt as the line protocol it
was stored as (:mod:`.points`), fed to the engine in batches that hold all
of a measurement's points of a time or none, and written back with the backfill writer
(:class:`riverguard.influx.InfluxWriter`: batches, retries with backoff).

Exactly once: after every batch the measurement's *high-water mark* (the
time of the newest point scored) moves on. A commit (writer flushed, then
the models and the marks saved together in the state file) happens every
``checkpoint_interval`` and at the end of each pass, so a restart resumes
from the last commit with the models of that moment. The next pass reads
only what is newer than the mark; a point that turns up older than the mark,
or at its time in another series (written late), is counted and reported,
not scored, and a point that already carries a score field is never scored
or written again; the models learn from it when they have not seen it
(:meth:`Engine.unlearned`: each series it was scored in was last seen before
its time), in time order with the points scored, so they end as one pass
over the same points would leave them: after a pull without ``--state``, or
a restart from a checkpoint older than what a pull wrote in place. One written again with other values after it was scored is not
scored again either: with ``--to-db`` (its copy there holds the values
scored) it is reported as written late; in place nothing tells it from a
point scored as it is. Without a mark (no
``--state``, or a measurement not read before) a pass starts at ``--since``,
points at that very time included.

A point InfluxDB refuses to take back (a field type conflict in the
``--to-db`` target, say) is isolated by the writer as in a backfill: one
``E!`` line names it (:data:`REFUSED_TOLD` a minute at most, over the
whole run: a ``W!`` line counts the others), the other points are written,
and the mark moves past it as past any point scored, so it is not sent
again (it would be refused again) nor, by this process, reported as written
late. A one-off pull then exits 1; a ``--follow`` goes on. More than
:data:`~riverguard.influx.MAX_REFUSED_PER_BATCH` in one batch have a cause
to fix: the pass fails as on any refused write.

A commit whose checkpoint cannot be saved (a full disk, a folder made
read-only) moves the marks on in memory all the same (the points are
written): the passes go on, each commit tries the save again
(:meth:`~riverguard.state.StateStore.save` tells the failures, at a bounded
rate, and the first save that works again). A pull whose last save failed
leaves the checkpoint behind what it wrote: it says so and exits 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import itertools
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from ..config import Config, duration_text, parse_duration
from ..engine import Engine, series_prefix
from ..influx import InfluxWriter, OptionError, WriteError, from_args, retry_wait
from ..lineprotocol import Metric, ParseError, parse, raw_fields
from ..log import Log, Progress, RateLimit, iso_ns
from ..signals import STOP_SIGNALS, exit_code, interrupt, start_thread
from ..state import AccessDenied, LockError, open_store
from ..stream import ManualGC, feed
from .points import unescape_measurement
from .source import ReadError, Row

__all__ = ["MARKS_VERSION", "REFUSED_TOLD", "Puller", "add_arguments", "main", "parse_time"]

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2
#: Version of the ``pull`` entry of the state file's header: ``{"version": 1, "marks": {source: ns}}``.
MARKS_VERSION = 1
_REPORT = 5  # unrebuildable / late points described one by one per pass; the rest are counted
#: Points InfluxDB refused told one by one (``E!``) per minute, over the process's life (not each pass's).
REFUSED_TOLD = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``riverguard pull``'s options (``--config``, ``--state``, ``--log-level`` come from the CLI)."""
    from ..influx import add_arguments as connection

    connection(
        parser,
        "InfluxDB to read from (and write back to)",
        "1.x: --db (InfluxQL); 2.x: --bucket/--org/--token-env (Flux)",
        replay=False,
    )
    group = parser.add_argument_group("what to score")
    group.add_argument(
        "--measurement", "-m", action="append", metavar="NAME",
        help="measurement to score (repeatable; default: every measurement)",
    )
    group.add_argument(
        "--since", metavar="WHEN",
        help="start here, this time included, when the state has no mark yet: a duration back from now (30d, 12h)"
        " or an RFC 3339 time (2025-11-28T00:00:00Z); not a bare number (default: the first point)",
    )
    group.add_argument("--until", metavar="WHEN", help="stop here, this time included (one-off pull; same forms as --since)")
    group.add_argument(
        "--delay", default="10s", metavar="DURATION",
        help="leave points newer than now minus this for a later pass, so that metrics still on their way"
        " from slower agents are not late (default: 10s)",
    )
    group.add_argument(  # None: not given (1m; refused without --state, where it would be ignored)
        "--late-window", default=None, metavar="DURATION",
        help="look this far behind the mark for points written late, to count and report them (needs --state;"
        " default: 1m; 0s: off)",
    )
    group.add_argument("--follow", action="store_true", help="keep going: a pass every --every (needs --state)")
    group.add_argument(  # None: not given (10s with --follow; refused without it, where it would be ignored)
        "--every", default=None, metavar="DURATION", help="time between passes with --follow (default: 10s)"
    )
    group.add_argument(
        "--chunk-size", type=int, default=10000, metavar="N",
        help="points per chunk read (1.x chunk_size; 2.x pages hold about this many) (default: 10000)",
    )
    group.add_argument("--to-db", metavar="NAME", help="write the scored points to this 1.x database instead")
    group.add_argument("--to-bucket", metavar="NAME", help="write the scored points to this 2.x bucket instead")


_DAYS = re.compile(r"([0-9]+)([dw])")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")
_FORMS = "a duration back from now (30d, 12h, 90s) {} an RFC 3339 time (2025-11-28T00:00:00Z)"


def parse_time(text: str, now_ns: int) -> int:
    """Nanoseconds since the epoch: ``30d``/``2w``/``12h``/``90s`` back from ``now_ns``, or an RFC 3339 time.

    A bare number is refused (ValueError), as a duration without its unit is
    elsewhere: ``--since 30`` was read as 30 ns after 1970 and pulled the
    whole history.

    >>> parse_time("1d", 10**18) == 10**18 - 86400 * 10**9, parse_time("1970-01-01T00:00:01.5Z", 0)
    (True, 1500000000)
    >>> parse_time("30", 0)
    Traceback (most recent call last):
    ValueError: "30" has no unit: give a duration back from now (30d, 12h, 90s) or an RFC 3339 time (2025-11-28T00:00:00Z)
    """
    text = text.strip()
    if _NUMBER.fullmatch(text):
        raise ValueError(f'"{text}" has no unit: give {_FORMS.format("or")}')
    match = _DAYS.fullmatch(text)
    if match:
        return now_ns - int(match.group(1)) * (86400 if match.group(2) == "d" else 604800) * 10**9
    try:
        if text[:1].isdigit() and ("-" in text[:5]):
            return rfc3339_ns(text)
        return now_ns - int(round(parse_duration(text) * 1e9))
    except ValueError:
        raise ValueError(f'"{text}" is neither {_FORMS.format("nor")}') from None


def rfc3339_ns(text: str) -> int:
    """An RFC 3339 time a user gives (any offset, or none for UTC), with nanoseconds kept, as ns since the epoch.

    ValueError for anything else. The cells of a Flux answer are read by
    :func:`riverguard.pull.v2.csv_time_ns`, which takes only InfluxDB's form.

    >>> rfc3339_ns("2023-11-14T22:13:20.123456789Z"), rfc3339_ns("2023-11-14T23:13:20+01:00")
    (1700000000123456789, 1700000000000000000)
    """
    main, frac = text, ""
    match = re.fullmatch(r"([^.]+)\.([0-9]+)(.*)", text)
    if match:
        main, frac = match.group(1) + match.group(3), match.group(2)
    try:
        stamp = dt.datetime.fromisoformat(main.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 time") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    delta = stamp - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    seconds = delta.days * 86400 + delta.seconds
    return seconds * 10**9 + int((frac + "000000000")[:9])


def _iso(ns: int | None) -> str:
    return "the beginning" if ns is None else iso_ns(ns)


class Puller:
    """Runs passes of ``source`` through ``engine``, writing with writers from ``new_writer`` (given what
    to call for each point InfluxDB refuses and the rate limit of their ``E!`` lines:
    :class:`~riverguard.influx.InfluxWriter`'s ``on_refused`` and ``refusals``)."""

    def __init__(
        self,
        engine: Engine,
        source: Any,
        new_writer: Callable[[Callable[[bytes], str], RateLimit], InfluxWriter],
        *,
        store: Any = None,
        measurements: list[str] | None = None,
        since: int | None = None,
        until: int | None = None,
        delay_ns: int = 0,
        late_ns: int = 0,
        checkpoint_interval: float = 60.0,
        dest: Any = None,
        progress: bool = False,
        stop: threading.Event | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.engine = engine
        self.log: Log = engine.log
        self.source = source
        self.new_writer = new_writer
        self.writer: _Pipelined | None = None
        self.store = store
        self.measurements = measurements
        self.since = since
        self.until = until
        self.delay_ns = delay_ns
        self.late_ns = late_ns
        self.checkpoint_interval = checkpoint_interval
        self.dest = dest  # the source reading the --to-db / --to-bucket target (late-point check)
        self.progress = progress
        self.stop = stop or threading.Event()
        self.clock = clock
        #: High-water mark per source key: the time of the newest point scored and committed.
        self.marks: dict[str, int] = {}
        self.saved: dict[str, int] = {}  # the marks in the checkpoint (behind self.marks while saves fail)
        #: The rate limit of the refused points' E! lines: one for every pass (a --follow's too).
        self.refusals = RateLimit(burst=REFUSED_TOLD, period=60.0, what=("point InfluxDB refused", "points InfluxDB refused"))
        self._pending: dict[str, int] = {}  # marks fed but not yet committed
        self._written_before = 0  # the writer's count at the last commit
        self._refused_before = 0  # the writer's count of refused points at the last commit
        # Points already reported (this process), by identity (:func:`_identity`) per source key: written late,
        # or refused by InfluxDB (those the writer's thread refused since the last commit wait in _refused_new,
        # with their measurement as written). Only points a late-point check can still see are kept (_forget).
        self._late_seen: dict[str, set[tuple[bytes, int]]] = {}
        self._refused_new: list[tuple[bytes, tuple[bytes, int]]] = []
        self._missing_reported: set[str] = set()  # --measurement names said to be missing (this process)
        # Totals over the process's life.
        self.read = 0
        self.already = 0
        self.learned = 0  # of those already scored: learned by the models, which had not seen them
        self.late = 0
        self.skipped = 0
        self.written = 0
        self.refused = 0
        self._next_commit = 0.0

    # -- marks and commits -----------------------------------------------------

    def load_marks(self) -> None:
        """The marks saved with the models (after the store restored them)."""
        self.marks, self.saved = {}, {}
        if self.store is None:
            return
        entry = self.store.header.get("pull")
        if entry is None:
            return
        if (
            not isinstance(entry, dict)
            or entry.get("version") != MARKS_VERSION
            or not isinstance(entry.get("marks"), dict)
            or not all(isinstance(k, str) and type(v) is int for k, v in entry["marks"].items())
        ):
            self.log.warn(f"state file {self.store.path}: its pull marks are unreadable; starting from --since")
            return
        self.marks = dict(entry["marks"])
        self.saved = dict(self.marks)
        for key, mark in sorted(self.marks.items()):
            self.log.info(f"resuming {key} after {_iso(mark)} (the newest point already scored)")

    def commit(self, final: bool = False) -> None:
        """Flush the writes, then save the models and the marks together (raises WriteError).

        A failed save is told by the store (always when ``final``: the last of the process) and tried again at
        the next commit; the marks move on all the same (what they cover is written)."""
        if self.writer is not None:
            self.writer.flush()
            self.written += self.writer.lines - self._written_before
            self._written_before = self.writer.lines
            self.refused += self.writer.refused - self._refused_before
            self._refused_before = self.writer.refused
        # (the writer is idle after its flush: what it refused is all there)
        for measurement, point in self._refused_new:
            self._late_seen.setdefault(self.source.key(unescape_measurement(measurement)), set()).add(point)
        self._refused_new.clear()
        self.marks.update(self._pending)
        self._pending.clear()
        self._forget()
        if self.store is not None:
            self.store.extra["pull"] = {"version": MARKS_VERSION, "marks": dict(self.marks)}
            if self.store.save(tell=final):
                self.saved = dict(self.marks)
        self._next_commit = time.monotonic() + self.checkpoint_interval

    def _forget(self) -> None:
        """Drop from :attr:`_late_seen` what fell out of its measurement's late window: no check sees it again
        (a mark only moves on)."""
        for key, seen in list(self._late_seen.items()):
            mark = self.marks.get(key)
            if mark is not None:
                seen = self._late_seen[key] = {point for point in seen if point[1] > mark - self.late_ns}
            if not seen:
                del self._late_seen[key]

    def recover(self) -> None:
        """After a failed write: back to the last commit (models and marks from the state file)."""
        self._pending.clear()
        self._close_writer()
        self._refused_new.clear()  # (newer than the marks: read, scored and refused again)
        if self.store is not None:
            self.store.restore()
            self.load_marks()

    def _close_writer(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    # -- passes ----------------------------------------------------------------

    def run_pass(self, final: bool = False) -> None:
        """Score everything newer than the marks in every measurement, then commit (``final``: see :meth:`commit`)."""
        now = self.clock()
        hi = now - self.delay_ns
        if self.until is not None:
            hi = min(hi, self.until)
        self._close_writer()
        self.writer = _Pipelined(self.new_writer(self._refused, self.refusals))
        self._written_before = self._refused_before = 0
        self._next_commit = time.monotonic() + self.checkpoint_interval
        self.source.check()
        if self.dest is not None:  # --to-db / --to-bucket: a policy it lacks is refused as a 500, which is retried
            self.dest.check()
        if self.measurements:
            names = self.measurements
            self._warn_missing()
        else:
            names = self.source.measurements()
        readings: list[_Reading] = []
        for name in names:
            if self.stop.is_set():
                break
            reading = self._begin(name, hi)
            if reading is not None:
                readings.append(reading)
        bar = None
        if self.progress and readings:  # a bar over the time span to read
            ends = [e for e in (self.source.time_range(r.name, r.lo, hi) for r in readings) if e is not None]
            if not ends:
                readings = []
            else:
                label = f"pull {readings[0].name}" if len(readings) == 1 else f"pull {len(readings)} measurements"
                bar = _TimeBar(min(e[0] for e in ends), max(e[1] for e in ends), label)
        try:
            if readings:
                self._read(readings, hi, bar)
        finally:
            if bar is not None:
                bar.close()
        for reading in readings:
            self._told(reading)
        self.commit(final)
        self._close_writer()
        self.engine.flush_log()

    def _warn_missing(self) -> None:
        """Say once which --measurement the source holds nothing of: a typo, or one not written yet."""
        for name in self.source.missing(self.measurements or []):
            if name not in self._missing_reported:
                self._missing_reported.add(name)
                self.log.warn(
                    f"measurement {name!r} not found in {self.source.label}: nothing to pull from it"
                    " (check --measurement; it is read once it has points)"
                )

    def _begin(self, name: str, hi: int) -> _Reading | None:
        """Measurement ``name``'s part of a pass: from its mark (its late points counted first), else from
        --since; None when there is nothing to read up to ``hi``."""
        mark = self.marks.get(self.source.key(name))
        # Sources read (lo, hi]. A mark is the newest point already scored: what is newer. --since is where to
        # start, so its own points are read too (Telegraf's times are round: a round --since is a point's time).
        if mark is not None:
            lo: int | None = mark
            start = f"after {_iso(mark)}"
        else:
            lo = None if self.since is None else self.since - 1
            start = f"from {_iso(self.since)}"
        if mark is not None and self.late_ns > 0:
            self._late_check(name, mark)
        if lo is not None and lo >= hi:
            return None
        return _Reading(name, self.source.key(name), lo, start)

    def _read(self, readings: list[_Reading], hi: int, bar: _TimeBar | None) -> None:
        """Score the points of ``readings`` in (where each is, ``hi``] as one stream in time order.

        Each measurement is read in time order by one query; their rows are merged by time (at one time, in
        the order of ``readings``), so every point comes to the engine as in one stream of them all, as
        Telegraf sent them: one measurement after the other, a series of the second, seen before this pass,
        would find the clock moved on by the first, and start fresh. No measurement's points of one time are
        split between batches, so a pull resumed from its marks goes on in the same order."""
        engine, writer, log = self.engine, self.writer, self.log
        assert writer is not None
        try:
            with ManualGC(engine) as collector:
                for batch in _merged([self._rows(i, reading, hi) for i, reading in enumerate(readings)]):
                    if self.stop.is_set():  # (before a batch: a stop before the first, from the start, scores none)
                        break
                    # (a line to score and write, True; or a point scored already to learn, False), in time order
                    lines: list[tuple[bytes | Metric, bool]] = []
                    for t, i, row, _ in batch:
                        reading = readings[i]
                        reading.count += 1
                        self._pending[reading.key] = t
                        if row.line is None:
                            reading.skipped += 1
                            if reading.reported < _REPORT:
                                reading.reported += 1
                                log.error(f"{reading.name} point at {_iso(t)} cannot be rebuilt: {row.error}; skipped")
                        elif row.scored:
                            reading.already += 1
                            point = engine.unlearned(row.line.rstrip(b"\n"))
                            if point is not None:  # learned as a single run would have, not written again
                                reading.learned += 1
                                lines.append((point, False))
                        else:
                            lines.append((row.line, True))
                    if lines:
                        for write, run in itertools.groupby(lines, key=itemgetter(1)):
                            if write:
                                text = b"".join(line for line, _ in run)  # type: ignore[misc]
                                out, _, _ = feed(engine, text, final=True)
                                writer.write(b"".join(out))
                            else:
                                for point, _ in run:
                                    engine.learn(point)  # type: ignore[arg-type]
                        collector.step()
                    if bar is not None:
                        bar.to(batch[-1][0])
                    if time.monotonic() >= self._next_commit:
                        self.commit()
        finally:  # (each reading is a pass's: what it counts, it counted in this pass)
            for reading in readings:
                self.read += reading.count
                self.already += reading.already
                self.learned += reading.learned
                self.skipped += reading.skipped

    def _rows(self, i: int, reading: _Reading, hi: int) -> Iterator[tuple[int, int, Row, bool]]:
        """``(time, i, row, whether it ends a batch)`` for each of ``reading``'s rows up to ``hi``, in time order
        (for :func:`_merged`)."""
        for batch in self.source.rows(reading.name, reading.lo, hi):
            end = len(batch) - 1
            for k, row in enumerate(batch):
                yield row.time, i, row, k == end

    def _told(self, reading: _Reading) -> None:
        """What a pass read of a measurement, at its end."""
        name, log = reading.name, self.log
        if reading.skipped > reading.reported:
            log.error(f"{name}: {reading.skipped} point(s) in all could not be rebuilt as line protocol and were skipped")
        if reading.count:
            learnt = (f" ({reading.learned} of them not seen by the models: learned, not written again)"
                      if reading.learned else "")
            log.debug(f"{name}: read {reading.count} point(s) {reading.start}; {reading.already} already scored{learnt}")

    def _late_check(self, name: str, mark: int) -> None:
        """Count points in the late window behind the mark (the mark's own time included) that were never
        scored (written late), and, with ``--to-db``, those written again with other values after they were
        scored (overwritten: their copy there holds the values scored). In place an overwritten point keeps
        its score field, and nothing tells it from one scored as it is."""
        lo = mark - self.late_ns
        scored_elsewhere: dict[tuple[bytes, int], bytes] | None = None
        if self.dest is not None:  # --to-db: the scores are in the other database, with the values scored
            scored_elsewhere = {  # (each point's line there: its values are read only for a point met here)
                _identity(row.line): row.line for batch in self.dest.rows(name, lo, mark) for row in batch
                if row.line is not None and row.scored
            }
        late: list[bytes] = []
        overwritten: list[bytes] = []
        seen = self._late_seen.setdefault(self.source.key(name), set())  # (commit forgets what falls out of the window)
        for batch in self.source.rows(name, lo, mark):
            for row in batch:
                if row.line is None or row.scored:
                    continue
                point = _identity(row.line)
                if point in seen:
                    continue
                if scored_elsewhere is not None and point in scored_elsewhere:
                    if _values(row.line).items() <= _values(scored_elsewhere[point]).items():
                        continue  # scored as it is
                    overwritten.append(row.line)
                    seen.add(point)
                elif self._scorable(row.line):
                    late.append(row.line)
                    seen.add(point)
        if late:
            self.late += len(late)
            self.log.warn(
                f"{name}: {len(late)} point(s) written late (older than {_iso(mark)}, the newest point already"
                f" scored) are not scored: {_examples(late)}"
            )
        if overwritten:
            assert self.dest is not None
            self.late += len(overwritten)
            self.log.warn(
                f"{name}: {len(overwritten)} point(s) overwritten after they were scored (their scores in"
                f" {self.dest.label} are of the values before) are not scored again: {_examples(overwritten)}"
            )

    def _refused(self, line: bytes) -> str:
        """Note a point InfluxDB refused (called from the writer's thread), and name it for its ``E!`` line."""
        metric = parse(line)  # (riverguard wrote it from a point it parsed; parse is safe in any thread)
        if self.late_ns > 0:  # (without a late window, nothing looks behind the marks: nothing to note)
            self._refused_new.append((metric.measurement, _point(metric)))
        return f"{metric.measurement.decode('utf-8', 'backslashreplace')} point at {_iso(metric.timestamp)}"

    def _scorable(self, line: bytes) -> bool:
        """Whether a rule would score one of the point's numeric fields."""
        try:
            metric = parse(line.rstrip(b"\n"))
        except ParseError:
            return False
        candidates = self.engine.candidates(metric)
        suffixes = (self.engine.score_suffix, self.engine.flag_suffix)
        for key, _kind, number in metric.fields:
            if number is None or key.endswith(suffixes):
                continue
            rule = self.engine.route_field(candidates, key)
            if rule is not None and rule.detector_class is not None:
                return True
        return False

    def summary(self) -> str:
        return (
            f"pulled {self.read} point(s) from {self.source.label}: wrote {self.written},"
            f" {self.already} already scored{f' ({self.learned} learned by the models)' if self.learned else ''},"
            f" {self._late_count()},"
            f" {self.skipped} skipped (cannot be rebuilt), {self.refused} refused by InfluxDB (not written)"
        )

    def _late_count(self) -> str:
        """The points written late, for the summary: only those within the late window behind the marks are
        seen (an older one is not, nor any without a mark to look behind), and the count says so."""
        if self.store is None:
            return "points written late not looked for (no --state)"
        if self.late_ns <= 0:
            return "points written late not looked for (--late-window 0s)"
        return f"{self.late} written late within --late-window {duration_text(self.late_ns / 1e9)} (not scored)"

    def report_held(self) -> None:
        """At the end: one ``W!`` line for the refused points the rate limit kept from their ``E!`` line, if
        any, and what the engine has left to say (:meth:`Engine.flush_log`)."""
        self.refusals.report_held(self.log, final=True)
        self.engine.flush_log(final=True)

    def where(self) -> str:
        """How far the pull got (with a state file: as its checkpoint says), for a message on failure."""
        marks = self.marks if self.store is None else self.saved
        if not marks:
            return "nothing was committed"
        return "committed up to " + ", ".join(f"{k} {_iso(v)}" for k, v in sorted(marks.items()))

    def unsaved(self) -> bool:
        """Whether the last save failed (the checkpoint is behind what was written); if so, say it (``E!``)."""
        if self.store is None or self.store.error is None:
            return False
        again = ", and reads again what this one wrote after it" if self.written else " (this one wrote nothing)"
        self.log.error(
            f"the checkpoint {self.store.path} could not be saved (above): {self.where()}; a pull started again"
            f" resumes from there{again}"
        )
        return True


class _Pipelined:
    """A writer that posts from a thread, so InfluxDB ingests a batch while the next one is read and scored.

    ``flush`` waits until everything written so far is in InfluxDB; a failure
    is raised in the caller's thread at its next ``write`` or ``flush``.
    """

    def __init__(self, writer: InfluxWriter, depth: int = 4) -> None:
        self.writer = writer
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = start_thread(self._run, "riverguard-writer")

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                if self._error is None:
                    if isinstance(item, threading.Event):
                        self.writer.flush()
                    else:
                        self.writer.write(item)
            except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
                self._error = err
            finally:
                if isinstance(item, threading.Event):
                    item.set()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    @property
    def lines(self) -> int:
        return self.writer.lines

    @property
    def refused(self) -> int:
        return self.writer.refused

    def write(self, data: bytes) -> None:
        self._raise()
        self._queue.put(data)

    def flush(self) -> None:
        done = threading.Event()
        self._queue.put(done)
        done.wait()
        self._raise()

    def close(self) -> None:
        """Stop the thread (after what is queued); does not flush."""
        self._queue.put(None)
        self._thread.join()


class _Reading:
    """One measurement's part of a pass: where it is read from (``lo``: what is newer), and what was read of it."""

    __slots__ = ("already", "count", "key", "learned", "lo", "name", "reported", "skipped", "start")

    def __init__(self, name: str, key: str, lo: int | None, start: str) -> None:
        self.name, self.key, self.lo, self.start = name, key, lo, start
        self.count = self.already = self.learned = self.skipped = self.reported = 0


class _TimeBar:
    """A progress bar over the time from ``first`` to ``last`` (ns), moved on to a time read (never back)."""

    def __init__(self, first: int, last: int, label: str) -> None:
        self.done = first - 1
        self.bar = Progress(max(last - self.done, 1), label)

    def to(self, t: int) -> None:
        if t > self.done:
            self.bar(t - self.done)
            self.done = t

    def close(self) -> None:
        self.bar.close()


def _merged(streams: list[Iterator[tuple[int, int, Row, bool]]]) -> Iterator[list[tuple[int, int, Row, bool]]]:
    """The rows of ``streams`` (each in time order, from :meth:`Puller._rows`) merged by time, at one time in
    the order of the streams, cut where a stream's batch ends (before it is asked for more: a batch read is
    scored even if the next cannot be read). No measurement's points of one time are cut apart: those of the
    streams before it came first, those after it come next."""
    batch: list[tuple[int, int, Row, bool]] = []
    for item in heapq.merge(*streams):
        batch.append(item)
        if item[3]:
            yield batch
            batch = []


def _examples(lines: list[bytes]) -> str:
    """The first :data:`_REPORT` of ``lines``, for a ``W!`` line."""
    return "; ".join(line.rstrip(b"\n").decode("utf-8", "backslashreplace")[:160] for line in lines[:_REPORT])


def _values(line: bytes) -> dict[bytes, bytes]:
    """A point's fields: each one's value as written, by key."""
    return raw_fields(line.rstrip(b"\n"))[1]


def _identity(line: bytes) -> tuple[bytes, int]:
    """A point's series (measurement and tags, as written) and time: what makes it one point in InfluxDB."""
    return _point(parse(line.rstrip(b"\n")))


def _point(metric: Metric) -> tuple[bytes, int]:
    """:func:`_identity` of a metric parsed."""
    return series_prefix(metric), metric.timestamp or 0


# -- the command ---------------------------------------------------------------


def _sources(args: argparse.Namespace, headers: dict[str, str], config: Config):  # type: ignore[no-untyped-def]
    """The source to read, and the one reading the --to-db/--to-bucket target (or None)."""
    options = dict(
        headers=headers,
        chunk_size=args.chunk_size,
        score_suffix=config.output.score_suffix,
        score_field=config.output.metric_score_field,
    )
    if args.db:
        from .v1 import InfluxQLSource

        def v1(db: str, option: str) -> InfluxQLSource:
            return InfluxQLSource(args.influx_url, db, args.rp, option, **options)

        return v1(args.db, "--db"), (v1(args.to_db, "--to-db") if args.to_db else None)
    from .v2 import FluxSource

    def v2(bucket: str) -> FluxSource:
        return FluxSource(args.influx_url, bucket, args.org, **options)

    return v2(args.bucket), (v2(args.to_bucket) if args.to_bucket else None)


#: The least --every (s): a pass as often as that, at most (tests follow at 0.1s).
MIN_EVERY = 0.1

#: The durations' values when not given (``None``: refused where they would be ignored).
_DEFAULTS = {"delay": "10s", "late_window": "1m", "every": "10s"}


def _options(args: argparse.Namespace, config: Config, now: int) -> dict[str, Any]:
    if not args.influx_url:
        raise OptionError("pull needs --influx-url")
    if args.to_db and not args.db:
        raise OptionError("--to-db goes with --db (InfluxDB 1.x); use --to-bucket with --bucket")
    if args.to_bucket and not args.bucket:
        raise OptionError("--to-bucket goes with --bucket (InfluxDB 2.x); use --to-db with --db")
    if args.chunk_size < 1:
        raise OptionError("--chunk-size must be at least 1")
    if args.follow and config.state.path is None:
        raise OptionError("--follow needs --state PATH: the state file keeps the high-water marks with the models")
    if args.follow and args.until:
        raise OptionError("--until and --follow exclude each other")
    if args.every is not None and not args.follow:  # as --report-top without --report: not taken and ignored
        raise OptionError("--every goes with --follow (the time between its passes); a pull without it makes one pass")
    out: dict[str, Any] = {}
    for name in ("delay", "late_window", "every"):
        try:
            out[name] = parse_duration(_DEFAULTS[name] if getattr(args, name) is None else getattr(args, name))
        except ValueError as err:
            raise OptionError(f"--{name.replace('_', '-')}: {err}") from None
    if args.follow and out["every"] < MIN_EVERY:  # (1ns was taken: a pass after another, the server hammered)
        raise OptionError(f'--every must be at least {duration_text(MIN_EVERY)}, got "{args.every}"')
    if args.late_window is not None and out["late_window"] > 0 and config.state.path is None:  # no marks: ignored
        raise OptionError(
            "--late-window goes with --state: it looks behind the high-water marks the state file keeps,"
            " and a pull without one has none"
        )
    for name in ("since", "until"):
        value = getattr(args, name)
        try:
            out[name] = parse_time(value, now) if value else None
        except ValueError as err:
            raise OptionError(f"--{name}: {err}") from None
    if out["since"] is not None and out["until"] is not None and out["since"] > out["until"]:
        raise OptionError(f"--since ({args.since}) is later than --until ({args.until}): nothing to pull")
    return out


def main(args: argparse.Namespace, config: Config, log: Log) -> int:
    now = time.time_ns()
    writer_args = argparse.Namespace(**vars(args))
    target = None  # (the option naming what is written, for a message: --db, --bucket unless another)
    if args.to_db:
        writer_args.db, target = args.to_db, "--to-db"
    if args.to_bucket:
        writer_args.bucket, target = args.to_bucket, "--to-bucket"
    try:
        options = _options(args, config, now)
        template = from_args(writer_args, log, option=target)
    except OptionError as err:
        log.error(str(err))
        return EXIT_CONFIG
    assert template is not None
    delay_ns = int(options["delay"] * 1e9)
    if options["since"] is not None and options["since"] > now - delay_ns:  # (what a pass reads up to: run_pass)
        clock = f"(by this machine's clock, now {iso_ns(now)})"
        if options["since"] > now:
            log.warn(f"--since {args.since} is in the future {clock}: nothing is pulled from a measurement"
                     " without a mark until then")
        else:
            delay = duration_text(options["delay"])
            log.warn(f"--since {args.since} is later than now minus --delay {delay} {clock}: nothing newer than"
                     f" {delay} ago is read, so nothing is pulled from a measurement without a mark until {delay}"
                     " after --since")
    headers = {k: v for k, v in template.headers.items() if k == "Authorization"}
    engine = Engine(config, log, summary=not args.follow)  # (--follow writes no summary)
    source, dest = _sources(args, headers, config)
    try:
        store = open_store(engine)  # locked: one process per state file
    except LockError as err:
        log.error(str(err))
        return EXIT_CONFIG

    def new_writer(on_refused: Callable[[bytes], str], refusals: RateLimit) -> InfluxWriter:
        writer = from_args(writer_args, log, on_refused=on_refused, refusals=refusals, option=target)
        assert writer is not None
        return writer

    puller = Puller(
        engine,
        source,
        new_writer,
        store=store,
        measurements=args.measurement,
        since=options["since"],
        until=options["until"],
        delay_ns=delay_ns,
        late_ns=int(options["late_window"] * 1e9),
        checkpoint_interval=config.state.checkpoint_interval,
        dest=dest,
        progress=sys.stderr.isatty() and not args.follow,
    )
    puller.load_marks()
    try:
        if args.follow:
            return _follow(puller, options["every"])
        return _once(puller)
    except AccessDenied as err:  # as at start: the checkpoint became another user's, left as it is
        log.error(str(err))
        return EXIT_CONFIG


def _once(puller: Puller) -> int:
    """One pass (a one-off pull): the exit code.

    SIGTERM or SIGINT stops it as it stops a ``--follow``: the batch in flight is scored and written, then
    the pass commits (InfluxDB acknowledges every write, then the models and the marks are saved together),
    as at a ``checkpoint_interval``, so the same command resumes from there with the scores of an
    uninterrupted pull. One ``W!`` line says where it stopped; the exit code is 128 + the signal (130, 143),
    as a stopped ``replay``'s. A second one ends it at once (a read or write waiting on a server), from the
    last commit on disk: a restart from there is exact too (what was written after it is found scored).
    """
    log, stop = puller.log, puller.stop
    received: list[int] = []

    def stopping(signum: int, frame: object) -> None:
        if received:
            interrupt(signum, frame)
        received.append(signum)
        stop.set()

    old = {sig: signal.signal(sig, stopping) for sig in STOP_SIGNALS}
    try:
        try:
            puller.run_pass(final=True)
        except (ReadError, WriteError) as err:
            _salvage(puller, err, final=True)
            puller.report_held()
            fix = "" if err.retryable else "fix this, then "
            log.error(f"pull stopped: {_why(err)}; {puller.where()}; {fix}run it again to resume from there")
            log.info(puller.summary())
            return EXIT_FAIL
        except KeyboardInterrupt as err:  # the second stop
            log.warn(f"stopped at once by a second {signal.Signals(getattr(err, 'signum', signal.SIGINT)).name}:"
                     f" {_resume(puller)}")
            raise
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    puller.report_held()
    unsaved = puller.unsaved()
    if received:
        log.warn(f"stopped by {signal.Signals(received[0]).name}: {_resume(puller)}")
    if puller.refused:  # reported one by one (E!), the other points written: the pull failed all the same
        log.error(puller.summary() + ": the E! lines above say which and why")
    else:
        log.info(puller.summary())
    puller.engine.log_summary()
    if unsaved:
        return EXIT_FAIL
    if received:
        return exit_code(received[0])
    return EXIT_FAIL if puller.refused else EXIT_OK


def _resume(puller: Puller) -> str:
    """How a one-off pull stopped by a signal goes on: where it got (:meth:`Puller.where`), and what the same
    command does then."""
    where = puller.where()
    if puller.store is None:
        return (f"{where} (no --state: no checkpoint); run the same command again to go on: the points written back"
                " are found already scored, learned by the models and not written again")
    return f"{where}, in the checkpoint {puller.store.path}; run the same command again to resume from there"


def _why(err: ReadError | WriteError) -> str:
    """Why a pass failed, for the ``E!`` line that stops the pull: what to change too, when the writer that
    gave up can tell (a database the server does not have: ``--db`` or ``--to-db``, as the pass's first
    check says of one missing then)."""
    return f"{err}: {err.fix}" if err.fix else str(err)


def _salvage(puller: Puller, err: ReadError | WriteError, final: bool = False) -> None:
    """After a failed read, commit what was scored (the writes still work); after a failed write, recover.

    Raises :class:`~riverguard.state.AccessDenied` if the checkpoint to recover from became another user's,
    having said what failed."""
    if isinstance(err, ReadError):
        try:
            puller.commit(final)
            return
        except WriteError as again:
            puller.log.warn(f"could not write what was scored before the failure: {again}")
    try:
        puller.recover()
    except AccessDenied:
        puller.log.error(f"pull stopped: {_why(err)}; {puller.where()}")
        raise


def _follow(puller: Puller, every: float) -> int:
    """Passes every ``every`` seconds until SIGTERM/SIGINT.

    A pass that failed for a passing reason (server down, 5xx, 429, timeout,
    the writer's retries spent) is tried again with backoff; one that cannot
    succeed by retrying (401, 404, a write refused with another 4xx or for more
    than MAX_REFUSED_PER_BATCH of a batch's points) stops with exit 1. A point InfluxDB refused, isolated and reported by the writer, fails no
    pass: the stop by signal is exit 0 all the same, its summary counts them.
    """
    log, stop = puller.log, puller.stop
    old = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    backoff = 1.0
    code = EXIT_OK
    log.info(f"following {puller.source.label}: a pass every {every:g}s until SIGTERM")
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                puller.run_pass()
                backoff = 1.0
            except (ReadError, WriteError) as err:
                _salvage(puller, err)
                if not err.retryable:
                    log.error(f"pull stopped: {_why(err)}; {puller.where()}; retrying cannot help: fix this and start"
                              " again")
                    code = EXIT_FAIL
                    break
                wait = retry_wait(backoff, err.retry_after)
                log.warn(f"pass failed: {err}; {puller.where()}; retrying in {wait:g}s")
                backoff *= 2
                stop.wait(wait)
                continue
            stop.wait(max(0.0, every - (time.monotonic() - started)))
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if puller.store is not None and puller.store.error is not None:  # the last save failed: one more try
        puller.commit(final=True)
    puller.report_held()
    if puller.unsaved():
        code = EXIT_FAIL
    log.info("stopping: " + puller.summary())
    return code
