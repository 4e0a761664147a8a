"""The compiled detector modules give the very same scores and state as their source run as plain Python.

``riverguard/detectors/steps.py``, ``sentinel.py`` and ``context.py`` are one
source each: compiled with Cython when a C compiler is there (the registry
uses them), importable uncompiled (``riverguard.detectors.uncompiled``, and
the whole program with ``RIVERGUARD_PURE_PYTHON=1``). Every score must be the
same double (compared bit for bit), ``dump_state`` the same record, a state
must load into either, a damaged state must be refused by both, and errors
must leave both in the same state. In CI the modules must be compiled.
"""

from __future__ import annotations

import doctest
import os
import struct
import sys
import tempfile
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli, without_a_compiler
from test_property import SETTINGS
from riverguard import __version__, detectors
from riverguard._compiled import PURE_PYTHON, built
from riverguard.detectors import COMPILED_MODULES, is_compiled, uncompiled

COMPILED = {name: detectors.REGISTRY[name] for name in ("sentinel", "context")}
PURE = {name: getattr(uncompiled(name), cls.__name__) for name, cls in COMPILED.items()}
BUILT = is_compiled(detectors.steps)
needs_build = pytest.mark.skipif(not BUILT and not os.environ.get("CI"), reason="detector modules not compiled")


def bits(score: float) -> bytes:
    return struct.pack("<d", score)


def packed(state: Any) -> bytes:
    """A state as bytes: floats compared bit for bit (NaN included)."""
    return msgpack.packb(state, use_bin_type=True)


def test_ci_compiles_the_detector_modules() -> None:
    if PURE_PYTHON:
        assert not any(is_compiled(getattr(detectors, m)) for m in COMPILED_MODULES)
        pytest.skip("RIVERGUARD_PURE_PYTHON: the uncompiled modules are in use")
    if not BUILT:
        assert not os.environ.get("CI"), "riverguard.detectors.steps was not compiled in CI"
        pytest.skip("detector modules not compiled here")
    assert all(is_compiled(getattr(detectors, m)) for m in COMPILED_MODULES)
    for name, cls in COMPILED.items():
        assert not is_compiled(uncompiled(name))
        assert PURE[name].defaults() == cls.defaults()
        assert PURE[name].STATE_LAYOUT == cls.STATE_LAYOUT


@pytest.mark.parametrize("module", COMPILED_MODULES)
@pytest.mark.parametrize("build", ["compiled", "uncompiled"])
def test_doctests(module: str, build: str) -> None:
    """The modules' examples hold in both builds (pytest's --doctest-modules cannot collect them)."""
    mod = getattr(detectors, module) if build == "compiled" else uncompiled(module)
    if build == "compiled" and not is_compiled(mod):
        pytest.skip("not compiled here")
    finder = doctest.DocTestFinder()
    tests = [t for t in finder.find(mod, mod.__name__) if t.examples]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted, f"no examples run in {mod.__name__} ({build})"
    assert result.failed == 0


PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "bins": st.integers(2, 15),
        "learn": st.sampled_from([0, 1, 5, 50]),
        "suppress": st.sampled_from([0, 3, 400]),
        "day_slots": st.sampled_from([0, 1, 7, 24, 96]),
        "weekend_slots": st.booleans(),
        "day_detrend": st.booleans(),
        "day_through": st.booleans(),
        "stuck_longest": st.booleans(),
        "day_visits": st.sampled_from([1, 2, 7]),
        "day_margin": st.sampled_from([0.0, 0.1]),
        "day_fading": st.sampled_from([0.0, 0.02, 0.5]),
        "z_scale": st.sampled_from([4.0, 1e-300]),
        "short": st.sampled_from([1.0, 0.2]),
        "extreme_sd": st.sampled_from([0.0, 3.0]),
        "fire": st.sampled_from([0.3, 0.5, 2.0]),
        "repeat_decay": st.sampled_from([0.001, 0.5]),
        "spike": st.sampled_from([0.0, 0.0, 3.0, 12.0]),
        "spike_record": st.sampled_from([0.0, 0.5]),
        "spike_fading": st.sampled_from([0.02, 0.5]),
        "spike_forget": st.sampled_from([0.0, 0.001, 0.3]),
        "spike_score": st.sampled_from([0.9, 1.0]),
    },
)


