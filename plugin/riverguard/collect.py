"""``riverguard collect``: this host's cpu and mem metrics as line protocol.

The metrics have the names, tags and field types of Telegraf's ``inputs.cpu``
(``percpu = true``, ``totalcpu = true``, ``collect_cpu_time = false``) and
``inputs.mem``, so ``riverguard collect | riverguard run`` shows live
detection on the same series a Telegraf deployment would score. One batch is
written (and flushed) per interval, with nanosecond timestamps.

cpu usage is computed like Telegraf: the change of each cpu time over the
interval as a percentage of the change of the total (user + system + nice +
iowait + irq + softirq + steal + idle; guest time is part of user time).
A cpu whose times did not move since the last batch (two samples within one
kernel tick) is left out of the batch, as Telegraf leaves it out.
The first batch is written one interval after the start.

Needs psutil: the ``collect`` extra (README, Install).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from .config import duration_text, parse_duration
from .lineprotocol import build_line, host_name
from .log import printable

__all__ = ["add_parser", "cpu_lines", "main", "mem_line"]

_CPU_FIELDS = ("user", "system", "idle", "nice", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")
_TOTAL_PARTS = ("user", "system", "nice", "iowait", "irq", "softirq", "steal", "idle")

# /proc/meminfo key -> Telegraf inputs.mem field (Linux); values in kB except page counts.
_MEMINFO = {
    "Active": "active",
    "Inactive": "inactive",
    "Buffers": "buffered",
    "Cached": "cached",
    "Shmem": "shared",
    "Slab": "slab",
    "SReclaimable": "sreclaimable",
    "SUnreclaim": "sunreclaim",
    "Dirty": "dirty",
    "Writeback": "write_back",
    "WritebackTmp": "write_back_tmp",
    "CommitLimit": "commit_limit",
    "Committed_AS": "committed_as",
    "Mapped": "mapped",
    "PageTables": "page_tables",
    "SwapCached": "swap_cached",
    "SwapTotal": "swap_total",
    "SwapFree": "swap_free",
    "VmallocTotal": "vmalloc_total",
    "VmallocUsed": "vmalloc_used",
    "VmallocChunk": "vmalloc_chunk",
    "HighTotal": "high_total",
    "HighFree": "high_free",
    "LowTotal": "low_total",
    "LowFree": "low_free",
    "Hugepagesize": "huge_page_size",
    "HugePages_Total": "huge_pages_total",
    "HugePages_Free": "huge_pages_free",
}
_MEMINFO_COUNTS = {"HugePages_Total", "HugePages_Free"}

#: The least --interval (s): one kernel tick (Linux counts cpu time in 1/USER_HZ = 10 ms). Two samples closer than
#: that mostly see no tick (their cpus are left out: a batch of mem alone), and "1ns" was a busy loop (about 1800
#: batches a second, a core spent on it). At 10 ms cpus still land within one tick (tests exercise that).
MIN_INTERVAL = 0.01


def add_parser(sub: Any) -> None:
    """Add the ``collect`` subcommand to the CLI's subparsers."""
    p = sub.add_parser("collect", help="print this host's cpu and mem metrics as line protocol (needs psutil)")
    p.add_argument("--interval", default="1s", metavar="DURATION", help=f'time between batches, at least "{duration_text(MIN_INTERVAL)}" (default: "1s")')
    p.add_argument("--count", type=int, default=None, metavar="N", help="stop after N batches (default: run until killed)")
    p.add_argument("--host", default=None, metavar="NAME", help="value of the host tag (default: this host's name)")


