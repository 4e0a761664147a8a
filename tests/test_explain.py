"""Explanations (``[output] explain``): the expected value, the band not flagged and the reason of a flag.

What a user relies on: the fields are off unless asked for; with them on,
the scores and flags are exactly those without them; every value is a finite
float written with a decimal point or exponent; the band is what the detector
would really not have flagged at that moment; a reason comes with every flag
and only with a flag; no name the metric already has is added.
"""

from __future__ import annotations

import math
import random
import re

import pytest

from conftest import strip_added
from riverguard import config as rg_config
from riverguard.detectors import REGISTRY, Detector
from riverguard.detectors.base import REASONS, flagged
from riverguard._compiled import uncompiled
from riverguard.engine import Engine
from riverguard.lineprotocol import Splitter
from riverguard.state import StateStore
from riverguard.stream import feed

#: The detectors that give a band (sentinel's and context's explanation was not ported to the steps pipeline).
BANDED = ("zscore", "pad", "hst")
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
    seen = 0
    for _ in range(400):
        band = det.explain(det.default_threshold)
        if band is not None:
            expected, lower, upper = band
            assert not flagged(det.score_one(expected), det.default_threshold) or (lower is None and upper is None)
            if lower is not None:
                assert lower <= expected and not flagged(det.score_one(lower), det.default_threshold)
            if upper is not None:
                assert expected <= upper and not flagged(det.score_one(upper), det.default_threshold)
            seen += 1
        det.process(50.0 + rng.gauss(0.0, 1.0))
    assert seen > 150


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
