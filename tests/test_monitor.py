"""``[monitor]``: riverguard's health line (measurement ``riverguard``), checked on the real process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from conftest import RIVERGUARD, as_a_user, run_cli
import riverguard
from riverguard import __version__
from riverguard.config import MONITOR_OWN_TAGS
from riverguard.monitor import COUNTERS, GAUGES

INT_FIELDS = {*COUNTERS, "series", "checkpoint_bytes", "rss_bytes"}
FLOAT_FIELDS = {"checkpoint_seconds", "lag_seconds"}
#: Whether the install built the compiled hot path (the suite itself may run uncompiled).
_HOT_PATH_BUILT = any((Path(riverguard.__file__).parent).glob("_hotpath.*.so"))
LINE = re.compile(rb"^riverguard,(\S+) (\S+) ([0-9]+)$")


def parse_monitor(line: bytes) -> tuple[dict[str, str], dict[str, int | float], int]:
    """Tags, fields and timestamp of one ``riverguard`` line; asserts the types the README promises."""
    m = LINE.match(line)
    assert m, line
    tags = dict(item.decode().split("=", 1) for item in m.group(1).split(b","))
    assert list(tags) == sorted(tags) and tags["mode"] in ("compiled", "pure"), line  # (as Telegraf sorts them)
    fields: dict[str, int | float] = {}
    for item in m.group(2).split(b","):
        name, _, value = item.decode().partition("=")
        if name in INT_FIELDS:
            assert re.fullmatch(r"-?[0-9]+i", value), item
            fields[name] = int(value[:-1])
        else:
            assert name in FLOAT_FIELDS, item
            assert re.fullmatch(r"-?[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?", value), item  # %g: a float in line protocol
            fields[name] = float(value)
    assert set(fields) >= set(COUNTERS) | (set(GAUGES) - {"lag_seconds"}), fields
    return tags, fields, int(m.group(3))


def monitor_lines(out: bytes) -> list[bytes]:
    return [line for line in out.splitlines() if line.startswith(b"riverguard,")]


def _config(tmp_path: Path, monitor: str = 'interval = "1s"') -> Path:
    path = tmp_path / "rg.toml"
    path.write_text(
        f'[monitor]\n{monitor}\n[state]\npath = "state.msgpack"\ncheckpoint_interval = "1s"\n'
        '[[rule]]\nname = "all"\nwarmup = 0\nthreshold = 0.3\ndetector = "zscore"\n',
        encoding="utf-8",
    )
    return path


def _wait_monitor(proc, n: int, timeout: float = 10.0) -> bool:
    return proc.out.wait_for(lambda d: len(monitor_lines(d)) >= n and d.endswith(b"\n"), timeout)


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure"])
def test_a_line_each_interval_between_whole_metrics_and_one_at_exit(start, tmp_path: Path, pure: bool) -> None:
    # "compiled": whatever the suite runs under, the process may use the compiled build if there is one.
    env = {**os.environ, "RIVERGUARD_PURE_PYTHON": "1" if pure else "0"}
    proc = start("run", "--config", str(_config(tmp_path)), cwd=tmp_path, env=env)
    proc.ready()
    # Before any timestamped metric: lines come while stdin is idle, without lag_seconds.
    assert _wait_monitor(proc, 2), proc.stderr
    tags, fields, _ = parse_monitor(monitor_lines(proc.stdout)[0])
    # host: this machine's name, as Telegraf's own host tag (it adds none to a processor's new metrics)
    mode = "compiled" if not pure and _HOT_PATH_BUILT else "pure"
    assert tags == {"host": socket.gethostname(), "mode": mode, "status": "scoring", "version": __version__}
    assert "lag_seconds" not in fields and fields["metrics"] == 0
    now = time.time_ns()
    sent = [b"load,host=a v=%d %d\n" % (i % 5, now + i) for i in range(40)]
    sent += [b"load,host=a v=5000 %d\n" % (now + 40), b"this is not line protocol\n"]
    proc.write(b"".join(sent))
    # Half a metric, then silence: the lines due meanwhile go out before it, never inside it.
    before = len(monitor_lines(proc.stdout))
    proc.write(b"split,host=a v=1")
    assert _wait_monitor(proc, before + 2), proc.stderr
    proc.write(b"2 %d\n" % (now + 41))
    assert proc.wait_lines(3 + len(sent) + before + 2, timeout=10), proc.stdout
    proc.close_stdin()
    assert proc.wait(10) == 0, proc.stderr
    out = proc.stdout
    assert out.endswith(b"\n")
    lines = out.splitlines()
    assert re.match(rb"^split,host=a v=12,v_anomaly_score=[0-9.e-]+,v_anomaly=(true|false) [0-9]+$",
                    [x for x in lines if x.startswith(b"split")][0])
    data = [x for x in lines if not x.startswith(b"riverguard,")]
    assert len(data) == len(sent) + 1  # every metric once, in order, nothing merged with a health line
    assert [x.split(b" ")[0] for x in data[:2]] == [b"load,host=a", b"load,host=a"]
    health = [parse_monitor(x) for x in monitor_lines(out)]
    assert lines[-1].startswith(b"riverguard,")  # the last line: written at exit, after the last checkpoint
    _, last, stamp = health[-1]
    assert abs(stamp - time.time_ns()) < 60e9
    assert last["metrics"] == len(sent) + 1 and last["parse_errors"] == 1
    assert last["fields_scored"] == 42  # the 41 load values and the split one; the bad line has none
    assert last["anomalies"] == out.count(b"_anomaly=true") >= 1
    assert last["series"] == 2 and last["evicted"] == 0 and last["expired"] == 0
    assert last["checkpoints"] >= 2 and last["checkpoint_failures"] == 0  # periodic ones and the one at exit
    assert last["checkpoint_bytes"] == (tmp_path / "state.msgpack").stat().st_size
    assert 0.0 < last["checkpoint_seconds"] < 10.0 and last["rss_bytes"] > 10 << 20
    assert -1.0 < last["lag_seconds"] < 60.0  # wall clock minus the newest event time (now + 41 ns)
    counts = [h[1]["metrics"] for h in health]
    assert counts == sorted(counts)  # counters since start only grow


def test_health_lines_fed_back_are_passed_through_unscored(start, tmp_path: Path) -> None:
    """riverguard's output (health lines included) through riverguard again: its own fields get no score."""
    proc = start("run", "--config", str(_config(tmp_path)), cwd=tmp_path)
    proc.ready()
    assert _wait_monitor(proc, 3), proc.stderr
    proc.write(b"cpu v=1 %d\n" % time.time_ns())
    proc.close_stdin()
    assert proc.wait(10) == 0, proc.stderr
    first = proc.stdout
    assert len(monitor_lines(first)) >= 4
    again = tmp_path / "again"
    again.mkdir()
    fresh = b"cpu2 v=1 %d\n" % time.time_ns()
    second = run_cli(["run", "--config", str(_config(again, 'interval = "1h"'))], input=first + fresh, cwd=again)
    assert second.returncode == 0, second.stderr
    # Everything fed back comes back byte for byte (the metrics were scored already, the health lines
    # are never scored); only the fresh metric gets fields, and riverguard's own exit line follows.
    assert second.stdout.startswith(first)
    rest = second.stdout[len(first):].splitlines()
    assert len(rest) == 2 and rest[0].startswith(b"cpu2 v=1,v_anomaly_score=")
    assert parse_monitor(rest[1])[1]["fields_scored"] == 1


