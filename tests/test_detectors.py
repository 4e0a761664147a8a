"""Checks every registered detector must pass, and the engine's guard against a failing one."""

from __future__ import annotations

import io
import math
import random
import re
import statistics

import msgpack
import pytest

from conftest import realistic_series, run_cli
from riverguard import config as config_mod
from riverguard import detectors
from riverguard.detectors import REGISTRY, Detector
from riverguard.detectors.params import Param
from riverguard.engine import Engine
from riverguard.lineprotocol import Splitter
from riverguard.log import Log
from riverguard.state import codec

# ``river`` has no default model (a rule names one): tests/test_river.py checks it with explicit specs.
NAMES = sorted(name for name in REGISTRY if name != "river")


def _noisy(n: int, seed: int, level: float = 50.0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, 1.0) for _ in range(n)]


STREAMS: dict[str, list[float]] = {
    "constant": [5.0] * 300,
    "zeros": [0.0] * 300,
    "negative-constant": [-3.25] * 300,
    "huge": [1e300 * (1 + i % 3) for i in range(300)],
    "huge-alternating-sign": [1e300 * (-1) ** i for i in range(300)],
    "tiny": [1e-300 * (i % 5) for i in range(300)],
    "subnormal": [5e-324 * (i % 3) for i in range(300)],
    "alternating-sign": [(-1) ** i * 1e6 for i in range(300)],
    "integer-steps": [float(i // 25) for i in range(300)],
    "big-integers": [float(2**62 + (i % 7) * 2**40) for i in range(300)],
    "quiet-then-huge-then-quiet": [0.0] * 100 + [1e300] * 5 + [0.0] * 100,
    "noisy": _noisy(300, 3),
    "mixed-scales-then-flat": [
        random.Random(5).choice([0.0, 1.0, 1e12, -1e12, 5.0, 0.5, 12.0]) for _ in range(1500)
    ]
    + [7.0] * 300
    + [7.0 + 1e-9 * i for i in range(300)],
}

# Known detector bugs (see the report of the tests commit); strict: when fixed, the xfail fails.
KNOWN_BAD: dict[tuple[str, str], str] = {}  # none left: pad's squared error no longer overflows


def _cases() -> list:
    cases = []
    for name in NAMES:
        for stream in STREAMS:
            marks = []
            if (name, stream) in KNOWN_BAD:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BAD[name, stream]))
            cases.append(pytest.param(name, stream, marks=marks, id=f"{name}-{stream}"))
    return cases


def test_registry_is_not_empty_and_names_match() -> None:
    assert {"zscore", "hst", "pad"} <= set(REGISTRY)
    for name in NAMES:
        cls = REGISTRY[name]
        assert cls.name == name
        assert issubclass(cls, Detector)
        assert 0.0 <= cls.default_threshold <= 1.0
        assert cls.default_warmup >= 0
        cls()  # the defaults build a detector


@pytest.mark.parametrize(("name", "stream"), _cases())
def test_scores_are_finite_and_in_unit_interval(name: str, stream: str) -> None:
    det = REGISTRY[name]()
    for i, x in enumerate(STREAMS[stream]):
        score = det.process(x, float(i))
        assert isinstance(score, float), (i, x, score)
        assert math.isfinite(score) and 0.0 <= score <= 1.0, (i, x, score)


@pytest.mark.parametrize("name", NAMES)
def test_score_one_does_not_learn(name: str) -> None:
    """Scoring a value leaves the model as it was: what ``process`` returns next is unchanged."""
    data = _noisy(600, 21)
    probe, plain = REGISTRY[name](), REGISTRY[name]()
    for i, x in enumerate(data):
        probe.process(x, float(i))
        plain.process(x, float(i))
    for x in (50.0, 500.0, -3.0):
        probe.score_one(x, 600.0)
    assert [probe.process(x, 601.0 + i) for i, x in enumerate((50.5, 80.0))] == [
        plain.process(x, 601.0 + i) for i, x in enumerate((50.5, 80.0))
    ]


@pytest.mark.parametrize("name", NAMES)
def test_scores_without_timestamps(name: str) -> None:
    det = REGISTRY[name]()
    scores = [det.process(x, None) for x in _noisy(150, 8)]
    assert all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in scores)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_across_fresh_instances(name: str) -> None:
    data = _noisy(300, 11) + [80.0] + _noisy(100, 12) + [float(i % 4) for i in range(50)]
    runs = []
    for _ in range(2):
        det = REGISTRY[name]()
        runs.append([det.process(x, i * 10.0) for i, x in enumerate(data)])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 10  # the scores actually vary


