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

__all__ = ["hold", "is_process", "main", "release"]

_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
#: The signal mask before :func:`hold` (None: nothing held).
_before: set[signal.Signals] | None = None
#: Whether the command runs as the process's own (:func:`main`): it exits when the command returns.
_process = False


def is_process() -> bool:
    """Whether the command is the process's own (``riverguard``, ``python -m riverguard``), which ends when
    it returns; not a program or a test calling ``riverguard.cli.main``."""
    return _process


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
    return _command()


def _command() -> int:
    from .cli import main as command
    from .output import install

    install()  # every byte written to stdout, or an error that says so
    return command()
