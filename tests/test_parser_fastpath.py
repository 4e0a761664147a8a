"""The parser's fast path for plain metrics agrees with the general parser on every line it accepts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from riverguard.lineprotocol import ParseError, _parse_general, _parse_plain, parse

_TOKEN = st.text(alphabet="0123456789.+-eEiuxnaftTF_ ", min_size=1, max_size=8)


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.lists(_TOKEN, min_size=1, max_size=4), st.sampled_from(["", " 5", " -12", " 1x", "  5"]))
def test_fast_path_never_disagrees(values: list[str], timestamp: str) -> None:
    line = ("m,a=b " + ",".join(f"k{i}={v}" for i, v in enumerate(values)) + timestamp).encode()
    fast = _parse_plain(line)
    try:
        general = _parse_general(line)
    except ParseError:
        general = None
    if fast is not None:
        assert fast == general
    assert (parse(line) if general is not None else None) == general


def test_fast_path_takes_telegraf_shaped_metrics() -> None:
    line = b"cpu,cpu=cpu-total,host=a usage_idle=97.5,usage_user=1.25e-3,n=3i,u=4u,ok=true 1700000000000000000"
    fast = _parse_plain(line)
    assert fast is not None and fast == _parse_general(line)
    assert [(f.key, f.kind, f.number) for f in fast.fields] == [
        (b"usage_idle", "f", 97.5),
        (b"usage_user", "f", 1.25e-3),
        (b"n", "i", 3.0),
        (b"u", "u", 4.0),
        (b"ok", "b", None),
    ]


def test_edge_values_fall_back_to_the_general_parser() -> None:
    for value in (b"1e999", b"9223372036854775808i", b"-1u", b"1_0", b"nan", b"0x10"):
        assert _parse_plain(b"m v=" + value) is None


# -- the compiled and the uncompiled build of the plain-line parser ---------------------------------
# Uncompiled, scan reads numbers with the codec's FLOAT and TIMESTAMP regular expressions, float() and
# int(), and skips an item's ordinary bytes with one regular expression; compiled, with C loops. Both
# must accept the same lines and read the same values.

_CHAR = st.sampled_from([*"abcdefgh" * 8, "=", ",", " ", "\\", '"', "\t", "\x00", "\x7f", "\xff", "é"])
_NAME = st.text(alphabet=_CHAR, min_size=1, max_size=4).map(str.encode)
_VALUE = st.one_of(
    _TOKEN,
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**64), 2**64).map(lambda i: f"{i}i"),
    st.integers(-5, 2**65).map(lambda i: f"{i}u"),
    st.sampled_from(["t", "true", "FALSE", "Tru"]),
)


def _read(module: object, line: bytes) -> object:
    plain = module.Plain()
    if not module.scan(line, 0, len(line), plain):
        return None
    return (module.fields(line, plain), plain.head_end, plain.fields_end, plain.has_ts, plain.ts)


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.lists(st.tuples(_NAME, _NAME), max_size=3).map(sorted), st.lists(st.tuples(_NAME, _VALUE), min_size=1, max_size=3),
       st.sampled_from([b"", b" 5", b" -12", b" 1x", b"  5", b" 9223372036854775808", b" -9223372036854775808"]))
def test_compiled_and_uncompiled_scan_agree(tags: list, fields: list, timestamp: bytes) -> None:
    from riverguard import _plainline
    from riverguard._compiled import uncompiled

    pure = uncompiled("_plainline")
    head = b"m" + b"".join(b",%s=%s" % tag for tag in tags)
    line = head + b" " + b",".join(b"%s=%s" % (key, value.encode()) for key, value in fields) + timestamp
    assert _read(_plainline, line) == _read(pure, line)
    for _, value in fields:
        assert _plainline.number_value(value.encode()) == pure.number_value(value.encode())