@pytest.mark.parametrize("name", NAMES)
def test_scoring_before_learning_does_not_raise(name: str) -> None:
    det = REGISTRY[name]()
    for x in (0.0, 1.0, -1e9, 1e-12, 42.0):
        score = det.score_one(x, None)
        assert math.isfinite(score) and 0.0 <= score <= 1.0
    det.learn_one(1.0, None)
    score = det.score_one(2.0, 1.0)
    assert math.isfinite(score) and 0.0 <= score <= 1.0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spike_after_stable_noisy_stretch_scores_high(name: str, seed: int) -> None:
    det = REGISTRY[name]()
    normal = [det.process(x, i * 10.0) for i, x in enumerate(_noisy(400, seed))]
    spike = det.process(90.0, 4000.0)  # 40 standard deviations
    settled = normal[250:]
    assert spike >= REGISTRY[name].default_threshold, spike  # flagged with the detector's defaults
    assert spike > statistics.quantiles(settled, n=10)[-1]  # above the 90th percentile of normal scores
    assert spike > statistics.fmean(settled) + 0.3


@pytest.mark.parametrize("name", NAMES)
def test_parameters_round_trip(name: str) -> None:
    cls = REGISTRY[name]
    det = cls()
    assert det.params() == cls.defaults()
    assert repr(det).startswith(type(det).__name__ + "(")


# -- a detector that fails must not reach the stream --------------------------------------


class Boom(Detector):
    """A broken detector: raises on every sample, or (``when="nan"``) scores nan above 100."""

    name = "boom"
    default_threshold = 0.5
    default_warmup = 0

    PARAMS = (Param("when", "always", "When it breaks.", choices=("always", "nan")),)
    when: str

    def _start(self) -> None:
        self._n = 0

    def score_one(self, x: float, t: float | None = None) -> float:
        if self.when == "always" or (self.when == "nan" and x > 100):
            if self.when == "nan":
                return float("nan")
            raise RuntimeError("kaboom")
        return 0.25

    def learn_one(self, x: float, t: float | None = None) -> None:
        self._n += 1


@pytest.fixture
def boom(monkeypatch: pytest.MonkeyPatch) -> type[Boom]:
    monkeypatch.setitem(detectors.REGISTRY, "boom", Boom)
    return Boom


def _run(engine: Engine, data: bytes) -> bytes:
    records, consumed, _ = Splitter().split(data, final=True)
    assert consumed == len(data)
    return b"".join(engine.process(r) for r in records)


def test_failing_detector_passes_field_unscored_and_logs_once_per_series(boom: type[Boom]) -> None:
    cfg = config_mod.parse(
        '[[rule]]\nname = "explode"\nfields = ["bad"]\ndetector = "boom"\n'
        '[[rule]]\nname = "rest"\ndetector = "zscore"\nwarmup = 0\n'
    )
    stream = io.StringIO()
    engine = Engine(cfg, Log("info", stream))
    lines = [b"m,host=%s bad=%d,good=1 %d\n" % (host, i, i) for i in range(50) for host in (b"a", b"b")]
    data = b"".join(lines)
    out = _run(engine, data)
    expected = data.replace(b",good=1 ", b",good=1,good_anomaly_score=0.0,good_anomaly=false ")
    assert out == expected
    log = stream.getvalue().splitlines()
    assert len(log) == 2, log  # once per series, not once per sample
    assert all(line.startswith("W! ") and "kaboom" in line and "boom" in line and "starts fresh" in line for line in log)
    assert any("host=a" in line for line in log) and any("host=b" in line for line in log)


def test_non_finite_score_is_treated_as_a_failure(boom: type[Boom]) -> None:
    cfg = config_mod.parse('[[rule]]\nname = "n"\ndetector = "boom"\nparams = { when = "nan" }\n')
    stream = io.StringIO()
    engine = Engine(cfg, Log("info", stream))
    out = _run(engine, b"m v=1 1\nm v=500 2\nm v=600 3\nm v=2 4\n")
    assert out == (
        b"m v=1,v_anomaly_score=0.25,v_anomaly=false 1\n"
        b"m v=500 2\n"
        b"m v=600 3\n"
        b"m v=2,v_anomaly_score=0.25,v_anomaly=false 4\n"
    )
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("W! ") and "non-finite" in line


@pytest.mark.parametrize("name", NAMES)
def test_adversarial_values_never_break_the_stream(name: str) -> None:
    """Whatever a detector does with extreme values, every metric comes back and scores stay valid."""
    cfg = config_mod.parse(f'[[rule]]\nname = "all"\ndetector = "{name}"\nwarmup = 0\n')
    stream = io.StringIO()
    engine = Engine(cfg, Log("error", stream))
    values = [b"1", b"1e300", b"-1e300", b"1.7976931348623157e308", b"0", b"5e-324", b"9223372036854775807i", b"2"]
    data = b"".join(b"m v=%s %d\n" % (v, i) for i, v in enumerate(values * 20))
    out = _run(engine, data)
    scores = re.findall(rb"v_anomaly_score=([^,]+),", out)
    assert all(0.0 <= float(s) <= 1.0 for s in scores)
    stripped = re.sub(rb",v_anomaly_score=[^,]+,v_anomaly=(?:true|false)", b"", out)
    assert stripped == data
    assert len(stream.getvalue().splitlines()) <= 1  # a failing series is reported once


# Detectors that save a compact plain-data state (the rest go through the generic checkpoint codec).
COMPACT = [name for name in NAMES if REGISTRY[name]().dump_state() is not None]