@st.composite
def series(draw: st.DrawFn) -> list[tuple[float, float | None]]:
    """Values (walks, repeats, jumps, extreme magnitudes) with event times (regular, irregular, odd or none)."""
    n = draw(st.integers(1, 700))
    rng_seed = draw(st.integers(0, 2**32 - 1))
    import random

    rng = random.Random(rng_seed)
    timing = draw(st.sampled_from(["regular", "irregular", "none", "odd"]))
    scale = draw(st.sampled_from([1e-300, 1e-6, 1.0, 1e6, 1e300]))
    t = draw(st.sampled_from([0.0, -86400.0 * 3 - 0.5, 1.7e9, 1e15 - 1e6, -1e15 + 5.0]))
    step = draw(st.sampled_from([1.0, 60.0, 300.0, 3600.0, 86399.9999]))
    x = 0.0
    out: list[tuple[float, float | None]] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.02:
            x = rng.uniform(-1.0, 1.0) * scale * rng.choice([1.0, 1e3, 1e8])
        elif r < 0.25:
            pass  # a repeat
        elif r < 0.3:
            x = rng.choice([0.0, -0.0, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324, x])
        else:
            x += rng.gauss(0.0, 1.0) * scale
        if timing == "none":
            stamp = None
        elif timing == "regular":
            t += step
            stamp = t
        elif timing == "irregular":
            t += rng.expovariate(1.0 / step)
            stamp = t
        else:
            stamp = rng.choice([None, t, -t, 1e15, -1e15, 1e300, 0.0, -0.0, 86400.0 * rng.randint(-5, 5)])
        out.append((x, stamp))
    return out


def _step(det: Any, x: float, t: float | None) -> tuple[str, Any]:
    try:
        return "ok", bits(det.process(x, t))
    except Exception as err:  # noqa: BLE001 - the two must fail alike
        return "error", type(err).__name__


def assert_same_run(
    params: dict[str, Any], data: list[tuple[float, float | None]], split: int | None = None, name: str = "sentinel"
) -> None:
    Reference, Twin = PURE[name], COMPILED[name]
    ref, twin = Reference(**params), Twin(**params)
    for i, (x, t) in enumerate(data):
        if split is not None and i == split:  # swap states across implementations mid-run
            ref_state, twin_state = ref.dump_state(), twin.dump_state()
            assert packed(ref_state) == packed(twin_state)
            ref, twin = Reference(**params), Twin(**params)
            ref.load_state(twin_state)
            twin.load_state(ref_state)
        assert _step(ref, x, t) == _step(twin, x, t), (i, x, t)
    assert packed(ref.dump_state()) == packed(twin.dump_state())
    if data:
        x, t = data[-1]
        assert _result(ref.score_one, x, t) == _result(twin.score_one, x, t)
        assert packed(ref.dump_state()) == packed(twin.dump_state())  # score_one learns nothing


def _result(fn: Any, x: float, t: float | None) -> tuple[str, Any]:
    try:
        return "ok", bits(fn(x, t))
    except Exception as err:  # noqa: BLE001
        return "error", type(err).__name__


CONTEXT_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "levels": st.integers(2, 16),
        "orders": st.lists(st.integers(0, 7), min_size=1, max_size=8).map(tuple),
        "table_bits": st.integers(6, 12),
        "halve_every": st.sampled_from([1, 7, 4096]),
        "learn": st.sampled_from([0, 5, 50]),
        "day_slots": st.sampled_from([0, 5, 12]),
        "day_fading": st.sampled_from([0.0, 0.02]),
        "spike": st.sampled_from([0.0, 4.0, 12.0]),
    },
)


