"""riverguard's output in a real InfluxDB (1.x, ``influxd``), and ``replay --influx-url``.

Without influxd these tests skip (fail with CI=true): see tests/influx.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import free_port
from riverguard.detectors import resolve
from riverguard.influx import MAX_REFUSED_PER_BATCH

try:
    from tests.influx import InfluxServer, QuietHandler, influxdb, local_server  # noqa: F401  (fixture)
    from tests.data.injected import HOSTS, generate
except ImportError:  # tests/ itself on sys.path (rootdir-less import mode)
    from influx import InfluxServer, QuietHandler, influxdb, local_server  # type: ignore[no-redef]  # noqa: F401
    from data.injected import HOSTS, generate  # type: ignore[no-redef]

pytestmark = pytest.mark.influxdb

RIVERGUARD = str(Path(sys.executable).with_name("riverguard"))
BATCH = 5000  # lines per write, as Telegraf's influxdb output (metric_batch_size)

RESCORE_CONFIG = """\
[[rule]]
name = "cpu-hst"
measurement = "cpu"
detector = "hst"

[[rule]]
name = "rest"
detector = "zscore"
threshold = 0.99
"""


def _replay(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [RIVERGUARD, "replay", *args], capture_output=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    text, injected = generate()
    path = tmp_path_factory.mktemp("lp") / "injected.lp"
    path.write_text(text, encoding="utf-8")
    return path, injected


@pytest.fixture(scope="module")
def scored(recording, tmp_path_factory) -> tuple[bytes, float]:
    """riverguard's output for the recording (the real CLI), and how long the replay took."""
    path, _ = recording
    started = time.monotonic()
    proc = _replay(str(path))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout, elapsed


def _post_batches(server: InfluxServer, db: str, output: bytes) -> list[int]:
    lines = output.splitlines()
    statuses = []
    for i in range(0, len(lines), BATCH):
        r = server.write(db, b"\n".join(lines[i : i + BATCH]) + b"\n")
        assert r.status == 204, (r.status, r.body)
        statuses.append(r.status)
    return statuses


@pytest.fixture(scope="module")
def stored(influxdb: InfluxServer, scored) -> str:
    db = "rg_telegraf"
    influxdb.create_db(db)
    output, replay_s = scored
    started = time.monotonic()
    statuses = _post_batches(influxdb, db, output)
    write_s = time.monotonic() - started
    n = len(output.splitlines())
    print(
        f"\nreplay: {n} metrics in {replay_s:.2f}s ({n / replay_s:,.0f}/s, process start included);"
        f" write: {len(statuses)} batches in {write_s:.2f}s ({n / write_s:,.0f} metrics/s)"
    )
    return db


def test_every_metric_is_stored(influxdb: InfluxServer, stored: str, scored) -> None:
    output, _ = scored
    assert len(output.splitlines()) == 12000
    # One row per metric: series x timestamps (count of a field present in every line).
    for measurement, field in (("cpu", "usage_user"), ("mem", "used_percent")):
        rows = influxdb.rows(f'SELECT count("{field}") FROM "{measurement}"', stored)
        assert rows[0][1] == 6000, (measurement, rows)
    for measurement, field in (("cpu", "usage_user_anomaly_score"), ("mem", "used_percent_anomaly")):
        rows = influxdb.rows(f'SELECT count("{field}") FROM "{measurement}"', stored)
        assert rows[0][1] == 6000, (measurement, field, rows)


def test_added_fields_are_float_and_boolean(influxdb: InfluxServer, stored: str) -> None:
    kinds = {}
    for measurement in ("cpu", "mem"):
        for series in influxdb.query(f'SHOW FIELD KEYS FROM "{measurement}"', stored)["series"]:
            kinds.update({(measurement, key): kind for key, kind in series["values"]})
    expected = {
        ("cpu", "usage_user"): "float",
        ("cpu", "usage_user_anomaly_score"): "float",
        ("cpu", "usage_user_anomaly"): "boolean",
        ("cpu", "usage_system_anomaly_score"): "float",
        ("cpu", "usage_system_anomaly"): "boolean",
        ("cpu", "procs"): "integer",
        ("cpu", "procs_anomaly_score"): "float",  # an integer field's score is a float
        ("cpu", "procs_anomaly"): "boolean",
        ("cpu", "state"): "string",  # strings pass through unscored
        ("mem", "used_percent_anomaly_score"): "float",
        ("mem", "used_percent_anomaly"): "boolean",
        ("mem", "used_anomaly_score"): "float",
    }
    assert {k: kinds.get(k) for k in expected} == expected
    assert ("cpu", "state_anomaly") not in kinds


#: Tabs around the spaces between the parts of a line, as a producer other than Telegraf may write them.
TAB_LINES = [
    b"tab,host=a \ttab=1 1",  # InfluxDB skips spaces and tabs after the space before the fields...
    b"tab,host=b \t \tt=1,\tx=2 \t 2",  # ...(after a ',' the tab is the key's)...
    b"tab,host=c v=1 \t",  # ...and after the one after them
    b"tab,host=d\tv=1 4",  # refused: a tab in place of the space is part of the tag value
    b"tab,host=e v=1\t5",  # the field value's
    b"tab,host=f v=1 6\t",  # the timestamp's
]


def _read_as_influxdb_reads_them(
    influxdb: InfluxServer, name: str, lines: list[bytes], score: Callable[[bytes], tuple[bytes, bytes]]
) -> list[bytes]:
    """The ``lines`` influxd takes, each scored (``score``: riverguard's output and log for one line) with the
    fields influxd reads; each line it refuses comes back unchanged, with an E! line."""
    taken = []
    for i, line in enumerate(lines):
        given, scored = f"rg_{name}_given{i}", f"rg_{name}_scored{i}"
        influxdb.create_db(given)
        influxdb.create_db(scored)
        stdout, stderr = score(line)
        if influxdb.write(given, line + b"\n").status != 204:
            assert stdout == line + b"\n" and stderr.startswith(b"E! "), (line, stdout, stderr)
            continue
        assert influxdb.write(scored, stdout).status == 204, stdout
        keys = [key for key, _ in influxdb.rows("SHOW FIELD KEYS", given)]
        added = {f"{key}{suffix}" for key in keys for suffix in ("_anomaly_score", "_anomaly")}
        assert {key for key, _ in influxdb.rows("SHOW FIELD KEYS", scored)} == {*keys, *added}, (line, stdout)
        assert b"E! " not in stderr, stderr
        if not line.endswith((b"\t", b"\x00")):  # (without a timestamp, each write is stamped with its own time)
            assert _columns(influxdb, scored, name, keys) == _columns(influxdb, given, name, keys) != []
        taken.append(line)
    return taken


