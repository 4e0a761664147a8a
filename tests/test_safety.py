"""Operator safety: ordinary mistakes lose no data and no models (issue 15).

Every test drives the real ``riverguard`` process through pipes and real
files; the backfill tests write to a real InfluxDB (tests/influx.py).
"""

from __future__ import annotations

import http.server
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

try:
    from tests.conftest import (RIVERGUARD, Proc, as_nobody, passed_through, readme_example, run_cli, strip_added,
                                wait_until)
    from tests.influx import (InfluxServer, QuietHandler, held_writes, influxdb,  # noqa: F401  (fixture)
                              local_server, stopped_while_held)
except ImportError:  # tests/ itself on sys.path (rootdir-less import mode)
    from conftest import (RIVERGUARD, Proc, as_nobody, passed_through, readme_example,  # type: ignore[no-redef]
                          run_cli, strip_added, wait_until)
    from influx import (InfluxServer, QuietHandler, held_writes, influxdb,  # type: ignore[no-redef]  # noqa: F401
                        local_server, stopped_while_held)

T0 = 1_700_000_000_000_000_000
STEP = 10_000_000_000


def stream(samples: int, hosts: int = 2, seed: int = 1, start: int = 0) -> bytes:
    rng = random.Random(seed)
    lines = []
    for i in range(start, start + samples):
        for h in range(hosts):
            lines.append(f"cpu,host=h{h} usage_idle={80.0 + rng.gauss(0.0, 2.0):.3f} {T0 + i * STEP}")
    return ("\n".join(lines) + "\n").encode()


def config(folder: Path, text: str = "", name: str = "riverguard.toml") -> Path:
    path = folder / name
    path.write_text(text + '\n[[rule]]\nname = "all"\n')
    return path


# -- 1. replay never destroys its input or an old output -------------------------------


