"""series_ttl: measured on a stream clock that a wrong host clock cannot move, and decided per series, so
that a restart anywhere gives the same bytes.

Every test drives the real ``riverguard`` process, compiled and pure Python.
"""

from __future__ import annotations

import os
import re
import random
from pathlib import Path

import msgpack
import pytest

from conftest import run_cli
from riverguard.state import store

T = 1_700_000_000_000_000_000
S = 10**9
DAYS_2 = 172_800 * S


@pytest.fixture(params=["compiled", "pure"])
def env(request: pytest.FixtureRequest) -> dict[str, str]:
    return {**os.environ, "RIVERGUARD_PURE_PYTHON": "1" if request.param == "pure" else "0"}


def _hosts(skew: dict[tuple[int, int], int], steps: int = 3000, hosts: int = 10) -> list[bytes]:
    """Ten hosts' cpu every 10 s; ``skew[(host, step)]`` is added to that line's timestamp."""
    rng = random.Random(2)
    lines = []
    for i in range(steps):
        for h in range(hosts):
            v = 50 + rng.gauss(0, 1)
            lines.append(b"cpu,host=h%d v=%.2f %d\n" % (h, v, T + i * 10 * S + skew.get((h, i), 0)))
    lines.append(b"cpu,host=h0 v=500 %d\n" % (T + steps * 10 * S))
    return lines


def _warnings(stderr: bytes) -> list[bytes]:
    return [line for line in stderr.splitlines() if line.startswith(b"W! ")]


