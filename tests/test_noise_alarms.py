"""``python -m tests.benchmarks.noise_alarms``: false alarms on noise-only series, flags and alarms.

The benchmark's figures are cited in docs/detection.md: the five noise families must stay the series they
were, and ``--families server`` (a quiet server's Telegraf fields) must print the lines documented there.
"""

from __future__ import annotations

import hashlib
import re

from benchmarks.noise_alarms import ALARM_GAP, BLOCKS, CPUS, FAMILIES, PAGES, SERVER, alarm_starts, series
from conftest import benchmark_lines


def benchmark(*args: str) -> list[str]:
    """The output lines of ``python -m tests.benchmarks.noise_alarms *args``."""
    return benchmark_lines("noise_alarms", *args)


def test_the_five_noise_families_are_the_series_they_were():
    """A digest of two series of each family (10 s and hourly), as generated before the server families were
    added: the figures in docs/detection.md were measured on these values."""
    digests = {
        f: hashlib.sha256(repr([series(f, 2000, s, f"{f}/{k}") for s, k in ((10, 0), (3600, 3))]).encode())
        .hexdigest()[:16]
        for f in FAMILIES
    }
    assert digests == {
        "gauss": "db5f55726bb83c7c", "ar": "b1b96b9fe6ebc28b", "counts": "c50c02d739acd32e",
        "daily": "32754c2b3742eb0d", "lognormal": "f20a3fb457362b11",
    }  # fmt: skip


def test_a_flag_more_than_ten_minutes_after_the_previous_one_begins_an_alarm():
    assert ALARM_GAP == 600
    assert alarm_starts([]) == []
    assert alarm_starts([0, 600, 1201, 1800, 2400, 5000]) == [True, False, True, False, False, True]


def test_server_families_are_written_as_telegraf_writes_them():
    """Two days at 10 s of each server family: percentages are ratios of whole CPU ticks, pages or blocks,
    counters never go down, gauges are whole numbers, ``load1`` has two decimals; seeded."""
    n, step = 2 * 8640, 10
    xs = {f: series(f, n, step, f"{f}/0") for f in SERVER}
    assert all(series(f, 500, step, f"{f}/0") == xs[f][:500] for f in SERVER)

    def share_of(x: float, units: int) -> bool:
        return 0.0 <= x <= 100.0 and 100.0 * round(x * units / 100.0) / units == x

    assert all(share_of(x, CPUS * 100 * step) for f in ("cpu_idle", "cpu_iowait") for x in xs[f])
    assert all(share_of(x, PAGES) for x in xs["mem_used_pct"]) and all(share_of(x, BLOCKS) for x in xs["disk_used_pct"])
    assert sum(x == 0.0 for x in xs["cpu_iowait"]) > n // 2
    assert any(b < a - 20.0 for a, b in zip(xs["mem_used_pct"], xs["mem_used_pct"][1:]))  # a restart
    for f in ("net_bytes", "net_err_in", "uptime", "procs_total", "n_users", "swap_used", "procs_running"):
        assert all(x == int(x) for x in xs[f]), f
    for f in ("net_bytes", "net_err_in", "uptime"):
        assert all(b >= a for a, b in zip(xs[f], xs[f][1:])), f
    assert all(b - a == step for a, b in zip(xs["uptime"], xs["uptime"][1:]))
    errs = xs["net_err_in"]
    steps = [i for i in range(1, n) if errs[i] != errs[i - 1]]
    assert 3 <= len(steps) <= 30 and all(errs[i] - errs[i - 1] == 1 for i in steps)  # one every 4 h on average
    assert max(b - a for a, b in zip([0, *steps], [*steps, n])) * step >= 3 * 3600  # the same for hours
    assert all(round(x, 2) == x for x in xs["load1"])
    assert set(xs["swap_used"]) == {0.0} and set(xs["procs_running"]) <= {0.0, 1.0, 2.0, 3.0}
    assert all(280 <= x <= 320 for x in xs["procs_total"]) and set(xs["n_users"]) <= {0.0, 1.0, 2.0, 3.0}