def test_off_without_a_monitor_section(start, tmp_path: Path) -> None:
    config = tmp_path / "rg.toml"
    config.write_text('[[rule]]\nname = "all"\n', encoding="utf-8")
    proc = start("run", "--config", str(config), cwd=tmp_path)
    proc.ready()
    time.sleep(0.5)
    proc.close_stdin()
    assert proc.wait(10) == 0
    assert proc.stdout == b""


@pytest.mark.parametrize("value", ['"0s"', '"soon"', "60", '""'])
def test_a_bad_interval_is_refused_with_a_clear_message(tmp_path: Path, value: str) -> None:
    config = tmp_path / "rg.toml"
    config.write_text(f"[monitor]\ninterval = {value}\n", encoding="utf-8")
    result = run_cli(["run", "--config", str(config)])
    assert result.returncode == 0  # (a refused config: run passes the metrics through, tests/test_cli.py)
    assert f"{config}: [monitor], key 'interval'" in result.stderr.decode()
    assert b"Traceback" not in result.stderr


def test_check_config_shows_the_interval_and_tags(tmp_path: Path) -> None:
    result = run_cli(["check-config", str(_config(tmp_path))])
    assert result.returncode == 0, result.stderr
    host = json.dumps(socket.gethostname()).encode()
    assert b'monitor: {"interval_s": 1.0, "tags": {"host": %s}}\n' % host in result.stdout
    tagged = _config(tmp_path, 'interval = "1s"\ntags = { host = "", dc = "eu" }')
    result = run_cli(["check-config", str(tagged)])
    assert b'monitor: {"interval_s": 1.0, "tags": {"dc": "eu"}}\n' in result.stdout, result.stdout


