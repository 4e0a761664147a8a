"""``riverguard replay --report``: the HTML report, opened in a real headless Chromium.

The browser tests load the report from disk the way a person would, fail on any
console error or request that leaves the file, wait until every plot's canvas
is painted, and save a screenshot in the test's temporary folder.
"""

from __future__ import annotations

import math
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from browser import LINE_COLUMNS_JS, Browser, available, open_rendered
from conftest import ROOT, readme_example, run_cli, samples

DEMO = ROOT / "tests" / "data" / "demo.lp"
#: The flagged points the page holds (the marker sources carry a "score" column).
FLAGGED_JS = """(() => {
  let n = 0;
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models)
      if (m.type === 'ColumnDataSource' && 'score' in m.data) n += m.data.x.length;
  return n;
})()"""
#: Per plot (value or score): its x range's id, start and end as drawn, and the first and last x of its data.
X_RANGES_JS = """(() => {
  const found = [];
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models)
      if (m.type === 'Figure') {
        const xs = m.renderers.flatMap(r => r.data_source ? Array.from(r.data_source.data.x ?? []) : []);
        found.push([m.x_range.id, m.x_range.start, m.x_range.end, Math.min(...xs), Math.max(...xs)]);
      }
  return found;
})()"""


@pytest.fixture(scope="module")
def chromium() -> None:
    if not available():
        message = "headless Chromium not found (Debian package chromium; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def replay_report(tmp: Path, *args: str, files: list[Path] | None = None, config: Path | None = None):
    report = tmp / "report.html"
    cmd = ["replay", "--report", str(report), "--output", str(tmp / "scored.lp"), *args]
    if config:
        cmd += ["--config", str(config)]
    result = run_cli([*cmd, *[str(f) for f in files or [DEMO]]], timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    return report, result.stderr.decode()


def check_page(browser: Browser) -> None:
    assert browser.errors() == []
    leaving = [u for u in browser.requests() if not u.startswith(("file:", "data:"))]
    assert leaving == [], "the report must work offline"


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo-report")
    return replay_report(tmp)


def test_demo_report_renders_every_plot_offline_without_errors(chromium, demo_report) -> None:
    report, stderr = demo_report
    plotted = int(re.search(r"report: (\d+) series plotted", stderr).group(1))
    flagged = set()  # the series with a flag in what the replay wrote: (measurement and tags, field)
    for line in report.with_name("scored.lp").read_text(encoding="utf-8").splitlines():
        flagged |= {(line.split(" ", 1)[0], field) for field in re.findall(r"[ ,](\w+)_anomaly=true", line)}
    assert 4 <= len(flagged) and plotted == min(12, len(flagged))  # --report-top's default: 12
    page = report.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page), "scripts and styles must be inline"
    with Browser(width=1280, height=1000) as browser:
        canvases = open_rendered(browser, report, plotted)
        check_page(browser)
        assert len(canvases) == 2 * plotted, canvases  # every value and score plot painted
        assert all(banded < 50 for *_, banded in canvases), "no band without band fields"
        shot = browser.screenshot(report.with_name("demo-report.png"))
        assert len(shot) > 50_000 and report.with_name("demo-report.png").is_file()
        # Summary = the replay's own summary; every flag of every plotted series is drawn.
        summary = browser.evaluate("[...document.querySelectorAll('#summary td')].map(td => td.textContent)")
        metrics = int(re.search(r"metrics: (\d+)", stderr).group(1))
        anomalies = int(re.search(r"anomalies: (\d+)", stderr).group(1))
        assert summary[0] == f"{metrics:,}" and summary[2] == f"{anomalies:,}"
        rows = browser.evaluate("[...document.querySelectorAll('#top-series tr')].slice(1)"
                                ".map(tr => [...tr.children].map(td => td.textContent))")
        top = re.findall(r"I! \[riverguard\] +(\d+)  (.+)", stderr)
        assert [(r[0], r[2]) for r in rows[: len(top)]] == top
        assert browser.evaluate(FLAGGED_JS) == sum(int(r[0]) for r in rows[:plotted])
        ranges = {p[0] for p in browser.evaluate(X_RANGES_JS)}
        assert len(ranges) == 1, ranges  # every series spans the demo's 6 hours: they zoom and pan together


