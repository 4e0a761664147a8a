"""Explanations (``[output] explain``): the expected value, the band not flagged and the reason of a flag.

What a user relies on: the fields are off unless asked for; with them on,
the scores and flags are exactly those without them; every value is a finite
float written with a decimal point or exponent; the band is what the detector
would really not have flagged at that moment; a reason comes with every flag
and only with a flag; no name the metric already has is added.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import struct
import subprocess
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from conftest import RIVERGUARD, strip_added
from riverguard import config as rg_config
from riverguard.detectors import REGISTRY, Detector
from riverguard.detectors.base import REASONS, flagged
from riverguard._compiled import uncompiled
from riverguard.engine import Engine
from riverguard.lineprotocol import Splitter
from riverguard.state import StateStore
from riverguard.stream import feed

#: The detectors that give a band.
BANDED = ("sentinel", "context", "zscore", "pad", "hst")
DETECTORS = sorted(n for n in REGISTRY if n != "river")  # river needs a model spec: it does not explain (base class)
FIELD = re.compile(rb",([^,= ]+?)_anomaly_(expected|lower|upper|reason)=([^, ]+)")
FLOAT = re.compile(rb"-?[0-9]+(\.[0-9]+(e[-+][0-9]+)?|e[-+][0-9]+)\Z")


def _config(detector: str, *, explain: str = "[output]\nexplain = true\n", rule: str = "") -> rg_config.Config:
    return rg_config.parse(f'{explain}[[rule]]\nname = "all"\ndetector = "{detector}"\n{rule}')


def _stream(n: int = 600, seed: int = 3) -> bytes:
    """Two series with a daily wave, noise, a spike, a dip and a stuck stretch; one metric a minute."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        t = 1_700_000_000 + 60 * i
        wave = 50.0 + 10.0 * math.sin(2 * math.pi * i / 1440)
        v = wave + rng.gauss(0.0, 1.0)
        if i == n // 2:
            v += 40.0
        if i == n // 3:
            v -= 40.0
        if n // 2 + 50 <= i < n // 2 + 120:
            v = 42.0
        lines.append(b"m,host=a v=%r,w=%di %d\n" % (round(v, 3), rng.randrange(100), t * 10**9))
    return b"".join(lines)


def _engine(config: rg_config.Config, accelerate: bool = True) -> Engine:
    """An engine with the hot path as built (compiled when it could be), or its Python source."""
    return Engine(config) if accelerate else Engine(config, hotpath=uncompiled("_hotpath"))


def _run(engine: Engine, data: bytes) -> bytes:
    out, consumed, _ = feed(engine, data, final=True)
    assert consumed == len(data)
    return b"".join(out)


@pytest.mark.parametrize("accelerate", [False, True])
@pytest.mark.parametrize("name", DETECTORS)
def test_explaining_changes_no_score(name: str, accelerate: bool) -> None:
    """With explain on, removing the explanation fields gives the output of explain off, byte for byte."""
    data = _stream(400 if name == "hst" else 600)
    plain = _run(_engine(_config(name, explain=""), accelerate), data)
    explained = _run(_engine(_config(name), accelerate), data)
    assert explained != plain or name not in BANDED
    assert strip_added(explained) == strip_added(plain)
    assert strip_added(explained) == data
    # ... the score and flag fields themselves are untouched
    assert FIELD.sub(b"", explained) == plain


@pytest.mark.parametrize("name", DETECTORS)
def test_fields_are_finite_floats_and_reasons_come_with_flags(name: str) -> None:
    data = _stream(400 if name == "hst" else 600)
    out = _run(Engine(_config(name, rule="warmup = 20\n")), data)
    bands = reasons = 0
    for number, line in enumerate(out.splitlines()):
        found = {(key, kind): value for key, kind, value in FIELD.findall(line)}
        for key in (b"v", b"w"):
            flag = b",%s_anomaly=true" % key in line
            for kind in (b"expected", b"lower", b"upper"):
                value = found.get((key, kind))
                if value is not None:
                    assert FLOAT.match(value), line
                    assert math.isfinite(float(value)), line
            if number < 20:  # the rule's warm-up: the expected value only
                assert (key, b"lower") not in found and (key, b"upper") not in found, line
            lower, upper = found.get((key, b"lower")), found.get((key, b"upper"))
            if lower is not None and upper is not None:
                bands += 1
                assert float(lower) <= float(upper), line
            reason = found.get((key, b"reason"))
            assert (reason is not None) == (flag and name in BANDED), line
            if reason is not None:
                reasons += 1
                assert reason.strip(b'"').decode() in REASONS, line
    if name in BANDED:
        assert bands > 20 and reasons > 0


def test_off_by_default_and_per_rule() -> None:
    data = _stream(100)
    assert FIELD.search(_run(Engine(rg_config.default_config()), data)) is None
    # [output] explain = true, but this rule says no
    assert FIELD.search(_run(Engine(_config("zscore", rule="explain = false\n")), data)) is None
    # [output] says nothing, the rule says yes
    assert FIELD.search(_run(Engine(_config("zscore", explain="", rule="explain = true\n")), data)) is not None


@pytest.mark.parametrize("name", ["zscore", "pad"])
def test_band_is_what_would_not_be_flagged(name: str) -> None:
    """zscore's and pad's band is exact: just inside its edges not flagged, just outside flagged."""
    rng = random.Random(11)
    det: Detector = REGISTRY[name]()
    threshold = det.default_threshold if name == "zscore" else 0.9
    checked = 0
    for i in range(400):
        x = 20.0 + 5.0 * math.sin(i / 9.0) + rng.gauss(0.0, 0.5)
        band = det.explain(threshold)
        if band is not None and band[1] is not None and i > 10:
            expected, lower, upper = band
            assert lower <= expected <= upper
            width = upper - lower
            if width > 0.0:
                eps = 1e-6 * width
                for probe, flag in ((lower + eps, False), (upper - eps, False), (lower - eps, True), (upper + eps, True)):
                    assert flagged(det.score_one(probe), threshold) is flag, (i, probe, band)
                checked += 1
        det.process(x)
    assert checked > 300


def test_explain_learns_nothing() -> None:
    """Asking for an explanation leaves every detector's state as it was."""
    data = [10.0 + math.sin(i / 5.0) for i in range(300)]
    for name in BANDED:
        a, b = REGISTRY[name](), REGISTRY[name]()
        for i, x in enumerate(data):
            t = 1_700_000_000.0 + 60 * i
            a.explain(0.5, t)
            a.explain(0.9, t)
            assert a.process(x, t) == b.process(x, t), name