@needs_build
@settings(max_examples=300, **SETTINGS)
@given(params=PARAMS, data=series())
def test_same_scores_and_state(params: dict[str, Any], data: list[tuple[float, float | None]]) -> None:
    assert_same_run(params, data)


@needs_build
@settings(max_examples=100, **SETTINGS)
@given(params=CONTEXT_PARAMS, data=series())
def test_context_same_scores_and_state(params: dict[str, Any], data: list[tuple[float, float | None]]) -> None:
    assert_same_run(params, data, name="context")


@needs_build
@settings(max_examples=100, **SETTINGS)
@given(params=PARAMS, data=series(), where=st.floats(0.0, 1.0))
def test_states_move_between_the_two(params: dict[str, Any], data: list[tuple[float, float | None]], where: float) -> None:
    assert_same_run(params, data, split=int(where * len(data)))


@needs_build
@pytest.mark.parametrize("params", [{}, {"spike": 12.0}])
@pytest.mark.parametrize("name", ["sentinel", "context"])
def test_long_realistic_series_bit_for_bit(name: str, params: dict[str, Any]) -> None:
    """Two weeks of 5-minute samples with a daily cycle, noise and incidents (past learn, day visits, suppression)."""
    Reference, Twin = PURE[name], COMPILED[name]
    import math
    import random

    rng = random.Random(11)
    data = []
    for i in range(4032):
        t = 1.7e9 + 300.0 * i
        x = 50.0 + 20.0 * math.sin(2 * math.pi * t / 86400.0) + rng.gauss(0.0, 2.0)
        if i in (2000, 3000):
            x += 80.0
        if 3500 <= i < 3600:
            x = 12.5
        data.append((round(x, 2), t))
    ref, twin = Reference(**params), Twin(**params)
    fired = 0
    for x, t in data:
        a, b = ref.process(x, t), twin.process(x, t)
        assert (bits(a), ref._why) == (bits(b), twin._why)  # (and the evidence the reason names)
        fired += a >= Reference.default_threshold
        if a >= Reference.default_threshold:
            assert ref.reason(x) == twin.reason(x)
    assert fired >= 2
    assert packed(ref.dump_state()) == packed(twin.dump_state())


@needs_build
@pytest.mark.parametrize("name", ["sentinel", "context"])
def test_a_compiled_pipeline_takes_a_144_byte_block(name: str) -> None:
    """Memory per series (issue 12: 3.8 KiB at most). A series' detector object is 144 B, one 144 B block of
    CPython's allocator: at 152 B (when it held the evidence of its last score itself, now in the suppression
    step's padding) it took a 160 B block. The suppression step takes one 80 B block since it holds the views
    step too (a 64 B block before: the same 16 B more as one more reference in the pipeline would have cost), and
    the time-of-day step still one 64 B block."""
    det = COMPILED[name](spike=12.0, shift=8.0, spread=10.0)
    assert sys.getsizeof(det) <= 144 and sys.getsizeof(det.suppression) <= 80 and sys.getsizeof(det.day) <= 64
    assert det._why == 0
    for i in range(300):
        det.process(100.0 if i == 250 else float(i % 3), 60.0 * i)
    assert det._why != 0 and det.reason(100.0) == "spike"


@needs_build
def test_a_compiled_sentinel_keeps_its_count_table_and_no_totals() -> None:
    """Memory per series (issue 12): sentinel's surprise step holds its object and its 1 000 B count table
    and nothing more. The total of a context's counts is summed from them when needed; it was a
    100 B table of its own (a 112 B block of CPython's allocator per series)."""
    import tracemalloc

    step = COMPILED["sentinel"]().surprise
    cfg, Step = step.cfg, type(step)
    made: list[Any] = [None] * 200
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(len(made)):
            made[i] = Step(cfg)
        per_step = (tracemalloc.get_traced_memory()[0] - before) / len(made)
    finally:
        tracemalloc.stop()
    assert per_step == sys.getsizeof(step) + cfg.bins**3 == 56 + 1000


