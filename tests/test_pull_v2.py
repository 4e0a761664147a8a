"""``riverguard pull`` for InfluxDB 2.x (Flux, annotated CSV), against a small local stand-in.

No InfluxDB 2.x server is available here, so these tests check what can be
checked without one: the requests riverguard builds (path, token, dialect,
the Flux of each page) and its reading of annotated CSV, served by a local
HTTP server that answers ``/api/v2/query`` in 2.x's annotated-CSV format
(``#datatype``/``#group``/``#default`` annotations, one table per series
after ``pivot()``, CRLF line ends, RFC 3339 times with nanoseconds) for the
points it holds, and merges what riverguard writes to ``/api/v2/write``.
It is a stand-in, not InfluxDB: behaviour of a real 2.x server was not tested.
"""

from __future__ import annotations

import csv
import io
import json
import re
import struct
import subprocess
import urllib.parse

import pytest

from conftest import run_cli

from riverguard.lineprotocol import parse, raw_fields, unescape
from riverguard.pull.source import ReadError
from riverguard.pull.v2 import read_annotated_csv

try:
    from tests.influx import QuietHandler, local_server
except ImportError:  # tests/ itself on sys.path (rootdir-less import mode)
    from influx import QuietHandler, local_server  # type: ignore[no-redef]

TYPES = {"f": "double", "i": "long", "u": "unsignedLong", "s": "string", "b": "boolean"}


def _rfc3339(ns: int) -> str:
    import datetime as dt

    seconds, rest = divmod(ns, 10**9)
    text = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{rest:09d}".rstrip("0") if rest else "") + "Z"


