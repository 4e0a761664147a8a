"""``riverguard replay --report report.html``: one self-contained HTML picture of a replay.

:class:`Collector` reads riverguard's scored output as it is written (so it
sees exactly what a user gets, fields added upstream included) and keeps, for
each scored series, its times, values, scores, the positions of its flags and,
where the output carries them, the band fields ``F<flag_suffix>_lower`` and
``F<flag_suffix>_upper`` (what ``[output] explain`` writes). :func:`write`
renders the summary and the chosen series with Bokeh (the optional
``report`` extra), every script inline: the page needs no network.

The metric-level score of a ``scope = "metric"`` rule (``[output]
metric_score_field`` and ``metric_flag_field``) is a series of its own,
named as the replay's summary names it (``cpu,host=a (metric)``); having no
single value, it is drawn as its score with the flagged points marked.

What is drawn is downsampled (per bucket of consecutive samples, the lowest
and the highest value at their own times), the flagged points never are: each
one is a marker at its own time and value.
"""

from __future__ import annotations

import fnmatch
import html
import math
import re
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import OutputConfig
from .engine import METRIC_FIELD, key_measurement, series_name
from .lineprotocol import LEAD, SKIPPED, ParseError, escape_key, metric_lines, raw_fields

__all__ = ["BUCKETS", "DEFAULT_TOP", "SAME_SPAN", "Collector", "MissingExtra", "SeriesData", "check_extra", "downsample",
           "same_span", "write"]

#: How many series, most anomalies first, are plotted when ``--report-top`` is not given (and listed at least).
DEFAULT_TOP = 12

#: Samples of a series drawn at most: 2 per bucket (its lowest and highest).
BUCKETS = 2000
_NO_TIME = -(1 << 63)
#: The band's fill (drawn at alpha 0.5): a green that no blend of the blue line, the red markers or
#: the orange score with the white background comes near (the browser test looks for it).
BAND_COLOR = "#a1d99b"
#: The value's line (the browser test looks for it too).
VALUE_COLOR = "#1f77b4"
#: Two plotted series share one x axis (zoom and pan together) when each one's span covers at least this
#: share of the other's (:func:`same_span`).
SAME_SPAN = 0.9


class MissingExtra(Exception):
    """The plotting library is not installed."""


