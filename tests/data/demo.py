"""The demo: a recorded line-protocol file with injected anomalies, replayed through riverguard.

``python tests/data/demo.py`` (what ``make demo`` runs) replays ``demo.lp``
with the default detector and prints which injected anomalies were flagged and
how many flags landed elsewhere; it also writes the replay's HTML report to
``demo-report.html`` (in the current folder; ``--report PATH`` to choose) and
prints its path. ``python tests/data/demo.py --write`` rebuilds
``demo.lp`` from the seeded generator below (the file is committed so the demo
is a replay of a recording, byte for byte the same everywhere).

Six hours of 10-second samples from three web hosts: ``cpu`` (usage_user,
usage_system, usage_idle), ``mem`` (used_percent, used as an integer),
``http`` (requests per second, integer) and a string ``status`` field that
is never scored. Injected (sample index, series):

- spike: ``cpu,host=web1 usage_user`` jumps to 96 % for one sample at 900;
- level shift: ``mem,host=web2 used_percent`` rises by 25 points from 1300 on;
- stuck value: ``cpu,host=web3 usage_idle`` repeats one value from 1600 to 1800;
- dropout: ``http,host=web1 requests`` falls to 0 from 1900 to 1930.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORDING = HERE / "demo.lp"
START = 1_764_288_000_000_000_000  # 2025-11-28T00:00:00Z
STEP = 10_000_000_000
SAMPLES = 2160
HOSTS = ("web1", "web2", "web3")


@dataclass(frozen=True)
class Injection:
    kind: str
    series: str  # measurement,host=... field (as the summary prints it)
    first: int  # first sample index
    last: int  # last sample index
    #: flags count as hits up to this many samples after ``last`` (a stuck
    #: value is often seen when it ends; a level shift right after it starts)
    grace: int = 5


INJECTIONS = (
    Injection("spike", "cpu,host=web1 usage_user", 900, 900),
    Injection("level shift", "mem,host=web2 used_percent", 1300, 1300, grace=10),
    Injection("stuck value", "cpu,host=web3 usage_idle", 1600, 1800),
    Injection("dropout", "http,host=web1 requests", 1900, 1930),
)


def generate(seed: int = 2025) -> str:
    rng = random.Random(seed)
    lines = []
    stuck = None
    for i in range(SAMPLES):
        ts = START + i * STEP
        daily = math.sin(2 * math.pi * i / 2160.0)
        for h, host in enumerate(HOSTS):
            user = 22.0 + 6.0 * daily + rng.gauss(0.0, 1.5) + h
            system = 6.0 + 1.5 * daily + rng.gauss(0.0, 0.5)
            if host == "web1" and i == 900:
                user = 96.0
            idle = 100.0 - user - system
            if host == "web3" and 1600 <= i <= 1800:
                stuck = idle if stuck is None else stuck
                idle = stuck
            used = 41.0 + 0.002 * i + rng.gauss(0.0, 0.4) + (25.0 if host == "web2" and i >= 1300 else 0.0)
            requests = max(0, int(480 + 120 * daily + rng.gauss(0.0, 15.0)))
            if host == "web1" and 1900 <= i <= 1930:
                requests = 0
            lines.append(
                f"cpu,cpu=cpu-total,host={host} usage_user={user:.3f},usage_system={system:.3f},usage_idle={idle:.3f} {ts}"
            )
            lines.append(f"mem,host={host} used_percent={used:.3f},used={int(used * 167772.16)}i {ts}")
            lines.append(f'http,host={host} requests={requests}i,status="ok" {ts}')
    return "\n".join(lines) + "\n"


@dataclass
class Found:
    hits: dict[str, list[int]]  # injection kind -> flagged sample indexes inside its window
    elsewhere: list[tuple[str, int]]  # (series, sample index) flagged outside every window
    scored: int  # scored field samples after warm-up


def flags(output: bytes) -> Found:
    """Read the ``_anomaly=true`` flags back from riverguard's output."""
    hits: dict[str, list[int]] = {inj.kind: [] for inj in INJECTIONS}
    elsewhere: list[tuple[str, int]] = []
    scored = 0
    for line in output.decode().splitlines():
        head, fieldset, ts = line.split(" ")
        index = (int(ts) - START) // STEP
        for item in fieldset.split(","):
            key, _, value = item.partition("=")
            if key.endswith("_anomaly_score"):
                scored += 1
            if not key.endswith("_anomaly") or value != "true":
                continue
            field = key[: -len("_anomaly")]
            host = next(t for t in head.split(",") if t.startswith("host="))
            series = f"{head.split(',')[0]},{host} {field}"
            for inj in INJECTIONS:
                if series == inj.series and inj.first <= index <= inj.last + inj.grace:
                    hits[inj.kind].append(index)
                    break
            else:
                elsewhere.append((series, index))
    return Found(hits, elsewhere, scored)


def main(argv: list[str]) -> int:
    if "--write" in argv:
        RECORDING.write_text(generate(), encoding="utf-8")
        print(f"wrote {RECORDING}")
        return 0
    print(f"replaying {RECORDING.relative_to(Path.cwd()) if RECORDING.is_relative_to(Path.cwd()) else RECORDING}")
    report = Path(argv[argv.index("--report") + 1] if "--report" in argv else "demo-report.html").resolve()
    print(f"  $ riverguard replay --report {report.name} tests/data/demo.lp   (default detector, no config)\n")
    result = subprocess.run(
        [sys.executable, "-m", "riverguard", "replay", "--report", str(report), os.path.relpath(RECORDING)],
        capture_output=True, check=False,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr.decode())
        return result.returncode
    sys.stderr.write(result.stderr.decode())
    found = flags(result.stdout)
    print("\ninjected anomaly                                  flagged at sample")
    for inj in INJECTIONS:
        where = found.hits[inj.kind]
        shown = ", ".join(str(i) for i in where[:6]) + (" ..." if len(where) > 6 else "") if where else "MISSED"
        print(f"  {inj.kind:<12} {inj.series:<28} @ {inj.first:<5} {shown}")
    print(f"\nflags elsewhere: {len(found.elsewhere)} of {found.scored} scored values")
    for series, index in found.elsewhere[:10]:
        print(f"  {series} @ {index}")
    spike = START + INJECTIONS[0].first * STEP
    print("\nthe spike, as riverguard wrote it:")
    for line in result.stdout.decode().splitlines():
        if line.startswith("cpu,cpu=cpu-total,host=web1 ") and line.endswith(f" {spike}"):
            print("  " + line)
            break
    print(f"\nthe report (open it in a browser): {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
