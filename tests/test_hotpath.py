"""The compiled and the uncompiled build of the hot path (``riverguard._hotpath``) give the same result.

``_hotpath.py`` (and the plain-line parser it calls, ``_plainline.py``) is one
source that runs as plain Python and is compiled by Cython when a C compiler
is there. Here the same streams go through an engine with the compiled build
and one with the same files imported uncompiled, cut at arbitrary chunk
boundaries, and the output bytes and everything the engine keeps (counters,
series and their LRU order, detector state) must be identical. In CI the
extension must be built: a silent fallback to pure Python would test nothing
here.
"""

from __future__ import annotations

import os
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from test_property import BOOLEAN, KEY, MEASUREMENT, SETTINGS, STREAM, TIMESTAMP, UNIT
from riverguard import config as rg_config
from riverguard import detectors
from riverguard.detectors import Detector
from riverguard._compiled import is_compiled, uncompiled
from riverguard.engine import ACCELERATED, Engine
from riverguard.stream import feed

#: The uncompiled build of the hot path (and of the modules it imports), beside the compiled one.
UNCOMPILED = uncompiled("_hotpath")

needs_accel = pytest.mark.skipif(
    not ACCELERATED and not os.environ.get("CI"),
    reason="compiled hot path not built (no Cython or C compiler at install time)",
)

CONFIG = """
[output]
score_suffix = "{score}"
flag_suffix = "{flag}"
explain = {explain}
[state]
max_series = {max_series}
series_ttl = "{ttl}"
[[rule]]
name = "quiet"
measurement = "q*"
detector = "off"
[[rule]]
name = "z"
measurement = "z*"
detector = "zscore"
warmup = 2
threshold = 0.9
[[rule]]
name = "odd"
measurement = "odd*"
detector = "odd"
warmup = 0
[[rule]]
name = "rest"
detector = "default"
warmup = {warmup}
threshold = 0.02
"""


class Odd(Detector):
    """A detector that misbehaves on purpose: raises, returns NaN, out-of-range scores, ints."""

    name = "odd"
    default_threshold = 0.5
    default_warmup = 0

    def __init__(self) -> None:
        self.n = 0

    def learn_one(self, x: float, t: float | None = None) -> None:
        self.n += 1

    def score_one(self, x: float, t: float | None = None) -> Any:
        kind = self.n % 7
        if kind == 0:
            raise RuntimeError("odd failure")
        return [float("nan"), 2.5, -0.5, 1, 0.5, 0.4999995][kind - 1]

    def process(self, x: float, t: float | None = None) -> Any:
        self.learn_one(x, t)
        return self.score_one(x, t)

    def dump_state(self) -> Any:
        return [self.n]

    def load_state(self, state: Any) -> None:
        (self.n,) = state


@pytest.fixture(autouse=True)
def _odd_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(detectors.REGISTRY, "odd", Odd)


def _config(max_series: int = 1000, ttl: str = "24h", warmup: int = 3, suffixes: tuple[str, str] = ("_anomaly_score", "_anomaly"), explain: bool = False) -> rg_config.Config:
    text = CONFIG.format(max_series=max_series, ttl=ttl, warmup=warmup, score=suffixes[0], flag=suffixes[1],
                         explain=str(explain).lower())
    return rg_config.parse(text)


def _state(engine: Engine) -> dict[str, Any]:
    return {
        "counters": (engine.metrics, engine.parse_errors, engine.anomalies, engine.evicted, engine.expired, engine.now),
        "series": [
            (key, s.seen, s.last_time, s.anomalies, s.failed, s.detector.dump_state() if s.detector else None)
            for key, s in engine.lru()
        ],
    }