def test_hst_band_holds_its_expected_value() -> None:
    det = REGISTRY["hst"]()
    rng = random.Random(5)
    seen = bounded = 0
    for _ in range(400):
        band = det.explain(det.default_threshold)
        if band is not None:
            expected, lower, upper = band
            bounded += lower is not None and upper is not None
            assert not flagged(det.score_one(expected), det.default_threshold) or (lower is None and upper is None)
            if lower is not None:
                assert lower <= expected and not flagged(det.score_one(lower), det.default_threshold)
            if upper is not None:
                assert expected <= upper and not flagged(det.score_one(upper), det.default_threshold)
            seen += 1
        det.process(50.0 + rng.gauss(0.0, 1.0))
    assert seen > 150 and bounded >= 100  # (a band with no edges would pass the checks above unchecked)


def test_explanations_survive_a_restart(tmp_path) -> None:  # noqa: ANN001 - pytest's tmp_path
    """A series restored from a checkpoint keeps explaining, with the same fields as without the restart."""
    config = _config("zscore", rule="warmup = 5\n")
    data = _stream(200)
    cut = data.index(b"\n", len(data) // 2) + 1
    whole = _run(Engine(config), data)
    first = Engine(config)
    head = _run(first, data[:cut])
    assert StateStore(first, tmp_path / "s.msgpack").save()
    second = Engine(config)
    assert StateStore(second, tmp_path / "s.msgpack").restore() == 2
    assert head + _run(second, data[cut:]) == whole


@pytest.mark.parametrize("accelerate", [False, True])
def test_points_scored_with_explanations_are_learned_as_scoring_them(accelerate: bool) -> None:
    """``pull`` learns a point scored already (:meth:`Engine.unlearned`, then :meth:`Engine.learn`, which neither
    writes nor explains): the models end as those that scored the points, and score what follows alike."""
    config = _config("sentinel", rule="warmup = 5\n")
    data = _stream(400)
    cut = data.index(b"\n", len(data) // 2) + 1
    whole = _run(_engine(config, accelerate), data)
    scored = _run(_engine(config, accelerate), data[:cut])
    assert whole.startswith(scored) and b"_reason=" in scored and b"_upper=" in scored
    learner = _engine(config, accelerate)
    for line in scored.splitlines():
        point = learner.unlearned(line)
        assert point is not None
        learner.learn(point)
    assert learner.unlearned(scored.splitlines()[-1]) is None  # (seen: never learned twice)
    assert learner.metrics == scored.count(b"\n")
    assert _run(learner, data[cut:]) == whole[len(scored):]

def test_no_added_name_duplicates_a_field() -> None:
    config = _config("zscore", rule="warmup = 0\n")
    engine = Engine(config)
    _run(engine, b"m v=1 1\nm v=2 2\nm v=1.5 3\n")
    out = _run(engine, b"m v=1.2,v_anomaly_expected=7,v_anomaly_lower=1,v_anomaly_upper=2,v_anomaly_reason=\"x\" 4\n"
                       b"m v=90,v_anomaly_reason=\"mine\" 5\n")
    first, second = out.splitlines()
    for line in (first, second):
        keys = [f.split(b"=")[0] for f in line.split(b" ")[1].split(b",")]
        assert len(keys) == len(set(keys)), line
    assert b"v_anomaly=true" in second and b'v_anomaly_reason="mine"' in second
    # a user's field that only looks like an explanation is scored as any field
    assert b"v_anomaly_expected_anomaly_score=" in first


def test_explanation_values_added_upstream_are_not_scored() -> None:
    engine = Engine(_config("zscore", rule="warmup = 0\n"))
    line = b"m v=1.5,v_anomaly_score=0.1,v_anomaly=false,v_anomaly_expected=1.4,v_anomaly_lower=1,v_anomaly_upper=2 1\n"
    assert _run(engine, line) == line
    assert not engine.series


def test_a_flag_or_reason_added_upstream_is_not_scored_whatever_its_type() -> None:
    """Next to its field's score, a field named as riverguard's flag or reason is riverguard's by its name,
    as for the explanation values: not scored (as ``pull`` does not learn from it), even as a number."""
    engine = Engine(_config("zscore", rule="warmup = 0\n"))
    line = b"m v=1.5,v_anomaly_score=0.1,v_anomaly=1i,v_anomaly_reason=2 1\n"
    assert _run(engine, line) == line
    assert not engine.series

@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[output]\nexplain = "yes"\n', ["[output]", "key 'explain'", "true or false"]),
        ('[[rule]]\nname = "r"\nexplain = 1\n', ['rule 1 "r"', "key 'explain'"]),
        ('[output]\nscore_suffix = "_anomaly_upper"\n', ["[output]", "key 'score_suffix'", "_anomaly_upper"]),
    ],
)
def test_bad_explain_settings_are_refused(text: str, where: list[str]) -> None:
    with pytest.raises(rg_config.ConfigError) as err:
        rg_config.parse(text)
    for fragment in where:
        assert fragment in str(err.value)


def test_custom_flag_suffix_names_the_fields() -> None:
    config = rg_config.parse('[output]\nexplain = true\nflag_suffix = "_odd"\n[[rule]]\ndetector = "zscore"\nwarmup = 0\n')
    out = _run(Engine(config), b"m v=1 1\nm v=2 2\nm v=1.5 3\n")
    assert b",v_odd_expected=" in out and b",v_odd_lower=" in out and b",v_odd_upper=" in out


def test_splitter_sees_one_metric_per_line() -> None:
    """The reason is a quoted string without spaces, commas or quotes: the output stays one metric per line."""
    out = _run(Engine(_config("zscore", rule="warmup = 0\n")), b"m v=1 1\nm v=1.1 2\nm v=1.05 3\nm v=90 4\n")
    records, _, _ = Splitter().split(out, final=True)
    assert len(records) == 4 and all(r.metric is not None for r in records)
    assert b'v_anomaly_reason="spike"' in out


# -- sentinel and context: the steps pipeline -----------------------------------------------------------

PIPELINES = ("sentinel", "context")
#: sha256 (first 16 hex digits) of their output on _stream(600) with warmup = 20, explain off, as main
#: wrote it before they explained themselves (a522b83; the same at 9488523: 8fc2a394874f30ed and
#: 61ebcb994c6640b5), since the stuck step's repeat statistics remember two days of event time:
#: the stuck stretch's scores rise a little sooner (0.118 rather than 0.107 at its second sample), the
#: same two flags each.
SENTINEL_DIGEST = "c2ab16b3fc5cb7f1"
CONTEXT_DIGEST = "2fdf2647ec15d6be"


def _restless(n: int, seed: int) -> list[float]:
    """A daily wave with level steps, bursts of noise, rare spikes and a stuck stretch (600 s apart)."""
    rng = random.Random(seed)
    level, out = 50.0, []
    for i in range(n):
        if i % 700 == 350:
            level += rng.choice([-3.0, 3.0])
        x = level + 10.0 * math.sin(2 * math.pi * i / 144) + rng.gauss(0.0, 1.0 if i % 1000 < 900 else 4.0)
        if rng.random() < 0.002:
            x += rng.choice([-40.0, 40.0])
        if 3000 <= i < 3050:
            x = 47.0
        out.append(round(x, 2))
    return out


