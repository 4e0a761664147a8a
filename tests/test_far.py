"""Bursts of sparse spikes at 1 s (``far``, ``far_time``, ``far_record``: part of the spike step), through the real process.

What a user relies on: by default (``far = 6`` in ``sentinel``), on a sensor
sampled every second, a burst of a few minutes in which some samples jump
far out (8 standard deviations, one sample in 20) is flagged again each
time it comes back, not only the first time (when the range was new), with
reason ``spike``: each burst's far-out values are far more than the
series' own clusters of them outside the bursts, and a reported burst
sets no bar for the next while the debt allows. A series whose far-out
values come at a steady rate is not flagged for them. With ``far = 0`` the
count is off, and these bursts are reported again all the same, as new
extremes, since a reported episode is not learned into the range (a few
times: docs/detection.md, "Episodes"; tests/test_episodes.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from conftest import run_cli, samples
from riverguard.detectors import REGISTRY
from test_explain import _probe_band

T0 = 19674 * 86400  # Monday 2023-11-13, 00:00 UTC
MINUTE = 60
#: the bursts: (first sample, length), 1 s apart
BURSTS = ((30 * MINUTE, 240), (70 * MINUTE, 240), (110 * MINUTE, 240), (150 * MINUTE, 240))


def sensor(steady: bool = False) -> bytes:
    """3 hours of a sensor at 1 s around 50 (sd 1), with the four BURSTS of sparse +8 spikes (each sample
    of a burst jumps with probability 0.05), or (``steady``) the same jumps at the same rate all the time."""
    rng = random.Random(7)

    def value(i: int, host: bytes, gauss: Callable[[float], float]) -> float:
        x = 50.0 + gauss(1.0)
        inside = steady or any(a <= i < a + n for a, n in BURSTS)
        return x + (8.0 if inside and rng.random() < 0.05 else 0.0)

    return samples([T0 + i for i in range(180 * MINUTE)], value, seed=5, series=b"bench", field=b"temp")


def _flags(tmp_path: Path, data: bytes, params: str = "") -> list[tuple[int, str]]:
    """The flagged lines of ``data`` under the default detector with ``params``: (line, reason)."""
    config = tmp_path / f"rules-{len(list(tmp_path.glob('*.toml')))}.toml"
    config.write_text('[output]\nexplain = true\n\n[[rule]]\nname = "all"\n' + (f"[rule.params]\n{params}" if params else ""))
    proc = run_cli(["run", "--config", str(config)], input=data, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(data.splitlines())
    out = []
    for i, line in enumerate(lines):
        if b"temp_anomaly=true" in line:
            reason = line.split(b'temp_anomaly_reason="')[1].split(b'"')[0].decode() if b"_reason=" in line else ""
            out.append((i, reason))
    return out


def _bursts_flagged(flags: list[tuple[int, str]]) -> list[bool]:
    return [any(a <= i < a + n + 5 for i, _ in flags) for a, n in BURSTS]


def test_each_burst_of_sparse_spikes_is_flagged(tmp_path: Path) -> None:
    data = sensor()
    flags = _flags(tmp_path, data)
    # each (the first a new extreme, the range has not seen such values yet; the later ones as the range is
    # that before the first again, and the third and fourth as bursts too)
    assert _bursts_flagged(flags) == [True, True, True, True], flags
    # nothing between the bursts
    assert all(any(a <= i < a + n + 5 for a, n in BURSTS) for i, _ in flags), flags
    assert {r for i, r in flags if i >= BURSTS[1][0]} == {"spike"}, flags
    # with the count off (far = 0) too, as new extremes (before episodes were kept out of the range: the first only)
    assert _bursts_flagged(_flags(tmp_path, data, "far = 0.0\n")) == [True, True, True, True]


def test_far_out_values_at_a_steady_rate_are_no_burst(tmp_path: Path) -> None:
    """The same jumps all the time: the series' own rate of them, so no burst; only the first ones, new
    to a young range, may be flagged."""
    flags = _flags(tmp_path, sensor(steady=True))
    assert all(i < 20 * MINUTE for i, _ in flags), flags


def test_the_band_takes_in_a_burst_of_far_out_values() -> None:
    """``[output] explain``: where the next far-out value would complete a burst, the band's edge is the far-out
    bound (``far`` mads from the spike step's mean), exact: just inside not flagged, just outside flagged. The
    bursts come an hour later than BURSTS (a burst is reported once the series has an hour behind it)."""
    late = tuple((a + 60 * MINUTE, n) for a, n in BURSTS)
    det = REGISTRY["sentinel"]()
    rng = random.Random(7)
    noise = random.Random(5)
    at_edge = reports = 0
    for i in range(240 * MINUTE):
        inside = any(a <= i < a + n for a, n in late)
        x = round(50.0 + noise.gauss(0.0, 1.0) + (8.0 if inside and rng.random() < 0.05 else 0.0), 3)
        t = float(T0 + i)
        if inside:
            band = det.explain(0.5, t)
            assert band is not None
            _probe_band(det, band, 0.5, t, i)
            at_edge += band[2] == det.spikes._mean + 6.0 * det.spikes._mad  # (far = 6)
        reports += det.process(x, t) >= 0.5 and i >= late[1][0]
    assert reports >= 2 and at_edge >= 2, (reports, at_edge)


def hourly_bursts(seed: int) -> bytes:
    """10 hours of a sensor at 1 s (AR(1) noise around 20, sd 0.5), with a 5-minute burst of +4 spikes (one
    sample in 20) at half past every hour from the second on: a routine, such as a job that runs hourly."""
    rng = random.Random(seed)
    ar = [0.0]

    def value(i: int, host: bytes, gauss: Callable[[float], float]) -> float:
        ar[0] = 0.9 * ar[0] + gauss(0.19**0.5)
        return 20.0 + 0.5 * ar[0] + (4.0 if i >= HOUR and 1800 <= i % HOUR < 2100 and rng.random() < 0.05 else 0.0)

    return samples([T0 + i for i in range(10 * HOUR)], value, seed=seed, series=b"bench", field=b"temp")


HOUR = 60 * MINUTE


def test_bursts_that_recur_as_a_routine_are_reported_a_few_times_then_set_the_bar(tmp_path: Path) -> None:
    """A burst of far-out values that comes back every hour is reported as a ``spike`` on a few of its first
    returns (each reported one owes two days and none is forgiven while four are owed, as an episode), then
    learned: its cluster is the bar the next must beat twice over, and the last four hours are quiet."""
    for seed in (1, 2, 3):
        hours = {i // HOUR for i, reason in _flags(tmp_path, hourly_bursts(seed)) if reason == "spike"}
        assert 1 <= len(hours) <= 4 and max(hours) <= 5, (seed, hours)
        # without the bar (far_record = 0) every burst of 3 far-out values is one, hour after hour
        bare = {i // HOUR for i, reason in _flags(tmp_path, hourly_bursts(seed), "far_record = 0.0\n")
                if reason == "spike"}
        assert len(bare) >= 7, (seed, bare)


def test_a_routine_cluster_from_the_first_minutes_is_the_bar_even_after_a_stale_first_sample(tmp_path: Path) -> None:
    """A cluster of four far-out values (+9 sd, 10 s apart) every 20 minutes from the tenth minute, a routine
    the series has from its start: its clusters of the first hour set the bar, and none after is a burst.
    The hour is the series' own (samples times its usual interval): a first sample a day before the rest
    (backfilled, or a series that paused) does not skip it. (The second review of the burst change: counted
    from the first timestamp, the hour was over at once, the first clusters were bursts and owed the debt.)"""
    clusters = {600 + k * 1200 + j * 10 for k in range(12) for j in range(4)}

    def value(i: int, host: bytes, gauss: Callable[[float], float]) -> float:
        return 50.0 + gauss(1.0) + (9.0 if i - 1 in clusters else 0.0)

    for lead in (0, 86400):
        times = [T0 - lead] + [T0 + i for i in range(4 * HOUR)]
        flags = _flags(tmp_path, samples(times, value, seed=1, series=b"bench", field=b"temp"))
        assert not [f for f in flags if f[1] == "spike"], (lead, flags)
