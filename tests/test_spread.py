"""Bursts of change (the spread step, ``spread``; on in ``sentinel``), through the real process.

What a user relies on: a sensor sampled every second whose values start
to jump about (noise three times as large, an added fast oscillation) for a
few minutes is flagged with the reason ``volatility``, and so is the next
such burst an hour later: a burst is judged against what is usual now, not
against every value ever seen, so a repeat of an incident is reported
again. A lone jump is no burst, calmer values are no incident here, and
``spread = 0`` is the rule as it was before the step (its checkpoints are
kept).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from conftest import flag_reasons as reasons, run_rule as run, samples, sensor_lines as lines, sensor_runs

T0 = 19674 * 86400  # Monday 2023-11-13, 00:00 UTC
HOURS = 4


def values(burst: float, seed: int = 1) -> list[float]:
    """``HOURS`` hours at 1 s of AR(1) noise around 20 (sd 0.5), its noise times ``burst`` for the last 4
    minutes of each hour."""
    rng = random.Random(seed)
    ar = 0.0
    out = []
    for i in range(HOURS * 3600):
        ar = 0.9 * ar + 0.44 * rng.gauss(0.0, 1.0)
        out.append(round(20.0 + 0.5 * ar * (burst if i % 3600 >= 3360 else 1.0), 3))
    return out


def test_each_burst_is_reported_again(tmp_path: Path) -> None:
    """Noise three times as large for 4 minutes, once an hour for 4 hours: every burst is flagged within its
    first 3 minutes (the first as the new extreme it also is), and nothing outside the bursts; the second
    and third first as ``volatility``. Without the step (``spread = 0``) the bursts after the first are
    flagged as new extremes, as soon or a few seconds later (a reported episode is not learned into the
    range: tests/test_episodes.py); before that rule they were missed, inside the range the first one set."""
    out = run(tmp_path, lines(values(3.0)))
    assert len(out) == HOURS * 3600
    got = reasons(out)
    off = reasons(run(tmp_path, lines(values(3.0)), "[rule.params]\nspread = 0\n"))
    for flags in (got, off):
        assert all(i % 3600 >= 3360 for i, _ in flags), flags
        first = {h: min((i, why) for i, why in flags if i // 3600 == h) for h in range(HOURS)}
        assert all(i % 3600 < 3540 for i, _ in first.values()), flags
    first = {h: min((i, why) for i, why in got if i // 3600 == h) for h in range(HOURS)}
    assert [first[h][1] for h in (1, 2)] == ["volatility"] * 2, got


@pytest.mark.parametrize("burst", [1.0, 1 / 3])
def test_no_burst_or_calmer_values_are_not_flagged(tmp_path: Path, burst: float) -> None:
    """The same noise throughout, or three times smaller for 4 minutes an hour: nothing is flagged."""
    assert reasons(run(tmp_path, lines(values(burst)))) == []


def test_a_lone_jump_is_no_burst(tmp_path: Path) -> None:
    """One value 40 sd away at the middle of each hour, then back: flagged as the spike it is, never as
    ``volatility`` (one change moves the recent size of the changes by one typical distance at most)."""
    xs = values(1.0)
    for h in range(HOURS):
        xs[h * 3600 + 1800] += 20.0
    got = reasons(run(tmp_path, lines(xs)))
    assert got and all(why != "volatility" for _, why in got), got


def test_late_samples_are_no_burst(tmp_path: Path) -> None:
    """For 10 minutes each sample is followed by a late one, the value of 5 minutes earlier again (a second
    source delivering a backlog): nothing is flagged. The change is measured from the latest value in time
    order; measured from the late one (the value before in the stream), it looked like a burst."""
    xs = values(1.0)
    times = list(range(len(xs)))
    order = []
    for i in range(len(xs)):
        order.append(i)
        if 3600 <= i < 4200:
            order.append(i - 300)
    data = samples([T0 + times[i] for i in order], lambda k, _host, _gauss: xs[order[k]], series=b"sensor",
                   field=b"temp")
    assert reasons(run(tmp_path, data)) == []


def test_a_restart_in_a_burst_changes_nothing(tmp_path: Path) -> None:
    """A checkpoint and restart in the middle of the second burst: the output is byte for byte the same as
    one uninterrupted run."""
    data = lines(values(3.0)).splitlines(keepends=True)
    whole = run(tmp_path, b"".join(data))
    state = tmp_path / "s.msgpack"
    cut = 3600 + 3420
    first = run(tmp_path, b"".join(data[:cut]), state=state)
    second = run(tmp_path, b"".join(data[cut:]), state=state)
    assert first + second == whole


def test_sensor_runs_at_1_s_catch_repeated_incidents() -> None:
    """``python -m tests.benchmarks.sensor_runs``: with the step, 26 of the 28 runs of 20 minutes (one
    incident each) are caught against 25 without it, and on the 28 runs of 4 hours with 4 incidents each
    (``--long``) 92 of 112 against 89, with no false alarm either way (90 and 87 while bursts of far-out values
    were off by default, ``far = 0``; 89 and 86 while a freeze was forgiven
    only in a series that seldom repeats, not at any reading inside its range; 84 and 81 while a reported
    freeze set the record of the longest run; 77 against 59 while a reported
    episode was learned into the range of the new-extremes step, which then missed every later incident
    of a run that the step did not report; 25 and 73 while the long-run mean
    of the changes remembered 500 samples, 8 minutes at 1 s, rather than the level shift step's 24
    windows; 79 and 65 with the spike step's far-out count on, ``far = 6``, its default for a while; 70
    and 56 before a reported stuck run left the repeat statistics; 65 with the step while a reported
    burst was learned into the long-run mean of the changes)."""
    assert [sensor_runs(params) for params in ({}, {"spread": 0})] == [(26, 0), (25, 0)]
    assert [sensor_runs(params, long=True) for params in ({}, {"spread": 0})] == [(92, 0), (89, 0)]


def bursts_apart(minutes: int, seed: int = 1) -> tuple[list[float], list[int]]:
    """Half an hour of the AR(1) noise of :func:`values`, then 4 bursts of noise three times as large for 4
    minutes, ``minutes`` apart (and half an hour after the last): the values and the bursts' first samples."""
    starts = [1800 + 60 * minutes * b for b in range(4)]
    rng = random.Random(seed)
    ar = 0.0
    out = []
    for i in range(starts[-1] + 1800):
        ar = 0.9 * ar + 0.44 * rng.gauss(0.0, 1.0)
        out.append(round(20.0 + 0.5 * ar * (3.0 if any(s <= i < s + 240 for s in starts) else 1.0), 3))
    return out, starts