@pytest.mark.parametrize("axis", ["time", "metric-number"])
def test_series_over_different_spans_each_get_their_own_x_range(chromium, tmp_path: Path, axis: str) -> None:
    """``replay --report A.lp B.lp``, a day of cpu at 10 s and 60 days of an hourly business metric ending
    with it: every plot was linked to the first one's x range, which spans them all, so the day of cpu was
    drawn in the last 1/60 of its plot. Now a series shares a range only with series over (nearly) the same
    span; without timestamps (the x axis is the metric's number) the same holds of the numbers' span."""
    day = 1_764_288_000  # the cpu day: the last of the business metric's 60
    timed = axis == "time"

    def wave(period: int) -> Callable[[int, bytes, Callable[[float], float]], float]:
        return lambda i, _host, gauss: 50 + 20 * math.sin(i * 2 * math.pi / period) + gauss(1.0)

    files = {"cpu.lp": ([day + 10 * i for i in range(8640)], wave(8640), b"cpu", b"usage"),
             "business.lp": ([day + 86_400 - 3600 * (1440 - i) for i in range(1440)], wave(24), b"shop", b"orders")}
    for name, (times, value, series, field) in files.items():
        (tmp_path / name).write_bytes(samples(times if timed else [None] * len(times), value, series=series,
                                              field=field))
    report, stderr = replay_report(tmp_path, "--report-series", "*", files=[tmp_path / name for name in files])
    assert "report: 2 series plotted" in stderr, stderr
    with Browser(width=1100, height=1100) as browser:
        canvases = open_rendered(browser, report, 2)
        check_page(browser)
        browser.screenshot(tmp_path / "report.png")
        assert len(canvases) == 4, canvases
        plots = browser.evaluate(X_RANGES_JS)
        lines = [c for c in browser.evaluate(LINE_COLUMNS_JS) if c[1]]  # the value plots
    assert len(plots) == 4 and len({p[0] for p in plots}) == 2, plots  # a range per series, for both its plots
    for _, start, end, first, last in plots:  # each drawn over its own span (Bokeh pads it by 10 %)
        assert start <= first < last <= end and end - start < 1.2 * (last - first), plots
    assert len(lines) == 2 and all(columns > 0.5 * width for width, columns in lines), lines


