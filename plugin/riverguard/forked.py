"""Work done in a forked child, on the process's memory as it was at the fork (copy-on-write).

:meth:`Forked.start` forks; the child runs the work, sends its result (msgpack, a few hundred bytes at most)
back through a pipe and leaves with ``os._exit``: it never returns into the parent's code, so none of its
``finally`` blocks, ``atexit`` hooks or stdio flushes run there, and it writes nothing to stdout (Telegraf
reads the parent's stdout as metrics: the child's fd 1 is made its stderr). SIGTERM, SIGINT and SIGHUP are
ignored in the child (blocked across the fork, so none reaches a handler of the parent's copied there): a
stop meant for the process, or its group, is the parent's to act on; and the signals' wake-up fd is let go.
On Linux the child dies with the parent (``PR_SET_PDEATHSIG``): a parent killed (SIGKILL, the OOM killer)
leaves no orphan holding what it inherited, such as a lock, for a restarted process to wait on; what the
child was writing is given up, as the parent's own work would have been. And short of memory, the OOM
killer takes the child first (``oom_score_adj`` 1000, as Redis does for its saving child).

The parent goes on at once: :attr:`Forked.fd` becomes readable in ``select()`` once the child has sent its
result and exits; :meth:`Forked.poll` reaps it without waiting, :meth:`Forked.wait` waits for it, and
:meth:`Forked.kill` stops it (its work no longer wanted) and reaps it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import msgpack

from .signals import COMMAND_SIGNALS, deferred

__all__ = ["Forked", "ForkedError"]

#: The signals ignored in the child (a stop or a reload is the parent's).
_IGNORED = COMMAND_SIGNALS  # (those the parent takes)


class ForkedError(Exception):
    """The child did not give a result: it raised (the exception in words) or was killed (by what)."""


class Forked:
    """A forked child at work (:meth:`start`), and once it has exited (:meth:`poll`, :meth:`wait`), its
    result (:meth:`result`)."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self._fd: int | None = fd
        self._data = bytearray()
        self._status: int | None = None

    @classmethod
    def start(cls, work: Callable[[], Any]) -> Forked:
        """Fork; the child runs ``work()`` (whose value msgpack packs) and exits. Raise OSError when the
        process cannot fork (no ``os.fork`` on this platform: ENOSYS)."""
        if not hasattr(os, "fork"):
            raise OSError(38, "fork is not available on this platform")  # (ENOSYS)
        main = threading.current_thread() is threading.main_thread()
        parent = os.getpid()
        die = _death_signal()  # (looked up here: the child imports nothing)
        with deferred(_IGNORED):  # (until the child ignores them: none reaches the parent's handlers there)
            r, w = os.pipe()
            try:
                pid = os.fork()
            except BaseException:
                os.close(r)
                os.close(w)
                raise
            if pid == 0:  # (the child: never returns)
                _child(work, r, w, main, parent, die)
        os.close(w)
        os.set_blocking(r, False)
        return cls(pid, r)

    @property
    def fd(self) -> int | None:
        """The pipe's end to watch in ``select()`` (readable once the child sent its result or exited);
        None once it was reaped."""
        return self._fd

    @property
    def done(self) -> bool:
        return self._status is not None

    def poll(self) -> bool:
        """Read what the child sent; reap it if it has exited, without waiting (at the pipe's end, it is
        exiting: then waited for). True once it is reaped."""
        if self._status is not None:
            return True
        if self._read():
            return self._reap(0)
        return self._reap(os.WNOHANG)

    def wait(self) -> None:
        """Wait for the child to exit (reading what it sends meanwhile), and reap it."""
        if self._status is None:
            assert self._fd is not None
            os.set_blocking(self._fd, True)
            self._read()
            self._reap(0)

    def kill(self) -> bool:
        """Stop the child at once (SIGKILL, which a stopped child gets too) and reap it; False when it had
        sent its result already (:meth:`result` gives it), True when its work was given up."""
        if self._status is None:
            os.kill(self.pid, signal.SIGKILL)  # (an unreaped child is still there to kill, exited or not)
            self.wait()
        return self._sent() is None

    def result(self) -> Any:
        """The value ``work()`` returned (once reaped); raise :class:`ForkedError` when there is none. A child
        killed after it sent its result did its work: the result is given."""
        assert self._status is not None
        status = self._status
        sent = self._sent()
        if sent is None:
            if os.WIFSIGNALED(status):
                raise ForkedError(f"the process writing it (PID {self.pid}) was killed by "
                                  f"{_signal_name(os.WTERMSIG(status))}")
            raise ForkedError(f"the process writing it (PID {self.pid}) exited with code "
                              f"{os.waitstatus_to_exitcode(status)} without a result")
        ok, value = sent
        if not ok:
            raise ForkedError(value)
        return value

    def _sent(self) -> tuple[bool, Any] | None:
        """What the child sent, ``[ok, value]``, once whole; None before (or if it is not one)."""
        try:
            ok, value = msgpack.unpackb(bytes(self._data), raw=False)
        except (ValueError, TypeError, msgpack.UnpackException, msgpack.ExtraData):
            return None
        return bool(ok), value

    def _read(self) -> bool:
        """Read what the pipe holds; True at its end (the child closed it: it is exiting)."""
        assert self._fd is not None
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return False
            except InterruptedError:
                continue
            if not chunk:
                return True
            self._data += chunk

    def _reap(self, flags: int) -> bool:
        pid, status = os.waitpid(self.pid, flags)
        if pid == 0:
            return False
        self._status = status
        if self._fd is not None:
            self._read()  # (all of it: the child has exited)
            os.close(self._fd)
            self._fd = None
        return True


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _death_signal() -> Callable[[], int] | None:
    """A call that makes the calling process receive SIGKILL when its parent dies (Linux's ``prctl``
    ``PR_SET_PDEATHSIG``; 0 when done), or None where there is none."""
    global _PRCTL
    if _PRCTL is None:
        try:
            import ctypes

            prctl = ctypes.CDLL(None, use_errno=True).prctl
            _PRCTL = lambda: prctl(1, int(signal.SIGKILL), 0, 0, 0)  # noqa: E731  (PR_SET_PDEATHSIG = 1)
        except (OSError, AttributeError, ImportError):  # (not Linux)
            _PRCTL = False
    return _PRCTL or None


