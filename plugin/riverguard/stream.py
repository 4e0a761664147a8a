"""The stream loops: execd mode (stdin to stdout, as Telegraf drives it) and replay.

Both keep the input bytes not yet processed and hand them to :func:`feed`,
which cuts them into metrics (a partial line waits for its end, a string
value may span lines) and runs each through the engine.

Execd mode reads whatever input is available, processes every complete
metric, and flushes the output as soon as no more input is waiting, so a
single metric comes back within milliseconds while a burst is written in
large batches. EOF, SIGTERM and SIGINT all end the loop the same way: the
metrics read so far are written, the exit hook runs (the state checkpoint),
and the process exits 0. Only a last line without a newline differs: at EOF
it is a whole metric, at a signal while stdin is still open the rest of it
was not written yet, and it is dropped (:func:`_at_stop`).
"""

from __future__ import annotations

import errno
import gc
import gzip
import os
import select
import signal
import stat
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO, Protocol

from .engine import Engine
from .lineprotocol import Splitter, whole_end
from .log import Log, plural
from .output import OutputError, stopped, write_all
from .signals import Signals, WakePipe

if TYPE_CHECKING:
    from .monitor import Monitor

__all__ = [
    "QUOTE_GRACE", "QUOTE_HOLD", "Held", "InputError", "ManualGC", "feed", "passthrough", "process_chunks", "replay",
    "serve", "write_line",
]

#: How long a metric whose quote is still open at the end of the input waits for more of it, from
#: the moment its last bytes arrived, before its first line is treated as malformed.
QUOTE_GRACE = 0.25
#: How long it waits at most, while its bytes keep arriving without closing the quote (an unterminated
#: quote followed by a steady stream must not hold the output back for longer).
QUOTE_HOLD = 2.0
_READ_SIZE = 1 << 20


class _OpenQuote:
    """The wait of a metric whose string value is open across lines, at the front of the input not yet
    processed, for its closing quote: one rule for :func:`serve` (when the metric is given up: its first line is
    a bad line) and :func:`passthrough` (when its lines are written and the health line may follow), and for
    the cut at a stop (:func:`_at_stop`).

    It is given up :data:`QUOTE_GRACE` after its last bytes came, :data:`QUOTE_HOLD` after the wait began at
    most; the time riverguard spent on its own work meanwhile does not count (:meth:`resume`).
    """

    __slots__ = ("since", "last")

    def __init__(self) -> None:
        #: Since when a metric waits (None: none waits), and when its last bytes came (``time.monotonic``).
        self.since: float | None = None
        self.last = 0.0

    def after(self, consumed: int, pending: bool) -> None:
        """Take the outcome of a cut of the input: ``consumed`` bytes of whole metrics, then (``pending``) a
        metric that waits, from now if it is not the one that waited before."""
        if consumed:
            self.since = None
        if pending and self.since is None:  # (from now: processing the metrics before it took time too)
            self.since = self.last = time.monotonic()

    def more(self, waiting: bytes, data: bytes) -> bool:
        """``data`` came after ``waiting`` (the input not yet processed): when a metric waits, its wait starts
        again. True when that metric is still open after it for sure (:meth:`Splitter.still_pending`): no need
        to cut the input again."""
        if self.since is None:
            return False
        self.last = time.monotonic()
        return Splitter.still_pending(waiting, data)

    def release(self) -> float | None:
        """When the waiting metric is given up (None: none waits)."""
        return None if self.since is None else min(self.last + QUOTE_GRACE, self.since + QUOTE_HOLD)

    def given_up(self) -> bool:
        release = self.release()
        return release is not None and time.monotonic() >= release

    def resume(self, paused: float) -> None:
        """Move the wait on by the time since ``paused`` that riverguard spent on its own work (writing its
        output, a checkpoint, a reload): meanwhile it read no input, and the rest of a metric larger than the
        pipe stayed with its writer, blocked on the full pipe. Only the time riverguard was ready for more of it
        counts against :data:`QUOTE_GRACE` and :data:`QUOTE_HOLD`."""
        if self.since is not None:
            spent = time.monotonic() - paused
            self.since += spent
            self.last += spent