def _run(engine: Engine, data: bytes, cuts: list[int]) -> bytes:
    """Feed ``data`` in pieces cut at ``cuts``, as the stream loop does; return all output."""
    out: list[bytes] = []
    buf = b""
    last = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        buf += data[last:cut]
        last = cut
        chunks, consumed, _ = feed(engine, buf)
        out.extend(chunks)
        buf = buf[consumed:]
    chunks, consumed, pending = feed(engine, buf, final=True)
    assert consumed == len(buf) and not pending
    out.extend(chunks)
    return b"".join(out)


def assert_same(data: bytes, config: rg_config.Config, cuts: list[int] = ()) -> bytes:
    fast = Engine(config)
    slow = Engine(config, hotpath=UNCOMPILED)
    assert is_compiled(fast._hot) and not is_compiled(slow._hot)
    expected = _run(slow, data, [])
    assert _run(fast, data, list(cuts)) == expected
    assert _state(fast) == _state(slow)
    return expected


def test_ci_builds_the_compiled_path() -> None:
    """CI installs from a clean clone: the extension must be there (else every check below is moot)."""
    if os.environ.get("CI"):
        assert ACCELERATED, "riverguard._hotpath was not built in CI"
    elif not ACCELERATED:
        pytest.skip("compiled hot path not built here")
    from riverguard import _hotpath, _plainline

    for module in (_hotpath, _plainline):
        assert is_compiled(module), module.__name__
        built = Path(module.__file__)
        for source in built.parent.glob(module.__name__.rsplit(".", 1)[1] + ".p[yx]*"):
            assert built.stat().st_mtime >= source.stat().st_mtime, f"{source.name} changed since the build: `make install`"


@pytest.mark.parametrize("name", ["_hotpath", "_plainline"])
@pytest.mark.parametrize("build", ["compiled", "uncompiled"])
def test_doctests_of_both_builds(name: str, build: str) -> None:
    """The examples in the docstrings hold in both builds (pytest collects neither .py: see pyproject.toml)."""
    import doctest
    import importlib

    module = importlib.import_module(f"riverguard.{name}") if build == "compiled" else uncompiled(name)
    if build == "compiled" and not is_compiled(module):
        pytest.skip("not compiled here")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted >= 2, "no doctest found"


# -- generated streams ----------------------------------------------------------

PLAIN_VALUE = st.one_of(
    st.floats(-1e6, 1e6).map(lambda f: repr(f).encode()),
    st.sampled_from([b"1", b"1.", b".5", b"-1.5e3", b"1E-3", b"+1", b"-0", b"0.0", b"1e400", b"1e", b"--1", b"1.2.3"]),
    st.integers(-(2**63) - 1, 2**63).map(lambda i: b"%di" % i),
    st.integers(-1, 2**64).map(lambda i: b"%du" % i),
    st.sampled_from([b"i", b"-i", b"+5i", b"u", b"-0i", b"007i", b"18446744073709551615u", b"-9223372036854775808i"]),
    BOOLEAN,
)


@st.composite
def telegraf_stream(draw: st.DrawFn) -> bytes:
    """Series that repeat (so detectors learn, warm up and flag), mostly plain, some not."""
    measurements = draw(st.lists(st.sampled_from([b"cpu", b"mem", b"zed", b"quiet", b"odd", b"d=isk"]), min_size=1, max_size=3))
    hosts = draw(st.lists(st.sampled_from([b"a", b"b", b"web-01", b"x=1"]), min_size=1, max_size=3))
    keys = [b"v", b"w", b"usage_idle", b"v_anomaly_score", b"v_anomaly", b"v_anomaly_upper", b"w_anomaly_expected"]
    lines = []
    ts = draw(st.integers(0, 10**12))
    for _ in range(draw(st.integers(1, 120))):
        m = draw(st.sampled_from(measurements))
        host = draw(st.sampled_from(hosts))
        shape = draw(st.sampled_from(["plain"] * 8 + ["unsorted", "dupkey", "notime", "crlf", "tab", "space", "nts", "other"]))
        tags = b",host=" + host + b",region=eu"
        if shape == "unsorted":
            tags = b",region=eu,host=" + host
        nfields = draw(st.integers(1, 4))
        chosen = draw(st.lists(st.sampled_from(keys), min_size=nfields, max_size=nfields, unique=shape != "dupkey"))
        if shape != "dupkey" and draw(st.integers(0, 9)):
            chosen = [k for k in chosen if b"anomaly" not in k] or [b"v"]
        values = [draw(st.one_of(PLAIN_VALUE, st.floats(0, 100).map(lambda f: b"%.3f" % f))) for _ in chosen]
        fieldset = b",".join(k + b"=" + v for k, v in zip(chosen, values))
        ts += draw(st.sampled_from([0, 10**9, 10**10, 10**13]))
        tail = b" %d" % ts
        if shape == "notime":
            tail = b""
        elif shape == "nts":
            tail = b" -%d" % ts
        line = m + tags + b" " + fieldset + tail
        if shape == "crlf":
            line += b"\r"
        elif shape == "tab":
            line = line.replace(b",region", b",re\tgion")
        elif shape == "space":
            line += b" "
        elif shape == "other":
            line = draw(UNIT)
        lines.append(line)
    return b"".join(line + b"\n" for line in lines)


