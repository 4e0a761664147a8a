"""``riverguard pull`` against a real InfluxDB 1.x server (``influxd``, see tests/influx.py).

Scores read from the database must be the scores ``riverguard replay`` gives
for the same points: same engine, each point once, in time order per series.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from operator import itemgetter
from pathlib import Path
from typing import Any

import pytest

from conftest import RIVERGUARD, ROOT, as_a_user, expiring_series, free_port, run_cli, spawn, wait_until

from riverguard.config import parse as parse_config
from riverguard.detectors import resolve
from riverguard.engine import Engine
from riverguard.influx import InfluxWriter
from riverguard.lineprotocol import ParseError, parse, raw_fields
from riverguard.log import Log, iso_ns
from riverguard.state import inspect as read_checkpoint
from riverguard.state import list_series
from riverguard import pull
from riverguard.pull import Puller
from riverguard.pull.v1 import InfluxQLSource

try:
    from tests.data.injected import HOSTS, generate
    from tests.influx import (  # noqa: F401  (fixture)
        InfluxServer, QuietHandler, held_writes, influxdb, local_server, stopped_while_held,
    )
except ImportError:  # tests/ itself on sys.path (rootdir-less import mode)
    from data.injected import HOSTS, generate  # type: ignore[no-redef]
    from influx import (  # type: ignore[no-redef]  # noqa: F401
        InfluxServer, QuietHandler, held_writes, influxdb, local_server, stopped_while_held,
    )

pytestmark = pytest.mark.influxdb


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_cli(list(args), timeout=timeout, text=True)


def _pull(server: InfluxServer, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run("pull", "--influx-url", server.url, "--db", db, "--delay", "0s", *args)


def _store(server: InfluxServer, db: str, text: str, batch: int = 5000) -> None:
    server.create_db(db)
    lines = text.splitlines()
    for i in range(0, len(lines), batch):
        r = server.write(db, ("\n".join(lines[i : i + batch]) + "\n").encode())
        assert r.status == 204, r.body


def _scored(server: InfluxServer, db: str, measurement: str, field: str = "v") -> int:
    """How many points of ``measurement`` in ``db`` carry ``field``'s score."""
    rows = server.rows(f'SELECT count("{field}_anomaly_score") FROM "{measurement}"', db)
    return rows[0][1] if rows else 0


def _wait_scored(server: InfluxServer, db: str, measurement: str, n: int, log: Path, field: str = "v",
                 timeout: float = 30) -> None:
    """Wait (``timeout`` s at most) until ``n`` points of ``measurement`` in ``db`` carry ``field``'s score (a
    --follow, its stderr in ``log``, scored them); fail at once when more than ``n`` do."""
    assert wait_until(lambda: _scored(server, db, measurement, field) >= n, timeout), log.read_text()
    assert _scored(server, db, measurement, field) == n, log.read_text()


def _field_types(server: InfluxServer, db: str, measurement: str) -> dict[str, str]:
    result = server.query(f'SHOW FIELD KEYS FROM "{measurement}"', db)
    return {key: kind for series in result.get("series", []) for key, kind in series["values"]}


def _raw_json(server: InfluxServer, q: str, db: str) -> list[dict]:
    """Series of a query with every number kept as the text InfluxDB sent."""
    r = server.request("POST", "/query?" + urllib.parse.urlencode({"q": q, "db": db, "epoch": "ns"}))
    assert r.status == 200, r.body
    doc = json.loads(r.body, parse_float=str, parse_int=str)
    return doc["results"][0].get("series", [])


