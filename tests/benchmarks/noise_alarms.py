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

``--families server`` replays instead twelve families shaped like the fields
Telegraf collects on a quiet server (synthetic shapes, not recorded data; see
``SERVER``), written as Telegraf writes them: percentages of whole CPU ticks,
memory pages or disk blocks, counters and gauges as integers, ``load1`` with
two decimals. After the flags, the script prints the *alarms*, what a user is
paged for: runs of flags of one series, a flag more than ``ALARM_GAP`` seconds
of event time after the previous one beginning a new alarm, counted under the
kind of evidence of that first flag; then, per family, flags and alarms per
series-day and the alarms per series-day of each kind (docs/detection.md, "A quiet
server (benchmark)").

``--families routine`` replays five patterns that recur and are no incident
(``ROUTINE``): a reading held 5 minutes every hour, a solar output at 0.0
every night, latency-like spikes that come in clusters, noise three times
as large for 10 minutes every hour, a sparse error count. A change that reports repeated
incidents again should be measured here too: a routine must not be
reported at every recurrence (docs/detection.md, "Routine patterns
(benchmark)").
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Callable, Sequence

from riverguard.detectors import REGISTRY
from riverguard.detectors.steps import EVIDENCE as KINDS  # the detector's ``_why`` codes by name

FAMILIES = ("gauss", "ar", "counts", "daily", "lognormal")
DAY = 86400
HOUR = 3600
#: a flag more than this many seconds of event time after the previous flag of its series begins a new alarm
ALARM_GAP = 600.0
#: the quiet server's size: CPUs (Telegraf's cpu-total counts USER_HZ ticks, 100 a second each), memory pages
#: (16 GiB of 4 KiB) and disk blocks (500 GB of 4 KiB)
CPUS = 4
PAGES = 16 * 2**30 // 4096
BLOCKS = 500 * 10**9 // 4096


def series(family: str, n: int, step: int, seed: int | str) -> list[float]:
    """``n`` values of one noise-only series of ``family``, ``step`` seconds apart, drawn by a generator
    seeded with ``seed`` (this script's series ``k`` of a family: ``f"{family}/{k}"``)."""
    rng = random.Random(seed)
    if family in SERVER:
        return SERVER[family](rng, n, step)
    if family in ROUTINE:
        return ROUTINE[family](rng, n, step)
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


# -- a quiet server: one function per family, (generator, n, step) -> values ----------------------------


def _share(percent: float, units: int) -> float:
    """``percent`` (clipped to [0, 100]) of ``units`` whole units, as the percentage Telegraf writes: a
    float64 ratio of whole counts (CPU ticks, memory pages, disk blocks)."""
    return 100.0 * round(max(0.0, min(100.0, percent)) * units / 100.0) / units


def _phase(i: int, step: int) -> float:
    return 2.0 * math.pi * i * step / DAY


def cpu_idle(rng: random.Random, n: int, step: int) -> list[float]:
    """``cpu,cpu=cpu-total usage_idle``: a daily rhythm of load (20 % ± 15 %), noise, a burst in 5 % of the
    intervals."""
    out = []
    for i in range(n):
        load = 20.0 + 15.0 * math.sin(_phase(i, step)) + rng.gauss(0.0, 3.0)
        if rng.random() < 0.05:
            load += rng.expovariate(1.0 / 5.0)
        out.append(_share(100.0 - load, CPUS * 100 * step))
    return out


def cpu_iowait(rng: random.Random, n: int, step: int) -> list[float]:
    """``cpu usage_iowait``: zero in 70 % of the intervals, an exponential burst (mean 0.3 %) in the others."""
    return [_share(rng.expovariate(1.0 / 0.3) if rng.random() < 0.3 else 0.0, CPUS * 100 * step) for _ in range(n)]


def mem_used_pct(rng: random.Random, n: int, step: int) -> list[float]:
    """``mem used_percent``: a sawtooth, a slow leak (17 % a day, a random walk around it) from 30 % to 60 %,
    then a restart back to 30 %."""
    used = rng.uniform(30.0, 60.0)
    out = []
    for _ in range(n):
        used += 0.0002 * step + rng.gauss(0.0, 0.01 * math.sqrt(step / 10.0))
        if used > 60.0:
            used = 30.0
        out.append(_share(used + rng.gauss(0.0, 0.05), PAGES))
    return out


def disk_used_pct(rng: random.Random, n: int, step: int) -> list[float]:
    """``disk used_percent``: slow growth (1.5 % a day, ± 20 % from one interval to the next), a cleanup of
    2 % to 5 % every two days on average."""
    used = rng.uniform(30.0, 50.0)
    out = []
    for _ in range(n):
        used += 1.5 * step / DAY * (1.0 + rng.gauss(0.0, 0.2))
        if rng.random() < step / (2 * DAY):
            used -= rng.uniform(2.0, 5.0)
        out.append(_share(used, BLOCKS))
    return out


def net_bytes(rng: random.Random, n: int, step: int) -> list[float]:
    """``net bytes_recv``: a cumulative counter, 500 kB/s ± 50 % over the day, ± 100 kB/s of noise."""
    total = rng.randrange(10**9, 10**12)
    out = []
    for i in range(n):
        total += max(0, int(rng.gauss(5e5 * (1.0 + 0.5 * math.sin(_phase(i, step))), 1e5))) * step
        out.append(float(total))
    return out


def net_err_in(rng: random.Random, n: int, step: int) -> list[float]:
    """``net err_in`` (or ``drop_in``): a cumulative counter that stays the same for hours and steps by 1,
    once every 4 hours on average."""
    errors = rng.randrange(100)
    out = []
    for _ in range(n):
        errors += rng.random() < step / (4 * HOUR)
        out.append(float(errors))
    return out


def uptime(rng: random.Random, n: int, step: int) -> list[float]:
    """``system uptime``: whole seconds since a boot up to 90 days ago, a linear counter."""
    boot = rng.randrange(HOUR, 90 * DAY)
    return [float(boot + i * step) for i in range(n)]


def load1(rng: random.Random, n: int, step: int) -> list[float]:
    """``system load1``: the kernel's one-minute average (two decimals) of a load of 2 ± 1 over the day,
    with bursts (exponential, mean 5) in 10 % of the intervals."""
    load = 2.0
    decay = math.exp(-step / 60.0)
    out = []
    for i in range(n):
        busy = 2.0 + math.sin(_phase(i, step))
        if rng.random() < 0.1:
            busy += 5.0 * rng.expovariate(1.0)
        load = load * decay + (1.0 - decay) * busy
        out.append(round(load, 2))
    return out


def procs_total(rng: random.Random, n: int, step: int) -> list[float]:
    """``processes total``: a random walk between 280 and 320, a step of -1, 0 or 1 every 10 s."""
    procs = rng.randint(290, 310)
    out = []
    for _ in range(n):
        for _ in range(max(1, step // 10)):
            procs = max(280, min(320, procs + rng.choice((-1, 0, 0, 0, 1))))
        out.append(float(procs))
    return out


def n_users(rng: random.Random, n: int, step: int) -> list[float]:
    """``system n_users``: 0 to 3 users logged in, a change every 6 hours on average."""
    users = 1
    out = []
    for _ in range(n):
        if rng.random() < step / (6 * HOUR):
            users = rng.choice((0, 1, 1, 2, 3))
        out.append(float(users))
    return out


def swap_used(rng: random.Random, n: int, step: int) -> list[float]:
    """``swap used``: no swap in use, 0 bytes."""
    return [0.0] * n


def procs_running(rng: random.Random, n: int, step: int) -> list[float]:
    """``processes running``: 0 to 3, 1 most often."""
    return [float(rng.choice((0, 1, 1, 1, 2, 2, 3))) for _ in range(n)]


#: the quiet server's families (``--families server``) by name
SERVER: dict[str, Callable[[random.Random, int, int], list[float]]] = {
    f.__name__: f
    for f in (cpu_idle, cpu_iowait, mem_used_pct, disk_used_pct, net_bytes, net_err_in, uptime, load1,
              procs_total, n_users, swap_used, procs_running)
}  # fmt: skip


# -- routine patterns that are no incident: one function per family, (generator, n, step) -> values --------


def _ar(rng: random.Random, n: int) -> list[float]:
    """``n`` values of AR(1) noise (phi 0.9, sd 1)."""
    ar = 0.0
    out = []
    for _ in range(n):
        ar = 0.9 * ar + math.sqrt(1.0 - 0.81) * rng.gauss(0.0, 1.0)
        out.append(ar)
    return out


def hourly_hold(rng: random.Random, n: int, step: int) -> list[float]:
    """A sensor (AR(1) noise around 20, sd 0.5, three decimals) that holds its reading for the last 5 minutes
    of every hour, a pump's routine pause: a run of repeats every hour."""
    out: list[float] = []
    for i, e in enumerate(_ar(rng, n)):
        out.append(out[-1] if out and (i * step) % HOUR >= HOUR - 300 else round(20.0 + 0.5 * e, 3))
    return out


def night_zero(rng: random.Random, n: int, step: int) -> list[float]:
    """A solar panel's output: a half sine over 06:00 to 18:00 UTC (peak 500, noise 20, one decimal), exactly
    0.0 at night: a run of zeros every night."""
    out = []
    for i in range(n):
        h = (i * step % DAY) / HOUR
        out.append(round(max(0.0, 500.0 * math.sin((h - 6.0) / 12.0 * math.pi) + rng.gauss(0.0, 20.0)), 1)
                   if 6.0 <= h < 18.0 else 0.0)  # fmt: skip
    return out


def clustered_spikes(rng: random.Random, n: int, step: int) -> list[float]:
    """Latency-like: AR(1) noise around 20 (sd 0.5), spikes of 3 to 7 sd once per 30 minutes of event time
    on average, each bringing another about 20 s later with probability 0.7 (a self-exciting process)."""
    out = []
    due: list[float] = []  # event times of the spikes brought by earlier ones
    for i, e in enumerate(_ar(rng, n)):
        t = i * step
        x = 20.0 + 0.5 * e
        spike = rng.random() < step / (30 * 60)
        while due and due[0] <= t:
            due.pop(0)
            spike = True
        if spike:
            x += 0.5 * rng.choice((6.0, 8.0, 10.0, 14.0))
            if rng.random() < 0.7:
                due.append(t + rng.expovariate(1.0 / 20.0))
                due.sort()
        out.append(round(x, 3))
    return out


def noisy_hour(rng: random.Random, n: int, step: int) -> list[float]:
    """A sensor (AR(1) noise around 20, sd 0.5) whose noise is three times as large for the first 10 minutes
    of every hour, a routine that is no incident (a compressor starting, say)."""
    return [round(20.0 + 0.5 * e * (3.0 if (i * step) % HOUR < 600 else 1.0), 3) for i, e in enumerate(_ar(rng, n))]


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw of mean ``lam`` (Knuth's: a product of uniforms)."""
    k = 0
    p = rng.random()
    limit = math.exp(-lam)
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def sparse_errors(rng: random.Random, n: int, step: int) -> list[float]:
    """An error count per interval: Poisson at 0.02 a second, 0 most seconds at 1 s, with no incident; two
    errors a few seconds apart are routine for it."""
    return [float(poisson(rng, 0.02 * step)) for _ in range(n)]


#: routine patterns that are no incident (``--families routine``) by name: a user expects each to be
#: reported once at most while it is new, not every time it recurs
ROUTINE: dict[str, Callable[[random.Random, int, int], list[float]]] = {
    f.__name__: f for f in (hourly_hold, night_zero, clustered_spikes, noisy_hour, sparse_errors)
}
SETS = {"noise": FAMILIES, "server": tuple(SERVER), "routine": tuple(ROUTINE)}


def count(families: Sequence[str], n: int, step: int, per_family: int, params: dict) -> tuple[Counter, Counter]:
    """The flags and the alarms of the default detector with ``params`` over ``per_family`` series of each
    family, by ``(family, kind, "first day" or "later")``; an alarm counts under its first flag."""
    cls = REGISTRY["sentinel"]
    flags: Counter[tuple[str, str, str]] = Counter()
    alarms: Counter[tuple[str, str, str]] = Counter()
    for family in families:
        for seed in range(per_family):
            det = cls(**params)
            hits = []  # (event time, key) of each flag
            for i, x in enumerate(series(family, n, step, f"{family}/{seed}")):
                if det.process(x, 1.7e9 + step * i) >= cls.default_threshold:
                    t = i * step
                    hits.append((t, (family, KINDS.get(det._why, str(det._why)), "first day" if t < DAY else "later")))
            for (_, key), begins in zip(hits, alarm_starts([t for t, _ in hits])):
                flags[key] += 1
                if begins:
                    alarms[key] += 1
    return flags, alarms


def alarm_starts(times: Sequence[float]) -> list[bool]:
    """Whether each flag of a series, at these event times (in order), begins an alarm: the first does, and
    each one more than ``ALARM_GAP`` seconds after the previous flag."""
    return [t - previous > ALARM_GAP for previous, t in zip([-math.inf, *times], times)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.noise_alarms", description=__doc__.split("\n")[0])
    parser.add_argument("--step", type=int, default=10, help="seconds between samples (default 10)")
    parser.add_argument("--days", type=float, default=5.0, help="days of each series (default 5)")
    parser.add_argument("--per-family", type=int, default=8, help="series of each family (default 8)")
    parser.add_argument("--families", choices=tuple(SETS), default="noise",
                        help="noise: the five noise families (default); server: a quiet server's fields; "
                             "routine: patterns that recur and are no incident")  # fmt: skip
    parser.add_argument("--params", default="{}", help="the detector's parameters, as JSON")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    families = SETS[args.families]
    n = int(args.days * DAY / args.step)
    flags, alarms = count(families, n, args.step, args.per_family, params)
    series_days = args.per_family * args.days
    w = max(10, *map(len, families))  # the width of the family column

    def rows(counts: Counter[tuple[str, str, str]]) -> None:
        for (family, kind, when), k in sorted(counts.items()):
            print(f"  {family:{w}s} {kind:22s} {when:9s} {k}")

    print(f"sentinel {json.dumps(params)}: {len(families) * args.per_family} noise-only series, one sample every "
          f"{args.step} s for {args.days:g} days: {flags.total()} false alarms, "
          f"{flags.total() / (len(families) * series_days):.3f} per series-day")
    rows(flags)
    print(f"alarms (a flag more than {ALARM_GAP:g} s after the previous one of its series begins one): "
          f"{alarms.total()}, {alarms.total() / (len(families) * series_days):.3f} per series-day")
    rows(alarms)
    print("per family, per series-day: flags, alarms, alarms by kind")
    for family in families:
        kinds: Counter[str] = Counter()
        for (f, kind, _), k in alarms.items():
            if f == family:
                kinds[kind] += k
        flagged = sum(k for (f, _, _), k in flags.items() if f == family)
        by_kind = ", ".join(f"{kind} {k / series_days:.3f}" for kind, k in sorted(kinds.items()))
        print(f"  {family:{w}s} {flagged / series_days:6.3f} {kinds.total() / series_days:6.3f}  {by_kind}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
