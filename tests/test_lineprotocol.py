"""The line-protocol codec: what parses, what does not, and how a stream is cut into metrics."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riverguard.config import default_config
from riverguard.engine import Engine
from riverguard.lineprotocol import (
    ParseError, Splitter, build_line, escape_key, insert_fields, metric_lines, parse, raw_fields, unescape,
)

# -- escaping ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "measurement"),
    [
        (rb"cpu\,load v=1", rb"cpu\,load"),
        (rb"cpu\ load v=1", rb"cpu\ load"),
        (rb"a\,b\ c\,d v=1", rb"a\,b\ c\,d"),
        (rb"cpu=x v=1", rb"cpu=x"),  # '=' needs no escape in a measurement
        (rb'"cpu" v=1', rb'"cpu"'),  # neither does a quote
        (rb"c\pu v=1", rb"c\pu"),  # a backslash before an ordinary byte is kept
    ],
)
def test_measurement_escapes(line: bytes, measurement: bytes) -> None:
    m = parse(line)
    assert m.measurement == measurement
    assert [f.key for f in m.fields] == [b"v"]


@pytest.mark.parametrize(
    ("line", "tags"),
    [
        (rb"m,k\,1=v v=1", [(rb"k\,1", b"v")]),
        (rb"m,k\=1=v v=1", [(rb"k\=1", b"v")]),
        (rb"m,k\ 1=v v=1", [(rb"k\ 1", b"v")]),
        (rb"m,k=v\,1 v=1", [(b"k", rb"v\,1")]),
        (rb"m,k=v\=1 v=1", [(b"k", rb"v\=1")]),
        (rb"m,k=v\ 1 v=1", [(b"k", rb"v\ 1")]),
        (rb"m,a\ b\=c\,d=e\ f\=g\,h v=1", [(rb"a\ b\=c\,d", rb"e\ f\=g\,h")]),
        (b"m,a=1,b=2,c=3 v=1", [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]),
    ],
)
def test_tag_escapes(line: bytes, tags: list[tuple[bytes, bytes]]) -> None:
    assert parse(line).tags == tags


@pytest.mark.parametrize(
    ("line", "key"),
    [
        (rb"m f\,1=1", rb"f\,1"),
        (rb"m f\=1=1", rb"f\=1"),
        (rb"m f\ 1=1", rb"f\ 1"),
        (rb"m my\ field=1", rb"my\ field"),
    ],
)
def test_field_key_escapes(line: bytes, key: bytes) -> None:
    (field,) = parse(line).fields
    assert field.key == key
    assert field.number == 1.0


@pytest.mark.parametrize(
    "line",
    [
        rb"m,k,1=v v=1",  # unescaped comma in a tag key
        rb"m,k=v,1 v=1",  # unescaped comma in a tag value
        rb"m,k=1=v v=1",  # unescaped '=' in a tag value
        rb"m,k 1=v v=1",  # unescaped space in a tag key
        rb"m,k=v 1 v=1",  # unescaped space in a tag value
        rb"m f 1=1",  # unescaped space in a field key
        rb"m f,1=1",  # unescaped comma in a field key
        rb"m,=v v=1",  # empty tag key
        rb"m,k= v=1",  # empty tag value
        rb"m =1",  # empty field key
        rb"m,k v=1",  # tag without '='
        rb"cpu\ v=1",  # escaped space: the measurement swallows the field set
        rb"cpu v\=1",  # escaped '=': no field value
        b"cpu\\",  # backslash at end of the name
    ],
)
def test_invalid_escaping(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse(line)


@pytest.mark.parametrize(
    "value",
    [
        rb'"plain"',
        rb'""',
        rb'"with \"quote\""',
        rb'"back\\slash"',
        rb'"ends in backslash\\"',
        rb'"comma, space and = sign"',
        rb'"not an escape: \n \t \a"',
    ],
)
def test_string_values(value: bytes) -> None:
    line = b"m s=" + value + b",v=2 5"
    m = parse(line)
    assert [(f.key, f.kind, f.number) for f in m.fields] == [(b"s", "s", None), (b"v", "f", 2.0)]
    assert m.timestamp == 5
    assert m.fields_end == len(line) - 2


@pytest.mark.parametrize(
    "value",
    [
        rb'"unterminated',
        rb'"escaped quote at end\"',
        rb'"odd backslashes\\\"',
    ],
)
def test_unterminated_string(value: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse(b"m s=" + value + b" 1")
    assert info.value.open_quote


def test_string_value_must_be_followed_by_delimiter() -> None:
    with pytest.raises(ParseError):
        parse(b'm s="a"b 1')


# -- field types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "number"),
    [
        (b"1", 1.0),
        (b"1.", 1.0),
        (b".5", 0.5),
        (b"-1.5e10", -1.5e10),
        (b"1E-3", 0.001),
        (b"+1", 1.0),
        (b"-0", 0.0),
        (b"1e+2", 100.0),
        (b"1.7976931348623157e308", 1.7976931348623157e308),
        (b"5e-324", 5e-324),
    ],
)
def test_float_forms(token: bytes, number: float) -> None:
    (field,) = parse(b"m v=" + token).fields
    assert field.kind == "f"
    assert field.number == number


@pytest.mark.parametrize(
    ("token", "kind", "number"),
    [
        (b"1i", "i", 1.0),
        (b"-1i", "i", -1.0),
        (b"+7i", "i", 7.0),
        (b"0i", "i", 0.0),
        (b"9223372036854775807i", "i", 9223372036854775807.0),
        (b"-9223372036854775808i", "i", -9223372036854775808.0),
        (b"0u", "u", 0.0),
        (b"42u", "u", 42.0),
        (b"18446744073709551615u", "u", 18446744073709551615.0),
    ],
)
def test_integer_forms(token: bytes, kind: str, number: float) -> None:
    (field,) = parse(b"m v=" + token).fields
    assert (field.kind, field.number) == (kind, number)


@pytest.mark.parametrize("token", [b"t", b"T", b"true", b"True", b"TRUE", b"f", b"F", b"false", b"False", b"FALSE"])
def test_boolean_spellings(token: bytes) -> None:
    (field,) = parse(b"m v=" + token + b" 1").fields
    assert (field.kind, field.number) == ("b", None)


@pytest.mark.parametrize(
    "token",
    [
        b"1_0",
        b"nan",
        b"NaN",
        b"inf",
        b"-inf",
        b"Infinity",
        b"1.2.3",
        b"-1u",
        b"1.5i",
        b"1.5u",
        b"1e",
        b"e5",
        b".",
        b"-",
        b"+",
        b"0x10",
        b"tRUE",
        b"yes",
        b"1e400",  # overflows a float64
        b"9223372036854775808i",
        b"-9223372036854775809i",
        b"18446744073709551616u",
        b"1i1",
        b"i",
        b"u",
    ],
)
def test_invalid_values(token: bytes) -> None:
    with pytest.raises(ParseError):
        parse(b"m v=" + token + b" 1")


@pytest.mark.parametrize("line", [b"m", b"m ", b"m v", b"m v=", b"m v=1,", b"m v=1,,w=2", b"m,", b"", b" v=1", b",t=1 v=1"])
def test_missing_parts(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse(line)


# -- timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "timestamp"),
    [
        (b"m v=1", None),
        (b"m v=1 ", None),
        (b"m v=1 0", 0),
        (b"m v=1 1700000000000000000", 1700000000000000000),
        (b"m v=1 -1", -1),
        (b"m v=1 -9223372036854775808", -(2**63)),
        (b"m v=1 9223372036854775807", 2**63 - 1),
        (b"m v=1 5\r", 5),
    ],
)
def test_timestamps(line: bytes, timestamp: int | None) -> None:
    m = parse(line)
    assert m.timestamp == timestamp
    assert m.fields_end == 5


@pytest.mark.parametrize(
    "line",
    [b"m v=1 1.5", b"m v=1 abc", b"m v=1 1 2", b"m v=1 9223372036854775808", b"m v=1 -9223372036854775809", b"m v=1 +5"],
)
def test_invalid_timestamps(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse(line)


def test_crlf_line_ending_with_and_without_timestamp() -> None:
    with_ts = parse(b"m v=1 5\r")
    without = parse(b"m v=1\r")
    assert (with_ts.fields, with_ts.fields_end) == (without.fields, without.fields_end)
    assert insert_fields(without, b",x=1") == b"m v=1,x=1\r"


# -- error positions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "column"),
    [
        (b" v=1", 1),  # missing measurement
        (b"m,=a v=1", 3),  # bad tag: points just after the comma
        (b"m v=abc 1", 5),  # the bad value
        (b"m v=1,w=x 1", 9),
        (b"m v=1 12x", 9),  # the byte after the timestamp digits
        (b"m v=1 1 x", 9),
        (b'm v=1,s="open', 9),  # the opening quote
        (b"mmmm", 5),  # end of line: no field set
    ],
)
def test_error_column(line: bytes, column: int) -> None:
    with pytest.raises(ParseError) as info:
        parse(line)
    assert f"at column {column}" in str(info.value)
    assert info.value.pos == column - 1


# -- insert_fields / names --------------------------------------------------------------


def test_insert_fields_keeps_every_other_byte() -> None:
    line = rb'm\ x,t\=1=a\,b s="q \" x",v=1i,w=2 -5'
    m = parse(line)
    out = insert_fields(m, b",new=1")
    assert out == rb'm\ x,t\=1=a\,b s="q \" x",v=1i,w=2,new=1 -5'


def test_unescape_and_escape_key_round_trip() -> None:
    assert unescape(rb"my\ field\,x\=y") == "my field,x=y"
    assert escape_key("my field,x=y") == rb"my\ field\,x\=y"
    assert unescape(escape_key("a b,c=d")) == "a b,c=d"
    assert unescape(b"caf\xc3\xa9\xff") == "café\\xff"


# -- non-UTF-8 and long lines --------------------------------------------------------------


def test_non_utf8_bytes_parse_and_pass_through() -> None:
    line = b"m\xff,h\xfe=\xc3\x28 v\xfd=1,s=\"\x80\x81\" 1"
    m = parse(line)
    assert m.measurement == b"m\xff"
    assert m.tags == [(b"h\xfe", b"\xc3\x28")]
    assert [(f.key, f.number) for f in m.fields] == [(b"v\xfd", 1.0), (b"s", None)]
    out = Engine(default_config()).process(Splitter().split(line + b"\n")[0][0])
    assert out == b'm\xff,h\xfe=\xc3\x28 v\xfd=1,s="\x80\x81",v\xfd_anomaly_score=0.0,v\xfd_anomaly=false 1\n'


@pytest.mark.parametrize("size", [1 << 20, (1 << 20) + 1, 3 << 20])
def test_long_lines(size: int) -> None:
    head = b"m,host=a s=\""
    tail = b'",v=2 1'
    line = head + b"x" * (size - len(head) - len(tail)) + tail
    assert len(line) == size
    records, consumed, pending = Splitter().split(line + b"\nm v=3 2\n")
    assert consumed == size + 1 + 8 and not pending
    assert [r.data for r in records] == [line + b"\n", b"m v=3 2\n"]
    assert [f.number for f in records[0].metric.fields] == [None, 2.0]
    assert records[0].metric.fields_end == size - 2


def test_long_line_with_many_fields() -> None:
    fields = b",".join(b"f%d=%di" % (i, i) for i in range(100_000))
    line = b"m " + fields + b" 1"
    assert len(line) > 1 << 20
    m = parse(line)
    assert len(m.fields) == 100_000
    assert m.fields[-1] == (b"f99999", "i", 99999.0)


# -- the Splitter ---------------------------------------------------------------------------


def split_all(data: bytes) -> list:
    records, consumed, pending = Splitter().split(data, final=True)
    assert consumed == len(data) and not pending
    assert b"".join(r.data for r in records) == data
    return records


def test_comments_and_blank_lines_pass_through() -> None:
    data = b"# a comment\n\n   \n\r\nm v=1\n#m v=2\n"
    records = split_all(data)
    assert [(r.data, r.metric is None, r.error) for r in records] == [
        (b"# a comment\n", True, None),
        (b"\n", True, None),
        (b"   \n", True, None),
        (b"\r\n", True, None),
        (b"m v=1\n", False, None),
        (b"#m v=2\n", True, None),
    ]
    engine = Engine(default_config())
    out = b"".join(engine.process(r) for r in records)
    assert out == data.replace(b"m v=1\n", b"m v=1,v_anomaly_score=0.0,v_anomaly=false\n")
    assert engine.parse_errors == 0


def test_leading_spaces_and_tabs_are_skipped_as_influxdb_does() -> None:
    """InfluxDB ignores whitespace before a metric (or a comment): the same series, fields added in place."""
    data = b"  cpu,host=a v=1 1\n\tcpu,host=a v=2 2\n \t# note\n \tlog msg=\"a\nb\",v=3 3\ncpu,host=a v=4 4\n"
    records = split_all(data)
    assert [r.data for r in records] == [
        b"  cpu,host=a v=1 1\n", b"\tcpu,host=a v=2 2\n", b" \t# note\n", b' \tlog msg="a\nb",v=3 3\n', b"cpu,host=a v=4 4\n"
    ]
    assert [r.metric.measurement if r.metric else None for r in records] == [b"cpu", b"cpu", None, b"log", b"cpu"]
    assert all(r.error is None for r in records)
    engine = Engine(default_config())
    out = [engine.process(r) for r in records]
    assert out[0] == b"  cpu,host=a v=1,v_anomaly_score=0.0,v_anomaly=false 1\n"
    assert out[1] == b"\tcpu,host=a v=2,v_anomaly_score=0.0,v_anomaly=false 2\n"
    assert out[2] == b" \t# note\n"
    assert out[3] == b' \tlog msg="a\nb",v=3,v_anomaly_score=0.0,v_anomaly=false 3\n'
    assert [key for key, _ in engine.lru()] == [b"log v", b"cpu,host=a v"]  # least recently seen first
    assert engine.series[b"cpu,host=a v"].seen == 3


def test_leading_nuls_are_skipped_as_influxdb_skips_them() -> None:
    """influxd 1.6 skips NULs before a metric or a comment as it skips spaces and tabs there (its
    skipWhitespace; tests/test_influxdb.py checks it on a real one). riverguard read ``\\x00cpu`` as the
    measurement (a series of its own), and refused ``\\x00 cpu v=1``, ``\\x00# note`` and ``\\x00``."""
    data = b"\x00cpu,host=a v=1 1\n\x00 \tcpu,host=a v=2 2\n\t\x00\x00# note\n\x00\n \x00log s=\"a\nb\",v=3 3\n"
    records = split_all(data)
    assert [r.data for r in records] == [
        b"\x00cpu,host=a v=1 1\n", b"\x00 \tcpu,host=a v=2 2\n", b"\t\x00\x00# note\n", b"\x00\n", b' \x00log s="a\nb",v=3 3\n'
    ]
    assert [r.metric.measurement if r.metric else None for r in records] == [b"cpu", b"cpu", None, None, b"log"]
    assert all(r.error is None for r in records)
    engine = Engine(default_config())
    out = [engine.process(r) for r in records]
    assert out == [
        b"\x00cpu,host=a v=1,v_anomaly_score=0.0,v_anomaly=false 1\n",
        b"\x00 \tcpu,host=a v=2,v_anomaly_score=0.0,v_anomaly=false 2\n",
        b"\t\x00\x00# note\n",
        b"\x00\n",
        b' \x00log s="a\nb",v=3,v_anomaly_score=0.0,v_anomaly=false 3\n',
    ]
    assert sorted(engine.series) == [b"cpu,host=a v", b"log v"] and engine.parse_errors == 0