def _replay_scores(text: str, *args: str) -> dict[tuple[bytes, int, bytes], float]:
    """What ``riverguard replay [args] -`` scores for ``text``: (series, time, field) -> score."""
    proc = run_cli(["replay", *args, "-"], input=text.encode(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    scores = {}
    for line in proc.stdout.splitlines():
        head, fields, ts = raw_fields(line)
        for key, value in fields.items():
            if key.endswith(b"_anomaly_score"):
                scores[(head, ts, key)] = float(value)
    return scores


# -- one-off pull ------------------------------------------------------------------


def test_one_off_pull_scores_stored_points_like_replay(influxdb: InfluxServer) -> None:
    text, injected = generate()
    db = "rg_pull_raw"
    _store(influxdb, db, text)
    before = {m: _field_types(influxdb, db, m) for m in ("cpu", "mem")}
    proc = _pull(influxdb, db)
    assert proc.returncode == 0, proc.stderr
    assert "pulled 12000 point(s) from database 'rg_pull_raw': wrote 12000, 0 already scored" in proc.stderr
    # Field types unchanged (procs and used stay integers, state a string); the added ones float and boolean.
    for m in ("cpu", "mem"):
        after = _field_types(influxdb, db, m)
        assert {k: after[k] for k in before[m]} == before[m]
        for key in before[m]:
            if before[m][key] in ("float", "integer"):
                assert after[key + "_anomaly_score"] == "float" and after[key + "_anomaly"] == "boolean"
    assert before["cpu"]["procs"] == "integer" and before["mem"]["used"] == "integer"
    assert influxdb.rows('SELECT count("usage_user") FROM "cpu"', db)[0][1] == 6000  # rewritten, not added
    # The injected anomalies are flagged where they were injected.
    threshold = resolve("default").default_threshold
    for measurement, field in (("cpu", "usage_user"), ("mem", "used_percent")):
        result = influxdb.query(
            f'SELECT "{field}_anomaly_score" FROM "{measurement}" WHERE "{field}_anomaly" = true GROUP BY "host"', db
        )
        flagged = {s["tags"]["host"]: {row[0] for row in s["values"]} for s in result.get("series", [])}
        for host in HOSTS:
            assert set(injected.get((measurement, host, field), [])) <= flagged.get(host, set())
        assert all(row[1] >= threshold for s in result["series"] for row in s["values"])
    # Every score is the one replay gives for the same points.
    want = _replay_scores(text)
    got = {}
    for m, fields in (("cpu", ("usage_user", "usage_system", "procs")), ("mem", ("used_percent", "used"))):
        cols = ", ".join(f'"{f}_anomaly_score"' for f in fields)
        for series in influxdb.query(f'SELECT {cols} FROM "{m}" GROUP BY *', db)["series"]:
            tags = ",".join(f"{k}={v}" for k, v in sorted(series["tags"].items()))
            for row in series["values"]:
                for f, value in zip(fields, row[1:]):
                    got[(f"{m},{tags}".encode(), row[0], f"{f}_anomaly_score".encode())] = value
    assert len(got) == len(want) == 30000
    assert got == want
    # Pulled again: everything already carries its score; nothing is scored twice.
    again = _pull(influxdb, db)
    assert again.returncode == 0, again.stderr
    assert "pulled 12000 point(s) from database 'rg_pull_raw': wrote 0, 12000 already scored" in again.stderr


def _two_measurements(days: int = 3, step: int = 300) -> str:
    """``env`` and ``counter`` over more than ``series_ttl`` (24 h), each with a spike on its last day, one line
    per point in time order (as Telegraf sent them)."""
    rng = random.Random(5)
    t0 = 1_700_000_000 // step * step
    lines = []
    for i in range(days * 86400 // step):
        t = (t0 + i * step) * 10**9
        spike = 40.0 if i == days * 86400 // step - 30 else 0.0
        lines.append(f"counter,dev=c1 pulses={20 + rng.gauss(0, 1) + spike:.3f} {t}")
        lines.append(f"env,dev=s1 temp={10 + rng.gauss(0, 0.5) + spike:.3f} {t}")
    return "".join(line + "\n" for line in lines)


def _stored_scores(server: InfluxServer, db: str, fields: tuple[tuple[str, str], ...] = (("counter", "pulses"), ("env", "temp"))
                   ) -> dict[tuple[bytes, int, bytes], float]:
    """The scores stored in ``db`` for (measurement, field) ``fields``: (series, time, field) -> score."""
    got = {}
    for m, f in fields:
        for series in server.query(f'SELECT "{f}_anomaly_score" FROM "{m}" GROUP BY *', db)["series"]:
            tags = ",".join(f"{k}={v}" for k, v in sorted(series["tags"].items()))
            for row in series["values"]:
                got[(f"{m},{tags}".encode(), row[0], f"{f}_anomaly_score".encode())] = row[1]
    return got


def test_a_pull_of_several_measurements_over_days_scores_them_as_one_stream(influxdb: InfluxServer,
                                                                           tmp_path: Path) -> None:
    """A newcomer's backfill of a year (the README's `--measurement cpu --measurement mem --since 30d`): read one
    measurement after the other, every point of the second was more than series_ttl behind the clock the
    first left, so its series started fresh at each sample: scored 0 for months, its incidents missed. Their
    points are now merged by time: the scores are those of one replay of the points in time order, and a pull
    stopped and resumed from its state gives the same (one measurement after the other, the resumed pass's
    first measurement moved the clock on 1.5 days, and the second's series, seen before, started fresh: 413
    scores differed)."""
    text = _two_measurements()
    want = _replay_scores(text)
    db = "rg_pull_two"
    _store(influxdb, db, text)
    proc = _pull(influxdb, db, "--measurement", "env", "--measurement", "counter")
    assert proc.returncode == 0, proc.stderr
    assert "behind the stream's clock" not in proc.stderr and "expir" not in proc.stderr, proc.stderr
    got = _stored_scores(influxdb, db)
    assert len(got) == len(want) == 2 * 864 and got == want
    assert max(v for k, v in got.items() if k[0].startswith(b"counter")) >= 0.5  # its spike is flagged
    # Stopped part-way (--until) and resumed from its state: the same scores.
    db = "rg_pull_two_resumed"
    _store(influxdb, db, text)
    state = tmp_path / "pull.msgpack"
    middle = iso_ns(int(text.splitlines()[900].split()[-1]) + 7 * 10**9)
    for until in (("--until", middle), ()):
        proc = _pull(influxdb, db, "--state", str(state), *until)
        assert proc.returncode == 0, proc.stderr
    assert _stored_scores(influxdb, db) == want


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_one_off_pull_stopped_by_a_signal_checkpoints_and_resumes_exactly(influxdb: InfluxServer, tmp_path: Path,
                                                                          sig: int, code: int) -> None:
    """A newcomer stopped a year's one-off pull (`--measurement cpu --measurement mem --since 400d --state C`)
    with SIGTERM after 325 000 points were written back: exit 143 without a word, no checkpoint (SIGINT: 130,
    silent, none either), and the next run said "no checkpoint ... starting fresh". The README says a
    checkpoint is written on SIGTERM/SIGINT. It now stops as `--follow` does: the batch in flight is written,
    the models and marks are committed together, a W! line says where and how to go on, and it exits 128 + the
    signal; the same command resumes from the checkpoint (nothing redone) with the scores of one pull.

    The stop lands mid-pull for sure: a proxy holds the pull's third write until the signal is sent."""
    text = _two_measurements()
    want = _replay_scores(text)
    db = f"rg_pull_stopped_{sig}"
    _store(influxdb, db, text)
    state = tmp_path / "C.msgpack"
    args = ["--db", db, "--delay", "0s", "--measurement", "env", "--measurement", "counter", "--state", str(state),
            "--chunk-size", "50", "--batch-size", "100"]
    with held_writes(influxdb.url, allow=2) as proxy:
        proc = spawn([*RIVERGUARD, "pull", "--influx-url", proxy.url, *args], stderr=subprocess.PIPE, text=True)
        stderr = stopped_while_held(proxy, proc, sig)
    name = signal.Signals(sig).name
    assert proc.returncode == code, stderr
    assert re.search(rf"^W! \[riverguard\] stopped by {name}: committed up to influxql:{db}//counter \S+,"
                     rf" influxql:{db}//env \S+, in the checkpoint {re.escape(str(state))}; run the same command again"
                     r" to resume from there$", stderr, re.M), stderr
    assert "Traceback" not in stderr and state.exists()
    written = _scored(influxdb, db, "env", "temp") + _scored(influxdb, db, "counter", "pulses")
    assert 0 < written < 2 * 864, stderr  # stopped part-way
    assert f"wrote {written}, 0 already scored" in stderr  # every point written is committed, none beyond
    resumed = _run("pull", "--influx-url", influxdb.url, *args)
    assert resumed.returncode == 0, resumed.stderr
    assert "starting fresh" not in resumed.stderr and f"resuming influxql:{db}//env after" in resumed.stderr
    assert f"wrote {2 * 864 - written}, 0 already scored" in resumed.stderr  # from the checkpoint: nothing redone
    assert _stored_scores(influxdb, db) == want  # the scores of one uninterrupted pull (= replay's)


def _sparse_beside_dense(gap_h: int = 20, samples: int = 40, pause_h: int = 30) -> str:
    """``beacon``, one series sampled every ``gap_h`` hours (more than half series_ttl, 24 h, and less than it)
    with a spike at its 31st sample, and ``dense`` every 5 min over the same time, in time order; both stop
    for ``pause_h`` hours half-way (the whole collection down longer than series_ttl)."""
    rng = random.Random(gap_h)
    t0 = 1_700_000_000 // 3600 * 3600
    end = t0 + samples * gap_h * 3600
    down = range(t0 + samples // 2 * gap_h * 3600, t0 + (samples // 2 * gap_h + pause_h) * 3600)
    points = [(t, f"dense,h=d1 w={20 + rng.gauss(0, 1):.3f} {t * 10**9}") for t in range(t0, end, 300)]
    points += [(t, f"beacon,h=s1 v={5 + rng.gauss(0, 1) + (9 if j == 30 else 0):.3f} {t * 10**9}")
               for j, t in enumerate(range(t0 + 1234, end, gap_h * 3600))]
    points.sort(key=itemgetter(0))
    return "".join(line + "\n" for t, line in points if t not in down)


def test_a_series_sampled_apart_beside_a_denser_measurement_is_scored_as_in_time_order(influxdb: InfluxServer,
                                                                                       tmp_path: Path) -> None:
    """A series sampled further apart than half series_ttl (20 h; 24 h) beside a denser measurement, both
    stopped for longer than series_ttl: pulled in either order of the measurements, every score is the one a
    replay of the points in time order gives. Read together a window of half series_ttl at a time, the
    clock could run up to a window ahead of the sparse series' points: after the stop 17 of its 38 scores
    differed (it started fresh where the stream in time order, whose clock the stop left behind, kept it)."""
    text = _sparse_beside_dense()
    config = tmp_path / "rg.toml"
    config.write_text('[[rule]]\nname = "b"\nmeasurement = "beacon"\ndetector = "zscore"\nwarmup = 2\n'
                      '[rule.params]\nmin_std = 1.0\n[[rule]]\nname = "rest"\ndetector = "default"\n')
    want = _replay_scores(text, "--config", str(config))
    assert sum(1 for k, v in want.items() if k[0].startswith(b"beacon") and v > 0) >= 30  # past its warm-up
    for db, order in (("rg_pull_sparse1", ("dense", "beacon")), ("rg_pull_sparse2", ("beacon", "dense"))):
        _store(influxdb, db, text)
        proc = _pull(influxdb, db, "--config", str(config), *(f"--measurement={m}" for m in order))
        assert proc.returncode == 0, proc.stderr
        got = _stored_scores(influxdb, db, (("beacon", "v"), ("dense", "w")))
        assert len(got) == len(want) and [k for k in want if got[k] != want[k]] == [], order


def _queries(server: InfluxServer) -> int:
    """How many queries the server has answered."""
    stats = server.query("SHOW STATS FOR 'httpd'")["series"][0]
    return stats["values"][0][stats["columns"].index("queryReq")]


def test_a_pull_of_several_measurements_asks_a_few_queries_whatever_series_ttl(influxdb: InfluxServer,
                                                                             tmp_path: Path) -> None:
    """Three days of two measurements with series_ttl 1h: read together a window of half series_ttl at a time,
    the pull asked a query or two a measurement a window (302); merged, one query each for its points, and
    the few a pass asks anyway (the database, the measurements, each one's tags and fields)."""
    db = "rg_pull_queries"
    _store(influxdb, db, _two_measurements())
    config = tmp_path / "rg.toml"
    config.write_text('[state]\nseries_ttl = "1h"\n')
    before = _queries(influxdb)
    proc = _pull(influxdb, db, "--config", str(config), "--measurement", "env", "--measurement", "counter")
    asked = _queries(influxdb) - before - 1  # (less the SHOW STATS)
    assert proc.returncode == 0 and "pulled 1728 point(s)" in proc.stderr, proc.stderr
    assert asked <= 10, asked


def test_measurements_that_start_at_different_times_are_pulled_without_since(influxdb: InfluxServer,
                                                                             tmp_path: Path) -> None:
    """A reviewer: without --since (or a mark) a measurement whose first point lay in a later window (when
    measurements were read together) kept no starting point, and the pull stopped on a TypeError traceback,
    every run (a --follow crash-looped)."""
    db = "rg_pull_later"
    _store(influxdb, db, "a v=1 1000000000000000000\na v=2 1000000060000000000\nb w=1 1000200000000000000\n")
    proc = _pull(influxdb, db, "--state", str(tmp_path / "s.msgpack"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "pulled 3 point(s)" in proc.stderr, proc.stderr
    influxdb.write(db, b"a v=3 1000000120000000000\nb w=2 1000200060000000000\nc x=1 1000400000000000000\n")
    proc = _pull(influxdb, db, "--state", str(tmp_path / "s.msgpack"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "pulled 3 point(s)" in proc.stderr, proc.stderr


def test_a_one_off_pulls_summary_counts_a_series_that_expired_during_the_run(influxdb: InfluxServer) -> None:
    """pull ends with replay's summary: series ``a``, which expired as ``b`` went on three days later, was left out
    of it (``series: 1 (1 scored)``, no top series) though its anomaly was written back."""
    db = "rg_pull_expiry"
    _store(influxdb, db, expiring_series())
    proc = _pull(influxdb, db)
    assert proc.returncode == 0, proc.stderr
    assert influxdb.rows('SELECT count("v") FROM "m" WHERE "v_anomaly" = true', db)[0][1] == 1
    summary = [line for line in proc.stderr.splitlines() if line.startswith("I! ") and "series" in line]
    assert summary == [
        "I! [riverguard] series: 2 (2 scored)",
        "I! [riverguard] series dropped: 0 evictions (max_series, 0 of a series not yet scored), 1 expiry (series_ttl)",
        "I! [riverguard] top series by anomalies:",
    ] and "I! [riverguard]        1  m,s=a v\n" in proc.stderr, proc.stderr


def _exact_values(n: int = 300, seed: int = 11) -> list[float]:
    rng = random.Random(seed)
    special = [-0.0, 0.0, 5e-324, 2.2250738585072014e-308, 1e300, -1.7976931348623157e308, 0.1, 1 / 3,
               123456789012345680.0, 2.0**53 + 2, 1e21, 1e-7, 3.0]
    values = list(special)
    while len(values) < n:
        x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if math.isfinite(x):
            values.append(x)
    return values


def test_pull_round_trips_every_value_bit_for_bit(influxdb: InfluxServer) -> None:
    floats = _exact_values()
    ints = [-(2**63), 2**63 - 1, 0, -1, 2**53 + 1]
    strings = ['say "hi"', "back\\slash\\", "line\nbreak", "comma, = and space", "", "ünïcødé ✓"]
    tags = ["plain", "with space", "a,b=c", "back\\slash", "ünï"]
    lines = []
    for i, x in enumerate(floats):
        tag = tags[i % len(tags)].replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")
        s = strings[i % len(strings)].replace("\\", "\\\\").replace('"', '\\"')
        lines.append(
            f'exact,kind={tag} f={x!r},n={ints[i % len(ints)]}i,s="{s}",b={"true" if i % 2 else "false"} {1_600_000_000_000_000_000 + i}'
        )
    src, dst = "rg_exact_src", "rg_exact_dst"
    _store(influxdb, src, "\n".join(lines) + "\n")
    influxdb.create_db(dst)
    proc = _pull(influxdb, src, "--to-db", dst)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {len(floats)}," in proc.stderr
    # Same types, and the very same JSON text for every stored value (tags, strings, ints, floats).
    assert {k: v for k, v in _field_types(influxdb, dst, "exact").items() if "_anomaly" not in k} == _field_types(
        influxdb, src, "exact"
    )
    q = 'SELECT "f", "n", "s", "b" FROM "exact" GROUP BY *'
    assert _raw_json(influxdb, q, dst) == _raw_json(influxdb, q, src)
    # ... and bit for bit the doubles that were written.
    got = [row[1] for s in _raw_json(influxdb, 'SELECT "f" FROM "exact"', dst) for row in s["values"]]
    pack = lambda x: struct.pack("<d", float(x))  # noqa: E731
    assert [pack(x) for x in got] == [pack(x) for x in floats]
    # The source database got nothing: --to-db writes elsewhere.
    assert not any("_anomaly" in k for k in _field_types(influxdb, src, "exact"))


def test_integer_field_stays_an_integer(influxdb: InfluxServer) -> None:
    db = "rg_int"
    _store(influxdb, db, "".join(f"counts,host=a requests={1000 + i * 7}i {1_650_000_000_000_000_000 + i * 10**9}\n" for i in range(50)))
    proc = _pull(influxdb, db)
    assert proc.returncode == 0, proc.stderr
    assert _field_types(influxdb, db, "counts")["requests"] == "integer"
    values = _raw_json(influxdb, 'SELECT "requests" FROM "counts"', db)[0]["values"]
    assert [v for _, v in values] == [str(1000 + i * 7) for i in range(50)]
    # InfluxDB still refuses a float for it: the field is an integer, not a float holding integral values.
    assert influxdb.write(db, b"counts,host=a requests=1.5 1650000000000000000\n").status == 400


def test_a_point_that_cannot_be_rebuilt_is_reported_and_skipped(influxdb: InfluxServer) -> None:
    db = "rg_rebuild"
    # This tag value is stored as 'e\\,f': a backslash before a comma, which line protocol cannot write.
    body = "odd,host=e\\\\\\,f v=3 1000000000\n" + "".join(f"odd,host=g v={i}.5 {2000000000 + i}\n" for i in range(5))
    _store(influxdb, db, body)
    assert influxdb.query('SHOW TAG VALUES FROM "odd" WITH KEY = "host"', db)["series"][0]["values"][0][1] == "e\\\\,f"
    proc = _pull(influxdb, db)
    assert proc.returncode == 0, proc.stderr
    assert "E! [riverguard] odd point at 1970-01-01T00:00:01Z cannot be rebuilt: tag host 'e\\\\\\\\,f'" in proc.stderr
    assert "wrote 5, 0 already scored, points written late not looked for (no --state), 1 skipped (cannot be rebuilt)" in proc.stderr
    assert influxdb.rows('SELECT count("v_anomaly_score") FROM "odd"', db)[0][1] == 5


def test_names_starting_with_a_tab_are_rebuilt_as_influxdb_reads_them(influxdb: InfluxServer) -> None:
    """A field key starting with a tab (``v=1,\\tx=2``: after a ',' the tab is the key's) comes first in SHOW
    FIELD KEYS: pull wrote it first, where InfluxDB (and riverguard) skip the tab, so the point came back with
    a field ``x`` and a score ``x_anomaly_score``. A measurement starting with a tab (made by SELECT INTO) was
    written as a line starting with a tab: measurement ``m``. Now such a field is written after the others,
    and a point that has no other, or such a measurement, is reported and skipped as cannot be rebuilt."""
    src, dst = "rg_tab_src", "rg_tab_dst"
    _store(influxdb, src, "".join(f"tabs,host=a v={i % 3},\tx={i % 5} {(i + 1) * 10**9}\n" for i in range(30)))
    influxdb.query('SELECT * INTO "\tm" FROM "tabs" GROUP BY *', src)
    influxdb.query('SELECT "\tx" INTO "tab_only" FROM "tabs" GROUP BY *', src)
    influxdb.create_db(dst)
    proc = _pull(influxdb, src, "--to-db", dst)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 30, 0 already scored, points written late not looked for (no --state), 60 skipped" in proc.stderr
    assert "E! [riverguard] \\tm point at 1970-01-01T00:00:01Z cannot be rebuilt: measurement '\\tm' cannot" in proc.stderr
    assert "cannot be rebuilt: field '\\tx': a first field cannot start with a tab" in proc.stderr
    assert [row[0] for row in influxdb.rows("SHOW MEASUREMENTS", dst)] == ["tabs"]
    assert _field_types(influxdb, dst, "tabs").keys() == {
        "v", "\tx", "v_anomaly_score", "v_anomaly", "\tx_anomaly_score", "\tx_anomaly"
    }
    q = 'SELECT "v", "\tx" FROM "tabs" GROUP BY *'
    assert _raw_json(influxdb, q, dst) == _raw_json(influxdb, q, src)


_CONFLICT = ('partial write: field type conflict: input field "v" on measurement "bad" is type float,'
             " already exists as type integer dropped=1")


def _conflicting_target(server: InfluxServer, src: str, dst: str, t0: int) -> None:
    """``dst`` stores ``bad``'s field v as an integer: a float v written there is refused (HTTP 400)."""
    server.create_db(src)
    server.create_db(dst)
    assert server.write(dst, f"bad,host=z v=1i {t0}\n".encode()).status == 204


def test_one_off_pull_isolates_the_points_influxdb_refuses(influxdb: InfluxServer, tmp_path: Path) -> None:
    """A point InfluxDB refused (a field type conflict in the --to-db target) stopped pull at its first batch:
    nothing committed, and running it again stopped there again. Now the writer isolates it as the backfill's
    does: one E! line per refused point, every other point written, the marks past them, exit 1."""
    src, dst, t0 = "rg_refused_src", "rg_refused_dst", 1_000_000_000_000_000_000
    _conflicting_target(influxdb, src, dst, t0)
    lines = [f"good,host=a v={i}.5 {t0 + i * 10**9}" for i in range(50)]
    lines += [f"bad,host=a v={i}.5 {t0 + i * 10**9}" for i in (10, 30)]
    lines.append(f"bad,host=a w=1.5 {t0 + 200 * 10**9}")  # the mark: the refused ones are out of the late window
    _store(influxdb, src, "\n".join(lines) + "\n")
    state = tmp_path / "pull.msgpack"
    proc = _pull(influxdb, src, "--to-db", dst, "--state", str(state))
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("E! ")]
    assert errors == [
        f"E! [riverguard] bad point at 2001-09-09T01:{s}Z: InfluxDB refused it (HTTP 400): {_CONFLICT}; not"
        f" written: bad,host=a v={i}.5,v_anomaly_score=0.0,v_anomaly=false {t0 + i * 10**9}"
        for i, s in ((10, "46:50"), (30, "47:10"))
    ] + [
        "E! [riverguard] pulled 53 point(s) from database 'rg_refused_src': wrote 51, 0 already scored, 0 written"
        " late within --late-window 60s (not scored), 0 skipped (cannot be rebuilt), 2 refused by InfluxDB (not written): the E! lines"
        " above say which and why"
    ], proc.stderr
    assert "Traceback" not in proc.stderr
    assert influxdb.rows('SELECT count("v_anomaly_score") FROM "good"', dst)[0][1] == 50
    assert influxdb.rows('SELECT count("w_anomaly_score") FROM "bad"', dst)[0][1] == 1
    # The marks are past them: pulling again sends nothing (they would be refused again).
    again = _pull(influxdb, src, "--to-db", dst, "--state", str(state))
    assert again.returncode == 0, again.stderr
    assert "E! " not in again.stderr and "W! " not in again.stderr
    assert "pulled 0 point(s) from database 'rg_refused_src': wrote 0," in again.stderr


def _databases(server: InfluxServer) -> set[str]:
    return {row[0] for series in server.query("SHOW DATABASES")["series"] for row in series["values"]}


@pytest.mark.parametrize("measurement", [[], ["-m", "cpu"]], ids=["every-measurement", "one-measurement"])
def test_one_off_pull_from_a_missing_database_exits_1_naming_it(influxdb: InfluxServer, measurement) -> None:
    """InfluxDB 1.x answers SHOW MEASUREMENTS on a missing database with no measurement, not an error:
    before, a misspelled --db pulled 0 points and exited 0 without a word."""
    _store(influxdb, "rg_typo_real", "cpu,host=a v=1 1000000000\n")
    proc = _pull(influxdb, "rg_typo_reel", *measurement)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("E! ")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(
        'E! [riverguard] pull stopped: database not found: rg_typo_reel: create the database (InfluxQL: CREATE'
        ' DATABASE "rg_typo_reel") or fix --db; nothing was committed;'), proc.stderr
    assert "fix this, then run it again" in errors[0]
    assert "Traceback" not in proc.stderr
    assert "rg_typo_reel" not in _databases(influxdb)  # nothing written (a write would not create it either)


def test_one_off_pull_to_a_missing_database_says_to_create_it_or_fix_to_db(influxdb: InfluxServer) -> None:
    """A --to-db the server does not have stopped the pull with `database not found: scored` and no more; a
    backfill says what to do (`create the database (InfluxQL: CREATE DATABASE "scored") or fix --db`): pull says
    it too, naming --to-db."""
    _store(influxdb, "rg_to_missing_src", "cpu,host=a v=1 1000000000\n")
    proc = _pull(influxdb, "rg_to_missing_src", "--to-db", "rg_to_missing")
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("E! ")]
    assert errors == [
        'E! [riverguard] pull stopped: database not found: rg_to_missing: create the database (InfluxQL: CREATE'
        ' DATABASE "rg_to_missing") or fix --to-db; nothing was committed; fix this, then run it again to resume'
        ' from there'
    ], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_to_db_dropped_during_the_pull_is_named_as_to_db(influxdb: InfluxServer) -> None:
    """A --to-db dropped while the pull wrote to it (after the pass's check that it exists): each write then
    got a 404 and the pull stopped on `database not found` without saying what to do, where the check at the
    pass's start says to create it or fix --to-db (and a backfill, whose writer it is, fix --db: the source,
    here). It now says so, naming --to-db."""
    src, dst = "rg_dropped_src", "rg_dropped_dst"
    _store(influxdb, src, "".join(f"cpu,host=h{i % 20} v={i % 17} {10**18 + i * 10**10}\n" for i in range(100_000)))
    influxdb.create_db(dst)
    proc = subprocess.Popen([*RIVERGUARD, "pull", "--influx-url", influxdb.url, "--db", src, "--to-db", dst,
                             "--delay", "0s", "--batch-size", "500", "--chunk-size", "500"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: _scored(influxdb, dst, "cpu") > 0 or proc.poll() is not None, 60)
        assert proc.poll() is None, proc.communicate()[1]  # (still writing: 1 000 of 100 000 points at most)
        influxdb.query(f'DROP DATABASE "{dst}"')
        stderr = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("E! ")]
    assert errors == [
        f'E! [riverguard] pull stopped: InfluxDB refused the write to database {dst!r} (HTTP 404): database not'
        f' found: "{dst}": create the database (InfluxQL: CREATE DATABASE "{dst}") or fix --to-db; nothing was'
        " committed; fix this, then run it again to resume from there"
    ], stderr


def _follow_stops(influxdb: InfluxServer, tmp_path: Path, *args: str) -> tuple[str, str]:
    """Run ``pull --follow`` (passes every 0.1 s) that must stop with exit 1 and one E! line: (that line, stderr)."""
    proc = subprocess.run(
        [*RIVERGUARD, "pull", "--influx-url", influxdb.url, *args, "--follow", "--every", "0.1s", "--delay", "0s",
         "--state", str(tmp_path / "s.msgpack")],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("E! ")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return errors[0], proc.stderr


def test_follow_on_a_missing_database_stops_with_exit_1(influxdb: InfluxServer, tmp_path: Path) -> None:
    """README: --follow stops (exit 1) on what retrying cannot mend, such as a missing database
    (before, it passed every --every, reading nothing, for ever)."""
    error, stderr = _follow_stops(influxdb, tmp_path, "--db", "rg_follow_typo")
    assert error.startswith("E! [riverguard] pull stopped: database not found: rg_follow_typo: create the database"
                            ' (InfluxQL: CREATE DATABASE "rg_follow_typo") or fix --db;'), stderr
    assert error.endswith("retrying cannot help: fix this and start again")
    assert "pass failed" not in stderr


@pytest.mark.parametrize("follow", [False, True], ids=["one-off", "follow"])
def test_a_pull_from_a_server_with_no_database_at_all_names_the_missing_one(influxdb: InfluxServer, tmp_path: Path,
                                                                            follow: bool) -> None:
    """A new InfluxDB answers SHOW DATABASES with a series that has no values: pull stopped on a traceback
    (KeyError: 'values') instead of saying that the database is not found."""
    fresh = InfluxServer(influxdb.binary, tmp_path / "fresh")
    fresh.root.mkdir()
    fresh.start()
    try:
        if follow:
            error, stderr = _follow_stops(fresh, tmp_path, "--db", "telegraf")
        else:
            proc = _pull(fresh, "telegraf")
            assert proc.returncode == 1, proc.stderr
            errors = [line for line in proc.stderr.splitlines() if line.startswith("E! ")]
            assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
            error = errors[0]
    finally:
        fresh.stop()
    assert error.startswith("E! [riverguard] pull stopped: database not found: telegraf"), error


def _database_with_policies(server: InfluxServer, db: str, text: str) -> None:
    """``db`` with the default policy ``autogen`` and a second one, ``short``; ``text`` written to autogen."""
    server.create_db(db)
    server.query(f'CREATE RETENTION POLICY "short" ON "{db}" DURATION 1h REPLICATION 1')
    if text:
        assert server.write(db, text.encode()).status == 204


@pytest.mark.parametrize("stored", ["", "cpu,host=a v=1.5 1000000000\n"], ids=["no-points-yet", "with-points"])
def test_one_off_pull_from_a_missing_retention_policy_exits_1_naming_it(influxdb: InfluxServer, stored: str) -> None:
    """A misspelled --rp on a database with no points yet pulled 0 points and exited 0 without a word (1.x
    lists a database's measurements whatever the policy); with points, the pull stopped on InfluxDB's
    refusal of a SHOW FIELD KEYS query, naming neither the database nor the policies it has."""
    db = f"rg_rp_typo_{'points' if stored else 'empty'}"
    _database_with_policies(influxdb, db, stored)
    proc = _pull(influxdb, db, "--rp", "autogn")
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("E! ")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(
        f"E! [riverguard] pull stopped: retention policy 'autogn' not found in database '{db}'"
        " (its retention policies: 'autogen', 'short'); nothing was committed; fix this, then run it again"
    ), proc.stderr
    assert "Traceback" not in proc.stderr
    if stored:  # nothing was scored
        assert influxdb.rows('SELECT * FROM "cpu"', db) == [[1_000_000_000, "a", 1.5]]
    # The right policy pulls as usual.
    proc = _pull(influxdb, db, "--rp", "autogen")
    assert proc.returncode == 0, proc.stderr
    assert f"pulled {1 if stored else 0} point(s) from database '{db}' (retention policy 'autogen')" in proc.stderr


def test_follow_on_a_missing_retention_policy_stops_with_exit_1(influxdb: InfluxServer, tmp_path: Path) -> None:
    """As a missing database: before, --follow with a misspelled --rp passed every --every, reading nothing,
    for ever (the database had no points yet, so nothing was refused)."""
    db = "rg_follow_rp_typo"
    _database_with_policies(influxdb, db, "")
    error, stderr = _follow_stops(influxdb, tmp_path, "--db", db, "--rp", "shrot")
    assert error.startswith(
        f"E! [riverguard] pull stopped: retention policy 'shrot' not found in database '{db}'"
        " (its retention policies: 'autogen', 'short');"
    ), stderr
    assert error.endswith("retrying cannot help: fix this and start again")
    assert "pass failed" not in stderr


def test_follow_to_a_database_without_the_retention_policy_stops_with_exit_1(influxdb: InfluxServer,
                                                                             tmp_path: Path) -> None:
    """--rp names the policy read and written: where the --to-db database lacks it, InfluxDB refuses each write
    with a 500 (retention policy not found), which --follow retried with backoff for ever."""
    src, dst = "rg_rp_source", "rg_rp_target"
    _database_with_policies(influxdb, src, "")
    stored = influxdb.request("POST", f"/write?db={src}&rp=short", f"cpu,host=a v=1.5 {time.time_ns()}\n".encode())
    assert stored.status == 204, stored.body
    influxdb.create_db(dst)  # autogen only
    error, stderr = _follow_stops(influxdb, tmp_path, "--db", src, "--rp", "short", "--to-db", dst, "--retries", "1")
    assert error.startswith(
        f"E! [riverguard] pull stopped: retention policy 'short' not found in database '{dst}'"
        " (its retention policies: 'autogen');"
    ), stderr


def test_a_measurement_not_in_the_database_is_warned_about_once(influxdb: InfluxServer, tmp_path: Path) -> None:
    """A misspelled --measurement pulled 0 points without a word. It is a warning, not an error: a
    measurement may not have been written yet, and --follow reads it once it has points."""
    db = "rg_measurement_typo"
    _store(influxdb, db, "".join(f"cpu,host=a v={i}.5 {1_000_000_000 + i}\n" for i in range(5)))
    proc = _pull(influxdb, db, "-m", "cpu", "-m", "cpux")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("W! ")]
    assert warnings == [
        f"W! [riverguard] measurement 'cpux' not found in database '{db}': nothing to pull from it"
        " (check --measurement; it is read once it has points)"
    ], proc.stderr
    assert "wrote 5," in proc.stderr  # the other measurement is pulled as usual
    # --follow says it once, not at every pass, and reads the measurement once it is written.
    log = tmp_path / "pull.log"
    puller = _Puller(["--influx-url", influxdb.url, "--db", db, "-m", "later", "--follow", "--every", "0.1s",
                      "--delay", "0s", "--state", str(tmp_path / "s.msgpack"), "--log-level", "debug"], log)
    puller.passes(3)  # several passes
    assert influxdb.write(db, b"later,host=a v=1.5 1000000000\n").status == 204
    _wait_scored(influxdb, db, "later", 1, log)
    stderr = puller.stop()
    assert stderr.count("W! ") == 1 and "measurement 'later' not found" in stderr, stderr
    assert _scored(influxdb, db, "later") == 1


def test_one_off_pull_with_the_server_down_exits_1_saying_how_far_it_got(tmp_path: Path) -> None:
    proc = _run(
        "pull", "--influx-url", f"http://127.0.0.1:{free_port()}", "--db", "x", "--measurement", "cpu",
        "--state", str(tmp_path / "s.msgpack"), "--retries", "0",
    )
    assert proc.returncode == 1
    assert "E! [riverguard] pull stopped: cannot connect to 127.0.0.1:" in proc.stderr
    assert "nothing was committed; run it again to resume from there" in proc.stderr
    assert "Traceback" not in proc.stderr


def _watchdog(proc: subprocess.Popen, seconds: float = 60.0) -> threading.Timer:
    """Kill ``proc`` after ``seconds``: a pull that goes quiet fails the test (its stderr ends) instead of hanging it."""
    timer = threading.Timer(seconds, proc.kill)
    timer.daemon = True
    timer.start()
    return timer


def test_follow_with_the_server_down_retries_with_backoff(tmp_path: Path) -> None:
    proc = spawn(
        [*RIVERGUARD, "pull", "--influx-url", f"http://127.0.0.1:{free_port()}", "--db", "x", "-m", "cpu",
         "--follow", "--every", "0.1s", "--state", str(tmp_path / "s.msgpack")],
        stderr=subprocess.PIPE, text=True,
    )
    seen = []
    watchdog = _watchdog(proc)
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            seen.append(line)
            if sum("pass failed" in x for x in seen) == 3:
                break
    finally:
        watchdog.cancel()
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=20)
    stderr = "".join(seen) + rest
    assert proc.returncode == 0, stderr
    waits = [line.rsplit("retrying in ", 1)[1] for line in stderr.splitlines() if "pass failed" in line]
    assert waits[:3] == ["1s", "2s", "4s"], stderr  # exponential backoff, not a pass every 0.1 s


class _Scripted(QuietHandler):
    """A 1.x server with one measurement ``m`` (three points, times 1-3) that honours ``time > N``.

    Requests to ``/query`` and ``/write`` are answered with the next status of
    ``server.reads`` / ``server.writes_status`` first, InfluxDB's error
    message with it; then normally. Written bodies go to ``server.writes``.
    """

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server: Any = self.server
        write = self.path.startswith("/write")
        server.requests.append("write" if write else "query")
        script = server.write_statuses if write else server.reads
        if script:
            status, message = script.pop(0) if len(script) > 1 or not server.forever else script[0]
            return self.answer(status, json.dumps({"error": message}).encode())
        if write:
            server.writes.append(body)
            return self.answer(204, b"")
        q = urllib.parse.parse_qs(body.decode())["q"][0]
        if q == "SHOW DATABASES":
            series = {"name": "databases", "columns": ["name"], "values": [["x"]]}
        elif q == "SHOW MEASUREMENTS":
            series = {"name": "measurements", "columns": ["name"], "values": [["m"]]}
        elif q.startswith("SHOW TAG KEYS"):
            series = {"name": "m", "columns": ["tagKey"], "values": [["host"]]}
        elif q.startswith("SHOW FIELD KEYS"):
            series = {"name": "m", "columns": ["fieldKey", "fieldType"], "values": [["v", "float"]]}
        else:
            after = re.search(r"time > (-?[0-9]+)", q)
            times = [t for t in (1, 2, 3) if after is None or t > int(after.group(1))]
            series = {"name": "m", "columns": ["time", "t0", "f0"], "values": [[t, "a", t + 0.5] for t in times]}
        result = {"statement_id": 0, "series": [series]} if series["values"] else {"statement_id": 0}
        self.answer(200, json.dumps({"results": [result]}).encode() + b"\n")


def _follow_stub(server: Any, tmp_path: Path, *more: str) -> list[str]:
    return [*RIVERGUARD, "pull", "--influx-url", server.url, "--db", "x", "-m", "m", "--follow", "--every", "0.1s",
            "--delay", "0s", "--late-window", "0s", "--state", str(tmp_path / "s.msgpack"), *more]


@pytest.mark.parametrize(
    "reads, writes, message",
    [
        ([(401, "authorization failed")], [], "E! [riverguard] pull stopped: HTTP 401: authorization failed;"),
        ([(404, "page not found")], [], "E! [riverguard] pull stopped: HTTP 404: page not found;"),
        (  # (a write refused for its points, 400, is split to find them: tests below)
            [], [(404, 'database not found: "x"')],
            "E! [riverguard] pull stopped: InfluxDB refused the write to database 'x' (HTTP 404):"
            ' database not found: "x": create the database (InfluxQL: CREATE DATABASE "x") or fix --db;',
        ),
    ],
    ids=["read-401", "read-404", "write-404"],
)
def test_follow_stops_on_a_failure_retrying_cannot_mend(tmp_path: Path, reads, writes, message: str) -> None:
    with local_server(_Scripted, requests=[], writes=[], reads=reads, write_statuses=writes, forever=True) as server:
        proc = subprocess.run(_follow_stub(server, tmp_path), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("E! ")]
    assert len(errors) == 1 and errors[0].startswith(message), proc.stderr
    assert "retrying cannot help: fix this and start again" in errors[0]
    assert "pass failed" not in proc.stderr and "retry" not in proc.stderr.replace("retrying cannot", "")
    assert server.requests.count("write" if writes else "query") == 1  # asked once, not again
    assert "Traceback" not in proc.stderr


def test_follow_retries_a_passing_failure_and_goes_on(tmp_path: Path) -> None:
    reads = [(503, "overloaded")]  # the first pass cannot read ...
    writes = [(503, "try later")]  # ... the second cannot write (--retries 0: the writer gives up at once)
    with local_server(_Scripted, requests=[], writes=[], reads=reads, write_statuses=writes, forever=False) as server:
        proc = spawn(_follow_stub(server, tmp_path, "--retries", "0"), stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not server.writes and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    failed = [line for line in stderr.splitlines() if "pass failed" in line]
    assert len(failed) == 2, stderr
    assert "HTTP 503: overloaded" in failed[0] and failed[0].endswith("retrying in 1s")
    assert "HTTP 503: try later" in failed[1] and failed[1].endswith("retrying in 2s")
    assert "E! " not in stderr
    # The third pass wrote the three points, once.
    assert server.writes == [b"".join(b"m,host=a v=%d.5,v_anomaly_score=0.0,v_anomaly=false %d\n" % (t, t) for t in (1, 2, 3))]


class _CutShort(QuietHandler):
    """A server whose every answer stops in the middle of its JSON: fewer bytes than its Content-Length."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        payload = b'{"results":[{"statement_id":0,"ser'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload) + 40))
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True


class _ChunkCut(QuietHandler):
    """A server whose every chunked answer stops inside its first chunk."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b'80\r\n{"results":[{"statement_id":0,"ser')
        self.wfile.flush()
        self.close_connection = True


class _NotJson(QuietHandler):
    """A proxy's page in a complete 200 answer (its Content-Length met), no final newline."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append("query")  # type: ignore[attr-defined]
        self.answer(200, b"<html><body>Welcome to the proxy</body></html>", "text/html")


def _follow_until_reported(server: Any, tmp_path: Path) -> tuple[int | None, str]:
    """Run ``pull --follow`` against ``server`` until it reports a failed pass or stops; (exit code, stderr)."""
    proc = spawn(_follow_stub(server, tmp_path), stderr=subprocess.PIPE, text=True)
    seen = []
    stopped = False  # it stopped by itself (an E! line): let it exit, no SIGTERM
    watchdog = _watchdog(proc)
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            seen.append(line)
            stopped = line.startswith("E! ")
            if "pass failed" in line or stopped:
                break
    finally:
        watchdog.cancel()
        if not stopped:
            proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=20)
    return proc.returncode, "".join(seen) + rest


@pytest.mark.parametrize("handler", [_CutShort, _ChunkCut], ids=["content-length", "chunked"])
def test_follow_takes_an_answer_cut_short_for_a_lost_connection(tmp_path: Path, handler: type) -> None:
    with local_server(handler) as server:
        returncode, stderr = _follow_until_reported(server, tmp_path)
    assert returncode == 0, stderr  # retried (then stopped by SIGTERM), not given up
    assert "W! [riverguard] pass failed: connection lost while reading" in stderr


def test_follow_stops_on_a_complete_answer_that_is_not_json(tmp_path: Path) -> None:
    """A 200 with a proxy's page is not a lost connection: asking again would get the same page, so
    pull stops with a message saying what came (before, it was retried for ever as "connection lost")."""
    with local_server(_NotJson, requests=[]) as server:
        returncode, stderr = _follow_until_reported(server, tmp_path)
    assert returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("E! ")]
    assert len(errors) == 1, stderr
    assert errors[0].startswith("E! [riverguard] pull stopped: the answer is not InfluxDB's JSON")
    assert "Welcome to the proxy" in errors[0] and "retrying cannot help" in errors[0]
    assert "pass failed" not in stderr and server.requests == ["query"]
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--db", "a", "--follow"], "--follow needs --state PATH"),
        (["--db", "a", "--to-bucket", "b"], "--to-bucket goes with --bucket"),
        (["--db", "a", "--since", "yesterday"], "--since"),
        (["--db", "a", "--since", "1d", "--until", "2025-11-28"],  # (read nothing, exit 0, without a word)
         "--since (1d) is later than --until (2025-11-28): nothing to pull"),
        (["--db", "a", "--since", "2025-11-28T00:00:01Z", "--until", "2025-11-28"], "is later than --until"),
        (["--db", "a", "--bucket", "b"], "exactly one of --db"),
        (["--db", "a", "--delay", "5"], '--delay: invalid duration "5"'),
        (["--db", "a", "--late-window", "5"], '--late-window: invalid duration "5"'),
        # a value with a minus reaches the option's own check (argparse said "expected one argument")
        (["--db", "a", "--delay", "-5s"], '--delay: invalid duration "-5s"'),
        (["--db", "a", "--since", "-1h"], '--since: "-1h" is neither'),
        (["--db", "a", "--state", "s.msgpack", "--follow", "--every", "5"], '--every: invalid duration "5"'),
        (["--db", "a", "--state", "s.msgpack", "--follow", "--every", "1ns"], '--every must be at least 100ms, got "1ns"'),
        (["--db", "a", "--state", "s.msgpack", "--follow", "--every", "0s"], '--every must be at least 100ms, got "0s"'),
        # given and ignored (a one-off pull makes one pass; without --state there is no mark to look behind)
        (["--db", "a", "--every", "10s"], "--every goes with --follow"),
        (["--db", "a", "--state", "s.msgpack", "--every", "1m"], "--every goes with --follow"),
        (["--db", "a", "--late-window", "5m"], "--late-window goes with --state"),
    ],
)
def test_pull_option_errors(args: list[str], message: str, tmp_path: Path) -> None:
    # (in a folder of its own: a pull that took the options would leave s.msgpack there)
    proc = run_cli(["pull", "--influx-url", "http://127.0.0.1:1", *args], cwd=tmp_path, timeout=120, text=True)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


def test_late_window_off_needs_no_state(tmp_path: Path) -> None:
    """--late-window 0s (off) is what a pull without --state does anyway: not refused (a review found it was)."""
    proc = run_cli(["pull", "--influx-url", "http://127.0.0.1:1", "--db", "a", "--late-window", "0s", "--retries", "0"],
                   cwd=tmp_path, timeout=120, text=True)
    assert "--late-window" not in proc.stderr, proc.stderr
    assert proc.returncode == 1 and "cannot connect" in proc.stderr, proc.stderr  # it went on, to the server


def test_a_one_off_pull_takes_the_options_it_uses(influxdb: InfluxServer, tmp_path: Path) -> None:
    """--every without --follow was accepted and ignored, and is refused now (above); what a one-off pull
    does use is still taken: --late-window with --state (it looks behind the marks of the last pull), --delay."""
    db, t0 = "rg_one_off_options", 1_700_000_000 * 10**9
    _store(influxdb, db, "".join(f"m v={i % 5}.5 {t0 + i * 10**9}\n" for i in range(30)))
    state = str(tmp_path / "s.msgpack")
    args = ("--state", state, "--late-window", "5m", "--delay", "1s")
    first = _pull(influxdb, db, *args)
    assert first.returncode == 0, first.stderr
    assert influxdb.write(db, b"m v=9.5 %d\n" % (t0 + 20 * 10**9 + 1)).status == 204  # behind the mark
    second = _pull(influxdb, db, *args)
    assert second.returncode == 0, second.stderr
    assert "W! [riverguard] m: 1 point(s) written late" in second.stderr, second.stderr


_FORMS = "a duration back from now (30d, 12h, 90s) nor an RFC 3339 time (2025-11-28T00:00:00Z)"


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--since", "30", 'has no unit: give a duration back from now (30d, 12h, 90s) or an RFC 3339 time'),
        ("--since", "0", "has no unit"),
        ("--since", "-5", "has no unit"),
        ("--since", "1764288000000000000", "has no unit"),
        ("--until", "30", "has no unit"),
        ("--since", "banana", "is neither " + _FORMS),
        ("--until", "banana", "is neither " + _FORMS),
        ("--since", "2025-13-45", "is neither " + _FORMS),
    ],
    ids=["since-30", "since-0", "since-negative", "since-ns", "until-30", "since-banana", "until-banana", "since-bad-date"],
)
def test_since_and_until_refuse_what_is_neither_a_duration_nor_a_time(option: str, value: str, message: str) -> None:
    """A bare number was read as nanoseconds since 1970: ``--since 30`` pulled the whole history, ``--until 30``
    nothing, both with exit 0. Refused now, as ``--delay 5`` is, with the two forms the option takes."""
    proc = _run("pull", "--influx-url", "http://127.0.0.1:1", "--db", "a", option, value)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr  # one line, and nothing read (the URL leads nowhere)
    assert proc.stderr.startswith(f'E! [riverguard] {option}: "{value}" {message}'), proc.stderr


def test_a_since_in_the_future_is_warned_about(influxdb: InfluxServer) -> None:
    """``--since 2030-01-01T00:00:00Z`` printed `pulled 0 point(s)` and exited 0 without a word."""
    _store(influxdb, "rg_since_future", "cpu,host=a v=1 1000000000\n")
    proc = _pull(influxdb, "rg_since_future", "--since", "2030-01-01T00:00:00Z")
    assert proc.returncode == 0, proc.stderr
    [warning] = [line for line in proc.stderr.splitlines() if line.startswith("W! ")]
    assert re.fullmatch(
        r"W! \[riverguard\] --since 2030-01-01T00:00:00Z is in the future \(by this machine's clock, now"
        r" 20[0-9-]+T[0-9:.]+Z\): nothing is pulled from a measurement without a mark until then", warning), warning
    assert "pulled 0 point(s)" in proc.stderr
    past = _pull(influxdb, "rg_since_future", "--since", "2000-01-01T00:00:00Z")
    assert past.returncode == 0 and "W! " not in past.stderr, past.stderr


def test_a_since_within_the_delay_is_warned_about(influxdb: InfluxServer) -> None:
    """A one-off ``--since 5s`` with the default ``--delay 10s`` reads up to 10 s ago, before its --since: it
    printed `pulled 0 point(s)` and exited 0 without a word (the W! only came for a --since later than now)."""
    _store(influxdb, "rg_since_delay", f"cpu,host=a v=1 {time.time_ns() - 2_000_000_000}\n")
    proc = _run("pull", "--influx-url", influxdb.url, "--db", "rg_since_delay", "--since", "5s")
    assert proc.returncode == 0, proc.stderr
    [warning] = [line for line in proc.stderr.splitlines() if line.startswith("W! ")]
    assert re.fullmatch(
        r"W! \[riverguard\] --since 5s is later than now minus --delay 10s \(by this machine's clock, now"
        r" 20[0-9-]+T[0-9:.]+Z\): nothing newer than 10s ago is read, so nothing is pulled from a measurement"
        r" without a mark until 10s after --since", warning), warning
    assert "pulled 0 point(s)" in proc.stderr
    read = _pull(influxdb, "rg_since_delay", "--since", "5s")  # (--delay 0s)
    assert read.returncode == 0 and "W! " not in read.stderr and "pulled 1 point(s)" in read.stderr, read.stderr


class _DeniesTheCheckpoint(_Scripted):
    """As :class:`_Scripted`; at the first write, the checkpoint becomes unreadable (another user's, mode 0000)
    and the write fails (503)."""

    def do_POST(self) -> None:  # noqa: N802
        server: Any = self.server
        if self.path.startswith("/write") and not server.denied:
            server.denied = True
            server.state.chmod(0)
            server.write_statuses.append((503, "try later"))
        super().do_POST()


@pytest.mark.parametrize("follow", [False, True], ids=["one-off", "follow"])
def test_a_checkpoint_unreadable_when_a_failed_write_goes_back_to_it_exits_2(tmp_path: Path, follow: bool) -> None:
    """After a failed write, pull goes back to its last commit: it reads the checkpoint again. One that became
    another user's meanwhile (chowned to root, mode 0000) ended pull with a traceback (AccessDenied): now it
    says what failed and why it cannot go on, as pull does at start (exit 2), and leaves the file as it is."""
    prefix = as_a_user(tmp_path)
    state = tmp_path / "s.msgpack"
    made = run_cli(["replay", "--state", str(state), "-"], input=b"m,host=a v=1.5 1\n")
    assert made.returncode == 0 and state.exists(), made.stderr
    saved = state.read_bytes()
    with local_server(_DeniesTheCheckpoint, requests=[], writes=[], reads=[], write_statuses=[], forever=False,
                      denied=False, state=state) as server:
        args = [*prefix, *RIVERGUARD, "pull", "--influx-url", server.url, "--db", "x", "-m", "m", "--delay", "0s",
                "--late-window", "0s", "--state", str(state), "--retries", "0"]
        proc = subprocess.run([*args, "--follow"] if follow else args, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("E! ")]
    assert len(errors) == 2, proc.stderr
    assert errors[0] == (f"E! [riverguard] pull stopped: database 'x' at {server.url}: giving up after 1 attempt(s):"
                         " HTTP 503: try later; nothing was committed")
    assert errors[1].startswith(f"E! [riverguard] cannot read the checkpoint {state}: permission denied (owner ")
    assert server.requests.count("write") == 1 and not server.writes  # the failed write, not tried again
    assert state.stat().st_mode & 0o777 == 0
    state.chmod(0o600)
    assert state.read_bytes() == saved


def test_a_one_off_pull_whose_checkpoint_cannot_be_saved_exits_1(influxdb: InfluxServer, tmp_path: Path) -> None:
    """A pull whose checkpoint could not be saved (a full disk: here a file size limit below its size) logged
    one E! and exited 0: the marks on disk behind the points it wrote, nothing said about it. Now it says
    where the checkpoint is left and exits 1; the next pull resumes from there. (A state folder read-only
    from the start is refused then, exit 2, as replay --state's is: test_state.)"""
    import resource

    db, folder = "rg_unsaved_once", tmp_path / "state"
    folder.mkdir()
    state = folder / "pull.msgpack"
    args = [*RIVERGUARD, "pull", "--influx-url", influxdb.url, "--db", db, "--delay", "0s",
            "--state", str(state)]
    _store(influxdb, db, "".join(f"m,host=a v={i}.5 {i * 10**9}\n" for i in range(1, 11)))
    first = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    _store(influxdb, db, "".join(f"m,host=a v={i}.5 {i * 10**9}\n" for i in range(11, 21)))
    saved = state.read_bytes()
    limit = len(saved) // 2

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, preexec_fn=limited)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("E! ")]
    assert len(errors) == 2, proc.stderr
    assert errors[0].startswith(f"E! [riverguard] checkpoint to {state} failed: [Errno 27] File too large"), errors
    assert errors[1] == (
        f"E! [riverguard] the checkpoint {state} could not be saved (above): committed up to influxql:{db}//m"
        " 1970-01-01T00:00:10Z; a pull started again resumes from there, and reads again what this one wrote after it"
    )
    assert "pulled 10 point(s)" in proc.stderr and "Traceback" not in proc.stderr
    assert state.read_bytes() == saved
    again = subprocess.run(args, capture_output=True, text=True, timeout=60)  # (the scores are there: not again)
    assert again.returncode == 0, again.stderr
    assert "pulled 10 point(s) from database 'rg_unsaved_once': wrote 0, 10 already scored" in again.stderr
    # nothing new, the limit again: the save fails all the same, but nothing is read again
    idle = subprocess.run(args, capture_output=True, text=True, timeout=60, preexec_fn=limited)
    assert idle.returncode == 1, idle.stderr
    assert "wrote 0," in idle.stderr
    errors = [line for line in idle.stderr.splitlines() if line.startswith("E! ")]
    assert errors[-1].startswith(f"E! [riverguard] the checkpoint {state} could not be saved (above): committed up to")
    assert errors[-1].endswith("; a pull started again resumes from there (this one wrote nothing)"), errors


# -- --follow ----------------------------------------------------------------------


class _Puller:
    """``riverguard pull --follow`` in the background (after the command ``prefix``), its stderr in a file."""

    def __init__(self, args: list[str], log: Path, prefix: tuple[str, ...] = ()) -> None:
        self.log, self.args = log, args
        started = log.read_text().count("I! [riverguard] following") if log.exists() else 0
        with open(log, "ab") as err:
            self.proc = spawn([*prefix, *RIVERGUARD, "pull", *args], stderr=err, stdout=subprocess.DEVNULL)
        self.wait_for("I! [riverguard] following", started + 1, 60)  # ready: it handles SIGTERM from here on

    def stop(self, code: int = 0) -> str:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == code, self.log.read_text()
        return self.log.read_text()

    def wait_for(self, text: str, count: int = 1, timeout: float = 30) -> str:
        """The log once ``text`` is in it ``count`` times (the pull still running)."""

        def seen() -> bool:
            return self.log.read_text().count(text) >= count

        assert wait_until(lambda: seen() or self.proc.poll() is not None, timeout) and seen(), self.log.read_text()
        return self.log.read_text()

    def passes(self, n: int) -> str:
        """The log once ``n`` more passes have ended: each ends in a commit, whose checkpoint ``--log-level
        debug`` tells (one pass may have been under way: ``n - 1`` of them, at least, ran whole from now)."""
        assert "debug" in self.args, "passes are told at --log-level debug"
        told = "D! [riverguard] checkpoint: "
        return self.wait_for(told, self.log.read_text().count(told) + n)


def test_follow_scores_each_point_exactly_once_across_a_restart(influxdb: InfluxServer, tmp_path: Path) -> None:
    db = "rg_follow"
    influxdb.create_db(db)
    state, log = tmp_path / "pull.msgpack", tmp_path / "pull.log"
    args = ["--influx-url", influxdb.url, "--db", db, "-m", "live", "--follow", "--every", "0.2s",
            "--delay", "1s", "--state", str(state), "--log-level", "debug"]
    rng = random.Random(5)
    written: list[str] = []

    def write_for(seconds: float) -> None:  # as agents do: each point written when its time comes
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.time_ns()
            batch = [f"live,host=h{h} v={50 + rng.gauss(0, 1) + (40 if rng.random() < 0.01 else 0):.4f} {t}" for h in range(3)]
            assert influxdb.write(db, ("\n".join(batch) + "\n").encode()).status == 204
            written.extend(batch)
            time.sleep(0.03)

    puller = _Puller(args, log)
    write_for(2.5)
    puller.stop()  # SIGTERM mid-stream: commits and exits 0
    write_for(1.5)  # points that arrive while it is down
    puller = _Puller(args, log)
    write_for(2.5)

    _wait_scored(influxdb, db, "live", len(written), log, timeout=60)
    # A point written late (older than the newest point scored) is counted and reported, not scored.
    newest = max(int(line.rsplit(" ", 1)[1]) for line in written)
    assert influxdb.write(db, f"live,host=h0 v=50.5 {newest - 5 * 10**8}\n".encode()).status == 204
    puller.wait_for("written late")
    puller.passes(3)  # a few more passes: reported once, not again
    stderr = puller.stop()
    assert stderr.count("point(s) written late") == 1, stderr
    assert f"v=50.5 {newest - 5 * 10**8}" in stderr
    assert _scored(influxdb, db, "live") == len(written)
    # Each point was written back once over the two runs ...
    assert "resuming influxql:rg_follow//live after" in stderr
    totals = [int(line.split(": wrote ")[1].split(",")[0]) for line in stderr.splitlines() if "stopping: pulled" in line]
    assert len(totals) == 2 and sum(totals) == len(written) and all(totals), stderr
    # ... and scored once, in order: the scores are those of one replay of the same points.
    ordered = sorted(written, key=lambda s: int(s.rsplit(" ", 1)[1]))
    want = _replay_scores("".join(line + "\n" for line in ordered))
    got = {}
    for series in influxdb.query('SELECT "v_anomaly_score" FROM "live" GROUP BY "host"', db)["series"]:
        for t, score in series["values"]:
            if score is not None:
                got[(f"live,host={series['tags']['host']}".encode(), t, b"v_anomaly_score")] = score
    assert got == want
    assert os.path.getsize(state) > 0


def test_follow_goes_on_past_a_point_influxdb_refuses(influxdb: InfluxServer, tmp_path: Path) -> None:
    """--follow stopped for good (exit 1) at a point InfluxDB refused. Now each refused point gets one E! line,
    the others are written, the passes go on, and the next pass does not take a refused point behind the mark
    for one written late; SIGTERM still ends it with exit 0, the summary counting the refused points."""
    src, dst, t0 = "rg_follow_refused_src", "rg_follow_refused_dst", time.time_ns() - 30 * 10**9
    _conflicting_target(influxdb, src, dst, t0)

    def store(times: range, bad: int) -> None:
        lines = [f"good,host=a v={i}.5 {t0 + i * 10**9}" for i in times] + [f"bad,host=a v=2.5 {t0 + bad * 10**9}"]
        _store(influxdb, src, "\n".join(lines))

    log = tmp_path / "pull.log"
    store(range(5), bad=2)
    puller = _Puller(["--influx-url", influxdb.url, "--db", src, "--to-db", dst, "-m", "good", "-m", "bad",
                      "--follow", "--every", "0.1s", "--delay", "0s", "--state", str(tmp_path / "s.msgpack"),
                      "--log-level", "debug"], log)
    _wait_scored(influxdb, dst, "good", 5, log)
    store(range(10, 15), bad=12)  # the passes go on past the refused point
    _wait_scored(influxdb, dst, "good", 10, log)
    puller.passes(3)  # more passes: each looks behind the marks for points written late
    stderr = puller.stop()
    refused = [line for line in stderr.splitlines() if line.startswith("E! ")]
    assert [line.split(": InfluxDB refused it (HTTP 400): ")[0] for line in refused] == [
        f"E! [riverguard] bad point at {iso_ns(t0 + s * 10**9)}" for s in (2, 12)
    ], stderr
    assert all(_CONFLICT in line for line in refused)
    assert "written late" not in stderr.replace("0 written late within", "") and "W! " not in stderr, stderr
    assert "wrote 10, 0 already scored, 0 written late within --late-window 60s (not scored), 0 skipped (cannot be" \
           " rebuilt), 2 refused by" \
           " InfluxDB (not written)" in stderr.splitlines()[-1], stderr


def test_follow_tries_a_failed_checkpoint_again_at_each_commit_and_says_so(influxdb: InfluxServer,
                                                                          tmp_path: Path) -> None:
    """A --follow whose checkpoint could not be saved (its folder made read-only while it ran) logged an E! at
    every commit, each pass, and nothing once saves worked again; stopped with saves failing, it exited 0, its
    checkpoint behind the points it wrote. Now: one E! for the failures in a row (again at most once a minute),
    an I! when one is saved again, and a stop whose last save fails tries once more, says so and exits 1."""
    prefix = as_a_user(tmp_path)
    db, folder = "rg_unsaved_follow", tmp_path / "state"
    influxdb.create_db(db)
    folder.mkdir()
    state, log = folder / "pull.msgpack", tmp_path / "pull.log"
    t0 = time.time_ns() - 60 * 10**9
    count = 0

    def store(n: int) -> None:  # n more points; back once they are scored
        nonlocal count
        _store(influxdb, db, "\n".join(f"m,host=a v={i % 7}.5 {t0 + i * 10**8}" for i in range(count, count + n)))
        count += n
        _wait_scored(influxdb, db, "m", count, log)

    def marks(want: int | None = None) -> dict[str, str]:  # (with ``want``: once the mark is the point's)
        deadline = time.monotonic() + 30
        while True:
            got = read_checkpoint(state).get("pull_marks", {}) if state.exists() else {}
            if want is None or got == {f"influxql:{db}//m": iso_ns(t0 + want * 10**8)}:
                return got
            assert time.monotonic() < deadline, (got, log.read_text())
            time.sleep(0.05)

    args = ["--influx-url", influxdb.url, "--db", db, "--follow", "--every", "0.1s", "--delay", "0s",
            "--state", str(state)]
    puller = _Puller(args, log, prefix)
    try:
        store(5)
        marks(4)  # saved
        folder.chmod(0o555)
        for _ in range(5):  # passes that score points, and others that find none: each commit fails
            store(5)
            time.sleep(0.2)
        failed = puller.wait_for("checkpoint to")
        assert failed.count(f"E! [riverguard] checkpoint to {state} failed: [Errno 13] Permission denied") == 1, failed
        assert "checkpoint to" not in failed.split("failed: [Errno 13]", 1)[1], failed
        assert marks() == {f"influxql:{db}//m": iso_ns(t0 + 4 * 10**8)}
        folder.chmod(0o755)
        written = puller.wait_for("written again")
        again = [line for line in written.splitlines() if "written again" in line]
        assert len(again) == 1 and again[0].startswith(f"I! [riverguard] checkpoint to {state} written again, after ")
        # (each store(5) waited for a pass to score its points, and each such pass commits: 5 at least; on an
        # idle machine the passes between, every 0.1 s, fail too, but a loaded one may run none of them)
        assert int(again[0].split("after ")[1].split(" ")[0]) >= 5, again
        marks(count - 1)
        folder.chmod(0o555)
        store(5)
        time.sleep(0.3)
        stderr = puller.stop(1)
    finally:
        folder.chmod(0o755)
    after = stderr.split(again[0], 1)[1]
    errors = [line for line in after.splitlines() if line.startswith("E! ")]
    assert len(errors) == 3, after
    assert errors[0].startswith(f"E! [riverguard] checkpoint to {state} failed: [Errno 13]"), after
    assert errors[1].startswith(f"E! [riverguard] checkpoint to {state} failed again: [Errno 13]"), after
    assert re.search(r" \(\d+ failed in a row; the last one written \d+s ago\)$", errors[1]), after
    assert errors[2] == (
        f"E! [riverguard] the checkpoint {state} could not be saved (above): committed up to influxql:{db}//m"
        f" {iso_ns(t0 + (count - 6) * 10**8)}; a pull started again resumes from there, and reads again what this"
        " one wrote after it"
    ), after
    assert after.splitlines()[-1].startswith(f"I! [riverguard] stopping: pulled {count} point(s)"), after
    assert "Traceback" not in stderr


def test_follow_limits_the_refused_points_it_tells_over_its_whole_run(influxdb: InfluxServer, tmp_path: Path) -> None:
    """The E! lines of the points InfluxDB refused were limited per writer, and pull makes one for each pass:
    a --follow meeting refused points pass after pass told every one of them. Now the limit spans the run
    (REFUSED_TOLD a minute): the others are counted in one W! line."""
    src, dst, t0 = "rg_follow_told_src", "rg_follow_told_dst", time.time_ns() - 60 * 10**9
    _conflicting_target(influxdb, src, dst, t0)

    def store(first: int) -> None:  # six points refused, then one written (once it is, all six were sent)
        lines = [f"bad,host=a v={i}.5 {t0 + i * 10**9}" for i in range(first, first + 6)]
        _store(influxdb, src, "\n".join([*lines, f"bad,host=a w=1.5 {t0 + (first + 6) * 10**9}"]))
        _wait_scored(influxdb, dst, "bad", first // 10 + 1, log, field="w")

    log = tmp_path / "pull.log"
    puller = _Puller(["--influx-url", influxdb.url, "--db", src, "--to-db", dst, "-m", "bad", "--follow",
                      "--every", "0.1s", "--delay", "0s", "--state", str(tmp_path / "s.msgpack"),
                      "--log-level", "debug"], log)
    store(0)
    puller.passes(3)  # passes with nothing refused
    store(10)
    stderr = puller.stop()
    refused = [line for line in stderr.splitlines() if "InfluxDB refused it" in line]
    assert len(refused) == pull.REFUSED_TOLD == 10, stderr
    assert "W! [riverguard] 2 more points InfluxDB refused were not reported (rate limit)" in stderr, stderr
    assert "12 refused by InfluxDB (not written)" in stderr.splitlines()[-1], stderr


def test_follow_reports_a_late_point_once_and_a_refused_one_never_with_another_measurement_ahead(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    """What a late-point check had seen was one set for every measurement, and each check forgot what was older
    than its own window: the check of zzz, 10 min ahead of aaa, forgot aaa's, so the point aaa refused and a
    point written late into aaa were both reported as written late on every pass. Now once (the late one)."""
    src, dst, now = "rg_late_once_src", "rg_late_once_dst", time.time_ns()
    ta, tz = now - 600 * 10**9, now - 30 * 10**9
    influxdb.create_db(src)
    influxdb.create_db(dst)
    assert influxdb.write(dst, f"aaa,host=z v=1i {ta - 100 * 10**9}\n".encode()).status == 204  # v: an integer
    lines = [f"aaa,host=a w={i}.5 {ta - (10 - i) * 10**9}" for i in range(10)] + [f"aaa,host=a v=2.5 {ta}"]
    lines += [f"zzz,host=a v={i}.5 {tz + i * 10**9}" for i in range(10)]
    assert influxdb.write(src, ("\n".join(lines) + "\n").encode()).status == 204
    log = tmp_path / "pull.log"
    puller = _Puller(["--influx-url", influxdb.url, "--db", src, "--to-db", dst, "-m", "aaa", "-m", "zzz",
                      "--follow", "--every", "0.1s", "--delay", "0s", "--state", str(tmp_path / "s.msgpack"),
                      "--log-level", "debug"], log)
    puller.wait_for("E! [riverguard] aaa point at")  # the refused point ...
    puller.passes(3)  # ... committed past, then passes that check behind the marks
    assert influxdb.write(src, f"aaa,host=b w=9.5 {ta - 5 * 10**9}\n".encode()).status == 204  # late: 5 s behind
    puller.wait_for("written late (older than")
    puller.passes(3)  # more passes: none tells either point again
    stderr = puller.stop()
    late = [line for line in stderr.splitlines() if "written late (older than" in line]
    assert len(late) == 1 and late[0].startswith("W! [riverguard] aaa: 1 point(s) written late"), stderr
    assert late[0].endswith(f"are not scored: aaa,host=b w=9.5 {ta - 5 * 10**9}"), stderr
    assert "1 written late within --late-window 60s (not scored)" in stderr.splitlines()[-1], stderr


def test_a_point_written_again_after_it_was_scored_is_reported_with_to_db(influxdb: InfluxServer,
                                                                         tmp_path: Path) -> None:
    """A point written again with another value after it was scored (here at the mark's very time, and before
    it) kept the score of its old value in --to-db, and no pull said so: its copy there counted as scored. Now
    the copy's values are compared, and one that differs is reported as written late, once a process. A new
    point at the mark's time (another series) was and is reported as written late."""
    src, dst, t = "rg_rewritten_src", "rg_rewritten_dst", time.time_ns() - 30 * 10**9
    influxdb.create_db(dst)
    _store(influxdb, src, f"cpu,host=a v=1.25 {t - 2 * 10**9}\ncpu,host=a v=4.25 {t}\n")
    args = ["--to-db", dst, "--state", str(tmp_path / "pst.msgpack")]
    first = _pull(influxdb, src, *args)
    assert first.returncode == 0 and "wrote 2," in first.stderr, first.stderr
    lines = [f"cpu,host=a v=0.75 {t}", f"cpu,host=a v=9.75 {t - 2 * 10**9}", f"cpu,host=b v=3.5 {t}"]
    assert influxdb.write(src, ("\n".join(lines) + "\n").encode()).status == 204
    again = _pull(influxdb, src, *args)
    assert again.returncode == 0, again.stderr
    warnings = [line for line in again.stderr.splitlines() if line.startswith("W! ")]
    assert warnings == [
        f"W! [riverguard] cpu: 1 point(s) written late (older than {iso_ns(t)}, the newest point already scored)"
        f" are not scored: cpu,host=b v=3.5 {t}",
        f"W! [riverguard] cpu: 2 point(s) overwritten after they were scored (their scores in database '{dst}' are"
        f" of the values before) are not scored again: cpu,host=a v=9.75 {t - 2 * 10**9}; cpu,host=a v=0.75 {t}",
    ], again.stderr
    assert "wrote 0, 0 already scored, 3 written late within --late-window 60s (not scored)," in again.stderr, again.stderr
    assert influxdb.rows(f'SELECT "v" FROM "cpu" WHERE time = {t}', dst) == [[t, 4.25]]  # (left as scored)


def test_the_summary_counts_points_written_late_only_within_the_late_window(influxdb: InfluxServer,
                                                                           tmp_path: Path) -> None:
    """A point written 1000 s behind the mark, beyond --late-window (1m), is not seen, and the summary said ``0
    written late (not scored)``, as if none had been missed. It now names the window it looked in, and says
    when it did not look at all."""
    db, t = "rg_late_beyond", time.time_ns() - 60 * 10**9
    _store(influxdb, db, "".join(f"m,host=a v={i}.5 {t - (30 - i) * 10**9}\n" for i in range(31)))
    args = ["--state", str(tmp_path / "s.msgpack")]
    assert _pull(influxdb, db, *args).returncode == 0
    assert influxdb.write(db, f"m,host=b v=9.5 {t - 1000 * 10**9}\n".encode()).status == 204  # beyond 1m
    beyond = _pull(influxdb, db, *args)
    assert beyond.returncode == 0 and "W! " not in beyond.stderr, beyond.stderr
    assert "wrote 0, 0 already scored, 0 written late within --late-window 60s (not scored)," in beyond.stderr
    wide = _pull(influxdb, db, *args, "--late-window", "1h")
    assert "wrote 0, 0 already scored, 1 written late within --late-window 1h (not scored)," in wide.stderr, wide.stderr
    off = _pull(influxdb, db, *args, "--late-window", "0s")
    assert "wrote 0, 0 already scored, points written late not looked for (--late-window 0s)," in off.stderr, off.stderr


@pytest.mark.parametrize("late_window", [0, 60])
def test_a_pull_keeps_no_refused_point_out_of_its_late_window(influxdb: InfluxServer, late_window: int) -> None:
    """Each point InfluxDB refused was noted for the late-point checks, and only a check forgot it: with
    --late-window 0s none runs, so a --follow kept every point refused in its life. Now nothing is noted
    without a late window, and the commit forgets what is out of it (here: 100 s and more behind the mark).
    What the user sees of those points all the while: an E! line each, REFUSED_TOLD a minute over the passes
    (one W! line counts the others), and none of them ever reported as written late."""
    src, dst, t0 = f"rg_noted_src_{late_window}", f"rg_noted_dst_{late_window}", 1_000_000_000_000_000_000
    _conflicting_target(influxdb, src, dst, t0)
    stderr, minute = io.StringIO(), [0.0]
    log = Log("info", stderr)  # (as pull's own: one log for the engine and the writers)

    def new_writer(on_refused: Any, refusals: Any) -> InfluxWriter:
        return InfluxWriter(influxdb.url, db=dst, log=log, on_refused=on_refused, refusals=refusals)

    puller = Puller(Engine(parse_config(""), log), InfluxQLSource(influxdb.url, src), new_writer,
                    late_ns=late_window * 10**9)
    puller.refusals.clock = lambda: minute[0]  # (its limit as pull sets it; the minute as the test says)

    def one_pass(refused: range, written: int) -> list[str]:
        """A pass over the points ``refused`` (v, seconds after t0) and one written (w): the lines it told."""
        lines = [f"bad,host=a v={s}.5 {t0 + s * 10**9}" for s in refused] + [f"bad,host=a w=1.5 {t0 + written * 10**9}"]
        _store(influxdb, src, "\n".join(lines))
        told = stderr.tell()
        puller.run_pass()
        puller.report_held()
        assert not puller._late_seen  # every point refused is 100 s and more behind the mark: none kept
        return stderr.getvalue()[told:].splitlines()

    def refused_lines(refused: range) -> list[str]:
        return [f"E! [riverguard] bad point at {iso_ns(t0 + s * 10**9)}: InfluxDB refused it (HTTP 400): {_CONFLICT};"
                f" not written: bad,host=a v={s}.5 {t0 + s * 10**9}" for s in refused]  # (no rule: not scored)

    def held(n: int) -> str:
        return f"W! [riverguard] {n} more points InfluxDB refused were not reported (rate limit)"

    assert pull.REFUSED_TOLD == 10
    # 12 refused: the first 10 told one by one, the other 2 counted
    assert one_pass(range(12), written=200) == [*refused_lines(range(10)), held(2)]
    minute[0] = 30.0  # the same minute, another pass (and writer): nothing more told one by one
    assert one_pass(range(300, 303), written=400) == [held(3)]
    minute[0] = 60.0  # the next minute: told again
    assert one_pass(range(500, 502), written=600) == refused_lines(range(500, 502))
    assert (puller.refused, puller.written) == (17, 3)


def test_parse_gives_each_thread_its_own_fields() -> None:
    """pull parses on its writer's thread (a refused point's name; the metrics of a batch), the main thread
    parsing at the same time; parse kept its scratch in one object of the module, and a thread got the other's
    fields (about 50 in 300 000 parses). Here with the threads switching far more often than by default, each
    parsing until both have parsed ``least`` times, so each thread's share is parsed while the other runs."""
    lines = [b"cpu,host=a usage_idle=97.5,procs=201i 1700000000000000000",
             b"bad,host=zz,region=eu v=2.5,v_anomaly_score=0.0,v_anomaly=false 1000000010000000000"]
    want = [(m.measurement, m.tags, m.fields, m.fields_end, m.timestamp) for m in map(parse, lines)]
    wrong, done, least = [0, 0], [0, 0], 100_000
    both = threading.Barrier(2)
    deadline = time.monotonic() + 120  # (a thread that stops early fails the test: it does not hang it)

    def parse_both(which: int) -> None:
        line, expected = lines[which], want[which]
        both.wait(60)  # the two start together ...
        while min(done) < least and time.monotonic() < deadline:  # ... and go on until both did their share
            for _ in range(200):
                try:
                    m = parse(line)
                    wrong[which] += (m.measurement, m.tags, m.fields, m.fields_end, m.timestamp) != expected
                except ParseError:
                    wrong[which] += 1
            done[which] += 200

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        other = threading.Thread(target=parse_both, args=(1,))
        other.start()
        parse_both(0)
        other.join()
    finally:
        sys.setswitchinterval(interval)
    assert min(done) >= least, done
    assert wrong == [0, 0]


#: The demo recording's mem points: 2160 timestamps 10 s apart from 2025-11-28T00:00:00Z, three hosts.
_DEMO_MEM = "".join(
    line + "\n" for line in (ROOT / "tests" / "data" / "demo.lp").read_text().splitlines() if line.startswith("mem,")
)
_T0 = 1_764_288_000_000_000_000  # 2025-11-28T00:00:00Z


def _mem_scores(server: InfluxServer, db: str) -> dict[tuple[bytes, int, bytes], float]:
    got = {}
    fields = ("used_percent", "used")
    cols = ", ".join(f'"{f}_anomaly_score"' for f in fields)
    for series in server.query(f'SELECT {cols} FROM "mem" GROUP BY *', db).get("series", []):
        tags = ",".join(f"{k}={v}" for k, v in sorted(series["tags"].items()))
        for row in series["values"]:
            for f, value in zip(fields, row[1:]):
                if value is not None:
                    got[(f"mem,{tags}".encode(), row[0], f"{f}_anomaly_score".encode())] = value
    return got


def test_since_includes_its_own_time_and_a_mark_does_not(influxdb: InfluxServer, tmp_path: Path) -> None:
    """``--since 2025-11-28`` read 6477 of the demo's 6480 mem points: the bound was exclusive, so the three
    points at exactly 2025-11-28T00:00:00Z (one per series: Telegraf's times are round) were never scored.
    --since is included now; resuming from the state's mark (the newest point already scored) still reads
    only what is newer, so a point is scored once across runs."""
    src = "rg_since_src"
    _store(influxdb, src, _DEMO_MEM)
    assert len(_DEMO_MEM.splitlines()) == 6480
    want = _replay_scores(_DEMO_MEM)
    # One-off, no state: every point from --since on, the first three included.
    influxdb.create_db("rg_since_once")
    proc = _pull(influxdb, src, "-m", "mem", "--since", "2025-11-28", "--to-db", "rg_since_once", "--log-level", "debug")
    assert proc.returncode == 0, proc.stderr
    assert "pulled 6480 point(s) from database 'rg_since_src': wrote 6480," in proc.stderr
    assert "D! [riverguard] mem: read 6480 point(s) from 2025-11-28T00:00:00Z; 0 already scored" in proc.stderr
    assert influxdb.rows('SELECT count("used_anomaly_score") FROM "mem"', "rg_since_once")[0][1] == 6480
    assert _mem_scores(influxdb, "rg_since_once") == want
    # An RFC 3339 --since between two points, and an --until on one: both ends as given, [since, until].
    influxdb.create_db("rg_since_span")
    proc = _pull(influxdb, src, "-m", "mem", "--since", "2025-11-28T00:00:05Z", "--until", "2025-11-28T00:01:00Z",
                 "--to-db", "rg_since_span")
    assert proc.returncode == 0, proc.stderr
    assert "pulled 18 point(s)" in proc.stderr  # 00:00:10 ... 00:01:00, three hosts
    # With --state: a first run up to 01:00, then one that resumes after its mark (--since is then left alone).
    dst, state = "rg_since_twice", tmp_path / "pull.msgpack"
    influxdb.create_db(dst)
    first = _pull(influxdb, src, "-m", "mem", "--since", "2025-11-28", "--until", "2025-11-28T01:00:00Z",
                  "--to-db", dst, "--state", str(state))
    assert first.returncode == 0, first.stderr
    assert "pulled 1083 point(s)" in first.stderr  # 361 times (00:00:00 and 01:00:00 included) x 3 hosts
    inspect = _run("state", "inspect", str(state))
    assert json.loads(inspect.stdout)["pull_marks"] == {"influxql:rg_since_src//mem": "2025-11-28T01:00:00Z"}
    second = _pull(influxdb, src, "-m", "mem", "--since", "2025-11-28", "--to-db", dst, "--state", str(state),
                   "--log-level", "debug")
    assert second.returncode == 0, second.stderr
    assert "resuming influxql:rg_since_src//mem after 2025-11-28T01:00:00Z" in second.stderr
    assert "D! [riverguard] mem: read 5397 point(s) after 2025-11-28T01:00:00Z; 0 already scored" in second.stderr
    assert "pulled 5397 point(s)" in second.stderr  # the points at the mark are not read again
    assert _mem_scores(influxdb, dst) == want  # each point scored once, in order, over the two runs


def test_follow_starts_at_since_included_then_goes_on_after_its_marks(influxdb: InfluxServer, tmp_path: Path) -> None:
    """--follow's first pass reads from --since, that time included; the passes after it read only what is
    newer than the mark, so across many passes every point is read and written once."""
    src, dst = "rg_since_follow_src", "rg_since_follow_dst"
    _store(influxdb, src, _DEMO_MEM)
    influxdb.create_db(dst)
    log = tmp_path / "pull.log"
    puller = _Puller(["--influx-url", influxdb.url, "--db", src, "-m", "mem", "--since", "2025-11-28", "--to-db", dst,
                      "--follow", "--every", "0.1s", "--delay", "0s", "--state", str(tmp_path / "s.msgpack"),
                      "--log-level", "debug"], log)
    _wait_scored(influxdb, dst, "mem", 6480, log, field="used", timeout=20)
    puller.passes(3)  # a few more passes, which read nothing
    stderr = puller.stop()
    assert _scored(influxdb, dst, "mem", "used") == 6480, stderr
    assert "stopping: pulled 6480 point(s) from database 'rg_since_follow_src': wrote 6480," in stderr
    assert influxdb.rows(f'SELECT "used_anomaly_score" FROM "mem" WHERE time = {_T0}', dst)[0][0] == _T0


def _steady_cpu(n: int = 400, seed: int = 3) -> list[str]:
    """``n`` points of cpu,host=web1 usage_user=20±1, every 10 s, up to 10 s ago."""
    rng = random.Random(seed)
    t0 = time.time_ns() - n * 10**10
    return [f"cpu,host=web1 usage_user={20 + rng.uniform(-1, 1):.4f} {t0 + i * 10**10}" for i in range(n)]


def test_follow_after_a_pull_without_state_learns_the_points_it_scored(influxdb: InfluxServer, tmp_path: Path) -> None:
    """The README's pull (no --state), then its --follow with a new state: the follow's first pass read the 400
    points the pull had scored and skipped them without learning, so its models started untrained and a spike
    written after scored 0, not flagged (`wrote 1, 400 already scored`). They are learned now, not written
    again: the spike is flagged, with the score one replay of every point gives it."""
    db = "rg_learn_scored"
    lines = _steady_cpu()
    _store(influxdb, db, "\n".join(lines))
    first = _pull(influxdb, db, "--since", "2h")
    assert first.returncode == 0 and "wrote 400, 0 already scored" in first.stderr, first.stderr
    log, state = tmp_path / "pull.log", tmp_path / "s.msgpack"
    puller = _Puller(["--influx-url", influxdb.url, "--db", db, "--follow", "--every", "0.1s", "--delay", "0s",
                      "--state", str(state), "--log-level", "debug"], log)
    told = puller.passes(2)
    assert ("D! [riverguard] cpu: read 400 point(s) from the beginning; 400 already scored (400 of them not seen by"
            " the models: learned, not written again)") in told, told
    spike = time.time_ns() + 10**9
    lines.append(f"cpu,host=web1 usage_user=95.0 {spike}")
    assert influxdb.write(db, (lines[-1] + "\n").encode()).status == 204
    _wait_scored(influxdb, db, "cpu", 401, log, field="usage_user")
    stderr = puller.stop()
    assert "stopping: pulled 401 point(s) from database 'rg_learn_scored': wrote 1, 400 already scored (400 learned by the models)," in stderr
    [[_, score, flag]] = influxdb.rows(
        f'SELECT "usage_user_anomaly_score", "usage_user_anomaly" FROM "cpu" WHERE time = {spike}', db)
    assert flag is True, stderr
    assert score == _replay_scores("".join(line + "\n" for line in lines))[(b"cpu,host=web1", spike,
                                                                              b"usage_user_anomaly_score")]
    [series] = list_series(state)[0]
    assert series["samples"] == 401  # each point learned once


def test_a_scored_point_the_models_have_seen_is_not_learned_again(influxdb: InfluxServer, tmp_path: Path) -> None:
    """A state whose models learned the points already (scored from another database into this one; so with a
    state Telegraf's riverguard run keeps, the points it scored): read again without a mark, they are not
    learned twice."""
    src, dst = "rg_learned_src", "rg_learned_dst"
    _store(influxdb, src, "\n".join(_steady_cpu(seed=4)))
    influxdb.create_db(dst)
    state = tmp_path / "s.msgpack"
    first = _pull(influxdb, src, "--to-db", dst, "--state", str(state), "--late-window", "0s")
    assert first.returncode == 0 and "wrote 400, 0 already scored" in first.stderr, first.stderr
    again = _pull(influxdb, dst, "--state", str(state), "--late-window", "0s", "--log-level", "debug")
    assert again.returncode == 0, again.stderr
    assert "D! [riverguard] cpu: read 400 point(s) from the beginning; 400 already scored\n" in again.stderr
    assert "wrote 0, 400 already scored" in again.stderr
    [series] = list_series(state)[0]
    assert series["samples"] == 400


class _Breaks(QuietHandler):
    """A 1.x server whose chunked answer to SELECT stops after its first chunk (the connection drops)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/write"):
            self.server.writes.append(body)  # type: ignore[attr-defined]
            return self.answer(204, b"")
        q = urllib.parse.parse_qs(body.decode())["q"][0]
        if q == "SHOW DATABASES":
            return self.answer(200, b'{"results":[{"statement_id":0,"series":[{"name":"databases","columns":["name"],"values":[["x"]]}]}]}\n')
        if q == "SHOW MEASUREMENTS":
            return self.answer(200, b'{"results":[{"statement_id":0,"series":[{"name":"measurements","columns":["name"],"values":[["m"]]}]}]}\n')
        if q.startswith("SHOW TAG KEYS"):
            return self.answer(200, b'{"results":[{"statement_id":0,"series":[{"name":"m","columns":["tagKey"],"values":[["host"]]}]}]}\n')
        if q.startswith("SHOW FIELD KEYS"):
            return self.answer(200, b'{"results":[{"statement_id":0,"series":[{"name":"m","columns":["fieldKey","fieldType"],"values":[["v","float"]]}]}]}\n')
        rows = ",".join(f'[{t},"a",{t}.5]' for t in range(1, 4))
        chunk = ('{"results":[{"statement_id":0,"series":[{"name":"m","columns":["time","t0","f0"],"values":[%s],"partial":true}],"partial":true}]}\n' % rows).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.flush()
        self.close_connection = True  # ... and no more: the server went away


def test_one_off_pull_cut_off_mid_stream_commits_what_it_wrote(tmp_path: Path) -> None:
    state = tmp_path / "s.msgpack"
    with local_server(_Breaks, writes=[]) as server:
        proc = _run("pull", "--influx-url", server.url, "--db", "x", "-m", "m", "--delay", "0s",
                    "--state", str(state), "--chunk-size", "2")
        writes = b"".join(server.writes)
    assert proc.returncode == 1, proc.stderr
    assert "E! [riverguard] pull stopped: connection lost while reading" in proc.stderr
    # Points at time 3 may go on in the lost part of the answer: they wait for the next run.
    assert "committed up to influxql:x//m 1970-01-01T00:00:00.000000002Z; run it again to resume" in proc.stderr
    assert [line.split(b",", 2)[1] for line in writes.splitlines()] == [b"host=a v=1.5", b"host=a v=2.5"]
    inspect = _run("state", "inspect", str(state))
    summary = json.loads(inspect.stdout)
    assert inspect.returncode == 0 and summary["series"] == 1
    # the mark is saved with the model, and shown to the nanosecond, as pull logs and resumes after it
    assert summary["pull_marks"] == {"influxql:x//m": "1970-01-01T00:00:00.000000002Z"}


def test_progress_bar_on_a_terminal(influxdb: InfluxServer) -> None:
    import pty

    db = "rg_progress"
    _store(influxdb, db, "".join(f"tty,host=a v={i % 5}.5 {1_600_000_000_000_000_000 + i * 10**9}\n" for i in range(3000)))
    master, slave = pty.openpty()
    proc = spawn(
        [*RIVERGUARD, "pull", "--influx-url", influxdb.url, "--db", db, "--delay", "0s", "--chunk-size", "500"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        seen += data
    os.close(master)
    assert proc.wait(60) == 0, seen
    text = seen.decode()
    assert "\rpull tty [" in text and "100%" in text
    assert len(set(re.findall(r"\] +(\d+)%", text))) > 2  # it moves


def test_pull_reads_and_writes_with_the_same_credentials(tmp_path: Path) -> None:
    with local_server(_Breaks, writes=[]) as server:
        seen = []
        original = _Breaks.do_POST

        def recording(self: _Breaks) -> None:
            seen.append((self.path.split("?")[0], self.headers.get("Authorization")))
            original(self)

        _Breaks.do_POST = recording  # type: ignore[method-assign]
        try:
            proc = subprocess.run(
                [*RIVERGUARD, "pull", "--influx-url", server.url, "--db", "x", "-m", "m", "--delay", "0s",
                 "--chunk-size", "2", "--username", "ada", "--password-env", "RG_PW"],
                capture_output=True, text=True, timeout=60, env={**os.environ, "RG_PW": "s3cret"},
            )
        finally:
            _Breaks.do_POST = original  # type: ignore[method-assign]
    assert proc.returncode == 1, proc.stderr  # the stand-in drops the answer; what matters is who asked
    basic = "Basic YWRhOnMzY3JldA=="  # base64("ada:s3cret")
    assert {path for path, _ in seen} == {"/query", "/write"}
    assert {auth for _, auth in seen} == {basic}


def test_follow_tells_the_evictions_since_its_last_warning_when_it_stops(influxdb: InfluxServer, tmp_path: Path) -> None:
    """Evictions of series not yet scored get a W! line at most once a minute: those of the passes after it
    were not told when --follow stopped (a run's exit line gives the total; a pull's summary does not)."""
    db = "rg_follow_evictions"

    def points(t: int) -> str:
        return "".join(f"cpu,host=h{h} v={h}.5 {t}\n" for h in range(20))

    _store(influxdb, db, points(1_000_000_000))
    (tmp_path / "rg.toml").write_text('[state]\nmax_series = 5\n\n[[rule]]\nname = "all"\n', encoding="utf-8")
    log = tmp_path / "pull.log"
    puller = _Puller(["--config", str(tmp_path / "rg.toml"), "--influx-url", influxdb.url, "--db", db, "-m", "cpu",
                      "--follow", "--every", "0.1s", "--delay", "0s", "--state", str(tmp_path / "s.msgpack"),
                      "--log-level", "debug"], log)
    _wait_scored(influxdb, db, "cpu", 20, log)
    puller.wait_for("W! [riverguard] ")
    assert influxdb.write(db, points(2_000_000_000).encode()).status == 204
    _wait_scored(influxdb, db, "cpu", 40, log)
    puller.passes(2)
    stderr = puller.stop()
    told = re.findall(r"^W! \[riverguard\] ([0-9]+) evictions? of a series not yet scored \(([0-9]+) since start\)",
                      stderr, re.M)
    assert len(told) == 2 == stderr.count("W! "), stderr
    (first, _), (second, total) = told
    assert int(first) > 0 and int(second) > 0 and int(first) + int(second) == int(total), stderr



def test_a_pull_from_a_bucket_on_influxdb_1x_says_it_is_not_2x(influxdb: InfluxServer, tmp_path: Path) -> None:
    """--bucket/--org/--token-env against InfluxDB 1.6, which has no /api/v2/query: the pull stopped on `HTTP 404:
    404 page not found` alone, where a backfill (test_influxdb) says the server is not 2.x and to give --db. The
    same advice now, one-off and --follow (which stops: retrying cannot help)."""
    advice = (f"HTTP 404: 404 page not found; {influxdb.url} does not look like InfluxDB 2.x (its 404 is not 2.x's"
              " JSON error): for InfluxDB 1.x give --db (and --username/--password-env) instead of --bucket, --org"
              " and --token-env, or fix --influx-url; ")
    bucket = ["pull", "--influx-url", influxdb.url, "--bucket", "telegraf", "--org", "acme", "--token-env",
              "RG_TEST_TOKEN", "--delay", "0s"]
    env = {**os.environ, "RG_TEST_TOKEN": "abc"}
    once = run_cli(bucket, timeout=60, text=True, env=env)
    assert once.returncode == 1, once.stderr
    assert (f"E! [riverguard] pull stopped: {advice}nothing was committed; fix this, then run it again to resume"
            " from there") in once.stderr.splitlines(), once.stderr
    follow = run_cli([*bucket, "--follow", "--state", str(tmp_path / "s")], timeout=60, text=True, env=env)
    assert follow.returncode == 1, follow.stderr
    assert any(line.startswith(f"E! [riverguard] pull stopped: {advice}") and line.endswith("retrying cannot help:"
               " fix this and start again") for line in follow.stderr.splitlines()), follow.stderr
    assert "Traceback" not in once.stderr + follow.stderr
