"""riverguard's stdout: every byte written, or an error that says why.

A write to a file that reaches a size limit (``ulimit -f``) or a full disk writes what fits and returns that
count; only the next write fails. Python's own stdout passed such a short count on without a word when it is
unbuffered (``PYTHONUNBUFFERED=1``, which the Telegraf setup sets: ``sys.stdout.buffer`` is then the raw file,
whose ``write`` may write less than it was given), so ``sample-config > riverguard.toml`` or ``replay rec.lp >
out.lp`` could leave a file cut short and exit 0. :func:`write_all` writes until every byte is out or a write
fails, and :func:`install` puts a ``sys.stdout`` built on it in place for the process's own command.

A failed write is kept until :func:`flush` raises it: argparse (``--help``, ``--version``) drops the error of
its own write, which left a cut ``--help`` with exit 0. :func:`stop` is what a command does then.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import select
import sys

__all__ = ["OutputError", "flush", "install", "stop", "stopped", "write_all"]

_IOV_MAX = 1024  # buffers per writev (Linux's IOV_MAX)
#: The first write to the installed stdout that failed since the last :func:`stop` (raised by :func:`flush`).
_failed: OSError | None = None


class OutputError(OSError):
    """A write to the output failed other than by the reader going away (:class:`BrokenPipeError`): a full
    disk, a file size limit, an I/O error."""


def write_all(fd: int, chunks: list[bytes]) -> None:
    """Write ``chunks`` to ``fd``, one after the other, without joining them first (a copy of the batch).

    Raise :class:`BrokenPipeError` when the reader is gone, :class:`OutputError` on any other failure.
    """
    views = [memoryview(chunk) for chunk in chunks if chunk]
    at = 0
    while at < len(views):
        try:
            written = os.writev(fd, views[at : at + _IOV_MAX])
        except InterruptedError:
            continue
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        except BrokenPipeError:
            raise
        except OSError as err:
            raise OutputError(err.errno, err.strerror or os.strerror(err.errno or errno.EIO)) from None
        while written and written >= len(views[at]):
            written -= len(views[at])
            at += 1
        if written:
            views[at] = views[at][written:]


def stopped(err: OSError) -> str:
    """The ``E!`` line of a command that stops because its output failed (:func:`write_all`'s errors; an
    :class:`OutputError` with a file name: that file's)."""
    if isinstance(err, BrokenPipeError):
        return "stdout was closed: stopping"
    return f"cannot write to {err.filename or 'stdout'} ({err.strerror}): stopping"


def flush() -> None:
    """Flush ``sys.stdout``; raise :class:`BrokenPipeError` or :class:`OutputError` when a write to it failed,
    now or before (one its caller let pass: argparse's)."""
    if sys.stdout is not None:  # (None: started without a stdout)
        sys.stdout.flush()
    if _failed is not None:
        raise _failed


def stop(err: OSError, reading: bool = False) -> int:
    """Stop the command on its failed stdout (``err``), put the null device on stdout so that what is left in
    its buffer goes nowhere at exit, and return the exit code.

    A failed write is said (:func:`stopped`), exit 1; a reader gone too (``riverguard run ... | head``: the
    metrics it no longer reads are lost, and the exit code's E! line says why), unless the command prints
    something to read (``reading``: ``state inspect ... | head -2``), whose reader stopped because it had what
    it wanted, as from ``cat``, ``git log`` or ``ls``: then without a word, exit 0."""
    global _failed
    from .log import Log

    quiet = reading and isinstance(err, BrokenPipeError)
    if not quiet:
        Log("error").error(stopped(err))
    _failed = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if quiet else 1


class _Whole(io.RawIOBase):
    """A raw stdout whose ``write`` writes every byte or raises (:func:`write_all`)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
        global _failed
        view = memoryview(data).cast("B")
        try:
            write_all(self._fd, [view])  # type: ignore[list-item]
        except OSError as err:
            _failed = _failed or err
            raise
        return len(view)

    def close(self) -> None:  # stdout's descriptor stays open, as Python's own stdout leaves it
        if not self.closed:
            super().close()


def install() -> None:
    """Replace ``sys.stdout`` (fd 1) by one whose writes are whole or raise, buffered as Python's was
    (unbuffered under ``PYTHONUNBUFFERED`` or ``-u``). Nothing changes when there is no stdout."""
    old = sys.stdout
    if old is None or not isinstance(old, io.TextIOWrapper):
        return
    try:
        fd = old.fileno()
    except (OSError, ValueError):
        return
    old.flush()
    raw = _Whole(fd)
    buffer: io.RawIOBase | io.BufferedWriter = raw
    if not isinstance(old.buffer, io.FileIO):  # buffered, as Python's stdout is without PYTHONUNBUFFERED
        buffer = io.BufferedWriter(raw)
    sys.stdout = io.TextIOWrapper(
        buffer,  # type: ignore[arg-type]
        encoding=old.encoding,
        errors=old.errors,
        line_buffering=old.line_buffering,
        write_through=buffer is raw,
    )
