"""The default detector (``sentinel``): restarts, determinism, score range, state size, quality.

The quality tests run the real evaluation (the engine path of ``riverguard
evaluate``) on both corpora, NAB (``$RIVERGUARD_NAB`` or ``shared/nab``) and the
Cloud Monitoring Dataset (``$RIVERGUARD_CMD`` or ``shared/cmd``), about 10 s
each; without them they skip, except under ``CI=true``.
"""

from __future__ import annotations

import json
import math
import random
import struct
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest

from benchmarks.noise_alarms import series  # tests/benchmarks, as pytest imports it
from conftest import realistic_series, run_cli
from riverguard.config import Config, Rule
from riverguard.detectors import DEFAULT, REGISTRY, Sentinel, resolve
from riverguard.evaluate.corpus import load_corpus
from riverguard.evaluate import nab
from riverguard.evaluate.report import evaluate_events, evaluate_scores, format_duration
from riverguard.evaluate.runner import run_corpus, run_file

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")




def test_is_the_registered_default():
    assert DEFAULT == "sentinel"
    assert resolve("default") is Sentinel  # compiled when built (tests/test_compiled.py: same scores and state)
    assert {"sentinel", "zscore", "hst", "pad"} <= set(REGISTRY)
    assert set(Sentinel.defaults()) >= {"bins", "suppress", "margin", "pmin"}


@pytest.mark.parametrize(
    "bad",
    [None, [], [1, 2], {}, {"n": 1}, {"n": -1, **{k: {} for k in ("surprise", "error", "day", "likelihood", "extremes", "stuck", "suppression")}}],
)
def test_bad_state_is_rejected(bad):
    with pytest.raises(ValueError):
        Sentinel().load_state(bad)