def _columns(influxdb: InfluxServer, db: str, measurement: str, keys: list[str]) -> list[list]:
    """The time and ``keys`` of every point of ``measurement`` (SELECT *: InfluxQL cannot name a NUL)."""
    (series,) = influxdb.query(f"SELECT * FROM {measurement}", db)["series"]
    at = [series["columns"].index(key) for key in ("time", *keys)]
    return [[row[i] for i in at] for row in series["values"]]


def test_tabs_after_a_space_are_read_as_influxdb_reads_them(influxdb: InfluxServer, tmp_path: Path) -> None:
    """A line InfluxDB takes is scored with the fields InfluxDB reads (riverguard read ``m,host=a \\ttab=1 1``
    as a field ``\\ttab`` and wrote ``\\ttab_anomaly_score``, beside InfluxDB's field ``tab``); a line it
    refuses comes back unchanged, with an E! line."""

    def replayed(line: bytes) -> tuple[bytes, bytes]:
        path = tmp_path / "tab.lp"
        path.write_bytes(line + b"\n")
        proc = _replay(str(path))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout, proc.stderr

    assert _read_as_influxdb_reads_them(influxdb, "tab", TAB_LINES, replayed) == TAB_LINES[:3]


#: NULs where the tabs are in TAB_LINES: influxd 1.6 skips a NUL there as it skips a tab.
NUL_LINES = [line.replace(b"\t", b"\x00").replace(b"tab", b"nul") for line in TAB_LINES]


