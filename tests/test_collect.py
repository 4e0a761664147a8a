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


def test_a_cpu_whose_times_did_not_move_is_left_out_not_written_as_zeros() -> None:
    """Between two samples closer than the kernel's tick (10 ms) a cpu's times may not move at all:
    Telegraf's inputs.cpu leaves that cpu out of the batch. (collect wrote usage_idle=0 and every other
    usage 0, a cpu 0 % idle and 0 % busy, into the stream: with --interval 2ms, 268 of 300 cpu lines.)"""
    result = subprocess.run(
        [RIVERGUARD, "collect", "--interval", "1ms", "--count", "60"], capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()
    metrics = [parse(line) for line in result.stdout.splitlines()]
    assert sum(m.measurement == b"mem" for m in metrics) == 60
    for m in metrics:
        if m.measurement == b"cpu":
            usage = sum(f.number for f in m.fields if f.key != b"usage_guest" and f.key != b"usage_guest_nice")
            assert usage == pytest.approx(100.0, abs=0.01), m.raw


def test_cpu_lines_skip_a_cpu_without_elapsed_time() -> None:
    from riverguard.collect import cpu_lines

    a = {"user": 10.0, "system": 5.0, "idle": 85.0}
    b = {"user": 12.0, "system": 5.5, "idle": 87.5}
    lines = cpu_lines([a, a], [b, a], ["cpu-total", "cpu0"], "h", 1)
    assert [line.split(b" ")[0] for line in lines] == [b"cpu,cpu=cpu-total,host=h"]
