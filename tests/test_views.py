"""The views step of ``sentinel`` (docs/detection.md, "Views that agree, built"; issue 12).

A time-of-day extreme or a new extreme counts only where a second view
agrees (the peak, the rise or the slot's mean), once a view can see; a peak
several times the usual daily one, with a rise, lasting an hour, is
reported, and again days later. ``peak = 0`` leaves the step out: the
detector as it was before.
"""

from __future__ import annotations

import math
import random

from riverguard.detectors import Sentinel
from riverguard.detectors.steps import EVIDENCE

T0 = 19674 * 86400.0  # Monday 2023-11-13, 00:00 UTC
FIVE = 300.0
PEAK = 10  # the views step's evidence (steps._WHY_PEAK)


def _noise(days: float, seed: int = 5) -> list[float]:
    rng = random.Random(seed)
    return [100.0 + rng.gauss(0.0, 3.0) for _ in range(int(days * 288))]


def _flags(xs: list[float], **params: float) -> list[tuple[int, float, int]]:
    """(sample, score, evidence) of each flag of a 5-minute series ``xs`` under ``params``."""
    det = Sentinel(**params)
    out = []
    for i, x in enumerate(xs):
        score = det.process(x, T0 + FIVE * i)
        if score >= det.default_threshold:
            out.append((i, score, det._why))
    return out


def test_the_peak_evidence_has_a_name() -> None:
    assert EVIDENCE[PEAK] == "peak"


def _hourly(days: int, dips: dict[int, float]) -> list[tuple[float, float]]:
    """An hourly daily cycle (10 on 50, noise 1; tests/test_default_detector.py's) with ``dips`` set at hours."""
    rng = random.Random(2)
    return [(dips.get(i, 50.0 + 10.0 * math.sin(2 * math.pi * i / 24) + rng.gauss(0.0, 1.0)), T0 + 3600.0 * i)
            for i in range(24 * days)]


def test_a_time_of_day_extreme_that_no_view_backs_is_not_reported() -> None:
    """Hourly, day 9 at 06:00 (the busiest hour, 60 as a rule): a dip to 45, inside the range. Without the step
    a time-of-day extreme (0.6); with it, not: 45 is at the day's level (peak 0), 0.7 of the logarithm's
    deviations under its week's level, and the hour's slot, 7 passes old, still holds the spread of its first
    value (about 2 of its deviations). A dip to 2 at the same hour is far under the week's level (the rise,
    about -17): reported with the step too."""
    at = 24 * 9 + 6
    for value, without, with_views in ((45.0, True, False), (2.0, True, True)):
        data = _hourly(12, {at: value})
        for params, expected in (({"peak": 0.0}, without), ({}, with_views)):
            det = Sentinel(**params)
            scores = [det.process(x, t) for x, t in data]
            assert (scores[at] >= det.default_threshold) is expected, (value, params, scores[at])


def test_a_view_that_cannot_see_yet_does_not_object() -> None:
    """The same modest record on the second day, once the detector scores (200 samples): the peak has no three
    days of peaks, the rise no week, the hour's slot no second pass: the record is reported as without the
    step."""
    xs = _noise(2.0)
    at = 300
    top = max(xs[:at])
    xs[at] = top + 0.25 * (top - min(xs[:at]))
    assert (at, 1.0, 4) in _flags(xs)
    assert _flags(xs) == _flags(xs, peak=0.0)


def _rate(days: int, peaks: list[int], seed: int = 7) -> list[float]:
    """A request rate at 5 minutes with a daily cycle (20 on 100, noise 3), and peaks of 2 hours from each of
    ``peaks`` (a sample): 150 more, 5 to 6 times the usual daily peak."""
    rng = random.Random(seed)
    out = []
    for i in range(days * 288):
        x = 100.0 + 20.0 * math.sin(2 * math.pi * i / 288) + rng.gauss(0.0, 3.0)
        if any(p <= i < p + 24 for p in peaks):
            x += 150.0
        out.append(x)
    return out


def test_a_peak_several_times_the_usual_daily_one_is_reported_and_again_days_later() -> None:
    """A peak of 2 hours, 5 to 6 times the usual daily peak, on day 9 and again on day 14 (the same size: the
    range already holds it, so the second is no new extreme): the views step reports each once, an hour in
    (12 samples), at 1.0; without the step the second one is reported only by what else sees it."""
    first, second = 9 * 288 + 120, 14 * 288 + 150
    xs = _rate(16, [first, second])
    views = [(i, s) for i, s, why in _flags(xs) if why == PEAK]
    assert views == [(first + 11, 1.0), (second + 11, 1.0)], views
    assert not [i for i, _, why in _flags(xs, peak=0.0) if why == PEAK]
    # (a day apart at least: a third peak 12 hours after the second is the same incident's, not reported again)
    xs = _rate(16, [first, second, second + 144])
    assert [i for i, _, why in _flags(xs) if why == PEAK] == [first + 11, second + 11]