class Store:
    """Points as a 2.x bucket holds them: (measurement, tags, time) -> {field: (datatype, CSV cell)}."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, tuple[tuple[str, str], ...], int], dict[str, tuple[str, str]]] = {}

    def write(self, body: bytes) -> None:
        for line in _records(body):
            metric = parse(line)
            _, values, ts = raw_fields(line)
            tags = tuple(sorted((unescape(k), unescape(v)) for k, v in metric.tags))
            point = self.points.setdefault((unescape(metric.measurement), tags, ts), {})
            for key, kind, _ in metric.fields:
                text = values[key].decode()
                if kind == "s":
                    cell = text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                elif kind in "iu":
                    cell = text[:-1]
                elif kind == "f":
                    cell = repr(float(text))  # the stand-in prints doubles exactly, as Flux does
                else:
                    cell = "true" if text[0] in "tT" else "false"
                point[unescape(key)] = (TYPES[kind], cell)

    def page(self, measurement: str, start: int, stop: int) -> str:
        """Annotated CSV for the pivoted points of ``[start, stop)``: one table per series."""
        tables: dict[tuple, list] = {}
        for (m, tags, ts), fields in sorted(self.points.items(), key=lambda item: (item[0][1], item[0][2])):
            if m == measurement and start <= ts < stop:
                tables.setdefault(tags, []).append((ts, fields))
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\r\n")
        for n, (tags, rows) in enumerate(tables.items()):
            names = sorted({k for _, f in rows for k in f})
            kinds = {k: f[k][0] for _, f in rows for k in f}
            tag_keys = [k for k, _ in tags]
            w.writerow(["#datatype", "string", "long", "dateTime:RFC3339", "dateTime:RFC3339", "dateTime:RFC3339",
                        "string", *["string"] * len(tag_keys), *[kinds[k] for k in names]])
            w.writerow(["#group", "false", "false", "true", "true", "false", "true", *["true"] * len(tag_keys),
                        *["false"] * len(names)])
            w.writerow(["#default", "_result", "", "", "", "", "", *[""] * (len(tag_keys) + len(names))])
            w.writerow(["", "result", "table", "_start", "_stop", "_time", "_measurement", *tag_keys, *names])
            for ts, fields in rows:
                w.writerow(["", "", n, _rfc3339(start), _rfc3339(stop), _rfc3339(ts), measurement,
                            *[v for _, v in tags], *[fields[k][1] if k in fields else "" for k in names]])
            out.write("\r\n")
        return out.getvalue()


class _Handler(QuietHandler):
    def do_POST(self) -> None:  # noqa: N802
        server = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server.requests.append((self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        path = urllib.parse.urlsplit(self.path)
        if path.path == "/api/v2/write":
            server.store.write(body)  # type: ignore[attr-defined]
            return self.answer(204, b"", "text/plain")
        query = json.loads(body)["query"]
        if server.error:  # type: ignore[attr-defined]
            text = '#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,"%s",\r\n\r\n' % server.error  # type: ignore[attr-defined]
            return self.answer(200, text.encode(), "text/csv")
        if "schema.measurements" in query:
            names = sorted({m for m, _, _ in server.store.points})  # type: ignore[attr-defined]
            text = "#datatype,string,long,string\r\n#group,false,false,false\r\n#default,_result,,\r\n,result,table,_value\r\n"
            text += "".join(f",,0,{m}\r\n" for m in names) + "\r\n"
            return self.answer(200, text.encode(), "text/csv")
        start, stop = (int(x) for x in re.search(r"range\(start: time\(v: (-?\d+)\), stop: time\(v: (-?\d+)\)\)", query).groups())
        measurement = json.loads(re.search(r'r\._measurement == ("(?:[^"\\]|\\.)*")', query).group(1))
        if "first()" in query or "last()" in query:
            kinds = {kind for (m, _, _), fields in server.store.points.items() if m == measurement  # type: ignore[attr-defined]
                     for kind, _ in fields.values()}
            grouped = query.split("group()")[0]
            if len(kinds) > 1 and "group()" in query and 'keep(columns: ["_time"])' not in grouped:
                # Flux's group() puts every table into one: their _value columns must have one type.
                flux_type = {"double": "float", "long": "int", "unsignedLong": "uint", "boolean": "bool"}
                a, b = sorted(flux_type.get(kind, kind) for kind in kinds)[:2]
                error = f'schema collision detected: column ""_value"" is both of type {a} and {b}'
                text = f'#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,"{error}",\r\n\r\n'
                return self.answer(200, text.encode(), "text/csv")
            times = [t for m, _, t in server.store.points if m == measurement and start <= t < stop]  # type: ignore[attr-defined]
            text = "#datatype,string,long,dateTime:RFC3339\r\n#group,false,false,false\r\n#default,_result,,\r\n,result,table,_time\r\n"
            pick = min if "first()" in query else max
            text += (f",,0,{_rfc3339(pick(times))}\r\n" if times else "") + "\r\n"
            return self.answer(200, text.encode(), "text/csv")
        server.pages.append((start, stop))  # type: ignore[attr-defined]
        return self.answer(200, server.store.page(measurement, start, stop).encode(), "text/csv")  # type: ignore[attr-defined]

@pytest.fixture
def influx2():
    with local_server(_Handler, requests=[], pages=[], store=Store(), error=None) as server:
        yield server


START = 1_700_000_000_000_000_000


def _points(n: int = 400) -> list[str]:
    import random

    rng = random.Random(3)
    lines = []
    for i in range(n):
        for host in ("a", "b c"):
            raw = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]  # any double, bit for bit
            if raw != raw or raw in (float("inf"), float("-inf")):
                raw = -0.0
            x = 95.0 if i == 350 and host == "a" else 20 + rng.random()  # one injected anomaly
            s = ['plain', 'with, comma', 'say "hi"', 'two\nlines'][i % 4].replace("\\", "\\\\").replace('"', '\\"')
            lines.append(
                f'cpu,host={host.replace(" ", chr(92) + " ")} usage={x!r},raw={raw!r},n={i * 3 - 100}i,u={i}u,s="{s}",ok={"true" if i % 3 else "false"}'
                f" {START + i * 10**9 + (i % 5)}"
            )
    return lines


def _pull(server, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(
        ["pull", "--influx-url", server.url, "--bucket", "tele graf", "--org", "acme",
         "--token-env", "RG_TOKEN", "--delay", "0s", "--since", "2023-11-14T00:00:00Z", *args],
        text=True, timeout=120, env={**__import__("os").environ, "RG_TOKEN": "s3cret==", **(env or {})},
    )


def test_v2_pull_requests_pages_and_writes_the_points_back_exactly(influx2) -> None:
    lines = _points()
    influx2.store.write(("\n".join(lines) + "\n").encode())
    proc = _pull(influx2, "--chunk-size", "50")
    assert proc.returncode == 0, proc.stderr
    assert "pulled 800 point(s) from bucket 'tele graf': wrote 800, 0 already scored" in proc.stderr
    queries = [(p, h, b) for p, h, b in influx2.requests if p.startswith("/api/v2/query")]
    path, headers, body = queries[0]
    assert path == "/api/v2/query?org=acme"
    assert headers["Authorization"] == "Token s3cret=="
    assert headers["Accept"] == "application/csv" and headers["Content-Type"] == "application/json"
    request = json.loads(body)
    assert request["type"] == "flux"
    assert request["dialect"]["annotations"] == ["datatype", "group", "default"] and request["dialect"]["header"] is True
    page = json.loads(queries[-1][2])["query"]
    assert 'from(bucket: "tele graf")' in page and 'r._measurement == "cpu"' in page
    assert 'pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")' in page
    # Pages are consecutive [start, stop) ranges that together cover the points, several of them.
    pages = influx2.pages
    assert len(pages) > 2 and all(a[1] == b[0] for a, b in zip(pages, pages[1:]))
    assert pages[0][0] <= START and pages[-1][1] > START + 399 * 10**9
    # Written back: every stored field as stored (types, doubles bit for bit), the score fields added.
    writes = {p for p, _, _ in influx2.requests if p.startswith("/api/v2/write")}
    assert writes == {"/api/v2/write?bucket=tele+graf&org=acme&precision=ns"}
    written, pairs = _written_back(influx2, lines, 800)
    for fields, got in pairs:
        assert set(got) - set(fields) == {b"usage_anomaly_score", b"usage_anomaly", b"n_anomaly_score", b"n_anomaly",
                                          b"u_anomaly_score", b"u_anomaly", b"raw_anomaly_score", b"raw_anomaly"}
    # The injected anomaly is flagged; the scores are those replay gives for the same points.
    assert written[(b"cpu,host=a", START + 350 * 10**9)][b"usage_anomaly"] == b"true"
    ordered = sorted(lines, key=lambda s: int(s.rsplit(" ", 1)[1]))
    replay = run_cli(["replay", "-"], input="\n".join(ordered).encode() + b"\n", timeout=120)
    for record in _records(replay.stdout):
        head, fields, ts = raw_fields(record)
        assert written[(head, ts)] == fields
    # A second pull finds every point scored and writes nothing.
    influx2.requests.clear()
    again = _pull(influx2)
    assert again.returncode == 0, again.stderr
    assert "wrote 0, 800 already scored" in again.stderr
    assert not [p for p, _, _ in influx2.requests if p.startswith("/api/v2/write")]


def _written(influx2) -> dict[tuple[bytes, bytes], dict[bytes, bytes]]:
    """Every point the stand-in was sent to write: (series, timestamp) -> its raw fields."""
    written = {}
    for path, _, body in influx2.requests:
        if path.startswith("/api/v2/write"):
            for record in _records(body):
                head, fields, ts = raw_fields(record)
                written[(head, ts)] = fields
    return written


def _written_back(influx2, lines: list[str], n: int) -> tuple[dict, list[tuple[dict[bytes, bytes], dict[bytes, bytes]]]]:
    """The ``n`` points written, and for each line pulled (its fields, what was written for it): the
    line's own fields came back unchanged."""
    written = _written(influx2)
    assert len(written) == n
    pairs = []
    for line in lines:
        head, fields, ts = raw_fields(line.encode())
        got = written[(head, ts)]
        assert {k: v for k, v in got.items() if b"_anomaly" not in k} == fields
        pairs.append((fields, got))
    return written, pairs


