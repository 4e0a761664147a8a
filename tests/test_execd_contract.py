"""The contract with Telegraf's ``[[processors.execd]]``, checked on the real process.

Telegraf starts ``riverguard run`` once, writes metrics to its stdin as they
arrive and reads them back from stdout as a stream: every metric must come
back, in order, promptly, with nothing else on stdout; problems go to stderr
as log lines Telegraf understands; stopping (EOF or SIGTERM) exits 0.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import LOG_PREFIXES, PYTHON_M, Proc, run_cli, strip_added

ADDED = re.compile(rb",v_anomaly_score=(0\.0|1\.0|0\.[0-9]+|[0-9.]+e-[0-9]+),v_anomaly=(true|false)")


@pytest.fixture(scope="module")
def shared():
    """One long-running ``riverguard run`` for the tests that only need a live stream.

    Each test uses its own measurement names (fresh series) and looks only at
    the output written after its own first write.
    """
    proc = Proc(["run"])
    proc.ready()
    yield proc
    proc.close_stdin()
    code = proc.wait(5)
    proc.kill()
    assert code == 0
    check_log_lines(proc.stderr)


class View:
    """The part of a shared process's output produced after this view was taken."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.out0 = len(proc.stdout)
        self.err0 = len(proc.stderr)

    @property
    def stdout(self) -> bytes:
        return self.proc.stdout[self.out0 :]

    @property
    def stderr(self) -> bytes:
        return self.proc.stderr[self.err0 :]

    def write(self, data: bytes) -> None:
        self.proc.write(data)

    def wait_lines(self, n: int, timeout: float) -> bool:
        return self.proc.out.wait_for(lambda d: d[self.out0 :].count(b"\n") >= n, timeout)

    def wait_stderr(self, predicate, timeout: float) -> bool:
        return self.proc.err.wait_for(lambda d: predicate(d[self.err0 :]), timeout)


def check_log_lines(stderr: bytes) -> None:
    for line in stderr.splitlines():
        assert line.startswith(LOG_PREFIXES), f"stderr line without a Telegraf level prefix: {line!r}"


def test_each_metric_comes_back_within_one_second_without_more_input(shared) -> None:
    proc = View(shared)
    latencies = []
    for i in range(20):
        sent = time.monotonic()
        proc.write(b"lat,host=a v=%d %d\n" % (i % 3, i))
        assert proc.wait_lines(i + 1, timeout=5), f"metric {i} did not come back: {proc.stdout!r}"
        latencies.append(time.monotonic() - sent)
    assert max(latencies) < 1.0, latencies
    lines = proc.stdout.splitlines()
    assert len(lines) == 20
    for i, line in enumerate(lines):
        assert strip_added(line) == b"lat,host=a v=%d %d" % (i % 3, i)
        assert ADDED.search(line), line


def test_500_metrics_one_per_write_keep_order_and_count(shared) -> None:
    proc = View(shared)
    sent = [b'ord,id=%d v=%d,s="x%d" %d\n' % (i % 7, i % 11, i, i) for i in range(500)]
    for line in sent:
        proc.write(line)
    assert proc.wait_lines(500, timeout=10)
    time.sleep(0.05)
    out = proc.stdout
    assert out.count(b"\n") == 500
    assert [strip_added(line) for line in out.splitlines(keepends=True)] == sent
    assert all(ADDED.search(line) for line in out.splitlines())


def test_burst_in_one_write_comes_back_whole(shared) -> None:
    proc = View(shared)
    data = b"".join(b"burst v=%d %d\n" % (i % 5, i) for i in range(5000))
    proc.write(data)
    assert proc.wait_lines(5000, timeout=10)
    assert strip_added(proc.stdout) == data


def test_multiline_string_metric_comes_back_whole(shared) -> None:
    proc = View(shared)
    metric = b'multi,app=x msg="one\ntwo\n\nthree \\"q\\"",n=1i 1\n'
    assert metric.count(b"\n") == 4
    sent = time.monotonic()
    proc.write(metric)
    assert proc.wait_lines(4, timeout=5)
    assert time.monotonic() - sent < 1.0
    expected = metric.replace(b",n=1i 1", b",n=1i,n_anomaly_score=0.0,n_anomaly=false 1")
    assert proc.stdout == expected
    # Written in pieces back to back (a pipe may split a write): still one metric.
    proc.write(metric[:16])
    proc.write(metric[16:30])
    proc.write(metric[30:])
    assert proc.wait_lines(8, timeout=5)
    assert proc.stdout == expected * 2  # same series, same value: scores 0.0 again
    proc.write(b"multi v=1 2\n")
    assert proc.wait_lines(9, timeout=5)
    assert proc.stdout.endswith(b"\nmulti v=1,v_anomaly_score=0.0,v_anomaly=false 2\n")