def _float(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def _times(t: Any) -> dict[str, float]:
    return {name: float(getattr(t, name, 0.0)) for name in _CPU_FIELDS}


def cpu_lines(previous: list[dict[str, float]], current: list[dict[str, float]], names: list[str], host: str, ts: int) -> list[bytes]:
    """Telegraf ``cpu`` lines for the change from ``previous`` to ``current`` cpu times.

    >>> a = {"user": 10.0, "system": 5.0, "idle": 85.0}
    >>> b = {"user": 12.0, "system": 5.5, "idle": 87.5}
    >>> cpu_lines([a], [b], ["cpu-total"], "h", 1)[0][:80]
    b'cpu,cpu=cpu-total,host=h usage_user=40,usage_system=10,usage_idle=50,usage_nice='
    """
    out = []
    for prev, cur, name in zip(previous, current, names):
        total = sum(cur.get(k, 0.0) for k in _TOTAL_PARTS) - sum(prev.get(k, 0.0) for k in _TOTAL_PARTS)
        if not total > 0:  # its times did not move (samples within one kernel tick): no usage to speak of
            continue
        fields: dict[str, float | int] = {}
        for key in _CPU_FIELDS:
            delta = cur.get(key, 0.0) - prev.get(key, 0.0)
            usage = 100.0 * delta / total
            fields[f"usage_{key}"] = _float(min(max(usage, 0.0), 100.0))
        out.append(build_line("cpu", {"cpu": name, "host": host}, fields, ts))
    return out


def _meminfo() -> dict[str, int]:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        field = _MEMINFO.get(key)
        parts = rest.split()
        if field is None or not parts or not parts[0].isdigit():
            continue
        n = int(parts[0])
        values[field] = n if key in _MEMINFO_COUNTS else n * 1024
    return values


def mem_line(host: str, ts: int) -> bytes:
    """A Telegraf ``mem`` line: byte counts as integers (``i``), percentages as floats."""
    import psutil

    vm = psutil.virtual_memory()
    ints: dict[str, int] = {
        "total": int(vm.total),
        "available": int(vm.available),
        "used": int(vm.used),
        "free": int(vm.free),
    }
    for name, attr in (("active", "active"), ("inactive", "inactive"), ("buffered", "buffers"),
                       ("cached", "cached"), ("shared", "shared"), ("slab", "slab"), ("wired", "wired")):
        if hasattr(vm, attr):
            ints[name] = int(getattr(vm, attr))
    for name, value in _meminfo().items():
        ints.setdefault(name, value)
    total = vm.total or 1
    fields: dict[str, float | int] = dict(sorted(ints.items()))
    fields["used_percent"] = _float(100.0 * vm.used / total)
    fields["available_percent"] = _float(100.0 * vm.available / total)
    return build_line("mem", {"host": host}, fields, ts)


def main(args: argparse.Namespace) -> int:
    try:
        import psutil
    except ImportError:
        from ._extras import install_command

        sys.stderr.write(f"E! [riverguard] collect needs the optional collect extra (psutil): {install_command('collect')}\n")
        return 2  # a missing extra is a usage error, as for replay --report (README, Exit codes)
    try:
        interval = parse_duration(args.interval)
    except ValueError as err:
        sys.stderr.write(f"E! [riverguard] --interval: {printable(str(err))}\n")
        return 2
    if args.count is not None and args.count < 1:
        sys.stderr.write(f"E! [riverguard] --count {args.count}: need --count >= 1 (leave --count out to run until stopped)\n")
        return 2
    if interval < MIN_INTERVAL:  # as pull --every: a command line is refused, not bent (a config's is, with a W!)
        sys.stderr.write(f'E! [riverguard] --interval must be at least {duration_text(MIN_INTERVAL)} (one kernel tick, '
                         f'the unit of cpu time), got "{printable(args.interval)}"\n')
        return 2
    host = args.host or host_name()
    try:
        build_line("cpu", {"host": host}, {"usage_idle": 0.0})
    except ValueError as err:
        sys.stderr.write(f"E! [riverguard] --host: {printable(str(err))}\n")
        return 2

    def sample() -> tuple[list[dict[str, float]], list[str]]:
        per = [_times(t) for t in psutil.cpu_times(percpu=True)]
        return [_times(psutil.cpu_times()), *per], ["cpu-total", *(f"cpu{i}" for i in range(len(per)))]

    out = sys.stdout.buffer
    previous, names = sample()
    next_at = time.monotonic() + interval
    written = 0
    # A reader gone (`| head`) or a failed write raises to cli.main, which says so and exits 1 (output.stop).
    while args.count is None or written < args.count:
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval
        if next_at < time.monotonic():  # fell behind (suspend, slow pipe): skip ahead
            next_at = time.monotonic() + interval
        ts = time.time_ns()
        current, cur_names = sample()
        lines = cpu_lines(previous, current, cur_names, host, ts) if cur_names == names else []
        previous, names = current, cur_names
        lines.append(mem_line(host, ts))
        out.write(b"".join(lines))
        out.flush()
        written += 1
    return 0
