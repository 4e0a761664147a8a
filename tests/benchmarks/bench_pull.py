"""Pull throughput: points per second read from InfluxDB, scored and written back (``riverguard pull``).

``python -m tests.benchmarks.bench_pull [--points 1000000] [--runs 2]``

Starts a real InfluxDB 1.x (``influxd``, as the tests do), stores a seeded
Telegraf-like stream (bench_stream: cpu, mem and disk of 20 hosts, 920
series, about 7.7 numeric fields per point) and times, interleaved:

- **pull**: ``riverguard pull --to-db`` (a fresh database each run, so every
  run reads raw points): query, rebuild, score, write back;
- **backfill**, the baseline: ``riverguard replay --influx-url`` of the same
  points from a line-protocol file: score and write, nothing to read.

Wall time of the whole process (start-up included); peak RSS (VmHWM) sampled every 0.2 s.
The machine is shared: compare the ratio of the two, run side by side.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.influx import InfluxServer, _binary

from .bench_stream import Stream

RIVERGUARD = str(Path(sys.executable).with_name("riverguard"))


def _peak_rss(pid: int) -> int:
    """The process's peak RSS so far in KiB (VmHWM: since its exec, unlike wait4's ru_maxrss,
    which counts the memory of the forking parent)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _timed(cmd: list[str]) -> tuple[float, int, str]:
    """Seconds, peak RSS (MiB, sampled every 0.2 s) and stderr of a command run to completion."""
    with tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _peak_rss(proc.pid))
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        err.seek(0)
        stderr = err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({proc.returncode}):\n{stderr[-2000:]}")
    return elapsed, peak // 1024, stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2, help="runs of each, interleaved (default: 2)")
    args = parser.parse_args(argv)
    binary = _binary()
    if binary is None:
        raise SystemExit("influxd (InfluxDB 1.x) is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = InfluxServer(binary, root)
        server.start()
        try:
            stream = Stream(hosts=20, cpus=2, disks=2, seed=1)
            rounds = -(-args.points // stream.metrics_per_round)
            lines = b"".join(b"".join(stream.next_round()) for _ in range(rounds)).splitlines(keepends=True)[: args.points]
            path = root / "stored.lp"
            path.write_bytes(b"".join(lines))
            fields = sum(line.split(b" ", 2)[1].count(b",") + 1 for line in lines)
            server.create_db("raw")
            started = time.monotonic()
            for i in range(0, len(lines), 10000):
                r = server.write("raw", b"".join(lines[i : i + 10000]))
                assert r.status == 204, r.body
            load = time.monotonic() - started
            n = len(lines)
            print(f"stored {n} points ({fields} numeric fields, {stream.series} series) in {load:.1f}s")
            results: dict[str, list[tuple[float, int]]] = {"pull": [], "backfill": []}
            for run in range(args.runs):
                for kind in ("pull", "backfill"):
                    db = f"{kind}{run}"
                    server.create_db(db)
                    url = ["--influx-url", server.url]
                    if kind == "pull":
                        cmd = [RIVERGUARD, "pull", *url, "--db", "raw", "--to-db", db, "--delay", "0s", "--log-level", "warn"]
                    else:
                        cmd = [RIVERGUARD, "replay", *url, "--db", db, "--log-level", "warn", str(path)]
                    seconds, rss, _ = _timed(cmd)
                    count = server.rows('SELECT count("usage_user_anomaly_score") FROM "cpu"', db)[0][1]
                    assert count == sum(1 for line in lines if line.startswith(b"cpu,")), (kind, count)
                    results[kind].append((seconds, rss))
                    print(f"{kind:8} run {run + 1}: {seconds:6.1f}s  {n / seconds:9,.0f} points/s"
                          f"  {fields / seconds:10,.0f} fields/s  peak RSS {rss} MiB", flush=True)
                    server.query(f'DROP DATABASE "{db}"')
            best = {k: min(s for s, _ in v) for k, v in results.items()}
            print(f"best: pull {n / best['pull']:,.0f} points/s, backfill {n / best['backfill']:,.0f} points/s;"
                  f" pull takes {best['pull'] / best['backfill']:.2f}x the time of backfill")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
