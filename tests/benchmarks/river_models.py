"""``python -m tests.benchmarks.river_models``: what River models from the config cost.

In one process, interleaved, through the real engine (``stream.feed``), per
metric after a warm-up:

- ``sentinel`` on one field (the default detector, the baseline of the ratios);
- the README's ``river`` pipeline (``StandardScaler`` then ``OneClassSVM``) on one field;
- ``hst`` with ``scope = "metric"`` on an 8-field metric (one model, one score per metric);
- ``hst`` per field on the same 8-field metric (8 models), for comparison.

Then the start-up of ``riverguard run`` (one metric in, process exit) with the
default detector and with an ``hst`` rule (which imports River), interleaved.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from riverguard.config import parse
from riverguard.engine import Engine
from riverguard.stream import feed

SVM = """
[[rule]]
name = "svm"
detector = "river"
[rule.params]
model = [{class = "preprocessing.StandardScaler"}, {class = "anomaly.OneClassSVM", nu = 0.2}]
"""
METRIC_HST = '[[rule]]\nname = "m"\nscope = "metric"\ndetector = "hst"\n'
FIELD_HST = '[[rule]]\nname = "f"\ndetector = "hst"\n'
SENTINEL = '[[rule]]\nname = "d"\n'


def _lines(n: int, fields: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        values = ",".join(f"f{k}={rng.gauss(10.0 * k + 5.0, 1.0 + k)!r}" for k in range(fields))
        out.append(f"m,host=a {values} {1_700_000_000_000_000_000 + i * 10**10}\n".encode())
    return out


def _per_metric(config: str, lines: list[bytes], warm: int) -> float:
    engine = Engine(parse(config))
    for line in lines[:warm]:
        feed(engine, line)
    start = time.perf_counter()
    for line in lines[warm:]:
        feed(engine, line)
    return (time.perf_counter() - start) / (len(lines) - warm)


def _startup(config: Path | None) -> float:
    args = [sys.executable, "-m", "riverguard", "run"] + (["--config", str(config)] if config else [])
    start = time.perf_counter()
    subprocess.run(args, input=b"m,host=a f0=1.5 1\n", capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> int:
    one, eight = _lines(3000, 1), _lines(3000, 8)
    cases = {
        "sentinel, 1 field": (SENTINEL, one),
        "river StandardScaler|OneClassSVM, 1 field": (SVM, one),
        "hst scope=metric, 8-field metric": (METRIC_HST, eight),
        "hst per field, 8-field metric (8 models)": (FIELD_HST, eight),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(3):  # interleaved: the machine is shared
        for name, (config, lines) in cases.items():
            times[name].append(_per_metric(config, lines, 1000))
    base = min(times["sentinel, 1 field"])
    print("per metric (best of 3, after 1000 warm-up metrics):")
    for name, values in times.items():
        best = min(values)
        print(f"  {name:45s} {best * 1e6:8.1f} us  ({best / base:6.1f} x sentinel)")
    with tempfile.TemporaryDirectory() as folder:
        hst = Path(folder) / "hst.toml"
        hst.write_text(FIELD_HST)
        runs: dict[str, list[float]] = {"default detector": [], "an hst rule (imports River)": []}
        for _ in range(7):
            runs["default detector"].append(_startup(None))
            runs["an hst rule (imports River)"].append(_startup(hst))
    print("start-up of `riverguard run`, one metric, to exit (median of 7, interleaved):")
    for name, values in runs.items():
        print(f"  {name:45s} {statistics.median(values):8.3f} s  (min {min(values):.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
