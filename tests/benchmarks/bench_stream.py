"""A seeded, Telegraf-like line-protocol stream: cpu, mem and disk metrics of many hosts.

Per host (as Telegraf's inputs.cpu, inputs.mem and inputs.disk write them,
tags sorted): ``cpu`` for each of ``cpus`` cores plus ``cpu-total`` (10 float
fields), ``mem`` (4 integer + 2 float fields), ``disk`` per mount (4 integer
+ 1 float field, tags device/fstype/mode/path). A series is measurement + tag
set + field, so a host with 2 cores and 2 disks is 3*10 + 6 + 2*5 = 46 series.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1")
CPU_FIELDS = (
    "usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait",
    "usage_irq", "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice",
)
MEM_INT = ("total", "available", "used", "free")
MEM_FLOAT = ("used_percent", "available_percent")
DISK_INT = ("total", "free", "used", "inodes_used")
DISK_FLOAT = ("used_percent",)
DISKS = (("nvme0n1p1", "ext4", "/"), ("nvme0n1p2", "xfs", "/var/lib/data"), ("sdb1", "ext4", "/srv"))
T0 = 1_700_000_000_000_000_000
STEP = 10_000_000_000  # 10 s, Telegraf's default interval


@dataclass
class _Source:
    prefix: bytes           # measurement and tags, sorted as Telegraf writes them
    fields: tuple[str, ...]  # numeric field keys
    ints: int               # the first `ints` fields are integers (written with an `i`)
    level: list[float]       # current value of each field (a random walk around it)


class Stream:
    """``hosts`` hosts with ``cpus`` cores and ``disks`` mounts each; ``rounds()`` yields one collection per call."""

    def __init__(self, hosts: int, cpus: int = 2, disks: int = 2, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.sources: list[_Source] = []
        self.round = 0
        rng = self.rng
        for h in range(hosts):
            host = f"host=web-{h:05d}".encode()
            region = f"region={REGIONS[h % len(REGIONS)]}".encode()
            for c in [f"cpu{i}" for i in range(cpus)] + ["cpu-total"]:
                self._add(b"cpu,cpu=%s,%s,%s" % (c.encode(), host, region), CPU_FIELDS, 0,
                          [rng.uniform(0, 40) for _ in CPU_FIELDS])
            self._add(b"mem,%s,%s" % (host, region), MEM_INT + MEM_FLOAT, len(MEM_INT),
                      [16e9, 9e9, 7e9, 2e9, 43.0, 57.0])
            for device, fstype, path in DISKS[:disks]:
                self._add(
                    b"disk,device=%s,fstype=%s,%s,mode=rw,path=%s,%s"
                    % (device.encode(), fstype.encode(), host, path.encode(), region),
                    DISK_INT + DISK_FLOAT, len(DISK_INT), [500e9, 200e9, 300e9, 1.2e6, 60.0],
                )

    def trim(self, series: int) -> Stream:
        """Keep exactly ``series`` series (drops trailing sources and fields); returns self."""
        kept, total = [], 0
        for src in self.sources:
            if total >= series:
                break
            n = min(len(src.fields), series - total)
            kept.append(_Source(src.prefix, src.fields[:n], min(src.ints, n), src.level[:n]))
            total += n
        if total < series:
            raise ValueError(f"only {total} series, {series} asked")
        self.sources = kept
        return self

    def _add(self, prefix: bytes, fields: tuple[str, ...], ints: int, level: list[float]) -> None:
        self.sources.append(_Source(prefix, fields, ints, level))

    @property
    def metrics_per_round(self) -> int:
        return len(self.sources)

    @property
    def series(self) -> int:
        return sum(len(s.fields) for s in self.sources)

    def next_round(self) -> list[bytes]:
        """One line per source (newline-terminated), all with the same timestamp."""
        ts = b"%d" % (T0 + self.round * STEP)
        self.round += 1
        gauss, rand = self.rng.gauss, self.rng.random
        lines = []
        for src in self.sources:
            parts = []
            level = src.level
            for i, key in enumerate(src.fields):
                v = level[i] * (1.0 + 0.01 * gauss(0.0, 1.0))
                if rand() < 0.001:  # an occasional spike
                    v *= 3.0
                if i < src.ints:
                    parts.append(b"%s=%di" % (key.encode(), int(v)))
                else:
                    parts.append(b"%s=%s" % (key.encode(), repr(round(v, 3)).encode()))
            lines.append(src.prefix + b" " + b",".join(parts) + b" " + ts + b"\n")
        return lines

    def generate(self, rounds: int) -> bytes:
        return b"".join(b"".join(self.next_round()) for _ in range(rounds))


def numeric_fields(data: bytes) -> int:
    """Numeric fields in a stream this module generated (every field is numeric)."""
    return sum(line.split(b" ", 2)[1].count(b",") + 1 for line in data.splitlines() if line and line[:1] != b"#")