def check_extra() -> None:
    """Raise :class:`MissingExtra` (with the command that fixes it) when Bokeh cannot be imported."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        from ._extras import install_command

        raise MissingExtra(f"--report needs the optional report extra (Bokeh): {install_command('report')}") from None


class SeriesData:
    """One scored series as the output showed it (a metric-level one: ``metric``, its values its scores)."""

    __slots__ = ("key", "metric", "times", "positions", "values", "scores", "flags", "lower", "upper")

    def __init__(self, key: str, metric: bool = False) -> None:
        self.key = key
        self.metric = metric
        self.times = array("q")  # event time (ns), _NO_TIME when the metric had none
        self.positions = array("q")  # the metric's number in the output (1-based)
        self.values = array("d")
        self.scores = array("d")
        self.flags = array("q")  # indexes (into the arrays above) of the flagged samples
        self.lower: array[float] | None = None  # the band, NaN where the output had none
        self.upper: array[float] | None = None

    @property
    def anomalies(self) -> int:
        return len(self.flags)


_PAIR = re.compile(rb"([^,=]+)=([^,]*)").findall
#: Bytes that keep a line from being cut at its spaces (:meth:`Collector._line`): a quote or a backslash (a
#: space in a string value, an escaped one), and what the codec skips after a space (a tab, a NUL).
_UNCUT = re.compile(rb'["\\' + "".join(SKIPPED).encode() + rb"]").search


def _number(raw: bytes) -> float:
    if raw[-1:] in (b"i", b"u"):
        raw = raw[:-1]
    return float(raw)


class Collector:
    """Reads scored line protocol (whole metrics per call) and keeps what the report draws.

    >>> c = Collector("_anomaly_score", "_anomaly", metric_scope_in=lambda measurement: measurement == b"cpu")
    >>> c.feed(b"cpu,host=a v=1,v_anomaly_score=0.1,v_anomaly=false 10\\n"
    ...        b"cpu,host=a v=9,v_anomaly_score=0.9,v_anomaly=true 20\\n")
    >>> s = c.series["cpu,host=a v"]
    >>> c.metrics, list(s.values), list(s.scores), list(s.flags), list(s.times)
    (2, [1.0, 9.0], [0.1, 0.9], [1], [10, 20])
    >>> c.feed(b"cpu,host=b u=1,w=2,anomaly_score=0.8,anomaly=true 30\\n")
    >>> s = c.series["cpu,host=b (metric)"]
    >>> s.metric, list(s.scores), list(s.flags), c.anomalies
    (True, [0.8], [0], 2)
    >>> c.feed(b"mem,host=b u=1,anomaly_score=0.8,anomaly=true 30\\n")  # no metric-level fields there: the user's own
    >>> sorted(c.series), c.anomalies
    (['cpu,host=a v', 'cpu,host=b (metric)'], 2)
    """

    def __init__(self, score_suffix: str, flag_suffix: str, time_unit: int = 1, *,
                 metric_score_field: str = OutputConfig.metric_score_field,
                 metric_flag_field: str = OutputConfig.metric_flag_field,
                 metric_scope_in: Callable[[bytes], bool] | None = None) -> None:
        self.time_unit = time_unit  # nanoseconds in one unit of the timestamps (replay --precision)
        self.score_suffix = score_suffix.encode()
        self.flag_suffix = flag_suffix.encode()
        # a scope = "metric" rule's fields, as the engine writes them (escaped), in the measurements (as written)
        # where it writes them (Engine.metric_scope_in; None: nowhere, and no line is searched for them):
        # elsewhere, fields of those names are the user's own (a field "anomaly" scored as "anomaly_score" by a
        # field rule, say)
        self.metric_scope_in = metric_scope_in
        self.metric_score = escape_key(metric_score_field)
        self.metric_flag = escape_key(metric_flag_field)
        self._metric_probe = None if metric_scope_in is None else self.metric_score + b"="
        self.lower_suffix = self.flag_suffix + b"_lower"
        self.upper_suffix = self.flag_suffix + b"_upper"
        self.series: dict[str, SeriesData] = {}
        self._index: dict[bytes, SeriesData] = {}  # the same, by raw name
        self.metrics = 0
        self.anomalies = 0
        self.timed = 0  # scored metrics with a timestamp
        self.untimed = 0  # and without

    def feed(self, data: bytes) -> None:
        """Take whole output metrics (newline-terminated).

        They are cut as the replay cut its input (:func:`~riverguard.lineprotocol.metric_lines`):
        a string value may hold a newline, and a quote left open on a bad line that was passed
        through must not swallow the metrics after it.
        """
        score_suffix, metric_probe = self.score_suffix, self._metric_probe
        for line in metric_lines(data):
            line = line.lstrip(LEAD)  # as written back: with the bytes before it the codec skips
            if not line or line[0] == 0x23:  # '#'
                continue
            self.metrics += 1
            if score_suffix in line or (metric_probe is not None and metric_probe in line):
                try:
                    self._line(line)
                except (ParseError, ValueError):
                    pass  # not ours to judge: the replay passed it through

    def _line(self, line: bytes) -> None:
        parts = line.split(b" ")
        if len(parts) == 3 and _UNCUT(line) is None:  # the common, plain metric
            head = parts[0]
            fields = dict(_PAIR(parts[1]))
            ts: int | None = int(parts[2])
        else:
            head, fields, ts = raw_fields(line)
        score_suffix, flag_suffix = self.score_suffix, self.flag_suffix
        cut = len(score_suffix)
        band = self.lower_suffix in line or self.upper_suffix in line
        index = self._index
        found = False
        scope_in = self.metric_scope_in
        metric_score = self.metric_score if scope_in is not None and self.metric_score in fields and scope_in(
            key_measurement(head)) else None
        for key in [k for k in fields if k.endswith(score_suffix)]:
            base = key[:-cut]
            value = fields.get(base)
            if value is None or not base or key == metric_score:  # (the metric-level name may end with it)
                continue
            number = _number(value)
            score = float(fields[key])
            if not (math.isfinite(number) and math.isfinite(score)):
                continue
            name = head + b" " + base
            series = index.get(name) or self._series(name)
            if band or series.lower is not None:
                self._band(series, fields.get(base + self.lower_suffix), fields.get(base + self.upper_suffix))
            self._sample(series, ts, number, score, fields.get(base + flag_suffix))
            found = True
        flag = None if metric_score is None else fields.get(self.metric_flag)
        if flag is not None:  # riverguard writes both or neither
            try:
                score = float(fields[metric_score])
            except ValueError:  # (not riverguard's: a string, an integer) not drawn, the fields above are
                score = math.nan
            if math.isfinite(score):
                self._sample(self._series(head + b" " + METRIC_FIELD, True), ts, score, score, flag)
                found = True
        if found:
            if ts is None:
                self.untimed += 1
            else:
                self.timed += 1

    def _series(self, key: bytes, metric: bool = False) -> SeriesData:
        """The series of ``key`` (measurement and tags as written, a space, the field key or
        :data:`~riverguard.engine.METRIC_FIELD`), made at its first sample."""
        series = self._index.get(key)
        if series is None:
            name = series_name(key)
            series = self._index[key] = self.series[name] = SeriesData(name, metric)
        return series

    def _sample(self, series: SeriesData, ts: int | None, value: float, score: float, flag: bytes | None) -> None:
        if flag == b"true":
            series.flags.append(len(series.values))
            self.anomalies += 1
        series.times.append(_NO_TIME if ts is None else ts * self.time_unit)
        series.positions.append(self.metrics)
        series.values.append(value)
        series.scores.append(score)

    @staticmethod
    def _band(series: SeriesData, lower: bytes | None, upper: bytes | None) -> None:
        if series.lower is None or series.upper is None:
            n = len(series.values)
            series.lower = array("d", [math.nan]) * n
            series.upper = array("d", [math.nan]) * n
        series.lower.append(_number(lower) if lower is not None else math.nan)
        series.upper.append(_number(upper) if upper is not None else math.nan)

    def top(self, n: int) -> list[SeriesData]:
        """The ``n`` series with the most anomalies (at least one), most first, then by name."""
        ranked = sorted((s for s in self.series.values() if s.flags), key=lambda s: (-s.anomalies, s.key))
        return ranked[:n]

    def matching(self, globs: list[str]) -> list[SeriesData]:
        """Series whose name (``measurement,tags field``; ``measurement,tags (metric)``) matches one of ``globs``,
        by name."""
        if not globs:
            return []
        match = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs)).match
        return [self.series[k] for k in sorted(self.series) if match(k)]

    def unmatched(self, globs: list[str]) -> list[str]:
        """The globs among ``globs`` that match no series' name (each once, in their order)."""
        matches = {g: re.compile(fnmatch.translate(g)).match for g in dict.fromkeys(globs)}
        return [g for g, match in matches.items() if not any(match(k) for k in self.series)]