def test_the_views_step_is_saved_and_restored() -> None:
    """A restart in the middle of the second peak's hour gives the same scores as no restart (the run of the peak
    and the days' peaks are in the saved state)."""
    first, second = 9 * 288 + 120, 14 * 288 + 150
    xs = _rate(16, [first, second])
    whole = Sentinel()
    scores = [whole.process(x, T0 + FIVE * i) for i, x in enumerate(xs)]
    det = Sentinel()
    cut = second + 5
    for i, x in enumerate(xs[:cut]):
        det.process(x, T0 + FIVE * i)
    again = Sentinel()
    again.load_state(det.dump_state())
    assert [again.process(x, T0 + FIVE * (cut + i)) for i, x in enumerate(xs[cut:])] == scores[cut:]
    assert again.state_by_name()["views"]["days"] == 14


LONE = 11  # the views step's evidence for a lone value (steps._WHY_LONE)


def _minutes(days: float, spikes: dict[int, float], step: float = 60.0, seed: int = 8) -> list[float]:
    """A request rate every ``step`` seconds, 400 at night and 1 500 at noon (noise 20; CMD's
    mongodb-machine-rps in shape), with ``spikes``: a sample at that many times its value."""
    rng = random.Random(seed)
    return [(400.0 + 1100.0 * max(0.0, math.sin(2 * math.pi * (i * step / 86400.0 - 1 / 6))) ** 2
             + rng.gauss(0.0, 20.0)) * spikes.get(i, 1.0) for i in range(int(days * 86400 / step))]


def _lone_flags(xs: list[float], step: float = 60.0, **params: float) -> list[tuple[int, int]]:
    det = Sentinel(**params)
    out = []
    for i, x in enumerate(xs):
        if det.process(x, T0 + step * i) >= det.default_threshold:
            out.append((i, det._why))
    return out


def test_a_lone_minute_is_reported_on_the_next_one() -> None:
    """CMD's mongodb-machine-rps in small: a minute at 3 times the minutes around it, at 23:50 on days 2 and 4,
    each reported on the next minute (a lone value is known to be one then) as ``lone``, with the reason
    ``spike``; with ``lone = 0`` neither is. Two days apart, neither is in the other's bar (the last 12 hours
    and the same hours a day before)."""
    at = [2 * 1440 - 10, 4 * 1440 - 10]
    xs = _minutes(5, {i: 3.0 for i in at})
    assert EVIDENCE[LONE] == "lone"
    flags = _lone_flags(xs)
    assert [(i, why) for i, why in flags if why == LONE] == [(i + 1, LONE) for i in at]
    assert not [i for i, _ in _lone_flags(xs, lone=0.0) if i - 1 in at or i in at]
    det = Sentinel()
    for i, x in enumerate(xs[: at[0] + 2]):
        det.process(x, T0 + 60.0 * i)
    assert det.reason(xs[at[0] + 1]) == "spike"


def test_routine_lone_minutes_are_not_reported_again_and_again() -> None:
    """A minute at 2.5 times the level every 3 hours: each stands out from nothing in the last 12 hours (the one
    3 hours before is as large), so none is reported as lone, where a single one is
    (``test_a_lone_minute_is_reported_on_the_next_one``). A value that stays up (the level doubled for an hour)
    is no lone value either: the next value is not back under half."""
    every = {i: 2.5 for i in range(700, 6 * 1440, 180)}
    assert not [i for i, why in _lone_flags(_minutes(6, every)) if why == LONE]
    lasting = {i: 2.0 for i in range(2 * 1440 - 10, 2 * 1440 + 50)}
    assert not [i for i, why in _lone_flags(_minutes(3, lasting)) if why == LONE]


def test_lone_values_are_looked_for_at_a_minute_or_finer() -> None:
    """The same lone value in a 5-minute series is not a lone value (one sample stands for 5 minutes there, and
    the spike step judges it); at 10 s it is."""
    at = 2 * 288 - 2
    assert not [i for i, why in _lone_flags(_minutes(5, {at: 3.0}, 300.0), 300.0) if why == LONE]
    at = 2 * 8640 - 60
    assert [i for i, why in _lone_flags(_minutes(2.5, {at: 3.0}, 10.0), 10.0) if why == LONE] == [at + 1]