def _probe_band(det: Detector, band: tuple[float, float | None, float | None], threshold: float,
                t: float | None, where: object) -> bool:
    """Just inside each edge of ``band`` not flagged, just outside flagged (``det.score_one``; a repeat of the
    last value excepted: stuck); True if every value would be flagged (the edges meet)."""
    expected, lower, upper = band
    meet = lower is not None and upper is not None and lower == upper
    if meet:  # every value would be flagged: the probes on either side are
        probes = [(lower - 1e-6, True), (upper + 1e-6, True)]
    else:
        eps = 1e-7 * (upper - lower if lower is not None and upper is not None else abs(expected) + 1.0)
        probes = []
        if lower is not None:
            probes += [(lower + eps, False), (lower - eps, True)]
        if upper is not None:
            probes += [(upper - eps, False), (upper + eps, True)]
    for probe, flag in probes:
        if probe != det.stuck._prev:
            assert flagged(det.score_one(probe, t), threshold) is flag, (where, probe, band)
    return meet


@pytest.mark.parametrize(
    ("spike", "spike_time", "extreme_time"),
    [(0.0, 0.0, 0.0), (4.0, 0.0, 0.0), (4.0, 1200.0, 0.0), (0.0, 0.0, 1200.0), (12.0, 0.0, 1200.0),
     (12.0, 1800.0, 1200.0)],
)
@pytest.mark.parametrize("threshold", [0.5, 0.3])
@pytest.mark.parametrize("stamped", [True, False])
@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_band_is_exact(
    name: str, stamped: bool, threshold: float, spike: float, spike_time: float, extreme_time: float
) -> None:
    """Just inside each edge not flagged, just outside flagged (a repeat of the last value excepted: stuck).

    The band covers every step that reads the value (prediction error of the
    series and of the hour, the surprise of each level, new extremes,
    time-of-day extremes, and spikes when the rule sets ``spike``) and the
    suppression in progress; at 0.3 the likelihood's part (the surprise
    levels included) narrows it often. With ``spike = 4`` the spike step's
    bound is the edge in hundreds of probes: at 0.3 also in suppressions
    (0.9 damped to 0.45 is flagged), at 0.5 not there, where a spike instead
    hides a time-of-day extreme that would have got through. With
    ``spike_time = 1200`` (two samples) the bound is the edge only while a
    spike has already lasted a sample; without event times one sample is
    enough. With ``extreme_time = 1200`` a value beyond the range is a new
    extreme only in an excursion that has lasted a sample already, or if it
    is also a spike (with ``spike = 12``, the edge is then the farther of
    the two bounds).
    """
    det = REGISTRY[name](learn=100, spike=spike, spike_time=spike_time, extreme_time=extreme_time, spread=0.0)
    gated = 0
    lasting = 0
    checked = zero_width = spiky = 0
    for i, x in enumerate(_restless(4000, seed=2)):
        t = 1_700_000_000.0 + 600 * i if stamped else None
        band = det.explain(threshold, t)
        if band is not None and i % 3 == 0 and (band[1] is not None or band[2] is not None):
            expected, lower, upper = band
            if spike:  # the spike step's bound: reach() mads from its mean
                step = det.spikes
                reach = max(step.spike, step.spike_record * step._top) * max(step._mad, 1e-9 * abs(step._mean))
                spiky += lower == step._mean - reach or upper == step._mean + reach
                lasting += t is not None and step._run + 600.0 >= 1200.0  # (a sample stands for its 600 s)
            gated += t is not None and det.extremes._run + 600.0 < extreme_time
            zero_width += _probe_band(det, band, threshold, t, i)
            checked += 1
        det.process(x, t)
    assert checked > (300 if extreme_time and not spike and stamped else 1000)  # (the gate leaves many bands open)
    if extreme_time and stamped:  # (a rough count: the gate also allows half the usual interval of slack)
        assert gated > 200
    if not spike:
        assert spiky == 0
    elif spike_time and stamped and not extreme_time:  # only while a spike lasts can its bound be an edge
        assert 0 < spiky <= lasting < checked // 10, (spiky, lasting)
    elif spike_time and stamped:  # ... or, beyond the range, while an excursion has not lasted (the exception)
        assert lasting < checked // 10 and spiky > lasting, (spiky, lasting)
    else:  # one sample is enough (without event times: samples only)
        assert spiky > (100 if spike == 4.0 else 0), spiky


def _shift_edges(det: Detector, t: float) -> tuple[float, float]:
    """Where the shift step would flag the next value, sampled at ``t`` (docs/detection.md, "Level shifts"):
    at or above the first, at or below the second (inf: no value), once its shift has lasted."""
    step, state = det.shifts, det.state_by_name()
    lmean = step._long
    unit = max(step._dev, 1e-9 * abs(lmean))
    span = min(t - state["t1"], 2 * state["gap"])
    window = max(step.shift_time, step.shift_samples * state["gap"])
    a = max(span / (window + span), 1.0 / state["n"])
    r = max(step.shift, step.shift_record * step._top) * unit
    up, down = r - (step._mean - lmean), -r - (step._mean - lmean)
    hu = math.inf if up > unit else (step._mean + up / a if up > -unit else -math.inf)
    hl = -math.inf if down < -unit else (step._mean + down / a if down < unit else math.inf)
    return max(hu, step._mean), min(hl, step._mean)


@pytest.mark.parametrize("step", [1, 10, 60])
def test_the_band_of_an_exact_zero_is_zero(step: int) -> None:
    """Hours of exactly 0.0 (a day at 60 s): every other value, however near, is a spike, and so a new extreme
    at once; the band is [0, 0] at every sampling, and the values just off it are flagged (0.0 itself is a
    repeat, judged by the stuck step)."""
    det = REGISTRY["sentinel"]()
    t0 = 1_700_000_000.0
    n = int((0.1 if step < 60 else 1.0) * 86400 / step)
    for i in range(n):
        det.process(0.0, t0 + step * i)
    t = t0 + step * n
    band = det.explain(0.5, t)
    assert band is not None and band[1] == band[2] == 0.0, band
    assert _probe_band(det, band, 0.5, t, step)