#: Output held back while more input is waiting, at most (then written, in one writev). With 4 MiB and a
#: join of the chunks, the freed buffers that glibc kept after a burst of 100 000 series came to 96 B per
#: series; 25 B now (docs/performance.md, "Where the bytes of a series go").
_BATCH_BYTES = 256 << 10
_split = Splitter().split


def feed(engine: Engine, buf: bytes, *, final: bool = False, force: bool = False) -> tuple[list[bytes], int, bool]:
    """Process the complete metrics at the front of ``buf``: ``(output chunks, bytes consumed, pending)``.

    ``final`` and ``force`` are :meth:`Splitter.split`'s: a metric whose quote
    is still open is ``pending`` (it waits for more input) unless one of them
    is set. Plain metrics go through the hot path's ``run`` (compiled when
    built); the rest, one metric at a time, through :meth:`Engine.process`.
    Both give the same bytes.

    >>> from riverguard.config import default_config
    >>> feed(Engine(default_config()), b"cpu,host=a idle=97.5 1\\ncpu,host=a idle=9")
    ([b'cpu,host=a idle=97.5,idle_anomaly_score=0.0,idle_anomaly=false 1\\n'], 23, False)
    """
    out: list[bytes] = []
    run = engine.run_plain
    process = engine.process
    pos, n = 0, len(buf)
    while pos < n:
        pos = run(engine, buf, pos, out)
        if pos >= n:
            break
        records, consumed, pending = _split(buf, final=final, force=force, start=pos, limit=1)
        out.extend([process(r) for r in records])
        if pending or consumed == pos:
            return out, consumed, pending
        pos = consumed
    return out, pos, False


class Child(Protocol):
    """Work a tick left running in the background (:meth:`riverguard.state.StateStore.tick`)."""

    @property
    def fd(self) -> int | None:
        """Readable in ``select()`` when the work is done; None when none runs."""

    def poll(self) -> bool:
        """Reap the work if it is done, without waiting; True when none runs any more."""


class ManualGC:
    """Cyclic garbage collection on riverguard's schedule instead of Python's.

    Every metric allocates short-lived containers, and Python's collector
    answers by rescanning the long-lived series models again and again: with
    thousands of series that is about a third of the run time. riverguard's
    per-metric objects free themselves by reference counting, so automatic
    collection is off while the stream runs and a full collection happens
    every ``every`` metrics (and when :meth:`collect` is called, at each
    checkpoint), which keeps any cyclic garbage bounded.
    """

    def __init__(self, engine: Engine, every: int = 1_000_000) -> None:
        self.engine = engine
        self.every = every
        self._next = engine.metrics + every
        self._was_enabled = gc.isenabled()

    def __enter__(self) -> ManualGC:
        gc.disable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._was_enabled:
            gc.enable()

    def step(self) -> None:
        """Collect if ``every`` metrics went by since the last collection."""
        if self.engine.metrics >= self._next:
            self.collect()

    def collect(self) -> None:
        gc.collect()
        self._next = self.engine.metrics + self.every


def write_line(fd: int, data: bytes, log) -> int:  # type: ignore[no-untyped-def]
    """Write ``data`` to ``fd`` outside the loop (the monitor's last line); the exit code."""
    try:
        write_all(fd, [data])
    except (BrokenPipeError, OutputError) as err:
        log.error(stopped(err))
        return 1
    return 0


