"""``python -m tests.benchmarks.sensor_runs``: labelled test-bench runs sampled every second, scored by ``riverguard evaluate --labels``.

A stand-in for the industrial IoT corpus measured before each release
(not given out): 28 seeded runs of about 20 minutes at 1 s, each with one
anomaly of 2 to 6 minutes in its second half (with ``--long``: 28 runs of
about 4 hours, each with 4 incidents of its kind, which a detector must
report again and again), of seven kinds (a level shift
of 2 or 4 standard deviations, variance times 3, a drift to 6 standard
deviations, a stuck value, sparse spikes of 8, an added oscillation) on four
kinds of signal (white noise, AR(1), a one-minute cycle, values quantised to
half a standard deviation). The script writes them as CSV files
(``timestamp,value,label``) in a temporary folder, or in ``--out``, and runs
``riverguard evaluate --labels`` on them with the default detector, or with
``--params`` (JSON) as its rule's params. Synthetic and small: it shows what
a change does at 1 s, not what the held-out corpus will say. Deterministic.
:func:`figures` gives the event-wise figures it prints, as data (the tests'
``conftest.sensor_runs``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import random
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

KINDS = ("shift2", "shift4", "var3", "drift", "stuck", "spikes", "freq")
SIGNALS = ("noise", "ar", "cycle", "quantised")


def write_runs(folder: Path, long: bool = False, seed: int | None = None) -> list[Path]:
    """Write the 28 runs into ``folder``; their paths. With ``long``, runs of about 4 hours with 4 incidents
    of their kind each (starting on a multiple of 10 minutes, from 30 minutes on, in turn). ``seed``: the
    generator's (3 for the short runs, 100 for the long ones)."""
    rng = random.Random((100 if long else 3) if seed is None else seed)
    base = datetime.datetime(2020, 3, 1, 10, 0, 0)
    paths = []
    for f in range(28):
        kind = KINDS[f % len(KINDS)]
        signal = SIGNALS[(f // len(KINDS)) % len(SIGNALS)]
        if long:
            n = rng.randint(12000, 16000)
            starts = sorted(rng.sample(range(1800, n - 400, 600), 4))
            incidents = [(start, rng.randint(120, 360)) for start in starts]
        else:
            n = rng.randint(1000, 1300)
            start = rng.randint(int(n * 0.5), int(n * 0.7))
            incidents = [(start, rng.randint(120, 360))]
        level = rng.uniform(5, 100)
        sd = level * rng.uniform(0.01, 0.05)
        ar = 0.0
        rows: list[tuple[str, float, int]] = []
        for i in range(n):
            e = rng.gauss(0, 1)
            if signal == "ar":
                ar = 0.9 * ar + math.sqrt(1 - 0.81) * e
                e = ar
            x = level + sd * e
            if signal == "cycle":
                x += 3 * sd * math.sin(2 * math.pi * i / 60)
            inside = [(start, length) for start, length in incidents if start <= i < start + length]
            anomalous = bool(inside)
            if inside:
                start, length = inside[0]
                k = i - start
                if kind == "shift2":
                    x += 2 * sd
                elif kind == "shift4":
                    x += 4 * sd
                elif kind == "var3":
                    x = level + 3 * (x - level)
                elif kind == "drift":
                    x += 6 * sd * k / length
                elif kind == "stuck":
                    x = rows[start - 1][1] if k else x
                elif kind == "spikes":
                    x += 8 * sd if rng.random() < 0.05 else 0
                else:
                    x += 3 * sd * math.sin(2 * math.pi * i / 7)
            if signal == "quantised":
                x = round(x / (sd / 2)) * (sd / 2)
            rows.append(((base + datetime.timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S"), x, int(anomalous)))
        base += datetime.timedelta(days=1)
        path = folder / f"{f:02d}-{signal}-{kind}.csv"
        path.write_text("timestamp,value,label\n" + "".join(f"{t},{x:.6g},{label}\n" for t, x, label in rows))
        paths.append(path)
    return paths


def rules(params: dict[str, Any]) -> str:
    """The config of the runs: one rule, the default detector, ``params`` as its ``[rule.params]``."""
    table = "".join(f"{k} = {json.dumps(v)}\n" for k, v in params.items())
    return '[[rule]]\nname = "all"\n' + ("[rule.params]\n" + table if params else "")


def figures(params: dict[str, Any] | None = None, long: bool = False) -> dict[str, Any]:
    """The event-wise figures of the 28 runs under :func:`rules` with ``params``, as data: what ``riverguard
    evaluate --labels`` prints for the corpus (``events``, ``caught``, ``false_alarms``, ``recall``,
    ``precision``, ``f1``, ``false_alarms_per_day``, ``median_delay_s``: :func:`riverguard.evaluate.events.summary`),
    worked out by the same code in this process."""
    from riverguard.config import parse
    from riverguard.evaluate.corpus import load_labels
    from riverguard.evaluate.report import evaluate_events
    from riverguard.evaluate.runner import run_corpus

    with tempfile.TemporaryDirectory() as tmp:
        files = load_labels(write_runs(Path(tmp), long))
    runs = run_corpus(parse(rules(params or {})), files)
    return evaluate_events(files, [r.flags for r in runs])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.sensor_runs", description=__doc__.split("\n")[0])
    parser.add_argument("--params", default="{}", help="the default detector's parameters, as JSON")
    parser.add_argument("--out", type=Path, help="write the CSV files here and keep them")
    parser.add_argument("--long", action="store_true", help="runs of about 4 hours with 4 incidents each")
    parser.add_argument("--seed", type=int, help="the generator's seed (default 3; 100 with --long)")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = write_runs(folder, args.long, args.seed)
        config = Path(tmp) / "rules.toml"
        config.write_text(rules(params))
        print(f"sentinel {json.dumps(params)}: {len(paths)} {'long ' if args.long else ''}runs at 1 s", flush=True)
        return subprocess.run([sys.executable, "-m", "riverguard", "evaluate", "--config", str(config),
                               "--profile", "standard", "--labels", *map(str, paths)], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
