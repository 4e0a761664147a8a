"""``python -m tests.benchmarks.noise_alarms``: false alarms of the default detector on series with no incident.

Five families of noise-only series, 8 of each (seeded): Gaussian noise,
AR(1) noise (phi 0.95), counts (binomial, mean 3), a daily sine of amplitude
10 with Gaussian noise, and log-normal values; one sample every ``--step``
seconds for ``--days`` days. Every flag at the shipped threshold is a false
alarm: the script prints them per series-day, by family and by the kind of
evidence that made the score (``likelihood`` of the sequence surprise or of
the prediction error, ``extreme``, ``hour`` for a time-of-day extreme,
``stuck``, ``spike``, ``shift`` for a level shift, ``spread`` for a burst of change), split into the first day
and the days after. Labelled
corpora sample every 5 minutes or every hour; this shows what a user at
Telegraf's 10 s interval sees on a quiet server. ``--params`` takes the
detector's parameters as JSON. Deterministic.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Sequence

from riverguard.detectors import REGISTRY
from riverguard.detectors.steps import EVIDENCE as KINDS  # the detector's ``_why`` codes by name

FAMILIES = ("gauss", "ar", "counts", "daily", "lognormal")
DAY = 86400


def series(family: str, n: int, step: int, seed: int | str) -> list[float]:
    """``n`` values of one noise-only series of ``family``, ``step`` seconds apart, drawn by a generator
    seeded with ``seed`` (this script's series ``k`` of a family: ``f"{family}/{k}"``)."""
    rng = random.Random(seed)
    ar = 0.0
    out = []
    for i in range(n):
        e = rng.gauss(0.0, 1.0)
        if family == "gauss":
            x = 50.0 + e
        elif family == "ar":
            ar = 0.95 * ar + math.sqrt(1.0 - 0.95**2) * e
            x = 50.0 + ar
        elif family == "counts":
            x = float(sum(rng.random() < 0.15 for _ in range(20)))
        elif family == "daily":
            x = 50.0 + 10.0 * math.sin(2.0 * math.pi * i * step / DAY) + e
        else:
            x = math.exp(0.5 * e)
        out.append(round(x, 3))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.noise_alarms", description=__doc__.split("\n")[0])
    parser.add_argument("--step", type=int, default=10, help="seconds between samples (default 10)")
    parser.add_argument("--days", type=float, default=5.0, help="days of each series (default 5)")
    parser.add_argument("--per-family", type=int, default=8, help="series of each family (default 8)")
    parser.add_argument("--params", default="{}", help="the detector's parameters, as JSON")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    cls = REGISTRY["sentinel"]
    n = int(args.days * DAY / args.step)
    counts: Counter[tuple[str, str, str]] = Counter()
    for family in FAMILIES:
        for seed in range(args.per_family):
            det = cls(**params)
            for i, x in enumerate(series(family, n, args.step, f"{family}/{seed}")):
                if det.process(x, 1.7e9 + args.step * i) >= cls.default_threshold:
                    when = "first day" if i * args.step < DAY else "later"
                    counts[(family, KINDS.get(det._why, str(det._why)), when)] += 1
    total = len(FAMILIES) * args.per_family
    flags = sum(counts.values())
    print(f"sentinel {json.dumps(params)}: {total} noise-only series, one sample every {args.step} s for "
          f"{args.days:g} days: {flags} false alarms, {flags / (total * args.days):.3f} per series-day")
    for (family, kind, when), k in sorted(counts.items()):
        print(f"  {family:10s} {kind:22s} {when:9s} {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