class Held:
    """Execd mode's input while ``run`` waits before it can score (for the checkpoint's lock): stdin is read
    into memory meanwhile, so Telegraf is not held up. ``signals`` are the process's
    (:class:`~riverguard.signals.Signals`, installed by ``run`` at start): a stop during the wait is seen
    here, then by :func:`serve` or :func:`passthrough`.

    :func:`serve` or :func:`passthrough` then takes what was read over: not a byte is lost.
    """

    #: Read at most this much while waiting; beyond it the input waits in the pipe.
    LIMIT = 256 << 20
    #: After SIGTERM or SIGINT, how much longer the lock is waited for (seconds): a holder finishing its final
    #: checkpoint (a restart's overlap) hands the models over and what was read is scored and saved; else it goes
    #: back unscored, well within the 5 s Telegraf leaves before its SIGKILL.
    STOP_GRACE = 2.0

    def __init__(self, signals: Signals, infd: int = 0) -> None:
        self.infd = infd
        self.signals = signals
        self.chunks: list[bytes] = []
        self.size = 0
        self.eof = False
        self._stopped: float | None = None  # when the wait saw the stop signal

    def wait(self, timeout: float) -> bool:
        """Read the input for up to ``timeout`` seconds; True once :attr:`STOP_GRACE` has passed since SIGTERM
        or SIGINT came (stop waiting)."""
        fds = [self.signals.fd]
        if not self.eof and self.size < self.LIMIT:
            fds.append(self.infd)
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            ready = []
        if self.signals.fd in ready:
            self.signals.drain()
        if self.infd in ready:
            data = _read(self.infd)
            if data == b"":
                self.eof = True
            elif data:
                self.chunks.append(data)
                self.size += len(data)
        if self.signals.received is None:
            return False
        now = time.monotonic()
        if self._stopped is None:
            self._stopped = now
        return now - self._stopped >= self.STOP_GRACE

    def first(self) -> bool:
        """Wait for the first input (or its end, or SIGTERM or SIGINT), reading it: ``run`` takes the checkpoint's
        lock then; False when none came (at the end or the stop: nothing to score or learn, so ``run`` neither
        loads the checkpoint nor writes it, which took seconds of Telegraf's shutdown for a large one; what it
        read of it meanwhile, :meth:`~riverguard.state.StateStore.preload`, is let go unfinished).

        With aggregators Telegraf starts two copies of the processor on one checkpoint, the one after them
        first; the one before them has the inputs' metrics at their first gather, the other nothing until the
        aggregators' first period: the copy that gets a metric first scores, and that is the inputs' copy
        (README, "Aggregators"). Locked at start, the copy after the aggregators usually had it, and no metric
        of the inputs was scored."""
        while not self.chunks and not self.eof and self.signals.received is None:
            self.wait(1.0)
        return bool(self.chunks)

    def take(self) -> bytes:
        """What was read, once."""
        data = b"".join(self.chunks)
        self.chunks, self.size = [], 0
        return data


def _read(fd: int) -> bytes | None:
    """One read of ``fd``: its bytes, ``b""`` at its end, None when nothing was there after all."""
    try:
        return os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return None
    except OSError as err:
        if err.errno != errno.EIO:
            raise
        return b""


