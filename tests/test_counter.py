"""Cumulative counters (the counter step, ``counter_time``; on in ``sentinel``), through the real process.

What a user relies on: a counter that Telegraf writes as it counts (an
interface's ``err_in``, +1 now and then, as an integer every 10 s) is not
flagged each time it counts once it is known to be a counter, while a burst
of it (twenty errors at once, or one every sample for five minutes) is
flagged with the reason ``burst``, again at each burst. A gauge that sat still
and then climbs in an incident is no counter, late samples are no burst, a
restart keeps what the step learned, and ``counter_time = 0`` is the rule as
it was before the step.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from conftest import run_rule as run, samples
from riverguard.detectors import REGISTRY

T0 = 19674 * 86400  # Monday 2023-11-13, 00:00 UTC
STEP = 10
DAY = 86400 // STEP  # samples a day
HOUR = 3600 // STEP
#: the samples where the bursts begin: 20 errors at once on the third day, one a sample for 5 minutes on the fourth
JUMP = 2 * DAY + DAY // 2
RATE = 3 * DAY + DAY // 2
#: flags from here on are counted: the first day and a half learns (a rare change is a large prediction error then)
SETTLED = DAY + DAY // 2


def errors(seed: int, bursts: bool = True, days: int = 4) -> list[int]:
    """``days`` days of an error counter every 10 s: +1 with a chance of one in 4 hours a sample, from a
    seeded start; with ``bursts``, 20 more at ``JUMP`` and 1 more a sample for 5 minutes from ``RATE``."""
    rng = random.Random(seed)
    v = rng.randrange(100)
    out = []
    for i in range(days * DAY):
        v += rng.random() < 1 / (4 * HOUR)
        if bursts and i == JUMP:
            v += 20
        if bursts and RATE <= i < RATE + 30:
            v += 1
        out.append(v)
    return out


def lines(xs: list[int], times: list[int] | None = None) -> bytes:
    """Line protocol of ``net,host=a err_in=<x>i`` as Telegraf writes an interface counter, every 10 s from
    ``T0`` (or at ``times``, in s)."""
    ts = times if times is not None else [T0 + STEP * i for i in range(len(xs))]
    return samples(ts, lambda i, _host, _gauss: xs[i], series=b"net", field=b"err_in", fmt=b"%di")


def flags(out: list[bytes]) -> list[tuple[int, str]]:
    """``(line, reason)`` of each flagged ``err_in`` in the output lines of a run with explanations on."""
    return [(i, line.split(b'err_in_anomaly_reason="')[1].split(b'"')[0].decode())
            for i, line in enumerate(out) if b"err_in_anomaly=true" in line]  # fmt: skip


def outside(got: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The flags from ``SETTLED`` on outside the bursts (each up to 5 minutes after its end)."""
    return [(i, why) for i, why in got if i >= SETTLED and not (JUMP <= i < JUMP + 30 or RATE <= i < RATE + 60)]


@pytest.mark.parametrize("seed", range(8))
def test_a_counter_is_flagged_at_its_bursts_not_as_it_counts(tmp_path: Path, seed: int) -> None:
    """Four days of an error counter (seeds 0 to 3 with the two bursts, 4 to 7 without): from the second
    day's middle on, at most one flag outside the bursts (a flat stretch longer than any before may be
    ``stuck``); 20 errors at once flagged ``burst`` at once, one a sample flagged within a minute and as
    ``burst`` among its flags. Without the step (``counter_time = 0``; and without the views step, ``peak =
    0``, which backs few of these new highs) the counter's new highs are flagged as it counts, 3 times at least
    in those two and a half days, and no flag says ``burst``."""
    xs = errors(seed, bursts=seed < 4)
    got = flags(run(tmp_path, lines(xs)))
    assert len(outside(got)) <= 1, got
    off = flags(run(tmp_path, lines(xs), "[rule.params]\ncounter_time = 0\npeak = 0\n"))
    assert len(outside(off)) >= 3 and "burst" not in {why for _, why in off}, off
    if seed < 4:
        assert (JUMP, "burst") in got, got
        rate = [(i, why) for i, why in got if RATE <= i < RATE + 30]
        assert rate and rate[0][0] < RATE + 6 and "burst" in {why for _, why in rate}, got


