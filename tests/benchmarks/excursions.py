"""``python -m tests.benchmarks.excursions``: the default detector's flags, or'd with an excursion that lasts.

A probe for issue 12's CMD target, run before anything is built. Many of
CMD's missed windows are excursions of a crash rate far above its usual
level but below earlier incidents, so not a new extreme. The evidence here:
a value at least ``k`` robust standard deviations above the median of the
previous 7 days (``label_bound.robust_stats``) and above the share ``r`` of
those days' values, held for at least ``lasting`` seconds of sample time (a
run of such values, each counting one sample interval); the run is flagged
once, when it has lasted, at most once every 6 hours. These flags are or'd
with the default detector's flags at its shipped threshold and scored on both
corpora, NAB's standard profile and event-wise, as ``riverguard evaluate``
does. About 75 seconds for both corpora (the robust statistics dominate).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from riverguard.config import default_config
from riverguard.evaluate import events, nab
from riverguard.evaluate.corpus import NabFile, default_corpus_path, load_corpus
from riverguard.evaluate.runner import run_corpus

from .label_bound import HOLD, robust_stats

KS = (5.0, 12.0, 40.0)
RANKS = (0.97, 0.995)
LASTING = (0.0, 3600.0, 7200.0)


def excursion_flags(z: np.ndarray, rank: np.ndarray, times: Sequence[float], k: float, r: float,
                    lasting: float, hold: float = HOLD) -> np.ndarray:
    """One flag per run of values above ``k`` and rank ``r`` once it has lasted ``lasting`` s (``hold`` s apart at
    least, 6 h by default).

    Hourly samples; a run of three from 02:00, then one lone value at 05:00 and a run of two from 09:00:

    >>> z = np.array([0, 0, 9, 9, 9, 0, 9, 0, 0, 9, 9, 0, 0, 0, 0, 0, 0, 0])
    >>> rank = np.ones(len(z))
    >>> times = [3600.0 * i for i in range(len(z))]
    >>> np.flatnonzero(excursion_flags(z, rank, times, 5, 0.97, 7200)).tolist()  # when a run has lasted 2 h
    [3, 10]
    >>> np.flatnonzero(excursion_flags(z, rank, times, 5, 0.97, 0)).tolist()  # each run's first value, 05:00 too near
    [2, 9]
    >>> np.flatnonzero(excursion_flags(z, rank * 0.9, times, 5, 0.97, 0)).tolist()  # not above 97 % of the week
    []
    """
    out = np.zeros(len(z), dtype=bool)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    above = (z >= k) & (rank >= r)
    run, done, last = 0, False, -np.inf
    for i in range(len(z)):
        if not above[i]:
            run, done = 0, False
            continue
        run += 1
        if done or run * step < lasting:
            continue
        done = True
        if times[i] - last >= hold:
            out[i] = True
            last = times[i]
    return out


class Figures(NamedTuple):
    """NAB standard score and event-wise figures of one corpus."""

    standard: float
    caught: int
    events: int
    false_alarms: int
    days: float  # judged series-days


def figures(files: Sequence[NabFile], flags: Sequence[np.ndarray]) -> Figures:
    profile = nab.PROFILES["standard"]
    raw, windows, total, caught, alarms, days = 0.0, 0, 0, 0, 0, 0.0
    for f, det in zip(files, flags, strict=True):
        s = nab.score_file(nab.prepare(f.labels()), det, profile)
        raw, windows = raw + s.raw, windows + s.windows
        e = events.score_series(f.timestamps, f.incidents(), det)
        total, caught, alarms, days = total + e.events, caught + e.caught, alarms + e.false_alarms, days + e.days
    return Figures(nab.normalise(raw, windows, profile), caught, total, alarms, days)


def show(x: Figures) -> str:
    per_day = x.false_alarms / x.days
    return f"{x.standard:6.2f}  {x.caught:3d}/{x.events}  {x.false_alarms:4d} FA  {per_day:.3f}/series-day"


def score(files: Sequence[NabFile], flags: Sequence[np.ndarray]) -> str:
    """NAB standard score and event-wise figures of one corpus, as a table's cell."""
    return show(figures(files, flags))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.excursions", description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=7.0, help="days of history behind each value (default 7)")
    args = parser.parse_args(argv)
    corpora = {}
    for name, env in (("nab", "RIVERGUARD_NAB"), ("cmd", "RIVERGUARD_CMD")):
        files = load_corpus(default_corpus_path(name, env))
        default = [r.flags for r in run_corpus(default_config(), files)]
        stats = []
        for f in files:
            times = (f.timestamps / 1e9).tolist()
            stats.append((*robust_stats(np.asarray(f.values, dtype=float), times, args.days), times))
        corpora[name] = (files, default, stats)
    print("k      rank   lasting | NAB: standard, events caught, false alarms | CMD: the same")
    print("default alone          | " + " | ".join(score(files, default) for files, default, _ in corpora.values()))
    for k in KS:
        for r in RANKS:
            for lasting in LASTING:
                cells = [score(files, [d | excursion_flags(z, rank, t, k, r, lasting)
                                       for d, (z, rank, t) in zip(default, stats, strict=True)])
                         for files, default, stats in corpora.values()]
                print(f"{k:<6g} {r:<6g} {lasting:>5.0f} s | " + " | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