def test_multiline_string_metric_waits_while_its_bytes_keep_arriving(start) -> None:
    # Its pieces come 0.1 s apart, 0.5 s in all: longer than the 0.25 s an open quote waits after the
    # last bytes came, but never that long without bytes. Still one metric, scored, and no error.
    proc = start("run")
    proc.ready()
    pieces = [b'slow,h=a s="part1\n', b"part2\n", b"part3\n", b"part4\n", b"part5\n", b'part6",v=1 1\n']
    for i, piece in enumerate(pieces):
        if i:
            time.sleep(0.1)
        proc.write(piece)
    assert proc.wait_lines(6, timeout=5)
    time.sleep(0.1)
    assert proc.stdout == b"".join(pieces).replace(b",v=1 1", b",v=1,v_anomaly_score=0.0,v_anomaly=false 1")
    # A metric of 1 MB in one write reaches riverguard in many reads (a pipe holds 64 KiB): one metric.
    big = b'big,h=a s="a\n' + b"x" * 1_000_000 + b'",v=1 2\n'
    proc.write(big)
    assert proc.wait_lines(8, timeout=10)
    time.sleep(0.1)
    assert proc.stdout.endswith(big.replace(b",v=1 2", b",v=1,v_anomaly_score=0.0,v_anomaly=false 2"))
    assert b"E! " not in proc.stderr, proc.stderr
    # The wait is bounded: an unterminated quote followed by a steady stream of metrics (none closes
    # it) comes back, as malformed, within QUOTE_HOLD (2 s), and the metrics after it are scored.
    bad = b'open,h=a msg="never closed,v=1 1\n'
    sent = time.monotonic()
    proc.write(bad)
    follow = []
    while time.monotonic() - sent < 3.5:
        time.sleep(0.05)
        follow.append(b"open,h=a v=1 %d\n" % (len(follow) + 2))
        proc.write(follow[-1])
        if bad in proc.stdout:
            break
    released = time.monotonic() - sent
    assert bad in proc.stdout, "an unterminated quote held the output back while metrics kept coming"
    assert 1.5 < released < 3.5, released
    assert proc.wait_lines(8 + 1 + len(follow), timeout=5)
    out = proc.stdout
    assert out[out.index(bad):] == bad + b"".join(
        line.replace(b"v=1", b"v=1,v_anomaly_score=0.0,v_anomaly=false") for line in follow
    )
    assert proc.wait_stderr(lambda e: b"unterminated string value" in e, timeout=5)
    check_log_lines(proc.stderr)


