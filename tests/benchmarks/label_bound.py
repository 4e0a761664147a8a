"""``python -m tests.benchmarks.label_bound``: how far one simple kind of evidence gets when the labels set its threshold.

The question behind issue 12's CMD target: is what the default detector
misses on a corpus a kind of evidence it lacks, or a threshold that differs
from series to series? The evidence here is a robust z-score: each value
against the median and median absolute deviation of the previous ``--days``
of event time (at least 30 samples), flagged at ``k`` or more, at most once
every 6 hours. For each series the script scores every ``k`` of a grid
(event-wise, as ``riverguard evaluate``), then reports the windows caught
within a budget of false alarms in two ways: one ``k`` for every series (what
a detector can do), and the best ``k`` for each series chosen with its labels
(a knapsack over the series; what no detector can do without the labels).
A wide gap between the two means the labels ask for per-series calibration.
About 20 seconds on CMD.

``--spot``: the same evidence with a threshold each series sets for itself,
without the labels: SPOT (Siffer et al., "Anomaly detection in streams with
extreme value theory", KDD 2017) fits a generalized Pareto distribution to
the z-scores above the series' own ``--spot-level`` quantile (method of
moments, refitted at each new excess; anomalies are not learned) and flags
a z-score beyond the quantile of risk ``q``: one ``q`` for every series.
"""

from __future__ import annotations

import argparse
import bisect
import math
import sys
from collections.abc import Sequence

import numpy as np

from riverguard.evaluate import events
from riverguard.evaluate.corpus import NabFile, default_corpus_path, load_corpus

GRID = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0, 50.0)
HOLD = 6 * 3600.0  # seconds between two flags of a series


def robust_stats(values: np.ndarray, times: Sequence[float], days: float) -> tuple[np.ndarray, np.ndarray]:
    """(value - median) / (1.4826 MAD) over the previous ``days``, signed, and the value's rank there (the share of
    those values below it); both 0 where fewer than 30 samples."""
    z = np.zeros(len(values))
    rank = np.zeros(len(values))
    for i in range(len(values)):
        window = values[bisect.bisect_left(times, times[i] - days * 86400.0) : i]
        if len(window) < 30:
            continue
        med = float(np.median(window))
        scale = max(1.4826 * float(np.median(np.abs(window - med))), 1e-9 * abs(med), 1e-12)
        z[i] = (values[i] - med) / scale
        rank[i] = float(np.count_nonzero(window < values[i])) / len(window)
    return z, rank


def robust_z(values: np.ndarray, times: Sequence[float], days: float) -> np.ndarray:
    """|value - median| / (1.4826 MAD) over the previous ``days`` (0 where fewer than 30 samples)."""
    return np.abs(robust_stats(values, times, days)[0])


def flags(z: np.ndarray, times: Sequence[float], k: float) -> np.ndarray:
    out = np.zeros(len(z), dtype=bool)
    last = -np.inf
    for i in np.flatnonzero(z >= k):
        if times[i] - last >= HOLD:
            out[i] = True
            last = times[i]
    return out


SPOT_QS = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
SPOT_START = 200  # positive z-scores that make the initial tail


def spot_flags(z: np.ndarray, times: Sequence[float], q: float, level: float) -> np.ndarray:
    """SPOT's flags over the positive z-scores (at most one every ``HOLD``): beyond the risk-``q`` quantile of a
    generalized Pareto tail fitted above the ``level`` quantile of the first 15 % (at least ``SPOT_START``)."""
    out = np.zeros(len(z), dtype=bool)
    valid = np.flatnonzero(z > 0)
    if len(valid) < SPOT_START:
        return out
    start = max(SPOT_START, int(0.15 * len(valid)))
    first = z[valid[:start]]
    t = float(np.quantile(first, level))
    excess = first[first > t] - t
    s1, s2, k, n = float(excess.sum()), float((excess * excess).sum()), len(excess), start
    last = -math.inf
    for i in range(valid[start - 1] + 1, len(z)):
        x = float(z[i])
        if x <= 0:
            continue
        bound = math.inf
        if k >= 5:
            mean = s1 / k
            var = s2 / k - mean * mean
            if var <= 0:
                bound = t + 10 * mean
            else:
                shape, scale = 0.5 * (1 - mean * mean / var), 0.5 * mean * (1 + mean * mean / var)
                r = q * n / k
                bound = t + scale / shape * (r**-shape - 1) if abs(shape) > 1e-9 else t - scale * math.log(r)
        if x > bound:  # an anomaly: flagged, not learned
            if times[i] - last >= HOLD:
                out[i] = True
                last = times[i]
            continue
        n += 1
        if x > t:
            s1, s2, k = s1 + x - t, s2 + (x - t) ** 2, k + 1
    return out