@dataclass
class Drawn:
    """What one series' plot draws (numpy arrays)."""

    x: Any
    y: Any
    score_x: Any
    score: Any
    flag_x: Any
    flag_y: Any
    flag_score: Any
    band_x: Any = None
    band_lower: Any = None
    band_upper: Any = None
    span: tuple[int, int] | None = None  # the first and last x (ms or metric number), None: nothing drawn


def same_span(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    """Whether the spans ``a`` and ``b`` (first and last x) overlap on at least :data:`SAME_SPAN` of each.

    >>> same_span((0, 100), (5, 100)), same_span((0, 100), (0, 80)), same_span((0, 1), (0, 60))
    (True, False, False)
    >>> same_span((7, 7), (7, 7)), same_span((7, 7), (8, 8)), same_span(None, None)
    (True, False, False)
    """
    if a is None or b is None or a[0] > b[1] or b[0] > a[1]:
        return False
    overlap = min(a[1], b[1]) - max(a[0], b[0])
    return overlap >= SAME_SPAN * (a[1] - a[0]) and overlap >= SAME_SPAN * (b[1] - b[0])


def downsample(x: Any, y: Any, buckets: int = BUCKETS) -> tuple[Any, Any]:
    """At most ``2 * buckets`` points of ``(x, y)``: each bucket's lowest and highest, at their own x.

    >>> import numpy as np
    >>> x, y = downsample(np.arange(10), np.array([0, 5, 1, 1, 1, 1, -3, 1, 1, 1.0]), buckets=2)
    >>> x.tolist(), y.tolist()
    ([0, 1, 5, 6], [0.0, 5.0, 1.0, -3.0])
    """
    import numpy as np

    n = len(y)
    if n <= 2 * buckets:
        return x, y
    size = -(-n // buckets)
    rows = -(-n // size)
    padded = np.full(rows * size, np.nan)
    padded[:n] = y
    grid = padded.reshape(rows, size)
    base = np.arange(rows) * size
    lows = base + np.nanargmin(grid, axis=1)
    highs = base + np.nanargmax(grid, axis=1)
    keep = np.unique(np.concatenate([lows, highs]))
    return x[keep], y[keep]


def _band(x: Any, lower: Any, upper: Any, buckets: int = BUCKETS) -> tuple[Any, Any, Any]:
    """The band per bucket: its lowest lower and highest upper bound (NaN where it had none)."""
    import numpy as np

    n = len(x)
    if n <= 2 * buckets:
        return x, lower, upper
    size = -(-n // buckets)
    rows = -(-n // size)
    lo = np.full(rows * size, np.nan)
    hi = np.full(rows * size, np.nan)
    lo[:n], hi[:n] = lower, upper
    starts = x[::size]
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN buckets (warm-up) stay NaN
            return starts, np.nanmin(lo.reshape(rows, size), axis=1), np.nanmax(hi.reshape(rows, size), axis=1)


def prepare(series: SeriesData, use_time: bool, buckets: int = BUCKETS) -> Drawn:
    """The arrays drawn for ``series``: downsampled lines, every flagged point, the band if any."""
    import numpy as np

    times = np.frombuffer(series.times, dtype=np.int64)
    keep = times != _NO_TIME if use_time else np.ones(len(times), dtype=bool)
    if use_time:
        x_all = times.astype("datetime64[ns]").astype("datetime64[ms]")
    else:
        x_all = np.frombuffer(series.positions, dtype=np.int64)
    values = np.frombuffer(series.values)
    scores = np.frombuffer(series.scores)
    flagged = np.zeros(len(values), dtype=bool)
    flagged[np.frombuffer(series.flags, dtype=np.int64)] = True
    x_all, values, scores, flagged = x_all[keep], values[keep], scores[keep], flagged[keep]
    x, y = downsample(x_all, values, buckets)
    score_x, score = downsample(x_all, scores, buckets)
    drawn = Drawn(x, y, score_x, score, x_all[flagged], values[flagged], scores[flagged])
    if len(x_all):
        ends = x_all.astype(np.int64)
        drawn.span = (int(ends.min()), int(ends.max()))
    if series.lower is not None and series.upper is not None:
        lower = np.frombuffer(series.lower)[keep]
        upper = np.frombuffer(series.upper)[keep]
        drawn.band_x, drawn.band_lower, drawn.band_upper = _band(x_all, lower, upper, buckets)
    return drawn


# -- rendering -----------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 6px; }
.meta { color: #666; font-size: 13px; margin-bottom: 14px; }
table.summary { border-collapse: collapse; font-size: 14px; margin: 8px 0 4px; }
table.summary td, table.summary th { padding: 3px 14px 3px 0; text-align: left; }
table.summary td.n { text-align: right; font-variant-numeric: tabular-nums; }
.series-title { font-family: ui-monospace, monospace; font-size: 13px; margin: 22px 0 2px; }
.note { color: #666; font-size: 12px; }
"""


def _summary_html(collector: Collector, shown: list[SeriesData], title: str, sources: list[str],
                  top_listed: int, notes: list[str]) -> str:
    esc = html.escape
    rows = [
        ("metrics", collector.metrics),
        ("scored series", len(collector.series)),
        ("anomalies (flags set)", collector.anomalies),
        ("series with anomalies", sum(1 for s in collector.series.values() if s.flags)),
    ]
    parts = [
        f"<h1>{esc(title)}</h1>",
        f'<div class="meta">{esc(", ".join(sources))}</div>',
        '<table class="summary" id="summary">',
        *(f'<tr><th>{esc(k)}</th><td class="n">{v:,}</td></tr>' for k, v in rows),
        "</table>",
    ]
    top = collector.top(top_listed)
    if top:
        parts.append("<h2>Top series by anomalies</h2>")
        parts.append('<table class="summary" id="top-series"><tr><th>anomalies</th><th>samples</th><th>series</th></tr>')
        parts.extend(
            f'<tr><td class="n">{s.anomalies:,}</td><td class="n">{len(s.values):,}</td>'
            f'<td><a href="#s{i}">{esc(s.key)}</a></td></tr>' if s in shown else
            f'<tr><td class="n">{s.anomalies:,}</td><td class="n">{len(s.values):,}</td><td>{esc(s.key)}</td></tr>'
            for i, s in ((shown.index(s) if s in shown else -1, s) for s in top)
        )
        parts.append("</table>")
    for note in notes:
        parts.append(f'<p class="note">{esc(note)}</p>')
    if shown:
        parts.append(
            f"<h2>{len(shown)} series</h2><p class=\"note\">Value (blue line; the green band is the range the "
            "detector would not have flagged, when the output carries it) with every flagged point marked "
            "in red, and the anomaly score beneath on the same axis. Each plot spans its own series; series "
            f"over the same span (each covering {SAME_SPAN:.0%} of the other) share the axis and zoom and pan "
            "together. Lines are downsampled to at most "
            f"{2 * BUCKETS:,} points per series (each bucket's lowest and highest); flagged points never are.</p>"
        )
        if any(s.metric for s in shown):
            parts.append(
                '<p class="note">A series named &hellip; (metric) is the one score of a scope = "metric" rule for the '
                "whole metric: it has no single value, and its plot is the score with the flagged points marked.</p>"
            )
    return "\n".join(parts)


_LEFT = 90  # px left of both plots of a series, so their time axes line up whatever the tick labels


def _plot(d: Drawn, series: SeriesData, use_time: bool, x_range: Any) -> Any:
    """The value plot (band, line, flagged points) over the score plot, on one x range; for a metric-level
    series (one score for the whole metric, no single value) only the score, flagged points marked."""
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, HoverTool, Range1d
    from bokeh.plotting import figure

    kind = "datetime" if use_time else "linear"
    shared = {} if x_range is None else {"x_range": x_range}
    score_range = {"y_range": Range1d(-0.03, 1.05)}
    main = figure(height=230, sizing_mode="stretch_width", x_axis_type=kind, min_border_left=_LEFT,
                  tools="xpan,xwheel_zoom,box_zoom,reset,save", active_scroll="xwheel_zoom",
                  toolbar_location="right", **shared, **(score_range if series.metric else {}))
    if series.metric:
        main.yaxis.axis_label = "metric score"
        main.line(d.score_x, d.score, line_color="#ff7f0e", line_width=1.0, legend_label="score")
        flag_y, tips = d.flag_score, [("score", "@score{0.000}")]
    else:
        main.yaxis.axis_label = "value"
        if d.band_x is not None:
            main.varea(x=d.band_x, y1=d.band_lower, y2=d.band_upper, fill_color=BAND_COLOR, fill_alpha=0.5,
                       legend_label="band (not flagged)")
        main.line(d.x, d.y, line_color=VALUE_COLOR, line_width=1.2, legend_label="value")
        flag_y, tips = d.flag_y, [("value", "@y"), ("score", "@score{0.000}")]
    flags = ColumnDataSource({"x": d.flag_x, "y": flag_y, "score": d.flag_score})
    marks = main.scatter("x", "y", source=flags, size=7, fill_color="#d62728", line_color="white",
                         legend_label=f"flagged ({series.anomalies:,})")
    where = [("time", "@x{%F %T}")] if use_time else [("metric", "@x")]
    hover = {"formatters": {"@x": "datetime"}} if use_time else {}
    main.add_tools(HoverTool(renderers=[marks], tooltips=[*tips, *where], **hover))
    _legend(main)
    if series.metric:
        _time_axis(main, use_time)
        return column(main, sizing_mode="stretch_width")
    main.xaxis.visible = False
    score = figure(height=120, sizing_mode="stretch_width", x_axis_type=kind, x_range=main.x_range, min_border_left=_LEFT,
                   tools="xpan,xwheel_zoom,reset", toolbar_location="right", **score_range)
    score.yaxis.axis_label = "score"
    score.line(d.score_x, d.score, line_color="#ff7f0e", line_width=1.0)
    score.scatter(d.flag_x, d.flag_score, size=4, fill_color="#d62728", line_color=None)
    _time_axis(score, use_time)
    return column(main, score, sizing_mode="stretch_width")


def _legend(plot: Any) -> None:
    """The legend above the plot, never over the data (a flag may sit in a corner)."""
    plot.add_layout(plot.legend[0], "above")
    plot.legend.location = "top_left"
    plot.legend.orientation = "horizontal"
    plot.legend.background_fill_alpha = 0.6
    plot.legend.label_text_font_size = "11px"


def _time_axis(plot: Any, use_time: bool) -> None:
    if use_time:
        from bokeh.models import DatetimeTickFormatter

        plot.xaxis.formatter = DatetimeTickFormatter(hours="%H:%M", days="%b %d", months="%b %Y")


def write(
    path: str | Path,
    collector: Collector,
    *,
    top: int = DEFAULT_TOP,
    globs: list[str] | None = None,
    sources: list[str] | None = None,
    buckets: int = BUCKETS,
) -> int:
    """Write the report to ``path``; return the number of series plotted."""
    from bokeh.document import Document
    from bokeh.embed import components
    from bokeh.embed.bundle import bundle_for_objs_and_resources
    from bokeh.resources import INLINE

    shown = collector.top(top)
    for s in collector.matching(globs or []):
        if s not in shown:
            shown.append(s)
    use_time = collector.timed > 0
    notes = []
    if use_time and collector.untimed:
        notes.append(f"{collector.untimed:,} scored metrics without a timestamp are not drawn.")
    if not use_time and collector.series:
        notes.append("No metric has a timestamp: the x axis is the metric's number in the output.")
    if not collector.series:
        notes.append("The output holds no scored field: nothing to draw.")
    elif not shown:
        notes.append("No series was flagged and none matched --report-series: nothing to draw.")

    plots: dict[str, Any] = {}
    axes: list[tuple[tuple[int, int] | None, Any]] = []  # per x range: the span of its first series, the range
    for i, series in enumerate(shown):
        drawn = prepare(series, use_time, buckets)
        x_range = next((shared for span, shared in axes if same_span(span, drawn.span)), None)
        plots[f"s{i}"] = _plot(drawn, series, use_time, x_range)
        if x_range is None:
            axes.append((drawn.span, plots[f"s{i}"].children[0].x_range))

    sections = []
    scripts = ""
    if plots:
        document = Document()
        with document.models.freeze():  # one recomputation of the model graph, not one per plot
            for plot in plots.values():
                document.add_root(plot)
        script, divs = components(plots)
        js, css = bundle_for_objs_and_resources(list(plots.values()), INLINE)
        scripts = css + "\n" + js + "\n" + script
        for i, series in enumerate(shown):
            sections.append(
                f'<div class="series-title" id="s{i}">{html.escape(series.key)} &mdash; '
                f"{len(series.values):,} samples, {series.anomalies:,} flagged</div>\n"
                f'<div class="plot">{divs[f"s{i}"]}</div>'
            )
    title = "riverguard report"
    page = "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head><body>",
        _summary_html(collector, shown, title, sources or [], max(top, DEFAULT_TOP), notes),
        *sections,
        scripts,
        "</body></html>",
    ])
    Path(path).write_text(page, encoding="utf-8")
    return len(shown)