def test_a_slow_reader_does_not_break_a_multiline_metric_larger_than_the_pipe() -> None:
    """While its output waits for a slow reader (Telegraf's outputs behind), riverguard reads no input, and
    the rest of a metric with a raw newline that is larger than the pipe waits with its writer. That time is
    not the metric's: it comes back whole. (It counted against the 2 s an open quote waits at most: after
    3 s of a reader away, one metric of 300 lines came back as 301 bad lines, each with an E! line.)"""
    proc = subprocess.Popen([*PYTHON_M, "run"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0)
    try:
        proc.stdin.write(b"# ready\n")
        assert proc.stdout.read(8) == b"# ready\n"
        # 250 KiB of output before it: written (and blocked on the full pipe) once the big metric has begun
        before = b"".join(b"pipe,h=a v=%d %d\n" % (i % 10, i) for i in range(4500))
        big = b'pipe,h=a msg="' + b"x" * 1000 + b"\n" + (b"y" * 1000 + b"\n") * 300 + b'",v=1 99999\n'
        writer = threading.Thread(target=lambda: (proc.stdin.write(before + big), proc.stdin.close()))
        writer.start()
        time.sleep(3.0)  # the reader is away
        out, err = proc.communicate(timeout=60)
        writer.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert b"E! " not in err, err[:300]
    assert strip_added(out) == before + big
    assert re.search(rb'\n",v=1' + ADDED.pattern + rb" 99999\n\Z", out), out[-200:]  # scored, as one metric


def test_malformed_line_comes_back_unchanged_with_an_error_and_next_is_scored(shared) -> None:
    proc = View(shared)
    bad = b"bad usage=1_0 1\n"
    proc.write(bad)
    assert proc.wait_lines(1, timeout=1)
    assert proc.stdout == bad
    assert proc.wait_stderr(lambda e: b"E! " in e, timeout=5)
    errors = [line for line in proc.stderr.splitlines() if line.startswith(b"E! ")]
    assert len(errors) == 1 and b"column 11" in errors[0] and b"bad usage=1_0 1" in errors[0]
    proc.write(b"bad usage=1 2\n")
    assert proc.wait_lines(2, timeout=1)
    assert proc.stdout == bad + b"bad usage=1,usage_anomaly_score=0.0,usage_anomaly=false 2\n"
    check_log_lines(proc.stderr)


def test_unterminated_quote_comes_back_promptly_and_does_not_swallow_the_next_metric(shared) -> None:
    proc = View(shared)
    bad = b'quote msg="never closed,v=1 1\n'
    sent = time.monotonic()
    proc.write(bad)
    assert proc.wait_lines(1, timeout=1), "an open quote held the metric back for more than 1 s"
    assert time.monotonic() - sent < 1.0
    assert proc.stdout == bad
    proc.write(b"quote v=1 2\n")
    assert proc.wait_lines(2, timeout=1)
    assert proc.stdout == bad + b"quote v=1,v_anomaly_score=0.0,v_anomaly=false 2\n"
    assert proc.wait_stderr(lambda e: b"unterminated" in e, timeout=5)
    # Both at once: the open quote must not join the metric after it.
    proc.write(bad + b"quote v=1 3\n")
    assert proc.wait_lines(4, timeout=1)
    assert proc.stdout.endswith(bad + b"quote v=1,v_anomaly_score=0.0,v_anomaly=false 3\n")


def test_closing_stdin_flushes_everything_and_exits_zero_before_telegrafs_sigterm(start) -> None:
    # Telegraf sends SIGTERM 5 s after closing stdin; 4 s leaves room on a loaded CI machine
    # (a quiet one exits in about 0.3 s) while still failing a process that waits for input.
    proc = start("run")
    proc.ready()
    proc.write(b"m v=1 1\nm v=2 2\n")
    assert proc.wait_lines(2, timeout=5)
    proc.write(b'm v=3 3\nm s="open')  # no newline at the end, an open quote
    closed = time.monotonic()
    proc.close_stdin()
    assert proc.wait(4.0) == 0
    assert time.monotonic() - closed < 4.0
    assert strip_added(proc.stdout) == b'm v=1 1\nm v=2 2\nm v=3 3\nm s="open\n'
    check_log_lines(proc.stderr)


def test_sigterm_mid_stream_exits_zero_and_returns_everything_written(start) -> None:
    proc = start("run")
    proc.ready()
    data = b"".join(b"m,host=h%d v=%d %d\n" % (i % 3, i % 13, i) for i in range(20_000))
    proc.write(data)  # returns once all of it is in the pipe or read
    proc.terminate()
    assert proc.wait(5) == 0
    assert strip_added(proc.stdout) == data
    assert b"SIGTERM" in proc.stderr
    check_log_lines(proc.stderr)


def _run_in_mode(start, tmp_path: Path, mode: str) -> tuple[Proc, Path]:  # type: ignore[no-untyped-def]
    """A ready ``riverguard run`` with its state folder (``st``): scoring, or "passing through" (a state
    folder it may not write)."""
    from conftest import RIVERGUARD, as_a_user

    state = tmp_path / "st"
    prefix: list[str] = []
    if mode == "passing through":
        prefix = as_a_user(tmp_path)
        state.mkdir(mode=0o555)
    proc = start("run", "--state", f"{state}/", cmd=[*prefix, *RIVERGUARD])
    proc.ready()
    return proc, state


def _dropped_at_stop(size: int) -> bytes:
    """The W! line of a stop with stdin open that dropped ``size`` bytes of a metric not yet ended."""
    return (b"W! [riverguard] stopped with stdin still open: dropped the last %d bytes, a metric not yet ended by "
            b"a newline (its rest not written yet): not scored, learned or written" % size)


@pytest.mark.parametrize("stop", ["SIGTERM", "EOF"])
@pytest.mark.parametrize("mode", ["scoring", "passing through"])
def test_a_stop_with_stdin_open_drops_a_last_line_not_yet_ended(start, tmp_path: Path, stop: str, mode: str) -> None:
    """A SIGTERM that came while stdin was still open (an operator's kill; Telegraf closes stdin first) scored
    the bytes after the last newline as a whole metric: of ``v=123 T`` half-written, ``v=12`` went out without
    its timestamp (stored at "now") and was learned; a fragment ``m`` went out as a line passed through
    unchanged. Now those bytes are dropped with one W! line saying how many: not scored, learned or written,
    also by a run that passes every metric through (here: a state folder it may not write). At EOF
    (Telegraf's stop) a last line without a newline is still a whole metric, as before."""
    proc, state = _run_in_mode(start, tmp_path, mode)
    whole, unfinished = b"cpu,host=a v=1 1764288000000000000\n", b"cpu,host=a v=12"  # (the rest: "3 17642880...")
    proc.write(whole + unfinished)  # one write, one read: the first line back, the second was read too
    assert proc.wait_lines(1, 10), proc.stderr
    if stop == "SIGTERM":
        proc.terminate()
        assert proc.wait(10) == 0, proc.stderr
    else:
        proc.close_stdin()
        assert proc.wait(10) == 0, proc.stderr
    sent = whole if stop == "SIGTERM" else whole + unfinished + (b"\n" if mode == "scoring" else b"")
    assert (strip_added(proc.stdout) if mode == "scoring" else proc.stdout) == sent
    warnings = [line for line in proc.stderr.splitlines() if line.startswith(b"W! ")]
    if stop == "SIGTERM":
        assert warnings == [_dropped_at_stop(15)]
    else:
        assert warnings == [], proc.stderr
    check_log_lines(proc.stderr)
    if mode == "scoring":  # learned: the whole metric only (at EOF, both)
        series = run_cli(["state", "inspect", str(state / "riverguard.msgpack"), "--series"])
        assert series.returncode == 0, series.stderr
        assert [json.loads(line)["samples"] for line in series.stdout.splitlines()] == [1 if stop == "SIGTERM" else 2]


@pytest.mark.parametrize("case", ["open", "given up"])
@pytest.mark.parametrize("mode", ["scoring", "passing through"])
def test_a_stop_with_stdin_open_drops_a_string_value_open_across_lines_whole(
    start, tmp_path: Path, case: str, mode: str
) -> None:
    """A SIGTERM with stdin still open while a string value was open across lines (its closing quote not
    written yet) cut the input at the last newline: the metric's first lines were scored as bad lines (E!
    lines, parse_errors) or passed through as half a metric. Now the metric is dropped whole, with the W! line
    of a metric not yet ended. A quote never closed is not waited for longer than serve waits for it
    (QUOTE_GRACE after its last bytes): given up, it is a bad line, and the metrics after it come back."""
    proc, _ = _run_in_mode(start, tmp_path, mode)
    whole = b"cpu,host=a v=1 1764288000000000000\n"
    proc.write(whole)
    assert proc.wait_lines(1, 10), proc.stderr
    if case == "open":  # its lines keep coming (less than QUOTE_GRACE apart), the stop comes right after one
        kept = whole
        dropped = [b'log,host=a msg="first line\n', *[b"line %d\n" % i for i in range(5)]]
        for piece in dropped:
            proc.write(piece)
            time.sleep(0.05)
        time.sleep(0.05)
        assert proc.stdout.count(b"\n") == 1, proc.stdout  # (it waits for its closing quote)
    else:  # a bad line, given up after QUOTE_GRACE: it comes back, and the metric after it
        bad, good, dropped = b'bad,host=a msg="oops\n', b"cpu,host=a v=2 1764288001000000000\n", [b"cpu,host=a v=12"]
        kept = whole + bad + good
        proc.write(bad)
        assert proc.wait_lines(2, 10), proc.stderr
        proc.write(good + dropped[0])
        assert proc.wait_lines(3, 10), proc.stderr
    proc.terminate()
    assert proc.wait(10) == 0, proc.stderr
    assert (strip_added(proc.stdout) if mode == "scoring" else proc.stdout) == kept
    warnings = [line for line in proc.stderr.splitlines() if line.startswith(b"W! ")]
    assert warnings == [_dropped_at_stop(len(b"".join(dropped)))]
    errors = [line for line in proc.stderr.splitlines() if line.startswith(b"E! ")]
    if mode == "scoring":  # the given-up quote is the one bad line
        assert len(errors) == (case == "given up"), proc.stderr
    check_log_lines(proc.stderr)


def test_passing_through_parses_a_string_value_open_across_lines_not_again_at_each_read(monkeypatch) -> None:
    """Passing through with a health line, a string value open across lines was parsed again from its start
    at each read, for up to 2 s (quadratic in its length). Now a read that cannot close it (no quote) is not
    parsed: counted here in-process (real pipes, one read per line) instead of timed."""
    import io

    from riverguard import stream
    from riverguard.config import default_config
    from riverguard.engine import Engine
    from riverguard.log import Log
    from riverguard.monitor import Monitor
    from riverguard.signals import Signals

    parses = []
    split = stream._split
    monkeypatch.setattr(stream, "_split", lambda buf, **kw: parses.append(len(buf)) or split(buf, **kw))
    infd, writer = os.pipe()
    outfd, out_writer = os.pipe()
    lines = [b'log,host=a msg="begins\n', *[b"line %d\n" % i for i in range(40)], b'ends" 1\n', b"cpu v=1 2\n"]

    def write() -> None:
        for line in lines:
            os.write(writer, line)
            time.sleep(0.005)  # (less than QUOTE_GRACE: one metric, waited for)
        os.close(writer)

    received = []
    reader = threading.Thread(target=lambda: received.append(b"".join(iter(lambda: os.read(outfd, 1 << 16), b""))))
    reader.start()
    thread = threading.Thread(target=write)
    signals = Signals()
    try:
        thread.start()
        monitor = Monitor(Engine(default_config()), interval=3600.0)
        assert stream.passthrough(Log("error", io.StringIO()), stream.Held(signals, infd), out_writer, monitor) == 0
    finally:
        signals.close()
        thread.join()
        os.close(out_writer)
        reader.join()
        os.close(infd)
        os.close(outfd)
    assert received == [b"".join(lines)]
    assert monitor.engine.metrics == len(lines)  # (lines passed through)
    assert len(parses) <= 3, parses  # (the first line, the one that closes it, maybe one read of both)


def test_flood_of_bad_lines_is_rate_limited_on_stderr(start) -> None:
    proc = start("run")
    proc.ready()
    bad = b"".join(b"bad line number %d\n" % i for i in range(10_000))
    proc.write(bad)
    assert proc.wait_lines(10_000, timeout=10)
    proc.write(b"m v=1 1\n")
    assert proc.wait_lines(10_001, timeout=5)
    proc.close_stdin()
    assert proc.wait(5) == 0
    assert proc.stdout == bad + b"m v=1,v_anomaly_score=0.0,v_anomaly=false 1\n"
    lines = proc.stderr.splitlines()
    check_log_lines(proc.stderr)
    errors = [line for line in lines if line.startswith(b"E! ")]
    assert 1 <= len(errors) <= 50, len(errors)
    # What was held back is reported as a count, not silently dropped.
    held = [int(m.group(1)) for line in lines if (m := re.search(rb"(\d+) more unparsable", line))]
    assert len(errors) + sum(held) == 10_000


def test_same_output_run_after_run_and_with_python_dash_m(start, tmp_path: Path) -> None:
    """Determinism (whatever the hash seed), and ``python -m riverguard`` is the same command."""
    config = tmp_path / "riverguard.toml"
    config.write_text(
        '[[rule]]\nname = "hst"\nmeasurement = "a"\ndetector = "hst"\nwarmup = 5\n'
        '[[rule]]\nname = "pad"\nmeasurement = "b"\ndetector = "pad"\nwarmup = 5\n'
        '[[rule]]\nname = "rest"\nwarmup = 5\n'
    )
    lines = [b"# recorded\n", b"a v=oops 0\n"]
    for i in range(600):
        x = (i * 7919) % 101 / 10 + (50 if i % 97 == 0 else 0)
        lines.append(b"a,h=%d v=%r,w=%di %d\n" % (i % 4, x, i % 9, i))
        lines.append(b"b,h=%d v=%r %d\n" % (i % 3, -x, i))
        lines.append(b'c,h=0 v=%r,s="%d" %d\n' % (x * 2, i, i))  # one series: the default detector learns 200 samples first
    data = b"".join(lines)
    runs = []
    for cmd, seed in ((None, "0"), (PYTHON_M, "12345")):
        proc = start("run", "--config", str(config), cmd=cmd, env={**os.environ, "PYTHONHASHSEED": seed})
        proc.write(data)
        proc.close_stdin()
        assert proc.wait(30) == 0, proc.stderr
        check_log_lines(proc.stderr)
        runs.append((proc.stdout, [line for line in proc.stderr.splitlines() if line.startswith(b"E! ")]))
    assert runs[0] == runs[1]
    out, errors = runs[0]
    assert len(errors) == 1 and b"oops" in errors[0]
    assert strip_added(out) == data
    for name in (b"a", b"b", b"c"):  # real scores from each detector, not all zeros
        scored = [line for line in out.splitlines() if line.startswith(name + b",") and b"v_anomaly_score=0.0," not in line]
        assert len(scored) > 100, name


def _field_types(out: bytes) -> dict[tuple[bytes, bytes], set[str]]:
    """The types each (measurement, field) takes in ``out``, as InfluxDB reads them."""
    from riverguard.lineprotocol import raw_fields

    types: dict[tuple[bytes, bytes], set[str]] = {}
    for line in out.splitlines():
        head, fields, _ = raw_fields(line)
        measurement = head.split(b",")[0]
        for key, text in fields.items():
            if text.startswith(b'"'):
                kind = "string"
            elif text in (b"t", b"T", b"true", b"True", b"TRUE", b"f", b"F", b"false", b"False", b"FALSE"):
                kind = "boolean"
            elif text.endswith(b"i"):
                kind = "integer"
            elif text.endswith(b"u"):
                kind = "unsigned"
            else:
                kind = "float"
            types.setdefault((measurement, key), set()).add(kind)
    return types


def test_a_users_field_named_like_an_added_one_of_another_type_is_never_written_over(start, tmp_path: Path) -> None:
    # InfluxDB refuses a point whose field has another type than the measurement has for it. A user's
    # float `v_anomaly` or string `x_anomaly_score` must not be followed by riverguard's boolean or float
    # of that name: from that metric on, v and x are not scored in `cpu` (any host), and one W! says so.
    state = tmp_path / "state.msgpack"
    first = (
        b"cpu,host=a v=1,v_anomaly=0.5 1\n"
        b"cpu,host=a v=2 2\n"
        b"cpu,host=a x=1,x_anomaly_score=\"hi\" 3\n"
        b"cpu,host=a x=2 4\n"
        b"cpu,host=b v=3,x=3,w=3 5\n"  # another tag set: same measurement, same InfluxDB field types
        b"cpu,host=a v=4,v_anomaly=0.7 6\n"  # the same clash again: no second W!
        b"mem,host=a v=1 7\n"  # another measurement: scored as before
        b"cpu,host=a y=1,y_anomaly_score=0.5,y_anomaly=true 8\n"  # scored upstream: the types riverguard writes
    )
    proc = start("run", "--state", str(state))
    proc.ready()
    proc.write(first)
    assert proc.wait_lines(8, timeout=10)
    proc.close_stdin()
    assert proc.wait(10) == 0
    before = proc.stdout
    assert before.splitlines(keepends=True)[:6] == [
        b"cpu,host=a v=1,v_anomaly=0.5,v_anomaly_anomaly_score=0.0,v_anomaly_anomaly=false 1\n",  # v_anomaly: a float of the user's
        b"cpu,host=a v=2 2\n",
        b"cpu,host=a x=1,x_anomaly_score=\"hi\" 3\n",
        b"cpu,host=a x=2 4\n",
        b"cpu,host=b v=3,x=3,w=3,w_anomaly_score=0.0,w_anomaly=false 5\n",
        b"cpu,host=a v=4,v_anomaly=0.7,v_anomaly_anomaly_score=0.0,v_anomaly_anomaly=false 6\n",
    ]
    assert before.splitlines(keepends=True)[6:] == [
        b"mem,host=a v=1,v_anomaly_score=0.0,v_anomaly=false 7\n",
        b"cpu,host=a y=1,y_anomaly_score=0.5,y_anomaly=true 8\n",  # passed through byte for byte, as before
    ]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith(b"W! ")]
    assert warnings == [
        b"W! [riverguard] measurement 'cpu': field 'v_anomaly' is a float, and riverguard would write a boolean"
        b" under that name: from now on field 'v' is not scored there (InfluxDB refuses a field whose type"
        b" changes); rename the field or set [output] flag_suffix",
        b"W! [riverguard] measurement 'cpu': field 'x_anomaly_score' is a string, and riverguard would write a"
        b" float under that name: from now on field 'x' is not scored there (InfluxDB refuses a field whose type"
        b" changes); rename the field or set [output] score_suffix",
    ]
    # After a restart (Telegraf restarts riverguard on every reload) the checkpoint remembers it.
    proc = start("run", "--state", str(state))
    proc.ready()
    proc.write(b"cpu,host=a v=5,x=5 9\ncpu,host=c v=5 10\n")
    assert proc.wait_lines(2, timeout=10)
    proc.close_stdin()
    assert proc.wait(10) == 0
    assert proc.stdout == b"cpu,host=a v=5,x=5 9\ncpu,host=c v=5 10\n"
    assert b"W! " not in proc.stderr
    types = _field_types(before + proc.stdout)
    assert all(len(kinds) == 1 for kinds in types.values()), types


