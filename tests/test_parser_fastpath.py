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