def passthrough(log, held: Held, outfd: int = 1, monitor: Monitor | None = None,  # type: ignore[no-untyped-def]
                hangup: Callable[[], None] | None = None) -> int:
    """Copy the input to the output as it is, unscored, until EOF or SIGTERM/SIGINT; return the exit code.

    For a ``run`` that cannot score (its checkpoint is in use by another riverguard, another user's or at a
    state path it cannot use, or its config is refused): every metric still comes back, byte for byte, so
    Telegraf loses none. SIGHUP changes nothing: it calls ``hangup`` (a refused config is read again, to say
    whether it is valid now), or without one says there is nothing to reload. The signals are the process's
    (``held.signals``): ``run`` put them in place at start and leaves them until it exits.
    This process does not hold the checkpoint's lock, so it touches no file beside the checkpoint.
    What it writes ends with a whole metric: a metric written in part waits for the rest of its line, one
    with a string value open across lines for its closing quote, as :func:`serve` waits for it
    (:class:`_OpenQuote`; given up, its lines go as they came), so a stop drops it whole (:func:`_at_stop`).
    ``monitor``'s line (its ``metrics``: the lines passed through) goes out when due; a last metric without
    its newline gets one before the line at exit, as :func:`serve` gives it.
    """
    infd, signals = held.infd, held.signals
    lines = 0
    eof = held.eof
    # The bytes read and not written: after the last whole metric, or after the last newline once the metric
    # open across lines there is given up. ``still``: that metric is open still for sure (no need to cut again).
    rest = b""
    quote = _OpenQuote()
    still = False
    ends_line = True  # whether what was written ends with a newline
    try:
        data = held.take()
        while True:
            if data:
                still = quote.more(rest, data)
                rest = rest + data if rest else data
            given_up = quote.given_up()
            if rest and (eof or given_up or (data and not still)):
                if eof:
                    cut = len(rest)
                elif given_up:  # (its first line is a bad line, as serve gives it up)
                    cut = rest.rfind(b"\n") + 1
                else:
                    cut = whole_end(rest)
                quote.after(cut, not eof and not given_up and rest.find(b"\n", cut) >= 0)
                still = quote.since is not None
                if cut:
                    out = rest[:cut] if cut < len(rest) else rest
                    rest = rest[cut:]
                    passed = out.count(b"\n")
                    lines += passed
                    paused = time.monotonic()
                    write_all(outfd, [out])
                    quote.resume(paused)
                    ends_line = out.endswith(b"\n")
                    if monitor is not None:
                        monitor.engine.count_passed(passed)
            if eof and monitor is not None and not ends_line:
                write_all(outfd, [b"\n"])
            if monitor is not None and quote.since is None and monitor.due():
                paused = time.monotonic()
                write_all(outfd, [monitor.line()])
                quote.resume(paused)
            if eof:
                break
            if signals.received is not None:
                log.info(f"received {signal.Signals(signals.received).name}: finishing")
                data = _at_stop(log, infd, rest, quote)  # what was already written to us still comes back
                rest = b""
                eof = True
                continue
            release = quote.release()
            if release is not None:
                timeout: float | None = max(0.0, release - time.monotonic())
            else:
                timeout = None if monitor is None else max(0.0, monitor.deadline - monitor.clock())
            try:
                ready, _, _ = select.select([infd, signals.fd], [], [], timeout)
            except InterruptedError:
                ready = []
            if signals.fd in ready:
                signals.drain()
            if signals.hangup:
                signals.hangup = False
                if hangup is not None:
                    hangup()
                else:
                    log.info("received SIGHUP: nothing to reload: this riverguard passes metrics through unscored")
            data = _read(infd) if infd in ready else None
            if data == b"":
                eof = True
        log.info(f"stopped after passing {plural(lines, 'line')} through unscored")
        return 0
    except (BrokenPipeError, OutputError) as err:
        log.error(stopped(err))
        return 1


