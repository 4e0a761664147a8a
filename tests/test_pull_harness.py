"""tests/test_pull.py's own harness, apart from it: that module needs influxd (its ``influxdb`` mark, on the
whole module), this test does not: it starts a ``pull --follow`` against a port nothing listens on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, free_port


def test_a_failed_test_ends_the_pull_follow_it_started(tmp_path: Path) -> None:
    """A --follow test that failed before it stopped its pull left the pull running after pytest had ended.
    Here a test (with the fixtures it runs under, as they are: conftest's and test_pull's) starts one and fails;
    the pull must be gone."""
    pid_file, port = tmp_path / "pid", free_port()
    (tmp_path / "test_fails.py").write_text(
        "from pathlib import Path\n"
        "from test_pull import _Puller\n"
        "def test_it(tmp_path):\n"
        f"    puller = _Puller(['--influx-url', 'http://127.0.0.1:{port}', '--db', 'x', '-m', 'cpu', '--follow',\n"
        "                      '--state', str(tmp_path / 's.msgpack')], tmp_path / 'pull.log')\n"
        f"    Path({str(pid_file)!r}).write_text(str(puller.proc.pid))\n"
        "    assert False\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    inner = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                            "-p", "test_pull", "--rootdir", str(tmp_path), str(tmp_path / "test_fails.py")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "1 failed" in inner.stdout, inner.stdout + inner.stderr
    pid = int(pid_file.read_text())
    try:
        left = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        left = []
    if b"pull" in left and b"--follow" in left:  # (the test's own pull, still running: end it)
        os.kill(pid, signal.SIGKILL)
    assert b"--follow" not in left, f"the pull --follow of a failed test (PID {pid}) still runs after it"