def _totals(counts: bytes, bins: int) -> bytes:
    """The total of each context's counts (rows of ``bins``), as sentinel saves them."""
    return bytes(sum(counts[row : row + bins]) for row in range(0, len(counts), bins))


@pytest.mark.parametrize("build", ["pure", "compiled"])
def test_sentinel_saves_each_context_total_and_refuses_a_tampered_one(build: str) -> None:
    """Sentinel's saved state still has the per-context totals of its count table (``surprise.totals``,
    the same record and fingerprint as when they were kept beside the counts), now the sum of each
    context's counts: after contexts seen thousands of times (their counts halved again and again) they
    are, and a state restores and saves back byte for byte; the checkpoint fixture too, but for the
    time-of-day slots, which it saved as doubles and which are 4-byte floats now (rounded to them when read:
    a range's low down, its high up, the mean and variance to the nearest; then saved as they are). A saved
    total that
    is not its context's sum, or counts changed under their totals, can only come from a tampered file:
    refused, as the other impossible states are."""
    from riverguard.detectors.steps import read_record
    from riverguard.state import store

    Detector = (PURE if build == "pure" else COMPILED)["sentinel"]
    layout = Detector.STATE_LAYOUT
    det = Detector()
    for i in range(3000):
        det.process(float(i % 3) + (0.5 if i % 97 == 0 else 0.0), 1.7e9 + 60.0 * i)
    record = det.dump_state()
    saved = read_record(layout, record)["surprise"]
    counts, totals = saved["counts"], saved["totals"]
    assert len(totals) == 100 and totals == _totals(counts, 10) and 128 <= max(totals) <= 255
    fresh = Detector()
    fresh.load_state(record)
    assert packed(fresh.dump_state()) == packed(record)
    k = 1 + [name for name in layout.partition(" | ")[2].split()].index("surprise.totals:100")
    row = totals.index(max(totals))
    for part, damaged in [
        (k, totals[:row] + bytes([totals[row] - 1]) + totals[row + 1 :]),
        (k, totals[:row] + bytes([totals[row] + 1]) + totals[row + 1 :]),
        (k, bytes(100)),
        (k - 1, counts[: row * 10] + bytes([counts[row * 10] ^ 1]) + counts[row * 10 + 1 :]),  # a count changed alone
        (k - 1, bytes([255]) * 1000),  # contexts of 2 550 (no total can say so)
    ]:
        state = list(record)
        state[part] = damaged
        with pytest.raises(ValueError, match="surprise.totals"):
            Detector().load_state(state)
    fixture = store.read(os.path.join(os.path.dirname(__file__), "data", "checkpoint-record-state.msgpack"))
    (old,) = [r[6][0] for r in fixture.records if r[1] == "sentinel"]  # (a model: one state)
    det = Detector(spike=0.0, shift=0.0, spread=0.0, counter_time=0.0, peak=0.0)  # the fixture's rule (tests/test_state.py)
    det.load_state(old)
    names = [b.rsplit(":", 1)[0] for b in Detector.state_identity(det.params())[1].partition(" | ")[2].split()]
    sides = {1 + names.index(name): side for name, side in (("day.lo", -1), ("day.hi", 1), ("day.stat", 0))}
    floats = set(sides)

    def as_floats(wide: bytes, side: int) -> bytes:  # each double rounded to a 4-byte float, saved as a double again
        import numpy as np

        exact = np.frombuffer(wide, "<f8")
        near = exact.astype(np.float32)
        if side < 0:
            near = np.where(near > exact, np.nextafter(near, np.float32(-np.inf)), near)
        elif side > 0:
            near = np.where(near < exact, np.nextafter(near, np.float32(np.inf)), near)
        return near.astype("<f8").tobytes()

    again = det.dump_state()
    assert [part for i, part in enumerate(again) if i not in floats] == [part for i, part in enumerate(old)
                                                                          if i not in floats]
    assert all(again[i] == as_floats(old[i], sides[i]) != old[i] for i in floats)  # (the fixture's doubles are not floats)
    det.load_state(again)
    assert packed(det.dump_state()) == packed(again)


