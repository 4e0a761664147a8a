"""Sparse counts at fine sampling (``fine_time``, part of the likelihood step), through the real process.

What a user relies on: an error count sampled every second, 0 most seconds
and 1 now and then (a Poisson rate of 0.02 a second), is not flagged each
time two errors come a few seconds apart, which such a series does about a
hundred times a day; an error storm (15 times the rate for five minutes) is
still flagged. At five minutes and coarser, where the likelihood's bar was
set on the labelled corpora, nothing changes: the output is byte for byte
the same with the setting off (``fine_time = 0``). docs/detection.md,
"Sparse counts at fine sampling".
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from benchmarks.noise_alarms import alarm_starts, poisson
from conftest import benchmark_lines, run_cli, samples
from riverguard.detectors import REGISTRY
from test_explain import _probe_band

T0 = 19674 * 86400  # Monday 2023-11-13, 00:00 UTC
HOUR = 3600
#: the storm: first second and length, at 1 s
STORM = (5 * HOUR, 300)


def errors(seed: int, step: int = 1, hours: int = 6, rate: float = 0.02) -> bytes:
    """``hours`` of an error count every ``step`` seconds: Poisson at ``rate`` a second, 15 times that in
    STORM."""
    rng = random.Random(seed)

    def value(i: int, host: bytes, gauss: Callable[[float], float]) -> float:
        t = i * step
        storm = STORM[0] <= t < STORM[0] + STORM[1]
        return float(poisson(rng, rate * step * (15 if storm else 1)))

    return samples([T0 + step * i for i in range(hours * HOUR // step)], value, series=b"app", field=b"errors",
                   fmt=b"%.0fi")  # fmt: skip


def _run(tmp_path: Path, data: bytes, params: str = "") -> list[bytes]:
    config = tmp_path / f"rules-{len(list(tmp_path.glob('*.toml')))}.toml"
    config.write_text('[[rule]]\nname = "all"\n' + (f"[rule.params]\n{params}" if params else ""))
    proc = run_cli(["run", "--config", str(config)], input=data, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(data.splitlines())
    return lines


def _alarms(lines: list[bytes]) -> tuple[int, bool]:
    """Alarms outside the storm (as ``noise_alarms`` counts them: a flag more than 10 minutes after the previous
    one begins an alarm) and whether the storm (or the five minutes after it) was flagged; 1 s apart."""
    flags = [i for i, line in enumerate(lines) if b"errors_anomaly=true" in line]
    storm = [STORM[0] <= i < STORM[0] + STORM[1] + 300 for i in flags]
    alarms = sum(begins and not during for begins, during in zip(alarm_starts(flags), storm))
    return alarms, any(storm)


def test_chance_pairs_of_sparse_errors_at_1_s_are_not_alarms_and_a_storm_is(tmp_path: Path) -> None:
    for seed in (1, 2):
        data = errors(seed)
        alarms, storm = _alarms(_run(tmp_path, data))
        assert alarms <= 2 and storm, (seed, alarms, storm)
        # without it (fine_time = 0) the likelihood takes each pair of errors a few seconds apart for
        # seven standard deviations: an alarm every few minutes, all day
        alarms, _ = _alarms(_run(tmp_path, data, "fine_time = 0.0\n"))
        assert alarms >= 6, (seed, alarms)


def test_at_five_minutes_and_coarser_nothing_changes(tmp_path: Path) -> None:
    """A count sparse enough for the widening (an error in 5.6 or 56 hours) at 5 minutes and hourly: the same
    output as with the setting off; with ``fine_time`` above the interval the widening applies and the output
    differs (so the series would show it)."""
    for step, rate, days in ((300, 5e-5, 20), (3600, 5e-6, 120)):
        data = errors(3, step=step, hours=24 * days, rate=rate)
        out = _run(tmp_path, data)
        assert out == _run(tmp_path, data, "fine_time = 0.0\n"), step
        assert out != _run(tmp_path, data, f"fine_time = {10.0 * step}\n"), step


def test_a_dense_series_at_1_s_is_scored_as_before(tmp_path: Path) -> None:
    """A gauge of AR(1) noise at 1 s, and a count of 0.2 errors a second: their short averages hold more than
    one surprise on average, the Gaussian tail holds, and the output is byte for byte the one without the
    setting (a floor that grew with every series' mean surprise muted the likelihood of dense series at 1 s:
    a burst of 4 times the errors for 30 s went unreported)."""
    rng = random.Random(4)
    ar = [0.0]

    def gauge(i: int, host: bytes, gauss: Callable[[float], float]) -> float:
        ar[0] = 0.9 * ar[0] + gauss(1.0)
        return 20.0 + ar[0]

    def busy(i: int, host: bytes, gauss: Callable[[float], float]) -> float:
        return float(poisson(rng, 0.2 * (4 if i % HOUR < 30 and i >= HOUR else 1)))

    for value in (gauge, busy):
        data = samples([T0 + i for i in range(4 * HOUR)], value, seed=2, series=b"app", field=b"errors")
        assert _run(tmp_path, data) == _run(tmp_path, data, "fine_time = 0.0\n"), value.__name__


def test_the_band_is_exact_on_a_sparse_count() -> None:
    """``[output] explain``: the band's edges follow the widened floor, just inside not flagged and just outside
    flagged, on a sparse count at 1 s (0.02 a second) and at 10 s (0.002 a second: sparse enough there)."""
    for step, rate, every in ((1, 0.02, 61), (10, 0.002, 7)):
        det = REGISTRY["sentinel"]()
        rng = random.Random(step)
        probed = 0
        for i in range(4 * HOUR // step):
            t = float(T0 + step * i)
            if i % every == every - 1:
                band = det.explain(0.5, t)
                if band is not None and (band[1] is not None or band[2] is not None):
                    _probe_band(det, band, 0.5, t, (step, i))
                    probed += 1
            det.process(float(poisson(rng, rate * step)), t)
        assert probed >= 20, (step, probed)


def test_the_surges_benchmark_shows_the_trade() -> None:
    """``python -m tests.benchmarks.sparse_surges`` (4 days, one series of each rate and rise): by default under
    one false alarm per series-day on every row, and the surges of 15 times the rate caught; with
    ``fine_time = 0`` more than 10 a day on every row."""
    args = ("--days", "4", "--per-family", "1")
    on = [line.split() for line in benchmark_lines("sparse_surges", *args)[2:]]
    off = [line.split() for line in benchmark_lines("sparse_surges", *args, "--params", '{"fine_time": 0.0}')[2:]]
    assert len(on) == len(off) == 6
    assert all(float(row[-1]) < 1.0 for row in on), on
    assert all(float(row[-1]) > 10.0 for row in off), off
    assert all(row[3] == row[2] for row in on if row[1] == "15"), on