def _run(line: bytes) -> tuple[bytes, bytes]:
    """riverguard's output and log for ``line`` through ``run`` (a pipe, as Telegraf writes): ``replay``
    refuses a file with a NUL as binary data."""
    proc = subprocess.run([RIVERGUARD, "run"], input=line + b"\n", capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr


def test_nuls_after_a_space_are_read_as_influxdb_reads_them(influxdb: InfluxServer) -> None:
    """``m,host=a \\x00nul=1 1`` is field ``nul`` in InfluxDB; riverguard read a field ``\\x00nul`` and wrote
    ``\\x00nul_anomaly_score``."""
    assert _read_as_influxdb_reads_them(influxdb, "nul", NUL_LINES, _run) == NUL_LINES[:3]


#: A tag key given twice, as written or escaped; influxd 1.6 refuses each ("duplicate tags") but the last.
DUPLICATE_LINES = [
    b"dup,a=1,a=2 v=1 1", b"dup,a=2,a=1 v=1 2", b"dup,a=1,a=1 v=1 3", b"dup,a=1,b=1,a=2 v=1 4",
    rb"dup,a\ b=1,a\ b=2 v=1 5", b'dup,a=1,a=2 s="x",v=1 6', b"dup,a=1,b=1 v=1 7",
]


def test_a_tag_key_given_twice_is_refused_as_influxdb_refuses_it(influxdb: InfluxServer) -> None:
    """riverguard scored ``dup,a=1,a=2 v=1`` in a series ``dup,a=1,a=2`` that InfluxDB never holds (it
    refuses the line): now it passes the line through unchanged with an ``E!`` line, as any it cannot read."""
    assert _read_as_influxdb_reads_them(influxdb, "dup", DUPLICATE_LINES, _run) == DUPLICATE_LINES[-1:]
    _, stderr = _run(DUPLICATE_LINES[0])
    assert stderr.startswith(b'E! [riverguard] stdin:1: not line protocol: duplicate tags (key "a" given twice) at '
                             b"column 9; passed through unchanged: dup,a=1,a=2 v=1 1\n"), stderr


#: NULs before a metric, among spaces and tabs: influxd 1.6 skips them all, as before a comment.
LEAD_LINES = [b"\x00lead,host=a v=1 1", b"\x00\x00lead,host=b v=1 2", b"\x00 \tlead,host=c v=1 3", b" \x00lead,host=d v=1 4"]


def test_nuls_before_a_metric_are_skipped_as_influxdb_skips_them(influxdb: InfluxServer) -> None:
    """influxd reads ``\\x00lead v=1`` as measurement ``lead``: riverguard read ``\\x00lead``, a series apart
    from ``lead``'s, and refused ``\\x00 lead v=1`` (passed through unscored), ``\\x00# note`` and ``\\x00``."""
    assert _read_as_influxdb_reads_them(influxdb, "lead", LEAD_LINES, _run) == LEAD_LINES
    skipped = [b"\x00# note", b"\x00", b"\t\x00 "]
    for line in skipped:
        influxdb.create_db("rg_lead_skipped")
        assert influxdb.write("rg_lead_skipped", line + b"\n").status == 204
    assert influxdb.query("SHOW MEASUREMENTS", "rg_lead_skipped").get("series") is None  # nothing stored
    given = b"".join(line + b"\n" for line in [b"lead v=1 1", *LEAD_LINES, *skipped, b"lead v=2 9"])
    stdout, stderr = _run(given[:-1])
    assert stdout.split(b"\n") == [
        *(line.replace(b"v=1 ", b"v=1,v_anomaly_score=0.0,v_anomaly=false ") for line in [b"lead v=1 1", *LEAD_LINES]),
        *skipped,
        stdout.split(b"\n")[-2],
        b"",
    ], stdout  # one output line for each line given, in order
    assert stdout.split(b"\n")[-2].startswith(b"lead v=2,v_anomaly_score="), stdout
    assert b"E! " not in stderr and b"stopped after 6 metrics: 5 series held" in stderr, stderr


def test_injected_anomalies_are_flagged_where_injected(influxdb: InfluxServer, stored: str, recording) -> None:
    _, injected = recording
    threshold = resolve("default").default_threshold
    for measurement, field in (("cpu", "usage_user"), ("mem", "used_percent")):
        result = influxdb.query(
            f'SELECT "{field}", "{field}_anomaly_score" FROM "{measurement}" '
            f'WHERE "{field}_anomaly" = true GROUP BY "host"',
            stored,
        )
        flagged = {
            series["tags"]["host"]: [row[0] for row in series["values"]] for series in result.get("series", [])
        }
        want = {host: injected[(measurement, host, field)] for host in HOSTS if (measurement, host, field) in injected}
        for host, times in want.items():
            assert set(times) <= set(flagged.get(host, [])), (measurement, field, host)
        extra = sum(len(times) for times in flagged.values()) - sum(len(times) for times in want.values())
        assert extra <= 2, f"{extra} flags on {measurement} {field} away from the injections"
        scores = [row[2] for s in result["series"] for row in s["values"]]
        assert all(threshold <= s <= 1.0 for s in scores)
    # Rarely elsewhere: usage_system has no injection at all.
    total = influxdb.rows('SELECT count("usage_system_anomaly_score") FROM "cpu" WHERE "usage_system_anomaly" = true', stored)
    assert total == [] or total[0][1] <= 3, total


def test_second_replay_into_the_same_database_has_no_type_conflict(
    influxdb: InfluxServer, stored: str, recording, tmp_path: Path
) -> None:
    path, _ = recording
    again = _replay(str(path))
    assert again.returncode == 0
    assert set(_post_batches(influxdb, stored, again.stdout)) == {204}
    # Re-scoring with other detectors (hst scores, a lower threshold) writes the same types too.
    config = tmp_path / "rescore.toml"
    config.write_text(RESCORE_CONFIG, encoding="utf-8")
    rescored = _replay("--config", str(config), str(path))
    assert rescored.returncode == 0, rescored.stderr.decode()
    assert set(_post_batches(influxdb, stored, rescored.stdout)) == {204}
    rows = influxdb.rows('SELECT count("usage_user") FROM "cpu"', stored)
    assert rows[0][1] == 6000  # same points overwritten, none added


# -- riverguard replay --influx-url ---------------------------------------------


def test_backfill_v1_writes_everything(influxdb: InfluxServer, recording) -> None:
    path, injected = recording
    influxdb.create_db("rg_backfill")
    started = time.monotonic()
    proc = _replay("--influx-url", influxdb.url, "--db", "rg_backfill", "--batch-size", "4000", str(path))
    elapsed = time.monotonic() - started
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert proc.stdout == b""
    assert "wrote 12000 metrics in 3 batch(es) to database 'rg_backfill'" in stderr
    print(f"\nreplay --influx-url: 12000 metrics in {elapsed:.2f}s ({12000 / elapsed:,.0f}/s end to end)")
    rows = influxdb.rows('SELECT count("usage_user_anomaly") FROM "cpu"', "rg_backfill")
    assert rows[0][1] == 6000
    rows = influxdb.rows('SELECT "usage_user" FROM "cpu" WHERE "usage_user_anomaly" = true AND "host" = \'h2\'', "rg_backfill")
    assert [r[0] for r in rows] == injected[("cpu", "h2", "usage_user")]
    # Backfilling the same file again: no conflict, nothing duplicated.
    proc = _replay("--influx-url", influxdb.url, "--db", "rg_backfill", str(path))
    assert proc.returncode == 0, proc.stderr.decode()
    assert influxdb.rows('SELECT count("usage_user") FROM "cpu"', "rg_backfill")[0][1] == 6000


RESCORE_INPUT = "".join(
    f"cpu,host=web1 usage_idle={v} {1_700_000_000_000_000_000 + i * 10 * 10**9}\n"
    for i, v in enumerate((97.2, 97.0, 97.3, 61.5))
)
EXPLAINED = """\
[output]
explain = true

[[rule]]
name = "cpu"
measurement = "cpu"
detector = "zscore"
warmup = 2
[rule.params]
min_std = 1.0
"""
# The same rule, without explanations, and so wide a spread that the dip at 61.5 is no longer flagged.
PLAIN = EXPLAINED.replace("[output]\nexplain = true\n\n", "").replace("min_std = 1.0", "min_std = 50.0")
EXPLANATION = ["usage_idle_anomaly_expected", "usage_idle_anomaly_lower", "usage_idle_anomaly_upper",
               "usage_idle_anomaly_reason"]


def _docs_statement(marker: str) -> str:
    """The code block after ``<!-- marker: ... -->`` in docs/influxdb.md."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "influxdb.md").read_text(encoding="utf-8")
    assert f"<!-- {marker}:" in text, f"docs/influxdb.md has no {marker} block"
    block = text.split(f"<!-- {marker}:", 1)[1].split("```", 2)[1]
    return block.split("\n", 1)[1].strip()


def test_rescoring_a_period_keeps_what_the_new_run_does_not_write(influxdb: InfluxServer, tmp_path: Path) -> None:
    """docs/influxdb.md, "Re-scoring a period": InfluxDB merges the fields of a point written again,
    so a backfill without explanations replaces the score and flag but leaves the first run's
    explanation (a stale reason on a point no longer flagged) until the period is deleted."""
    db = "rg_rescore"
    influxdb.create_db(db)
    (tmp_path / "in.lp").write_text(RESCORE_INPUT, encoding="utf-8")
    fields = ", ".join(f'"{f}"' for f in ["usage_idle_anomaly_score", "usage_idle_anomaly", *EXPLANATION])
    query = f'SELECT {fields} FROM "cpu" WHERE time = 1700000030000000000'

    def backfill(config: str) -> list:
        (tmp_path / "rg.toml").write_text(config, encoding="utf-8")
        proc = _replay("--config", str(tmp_path / "rg.toml"), "--influx-url", influxdb.url, "--db", db,
                       str(tmp_path / "in.lp"))
        assert proc.returncode == 0, proc.stderr.decode()
        return influxdb.rows(query, db)[0][1:]

    first = backfill(EXPLAINED)
    assert first[:2] == [1.0, True] and first[-1] == "dip"
    assert all(isinstance(x, float) for x in first[2:5])
    second = backfill(PLAIN)
    plain = _replay("--config", str(tmp_path / "rg.toml"), str(tmp_path / "in.lp")).stdout.splitlines()[-1]
    assert b"usage_idle_anomaly_score=%r,usage_idle_anomaly=false " % second[0] in plain
    assert second[1] is False  # the score and the flag are the new run's ...
    assert second[2:] == first[2:]  # ... the explanation is still the first run's, reason included
    statement = _docs_statement("rescore-delete")
    assert statement.startswith('DELETE FROM "cpu" WHERE')
    influxdb.query(statement, db)
    assert influxdb.rows('SELECT count("usage_idle") FROM "cpu"', db) == []  # whole points: the values too
    third = backfill(PLAIN)
    assert third == second[:2] + [None] * len(EXPLANATION)  # deleted, then backfilled: nothing stale
    assert influxdb.rows('SELECT count("usage_idle") FROM "cpu"', db)[0][1] == 4


def test_backfill_shows_influxdbs_message_on_4xx(influxdb: InfluxServer, recording) -> None:
    """A database the server does not have: InfluxDB's message, then what to fix (README, Exit codes: the
    E! line says whether to fix something given or run again). It said "to resume, run the same command
    with --skip-metrics 0", a resume that changes nothing, and not what to fix."""
    path, _ = recording
    args = ("--influx-url", influxdb.url, "--db", "rg_not_yet", str(path))
    proc = _replay(*args)
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert stderr.splitlines()[-2:] == [
        'E! [riverguard] InfluxDB refused the write to database \'rg_not_yet\' (HTTP 404): database not found: "rg_not_yet"',
        'E! [riverguard] backfill stopped at its first batch: create the database (InfluxQL: CREATE DATABASE'
        ' "rg_not_yet") or fix --db, then run the same command again',
    ]
    assert "retry" not in stderr and "--skip-metrics" not in stderr  # a 4xx is not retried; nothing to skip
    # Fixed as it says, the same command does the whole backfill.
    influxdb.create_db("rg_not_yet")
    again = _replay(*args)
    assert again.returncode == 0, again.stderr.decode()
    assert influxdb.rows('SELECT count("usage_user") FROM "cpu"', "rg_not_yet")[0][1] == 6000


