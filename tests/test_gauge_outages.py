"""``python -m tests.benchmarks.gauge_outages``: incidents on exact series, caught or missed, and false alarms.

The benchmark's figures are cited in docs/detection.md ("Outages on exact gauges (benchmark)"): the series
must be the shapes documented there, and the script must print the lines documented there, the totals
adding up.
"""

from __future__ import annotations

import re

from benchmarks.gauge_outages import AFTER, BASE, BURST, DURATIONS, FAMILIES, MIN_GAP, series
from conftest import benchmark_lines


def test_gauges_sit_still_between_incidents_of_5_minutes_to_2_hours_at_least_2_hours_apart():
    n, step = 3 * 8640, 10
    for family in ("health", "replicas", "queue"):
        for k in range(3):
            xs, spans = series(family, n, step, 6.0, f"{family}/{k}")
            assert (xs, spans) == series(family, n, step, 6.0, f"{family}/{k}")  # seeded
            assert len(spans) >= 3 and spans[-1][1] + AFTER < n, (family, spans)
            assert spans[0][0] * step >= 6 * 3600
            inside = {i for a, b in spans for i in range(a, b)}
            assert all(xs[i] == BASE[family] for i in range(n) if i not in inside)
            for a, b in spans:
                assert (b - a) * step in DURATIONS and len(set(xs[a:b])) == 1
                assert xs[a] in ({1.0, 2.0, 3.0, 4.0, 5.0} if family == "queue" else {BASE[family] - 1.0})
            assert all(c - b >= MIN_GAP * 3600 / step for (_, b), (c, _) in zip(spans, spans[1:]))


def test_the_error_counter_bursts_by_10_to_30_a_sample_for_6_samples():
    n, step = 5 * 8640, 10
    xs, spans = series("err_counter", n, step, 6.0, "err_counter/0")
    assert 2 <= len(spans) <= 8 and all(b - a == BURST for a, b in spans)
    assert all(x == int(x) for x in xs) and all(y >= x for x, y in zip(xs, xs[1:]))  # a counter
    bursts = {i for a, b in spans for i in range(a, b)}
    for i in range(1, n):
        d = xs[i] - xs[i - 1]
        assert 10 <= d <= 31 if i in bursts else d in (0, 1), (i, d)


def benchmark(*args: str) -> list[str]:
    """The output lines of ``python -m tests.benchmarks.gauge_outages *args``."""
    return benchmark_lines("gauge_outages", *args)


def test_prints_a_line_per_family_and_totals_that_add_up():
    out = benchmark("--step", "10", "--days", "2", "--per-family", "2", "--gap", "6")
    head = re.fullmatch(
        r"sentinel \{\}: 8 exact series, one sample every 10 s for 2 days, an incident every 6 h on average: "
        r"(\d+) of (\d+) incidents caught, (\d+) false alarms", out[0],
    )  # fmt: skip
    assert head, out[0]
    assert out[1].split() == ["family", "incidents", "caught", "at", "onset", "false", "alarms", "per", "series-day",
                              "median", "delay", "(s)"]  # fmt: skip
    rows = {}
    for line in out[2:]:
        m = re.fullmatch(r"  (\w+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+\.\d{3}) +(\d+|-)", line)
        assert m, line
        rows[m[1]] = m.groups()[1:]
    assert list(rows) == [*FAMILIES, "all"]
    for name, (incidents, caught, onset, false_alarms, per_day, delay) in rows.items():
        assert int(onset) <= int(caught) <= int(incidents), name
        days = 2 * 2 * (len(FAMILIES) if name == "all" else 1)
        assert per_day == f"{int(false_alarms) / days:.3f}", name
        assert (delay == "-") == (caught == "0"), name
    for column in range(4):
        assert sum(int(rows[f][column]) for f in FAMILIES) == int(rows["all"][column])
    assert (int(head[1]), int(head[2]), int(head[3])) == (int(rows["all"][1]), int(rows["all"][0]), int(rows["all"][3]))
    assert int(rows["all"][0]) >= 10 and int(rows["all"][1]) > 0  # so that the rows above are checked


def test_an_outage_after_an_earlier_one_is_judged_against_the_gauge_not_the_last_outage():
    """Health and replica gauges at 10 s, 4 series each for 5 days, an outage every 6 hours on average:
    the shift step's long-run mean learns at a tenth of its weight while a shift lasts, so an outage does
    not leave a mean the next one is measured from: 106 of 140 outages caught, against 82 when the mean
    learned each outage in full, with 1 false alarm either way."""
    out = benchmark("--step", "10", "--days", "5", "--per-family", "4")
    rows = {line.split()[0]: [int(v) for v in line.split()[1:5]] for line in out[2:]}
    incidents = rows["health"][0] + rows["replicas"][0]
    caught = rows["health"][1] + rows["replicas"][1]
    false_alarms = rows["health"][3] + rows["replicas"][3]
    assert (incidents, caught, false_alarms) == (140, 106, 1), rows