def spot(files: Sequence[NabFile], days: float, level: float) -> None:
    """Events caught and false alarms of SPOT at each ``q`` of ``SPOT_QS``, one ``q`` for every series."""
    totals = [[0, 0] for _ in SPOT_QS]
    for f in files:
        times = (f.timestamps / 1e9).tolist()
        z = robust_z(np.asarray(f.values, dtype=float), times, days)
        for total, q in zip(totals, SPOT_QS):
            e = events.score_series(f.timestamps, f.incidents(), spot_flags(z, times, q, level))
            total[0] += e.caught
            total[1] += e.false_alarms
    print(f"SPOT above the {level:g} quantile, one q for every series (events caught, false alarms):")
    print("  " + ", ".join(f"q {q:g}: {c}, {fa}" for q, (c, fa) in zip(SPOT_QS, totals)))


def options(f: NabFile, days: float) -> list[tuple[int, int]]:
    """(false alarms, events caught) of one series at each k of the grid, and with no flag at all."""
    times = (f.timestamps / 1e9).tolist()
    z = robust_z(np.asarray(f.values, dtype=float), times, days)
    out = [(0, 0)]
    for k in GRID:
        e = events.score_series(f.timestamps, f.incidents(), flags(z, times, k))
        out.append((e.false_alarms, e.caught))
    return out


def best_per_series(per_series: list[list[tuple[int, int]]], budget: int) -> int:
    """Most events caught with at most ``budget`` false alarms, one option per series (a knapsack)."""
    none = -1
    best = [0] + [none] * budget
    for opts in per_series:
        nxt = [none] * (budget + 1)
        for spent, caught in enumerate(best):
            if caught == none:
                continue
            for fa, c in opts:
                if spent + fa <= budget and caught + c > nxt[spent + fa]:
                    nxt[spent + fa] = caught + c
        best = nxt
    return max(best)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.label_bound", description=__doc__.split("\n")[0])
    parser.add_argument("--nab", default=None, help="the corpus (default: shared/cmd, as riverguard evaluate finds it)")
    parser.add_argument("--days", type=float, default=7.0, help="days of history behind each value (default 7)")
    parser.add_argument("--budget", type=int, action="append", help="false alarms allowed (repeatable; default 67, 76)")
    parser.add_argument("--spot", action="store_true", help="SPOT's own threshold per series instead (no labels)")
    parser.add_argument("--spot-level", type=float, default=0.98, help="SPOT's initial quantile (default 0.98)")
    args = parser.parse_args(argv)
    files = load_corpus(args.nab or default_corpus_path("cmd", "RIVERGUARD_CMD"))
    if args.spot:
        spot(files, args.days, args.spot_level)
        return 0
    per_series = [options(f, args.days) for f in files]
    total = sum(events.score_series(f.timestamps, f.incidents(), np.zeros(len(f.values), dtype=bool)).events
                for f in files)
    print(f"{len(files)} series, {total} events; one k for every series (events caught, false alarms):")
    print("  " + ", ".join(f"k {k:g}: {sum(o[j][1] for o in per_series)}, {sum(o[j][0] for o in per_series)}"
                           for j, k in enumerate(GRID, start=1)))
    for budget in args.budget or [67, 76]:
        fits = [(sum(o[j][1] for o in per_series), k) for j, k in enumerate(GRID, start=1)
                if sum(o[j][0] for o in per_series) <= budget]
        single = f"{max(fits)[0]}/{total} (k = {max(fits)[1]:g})" if fits else "none fits"
        print(f"within {budget} false alarms: one k for every series {single}; "
              f"k chosen per series with the labels {best_per_series(per_series, budget)}/{total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