def _health_tags(out: bytes) -> list[dict[str, str]]:
    """The tags of each health line in ``out`` but riverguard's own (mode, status, version)."""
    return [{k: v for k, v in parse_monitor(line)[0].items() if k not in MONITOR_OWN_TAGS}
            for line in monitor_lines(out)]


@pytest.mark.parametrize(
    ("tags", "expected"),
    [('{ host = "web-7", dc = "eu-1" }', {"dc": "eu-1", "host": "web-7"}),
     ('{ dc = "eu-1" }', {"dc": "eu-1", "host": socket.gethostname()}),
     ('{ host = "" }', {})],
    ids=["host-set", "added", "host-left-out"],
)
def test_monitor_tags_set_or_add_to_the_host_tag(tmp_path: Path, tags: str, expected: dict[str, str]) -> None:
    """Telegraf adds neither host nor [global_tags] to a processor's new metrics: across a fleet every
    host's health lines were one series. The line carries host (this machine's name) by default, and
    [monitor] tags sets it (for an [agent] hostname that differs), adds to it, or leaves it out ("")."""
    config = _config(tmp_path, f'interval = "1h"\ntags = {tags}')
    result = run_cli(["run", "--config", str(config)], input=b"cpu v=1\n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _health_tags(result.stdout) == [expected]


@pytest.mark.parametrize(
    ("tags", "said"),
    [('"web1"', "key 'tags': expected a table of tag key to value, such as { host = \"web1\", dc = \"eu\" }, got 'web1'"),
     ('{ mode = "fast" }', "key 'tags.mode': riverguard sets this tag itself (compiled or pure): give yours another name"),
     ('{ version = "2" }', "key 'tags.version': riverguard sets this tag itself"),
     ('{ status = "ok" }', "key 'tags.status': riverguard sets this tag itself (scoring or passthrough)"),
     ("{ rack = 3 }", "key 'tags.rack': expected a string (an empty one, \"\", leaves the tag out), got 3"),
     ('{ rack = "r\\\\1" }', "key 'tags.rack': must not hold a backslash (InfluxDB 1.x keeps it escaped, doubled, in the "
                           "tag value"),
     ('{ "r\\t1" = "a" }', "key 'tags.r\\t1': must not hold a tab, newline or other control character (a tag key"),
     ('{ "" = "a" }', "key 'tags.': an empty tag key (\"\" = ...) cannot be written: line protocol has none")],
    ids=["not-a-table", "mode", "version", "status", "not-a-string", "backslash", "control", "empty-key"],
)
def test_bad_monitor_tags_are_refused_with_a_clear_message(tmp_path: Path, tags: str, said: str) -> None:
    config = _config(tmp_path, f'interval = "1s"\ntags = {tags}')
    result = run_cli(["run", "--config", str(config)], input=b"")
    assert result.returncode == 0  # (a refused config: run passes the metrics through, tests/test_cli.py)
    assert result.stderr.decode().startswith(f"E! [riverguard] {config}: [monitor], {said}"), result.stderr
    assert b"Traceback" not in result.stderr


def test_monitor_tags_without_an_interval_are_warned_of(tmp_path: Path) -> None:
    config = tmp_path / "rg.toml"
    config.write_text('[monitor]\ntags = { dc = "eu" }\n[[rule]]\nname = "all"\n', encoding="utf-8")
    result = run_cli(["run", "--config", str(config)], input=b"cpu v=1\n")
    assert result.returncode == 0 and not monitor_lines(result.stdout)
    assert (f'W! [riverguard] {config}: [monitor] has tags but no interval: no health line is written '
            '(interval = "60s" writes one a minute)\n').encode() in result.stderr, result.stderr


def test_new_monitor_tags_on_sighup_tag_the_next_lines(start, tmp_path: Path) -> None:
    """Unlike the interval (a timer set at start), the tags take effect at the reload: the next line has them."""
    config = _config(tmp_path)
    proc = start("run", "--config", str(config), "--log-level", "info", cwd=tmp_path)
    proc.ready()
    assert _wait_monitor(proc, 1), proc.stderr
    _config(tmp_path, 'interval = "1s"\ntags = { host = "renamed", dc = "eu" }')
    proc.popen.send_signal(signal.SIGHUP)
    assert proc.wait_stderr(lambda e: b"reloaded" in e, 30), proc.stderr
    proc.write(b"marker v=1\n")
    assert proc.out.wait_for(lambda d: b"marker v=1" in d and monitor_lines(d.partition(b"marker v=1")[2]), 30)
    proc.close_stdin()
    assert proc.wait(10) == 0
    assert b"W! " not in proc.stderr, proc.stderr  # nothing waits for the next start
    before, _, after = proc.stdout.partition(b"marker v=1")
    assert _health_tags(before)[0] == {"host": socket.gethostname()}
    assert {tuple(tags.items()) for tags in _health_tags(after)} == {(("dc", "eu"), ("host", "renamed"))}


def test_the_readme_documents_every_field_and_its_example_line_has_the_real_shape() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = re.split(r"\n#+ riverguard's own health \(", readme, maxsplit=1)[1].split("\n#", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))
    assert documented == set(COUNTERS) | set(GAUGES)
    example = re.search(r"```\n(riverguard,.*)\n```", section).group(1).encode()
    tags, fields, _ = parse_monitor(example)
    assert list(fields) == [*COUNTERS, *GAUGES]