@pytest.mark.parametrize(
    ("line", "fields", "timestamp"),
    [
        (b"m,host=a \ttab=1 1", {b"tab": b"1"}, 1),
        (b"m,host=a \t \tt=1,\tx=2 \t 3", {b"t": b"1", b"\tx": b"2"}, 3),  # after a ',' a tab is the key's
        (b"m,host=a tab=1 \t", {b"tab": b"1"}, None),
        (b'm,host=a \ts="a\nb" 4', {b"s": b'"a\nb"'}, 4),
        (b"m,host=a \x00nul=1 1", {b"nul": b"1"}, 1),  # a NUL as a tab (influxd 1.6: field "nul")
        (b"m,host=a \x00 \t\x00t=1,\x00x=2 \x00\t 3", {b"t": b"1", b"\x00x": b"2"}, 3),
        (b"m,host=a nul=1 \x00", {b"nul": b"1"}, None),
    ],
)
def test_spaces_and_tabs_after_the_space_before_fields_or_timestamp_are_skipped_as_influxdb_does(
    line: bytes, fields: dict[bytes, bytes], timestamp: int | None
) -> None:
    """InfluxDB 1.x skips spaces and tabs after the space that ends the tags and the one that ends the fields
    (checked on influxd 1.6: ``m,host=a \\ttab=1 1`` is field ``tab``). riverguard read a field ``\\ttab``
    and wrote ``\\ttab_anomaly_score``, a field of another name; ``tab=1 \\t1`` it refused. A NUL there is
    skipped the same way (influxd 1.6 again), and was read as part of the key the same way."""
    m = parse(line)
    assert [f.key for f in m.fields] == list(fields)
    assert m.timestamp == timestamp
    assert raw_fields(line) == (b"m,host=a", fields, timestamp)
    (record,) = split_all(line + b"\n")
    out = Engine(default_config()).process(record)
    numeric = [key for key, value in fields.items() if not value.startswith(b'"')]
    assert re.findall(rb"[,\t ]([^,=]+)_anomaly_score=", out) == numeric, out


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"m,host=a\ttab=1 1", "expected a space before the field set"),  # the tab is the tag value's
        (b"m,host=a tab=1\t1", 'invalid field value "1\t1"'),  # the value's
        (b"m,host=a tab=1 1\t", "unexpected data after the timestamp"),  # the timestamp's
        (b"m,host=a \t", "invalid field (expected key=value)"),
        (b"m,host=a\x00nul=1 1", "expected a space before the field set"),  # a NUL as a tab
        (b"m,host=a nul=1\x001", 'invalid field value "1\x001"'),
        (b"m,host=a nul=1 1\x00", "unexpected data after the timestamp"),
        (b"m,host=a \x00", "invalid field (expected key=value)"),
    ],
)
def test_a_tab_instead_of_the_space_is_refused_as_influxdb_refuses_it(line: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(line)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "line",
    [
        b"m v=1 6\t",  # influxd: bad timestamp
        b'm v="s"\t6',
        b"m v=1 6 7",
        b"m v=1 99999999999999999999",
        b"m v=1 6 \r",  # taken: a trailer of spaces and a CR
        b"m v=1 \t6",
        b"m v=1 ",
        b"m v=1\r",
        b"m,t v=1",  # the head: a tag without '=' (raw_fields took everything up to the first space)
        b",t=1 v=1",  # no measurement
        b"m,a=b=c v=1",
        b"m\\",
        b'm v="open',  # unterminated (raw_fields: "missing field value")
        b"",
    ],
)
def test_raw_fields_takes_and_refuses_what_parse_does(line: bytes) -> None:
    """raw_fields (evaluate, report and pull read riverguard's and InfluxDB's lines with it) took what followed
    the fields once spaces, tabs and CRs were stripped from both ends: lines parse() and influxd refuse, such
    as a tab after the timestamp, passed. It also read the measurement and tags as anything up to the first
    space, with a pattern of its own. Now the same code as parse(), so the same verdict at the same column
    (the values' text is not checked again: its callers read lines riverguard wrote or parse() took)."""
    try:
        metric = parse(line)
    except ParseError as err:
        with pytest.raises(ParseError) as info:
            raw_fields(line)
        assert (info.value.reason, info.value.pos) == (err.reason, err.pos)
    else:
        _, fields, timestamp = raw_fields(line)
        assert (list(fields), timestamp) == ([f.key for f in metric.fields], metric.timestamp)


