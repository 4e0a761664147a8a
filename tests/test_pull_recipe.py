"""The task → Telegraf → riverguard → InfluxDB recipe, checked as far as it can be without Telegraf.

No Telegraf and no InfluxDB 2.x here: the Telegraf config is parsed and
cross-checked against the task's Flux; the Flux's line-protocol expression is
evaluated on sample rows (translated to Python, piece by piece, so a change to
it in docs/influxdb.md is what gets evaluated); the lines it makes go to a real
InfluxDB 1.x (the same line-protocol grammar as Telegraf's ``influx`` data
format) and through ``riverguard run``, and the scores, filtered as the
output's ``fieldinclude`` says, are written back to the stored points.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import subprocess
import tomllib
import urllib.parse
from pathlib import Path

import pytest

from conftest import RIVERGUARD

from riverguard.config import default_config
from riverguard.lineprotocol import parse, raw_fields

try:
    from tests.influx import InfluxServer, influxdb  # noqa: F401  (fixture)
except ImportError:  # tests/ itself on sys.path (rootdir-less import mode)
    from influx import InfluxServer, influxdb  # type: ignore[no-redef]  # noqa: F401

#: The recipe lives in docs/influxdb.md ("The other route"), linked from the README.
RECIPE = (Path(__file__).resolve().parents[1] / "docs" / "influxdb.md").read_text(encoding="utf-8")


def _block(marker: str, lang: str) -> str:
    match = re.search(rf"<!-- {marker}:.*?-->\n```{lang}\n(.*?)```", RECIPE, re.S)
    assert match, f"docs/influxdb.md lost its {marker} block"
    return match.group(1)


TELEGRAF = tomllib.loads(_block("pull-recipe-telegraf", "toml"))
FLUX = _block("pull-recipe-flux", "flux")
POSTED = _block("pull-recipe-posted", "")


def _flux_measurements() -> list[str]:
    return re.findall(r'r\._measurement == "([^"]+)"', FLUX)


def test_telegraf_config_matches_the_task() -> None:
    assert TELEGRAF["agent"]["omit_hostname"] is True  # Telegraf must not add or change the host tag
    (listener,) = TELEGRAF["inputs"]["http_listener_v2"]
    assert listener["data_format"] == "influx"
    assert "POST" in listener["methods"]
    # The task posts to the listener's address and path.
    (url,) = re.findall(r'url: "([^"]+)"', FLUX)
    parts = urllib.parse.urlsplit(url)
    assert parts.netloc == listener["service_address"]
    assert parts.path in listener["paths"]
    assert 'headers: {"Content-Type": "text/plain; charset=utf-8"}' in FLUX
    # Only the task's measurements go through riverguard and out again.
    (execd,) = TELEGRAF["processors"]["execd"]
    (output,) = TELEGRAF["outputs"]["influxdb_v2"]
    assert execd["namepass"] == output["namepass"] == _flux_measurements() == ["cpu"]
    assert execd["command"][0].endswith("/bin/riverguard") and execd["command"][1] == "run"
    assert "--state" in execd["command"]
    # The scores go back to the bucket the task reads, and only the scores.
    assert re.findall(r'from\(bucket: "([^"]+)"\)', FLUX) == [output["bucket"]]
    out = default_config().output
    assert output["fieldinclude"] == [f"*{out.score_suffix}", f"*{out.flag_suffix}"]
    assert "option task = {" in FLUX and "range(start: -task.every)" in FLUX


def _escape_function():  # type: ignore[no-untyped-def]
    """The task's ``esc`` as Python: its replaceAll calls, innermost (first written) first."""
    (definition,) = [line for line in FLUX.splitlines() if line.startswith("esc = ")]
    pairs = [(ast.literal_eval(t), ast.literal_eval(u)) for t, u in re.findall(r't: ("[^"]*"), u: ("(?:[^"\\]|\\.)*")', definition)]
    assert len(pairs) == 3

    def esc(v: str) -> str:
        for t, u in pairs:
            v = v.replace(t, u)
        return v

    return esc


