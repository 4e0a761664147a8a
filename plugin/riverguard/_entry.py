"""The ``riverguard`` command's entry point: stop and reload signals wait until the command can take them.

Loading riverguard takes Python about a tenth of a second. A SIGTERM, SIGINT or SIGHUP in that time used to
end the process as it ends any program (SIGINT with a traceback), losing what Telegraf had already written
to its stdin. :func:`main` blocks the three signals first, before anything heavy is imported; the command
unblocks them (:func:`release`) once it has its handlers (``run``: :class:`riverguard.signals.Signals`) or
at once (the other commands), and a signal that came meanwhile is then delivered to them. Only Python's own
start-up, before this module runs, is left (about 20 ms).
"""

from __future__ import annotations

import signal

__all__ = ["closed_at_start", "hold", "is_process", "main", "release"]

_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
#: The signal mask before :func:`hold` (None: nothing held).
_before: set[signal.Signals] | None = None
#: Whether the command runs as the process's own (:func:`main`): it exits when the command returns.
_process = False
#: The standard descriptors (0, 1, 2) the process started with closed (:func:`_hold_standard_fds`).
_closed: set[int] = set()


def is_process() -> bool:
    """Whether the command is the process's own (``riverguard``, ``python -m riverguard``), which ends when
    it returns; not a program or a test calling ``riverguard.cli.main``."""
    return _process


def closed_at_start(fd: int) -> bool:
    """Whether the process started with the standard descriptor ``fd`` closed: the null device holds it since."""
    return fd in _closed


def hold() -> None:
    """Block SIGTERM, SIGINT and SIGHUP (a signal that comes waits, pending)."""
    global _before
    if _before is None:
        _before = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)


def release() -> None:
    """Put back the mask :func:`hold` found: a signal pending meanwhile is delivered now. No-op without it."""
    global _before
    if _before is not None:
        before, _before = _before, None
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def main() -> int:
    """``riverguard`` (the console script and ``python -m riverguard``)."""
    global _process
    _process = True
    hold()
    _hold_standard_fds()
    return _command()


def _hold_standard_fds() -> None:
    """Put the null device on stdin, stdout or stderr when the process started with it closed
    (``riverguard run <&-``): else the next file riverguard opens takes its number. ``run``'s own signal pipe
    became its stdin (it waited there for good), and with stderr closed the first message stopped it, every
    metric lost. Now stdin is at its end (``replay -`` refuses it: :func:`closed_at_start`), stdout refuses
    writes (each command says so and exits 1, as for any failed write) and the messages go nowhere."""
    import os
    import sys

    for fd, name, flags, mode in ((0, "stdin", os.O_RDONLY, "r"), (1, "stdout", os.O_RDONLY, "w"),
                                  (2, "stderr", os.O_WRONLY, "w")):
        try:
            os.fstat(fd)
        except OSError:
            _closed.add(fd)
            held = os.open(os.devnull, flags)  # the lowest free number: fd itself (those below are open)
            if held != fd:
                os.dup2(held, fd)
                os.close(held)
            if getattr(sys, name) is None:
                setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115


def _command() -> int:
    from .cli import main as command
    from .output import install

    install()  # every byte written to stdout, or an error that says so (cli.main tells it)
    return command()