def test_a_restart_between_a_lone_value_and_the_next_keeps_the_report() -> None:
    """The latest value's candidacy (``pend``) and the hours' largest deviations (``tops``) are saved: a restart
    right after the lone minute gives the same scores as none."""
    at = 2 * 1440 - 10
    xs = _minutes(3, {at: 3.0})
    whole = Sentinel()
    scores = [whole.process(x, T0 + 60.0 * i) for i, x in enumerate(xs)]
    det = Sentinel()
    for i, x in enumerate(xs[: at + 1]):
        det.process(x, T0 + 60.0 * i)
    assert det.state_by_name()["views"]["pend"]
    again = Sentinel()
    again.load_state(det.dump_state())
    assert [again.process(x, T0 + 60.0 * (at + 1 + i)) for i, x in enumerate(xs[at + 1:])] == scores[at + 1:]
    assert scores[at + 1] >= 0.5


def test_a_daily_job_is_reported_the_first_day_only() -> None:
    """A review's find: a quiet gauge (50, noise 1, once a minute) with one minute at 3 times it at 06:00 every
    day (a backup, a log rotation) was reported as lone every day, for as long as it ran: the last 12 hours
    never hold yesterday's job. A lone value must also stand out from the same hours a day before: no lone
    report at all here, and the flags are the detector's without lone values (the new-extremes step reports
    the job while it is new: days 0, 1, 3, 4 and 7, then it is routine)."""
    rng = random.Random(4)
    xs = [50.0 + rng.gauss(0.0, 1.0) for _ in range(21 * 1440)]
    for day in range(21):
        xs[day * 1440 + 360] *= 3.0
    flags = _lone_flags(xs)
    assert not [i for i, why in flags if why == LONE]
    assert flags == _lone_flags(xs, lone=0.0)
    assert [i // 1440 for i, _ in flags] == [0, 1, 3, 4, 7]


def test_lone_values_survive_a_gap_and_jittered_timestamps() -> None:
    """A review's find: the usual interval of a 60 s series, an average of its intervals, settled a hair above
    60.0 after one gap or with milliseconds of jitter, and lone values were no longer looked for (a minute or
    finer meant ``<= 60``). A minute give or take half is a minute: the lone minute is reported either way."""
    at = 2 * 1440 - 10
    xs = _minutes(3, {at: 3.0})
    rng = random.Random(1)
    for times in ([T0 + 60.0 * i + (360.0 if i > 600 else 0.0) for i in range(len(xs))],  # a 6-minute gap
                  [T0 + 60.0 * i + rng.uniform(0.0, 0.005) for i in range(len(xs))]):  # up to 5 ms late
        det = Sentinel()
        lone = [i for i, (x, t) in enumerate(zip(xs, times)) if det.process(x, t) >= 0.5 and det._why == LONE]
        assert lone == [at + 1]


def test_huge_timestamps_neither_hang_nor_crash() -> None:
    """A review's find: past 2 ** 53 hours a float hour counter stopped advancing (the hours' roll looped for
    ever), and at 1e300 s the ring's index went out of range. Both builds, through the pipeline."""
    for t0, step in ((3.3e19, 40000.0), (1e300, 1e290), (-1e300, 1e290)):
        det = Sentinel()
        scores = [det.process(100.0 + (i % 7), t0 + step * i) for i in range(300)]
        assert all(0.0 <= s <= 1.0 for s in scores)
        again = Sentinel()
        again.load_state(det.dump_state())


def test_a_falling_series_saves_and_restores() -> None:
    """Hypothesis's find: days whose largest excursion above the level is below 0 (every value under the level,
    which follows a fall at once) make the usual daily peak negative, a state the restore refused ("bad
    sentinel state (views)"), so such a series started fresh after each restart."""
    data = [(5.2e-302, 86399.9999), (5e-324, 172799.9998), (-1.04e-300, 259199.9997), (2.17e-301, 345599.9996),
            (-2.08e-300, 431999.9995)]
    det = Sentinel()
    for x, t in data:
        det.process(x, t)
    assert det.state_by_name()["views"]["usual"] < 0.0
    again = Sentinel()
    again.load_state(det.dump_state())
    assert again.dump_state() == det.dump_state()