@pytest.mark.parametrize("last", [30.0, 0.0])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_pipeline_band_is_exact_with_level_shifts(threshold: float, last: float) -> None:
    """A sensor sampled every second (AR noise) whose level rises or falls (in turn) by 4 sd for 4 minutes once an hour, for 6
    hours: the band's edges are exact (probed at every sample near a shift or while one is on, at every 50th
    otherwise),
    also where the shift step's bound is the edge, which happens at each report of a shift (once per shift:
    after it the step waits for the level to come back). With ``shift_time_last`` 30 s the edge is then the
    recent level (the value must be as far out); with 0 it is also where the value would move the level
    far enough, on either side."""
    det = REGISTRY["sentinel"](shift_time_last=last)
    reports, checked, shifty = _probe_hourly_incidents(
        det, threshold, last, lambda e, i: e + ((2.0 if i // 3600 % 2 else -2.0) if i % 3600 >= 3360 else 0.0),
        det.shifts, lambda t: _shift_edges(det, t)[::-1], "level_shift",
    )
    assert len(reports) >= 5 and checked > 1000, (reports, checked)
    assert shifty >= 5, shifty


def _probe_hourly_incidents(det: Detector, threshold: float, last: float, incident: Callable[[float, int], float],
                            step: Any, edges: Callable[[float], tuple[float, float]], reason: str
                            ) -> tuple[list[int], int, int]:
    """6 hours at 1 s of AR noise (sd 0.5 around 20, seeded) with ``incident(e, i)`` in place of the noise ``e``
    at sample ``i``, through ``det``: the band probed (:func:`_probe_band`) at every sample near an incident (the last
    5 minutes of each hour) or while ``step`` has one on, at every 50th otherwise. The samples flagged with
    ``reason``; the bands probed; and how many of them had an edge at ``edges(t)`` (lower, upper: where
    ``step`` would flag the next value) once its incident had lasted ``last`` seconds."""
    rng = random.Random(3)
    ar = 0.0
    checked = at_edge = 0
    reports = []
    for i in range(6 * 3600):
        ar = 0.9 * ar + 0.44 * rng.gauss(0.0, 1.0)
        x = round(20.0 + incident(0.5 * ar, i), 3)
        t = 1_700_000_000.0 + i
        on = i % 3600 >= 3300 or step._run != 0.0  # (near an incident, or one on: -1, reported)
        band = det.explain(threshold, t) if on or i % 50 == 0 else None
        if band is not None and (band[1] is not None or band[2] is not None):
            _probe_band(det, band, threshold, t, i)
            checked += 1
            if step._run + 1.0 >= last:  # (the incident has lasted: its bound may be an edge)
                lo, hi = edges(t)
                at_edge += band[1] == lo or band[2] == hi
        if det.process(x, t) >= threshold and det.reason(x) == reason:
            reports.append(i)
    return reports, checked, at_edge


def _spread_edges(det: Detector, t: float) -> tuple[float, float]:
    """Where the spread step would flag the next value, sampled at ``t`` (docs/detection.md, "Bursts of
    change"): at or below the first, at or above the second (a change from the latest value of the needed
    size or more; inf: no value), once its burst has lasted."""
    step, state = det.spreads, det.state_by_name()
    unit = max(step._dev, 1e-9 * abs(step._long))
    span = min(t - state["t1"], 2 * state["gap"])
    window = max(det.shift_time, det.shift_samples * state["gap"])
    a = max(span / (window + span), 1.0 / state["n"])
    up = max(det.spread, det.shift_record * step._top) * unit - (step._mean - step._long)
    if up > unit:
        return -math.inf, math.inf
    need = max(step._mean + up / a if up > -unit else step._mean, step._mean)
    return det.stuck._prev - need, det.stuck._prev + need


@pytest.mark.parametrize("last", [30.0, 0.0])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_pipeline_band_is_exact_with_bursts_of_change(threshold: float, last: float) -> None:
    """A sensor sampled every second (AR noise) whose noise is 3 times as large for 4 minutes once an hour,
    for 6 hours: each burst is reported (reason ``volatility``) and the band's edges are exact (probed at
    every sample near a burst or while one is on, at every 50th otherwise), also where the spread step's
    bound is the edge: a change from the latest value large enough to complete the burst (``spread = 8``:
    at the default 10, one burst in 6 is not reported)."""
    det = REGISTRY["sentinel"](shift_time_last=last, spread=8.0)
    reports, checked, edges = _probe_hourly_incidents(
        det, threshold, last, lambda e, i: e * (3.0 if i % 3600 >= 3360 else 1.0),
        det.spreads, lambda t: _spread_edges(det, t), "volatility",
    )
    assert len({i // 3600 for i in reports}) == 6 and checked > 1000, (reports, checked)
    assert edges >= 5, edges


def _counter_edge(det: Detector, t: float) -> float:
    """Where the counter step would flag the next value, sampled at ``t`` (docs/detection.md, "Counters"): above
    the latest value by the bar (``counter_burst`` times the largest peak of the recent increase) less what
    is left of the recent increase after the interval."""
    step, state = det.counter, det.state_by_name()
    span = min(t - state["t1"], 2 * state["gap"])
    window = max(det.shift_time, det.shift_samples * state["gap"])
    w = span / (window + span)
    a = min(w, 1.0) if w * state["n"] >= 1.0 else 1.0 / state["n"]
    return step._last + det.counter_burst * step._top - step._rise * (1.0 - a)


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_pipeline_band_is_exact_for_a_counter(threshold: float) -> None:
    """An error counter every 10 s for 4 days (+1 with a chance of one in 4 hours a sample), from the third
    day (once it counts: a day without a fall) with a burst every 6 hours, 20 errors at once or one a sample
    for 5 minutes in turn: every burst is
    reported (reason ``burst``) and the band's edges are exact (probed at every sample of the hour around a
    burst, at every 20th otherwise), also where the counter step's bound is the upper edge, and no new high is
    an edge once the series counts (a counter's new high is how it counts)."""
    det = REGISTRY["sentinel"]()
    rng = random.Random(5)
    v = 40.0
    reports = []
    checked = at_edge = 0
    for i in range(4 * 8640):
        t = 1_700_000_000.0 + 10.0 * i
        v += rng.random() < 1 / 1440
        phase = i % 2160
        if i >= 2 * 8640 and phase == 0 and i // 2160 % 2:
            v += 20.0
        elif i >= 2 * 8640 and phase < 30 and not i // 2160 % 2:
            v += 1.0
        near = i >= 2 * 8640 and (phase < 180 or phase > 1980)
        band = det.explain(threshold, t) if near or i % 20 == 0 else None
        if band is not None and (band[1] is not None or band[2] is not None) and not (
            band[1] is not None and band[2] is not None and 0.0 < band[2] - band[1] < 1e-9 * abs(band[0])
        ):  # (a band of a few ulps, around a value the exact counter sits at, rounds the probes onto its edges)
            _probe_band(det, band, threshold, t, i)
            checked += 1
            ctr, gap = det.counter, det.state_by_name()["gap"]
            counts = ctr is not None and ctr._rises >= 3 and ctr._since >= max(det.counter_time, 20 * gap)  # (Counter.counts)
            at_edge += counts and band[2] == _counter_edge(det, t)
        if flagged(det.process(v, t), threshold) and det.reason(v) == "burst":
            reports.append(i)
    assert {i // 2160 for i in reports} == set(range(8, 16)), reports
    assert checked > 2000 and at_edge >= 100, (checked, at_edge)


def test_pipeline_band_is_exact_where_a_burst_of_change_hides_an_hour() -> None:
    """White noise (sd 1) every 10 s for 8 days, then every 3 hours a value 30 sd up (beyond the range and a
    spike: reported at once, which starts a suppression) and, 5 minutes later, 10 minutes of noise 4 times
    as large. The spread step reports the burst inside the suppression, damped (0.9 to 0.45: not flagged at
    0.5); a value beyond the hour slot's range that also completes the burst is reported as the burst,
    damped, not as a time-of-day extreme that would get through (0.6). The band knows (gmask)."""
    det = REGISTRY["sentinel"](shift=0.0)
    checked, hidden, damped = _probe_incidents_in_suppressions(det, lambda e, _cycle: 3.0 * e, "volatility")
    assert checked >= 1000 and hidden >= 1 and damped >= 1, (checked, hidden, damped)


def _probe_incidents_in_suppressions(det: Detector, incident: Callable[[float, int], float], reason: str
                                     ) -> tuple[int, int, int]:
    """White noise ``e`` (sd 1) every 10 s for 8 days, then every 3 hours a value 30 sd up and, 5 minutes
    later, ``incident(e, cycle)`` added for 10 minutes (``cycle``: the how-manyth 3 hours), through ``det``,
    the band probed in every suppression (:func:`_probe_if_suppressed`): the bands probed, the values beyond
    the hour's range not flagged, and the reports of the incident (``reason``) damped."""
    rng = random.Random(0)
    checked = hidden = damped = 0
    for i in range(int(8.5 * 8640)):
        t = 1_700_006_400.0 + 10.0 * i
        e = rng.gauss(0.0, 1.0)
        x = 50.0 + e
        if i >= 8 * 8640:
            phase, cycle = (i - 8 * 8640) % 1080, (i - 8 * 8640) // 1080
            x += 30.0 if phase == 0 else incident(e, cycle) if 30 <= phase < 90 else 0.0
        x = round(x, 3)
        probed, beyond = _probe_if_suppressed(det, 0.5, t, i)
        checked += probed
        hidden += beyond  # (values beyond the hour's range not flagged)
        score = det.process(x, t)
        damped += score == det.shift_score * det.damp and det.reason(x) == reason
    return checked, hidden, damped


def _hour_edges(det: Detector, t: float) -> tuple[float, float] | None:
    """Beyond which values the time-of-day slot of ``t`` would score ``day_score`` (docs/detection.md, step 3),
    or None while the slot is not checked (fewer than ``day_visits`` passes, or too narrow a spread)."""
    state = det.state_by_name()
    day, ext = state["day"], state["extremes"]
    days, rest = divmod(t, 86400.0)
    slot = min(int(rest // (86400.0 / det.day_slots)), det.day_slots - 1)
    if det.weekend_slots and (int(days) + 3) % 7 >= 5:
        slot += det.day_slots
    lo, hi = (struct.unpack_from("<d", day[k], 8 * slot)[0] for k in ("lo", "hi"))
    span = ext["hi"] - ext["lo"]
    if day["visits"][slot] < det.day_visits or not hi - lo > det.day_width * span:
        return None
    lam = det.value_long if state["n"] * det.value_long > 1.0 else 1.0 / state["n"]
    shrink, base = (1.0 - lam, ext["lmean"]) if det.day_detrend else (1.0, 0.0)
    margin = det.day_margin * span
    return base + (lo - margin) / shrink, base + (hi + margin) / shrink


def _probe_if_suppressed(det: Detector, threshold: float, t: float, where: object) -> tuple[bool, bool]:
    """In a suppression, :func:`_probe_band` the band at ``threshold``: whether it was probed, and whether it
    reaches beyond the range of the hour (where a time-of-day extreme would get through, unless hidden)."""
    if det.suppression._quiet <= 0:
        return False, False
    band = det.explain(threshold, t)
    if band is None or (band[1] is None and band[2] is None):
        return False, False
    _probe_band(det, band, threshold, t, where)
    hour = _hour_edges(det, t) if not det.suppression._qday else None
    edges = hour is not None and band[1] is not None and band[2] is not None
    return True, edges and (band[1] < hour[0] or band[2] > hour[1])


def test_pipeline_band_is_exact_where_a_new_extreme_hides_an_hour() -> None:
    """Threshold 0.55, per-minute AR noise for 16 days, then for 5 days a level 3 sd higher or lower, in turn,
    from 10:00 to 11:00 and 12:00 to 16:00: inside a suppression that something else started, a time-of-day
    extreme (0.6) gets through and is flagged, but a value that is also a new extreme scores 1.0 damped to 0.5
    and is not. The band (probed at every sample of the suppression) knows the new extreme hides the hour, as
    a spike or a level shift does (before it knew, the review's probe at every sample of these 16 days found
    173 wrong bands; this test fails at sample 18 012 then). ``extreme_time`` 30 s: a lone value is a new
    extreme at one sample a minute, as it was by default when the review found this (by default now an
    excursion must span two samples, and the lone record at 10:18 that starts the suppression is learned).
    ``peak = 0``: the views step off, as when the review found this (with it, no view backs these hours, so
    neither the hour nor the new extreme counts: ``test_pipeline_band_is_exact_with_views``)."""
    rng = random.Random(0)
    det = REGISTRY["sentinel"](extreme_time=30.0, peak=0.0)
    ar = 0.0
    checked = 0
    for i in range(16 * 1440):
        t = 1_700_000_000.0 + 60.0 * i
        ar = 0.8 * ar + 0.6 * rng.gauss(0.0, 1.0)
        h = t % 86400 / 3600
        up = i * 60 > 11 * 86400 and (10 <= h < 11 or 12 <= h < 16)
        x = round(50 + ar + ((3.0 if int(t // 86400) % 2 else -3.0) if up else 0.0), 3)
        checked += _probe_if_suppressed(det, 0.55, t, i)[0]
        det.process(x, t)
    assert checked >= 300, checked  # (one suppression of 400 samples)


@pytest.mark.parametrize(("name", "step"), [("sentinel", 10.0), ("context", 60.0)])
def test_pipeline_band_is_exact_where_the_likelihood_hides_an_hour(name: str, step: float) -> None:
    """A level of 50 before noon (UTC) and 60 after, noise of sd 1, for 9.5 days: each midnight's drop is
    reported (the likelihood), and in the suppression it starts a value beyond the hour's range would be a
    time-of-day extreme (0.6) that gets through; but the value's error also raises the likelihood, which
    outscores the hour from ``day_score`` up (0.64 at sentinel's first such sample, the 77 768th), so the pipeline
    reports the likelihood instead, damped (0.32), and nothing is flagged. The band (probed at every sample of
    the suppressions) knows the likelihood hides the hour, as a spike, a level shift or a new extreme does;
    before it knew, it ended at the hour's range there: a randomized probe of such series at 10 s (every
    sample, 4 seeds, 3 thresholds) found 32 wrong bands in 1.2 million for sentinel and 416 for context,
    and this test failed at sentinel's sample 77 768 and context's 11 526."""
    rng = random.Random(0)
    det = REGISTRY[name]()
    checked = hidden = 0
    for i in range(int(9.5 * 86400 / step)):
        t = 1_700_006_400.0 + step * i  # (midnight UTC)
        x = round((50.0 if t % 86400 < 43200 else 60.0) + rng.gauss(0.0, 1.0), 3)
        probed, beyond = _probe_if_suppressed(det, 0.5, t, i)
        checked += probed
        hidden += beyond  # (values beyond the hour's range not flagged)
        det.process(x, t)
    assert checked >= 1000 and hidden >= 1, (checked, hidden)  # (the case is there: sentinel 3, context 20)


def test_pipeline_band_is_exact_where_a_level_shift_hides_an_hour() -> None:
    """White noise (sd 1) every 10 s for 8 days, then every 3 hours a value 30 sd up (beyond the range and a
    spike: reported at once as a new extreme, which starts a suppression) and, 5 minutes later, a level 3 sd
    lower or higher, in turn, for 10 minutes. The shift step reports that level inside the suppression, damped
    (0.9 to 0.45: not flagged at 0.5). At that sample a value beyond the hour slot's range would be a
    time-of-day extreme that gets through (0.6), but it also completes the shift, which outscores it and is
    damped: not flagged. The band knows the shift hides the hour (hmask); without it the band ended at the
    hour's range there, and this test failed at sample 69 161."""
    det = REGISTRY["sentinel"]()
    checked, hidden, damped = _probe_incidents_in_suppressions(
        det, lambda _e, cycle: 3.0 if cycle % 2 else -3.0, "level_shift"
    )
    assert checked >= 1000 and hidden >= 1 and damped >= 1, (checked, hidden, damped)


def test_pipeline_band_omitted_while_learning() -> None:
    """Before ``learn`` samples nothing is flagged: the expected value only, never a band, never NaN."""
    for name in PIPELINES:
        det = REGISTRY[name](learn=50)
        assert det.explain(0.5) is None  # nothing seen yet
        for i in range(120):
            band = det.explain(0.5, 60.0 * i)
            if 0 < i < 50:
                assert band is not None and band[1] is None and band[2] is None and math.isfinite(band[0])
            if i > 60:
                assert band is not None and band[1] is not None and band[2] is not None
            det.process(10.0 + math.sin(i), 60.0 * i)


def _first_reasons(name: str, values: list[float], times: list[float] | None = None) -> list[tuple[int, str]]:
    det = REGISTRY[name]()
    out = []
    for i, x in enumerate(values):
        t = None if times is None else times[i]
        band = det.explain(det.default_threshold, t)
        if flagged(det.process(x, t), det.default_threshold):
            out.append((i, det.reason(x, band)))
    return out


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_reasons_name_the_evidence(name: str) -> None:
    rng = random.Random(4)
    base = [50.0 + rng.gauss(0.0, 1.0) for _ in range(1500)]
    spike, dip, stuck, shift = list(base), list(base), list(base), list(base)
    spike[1000] += 15.0
    dip[1000] -= 15.0
    stuck[1000:1100] = [stuck[999]] * 100
    for i in range(1000, 1500):
        shift[i] += 2.5  # within the range seen: flagged once the level has moved
    assert _first_reasons(name, spike) == [(1000, "spike")]
    assert _first_reasons(name, dip) == [(1000, "dip")]
    assert [why for _, why in _first_reasons(name, stuck)] == ["stuck"]
    flags = _first_reasons(name, shift)
    assert flags and all(i > 1000 and why == "level_shift" for i, why in flags)
    # hourly, busy from 9 to 17 each day; one day's afternoon stays quiet
    hours = 24 * 40
    times = [1_700_000_000.0 + 3600 * i for i in range(hours)]
    daily = [50.0 + (20.0 if 9 <= i % 24 < 17 else 0.0) + rng.gauss(0.0, 1.0) for i in range(hours)]
    for i in range(24 * 35 + 10, 24 * 35 + 14):
        daily[i] -= 20.0
    assert _first_reasons(name, daily, times) == [(24 * 35 + 10, "time_of_day")]


@pytest.mark.parametrize("params", [{}, {"spike": 4.0}, {"spike": 12.0, "spike_record": 0.0, "spike_score": 1.0}])
def test_pipeline_explanations_same_compiled_and_pure(params: dict) -> None:
    """One source: the compiled and the uncompiled detector explain with the very same doubles."""
    for name in PIPELINES:
        compiled = REGISTRY[name](learn=100, **params)
        pure = getattr(uncompiled(f"detectors.{name}"), type(compiled).__name__)(learn=100, **params)
        for i, x in enumerate(_restless(2500, seed=9)):
            t = 1_700_000_000.0 + 600 * i if i % 2 else None
            for threshold in (0.5, 0.3):
                assert compiled.explain(threshold, t) == pure.explain(threshold, t), (name, i)
            assert compiled.process(x, t) == pure.process(x, t)
            assert compiled.reason(x) == pure.reason(x)


@pytest.mark.parametrize("name", PIPELINES)
def test_rules_explained_interleaved_explain_as_each_alone(name: str) -> None:
    """A rule's limits for explaining are kept in its settings: two rules whose thresholds, ``pmin`` and ``damp``
    differ, their series explained one after the other (as the engine does), explain exactly as each alone."""
    cls = REGISTRY[name]
    rules = [(0.5, {"learn": 100}), (0.9, {"learn": 100, "pmin": 1e-10, "damp": 0.2})]
    data = _restless(2500, seed=5)

    def run(which: list[int]) -> dict[int, list]:
        made = {k: cls.factory(rules[k][1])() for k in which}
        out: dict[int, list] = {k: [] for k in which}
        for i, x in enumerate(data):
            t = 1_700_000_000.0 + 600 * i
            for k in which:
                out[k].append(made[k].explain(rules[k][0], t))
                made[k].process(x if k == 0 else 2.0 * x, t)
        return out

    both = run([0, 1])
    assert both[0] == run([0])[0] and both[1] == run([1])[1]
    halved = [None if e is None else tuple(None if v is None else v / 2.0 for v in e) for e in both[1]]
    assert sum(a != b for a, b in zip(both[0], halved)) > 1000  # (the two rules' bands differ)


def test_band_text_is_what_percent_g_writes() -> None:
    """The compiled hot path's fast conversion of band values gives ``%.12g``'s bytes (and ``.0``)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from riverguard import _hotpath

    def want(v: float) -> bytes:
        text = b"%.12g" % v
        return text if b"." in text or b"e" in text else text + b".0"

    tricky = [9.9999999999995, 9.99999999999949, 99999999999.99999, 1e-4, 9.99999999999e-5, 1e11, 1e15, -0.0,
              0.0, 5e-324, 123456789012.5, 0.1 + 0.2, 1e14 * (1 - 1e-16), 1000.0 * (1 + 2.3e-16)]
    for v in tricky + [10.0 ** k * f for k in range(-6, 16) for f in (1.0, 1.0 - 1e-15, 1.0 + 1e-15, -1.0)]:
        assert _hotpath.format_band(v) == want(v), v

    @settings(max_examples=3000, deadline=None)
    @given(st.floats(allow_nan=False, allow_infinity=False) | st.floats(min_value=-1e16, max_value=1e16))
    def same(v: float) -> None:
        assert _hotpath.format_band(v) == want(v)

    same()


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure"])
@pytest.mark.parametrize("name", ["context", "pad"])
def test_a_narrow_band_around_1e14_is_written_with_distinct_edges(tmp_path, name: str, pure: bool) -> None:  # noqa: ANN001
    """Around 1e14 two floats are 1/64 apart: a band a few of them wide was written at 12 significant
    digits as ``lower=1e+14`` and ``upper=1e+14``, though they differed (and a value outside it read as
    flagged inside its own band). Now a band whose values 12 digits do not tell apart is written with each
    value's shortest repr, which reads back as that float: lower < upper, the expected value between them,
    from either hot path (a real ``replay``). A band at an everyday scale keeps 12 digits at most."""
    rng = random.Random(5)
    lines = []
    for i in range(400):
        t = (1_700_000_000 + 10 * i) * 10**9
        lines.append(b"big v=%r %d\n" % (1e14 + rng.randrange(8) / 64, t))
        lines.append(b"small v=%r %d\n" % (50.0 + rng.gauss(0.0, 1.0) / 3, t))
    given = tmp_path / "in.lp"
    given.write_bytes(b"".join(lines))
    config = tmp_path / "riverguard.toml"
    config.write_text(f'[output]\nexplain = true\n[[rule]]\nname = "all"\ndetector = "{name}"\n')
    env = {**os.environ, "RIVERGUARD_PURE_PYTHON": "1"} if pure else {k: v for k, v in os.environ.items()
                                                                       if k != "RIVERGUARD_PURE_PYTHON"}
    result = subprocess.run([*RIVERGUARD, "replay", "--config", str(config), str(given)], capture_output=True,
                            timeout=120, env=env, check=False)
    assert result.returncode == 0, result.stderr
    banded = Counter()
    for line in result.stdout.splitlines():
        fields = {m.group(2).decode(): m.group(3) for m in FIELD.finditer(line)}
        if "lower" not in fields or "upper" not in fields:
            continue
        lower, expected, upper = (float(fields[k]) for k in ("lower", "expected", "upper"))
        if line.startswith(b"big "):
            assert fields["lower"] != fields["upper"] and lower < expected < upper, line
            assert all(abs(float(fields[k]) - 1e14) < 1.0 for k in ("lower", "expected", "upper")), line
        else:  # (no 13th digit: %.12g's text)
            assert all(fields[k] == b"%.12g" % float(fields[k]) or fields[k] == b"%.12g.0" % float(fields[k])
                       for k in ("lower", "expected", "upper")), line
        banded[line.split(b" ", 1)[0]] += 1
    assert banded[b"big"] >= 150 and banded[b"small"] >= 150, banded


def test_pipeline_explain_off_is_todays_output() -> None:
    """With explain off, sentinel's and context's output is byte for byte what it was before explanations."""
    data = _stream(600)
    for name in PIPELINES:
        out = _run(Engine(_config(name, explain="", rule="warmup = 20\n")), data)
        assert FIELD.search(out) is None
        digest = hashlib.sha256(out).hexdigest()[:16]
        assert digest == {"sentinel": SENTINEL_DIGEST, "context": CONTEXT_DIGEST}[name], (name, digest)


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_fields_same_from_either_hot_path(name: str) -> None:
    """The compiled hot path reads the pipeline's explanation in C; the Python one asks explain(): same bytes."""
    data = _stream(600)
    config = _config(name, rule="warmup = 20\n")
    out = _run(_engine(config, True), data)
    assert out == _run(_engine(config, False), data)
    assert b"v_anomaly_lower=" in out and b"v_anomaly_reason=" in out


@pytest.mark.parametrize("accelerate", [False, True])
@pytest.mark.parametrize("name", DETECTORS)
def test_a_config_reload_keeps_models_and_what_they_write(name: str, accelerate: bool) -> None:
    """SIGHUP's reload with the same config (explain on): every kept series goes on writing what it
    would have written without the reload, also one whose detector does not explain itself (yet)."""
    config = _config(name, rule="warmup = 5\n")
    data = _stream(300)
    cut = data.index(b"\n", len(data) // 2) + 1
    whole = _run(_engine(config, accelerate), data)
    engine = _engine(config, accelerate)
    head = _run(engine, data[:cut])
    assert engine.reconfigure(_config(name, rule="warmup = 5\n")) == (2, Counter())
    assert head + _run(engine, data[cut:]) == whole


@pytest.mark.parametrize("lower, upper", [(-math.inf, 5.0), (0.0, math.inf), (-math.inf, math.inf)])
def test_an_infinite_edge_is_a_side_without_a_limit_for_the_default_reason(lower: float, upper: float) -> None:
    """Detector.reason: an infinite edge (flag_limit's "never") reads as a missing one, as the engine
    writes it: a flagged value inside the band is spike or dip by the expected value, not novelty."""
    det = REGISTRY["zscore"]()
    for x, want in ((3.0, "spike"), (0.5, "dip")):
        missing = (1.0, None if math.isinf(lower) else lower, None if math.isinf(upper) else upper)
        assert Detector.reason(det, x, (1.0, lower, upper)) == Detector.reason(det, x, missing) == want
    assert Detector.reason(det, 3.0, (1.0, 0.0, 5.0)) == "novelty"  # both edges: inside is novelty


def test_rules_with_other_settings_explain_alike_in_any_order() -> None:
    """What a threshold implies is kept once per process, for the last threshold and settings explained (not in
    every series): series of rules with other thresholds, ``damp`` or ``pmin`` explained in turn, as the engine
    does, get what each gets with nothing kept (the uncompiled build, its cache emptied before every call). A
    cache keyed on the threshold alone fails here (the ``pmin`` rule's band, once)."""
    settings = [{"learn": 100}, {"learn": 100, "damp": 0.9}, {"learn": 100, "pmin": 1e-8}, {"learn": 100}]
    thresholds = [0.3, 0.3, 0.3, 0.5]
    steps = uncompiled("detectors.steps")
    for name in PIPELINES:
        compiled = [REGISTRY[name](**p) for p in settings]
        pure = [getattr(uncompiled(f"detectors.{name}"), type(compiled[0]).__name__)(**p) for p in settings]
        differ = 0
        for i, x in enumerate(_restless(3000, seed=2)):
            t = 1_700_000_000.0 + 600 * i
            got = [det.explain(thresholds[k], t) for k, det in enumerate(compiled)]
            want = []
            for k, det in enumerate(pure):
                steps._XTHR = math.nan  # nothing kept from the call before
                want.append(det.explain(thresholds[k], t))
            assert got == want, (name, i)
            differ += len({str(w) for w in want}) > 1
            for a, b in zip(compiled, pure):
                a.process(x, t)
                b.process(x, t)
        assert differ > 500, name  # the settings and thresholds do change the bands


@pytest.mark.parametrize(("damp", "fire"), [(0.9, 0.5), (0.5, 0.3), (0.8, 0.7)])
def test_pipeline_band_is_exact_with_other_damping(damp: float, fire: float) -> None:
    """An exact gauge at 1.0 for 900 samples (10 s), then 3.0, then noise around 2: in the suppression the step
    starts, the likelihood's score stops where, damped, it stays under ``fire`` (``quiet_cap``), before the
    steps are compared, so a spike (0.9) or a level shift that the likelihood would outscore is reported as
    itself, damped: with ``damp = 0.9`` a value just under 1.0 scores 0.81. When the likelihood was stopped
    after the comparison, it scored 0.4999995 there, below the spike it had outscored, and the band (probed at
    0.3 and 0.5 at every sample of the suppression) was wrong (the review's probe: 20 wrong bands in 6 000
    samples with ``damp = 0.9`` or ``fire = 0.3``)."""
    rng = random.Random(5)
    det = REGISTRY["sentinel"](damp=damp, fire=fire)
    t0 = 1_700_000_000.0
    checked = 0
    for i in range(1500):
        t = t0 + 10.0 * i
        if i > 900 and det.suppression._quiet > 0:
            for threshold in (0.3, 0.5):
                band = det.explain(threshold, t)
                if band is None or (band[1] is not None and band[2] is not None and band[2] - band[1] < 1e-6):
                    continue
                _probe_band(det, band, threshold, t, (i, threshold))
                checked += 1
        det.process(1.0 if i < 900 else (3.0 if i < 1000 else round(2.0 + rng.gauss(0.0, 0.3), 3)), t)
    assert checked >= 500, checked


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_pipeline_band_is_exact_with_views(threshold: float) -> None:
    """The views step (docs/detection.md, "Views that agree, built") in the band: a daily wave at 5 minutes for
    24 days, with peaks 4 to 8 times the usual daily one for 1 to 3 hours now and then. Where a time-of-day
    extreme or a new extreme counts only if a view agrees, and where a peak with a rise completes its hour, the
    band's edge is the views' own (``agree`` from the peak, the rise or the slot; ``peak`` from the peak and the
    rise), and just inside it is not flagged, just outside it is. It fails with the views left out of the
    band (the views' edges are then never an edge, and a gated value beyond the range is probed as flagged)."""
    rng = random.Random(4)
    det = REGISTRY["sentinel"]()
    views = det.views
    assert views is not None  # (on by default)
    checked = edges = peaks = 0
    bump = 0
    for i in range(24 * 288):
        t = 1_700_000_000.0 + 300.0 * i
        if i > 8 * 288 and bump == 0 and rng.random() < 0.004:
            bump = rng.randint(12, 36)
        x = 100.0 + 20.0 * math.sin(2 * math.pi * i / 288) + rng.gauss(0.0, 2.0)
        if bump:
            x += rng.uniform(4.0, 8.0) * 25.0
            bump -= 1
        band = det.explain(threshold, t)
        if band is not None and (band[1] is not None or band[2] is not None):
            _probe_band(det, band, threshold, t, i)
            checked += 1
            state = det.state_by_name()["views"]
            unit = max(state["usual"], 0.05 * state["mag"])
            near = [state["level"] + k * unit for k in (-views.agree, views.agree, views.peak)]
            edges += any(e is not None and any(abs(e - v) <= 1e-9 * abs(v) for v in near) for e in band[1:])
        peaks += det.process(x, t) >= threshold and det.reason(x) != "stuck" and det._why == 10
    assert checked > 4000
    assert edges > 50, edges  # (the peak's own edges, a view's agreement among them)
    assert peaks >= 3, peaks


def _lone_minutes(days: float, seed: int, every: float = 14.0) -> list[tuple[float, float]]:
    """A 1-minute series around 500 (noise 15, a daily wave of 100) with one minute at 3 to 4 times the level
    about every ``every`` hours (mongodb-machine-rps's pattern in CMD), the first after 10 hours."""
    rng = random.Random(seed)
    out = []
    due = 600
    for i in range(int(days * 1440)):
        x = 500.0 + 100.0 * math.sin(2 * math.pi * i / 1440) + rng.gauss(0.0, 15.0)
        if i == due:
            x *= rng.uniform(3.0, 4.0)
            due += int(every * 60 * rng.uniform(0.8, 1.2))
        out.append((round(x, 1), 1_700_000_000.0 + 60.0 * i))
    return out


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_pipeline_band_is_exact_with_lone_values(threshold: float) -> None:
    """Lone values (the views step, docs/detection.md "Lone values") in the band: after a lone minute the next
    value is reported if it is back under half of ``lone`` (its evidence, ``lone``, on that next sample), so
    the values under an edge are flagged there, and the band is the range above it. Probed at every sample
    after a candidate and at every 7th other one: just inside each edge not flagged, just outside flagged. It
    fails with the lone values left out of the band (the values under the edge are probed as not flagged)."""
    det = REGISTRY["sentinel"]()
    views = det.views
    checked = after = reported = 0
    for i, (x, t) in enumerate(_lone_minutes(4.0, seed=6)):
        pending = views._pend
        if pending or i % 7 == 0:
            band = det.explain(threshold, t)
            if band is not None and (band[1] is not None or band[2] is not None):
                _probe_band(det, band, threshold, t, i)
                checked += 1
                after += pending
        reported += det.process(x, t) >= threshold and det._why == 11
    assert checked > 700
    assert after >= 3 and reported >= 3, (after, reported)