_PRCTL: Any = None

#: The child's ``oom_score_adj``: the most, so that short of memory the OOM killer takes it before the
#: parent (a failed checkpoint, tried again at the next tick) rather than the parent (every metric in
#: flight lost, and a restart). It needs memory of its own, the pages it touches being copied: 0.88 times
#: the parent's RSS at 100 000 series while the parent scores (docs/performance.md).
OOM_SCORE_ADJ = 1000


def _first_to_go() -> None:
    """Make the calling process the OOM killer's first choice (Linux; raising one's own is always allowed)."""
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
    except OSError:  # (not Linux, no /proc)
        return
    try:
        os.write(fd, str(OOM_SCORE_ADJ).encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def _child(work: Callable[[], Any], r: int, w: int, main: bool, parent: int, die: Callable[[], int] | None) -> None:
    """The child's whole life: ``work()``, its result (or why there is none) sent on ``w``, ``os._exit``."""
    code = 1
    try:
        if die is not None:
            die()
        if os.getppid() != parent:  # (the parent died before prctl took: nothing to write for)
            os._exit(1)
        _first_to_go()
        os.close(r)
        os.dup2(2, 1)  # (nothing it writes by mistake may reach Telegraf as metrics)
        if main:
            signal.set_wakeup_fd(-1)  # (the parent's wake-up pipe is the parent's)
            for sig in _IGNORED:
                signal.signal(sig, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _IGNORED)  # (those pending: ignored now)
        try:
            data = msgpack.packb([True, work()], use_bin_type=True)
            code = 0
        except BaseException as err:  # (anything: said in words, never a traceback)
            text = str(err).strip()
            data = msgpack.packb([False, f"{type(err).__name__}: {text}" if text else type(err).__name__],
                                 use_bin_type=True)
        view = memoryview(data)
        while view:
            view = view[os.write(w, view) :]
    except BaseException:
        code = 1
    finally:
        os._exit(code)
