"""The spike step of ``sentinel`` (on by default) and ``context`` (``[rule.params] spike``), through the real process.

What a user relies on: a short spike that stays inside the range already
seen (which the likelihood averages away) is flagged at its sample with
reason ``spike`` (``dip`` below) once it has lasted ``spike_time`` (30
minutes): at once in an hourly series, not for a one-minute blip in a
per-minute series unless ``spike_time = 0``; a later spike smaller than half
the largest one seen recently is not (``spike_record``); ``spike = 0`` leaves
the step out (the output and checkpoint of a rule without it); and a restart
from a checkpoint changes no byte of the output.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import run_cli, samples
from riverguard.detectors import REGISTRY

T0 = 19674 * 86400  # Monday 2023-11-13, 00:00 UTC
EXPLAIN = "[output]\nexplain = true\n\n"
HOUR, MINUTE = 3600, 60


def spiky(step: int = HOUR, series: bytes = b"api", field: bytes = b"latency") -> tuple[bytes, int, int]:
    """4 320 samples ``step`` seconds apart of two series around 100 (sd 2), host a then host b on
    alternate lines; an early burst to 300 and a drop to -100 set the range; at sample 2 040 a spike of
    +150 (host a) and a dip of -150 (host b) stay inside it (no new extreme), and 450 samples later (after
    the suppression) a spike of +40 (host a) is under half the largest deviation seen (which fades over
    about 1 000 samples). Returns the line protocol and the line numbers of host a's spike and small
    spike (host b's dip is on the line after the spike)."""
    spike, small = 1440 + 600, 1440 + 1050

    def value(i: int, host: bytes, gauss: Callable[[float], float]) -> float:
        x = 100.0 + gauss(2.0)
        if 300 <= i < 310:
            x += 200.0
        if 320 <= i < 330:
            x -= 200.0
        if i == spike:
            x += 150.0 if host == b"a" else -150.0
        if i == small and host == b"a":
            x += 40.0
        return x

    times = [T0 + step * i for i in range(3 * 1440)]
    data = samples(times, value, seed=3, hosts=(b"a", b"b"), series=series, field=field)
    return data, 2 * spike, 2 * small


def _config(tmp_path: Path, detector: str, params: str = "", extra: str = EXPLAIN) -> Path:
    path = tmp_path / f"{detector}-{len(list(tmp_path.glob('*.toml')))}.toml"
    path.write_text(f'{extra}[[rule]]\nname = "all"\ndetector = "{detector}"\n{params}')
    return path


def _run(args: list[str], data: bytes) -> bytes:
    proc = run_cli(args, input=data, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr
    return proc.stdout


#: the rule settings that switch the spike step on, for each detector (``sentinel``: its default)
ON = {"sentinel": "", "context": "[rule.params]\nspike = 12\n"}
OFF = {"sentinel": "[rule.params]\nspike = 0\n", "context": ""}
#: the views step off (``sentinel``): it reports an hourly spike several times the usual daily peak too, at 1.0
#: (tests/test_views.py), where these tests look at the spike step's own score
NO_VIEWS = {"sentinel": "peak = 0\n", "context": ""}


@pytest.mark.parametrize(
    ("detector", "step", "params"),
    [("sentinel", HOUR, ""), ("context", MINUTE, "spike = 12\nspike_time = 0\n")],  # (context: a time-of-day
)  # extreme at that hour anyway)
def test_a_spike_inside_the_range_is_flagged_with_the_spike_step(
    tmp_path: Path, detector: str, step: int, params: str
) -> None:
    data, spike, small = spiky(step)
    dip = spike + 1
    off = _run(["run", "--config", str(_config(tmp_path, detector, OFF[detector] + NO_VIEWS[detector]))],
               data).splitlines()
    on = _run(["run", "--config", str(_config(tmp_path, detector, "[rule.params]\n" + params + NO_VIEWS[detector]))],
              data).splitlines()
    assert len(off) == len(on) == len(data.splitlines())
    for i in (spike, dip, small):
        assert b"latency_anomaly=false" in off[i], off[i]
    assert b",latency_anomaly_score=0.9,latency_anomaly=true," in on[spike], on[spike]
    assert on[spike].count(b'latency_anomaly_reason="spike"') == 1
    assert b",latency_anomaly_score=0.9,latency_anomaly=true," in on[dip], on[dip]
    assert on[dip].count(b'latency_anomaly_reason="dip"') == 1
    assert b"latency_anomaly=false" in on[small], on[small]  # under half the largest deviation seen
    # the band written before the spike left it out: its upper edge is below the spike
    upper = float(re.search(rb"latency_anomaly_upper=([^, ]+)", on[spike]).group(1))
    value = float(re.search(rb" latency=([^, ]+)", on[spike]).group(1))
    assert value > upper
    # spike_record = 0: every spike of 12 deviations counts, the small one too
    every = _run(["run", "--config", str(_config(tmp_path, detector, f"[rule.params]\n{params}spike_record = 0\n"))], data)
    assert b"latency_anomaly=true" in every.splitlines()[small]


def test_a_one_minute_blip_is_no_spike_until_spike_time_is_0(tmp_path: Path) -> None:
    """The same values a minute apart: the spike and the dip last one minute, not the 30 of ``spike_time``,
    and the default reports neither (nor anything else there); with ``spike_time = 0`` one sample is enough."""
    data, spike, _ = spiky(MINUTE)
    default = _run(["run", "--config", str(_config(tmp_path, "sentinel"))], data).splitlines()
    for i in (spike, spike + 1):
        assert b"latency_anomaly=false" in default[i], default[i]
    at_once = _run(["run", "--config", str(_config(tmp_path, "sentinel", "[rule.params]\nspike_time = 0\n"))], data)
    assert at_once.splitlines()[spike].count(b'latency_anomaly_reason="spike"') == 1
    assert at_once.splitlines()[spike + 1].count(b'latency_anomaly_reason="dip"') == 1


def blip(times: list[int | None]) -> bytes:
    """3 000 samples of a series around 100 (sd 2) at the given event times (s; None: no timestamp), a
    burst to 300 and -100 at samples 30-31 (the range), and a blip of +150 at sample 2 000 (inside it)."""

    def value(i: int, host: bytes, gauss: Callable[[float], float]) -> float:
        x = 100.0 + gauss(2.0)
        if i in (30, 31):
            x = 300.0 if i == 30 else -100.0
        if i == 2000:
            x += 150.0
        return x

    return samples(times, value, seed=3, series=b"api", field=b"latency")


@pytest.mark.parametrize(
    ("case", "flagged"),
    [("hourly", True), ("no timestamps", True), ("per minute", False), ("after a gap", False)],
)
def test_what_a_sample_stands_for(tmp_path: Path, case: str, flagged: bool) -> None:
    """A one-sample blip is a lasting spike in an hourly series (it stands for an hour), and without
    timestamps (samples only: one is enough); not a minute apart, nor right after a 40-minute gap in that
    per-minute series (a sample stands for at most twice the usual interval)."""
    times: list[int | None]
    if case == "hourly":
        times = [T0 + HOUR * i for i in range(3000)]
    elif case == "no timestamps":
        times = [None] * 3000
    else:
        times = [T0 + MINUTE * i + (2400 if case == "after a gap" and i >= 2000 else 0) for i in range(3000)]
    out = _run(["run", "--config", str(_config(tmp_path, "sentinel", "[rule.params]\n" + NO_VIEWS["sentinel"]))],
               blip(times)).splitlines()
    assert len(out) == 3000
    if flagged:
        assert b",latency_anomaly_score=0.9,latency_anomaly=true," in out[2000], out[2000]
        assert out[2000].count(b'latency_anomaly_reason="spike"') == 1
    else:
        assert b"latency_anomaly=false" in out[2000], out[2000]


def test_a_late_sample_moves_no_clock() -> None:
    """A sample an hour late moves neither the latest event time (the next sample's interval is measured
    from the latest one) nor the series' usual interval, and a spike right after it is not a lasting one."""
    det = REGISTRY["sentinel"]()
    for i in range(300):
        x = {30: 300.0, 31: -100.0}.get(i, 100.0 + (i * 7919) % 13 / 10.0)  # (the range: 250 is inside it)
        det.process(x, T0 + MINUTE * i)
    before = det.state_by_name()
    det.process(100.5, T0 + MINUTE * 299 - HOUR)  # late
    after = det.state_by_name()
    assert after["t1"] == before["t1"] == T0 + MINUTE * 299
    assert after["gap"] == before["gap"] == pytest.approx(MINUTE)
    assert det.process(250.0, T0 + MINUTE * 300) < 0.5  # a one-minute blip: 120 s at most, not 30 minutes
    assert det.spikes._run == pytest.approx(MINUTE)  # (measured from the latest sample: 120 s, the cap, if not)


def test_a_spike_is_reported_once_it_has_lasted_spike_time() -> None:
    """One sample a minute, ``spike_time`` 3 minutes: a one-minute blip of +150 is not reported; an
    excursion of +150 for five minutes is, at its third minute (three minutes after the last calm sample)."""
    rng = random.Random(8)
    det = REGISTRY["sentinel"](spike_time=180.0)
    scores = []
    for i in range(3000):
        x = 100.0 + rng.gauss(0.0, 2.0)
        if i in (20, 21):
            x += 300.0 if i == 20 else -300.0  # the range, before anything counts
        if i == 1000 or 2000 <= i < 2005:
            x += 150.0
        score = det.process(x, T0 + MINUTE * i)
        scores.append((score, det._why))
    assert scores[1000][0] < 0.5
    assert [i for i in range(1990, 2010) if scores[i][0] >= 0.5] == [2002]
    assert scores[2002][0] == 0.9  # the spike step's score


@pytest.mark.parametrize("detector", ["sentinel", "context"])
def test_spike_zero_is_the_output_and_checkpoint_without_the_step(tmp_path: Path, detector: str) -> None:
    """``spike = 0`` with other spike settings: the same bytes as ``spike = 0`` alone (``context``: as no
    setting), and a checkpoint written without them goes on (same fingerprint) to the same output as one
    run over the whole input."""
    data, *_ = spiky()
    lines = data.splitlines(keepends=True)
    plain = _config(tmp_path, detector, OFF[detector])
    off = tmp_path / "off.toml"
    off.write_text(f'{EXPLAIN}[[rule]]\nname = "all"\ndetector = "{detector}"\n'
                   "[rule.params]\nspike = 0.0\nspike_record = 0.9\nspike_score = 1.0\nspike_time = 60.0\n")
    whole = _run(["run", "--config", str(plain)], data)
    assert _run(["run", "--config", str(off)], data) == whole
    state = tmp_path / "s.msgpack"
    head = _run(["run", "--config", str(plain), "--state", str(state)], b"".join(lines[:2000]))
    proc = run_cli(["run", "--config", str(off), "--state", str(state)], input=b"".join(lines[2000:]), timeout=120)
    assert proc.returncode == 0 and b"restored 2 series" in proc.stderr, proc.stderr
    assert head + proc.stdout == whole


@pytest.mark.parametrize("detector", ["sentinel", "context"])
def test_restart_with_the_spike_step_is_invisible_in_the_output(tmp_path: Path, detector: str) -> None:
    """One process over the whole input == two with a checkpoint between them, the spike step on (its
    state is saved and restored), at cuts before, at and after the spike; a checkpoint of the rule
    without the step starts fresh under a rule with it (another fingerprint)."""
    data, spike, _ = spiky()
    dip = spike + 1
    lines = data.splitlines(keepends=True)
    config = _config(tmp_path, detector, ON[detector])
    whole = _run(["run", "--config", str(config)], data)
    assert whole.count(b'latency_anomaly_reason="spike"') >= 1
    for cut in (400, spike, dip, dip + 9):
        state = tmp_path / f"s{cut}.msgpack"
        a = _run(["run", "--config", str(config), "--state", str(state)], b"".join(lines[:cut]))
        proc = run_cli(["run", "--config", str(config), "--state", str(state)], input=b"".join(lines[cut:]), timeout=120)
        assert proc.returncode == 0 and b"restored 2 series" in proc.stderr, proc.stderr
        assert a + proc.stdout == whole, f"output differs after a restart at line {cut}"
    state = tmp_path / "plain.msgpack"
    _run(["run", "--config", str(_config(tmp_path, detector, OFF[detector])), "--state", str(state)], b"".join(lines[:2000]))
    proc = run_cli(["run", "--config", str(config), "--state", str(state)], input=b"".join(lines[2000:]), timeout=120)
    assert proc.returncode == 0 and b"restored 0 series" in proc.stderr and b"2 start fresh" in proc.stderr, proc.stderr


def test_spike_parameters_are_checked_in_the_config(tmp_path: Path) -> None:
    """A bad value names the parameter and its range, as for every parameter (one E! line, exit 2)."""
    path = _config(tmp_path, "sentinel", "[rule.params]\nspike = -1.0\n", extra="")
    proc = run_cli(["check-config", str(path)])
    assert proc.returncode == 2
    assert b"key 'params.spike': spike must be a number >= 0, got -1.0" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_the_spike_step_holds_no_state_while_off() -> None:
    for name, default in (("sentinel", 12.0), ("context", 0.0)):
        cls = REGISTRY[name]
        assert cls.defaults()["spike"] == default
        assert cls(spike=0.0).spikes is None and "spikes" not in cls(spike=0.0).state_by_name()
        assert cls(spike=12.0).spikes is not None and "spikes" in cls(spike=12.0).state_by_name()
        assert len(cls(spike=12.0).dump_state()[0]) == len(cls(spike=0.0).dump_state()[0]) + 8 * 8  # mean, mad, top, run; the far-out count, its cluster, record and debt


def crash_minutes(flat: bool = False, incident: bool = False) -> bytes:
    """4 500 one-minute samples around 10 (sd 1), a burst to 300 and -100 at samples 20-21 (before the spike
    step counts), a spike to 25 at sample 3 700; ``flat``: samples 1 500-2 999 are exactly 10.0;
    ``incident``: +290 at sample 100 (once the step counts, a deviation hundreds of mads wide)."""

    def value(i: int, host: bytes, gauss: Callable[[float], float]) -> float:
        if i == 20:
            x = 300.0
        elif i == 21:
            x = -100.0
        elif flat and 1500 <= i < 3000:
            x = 10.0
        else:
            x = round(10 + gauss(1.0), 3)
        if incident and i == 100:
            x += 290.0
        if i == 3700:
            x = 25.0
        return x

    times = [1_700_000_000 + 60 * i for i in range(4500)]
    return samples(times, value, seed=5, series=b"crashes", field=b"rate", fmt=b"%r")


@pytest.mark.parametrize("case", ["flat", "incident"])
def test_a_flat_stretch_or_a_huge_incident_does_not_silence_later_spikes(tmp_path: Path, case: str) -> None:
    """After 1 500 exact repeats the first ordinary value is no spike (the scale did not shrink to 0 over
    the repeats), and the spike 700 samples later is flagged; after an incident of +290 early on, the
    spike 3 600 samples later is flagged too (the largest deviation seen fades). As without either."""
    config = _config(tmp_path, "sentinel", "[rule.params]\nspike_time = 0.0\n")  # one-minute spikes
    plain = _run(["run", "--config", str(config)], crash_minutes()).splitlines()
    out = _run(["run", "--config", str(config)], crash_minutes(**{case: True})).splitlines()
    assert [i for i, line in enumerate(plain) if b'reason="spike"' in line or b'reason="dip"' in line] == [3700]
    assert b'rate_anomaly_score=0.9,rate_anomaly=true,' in out[3700] and b'reason="spike"' in out[3700], out[3700]
    assert b'reason="dip"' not in out[3000] and b"rate_anomaly=false" in out[3000], out[3000]
    assert not [line for line in out[101:3700] if b'reason="spike"' in line or b'reason="dip"' in line]
    if case == "incident":  # spike_forget = 0: the largest deviation seen never fades, and the spike is missed
        never = _config(tmp_path, "sentinel", "[rule.params]\nspike_time = 0.0\nspike_forget = 0.0\n")
        assert b"rate_anomaly=false" in _run(["run", "--config", str(never)], crash_minutes(incident=True)).splitlines()[3700]


def test_one_outage_does_not_make_later_gaps_count_as_lasting_time(tmp_path: Path) -> None:
    """A per-minute series goes silent for 10 hours once; ten samples later, a blip comes 31 minutes after
    the sample before it. The usual interval learns each interval clipped at 4 times itself, so the outage
    barely moves it (to 78 s, not an hour): the blip stands for twice the usual interval, not half an
    hour, and is not a lasting spike (were the outage learned whole, the blip would stand for 31 minutes
    and be reported)."""
    times = [T0 + MINUTE * i + (10 * HOUR if i >= 1990 else 0) + (31 * MINUTE if i >= 2000 else 0) for i in range(3000)]
    out = _run(["run", "--config", str(_config(tmp_path, "sentinel"))], blip(times)).splitlines()
    assert b"latency_anomaly=false" in out[2000], out[2000]
    hourly = [T0 + HOUR * i for i in range(3000)]  # (the same blip an hour after the sample before is reported)
    assert b"latency_anomaly=true" in _run(["run", "--config", str(_config(tmp_path, "sentinel"))], blip(hourly)).splitlines()[2000]