# -- lines InfluxDB refuses but riverguard (as Telegraf) accepts ---------------------------------

T0 = 1_700_000_000_000_000_000
#: Each kind of line InfluxDB 1.x refuses alone, and a word of its reason (a tag key given twice, riverguard
#: refuses itself: test_a_tag_key_given_twice_is_refused_as_influxdb_refuses_it). `m` holds `v` as a float
#: already (stored before the backfill), so `v=1i` conflicts with it; a string field is not scored, so
#: `time="x"` stays the point's only field (beside other fields, 1.x drops a field named time silently).
REFUSED = [
    (b"m v=+1 %d", "invalid boolean"),
    (b'm time="x" %d', 'invalid field name: input field "time"'),
    (b"m v=1i %d", "field type conflict"),
]


def _with_bad_lines(tmp_path: Path, good: int = 60) -> Path:
    """``good`` cpu metrics (after a comment line) with each kind of refused line among them."""
    lines = [b"cpu,host=a idle=%d.5 %d" % (90 + i % 3, T0 + i * 10**9) for i in range(good)]
    for k, (template, _) in enumerate(REFUSED):
        lines.insert(7 + 13 * k, template % (T0 + k))
    path = tmp_path / "bad.lp"
    path.write_bytes(b"# recorded\n" + b"\n".join(lines) + b"\n")
    return path


def _metric_numbers(path: Path, prefix: bytes) -> list[int]:
    """The numbers (1-based, as --skip-metrics counts) of the metrics of replay's output starting with ``prefix``."""
    out = _replay(str(path)).stdout.splitlines()
    metrics = [line for line in out if line.strip() and not line.startswith(b"#")]
    return [i + 1 for i, line in enumerate(metrics) if line.startswith(prefix)]


def _refused_reports(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": InfluxDB refused it (HTTP " in line]


def _held(stderr: str) -> int:
    """Refusals the rate limit kept from stderr, as its W! lines count them."""
    return sum(int(line.split()[2]) for line in stderr.splitlines() if "InfluxDB refused w" in line and "not reported" in line)


