"""A real InfluxDB 1.x server for the tests: the ``influxdb`` fixture.

Load it from a test module with ``pytest_plugins = ["tests.influx"]`` or
``from tests.influx import influxdb  # noqa: F401``.

The fixture starts ``influxd`` with a temporary config (temporary meta, data
and WAL folders; every listener on a free loopback port; reporting, UDP,
graphite, collectd, opentsdb, monitoring and continuous queries off), waits
for ``/ping`` and stops the server at the end of the session.

Without ``influxd`` the tests are skipped with a message saying how to
install it — except when ``CI=true``, where they fail: CI must run them.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

try:
    from tests.conftest import free_port, wait_until
except ImportError:  # tests/ itself on sys.path (rootdir-less import mode)
    from conftest import free_port, wait_until  # type: ignore[no-redef]

__all__ = [
    "HeldWrites", "InfluxServer", "QuietHandler", "held_writes", "influxdb", "local_server", "stopped_while_held",
]

INSTALL_HINT = (
    "influxd (InfluxDB 1.x) is not installed: `sudo apt-get install influxdb` "
    "(Debian/Ubuntu; .ci/run does it), or set INFLUXD=/path/to/influxd"
)
_START_TIMEOUT = 30.0


def _config(root: Path, http_port: int, rpc_port: int) -> str:
    return f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root / 'meta'}"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "{root / 'data'}"
  wal-dir = "{root / 'wal'}"
  index-version = "inmem"
  wal-fsync-delay = "0s"
  query-log-enabled = false
  trace-logging-enabled = false

[retention]
  enabled = false

[shard-precreation]
  enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
  https-enabled = false
  unix-socket-enabled = false
  max-body-size = 25000000

[ifql]
  enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
"""


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class InfluxServer:
    """A running influxd and small HTTP helpers around its API."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = root / "influxd.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -----------------------------------------------------------

    def start(self, attempts: int = 3) -> None:
        last = ""
        for _ in range(attempts):  # a free port can be taken between probe and bind
            self.port, rpc = free_port(), free_port()
            conf = self.root / "influxdb.conf"
            conf.write_text(_config(self.root, self.port, rpc), encoding="utf-8")
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "run", "-config", str(conf)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, "INFLUXDB_REPORTING_DISABLED": "true"},
                )
            deadline = time.monotonic() + _START_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    with urllib.request.urlopen(self.url + "/ping", timeout=1) as r:
                        if r.status == 204:
                            return
                except OSError:
                    pass
                time.sleep(0.05)
            last = self.log_path.read_text(errors="replace")[-2000:]
            self.stop()
        raise RuntimeError(f"influxd did not answer /ping; its log ends with:\n{last}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    # -- HTTP ----------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes | None = None, timeout: float = 30) -> Response:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Response(r.status, r.read())
        except urllib.error.HTTPError as err:
            return Response(err.code, err.read())

    def query(self, q: str, db: str | None = None) -> dict:
        """Run InfluxQL; return the first statement's result (raises on an error)."""
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        r = self.request("POST", "/query?" + urllib.parse.urlencode(params))
        assert r.status == 200, (r.status, r.body)
        result = r.json()["results"][0]
        assert "error" not in result, result["error"]
        return result

    def rows(self, q: str, db: str) -> list[list]:
        """The values of every series of a query, concatenated."""
        result = self.query(q, db)
        return [row for series in result.get("series", []) for row in series["values"]]

    def create_db(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def write(self, db: str, body: bytes, precision: str = "ns") -> Response:
        return self.request("POST", f"/write?db={urllib.parse.quote(db)}&precision={precision}", body)


def _binary() -> str | None:
    """$INFLUXD if set (a path that is not an executable counts as absent), else influxd on PATH."""
    if "INFLUXD" in os.environ:
        path = os.environ["INFLUXD"]
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return shutil.which("influxd") or shutil.which("influxd", path="/usr/bin:/usr/local/bin")


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory):
    """A running InfluxDB 1.x server (session scoped); skip or fail without influxd."""
    binary = _binary()
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but " + INSTALL_HINT, pytrace=False)
        pytest.skip(INSTALL_HINT)
    server = InfluxServer(binary, tmp_path_factory.mktemp("influxd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- stand-ins for what cannot run here (a 2.x server, a server that fails on cue) -------------


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers with :meth:`answer`."""

    def answer(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def local_server(handler: type[http.server.BaseHTTPRequestHandler], **attributes: Any) -> Iterator[Any]:
    """An HTTP server on a free loopback port, in a thread; ``attributes`` are set on it, and ``url``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in attributes.items():
        setattr(server, name, value)
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class HeldWrites(QuietHandler):
    """A proxy to InfluxDB (``server.target``) that passes every request on, and holds each write after the
    first ``server.allow`` until ``server.gate`` (an Event) is set: ``server.held`` is set once one waits.

    A process writing through it is then, for sure, in the middle of its work, waiting on InfluxDB's answer
    to a write, while the test does something (a SIGTERM) there; setting the gate lets it go on."""

    def do_POST(self) -> None:  # noqa: N802
        server: Any = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/write"):
            with server.lock:
                server.allow -= 1
                hold = server.allow < 0
            if hold:
                server.held.set()
                server.gate.wait(60)
        req = urllib.request.Request(server.target + self.path, data=body, method="POST",
                                     headers={"Content-Type": self.headers.get("Content-Type", "text/plain")})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, payload, kind = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            status, payload, kind = err.code, err.read(), err.headers.get("Content-Type", "")
        with contextlib.suppress(OSError):  # (the client may have gone: stopped while it waited)
            self.answer(status, payload, kind)


@contextlib.contextmanager
def held_writes(target: str, allow: int) -> Iterator[Any]:
    """A :class:`HeldWrites` proxy to ``target`` (a URL) letting ``allow`` writes through before it holds them."""
    with local_server(HeldWrites, target=target, allow=allow, lock=threading.Lock(), held=threading.Event(),
                      gate=threading.Event()) as proxy:
        try:
            yield proxy
        finally:
            proxy.gate.set()


def stopped_while_held(proxy: Any, proc: subprocess.Popen[str], sig: int) -> str:
    """Send ``sig`` to ``proc`` once ``proxy`` (:func:`held_writes`) holds one of its writes, let the writes go
    on, and return ``proc``'s stderr at its end (killed if still running when this fails)."""
    try:
        assert wait_until(proxy.held.is_set, 60), "no write was held"
        proc.send_signal(sig)
        time.sleep(0.2)  # (not needed for the outcome: the signal lands while the write is held, as a rule)
        proxy.gate.set()
        return proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