def _run_with(tmp_path: Path, config: str, data: bytes) -> tuple[list[bytes], list[bytes]]:
    """``riverguard run`` with ``config`` (a riverguard.toml's text) over ``data``: its output lines and its W! lines."""
    path = tmp_path / "riverguard.toml"
    path.write_text(config)
    proc = run_cli(["run", "--config", str(path)], input=data)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines(), [line for line in proc.stderr.splitlines() if line.startswith(b"W! ")]


#: A rule scoring cpu's metrics whole (it writes only the metric-level anomaly_score and anomaly).
METRIC_RULE = '[[rule]]\nname = "hosts"\nmeasurement = "cpu"\nscope = "metric"\ndetector = "hst"\n'


def test_a_users_metric_level_name_of_another_type_is_never_written_over(tmp_path: Path) -> None:
    data = b"cpu,host=a u=1,anomaly=1i 1\ncpu,host=a u=2 2\ncpu,host=b u=3 3\n"
    out, warned = _run_with(tmp_path, METRIC_RULE, data)
    assert out == data.splitlines()  # never `anomaly=false` after the user's integer `anomaly`
    assert len(warned) == 1 and warned[0].startswith(b"W! [riverguard] measurement 'cpu': field 'anomaly' is an integer")
    assert b"no metric-level anomaly fields are written there" in warned[0]