@pytest.mark.parametrize(
    ("line", "column"),
    [
        (b"m,a=1,a=2 v=1 1", 7),  # sorted (the plain scan's lines)
        (b"m,a=2,a=1 v=1 1", 7),
        (b"m,a=1,a=1 v=1 1", 7),
        (b"m,a=1,b=1,a=2 v=1 1", 11),
        (rb"m,a\ b=1,c=1,a\ b=2 v=1 1", 14),  # escaped: compared as written, as influxd compares them
        (b'm,a=1,a=2 s="x" 1', 7),
    ],
)
def test_a_tag_key_given_twice_is_refused_as_influxdb_refuses_it(line: bytes, column: int) -> None:
    """influxd 1.6 refuses a line with a tag key twice ("duplicate tags"; tests/test_influxdb.py asks a real
    one). riverguard took it and scored it in a series (``m,a=1,a=2``) InfluxDB never holds."""
    with pytest.raises(ParseError) as info:
        parse(line)
    key = "a" if b",a=" in line else "a\\ b"  # as written
    assert str(info.value) == f'duplicate tags (key "{key}" given twice) at column {column}'


def test_string_value_spanning_lines_is_one_metric() -> None:
    metric = b'log,host=a msg="line one\nline two\n\nline \\"four\\"",code=3i 1\n'
    data = b"m v=1 0\n" + metric + b"m v=2 2\n"
    records = split_all(data)
    assert [r.data for r in records] == [b"m v=1 0\n", metric, b"m v=2 2\n"]
    m = records[1].metric
    assert m is not None and m.timestamp == 1
    assert [(f.key, f.kind) for f in m.fields] == [(b"msg", "s"), (b"code", "i")]


