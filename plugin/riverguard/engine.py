"""The scoring engine: one detector per series, fields added to each metric.

A series is measurement + canonical (sorted) tag set + field key. The first
rule that matches a field decides its detector; the decision is made once per
series and kept with the series.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections import Counter
from collections.abc import Callable, Container
from types import ModuleType
from typing import Any

from . import _hotpath
from ._compiled import is_compiled
from ._hotpath import Series, checked_score, format_score
from .config import Config, Rule, duration_text
from .detectors import Detector
from .lineprotocol import Metric, ParseError, Record, escape_key, parse, timestamp_at, unescape
from .log import Log, RateLimit, iso_ns, plural
from .tally import Figures, Recent, RunTally

__all__ = [
    "ACCELERATED", "METRIC_FIELD", "MONITOR_MEASUREMENT", "Engine", "MetricSeries", "Series", "checked_score",
    "UNITS", "format_score", "key_measurement", "series_key", "series_name",
    "series_prefix",
]


#: riverguard's own health metrics (:mod:`riverguard.monitor`): never scored, also when fed back in, and their
#: timestamps (the wall clock) do not move the stream's clock.
MONITOR_MEASUREMENT = "riverguard"
_MONITOR = MONITOR_MEASUREMENT.encode()

#: Whether the hot path (:mod:`riverguard._hotpath`) runs compiled; False without a C compiler at
#: install time, or under RIVERGUARD_PURE_PYTHON=1. Both give the same bytes.
ACCELERATED = is_compiled(_hotpath)


def series_prefix(metric: Metric) -> bytes:
    """Measurement and canonical (sorted) tags: the series key without the field."""
    tags = metric.tags
    if len(tags) > 1:
        for i in range(1, len(tags)):
            if tags[i - 1] > tags[i]:
                tags = sorted(tags)
                break
    if not tags:
        return metric.measurement + b" "
    return b"%s,%s " % (metric.measurement, b",".join([k + b"=" + v for k, v in tags]))


def series_key(metric: Metric, field_key: bytes) -> bytes:
    """Measurement, sorted tags and field key, as one byte string (escaping kept).

    >>> from riverguard.lineprotocol import parse
    >>> series_key(parse(b"cpu,z=1,a=2 v=1"), b"v") == series_key(parse(b"cpu,a=2,z=1 v=1"), b"v")
    True
    """
    return series_prefix(metric) + field_key


#: The field key of a ``scope = "metric"`` model's series (its key: measurement, tags, a space and this):
#: no field key of a metric can hold a newline.
METRIC_FIELD = b"\n"


def series_name(skey: bytes) -> str:
    """A series key as text; a ``scope = "metric"`` model's key reads ``measurement,tags (metric)``.

    The name the replay's summary, ``replay --report`` and ``state inspect --series`` give a series.

    >>> series_name(b"cpu,host=a idle"), series_name(b"cpu,host=a \\n")
    ('cpu,host=a idle', 'cpu,host=a (metric)')
    """
    if skey.endswith(b" " + METRIC_FIELD):
        skey = skey[: -len(METRIC_FIELD)] + b"(metric)"
    return skey.decode("utf-8", "backslashreplace")


#: A series key's measurement and tags: up to the first space that no backslash escapes.
_KEY_PREFIX = re.compile(rb"(?:[^\\ ]|\\.)*", re.S)
#: A series key's measurement: up to the first comma or space that no backslash escapes.
_KEY_MEASUREMENT = re.compile(rb"(?:[^\\, ]|\\.)*", re.S)


def key_measurement(key: bytes) -> bytes:
    """The measurement (as written) of a series key, or of a metric's measurement and tags.

    >>> key_measurement(rb"my\\,cpu\\ x,host=a idle"), key_measurement(b"cpu")
    (b'my\\\\,cpu\\\\ x', b'cpu')
    """
    return _KEY_MEASUREMENT.match(key).group()  # type: ignore[union-attr]


def _split_key(key: bytes) -> tuple[bytes, bytes]:
    """A series key's measurement and tags (with the space after them), and its field key (b"" for none).

    >>> _split_key(rb"cpu,host=my\\ box idle"), _split_key(b"cpu,host=a \\n")
    ((b'cpu,host=my\\\\ box ', b'idle'), (b'cpu,host=a ', b'\\n'))
    """
    at = key.find(b" ")
    if at < 0 or key.find(b"\\", 0, at) >= 0:  # (an escaped space may come first)
        at = _KEY_PREFIX.match(key).end()  # type: ignore[union-attr]
        if at == len(key):
            return key, b""
    return key[: at + 1], key[at + 1 :]


def _none_plain(engine: Engine, buf: bytes, pos: int, out: list[bytes]) -> int:
    """:attr:`Engine.run_plain` where timestamps are not nanoseconds: no metric taken (all go to ``process``)."""
    return pos


#: The timestamps :meth:`Engine.check_units` looks at: the first ones of a stream that starts with no clock.
UNIT_SAMPLE = 16
#: Nanoseconds in one unit of the timestamps (``replay --precision``), and each unit's name.
UNITS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9}
_UNIT_NAMES = {"us": "microseconds", "ms": "milliseconds", "s": "seconds"}
#: Units a timestamp may have been written in by mistake, largest first, for that check.
_SMALLER_UNITS = ("s", "ms", "us")


def guess_unit(stamps: list[int], now: float | None = None) -> str | None:
    """The unit (``s``, ``ms``, ``us``) that every one of ``stamps`` (read as nanoseconds) was written in, by
    the look of them, or None. They look like it when each, read in that unit, is a date from 2001-09-09
    (10**9 seconds) to a year after ``now`` (the wall clock's seconds by default): as nanoseconds they are then
    all within 1970's first 1.8 seconds, 30 minutes or 21 days (in 2026), where no real data is, though
    nanosecond test data from later in 1970 is (1970-02-01 would read as 2054 in microseconds).

    >>> guess_unit([1_700_000_000, 1_700_000_010]), guess_unit([1_700_000_000_000]), guess_unit([1_700_000_000_000_000])
    ('s', 'ms', 'us')
    >>> guess_unit([1_700_000_000 * 10**9]), guess_unit([1_700_000_000, 5]), guess_unit([])
    (None, None, None)
    >>> guess_unit([31 * 86400 * 10**9]), guess_unit([2_000_000_000], now=1_900_000_000)  # 2054 in us; 2033 in s
    (None, None)
    """
    latest = int((time.time() if now is None else now) + 366 * 86400)  # seconds
    for unit in _SMALLER_UNITS:
        per_second = 10**9 // UNITS[unit]
        low, high = 10**9 * per_second, latest * per_second
        if stamps and all(low <= t < high for t in stamps):
            return unit
    return None


def _matcher(glob: str) -> Callable[[str], Any]:
    return re.compile(fnmatch.translate(glob)).match


def newest_on_time(times: list[int], now: int | None, ttl: int) -> int:
    """The latest of the timestamps ``times`` (ns), for the monitor's lag (:attr:`Engine.now`), leaving out
    those far ahead: more than ``ttl`` past both the stream's clock ``now`` (None: not known) and the newest
    kept before them (a host's clock a year ahead would otherwise hide the lag for good, live or after a
    restart, where ``times`` are the series' last timestamps)."""
    times = sorted(times)
    newest = times[0]
    for t in times[1:]:
        if now is not None and _hotpath.far_ahead(t, now, newest, ttl):
            break
        newest = t
    return newest


class _CompiledRule:
    __slots__ = ("rule", "measurement", "tags", "fields")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        # None stands for "*": it matches everything without a regex call.
        self.measurement = None if rule.measurement == "*" else _matcher(rule.measurement)
        self.tags = [(key, _matcher(glob)) for key, glob in rule.tags.items()]
        self.fields = None if rule.every_field else [_matcher(glob) for glob in rule.fields]

    def matches_metric(self, measurement: str, tags: dict[str, str]) -> bool:
        if self.measurement is not None and not self.measurement(measurement):
            return False
        for key, match in self.tags:
            value = tags.get(key)
            if value is None or not match(value):
                return False
        return True

    def matches_field(self, name: str) -> bool:
        if self.fields is None:
            return True
        for match in self.fields:
            if match(name):
                return True
        return False


class Engine:
    """Scores metrics and returns them with anomaly fields added.

    >>> from riverguard.config import default_config
    >>> from riverguard.lineprotocol import Splitter
    >>> engine = Engine(default_config())
    >>> records, _, _ = Splitter().split(b"cpu,host=a idle=97.5 1\\n")
    >>> engine.process(records[0])
    b'cpu,host=a idle=97.5,idle_anomaly_score=0.0,idle_anomaly=false 1\\n'
    """

    def __init__(
        self, config: Config, log: Log | None = None, *, hotpath: ModuleType = _hotpath, time_unit: int = 1,
        summary: bool = False,
    ) -> None:
        #: The per-field scoring loop: :mod:`riverguard._hotpath` (tests pass its uncompiled build).
        self._hot = hotpath
        #: Nanoseconds in one unit of the input's timestamps (``replay --precision``: 10**9 for seconds).
        #: The models see nanoseconds; the output keeps the timestamps as written.
        self.time_unit = time_unit
        #: Scores the plain metrics at the front of a buffer (:func:`riverguard._hotpath.run`), which reads
        #: timestamps as nanoseconds: in other units every metric goes through :meth:`process`.
        self.run_plain = hotpath.run if time_unit == 1 else _none_plain
        self.log = log or Log("error")
        #: Series by key, in the order they were created (each series' ``used`` stamp orders them by when
        #: they were last seen: :meth:`lru`). Moving a series to the end at each sample would leave a dead
        #: entry each time, and CPython would keep a table twice as large.
        self.series: dict[bytes, Series] = {}
        #: How many of :attr:`series` hold no model (no rule scores their field, which passes through): a
        #: cache of the routing, not counted against ``max_series`` (:meth:`_evict_oldest`, :meth:`forget_passing`).
        self.passing = 0
        #: Keys of series, least recently seen first as of stamp ``_queue_clock`` (None where taken); a series
        #: seen since (``used >= _queue_clock``) is skipped. Built when a series must be evicted or may expire.
        self._queue: list[bytes | None] = []
        self._queue_at = 0
        self._queue_clock = 0
        #: No series was seen earlier (``Series.seen_at``), nor is the stream's clock earlier (None: not
        #: known): checked again when expiry might drop one. (An arrival is seen at the clock's time or later.)
        self.low: int | None = None
        self._low_checked = 0
        hotpath.ENGINES.add(self)  # (its series are numbered again when the stamp clock reaches its end)
        #: The stream's clock (:class:`~riverguard._hotpath.Clock`, a median of the latest timestamps): a
        #: series not seen while it moved on ``series_ttl`` is stale, and starts fresh at its next sample.
        self.clock = hotpath.Clock(0)
        self._configure(config)
        #: The latest event time seen (ns), for the monitor's lag, leaving out timestamps far ahead of the
        #: stream's clock and of the newest kept (:func:`newest_on_time`: a host's clock wrong would hide the lag
        #: for good).
        self.now: int | None = None
        self._ahead_reported = 0
        #: The measurement and tags (as written) of the metric with the latest timestamp far ahead of the
        #: stream's clock (``Clock.newest``), for the warning: which host's clock is wrong.
        self.ahead_from = b""
        #: When each W! line told at most once a minute may come again (:meth:`_due`), by what it tells.
        self._next_warning = {"clock": 0.0, "eviction": 0.0, "return": 0.0}
        #: Whether the first timestamps of the stream are still to be looked at for their unit
        #: (:meth:`check_units`); the command that reads them sets it, with how to give another unit.
        self.unit_hint: str | None = None
        self.metrics = 0
        #: Field values that went through a detector (scored), since start.
        self.fields_scored = 0
        self.parse_errors = 0
        self.anomalies = 0
        self.evicted = 0
        self.expired = 0
        #: Series evicted while still warming up (never scored); the others held a trained model.
        self.evicted_unscored = 0
        #: Evictions not told yet (:meth:`_report_evictions`), of a trained model (True) and of a series not
        #: yet scored (False): how many, and the least time (ns, on the stream's clock) one of them had not
        #: been seen (None: not known).
        self._untold: dict[bool, list[Any]] = {True: [0, None], False: [0, None]}
        #: Returns of a series that had expired after a single sample (:meth:`_came_back`): since start,
        #: not told yet (:meth:`_report_returns`), and the latest one's key.
        self.returns = 0
        self._returns_untold = 0
        self._return_key = b""
        #: The keys of series dropped as stale after a single sample, lately: their return is told.
        self._lone = Recent()
        #: How many series the run began with, restored from a checkpoint (:meth:`begin_run`); the summary
        #: then tells this run's series (``Series.run_seen``) and anomalies apart from what the checkpoint
        #: brought.
        self.restored = 0
        #: What to take off a series' ``anomalies`` (a count since its model started, kept across
        #: restarts) for this run's: the count restored, less this run's before the series started fresh
        #: (:meth:`restart`). Only series with such a count are in it, dropped with them.
        self._anomalies_before: dict[Series, int] = {}
        #: The series of this run let go (expired, evicted): the summary counts them with those held. None
        #: where no summary is written (``run``, ``pull --follow``): nothing kept for it.
        self.gone = RunTally() if summary else None
        #: Unparsable metrics are dropped from the output instead of passed through (backfill to InfluxDB).
        self.drop_unparsable = False
        #: The input a bad line is reported in (``NAME:LINE``; :meth:`start_input`); None: ``metric N``.
        self.source: str | None = None
        # Physical lines that are not a metric of their own (comments, blank lines, the lines a string
        # value with a raw newline spans), and the lines read before the current input.
        self._extra_lines = 0
        self._line_origin = 0
        self._error_limit = RateLimit(burst=10, period=1.0, what=("unparsable metric", "unparsable metrics"))
        #: The names of added fields that the user's own fields hold with another type, by measurement
        #: (escaped, as in the line): the fields they belong to are not scored there (:meth:`check_names`).
        #: Kept across reloads and, in the checkpoint, across restarts.
        self.taken: dict[bytes, set[bytes]] = {}
        self._taken_limit = RateLimit(burst=10, period=1.0, what=("field that clashes with an added name", "fields that clash with an added name"))
        self._failure_limit = RateLimit(burst=10, period=1.0, what="series whose detector failed")

    def _configure(self, config: Config) -> None:
        """What the engine derives from its config (at start, and again on SIGHUP)."""
        self.config = config
        self._rules = [_CompiledRule(rule) for rule in config.rules]
        self.score_suffix = escape_key(config.output.score_suffix)
        self.flag_suffix = escape_key(config.output.flag_suffix)
        #: The explanation fields' suffixes: expected, lower, upper (floats) and reason (string).
        self.explain_suffixes = tuple(escape_key(s) for s in config.output.explain_suffixes)
        #: The suffixes of the names riverguard adds for a field it scored, besides the score's (:meth:`added_upstream`).
        self._upstream_suffixes = (self.flag_suffix, *self.explain_suffixes)
        self._added_suffixes = (self.score_suffix, *self._upstream_suffixes)
        self._explain_names: dict[bytes, tuple[bytes, bytes, bytes, bytes]] = {}
        self.max_series = config.state.max_series
        self._ttl_ns = min(int(config.state.series_ttl * 1e9), 2**63 - 1)
        self.clock.set_ttl(self._ttl_ns)
        self._names: dict[bytes, tuple[bytes, bytes, bytes]] = {}
        self._bindings: dict[tuple[int, bytes], Any] = {}
        #: Whether any rule has ``scope = "metric"`` (a field without a series may then belong to a metric's model).
        self.metric_scope = any(rule.scope == "metric" for rule in config.rules)
        out = config.output
        self._metric_names = (
            b",%s=" % escape_key(out.metric_score_field),
            b",%s=true" % escape_key(out.metric_flag_field),
            b",%s=false" % escape_key(out.metric_flag_field),
        )
        self._metric_keys = (escape_key(out.metric_score_field), escape_key(out.metric_flag_field))
        self._field_scopes: dict[tuple[bytes, bytes], tuple[bool, bool, bool]] = {}
        #: Measurement -> :meth:`metric_scope_in`.
        self._metric_in: dict[bytes, bool] = {}
        #: Field name -> :meth:`_added_kinds` (looked up for every field of a metric :meth:`check_names` sees).
        self._readings: dict[bytes, tuple[tuple[str, bytes, str, bool], ...]] = {}
        #: (suffix, kind, ``[output]`` key, whether an explanation field) of every per-field added name.
        self._suffixes = (
            (self.score_suffix, "f", "score_suffix", False), (self.flag_suffix, "b", "flag_suffix", False),
            *((suffix, kind, "flag_suffix", True) for suffix, kind in zip(self.explain_suffixes, "fffs")),
        )

    # -- rules ---------------------------------------------------------------

    def route(self, metric: Metric, field_key: bytes) -> Rule | None:
        """The first rule that matches the field, or None."""
        return self.route_field(self.candidates(metric), field_key)

    def candidates(self, metric: Metric) -> list[_CompiledRule]:
        """The rules whose measurement and tag conditions the metric meets, in order (none for riverguard's own)."""
        measurement = unescape(metric.measurement)
        if measurement == MONITOR_MEASUREMENT:
            return []
        tags = {unescape(k): unescape(v) for k, v in metric.tags}
        return [compiled for compiled in self._rules if compiled.matches_metric(measurement, tags)]

    @staticmethod
    def route_field(candidates: list[_CompiledRule], field_key: bytes) -> Rule | None:
        """The first of :meth:`candidates` whose field globs match ``field_key``, or None."""
        name = unescape(field_key)
        for compiled in candidates:
            if compiled.matches_field(name):
                return compiled.rule
        return None

    def new_series(self, metric: Metric, field_key: bytes) -> Series:
        """A fresh series for the field, with the detector its rule names (None: unscored).

        A field that a ``scope = "metric"`` rule takes but that is not in its metric's model
        (another metric-scope rule's metric model took the metric first) passes unscored.
        """
        rule = self.route(metric, field_key)
        if rule is None or rule.detector_class is None or rule.scope == "metric":
            return self._hot.Series(self.bound(rule, field_key), None)
        if self.taken and self.barred(metric.measurement, field_key, rule):
            return self._hot.Series(None, None)
        return self.make_series(rule, rule.new_detector(), field_key)

    def make_series(self, rule: Rule, detector: Detector, field_key: bytes) -> Series:
        """A series of field ``field_key`` scored by ``detector`` under ``rule`` (new or restored); with field
        key ``"\\n"``, a ``scope = "metric"`` model (:class:`MetricSeries`)."""
        if field_key == METRIC_FIELD:
            return MetricSeries(self.bound(rule, field_key), detector)
        return self._hot.Series(self.bound(rule, field_key), detector)

    def bound(self, rule: Rule | None, field_key: bytes) -> Any:
        """The :class:`~riverguard._hotpath.Binding` of the series of field ``field_key`` under ``rule``
        (a ``scope = "metric"`` model's: field key ``"\\n"``), shared by all of them.

        One per rule and field key while there are fewer than 65 536 (as :meth:`added_names`): a flood
        of distinct field keys gives each series its own, and never grows this without bound.
        """
        if rule is None:
            return None  # (the hot path's UNBOUND)
        key = (id(rule), field_key)  # (the binding holds the rule: its id is not reused while it is here)
        binding = self._bindings.get(key)
        if binding is None:
            if len(self._bindings) >= 65536:
                self._bindings.clear()
            if field_key == METRIC_FIELD:  # a metric's model: a compiled or uncompiled MetricSeries whatever the hot path
                binding = _hotpath.Binding(rule)
            else:
                binding = self._hot.Binding(rule, self.added_names(field_key), self._explain(rule, field_key))
            self._bindings[key] = binding
        return binding

    def _explain(self, rule: Rule, field_key: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
        """The explanation-field prefixes of field ``field_key``'s series under ``rule``, or None."""
        if rule.explain and field_key != METRIC_FIELD:  # (a scope = "metric" model writes no explanation)
            return self.explain_names(field_key)
        return None

    # -- scoring -------------------------------------------------------------

    def process(self, record: Record) -> bytes:
        """The output bytes for one record (always newline-terminated)."""
        data = record.data
        if not data.endswith(b"\n"):
            data += b"\n"
        metric = record.metric
        if metric is None:
            if record.error is None:  # a comment or a blank line
                self._extra_lines += 1
                return data
            self.metrics += 1
            self.parse_errors += 1
            self._report_parse_error(record.data, record.error)
            return b"" if self.drop_unparsable else data
        extra = self.take(metric, record.data)
        if extra is None:
            return b"" if self.drop_unparsable else data
        if not extra:
            return data
        # insert_fields on the record's own bytes (metric.raw and its newline): one copy fewer.
        at = metric.fields_end
        return data[:at] + extra + data[at:]

    def count_passed(self, lines: int) -> None:
        """Count ``lines`` passed through unscored (``stream.passthrough``: a ``run`` that cannot score): they are
        the health line's ``metrics`` there."""
        self.metrics += lines

    def take(self, metric: Metric, data: bytes, write: bool = True) -> bytes | None:
        """Count ``metric`` (read from ``data``), move the clock on and score it: the fields to add (none
        made, not ``write``: :meth:`learn`). None when its timestamp is out of range at this ``--precision``
        (reported as a bad line)."""
        if b"\n" in metric.raw:  # a string value holding a newline: one metric, several lines
            self._extra_lines += metric.raw.count(b"\n")
        self.metrics += 1
        timestamp = metric.timestamp
        if timestamp is not None and self.time_unit != 1:
            timestamp *= self.time_unit
            if not -(2**63) <= timestamp < 2**63:
                self.parse_errors += 1
                error = ParseError("timestamp out of range at this --precision", timestamp_at(metric))
                self._report_parse_error(data, error)
                return None
            metric.timestamp = timestamp
        if timestamp is not None and metric.measurement != _MONITOR:  # (its own: stamped with the wall clock)
            clock = self.clock
            known = clock.known
            if clock.advance(timestamp):  # (the latest timestamp far ahead: whose, for the warning)
                self.ahead_from = _KEY_PREFIX.match(metric.raw).group()  # type: ignore[union-attr]
            now = self.now  # (a host's clock far ahead is no newest event time: Clock.on_time)
            if now is None or (timestamp > now and clock.on_time(timestamp, now)):
                self.now = timestamp
            if not known and self.clock.known:
                self.clock_known()
        if not self.metrics & 0xFFF:
            self.expire()
        return self._hot.score(self, metric, write)

    # -- scope = "metric" ----------------------------------------------------
    # A metric model's series key is the metric's prefix and a newline (no field key can hold
    # one). Its fields never get a series of their own, so _hotpath.run, which only takes lines
    # whose every field has a series, always hands such metrics to _hotpath.score, which calls these.

    def _joins_metric(self, metric: Metric, prefix: bytes, key: bytes) -> bool:
        """Whether field ``key`` goes to its metric's model (creating that model on first use)."""
        mseries = self.series.get(prefix + METRIC_FIELD)
        if mseries is not None:
            joins = mseries.fields.get(key)
            if joins is None:
                if len(mseries.fields) >= 4096:  # field keys are few; a flood of distinct ones must not grow this
                    mseries.fields.clear()
                joins = mseries.fields[key] = self.route(metric, key) is mseries.rule
            return joins
        rule = self.route(metric, key)
        if rule is None or rule.scope != "metric":
            return False
        if self.taken and self.barred(metric.measurement, METRIC_FIELD, rule):
            return True  # the measurement's metric-level names are the user's: no model, the field passes unscored
        mseries = self.make_series(rule, rule.new_detector(), METRIC_FIELD)
        mseries.fields[key] = True
        self.add_series(prefix + METRIC_FIELD, mseries)
        return True

    def add_series(self, skey: bytes, series: Series) -> None:
        """Hold new series ``skey``: make room for its model (:meth:`_evict_oldest`), or, without one,
        forget the routing of every such series when more than ``max_series`` are held."""
        all_series = self.series
        all_series[skey] = series
        if series.detector is None:  # no model: not counted against max_series, and bounded apart
            self.passing += 1
            if self.passing > self.max_series:
                self.forget_passing()
            return
        if self._lone.take(skey):
            self._came_back(skey)
        if len(all_series) - self.passing > self.max_series:
            gone = self._evict_oldest()
            if gone is not None:
                self._count_eviction(gone)

    def lru(self) -> list[tuple[bytes, Series]]:
        """The series, least recently seen first."""
        series = self.series
        keys = list(series)
        stamps = [s.used for s in series.values()]
        return [(keys[i], series[keys[i]]) for i in sorted(range(len(keys)), key=stamps.__getitem__)]

    def adopt(self, series: dict[bytes, Series]) -> None:
        """Hold ``series`` (least recently seen first) instead of the series held."""
        self.series.clear()
        self.series.update(series)
        if self._anomalies_before:  # (the series kept: reconfigure keeps their objects)
            held = set(series.values())
            self._anomalies_before = {s: n for s, n in self._anomalies_before.items() if s in held}
        self.passing = sum(1 for s in series.values() if s.detector is None)
        touch = self._hot.touch
        for s in series.values():  # (held first: the clock may renumber them as it goes)
            touch(s)
        self._queue = []
        self._check_low()

    def renumber(self) -> int:
        """Stamp the series 0, 1, ... least recently seen first (the stamp clock is at its end); how many."""
        held = self.lru()
        for i, (_, s) in enumerate(held):
            s.used = i
        self._queue = []
        return len(held)

    def _check_low(self) -> None:
        """Set ``low`` to the earliest a series was seen (``Series.seen_at``), or the stream's clock if earlier
        (an arrival is seen at its time or later); None while the clock is not known."""
        clock = self.clock
        self.low = min(min((s.seen_at for s in self.series.values()), default=clock.now), clock.now) if clock.known \
            else None
        self._low_checked = self.metrics

    def restore(self, series: Series, seen: int, last_time: int | None, seen_at: int | None, anomalies: int) -> None:
        """Give a series made for a checkpoint's record (:meth:`make_series`) what the record says of it:
        ``seen_at`` None if it was seen before the stream's clock was known."""
        self._hot.restore(series, seen, last_time, seen_at, anomalies)

    def clock_known(self) -> None:
        """The stream's clock has just become known (its third timestamp): the series seen before it without
        a timestamp are seen at its time (``_hotpath.clock_known``)."""
        self._hot.clock_known(self.series.values(), self.clock.now)
        if self.now is not None:  # (taken before the clock could tell one far ahead: the stream's first lines)
            self.now = newest_on_time(self.clock.window(), self.clock.now, self.clock.ttl)
        self._check_low()

    def _oldest(self) -> tuple[bytes, Series] | None:
        """The least recently seen series (key, series), or None if there is none."""
        series = self.series
        queue = self._queue
        at = self._queue_at
        while True:
            if at >= len(queue):
                if not series:
                    return None
                queue = self._queue = [key for key, _ in self.lru()]
                self._queue_clock = self._hot.clock()
                at = 0
            key = queue[at]
            found = series.get(key) if key is not None else None
            if found is not None and found.used < self._queue_clock:
                self._queue_at = at
                return key, found
            queue[at] = None  # seen since: it comes later (the queue must not keep a dropped series' key)
            at += 1

    def _drop_oldest(self, key: bytes) -> Series:
        """Drop series ``key``, which :meth:`_oldest` just gave."""
        self._queue[self._queue_at] = None
        self._queue_at += 1
        return self._let_go(key)

    def _let_go(self, key: bytes) -> Series:
        """Stop holding series ``key``: what the engine counts or keeps for it goes with it."""
        gone = self.series.pop(key)
        if gone.detector is None:
            self.passing -= 1
        if gone.run_seen and self.gone is not None:
            self.gone.add(key, gone.detector is not None, self._run_anomalies(gone))
        if self._anomalies_before:
            self._anomalies_before.pop(gone, None)
        return gone

    def _forget(self, keys: list[bytes]) -> None:
        """Drop the series ``keys`` (held), wherever they are in the order (the queue skips keys no longer held)."""
        for key in keys:
            self._let_go(key)

    def forget_passing(self) -> None:
        """Drop every series that holds no model: more than ``max_series`` of them are held (a flood of field
        keys no rule scores). Nothing is lost: each is routed again at its next sample."""
        self._forget([key for key, s in self.series.items() if s.detector is None])

    def restart(self, series: Series, key: bytes) -> None:
        """Start series ``key`` fresh, as a new series under its rule: it is stale (``_hotpath.arrive``: not
        seen while the stream's clock moved on ``series_ttl``, or a gap of its own). Whether a series starts
        fresh is decided at its next sample,
        so it does not depend on when expiry (:meth:`expire`) ran, nor on a restart in between. A series
        without a model has nothing to start afresh: only the expiry of one with a model is counted, and
        told (:meth:`_came_back`) when it had a single sample."""
        if series.seen == 1 and series.detector is not None:
            self._came_back(key)
        if self._count_expiry(series):
            series.detector = series.rule.new_detector()
        series.seen = 0
        if series.anomalies:  # (this run's stay this run's: see run_anomalies)
            self._anomalies_before[series] = self._anomalies_before.get(series, 0) - series.anomalies
        series.anomalies = 0
        series.failed = False
        series.last_time = None  # as a dropped series': a sample without a timestamp must not leave the old one

    def _evict_oldest(self) -> Series | None:
        """Make room for one model: drop a stale series that holds one if there is one (it would start fresh
        anyway: nothing it knows is lost), else evict the least recently seen one and return it (the caller
        counts it: :meth:`_count_eviction`). Series without a model that come first (least recently seen)
        are dropped on the way: they only cache their field's routing."""
        horizon = self.clock.horizon
        while True:
            found = self._oldest()
            assert found is not None
            key, series = found
            if series.seen_at < horizon:
                self._drop_oldest(key)
                if self._count_expiry(series, key):
                    return None
            elif series.detector is None:
                self._drop_oldest(key)
            else:
                break
        if self.low is not None and self.low < horizon:  # a stale series further on?
            stale = [k for k, s in self.series.items() if s.seen_at < horizon]
            modelled = sum(self._count_expiry(self.series[k], k) for k in stale)
            self._forget(stale)
            self._check_low()
            if modelled:
                return None
        return self._drop_oldest(key)

    def _count_eviction(self, gone: Series) -> None:
        """Count the eviction of ``gone`` (:attr:`evicted`), to be told by :meth:`_report_evictions`."""
        self.evicted += 1
        trained = gone.seen > gone.binding.warmup
        if not trained:
            self.evicted_unscored += 1
        untold = self._untold[trained]
        untold[0] += 1
        clock = self.clock
        if clock.known and gone.seen_at >= clock.horizon:  # (as an evicted series is: not stale)
            idle = max(clock.now - gone.seen_at, 0)
            if untold[1] is None or idle < untold[1]:
                untold[1] = idle

    def shrink(self) -> int:
        """Drop series until at most ``max_series`` are held, the way a new series makes room (a stale one
        first, else the least recently seen: :meth:`_evict_oldest`); return how many were dropped. For a
        restored checkpoint that holds more series than a lowered ``max_series``: they are not counted as
        evicted or expired by the stream (nor warned about as evicted)."""
        held = len(self.series) - self.passing
        if held <= self.max_series:
            return 0
        expired = self.expired
        while len(self.series) - self.passing > self.max_series:
            self._evict_oldest()
        self.expired = expired
        self._check_low()
        return held - (len(self.series) - self.passing)

    def _count_expiry(self, series: Series, key: bytes | None = None) -> bool:
        """Count the expiry of stale ``series`` (:attr:`expired`) if it holds a model; whether it does. With
        its ``key``: it is dropped, and remembered if it had a single sample (its return is told then)."""
        if series.detector is None:
            return False
        self.expired += 1
        if key is not None and series.seen == 1:
            self._lone.put(key)
        return True

    def _came_back(self, key: bytes) -> None:
        """Series ``key`` is back after it expired with a single sample: its samples come further apart than
        ``series_ttl`` (it starts fresh at each, and is never scored). Counted, to be told by
        :meth:`_report_returns`."""
        self.returns += 1
        self._returns_untold += 1
        self._return_key = key

    def _due(self, what: str, final: bool) -> bool:
        """Whether the ``W!`` line about ``what`` may be written now: at most once a minute (``final``: at
        the end, whenever the last was); if so, the next one waits a minute."""
        now = time.monotonic()
        if now < self._next_warning[what] and not final:
            return False
        self._next_warning[what] = now + 60.0
        return True

    def _report_evictions(self, final: bool = False) -> None:
        """``W!`` lines, at most once a minute (``final``: at the end, whenever the last was), while series
        are evicted: one for trained models (lost), one for series not yet scored. Each says how long the
        evicted had not been seen at least: a while, and series_ttl can drop them first, if they are gone."""
        untold = self._untold
        if not (untold[True][0] or untold[False][0]) or not self._due("eviction", final):
            return
        for trained in (True, False):
            count, idle = untold[trained]
            if not count:
                continue
            untold[trained] = [0, None]
            total = self.evicted - self.evicted_unscored if trained else self.evicted_unscored
            what = "a trained model" if trained else "a series not yet scored"
            seconds = None if idle is None else idle // 10**9
            told = [f"{plural(count, 'eviction')} of {what} ({total} since start): "]
            if seconds is not None:
                told.append("some seen in the last second; " if seconds < 1 else
                            f"none seen in the last {duration_text(seconds)}; ")
            if trained:
                told.append("a model evicted starts its warm-up again when its series comes back; ")
            told.append(f"max_series = {self.max_series} is too small for the series coming in; raise [state] "
                        "max_series")
            if seconds is not None and seconds >= 1:  # (series_ttl is 1s or more)
                told.append(f", or, if those series are gone for good (containers that came and went), set [state] "
                            f"series_ttl (now {self._ttl_text()}) under {duration_text(seconds)}, and over the "
                            "longest interval a series reports at, so that they expire before they are evicted")
            self.log.warn("".join(told))

    def _report_returns(self, final: bool = False) -> None:
        """A ``W!`` line, at most once a minute (``final``: at the end, whenever the last was), while series
        come back after they expired with a single sample (:meth:`_came_back`): ``series_ttl`` is shorter
        than their interval."""
        if not self._returns_untold or not self._due("return", final):
            return
        count, self._returns_untold = self._returns_untold, 0
        self.log.warn(
            f"{plural(count, 'return')} of a series that expired after a single sample ({self.returns} since "
            f"start; the latest: {series_name(self._return_key)}): it reports less often than series_ttl "
            f"({self._ttl_text()}), so it starts fresh at every sample and is never scored; raise [state] "
            "series_ttl above its interval"
        )

    def _ttl_text(self) -> str:
        """``series_ttl`` as a message gives it."""
        return duration_text(self.config.state.series_ttl)

    #: Why :meth:`rule_for` found no rule to hold a series' model.
    CHANGED = "changed"  # a rule of the series' scope takes it, with another detector or other parameters
    TO_METRIC = "to-metric"  # a field's series, whose field a scope = "metric" rule now takes into a metric's model
    NO_METRIC = "no-metric"  # a scope = "metric" model, whose metric no scope = "metric" rule takes any more
    UNMATCHED = "unmatched"  # a field's series that no scoring rule takes any more (none, or detector "off")
    BARRED = "barred"  # a series' model barred by a field of the user's holding one of its added names (taken)
    OVER = "over"  # a series beyond a lowered max_series (:meth:`shrink`)
    REFUSED = "refused"  # a checkpointed series whose key the parser refuses now (a tag key given twice)
    #: Why models were not kept (at a restore, at a reload), as the I! lines of both say it, in their order.
    #: Each reason's words after the count: for one series, and for more.
    DROPPED = (
        (CHANGED, ("starts fresh because its rule or parameters changed",
                   "start fresh because their rule or parameters changed")),
        (TO_METRIC, ('field model dropped: a scope = "metric" rule now takes its field into a metric\'s model',
                     'field models dropped: a scope = "metric" rule now takes their fields into a metric\'s model')),
        (NO_METRIC, ('metric model dropped: no scope = "metric" rule takes its metric any more',
                     'metric models dropped: no scope = "metric" rule takes their metric any more')),
        (UNMATCHED, ("no longer matches a scoring rule", "no longer match a scoring rule")),
        (BARRED, ("dropped: a field of yours holds one of its added names with another type",
                  "dropped: a field of yours holds one of their added names with another type")),
        (REFUSED, ("dropped: its series key is not valid line protocol any more (a tag key given twice?)",
                     "dropped: their series keys are not valid line protocol any more (a tag key given twice?)")),
        (OVER, ("dropped to fit [state] max_series = {max_series} (stale ones first, then the least recently seen)",) * 2),
    )

    def dropped_counts(self, dropped: Counter[str]) -> str:
        """``"; N reason"`` for each reason ``dropped`` counts (by :attr:`DROPPED`), for the I! lines of a
        restore and a reload; ``""`` when none was dropped."""
        return "".join(
            "; " + plural(dropped[why], *(text.format(max_series=self.max_series) for text in texts))
            for why, texts in self.DROPPED if dropped[why]
        )

    def rule_for(self, key: bytes, fingerprint: str, cache: dict[Any, Any]) -> tuple[bytes, Rule | None, str]:
        """Series ``key``'s field key, the rule with ``fingerprint`` that may hold its model (a checkpoint's,
        or one kept across a reload) or None, and, when None, why (:attr:`CHANGED`, :attr:`TO_METRIC`,
        :attr:`NO_METRIC`, :attr:`UNMATCHED` or :attr:`REFUSED`; ``""`` with a rule).

        The rules that may hold it: for a field's series, the rule its field
        routes to, if that rule scores fields one by one; for a ``scope =
        "metric"`` model (field key ``"\\n"``), every metric-scope rule its
        measurement and tags allow, up to one that takes every field (which
        one made it depends on the fields that came first: the fingerprint
        tells; a rule after that one takes none). A rule whose scope changed
        holds none of the other scope's models: a field's model cannot score
        a metric's fields together, nor a metric's model one field. ``cache``
        is the caller's, for one pass over many keys: the rules each
        measurement + tag set allows, and each field key's route through them
        (shared by the tag sets that allow the same rules). For a key whose
        measurement and tags do not parse (a checkpoint of an earlier version
        that took a tag key given twice), ``(field_key, None, REFUSED)``; for
        a key without a field key, ``(b"", None, UNMATCHED)``.
        """
        prefix, field_key = _split_key(key)
        if not field_key:
            return field_key, None, self.UNMATCHED
        found = cache.get(prefix)
        if found is None:
            try:
                allowed = self.candidates(parse(prefix + b"x=0"))
            except ParseError:
                return field_key, None, self.REFUSED
            indices = tuple(c.rule.index for c in allowed)
            routes = cache.get(indices)
            if routes is None:
                routes = cache[indices] = {}
            found = cache[prefix] = (allowed, routes)
        allowed, routes = found
        route = routes.get(field_key)
        if route is None:
            if field_key == METRIC_FIELD:
                rules = self._metric_rules(allowed)
                why = self.CHANGED if rules else self.NO_METRIC
            else:
                rule = self.route_field(allowed, field_key)
                scores = rule is not None and rule.detector_class is not None
                rules = (rule,) if scores and rule.scope == "field" else ()  # type: ignore[union-attr]
                why = self.CHANGED if rules else self.TO_METRIC if scores else self.UNMATCHED
            route = routes[field_key] = (rules, why)
        rules, why = route
        held = next((r for r in rules if r.fingerprint == fingerprint), None)
        return field_key, held, "" if held is not None else why

    @staticmethod
    def _metric_rules(allowed: list[_CompiledRule]) -> tuple[Rule, ...]:
        """The scoring ``scope = "metric"`` rules of ``allowed`` (:meth:`candidates`) that can take a field:
        none after a rule that takes every field (a ``*`` among its ``fields``), as no field gets past it."""
        rules = []
        for compiled in allowed:
            if compiled.rule.scope == "metric" and compiled.rule.detector_class is not None:
                rules.append(compiled.rule)
            if compiled.fields is None:
                break
        return tuple(rules)

    def reconfigure(self, config: Config) -> tuple[int, Counter[str]]:
        """Use ``config`` from now on; return how many series keep their models, and how many models are
        dropped, by reason (:attr:`DROPPED`).

        A series keeps its model when the rule that now matches it has the same detector and
        parameters (its threshold and warm-up follow the new rule, the warm-up a detector
        learns for too), as across a restart; a
        series whose rule changed starts fresh at its next sample.
        """
        self._configure(config)
        kept: dict[bytes, Series] = {}
        dropped: Counter[str] = Counter()
        cache: dict[Any, Any] = {}
        for key, series in self.lru():
            if series.detector is None:
                continue  # unscored: routed again at its next sample
            field_key, rule, why = self.rule_for(key, series.rule.fingerprint, cache)
            if rule is None:
                dropped[why] += 1
                continue
            if field_key == METRIC_FIELD:
                series.fields.clear()  # which fields join a metric's model is decided again
            if rule.detector_params != series.rule.detector_params:  # a detector that learns for the warm-up
                series.detector = rule.new_detector.restore(series.detector.dump_state())
            series.binding = self.bound(rule, field_key)
            kept[key] = series
        self.adopt(kept)
        dropped[self.BARRED] += self.drop_barred()  # (new suffixes or explanations may bar other fields)
        dropped[self.OVER] += self.shrink()  # a lowered max_series, as at a restore
        return len(self.series), dropped

    def _score_metric(
        self, metric: Metric, prefix: bytes, together: dict[str, float], t: float | None, ob: bytearray | None
    ) -> None:
        """Append the metric-level score and flag of the metric's model, fed ``together`` (sorted by name), to
        ``ob`` (None: it only learns)."""
        mkey = prefix + METRIC_FIELD
        series = self.series.get(mkey)
        if series is None:  # evicted by a field series created after it, in this same metric
            return
        self._hot.arrive(self, series, mkey, metric.timestamp, self.clock)
        keys = {f[0] for f in metric.fields}
        if self._metric_keys[0] in keys:
            return  # already scored upstream
        try:
            score = checked_score(series.detector.process(dict(sorted(together.items())), t))
        except Exception as err:  # noqa: BLE001 - no detector error may reach the stream
            self._detector_failed(series, mkey, err)
            return
        self.fields_scored += len(together)  # each field the metric's model took
        self.anomalies += self._hot.verdict(series, score, self._metric_names, self._metric_keys[1] not in keys, ob)

    # -- added names the user's fields hold ------------------------------------
    # InfluxDB refuses a field whose type differs from the type the measurement already has for it
    # (within a shard). A user field named like an added field, of another type than riverguard
    # writes under that name (an integer `v_anomaly`), would clash with the added field on the
    # metrics without it: from the first metric that shows it, the field it belongs to is not
    # scored in that measurement, and nothing is written under that name there.

    #: The most names :attr:`taken` holds (the checkpoint's header holds them).
    MAX_TAKEN = 4096
    _KINDS = {"f": "a float", "i": "an integer", "u": "an unsigned integer", "s": "a string", "b": "a boolean"}

    def _added_kinds(self, key: bytes) -> tuple[tuple[str, bytes, str, bool], ...]:
        """Every added field riverguard may write under field name ``key``: its kind, what it adds it for
        (a field key, or ``"\\n"`` for a ``scope = "metric"`` model), the ``[output]`` key that names it and
        whether it is an explanation field (written only by rules with ``explain = true``). Empty for a name
        riverguard never writes; more than one where the names overlap (``score_suffix = "_lower"``: field
        ``w``'s ``w_anomaly_lower`` is also field ``w_anomaly``'s score)."""
        readings = self._readings.get(key)
        if readings is not None:
            return readings
        found = []
        if self.metric_scope and key in self._metric_keys:
            if key == self._metric_keys[0]:
                found.append(("f", METRIC_FIELD, "metric_score_field", False))
            else:
                found.append(("b", METRIC_FIELD, "metric_flag_field", False))
        for suffix, kind, setting, explanation in self._suffixes:
            if key.endswith(suffix) and len(key) > len(suffix):
                found.append((kind, key[: -len(suffix)], setting, explanation))
        if len(self._readings) >= 65536:
            self._readings.clear()
        readings = self._readings[key] = tuple(found)
        return readings

    def field_scopes(self, measurement: bytes, field_key: bytes) -> tuple[bool, bool, bool]:
        """Whether, on some tag set of ``measurement``, field ``field_key`` could be scored one by one by a
        rule without ``explain`` (riverguard writes its score and flag there), by a rule with ``explain =
        true`` (its explanation fields too), and whether it could go into a ``scope = "metric"`` model (which
        writes only the metric-level names); by the rules, whatever the tags."""
        found = self._field_scopes.get((measurement, field_key))
        if found is None:
            name, plain, explained, whole = unescape(measurement), False, False, False
            for compiled in self._rules:
                if compiled.measurement is not None and not compiled.measurement(name):
                    continue
                if not compiled.matches_field(unescape(field_key)):
                    continue
                rule = compiled.rule
                if rule.detector_class is not None:
                    if rule.scope == "metric":
                        whole = True
                    elif rule.explain:
                        explained = True
                    else:
                        plain = True
                if not compiled.tags:
                    break  # every tag set that comes this far stops at this rule
            if len(self._field_scopes) >= 4096:
                self._field_scopes.clear()
            found = self._field_scopes[(measurement, field_key)] = (plain, explained, whole)
        return found

    def metric_scope_in(self, measurement: bytes) -> bool:
        """Whether a ``scope = "metric"`` rule may take metrics of ``measurement`` (whatever their tags and
        fields): one that no earlier rule for every field there takes first on each tag set it matches
        (:meth:`Rule.covers_tags`). Only there does riverguard write the metric-level fields, so only there
        is a field of that name one it added upstream (never scored), or a clash when of another type. Where
        the globs do not make that plain, a metric rule may take them: the names are then left unscored,
        never riverguard's own scored again."""
        found = self._metric_in.get(measurement)
        if found is None:
            name, found = unescape(measurement), False
            catch_alls: list[Rule] = []  # the rules for every field of the measurement so far
            for c in self._rules:
                if c.measurement is not None and not c.measurement(name):
                    continue
                rule = c.rule
                if rule.scope == "metric" and rule.detector_class is not None:
                    if not any(earlier.covers_tags(rule) for earlier in catch_alls):
                        found = True
                        break
                if c.fields is None:
                    catch_alls.append(rule)
            if len(self._metric_in) >= 4096:
                self._metric_in.clear()
            self._metric_in[measurement] = found
        return found

    def check_names(self, metric: Metric) -> None:
        """Note the fields of ``metric`` that hold an added field's name with another type (:attr:`taken`);
        the series they bar are dropped (made again, unscored, at their next sample).

        A per-field added name (``x_anomaly_score``) is no clash in a measurement where no rule scores
        ``x`` one by one (a ``scope = "metric"`` rule takes it, or none does), nor an explanation name
        (``x_anomaly_expected``) where no rule with ``explain = true`` does: nothing is written under that
        name there, so it is left alone, without a warning. A name that is several added names (the
        suffixes overlap) is checked as each of them."""
        measurement = metric.measurement
        for key, kind, _ in metric.fields:
            readings = self._added_kinds(key)
            for added in readings:
                if added[0] != kind:
                    break
            else:
                continue  # not an added name, or of the type riverguard writes (the metric was scored upstream)
            names = self.taken.get(measurement)
            if names is not None and key in names:
                continue
            clashes = [
                (added, what) for added in readings if added[0] != kind and (what := self._clash(measurement, added))
            ]
            if not clashes or sum(len(n) for n in self.taken.values()) >= self.MAX_TAKEN:
                continue
            self.taken.setdefault(measurement, set()).add(key)
            self.drop_barred(measurement)
            if self._taken_limit.allow(self.log):
                added = clashes[0][0]
                self.log.warn(
                    f"measurement {unescape(measurement)!r}: field {unescape(key)!r} is {self._KINDS[kind]}, "
                    f"and riverguard would write {self._KINDS[added[0]]} under that name: from now on "
                    f"{'; '.join(what for _, what in clashes)} (InfluxDB refuses a field whose type changes); "
                    f"rename the field or set [output] {' or '.join(dict.fromkeys(a[2] for a, _ in clashes))}"
                )

    def _clash(self, measurement: bytes, added: tuple[str, bytes, str, bool]) -> str:
        """What a field of the user's holding ``added``'s name (:meth:`_added_kinds`) with another type
        stops in ``measurement``, as :meth:`check_names` says it; ``""`` when the rules in force never
        write that name there (no clash)."""
        _, field_key, _, explanation = added
        if field_key == METRIC_FIELD:
            return "no metric-level anomaly fields are written there" if self.metric_scope_in(measurement) else ""
        if field_key.endswith(self.score_suffix) or (
            field_key in self._metric_keys and self.metric_scope_in(measurement)
        ):  # an added name itself (a score; there, a metric-level field): never scored, nothing is added for it
            return ""
        plain, explained, whole = self.field_scopes(measurement, field_key)
        field = unescape(field_key)
        if not (explained if explanation else plain or explained):
            return ""  # riverguard never writes this name in this measurement
        if explanation and (plain or whole):  # (barred only under the rules that explain it)
            return f"field {field!r} is not scored there by rules with explain = true"
        if whole:
            return f'field {field!r} is scored there only in the metric models of scope = "metric" rules'
        return f"field {field!r} is not scored there"

    def barred(self, measurement: bytes, field_key: bytes, rule: Rule | None) -> bool:
        """Whether field ``field_key`` (``"\\n"``: a ``scope = "metric"`` model) of ``measurement`` is not
        scored, because one of the names it would add there is the user's (:attr:`taken`)."""
        names = self.taken.get(measurement)
        if not names:
            return False
        if field_key == METRIC_FIELD:
            return self._metric_keys[0] in names or self._metric_keys[1] in names
        if field_key + self.score_suffix in names or field_key + self.flag_suffix in names:
            return True
        return bool(rule is not None and rule.explain and any(field_key + s in names for s in self.explain_suffixes))

    def drop_barred(self, measurement: bytes | None = None) -> int:
        """Drop the series (of ``measurement``; None: of every measurement) that :meth:`barred` bars; how many."""
        if not self.taken:
            return 0
        heads = None if measurement is None else (measurement + b",", measurement + b" ")
        gone = []
        for skey, series in self.series.items():
            if heads is not None and not skey.startswith(heads):
                continue
            prefix, field_key = _split_key(skey)
            m = measurement if heads is not None else key_measurement(prefix)
            if self.barred(m, field_key, series.rule):
                gone.append(skey)
        self._forget(gone)
        return len(gone)

    def taken_pairs(self) -> list[list[bytes]]:
        """:attr:`taken` as ``[measurement, name]`` pairs, sorted (for the checkpoint)."""
        return [[m, name] for m in sorted(self.taken) for name in sorted(self.taken[m])]

    def take_pairs(self, pairs: object) -> None:
        """Add ``[measurement, name]`` pairs (a checkpoint's) to :attr:`taken`; anything else is ignored."""
        if not isinstance(pairs, list):
            return
        for pair in pairs[: self.MAX_TAKEN]:
            if isinstance(pair, list) and len(pair) == 2 and all(type(x) is bytes and x for x in pair):
                self.taken.setdefault(pair[0], set()).add(pair[1])

    # -- explanations ([output] explain) ---------------------------------------

    @staticmethod
    def _reason(detector: Detector, x: float, band: Any) -> bytes:
        """The detector's reason for flagging ``x`` (the base class's if its own fails)."""
        try:
            return detector.reason(x, band).encode()
        except Exception:  # noqa: BLE001 - no detector error may reach the stream
            return Detector.reason(detector, x, band).encode()

    def added_upstream(self, key: bytes, scores: Container[bytes]) -> bool:
        """Whether field ``key`` of a metric whose numeric fields are ``scores`` is one riverguard added for
        what it scored (upstream: never scored, nor learned from): a score (``K_anomaly_score``), or the flag
        or an explanation field (``K_anomaly``, ``K_anomaly_expected``, ``K_anomaly_reason``...) of a field
        ``K`` whose score is among them (riverguard writes a score as a number: beside a string of that
        name, a field so named is the user's). The one rule of the hot path and of :meth:`unlearned`.

        >>> from riverguard.config import default_config
        >>> engine, keys = Engine(default_config()), {b"u", b"u_anomaly_score", b"u_anomaly_reason", b"w_anomaly"}
        >>> [key for key in sorted(keys) if engine.added_upstream(key, keys)]
        [b'u_anomaly_reason', b'u_anomaly_score']
        """
        if not key.endswith(self._added_suffixes):  # (most keys: one test)
            return False
        score_suffix = self.score_suffix
        if key.endswith(score_suffix):
            return True
        for suffix in self._upstream_suffixes:
            if key.endswith(suffix) and key[: -len(suffix)] + score_suffix in scores:
                return True
        return False

    def explain_names(self, key: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        """``,K_expected=``, ``,K_lower=``, ``,K_upper=`` and ``,K_reason="`` for field key ``K``
        (with the flag suffix before each: ``K_anomaly_expected``)."""
        names = self._explain_names.get(key)
        if names is None:
            if len(self._explain_names) >= 65536:
                self._explain_names.clear()
            e, lo, hi, why = (b",%s%s=" % (key, suffix) for suffix in self.explain_suffixes)
            names = self._explain_names[key] = (e, lo, hi, why + b'"')
        return names

    def added_names(self, key: bytes) -> tuple[bytes, bytes, bytes]:
        """``,K_score=``, ``,K_flag=true`` and ``,K_flag=false`` for field key ``K`` (shared between series).

        The series of a field share it through their binding (:meth:`bound`), so this runs once per new binding.
        """
        names = self._names.get(key)
        if names is None:
            if len(self._names) >= 65536:  # field keys are few; a flood of distinct ones must not grow this forever
                self._names.clear()
            flag = b",%s%s=" % (key, self.flag_suffix)
            names = self._names[key] = (b",%s%s=" % (key, self.score_suffix), flag + b"true", flag + b"false")
        return names

    def unlearned(self, line: bytes) -> Metric | None:
        """The metric of a line riverguard scored (it carries ``F_anomaly_score`` or the metric's score
        field) as it was before, without the fields riverguard added for what it scored (:meth:`added_upstream`),
        for :meth:`learn` when the models have not seen it. None when one of the series it may go to was
        last seen at its time or later (learned already: a point is never learned twice;
        :func:`_hotpath.arrive` itself takes a time going back), or when the line cannot be read or would
        keep no field.

        >>> from riverguard.config import default_config
        >>> engine = Engine(default_config())
        >>> engine.unlearned(b"cpu,h=a u=2.5,u_anomaly=false,u_anomaly_score=0.0,x_anomaly=true 7").fields
        [Field(key=b'u', kind='f', number=2.5), Field(key=b'x_anomaly', kind='b', number=None)]
        >>> from riverguard.stream import feed
        >>> _ = feed(engine, b"cpu,h=a u=2.5 7\\n", final=True)
        >>> learned = engine.unlearned(b"cpu,h=a u=2.5,u_anomaly_score=0.0 7")
        >>> learned, engine.unlearned(b"cpu,h=a u=3.5,u_anomaly_score=0.0 8").fields
        (None, [Field(key=b'u', kind='f', number=3.5)])
        """
        try:
            metric = parse(line)
        except ParseError:
            return None
        keys = {field[0] for field in metric.fields}
        scores = {field[0] for field in metric.fields if field[2] is not None}
        metric_scored = self._metric_keys[0] in keys  # by a scope = "metric" model: its two fields are added
        kept = [
            field for field in metric.fields
            if not self.added_upstream(field[0], scores) and not (metric_scored and field[0] in self._metric_keys)
        ]
        if not kept:
            return None
        timestamp = metric.timestamp
        if timestamp is not None:
            prefix = series_prefix(metric)
            for key in (*(field[0] for field in kept), METRIC_FIELD):  # (every series the point may go to)
                series = self.series.get(prefix + key)
                if series is not None and series.last_time is not None and series.last_time >= timestamp:
                    return None
        metric.fields = kept
        return metric

    def learn(self, metric: Metric) -> None:
        """Take ``metric`` (:meth:`unlearned`'s) as :meth:`process` takes a line: it is counted, moves the
        clock on and its series learn it; nothing is formatted nor explained."""
        self.take(metric, metric.raw, write=False)

    _prefix = staticmethod(series_prefix)  # (for the hot path, which cannot import this module)

    def _detector_failed(self, series: Series, skey: bytes, err: Exception) -> None:
        """A detector raised (or scored NaN): the sample passes unscored and the series starts fresh with a
        new model, as a new series under its rule. A model that failed once cannot be trusted to score again
        (one huge value leaves a River scaler's statistics at inf, and every score after it NaN), and it must
        not be checkpointed. One ``W!`` line per series (``failed`` stays set), rate-limited across series."""
        if series.detector is not None and series.rule is not None:
            series.detector = series.rule.new_detector()
            series.seen = 0
        if series.failed:
            return
        series.failed = True
        if not self._failure_limit.allow(self.log):
            return
        name = series.rule.detector if series.rule else "?"
        what = "the metric passes" if skey.endswith(METRIC_FIELD) else "the field passes"
        self.log.warn(
            f"detector {name!r} failed on series {series_name(skey)}: {type(err).__name__}: {err}; "
            f"{what} unscored and the series starts fresh with a new model"
        )

    def _report_parse_error(self, data: bytes, error: ParseError) -> None:
        if not self._error_limit.allow(self.log):
            return
        snippet = data[:120].rstrip(b"\n").decode("utf-8", "backslashreplace")
        where = f"metric {self.metrics}" if self.source is None else f"{self.source}:{self.line()}"
        fate = "not sent to InfluxDB" if self.drop_unparsable else "passed through unchanged"
        self.log.error(f"{where}: not line protocol: {error}; {fate}: {snippet}")

    def start_input(self, name: str) -> None:
        """Report bad lines from here on as ``name:LINE``, counting physical lines from 1 (replay: per file)."""
        self.source = name
        self._line_origin = self.metrics + self._extra_lines

    def line(self) -> int:
        """The physical line of the current input where the last metric counted starts."""
        return self.metrics + self._extra_lines - self._line_origin

    def flush_log(self, final: bool = False) -> None:
        """Report what the rate limits held back (parse errors, failed detectors, name clashes), evictions,
        returns of series that expired after a single sample, timestamps far from the stream's clock, and
        (``final``: at the end of the input, the first ones however few) timestamps that look like seconds
        (:meth:`check_units`). ``final`` also reports the evictions, returns and timestamps that came since
        the last line about them, however recent it was."""
        for limit in (self._error_limit, self._failure_limit, self._taken_limit):
            limit.report_held(self.log, final)
        self.check_units(final)
        self._report_evictions(final)
        self._report_returns(final)
        self._report_clock(final)

    def check_units(self, final: bool = False) -> None:
        """Once :data:`UNIT_SAMPLE` timestamps of the stream are in (``final``: however many came), one ``W!``
        line if the oldest of the clock's window (the first :data:`UNIT_SAMPLE`, or, after a large read, the
        first of the latest 127) all look like seconds, milliseconds or microseconds (:func:`guess_unit`) while
        they are read as nanoseconds: every one of them would be early in 1970 and the scores would differ. Once per
        process, only when :attr:`unit_hint` is set (a checkpoint restored with a clock: its timestamps were
        taken in the unit the models know; checked no further)."""
        if self.unit_hint is None:
            return
        clock = self.clock
        if clock.count < UNIT_SAMPLE and not final:
            return
        hint, self.unit_hint = self.unit_hint, None
        first = clock.window()[:UNIT_SAMPLE]  # (the oldest of the window: the first of the stream if it is not full)
        unit = guess_unit(first)
        if unit is None:
            return
        size, name = UNITS[unit], _UNIT_NAMES[unit]
        self.log.warn(
            f"the timestamps look like {name}, not nanoseconds: {first[0]} is {iso_ns(first[0] * size)} in {name}, "
            f"{iso_ns(first[0])} in nanoseconds; {hint.format(unit=unit)}"
        )

    def load_clock(self, now: int | None, window: list[int]) -> None:
        """Set the stream's clock to a checkpoint's ``[now, window]`` (:meth:`Clock.dump`): its counts of
        timestamps far from it start again, and so do those already reported (:meth:`_report_clock`)."""
        self.clock.load(now, window)
        self._ahead_reported = 0
        self._check_low()

    def _report_clock(self, final: bool = False) -> None:
        """A ``W!`` line, at most once a minute (``final``: at the end, whenever the last was), while metrics
        come with timestamps more than ``series_ttl`` ahead of the stream's clock: a host's clock is wrong.
        (Timestamps behind it are scored as any: a series is stale only when the clock moves on without it.)"""
        clock = self.clock
        ahead = clock.ahead - self._ahead_reported
        if not ahead or not self._due("clock", final):
            return
        self._ahead_reported = clock.ahead
        self.log.warn(
            f"{plural(ahead, 'metric')} with {'a timestamp' if ahead == 1 else 'timestamps'} more than "
            f"series_ttl ({self._ttl_text()}) ahead of the stream's clock (the latest: {iso_ns(clock.newest)} from "
            f"{series_name(self.ahead_from)}, when the clock was {iso_ns(clock.then)}): is a host's clock wrong? A few such timestamps do not move the "
            "clock series expire by; the whole stream moving on does"
        )

    def expire(self) -> int:
        """Drop the least recently seen series while they are stale (not seen while the stream's clock,
        :attr:`clock`, moved on ``series_ttl``: ``Series.seen_at``); return how many (:attr:`expired` counts those with a model). Only
        memory: a stale series starts fresh at its next sample whether it was dropped or not (:meth:`restart`)."""
        if not self.clock.known:
            return 0
        horizon = self.clock.horizon
        if self.low is None or self.low >= horizon:
            return 0  # no series was seen before the horizon
        dropped = 0
        while True:
            found = self._oldest()
            if found is None:
                break
            if found[1].seen_at >= horizon:
                break
            self._drop_oldest(found[0])
            dropped += 1
            self._count_expiry(found[1], found[0])
        if dropped or self.metrics - self._low_checked >= len(self.series):  # (a scan per series at most)
            self._check_low()
            if self.low is None or self.low >= horizon:
                self._queue = []  # not needed until a series must be evicted or may expire
        return dropped

    def begin_run(self) -> None:
        """The series held now were restored from a checkpoint: from here on is this run."""
        self.restored = len(self.series)  # (self.gone is still empty: a restored series is not of this run)
        self._anomalies_before = {s: s.anomalies for s in self.series.values() if s.anomalies}

    def _run_anomalies(self, series: Series) -> int:
        """The anomalies of ``series`` in this run."""
        return series.anomalies - self._anomalies_before.get(series, 0) if self._anomalies_before else series.anomalies

    def run_figures(self, n: int = 5) -> Figures:
        """This run's series, held (seen in this run) or let go, and the ``n`` with the most anomalies."""
        held = ((k, s.detector is not None, self._run_anomalies(s)) for k, s in self.series.items() if s.run_seen)
        return (self.gone if self.gone is not None else RunTally()).figures(held, n)

    def dropped_in_run(self) -> str:
        """The evictions and expiries of this run: events, not distinct series (one series may be evicted, come
        back and be evicted again; counting series would mean remembering every key ever evicted)."""
        return (
            f"{plural(self.evicted, 'eviction')} (max_series, "
            f"{self.evicted_unscored} of a series not yet scored), "
            f"{plural(self.expired, 'expiry', 'expiries')} (series_ttl)"
        )

    def log_summary(self) -> None:
        """The I! lines a replay and a one-off pull end with: every figure this run's, the series it let go
        (expired, evicted) included, the series held with those a checkpoint brought labelled as such."""
        run = self.run_figures()
        about = "" if run.exact else "about "  # (past the series let go that are remembered: self.gone)
        series = f"{about}{run.series} ({about}{run.scored} scored)"
        if self.restored:
            held = self.series.values()
            scored = sum(1 for s in held if s.detector is not None)
            series = (f"{about}{run.series} in this run ({about}{run.scored} scored); "
                      f"{len(held)} held, the checkpoint's included ({scored} scored)")
        lines = [
            f"metrics: {self.metrics} ({self.parse_errors} unparsable"
            + (", not sent to InfluxDB)" if self.drop_unparsable else ")"),
            f"series: {series}",
            f"anomalies: {self.anomalies}",
        ]
        if self.evicted or self.expired:
            lines.append(f"series dropped: {self.dropped_in_run()}")
        if run.top:
            lines.append("top series by anomalies:")
            lines.extend(f"  {count:>6}  {series_name(key)}" for count, key in run.top)
            more = run.anomalous - len(run.top)
            if more > 0:
                lines.append(f"  {'...':>6}  and {about}{more} more series")
        for line in lines:
            self.log.info(line)


class MetricSeries(Series):  # type: ignore[valid-type,misc]
    """The series of a ``scope = "metric"`` model: one per measurement + tag set."""

    __slots__ = ("fields",)

    def __init__(self, binding: Any, detector: Detector | None) -> None:
        """``binding``: its rule's, shared by the metric models of that rule (:meth:`Engine.bound`, field key
        ``"\\n"``)."""
        super().__init__(binding, detector)
        #: Field key -> whether the field goes to this model (the routing, decided once per key).
        self.fields: dict[bytes, bool] = {}