def test_families_server_prints_flags_alarms_and_a_line_per_family():
    """``--families server``: the flags by family, kind and day, the alarms likewise, then per family the
    flags, alarms and alarms of each kind per series-day; every figure agrees with the rows above it."""
    out = benchmark("--families", "server", "--step", "10", "--days", "1", "--per-family", "2")
    head = re.fullmatch(
        r"sentinel \{\}: 24 noise-only series, one sample every 10 s for 1 days: (\d+) false alarms, "
        r"([\d.]+) per series-day", out[0],
    )  # fmt: skip
    assert head, out[0]
    at = next(i for i, line in enumerate(out) if line.startswith("alarms "))
    alarm_head = re.fullmatch(
        r"alarms \(a flag more than 600 s after the previous one of its series begins one\): (\d+), "
        r"([\d.]+) per series-day", out[at],
    )  # fmt: skip
    assert alarm_head, out[at]
    row = re.compile(r"  (\w+) +(\w[\w ()]*?) +(first day|later) +(\d+)")

    def rows(lines: list[str]) -> dict[tuple[str, str, str], int]:
        matches = [row.fullmatch(line) for line in lines]
        assert all(matches), lines
        return {m.group(1, 2, 3): int(m.group(4)) for m in matches}

    summary = out.index("per family, per series-day: flags, alarms, alarms by kind")
    flags, alarms = rows(out[1:at]), rows(out[at + 1 : summary])
    assert sum(flags.values()) == int(head[1]) and f"{int(head[1]) / 24:.3f}" == head[2]
    assert sum(alarms.values()) == int(alarm_head[1]) and f"{int(alarm_head[1]) / 24:.3f}" == alarm_head[2]
    assert 0 < sum(alarms.values())  # so that the rows below are checked (at main: 26 alarms, 110 flags)
    assert all(k <= flags.get(key, 0) for key, k in alarms.items())  # an alarm begins with a flag of its kind
    lines = out[summary + 1 :]
    assert [line.split()[0] for line in lines] == list(SERVER)
    for family, line in zip(SERVER, lines):
        m = re.fullmatch(r"  \w+ +([\d.]+) +([\d.]+)((?:  .*)?)", line)
        assert m, line
        assert m[1] == f"{sum(k for key, k in flags.items() if key[0] == family) / 2:.3f}", line
        assert m[2] == f"{sum(k for key, k in alarms.items() if key[0] == family) / 2:.3f}", line
        by_kind = {kind: k for kind, k in re.findall(r"([a-z][a-z ()]*?) ([\d.]+)(?:, |$)", m[3].strip())}
        kinds = {key[1] for key in alarms if key[0] == family}
        assert set(by_kind) == kinds, line
        for kind in kinds:
            assert by_kind[kind] == f"{sum(k for key, k in alarms.items() if key[:2] == (family, kind)) / 2:.3f}"


def test_the_noise_families_print_the_same_lines_and_the_alarms_after_them():
    out = benchmark("--step", "60", "--days", "1", "--per-family", "1")
    assert re.fullmatch(r"sentinel \{\}: 5 noise-only series, one sample every 60 s for 1 days: \d+ false alarms, "
                        r"[\d.]+ per series-day", out[0]), out[0]  # fmt: skip
    summary = out.index("per family, per series-day: flags, alarms, alarms by kind")
    assert [line.split()[0] for line in out[summary + 1 :]] == list(FAMILIES)


def test_a_routine_is_not_reported_at_every_recurrence():
    """``--families routine`` at 10 s for 3 days (4 series of each family): the default reports a reading
    held 5 minutes every hour (72 holds a series) as ``stuck`` at most once a day, and latency-like spikes
    that come in clusters as a ``spike`` (a burst of far-out values) at most once a series: their clusters
    set the bar a burst must clear (``far_record``). Without that bar (``far_record = 0``, every cluster of
    three far-out values a burst) the clusters are reported several times a day."""
    from benchmarks.noise_alarms import ROUTINE, count

    def alarms(params: dict) -> dict[tuple[str, str], int]:
        got: dict[tuple[str, str], int] = {}
        for (family, kind, _), k in count(tuple(ROUTINE), 3 * 8640, 10, 4, params)[1].items():
            got[family, kind] = got.get((family, kind), 0) + k
        return got

    default, bare = alarms({}), alarms({"far_record": 0.0})
    assert set(ROUTINE) == {"hourly_hold", "night_zero", "clustered_spikes", "noisy_hour", "sparse_errors"}
    assert default.get(("hourly_hold", "stuck"), 0) <= 4 * 3
    assert default.get(("clustered_spikes", "spike"), 0) <= 4, default
    assert bare.get(("clustered_spikes", "spike"), 0) >= 4 * 3 * 2, bare


def test_the_routine_families_print_their_lines():
    out = benchmark("--families", "routine", "--step", "60", "--days", "2", "--per-family", "1")
    assert out[0].startswith("sentinel {}: 5 noise-only series, one sample every 60 s for 2 days:")
    assert [line.split()[0] for line in out[out.index("per family, per series-day: flags, alarms, alarms by kind") + 1:]] == [
        "hourly_hold", "night_zero", "clustered_spikes", "noisy_hour", "sparse_errors"]