def test_unterminated_quote_does_not_swallow_following_lines() -> None:
    bad = b'm s="never closed,v=1 1\n'
    good = [b"m v=1 2\n", b"m,t=x v=2 3\n", b'm s="closed" 4\n', b"m v=3 5\n"]
    records = split_all(bad + b"".join(good))
    assert [r.data for r in records] == [bad, *good]
    assert records[0].metric is None and records[0].error is not None
    assert all(r.metric is not None for r in records[1:])


def test_unterminated_quote_waits_for_more_input_then_gives_up_when_forced() -> None:
    splitter = Splitter()
    data = b'm s="open\n'
    records, consumed, pending = splitter.split(data)
    assert (records, consumed, pending) == ([], 0, True)
    # The rest arrives: it is one metric.
    records, consumed, pending = splitter.split(data + b'still" 1\n')
    assert [r.data for r in records] == [b'm s="open\nstill" 1\n'] and not pending
    # Or it never does: forcing turns the first line into a malformed metric.
    records, consumed, pending = splitter.split(data + b"m v=1\n", force=True)
    assert [(r.data, r.metric is None) for r in records] == [(data, True), (b"m v=1\n", False)]


def test_incomplete_last_line_waits_unless_final() -> None:
    records, consumed, pending = Splitter().split(b"m v=1\nm v=")
    assert [r.data for r in records] == [b"m v=1\n"] and consumed == 6 and not pending
    records, consumed, _ = Splitter().split(b"m v=1 5", final=True)
    assert records[0].data == b"m v=1 5" and records[0].metric.timestamp == 5