def test_clashes_past_the_rate_limit_are_counted_not_lost(tmp_path: Path) -> None:
    """Fifteen measurements, each with its own clash, in one burst: ten W! lines name theirs and one says how
    many more were held back (the count was dropped before: nothing said there had been more)."""
    data = b"".join(b'm%d,host=a x=1,x_anomaly_score="hi" %d\n' % (i, i + 1) for i in range(15))
    out, warned = _run_with(tmp_path, '[[rule]]\nname = "all"\n', data)
    assert out == data.splitlines()  # none of the 15 written over
    named = [line for line in warned if b"field 'x_anomaly_score' is a string" in line]
    assert len(named) == 10, warned
    assert warned[-1] == b"W! [riverguard] 5 more fields that clash with an added name were not reported (rate limit)"
    assert len(warned) == 11, warned


def test_metric_level_names_where_no_metric_rule_applies_are_the_users_fields(tmp_path: Path) -> None:
    # A scope = "metric" rule for cpu writes `anomaly_score` and `anomaly` in cpu only. In another
    # measurement, a user's numeric fields of those names are fields like any other: scored, no W!. (They
    # were never scored there, with a W! that no metric-level anomaly fields were written in `ml`.)
    data = b"ml anomaly_score=0.3,anomaly=2 1\nml anomaly_score=0.4,anomaly=3 2\n"
    out, warned = _run_with(tmp_path, METRIC_RULE + '[[rule]]\nname = "rest"\ndetector = "zscore"\nwarmup = 0\n', data)
    assert warned == []
    assert out == [
        b"ml anomaly_score=0.3,anomaly=2,anomaly_score_anomaly_score=0.0,anomaly_score_anomaly=false,"
        b"anomaly_anomaly_score=0.0,anomaly_anomaly=false 1",
        b"ml anomaly_score=0.4,anomaly=3,anomaly_score_anomaly_score=1.0,anomaly_score_anomaly=true,"
        b"anomaly_anomaly_score=1.0,anomaly_anomaly=true 2",
    ]
    # In cpu they are still riverguard's: an upstream score is not scored again, an integer `anomaly` clashes.
    out, warned = _run_with(tmp_path, METRIC_RULE + '[[rule]]\nname = "rest"\n', b"cpu u=1,anomaly_score=0.5 1\n")
    assert out == [b"cpu u=1,anomaly_score=0.5 1"] and warned == []
    out, warned = _run_with(tmp_path, METRIC_RULE + '[[rule]]\nname = "rest"\n', b"cpu u=1,anomaly=1i 1\n")
    assert out == [b"cpu u=1,anomaly=1i 1"]
    assert len(warned) == 1 and warned[0].startswith(b"W! [riverguard] measurement 'cpu': field 'anomaly' is an integer")
    # Nor are they riverguard's in cpu when a rule for all of cpu's fields comes before the metric rule: it takes
    # none, and never writes them (a W! says the rule is never used). They were left unscored, and the integer
    # `anomaly` got a W!; so too where that rule and the metric rule had tags, the first's taking all the second's.
    cpu = '[[rule]]\nname = "cpu"\nmeasurement = "cpu"\ndetector = "zscore"\nwarmup = 0\n'
    tagged = METRIC_RULE.replace("\nscope", '\ntags = {host = "a*"}\nscope')
    for config in (cpu + METRIC_RULE, cpu + 'tags = {host = "*"}\n' + tagged):
        out, warned = _run_with(tmp_path, config, b"cpu,host=a u=1,anomaly=1i,anomaly_score=0.5 1\n")
        assert (out, warned) == ([
            b"cpu,host=a u=1,anomaly=1i,anomaly_score=0.5,u_anomaly_score=0.0,u_anomaly=false,"
            b"anomaly_anomaly_score=0.0,anomaly_anomaly=false,anomaly_score_anomaly_score=0.0,anomaly_score_anomaly=false 1",
        ], [
            b'W! [riverguard] %s: rule 2 "hosts" is never used: rule 1 "cpu" before it matches every field of every '
            b"metric it matches" % bytes(tmp_path / "riverguard.toml"),
        ]), config


