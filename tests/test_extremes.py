"""New extremes that last (``extreme_time``, a minute in ``sentinel``), through the real process.

What a user relies on: at Telegraf's 10 s interval a lone value just beyond
the range seen so far, which noise sets now and then, is learned, not
flagged; at one sample a minute too (a lone value is no excursion: it must span two
samples); the same value is flagged where one sample stands for two minutes
or more (5-minute samples), without timestamps, or with ``extreme_time = 0``;
a lone value that is also a spike (far from the recent level) is flagged at
once; a change that keeps the values beyond the range, even with some back
inside, is flagged once it has lasted a minute (give or take half the usual
interval: two samples of a jittery clock at one a minute are enough), even when its
first value came late; and a restart in the middle of such an excursion,
even with uneven intervals, changes no byte of the output.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from conftest import run_rule as run, samples, sensor_runs
from riverguard.detectors import REGISTRY

T0 = 19674 * 86400  # Monday 2023-11-13, 00:00 UTC
AT = 2000  # where the record, the spike or the excursion begins


def values(case: str) -> list[float]:
    """3 000 values around 100 (sd 2; seeded), and at sample ``AT``: a ``record`` (one value 25 % of the
    range above the highest seen: about 6 robust deviations from the level, no spike), a ``spike`` (+60,
    about 35), or an ``excursion`` (+12 for 30 samples, one in three of them back at the level)."""
    rng = random.Random(5)
    out = [100.0 + rng.gauss(0.0, 2.0) for _ in range(3000)]
    top, low = max(out[:AT]), min(out[:AT])
    if case == "record":
        out[AT] = top + 0.25 * (top - low)
    elif case == "spike":
        out[AT] = 160.0
    else:
        for i in range(AT, AT + 30):
            out[i] = out[i] + (12.0 if (i - AT) % 3 != 2 else 0.0)
    return [round(x, 3) for x in out]


def stamped(xs: list[float], times: Sequence[float | None]) -> bytes:
    """Line protocol at the given event times (seconds after ``T0``; None: no timestamp)."""
    at = [None if t is None else T0 + t for t in times]
    return samples(at, lambda i, _host, _gauss: xs[i], series=b"host", field=b"cpu")


def lines(xs: list[float], step: int | None) -> bytes:
    """Line protocol, ``step`` seconds apart (None: no timestamps)."""
    return stamped(xs, [None] * len(xs) if step is None else [step * i for i in range(len(xs))])


def flags(out: list[bytes], field: bytes = b"cpu") -> list[int]:
    return [i for i, line in enumerate(out) if b" %s_anomaly=true" % field in line.replace(b",", b" ")]


@pytest.mark.parametrize(
    ("step", "params", "flagged"),
    [(10, "", False), (60, "", False), (120, "", True), (300, "", True), (None, "", True),
     (10, "[rule.params]\nextreme_time = 0\n", True), (60, "[rule.params]\nextreme_time = 0\n", True)],
)
def test_a_lone_record_lasts_its_sample(tmp_path: Path, step: int | None, params: str, flagged: bool) -> None:
    """A lone value 25 % of the range beyond it: at 10 s it stands for 10 s, not the minute a new extreme
    must last, and nothing flags it; at one sample a minute it is one sample, not the two an excursion must
    span, and nothing flags it either; at 2 or 5 minutes (one sample stands for twice the minute), without
    timestamps (one sample is enough) or with ``extreme_time = 0`` it is a new extreme (score 1.0). The views
    step is off (``peak = 0``): at 5 minutes, where the hour's slots are settled, no view backs this record, so it
    would not count (tests/test_views.py)."""
    out = run(tmp_path, lines(values("record"), step), (params or "[rule.params]\n") + "peak = 0\n")
    assert len(out) == 3000
    if flagged:
        assert b",cpu_anomaly_score=1.0,cpu_anomaly=true," in out[AT], out[AT]
    else:
        assert AT not in flags(out) and b"cpu_anomaly=false" in out[AT], out[AT]
    assert not [i for i in flags(out) if i > AT]  # (the record, once learned, sets nothing off later)


def test_a_lone_spike_beyond_the_range_is_flagged_at_once(tmp_path: Path) -> None:
    """At 10 s, a lone value beyond the range that is also a spike (far from the recent level in robust
    deviations) is a new extreme at once: what a user injects to try the detector is flagged."""
    out = run(tmp_path, lines(values("spike"), 10))
    assert b",cpu_anomaly_score=1.0,cpu_anomaly=true," in out[AT] and b'cpu_anomaly_reason="spike"' in out[AT], out[AT]


@pytest.mark.parametrize(("step", "first"), [(10, AT + 6), (1, None)])
def test_an_excursion_is_flagged_once_it_has_lasted_a_minute(tmp_path: Path, step: int, first: int | None) -> None:
    """+12 for 30 samples with every third back at the level: 10 s apart the excursion has lasted a minute
    at its seventh sample (the samples back inside do not end it: they are not calm for a minute), and is
    flagged there, not before; 1 s apart it lasts 30 s, and it is no new extreme (the shift step, off here,
    reports it as a level shift: test_shift)."""
    out = run(tmp_path, lines(values("excursion"), step), "[rule.params]\nshift = 0\nspread = 0\n")
    got = [i for i in flags(out) if i >= AT]
    if first is None:
        assert got == []
    else:
        assert got and got[0] == first, got
        assert b",cpu_anomaly_score=1.0," in out[first], out[first]
    default = run(tmp_path, lines(values("excursion"), step), "[rule.params]\nextreme_time = 0\n")
    assert AT in flags(default)  # (what the gate held back: the excursion's first value is a new extreme)


@pytest.mark.parametrize("cut", [AT + 2, AT + 4, AT + 6, AT + 12])
def test_a_restart_inside_an_excursion_changes_nothing(tmp_path: Path, cut: int) -> None:
    """One process over the whole input == two with a checkpoint between them, cut inside the excursion,
    before and after it is flagged (its duration and calm are saved)."""
    data = lines(values("excursion"), 10).splitlines(keepends=True)
    whole = run(tmp_path, b"".join(data))
    state = tmp_path / f"s{cut}.msgpack"
    head = run(tmp_path, b"".join(data[:cut]), state=state)
    tail = run(tmp_path, b"".join(data[cut:]), state=state)
    assert head + tail == whole


def test_the_excursion_state_is_saved_by_name() -> None:
    """The step's excursion (``run``, ``calm``) and the pipeline's usual interval (``gap``) are in the
    saved record, so a checkpoint carries them: mid-excursion they are nonzero."""
    det = REGISTRY["sentinel"]()
    for i, x in enumerate(values("excursion")[: AT + 4]):
        det.process(x, float(T0 + 10 * i))
    state = det.state_by_name()
    assert state["gap"] == pytest.approx(10.0)
    assert state["extremes"]["run"] == pytest.approx(40.0) and state["extremes"]["calm"] == pytest.approx(0.0)
    det.process(100.0, float(T0 + 10 * (AT + 4)))  # back inside: calm for 10 s, the excursion goes on
    state = det.state_by_name()
    assert state["extremes"]["run"] == pytest.approx(50.0) and state["extremes"]["calm"] == pytest.approx(10.0)


@pytest.mark.parametrize(("last", "flagged"), [(1, None), (10, 255)])
def test_the_learning_leaves_no_excursion_behind(tmp_path: Path, last: int, flagged: int | None) -> None:
    """Noise that never strays 3 sd from its mean in the learning (uniform, so no value there is far enough
    to be a new extreme), then at sample 250, at 10 s: a lone value far beyond the range is learned, not
    flagged, as at any later time; held for 10 samples it is flagged once it has lasted a minute. (Before,
    the learning left an excursion that began with the second sample, measured from the first value: noise
    went beyond that on one side or the other at every sample, so it never ended, and the first far value
    after the learning was reported at once, however short: the most frequent false alarm at 1 s and 10 s.)"""
    rng = random.Random(7)
    xs = [round(100.0 + rng.uniform(-3.0, 3.0), 3) for _ in range(400)]
    xs[250 : 250 + last] = [108.0] * last
    got = flags(run(tmp_path, lines(xs, 10), "[rule.params]\nshift = 0\n"))
    assert got == ([] if flagged is None else [flagged]), got


def test_a_quiet_server_at_10_s_raises_few_flags(tmp_path: Path) -> None:
    """A day of 10 noise-only series at Telegraf's 10 s interval (two of each family of the
    ``noise_alarms`` benchmark: Gaussian, AR(1), counts, a daily sine, log-normal): every flag is false.
    With ``extreme_time = 0`` there are over three times as many as by default."""
    from tests.benchmarks.noise_alarms import FAMILIES, series

    n = 8640
    data = {(f, s): series(f, n, 10, f"{f}/{s}") for f in FAMILIES for s in range(2)}
    text = b"".join(
        b"noise,family=%s,seed=%d v=%r %d\n" % (f.encode(), s, xs[i], (T0 + 10 * i) * 10**9)
        for i in range(n) for (f, s), xs in data.items()
    )  # fmt: skip
    gated = len(flags(run(tmp_path, text), b"v"))
    ungated = len(flags(run(tmp_path, text, "[rule.params]\nextreme_time = 0\n"), b"v"))
    assert ungated >= 20 and gated * 3 <= ungated, (gated, ungated)


def test_sensor_runs_at_1_s_catch_as_many_incidents_with_fewer_false_alarms() -> None:
    """``python -m tests.benchmarks.sensor_runs`` (28 labelled runs of 20 minutes at 1 s): the gate
    catches nearly as many incidents as without it (25 of 28 against 24; 22 either way before the shift
    step) with fewer false alarms (15 with ``extreme_time = 0``, none by default: 9 before the learning
    left no excursion behind)."""
    figures = [sensor_runs(params) for params in ({}, {"extreme_time": 0})]
    (caught, false), (caught0, false0) = figures
    assert caught >= caught0 >= 22 and false == 0 < false0, figures


def test_a_late_first_sample_still_begins_the_excursion(tmp_path: Path) -> None:
    """The first value beyond the range arrives late (an hour behind the latest one: it stands for no time),
    then the values stay beyond it, on time: the excursion began with the late value, and it is flagged
    once a minute has passed, at the fifth on-time sample (the first stands for the 20 s since the latest
    one before it). Were the late value not an excursion's start, the range would take it in, and the
    values after it, inside that range, would never be new extremes. The views step is off (``peak = 0``): the
    late value makes a second pass through its hour's slot, which then says where the hour's values lie, and no
    view backs this modest record (tests/test_views.py)."""
    xs = values("record")[:AT] + [values("record")[AT]] + [values("record")[AT] - 1.0] * 20
    times = [10.0 * i for i in range(AT)] + [10.0 * AT - 3600.0] + [10.0 * (AT + 1 + k) for k in range(20)]
    got = [i for i in flags(run(tmp_path, stamped(xs, times), "[rule.params]\npeak = 0\n")) if i >= AT]
    assert got and got[0] == AT + 5, got


def test_values_back_inside_for_less_than_a_minute_do_not_end_the_excursion(tmp_path: Path) -> None:
    """10 s apart: 3 values beyond the range, then 5 inside (50 s, less than the minute it takes to end the
    excursion), then beyond again: the excursion, inside stretch included, has lasted 90 s at the first
    value after the return, which is reported. With 6 inside (a minute) it ends, and the next one starts
    from nothing: its 5 values (50 s) are not reported."""
    base = values("record")[:AT]
    high = values("record")[AT]
    for inside, first in ((5, AT + 3 + 5), (6, None)):
        xs = base + [high] * 3 + [100.0] * inside + [high] * 5
        got = [i for i in flags(run(tmp_path, lines(xs, 10))) if i >= AT]
        if first is None:
            assert got == [], got
        else:
            assert got and got[0] == first, got


@pytest.mark.parametrize("interval", [60.0, 59.9, 60.1])
def test_two_samples_a_minute_apart_are_enough_despite_jitter(tmp_path: Path, interval: float) -> None:
    """In a series sampled about once a minute, a record that holds for a second sample is a new extreme at
    that sample, whether the clock puts the first 59.9 s, 60 s or 60.1 s after the sample before (two samples
    stand for two usual intervals, give or take half of one); alone, the same record is learned."""
    xs = values("record")
    times = [60.0 * i for i in range(AT)] + [60.0 * (AT - 1) + interval] + [60.0 * (AT - 1) + interval + 60.0 * k
                                                                           for k in range(1, len(xs) - AT)]
    out = run(tmp_path, stamped(xs, times))
    assert AT not in flags(out) and b"cpu_anomaly=false" in out[AT], out[AT]
    held = xs[: AT + 1] + [xs[AT]] + xs[AT + 2 :]
    out = run(tmp_path, stamped(held, times))
    assert AT not in flags(out) and b",cpu_anomaly_score=1.0,cpu_anomaly=true," in out[AT + 1], out[AT + 1]


@pytest.mark.parametrize(("step", "first"), [(60, AT + 2), (10, AT + 5)])
def test_a_value_back_inside_does_not_end_a_change_at_one_sample_a_minute(tmp_path: Path, step: int,
                                                                           first: int) -> None:
    """A record, one value back at the level, then the record's level for good: the value back inside does not
    end the excursion (it is calm for less than the excursion must last: two samples at one a minute, a
    minute at 10 s), so the change is a new extreme at its third sample a minute apart (at 10 s, once it has
    lasted a minute), not learned as a lone record and missed."""
    xs = values("record")
    level = xs[AT]
    held = xs[: AT + 1] + [xs[AT + 1]] + [level] * 60 + xs[AT + 62 :]
    out = run(tmp_path, lines(held, step), "[rule.params]\nshift = 0\nspread = 0\n")
    got = [i for i in flags(out) if i >= AT]
    assert got and got[0] == first and b",cpu_anomaly_score=1.0," in out[first], (got, out[got[0]] if got else None)


@pytest.mark.parametrize("case", ["excursion", "record"])
def test_a_restart_with_uneven_intervals_changes_nothing(tmp_path: Path, case: str) -> None:
    """Intervals of 7 to 13 s (the usual interval is learned, and saved): one process over the whole input ==
    two with a checkpoint inside the excursion; and when the lone record comes first after the restart and
    after a 5-minute outage (it stands for twice the usual interval, not the outage, so it is not a new
    extreme: a restart that forgot the usual interval would take it for one)."""
    rng = random.Random(9)
    xs = values(case)
    times, t = [], 0.0
    for i in range(len(xs)):
        t += rng.uniform(7.0, 13.0) + (300.0 if case == "record" and i == AT else 0.0)
        times.append(t)
    data = stamped(xs, times).splitlines(keepends=True)
    whole = run(tmp_path, b"".join(data))
    assert bool([i for i in flags(whole) if i >= AT]) is (case == "excursion")
    for cut in (AT + 3, AT + 8) if case == "excursion" else (AT,):
        state = tmp_path / f"u{cut}.msgpack"
        assert run(tmp_path, b"".join(data[:cut]), state=state) + run(tmp_path, b"".join(data[cut:]), state=state) == whole


@pytest.mark.parametrize(
    ("field", "value"),
    [("run", -1.0), ("run", float("inf")), ("calm", -0.5), ("calm", float("inf")),
     ("olo", 1.0), ("ohi", 1.0), ("owe", -1.0), ("owe", float("inf"))],
)  # fmt: skip
def test_a_tampered_excursion_is_refused(field: str, value: float) -> None:
    """A record whose excursion state no run could have written does not load (``load_state`` refuses it,
    as the checkpoint restore's other refusals: tests/test_state.py): a negative or infinite duration
    would hide or hasten every later new extreme; half a range before an episode (the other end still
    "none"), or a negative or endless debt of episodes (tests/test_episodes.py), would put back a range
    that never was or never put one back."""
    from riverguard.detectors.steps import read_record

    det = REGISTRY["sentinel"]()
    for i, x in enumerate(values("excursion")[: AT + 4]):
        det.process(x, float(T0 + 10 * i))
    record = det.dump_state()
    layout = type(det).STATE_LAYOUT
    names = [f.rsplit(":", 1)[0] for f in layout.partition(" | ")[0].split()[2:]]
    assert read_record(layout, record)["extremes"][field] != value  # (as a run wrote it)
    import struct

    fmt = "<" + "".join("d" if f.endswith(":d") else "q" for f in layout.partition(" | ")[0].split()[2:])
    scalars = list(struct.unpack(fmt, record[0]))
    scalars[names.index(f"extremes.{field}")] = value
    fresh = REGISTRY["sentinel"]()
    with pytest.raises(ValueError, match="extremes"):
        fresh.load_state([struct.pack(fmt, *scalars), *record[1:]])


@pytest.mark.parametrize("glitch", [1000.0, 1e12, 9999.0, 3.4028235e38])
@pytest.mark.parametrize(("step", "later"), [(10, 100), (10, 3000), (10, 30000), (300, 3000)])
def test_a_lone_glitch_leaves_the_range_as_it_was(tmp_path: Path, glitch: float, step: int, later: int) -> None:
    """A sensor's lone error value (a thousand times the noise, or a code such as ``1e12`` or float32's
    largest) is flagged at once, and the range, the long-run mean and variance and the spike step's scale
    stay as they were: a dip of 25 robust deviations ``later`` samples on (17 minutes, 8 hours, or 3.5 days
    at 10 s; 10 days at 5 minutes, where one value is a new extreme by itself) is flagged as it is without
    the glitch (the range set by the glitch, its margin 50 times the noise's, used to hide it for good; its
    variance, for days; the spike step's scale, for hundreds to thousands of samples)."""
    rng = random.Random(3)
    xs = [round(10.0 + rng.gauss(0.0, 1.0), 3) for _ in range(AT + later + 10)]
    dip = AT + later
    xs[dip] = -15.0
    clean = flags(run(tmp_path, lines(xs, step)))
    assert dip in clean
    xs[AT] = glitch
    got = flags(run(tmp_path, lines(xs, step)))
    assert AT in got and dip in got, got
    assert len(got) <= len(clean) + 1, (got, clean)


def test_a_lone_glitch_leaves_a_constant_range_as_it_was(tmp_path: Path) -> None:
    """At 5 minutes, where one value is a new extreme by itself, a lone ``9999`` in a series that has been 0
    (a range of width 0: any value beyond it is wild) is flagged and the range stays 0 .. 0, so a move to 5
    three days later is flagged as it is without the glitch."""
    xs = [0.0] * 3010
    xs[AT + 1000] = 5.0
    assert AT + 1000 in flags(run(tmp_path, lines(xs, 300)))
    xs[AT] = 9999.0
    got = flags(run(tmp_path, lines(xs, 300)))
    assert AT in got and AT + 1000 in got, got


@pytest.mark.parametrize("base", [0.0, 20.0])
@pytest.mark.parametrize(("step", "hold"), [(10, 1), (10, 30), (60, 1), (300, 1)])
def test_a_lone_glitch_leaves_a_constant_series_as_it_was(tmp_path: Path, base: float, step: int,
                                                          hold: int) -> None:
    """A lone ``9999`` in a series that has been exactly ``base`` is flagged, and a move of +5 a thousand
    samples later (2.8 hours at 10 s), alone or for five minutes, is flagged as it is without the glitch. At
    20.0 the range used to become 20 .. 9999 at any sampling (the level shift step's recent level, which says
    the episode is over, never comes back to exactly 20). At 0.0 the range came back, but the long-run
    variance and the spike step's scale kept the 9999 (a constant range bounds nothing in the learning, and
    a repeat leaves the spike scale as it is): at 10 s or 60 s, where a lone value is flagged only as a spike,
    the move was missed (at 5 minutes only the time-of-day step still caught it)."""
    xs = [base] * 3100
    move = AT + 1000
    for k in range(hold):
        xs[move + k] = base + 5.0
    assert move in flags(run(tmp_path, lines(xs, step)))
    xs[AT] = 9999.0
    got = flags(run(tmp_path, lines(xs, step)))
    assert AT in got and move in got, got


@pytest.mark.parametrize("glitch", [9999.0, -9999.0, 3.4028235e38])
def test_a_wild_value_is_learned_as_one_bound_by_the_range(glitch: float) -> None:
    """What a wild value is learned as has one definition (``steps._bound``): the long-run mean and the spike
    step's mean both learn it as the value 10 widths of the range beyond that range (the long-run mean used to
    clip it at 10 widths from itself instead, so the two steps learned one glitch as two different values)."""
    rng = random.Random(3)
    det = REGISTRY["sentinel"]()
    for i in range(AT):
        det.process(round(10.0 + rng.gauss(0.0, 1.0), 3), T0 + 10.0 * i)
    lo, hi = det.extremes._lo, det.extremes._hi
    bound = hi + 10.0 * (hi - lo) if glitch > 0.0 else lo - 10.0 * (hi - lo)
    lmean, smean = det.extremes._lmean, det.spikes._mean
    det.process(glitch, T0 + 10.0 * AT)
    assert (det.extremes._lmean - lmean) / det.cfg.values["value_long"] == pytest.approx(bound - lmean, rel=1e-6)
    assert (det.spikes._mean - smean) / det.cfg.values["spike_fading"] == pytest.approx(bound - smean, rel=1e-6)


def test_values_near_the_float_limit_are_flagged_and_never_learned(tmp_path: Path) -> None:
    """``1.7976931348623157e308`` then its negative (a program's error, not a measurement) are flagged, and
    the model goes on as without them: they used to overflow the steps' means and variances into inf and
    NaN, leaving a series that never flagged again (no fresh start, no message)."""
    rng = random.Random(4)
    xs = [round(10.0 + rng.gauss(0.0, 1.0), 3) for _ in range(AT + 3010)]
    dip = AT + 3000
    xs[dip] = -15.0
    times = [10 * i for i in range(len(xs))]
    xs[AT], xs[AT + 1] = 1.7976931348623157e308, -1.7976931348623157e308
    got = run(tmp_path, stamped(xs, times))
    assert {AT, AT + 1, dip} <= set(flags(got)), flags(got)
    assert b'cpu_anomaly_reason="spike"' in got[AT] and b'cpu_anomaly_reason="dip"' in got[AT + 1], got[AT : AT + 2]
    # the model went on as if they had not come: each later line as without them, explanations included
    without = run(tmp_path, stamped(xs[:AT] + xs[AT + 2 :], times[:AT] + times[AT + 2 :]))
    assert got[AT + 2 :] == without[AT:]


@pytest.mark.parametrize("step", [10, 300])
def test_a_value_stuck_near_the_float_limit_is_flagged_once(tmp_path: Path, step: int) -> None:
    """A sensor stuck at ``1.7976931348623157e308`` (its error value) for 500 samples is flagged at the first
    of them, as a run of repeats is, not at each (it was: 500 flags), and still never learned: the lines after
    the run are those without it, a dip 100 samples after it is flagged, the same value again after it is
    flagged again, and a restart inside the run changes no byte of the output."""
    rng = random.Random(4)
    xs = [round(10.0 + rng.gauss(0.0, 1.0), 3) for _ in range(AT + 700)]
    xs[AT + 600] = -15.0
    times = [step * i for i in range(len(xs))]
    stuck = list(range(AT, AT + 500))
    for i in stuck:
        xs[i] = 1.7976931348623157e308
    xs[AT + 650] = 1.7976931348623157e308
    data = stamped(xs, times)
    got = run(tmp_path, data)
    assert [i for i in flags(got) if i in stuck] == [AT], flags(got)
    assert {AT + 600, AT + 650} <= set(flags(got)), flags(got)
    rest = [i for i in range(len(xs)) if i not in stuck and i != AT + 650]
    without = run(tmp_path, stamped([xs[i] for i in rest], [times[i] for i in rest]))
    assert [got[i] for i in rest[AT:]] == without[AT:]
    parts = data.splitlines(keepends=True)
    state = tmp_path / "stuck.msgpack"
    cut = AT + 200
    assert run(tmp_path, b"".join(parts[:cut]), state=state) + run(tmp_path, b"".join(parts[cut:]), state=state) == got


@pytest.mark.parametrize("step", [10, 300])
def test_a_wild_value_in_a_series_that_holds_its_values_leaves_the_lines_after_it_as_they_were(
        tmp_path: Path, step: int) -> None:
    """A lone ``1.7976931348623157e308`` in a series that holds each reading for a while (an integer gauge)
    is flagged, and every other line is as without it. The stuck step's previous value used to take the wild
    value (so that the same one again would not be flagged again): the reading after it was then no repeat,
    the run it was in ended there, and its length became the record (with ``step`` 10, 25 lines differed)."""
    rng = random.Random(7)
    xs, v = [], 5.0
    for _ in range(AT + 1000):
        if rng.random() < 0.05:
            v = float(rng.randint(3, 8))
        xs.append(v)
    times = [step * i for i in range(len(xs))]
    without = run(tmp_path, stamped(xs, times))
    got = run(tmp_path, stamped(xs[:AT] + [1.7976931348623157e308] + xs[AT:],
                                times[:AT] + [step * AT - step // 2] + times[AT:]))
    assert AT in flags(got), flags(got)
    assert got[:AT] + got[AT + 1 :] == without


def outage_day(days: int = 6, at: float = 3.3, minutes: int = 10) -> tuple[list[float], int]:
    """A request rate at one sample a minute (seeded): 500 +- 300 over the day (lowest at midnight UTC) plus
    noise of sd 25, falling to about 3 req/s for ``minutes`` from day ``at``; the values and where it falls."""
    rng = random.Random(26)
    n = days * 1440
    xs = [max(0.0, 500.0 - 300.0 * math.cos(2.0 * math.pi * i / 1440.0) + rng.gauss(0.0, 25.0)) for i in range(n)]
    start = int(at * 1440)
    for i in range(start, start + minutes):
        xs[i] = rng.uniform(0.5, 6.0)
    return [round(x, 2) for x in xs], start


def test_an_outage_of_a_daily_rate_at_one_sample_a_minute_is_flagged(tmp_path: Path) -> None:
    """A rate with a strong daily cycle falls to almost nothing for 10 minutes on day 3.3, at one sample a
    minute: far below the range seen so far, but not 3 long-run standard deviations from the long-run mean
    (the daily swing spreads them: 172 around 406, so -110 would be needed), so before it was never flagged.
    It is far from the mean of its hour, which three earlier days have shown (about 20 of that hour's
    standard deviations): a new extreme once it has lasted its two samples, and nothing else is flagged."""
    xs, start = outage_day()
    out = run(tmp_path, lines(xs, 60))
    assert flags(out) == [start + 1], flags(out)
    assert b",cpu_anomaly_score=1.0,cpu_anomaly=true," in out[start + 1], out[start + 1]