@needs_accel
@settings(max_examples=150, **SETTINGS)
@given(data=telegraf_stream(), cuts=st.lists(st.integers(0, 20000), max_size=6), warmup=st.integers(0, 5))
def test_same_output_and_state_on_telegraf_like_streams(data: bytes, cuts: list[int], warmup: int) -> None:
    assert_same(data, _config(warmup=warmup), [c % (len(data) + 1) for c in cuts])


@needs_accel
@settings(max_examples=150, **SETTINGS)
@given(units=STREAM, cuts=st.lists(st.integers(0, 5000), max_size=4))
def test_same_output_on_any_stream(units: list[bytes], cuts: list[int]) -> None:
    """The property suite's streams: escapes, strings across lines, malformed metrics, comments."""
    data = b"".join(u + b"\n" for u in units)
    assert_same(data, _config(), [c % (len(data) + 1) for c in cuts])


@needs_accel
@settings(max_examples=60, **SETTINGS)
@given(data=telegraf_stream(), max_series=st.integers(1, 6))
def test_same_eviction_and_expiry(data: bytes, max_series: int) -> None:
    """LRU eviction and event-time expiry happen at the same metric, to the same series."""
    assert_same(data, _config(max_series=max_series, ttl="20s"))


def _lru_stream(seed: int, n: int) -> list[tuple[bytes, list[bytes], int | None]]:
    """``n`` metrics (series prefix, field keys, timestamp in ns or None) over a few hundred series: time
    mostly moves on, at times goes back or is missing; hosts come and go (eviction), some fall silent (expiry)."""
    rng = random.Random(seed)
    ts = 10**18
    out = []
    for i in range(n):
        host = rng.randrange(40) if rng.random() < 0.8 else rng.randrange(40 + i // 50, 90 + i // 50)
        prefix = b"%s,host=h%d " % (rng.choice([b"quiet", b"zed"]), host)
        fields = rng.sample([b"a", b"b", b"c"], rng.randint(1, 3))
        ts += rng.choice([0, 10**9, 10**9, 3 * 10**9])
        r = rng.random()
        stamp = None if r < 0.03 else ts - rng.randrange(60 * 10**9) if r < 0.08 else ts
        out.append((prefix, fields, stamp))
    return out


def _old_lru(stream: list[tuple[bytes, list[bytes], int | None]], max_series: int, ttl_ns: int, every: int
             ) -> list[tuple[list[tuple[bytes, int | None]], int, int]]:
    """The engine's eviction and expiry written out with its series dict as the LRU order (each sample moves
    its series to the end), as it was up to 2026-11-30, with series_ttl measured on the stream's clock since
    (the median of the latest 127 timestamps, from the third on, never going back): past ``max_series``
    a stale series is dropped, the front one if it is stale, else all of them, and only without one the
    front series is evicted; every 4096 metrics the front series are dropped while they are stale; a stale
    series seen again starts fresh (expired too), its last time forgotten. Stale: seen before ``ttl_ns``
    before that clock, where a series is seen at the clock's time at its sample or the sample's timestamp if
    later (the timestamp alone before the clock is known; at its time, once known, for a sample without
    one), or, at its next sample, whose own timestamps jump on more than ``ttl_ns`` to a time not more than
    ``ttl_ns`` ahead of the clock; its last time is its latest timestamp. (Up to 2026-12-03: its last
    timestamp before ``ttl_ns`` before the clock, so that a series lagging the clock was stale at each
    sample, and its last time the one of its last sample.) Only series with a model (not ``quiet``, whose
    rule is ``off``) count against ``max_series``: series without one that come first are dropped on the
    way to the one evicted, a stale one only counts as room when it had a model, and beyond ``max_series``
    series without a model they are all dropped. Only the expiries of series with a model are counted. The
    series left (key, last time), least recently seen first; evicted; expired: after each ``every`` metrics
    and at the end (one pass: each prefix of the stream is not run again from its start)."""
    series: dict[bytes, list[int | None]] = {}  # key: [last time, seen at (None: not yet)]
    window: list[int] = []
    now = None
    evicted = expired = passing = 0
    after: list[tuple[list[tuple[bytes, int | None]], int, int]] = []

    def stale(entry: list[int | None]) -> bool:
        return now is not None and entry[1] is not None and entry[1] < now - ttl_ns

    def modelled(key: bytes) -> bool:
        return not key.startswith(b"quiet,")

    for metrics, (prefix, fields, stamp) in enumerate(stream, 1):
        if stamp is not None:
            window = [*window, stamp][-127:]
            if len(window) >= 3:
                median = sorted(window)[(len(window) - 1) // 2]
                if now is None:  # (known now: a series seen without a timestamp is seen at its time)
                    for entry in series.values():
                        entry[1] = median if entry[1] is None else entry[1]
                now = median if now is None else max(now, median)
        if not metrics & 0xFFF:
            while series and stale(series[next(iter(series))]):
                passing -= not modelled(next(iter(series)))
                expired += modelled(next(iter(series)))
                del series[next(iter(series))]
        for field in fields:
            key = prefix + field
            if key in series:
                entry = series.pop(key)
                last = entry[0]
                gone = stale(entry) or (
                    now is not None and last is not None and stamp is not None and stamp - last > ttl_ns
                    and not stamp - now > ttl_ns
                )
                expired += gone and modelled(key)
                series[key] = [None if gone else last, entry[1]]  # (a restart forgets the last time)
            else:
                series[key] = [None, None]
                if not modelled(key):
                    passing += 1
                    if passing > max_series:
                        series = {k: e for k, e in series.items() if modelled(k)}
                        passing = 0
                elif len(series) - passing > max_series:
                    while True:
                        front = next(iter(series))
                        if stale(series[front]) or not modelled(front):
                            expired += stale(series.pop(front)) and modelled(front)
                            passing -= not modelled(front)
                            if modelled(front):
                                break
                            continue
                        gone_ = [k for k, e in series.items() if stale(e)]
                        expired += sum(modelled(k) for k in gone_)
                        passing -= sum(not modelled(k) for k in gone_)
                        if not any(modelled(k) for k in gone_):
                            gone_.append(front)
                            evicted += 1
                        for k in gone_:
                            del series[k]
                        break
            if key in series:  # (not when it was just dropped with every series without a model)
                entry = series[key]
                if stamp is None:
                    entry[1] = now
                else:
                    entry[1] = stamp if now is None else max(now, stamp)
                    if entry[0] is None or stamp > entry[0]:
                        entry[0] = stamp
        if not metrics % every or metrics == len(stream):
            after.append(([(k, e[0]) for k, e in series.items()], evicted, expired))
    return after


@pytest.mark.parametrize("shape", ["rising", "jumbled", "batches"])
@pytest.mark.parametrize("build", ["compiled", "uncompiled"])
def test_clock_is_the_running_highest_median_of_the_latest_127(build: str, shape: str) -> None:
    """The stream's clock (``Clock``, which ``series_ttl`` is measured on), timestamp by timestamp, against
    its definition written out: ``now`` is the highest median so far of the latest 127 timestamps (from the
    third on), and the window holds them in arrival order, whether timestamps rise with jitter and
    repeats, come in any order, or in batches sharing one timestamp (Telegraf's gathers)."""
    hot = sys.modules["riverguard._hotpath"] if build == "compiled" else UNCOMPILED
    if build == "compiled" and not ACCELERATED:
        pytest.skip("hot path not compiled here")
    rng = random.Random(shape)
    if shape == "rising":  # the median moves at most steps: a window kept out of order shows at once
        stamps = [i * 1000 + rng.choice((0, 0, rng.randrange(-300_000, 300_000))) for i in range(5000)]
    elif shape == "jumbled":
        stamps = [rng.randrange(0, 200_000) * 1000 for _ in range(5000)]
    else:
        stamps = [b * 10**10 + rng.choice((0, -(10**10))) for b in range(500) for _ in range(rng.randrange(1, 40))]
    clock = hot.Clock(10**18)
    window: list[int] = []
    now = None
    for k, stamp in enumerate(stamps):
        clock.advance(stamp)
        window = [*window, stamp][-127:]
        if len(window) >= 3:
            median = sorted(window)[(len(window) - 1) // 2]
            now = median if now is None else max(now, median)
        assert (clock.now if clock.known else None) == now, f"at timestamp {k}"
    assert clock.window() == window
    again = hot.Clock(10**18)
    again.load(*clock.dump())
    for stamp in stamps[:300]:  # restored, it goes on as the clock that was never stopped
        clock.advance(stamp + 10**12)
        again.advance(stamp + 10**12)
        assert again.now == clock.now
    assert again.window() == clock.window()


@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize("build", ["compiled", "uncompiled"])
@pytest.mark.parametrize(("seed", "max_series", "ttl"), [(1, 100, "20s"), (2, 1000, "30s"), (3, 60, "1h")])
def test_evicts_and_expires_as_an_lru_dict_did(build: str, seed: int, max_series: int, ttl: str, wrap: bool) -> None:
    """The series stay in their dict in the order they were created and carry a stamp of when they were last
    seen, instead of moving to the dict's end at each sample: the same series are evicted and expired, at the
    same metric, and the checkpoint's order (least recently seen first) is the same as before. With ``wrap``,
    the 32-bit stamp clock reaches its end in each piece (every engine numbers its series again)."""
    if build == "compiled" and not ACCELERATED:
        pytest.skip("compiled hot path not built here")
    stream = _lru_stream(seed, 20_000)
    config = _config(max_series=max_series, ttl=ttl)
    engine = Engine(config) if build == "compiled" else Engine(config, hotpath=UNCOMPILED)
    data = b"".join(
        prefix + b",".join(f + b"=%d" % (i % 7) for f in fields) + (b"" if t is None else b" %d" % t) + b"\n"
        for i, (prefix, fields, t) in enumerate(stream)
    )
    step = 20_000 // 8
    lines = data.splitlines(keepends=True)
    old = _old_lru(stream, max_series, int(rg_config.parse_duration(ttl) * 1e9), step)
    for k in range(0, len(lines), step):  # in pieces, each checked against the old engine's
        if wrap:
            engine._hot.set_clock(2**32 - 1 - 3000)  # about 5 000 samples a piece: the end comes in this one
        _run(engine, b"".join(lines[k : k + step]), [1000, 5000])
        kept, evicted, expired = old[k // step]
        assert [(key, s.last_time) for key, s in engine.lru()] == kept
        assert (engine.evicted, engine.expired) == (evicted, expired)
    assert engine.evicted + engine.expired > 1000 and (engine.expired > 50) == (ttl != "1h")
    if wrap:
        assert engine._hot.clock() < 2**20  # it reached its end, and counts on from the series held


@needs_accel
@settings(max_examples=40, **SETTINGS)
@given(data=telegraf_stream())
def test_same_with_other_suffixes(data: bytes) -> None:
    assert_same(data, _config(suffixes=("_s", "_v")))


@needs_accel
@settings(max_examples=60, **SETTINGS)
@given(data=telegraf_stream(), warmup=st.integers(0, 5))
def test_same_with_explanations(data: bytes, warmup: int) -> None:
    """[output] explain = true: the explanation fields, also on metrics that hold such names already."""
    assert_same(data, _config(warmup=warmup, explain=True))


# -- cases written out --------------------------------------------------------------

EDGES = [
    b"cpu,host=a v=1 1",
    b"cpu,host=a v=1.5,w=2i,x=3u,b=true,c=F 2",
    b"cpu,host=a v=-9223372036854775808i,w=9223372036854775807i,x=18446744073709551615u 3",
    b"cpu,host=a v=9223372036854775808i 4",  # out of range: Python reports it
    b"cpu,host=a v=18446744073709551616u 5",
    b"cpu,host=a v=1e400 6",
    b"cpu,host=a v=-0 7",
    b"cpu,host=a v=-0i 8",
    b"cpu,host=a v=.5,w=5.,x=+1,y=1E-3 9",
    b"cpu,region=eu,host=a v=1 10",  # unsorted tags
    b"cpu,host=a v=1,v=2 11",  # a key twice
    b"cpu,host=a v=1,v_anomaly_score=0.5 12",
    b"cpu,host=a v=1 -9223372036854775808",
    b"cpu,host=a v=1 9223372036854775808",
    b"cpu,host=a v=1 -0",
    b"cpu,host=a v=1",
    b"cpu,host=a v=1 ",
    b"cpu,host=a  v=1",
    b"cpu,host=a v=1 1\r",
    b"cpu,host=a,host=a v=1 13",
    b"cpu,host= v=1 14",
    b"cpu,=a v=1 15",
    b"cpu, v=1 16",
    b"c=pu,host=a v=1 17",
    b"cpu,host=a=b v=1 18",
    b"cpu v=1 19",
    b"cpu,host=a v=1,w= 20",
    b"cpu,host=a v==1 21",
    b"cpu,host=a =1 22",
    b"cpu,host=a v=1, 23",
    b'cpu,host=a v=1,s="x" 24',
    b"cpu\\,x,host=a v=1 25",
    b"# cpu,host=a v=1 26",
    b"",
    b"   ",
    b"odd,host=a v=1 27",
    b"cpu,host=\xff\xfe v=1 28",
    b"cpu,host=a v=0x1 29",
    b"cpu,host=a v=1_0 30",
    b"cpu,host=a v=00012.5000 31",
    b"cpu,host=a v=1 00000000000000000000031",
]


@needs_accel
def test_edge_lines_agree() -> None:
    lines = EDGES * 3 + [b"odd,host=a v=%d %d" % (i, 100 + i) for i in range(20)]
    data = b"".join(line + b"\n" for line in lines)
    out = assert_same(data, _config(warmup=0))
    assert out.count(b"\n") == data.count(b"\n")
    assert b"odd failure" not in out
    assert b"v_anomaly_score=1.0,v_anomaly=true" in out  # Odd's 2.5 clamps, its int 1 scores 1.0


@needs_accel
def test_appending_grows_a_passed_bytearray_as_python_does() -> None:
    """``verdict`` appends to the caller's bytearray: the compiled build sets its size itself (growing
    it by half), and must do what ``ob += data`` does, also for a bytearray whose start has been cut
    (``del ob[:k]``) and while a view of it is held (BufferError, the bytearray and the view unchanged)."""
    import riverguard._hotpath as compiled

    names = (b",v_anomaly_score=", b",v_anomaly=true", b",v_anomaly=false")
    results = []
    for hot in (UNCOMPILED, compiled):
        series = hot.Series(None, None)
        ob = bytearray(b"head,")
        del ob[:2]  # its bytes now start past its allocation's start
        refused = 0
        for i in range(3000):  # many regrowths
            hot.verdict(series, i / 3000.0, names, i % 2 == 0, ob)
            if i % 500 == 7:
                view = memoryview(ob)
                before = bytes(ob)
                with pytest.raises(BufferError):
                    hot.verdict(series, 0.5, names, True, ob)
                refused += 1
                assert bytes(ob) == before and bytes(view) == before
                view.release()
        assert refused == 6
        results.append((bytes(ob), series.seen, series.anomalies))
    assert results[0] == results[1]
    assert results[0][0].startswith(b"ad,,v_anomaly_score=0.0,v_anomaly=false,v_anomaly_score=0.000333")


def _reload_stream(rounds: int) -> bytes:
    """Hosts with two zscore fields and two default-detector fields, a jump now and then (flags to set)."""
    rng = random.Random(12)
    lines = []
    for r in range(rounds):
        ts = 1_700_000_000_000_000_000 + r * 10_000_000_000
        for h in range(4):
            jump = 40.0 if r % 37 == 36 else 0.0
            lines.append(b"zq,host=h%d a=%.3f,b=%.3f %d\n" % (h, rng.gauss(10, 1) + jump, rng.gauss(5, 1), ts))
            lines.append(b"cpu,host=h%d user=%.3f,idle=%.3f %d\n" % (h, rng.gauss(30, 2) + jump, rng.gauss(60, 2), ts))
    return b"".join(lines)


@pytest.mark.parametrize("build", ["compiled", "uncompiled"])
def test_a_reload_gives_kept_series_their_new_threshold_and_field_names(build: str) -> None:
    """The series of one field key under one rule share what they take from it (a binding: the threshold,
    warm-up and added-field names). A reload (SIGHUP) that changes the thresholds, the suffixes and explain
    keeps the models, and from the next sample each kept series writes what an engine started with the new
    config writes: its new flag, names and explanation fields."""
    if build == "compiled" and not ACCELERATED:
        pytest.skip("compiled hot path not built")
    hot = {} if build == "compiled" else {"hotpath": UNCOMPILED}
    before = _config(warmup=3)
    text = CONFIG.format(max_series=1000, ttl="24h", warmup=3, score="_s", flag="_f", explain="true")
    after = rg_config.parse(text.replace("threshold = 0.9", "threshold = 0.2").replace("threshold = 0.02", "threshold = 0.5"))
    data = _reload_stream(300)
    cut = data.index(b"\n", len(data) // 2) + 1
    whole = _run(Engine(after, **hot), data, [])
    engine = Engine(before, **hot)
    head = _run(engine, data[:cut], [])
    assert engine.reconfigure(after) == (16, Counter())
    tail = _run(engine, data[cut:], [])
    assert tail == whole[len(whole) - len(tail):]
    assert b"a_f=true" in tail and b"user_s=" in tail and b"user_anomaly_score=" in head
    bindings = {}
    for key, series in engine.series.items():
        bindings.setdefault((series.rule.name, key.rsplit(b" ", 1)[1]), set()).add(id(series.binding))
    assert len(bindings) == 4 and all(len(ids) == 1 for ids in bindings.values())
    if build == "compiled":
        assert sys.getsizeof(next(iter(engine.series.values()))) == 64  # (96 B when a series held these itself)


@needs_accel
def test_same_on_the_recorded_demo() -> None:
    """6 h of 3 hosts with injected anomalies: scores above threshold, warm-up, many series."""
    data = (ROOT / "tests" / "data" / "demo.lp").read_bytes()
    rng = random.Random(3)
    out = assert_same(data, rg_config.default_config(), [rng.randrange(len(data)) for _ in range(30)])
    assert b"_anomaly=true" in out


def test_installs_and_runs_without_a_c_compiler(tmp_path: Path) -> None:
    """No compiler: the install still succeeds, riverguard says it runs in pure Python, and the output is the same."""
    import shutil
    import subprocess
    import sys

    src = tmp_path / "src"
    shutil.copytree(ROOT / "plugin", src / "plugin", ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    target = tmp_path / "site"
    env = {**os.environ, "CC": "false", "LDSHARED": "false"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(src)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(target.rglob("*.so"))
    env = {**os.environ, "PYTHONPATH": str(target)}
    version = subprocess.run([sys.executable, "-m", "riverguard", "--version"], capture_output=True, text=True,
                             env=env, timeout=60)
    assert "(pure Python: no compiled hot path)" in version.stdout
    demo = ROOT / "tests" / "data" / "demo.lp"
    pure = subprocess.run([sys.executable, "-m", "riverguard", "replay", str(demo), "--log-level", "error"],
                          capture_output=True, env=env, timeout=300)
    assert pure.returncode == 0, pure.stderr
    compiled = subprocess.run([sys.executable, "-m", "riverguard", "replay", str(demo), "--log-level", "error"],
                              capture_output=True, timeout=300)
    assert pure.stdout == compiled.stdout


DECIMAL = st.builds(
    lambda sign, whole, frac, exp: sign + whole + (b"." + frac if frac is not None else b"") + exp,
    st.sampled_from([b"", b"-", b"+"]),
    st.text("0123456789", min_size=1, max_size=22).map(str.encode),
    st.one_of(st.none(), st.text("0123456789", max_size=22).map(str.encode)),
    st.one_of(st.just(b""), st.integers(-340, 340).map(lambda e: b"e%d" % e), st.integers(-30, 30).map(lambda e: b"E%+d" % e)),
)


@needs_accel
@settings(max_examples=3000, **SETTINGS)
@given(token=st.one_of(DECIMAL, st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).encode()),
                       st.floats(allow_nan=False, allow_infinity=False).map(lambda f: b"%.17g" % f)))
def test_compiled_float_parsing_is_pythons(token: bytes) -> None:
    """The plain-line parser's shortcut for short decimals gives the same double as float(), bit for bit, in both builds."""
    import struct

    from riverguard import _plainline

    for module in (_plainline, uncompiled("_plainline")):
        value = module.number_value(token)
        if value is None:
            continue  # left to the general parser (not the codec's FLOAT grammar, too long, or out of range)
        assert struct.pack("<d", value) == struct.pack("<d", float(token)), (module.__name__, token)


def test_the_metric_models_of_a_rule_share_one_binding_new_and_restored(tmp_path: Path) -> None:
    """A ``scope = "metric"`` rule's models (one per measurement + tag set) share the rule's binding, as the
    series of one field do: when first seen and when restored from a checkpoint."""
    from riverguard.state import StateStore

    config = rg_config.parse('[[rule]]\nname = "m"\nmeasurement = "zq"\nscope = "metric"\ndetector = "hst"\n')
    data = b"".join(b"zq,host=h%d a=%d,b=%d %d\n" % (h, i % 7, i % 5, 1_700_000_000_000_000_000 + i * 10**10)
                    for i in range(30) for h in range(3))

    def bindings(engine: Engine) -> set[int]:
        assert len(engine.series) == 3
        return {id(series.binding) for series in engine.series.values()}

    engine = Engine(config)
    _run(engine, data, [])
    assert len(bindings(engine)) == 1
    StateStore(engine, tmp_path / "rg.msgpack").save()
    restored = Engine(config)
    assert StateStore(restored, tmp_path / "rg.msgpack").restore() == 3
    assert len(bindings(restored)) == 1