WAITS = b"W! [riverguard] received SIGHUP: "
MONITOR_WAITS = {
    "added": WAITS + b'[monitor] interval = "1s" is new: no health line until the next start\n',
    "removed": WAITS + b"[monitor] is off in the new config: the health line goes on every 1s until the next start\n",
    "emptied": WAITS + b"[monitor] is off in the new config: the health line goes on every 1s until the next start\n",
    "changed": WAITS + b'[monitor] interval = "1h" takes effect at the next start; "1s" stays in force until then\n',
}


@pytest.mark.parametrize(
    ("before", "after"),
    [("", '[monitor]\ninterval = "1s"\n'), ('[monitor]\ninterval = "1s"\n', ""),
     ('[monitor]\ninterval = "1s"\n', "[monitor]\n"),
     ('[monitor]\ninterval = "1s"\n', '[monitor]\ninterval = "1h"\n')],
    ids=list(MONITOR_WAITS),
)
def test_a_new_monitor_interval_on_sighup_says_it_waits_for_the_next_start(
    start, tmp_path: Path, before: str, after: str, request: pytest.FixtureRequest
) -> None:
    """SIGHUP does not add, remove or re-time the health line: one W! line says so, as for a new
    checkpoint_interval, in words that fit the change (a section removed is not "a new interval"). (It
    said nothing: a [monitor] section added and reloaded gave no line, and no message why.)"""
    config = tmp_path / "rg.toml"
    rule = '[[rule]]\nname = "all"\n'
    config.write_text(before + rule, encoding="utf-8")
    proc = start("run", "--config", str(config), "--log-level", "info", cwd=tmp_path)
    proc.ready()
    config.write_text(after + rule, encoding="utf-8")
    proc.popen.send_signal(signal.SIGHUP)
    assert proc.wait_stderr(lambda e: b"reloaded" in e, 30), proc.stderr
    assert MONITOR_WAITS[request.node.callspec.id] in proc.stderr, proc.stderr
    # The lines after a metric sent once the reload is done were written after it (stdout is in order;
    # a count taken when stderr says "reloaded" may miss earlier lines the stdout reader has yet to read).
    proc.write(b"marker v=1\n")

    def since_marker(d: bytes) -> list[bytes] | None:
        _, marker, rest = (b"\n" + d).partition(b"\nmarker v=1")
        return monitor_lines(rest.partition(b"\n")[2]) if marker else None

    assert proc.out.wait_for(lambda d: since_marker(d) is not None, 30), proc.stderr

    # The interval in force is the start's: 1 s lines go on (waited for, not slept for), or none come.
    if before:
        assert proc.out.wait_for(lambda d: len(since_marker(d)) >= 2, 30), proc.stdout
    else:  # (absence cannot be waited for: 2.5 s is more than two 1 s intervals; a busy machine can only miss a line)
        assert not proc.out.wait_for(lambda d: bool(since_marker(d)), 2.5), proc.stdout
    proc.close_stdin()
    assert proc.wait(10) == 0
    assert bool(monitor_lines(proc.stdout)) == bool(before)  # nor one at exit without a [monitor] at start