@pytest.mark.parametrize("cut", [1, 2, 57, 400, 1500, 2999])
@pytest.mark.parametrize("name", COMPACT)
def test_compact_state_restores_invisibly(name: str, cut: int) -> None:
    """Through msgpack, as a restart would: the rest of the series scores exactly as without the restart."""
    cls = REGISTRY[name]
    data = realistic_series(3000)
    whole = cls()
    expected = [whole.process(x, t) for x, t in data]
    first = cls()
    for x, t in data[:cut]:
        first.process(x, t)
    restored = cls(**first.params())
    restored.load_state(msgpack.unpackb(msgpack.packb(first.dump_state())))
    assert [restored.process(x, t) for x, t in data[cut:]] == expected[cut:]
    assert restored.dump_state() == whole.dump_state()


@pytest.mark.parametrize("name", COMPACT)
def test_integer_values_dump_floats(name: str) -> None:
    det = REGISTRY[name]()
    for i in range(300):
        det.process(i % 7)
    restored = REGISTRY[name]()
    restored.load_state(det.dump_state())
    assert restored.process(3) == det.process(3)


@pytest.mark.parametrize("name", COMPACT)
def test_compact_state_is_small_plain_data(name: str) -> None:
    det = REGISTRY[name]()
    for x, t in realistic_series(5000):
        det.process(x, t)
    state = det.dump_state()

    def plain(v: object) -> bool:
        return (
            type(v) in (int, float, bool, bytes)
            or (type(v) is dict and all(type(k) is str and plain(x) for k, x in v.items()))
            or (type(v) is list and all(plain(x) for x in v))
        )

    assert type(state) in (dict, list) and plain(state)  # by name (zscore) or a flat record (sentinel, context)
    assert len(msgpack.packb(state)) <= 4096
    codec.encode(state)  # the allowlisted checkpoint codec accepts it


def test_a_detector_is_built_alike_by_its_constructor_and_by_a_rules_factory() -> None:
    """Both ways of building a detector hand ``_setup`` what ``shared_settings`` makes of the resolved settings
    (a detector that keeps its settings in an object of its own gets that object either way)."""

    class Scaled(Detector):
        name = "scaled"
        default_threshold = 0.5
        default_warmup = 0
        PARAMS = (Param("k", 2.0, "A factor.", low=0.0),)

        @classmethod
        def shared_settings(cls, values: dict) -> dict:
            return {**values, "k2": values["k"] * values["k"]}

        def score_one(self, x: float, t: float | None = None) -> float:
            return min(1.0, abs(x) / self.k2)

        def learn_one(self, x: float, t: float | None = None) -> None:
            pass

    built, made = Scaled(k=3.0), Scaled.factory({"k": 3.0})()
    assert built.k2 == made.k2 == 9.0 and built.score_one(4.5) == made.score_one(4.5) == 0.5
    for name in ("sentinel", "context"):  # the steps pipeline: one Settings object per rule either way
        cls = REGISTRY[name]
        assert type(cls(spike=5.0).cfg) is type(cls.factory({"spike": 5.0})().cfg) is cls.SETTINGS


def _pad_replay(tmp_path, values: list[float], name: str) -> tuple[list[bytes], bytes]:
    """``riverguard replay`` of ``values`` under a pad rule: the output lines and stderr."""
    cfg = tmp_path / "pad.toml"
    cfg.write_text('[[rule]]\nname = "pad"\ndetector = "pad"\n')
    data = tmp_path / f"{name}.lp"
    data.write_bytes(b"".join(b"m v=%r %d\n" % (v, 1_700_000_000_000_000_000 + i * 10**10) for i, v in enumerate(values)))
    result = run_cli(["replay", "--config", str(cfg), str(data)], timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines(), result.stderr


def test_pad_is_not_spoiled_by_a_huge_finite_value(tmp_path) -> None:
    """One 1e308 among N(10, 1) scores 1.0 and is not learned: the 1000 values after it score as they would
    without it (they all scored 1.0: the forecast was ~1e230 for 1000 samples); alternating +-1e308 scores
    without an error (it was a ZeroDivisionError)."""
    rng = random.Random(3)
    plain = [10.0 + rng.gauss(0.0, 1.0) for _ in range(1200)]
    spoiled = plain[:200] + [1e308] + plain[200:]
    without, _ = _pad_replay(tmp_path, plain, "plain")
    with_huge, err = _pad_replay(tmp_path, spoiled, "huge")
    assert b"W! " not in err and b"E! " not in err, err
    assert with_huge[200].startswith(b"m v=1e+308,v_anomaly_score=1.0,v_anomaly=true ")
    scores = [re.sub(rb" \d+$", b"", line).split(b",", 1)[1] for line in without[200:]]
    assert [re.sub(rb" \d+$", b"", line).split(b",", 1)[1] for line in with_huge[201:]] == scores
    alternating, err = _pad_replay(tmp_path, [1e308 * (-1) ** i for i in range(200)] + plain[:200], "alternating")
    assert b"failed" not in err, err
    assert all(b"v_anomaly_score=" in line for line in alternating)
