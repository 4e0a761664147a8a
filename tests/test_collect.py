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
    usage 0, a cpu 0 % idle and 0 % busy, into the stream: with --interval 2ms, 268 of 300 cpu lines.)
    At the least --interval, 10 ms (one tick), samples still land within a tick: 17 of 180 cpu lines left out
    on 2 cores.

    Whether two real samples land within one tick is up to the scheduler, so this only asserts what is
    always true of a real process (no cpu line with every usage at 0); the exact cases are crafted in
    ``test_cpu_lines_*`` below. Usage is clamped at 0 and Linux's per-cpu iowait can go backwards, so a
    real line need not sum to 100."""
    result = subprocess.run(
        [RIVERGUARD, "collect", "--interval", "10ms", "--count", "60"], capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()
    metrics = [parse(line) for line in result.stdout.splitlines()]
    assert sum(m.measurement == b"mem" for m in metrics) == 60
    for m in metrics:
        if m.measurement == b"cpu":
            usage = [f.number for f in m.fields if f.key.startswith(b"usage_")]
            assert usage and any(u > 0 for u in usage), m.raw


def _usage(line: bytes) -> dict[bytes, float]:
    return {f.key: f.number for f in parse(line.rstrip(b"\n")).fields}


def test_cpu_lines_skip_a_cpu_without_elapsed_time() -> None:
    from riverguard.collect import cpu_lines

    a = {"user": 10.0, "system": 5.0, "idle": 85.0}
    b = {"user": 12.0, "system": 5.5, "idle": 87.5}
    lines = cpu_lines([a, a], [b, a], ["cpu-total", "cpu0"], "h", 1)
    assert [line.split(b" ")[0] for line in lines] == [b"cpu,cpu=cpu-total,host=h"]
    usage = _usage(lines[0])
    assert usage[b"usage_user"] == pytest.approx(40.0) and usage[b"usage_idle"] == pytest.approx(50.0)


def test_cpu_lines_over_samples_within_one_tick() -> None:
    """Times as Linux counts them, in 10 ms ticks, sampled every 1 ms: most samples see no tick."""
    from riverguard.collect import cpu_lines

    names = ["cpu-total", "cpu0", "cpu1"]
    t0 = [{"user": 100.0, "system": 50.0, "idle": 850.0, "iowait": 4.0}] + [
        {"user": 50.0, "system": 25.0, "idle": 425.0, "iowait": 2.0} for _ in range(2)
    ]
    t1 = [dict(t) for t in t0]
    t1[2]["user"] += 0.01  # only cpu1 (and so the total) saw a tick
    t1[0]["user"] += 0.01
    lines = cpu_lines(t0, t1, names, "h", 1)
    assert [line.split(b" ")[0] for line in lines] == [b"cpu,cpu=cpu-total,host=h", b"cpu,cpu=cpu1,host=h"]
    for line in lines:
        usage = _usage(line)
        assert usage[b"usage_user"] == pytest.approx(100.0)
        assert sum(usage.values()) - usage[b"usage_guest"] - usage[b"usage_guest_nice"] == pytest.approx(100.0)
    assert cpu_lines(t1, t1, names, "h", 2) == []  # no tick anywhere: an empty batch, not zeros


def test_cpu_lines_clamp_an_iowait_that_went_backwards() -> None:
    """Linux's per-cpu iowait can go backwards: its usage is 0, not negative, and the line is kept."""
    from riverguard.collect import cpu_lines

    a = {"user": 10.0, "system": 5.0, "idle": 85.0, "iowait": 3.0}
    b = {"user": 10.02, "system": 5.0, "idle": 85.02, "iowait": 2.99}
    (line,) = cpu_lines([a], [b], ["cpu0"], "h", 1)
    usage = _usage(line)
    assert usage[b"usage_iowait"] == 0.0
    assert usage[b"usage_user"] == pytest.approx(66.667, abs=0.01) == usage[b"usage_idle"]
    assert all(0.0 <= u <= 100.0 for u in usage.values())
    c = dict(a, iowait=2.0)  # a total that went backwards: no usage to speak of either
    assert cpu_lines([a], [c], ["cpu0"], "h", 1) == []


def test_collect_exits_1_when_its_reader_goes_away() -> None:
    """`riverguard collect | head -1` exited 0 while `run | head` and `replay -o - | head` exit 1
    (README, Exit codes: stdout closed). A real pipe, closed after the first line."""
    proc = subprocess.Popen(
        [RIVERGUARD, "collect", "--interval", "50ms"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith(b"cpu,cpu=")
        proc.stdout.close()  # as head does after its line: the next batch meets a closed pipe
        code = proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert code == 1, stderr
    assert stderr == b"E! [riverguard] stdout was closed: stopping\n"  # as run says it