def test_an_unchanged_monitor_on_sighup_says_nothing(start, tmp_path: Path) -> None:
    config = _config(tmp_path)
    proc = start("run", "--config", str(config), "--log-level", "info", cwd=tmp_path)
    proc.ready()
    proc.popen.send_signal(signal.SIGHUP)
    assert proc.wait_stderr(lambda e: b"reloaded" in e, 30), proc.stderr
    assert b"W! " not in proc.stderr, proc.stderr
    proc.close_stdin()
    assert proc.wait(10) == 0


def test_settings_that_wait_for_the_next_start_are_told_once_per_change(start, tmp_path: Path) -> None:
    """A new [state] path, checkpoint_interval and [monitor] interval are each told once, at the SIGHUP that brings
    them, and a later SIGHUP on the same config says nothing more; put back, an I! line says so. (A new
    [monitor] was told at every SIGHUP, its old value put back in the config in force; a new
    checkpoint_interval was told once and kept in that config while the start's timer ran, so putting it
    back was told as a new value that waits; a new [state] path was told at every SIGHUP.)"""
    config = tmp_path / "rg.toml"
    rule = '[[rule]]\nname = "all"\n'
    first = '[state]\npath = "s.msgpack"\ncheckpoint_interval = "60s"\n[monitor]\ninterval = "1s"\n'
    config.write_text(first + rule, encoding="utf-8")
    proc = start("run", "--config", str(config), "--log-level", "info", cwd=tmp_path)
    proc.ready()

    def sighup(n: int) -> list[bytes]:
        proc.popen.send_signal(signal.SIGHUP)
        assert proc.wait_stderr(lambda e: e.count(b"reloaded") >= n, 30), proc.stderr
        told = proc.stderr.split(b"reloaded")[n - 1].splitlines()
        return [line for line in told if b"next start" in line or b"in force" in line]

    second = '[state]\npath = "t.msgpack"\ncheckpoint_interval = "30s"\n[monitor]\ninterval = "1h"\n'
    config.write_text(second + rule, encoding="utf-8")
    assert sighup(1) == [
        b"W! [riverguard] received SIGHUP: [state] path = %s takes effect at the next start; checkpoints go to "
        b"%s until then" % (bytes(tmp_path / "t.msgpack"), bytes(tmp_path / "s.msgpack")),
        b'W! [riverguard] received SIGHUP: [state] checkpoint_interval = "30s" takes effect at the next start; '
        b'"60s" stays in force until then',  # as the config says it (this said "1m")
        b'W! [riverguard] received SIGHUP: [monitor] interval = "1h" takes effect at the next start; '
        b'"1s" stays in force until then',
    ]
    assert sighup(2) == []  # told once
    config.write_text(first + rule, encoding="utf-8")
    assert sighup(3) == [
        b"I! [riverguard] received SIGHUP: [state] path is back to the value in force; nothing waits for the next start",
        b"I! [riverguard] received SIGHUP: [state] checkpoint_interval is back to the value in force; "
        b"nothing waits for the next start",
        b"I! [riverguard] received SIGHUP: [monitor] interval is back to the value in force; "
        b"nothing waits for the next start",
    ]
    assert sighup(4) == []
    proc.close_stdin()
    assert proc.wait(10) == 0