def serve(
    engine: Engine,
    infd: int = 0,
    outfd: int = 1,
    *,
    tick: Callable[[], None] | None = None,
    tick_interval: float | None = None,
    reload: Callable[[], None] | None = None,
    monitor: Monitor | None = None,
    signals: Signals | None = None,
    held: Held | None = None,
    child: Child | None = None,
) -> int:
    """Run execd mode until EOF or a signal; return the exit code.

    ``tick`` (the periodic checkpoint) runs every ``tick_interval`` seconds of
    wall clock, between batches, never in the middle of one. ``child``: what
    the tick left running in the background (a checkpoint written by a forked
    process), watched in ``select()`` (its ``fd``, when not None) and reaped
    (its ``poll()``) as soon as it is done, without waiting for it. ``monitor``'s
    line goes out, flushed, after the complete metrics processed when it is due.
    ``signals`` are the process's (``riverguard run`` installs them at start, so a
    stop requested before the loop began ends it at once, the input already
    written still processed); without them the loop installs its own for its run.
    ``held``: the input read before (while ``run`` waited for the checkpoint's
    lock, under the same ``signals``), processed first.
    """
    log = engine.log
    engine.start_input("stdin")
    if signals is None and held is not None:
        signals = held.signals
    own_signals = signals is None
    if signals is None:
        signals = Signals()
    buf = held.take() if held is not None else b""
    out: list[bytes] = []
    out_bytes = 0
    eof = held.eof if held is not None else False
    first = bool(buf) or eof
    # A metric at the front of ``buf`` that waits for its closing quote; ``still``: it is open still for sure
    # (no need to cut ``buf`` again).
    quote = _OpenQuote()
    still = False
    next_tick = time.monotonic() + tick_interval if tick and tick_interval else None
    collector = ManualGC(engine)
    try:
        collector.__enter__()
        while True:
            now = time.monotonic()
            deadlines = [d for d in (next_tick, quote.release()) if d]
            if monitor is not None:
                deadlines.append(monitor.deadline)
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            # (the input held before, and a stop requested before the loop began, are dealt with at once)
            if out or first or signals.received is not None:
                timeout = 0.0
                first = False
            background = child.fd if child is not None else None
            try:
                ready, _, _ = select.select([infd, signals.fd, *(() if background is None else (background,))], [],
                                            [], timeout)
            except InterruptedError:
                ready = []
            if signals.fd in ready:
                signals.drain()
            if background is not None and background in ready:
                child.poll()  # type: ignore[union-attr]
            if signals.hangup:  # between batches: the engine holds no half-processed metric
                signals.hangup = False
                if reload is not None:
                    paused = time.monotonic()
                    reload()
                    collector.collect()
                    quote.resume(paused)
                else:
                    log.info("received SIGHUP: nothing to reload")
            if signals.received is not None:
                log.info(f"received {signal.Signals(signals.received).name}: finishing")
                if not eof:  # metrics already written to us still come back
                    buf = _at_stop(log, infd, buf, quote)
                break
            if infd in ready and not eof:
                data = _read(infd)
                if data == b"":
                    eof = True
                elif data:
                    still = quote.more(buf, data)
                    buf = buf + data if buf else data
            force = quote.given_up()
            if buf and (eof or force or not still):
                chunks, consumed, pending = feed(engine, buf, final=eof, force=force)
                if consumed:
                    buf = buf[consumed:]
                quote.after(consumed, pending)
                still = pending
                for chunk in chunks:
                    out.append(chunk)
                    out_bytes += len(chunk)
            more_waiting = infd in ready and not eof and _readable(infd)
            report = monitor is not None and monitor.due()
            if report:
                out.append(monitor.line())  # type: ignore[union-attr]
            if out and (not more_waiting or out_bytes >= _BATCH_BYTES or report):
                paused = time.monotonic()
                write_all(outfd, out)  # (blocks while the reader of the output is slow)
                out, out_bytes = [], 0
                engine.flush_log()
                collector.step()
                quote.resume(paused)
            if eof:
                break
            if next_tick is not None and time.monotonic() >= next_tick:
                paused = time.monotonic()
                tick()  # type: ignore[misc]
                if child is None or child.fd is None:  # (not while a child writes it from this memory: a
                    collector.collect()                  # collection would copy every page the models are on)
                quote.resume(paused)
                next_tick = time.monotonic() + tick_interval  # type: ignore[operator]
        # Finish: whatever is left (a signal mid-stream) goes out, processed or as it is.
        if buf:
            out.extend(feed(engine, buf, final=True)[0])
        if out:
            write_all(outfd, out)
        engine.flush_log(final=True)
        return 0
    except (BrokenPipeError, OutputError) as err:
        log.error(stopped(err))
        return 1
    finally:
        collector.__exit__()
        if own_signals:
            signals.close()