def test_the_time_of_day_ranges_hold_what_they_saw_alike_in_both_builds() -> None:
    """The time-of-day slots' ranges are 4-byte floats: a checkpoint's doubles (one written when they were
    doubles) are read rounded outward, the low down and the high up, bounded by the largest float (NaN stays
    NaN), so that a range holds every value it saw; and the compiled and the plain build keep the same bits,
    subnormals, signed zeros and the bound included."""
    import math
    import random

    largest = 3.4028234663852886e38
    rng = random.Random(3)
    values = [0.0, -0.0, 1e-46, -1e-46, 1e-45, 3e-45, -1e-40, 1.17549435e-38, largest, -largest, 3.40282356e38,
              1e39, -1e300, math.inf, -math.inf, math.nan, 1e9 + 1, 1e9 - 1, 0.1, -0.1, 16777217.0, -16777217.0]
    values += [rng.uniform(-1, 1) * 10 ** rng.uniform(-50, 50) for _ in range(650)]
    kept = {}
    for build, detectors_ in (("pure", PURE), ("compiled", COMPILED)):
        Detector = detectors_["sentinel"]
        det = Detector()
        for i in range(200):
            det.process(float(i % 7), 1.7e9 + 3600 * i)
        state = det.dump_state()
        names = [b.rsplit(":", 1)[0] for b in Detector.STATE_LAYOUT.partition(" | ")[2].split()]
        lo, hi = 1 + names.index("day.lo"), 1 + names.index("day.hi")
        kept[build] = []
        for at in range(0, len(values), 48):
            part = (values[at : at + 48] + [0.0] * 48)[:48]
            state[lo] = state[hi] = struct.pack("<48d", *part)
            restored = Detector()
            restored.load_state(state)
            again = restored.dump_state()
            kept[build].append((again[lo], again[hi]))
            for v, low, high in zip(part, struct.unpack("<48d", again[lo]), struct.unpack("<48d", again[hi])):
                if math.isnan(v):
                    assert math.isnan(low) and math.isnan(high)
                    continue
                bounded = min(max(v, -largest), largest)
                assert low <= bounded <= high, (build, v, low, high)
                assert struct.unpack("<f", struct.pack("<f", low)) == (low,) and abs(low) <= largest
    assert kept["pure"] == kept["compiled"]


@pytest.mark.parametrize("name", ["sentinel", "context"])
def test_a_value_far_beyond_a_tiny_range_is_scored(name: str) -> None:
    """Its level is the last one, not an int(inf) error: the quantisation clamps before converting.

    (Before the level was computed once for every caller, 1e300 after a range of one ulp raised
    OverflowError inside the surprise step and the field passed unscored.)
    """
    values = [1.0, 1.0000000000000002] * 6 + [1e300, 1.0, -1e300, 1.0]
    runs = []
    for cls in (PURE[name], COMPILED[name]):
        det = cls(learn=4)
        runs.append([bits(det.process(x)) for x in values])
        assert struct.unpack("<d", runs[-1][12])[0] == 1.0  # a new extreme, past learn
    assert runs[0] == runs[1]
    text = b"".join(b"m v=%r %d\n" % (x, i + 1) for i, x in enumerate(values))
    config = f'[[rule]]\nname = "all"\ndetector = "{name}"\nwarmup = 4\n'
    for pure in ("1", "0"):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "rules.toml")
            with open(path, "w") as f:
                f.write(config)
            done = run_cli(["run", "--config", path], input=text, env={**os.environ, "RIVERGUARD_PURE_PYTHON": pure})
        assert done.returncode == 0, done.stderr
        assert b"E! " not in done.stderr, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == len(values)
        assert all(b"v_anomaly_score=" in line for line in lines)
        assert b"v_anomaly_score=1.0,v_anomaly=true" in lines[12]