def test_a_checkpoint_with_slot_values_beyond_a_float_restores_them_bounded():
    """The time-of-day step keeps its slots' range, mean and variance as 4-byte floats and saves them as
    doubles, as it did when they were doubles: a checkpoint written then, with a slot at 1e39 (beyond a float),
    restores as the largest float, never as infinity, and the series goes on scoring in [0, 1]."""
    t0 = 1_700_000_000.0
    det = Sentinel()
    for i in range(400):  # hourly, 16 days: every slot visited
        det.process(10.0 + 3.0 * math.sin(2 * math.pi * i / 24) + (i % 5) * 0.1, t0 + 3600 * i)
    state = det.dump_state()
    names = [b.rsplit(":", 1)[0] for b in det.STATE_LAYOUT.partition(" | ")[2].split()]
    for name, value in (("day.lo", -1e39), ("day.hi", 1e39), ("day.stat", 1e39)):
        i = 1 + names.index(name)
        wide = list(struct.unpack(f"<{len(state[i]) // 8}d", state[i]))
        wide[3] = value
        state[i] = struct.pack(f"<{len(wide)}d", *wide)
    det.load_state(state)
    kept = det.state_by_name()["day"]
    largest = 3.4028234663852886e38
    for name in ("lo", "hi", "stat"):
        values = struct.unpack(f"<{len(kept[name]) // 8}d", kept[name])
        assert all(math.isfinite(v) and abs(v) <= largest for v in values), name
    assert struct.unpack_from("<d", kept["hi"], 3 * 8)[0] == largest
    assert struct.unpack_from("<d", kept["lo"], 3 * 8)[0] == -largest
    scores = [det.process(10.0 + (i % 5) * 0.1, t0 + 3600 * (400 + i)) for i in range(48)]
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_a_series_far_from_zero_kept_as_values_is_not_flagged_for_the_rounding_of_its_slots(tmp_path: Path):
    """With ``day_detrend = false`` the time-of-day slots keep the values themselves; as 4-byte floats, a slot's
    range rounded to the nearest float held a low above (or a high below) values it had seen: at 1e9 the floats
    are 64 apart, more than the margin of a series that swings by 60, and a value seen again on a later day was
    a time-of-day extreme (2 flags in 20 days of this series, none with the doubles kept before). The range is
    rounded outward: it holds every value seen, and the series is not flagged."""
    rng = random.Random(1)
    t0 = 1_700_000_000
    lines = []
    for i in range(60 * 24 * 20):  # a minute apart, 20 days
        x = 1e9 + 30.0 * (math.sin(2 * math.pi * i / 1440) + 0.3 * rng.gauss(0, 1))
        lines.append(b"m v=%r %d\n" % (x, (t0 + 60 * i) * 10**9))
    data, config = tmp_path / "m.lp", tmp_path / "rg.toml"
    data.write_bytes(b"".join(lines))
    config.write_text('[[rule]]\nname = "all"\ndetector = "default"\n[rule.params]\nday_detrend = false\n')
    proc = run_cli(["replay", "--config", str(config), str(data)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(b"\n") == len(lines)
    assert b"v_anomaly=true" not in proc.stdout, [line for line in proc.stdout.splitlines() if b"=true" in line]


def test_top_scores_stay_distinct():
    """Log-scaled likelihood: the strongest scores are told apart after rounding to 6 decimals.

    (New extremes all score ``extreme``, time-of-day extremes ``day_score``; both are switched
    off here to look at the likelihood.)
    """
    det = Sentinel(suppress=0, extreme=0.0, day_score=0.0)
    scores = sorted(round(det.process(x, t), 6) for x, t in realistic_series(6000))
    top = scores[-20:]
    assert len(set(top)) == len(top)


def test_state_stays_small_on_a_long_series():
    """50 000 samples (about half a year at 5 minutes): the saved state stays under 4 KiB.

    The per-sample cost is measured by ``make bench`` (tests/benchmarks/bench_main.py).
    """
    det = Sentinel()
    for x, t in realistic_series(50_000):
        det.process(x, t)
    assert len(msgpack.packb(det.dump_state())) < 4096


@pytest.mark.parametrize("part", ["detectors", "checkpoint"])
def test_the_benchmark_runs_as_make_bench_does(tmp_path: Path, part: str):
    """``python -m tests.benchmarks --only PART`` (``make bench``) runs from the repository root to its JSON:
    the detectors' part imports this suite's conftest (``realistic_series``), outside pytest's import path; the
    checkpoint's drives the state store's periodic checkpoint (its forked child) as ``run`` does, so it breaks
    when that API changes under it."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", "--quick", "--only", part, "--output", str(out)],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["results"][part]


# -- NAB quality ----------------------------------------------------------------


def _report(root: Path) -> dict:
    files = load_corpus(root)
    rule = Rule(index=1, name="evaluate-sentinel", detector="sentinel")
    runs = run_corpus(Config(rules=(rule,)), files)
    report = evaluate_scores(files, [r.scores for r in runs], [r.flags for r in runs], PROFILES)
    report["events"] = evaluate_events(files, [r.flags for r in runs])
    return report


@pytest.fixture(scope="module")
def nab_report(nab_root: Path) -> dict:
    return _report(nab_root)


@pytest.fixture(scope="module")
def cmd_report(cmd_root: Path) -> dict:
    return _report(cmd_root)


def test_nab_quality_measured(nab_report):
    """Regression floor at the measured scores (79.35 / 79.35 / 71.73 / 83.91 when written, with the views step:
    no window lost, 7 false alarms more, each within NAB's budget; 79.57 / 79.57 / 72.37 / 84.06 with new extremes
    far from the mean of their hour: ``machine_temperature_system_failure``'s first window caught, no false
    alarm more; 78.48 / 78.48 / 71.27 / 82.94 with a reported
    stuck run leaving the repeat statistics: two windows of ``rogue_agent_key_hold`` caught earlier, one more
    false alarm there; 77.99 / 77.99 / 70.85 / 82.62 with the likelihood
    kept under the threshold in a suppression; 77.93 / 77.93 / 70.72 / 82.57 with bursts of change; 77.00 / 77.00 / 69.79 / 81.57 with level shifts; 76.04 / 76.04 / 68.96 / 80.54 with spikes that last; 75.06 / 68.11 / 79.50 before; issue 12 asks
    for >= 74 standard at the shipped threshold), and the false alarms per series-day no higher than when
    issue 12 was filed (0.074; 0.0675 when written, 0.0637 before the views step, 0.0632 before, 0.0621 before
    level shifts)."""
    std, low_fp = nab_report["standard"], nab_report["reward_low_FP_rate"]
    assert std["swept"]["score"] >= 79.34
    assert std["configured"]["score"] >= 79.34
    assert low_fp["swept"]["score"] >= 71.72
    assert nab_report["reward_low_FN_rate"]["swept"]["score"] >= 83.90
    assert nab_report["events"]["false_alarms_per_day"] <= 0.0676
    assert nab_report["events"]["f1"] >= 0.551


def test_cloud_monitoring_quality_measured(cmd_report):
    """Regression floor on the second corpus (56.70 / 54.66 / 58.99 at 0.5 when written, with the views step: 25
    more windows, 9 more false alarms, 0.0428 per series-day; 45.76 / 43.96 / 47.95 with new extremes far
    from the mean of their hour: 2 more windows, one false alarm fewer; 44.74 / 42.77 / 46.96 with bursts of
    change: 5 more false alarms, no window, for 9 more of 112 incidents in the long sensor runs at 1 s and
    one more NAB window; 44.85 / 43.00 / 47.04 with level shifts; 43.51 / 41.71 / 45.52 with ``long_time``; 43.32 / 41.47 / 45.39 with spikes that last; 39.22 / 37.42 /
    41.10 before, 38.85 / 36.67 / 40.86 before the sparse-slot and climb rules, 31.40 / 29.24 / 33.09 before
    suppress_time and learn_time); false alarms per series-day no higher than when issue 12 was filed
    (0.043; 0.0428 when written, 0.0377 before the views step, 0.0417 before new extremes far from the mean of
    their hour, 0.0388 before bursts of change, 0.0377 before level shifts)."""
    assert cmd_report["standard"]["configured"]["score"] >= 56.69
    assert cmd_report["reward_low_FP_rate"]["configured"]["score"] >= 54.65
    assert cmd_report["reward_low_FN_rate"]["configured"]["score"] >= 58.98
    assert cmd_report["events"]["false_alarms_per_day"] <= 0.0429
    assert cmd_report["events"]["f1"] >= 0.644


def test_readme_detection_table_is_what_evaluate_prints(nab_report, cmd_report):
    """The README's table of the default detector on both corpora holds the figures measured here."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for name, report in (("NAB", nab_report), ("CMD", cmd_report)):
        ev = report["events"]
        row = [
            *(f"{report[p]['configured']['score']:.2f}" for p in PROFILES),
            *(f"{ev[k]:.3f}" for k in ("recall", "precision", "f1", "false_alarms_per_day")),
            format_duration(ev["median_delay_s"]),
        ]
        assert f"| {name} | " + " | ".join(row) + " |" in readme, (name, row)


def _hourly(days: int, incidents: dict[int, float], seed: int = 2) -> list[tuple[float, float]]:
    """An hourly daily cycle with noise; ``incidents`` adds a value at an hour."""
    rng = random.Random(seed)
    t0 = 19674 * 86400.0  # Monday 2023-11-13, 00:00 UTC
    return [
        (50.0 + 10.0 * math.sin(2 * math.pi * i / 24) + rng.gauss(0.0, 1.0) + incidents.get(i, 0.0), t0 + 3600.0 * i)
        for i in range(24 * days)
    ]


def test_a_distinct_incident_after_a_detection_is_reported():
    """Hourly data: 400 samples of suppression are 16 days. It ends after suppress_time (3 days) of
    event time, so a second incident 5 days after the first is reported at full score (two dips at
    the busiest hour, inside the series' range: time-of-day extremes). The views step is off (``peak = 0``): no
    view backs these dips yet, so they would not count at all (tests/test_views.py has distinct incidents that
    a view backs)."""
    first, second = 24 * 9 + 6, 24 * 14 + 5  # a Wednesday 06:00 and the Monday after, 05:00
    data = _hourly(30, {first: -15.0, second: -15.0})
    scores = {}
    for suppress_time in (259200.0, 0.0):  # 0: samples only, as before
        det = Sentinel(suppress_time=suppress_time, peak=0.0)
        out = [det.process(x, t) for x, t in data]
        scores[suppress_time] = (out[first], out[second])
    assert scores[259200.0][0] >= 0.5 and scores[259200.0][1] >= 0.5
    assert scores[0.0][0] >= 0.5 and scores[0.0][1] < 0.5  # hidden by the 400-sample suppression


def test_a_sparse_count_sets_no_record_for_the_hour():
    """An hourly count that is mostly 0 with a stray 1: an hour that has only seen zeros says nothing
    about a 1 there (the slot's values must spread over ``day_width`` of the range before it is
    checked). Without that rule every stray 1 at such an hour was a time-of-day extreme."""
    rng = random.Random(4)
    t0 = 19674 * 86400.0  # Monday 2023-11-13, 00:00 UTC
    data = [(1.0 if rng.random() < 0.04 else 0.0, t0 + 3600.0 * i) for i in range(24 * 40)]
    flagged = {}
    for width in (Sentinel().day_width, 0.0):
        det = Sentinel(day_width=width)
        flagged[width] = [i for i, (x, t) in enumerate(data) if det.process(x, t) >= det.default_threshold]
    assert Sentinel().day_width > 0.0
    assert [i for i in flagged[Sentinel().day_width] if i >= 24 * 10] == []
    assert len([i for i in flagged[0.0] if i >= 24 * 10]) >= 4


def _steady(once: bool) -> tuple[Sentinel, random.Random]:
    """A seeded Sentinel (``extreme_once=once``) after 1000 samples of N(10, 1) a minute apart; its generator."""
    rng = random.Random(1)
    det = Sentinel(extreme_once=once)
    for i in range(1000):
        det.process(10.0 + rng.gauss(0.0, 1.0), 60.0 * i)
    return det, rng


def test_a_climb_is_reported_once():
    """A value climbing to a new extreme at every sample is one incident: the first new extreme is
    reported, the rest of the climb is damped by the suppression it started (``extreme_once``); once
    the values are back inside the range, a new extreme is a distinct incident and gets through."""
    got = {}
    for once in (True, False):
        det, rng = _steady(once)
        climb = [det.process(v, 60.0 * (1000 + k)) for k, v in enumerate([20.0, 25.0, 30.0, 35.0])]
        back = max(det.process(10.0 + rng.gauss(0.0, 1.0), 60.0 * (1004 + k)) for k in range(20))
        again = det.process(45.0, 60.0 * 1024)
        got[once] = (climb, back, again)
    assert got[True][0][0] == 1.0 and max(got[True][0][1:]) < 0.5
    assert got[False][0] == [1.0, 0.5, 0.5, 0.5]  # (1.0 damped by 0.5: still flagged)
    assert got[True][1] < 0.5 and got[True][2] >= 0.5


def test_a_new_extreme_on_the_other_side_of_a_climb_is_reported():
    """A climb to new highs does not hide a new low that follows it: the low is a distinct incident
    (before the climb kept its side, ``extreme_once`` damped the -20 to 0.036 at this seed). The
    band of what is not flagged says the same: its lower edge stays while the climb goes on."""
    got = {}
    for once in (True, False):
        det, _ = _steady(once)
        climb = [det.process(v, 60.0 * (1000 + k)) for k, v in enumerate([25.0, 30.0])]
        band = det.explain(det.default_threshold, 60.0 * 1002)
        got[once] = (climb, band, det.process(-20.0, 60.0 * 1002))
    assert got[True][0][0] == 1.0 and got[True][0][1] < 0.5  # the climb: reported once
    assert got[True][2] >= 0.5 and got[True][2] == got[False][2]
    assert got[True][1][1] is not None and -20.0 < got[True][1][1]


def test_scoring_starts_after_learn_time_in_a_slow_series():
    """Hourly data: 200 samples of learning are 8 days. With learn_time (3 days) an incident on day 4
    is reported; nothing scores before 3 days, nor before learn // 4 samples in a faster series."""
    data = _hourly(10, {24 * 4: 40.0})
    det = Sentinel()
    out = [det.process(x, t) for x, t in data]
    assert max(out[: 24 * 3]) == 0.0 and out[24 * 4] >= 0.5
    old = Sentinel(learn_time=0.0)
    assert [old.process(x, t) for x, t in data][24 * 4] == 0.0
    fast = Sentinel()  # one sample a second: 200 samples come long before 3 days
    assert [fast.process(10.0 + (i % 3), float(i)) for i in range(100)] == [0.0] * 100


def test_holidays_in_nyc_taxi_are_caught_by_the_hour_of_day_prediction_error(nab_root: Path):
    """NYC taxi demand at Thanksgiving and Christmas 2014: levels normal at other hours, not at these.

    Neither a new extreme nor a time-of-day extreme (the slot's whole range) sees them; the
    prediction error against the slot's mean (``day_fading``) does, through the likelihood.
    """
    (taxi,) = [f for f in load_corpus(nab_root) if f.key == "realKnownCause/nyc_taxi.csv"]
    windows = nab.prepare(taxi.labels()).bounds
    holidays = windows[1:3]  # NAB's Thanksgiving (2014-11-25..29) and Christmas (2014-12-23..27) windows

    def caught(**params) -> list[bool]:
        rule = Rule(index=1, name="taxi", detector="sentinel", params=params)
        run = run_file(Config(rules=(rule,)), taxi)
        return [bool(run.flags[lo : hi + 1].any()) for lo, hi in holidays]

    assert caught() == [True, True]
    assert caught(day_fading=0.0) == [False, False]


def test_time_of_day_extreme():
    """A daily square wave: a low value at an hour that is always high is flagged (within the range seen)."""
    rng = random.Random(5)

    def value(i: int) -> float:
        return (80.0 if (i % 288) >= 144 else 20.0) + rng.gauss(0.0, 1.0)

    det = Sentinel()
    t0 = 19674 * 86400.0  # Monday 2023-11-13, 00:00 UTC
    scores = [det.process(value(i), t0 + 300.0 * i) for i in range(288 * 14)]
    assert max(scores[288 * 7 :]) < det.default_threshold
    i = 288 * 14 + 200  # Monday 16:40, normally high
    assert det.process(20.0, t0 + 300.0 * i) == det.day_score
    # without event times there is no time of day
    blind = Sentinel()
    rng = random.Random(5)
    for i in range(288 * 14):
        blind.process(value(i), None)
    assert blind.process(20.0, None) < blind.default_threshold


def test_time_of_day_follows_a_trend():
    """A daily cycle on a steady rise: the slots keep deviations from the long-run mean, so the
    rise does not make a new record for the hour each day (it does with ``day_detrend=False``; the views step
    off, as no view backs that record either)."""
    t0 = 19674 * 86400.0  # Monday 2023-11-13, 00:00 UTC
    flags = {}
    for detrend in (True, False):
        rng = random.Random(3)
        det = Sentinel(day_detrend=detrend, day_margin=0.1, peak=0.0)
        scores = [
            det.process(100.0 + 2.0 * i / 288 + 20.0 * math.sin(2 * math.pi * i / 288) + rng.gauss(0.0, 1.0),
                        t0 + 300.0 * i)
            for i in range(288 * 21)
        ]  # fmt: skip
        flags[detrend] = sum(score >= det.default_threshold for score in scores[288 * 8 :])
    assert flags == {True: 0, False: 1}


def test_time_of_day_extreme_gets_through_another_suppression():
    """A new extreme starts a suppression; a time-of-day extreme 100 samples later is still reported
    (``day_through``), and starts a suppression of its own in which time-of-day extremes are damped."""
    t0 = 19674 * 86400.0  # Monday 2023-11-13, 00:00 UTC
    got = {}
    for through in (True, False):
        rng = random.Random(5)
        det = Sentinel(day_through=through)

        def value(i: int) -> float:
            return (80.0 if (i % 288) >= 144 else 20.0) + rng.gauss(0.0, 1.0)

        for i in range(288 * 14 + 100):
            det.process(value(i), t0 + 300.0 * i)
        spike = det.process(200.0, t0 + 300.0 * (288 * 14 + 100))  # Monday 08:20: a new extreme
        for i in range(288 * 14 + 101, 288 * 14 + 200):
            det.process(value(i), t0 + 300.0 * i)
        i = 288 * 14 + 200  # Monday 16:40, normally high
        got[through] = (spike, det.process(20.0, t0 + 300.0 * i), int(det.suppression._qday))
        # the next hour's slot, lower still, but inside the range seen so far by its margin (-19 was a new extreme
        # too once it could be far from the mean of its hour, about 60 below it: docs/detection.md "An outage
        # at one sample a minute")
        got[through] += (det.process(10.0, t0 + 300.0 * (i + 12)),)
    assert got[True][:3] == (1.0, Sentinel().day_score, 1)
    assert got[False][:3] == (1.0, Sentinel().day_score * Sentinel().damp, 0)
    # damped: the suppression running now was started by a time-of-day extreme
    assert got[True][3] == Sentinel().day_score * Sentinel().damp


def _daily_every_10_seconds(seed: int, days: int = 5) -> bytes:
    """A daily sine of amplitude 10 around 50 with noise (sd 1), one sample every 10 s: no incident at all
    (the ``daily`` family of the ``noise_alarms`` benchmark)."""
    t0 = 19674 * 86400  # Monday 2023-11-13, 00:00 UTC
    xs = series("daily", days * 8640, 10, seed)
    return b"".join(b"sensor,host=a temp=%.3f %d\n" % (x, (t0 + 10 * i) * 10**9) for i, x in enumerate(xs))


def test_a_daily_rhythm_at_10_seconds_is_not_taken_for_a_change(tmp_path: Path) -> None:
    """At Telegraf's 10 s, 1 / long samples of the likelihood's long-run memory are under 3 hours: a daily
    rhythm looked like a change every few hours (7 flags after the first day of this noise-only series).
    With ``long_time`` (two days) the memory spans days whatever the sampling: none after the first day."""
    data = _daily_every_10_seconds(2)
    flags = {}
    for name, params in (("default", ""), ("samples only", "[rule.params]\nlong_time = 0.0\n")):
        path = tmp_path / f"{len(flags)}.toml"
        path.write_text('[[rule]]\nname = "all"\n' + params)
        proc = run_cli(["run", "--config", str(path)], input=data, timeout=120)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == 5 * 8640
        flags[name] = [i for i, line in enumerate(lines) if b"temp_anomaly=true" in line]
    assert [i for i in flags["default"] if i >= 8640] == []
    assert len([i for i in flags["samples only"] if i >= 8640]) >= 5


def test_a_step_is_one_flagged_row(tmp_path: Path) -> None:
    """An integer gauge (logged-in users, replicas) at 1 for almost 2 hours, then at 3, every 10 s, through
    the real process: the step is reported once, as a new extreme. The suppression it starts halves the
    scores that follow; the likelihood, at its cap of 1.0 while the prediction error of the new level fades,
    was halved to exactly the threshold (0.5) and flagged the next 9 rows of the same step."""
    t0 = 1_700_000_000
    data = b"".join(b"system,host=a n_users=%di %d\n" % (1 if i < 700 else 3, (t0 + 10 * i) * 10**9)
                    for i in range(1000))
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "all"\n')
    proc = run_cli(["run", "--config", str(path)], input=data, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1000
    assert [i for i, line in enumerate(lines) if b"n_users_anomaly=true" in line] == [700]
    # the scores after it are damped below the threshold, not to it
    after = [float(line.split(b"n_users_anomaly_score=")[1].split(b",")[0].split(b" ")[0]) for line in lines[701:720]]
    assert max(after) < 0.5 and max(after) > 0.4, after