def test_one_timestamp_days_ahead_does_not_blind_every_series(env: dict[str, str]) -> None:
    """(It expired every series at every sweep from then on: the spike at the end scored 0.0.)"""
    lines = _hosts({(9, 500): DAYS_2})
    result = run_cli(["run", "--log-level", "info"], input=b"".join(lines), env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[-1].endswith(b"v_anomaly_score=1.0,v_anomaly=true %d" % (T + 3000 * 10 * S)), out[-1]
    clean = run_cli(["run"], input=b"".join(_hosts({})), env=env).stdout.splitlines()
    others = [o for o in out if not o.startswith(b"cpu,host=h9 ")]  # (h9's model saw the odd time: its own)
    assert others == [c for c in clean if not c.startswith(b"cpu,host=h9 ")]
    assert b" 0 expiries (series_ttl)" in result.stderr, result.stderr
    warned = _warnings(result.stderr)
    assert len(warned) == 1 and b"1 metric with a timestamp more than series_ttl (24h) ahead" in warned[0], warned
    assert b" from cpu,host=h9, when " in warned[0], warned  # (which host's clock to look at, in a fleet)


def test_a_host_days_ahead_for_good_leaves_the_other_hosts_alone(env: dict[str, str]) -> None:
    """Host h9's clock runs two days ahead from the first line: the other hosts' lines are scored as without
    it, and one W! line (not one per line) says so, the lines after it one more at exit."""
    skewed = _hosts({(9, i): DAYS_2 for i in range(3000)})
    result = run_cli(["run", "--log-level", "info"], input=b"".join(skewed), env=env)
    assert result.returncode == 0, result.stderr
    without = b"".join(line for line in _hosts({}) if not line.startswith(b"cpu,host=h9 "))
    alone = run_cli(["run"], input=without, env=env).stdout
    assert b"".join(o + b"\n" for o in result.stdout.splitlines() if not o.startswith(b"cpu,host=h9 ")) == alone
    assert result.stdout.splitlines()[-1].endswith(b"v_anomaly=true %d" % (T + 3000 * 10 * S))
    assert b" 0 expiries (series_ttl)" in result.stderr, result.stderr
    warned = _warnings(result.stderr)
    assert len(warned) <= 2 and sum(int(w.split()[2]) for w in warned) == 3000, result.stderr  # (one: all in one batch)
    assert all(b" from cpu,host=h9, when " in w for w in warned), warned


CONFIG = '[state]\nseries_ttl = "1h"\n[[rule]]\nname = "z"\ndetector = "zscore"\nwarmup = 2\n'


def _comeback() -> list[bytes]:
    """Series b for 10 s, then only a for 5000 s (past the 1 h ttl, and past one expiry sweep at metric
    4096), then b again with a spike: b starts fresh (its warm-up), whatever sweeps ran."""
    lines = [b"m,h=b v=%d %d\n" % (1 + i % 2, i * S) for i in range(10)]
    lines += [b"m,h=a v=%d %d\n" % (i % 5, i * S) for i in range(10, 5010)]
    lines += [b"m,h=b v=%d %d\n" % (100 + i % 3, (5010 + i) * S) for i in range(5)]
    return lines


def _restarted(tmp_path: Path, env: dict[str, str], config: str, lines: list[bytes], splits: list[int]) -> bytes:
    """The output of one run over ``lines`` under ``config``, after asserting that runs restarted from a
    checkpoint before each line index in ``splits`` give the same bytes."""
    path = tmp_path / "rg.toml"
    path.write_text(config)
    whole = run_cli(["run", "--config", str(path)], input=b"".join(lines), env=env)
    assert whole.returncode == 0, whole.stderr
    state = tmp_path / "s.msgpack"
    out = b""
    for start, end in zip([0, *splits], [*splits, len(lines)]):
        part = run_cli(["run", "--config", str(path), "--state", str(state)], input=b"".join(lines[start:end]), env=env)
        assert part.returncode == 0, part.stderr
        out += part.stdout
    differ = [i for i, (a, b) in enumerate(zip(whole.stdout.splitlines(), out.splitlines())) if a != b]
    assert out == whole.stdout, f"restarts at lines {splits}: {len(differ)} lines differ, the first: {differ[:5]}"
    return whole.stdout


@pytest.mark.parametrize("split", [1, 3000, 4095, 4096, 4097, 5010, 5012])
def test_expiry_gives_the_same_bytes_wherever_a_restart_falls(tmp_path: Path, env: dict[str, str], split: int) -> None:
    """(The expiry sweep ran every 4096 metrics counted from the process's start: a restart moved it, and
    series b kept its model in one run and started fresh in the other.)"""
    whole = _restarted(tmp_path, env, CONFIG, _comeback(), [split])
    assert whole.splitlines()[5010].endswith(b"v_anomaly_score=0.0,v_anomaly=false %d" % (5010 * S))


def test_a_late_series_is_scored_and_a_stale_one_makes_room(tmp_path: Path, env: dict[str, str]) -> None:
    """max_series = 3: b is seen once, then the stream's clock moves on 10 h with a; c comes 3 h behind the
    clock and keeps coming: it is scored as any series (its spike flagged), not started fresh at each
    sample; d, new, drops b (stale: not seen while the clock moved on) and keeps a, whose spike is flagged.
    (c started fresh at each sample, its spike in its warm-up, while its timestamps lagged the clock.)"""
    config = CONFIG.replace("[state]\n", "[state]\nmax_series = 3\n") + "[rule.params]\nmin_std = 1.0\n"
    now, late = T + 36_000 * S, T + 25_200 * S
    lines = [b"m b=1 %d\n" % T]
    lines += [b"m a=%d %d\n" % (11 + i % 3, now + i * S) for i in range(80)]
    lines += [b"m c=%d %d\n" % (1 + i % 2, late + i * S) for i in range(4)]
    lines += [b"m d=1 %d\n" % (now + 100 * S), b"m c=40 %d\n" % (late + 4 * S), b"m a=50 %d\n" % (now + 101 * S)]
    whole = _restarted(tmp_path, env, config, lines, [5, 82, 86])
    out = whole.splitlines()
    assert out[-2] == b"m c=40,c_anomaly_score=1.0,c_anomaly=true %d" % (late + 4 * S), out[-2]
    assert out[-1] == b"m a=50,a_anomaly_score=1.0,a_anomaly=true %d" % (now + 101 * S), out[-1]


def test_a_stale_series_restarted_by_a_sample_without_a_timestamp_starts_fresh_once(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """w is seen, then the stream's clock moves on 25 h (past the 24 h ttl): its next sample, without a
    timestamp, starts it fresh, and the one after is scored. (The restart kept w's old last time: the next
    timestamped sample started it fresh again in one run, while a run restarted in between, whose
    checkpoint had dropped w, scored it.)"""
    config = '[output]\nexplain = true\n[[rule]]\nname = "z"\ndetector = "zscore"\nwarmup = 1\n[rule.params]\nmin_std = 1.0\n'
    later = T + 90_000 * S
    lines = [b"m v=1 %d\n" % T] * 3 + [b"m w=5 %d\n" % T] + [b"m v=1 %d\n" % (later + i) for i in range(70)]
    lines += [b"m w=7\n", b"m w=9 %d\n" % later]
    whole = _restarted(tmp_path, env, config, lines, [5, 74])
    assert whole.splitlines()[-1].startswith(b"m w=9,w_anomaly_score=0.9545,w_anomaly=false,"), whole


def _lagging(seed: int, n: int = 20_000, hosts: int = 20) -> list[bytes]:
    """``hosts`` hosts every ~24 s on the stream's clock, and 5 % of lines from ten others 4-48 h behind it;
    1 % of lines without a timestamp."""
    rng = random.Random(seed)
    lines = []
    t = T
    for _ in range(n):
        t += rng.choice((1, 10, 60)) * S
        if rng.random() < 0.05:
            h, stamp = rng.randrange(hosts, hosts + 10), t - rng.randint(4, 48) * 3600 * S
        else:
            h, stamp = rng.randrange(hosts), t
        tail = b"" if rng.random() < 0.01 else b" %d" % stamp
        lines.append(b"m,h=h%d v=%.2f%s\n" % (h, 10 + rng.gauss(0, 1), tail))
    return lines


def test_late_hosts_past_max_series_give_the_same_bytes_over_restarts(tmp_path: Path, env: dict[str, str]) -> None:
    """Series past max_series, late and untimestamped lines, a checkpoint every 2500 lines. (176 lines
    differed: a stale series hidden from eviction, see above.)"""
    config = CONFIG.replace("[state]\n", "[state]\nmax_series = 20\n").replace('"1h"', '"3h"')
    _restarted(tmp_path, env, config, _lagging(1), list(range(2_500, 20_000, 2_500)))


def test_a_checkpoint_without_the_clock_still_loads(tmp_path: Path, env: dict[str, str]) -> None:
    """A checkpoint written before the clock was kept restores its series; the clock starts from the stream."""
    config = tmp_path / "ttl.toml"
    config.write_text(CONFIG)
    state = tmp_path / "s.msgpack"
    lines = _comeback()
    assert run_cli(["run", "--config", str(config), "--state", str(state)], input=b"".join(lines[:3000]), env=env).returncode == 0
    checkpoint = store.read(state)
    assert "clock" in checkpoint.header
    header = {k: v for k, v in checkpoint.header.items() if k not in ("clock", "format", "version", "created", "series")}
    store.write(state, header, checkpoint.records)
    assert "clock" not in msgpack.Unpacker(open(state, "rb"), raw=False).unpack()
    rest = run_cli(["run", "--config", str(config), "--state", str(state), "--log-level", "info"],
                   input=b"".join(lines[3000:]), env=env)
    assert rest.returncode == 0 and b"restored 2 series" in rest.stderr, rest.stderr
    assert not list(tmp_path.glob("*.corrupt-*"))
    whole = run_cli(["run", "--config", str(config)], input=b"".join(lines), env=env).stdout
    assert rest.stdout.splitlines()[-5:] == whole.splitlines()[-5:]  # b is back after 5000 s: it starts fresh


def test_a_malformed_clock_sets_the_checkpoint_aside(tmp_path: Path, env: dict[str, str]) -> None:
    config = tmp_path / "ttl.toml"
    config.write_text(CONFIG)
    state = tmp_path / "s.msgpack"
    assert run_cli(["run", "--config", str(config), "--state", str(state)], input=b"m,h=a v=1 1\n", env=env).returncode == 0
    checkpoint = store.read(state)
    header = {k: v for k, v in checkpoint.header.items() if k not in ("format", "version", "created", "series")}
    store.write(state, {**header, "clock": [None, ["x"]]}, checkpoint.records)
    result = run_cli(["run", "--config", str(config), "--state", str(state)], input=b"m,h=a v=1 2\n", env=env)
    assert result.returncode == 0
    warned = _warnings(result.stderr)
    assert len(warned) == 1 and b"malformed clock" in warned[0], result.stderr
    assert len(list(tmp_path.glob("s.msgpack.corrupt-*"))) == 1



def test_an_hourly_series_alone_is_not_warned_about(env: dict[str, str]) -> None:
    """One hourly series, in order: the stream's clock (a median of the latest 127 timestamps) trails its
    newest sample by days, yet nothing is reported "ahead" of it (the audit found 352 false ``W!`` lines):
    a timestamp is ahead only if it also jumps more than series_ttl past the metric before it."""
    rng = random.Random(1)
    steady = b"".join(b"m,h=a v=%.3f %d\n" % (50 + rng.gauss(0, 1), T + i * 3600 * S) for i in range(400))
    result = run_cli(["run"], input=steady, env=env)
    assert result.returncode == 0 and b"W!" not in result.stderr, result.stderr


def test_the_warning_gives_the_clock_as_it_was_when_the_timestamp_came(env: dict[str, str]) -> None:
    """The whole stream moves on two days (a replay of two recordings one after the other): the first metric
    of the second is ahead, and the warning, written after the clock has followed, gave the clock as it was
    then, later than the timestamp it called two days ahead of it; and said such timestamps do not move the
    clock, though the stream moving on as a whole did."""
    first = [b"cpu,host=a v=%d %d\n" % (i % 7, T + i * 10 * S) for i in range(300)]
    second = [b"cpu,host=a v=%d %d\n" % (i % 7, T + DAYS_2 + i * 10 * S) for i in range(300)]
    result = run_cli(["run"], input=b"".join(first + second), env=env)
    assert result.returncode == 0, result.stderr
    warned = _warnings(result.stderr)
    assert len(warned) == 1, warned
    assert (
        b"1 metric with a timestamp more than series_ttl (24h) ahead of the stream's clock (the latest: %s from"
        b" cpu,host=a, when the clock was %s): is a host's clock wrong? A few such timestamps do not move the clock series expire"
        b" by; the whole stream moving on does" % (_iso(T + DAYS_2), _iso(T + 236 * 10 * S))
    ) in warned[0], warned


def test_riverguards_own_health_metrics_do_not_move_the_clock(env: dict[str, str]) -> None:
    """Replaying riverguard's own output: its health metric, stamped with the wall clock at the end of a run
    (here a year later than the data), passes through unscored, as documented, and no longer counts as a
    timestamp far ahead ("is a host's clock wrong?") nor moves the clock series expire by."""
    lines = [b"cpu,host=a v=%d %d\n" % (i % 7, T + i * 10 * S) for i in range(300)]
    health = b"riverguard,host=x metrics=300i,lag_seconds=0 %d\n" % (T + 365 * 86400 * S)
    later = [b"cpu,host=a v=%d %d\n" % (i % 7, T + (300 + i) * 10 * S) for i in range(300)]
    result = run_cli(["run"], input=b"".join(lines + [health] * 200 + later), env=env)
    assert result.returncode == 0, result.stderr
    assert _warnings(result.stderr) == []
    out = result.stdout.splitlines()
    assert out[300:500] == [health.rstrip(b"\n")] * 200
    plain = run_cli(["run"], input=b"".join(lines + later), env=env).stdout.splitlines()
    assert out[:300] + out[500:] == plain  # the clock stayed with the data: no series started fresh
    assert b" 0 expiries (series_ttl)" in result.stderr, result.stderr


def _iso(ns: int) -> bytes:
    from riverguard.log import iso_ns

    return iso_ns(ns).encode()


def test_only_the_expiries_of_series_with_a_model_are_counted(tmp_path: Path, env: dict[str, str]) -> None:
    """Field ``w`` is not scored (no rule takes it): riverguard only remembers its routing. It was counted
    as an expiry each time it started fresh or was dropped stale beside ``v`` (``4 expiries`` where two
    models expired: ``a``'s started fresh, ``b``'s dropped by the sweep at metric 4 096)."""
    (tmp_path / "rg.toml").write_text('[state]\nseries_ttl = "1h"\n[[rule]]\nfields = ["v"]\n', encoding="utf-8")
    lines, t = [], T
    for i in range(300):
        t += 10 * S
        lines += [b"m,host=a v=%d,w=%d %d\n" % (1 + i % 2, i, t), b"m,host=b v=%d,w=%d %d\n" % (1 + i % 2, i, t)]
    t += 3 * 86400 * S
    for i in range(200):  # another series moves the stream's clock on: a and b are stale
        t += S // 10
        lines.append(b"n x=%d %d\n" % (i, t))
    lines.append(b"m,host=a v=1,w=1 %d\n" % t)  # a's v and w start fresh
    for i in range(4000):  # on past metric 4 096: the sweep drops b's v and w
        t += S // 10
        lines.append(b"n x=%d %d\n" % (i, t))
    result = run_cli(["run", "--config", str(tmp_path / "rg.toml")], input=b"".join(lines), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(b"w_anomaly") == 0 and result.stdout.count(b"v_anomaly_score") == 601
    assert b", 0 evictions (max_series, 0 of a series not yet scored), 2 expiries (series_ttl)\n" in result.stderr, (
        result.stderr)


def test_timestamps_ahead_after_the_last_warning_are_told_at_exit(env: dict[str, str], start) -> None:
    """The ``W!`` line about timestamps far from the stream's clock comes at most once a minute: those after
    it were not told when the process ended within that minute. They are now, at exit."""
    proc = start("run", env=env)
    proc.ready()

    def steady(first: int, host: bytes) -> bytes:
        lines = b"".join(b"cpu,host=a v=%d %d\n" % (i % 7, T + i * 10 * S) for i in range(first, first + 200))
        return lines + b"cpu,host=%s v=1 %d\n" % (host, T + DAYS_2 + first * S)

    proc.write(steady(0, b"b"))
    assert proc.wait_stderr(lambda e: b"W! " in e, 30), proc.stderr
    proc.write(steady(200, b"c"))
    assert proc.wait_lines(402, 30), proc.stderr
    proc.close_stdin()
    assert proc.wait(30) == 0
    warned = _warnings(proc.stderr)
    assert len(warned) == 2, warned
    assert all(w.startswith(b"W! [riverguard] 1 metric with a timestamp more than series_ttl (24h) ahead of the "
                            b"stream's clock (the latest: %s from cpu,host=%s," % (_iso(T + DAYS_2 + first * S), host))
               for w, first, host in zip(warned, (0, 200), (b"b", b"c"))), warned


def test_a_restore_into_a_running_engine_starts_the_clocks_reports_again(tmp_path: Path) -> None:
    """``pull --follow`` recovers from a failed write by restoring its last checkpoint into the same engine:
    the clock's counts of far timestamps started again from 0, the engine's count of those already reported
    did not, and the next report said ``W! -1 metrics with timestamps ...`` and hid the next one."""
    import io

    from riverguard.config import parse as parse_config
    from riverguard.engine import Engine
    from riverguard.lineprotocol import Splitter
    from riverguard.log import Log
    from riverguard.state import StateStore

    lines = io.StringIO()
    engine = Engine(parse_config(""), Log("info", lines))
    store = StateStore(engine, tmp_path / "cp.msgpack")

    def feed(data: bytes) -> list[str]:
        start = len(lines.getvalue())
        for record in Splitter().split(data)[0]:
            engine.process(record)
        engine.flush_log(final=True)
        return [line for line in lines.getvalue()[start:].splitlines() if line.startswith("W! ")]

    assert feed(b"".join(b"cpu,host=a v=%d %d\n" % (i % 7, T + i * 10 * S) for i in range(300))) == []
    assert store.save()
    ahead = b"cpu,host=a v=1 %d\n" % (T + DAYS_2)
    told = feed(ahead)
    assert len(told) == 1 and "1 metric with a timestamp more than series_ttl (24h) ahead" in told[0], told
    store.restore()  # as Puller.recover() does
    assert feed(b"") == []
    told = feed(ahead)
    assert len(told) == 1 and "1 metric with a timestamp more than series_ttl (24h) ahead" in told[0], told


# -- what a series let go is told as: evictions (max_series) and returns after an expiry (series_ttl) --------


def wide(max_series: int) -> bytes:
    """cpu v for 300 samples (past the warm-up), then one metric with a field more than ``max_series``, then
    cpu v for 100 samples and a spike."""
    rng = random.Random(1)
    lines = [b"cpu,host=a v=%.3f %d\n" % (50 + rng.gauss(0, 1), T + i * 10 * S) for i in range(300)]
    lines.append(b"json,host=a %s %d\n" % (b",".join(b"f%d=1" % k for k in range(max_series + 1)), T + 3000 * S))
    lines += [b"cpu,host=a v=%.3f %d\n" % (50 + rng.gauss(0, 1), T + i * 10 * S) for i in range(301, 401)]
    return b"".join(lines) + b"cpu,host=a v=90 %d\n" % (T + 4010 * S)


def test_a_trained_model_evicted_is_told(tmp_path: Path, env: dict[str, str]) -> None:
    """A metric with more fields than max_series evicts cpu v's trained model: the spike after it scores 0.0
    in a new warm-up. Only "2 evictions of a series not yet scored" (the wide metric's own) was told, nothing
    of the trained model lost. Now its own W! line: seen within the last second (it still reports, so
    series_ttl is no cure: not named), raise max_series."""
    (tmp_path / "rg.toml").write_text('[state]\nmax_series = 500\n\n[[rule]]\nname = "all"\n')
    result = run_cli(["run", "--config", "rg.toml"], input=wide(500), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(b"v=90,v_anomaly_score=0.0,v_anomaly=false %d\n" % (T + 4010 * S))
    assert _warnings(result.stderr) == [
        b"W! [riverguard] 1 eviction of a trained model (1 since start): some seen in the last second; a model "
        b"evicted starts its warm-up again when its series comes back; max_series = 500 is too small for the "
        b"series coming in; raise [state] max_series",
        b"W! [riverguard] 2 evictions of a series not yet scored (2 since start): some seen in the last second; "
        b"max_series = 500 is too small for the series coming in; raise [state] max_series",
    ], result.stderr
    assert b", 3 evictions (max_series, 2 of a series not yet scored), " in result.stderr


def churn(minutes: int, per_minute: int, life: int = 60, every: int = 10) -> bytes:
    """Containers that live ``life`` s, each sampled every ``every`` s, ``per_minute`` new ones a minute."""
    gap = 60 * S // per_minute
    events = sorted((c * gap + k * every * S, c) for c in range(minutes * per_minute) for k in range(life // every))
    return b"".join(b"docker,container=c%d v=%d %d\n" % (c, c % 7, T + t) for t, c in events)


def test_evictions_of_series_gone_for_good_name_series_ttl(tmp_path: Path, env: dict[str, str]) -> None:
    """Containers that live a minute, 40 new ones a minute, max_series = 200: each series evicted is a
    container gone for minutes. The W! line said only "raise [state] max_series", which would hold more
    dead containers. It now says that none was seen in the last N s and that a series_ttl under that drops
    them first; with that series_ttl, nothing is evicted, nothing told, the same output."""
    config = tmp_path / "rg.toml"
    config.write_text('[state]\nmax_series = 200\n\n[[rule]]\nname = "all"\n')
    data = churn(30, 40)
    result = run_cli(["run", "--config", str(config)], input=data, env=env)
    assert result.returncode == 0, result.stderr
    warned = _warnings(result.stderr)
    assert warned and all(b"evictions of a series not yet scored" in w for w in warned), result.stderr
    told = re.fullmatch(
        rb"W! \[riverguard\] [0-9]+ evictions of a series not yet scored \(1000 since start\): none seen in the "
        rb"last ([0-9]+)s; max_series = 200 is too small for the series coming in; raise \[state\] max_series, "
        rb"or, if those series are gone for good \(containers that came and went\), set \[state\] series_ttl "
        rb"\(now 24h\) under ([0-9]+)s, and over the longest interval a series reports at, so that they expire "
        rb"before they are evicted", warned[-1])
    assert told and told[1] == told[2], warned[-1]
    idle = int(told[1])
    assert 200 < idle < 250, idle  # (gone 4 min 10 s, on a clock that trails the newest timestamps)
    config.write_text(f'[state]\nmax_series = 200\nseries_ttl = "{idle - 10}s"\n\n[[rule]]\nname = "all"\n')
    again = run_cli(["run", "--config", str(config)], input=data, env=env)
    assert again.returncode == 0 and not _warnings(again.stderr), again.stderr
    assert b" 0 evictions (max_series, " in again.stderr, again.stderr
    assert again.stdout == result.stdout


def slow(hosts: int, minutes: int = 60, down: range = range(0)) -> bytes:
    """``hosts`` hosts' cpu every 10 s (host h0 silent in the minutes ``down``), and one backup series every
    10 minutes."""
    rng = random.Random(3)
    lines = []
    for i in range(minutes * 6):
        t = T + i * 10 * S
        lines += [b"cpu,host=h%d v=%.3f %d\n" % (h, 50 + rng.gauss(0, 1), t) for h in range(hosts)
                  if h or i // 6 not in down]
        if i % 60 == 0:
            lines.append(b"backup,host=a v=%.3f %d\n" % (50 + rng.gauss(0, 1), t))
    return b"".join(lines)


@pytest.mark.parametrize("hosts", [10, 150])
def test_a_series_sampled_less_often_than_series_ttl_is_told(tmp_path: Path, env: dict[str, str], hosts: int) -> None:
    """series_ttl = "5m" and a backup series every 10 minutes: it expires between its samples, starts fresh
    at each and is never scored; only the exit line's count of expiries said anything. Now a W! line says
    it, with the series. With 10 hosts the backup series is still held when it comes back (3 600 metrics: no
    expiry sweep); with 150, sweeps drop it in between (it is new at each sample). Host h0, silent for 20
    minutes, expires too and comes back, but after many samples: not told."""
    (tmp_path / "rg.toml").write_text('[state]\nseries_ttl = "5m"\n\n[[rule]]\nname = "all"\n')
    result = run_cli(["run", "--config", "rg.toml"], input=slow(hosts, down=range(20, 40)), cwd=tmp_path,
                     env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    backups = [line for line in result.stdout.splitlines() if line.startswith(b"backup,")]
    assert len(backups) == 6 and all(b"v_anomaly_score=0.0," in line for line in backups)
    warned = _warnings(result.stderr)
    assert warned, result.stderr
    pattern = (rb"W! \[riverguard\] ([0-9]+) returns? of a series that expired after a single sample \(([0-9]+) "
               rb"since start; the latest: backup,host=a v\): it reports less often than series_ttl \(5m\), so "
               rb"it starts fresh at every sample and is never scored; raise \[state\] series_ttl above its interval")
    told = [re.fullmatch(pattern, w) for w in warned]
    assert all(told), warned
    assert sum(int(m[1]) for m in told) == int(told[-1][2]) == 5, warned  # (the samples after the first)