def test_replay_refuses_an_output_that_is_one_of_its_inputs(tmp_path: Path) -> None:
    data = stream(50)
    source = tmp_path / "same.lp"
    source.write_bytes(data)
    os.link(source, tmp_path / "alias.lp")  # another name, the same file (compared by inode)
    for output in ("same.lp", "alias.lp", "./same.lp"):
        proc = run_cli(["replay", "-o", output, "same.lp"], cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert f"--output {output} is the input file same.lp".encode() in proc.stderr
        assert b"Traceback" not in proc.stderr
        assert source.read_bytes() == data


#: Two options naming one file (as given, in a folder holding rg.toml (a config), rec.lp (a recording),
#: s.msgpack (a checkpoint), old.html (an earlier report), self.toml (a config whose [state] path is itself),
#: folder/riverguard.msgpack (a checkpoint) and link.toml (a symlink to rg.toml)); the E! line's start, then
#: what follows it.
SAME_FILE = [
    (["run", "--config", "rg.toml", "--state", "rg.toml"], "--state rg.toml is the --config file rg.toml"),
    (["run", "--config", "rg.toml", "--state", "./rg.toml"], "--state ./rg.toml is the --config file rg.toml"),
    (["run", "--config", "rg.toml", "--state", "link.toml"], "--state link.toml is the --config file rg.toml"),
    (["run", "--config", "self.toml"], "self.toml: [state], key 'path': 'self.toml' is this config file"),
    (["check-config", "self.toml"], "self.toml: [state], key 'path': 'self.toml' is this config file"),
    (["replay", "--state", "rec.lp", "rec.lp"], "--state rec.lp is the input file rec.lp"),
    (["replay", "--report", "old.html", "-o", "old.html", "rec.lp"], "--report old.html is the --output file old.html"),
    (["replay", "--report", "new.html", "-o", "./new.html", "rec.lp"], "--report new.html is the --output file ./new.html"),
    (["replay", "--state", "s.msgpack", "-o", "s.msgpack", "rec.lp"], "--output s.msgpack is the --state checkpoint s.msgpack"),
    (["replay", "--state", "new.st", "--report", "new.st", "rec.lp"], "--report new.st is the --state checkpoint new.st"),
    (["replay", "--state", "s.msgpack", "--report", "s.msgpack", "rec.lp"], "--report s.msgpack is the --state checkpoint"),
    (["replay", "--state", "folder", "-o", "folder/riverguard.msgpack", "rec.lp"],
     "--output folder/riverguard.msgpack is the --state checkpoint folder ("),
    (["replay", "--config", "rg.toml", "--state", "rg.toml", "rec.lp"], "--state rg.toml is the --config file rg.toml"),
    (["replay", "--config", "rg.toml", "rg.toml"], "input file rg.toml is the --config file rg.toml"),
    (["pull", "--config", "rg.toml", "--state", "link.toml", "--influx-url", "http://127.0.0.1:9", "--db", "x",
      "-m", "cpu"], "--state link.toml is the --config file rg.toml"),
]


@pytest.mark.parametrize("args, message", SAME_FILE, ids=[" ".join(a[:6]) for a, _ in SAME_FILE])
def test_two_options_naming_one_file_are_refused_and_it_is_left_as_it_was(tmp_path: Path, args: list[str],
                                                                           message: str) -> None:
    """--state naming the config renamed it aside as a corrupt checkpoint and wrote a checkpoint in its place
    (exit 0; Telegraf's next start failed on it, a restart loop); naming a replay input, it renamed the input
    away, then failed with a traceback; --output, --report and --state naming one file wrote one over the
    other. Now any two of --config, the checkpoint, an input, --output and --report that are one file (a
    symlink, a ./ variant, the file in a --state folder) exit 2 with one E! line naming both, and no file
    is renamed, created or written; but run, which passes every metric through unscored (exit 0 at EOF)
    after that line: exiting lost them under Telegraf's execd, and restarted into the same refusal."""
    (tmp_path / "rg.toml").write_text('[[rule]]\nname = "all"\n')
    (tmp_path / "self.toml").write_text('[state]\npath = "self.toml"\n\n[[rule]]\nname = "all"\n')
    (tmp_path / "rec.lp").write_bytes(stream(50))
    (tmp_path / "old.html").write_text("<html>an earlier report</html>\n")
    (tmp_path / "link.toml").symlink_to("rg.toml")
    (tmp_path / "folder").mkdir()
    for state in (tmp_path / "s.msgpack", tmp_path / "folder"):
        made = run_cli(["run", "--state", str(state)], input=stream(300))
        assert made.returncode == 0, made.stderr
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    result = run_cli(args, cwd=tmp_path, input=stream(5, start=300), text=False)
    # (run passes the metrics through, the file left all the same; a config check-config refuses: tests/test_cli.py)
    refused = args == ["run", "--config", "self.toml"]
    assert (result.returncode, result.stdout) == ((0, stream(5, start=300)) if args[0] == "run" else (2, b"")), \
        result.stderr
    assert b"Traceback" not in result.stderr
    errors = [line.decode() for line in result.stderr.splitlines() if line.startswith(b"E! ")]
    assert len(errors) == 1 + refused and errors[0].startswith("E! [riverguard] " + message), result.stderr
    if args[0] == "run" and not refused:
        assert result.stderr == passed_through(f"E! [riverguard] {message}: refusing to overwrite what is being read"
                                               .encode(), 10)
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == before


def test_an_interrupted_replay_leaves_the_old_output_in_place(tmp_path: Path) -> None:
    old = b"cpu v=1 1\n"
    out = tmp_path / "out.lp"
    out.write_bytes(old)
    proc = subprocess.Popen(
        [*RIVERGUARD, "replay", "-o", str(out), "-"], stdin=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    try:
        proc.stdin.write(stream(2000))
        proc.stdin.flush()
        # Writing has begun (a temporary file beside the output, or, before the fix, the output itself).
        assert wait_until(lambda: out.read_bytes() != old or any(tmp_path.glob(".out.lp.tmp-*")), 60)
        proc.send_signal(signal.SIGTERM)  # as a supervisor stops it
        proc.wait(30)
    finally:
        proc.kill()
        proc.stdin.close()
        proc.stderr.close()
    assert proc.returncode != 0
    assert out.read_bytes() == old
    assert not list(tmp_path.glob(".out.lp.tmp-*"))


# -- 2. a state folder is used, never renamed or replaced ------------------------------


def test_state_folder_holds_the_checkpoint_and_stays_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    first = run_cli(["run", "--state", str(folder)], input=stream(300))
    assert first.returncode == 0, first.stderr
    assert folder.is_dir() and (folder / "notes.txt").read_text() == "mine\n"
    assert (folder / "riverguard.msgpack").is_file()
    assert not list(tmp_path.glob("state.corrupt-*"))
    second = run_cli(["run", "--state", str(folder)], input=stream(10, start=300))
    assert second.returncode == 0, second.stderr
    assert b"restored 2 series from " + str(folder / "riverguard.msgpack").encode() in second.stderr
    inspect = run_cli(["state", "inspect", str(folder)])
    assert inspect.returncode == 0 and b'"series": 2' in inspect.stdout


# -- 3. replay leaves the live checkpoint of the config alone --------------------------


def test_replay_with_a_production_config_leaves_its_checkpoint_alone(tmp_path: Path) -> None:
    prod = config(tmp_path, '[state]\npath = "live.msgpack"\n', "prod.toml")
    live = tmp_path / "live.msgpack"
    assert run_cli(["run", "--config", str(prod)], input=stream(300)).returncode == 0
    before = live.read_bytes()
    test_lp = tmp_path / "test.lp"
    test_lp.write_bytes(stream(300, seed=7))
    replayed = run_cli(["replay", "--config", str(prod), str(test_lp)])
    assert replayed.returncode == 0, replayed.stderr
    assert live.read_bytes() == before  # the running Telegraf's models, untouched
    fresh = run_cli(["replay", "--config", str(config(tmp_path, "", "plain.toml")), str(test_lp)])
    assert replayed.stdout == fresh.stdout  # and not used either: replay starts from nothing
    assert b"give --state to use one" in replayed.stderr
    # --state on the command line still restores and saves.
    own = tmp_path / "own.msgpack"
    assert run_cli(["replay", "--config", str(prod), "--state", str(own), str(test_lp)]).returncode == 0
    assert own.is_file() and live.read_bytes() == before


# -- 4. one process per checkpoint -----------------------------------------------------


def test_replay_on_a_state_in_use_waits_then_exits_2_naming_the_holder(tmp_path: Path, start) -> None:
    """A one-shot command fails loudly (a second ``run`` passes its metrics through: tests/test_state.py)."""
    state = tmp_path / "rg.msgpack"
    holder = start("run", "--state", str(state))
    holder.ready()
    recording = tmp_path / "in.lp"
    recording.write_bytes(stream(10))
    started = time.monotonic()
    second = run_cli(["replay", "--state", str(state), str(recording)], timeout=60)
    waited = time.monotonic() - started
    assert second.returncode == 2, second.stderr
    assert f"in use by another riverguard (PID {holder.popen.pid}".encode() in second.stderr
    assert second.stdout == b""  # it scored nothing with a copy of the models
    assert waited >= 10
    holder.close_stdin()
    assert holder.wait(30) == 0


def test_a_restart_overlapping_the_old_process_gets_its_models(tmp_path: Path, start) -> None:
    state = tmp_path / "rg.msgpack"
    old = start("run", "--state", str(state))
    old.ready()
    old.write(stream(300))
    assert old.wait_lines(600, 60)
    new = start("run", "--state", str(state))
    more = stream(20, seed=3, start=300)
    new.write(more)  # (it takes the lock at its first metric) sent while it waits: scored once it has the models
    assert new.wait_stderr(lambda e: b"is in use by PID" in e, 30), new.stderr
    old.close_stdin()  # the old one checkpoints and exits; the new one then takes over
    assert old.wait(30) == 0
    assert new.wait_stderr(lambda e: b"restored 2 series" in e, 30), new.stderr
    new.close_stdin()
    assert new.wait(30) == 0
    whole = run_cli(["run"], input=stream(300) + more)
    assert new.stdout == b"".join(whole.stdout.splitlines(keepends=True)[600:])


# -- 5. backfill sends only line protocol and can be resumed ---------------------------


def _backfill(url: str, db: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run_cli(["replay", "--influx-url", url, "--db", db, *args], timeout=120)


def test_backfill_skips_unparsable_lines_and_writes_the_rest(influxdb: InfluxServer, tmp_path: Path) -> None:
    lines = stream(100).splitlines(keepends=True)
    lines.insert(50, b"cpu,host=h0 usage_idle=not-a-number 1\n")
    lines.insert(120, b"this is not line protocol\n")
    path = tmp_path / "mixed.lp"
    path.write_bytes(b"".join(lines))
    influxdb.create_db("rg_mixed")
    proc = _backfill(influxdb.url, "rg_mixed", "--batch-size", "1000", str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert "metrics: 202 (2 unparsable, not sent to InfluxDB)" in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("E! ")]
    assert [e.split(" not line protocol")[0] for e in errors] == [f"E! [riverguard] {path}:51:", f"E! [riverguard] {path}:121:"]
    assert all("; not sent to InfluxDB: " in e for e in errors), errors
    assert "wrote 200 metrics in 1 batch(es)" in stderr
    assert influxdb.rows('SELECT count("usage_idle") FROM "cpu"', "rg_mixed")[0][1] == 200


def test_backfill_of_a_recording_with_crlf_line_endings_writes_every_metric(influxdb: InfluxServer,
                                                                             tmp_path: Path) -> None:
    # riverguard reads a line ending in CRLF (and writes the CR back on stdout), but InfluxDB 1.x refuses
    # such a line ("bad timestamp"): the backfill of a recording saved with Windows line endings wrote
    # nothing and stopped, exit 1.
    data = stream(60).replace(b"\n", b"\r\n") + b'cpu,host=h0 note="two\r\nlines",usage_idle=80 ' + b"%d\r\n" % (T0 + 60 * STEP)
    path = tmp_path / "windows.lp"
    path.write_bytes(data)
    influxdb.create_db("rg_crlf")
    proc = _backfill(influxdb.url, "rg_crlf", str(path))
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert "metrics: 121 (0 unparsable" in stderr and "wrote 121 metrics in 1 batch(es)" in stderr
    assert influxdb.rows('SELECT count("usage_idle_anomaly_score") FROM "cpu"', "rg_crlf")[0][1] == 121
    assert influxdb.rows('SELECT "note" FROM "cpu" WHERE "note" != \'\'', "rg_crlf")[0][1] == "two\r\nlines"
    # the output file keeps the line endings as they came
    proc = run_cli(["replay", "-o", str(tmp_path / "out.lp"), str(path)])
    assert proc.returncode == 0 and strip_added((tmp_path / "out.lp").read_bytes()) == data


class _Proxy(http.server.BaseHTTPRequestHandler):
    """Forwards the first ``server.allow`` writes to InfluxDB, then answers 503."""

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        if server.allow > 0:  # type: ignore[attr-defined]
            server.allow -= 1  # type: ignore[attr-defined]
            req = urllib.request.Request(server.target + self.path, data=body, method="POST")  # type: ignore[attr-defined]
            with urllib.request.urlopen(req, timeout=30) as resp:
                status = resp.status
        else:
            status = 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_stopped_backfill_says_how_to_resume_and_resuming_completes_it(influxdb: InfluxServer, tmp_path: Path) -> None:
    path = tmp_path / "rec.lp"
    path.write_bytes(b"# recorded\n" + stream(300))  # 600 metrics
    influxdb.create_db("rg_whole")
    influxdb.create_db("rg_resumed")
    assert _backfill(influxdb.url, "rg_whole", "--batch-size", "100", str(path)).returncode == 0
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    proxy.allow, proxy.target = 2, influxdb.url  # type: ignore[attr-defined]
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        stopped = _backfill(url, "rg_resumed", "--batch-size", "100", "--retries", "0", str(path))
    finally:
        proxy.shutdown()
        proxy.server_close()
    stderr = stopped.stderr.decode()
    assert stopped.returncode == 1, stderr
    assert "200 metrics acknowledged by InfluxDB; to resume, run the same command with --skip-metrics 200" in stderr
    resumed = _backfill(influxdb.url, "rg_resumed", "--batch-size", "100", "--skip-metrics", "200", str(path))
    assert resumed.returncode == 0, resumed.stderr
    assert "wrote 400 metrics" in resumed.stderr.decode()
    query = 'SELECT "usage_idle", "usage_idle_anomaly_score", "usage_idle_anomaly" FROM "cpu" GROUP BY "host"'
    whole = influxdb.query(query, "rg_whole")
    assert len([v for s in whole["series"] for v in s["values"]]) == 600
    assert influxdb.query(query, "rg_resumed") == whole  # the same points, the same scores


@pytest.mark.parametrize("with_state", [False, True], ids=["no-state", "state"])
def test_a_backfill_stopped_by_sigterm_gives_the_skip_metrics_that_resumes_it(influxdb: InfluxServer, tmp_path: Path,
                                                                            with_state: bool) -> None:
    """A newcomer's backfill stopped by SIGTERM said `I! wrote 207273 metrics` and `W! interrupted after 212273
    metrics: ... no --state`, while InfluxDB held 212 273 (the batch in flight, cut by the stop, was counted
    nowhere and never sent again), and no line said the `--skip-metrics N` to resume with. The batch in flight
    is now sent again at the stop; one number, what InfluxDB acknowledged, is in both lines, and resuming with
    it gives what an uninterrupted backfill gives. With --state the checkpoint is left as it was, so the same
    command with that --skip-metrics scores from the same models. Exit 143 (SIGTERM), as a shell shows it.

    The stop lands mid-backfill for sure: a proxy holds its third write until the signal is sent."""
    path = tmp_path / "rec.lp"
    path.write_bytes(stream(30000))  # 60 000 metrics: 3 reads of 1 MiB, the first stopped in its third batch
    state = ["--state", str(tmp_path / "s.msgpack")] if with_state else []
    whole, resumed = f"rg_whole_{with_state}", f"rg_stopped_{with_state}"
    for db in (whole, resumed):
        influxdb.create_db(db)
    args = ["--batch-size", "1000", *state, str(path)]
    assert _backfill(influxdb.url, whole, "--batch-size", "1000", str(path)).returncode == 0
    with held_writes(influxdb.url, allow=2) as proxy:
        proc = subprocess.Popen([*RIVERGUARD, "replay", "--influx-url", proxy.url, "--db", resumed, *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        stderr = stopped_while_held(proxy, proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr
    checkpoint = "no checkpoint written" if with_state else "no --state"
    told = re.search(rf"^W! \[riverguard\] interrupted: database '{resumed}' at {re.escape(proxy.url)} acknowledged"
                     rf" (\d+) metrics \(they stay written\), {checkpoint}; to resume, run the same command with"
                     r" --skip-metrics (\d+)$", stderr, re.M)
    assert told and told[1] == told[2], stderr
    n = int(told[1])
    assert 2000 <= n < 60000, stderr  # stopped part-way, after the two batches let through
    assert f"I! [riverguard] wrote {n} metrics in " in stderr  # one number
    count = 'SELECT count("usage_idle_anomaly_score") FROM "cpu"'
    assert influxdb.rows(count, resumed)[0][1] == n  # what InfluxDB holds
    again = _backfill(influxdb.url, resumed, "--skip-metrics", str(n), *args)
    assert again.returncode == 0, again.stderr
    assert f"wrote {60000 - n} metrics" in again.stderr.decode()
    query = 'SELECT "usage_idle", "usage_idle_anomaly_score", "usage_idle_anomaly" FROM "cpu" GROUP BY "host"'
    assert influxdb.query(query, resumed) == influxdb.query(query, whole)  # 0 differences


def test_a_backfill_stopped_in_its_last_write_still_says_how_to_resume(influxdb: InfluxServer,
                                                                        tmp_path: Path) -> None:
    """All its input scored, a backfill sends what is left as it closes: a SIGTERM there exited 143 without the
    `W!` line giving the `--skip-metrics N` to resume with. The proxy holds the ninth write, the first after
    the input's end (60 000 metrics, batches of 7 000: 8 full ones while replaying, 4 000 at the close)."""
    path = tmp_path / "rec.lp"
    path.write_bytes(stream(30000))
    whole, resumed = "rg_whole_last", "rg_stopped_last"
    for db in (whole, resumed):
        influxdb.create_db(db)
    args = ["--batch-size", "7000", str(path)]
    assert _backfill(influxdb.url, whole, *args).returncode == 0
    with held_writes(influxdb.url, allow=8) as proxy:
        proc = subprocess.Popen([*RIVERGUARD, "replay", "--influx-url", proxy.url, "--db", resumed, *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        stderr = stopped_while_held(proxy, proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr
    told = re.search(rf"^W! \[riverguard\] interrupted: database '{resumed}' at {re.escape(proxy.url)} acknowledged"
                     r" 56000 metrics \(they stay written\), no --state; to resume, run the same command with"
                     r" --skip-metrics 56000$", stderr, re.M)
    assert told, stderr
    again = _backfill(influxdb.url, resumed, "--skip-metrics", "56000", *args)
    assert again.returncode == 0, again.stderr
    query = 'SELECT "usage_idle", "usage_idle_anomaly_score", "usage_idle_anomaly" FROM "cpu" GROUP BY "host"'
    assert influxdb.query(query, resumed) == influxdb.query(query, whole)  # 0 differences


class _Written(QuietHandler):
    """InfluxDB 1.x's ``/write`` as the writer sees it: 204, or 400 for a body holding a ``bad`` line; every
    body it got (written or refused) goes into ``server.got``, by database (one a run)."""

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        db = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["db"][0]
        self.server.got.setdefault(db, []).append(body)  # type: ignore[attr-defined]
        if b"bad" in body:
            self.answer(400, b'{"error":"unable to parse: bad"}')
        else:
            self.answer(204, b"")


def _backfill_stopped_at(k: int, url: str, chunks: list[bytes], refuse: bool) -> tuple[Any, int, bool]:
    """A backfill's writer (``--skip-metrics 2``, batches of 3) given ``chunks`` as ``replay`` gives its output,
    stopped by a real SIGTERM (``replay``'s handler: :class:`Interrupted` is raised) at the ``k``-th line run
    in riverguard/influx.py under ``_send_pending`` (``_send``, ``post``...: a signal is handled between
    bytecodes, at a line start as anywhere), then closed, as ``replay`` closes it at a stop. The writer, the
    metrics given to it, and whether the signal came."""
    from riverguard import influx
    from riverguard.signals import interrupt

    writer = influx.InfluxWriter(url, db=f"run{k}{refuse}", skip=2, batch_size=3, retries=0)
    lines = 0

    def line(frame: Any, event: str, arg: Any) -> Any:
        nonlocal lines
        if event == "line":
            lines += 1
            if lines == k:  # (blocked, it waits as a real one does: delivered when unblocked)
                signal.raise_signal(signal.SIGTERM)
        return line

    def call(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != influx.__file__:
            return None
        caller = frame
        while caller is not None and caller.f_code.co_name != "_send_pending":
            caller = caller.f_back
        return line if caller is not None else None

    given = 0
    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        try:
            for chunk in chunks:
                given += sum(1 for m in chunk.splitlines() if not m.startswith(b"#"))
                sys.settrace(call)
                try:
                    writer.write(chunk)
                finally:
                    sys.settrace(None)
        except KeyboardInterrupt:
            stopped = True
        else:
            stopped = False
        writer.close()
    finally:
        signal.signal(signal.SIGTERM, before)
    return writer, given, stopped


@pytest.mark.parametrize("refuse", [False, True], ids=["accepted", "one-refused"])
def test_a_backfill_stopped_at_any_line_of_a_send_loses_no_batch_and_counts_none_unsent(refuse: bool) -> None:
    """A batch was taken off what is pending before the ``try:`` that puts it back at a stop: a SIGTERM
    there lost it, ``close()`` sent the later ones, and ``--skip-metrics N`` skipped metrics never written.
    Stopped at every line of a send in turn, until one runs to the end: the first ``resume_from`` (and
    ``acknowledged``) metrics all reached InfluxDB, in order (again, maybe), and what is counted written or
    refused is what InfluxDB answered for, once each."""
    metrics = [b"cpu,host=h0 v=%d %d" % (i, T0 + i) for i in range(12)]
    if refuse:
        metrics[6] = b"cpu,host=bad v=6 %d" % (T0 + 6)
    data = [b"\n".join(metrics[a:b]) + b"\n" for a, b in ((0, 5), (5, 9), (9, 12))]
    chunks = [b"# recorded\n" + data[0], *data[1:]]
    with local_server(_Written, got={}) as server:
        for k in range(1, 10_000):
            writer, given, stopped = _backfill_stopped_at(k, server.url, chunks, refuse)
            seen: list[bytes] = []  # what InfluxDB got, each metric once, in order
            for body in server.got.get(f"run{k}{refuse}", []):
                seen.extend(m for m in body.splitlines() if m not in seen)
            for n in (writer.resume_from, writer.acknowledged):
                assert seen[: n - 2] == metrics[2:n], (k, n, seen)
            assert writer.acknowledged == given  # (close sent what was pending)
            answered = metrics[2:given]
            assert (writer.lines, writer.refused) == (sum(b"bad" not in m for m in answered),
                                                      sum(b"bad" in m for m in answered)), k
            if not stopped:
                break
    assert k > 50 and given == 12  # (stopped at each line of 3 sends, then ran to the end)


class _Recorder(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_influxdb_1x_username_and_password_from_the_environment(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    path = tmp_path / "a.lp"
    path.write_bytes(stream(5))
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        env = {**os.environ, "RG_TEST_PASSWORD": "pa:ss"}
        proc = run_cli(
            ["replay", "--influx-url", url, "--db", "telegraf", "--username", "rg", "--password-env",
             "RG_TEST_PASSWORD", str(path)], env=env,
        )
        missing = run_cli(["replay", "--influx-url", url, "--db", "telegraf", "--username", "rg", str(path)])
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr
    (where, headers), = server.seen  # type: ignore[attr-defined]
    assert where == "/write?db=telegraf&precision=ns"
    assert headers["Authorization"] == "Basic cmc6cGE6c3M="  # base64("rg:pa:ss")
    assert b"pa:ss" not in proc.stderr
    assert missing.returncode == 2 and b"--username and --password-env go together" in missing.stderr


# -- 7. gzip and binary input ----------------------------------------------------------


def test_gzip_input_is_read_by_its_magic_bytes(tmp_path: Path) -> None:
    import gzip

    data = stream(200)
    plain = tmp_path / "plain.lp"
    plain.write_bytes(data)
    packed = tmp_path / "looks-plain.lp"  # the name says nothing: the content does
    packed.write_bytes(gzip.compress(data))
    expected = run_cli(["replay", str(plain)])
    got = run_cli(["replay", str(packed)])
    assert got.returncode == 0, got.stderr
    assert got.stdout == expected.stdout and b"E!" not in got.stderr
    piped = run_cli(["replay", "-"], input=gzip.compress(data))
    assert piped.stdout == expected.stdout


# A file with the physical lines a bad-line message has to count: comments, blank lines, a string value
# holding raw newlines (one metric over three lines), and two bad lines, at lines 7 and 9.
LINES = (
    b"# recorded by hand\n"  # 1
    b"cpu,host=a v=1 1\n"  # 2
    b"\n"  # 3
    b'log,host=a msg="first\nsecond\nthird",n=1 2\n'  # 4-6
    b"cpu,host=a v=oops 3\n"  # 7
    b"cpu,host=a v=2 4\n"  # 8
    b"not line protocol\n"  # 9
    b"cpu,host=a v=3 5"  # 10, no newline at the end
)


def _bad_lines(stderr: bytes) -> list[str]:
    """``NAME:LINE`` of each bad-line message."""
    return [line.split(b": not line protocol")[0].split(b"] ", 1)[1].decode() for line in stderr.splitlines()
            if b"not line protocol" in line]


def test_bad_lines_are_reported_by_file_and_line(tmp_path: Path) -> None:
    import gzip

    (tmp_path / "recorded.lp").write_bytes(LINES)
    (tmp_path / "recorded.lp.gz").write_bytes(gzip.compress(LINES))
    (tmp_path / "other.lp").write_bytes(b"cpu,host=b v=1 1\ncpu,host=b v= 2\n")
    proc = run_cli(["replay", "recorded.lp", "recorded.lp.gz", "other.lp"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # Each file counts from 1; gzip input counts the lines it holds, not bytes of the file.
    assert _bad_lines(proc.stderr) == ["recorded.lp:7", "recorded.lp:9", "recorded.lp.gz:7", "recorded.lp.gz:9", "other.lp:2"]
    assert proc.stdout.count(b"\n") == 2 * 10 + 2  # and nothing is lost
    # The README's example is this message.
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = re.search(r"<!-- bad-line-message:.*?-->\n *```\n *(E!.*)\n", readme).group(1)  # type: ignore[union-attr]
    assert example.encode() in proc.stderr.splitlines()
    # stdin counts its lines the same way, for replay - and for Telegraf's execd (run).
    for args in (["replay", "-"], ["run"]):
        proc = run_cli(args, input=LINES + b"\n" + LINES)
        assert proc.returncode == 0, proc.stderr
        assert _bad_lines(proc.stderr) == ["stdin:7", "stdin:9", "stdin:17", "stdin:19"], args


def test_the_rate_limits_hold_in_a_live_stream(tmp_path: Path, start) -> None:
    """Telegraf writes a little at a time, and run answers each write: the line counting what a rate limit held
    back was written after every answer, unlimited (bad lines at 2000 a second, half of them: 4841 lines in 5 s,
    all but 50 of them `W! ... 2 more unparsable metrics were not reported`). For 3 s, twenty writes a second,
    each with 10 bad lines, a field clashing with an added name and a series whose detector fails: each limit
    tells at most 10 a second one by one and one line a second counting the rest, the last count at the end,
    and every event is told or counted."""
    config = tmp_path / "rg.toml"
    config.write_text(readme_example("svm") + '[[rule]]\nname = "all"\n')
    proc = start("run", "--config", str(config))
    proc.ready()
    writes, began = 0, time.monotonic()
    while time.monotonic() - began < 3.0:
        lines = [f"cpu,host=a v=bad{writes} {T0}" for _ in range(10)]
        lines.append(f'm{writes},host=a x=1,x_anomaly_score="hi" {T0}')  # a clash, in a measurement of its own
        lines += [f"sensor,room=r{writes} temp={v!r} {T0 + i * STEP}" for i, v in enumerate([0.0, 1.0, 1e308, 0.0])]
        proc.write(("\n".join(lines) + "\n").encode())
        writes += 1
        assert proc.wait_lines(writes * len(lines), 30), proc.stderr  # answered: the next write comes after it
        time.sleep(max(0.0, began + writes * 0.05 - time.monotonic()))
    seconds = time.monotonic() - began
    proc.close_stdin()
    assert proc.wait(30) == 0, proc.stderr
    stderr = proc.stderr.decode()
    periods = int(seconds) + 1  # the one-second windows the stream spanned
    for told, held, each in (
        (r"^E! \[riverguard\] stdin:\d+: not line protocol: ", "unparsable metrics?", 10),
        (r"^W! \[riverguard\] measurement 'm\d+': field 'x_anomaly_score' is a string",
         "fields? that clash(?:es)? with an added name", 1),
        (r"^W! \[riverguard\] detector 'river' failed on series sensor,room=r\d+ temp: ", "series whose detector failed", 1),
    ):
        one_by_one = len(re.findall(told, stderr, re.M))
        counts = [int(n) for n in re.findall(rf"^W! \[riverguard\] (\d+) more {held} (?:was|were) not reported "
                                             r"\(rate limit\)$", stderr, re.M)]
        assert one_by_one + sum(counts) == writes * each, (held, one_by_one, counts, writes)  # none lost
        assert one_by_one <= 10 * periods, (held, one_by_one, periods)
        assert 2 <= len(counts) <= periods + 1, (held, counts, periods)  # once a second at most, and at the end
    assert "Traceback" not in stderr


def test_binary_input_stops_replay_with_one_message(tmp_path: Path) -> None:
    binary = tmp_path / "core.lp"
    binary.write_bytes(b"cpu v=1 1\n" + bytes(range(256)) * 40)
    out = tmp_path / "out.lp"
    proc = run_cli(["replay", "-o", str(out), str(binary)])
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith(b"E! ")]
    assert errors == [b"E! [riverguard] " + str(binary).encode() + b": binary data (a NUL byte at byte 10), not line protocol: stopped"]
    assert not out.exists()
# -- 6. SIGHUP: checkpoint, reload the config, go on ------------------------------------


def two_measurements(samples: int, start: int = 0) -> bytes:
    rng = random.Random(start)
    lines = []
    for i in range(start, start + samples):
        for h in range(2):
            ts = T0 + i * STEP
            lines.append(f"cpu,host=h{h} usage_idle={80.0 + rng.gauss(0.0, 2.0):.3f} {ts}")
            lines.append(f"mem,host=h{h} used_percent={40.0 + rng.gauss(0.0, 1.0):.3f} {ts}")
    return ("\n".join(lines) + "\n").encode()


RULES = '[[rule]]\nname = "cpu"\nmeasurement = "cpu"\n\n[[rule]]\nname = "mem"\nmeasurement = "mem"\ndetector = "{mem}"\n'


def test_sighup_checkpoints_reloads_and_keeps_unchanged_models(tmp_path: Path, start) -> None:
    conf = tmp_path / "rg.toml"
    conf.write_text(RULES.format(mem="default"))
    state = tmp_path / "rg.msgpack"
    first, second = two_measurements(300), two_measurements(300, start=300)
    reference = run_cli(["replay", "--config", str(conf), "-"], input=first + second).stdout.splitlines()

    proc = start("run", "--config", str(conf), "--state", str(state))
    proc.ready()
    proc.write(first)
    assert proc.wait_lines(1200, 60)
    conf.write_text(RULES.format(mem="zscore"))  # mem's rule changes, cpu's does not
    proc.popen.send_signal(signal.SIGHUP)
    assert proc.wait_stderr(lambda e: b"reloaded" in e, 30), proc.stderr
    assert proc.popen.poll() is None  # still running
    assert b"checkpoint written" in proc.stderr and state.is_file()
    assert b"2 series keep their models; 2 start fresh because their rule or parameters changed\n" in proc.stderr
    inspect = run_cli(["state", "inspect", str(state)])
    assert b'"series": 4' in inspect.stdout  # the checkpoint taken at the SIGHUP
    proc.write(second)
    assert proc.wait_lines(2400, 60)

    conf.write_text("[[rule]]\nname = 1\n")  # an invalid config: keep running on the old one
    proc.popen.send_signal(signal.SIGHUP)
    assert proc.wait_stderr(lambda e: b"still running on the previous config" in e, 30), proc.stderr
    proc.write(b"cpu,host=h0 usage_idle=80.5 " + str(T0 + 600 * STEP).encode() + b"\n")
    assert proc.wait_lines(2401, 30)
    proc.close_stdin()
    assert proc.wait(30) == 0
    out = proc.stdout.splitlines()
    cpu = [line for line in out[:2400] if line.startswith(b"cpu")]
    assert cpu == [line for line in reference if line.startswith(b"cpu")]  # cpu never noticed the reload
    mem_after = [line for line in out[1200:2400] if line.startswith(b"mem")]
    assert mem_after != [line for line in reference[1200:] if line.startswith(b"mem")]  # mem: a fresh zscore
    errors = [line for line in proc.stderr.splitlines() if line.startswith(b"E! ")]
    assert len(errors) == 2 and all(b"rg.toml" in line for line in errors)  # the problem, then what riverguard did


# -- 8. trouble is visible while running -----------------------------------------------


def test_sighup_reload_warns_and_refuses_as_start_up_does(tmp_path: Path, start) -> None:
    """A reload reads the config through the same path as start-up: same warnings, same errors."""
    conf = tmp_path / "rg.toml"
    conf.write_text(RULES.format(mem="default"))
    proc = start("run", "--config", str(conf))
    proc.ready()
    hidden = '[[rule]]\nname = "all"\n\n[[rule]]\nname = "cpu"\nmeasurement = "cpu"\n'
    invalid = "[[rule]]\nname = 1\n"
    # six problems: every one gets its own line (the reload, as check-config, gave two)
    several = (
        '[state]\nmax_series = -1\nseries_ttl = "1 day"\n'
        '[[rule]]\nname = "a"\nmeasurment = "cpu"\ntreshold = 0.3\nwarmup = "10"\n[rule.params]\nfadng = 0.1\n'
    )
    refused = 0
    for text, problems in ((hidden, 0), (invalid, 1), (several, 6)):
        conf.write_text(text)
        at_start = run_cli(["check-config", str(conf)]).stderr
        assert at_start.startswith((b"W! [riverguard] ", b"E! [riverguard] ")), at_start
        assert at_start.count(b"E! ") == problems, at_start
        proc.popen.send_signal(signal.SIGHUP)
        done = b"reloaded" if text is hidden else b"still running on the previous config"
        refused += text is not hidden
        assert proc.wait_stderr(lambda e: e.count(done) == (refused or 1), 30), proc.stderr
        assert at_start in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith(b"E! ")]
    assert len(errors) == 1 + 1 + 6 + 1, errors  # each problem, then what riverguard did
    proc.close_stdin()
    assert proc.wait(30) == 0


def test_a_flood_of_signals_writes_no_traceback_to_stderr() -> None:
    """The signals' wake-up pipe holds 64 KiB: a signal that finds it full (many, while one long write or
    checkpoint keeps the loop from draining it) was a five-line Python traceback on stderr each, which Telegraf
    logs as errors. A full pipe already says "a signal came": nothing is written, the signal still counts."""
    script = (
        "import os, signal\n"
        "from riverguard.signals import Signals\n"
        "s = Signals()\n"
        "for _ in range(70_000):\n"
        "    os.kill(os.getpid(), signal.SIGHUP)\n"
        "print(s.hangup)\n"
        "s.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"True\n"
    assert done.stderr == b"", done.stderr[:400]


def test_evictions_of_unscored_series_warn_while_running(tmp_path: Path, start) -> None:
    """One W! line a minute at most while it runs, and the evictions since the last one at exit. (Those were
    lost: the exit line's total said more than the W! lines did.)"""
    conf = config(tmp_path, "[state]\nmax_series = 5\n")
    proc = start("run", "--config", str(conf))
    proc.ready()
    rounds = [
        "".join(f"cpu,host=h{h} usage_idle={80 + r % 3}.5 {T0 + r * STEP}\n" for h in range(20)).encode()
        for r in range(30)
    ]
    proc.write(rounds[0])
    assert proc.wait_stderr(lambda e: b"W! " in e, 30), proc.stderr  # while it runs, not at exit
    for r in rounds[1:]:
        proc.write(r)
    assert proc.wait_lines(600, 30)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith(b"W! ")]
    assert len(warnings) == 1, warnings  # at most once a minute
    assert re.search(rb"W! \[riverguard\] [0-9]+ evictions of a series not yet scored", warnings[0])
    assert b"max_series = 5" in warnings[0]
    first = int(warnings[0].split()[2])
    proc.close_stdin()
    assert proc.wait(30) == 0
    # 20 series, each evicted again and again: the evictions are counted (the wording says so), not the series
    assert b"595 evictions (max_series, 595 of a series not yet scored)" in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith(b"W! ")]
    assert len(warnings) == 2 and 0 < first < 595, warnings
    assert warnings[1].startswith(b"W! [riverguard] %d evictions of a series not yet scored (595 since start): "
                                  % (595 - first)), warnings


def test_a_failing_checkpoint_is_an_error_at_once_and_a_failed_exit(tmp_path: Path, start) -> None:
    conf = config(tmp_path, '[state]\npath = "rg.msgpack"\ncheckpoint_interval = "1s"\n')
    state = tmp_path / "rg.msgpack"
    proc = start("run", "--config", str(conf))
    proc.ready()
    proc.write(stream(50))
    assert wait_until(state.is_file, 30)
    state.unlink()
    state.mkdir()  # the next checkpoint cannot be renamed into place
    assert proc.wait_stderr(lambda e: b"E! [riverguard] checkpoint to" in e, 10), proc.stderr
    assert proc.popen.poll() is None
    assert not list(tmp_path.glob(".rg.msgpack.tmp-*"))  # no temporary file left behind
    proc.close_stdin()
    assert proc.wait(30) == 1
    assert b"the final checkpoint failed" in proc.stderr
    assert state.is_dir()


def test_a_state_path_under_a_file_says_that_file_is_not_a_folder(tmp_path: Path) -> None:
    """run passes every metric through unscored after the line (it exited 2: under Telegraf's execd, every
    metric lost, and a restart into the same refusal); the file is left as it is, nothing made."""
    (tmp_path / "a-file").write_text("")
    for state in ("a-file/x.msgpack", "a-file/deeper/x.msgpack"):
        proc = run_cli(["run", "--state", state], input=stream(5), cwd=tmp_path)
        assert (proc.returncode, proc.stdout) == (0, stream(5)), proc.stderr
        assert proc.stderr == passed_through((
            f"E! [riverguard] cannot create the lock file {tmp_path / state}.lock: "
            f"{tmp_path / 'a-file'} is a file, not a folder"
        ).encode(), 10)
        assert [p.name for p in tmp_path.iterdir()] == ["a-file"] and (tmp_path / "a-file").read_text() == ""


def test_check_config_refuses_a_state_path_no_riverguard_could_use(tmp_path: Path) -> None:
    """check-config said OK to a [state] path a start refuses whoever runs it: the checkpoint or its
    lock file a FIFO, a file where a folder on the way should be. It now gives the start's E! line, exit 2,
    and makes nothing (no folder, no lock file); the start passes every metric through unscored after it."""
    (tmp_path / "a-file").write_text("")
    os.mkfifo(tmp_path / "fifo")
    os.mkfifo(tmp_path / "locked.msgpack.lock")
    for state in ("fifo", "a-file/x.msgpack", "a-file/deeper/x.msgpack", "locked.msgpack"):
        conf = tmp_path / "rg.toml"
        conf.write_text(f'[[rule]]\nname = "a"\n[state]\npath = "{state}"\n')
        before = sorted(tmp_path.rglob("*"))
        checked = run_cli(["check-config", str(conf)], cwd=tmp_path)
        assert (checked.returncode, checked.stdout) == (2, b""), checked.stderr
        assert sorted(tmp_path.rglob("*")) == before
        started = run_cli(["run", "--config", str(conf)], input=stream(5), cwd=tmp_path)
        assert (started.returncode, started.stdout) == (0, stream(5)), started.stderr
        assert started.stderr == passed_through(checked.stderr, 10) and checked.stderr.startswith(b"E! [riverguard] ")
        assert sorted(tmp_path.rglob("*")) == before


def test_check_config_refuses_a_state_path_on_a_read_only_filesystem(tmp_path: Path) -> None:
    """A [state] path on a read-only mount passed check-config, and a start refused it whatever user it ran
    as. check-config now gives the start's E! line (exit 2); the start passes every metric through after it. The mount is a read-only tmpfs in a mount
    namespace of the test's own (``unshare``): this machine has no read-only mount of its own to use
    (/proc and /sys are mounted read-write here)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    prefix = ["unshare", "--map-root-user", "--mount", "sh", "-c", 'mount -t tmpfs -o ro none "$0" && exec "$@"',
              str(ro)]
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"no read-only mount to test with: unshare/mount refused here ({probe.stderr.decode().strip()})")
    for state in ("rg.msgpack", "deeper/rg.msgpack"):
        conf = tmp_path / "rg.toml"
        conf.write_text(f'[[rule]]\nname = "a"\n[state]\npath = "{ro / state}"\n')
        checked = subprocess.run([*prefix, *RIVERGUARD, "check-config", str(conf)], capture_output=True, timeout=60)
        started = subprocess.run([*prefix, *RIVERGUARD, "run", "--config", str(conf)], input=stream(5),
                                 capture_output=True, timeout=60)
        assert (checked.returncode, checked.stdout, started.returncode, started.stdout) == (2, b"", 0, stream(5)), \
            (checked.stderr, started.stderr)
        assert checked.stderr == (
            f"E! [riverguard] cannot create the lock file {ro / state}.lock: Read-only file system\n").encode()
        assert started.stderr == passed_through(checked.stderr, 10)


def test_check_config_refuses_a_state_path_on_the_kernels_filesystems(tmp_path: Path) -> None:
    """A [state] path under /proc passed check-config, and every start refused it (exit 2, "No such file or
    directory"); under /sys a start told root to ``chmod u+rwx /sys``. No file can be made there: check-config
    (exit 2) and the start (which then passes every metric through unscored, exit 0) now give the same E!
    line, from one rule, naming the filesystem."""
    if not os.path.ismount("/proc") or not os.path.ismount("/sys"):
        pytest.skip("no /proc or /sys mounted here")
    conf = tmp_path / "rg.toml"
    for state, folder, kind in (("/proc/riverguard", "/proc", "proc"), ("/proc/deeper/rg.msgpack", "/proc", "proc"),
                                ("/proc/self/riverguard", "/proc/PID", "proc"), ("/sys/riverguard", "/sys", "sysfs")):
        conf.write_text(f'[[rule]]\nname = "a"\n[state]\npath = "{state}"\n')
        checked = run_cli(["check-config", str(conf)])
        started = run_cli(["run", "--config", str(conf)], input=stream(5))
        assert (checked.returncode, checked.stdout, started.returncode, started.stdout) == (2, b"", 0, stream(5)), \
            (checked.stderr, started.stderr)
        # (/proc/self is each process's own: the state path names the PID of the one that read the config)
        told = [re.sub(rb"/proc/\d+", b"/proc/PID", proc.stderr) for proc in (checked, started)]
        lock = state.replace("/proc/self", "/proc/PID") + ".lock"
        assert told[0] == (
            f"E! [riverguard] cannot create the lock file {lock}: {folder} is on the kernel's {kind} filesystem, "
            "where no file can be made: give --state (or [state] path) a folder elsewhere\n").encode()
        assert told[1] == passed_through(told[0], 10)


def test_check_config_leaves_the_state_folders_permissions_to_the_start(tmp_path: Path) -> None:
    """Whether the state folder may be written depends on the user riverguard runs as, and check-config is
    run as another (README, Run with Telegraf: the admin checks the config, the folder is telegraf's, mode
    0750): it does not refuse a folder it may not write itself (its advice, a chown to its own user, would be
    wrong there); the start, as Telegraf's user, says so (and passes the metrics through unscored)."""
    prefix = as_nobody("root may write any folder")
    folder = tmp_path / "state"
    folder.mkdir(mode=0o750)
    conf = tmp_path / "rg.toml"
    conf.write_text(f'[[rule]]\nname = "a"\n[state]\npath = "{folder}/"\n')
    checked = subprocess.run([*prefix, *RIVERGUARD, "check-config", str(conf)], capture_output=True, timeout=60)
    assert checked.returncode == 0 and checked.stderr == b"", checked.stderr
    started = subprocess.run([*prefix, *RIVERGUARD, "run", "--config", str(conf)], input=stream(5),
                             capture_output=True, timeout=60)
    assert started.returncode == 0 and started.stderr.startswith(b"E! [riverguard] cannot create the lock file "), \
        started.stderr
    assert b"passing every metric through unscored" in started.stderr


def test_an_unwritable_state_path_is_told_at_start(tmp_path: Path) -> None:
    """run passes every metric through unscored after the E! line (it exited 2, every metric lost under
    Telegraf's execd); replay exits 2."""
    proc = run_cli(["run", "--state", "/proc/riverguard-test/state.msgpack"], input=stream(5))
    assert (proc.returncode, proc.stdout) == (0, stream(5)), proc.stderr
    assert b"E! [riverguard] cannot create the lock file /proc/riverguard-test/state.msgpack.lock" in proc.stderr
    replay = run_cli(["replay", "--state", "/proc/riverguard-test/state.msgpack", "-"], input=stream(5))
    assert (replay.returncode, replay.stdout) == (2, b""), replay.stderr
    assert proc.stderr == passed_through(replay.stderr, 10)


# -- rough edges -----------------------------------------------------------------------


def test_output_path_mistakes_are_messages_not_tracebacks(tmp_path: Path) -> None:
    source = tmp_path / "a.lp"
    source.write_bytes(stream(5))
    for output, message in (
        ("/nonexistent/x.lp", b"--output /nonexistent/x.lp: the folder /nonexistent does not exist"),
        (str(tmp_path), b"is a folder: give a file name"),
    ):
        proc = run_cli(["replay", "-o", output, str(source)])
        assert proc.returncode == 2 and message in proc.stderr and b"Traceback" not in proc.stderr
    folder = run_cli(["replay", str(tmp_path)])
    assert folder.returncode == 2 and b"it is a folder" in folder.stderr


def test_usage_errors_point_to_the_subcommands_help() -> None:
    proc = run_cli(["run", "--bogus"])
    assert proc.returncode == 2
    assert proc.stderr == b"E! [riverguard] riverguard run: unrecognized arguments: --bogus (see riverguard run --help)\n"


def test_collect_count_zero_is_refused() -> None:
    proc = run_cli(["collect", "--count", "0"], timeout=30)
    assert proc.returncode == 2 and b"--count >= 1" in proc.stderr


def test_bad_values_are_shown_as_text() -> None:
    proc = run_cli(["run"], input=b"cpu v=abc\xff 1\n")
    assert b'invalid field value "abc\\xff"' in proc.stderr
    assert b"b'" not in proc.stderr


def test_state_inspect_lists_series_and_survives_a_closed_pipe(tmp_path: Path) -> None:
    state = tmp_path / "rg.msgpack"
    data = "".join(f"cpu,host=h{h:04d} usage_idle={h % 7}.5 {T0 + i * STEP}\n" for i in range(3) for h in range(3000))
    assert run_cli(["run", "--state", str(state)], input=data.encode(), timeout=120).returncode == 0
    listed = run_cli(["state", "inspect", str(state), "--series", "cpu,host=h000*"])
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["key"] for r in rows] == [f"cpu,host=h{h:04d} usage_idle" for h in range(10)]
    assert rows[0] == {"key": "cpu,host=h0000 usage_idle", "detector": "sentinel", "samples": 3,
                       "last": "2023-11-14T22:13:40Z", "anomalies": 0}
    piped = subprocess.run(
        f"{' '.join(RIVERGUARD)} state inspect {state} --series | head -n 1", shell=True, capture_output=True, timeout=60
    )
    assert piped.stdout.count(b"\n") == 1
    assert piped.stderr == b""  # head had what it wanted: nothing to say (test_cli: exit 0)


def test_check_config_reports_every_error_and_warns_about_hidden_rules(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[rule]]\nname = "a"\ndetector = "nope"\n\n[[rule]]\nname = "b"\nthreshold = 5\n\n'
        '[[rule]]\nname = "c"\n\n[[rule]]\nname = "c"\n\n[state]\nmax_series = 0\n'
    )
    proc = run_cli(["check-config", str(bad)])
    assert proc.returncode == 2
    errors = proc.stderr.decode().splitlines()
    assert len(errors) == 4 and all(line.startswith("E! ") for line in errors)
    assert 'unknown detector "nope"' in errors[0] and "threshold" in errors[1]
    assert 'rule 4 "c": duplicate name (rule 3 has it)' in errors[2] and "max_series" in errors[3]
    hidden = tmp_path / "hidden.toml"
    hidden.write_text('[[rule]]\nname = "all"\n\n[[rule]]\nname = "cpu"\nmeasurement = "cpu"\ndetector = "zscore"\n')
    proc = run_cli(["check-config", str(hidden)])
    assert proc.returncode == 0
    assert b'W! [riverguard] ' + str(hidden).encode() + b': rule 2 "cpu" is never used: rule 1 "all" before it matches every field' in proc.stderr
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing yet\n")
    proc = run_cli(["check-config", str(empty)])
    assert proc.returncode == 0 and b"W! " in proc.stderr and b"this config scores nothing" in proc.stderr


def test_control_bytes_of_a_bad_line_are_escaped_in_the_log() -> None:
    # A bad line's excerpt is quoted in the E! line: its escape sequences (ESC, CSI, DEL, C1 as UTF-8)
    # must not reach a terminal or Telegraf's log raw, and the message stays one line.
    bad = b"bad\xff\x1b[31m line\x07\x7f\xc2\x9b\x08 \x0b\x0c\r 1\n"
    proc = run_cli(["run"], input=bad)
    assert proc.returncode == 0
    assert proc.stdout == bad  # the user's bytes are passed through as they came
    errors = [line for line in proc.stderr.splitlines() if line.startswith(b"E! ")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].endswith(b"passed through unchanged: bad\\xff\\x1b[31m line\\x07\\x7f\\x9b\\x08 \\x0b\\x0c\\r 1")
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", proc.stderr)  # no control byte but the newlines
    assert b"\xc2\x80" not in proc.stderr and not re.search(rb"\xc2[\x80-\x9f]", proc.stderr)  # no C1 either
    # The same for a usage error quoting what was typed.
    proc = run_cli(["run", "--x\x1b[2J"])
    assert proc.returncode == 2
    assert proc.stderr == b"E! [riverguard] riverguard run: unrecognized arguments: --x\\x1b[2J (see riverguard run --help)\n"


@pytest.mark.parametrize("pure", ["0", "1"])
def test_integers_of_thousands_of_digits_are_bad_lines_not_a_crash(tmp_path: Path, pure: str) -> None:
    # Python's int() refuses more than 4300 digits with a ValueError: an integer field, an unsigned one
    # or a timestamp that long stopped the stream (exit 1, the metrics read with it lost).
    many = b"9" * 5000
    zeros = b"0" * 5000  # leading zeros: a small number, as InfluxDB reads it
    bad = [b"m v=" + many + b"i 2", b"m v=-" + many + b"i 2", b"m v=" + many + b"u 2", b"m v=1 " + many,
           b"m v=1 -" + many, b'm s="x",v=' + many + b"i 2", b'm s="x",v=1 ' + many]
    good = [b"m v=1 1", b"m v=" + zeros + b"7i 3", b"m v=" + zeros + b"7u 4", b"m v=8 " + zeros + b"5",
            b'm s="x",v=1 ' + zeros + b"6", b"m v=2 7"]
    data = b"\n".join([good[0], *bad, *good[1:]]) + b"\n"
    env = {**os.environ, "RIVERGUARD_PURE_PYTHON": pure}
    (tmp_path / "long.lp").write_bytes(data)
    for args in (["run"], ["replay", "long.lp"]):
        proc = subprocess.run([*RIVERGUARD, *args], input=data if args == ["run"] else b"", capture_output=True,
                              cwd=tmp_path, env=env, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert b"Traceback" not in proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == len(bad) + len(good)
        assert lines[1 : 1 + len(bad)] == bad  # passed through unchanged
        for line in [lines[0], *lines[1 + len(bad) :]]:
            assert b",v_anomaly_score=0.0,v_anomaly=false " in line, line[:100]
        assert strip_added(proc.stdout) == data
        reasons = [line.split(b": not line protocol: ")[1].split(b" at column")[0]
                   for line in proc.stderr.splitlines() if b"not line protocol" in line]
        assert reasons == [b"integer out of range"] * 2 + [b"unsigned integer out of range"] + \
            [b"timestamp out of range"] * 2 + [b"integer out of range", b"timestamp out of range"], proc.stderr
