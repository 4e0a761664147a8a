"""A seeded line-protocol recording with injected anomalies (for the InfluxDB tests).

``python tests/data/injected.py OUT.lp`` writes it; ``generate()`` returns the
text and where the anomalies are. Noise is bounded (uniform), so without an
injection no value is far from its series' mean.

Series: ``cpu,cpu=cpu-total,host=hN`` (usage_user, usage_system floats,
procs integer, state string) and ``mem,host=hN`` (used_percent float,
used integer), one sample every 10 s per host.
"""

from __future__ import annotations

import random
import sys

START = 1_700_000_000_000_000_000
STEP = 10_000_000_000
HOSTS = ("h1", "h2", "h3")

#: (measurement, host, field, sample index) -> injected value
INJECTED: dict[tuple[str, str, str, int], float] = {
    ("cpu", "h1", "usage_user", 1000): 95.0,
    ("cpu", "h2", "usage_user", 700): 92.0,
    ("cpu", "h2", "usage_user", 1400): 97.5,
    ("mem", "h3", "used_percent", 1200): 88.0,
}


def generate(samples: int = 2000, seed: int = 7) -> tuple[str, dict[tuple[str, str, str], list[int]]]:
    """The recording, and for each (measurement, host, field) the timestamps of its injections."""
    rng = random.Random(seed)
    lines = []
    where: dict[tuple[str, str, str], list[int]] = {}
    for i in range(samples):
        ts = START + i * STEP
        for host in HOSTS:
            user = 20.0 + rng.uniform(-3, 3)
            system = 5.0 + rng.uniform(-1, 1)
            procs = 120 + rng.randint(-3, 3)
            used = 40.0 + rng.uniform(-0.5, 0.5)
            key = ("cpu", host, "usage_user", i)
            if key in INJECTED:
                user = INJECTED[key]
                where.setdefault(key[:3], []).append(ts)
            key = ("mem", host, "used_percent", i)
            if key in INJECTED:
                used = INJECTED[key]
                where.setdefault(key[:3], []).append(ts)
            lines.append(
                f'cpu,cpu=cpu-total,host={host} usage_user={user:.3f},usage_system={system:.3f},'
                f'procs={procs}i,state="ok" {ts}'
            )
            lines.append(f"mem,host={host} used_percent={used:.3f},used={int(used * 1e8)}i {ts}")
    return "\n".join(lines) + "\n", where


if __name__ == "__main__":
    text, _ = generate()
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        f.write(text)