def _drain(fd: int, buf: bytes, limit: int = 64 * _READ_SIZE) -> tuple[bytes, bool]:
    """Append what ``fd`` holds right now (without waiting, at most ``limit`` bytes) to ``buf``; and whether
    that reached its end (its writer closed it)."""
    parts, total = [buf], 0
    while total < limit and _readable(fd):
        try:
            data = os.read(fd, _READ_SIZE)
        except (BlockingIOError, OSError):
            break
        if not data:
            return b"".join(parts), True
        parts.append(data)
        total += len(data)
    return b"".join(parts), False


def _at_stop(log: Log, infd: int, buf: bytes, quote: _OpenQuote) -> bytes:
    """``buf`` (the input not yet processed or passed on) with what ``infd`` holds at a stop (SIGTERM, SIGINT;
    :func:`_drain`), up to its last whole metric.

    With stdin still open, the bytes after it are a metric whose writer has not sent the rest yet: ``v=12`` of
    ``v=123`` (scored, a wrong value without its timestamp, stored at "now" and learned), or the first lines
    of a string value open across lines (scored, bad lines; passed through, half a metric). They are dropped,
    one ``W!`` line says how many. Only a metric open across lines that was given up already (``quote``: its
    closing quote did not come within :data:`QUOTE_GRACE`, a bad line) is not: its lines are cut as bad lines
    are, so that a quote never closed drops no metric after it; then the cut is at the last newline. At EOF
    (Telegraf closed stdin) a last line without a newline is a whole metric, and is kept.
    """
    held = len(buf)
    buf, eof = _drain(infd, buf)
    if eof:
        return buf
    if len(buf) > held:
        quote.more(buf[:held], buf[held:])
    cut = buf.rfind(b"\n") + 1
    whole = whole_end(buf)
    if whole < cut and (whole or not quote.given_up()):  # (whole: a metric began after the one that waited)
        cut = whole
    if cut < len(buf):
        log.warn(f"stopped with stdin still open: dropped the last {plural(len(buf) - cut, 'byte')}, a metric "
                 "not yet ended by a newline (its rest not written yet): not scored, learned or written")
    return buf[:cut]


def _readable(fd: int) -> bool:
    try:
        ready, _, _ = select.select([fd], [], [], 0)
    except InterruptedError:
        return False
    return bool(ready)


def _chunks(stream: BinaryIO, size: int = _READ_SIZE) -> Iterator[bytes]:
    # One system call per chunk (read1): a signal that lands while a read returns data is
    # handled before the next read, which may block on a pipe (read() would loop on inside C).
    read = getattr(stream, "read1", stream.read)
    while chunk := read(size):
        yield chunk


def process_chunks(engine: Engine, chunks: Iterable[bytes], write: Callable[[bytes], object]) -> None:
    """Run ``chunks`` (one input stream, in order) through ``engine``, writing the output."""
    buf = b""
    with ManualGC(engine) as collector:
        for chunk in chunks:
            buf = buf + chunk if buf else chunk
            out, consumed, _ = feed(engine, buf)
            if out:
                write(b"".join(out))
                collector.step()
            buf = buf[consumed:]
            engine.check_units()
        if buf:
            write(b"".join(feed(engine, buf, final=True)[0]))


class InputError(Exception):
    """A replay input that is not line protocol at all (binary data, broken gzip)."""


_GZIP_MAGIC = b"\x1f\x8b"


def _text_chunks(name: str, stream: BinaryIO) -> Iterator[bytes]:
    """The chunks of one input, gunzipped when it starts with gzip's magic bytes.

    Raise :class:`InputError` at the first NUL byte (binary data) or at broken gzip data.
    """
    raw = stream
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    compressed = head == _GZIP_MAGIC
    if compressed:
        stream = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    offset = 0
    try:
        for chunk in _chunks(stream):
            nul = chunk.find(b"\x00")
            if nul >= 0:
                where = f"byte {offset + nul}" + (" after gunzip" if compressed else "")
                raise InputError(f"{name}: binary data (a NUL byte at {where}), not line protocol: stopped")
            offset += len(chunk)
            yield chunk
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise InputError(f"{name}: broken gzip data after {plural(offset, 'byte')} ({err or 'truncated'}): stopped") from None