def test_a_gauge_that_climbs_in_an_incident_is_no_counter(tmp_path: Path) -> None:
    """A queue at 0 for a day, then 1 more every sample for 30 minutes: flagged within its first minute (the
    climb began after a flat stretch, so it is not taken for a counter), and the same as without the step."""
    xs = [0] * DAY + list(range(1, 3 * HOUR // 6 + 1))
    on = flags(run(tmp_path, lines(xs)))
    assert on and DAY <= on[0][0] < DAY + 6 and on[0][1] != "burst", on
    assert on == flags(run(tmp_path, lines(xs), "[rule.params]\ncounter_time = 0\n"))


def inlet(seed: int, jump: int) -> tuple[list[int], int]:
    """8 days and 13 hours of an inlet temperature in whole degrees C every 10 s (as IPMI reports it): 21 at
    night, a degree warmer each hour from 07:00 up to 24 (25 on some days, seeded), cooling from 18:00; on the
    ninth day at 11:00, while it has only risen since 07:00, a cooling failure lifts it by ``jump`` for 2
    hours. The values, and the sample where the failure begins."""
    rng = random.Random(seed)
    out = []
    start = 8 * DAY + 11 * HOUR
    top = 24
    for i in range(8 * DAY + 13 * HOUR):
        day, sample = divmod(i, DAY)
        if sample == 0:
            top = 24 + (rng.random() < 0.3)
        hour = sample / HOUR
        v = 21
        if 7 <= hour < 18:
            v = min(top, 22 + int(hour - 7))
        elif 18 <= hour < 18 + top - 21:
            v = top - 1 - int(hour - 18)
        out.append(v + (jump if start <= i < start + 2 * HOUR else 0))
    return out, start


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_gauge_with_a_daily_ramp_is_no_counter(tmp_path: Path, seed: int) -> None:
    """A gauge that rises every morning and falls every evening has not risen for a day without a fall: a
    step up of 3 degrees in the middle of its morning is flagged within two minutes, and every flag is
    what the rule without the step gives. (Taken for a counter after an hour of rising, with
    ``counter_time = 3600``, it goes unflagged.)"""
    xs, start = inlet(seed, 3)
    data = lines(xs)
    got = flags(run(tmp_path, data))
    assert [i for i, _ in got if start <= i < start + 12], got
    assert got == flags(run(tmp_path, data, "[rule.params]\ncounter_time = 0\n"))


@pytest.mark.parametrize("seed", [4, 5])
def test_late_samples_change_nothing(tmp_path: Path, seed: int) -> None:
    """An error counter (no burst); for 10 minutes after its first rise on the second day, each sample is
    followed by a late one, the counter as it was 30 minutes earlier, one less (a second source delivering a
    backlog): no flag comes of them but ``time_of_day`` or ``stuck`` (the hour's slot and the runs of repeats
    learn late values). The increase
    is measured from the latest value in time order, and a late value is no fall: taken as one, the series
    would be no counter for a day, and its rises new extremes again."""
    xs = errors(seed, bursts=False)
    rise = next(i for i in range(DAY, len(xs)) if xs[i] > xs[i - 1])
    times = [T0 + STEP * i for i in range(len(xs))]
    order = []
    for i in range(len(xs)):
        order.append(i)
        if rise <= i < rise + HOUR // 6:
            order.append(i - HOUR // 2)
    assert sum(xs[b] < xs[a] for a, b in zip(order, order[1:])) == HOUR // 6  # (each late value is a fall)
    got = flags(run(tmp_path, lines([xs[i] for i in order], [times[i] for i in order])))
    alone = flags(run(tmp_path, lines(xs)))
    extra = [f for f in [(order[k], why) for k, why in got] if f not in alone]
    assert all(why in ("time_of_day", "stuck") for _, why in extra), (extra, alone)  # (steps that learn late values)


def test_a_restart_in_a_counter_changes_nothing(tmp_path: Path) -> None:
    """Stopped and started again (its checkpoint in between) an hour before the slow burst: the output is the
    bytes of one run."""
    data = lines(errors(2))
    head = b"".join(data.splitlines(keepends=True)[: RATE - HOUR])
    state = tmp_path / "s.msgpack"
    first = run(tmp_path, head, state=state)
    second = run(tmp_path, data[len(head) :], state=state)
    assert first + second == run(tmp_path, data)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_counters_rise_never_holds_the_shift_steps_long_run_mean(seed: int) -> None:
    """The shift step holds its long-run mean (learns at a tenth of its weight) while the level is a shift
    on a side that counts; once a series is known to be a counter only a level below the mean counts, so
    its rise, bursts included, never holds it: from then on (``SETTLED``) each value moves the mean by
    the weight the new-extremes step's mean learns it with, at 10 s. Without the side rule the bursts are
    held."""
    det = REGISTRY["sentinel"]()
    for i, x in enumerate(errors(seed)):
        old, ext = det.shifts._long, det.extremes._lmean
        det.process(float(x), T0 + STEP * i)
        if i >= SETTLED and x != old and x != ext:
            got = (det.shifts._long - old) / (x - old)
            assert got == pytest.approx((det.extremes._lmean - ext) / (x - ext), rel=0.01), i