#: Pieces that make quotes matter: literal quotes in names and keys, string values open and closed, escapes.
_PIECES = [b'"', b"=", b"\\", b"\n", b" ", b",", b"a", b"1", b"#", b"\r", b"\t", b'="', b"=1", b" 1", b"m",
           b'\\"', b"\\\\", b's="x"', b"m v=1 1\n", b'm s="a\nb" 2\n', b",t=x"]


@settings(max_examples=2000, derandomize=True, deadline=None, database=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join))
def test_metric_lines_cuts_as_the_splitter(data: bytes) -> None:
    """metric_lines reads only some lines with the Splitter (a last quote after '=', or a backslash):
    its cut is the Splitter's. (Reading only lines with an odd number of quotes differed: a quote in
    the measurement name and a string value left open make two.)"""
    records, _, _ = Splitter().split(data, final=True)
    cut = [r.data[:-1] if r.data.endswith(b"\n") else r.data for r in records]
    assert metric_lines(data) == cut


def test_metric_lines_reads_a_quote_only_where_it_can_stay_open() -> None:
    data = b'm"q s="open\nm v=1 1\nm s="x",t="y" 2\nm p="C:\\\\" 3\nm s="a\nb" 4\n'
    assert metric_lines(data) == [b'm"q s="open', b"m v=1 1", b'm s="x",t="y" 2', b'm p="C:\\\\" 3', b'm s="a\nb" 4']