def _flux_lines(rows: list[dict]) -> list[str]:
    """The body the task posts for each row: its ``data: bytes(v: ...)`` expression, evaluated."""
    match = re.search(r"data: bytes\(v: (.*)\),\n", FLUX)
    assert match
    expr = match.group(1)
    expr = expr.replace("string(v: uint(v: r._time))", "str(r['_time'])")
    expr = expr.replace("string(v: r._value)", "repr(r['_value'])")  # Flux prints a float in full
    expr = re.sub(r"esc\(v: ", "esc(", expr)
    expr = re.sub(r"\br\.(\w+)", r"r['\1']", expr)
    code = compile(expr, "<flux>", "eval")
    esc = _escape_function()
    return [eval(code, {"esc": esc, "str": str, "repr": repr}, {"r": r}) for r in rows]  # noqa: S307


ROWS = [
    {"_measurement": "cpu", "cpu": "cpu-total", "host": "web 1", "_field": field, "_value": value, "_time": 1700000000000000000}
    for field, value in (("usage_user", 12.5), ("usage_system", 3.25), ("usage_idle", 84.25))
] + [
    {"_measurement": "cpu", "cpu": "cpu-total", "host": "db,2=x", "_field": "usage_user", "_value": 0.1, "_time": 1700000000000000001},
]


def test_the_tasks_lines_are_the_posted_example_and_line_protocol() -> None:
    lines = _flux_lines(ROWS)
    assert "".join(lines[:3]) == POSTED
    assert lines[3] == "cpu,cpu=cpu-total,host=db\\,2\\=x usage_user=0.1 1700000000000000001\n"
    for line in lines:
        metric = parse(line.rstrip("\n").encode())
        assert len(metric.fields) == 1 and metric.fields[0].kind == "f"


@pytest.mark.influxdb
def test_recipe_adds_the_scores_to_the_stored_points(influxdb: InfluxServer, tmp_path: Path) -> None:
    db = "rg_recipe"
    influxdb.create_db(db)
    rows = [
        {"_measurement": "cpu", "cpu": "cpu-total", "host": "web 1", "_field": "usage_user",
         "_value": 20.0 + (i % 7) * 0.25 + (60.0 if i == 260 else 0.0), "_time": 1700000000000000000 + i * 10**10}
        for i in range(300)
    ]
    lines = _flux_lines(rows)
    stored = "".join(lines).encode()
    assert influxdb.write(db, stored).status == 204  # the points the task reads, and what the listener accepts
    # Telegraf: listener -> execd riverguard run -> output with fieldinclude.
    (execd,) = TELEGRAF["processors"]["execd"]
    command = [*RIVERGUARD, *execd["command"][1:]]
    command[command.index("--config") + 1] = str(tmp_path / "riverguard.toml")
    command[command.index("--state") + 1] = str(tmp_path / "task.msgpack")
    (tmp_path / "riverguard.toml").write_text('[[rule]]\nname = "all"\n', encoding="utf-8")
    proc = subprocess.run(command, input=stored, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (output,) = TELEGRAF["outputs"]["influxdb_v2"]
    kept = []
    for line in proc.stdout.splitlines():
        head, fields, ts = raw_fields(line)
        keep = [k + b"=" + v for k, v in fields.items() if any(fnmatch.fnmatchcase(k.decode(), g) for g in output["fieldinclude"])]
        assert keep, line
        kept.append(head + b" " + b",".join(keep) + b" %d" % ts)
    assert influxdb.write(db, b"\n".join(kept) + b"\n").status == 204
    rows_back = influxdb.rows('SELECT "usage_user", "usage_user_anomaly_score", "usage_user_anomaly" FROM "cpu"', db)
    assert [r[1] for r in rows_back] == [r["_value"] for r in rows]  # values untouched
    assert all(r[2] is not None for r in rows_back)
    flagged = [r[0] for r in rows_back if r[3]]
    assert 1700000000000000000 + 260 * 10**10 in flagged
