"""How riverguard takes SIGTERM, SIGINT and SIGHUP.

:class:`Signals` is installed by ``riverguard run`` when it starts, before
the checkpoint is restored, and stays until it exits: a stop signal at any
moment (start-up, the wait for the checkpoint's lock, restore, mid-stream,
a checkpoint) only records the request, and the stream loop then finishes
(what is already in stdin is read and written out, the final checkpoint is
written, exit 0). The signals also wake the loop's ``select()`` through a
pipe. They are the only ones: the lock wait (``stream.Held``), the
pass-through of a ``run`` whose checkpoint is in use by another riverguard
(``stream.passthrough``) and ``stream.serve`` all use this one instance.

:func:`checkpointing` holds SIGTERM and SIGINT back while a checkpoint is
written, in every command: the checkpoint completes (or fails as a whole)
and the signal then takes effect as it would have, so a stop never leaves a
half-written temporary file behind or output whose models were not saved.
SIGKILL stays the hard limit. :func:`deferred` holds them back, without a
word, across a few statements that must all run or none (a backfill's
batch counted and taken off what is pending).

:class:`Interrupted` is the ``KeyboardInterrupt`` that ``replay`` (and a
second stop of a one-off ``pull``) raises on SIGINT *or* SIGTERM, knowing
which: the command then exits ``128 +`` the signal's number (:func:`exit_code`),
130 for SIGINT and 143 for SIGTERM, as a shell reports a program that signal
ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .log import Log

__all__ = ["COMMAND_SIGNALS", "STOP_SIGNALS", "Interrupted", "Signals", "WakePipe", "checkpointing", "deferred",
           "exit_code", "interrupt", "start_thread"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: The signals the commands take (stop, and SIGHUP: reload).
COMMAND_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_holding = False  # a checkpointing() block is running


class Interrupted(KeyboardInterrupt):
    """A stop by ``signum`` (SIGINT or SIGTERM), raised where the command was (:func:`interrupt`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupt(signum: int, frame: object) -> NoReturn:
    """A signal handler: raise :class:`Interrupted` (for SIGTERM too, which Python's own handler does not take)."""
    raise Interrupted(signum)


def exit_code(stop: BaseException | int) -> int:
    """The exit code of a command stopped by a signal (a number, or the KeyboardInterrupt it raised): 128 + its
    number, as a shell shows for a program the signal ended (a plain KeyboardInterrupt is SIGINT's: 130).

    >>> exit_code(Interrupted(signal.SIGTERM)), exit_code(KeyboardInterrupt()), exit_code(signal.SIGINT)
    (143, 130, 130)
    """
    if isinstance(stop, BaseException):
        stop = getattr(stop, "signum", signal.SIGINT)
    return 128 + int(stop)


class WakePipe:
    """A pipe the signals write to (``signal.set_wakeup_fd``): its read end (:attr:`fd`) is readable in
    ``select()`` once a signal came, so a wait there never misses one. Main thread only (ValueError elsewhere,
    nothing left open); :meth:`close` puts back the wake-up fd found."""

    def __init__(self) -> None:
        self.fd, self._w = os.pipe()
        try:
            for end in (self.fd, self._w):
                os.set_blocking(end, False)
            # (a full pipe already says "a signal came": the bytes that do not fit are not worth a traceback
            # on stderr, which Telegraf would log as errors, one per signal)
            self._before = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        except BaseException:
            os.close(self.fd)
            os.close(self._w)
            raise

    def drain(self) -> None:
        """Read what the signals wrote."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 512):
                pass

    def close(self) -> None:
        signal.set_wakeup_fd(self._before, warn_on_full_buffer=False)
        os.close(self.fd)
        os.close(self._w)


class Signals:
    """Turns SIGTERM/SIGINT (stop) and SIGHUP (reload) into flags and a readable file descriptor for select()."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.hangup = False
        self._wake = WakePipe()
        self._old = {sig: signal.signal(sig, self._handle) for sig in (*STOP_SIGNALS, signal.SIGHUP)}
        self._closed = False

    def _handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            self.hangup = True
        elif self.received is None:
            self.received = signum

    @property
    def fd(self) -> int:
        return self._wake.fd

    def drain(self) -> None:
        self._wake.drain()

    def close(self, ignore: bool = False) -> None:
        """Put back the wake-up fd and the handlers found at install.

        ``ignore``: for a process about to exit, ignore these signals from now on instead: a SIGTERM
        after the final checkpoint then has nothing to stop, rather than ending it with -15. (Not Python
        handlers: the interpreter's finalization puts the defaults back for those, and a SIGTERM in that
        last moment, 0.07 s after 100 000 series, ended the process with -15.)
        """
        if self._closed:
            return
        self._closed = True
        for sig, handler in self._old.items():
            signal.signal(sig, signal.SIG_IGN if ignore else handler)
        self._wake.close()

    def __enter__(self) -> Signals:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def checkpointing(log: Log, what: str) -> Iterator[None]:
    """Hold SIGTERM/SIGINT back while the body (a checkpoint) runs; then let them act, said in one ``I!`` line.

    A held signal is raised again once the handlers in force before are back, so it does what it would
    have done (a stop flag, KeyboardInterrupt, or the default: the process ends), only after the body.
    Outside the main thread (where no handler can be set) nothing is held back; within another such
    block, this one is that block's part (``replay`` holds them from its output to its checkpoint).
    """
    global _holding
    if _holding or threading.current_thread() is not threading.main_thread():
        yield  # (within another: that one holds them and says so)
        return
    held: list[int] = []

    def hold(signum: int, frame: object) -> None:
        if signum not in held:
            held.append(signum)

    started = time.monotonic()
    old: dict[int, Any] = {}
    _holding = True
    try:
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) not in (None, signal.SIG_IGN):  # (None: set outside Python, left alone)
                old[sig] = signal.signal(sig, hold)
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        _holding = False
        if held:
            names = " and ".join(signal.Signals(sig).name for sig in held)
            log.info(f"received {names} while writing {what}: completed it first ({time.monotonic() - started:.1f}s)")
            for sig in held:
                signal.raise_signal(sig)


@contextlib.contextmanager
def deferred(signals: Iterable[int] = STOP_SIGNALS) -> Iterator[None]:
    """Block ``signals`` (SIGTERM/SIGINT) across the body, a few statements that must all run or none: a signal
    that comes meanwhile waits, and is delivered as the body ends (its handler runs there: ``replay``'s
    :class:`Interrupted` is raised right after the body). Says nothing, unlike :func:`checkpointing`, for
    long blocks. Outside the main thread, where no Python handler runs, nothing is blocked."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)  # (a signal pending: its handler runs here)


def start_thread(target: Callable[[], object], name: str) -> threading.Thread:
    """Start a daemon thread that takes none of :data:`COMMAND_SIGNALS`: it starts with them blocked, so the
    kernel delivers them to the main thread, the only one where Python runs a handler. One delivered to
    another thread left the main thread blocked in what it waited on (a read from a server that does not
    answer: until its timeout, 60 s), and two signals meanwhile were taken as one (a one-off ``pull``'s
    second SIGTERM did not end it at once)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    with deferred(COMMAND_SIGNALS):  # (the new thread inherits the mask; the main thread's is put back)
        thread.start()
    return thread
