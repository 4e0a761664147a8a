"""``python -m tests.benchmarks.sparse_surges``: surges of a sparse error count, caught or missed, against chance.

An error count per sample (Poisson at ``RATES`` errors a second: 0 most
seconds at 1 s) whose rate rises ``MULTS`` times for 10 minutes, the first
surge a day in, then every 36 hours on average (exponential gaps of at least
6 hours); ``--per-family`` series of each rate and rise (seeded), one sample
every ``--step`` seconds for ``--days`` days. Surges are caught, and false
alarms counted, as ``gauge_outages`` counts them.
Besides, the same windows 3 hours after each surge, where nothing happens,
are scored as if they were surges: a detector that flags a series often
"catches" some of them by chance, and so as many of the real ones.
Synthetic, deterministic; ``--params`` takes the default detector's
parameters as JSON (docs/detection.md, "Sparse counts at fine sampling").
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence

from .gauge_outages import Tally, flags, tally
from .noise_alarms import DAY, HOUR, poisson

RATES = (0.005, 0.02)
MULTS = (3.0, 5.0, 15.0)
SURGE = 600.0  # seconds
EVERY = 36 * HOUR  # mean seconds between surges
LATER = 3 * HOUR  # the empty windows: this long after each surge


def series(rate: float, mult: float, n: int, step: int, seed: str) -> tuple[list[float], list[tuple[int, int]]]:
    """``n`` samples of the count and its surges as ``(first, first after)`` sample indices."""
    rng = random.Random(seed)
    spans = []
    t = DAY + rng.uniform(0.0, 6 * HOUR)
    while t + SURGE < n * step:
        a = int(t // step)
        spans.append((a, a + max(1, int(SURGE // step))))
        t += max(6 * HOUR, rng.expovariate(1.0 / EVERY))
    inside = [False] * n
    for a, b in spans:
        inside[a:b] = [True] * (b - a)
    return [float(poisson(rng, rate * step * (mult if surging else 1.0))) for surging in inside], spans


def measure(n: int, step: int, per_family: int, params: dict) -> dict[tuple[float, float], tuple[Tally, Tally]]:
    """For each rate and rise: the tally of the surges, and that of the empty windows after them."""
    out = {}
    later = int(LATER // step)
    for rate in RATES:
        for mult in MULTS:
            real, empty = Tally(), Tally()
            for k in range(per_family):
                xs, spans = series(rate, mult, n, step, f"{rate}/{mult}/{k}")
                flagged = flags(xs, step, params)
                real.add(tally(flagged, spans, step, n * step / DAY))
                empty.add(tally(flagged, [(a + later, b + later) for a, b in spans if b + later < n], step, 0.0))
            out[rate, mult] = (real, empty)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.sparse_surges", description=__doc__.split("\n")[0])
    parser.add_argument("--step", type=int, default=1, help="seconds between samples (default 1)")
    parser.add_argument("--days", type=float, default=8.0, help="days of each series (default 8)")
    parser.add_argument("--per-family", type=int, default=3, help="series of each rate and rise (default 3)")
    parser.add_argument("--params", default="{}", help="the detector's parameters, as JSON")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    tallies = measure(int(args.days * DAY / args.step), args.step, args.per_family, params)
    print(f"sentinel {json.dumps(params)}: error counts, one sample every {args.step} s for {args.days:g} days, "
          f"{args.per_family} series of each rate and rise, surges of {SURGE / 60:g} minutes")  # fmt: skip
    print(f"  {'errors/s':>8s} {'rise':>5s} {'surges':>6s} {'caught':>6s} {'empty windows':>13s} {'caught by chance':>16s} "
          f"{'false alarms per series-day':>27s}")  # fmt: skip
    for (rate, mult), (real, empty) in tallies.items():
        print(f"  {rate:8g} {mult:5g} {real.incidents:6d} {real.caught:6d} {empty.incidents:13d} {empty.caught:16d} "
              f"{real.per_day:27.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
