"""``riverguard collect | riverguard run``: live host metrics through detection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("psutil", reason="riverguard collect needs psutil: pip install -e '.[collect]'")

from riverguard.lineprotocol import parse  # noqa: E402

RIVERGUARD = str(Path(sys.executable).with_name("riverguard"))


def test_collect_piped_through_run() -> None:
    collect = subprocess.Popen(
        [RIVERGUARD, "collect", "--interval", "100ms", "--count", "3"], stdout=subprocess.PIPE
    )
    run = subprocess.run([RIVERGUARD, "run"], stdin=collect.stdout, capture_output=True, timeout=60)
    collect.stdout.close()
    assert collect.wait(10) == 0
    assert run.returncode == 0, run.stderr.decode()
    lines = run.stdout.splitlines()
    metrics = [parse(line) for line in lines]  # every line parses
    by_name: dict[bytes, list] = {}
    for m in metrics:
        by_name.setdefault(m.measurement, []).append(m)
    ncpu = len({dict(m.tags)[b"cpu"] for m in by_name[b"cpu"]})
    assert ncpu >= 2  # cpu-total and at least cpu0
    assert len(by_name[b"cpu"]) == 3 * ncpu and len(by_name[b"mem"]) == 3
    total = [m for m in by_name[b"cpu"] if dict(m.tags)[b"cpu"] == b"cpu-total"]
    assert len(total) == 3 and all(b"host" in dict(m.tags) for m in metrics)
    for m in metrics:
        fields = {f.key: f for f in m.fields}
        for key, f in list(fields.items()):
            if f.number is not None and not key.endswith((b"_anomaly_score",)):
                assert fields[key + b"_anomaly_score"].kind == "f"
                assert fields[key + b"_anomaly"].kind == "b"
        assert m.timestamp is not None and m.timestamp > 1_600_000_000 * 10**9  # nanoseconds
    cpu = {f.key: f for f in total[0].fields}
    for key in (b"usage_user", b"usage_system", b"usage_idle", b"usage_iowait"):
        assert cpu[key].kind == "f" and 0.0 <= cpu[key].number <= 100.0
    mem = {f.key: f for f in by_name[b"mem"][0].fields}
    for key in (b"total", b"available", b"used", b"free"):
        assert mem[key].kind == "i"  # integers, as Telegraf's inputs.mem
    for key in (b"used_percent", b"available_percent"):
        assert mem[key].kind == "f"
    assert mem[b"used"].number <= mem[b"total"].number


def test_collect_flushes_each_interval() -> None:
    proc = subprocess.Popen(
        [RIVERGUARD, "collect", "--interval", "100ms", "--count", "50"], stdout=subprocess.PIPE
    )
    try:
        first = proc.stdout.readline()  # arrives after one interval, not at exit
        assert first.startswith(b"cpu,cpu=")
    finally:
        proc.kill()
        proc.wait(10)
