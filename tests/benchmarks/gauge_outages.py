"""``python -m tests.benchmarks.gauge_outages``: real incidents on exact series, caught or missed, and false alarms.

The other side of the quiet server (``noise_alarms --families server``): there
every flag is false, here each series has incidents a user wants reported,
again and again. The series are *exact*: their values do not move between
changes, as a health check, a replica count, a queue length or an error
counter written by Telegraf. Four families, ``--per-family`` series of each
(seeded ``f"{family}/{k}"``), one sample every ``--step`` seconds for
``--days`` days:

- ``health``: 1, an outage at 0;
- ``replicas``: 3, an outage at 2;
- ``queue``: 0, an incident at 1 to 5 (one value per incident);

each incident lasting 5 minutes to 2 hours (one of 5, 15, 30, 60, 120
minutes), the first 6 to 12 hours in, then gaps exponential with a mean of
``--gap`` hours, at least 2 hours; and

- ``err_counter``: a cumulative counter, + 1 every 4 hours on average
  (``noise_alarms``' ``net_err_in``), an incident being a burst of 10 to 30
  errors a sample for 6 samples, the first 12 to 24 hours in, then gaps as
  above with a mean of at least ``ERR_GAP`` hours (a few bursts in a run).

An incident is *caught* if the detector flags a sample from its first one to
``AFTER`` samples after the first sample back (onset or recovery: a
counter's has none, the window is the same); *at onset* if a flag comes
before the first sample back. The *delay* is the event time from the first
sample of a caught incident to its first flag. Flags outside every window are
false alarms, counted as ``noise_alarms`` counts alarms: a flag more than
``ALARM_GAP`` seconds of event time after the previous flag outside begins a
new one. Synthetic shapes, not recorded data; deterministic. ``--params``
takes the default detector's parameters as JSON (docs/detection.md,
"Outages on exact gauges (benchmark)").
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from riverguard.detectors import REGISTRY

from .noise_alarms import ALARM_GAP, DAY, HOUR, alarm_starts, net_err_in

FAMILIES = ("health", "replicas", "queue", "err_counter")
#: the level of each gauge family between incidents
BASE = {"health": 1.0, "replicas": 3.0, "queue": 0.0}
#: the lengths of a gauge's incidents, in seconds (one drawn for each)
DURATIONS = (300, 900, 1800, 3600, 7200)
#: the shortest gap between two incidents, in hours
MIN_GAP = 2.0
#: the mean gap between two bursts of the error counter is at least this many hours
ERR_GAP = 24.0
#: samples of a burst of the error counter
BURST = 6
#: a flag up to this many samples after the first sample back still catches the incident
AFTER = 5


def incidents(rng: random.Random, n: int, step: int, gap: float, first: tuple[float, float],
              length: int | None = None) -> list[tuple[int, int]]:  # fmt: skip
    """The incidents of a series of ``n`` samples, ``step`` seconds apart: ``(first sample, first sample
    back)``; the first begins ``first`` hours in (uniform), each next one a gap after the previous one's end
    (exponential with a mean of ``gap`` hours, at least ``MIN_GAP``). ``length`` samples each, or one of
    ``DURATIONS``; every window (up to ``AFTER`` samples after the end) fits in the series."""
    out = []
    i = int(rng.uniform(*first) * HOUR / step)
    while True:
        samples = length or max(1, int(rng.choice(DURATIONS) / step))
        if i + samples + AFTER >= n:
            return out
        out.append((i, i + samples))
        i += samples + int(max(MIN_GAP, rng.expovariate(1.0 / gap)) * HOUR / step)


def series(family: str, n: int, step: int, gap: float, seed: int | str) -> tuple[list[float], list[tuple[int, int]]]:
    """``n`` values of one series of ``family``, ``step`` seconds apart, with incidents a mean of ``gap``
    hours apart, drawn by a generator seeded with ``seed``; and its incidents (:func:`incidents`)."""
    rng = random.Random(seed)
    if family == "err_counter":
        xs = net_err_in(rng, n, step)
        spans = incidents(rng, n, step, max(gap, ERR_GAP), (12.0, 24.0), BURST)
        added = 0.0
        bursts = {i for a, b in spans for i in range(a, b)}
        for i in range(n):
            if i in bursts:
                added += rng.randint(10, 30)
            xs[i] += added
        return xs, spans
    xs = [BASE[family]] * n
    spans = incidents(rng, n, step, gap, (6.0, 12.0))
    for a, b in spans:
        value = float(rng.randint(1, 5)) if family == "queue" else BASE[family] - 1.0
        xs[a:b] = [value] * (b - a)
    return xs, spans


@dataclass
class Tally:
    """What the detector did on the series of one family (or all): incidents, caught, caught at onset, false
    alarms, the delays (s) of the caught incidents, series-days."""

    incidents: int = 0
    caught: int = 0
    onset: int = 0
    false_alarms: int = 0
    delays: list[float] = field(default_factory=list)
    series_days: float = 0.0

    def add(self, other: Tally) -> None:
        self.incidents += other.incidents
        self.caught += other.caught
        self.onset += other.onset
        self.false_alarms += other.false_alarms
        self.delays += other.delays
        self.series_days += other.series_days

    @property
    def per_day(self) -> float:
        """False alarms per series-day."""
        return self.false_alarms / self.series_days if self.series_days else 0.0

    def row(self, name: str) -> str:
        delay = f"{statistics.median(self.delays):g}" if self.delays else "-"
        return (f"  {name:12s} {self.incidents:9d} {self.caught:6d} {self.onset:8d} {self.false_alarms:12d} "
                f"{self.per_day:14.3f} {delay:>16s}")  # fmt: skip


def flags(xs: Sequence[float], step: int, params: dict) -> list[int]:
    """The samples of ``xs`` (``step`` seconds apart) that the default detector with ``params`` flags."""
    cls = REGISTRY["sentinel"]
    det = cls(**params)
    return [i for i, x in enumerate(xs) if det.process(x, 1.7e9 + step * i) >= cls.default_threshold]


def tally(flagged: Sequence[int], spans: Sequence[tuple[int, int]], step: int, days: float) -> Tally:
    """The incidents ``spans`` caught by the ``flagged`` samples, and the false alarms outside them, of a series
    of ``days`` series-days."""
    out = Tally(incidents=len(spans), series_days=days)
    inside = set()
    for a, b in spans:
        hits = [i for i in flagged if a <= i <= b + AFTER]
        inside.update(hits)
        if hits:
            out.caught += 1
            out.onset += hits[0] < b
            out.delays.append((hits[0] - a) * step)
    out.false_alarms = sum(alarm_starts([i * step for i in flagged if i not in inside]))
    return out


def score(xs: Sequence[float], spans: Sequence[tuple[int, int]], step: int, params: dict) -> Tally:
    """The default detector with ``params`` on one series ``xs`` with incidents ``spans``, tallied."""
    return tally(flags(xs, step, params), spans, step, len(xs) * step / DAY)


def measure(n: int, step: int, gap: float, per_family: int, params: dict) -> dict[str, Tally]:
    """A :class:`Tally` of each family over its ``per_family`` series of ``n`` samples."""
    out = {}
    for family in FAMILIES:
        out[family] = Tally()
        for k in range(per_family):
            out[family].add(score(*series(family, n, step, gap, f"{family}/{k}"), step, params))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.gauge_outages", description=__doc__.split("\n")[0])
    parser.add_argument("--step", type=int, default=10, help="seconds between samples (default 10)")
    parser.add_argument("--days", type=float, default=5.0, help="days of each series (default 5)")
    parser.add_argument("--per-family", type=int, default=8, help="series of each family (default 8)")
    parser.add_argument("--gap", type=float, default=6.0,
                        help=f"mean hours between incidents (default 6; the error counter's at least {ERR_GAP:g})")  # fmt: skip
    parser.add_argument("--params", default="{}", help="the detector's parameters, as JSON")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    tallies = measure(int(args.days * DAY / args.step), args.step, args.gap, args.per_family, params)
    total = Tally()
    for tally in tallies.values():
        total.add(tally)
    print(f"sentinel {json.dumps(params)}: {len(FAMILIES) * args.per_family} exact series, one sample every "
          f"{args.step} s for {args.days:g} days, an incident every {args.gap:g} h on average: "
          f"{total.caught} of {total.incidents} incidents caught, {total.false_alarms} false alarms")  # fmt: skip
    print(f"  {'family':12s} {'incidents':>9s} {'caught':>6s} {'at onset':>8s} {'false alarms':>12s} "
          f"{'per series-day':>14s} {'median delay (s)':>16s}")  # fmt: skip
    for family, tally in tallies.items():
        print(tally.row(family))
    print(total.row("all"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