def test_malformed_line_is_one_record_and_next_line_parses() -> None:
    records = split_all(b"m v=1_0 1\nm v=2 2\n")
    assert records[0].metric is None and "invalid field value" in str(records[0].error)
    assert records[1].metric is not None


def test_parse_error_message_format() -> None:
    with pytest.raises(ParseError) as info:
        parse(b"m v=nan")
    assert re.fullmatch(r'invalid field value "nan" at column 5', str(info.value))


# -- build_line: riverguard's own values, read back by the parser -----------------------------------------

_NAME = st.text(st.sampled_from(list("aZ0_-.é€ ,=\"\\'\t\r")), min_size=1, max_size=8)
_OWN_VALUE = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.text(st.sampled_from(list("ab ,=\"\\\n")), max_size=8),
)


@settings(max_examples=400, derandomize=True, deadline=None, database=None)
@given(
    measurement=_NAME.filter(lambda s: not s.startswith("#")),
    tags=st.dictionaries(_NAME, _NAME, max_size=3),
    fields=st.dictionaries(_NAME.filter(lambda s: not s.startswith("\t")), _OWN_VALUE, min_size=1, max_size=4),
    timestamp=st.one_of(st.none(), st.integers(0, 2**62)),
)
def test_build_line_reads_back_through_the_parser(measurement, tags, fields, timestamp) -> None:
    """Names with spaces, commas, equals signs, quotes and backslashes come back as they were."""
    line = build_line(measurement, tags, fields, timestamp)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 + sum(v.count("\n") for v in fields.values() if type(v) is str)
    m = parse(line[:-1])
    assert unescape(m.measurement) == measurement
    assert [(unescape(k), unescape(v)) for k, v in m.tags] == sorted(tags.items())  # sorted, as Telegraf sends them
    assert [unescape(f.key) for f in m.fields] == list(fields)
    assert m.timestamp == timestamp
    _, raw, _ = raw_fields(line[:-1])
    for f, value in zip(m.fields, fields.values()):
        if type(value) is bool:
            assert f.kind == "b" and raw[f.key] == (b"t" if value else b"f")
        elif type(value) is int:
            assert f.kind == "i" and f.number == float(value) and raw[f.key] == b"%di" % value
        elif type(value) is float:  # the library writes %g: 6 significant digits, never a user's value
            assert f.kind == "f" and f.number == float("%g" % value)
        else:
            assert f.kind == "s" and unescape(raw[f.key][1:-1]) == value


