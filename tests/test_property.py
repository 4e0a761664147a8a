"""Property: every metric comes back, and only riverguard's own fields are added.

Generated streams mix valid metrics (every escape, field type, multi-line
strings, non-UTF-8 bytes, optional and negative timestamps) with malformed
ones (bad values, unterminated quotes, junk), comments and blank lines. For
each input unit exactly one output unit comes back, and removing the added
``K_anomaly_score=<score>,K_anomaly=<bool>`` pairs gives the input back byte
for byte. Checked in-process (fast, many examples) and through one real
``riverguard run`` process.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import Proc
from riverguard.config import default_config
from riverguard.detectors import resolve
from riverguard.engine import Engine
from riverguard.lineprotocol import Metric, Splitter, whole_end

SETTINGS = dict(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
THRESHOLD = resolve("default").default_threshold  # the default config's threshold

# -- strategies -----------------------------------------------------------------

_PLAIN = st.sampled_from([b"a", b"b", b"x", b"Z", b"0", b"7", b"_", b"-", b".", b"/", b"\xc3\xa9", b"\xff", b"\x80", b"\xe2\x82\xac"])


def _name(escapes: list[bytes], first: st.SearchStrategy[bytes] | None = None) -> st.SearchStrategy[bytes]:
    atom = st.one_of(_PLAIN, st.sampled_from(escapes))
    return st.builds(lambda head, rest: head + b"".join(rest), atom if first is None else first, st.lists(atom, max_size=6))


MEASUREMENT = _name([rb"\,", rb"\ ", b"="], first=st.one_of(_PLAIN, st.sampled_from([rb"\,", rb"\ "])))
KEY = _name([rb"\,", rb"\ ", rb"\="])

FLOAT = st.one_of(
    st.sampled_from([b"1", b"1.", b".5", b"-1.5e10", b"1E-3", b"+1", b"-0", b"0.0", b"1e300", b"-1e-300"]),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).encode()),
    st.integers(-10**6, 10**6).map(lambda i: b"%d" % i),
)
INTEGER = st.integers(-(2**63), 2**63 - 1).map(lambda i: b"%di" % i)
UNSIGNED = st.integers(0, 2**64 - 1).map(lambda i: b"%du" % i)
BOOLEAN = st.sampled_from([b"t", b"T", b"true", b"True", b"TRUE", b"f", b"F", b"false", b"False", b"FALSE"])
_STRING_ATOM = st.one_of(
    st.sampled_from([b"a", b" ", b",", b"=", b"\n", rb"\"", rb"\\", b"\xff", b"#", b"\r", b"'", b"\\n"]),
    st.binary(max_size=3).map(lambda b: b.replace(b"\\", b"").replace(b'"', b"")),
)
STRING = st.lists(_STRING_ATOM, max_size=8).map(lambda atoms: b'"' + b"".join(atoms) + b'"')
VALUE = st.one_of(FLOAT, INTEGER, UNSIGNED, BOOLEAN, STRING)
TIMESTAMP = st.one_of(st.just(b""), st.integers(-(2**63), 2**63 - 1).map(lambda t: b" %d" % t))


# Values a default detector must always score (extreme magnitudes are covered in test_detectors.py).
MODEST = st.one_of(
    st.floats(-1e12, 1e12).map(lambda f: repr(f).encode()),
    st.integers(-(2**53), 2**53).map(lambda i: b"%di" % i),
    st.integers(0, 2**53).map(lambda i: b"%du" % i),
    BOOLEAN,
    STRING,
)


@st.composite
def valid_metric(draw: st.DrawFn, values: st.SearchStrategy[bytes] = VALUE) -> bytes:
    measurement = draw(MEASUREMENT)
    tags = draw(st.lists(st.tuples(KEY, KEY), max_size=3, unique_by=lambda tag: tag[0]))  # (a key given twice: refused)
    fields = draw(st.lists(st.tuples(KEY, values), min_size=1, max_size=4))
    line = measurement + b"".join(b"," + k + b"=" + v for k, v in tags)
    line += b" " + b",".join(k + b"=" + v for k, v in fields)
    return line + draw(TIMESTAMP) + draw(st.sampled_from([b"", b"", b"", b" ", b"\r"]))


BAD_VALUE = st.sampled_from([b"1_0", b"nan", b"inf", b"1.2.3", b"-1u", b"99999999999999999999i", b"1e999", b"yes", b""])


@st.composite
def malformed_metric(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["value", "junk", "timestamp", "nofields"]))
    m = draw(MEASUREMENT)
    if kind == "value":
        return m + b" " + draw(KEY) + b"=" + draw(BAD_VALUE) + draw(TIMESTAMP)
    if kind == "timestamp":
        return m + b" v=1 " + draw(st.sampled_from([b"1.5", b"abc", b"1 2", b"99999999999999999999"]))
    if kind == "nofields":
        return m
    junk = draw(st.binary(min_size=1, max_size=40)).replace(b"\n", b"").replace(b'"', b"")
    return junk or b"?"


#: A string left open: it runs to the end of the input, or to the next quote of a line after it (a string may
#: hold a newline), which makes the two lines one metric: so it comes last in a stream.
OPEN_QUOTE = st.builds(
    lambda m, k, junk: m + b" " + k + b'="' + junk.replace(b"\n", b"").replace(b'"', b""),
    MEASUREMENT, KEY, st.binary(max_size=10),
)
OTHER = st.sampled_from([b"", b"# a comment", b"#m v=1", b"   ", b"\r", b"# \xff"])
UNIT = st.one_of(valid_metric(), valid_metric(), malformed_metric(), OTHER)
STREAM = st.builds(lambda units, last: units + last, st.lists(UNIT, min_size=1, max_size=24), st.lists(OPEN_QUOTE, max_size=1))

# -- the check --------------------------------------------------------------------

_KEY_RE = rb"(?:[^\\,= \n]|\\[^\n])+?"
_SCORE_RE = rb"(?:0\.0|1\.0|0\.[0-9]+|[1-9](?:\.[0-9]+)?e-0?[0-9]+)"
_ITEM = re.compile(rb",(" + _KEY_RE + rb")_anomaly_score=(" + _SCORE_RE + rb")(?:,\1_anomaly=(true|false))?")
_ITEMS = re.compile(rb"(?:" + _ITEM.pattern + rb")*")


def check_unit(data: bytes, out: bytes, metric: Metric | None) -> None:
    """``out`` is ``data`` with only well-formed anomaly fields for its numeric fields inserted."""
    if metric is None:
        assert out == data
        return
    at = metric.fields_end
    tail = data[at:]
    assert out[:at] == data[:at]
    assert out.endswith(tail)
    added = out[at : len(out) - len(tail)]
    assert _ITEMS.fullmatch(added), added
    numeric = [f.key for f in metric.fields if f.number is not None]
    keys = []
    for m in _ITEM.finditer(added):
        key, score, flag = m.group(1), float(m.group(2)), m.group(3)
        assert key in numeric
        assert 0.0 <= score <= 1.0
        if flag is not None:
            assert flag == (b"true" if score >= THRESHOLD else b"false")
        keys.append(key)
    assert len(keys) <= len(numeric)


def run_in_process(engine: Engine, units: list[bytes]) -> tuple[bytes, bytes]:
    data = b"".join(u + b"\n" for u in units)
    records, consumed, pending = Splitter().split(data, final=True)
    assert consumed == len(data) and not pending
    assert len(records) == len(units), [r.data for r in records]
    outs = []
    for unit, record in zip(units, records, strict=True):
        assert record.data == unit + b"\n"
        out = engine.process(record)
        check_unit(record.data, out, record.metric)
        outs.append(out)
    return data, b"".join(outs)


@settings(max_examples=200, **SETTINGS)
@given(units=STREAM)
def test_every_metric_comes_back_with_only_fields_added(units: list[bytes]) -> None:
    run_in_process(Engine(default_config()), units)


@settings(max_examples=100, **SETTINGS)
@given(units=st.lists(valid_metric(MODEST), min_size=1, max_size=10))
def test_valid_metrics_are_scored_in_process(units: list[bytes]) -> None:
    """Every numeric field of a valid metric gets a score (no key of the generator ends with a suffix)."""
    engine = Engine(default_config())
    records, _, _ = Splitter().split(b"".join(u + b"\n" for u in units), final=True)
    assert all(r.metric is not None for r in records)
    for record in records:
        out = engine.process(record)
        fields = record.metric.fields
        last = {f.key: i for i, f in enumerate(fields)}  # a key given twice is scored once, at its last value
        numeric = [f.key for i, f in enumerate(fields) if f.number is not None and last[f.key] == i]
        added = out[record.metric.fields_end : len(out) - (len(record.data) - record.metric.fields_end)]
        assert [m.group(1) for m in _ITEM.finditer(added)] == numeric


@settings(max_examples=4, phases=[Phase.explicit, Phase.generate], **SETTINGS)
@given(units=st.lists(UNIT, min_size=20, max_size=60))
def test_real_process_matches_in_process_engine(units: list[bytes]) -> None:
    """A fresh ``riverguard run`` per example, fed one metric per write as Telegraf does.

    No shrinking: each example starts a process (slow); a failure shows the
    example as generated.
    """
    data, expected = run_in_process(Engine(default_config()), units)
    proc = Proc(["run"])
    try:
        for unit in units:
            proc.write(unit + b"\n")
        proc.close_stdin()
        assert proc.wait(30) == 0, proc.stderr
    finally:
        proc.kill()
    assert proc.stdout == expected
    assert data.count(b"\n") <= proc.stdout.count(b"\n")



#: A string value open across lines amid other metrics: it closes at a quote of a later line, or never.
ACROSS = st.builds(
    lambda before, m, k, lines, after: [*before, m + b" " + k + b'="' + b"\n".join(lines), *after],
    st.lists(UNIT, max_size=4), MEASUREMENT, KEY,
    st.lists(st.binary(max_size=8).map(lambda b: b.replace(b'"', b"")), min_size=1, max_size=6), st.lists(UNIT, max_size=6),
)


@settings(max_examples=300, **SETTINGS)
@given(units=ACROSS, at=st.lists(st.integers(0, 1000), min_size=2, max_size=2))
def test_a_metric_still_pending_by_its_new_bytes_alone_is_pending_when_parsed_again(units: list[bytes], at: list[int]) -> None:
    """The stream loops' shortcuts say what :meth:`Splitter.split` would say: ``whole_end`` (where the whole
    metrics end, parsing only lines that may hold an open quote) and ``Splitter.still_pending`` (so that a string
    value open across lines is not parsed again at every read): the metric it left pending, with the bytes
    that came after, is pending still, the whole metrics before it as they were."""
    data = b"".join(u + b"\n" for u in units)
    a, b = sorted(i * len(data) // 1000 for i in at)  # (per mille of the stream)
    split = Splitter().split
    _, consumed, pending = split(data[:a])
    assert whole_end(data[:a]) == consumed  # (parsing only the lines that may hold an open quote)
    waiting, more = data[consumed:a], data[a:b]
    if pending and Splitter.still_pending(waiting, more):
        assert split(waiting + more) == ([], 0, True)
        assert split(data[:b])[1:] == (consumed, True)