@pytest.mark.parametrize("batch_size", ["5000", "7"])
def test_backfill_reports_each_refused_line_and_writes_every_other_one(
    influxdb: InfluxServer, tmp_path: Path, batch_size: str
) -> None:
    """One line InfluxDB refuses in a batch used to stop the backfill there (and its resume hit it again):
    now the batch is split until the refused lines are alone, each is reported once, the rest is written."""
    db = f"rg_refused_{batch_size}"
    influxdb.create_db(db)
    # so that v=1i conflicts with what is stored (1.x keeps field types per shard: a week, here T0's)
    assert influxdb.write(db, b"m v=1.0 %d\n" % (T0 - 10**9)).status == 204
    path = _with_bad_lines(tmp_path)
    proc = _replay("--influx-url", influxdb.url, "--db", db, "--batch-size", batch_size, str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert influxdb.rows('SELECT count("idle") FROM "cpu"', db)[0][1] == 60  # every good line
    assert influxdb.rows('SELECT count("idle_anomaly_score") FROM "cpu"', db)[0][1] == 60
    assert [row[0] for row in influxdb.rows('SELECT * FROM "m"', db)] == [T0 - 10**9]  # only the point stored before
    reports = _refused_reports(stderr)
    numbers = _metric_numbers(path, b"m")
    assert len(reports) == len(REFUSED) == len(numbers)
    for report, number, (template, reason) in zip(reports, numbers, REFUSED):
        assert report.startswith(f"E! [riverguard] metric {number}: InfluxDB refused it (HTTP 400): "), report
        assert reason in report, report
        assert f"; not written: {template.split(b' ')[0].decode()} " in report  # the line, after InfluxDB's reason
    summary = [line for line in stderr.splitlines() if "wrote 60 metrics" in line]
    assert len(summary) == 1 and summary[0].startswith("E! "), stderr
    assert f"InfluxDB refused {len(REFUSED)} metric(s), not written" in summary[0]
    assert "backfill stopped" not in stderr


def test_backfill_without_refusals_exits_0_and_says_nothing_of_them(influxdb: InfluxServer, tmp_path: Path) -> None:
    influxdb.create_db("rg_clean")
    path = tmp_path / "clean.lp"
    path.write_text("".join(f"cpu,host=a idle={90 + i % 3}.5 {T0 + i * 10**9}\n" for i in range(50)))
    proc = _replay("--influx-url", influxdb.url, "--db", "rg_clean", "--batch-size", "7", str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert "I! [riverguard] wrote 50 metrics in 8 batch(es) to database 'rg_clean'" in stderr
    assert "refused" not in stderr
    assert influxdb.rows('SELECT count("idle") FROM "cpu"', "rg_clean")[0][1] == 50


def test_a_small_batch_refused_whole_is_reported_and_the_backfill_goes_on(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    """Every metric of a batch refused (here every `m` point conflicts with the stored type), and no more than
    MAX_REFUSED_PER_BATCH of them: each is reported and the backfill goes on. (It stopped, and the resume it
    printed started at that batch again, so a short last batch of bad lines could never be got past.)"""
    db = "rg_systematic"
    influxdb.create_db(db)
    assert influxdb.write(db, b"m v=1i %d\n" % (T0 - 10**9)).status == 204  # an integer: every m v=<float> conflicts
    lines = [b"cpu,host=a idle=%d.5 %d" % (90 + i % 3, T0 + i * 10**9) for i in range(10)]
    lines[4] = b"cpu,host=a idle=+1 %d" % (T0 + 4 * 10**9)  # refused alone in batch 1 (metrics 1-10)
    lines += [b"m v=%d.5 %d" % (i, T0 + i * 10**9) for i in range(10)]  # batch 2 (metrics 11-20): all refused
    lines += [b"cpu,host=b idle=%d.5 %d" % (80 + i % 3, T0 + i * 10**9) for i in range(5)]  # batch 3
    path = tmp_path / "systematic.lp"
    path.write_bytes(b"\n".join(lines) + b"\n")
    proc = _replay("--influx-url", influxdb.url, "--db", db, "--batch-size", "10", str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert "backfill stopped" not in stderr and "every one of" not in stderr
    reports = _refused_reports(stderr)
    assert len(reports) + _held(stderr) == 1 + 10
    assert all("field type conflict" in line for line in reports[1:]), reports
    assert "wrote 14 metrics in 3 batch(es)" in stderr and "InfluxDB refused 11 metric(s)" in stderr
    assert influxdb.rows('SELECT count("idle") FROM "cpu"', db)[0][1] == 14
    assert influxdb.rows('SELECT count("v") FROM "m"', db)[0][1] == 1  # the integer stored before, alone


def test_backfill_stops_when_too_many_lines_of_a_batch_are_refused(influxdb: InfluxServer, tmp_path: Path) -> None:
    """Past MAX_REFUSED_PER_BATCH refused metrics in one batch the refusal is taken as systematic: the
    backfill stops after isolating that many (not one request per line of the batch)."""
    db = "rg_bound"
    influxdb.create_db(db)
    assert influxdb.write(db, b"m v=1i %d\n" % (T0 - 10**9)).status == 204
    path = tmp_path / "conflicts.lp"
    path.write_text("".join(f"m v={i}.5 {T0 + i * 10**9}\n" for i in range(MAX_REFUSED_PER_BATCH * 3)))
    proc = _replay("--influx-url", influxdb.url, "--db", db, str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    n = MAX_REFUSED_PER_BATCH * 3
    assert (
        f"E! [riverguard] InfluxDB refused more than {MAX_REFUSED_PER_BATCH} of the {n} metrics of the batch"
        f" of metrics 1-{n}" in stderr
    )
    assert stderr.splitlines()[-1] == (
        "E! [riverguard] backfill stopped at its first batch: fix this, then run the same command again"
    )
    assert len(_refused_reports(stderr)) + _held(stderr) == MAX_REFUSED_PER_BATCH + 1


def test_backfill_to_influxdb_1x_writes_unsigned_integers_as_signed(influxdb: InfluxServer, tmp_path: Path) -> None:
    """A newcomer's trial: Telegraf's ``mem`` metrics recorded with unsigned fields (``free=123u``), backfilled
    to InfluxDB 1.x, which has no unsigned type: every metric was refused ("invalid number") and past 100 the
    backfill stopped, suggesting "a field stored with another type". They are written as signed integers, as
    Telegraf's influxdb output does (influx_uint_support = false); one above the signed range is written as its
    most, as Telegraf does, with a warning. A string value ending in ``u`` and a tag stay as they are."""
    db = "rg_unsigned"
    influxdb.create_db(db)
    lines = [f'mem,host=a,id=7u free={8_000_000_000 + i % 5}u,used={2**40 + i}u,note="{i}u" {T0 + i * 10**9}\n'
             for i in range(300)]
    lines.append(f"mem,host=a,id=7u free=18446744073709551615u,used=1u {T0 + 300 * 10**9}\n")
    path = tmp_path / "mem.lp"
    path.write_text("".join(lines))
    proc = _replay("--influx-url", influxdb.url, "--db", db, str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert "refused" not in stderr, stderr
    assert (
        "W! [riverguard] 602 unsigned integer values (123u) written as signed (123i): InfluxDB 1.x has no unsigned"
        " type; Telegraf's influxdb output does the same (influx_uint_support = false); 1 of them above"
        " 9223372036854775807, written as 9223372036854775807i, as Telegraf does\n"
    ) in stderr, stderr
    types = dict(influxdb.rows("SHOW FIELD KEYS FROM mem", db))
    assert types["free"] == types["used"] == "integer" and types["note"] == "string", types
    rows = influxdb.rows('SELECT "free", "used", "note", "id" FROM "mem"', db)
    assert [row[1:] for row in rows[:2]] == [[8_000_000_000, 2**40, "0u", "7u"], [8_000_000_001, 2**40 + 1, "1u", "7u"]]
    assert rows[-1][1:3] == [2**63 - 1, 1] and len(rows) == 301
    # Within the signed range: told as information (nothing was cut).
    path.write_text("".join(lines[:3]))
    proc = _replay("--influx-url", influxdb.url, "--db", db, str(path))
    assert proc.returncode == 0 and "I! [riverguard] 6 unsigned integer values (123u) written as signed" in (
        proc.stderr.decode()), proc.stderr


def test_a_resumed_backfill_counts_only_the_unsigned_values_it_writes(influxdb: InfluxServer, tmp_path: Path) -> None:
    """``--skip-metrics 2`` (a backfill resumed) wrote 1 metric of 3 and said ``3 unsigned integer values ...
    written as signed``, with a W! for the value above the signed range in a metric it did not write."""
    db = "rg_unsigned_skip"
    influxdb.create_db(db)
    path = tmp_path / "mem.lp"
    path.write_text(f"mem,host=a free=18446744073709551615u {T0}\nmem,host=a free=6u,used=7u {T0 + 10**9}\n"
                    f"mem,host=a free=8u {T0 + 2 * 10**9}\n")
    proc = _replay("--influx-url", influxdb.url, "--db", db, "--skip-metrics", "2", str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert "I! [riverguard] 1 unsigned integer value (123u) written as signed (123i)" in stderr, stderr
    assert "W! " not in stderr, stderr
    assert [row[1] for row in influxdb.rows('SELECT "free" FROM "mem"', db)] == [8]


def test_a_backfill_refused_at_its_first_batch_says_no_unsigned_value_was_written(influxdb: InfluxServer,
                                                                                  tmp_path: Path) -> None:
    """A newcomer's first backfill of Telegraf's ``disk`` metrics, before ``CREATE DATABASE``: InfluxDB wrote
    nothing (404), yet riverguard said ``3 unsigned integer values (123u) written as signed (123i)``. Only the
    values of the batches InfluxDB answered for are counted: none here, so no such line."""
    path = tmp_path / "disk.lp"
    path.write_text(f"disk,host=a,path=/ free=5u,used=6u {T0}\ndisk,host=a,path=/ free=7u {T0 + 10**9}\n")
    proc = _replay("--influx-url", influxdb.url, "--db", "rg_not_created", "--batch-size", "1", str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert "backfill stopped at its first batch: create the database" in stderr, stderr
    assert "unsigned" not in stderr, stderr
    # Once the database exists, the same command says how many it wrote as signed.
    influxdb.create_db("rg_not_created")
    proc = _replay("--influx-url", influxdb.url, "--db", "rg_not_created", "--batch-size", "1", str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert "I! [riverguard] 3 unsigned integer values (123u) written as signed (123i)" in stderr, stderr


def test_backfill_to_influxdb_1x_writes_unsigned_as_signed_after_leading_spaces(influxdb: InfluxServer,
                                                                                tmp_path: Path) -> None:
    """A line indented with spaces (riverguard reads it and InfluxDB skips them, as tabs) kept its
    ``123u``: InfluxDB refused it (``invalid number``) while the same line unindented was written as ``123i``."""
    db = "rg_unsigned_lead"
    influxdb.create_db(db)
    path = tmp_path / "mem.lp"
    path.write_text("".join(f"{lead}mem,host=a free={i}u {T0 + i * 10**9}\n"
                            for i, lead in enumerate(["  ", " \t", "\t", ""])))
    proc = _replay("--influx-url", influxdb.url, "--db", db, str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 0 and "refused" not in stderr, stderr
    assert "I! [riverguard] 4 unsigned integer values (123u) written as signed (123i)" in stderr, stderr
    assert [row[1] for row in influxdb.rows('SELECT "free" FROM "mem"', db)] == [0, 1, 2, 3]


class _Scripted(QuietHandler):
    """Answers each POST with the next status of ``server.statuses`` (then 204)."""

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        status = self.server.statuses.pop(0) if self.server.statuses else 204  # type: ignore[attr-defined]
        self.answer(status, b'{"code":"unavailable","message":"try later"}' if status != 204 else b"")


@pytest.fixture
def scripted():
    with local_server(_Scripted, requests=[], statuses=[]) as server:
        yield server


def _small(tmp_path: Path, n: int = 10) -> Path:
    path = tmp_path / "small.lp"
    path.write_text("".join(f"cpu,host=a idle={90 + i % 3}.5 {1700000000000000000 + i}\n" for i in range(n)))
    return path


def test_backfill_retries_503_then_succeeds(scripted, tmp_path: Path) -> None:
    scripted.statuses = [503, 503]
    url = f"http://127.0.0.1:{scripted.server_address[1]}"
    proc = _replay("--influx-url", url, "--db", "x", str(_small(tmp_path)))
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert len(scripted.requests) == 3
    assert {body for _, _, body in scripted.requests} == {scripted.requests[0][2]}  # the same batch each time
    assert stderr.count("W! [riverguard] write to") == 2
    assert "HTTP 503: try later" in stderr
    assert "wrote 10 metrics in 1 batch(es)" in stderr


def test_backfill_v2_request(scripted, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{scripted.server_address[1]}/"
    proc = _replay(
        "--influx-url", url, "--bucket", "tele graf", "--org", "acme", "--token-env", "RG_TEST_TOKEN",
        "--batch-size", "4", str(_small(tmp_path)), env={"RG_TEST_TOKEN": "s3cret=="},
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert [len(body.splitlines()) for _, _, body in scripted.requests] == [4, 4, 2]
    path, headers, body = scripted.requests[0]
    assert path == "/api/v2/write?bucket=tele+graf&org=acme&precision=ns"
    assert headers["Authorization"] == "Token s3cret=="
    assert body.startswith(b"cpu,host=a idle=90.5,idle_anomaly_score=0.0,idle_anomaly=false 1700000000000000000\n")


class _RefusesWholeBatches(QuietHandler):
    """As InfluxDB 2.x may: a body holding a line with ``bad`` is refused whole (``server.status``) and
    nothing of it written; the lines of every other body are kept in ``server.written``."""

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests += 1  # type: ignore[attr-defined]
        if b"bad" in body:
            status = self.server.status  # type: ignore[attr-defined]
            self.answer(status, b'{"code":"invalid","message":"failure writing points: bad line"}')
        else:
            self.server.written.extend(body.splitlines())  # type: ignore[attr-defined]
            self.answer(204, b"")


def test_backfill_v2_refusing_a_whole_batch_loses_none_of_its_good_lines(tmp_path: Path) -> None:
    path = tmp_path / "v2.lp"
    path.write_text("".join(
        f"cpu,host={'bad' if i in (3, 17) else 'a'} idle={90 + i % 3}.5 {T0 + i}\n" for i in range(30)
    ))
    with local_server(_RefusesWholeBatches, requests=0, written=[], status=422) as server:
        proc = _replay(
            "--influx-url", server.url, "--bucket", "b", "--org", "o", "--token-env", "RG_TEST_TOKEN",
            "--batch-size", "20", str(path), env={"RG_TEST_TOKEN": "t"},
        )
        written, requests = server.written, server.requests
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert len(written) == len(set(written)) == 28  # every good line, once
    assert not any(b"host=bad" in line for line in written)
    assert [line.split(": InfluxDB")[0] for line in _refused_reports(stderr)] == [
        "E! [riverguard] metric 4", "E! [riverguard] metric 18"
    ]
    assert "(HTTP 422): failure writing points: bad line; not written: cpu,host=bad idle=" in stderr
    assert "wrote 28 metrics in 2 batch(es) to bucket 'b'" in stderr and "InfluxDB refused 2 metric(s)" in stderr
    assert requests > 2  # (how many is the splitting's business)


#: What a backfill stopped at its first batch says to fix, by HTTP status and the credentials given.
_NO_CREDENTIALS: tuple[str, ...] = ()
_BASIC = ("--username", "rg", "--password-env", "RG_TEST_PASSWORD")
_TOKEN = ("--token-env", "RG_TEST_TOKEN")
FIXES = [
    (401, _NO_CREDENTIALS,
     "InfluxDB asks for credentials: give --username and --password-env (1.x) or --token-env"),
    (401, _BASIC, "InfluxDB did not accept the credentials (--username rg --password-env RG_TEST_PASSWORD): fix them"),
    (401, _TOKEN, "InfluxDB did not accept the credentials (--token-env RG_TEST_TOKEN): fix them"),
    (403, _BASIC, "the credentials (--username rg --password-env RG_TEST_PASSWORD) may not write to database 'x':"
     " give them write access to it, or other credentials"),
    (404, _NO_CREDENTIALS, 'create the database (InfluxQL: CREATE DATABASE "x") or fix --db'),
    (413, _NO_CREDENTIALS, "the batch was too large for InfluxDB: give a smaller --batch-size (this one: 4)"),
]


@pytest.mark.parametrize(("status", "credentials", "fix"), FIXES, ids=[
    f"{status}-{'basic' if c is _BASIC else 'token' if c is _TOKEN else 'none'}" for status, c, _ in FIXES
])
def test_backfill_does_not_split_a_batch_refused_for_something_else_than_its_lines(
    scripted, tmp_path: Path, status: int, credentials: tuple[str, ...], fix: str
) -> None:
    """Bad credentials, no such database, too large a body: no line is at fault, the backfill stops at once,
    and says what to fix. Nothing acknowledged: no --skip-metrics 0 to resume with (it said so), the same
    command again."""
    scripted.statuses = [status]
    proc = _replay("--influx-url", scripted.url, "--db", "x", "--batch-size", "4", *credentials, str(_small(tmp_path)),
                   env={"RG_TEST_PASSWORD": "s3cret", "RG_TEST_TOKEN": "t0ken"})
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert len(scripted.requests) == 1
    assert f"(HTTP {status})" in stderr and "InfluxDB refused it" not in stderr
    assert stderr.splitlines()[-1] == f"E! [riverguard] backfill stopped at its first batch: {fix}, then run the same command again"
    assert "--skip-metrics" not in stderr and "s3cret" not in stderr and "t0ken" not in stderr


def _to_bucket(url: str, path: Path) -> tuple[int, str]:
    """A 2.x backfill of ``path`` to bucket telegraf of organization acme at ``url``: exit code and stderr."""
    proc = _replay("--influx-url", url, "--bucket", "telegraf", "--org", "acme", "--token-env", "RG_TEST_TOKEN",
                   str(path), env={"RG_TEST_TOKEN": "abc"})
    return proc.returncode, proc.stderr.decode()


def test_a_backfill_to_bucket_on_influxdb_1x_says_it_is_not_2x(influxdb: InfluxServer, tmp_path: Path) -> None:
    """--bucket/--org/--token-env against InfluxDB 1.6, which has no /api/v2/write: its plain-text 404 (`404 page
    not found`) was taken for 2.x's bucket not found, and the backfill said to create the bucket. It now says
    the server does not look like InfluxDB 2.x and to give --db for 1.x; fixed so, the same data is written."""
    path = _small(tmp_path)
    code, stderr = _to_bucket(influxdb.url, path)
    assert code == 1, stderr
    assert stderr.splitlines()[-2:] == [
        "E! [riverguard] InfluxDB refused the write to bucket 'telegraf' (HTTP 404): 404 page not found",
        f"E! [riverguard] backfill stopped at its first batch: {influxdb.url} does not look like InfluxDB 2.x (its"
        " 404 is not 2.x's JSON error): for InfluxDB 1.x give --db (and --username/--password-env) instead of"
        " --bucket, --org and --token-env, or fix --influx-url, then run the same command again",
    ]
    assert "create the bucket" not in stderr
    influxdb.create_db("rg_was_bucket")
    again = _replay("--influx-url", influxdb.url, "--db", "rg_was_bucket", str(path))
    assert again.returncode == 0, again.stderr.decode()
    assert influxdb.rows('SELECT count("idle") FROM "cpu"', "rg_was_bucket")[0][1] == 10


class _NoBucket(QuietHandler):
    """InfluxDB 2.x's answer to a write to a bucket it does not have (a stand-in: no 2.x server here)."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.answer(404, b'{"code":"not found","message":"bucket \\"telegraf\\" not found"}')


def test_a_backfill_to_a_bucket_influxdb_2x_does_not_have_says_to_create_it(tmp_path: Path) -> None:
    """2.x's own JSON 404 keeps the bucket advice (the plain-text 404 above does not get it)."""
    with local_server(_NoBucket) as server:
        code, stderr = _to_bucket(server.url, _small(tmp_path))
    assert code == 1, stderr
    assert stderr.splitlines()[-2:] == [
        "E! [riverguard] InfluxDB refused the write to bucket 'telegraf' (HTTP 404): bucket \"telegraf\" not found",
        "E! [riverguard] backfill stopped at its first batch: create the bucket 'telegraf' in organization 'acme',"
        " or fix --bucket or --org, then run the same command again",
    ]


def test_a_backfill_stopped_after_some_batches_says_what_to_fix_and_where_to_resume(scripted, tmp_path: Path) -> None:
    """Some batches acknowledged, then a 404 (the database dropped meanwhile): the fix, and the resume."""
    scripted.statuses = [204, 204, 404]
    proc = _replay("--influx-url", scripted.url, "--db", "x", "--batch-size", "4", str(_small(tmp_path)))
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert stderr.splitlines()[-1] == (
        'E! [riverguard] backfill stopped: 8 metrics acknowledged by InfluxDB; create the database (InfluxQL: CREATE'
        ' DATABASE "x") or fix --db; to resume, run the same command with --skip-metrics 8'
    )
    # Resumed with a --skip-metrics of its own, and stopped again before any batch: the same command again.
    scripted.statuses = [404]
    proc = _replay("--influx-url", scripted.url, "--db", "x", "--batch-size", "4", "--skip-metrics", "8",
                   str(_small(tmp_path)))
    assert proc.stderr.decode().splitlines()[-1] == (
        "E! [riverguard] backfill stopped at its first batch (after the 8 metrics skipped with --skip-metrics):"
        ' create the database (InfluxQL: CREATE DATABASE "x") or fix --db, then run the same command again'
    )


def test_a_backfill_that_could_not_reach_influxdb_says_to_run_it_again(tmp_path: Path) -> None:
    """Nothing to fix in what was given (the server is down, or answered 5xx until the retries ran out)."""
    proc = _replay("--influx-url", f"http://127.0.0.1:{free_port()}", "--db", "x", "--retries", "0", str(_small(tmp_path)))
    assert proc.returncode == 1
    assert proc.stderr.decode().splitlines()[-1] == (
        "E! [riverguard] backfill stopped at its first batch: run the same command again"
    )


def test_backfill_gives_up_after_bounded_retries(scripted, tmp_path: Path) -> None:
    scripted.statuses = [500] * 10
    url = f"http://127.0.0.1:{scripted.server_address[1]}"
    proc = _replay("--influx-url", url, "--db", "x", "--retries", "1", str(_small(tmp_path)))
    assert proc.returncode == 1
    assert len(scripted.requests) == 2
    assert "giving up after 2 attempt(s): HTTP 500: try later" in proc.stderr.decode()


def test_backfill_connection_refused(tmp_path: Path) -> None:
    proc = _replay("--influx-url", f"http://127.0.0.1:{free_port()}", "--db", "x", "--retries", "0", str(_small(tmp_path)))
    assert proc.returncode == 1
    assert "cannot connect" in proc.stderr.decode()


class _AnswersThenCloses(QuietHandler):
    """For each POST it reads the head (and, with ``server.read_body``, the body), sends
    ``server.reply`` byte for byte and closes the connection. Without ``read_body`` it closes with
    the body unread, as InfluxDB does after a 401 or 404: the client's send then fails with a broken
    pipe or a reset."""

    def do_POST(self) -> None:  # noqa: N802
        if self.server.read_body:  # type: ignore[attr-defined]
            self.rfile.read(int(self.headers["Content-Length"]))
        self.wfile.write(self.server.reply)  # type: ignore[attr-defined]
        self.close_connection = True


def _large(tmp_path: Path) -> Path:
    """4 000 metrics with a 4 KiB string field: one 16 MiB write, more than the loopback's socket buffers hold."""
    path = tmp_path / "large.lp"
    note = "x" * 4096
    path.write_text("".join(f'big,host=a v={i % 7}.5,note="{note}" {1700000000000000000 + i}\n' for i in range(4000)))
    return path


@pytest.mark.parametrize(
    ("answer", "read_body", "message"),
    [
        # the server answers 401 and closes before reading the body; its answer's own body never comes
        (b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 100\r\n\r\n", False,
         "E! [riverguard] InfluxDB refused the write to database 'x' (HTTP 401): Unauthorized"),
        # it reads the body, answers 400 and closes halfway through its message: what came is said (a 400
        # refuses lines: the batch is split, each line refused alone is reported, until too many are)
        (b'HTTP/1.1 400 Bad Request\r\nContent-Length: 100\r\n\r\n{"error":"partial write: type conflict', True,
         'E! [riverguard] metric 1: InfluxDB refused it (HTTP 400): {"error":"partial write: type conflict;'
         ' not written: big,host=a v=0.5,note="xxx'),
    ],
)
def test_backfill_says_what_influxdb_answered_before_the_connection_broke(
    tmp_path: Path, answer: bytes, read_body: bool, message: str
) -> None:
    path = _large(tmp_path)
    with local_server(_AnswersThenCloses, reply=answer, read_body=read_body) as server:
        proc = _replay("--influx-url", server.url, "--db", "x", "--retries", "2", str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert any(line.startswith(message) for line in stderr.splitlines()), stderr
    assert "retry" not in stderr and "connection error" not in stderr  # a 4xx answered is not retried


def test_backfill_says_the_send_error_when_the_server_closed_without_answering(tmp_path: Path) -> None:
    with local_server(_AnswersThenCloses, reply=b"", read_body=False) as server:
        proc = _replay("--influx-url", server.url, "--db", "x", "--retries", "0", str(_large(tmp_path)))
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    sent = ("BrokenPipeError(32, 'Broken pipe')", "ConnectionResetError(104, 'Connection reset by peer')")
    assert any(f"giving up after 1 attempt(s): connection error: {e}" in stderr for e in sent), stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--db", "a", "--bucket", "b"], "exactly one of --db"),
        (["--bucket", "b", "--org", "o"], "--bucket needs --token-env"),
        (["--bucket", "b", "--org", "o", "--token-env", "RG_UNSET_VAR_XYZ"], "RG_UNSET_VAR_XYZ"),
        (["--db", "a", "--output", "x.lp"], "exclude each other"),
    ],
)
def test_backfill_option_errors(args: list[str], message: str, tmp_path: Path) -> None:
    proc = _replay("--influx-url", "http://127.0.0.1:1", *args, str(_small(tmp_path)))
    assert proc.returncode == 2
    assert message in proc.stderr.decode()


def test_backfill_says_when_skip_metrics_passes_the_end(influxdb: InfluxServer, tmp_path: Path) -> None:
    """`--skip-metrics 100000` on a 2-metric file sent nothing and exited 0 without a word."""
    db = "rg_skip_past_end"
    influxdb.create_db(db)
    path = tmp_path / "two.lp"
    path.write_bytes(b"# recorded\ncpu,host=a idle=90.5 %d\ncpu,host=a idle=91.5 %d\n" % (T0, T0 + 10**9))
    proc = _replay("--influx-url", influxdb.url, "--db", db, "--skip-metrics", "100000", str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert stderr.splitlines()[-1] == (
        f"W! [riverguard] --skip-metrics 100000 is more than the 2 metrics replayed: nothing was sent to"
        f" database '{db}' at {influxdb.url}"
    )
    assert influxdb.query("SHOW MEASUREMENTS", db).get("series") is None  # nothing written
    # Exactly as many as there are (a backfill resumed after its last batch): nothing to say.
    proc = _replay("--influx-url", influxdb.url, "--db", db, "--skip-metrics", "2", str(path))
    assert proc.returncode == 0 and b"W! " not in proc.stderr, proc.stderr.decode()
    # Fewer: the rest is written, as before.
    proc = _replay("--influx-url", influxdb.url, "--db", db, "--skip-metrics", "1", str(path))
    assert proc.returncode == 0 and b"W! " not in proc.stderr, proc.stderr.decode()
    assert influxdb.rows('SELECT count("idle") FROM "cpu"', db)[0][1] == 1