def _records(body: bytes) -> list[bytes]:
    from riverguard.lineprotocol import Splitter

    records, _, _ = Splitter().split(body, final=True)
    return [r.data.rstrip(b"\n") for r in records if r.metric is not None]


def test_v2_pull_merges_its_measurements_by_time(influx2, tmp_path) -> None:
    """Two measurements over 3 days (more than series_ttl), read from 2.x in pages: every score written is the
    one a replay of the points in time order gives, and so with a pull stopped part-way (--until) and resumed
    from its state (as test_pull checks for 1.x)."""
    from test_pull import _replay_scores, _two_measurements

    text = _two_measurements()
    want = _replay_scores(text)
    middle = "2023-11-16T11:40:07Z"  # (half-way)
    for runs in (([],), (["--state", str(tmp_path / "s.msgpack"), "--until", middle], ["--state", str(tmp_path / "s.msgpack")])):
        influx2.store, influx2.requests[:] = Store(), []
        influx2.store.write(text.encode())
        for args in runs:
            proc = _pull(influx2, "-m", "env", "-m", "counter", "--chunk-size", "100", *args)
            assert proc.returncode == 0, proc.stderr
        got = {(head, int(ts), key): float(value) for (head, ts), fields in _written(influx2).items()
               for key, value in fields.items() if key.endswith(b"_anomaly_score")}
        assert got == want and len(got) == 2 * 864, runs