# -- parameters and damaged states ------------------------------------------------------


@needs_build
@pytest.mark.parametrize(
    "params",
    [{"bins": 1}, {"bins": 2.0}, {"gain": 0.0}, {"fading": 1.0}, {"day_slots": 97}, {"weekend_slots": 1},
     {"day_visits": 0}, {"day_score": 2.0}, {"day_fading": 1.0},
     {"day_fading": -0.1}, {"day_detrend": 1}, {"day_through": 0}, {"stuck_longest": 0}, {"suppress": -1}, {"learn": 1.5}, {"pmin": 0.5}, {"spike": -1.0}, {"spike_fading": 0.0}, {"spike_score": 1.5}, {"nope": 1}],
)
def test_same_parameter_errors(params: dict[str, Any]) -> None:
    Reference, Twin = PURE["sentinel"], COMPILED["sentinel"]
    with pytest.raises(Exception) as ref_err:
        Reference(**params)
    with pytest.raises(Exception) as twin_err:
        Twin(**params)
    assert (type(twin_err.value), str(twin_err.value)) == (type(ref_err.value), str(ref_err.value))


def _mutations(state: list[bytes]) -> list[Any]:
    """Every one-part change of a flat record ``[scalars, *buffers]``: each 8-byte scalar set to odd
    integers and doubles, each buffer cut, grown, filled with 255 or of another type, parts missing,
    extra or of another type."""
    scalars, buffers = state[0], state[1:]
    out: list[Any] = [None, {}, [], "x", state[:-1], [*state, b""], [scalars[:-1], *buffers],
                      [scalars + bytes(8), *buffers], [bytearray(scalars), *buffers], {"n": 1}]  # fmt: skip
    odd = [struct.pack("<q", v) for v in (-2, -1, 0, 1, 2, 7, 255, 2**62, 2**63 - 1)]
    odd += [struct.pack("<d", v) for v in (float("nan"), float("inf"), -0.5, 0.5, 1e300)]
    for i in range(0, len(scalars), 8):
        for new in odd:
            if new != scalars[i : i + 8]:
                out.append([scalars[:i] + new + scalars[i + 8 :], *buffers])
    for j, buf in enumerate(buffers):
        for part in (buf[:-1], buf + b"\x00", bytes([255]) * len(buf), bytearray(buf), None, 0):
            if part != buf or type(part) is not bytes:
                out.append([scalars, *buffers[:j], part, *buffers[j + 1 :]])
    return out


@needs_build
@pytest.mark.parametrize("spike", [0.0, 12.0])
@pytest.mark.parametrize("name", ["sentinel", "context"])
def test_damaged_states_are_refused_alike(name: str, spike: float) -> None:
    """Every one-entry change of a real state: both refuse it, or both take it and then agree."""
    import random

    Reference, Twin = PURE[name], COMPILED[name]
    rng = random.Random(5)
    warm = [(10.0 + rng.gauss(0.0, 1.0), 1.7e9 + 60.0 * i) for i in range(400)]
    ref = Reference(learn=20, day_visits=1, spike=spike)
    for x, t in warm:
        ref.process(x, t)
    params = ref.params()
    refused = 0
    for state in _mutations(ref.dump_state()):
        a, b = Reference(**params), Twin(**params)
        outcome = []
        for det in (a, b):
            try:
                det.load_state(state)
                outcome.append("ok")
            except ValueError:
                outcome.append("refused")
        assert outcome[0] == outcome[1], state
        if outcome[0] == "refused":
            refused += 1
            continue
        assert packed(a.dump_state()) == packed(b.dump_state())
        for x, t in warm[:50]:  # a tampered but well-typed state: both go on (or fail) alike
            assert _step(a, x, t) == _step(b, x, t)
        assert packed(a.dump_state()) == packed(b.dump_state())
    assert refused > 100