@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "error"),
    [
        ("m", {}, {}, ValueError),
        ("", {}, {"v": 1}, ValueError),
        ("#m", {}, {"v": 1}, ValueError),  # a comment line
        ("m\nx", {}, {"v": 1}, ValueError),
        ("m", {"a\nb": "c"}, {"v": 1}, ValueError),
        ("m", {}, {"v\n": 1}, ValueError),
        ("m", {}, {"": 1}, ValueError),
        ("m", {}, {"\tv": 1}, ValueError),  # read as field v
        ("m", {}, {"\x00v": 1}, ValueError),  # so is this
        ("m", {}, {"v": math.nan}, ValueError),
        ("m", {}, {"v": -math.inf}, ValueError),
        ("m", {}, {"v": 2**63}, ValueError),
        ("m", {}, {"v": None}, TypeError),
        ("m", {}, {"v": [1]}, TypeError),
    ],
)
def test_build_line_refuses_what_line_protocol_cannot_carry(measurement, tags, fields, error) -> None:
    with pytest.raises(error):
        build_line(measurement, tags, fields)


def test_build_line_writes_numbers_of_other_types_as_numbers() -> None:
    """An int subclass or a numpy number is a number (the library alone would quote it as a string)."""
    np = pytest.importorskip("numpy")

    class Count(int):
        pass

    line = build_line("m", {"host": "h", "empty": ""}, {"a": Count(3), "b": np.int64(4), "c": np.float64(0.5)}, 1)
    assert line == b"m,host=h a=3i,b=4i,c=0.5 1\n"  # and the empty tag is left out