def test_a_per_field_name_in_a_metric_scored_whole_is_no_clash(tmp_path: Path) -> None:
    # A scope = "metric" rule writes `anomaly_score` and `anomaly`, never `x_anomaly_score`: a user's string
    # `x_anomaly_score` or integer `y_anomaly` there clashes with nothing. No W!, and x goes on being scored.
    data = b'cpu,host=a u=1,x=1,x_anomaly_score="hi" 1\ncpu,host=a u=2,y_anomaly=1i 2\ncpu,host=a u=3,x=3 3\n'
    assert _run_with(tmp_path, METRIC_RULE, data) == ([
        b'cpu,host=a u=1,x=1,x_anomaly_score="hi",anomaly_score=0.0,anomaly=false 1',
        b"cpu,host=a u=2,y_anomaly=1i,anomaly_score=0.0,anomaly=false 2",
        b"cpu,host=a u=3,x=3,anomaly_score=0.0,anomaly=false 3",
    ], [])
    # Where another tag set scores x one by one, the clash is real there, and the W! says where x is still scored.
    config = METRIC_RULE.replace('"cpu"\n', '"cpu"\ntags = {host = "a"}\n') + '[[rule]]\nname = "rest"\n'
    data = b'cpu,host=a u=1,x=1,x_anomaly_score="hi" 1\ncpu,host=b x=2 2\n'
    out, warned = _run_with(tmp_path, config, data)
    assert out == [b'cpu,host=a u=1,x=1,x_anomaly_score="hi",anomaly_score=0.0,anomaly=false 1', b"cpu,host=b x=2 2"]
    assert warned == [
        b"W! [riverguard] measurement 'cpu': field 'x_anomaly_score' is a string, and riverguard would write a"
        b" float under that name: from now on field 'x' is scored there only in the metric models of"
        b' scope = "metric" rules (InfluxDB refuses a field whose type changes); rename the field or set'
        b" [output] score_suffix",
    ]