def test_runs_without_cython_installed() -> None:
    """Uncompiled, with no ``cython`` module at all: the modules import ``riverguard._compiled`` instead."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['cython'] = None\n"  # import cython -> ImportError
        "from riverguard.detectors import REGISTRY, is_compiled, steps\n"
        "assert not is_compiled(steps) and steps.cython.__name__ == 'riverguard._compiled'\n"
        "det = REGISTRY['sentinel']()\n"
        "print(sum(det.process(float(i % 17), 60.0 * i) for i in range(500)))\n"
    )
    env = {**os.environ, "RIVERGUARD_PURE_PYTHON": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    det = COMPILED["sentinel"]()
    assert float(proc.stdout) == sum(det.process(float(i % 17), 60.0 * i) for i in range(500))


def test_version_says_the_variable_switched_the_compiled_hot_path_off() -> None:
    """``RIVERGUARD_PURE_PYTHON=1 riverguard --version`` said ``pure Python: no compiled hot path`` with the
    compiled hot path installed, only switched off by the variable: it now says so."""
    if not built("_hotpath"):
        pytest.skip("the hot path is not compiled here")
    proc = run_cli(["--version"], env={**os.environ, "RIVERGUARD_PURE_PYTHON": "1"}, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(
        " (pure Python: the compiled hot path is switched off by RIVERGUARD_PURE_PYTHON)"), proc.stdout
    proc = run_cli(["--version"], env={**os.environ, "RIVERGUARD_PURE_PYTHON": "0"}, text=True)
    assert proc.stdout.strip().endswith(" (compiled hot path)"), proc.stdout


NOT_COMPILED = ("W! [riverguard] riverguard %s: the hot path was not compiled at install (no C compiler?): it runs "
                "in pure Python, about 25 to 30 times slower; install gcc and python3-dev (Debian) and install "
                "riverguard again" % __version__)


def test_a_run_without_the_compiled_hot_path_warns_at_start(tmp_path) -> None:
    """Installed without a C compiler riverguard runs 25 to 30 times slower, and a run said nothing of it
    (only --version, or a D! line): a W! line now says it first. Compiled, or switched off on purpose
    (RIVERGUARD_PURE_PYTHON), there is none."""
    import subprocess

    env = without_a_compiler(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "riverguard", "run"], input=b"cpu v=1\n", capture_output=True,
                          env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith(b"cpu v=1,v_anomaly_score="), proc.stderr
    assert proc.stderr.decode().splitlines()[0] == NOT_COMPILED, proc.stderr
    if not built("_hotpath"):
        pytest.skip("the hot path is not compiled here")
    for pure in ("0", "1"):
        proc = run_cli(["run"], input=b"cpu v=1\n", env={**os.environ, "RIVERGUARD_PURE_PYTHON": pure})
        assert proc.returncode == 0 and b"W! " not in proc.stderr, proc.stderr


@pytest.mark.parametrize("value", [None, "", "0", "1", "yes"])
def test_only_a_set_pure_python_selects_the_sources(value: str | None) -> None:
    """RIVERGUARD_PURE_PYTHON: unset, empty or "0" keeps the compiled modules; another value (such as
    "1") loads the Python sources. Before, "0" selected the sources too (any non-empty string)."""
    import subprocess
    import sys

    if not BUILT:
        pytest.skip("detector modules not compiled here")
    env = {k: v for k, v in os.environ.items() if k != "RIVERGUARD_PURE_PYTHON"}
    if value is not None:
        env["RIVERGUARD_PURE_PYTHON"] = value
    code = "from riverguard.detectors import is_compiled, steps; print(is_compiled(steps))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(value in (None, "", "0"))


def _views_series(n: int = 12 * 288) -> list[tuple[float, float]]:
    """A 5-minute daily wave for 12 days (the views step sees from the fourth day), a peak on day 9."""
    import math
    import random

    rng = random.Random(11)
    return [(100.0 + 20.0 * math.sin(2 * math.pi * i / 288) + rng.gauss(0.0, 3.0) + (150.0 if 2700 <= i < 2724 else 0.0),
             1.7e9 + 300.0 * i) for i in range(n)]


@pytest.mark.parametrize("build", ["pure", "compiled"])
def test_explaining_changes_no_state_of_the_views_step(build: str) -> None:
    """A review's find: the band rolled the views step's day itself, so a sample that the pipeline then leaves
    unlearned (beyond 1e150: no measurement) left a day rolled early, and with it the days' peaks. The band is
    worked out from the state as it is now: explain on or off, the same states and scores, such a sample at a
    later day included (it fails with the roll in the band: 11 days' peaks against 10)."""
    if build == "compiled" and not BUILT:
        pytest.skip("detector modules not compiled")
    Detector = (PURE if build == "pure" else COMPILED)["sentinel"]
    data = _views_series()
    data.insert(2000, (1e200, data[1999][1] + 2 * 86400.0))  # (2 days ahead, and never learned)
    runs = []
    for explain in (False, True):
        det = Detector()
        scores = []
        for x, t in data:
            if explain:
                det.explain(0.5, t)
            scores.append(det.process(x, t))
        runs.append((scores, packed(det.dump_state())))
    assert runs[0] == runs[1]
    assert det.state_by_name()["views"]["days"] == 12  # (the 13 UTC days the samples span, less the last)


@pytest.mark.parametrize("build", ["pure", "compiled"])
def test_the_views_step_takes_any_timestamp(build: str) -> None:
    """A review's find: ``floor`` of an infinite timestamp raised in the plain build (Python's ``math.floor``
    gives an int), not in the compiled one. A timestamp that is not finite is no event time for the step."""
    if build == "compiled" and not BUILT:
        pytest.skip("detector modules not compiled")
    det = (PURE if build == "pure" else COMPILED)["sentinel"]()
    scores = [det.process(1.0 + i % 3, t) for i, t in enumerate([float("inf"), 1.7e9, float("inf"), -float("inf"), 1.7e9 + 60])]
    assert all(0.0 <= s <= 1.0 for s in scores)


@pytest.mark.parametrize("build", ["pure", "compiled"])
def test_a_tampered_views_state_is_refused(build: str) -> None:
    """A review's find: the views step restored NaN or infinite times, levels and peaks, which switch it off
    silently (a peak never again reported, the days' peaks frozen). Each is refused, as the other steps'
    impossible states are."""
    from riverguard.detectors.steps import read_record

    if build == "compiled" and not BUILT:
        pytest.skip("detector modules not compiled")
    Detector = (PURE if build == "pure" else COMPILED)["sentinel"]
    det = Detector()
    for x, t in _views_series(5 * 288):
        det.process(x, t)
    record = det.dump_state()
    head, _, tail = Detector.STATE_LAYOUT.partition(" | ")
    fields = [f.rsplit(":", 1) for f in head.partition(": ")[2].split()]
    form = struct.Struct("<" + "".join("d" if code == "d" else "q" for _, code in fields))
    names = [name for name, _ in fields]
    peaks = 1 + [b.rsplit(":", 1)[0] for b in tail.split()].index("views.peaks")
    Detector().load_state(record)  # (as saved: fine)
    for name, value in [("views.tpeak", float("nan")), ("views.level", float("inf")), ("views.day", float("nan")),
                        ("views.wlevel", float("-inf")), ("views.run", -1.0), ("views.top", float("inf"))]:
        values = list(form.unpack(record[0]))
        values[names.index(name)] = value
        with pytest.raises(ValueError, match="views"):
            Detector().load_state([form.pack(*values), *record[1:]])
    damaged = list(record)
    damaged[peaks] = struct.pack("<d", float("inf")) + record[peaks][8:]
    with pytest.raises(ValueError, match="views"):
        Detector().load_state(damaged)
    assert read_record(Detector.STATE_LAYOUT, record)["views"]["days"] == 5