def test_v2_to_bucket_writes_only_there(influx2) -> None:
    influx2.store.write(b"mem,host=a used=1.5 1700000000000000000\nmem,host=a used=2.5 1700000010000000000\n")
    proc = _pull(influx2, "--to-bucket", "scored")
    assert proc.returncode == 0, proc.stderr
    writes = {p for p, _, _ in influx2.requests if p.startswith("/api/v2/write")}
    assert writes == {"/api/v2/write?bucket=scored&org=acme&precision=ns"}
    queries = [json.loads(b)["query"] for p, _, b in influx2.requests if p.startswith("/api/v2/query")]
    measurements = [q for q in queries if "schema.measurements" in q]
    assert len(measurements) == 1  # no --measurement: every measurement of the bucket


def test_v2_flux_error_ends_the_pull_with_its_message(influx2) -> None:
    influx2.error = 'error calling function ""from"": bucket not found'  # as CSV quotes it
    proc = _pull(influx2, "-m", "cpu")
    assert proc.returncode == 1
    assert 'E! [riverguard] pull stopped: InfluxDB (Flux): error calling function "from": bucket not found' in proc.stderr


# An answer written out in 2.x's annotated-CSV format: two tables with different
# columns, a quoted string with a comma, a quote and a line break, an empty cell (null).
ANSWER = (
    "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,string,string,double,long,string\r\n"
    "#group,false,false,true,true,false,true,true,false,false,false\r\n"
    "#default,_result,,,,,,,,,\r\n"
    ",result,table,_start,_stop,_time,_measurement,host,usage,n,msg\r\n"
    ',,0,2023-11-14T22:00:00Z,2023-11-14T23:00:00Z,2023-11-14T22:13:20.5Z,cpu,a,-0,7,"x, ""y""\nz"\r\n'
    ",,0,2023-11-14T22:00:00Z,2023-11-14T23:00:00Z,2023-11-14T22:13:21Z,cpu,a,0.1,,\r\n"
    "\r\n"
    "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,string,string,unsignedLong,boolean,double\r\n"
    "#group,false,false,true,true,false,true,true,false,false,false\r\n"
    "#default,_result,,,,,,,,,\r\n"
    ",result,table,_start,_stop,_time,_measurement,region,u,up,usage_anomaly_score\r\n"
    ",,1,2023-11-14T22:00:00Z,2023-11-14T23:00:00Z,2023-11-14T22:13:20.000000001Z,cpu,eu west,18446744073709551615,true,0.25\r\n"
    "\r\n"
)