def test_an_explanation_name_is_no_clash_where_nothing_is_explained(tmp_path: Path) -> None:
    # With explain off riverguard writes no `w_anomaly_expected`: a user's string of that name clashes with
    # nothing. No W!, nothing noted, and w goes on being scored.
    data = b'cpu w=1 1\ncpu w=2,w_anomaly_expected="x" 2\ncpu w=3 3\n'
    assert _run_with(tmp_path, '[[rule]]\nname = "all"\n', data) == ([
        b"cpu w=1,w_anomaly_score=0.0,w_anomaly=false 1",
        b'cpu w=2,w_anomaly_expected="x",w_anomaly_score=0.0,w_anomaly=false 2',
        b"cpu w=3,w_anomaly_score=0.0,w_anomaly=false 3",
    ], [])
    # Where one rule explains w (host a) and another scores it without explaining (host b), the clash is real
    # under the first only: w is no longer scored there, and still scored under the second; the W! says so.
    config = '[[rule]]\nname = "explained"\ntags = {host = "a"}\nexplain = true\n[[rule]]\nname = "rest"\n'
    data = b'cpu,host=a w=1 1\ncpu,host=b w=2,w_anomaly_expected="x" 2\ncpu,host=a w=3 3\ncpu,host=b w=4 4\n'
    out, warned = _run_with(tmp_path, config, data)
    assert out == [
        b"cpu,host=a w=1,w_anomaly_score=0.0,w_anomaly=false 1",
        b'cpu,host=b w=2,w_anomaly_expected="x",w_anomaly_score=0.0,w_anomaly=false 2',
        b"cpu,host=a w=3 3",
        b"cpu,host=b w=4,w_anomaly_score=0.0,w_anomaly=false 4",
    ]
    assert warned == [
        b"W! [riverguard] measurement 'cpu': field 'w_anomaly_expected' is a string, and riverguard would write a"
        b" float under that name: from now on field 'w' is not scored there by rules with explain = true"
        b" (InfluxDB refuses a field whose type changes); rename the field or set [output] flag_suffix",
    ]


