"""Stuck values (the stuck step, in ``sentinel`` and ``context``), through the real process.

What a user relies on: a sensor sampled every second whose value freezes
(the same reading, exactly, for minutes) is flagged with the reason
``stuck``, and so is the next freeze twenty minutes later, within seconds:
a run that was reported is an incident, not how the series repeats, so it
leaves the repeat statistics, and if more than twice as long as every
earlier run in a series that seldom repeats, or ten times as long at a
reading inside the range seen (a coarse sensor, whose readings repeat
often by themselves), it sets no record of the longest run (an episode,
with a debt of its own, as the new-extremes step's:
tests/test_episodes.py). A hold that recurs as routine (a pump
that holds its reading for 5 minutes every hour, or 10 minutes a day give
or take a minute) is reported a few times, then learned, not every time:
the debt stops the forgetting, and then a run is reported only while it
is longer than every earlier one. Freezes do not spend what the
new-extremes step's episodes owe.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.noise_alarms import series  # tests/benchmarks, as pytest imports it
from conftest import flag_reasons as reasons, run_cli, run_rule as run, sensor_lines as lines
from riverguard.detectors import REGISTRY
from test_episodes import sensor

#: the freezes: first sample and length (s), each longer than the one before
FREEZES = ((1800, 120), (3000, 150), (4200, 180), (5400, 240))


def frozen(seed: int = 1) -> list[float]:
    """Two hours at 1 s of AR(1) noise around 20 (sd 0.5, three decimals), the value held at the reading
    before each of :data:`FREEZES`."""
    rng = random.Random(seed)
    ar = 0.0
    out: list[float] = []
    for i in range(7200):
        ar = 0.9 * ar + 0.44 * rng.gauss(0.0, 1.0)
        held = any(s <= i < s + n for s, n in FREEZES)
        out.append(out[-1] if held else round(20.0 + 0.5 * ar, 3))
    return out


def test_each_freeze_of_a_sensor_is_reported(tmp_path: Path) -> None:
    """Four freezes 20 minutes apart: each is flagged ``stuck`` once, within 30 s, and nothing else is
    flagged. Before episodes, a later freeze was flagged only once it had lasted longer than the one before
    it (120, 150 and 180 s in), as a reported run set the record of the longest; before that, only the
    first was: its repeats stayed in the repeat statistics (a repeat was then 99 % likely after a repeat,
    for good: those counts decay only while the series repeats), so even a longer freeze stayed under the
    bar."""
    got = reasons(run(tmp_path, lines(frozen())))
    assert [why for _, why in got] == ["stuck"] * 4, got
    into = [i - s for (i, _), (s, _) in zip(got, FREEZES)]  # seconds into each freeze
    assert all(0 < t < 30 for t in into), got


def coarse(seed: int = 4) -> list[float]:
    """Two hours at 1 s of the AR(1) noise of :func:`frozen`, read in steps of 0.25 (half its sd, as a coarse
    ADC does): a reading repeats the one before it about one time in four. The value is held for 3 minutes
    from each of the first samples of :data:`FREEZES`."""
    rng = random.Random(seed)
    ar = 0.0
    out: list[float] = []
    for i in range(7200):
        ar = 0.9 * ar + 0.44 * rng.gauss(0.0, 1.0)
        held = any(s <= i < s + 180 for s, _ in FREEZES)
        out.append(out[-1] if held else round(4.0 * (20.0 + 0.5 * ar)) / 4.0)
    return out


def test_each_freeze_of_a_coarse_sensor_is_reported(tmp_path: Path) -> None:
    """A sensor whose readings repeat often by themselves (steps of half its sd) freezes for 3 minutes four
    times, 20 minutes apart, each at a reading inside its range: each freeze is flagged ``stuck`` within
    30 s. Before the thirteenth session a freeze was forgiven (set no record) only in a series that seldom
    repeats, fewer than 1 in 100 of its steps from a new value starting a run: here the first freeze set the
    record, and the three after it, no longer, were not flagged."""
    xs = coarse()
    assert 0.15 < sum(a == b for a, b in zip(xs[:1700], xs[1:1700])) / 1700 < 0.4  # repeats often by itself
    got = [i for i, why in reasons(run(tmp_path, lines(xs))) if why == "stuck"]
    into = [[i - s for i in got if s <= i < s + 180] for s, _ in FREEZES]  # seconds into each freeze
    assert all(len(t) == 1 and 0 < t[0] < 30 for t in into) and len(got) == 4, got


#: a day of samples at 10 s
DAY_10S = 8640


def days_stuck(tmp_path: Path, xs: list[float], first: int, length: int) -> list[int]:
    """The days of ``xs`` (one sample every 10 s, through the real process) on which a sample from the
    ``first`` of the day to ``length`` after it is flagged ``stuck``."""
    got = [i for i, why in reasons(run(tmp_path, lines(xs, step=10))) if why == "stuck"]
    return [d for d in range(len(xs) // DAY_10S) if any(d * DAY_10S + first < i < d * DAY_10S + first + length for i in got)]


def stuck_flags(make: Callable[[int], list[float]], step: int) -> int:
    """``stuck`` flags of the default detector, in process, over the 8 series ``make(k)`` (k = 0 to 7), one
    sample every ``step`` seconds."""
    flags = 0
    for k in range(8):
        det = REGISTRY["sentinel"]()
        for i, x in enumerate(make(k)):
            if det.process(x, 1.7e9 + step * i) >= 0.5 and det.reason(x) == "stuck":
                flags += 1
    return flags


def wave(seed: int, start: list[float], at_13: Callable[[list[float]], float]) -> list[float]:
    """A week at 10 s of a temperature sensor (a daily wave of 3 around 20, AR(1) noise of sd 0.5, three
    decimals) that reads ``start`` first and ``at_13(readings so far)`` from 13:00 to 13:20 each day."""
    rng = random.Random(seed)
    ar = 0.0
    xs = list(start)
    for i in range(len(xs), 7 * DAY_10S):
        ar = 0.9 * ar + 0.44 * rng.gauss(0.0, 1.0)
        x = round(20.0 + 3.0 * math.sin(2 * math.pi * i / DAY_10S) + 0.5 * ar, 3)
        xs.append(at_13(xs) if 4680 <= i % DAY_10S < 4800 else x)
    return xs


def test_each_stall_of_a_busy_counter_is_reported(tmp_path: Path) -> None:
    """A busy counter (``net bytes_recv``-like: about 5 MB more every 10 s) stalls for 20 minutes at 15:00
    every day for 7 days: the first five stalls are flagged ``stuck`` while they last, then the debt (two
    days a stall, none forgiven while four are owed) lets the fifth set the record, and a daily stall is
    learned as a routine. A counter is always at the top of its range, so a rule that forgave a freeze only
    at a reading inside the range (a first version of the thirteenth session's) forgave none of its stalls:
    the first set the record, and the six after it, no longer, were not flagged; a counter never repeats by
    itself, so its stalls are forgiven as a series' that seldom repeats."""
    rng = random.Random(5)
    total = 10**9
    xs = []
    for i in range(7 * DAY_10S):
        if not 5400 <= i % DAY_10S < 5520:  # (15:00 to 15:20)
            total += max(0, int(rng.gauss(5e5, 1e5))) * 10
        xs.append(float(total))
    assert days_stuck(tmp_path, xs, 5400, 120) == list(range(5))


def setpoint(seed: str, n: int, step: int) -> list[float]:
    """``n`` readings ``step`` seconds apart of a thermostat's setpoint: held exactly, changed 4 times a day
    on average to one of 8 values from 18 to 23."""
    rng = random.Random(seed)
    v = 21.0
    out = []
    for _ in range(n):
        if rng.random() < step * 4 / 86400:
            v = rng.choice((18.0, 19.0, 20.0, 20.5, 21.0, 21.5, 22.0, 23.0))
        out.append(v)
    return out


@pytest.mark.parametrize(("step", "days", "most"), [(10, 7, 2), (1, 2, 6)])
def test_a_setpoint_held_for_hours_is_no_freeze(step: int, days: int, most: int) -> None:
    """Eight setpoints held for hours at a time, at 10 s for a week and at 1 s for two days: at most ``most``
    ``stuck`` flags in all (5 and 11 while the repeat statistics remembered 1000 samples, 2.8 hours at 10 s
    and 17 minutes at 1 s: by the next change of setpoint the hours it had held were forgotten, and a hold
    a little longer than any before was a surprise). They remember two days of event time now."""
    flags = stuck_flags(lambda k: setpoint(f"setpoint/{k}", days * 86400 // step, step), step)
    assert flags <= most, flags


def test_a_night_at_the_floor_is_the_series_at_rest() -> None:
    """Solar panels at 10 s for 20 days (``noise_alarms --families routine``' ``night_zero``: exactly 0.0 every
    night): a night's run of zeros comes back to the floor of the range, where the series' longest run was
    too, so it is the series at rest, not a freeze, and sets the record when reported: 27 ``stuck`` flags in
    160 panel-days, on 2 to 5 nights of each panel (41 when such a run was forgiven as the freeze of a series
    that seldom repeats: the longest nights kept beating a record they did not set)."""
    flags = stuck_flags(lambda k: series("night_zero", 20 * DAY_10S, 10, f"night_zero/{k}"), 10)
    assert 16 <= flags <= 30, flags


@pytest.mark.parametrize("start", [0, 2])
def test_a_sensor_pegged_at_its_highest_reading_is_a_freeze(tmp_path: Path, start: int) -> None:
    """A temperature sensor at 10 s (a daily wave, three decimals) pegged for 20 minutes at 13:00 each day at
    the highest reading it has given: it comes back to the ceiling of its range, but its longest run was
    not there, so the peg is a freeze, flagged ``stuck`` on the first five days (then the debt lets it set
    the record, as a routine). Taking every return to the floor or ceiling for rest lost all but the first;
    with ``start`` repeats of its first reading (a duplicated first sample), so did a first version that
    kept where the longest run had been, not whether it was still the ceiling (the range moves on)."""
    assert days_stuck(tmp_path, wave(6, [20.0] * start, max), 4680, 120) == list(range(5))


def test_a_sensor_that_drops_to_zero_each_day_is_a_freeze_however_it_started(tmp_path: Path) -> None:
    """The sensor of the test above, whose first reading is 0.0, repeated twice (a driver's default before
    its first valid reading), drops to 0.0 for 20 minutes at 13:00 each day: each dropout is flagged
    ``stuck`` on the first five days. The start is a run at the floor, but it ended while the series
    learned, and a run of the learning tells nothing of where the series rests: when it counted, the first
    dropout was taken for rest and set the record, and the later ones were not flagged (the third review of
    the rule: 8 of 56 dropout days, against 40)."""
    assert days_stuck(tmp_path, wave(6, [0.0] * 3, lambda _: 0.0), 4680, 120) == list(range(5))


def test_a_restart_inside_a_reported_freeze_changes_nothing(tmp_path: Path) -> None:
    """A checkpoint and restart in the middle of the second freeze (after its report): the output is byte for
    byte the same as one uninterrupted run, so the mark of a reported run is saved with the state."""
    data = lines(frozen()).splitlines(keepends=True)
    whole = run(tmp_path, b"".join(data))
    state = tmp_path / "s.msgpack"
    cut = 3100
    first = run(tmp_path, b"".join(data[:cut]), state=state)
    second = run(tmp_path, b"".join(data[cut:]), state=state)
    assert first + second == whole


def pump(seed: int = 2) -> list[float]:
    """Six hours at 1 s of the AR(1) noise of :func:`frozen`, the reading held for the last 5 minutes of
    every hour (a pump's routine pause)."""
    rng = random.Random(seed)
    ar = 0.0
    out: list[float] = []
    for i in range(6 * 3600):
        ar = 0.9 * ar + 0.44 * rng.gauss(0.0, 1.0)
        out.append(out[-1] if i % 3600 >= 3300 else round(20.0 + 0.5 * ar, 3))
    return out


def test_a_routine_hold_is_reported_four_times_then_learned(tmp_path: Path) -> None:
    """The same 5-minute hold every hour for 6 hours: the first four are flagged ``stuck``, the 2 after them,
    no longer than the first, are not: each of the first three set no record (an episode, owing two days of
    event time), and with more than four days owed the fourth did, which a later hold must beat. (Without a record every
    hold was reported, 24 a day; with a record set by every reported run, only the first.)"""
    got = reasons(run(tmp_path, lines(pump())))
    assert [(why, i // 3600, i % 3600 >= 3300) for i, why in got] == [("stuck", h, True) for h in range(4)], got


def test_the_smallest_repeat_decay_still_forgets_a_run(tmp_path: Path) -> None:
    """``repeat_decay`` is open at 0: at 1e-17 the weight the earlier steps keep is exactly 1.0, and a reported
    run's steps are still taken out of the statistics (as a plain count) without a division by zero: every
    metric comes back scored, with no error or warning."""
    xs = frozen()
    config = tmp_path / "rg.toml"
    config.write_text('[output]\nexplain = true\n\n[[rule]]\nname = "all"\n[rule.params]\nrepeat_decay = 1e-17\n')
    proc = run_cli(["run", "--config", str(config)], input=lines(xs), timeout=120)
    out = proc.stdout.splitlines()
    assert proc.returncode == 0 and not any(w in proc.stderr for w in (b"E! ", b"W! ", b"Error", b"Exception")), proc.stderr
    assert len(out) == len(xs) and all(b"temp_anomaly_score=" in line for line in out)
    assert [why for _, why in reasons(out)][:1] == ["stuck"]


def hold(xs: list[float], first: int, length: int) -> None:
    """Hold the reading ``xs[first]`` for ``length`` samples, in place."""
    xs[first + 1 : first + length] = [xs[first]] * (length - 1)


def test_freezes_do_not_spend_what_the_episodes_owe(tmp_path: Path) -> None:
    """A 5-minute hold every hour (the routine) and a cluster of spikes every 3 hours (the incidents) at 1 s
    for 10 hours: each cluster is flagged. (When freezes and episodes shared one debt, the holds spent it and
    the third cluster was learned into the range: 2 of 3.)"""
    spikes = [5400, 16200, 27000]
    xs = sensor(spikes, 36000)  # (noise around 50, sd 1, three decimals: it never repeats by itself)
    for k in range(10):
        hold(xs, 2880 + 3600 * k, 300)
    got = reasons(run(tmp_path, lines(xs)))
    assert [s for s in spikes if any(s <= i < s + 245 for i, _ in got)] == spikes, got


def test_a_daily_hold_of_varying_length_is_learned(tmp_path: Path) -> None:
    """A reading held for 9 to 11 minutes at 03:00 every day, 20 days at 10 s: the holds of the first week
    are flagged ``stuck`` (the first four set no record while the debt allows, then a few are longer than
    every hold before them), then none in the 12 days after (2 in all before: days 0 and 1). When every
    reported freeze was forgiven, however short against the record, the longest of a routine kept beating a
    record that never learned them: a hold about as long as the record now sets it."""
    rng = random.Random(3)
    holds = [d * DAY_10S + 1080 for d in range(20)]
    lengths = [rng.randint(54, 66) for _ in holds]
    xs = sensor([], 20 * DAY_10S)
    for h, n in zip(holds, lengths):
        hold(xs, h, n)
    stuck = [i // DAY_10S for i, why in reasons(run(tmp_path, lines(xs, step=10))) if why == "stuck"]
    assert 1 <= len(stuck) <= 7 and max(stuck) < 8, stuck


@pytest.mark.parametrize("owe", [-1.0, float("inf"), 10 * 86400.0])
def test_a_tampered_freeze_debt_is_refused(owe: float) -> None:
    """A debt no run could owe (negative, endless, or more than six days) does not load."""
    det = REGISTRY["sentinel"]()
    for i, x in enumerate(frozen()[:2000]):
        det.process(x, 1.7e9 + i)
    REGISTRY["sentinel"]().load_state(det.dump_state())
    det.stuck._owe = owe
    with pytest.raises(ValueError, match="stuck"):
        REGISTRY["sentinel"]().load_state(det.dump_state())