def test_annotated_csv_is_read_by_its_annotations() -> None:
    rows = list(read_annotated_csv(io.StringIO(ANSWER, newline="")))
    assert [(r.time, r.line, r.scored) for r in rows] == [
        (1700000000500000000, b'cpu,host=a usage=-0.0,n=7i,msg="x, \\"y\\"\nz" 1700000000500000000\n', False),
        (1700000001000000000, b"cpu,host=a usage=0.1 1700000001000000000\n", False),
        (1700000000000000001, b"cpu,region=eu\\ west u=18446744073709551615u,up=true,usage_anomaly_score=0.25 1700000000000000001\n", True),
    ]


def test_annotated_csv_error_table_raises_flux_message() -> None:
    text = '#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,"type error 3:4-3:9: undefined identifier x",897\r\n'
    with pytest.raises(ReadError, match="undefined identifier x"):
        list(read_annotated_csv(io.StringIO(text, newline="")))


def test_v2_pull_keeps_tags_and_fields_named_result_and_table(influx2) -> None:
    """Flux's CSV puts its own ``result`` and ``table`` columns first (after the annotation column) and the
    table's columns after them under their own labels: a tag ``table`` (Telegraf's clickhouse_tables has
    one) or a field ``result`` is a second column of that name. They are the point's, not annotations.
    (Read by name, they were dropped: both tables' points were written back as one series
    ``clickhouse_tables,database=db1`` without the field, the second overwriting the first.)"""
    lines = [
        f'clickhouse_tables,database=db1,table={table} rows={rows}i,result="{result}" {START + i * 10**9}'
        for i in range(40)
        for table, rows, result in (("events", 1000 + i, "ok"), ("users", 30 + i % 3, "slow"))
    ]
    influx2.store.write(("\n".join(lines) + "\n").encode())
    proc = _pull(influx2)
    assert proc.returncode == 0, proc.stderr
    assert "pulled 80 point(s)" in proc.stderr, proc.stderr
    _, pairs = _written_back(influx2, lines, 80)
    assert all(b"rows_anomaly_score" in got for _, got in pairs)


def test_annotated_csv_reads_columns_named_like_the_annotation_columns_as_the_points() -> None:
    text = (
        "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,string,string,string,double,string\r\n"
        "#group,false,false,true,true,false,true,true,true,false,false\r\n"
        "#default,_result,,,,,,,,,\r\n"
        ",result,table,_start,_stop,_time,_measurement,result,table,rows,table_note\r\n"
        ",,0,2023-11-14T22:00:00Z,2023-11-14T23:00:00Z,2023-11-14T22:13:20Z,t,pass,events,12.5,x\r\n"
        "\r\n"
    )
    rows = list(read_annotated_csv(io.StringIO(text, newline="")))
    assert [r.line for r in rows] == [b't,result=pass,table=events rows=12.5,table_note="x" 1700000000000000000\n']


def test_v2_pull_from_the_first_point_of_a_measurement_with_fields_of_several_types(influx2) -> None:
    """Without --since a pull starts at the measurement's first point, which it asks Flux for with
    first() of every field's table, group() and min(). Flux's group() refuses tables whose _value columns
    differ in type ("schema collision"), and Telegraf's mem has integers and floats: only the times go
    into the group. (The _value went along: the pull stopped on Flux's error, exit 1.)"""
    influx2.store.write(b"".join(
        b"mem,host=a used=%di,used_percent=%d.5 %d\n" % (1000 + i, 40 + i % 3, START + i * 10**9) for i in range(30)
    ))
    proc = run_cli(
        ["pull", "--influx-url", influx2.url, "--bucket", "telegraf", "--org", "acme", "--token-env", "RG_TOKEN",
         "--delay", "0s", "-m", "mem"],
        text=True, timeout=120, env={**__import__("os").environ, "RG_TOKEN": "t"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "pulled 30 point(s)" in proc.stderr, proc.stderr
    assert sum(1 for (m, _, _) in influx2.store.points if m == "mem") == 30
    writes = [body for path, _, body in influx2.requests if path.startswith("/api/v2/write")]
    assert writes and all(b"used_anomaly_score" in body for body in writes)