def test_a_name_built_on_a_name_riverguard_never_scores_is_no_clash(tmp_path: Path) -> None:
    # riverguard never scores a score field (`v_anomaly_score`), nor, in a measurement a scope = "metric" rule
    # names, the metric-level `anomaly_score` and `anomaly`: it never writes `v_anomaly_score_anomaly`,
    # `v_anomaly_score_anomaly_score` or `anomaly_anomaly` there. A user's field of such a name and another type
    # clashes with nothing: no W! (one said `v_anomaly_score` was no longer scored), nothing noted, and the
    # field is scored as any other, with or without `v` or `v_anomaly_score` beside it. `v_anomaly_anomaly`
    # is another matter: a float `v_anomaly` is scored, and its flag would be written under that name.
    config = METRIC_RULE.replace('"cpu"\n', '"cpu"\nfields = ["u"]\n') + \
        '[[rule]]\nname = "rest"\ndetector = "zscore"\nwarmup = 0\n'
    data = (
        b"m v_anomaly_score_anomaly=1.5 1\n"
        b"m v=1,v_anomaly_score_anomaly=2i 2\n"
        b"m v=2,v_anomaly_score=0.5,v_anomaly_score_anomaly=1.5 3\n"  # v scored upstream: left alone
        b"m v_anomaly_score_anomaly_score=3i 4\n"  # shaped like a score: never scored itself
        b'cpu u=1,anomaly_score_anomaly=1.5,anomaly_anomaly=2i,anomaly_score_anomaly_score="s" 5\n'
        b"n v_anomaly_anomaly=1.5 6\n"
    )
    out, warned = _run_with(tmp_path, config, data)
    assert out == [
        b"m v_anomaly_score_anomaly=1.5,"
        b"v_anomaly_score_anomaly_anomaly_score=0.0,v_anomaly_score_anomaly_anomaly=false 1",
        b"m v=1,v_anomaly_score_anomaly=2i,v_anomaly_score=0.0,v_anomaly=false,"
        b"v_anomaly_score_anomaly_anomaly_score=1.0,v_anomaly_score_anomaly_anomaly=true 2",
        b"m v=2,v_anomaly_score=0.5,v_anomaly_score_anomaly=1.5,"
        b"v_anomaly_score_anomaly_anomaly_score=0.113597,v_anomaly_score_anomaly_anomaly=false 3",
        b"m v_anomaly_score_anomaly_score=3i 4",
        b'cpu u=1,anomaly_score_anomaly=1.5,anomaly_anomaly=2i,anomaly_score_anomaly_score="s",'
        b"anomaly_score_anomaly_anomaly_score=0.0,anomaly_score_anomaly_anomaly=false,"
        b"anomaly_anomaly_anomaly_score=0.0,anomaly_anomaly_anomaly=false,anomaly_score=0.0,anomaly=false 5",
        b"n v_anomaly_anomaly=1.5,v_anomaly_anomaly_anomaly_score=0.0,v_anomaly_anomaly_anomaly=false 6",
    ]
    assert warned == [
        b"W! [riverguard] measurement 'n': field 'v_anomaly_anomaly' is a float, and riverguard would write a"
        b" boolean under that name: from now on field 'v_anomaly' is not scored there (InfluxDB refuses a field"
        b" whose type changes); rename the field or set [output] flag_suffix",
    ]
    # Nor are explanation names built on a score field's name riverguard's, where rules explain.
    data = b'm v=1,v_anomaly_score_anomaly_expected="s",v_anomaly_score_anomaly_lower=true 1\n'
    out, warned = _run_with(tmp_path, '[[rule]]\nname = "all"\ndetector = "zscore"\nexplain = true\n', data)
    assert (out, warned) == ([
        b'm v=1,v_anomaly_score_anomaly_expected="s",v_anomaly_score_anomaly_lower=true,'
        b"v_anomaly_score=0.0,v_anomaly=false 1",
    ], [])


def test_a_name_that_is_two_added_names_is_checked_as_each(tmp_path: Path) -> None:
    # With score_suffix = "_lower", `w_anomaly_lower` is both w's explanation (a float) and the score of a field
    # `w_anomaly` (a float too): a user's string of that name clashes with w's band edge, written after the
    # warm-up on the metrics without it. W is no longer scored, and the W! says so.
    config = '[output]\nexplain = true\nscore_suffix = "_lower"\n' \
             '[[rule]]\nname = "w"\nfields = ["w"]\ndetector = "zscore"\nwarmup = 3\n'
    data = b"".join(b"cpu w=%d %d\n" % (i, i) for i in range(1, 6)) + b'cpu w=6,w_anomaly_lower="s" 6\ncpu w=7 7\n'
    out, warned = _run_with(tmp_path, config, data)
    assert b",w_anomaly_lower=" in out[4]  # riverguard's float, after the warm-up
    assert out[5:] == [b'cpu w=6,w_anomaly_lower="s" 6', b"cpu w=7 7"]  # never a float under the user's string's name
    assert warned == [
        b"W! [riverguard] measurement 'cpu': field 'w_anomaly_lower' is a string, and riverguard would write a"
        b" float under that name: from now on field 'w' is not scored there (InfluxDB refuses a field whose type"
        b" changes); rename the field or set [output] flag_suffix",
    ]