def test_a_run_that_passes_metrics_through_says_so_in_its_health_line(start, tmp_path: Path) -> None:
    """A state folder riverguard may not write (or another user's checkpoint): nothing scores on this host,
    every metric passes through unscored, and no health line was written: the host that stopped scoring
    was invisible. Its lines now say status=passthrough (metrics: the lines passed through), each between
    whole metrics: never inside one written in part, nor inside a string value across lines."""
    prefix = as_a_user(tmp_path)
    (tmp_path / "st").mkdir(mode=0o555)
    config = tmp_path / "rg.toml"
    config.write_text('[monitor]\ninterval = "1s"\n[state]\npath = "st/"\n[[rule]]\nname = "all"\n', encoding="utf-8")
    proc = start("run", "--config", str(config), cmd=[*prefix, *RIVERGUARD], cwd=tmp_path)
    assert _wait_monitor(proc, 1), proc.stderr  # (idle: no input yet)
    # Half a metric followed by silence, then an open quote whose lines keep coming, each for more than an
    # interval: the lines due meanwhile wait for their ends, and go out then; the last metric comes without
    # its newline. (The open quote is waited for as serve waits: less than QUOTE_GRACE, 0.25 s, between its
    # bytes, less than QUOTE_HOLD, 2 s, in all.)
    quoted = [b'log,host=a msg="x\n', *[b"more\n"] * 7, b'y" 3\n']
    parts = [(b"cpu v=1 1\nhalf v=", 1.3), (b"2 2\n", 1.3), *[(part, 0.2) for part in quoted[:-1]],
             (quoted[-1], 1.3), (b"last v=4 4", 1.3)]
    for part, pause in parts:
        proc.write(part)
        time.sleep(pause)
    proc.close_stdin()
    assert proc.wait(10) == 0, proc.stderr
    out = proc.stdout
    sent = b"".join(part for part, _ in parts)
    passed = b"".join(line for line in out.splitlines(keepends=True) if not line.startswith(b"riverguard,"))
    assert passed == sent + b"\n"  # every byte as it came; the last metric ended before the exit line
    assert b"half v=2 2\n" in out and b"".join(quoted) in out
    health = [parse_monitor(line) for line in monitor_lines(out)]
    assert len(health) >= 4 and out.endswith(monitor_lines(out)[-1] + b"\n")
    assert {tags["status"] for tags, _, _ in health} == {"passthrough"}
    assert health[0][0]["host"] == socket.gethostname()
    _, last, _ = health[-1]
    assert last["metrics"] == sent.count(b"\n") and last["fields_scored"] == 0 and "lag_seconds" not in last
    assert [line[:3] for line in proc.stderr.splitlines() if not line.startswith(b"I! ")] == [b"E! "], proc.stderr


def test_a_bad_open_quote_holds_the_passthrough_health_line_back_at_most_quote_hold(start, tmp_path: Path) -> None:
    """A bad line with an open quote, then steady input: the health line waits for the quote's end at most
    QUOTE_HOLD (2 s), then goes on every interval; every byte passes as it came, and none is added. (It
    waited for 8 MiB of input, parsing all of it again at each write, and added a newline at exit.)"""
    prefix = as_a_user(tmp_path)
    (tmp_path / "st").mkdir(mode=0o555)
    config = tmp_path / "rg.toml"
    config.write_text('[monitor]\ninterval = "1s"\n[state]\npath = "st/"\n[[rule]]\nname = "all"\n', encoding="utf-8")
    proc = start("run", "--config", str(config), cmd=[*prefix, *RIVERGUARD], cwd=tmp_path)
    sent = [b'bad s="oops\n']
    proc.write(sent[0])
    for i in range(60):  # 6 s of steady input
        sent.append(b"cpu v=%d %d\n" % (i, i + 1))
        proc.write(sent[-1])
        time.sleep(0.1)
    proc.close_stdin()
    assert proc.wait(10) == 0, proc.stderr
    out = proc.stdout
    passed = b"".join(line for line in out.splitlines(keepends=True) if not line.startswith(b"riverguard,"))
    assert passed == b"".join(sent)
    health = monitor_lines(out)
    assert len(health) >= 4, out  # (about 6 due: 2 s held back at most, then one a second, and the exit's)
    assert out.index(health[1]) < out.index(b"cpu v=50 51\n")


#: A host's clock a year ahead (a battery fault), in ns.
YEAR = 365 * 86400 * 10**9