#: A UTF-8 byte order mark, which some editors (Windows Notepad) put at the start of a text file.
_BOM = b"\xef\xbb\xbf"


def _without_bom(name: str, chunks: Iterable[bytes], log: Log) -> Iterator[bytes]:
    """The chunks of one input, a UTF-8 byte order mark at its very start dropped, with an ``I!`` line: kept,
    it would become part of the first measurement's name (a series of its own). One anywhere else is data."""
    head = b""
    rest = iter(chunks)
    for chunk in rest:
        head += chunk
        if len(head) >= len(_BOM) or not _BOM.startswith(head):
            break
    if head.startswith(_BOM):
        log.info(f"{name}: skipped the UTF-8 byte order mark at its start")
        head = head[len(_BOM):]
    if head:
        yield head
    yield from rest


class _Waking:
    """A replay input that is not a regular file (stdin from a pipe or a terminal, a named pipe), read so that
    a stop always ends a wait for more: each read waits in ``select()`` on it and on a wake-up pipe that the
    signals write to (``signal.set_wakeup_fd``), then reads once. A plain read could miss the stop: a signal
    that lands after one read returns and before the next begins leaves that one waiting for input that may
    never come (Python runs its handler only once the read returns). Main thread only (the wake-up fd is
    set there); :meth:`close` puts back the one before."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._held = b""  # what peek read and nothing took yet
        self._wake = WakePipe()  # (ValueError: not the main thread)

    def _once(self, size: int) -> bytes:
        while True:
            ready = select.select([self._fd, self._wake.fd], [], [])[0]
            if self._wake.fd in ready:  # a signal: its handler has run (a stop raised); another goes on waiting
                self._wake.drain()
            if self._fd in ready:
                return os.read(self._fd, size)

    def peek(self, size: int = 1) -> bytes:
        if not self._held:
            self._held = self._once(max(size, _READ_SIZE))
        return self._held

    def read1(self, size: int = -1) -> bytes:
        if size < 0:
            size = _READ_SIZE
        if self._held:
            data, self._held = self._held[:size], self._held[size:]
            return data
        return self._once(size)

    read = read1  # (GzipFile's reads: one at a time, as they come)

    def close(self) -> None:
        self._wake.close()


def _waking(stream: BinaryIO) -> _Waking | None:
    """``stream`` read as :class:`_Waking` when it is not a regular file and this is the main thread, else None."""
    try:
        if stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
        return _Waking(stream.fileno())
    except (OSError, ValueError, AttributeError):  # (ValueError: not the main thread; no fileno: a test's stream)
        return None


def replay(
    engine: Engine,
    inputs: list[str],
    output: BinaryIO,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Replay recorded line-protocol files (``-`` is stdin; gzip is read as such) through ``engine``, a
    byte order mark at the start of each dropped (:func:`_without_bom`; ``run`` reads its stdin as it comes).

    Raise :class:`InputError` on an input that is binary data.
    """
    for name in inputs:
        stream = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
        shown = "stdin" if name == "-" else name
        engine.start_input(shown)
        waking = _waking(stream)
        try:
            chunks: Iterable[bytes] = _text_chunks(shown, stream if waking is None else waking)  # type: ignore[arg-type]
            if progress is not None:
                chunks = _counted(chunks, progress)
            process_chunks(engine, _without_bom(shown, chunks, engine.log), output.write)
        finally:
            if waking is not None:
                waking.close()
            if stream is not sys.stdin.buffer:
                stream.close()
    engine.flush_log(final=True)


def _counted(chunks: Iterable[bytes], progress: Callable[[int], None]) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk
        progress(len(chunk))