def test_a_burst_20_minutes_after_a_reported_one_is_reported(tmp_path: Path) -> None:
    """The same bursts every 20 minutes, 4 times: all 4 are flagged, each within its 4 minutes, and
    nothing outside them. The long-run mean of the changes spans 24 windows of the recent size (48
    minutes at 1 s), as the level shift step's long-run mean does: while it remembered 500 samples (8
    minutes at 1 s) it followed each burst part of the way, and the fourth burst was missed. A reported
    burst, while it lasts, is not learned into that mean: learned (before that), it raised the mean by
    half the recent size's rise, the mean then stood above the recent size for a quarter of an hour, and
    that distance, counted in the typical distance, left the third and fourth bursts too small: 2 of the
    4 were flagged."""
    xs, starts = bursts_apart(20)
    got = reasons(run(tmp_path, lines(xs)))
    hit = {b for b, s in enumerate(starts) for i, _ in got if s <= i < s + 240}
    assert all(any(s <= i < s + 240 for s in starts) for i, _ in got), got
    assert hit == {0, 1, 2, 3}, got


def test_a_lone_jump_does_not_blind_the_step_for_hours(tmp_path: Path) -> None:
    """One value 40 sd away at the middle of each hour, and the bursts of the first test: the bursts after the
    first jump are still reported as ``volatility`` (2 of the 3 after the first hour). The size of that jump
    enters the long-run mean of the changes only up to what moves the recent size by 3 typical distances;
    learned whole, it raised that mean for hours and no later burst was reported."""
    xs = values(3.0)
    for h in range(HOURS):
        xs[h * 3600 + 1800] += 20.0
    got = reasons(run(tmp_path, lines(xs)))
    assert len({i // 3600 for i, why in got if why == "volatility" and i >= 3600}) >= 2, got