def _assert_lag_on_time(out: bytes, sent: int | None = None) -> None:
    """The last health line of ``out`` reads the lag of the timestamps on time (wall clock minus the newest of
    them: under a minute here), not -31 536 000 s; ``sent``: and it counted that many metrics."""
    _, last, _ = parse_monitor(monitor_lines(out)[-1])
    assert sent is None or last["metrics"] == sent, last
    assert -1.0 < last["lag_seconds"] < 60.0, last


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure"])
def test_a_timestamp_a_year_ahead_leaves_the_lag_as_it_was_across_a_restart(tmp_path: Path, pure: bool) -> None:
    # An IoT site: one device's clock a year ahead after a battery fault, for a few samples among many
    # devices on time. It gets the W! line; the stream's lag must still read the stream's, before and after
    # a restart on the same state (not -31 536 000 s for good, which would hide a stalled stream).
    env = {**os.environ, "RIVERGUARD_PURE_PYTHON": "1" if pure else "0"}
    config = _config(tmp_path, 'interval = "60s"')
    now = time.time_ns()

    def feed(start: int, n: int, ahead: range = range(0)) -> bytes:
        lines = []
        for i in range(start, start + n):
            device = i % 5
            stamp = now - (start + n - i) * 10**6 + (YEAR if device == 3 and i in ahead else 0)
            lines.append(b"flow,sensor_id=F-%d value=%d.5 %d\n" % (device, i % 7, stamp))
        return b"".join(lines)

    first = run_cli(["run", "--config", str(config)], input=feed(0, 300, range(150, 170)), cwd=tmp_path, env=env)
    assert first.returncode == 0 and b"ahead of the stream's clock" in first.stderr, first.stderr
    second = run_cli(["run", "--config", str(config)], input=feed(300, 100), cwd=tmp_path, env=env)
    assert second.returncode == 0 and b"restored 5 series" in second.stderr, second.stderr
    for out, sent in ((first.stdout, 300), (second.stdout, 100)):
        _assert_lag_on_time(out, sent)


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure"])
@pytest.mark.parametrize("ahead", ["batch", "first"])
def test_a_batch_of_timestamps_a_year_ahead_leaves_the_lag_as_it_was(tmp_path: Path, pure: bool, ahead: str) -> None:
    # The device a year ahead sends its samples together (a batch of 10 lines, one after another), or its line
    # comes first, before the stream's clock is known: only the first of a batch, and none of the stream's
    # first lines, was left out of the newest event time, and lag_seconds read -31 536 000 for good.
    env = {**os.environ, "RIVERGUARD_PURE_PYTHON": "1" if pure else "0"}
    config = _config(tmp_path, 'interval = "60s"')
    now = time.time_ns()
    bad = range(150, 160) if ahead == "batch" else range(1)
    lines = []
    for i in range(300):
        stamp = now - (300 - i) * 10**6
        if i in bad:
            lines.append(b"flow,sensor_id=F-9 value=%d.5 %d\n" % (i % 7, stamp + YEAR))
        else:
            lines.append(b"flow,sensor_id=F-%d value=%d.5 %d\n" % (i % 5, i % 7, stamp))
    ran = run_cli(["run", "--config", str(config)], input=b"".join(lines), cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stderr
    _assert_lag_on_time(ran.stdout, 300)


def test_a_restart_whose_only_scored_series_is_a_year_ahead_keeps_the_streams_lag(tmp_path: Path) -> None:
    # Only "flow" is scored, and its one series is the device a year ahead; the rest of the stream (cpu, on
    # time) is not. The restart took the newest event time from the scored series' last timestamps alone:
    # a year ahead, and the metrics on time after it never moved it back (lag_seconds -31 536 000 for good).
    config = tmp_path / "rg.toml"
    config.write_text('[monitor]\ninterval = "60s"\n[state]\npath = "state.msgpack"\n'
                      '[[rule]]\nname = "flow"\nmeasurement = "flow"\nwarmup = 0\ndetector = "zscore"\n')
    now = time.time_ns()

    def feed(start: int, n: int, ahead: range = range(0)) -> bytes:
        return b"".join(
            b"flow,sensor_id=F-9 value=%d.5 %d\n" % (i % 7, now - (start + n - i) * 10**6 + YEAR) if i in ahead
            else b"cpu,host=h%d usage=%d.5 %d\n" % (i % 5, i % 7, now - (start + n - i) * 10**6)
            for i in range(start, start + n)
        )

    for given in (feed(0, 300, range(150, 153)), feed(300, 100)):
        ran = run_cli(["run", "--config", str(config)], input=given, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        _assert_lag_on_time(ran.stdout)
    assert b"restored 1 series" in ran.stderr, ran.stderr
