"""riverguard's own health: one line of measurement ``riverguard`` on stdout each interval.

With ``[monitor] interval = "60s"`` the stream loop writes, between two
metrics and flushed, a line such as::

    riverguard,host=web1,mode=compiled,status=scoring,version=0.1.0 metrics=1200i,fields_scored=3600i,anomalies=3i,...,lag_seconds=0.41 1764288000000000000

Telegraf forwards it with everything else (the way ``inputs.internal``
reports Telegraf's own health), but adds no ``host`` tag nor ``[global_tags]``
to it (it does so for an input's metrics, not for a processor's new ones):
the line carries ``host``, this machine's name as Telegraf's default, and
``[monitor] tags``, which may set another or leave it out; ``status`` says
whether this process scores (``passthrough``: see :func:`stream.passthrough`).
Counters count since the process started; gauges are read when the line is
written. ``lag_seconds`` (wall clock minus
the newest event time seen, leaving out timestamps far ahead of the stream's clock) is left out until a timestamped metric arrived:
there is no lag to speak of before, and a made-up 0 would read as "on time".
Metrics of measurement ``riverguard`` are never scored, so feeding
riverguard's output back into riverguard scores none of these fields.
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable
from typing import Any

from . import __version__
from ._compiled import is_compiled
from .engine import MONITOR_MEASUREMENT, Engine
from .lineprotocol import build_line

__all__ = ["COUNTERS", "GAUGES", "Monitor", "rss_bytes"]

# The line's fields, in the order written: each name once, with where its value comes from.
#: Integer counters since start: the engine's attributes of these names ...
_ENGINE_COUNTERS = ("metrics", "fields_scored", "anomalies", "parse_errors", "evicted", "expired")
#: ... then the checkpoint store's (0 without one): field name -> the store's attribute.
_STORE_COUNTERS = {"checkpoints": "checkpoints", "checkpoint_failures": "failures", "checkpoints_skipped": "skipped"}
#: Gauges, read when the line is written: ints, but checkpoint_seconds (a float); then lag_seconds.
_GAUGES: dict[str, Callable[[Engine, Any], int | float]] = {
    "series": lambda engine, store: len(engine.series),
    "checkpoint_seconds": lambda engine, store: float(store.last_seconds) if store else 0.0,
    "checkpoint_bytes": lambda engine, store: store.last_bytes if store else 0,
    "rss_bytes": lambda engine, store: rss_bytes(),
}
COUNTERS = (*_ENGINE_COUNTERS, *_STORE_COUNTERS)
GAUGES = (*_GAUGES, "lag_seconds")

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """The process's resident set size now (Linux ``/proc/self/statm``; elsewhere the peak)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Monitor:
    r"""Builds the ``riverguard`` line for ``engine`` (and its checkpoint ``store``, if any).

    >>> from riverguard.config import default_config
    >>> monitor = Monitor(Engine(default_config()), interval=60.0, clock=lambda: 2.5)
    >>> line = monitor.line(wall_ns=3_000_000_000)
    >>> line.startswith(b"riverguard,host="), line.split(b" ")[1][:40], line.split(b" ")[2]
    (True, b'metrics=0i,fields_scored=0i,anomalies=0i', b'3000000000\n')
    """

    def __init__(self, engine: Engine, interval: float, store: Any = None, clock=time.monotonic,
                 status: str = "scoring") -> None:
        self.engine = engine
        self.store = store
        self.interval = interval
        self.clock = clock
        #: status: "scoring", or "passthrough" (``run`` passes every metric through unscored: stream.passthrough)
        self._own = {"mode": "compiled" if is_compiled(engine._hot) else "pure", "status": status,
                     "version": __version__}
        #: When the next line is due (``clock`` seconds).
        self.deadline = clock() + interval

    def due(self) -> bool:
        return self.clock() >= self.deadline

    def fields(self, wall_ns: int) -> dict[str, int | float]:
        """The line's fields by name: ints are counters or byte/series counts, floats are seconds."""
        engine, store = self.engine, self.store
        values: dict[str, int | float] = {name: getattr(engine, name) for name in _ENGINE_COUNTERS}
        for name, attr in _STORE_COUNTERS.items():
            values[name] = getattr(store, attr) if store else 0
        for name, read in _GAUGES.items():
            values[name] = read(engine, store)
        if engine.now is not None:
            lag = (wall_ns - engine.now) / 1e9
            if math.isfinite(lag):
                values["lag_seconds"] = lag
        return values

    def line(self, wall_ns: int | None = None) -> bytes:
        """The next line (newline-terminated); the following one is due an interval from now."""
        if wall_ns is None:
            wall_ns = time.time_ns()
        self.deadline = self.clock() + self.interval
        return build_line(MONITOR_MEASUREMENT, self.tags(), self.fields(wall_ns), wall_ns)

    def tags(self) -> dict[str, str]:
        """The line's tags: ``host`` and ``[monitor] tags`` of the config in force (a SIGHUP's new ones at
        once), then riverguard's own (``config.MONITOR_OWN_TAGS``)."""
        return {**self.engine.config.monitor.line_tags(), **self._own}
