"""The HTML report of a 1 M-metric replay: its cost, size and time to open (``make bench`` does not run it).

    python -m tests.benchmarks.bench_report [--metrics 1000000] [--hosts 10] [--repeat 2] [--explain]

A seeded Telegraf-like recording (bench_stream: cpu, mem and disk metrics of
``hosts`` hosts, 7.7 numeric fields per metric) is replayed by the real
``riverguard replay`` with and without ``--report``, alternately (the machine
is shared: the ratio of the two is the figure, not either time alone). The
report is then opened in headless Chromium, timed until every plot's canvas
is painted. With plotly installed, the same drawn data (the same series,
downsampled the same way) is also written as a Plotly page and opened the
same way: the comparison behind the choice of Bokeh (docs/design.md).
With ``--explain``, every run is made twice, alternately: without and with
``[output] explain = true`` (the report then also draws the band).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .bench_stream import Stream

ROOT = Path(__file__).resolve().parents[2]
RIVERGUARD = str(Path(sys.executable).with_name("riverguard"))


def _recording(path: Path, metrics: int, hosts: int) -> int:
    stream = Stream(hosts=hosts)
    rounds = -(-metrics // stream.metrics_per_round)
    with open(path, "wb") as f:
        for _ in range(rounds):
            f.write(b"".join(stream.next_round()))
    return rounds * stream.metrics_per_round


def _timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([RIVERGUARD, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _open_time(path: Path, plots: int) -> float:
    sys.path.insert(0, str(ROOT / "tests"))
    from browser import Browser, open_rendered

    with Browser(width=1280, height=1000) as browser:
        started = time.perf_counter()
        open_rendered(browser, path, plots, timeout=300)
        elapsed = time.perf_counter() - started
        errors = browser.errors()
    if errors:
        raise SystemExit(f"{path}: console errors: {errors}")
    return elapsed


def _plotly_page(scored: Path, out: Path, top: int) -> tuple[float, int]:
    """The same series, downsampled the same way, as a Plotly page (value over score, shared x)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from riverguard.report import Collector, prepare

    collector = Collector("_anomaly_score", "_anomaly")
    with open(scored, "rb") as f:
        rest = b""
        while chunk := f.read(1 << 22):
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            collector.feed(chunk[:cut])
            rest = chunk[cut:]
    started = time.perf_counter()
    parts = ['<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>']
    for i, series in enumerate(collector.top(top)):
        d = prepare(series, use_time=True)
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.03)
        ms = lambda x: x.astype("datetime64[ms]").astype("int64").astype(float)  # noqa: E731
        fig.add_trace(go.Scatter(x=ms(d.x), y=d.y, mode="lines", name="value"), 1, 1)
        fig.add_trace(go.Scatter(x=ms(d.flag_x), y=d.flag_y, mode="markers", name="flagged"), 1, 1)
        fig.add_trace(go.Scatter(x=ms(d.score_x), y=d.score, mode="lines", name="score"), 2, 1)
        fig.update_layout(title=series.key, height=380, xaxis={"type": "date"}, xaxis2={"type": "date"})
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
    parts.append("</body></html>")
    out.write_text("".join(parts), encoding="utf-8")
    return time.perf_counter() - started, len(collector.top(top))


def _plotly_open_time(path: Path, plots: int) -> float:
    sys.path.insert(0, str(ROOT / "tests"))
    from browser import Browser

    js = ("[...document.querySelectorAll('.plotly-graph-div path.js-line')]"
          ".filter(p => (p.getAttribute('d') || '').length > 100).length")
    with Browser(width=1280, height=1000) as browser:
        started = time.perf_counter()
        browser.open(path.resolve().as_uri())
        while browser.evaluate(js) < 2 * plots:
            time.sleep(0.05)
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_report", description=__doc__.split("\n")[0])
    parser.add_argument("--metrics", type=int, default=1_000_000)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs of each (default: 2)")
    parser.add_argument("--explain", action="store_true", help="also with [output] explain = true, alternately")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="riverguard-bench-report-") as tmp:
        folder = Path(tmp)
        recording = folder / "in.lp"
        metrics = _recording(recording, args.metrics, args.hosts)
        print(f"recording: {metrics:,} metrics, {recording.stat().st_size / 1e6:.0f} MB")
        explained = folder / "explain.toml"
        explained.write_text('[output]\nexplain = true\n\n[[rule]]\nname = "all"\n')
        modes = {"explain off": []}
        if args.explain:
            modes["explain on"] = ["--config", str(explained)]
        plain: dict[str, list[float]] = {mode: [] for mode in modes}
        report: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.repeat):
            for mode, config in modes.items():
                tag = mode.replace(" ", "-")
                plain[mode].append(_timed(["replay", *config, "-o", "/dev/null", str(recording)]))
                report[mode].append(_timed(["replay", *config, "--report", str(folder / f"report-{tag}.html"), "-o",
                                            str(folder / f"scored-{tag}.lp"), str(recording)]))
                print(f"  {mode}: replay {plain[mode][-1]:.1f} s, with --report {report[mode][-1]:.1f} s", flush=True)
        for mode in modes:
            tag = mode.replace(" ", "-")
            a, b = statistics.median(plain[mode]), statistics.median(report[mode])
            size = (folder / f"report-{tag}.html").stat().st_size
            scored = (folder / f"scored-{tag}.lp").stat().st_size
            print(f"{mode}: replay alone {a:.1f} s; with --report {b:.1f} s (x{b / a:.2f}, +{b - a:.1f} s); "
                  f"report {size / 1e6:.2f} MB; scored output {scored / 1e6:.0f} MB")
            opened = [_open_time(folder / f"report-{tag}.html", 12) for _ in range(args.repeat)]
            print(f"{mode}: Bokeh report opens (every plot painted) in {statistics.median(opened):.2f} s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in opened)})", flush=True)
        if args.explain:
            return 0
        try:
            import plotly  # noqa: F401
        except ImportError:
            print("plotly not installed: no comparison")
            return 0
        render, plots = _plotly_page(folder / "scored-explain-off.lp", folder / "plotly.html", 12)
        popened = [_plotly_open_time(folder / "plotly.html", plots) for _ in range(args.repeat)]
        print(f"the same {plots} series with Plotly: {(folder / 'plotly.html').stat().st_size / 1e6:.2f} MB, "
              f"rendered in {render:.2f} s, opens in {statistics.median(popened):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in popened)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