def _explained(path: Path, suffix: str, band: bool) -> Path:
    """A hand-written scored recording, as riverguard with ``explain`` would write it (suffix ``suffix``).

    One series, 600 samples of a slow wave; the band is left out for the first 30 (warm-up) and is
    +-3 around the expected value; three values jump out of it and are flagged.
    """
    lines = []
    for i in range(600):
        expected = 50 + 10 * ((i % 200) / 100 - 1) ** 2
        value = expected + ((i * 7919) % 13 - 6) / 4
        out = i in (250, 400, 401)
        if out:
            value += 15
        fields = f"v={value:.3f},v{suffix}_score={0.97 if out else 0.05},v{suffix}={'true' if out else 'false'}"
        if band and i >= 30:
            fields += f",v{suffix}_expected={expected:.3f},v{suffix}_lower={expected - 3:.3f},v{suffix}_upper={expected + 3:.3f}"
            if out:
                fields += f',v{suffix}_reason="spike"'
        lines.append(f"svc,host=a {fields} {1_764_288_000_000_000_000 + i * 10_000_000_000}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_band_fields_in_the_output_are_drawn_as_a_band(chromium, tmp_path: Path) -> None:
    """F<flag_suffix>_lower/_upper (what [output] explain writes), with configured suffixes: the
    input is already scored, so riverguard passes it through and the report draws what it carries."""
    config = tmp_path / "rg.toml"
    config.write_text('[output]\nscore_suffix = "_outlier_score"\nflag_suffix = "_outlier"\n', encoding="utf-8")
    found = {}
    for band in (True, False):
        tmp = tmp_path / ("band" if band else "plain")
        tmp.mkdir()
        report, stderr = replay_report(tmp, config=config, files=[_explained(tmp / "in.lp", "_outlier", band)])
        assert "report: 1 series plotted" in stderr
        assert ('"name":"VArea"' in report.read_text(encoding="utf-8")) is band
        with Browser(width=1100, height=700) as browser:
            canvases = open_rendered(browser, report, 1)
            check_page(browser)
            browser.screenshot(tmp / "report.png")
            assert len(canvases) == 2, canvases
            assert browser.evaluate(FLAGGED_JS) == 3
            found[band] = max(c[3] for c in canvases)
    assert found[True] > 2000 and found[False] < 50, found


def test_a_metric_scope_score_is_drawn_and_matched_by_report_series(chromium, tmp_path: Path) -> None:
    """The README's "hosts" rule (scope = "metric": one hst model per cpu metric, writing anomaly_score and
    anomaly) on the demo: the replay's summary counted 132 anomalies in three series such as
    'cpu,cpu=cpu-total,host=web3 (metric)' (46 of them), but the report read only F_anomaly_score fields: "0 series plotted", "The output
    holds no scored field", and --report-series 'cpu*' matched nothing. Now each metric-level score is a
    series named as in the summary, drawn as its score with its flags marked, and a glob matches it."""
    config = tmp_path / "hosts.toml"
    config.write_text(readme_example("hosts"), encoding="utf-8")
    report, stderr = replay_report(tmp_path, "--report-top", "2", "--report-series", "cpu*",
                                   "--report-series", "cpu,cpu=cpu-total,host=web1", config=config)
    assert "report: 3 series plotted" in stderr, stderr
    assert [line for line in stderr.splitlines() if line.startswith("W! ")] == [  # a name ends with its field
        "W! [riverguard] --report-series 'cpu,cpu=cpu-total,host=web1' matched no scored series (a series is named"
        " 'measurement,tags field' or, a scope = \"metric\" rule's score, 'measurement,tags (metric)', as in the"
        " summary: 'cpu,cpu=cpu-total,host=web1 (metric)')"
    ], stderr
    top = re.findall(r"I! \[riverguard\] +(\d+)  (.+)", stderr)
    assert [name for _, name in top] == [f"cpu,cpu=cpu-total,host={h} (metric)" for h in ("web3", "web1", "web2")]
    anomalies = int(re.search(r"anomalies: (\d+)", stderr).group(1))  # type: ignore[union-attr]
    assert anomalies == sum(int(n) for n, _ in top) > 0
    page = report.read_text(encoding="utf-8")
    titles = re.findall(r'<div class="series-title" id="s\d+">([^&]+) &mdash; [\d,]+ samples, (\d+) flagged', page)
    assert titles == [(name, n) for n, name in top]  # the top 2, then the one 'cpu*' adds
    assert "nothing to draw" not in page and "(metric) is the one score" in page
    with Browser(width=1280, height=1000) as browser:
        canvases = open_rendered(browser, report, 3, metric=3)
        check_page(browser)
        assert len(canvases) == 3, canvases  # one plot each: the score (a metric has no single value)
        shot = browser.screenshot(report.with_name("metric-report.png"))
        assert len(shot) > 20_000
        summary = browser.evaluate("[...document.querySelectorAll('#summary td')].map(td => td.textContent)")
        assert summary[1:3] == ["3", f"{anomalies:,}"]
        assert browser.evaluate(FLAGGED_JS) == anomalies  # every flag of the three drawn


@pytest.mark.parametrize("case", ["own-metric-fields", "a-field-named-like-them"])
def test_metric_level_names_are_read_only_where_riverguard_writes_them(tmp_path: Path, case: str) -> None:
    """The report read [output] metric_score_field and metric_flag_field (anomaly_score, anomaly) on every
    metric, though riverguard writes them only where a scope = "metric" rule takes the measurement.
    A user's own anomaly_score and anomaly fields, passed through, were drawn as 'm,host=a (metric)' first:
    2 series with 8 flags, the page saying 9 anomalies while the replay said 1. With score_suffix = "_score",
    a field rule's score of a field named "anomaly" (anomaly_score) was taken for the metric-level one: the
    field's series was dropped (0 series plotted) and --report-series '*' drew a made-up '(metric)' one."""
    rng = random.Random(5)
    lines, config, extra = [], None, []
    for i in range(400):
        value = 10 + rng.gauss(0, 1) + (50 if i == 300 else 0)
        ts = 1_700_000_000_000_000_000 + i * 10**10
        if case == "own-metric-fields":
            lines.append(f"m,host=a v={value:.3f},anomaly_score={rng.random():.3f},anomaly={str(i % 50 == 0).lower()}"
                         f" {ts}\n")
        else:
            lines.append(f"m,host=a anomaly={value:.3f} {ts}\n")
    if case == "a-field-named-like-them":
        config = tmp_path / "sfx.toml"
        config.write_text('[output]\nscore_suffix = "_score"\n\n[[rule]]\nname = "z"\nmeasurement = "m"\n'
                          'detector = "zscore"\n', encoding="utf-8")
        extra = ["--report-series", "*"]
    data = tmp_path / "in.lp"
    data.write_text("".join(lines), encoding="utf-8")
    report, stderr = replay_report(tmp_path, *extra, files=[data], config=config)
    field = "v" if case == "own-metric-fields" else "anomaly"
    anomalies = int(re.search(r"anomalies: (\d+)", stderr).group(1))  # type: ignore[union-attr]
    assert anomalies >= 1 and "report: 1 series plotted" in stderr, stderr
    page = report.read_text(encoding="utf-8")
    titles = re.findall(r'<div class="series-title" id="s\d+">([^&]+) &mdash; [\d,]+ samples, (\d+) flagged', page)
    assert titles == [(f"m,host=a {field}", str(anomalies))], titles
    summary = re.findall(r'<td class="n">([\d,]+)</td>', page.split('id="top-series"', 1)[0])
    assert summary[2] == str(anomalies) and "(metric)" not in page, summary


def test_the_report_reads_a_nul_after_a_space_as_the_codec_reads_it() -> None:
    """The report cut a plain line at its spaces unless it held a quote, a backslash or a tab, but not a NUL,
    which InfluxDB (and the codec) skip after a space as a tab: in ``m \\x00v=1,v_anomaly_score=0.5`` it read
    a field ``\\x00v``, so the score named no field and the metric was not drawn, and ``v=1 \\x005`` was no
    line at all (``int()`` refused it). ``replay`` refuses input
    with a NUL, so no report showed it; what ``run`` writes for such lines, fed in, is read as a tab's."""
    from riverguard.report import Collector

    for gap in (b"\t", b"\x00"):
        collector = Collector("_anomaly_score", "_anomaly")
        collector.feed(b"m %sv=1,v_anomaly_score=0.5,v_anomaly=false 5\n" % gap)
        collector.feed(b"m v=2,v_anomaly_score=0.6,v_anomaly=true %s6\n" % gap)
        assert list(collector.series) == ["m v"], gap
        assert list(collector.series["m v"].times) == [5, 6] and collector.anomalies == 1, gap


def test_the_bytes_a_metric_line_starts_with_and_the_codec_skips_are_skipped() -> None:
    """``run`` and ``replay`` write a line back with the spaces, tabs and NULs it started with (InfluxDB skips
    them, and so does the codec): the report took them as the measurement's (``\tm v``), did not draw a
    line starting with a space, and counted a comment after one as a metric."""
    from riverguard.report import Collector

    collector = Collector("_anomaly_score", "_anomaly")
    collector.feed(b" m v=1,v_anomaly_score=0.5,v_anomaly=false 5\n\tm v=2,v_anomaly_score=0.6,v_anomaly=true 6\n"
                   b"\x00 m v=3,v_anomaly_score=0.1,v_anomaly=false 7\n # c\n\t#m v=1\n")
    assert list(collector.series) == ["m v"]
    assert list(collector.series["m v"].times) == [5, 6, 7] and collector.anomalies == 1
    assert collector.metrics == 3


def test_a_million_points_are_downsampled_but_every_flag_is_kept() -> None:
    """In process: one series of 1 000 000 samples with 700 flags (some adjacent) and extremes."""
    import numpy as np

    from riverguard.report import BUCKETS, Collector, prepare

    n = 1_000_000
    rng = np.random.default_rng(7)
    collector = Collector("_anomaly_score", "_anomaly")
    flagged = set(rng.choice(n, 600, replace=False).tolist()) | set(range(5000, 5100))
    values = rng.normal(size=n)
    values[123_457], values[765_433] = 40.0, -35.0
    values = values.tolist()
    chunk = []
    for i in range(n):
        flag = i in flagged
        chunk.append(b"m v=%r,v_anomaly_score=%s,v_anomaly=%s %d\n"
                     % (values[i], b"0.9" if flag else b"0.1", b"true" if flag else b"false", i * 1_000_000))
        if len(chunk) == 50_000:
            collector.feed(b"".join(chunk))
            chunk = []
    drawn = prepare(collector.series["m v"], use_time=True)
    assert len(drawn.x) <= 2 * BUCKETS and len(drawn.score_x) <= 2 * BUCKETS
    assert len(drawn.flag_x) == len(flagged) == 700
    assert drawn.y.max() == 40.0 and drawn.y.min() == -35.0  # a bucket's extremes are kept
    times = drawn.flag_x.astype("datetime64[ms]").astype(np.int64)
    assert sorted(times.tolist()) == [i for i in sorted(flagged)]  # at their own times (1 ms apart)


def test_the_default_top_plots_the_12_most_flagged_series(tmp_path: Path) -> None:
    """With more series flagged than ``--report-top``'s default (the demo flags 7), the report plots the 12
    with the most flags, most first, lists those 12 in its table of top series, and leaves the others out.
    16 series of bounded noise; host hK gets K + 1 spikes, each larger than the one before."""
    hosts = tuple(b"h%02d" % k for k in range(16))

    def value(i: int, host: bytes, _gauss: object) -> float:
        j = (i - 1000) // 150  # from sample 1 000, one spike every 150 samples
        spike = i >= 1000 and (i - 1000) % 150 == 0 and j <= int(host[1:])
        return 100.0 + (i * 7919 % 13) / 10 + (60.0 + 30.0 * j if spike else 0.0)

    data = tmp_path / "many.lp"
    times = [1_700_000_000 + 300 * i for i in range(3500)]
    data.write_bytes(samples(times, value, hosts=hosts, series=b"svc", field=b"latency"))
    report, stderr = replay_report(tmp_path, files=[data])
    flags: Counter[str] = Counter()  # per series, the flags in what the replay wrote
    for line in report.with_name("scored.lp").read_text(encoding="utf-8").splitlines():
        flags.update(f"{line.split(' ', 1)[0]} {field}" for field in re.findall(r"[ ,](\w+)_anomaly=true", line))
    most = sorted(flags, key=lambda key: (-flags[key], key))
    assert len(most) > 12, flags
    assert "report: 12 series plotted" in stderr
    page = report.read_text(encoding="utf-8")
    titles = re.findall(r'<div class="series-title" id="s\d+">([^&]+) &mdash; [\d,]+ samples, (\d+) flagged', page)
    assert titles == [(key, str(flags[key])) for key in most[:12]]
    table = page.split('id="top-series"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'<a href="#s\d+">([^<]+)</a>', table) == most[:12] and table.count("<tr>") == 1 + 12


def test_report_series_adds_matching_series_to_the_top(tmp_path: Path) -> None:
    report, stderr = replay_report(tmp_path, "--report-top", "1", "--report-series", "http,*",
                                   "--report-series", "mem,host=web3 used")
    assert "report: 5 series plotted" in stderr  # the top one, the 3 http series, mem web3 used
    titles = re.findall(r'<div class="series-title" id="s\d+">([^&]+) &mdash;', report.read_text(encoding="utf-8"))
    assert titles[1:] == ["http,host=web1 requests", "http,host=web2 requests", "http,host=web3 requests",
                          "mem,host=web3 used"]


def test_without_the_extra_a_clear_message_and_exit_2(tmp_path: Path) -> None:
    """As if bokeh were not installed: a package of that name that fails to import shadows it."""
    fake = tmp_path / "site" / "bokeh"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("No module named \'bokeh\'")\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    result = run_cli(["replay", "--report", str(tmp_path / "r.html"), str(DEMO)], env=env, timeout=120)
    assert result.returncode == 2
    # Bokeh alone, with its own pip (PyPI's "riverguard" is another project; the checkout again would compile it)
    pip = Path(sys.executable).with_name("pip")
    assert result.stderr.decode() == (
        f"E! [riverguard] --report needs the optional report extra (Bokeh): {pip} install 'bokeh>=3.4'\n"
    )
    assert result.stdout == b"" and not (tmp_path / "r.html").exists()  # refused before any work


def test_bad_report_options_are_usage_errors(tmp_path: Path) -> None:
    data = tmp_path / "in.lp"
    data.write_text("m v=1 1\n", encoding="utf-8")
    result = run_cli(["replay", "--report", str(tmp_path / "r.html"), "--report-top", "-3", str(data)])
    assert result.returncode == 2 and b"--report-top" in result.stderr and b"Traceback" not in result.stderr
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["missing-folder", "folder", "input"])
def test_a_report_path_that_cannot_be_written_is_refused_before_the_replay(tmp_path: Path, where: str) -> None:
    """As --output is: a missing folder replayed everything, then failed with exit 1; a folder the same; the
    input file itself was replaced by the report. Now refused up front, exit 2, nothing written."""
    data = tmp_path / "in.lp"
    data.write_text("m v=1 1\n", encoding="utf-8")
    report, message = {
        "missing-folder": (tmp_path / "no" / "such" / "r.html", f"the folder {tmp_path / 'no' / 'such'} does not exist"),
        "folder": (tmp_path, "is a folder: give a file name"),
        "input": (data, f"is the input file {data}: refusing to overwrite what is being read"),
    }[where]
    result = run_cli(["replay", "--report", str(report), "-o", str(tmp_path / "out.lp"), str(data)], timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.decode().startswith(f"E! [riverguard] --report {report}") and message in result.stderr.decode()
    assert result.stderr.count(b"\n") == 1, result.stderr  # no replay, no summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.lp"] and data.read_text() == "m v=1 1\n"


def test_a_report_series_glob_that_matches_nothing_is_warned_about(tmp_path: Path) -> None:
    """A --report-series glob that names no series (here a tag left out: the demo's cpu series carry
    cpu=cpu-total) drew nothing, without a word. One W! line at the end names every such glob."""
    report, stderr = replay_report(tmp_path, "--report-top", "1", "--report-series", "cpu,host=web1 usage_user",
                                   "--report-series", "http,*", "--report-series", "disk,*")
    assert "report: 4 series plotted" in stderr  # the top one and the 3 http series
    warnings = [line for line in stderr.splitlines() if line.startswith("W! ")]
    assert warnings == [
        "W! [riverguard] --report-series 'cpu,host=web1 usage_user', 'disk,*' matched no scored series"
        " (a series is named 'measurement,tags field', as in the summary: 'cpu,cpu=cpu-total,host=web1 usage_idle')"
    ], stderr
    assert stderr.splitlines()[-1] == warnings[0]


def test_without_timestamps_the_axis_is_the_metric_number(tmp_path: Path) -> None:
    data = tmp_path / "plain.lp"
    data.write_text("".join(f"m v={i % 7}\n" for i in range(300)) + "m v=900\n", encoding="utf-8")
    report, _ = replay_report(tmp_path, files=[data])
    page = report.read_text(encoding="utf-8")
    assert "the x axis is the metric&#x27;s number" in page
    assert '"name":"DatetimeAxis"' not in page


def test_string_values_and_an_open_quote_do_not_hide_metrics_from_the_report(tmp_path: Path) -> None:
    """The report cut the output into metrics by counting quotes, ``\\"`` taken for an escaped quote: a
    string value ending in an escaped backslash (``path="C:\\\\temp\\\\"``) joined each of its metrics to the
    next one, and one bad line with an unterminated quote (passed through unchanged) joined every metric
    after it into one. The report showed 600 metrics of 1 200 and one series of two at half its samples,
    or, after the open quote, 1 metric and no series at all, while the replay scored them all."""
    def value(i: int, _host: bytes, gauss) -> float:  # type: ignore[no-untyped-def]
        return 10.0 + gauss(1.0) + (40.0 if i in (450, 520) else 0.0)

    times = [1_700_000_000 + 10 * i for i in range(600)]
    plain = samples(times, value, series=b"dev", field=b"v", hosts=(b"a", b"b")).splitlines(keepends=True)
    quoted = b"".join(line.replace(b" v=", b' path="C:\\\\temp\\\\",v=') if b"host=a" in line else line
                      for line in plain)
    cases = {
        "escaped-backslash": quoted,
        "open-quote": b'dev,host=c note="oops 1\n' + b"".join(plain),
        "multi-line": b'dev,host=c note="two\nlines",v=1 1\n' + b"".join(plain),
        # a tab after the space before the fields (skipped, as InfluxDB skips it): the report read a field "\tv"
        "tab": b"".join(line.replace(b" v=", b" \tv=") if b"host=a" in line else line for line in plain),
    }
    for name, data in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "in.lp").write_bytes(data)
        report, stderr = replay_report(folder, files=[folder / "in.lp"])
        metrics = int(re.search(r"metrics: (\d+)", stderr).group(1))  # type: ignore[union-attr]
        anomalies = int(re.search(r"anomalies: (\d+)", stderr).group(1))  # type: ignore[union-attr]
        assert metrics == (1200 if name in ("escaped-backslash", "tab") else 1201), stderr
        page = report.read_text(encoding="utf-8")
        summary = re.findall(r'<td class="n">([\d,]+)</td>', page.split('id="top-series"', 1)[0])
        assert int(summary[0].replace(",", "")) == metrics, (name, summary)
        assert int(summary[2]) == anomalies > 0, (name, summary)
        titles = re.findall(r'<div class="series-title" id="s\d+">([^&]+) &mdash; ([\d,]+) samples', page)
        assert sorted(titles) == [("dev,host=a v", "600"), ("dev,host=b v", "600")], (name, titles)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
