"""``run``'s periodic checkpoint is written by a forked child while the process goes on scoring.

Every test drives the real ``riverguard run`` through pipes, with real files. The child is caught as it
writes (``/proc/<pid>/task/*/children``) and stopped with SIGSTOP: what the parent does meanwhile is seen
without any timing.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    from tests.conftest import Proc, as_a_user, as_nobody, wait_until
    from tests.test_state import RG, T0, inspect, read_checkpoint, series_lines, stream, write_config
except ImportError:  # tests/ itself on sys.path
    from conftest import Proc, as_a_user, as_nobody, wait_until  # type: ignore[no-redef]
    from test_state import (RG, T0, inspect, read_checkpoint, series_lines, stream,  # type: ignore[no-redef]
                            write_config)

#: Enough series that the child takes a while to write them (about 0.3 s): it is caught at work.
SERIES = 20_000
CONFIG = f'[state]\ncheckpoint_interval = "1s"\nmax_series = {SERIES * 2}'


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _state(pid: int) -> str | None:
    """A process's state letter (``T``: stopped, ``Z``: exited, not yet reaped); None once reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _stop_the_writer(proc: Proc, timeout: float = 60, writing: Path | None = None) -> int:
    """SIGSTOP the child writing a periodic checkpoint, caught while it works (tick after tick until one is);
    its PID. ``writing`` (the checkpoint): only once its temporary file is there (past the child's set-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in _children(proc.popen.pid):
            if writing is not None and not wait_until(
                    lambda child=child: writing.with_name(f".{writing.name}.tmp-{child}").exists() or _state(child)
                    in ("Z", None), 5) or _state(child) in ("Z", None):
                continue
            try:
                os.kill(child, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            wait_until(lambda child=child: _state(child) in ("T", "t", "Z", None), 5)
            if _state(child) in ("T", "t"):
                return child
        time.sleep(0.001)
    raise AssertionError(f"no child writing a checkpoint caught in {timeout:g}s: {proc.stderr[-2000:]!r}")


SKIPPED = b"still being written"
REFUSED = b"W! [riverguard] cannot start a process to write the checkpoint in the background"
AGAIN = b"I! [riverguard] checkpoints are written in the background again"


def a_tick_skipped(tmp_path: Path) -> bytes:
    """The stderr of a ``run`` whose periodic checkpoint's child is stopped as it writes, until the next tick
    is skipped (:data:`SKIPPED`); then let go, and ``run`` ended at EOF."""
    config = write_config(tmp_path, extra=CONFIG)
    proc = Proc(["run", "--config", str(config), "--state", str(tmp_path / "s.msgpack")], cmd=RG)
    try:
        proc.write(series_lines(SERIES))
        assert wait_until(lambda: _lines(proc) >= SERIES, 120), proc.stderr
        child = _stop_the_writer(proc)
        assert proc.wait_stderr(lambda err: SKIPPED in err, 30), proc.stderr
        os.kill(child, signal.SIGCONT)
        _end(proc)
    finally:
        _end(proc, kill=True)
    return proc.stderr


def a_fork_refused_for_a_while(tmp_path: Path, refused_for: float = 0.0) -> tuple[bytes, int]:
    """A ``run`` whose forks are refused (as nobody, held to its own process: ``prlimit --nproc=1``) for
    ``refused_for`` s more once one was (:data:`REFUSED`), then let fork again (:data:`AGAIN`), then ended at
    EOF: its stderr, and how many :data:`REFUSED` lines it said while refused. Skips without root and prlimit."""
    if os.geteuid() != 0 or shutil.which("prlimit") is None:
        pytest.skip("a process limit that the test can raise again while riverguard runs takes root and prlimit")
    prefix = as_nobody("root's processes are not held to RLIMIT_NPROC")
    hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]  # (riverguard's, inherited)
    hard = "unlimited" if hard == resource.RLIM_INFINITY else hard
    folder = tmp_path / "state"
    folder.mkdir()
    os.chown(folder, 65534, 65534)
    state = folder / "s.msgpack"
    config = write_config(tmp_path, extra='[state]\ncheckpoint_interval = "1s"')
    proc = Proc(["run", "--config", str(config), "--state", str(state), "--log-level", "info"],
                cmd=[*prefix, "prlimit", "--nproc=1:", *RG])  # (its own process is all its user may have)
    try:
        proc.write(series_lines(200))
        assert wait_until(lambda: _lines(proc) >= 200, 60), proc.stderr
        assert proc.wait_stderr(lambda err: REFUSED in err, 30), proc.stderr
        assert wait_until(lambda: state.exists() and b"trying again at the next checkpoint" in proc.stderr, 30)
        time.sleep(refused_for)
        refused = proc.stderr.count(REFUSED)
        # (its user may raise it again, up to the hard limit: as that user, as root may lack CAP_SYS_RESOURCE)
        subprocess.run([*prefix, "prlimit", "--pid", str(proc.popen.pid), f"--nproc={hard}:"], check=True, timeout=30)
        assert proc.wait_stderr(lambda err: AGAIN in err, 30), proc.stderr
        proc.write(_more(100, 10))
        assert wait_until(lambda: _lines(proc) >= 210, 30), proc.stderr
        _end(proc)
    finally:
        _end(proc, kill=True)
    return proc.stderr, refused


def _end(proc: Proc, kill: bool = False) -> None:
    """Close ``proc``'s stdin and check it exits 0; with ``kill``, SIGKILL it if it still runs (a test failed)."""
    if proc.popen.poll() is not None:
        return
    if kill:
        os.kill(proc.popen.pid, signal.SIGKILL)
        proc.wait(30)
        return
    proc.close_stdin()
    assert proc.wait(120) == 0, proc.stderr


def _lines(proc: Proc) -> int:
    return proc.stdout.count(b"\n")


def _more(start: int, n: int) -> bytes:
    """A second sample on the first ``n`` series of :func:`series_lines`, ``start`` seconds later."""
    return b"".join(b"cpu,host=h%d v=%d %d\n" % (i, (i + 3) % 10, T0 + start * 10**9 + i) for i in range(n))


def _three_parts(tmp_path: Path) -> tuple[Path, Path, tuple[bytes, bytes, bytes], bytes]:
    """The config, the checkpoint's path, an input in three parts (:data:`SERIES` series, then a sample on
    500 of them twice) and what one ``run`` without a checkpoint gives for the whole of it."""
    config = write_config(tmp_path, extra=CONFIG)
    parts = series_lines(SERIES), _more(100, 500), _more(200, 500)
    whole = subprocess.run([*RG, "run", "--config", str(config)], input=b"".join(parts), capture_output=True,
                           timeout=300)
    assert whole.returncode == 0, whole.stderr
    return config, tmp_path / "s.msgpack", parts, whole.stdout


def _restarted(config: Path, state: Path, rest: bytes) -> bytes:
    """What a ``run`` restarted from the checkpoint ``state`` (of :data:`SERIES` series) gives for ``rest``."""
    b = subprocess.run([*RG, "run", "--config", str(config), "--state", str(state)], input=rest, capture_output=True,
                       timeout=300)
    assert b.returncode == 0, b.stderr
    assert f"restored {SERIES} series".encode() in b.stderr, b.stderr
    return b.stdout


def test_every_skipped_checkpoint_is_counted_in_the_health_line(tmp_path: Path) -> None:
    """The skipped-tick ``W!`` is said once per process: a second streak of slow checkpoints an hour later went
    untold. The health line counts every skip (``checkpoints_skipped``), so a dashboard sees it grow."""
    try:
        from tests.test_monitor import monitor_lines, parse_monitor
    except ImportError:  # tests/ itself on sys.path
        from test_monitor import monitor_lines, parse_monitor  # type: ignore[no-redef]

    config = write_config(tmp_path, extra=CONFIG + '\n[monitor]\ninterval = "1s"')
    proc = Proc(["run", "--config", str(config), "--state", str(tmp_path / "s.msgpack")], cmd=RG)

    def skipped() -> list[int]:  # (whole lines only: the last may be half read, between two reads of the pipe)
        whole = proc.stdout.rpartition(b"\n")[0]
        return [int(parse_monitor(line)[1]["checkpoints_skipped"]) for line in monitor_lines(whole)]

    try:
        proc.write(series_lines(SERIES))
        # (every metric back: the health lines, one a second, are not counted)
        assert wait_until(lambda: _lines(proc) - len(monitor_lines(proc.stdout)) >= SERIES, 120), proc.stderr
        child = _stop_the_writer(proc)
        assert proc.wait_stderr(lambda err: SKIPPED in err, 30), proc.stderr
        assert wait_until(lambda: max(skipped(), default=0) >= 3, 30), (skipped(), proc.stderr)
        os.kill(child, signal.SIGCONT)
        _end(proc)
    finally:
        _end(proc, kill=True)
    counts = skipped()
    assert counts == sorted(counts) and counts[-1] >= 3, counts  # a counter
    assert proc.stderr.count(SKIPPED) == 1, proc.stderr  # (told once)


def test_metrics_come_back_while_a_checkpoint_is_written_and_it_restores(tmp_path: Path) -> None:
    """A periodic checkpoint stopped the stream for its whole write (1.2 to 2 s with 100 000 series: Telegraf
    waits meanwhile). Now a forked child writes it: with that child stopped, metrics still come back, and the
    next tick is skipped (said once); let go, its checkpoint is in place and complete. The final checkpoint at
    EOF is then the parent's, and a restart from it gives what one process gives over the whole input."""
    config, state, (first, later, rest), whole = _three_parts(tmp_path)
    proc = Proc(["run", "--config", str(config), "--state", str(state)], cmd=RG)
    try:
        proc.write(first)
        assert wait_until(lambda: _lines(proc) >= SERIES, 120), proc.stderr
        child = _stop_the_writer(proc)
        assert child != proc.popen.pid
        proc.write(later)  # scored and written back while the child is stopped
        assert wait_until(lambda: _lines(proc) >= SERIES + 500, 60), proc.stderr
        assert _state(child) in ("T", "t")
        assert proc.wait_stderr(lambda err: SKIPPED in err, 30), proc.stderr
        before = state.stat().st_ino if state.exists() else None
        os.kill(child, signal.SIGCONT)
        assert wait_until(lambda: _state(child) is None, 60), proc.stderr  # reaped by the parent
        assert state.stat().st_ino != before  # (its rename put a new file in place)
        assert not (tmp_path / f".s.msgpack.tmp-{child}").exists()  # (renamed into place)
        _end(proc)
    finally:
        _end(proc, kill=True)
    assert b"E! " not in proc.stderr and b"Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count(b"still being written") == 1, proc.stderr
    import json

    assert json.loads(inspect(state).stdout)["series"] == SERIES
    assert proc.stdout + _restarted(config, state, rest) == whole


def test_the_last_checkpoint_stops_a_child_still_writing_instead_of_waiting_for_it(tmp_path: Path) -> None:
    """At stdin's end ``run`` waited for the child still writing a periodic checkpoint, then wrote its own: the
    child's work was thrown away all the same, and the wait (3.1 s more from EOF to exit, medians, 100 000 series)
    is taken from the 5 s Telegraf gives before its SIGTERM. Now the child is stopped (here a child that would
    never finish: SIGSTOPped mid-write): ``run`` exits at once with its final checkpoint written, told as no
    failure, the child reaped and its temporary file removed; a restart from it gives what one process gives."""
    config, state, (first, later, rest), whole = _three_parts(tmp_path)
    proc = Proc(["run", "--config", str(config), "--state", str(state)], cmd=RG)
    try:
        proc.write(first)
        assert wait_until(lambda: _lines(proc) >= SERIES, 120), proc.stderr
        child = _stop_the_writer(proc, writing=state)
        # (short of memory the OOM killer takes the child, which may need much memory of its own, not run; set
        # before it writes, so read once its temporary file is there)
        assert Path(f"/proc/{child}/oom_score_adj").read_text().strip() == "1000"
        assert Path(f"/proc/{proc.popen.pid}/oom_score_adj").read_text().strip() != "1000"
        proc.write(later)  # (in the final checkpoint, not in the child's)
        assert wait_until(lambda: _lines(proc) >= SERIES + 500, 60), proc.stderr
        proc.close_stdin()
        assert proc.wait(30) == 0, proc.stderr
    finally:
        _end(proc, kill=True)
    assert _state(child) is None  # (reaped)
    assert not list(tmp_path.glob(".s.msgpack.tmp-*"))
    assert b"E! " not in proc.stderr and b"Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout + _restarted(config, state, rest) == whole


def test_a_checkpoint_the_child_cannot_write_is_told_as_before_and_scoring_goes_on(tmp_path: Path) -> None:
    """The child's failure (its folder made read-only after start) is told by the parent as a synchronous one
    was: the same E! line, naming the child's temporary file; metrics keep coming back."""
    prefix = as_a_user(tmp_path)
    folder = tmp_path / "state"
    folder.mkdir()
    state = folder / "s.msgpack"
    config = write_config(tmp_path, extra='[state]\ncheckpoint_interval = "1s"')
    proc = Proc(["run", "--config", str(config), "--state", str(state)], cmd=[*prefix, *RG])
    try:
        proc.write(stream(5))
        assert wait_until(lambda: _lines(proc) >= 10, 30), proc.stderr
        assert wait_until(state.exists, 30), proc.stderr  # the first checkpoint
        folder.chmod(0o555)
        assert proc.wait_stderr(lambda err: b"E! " in err, 30), proc.stderr
        proc.write(stream(5, start=5))
        assert wait_until(lambda: _lines(proc) >= 20, 30), proc.stderr
    finally:
        folder.chmod(0o755)
        if proc.popen.poll() is None:
            proc.close_stdin()
            proc.wait(60)
    error = next(line for line in proc.stderr.decode().splitlines() if line.startswith("E! "))
    found = re.fullmatch(rf"E! \[riverguard\] checkpoint to {re.escape(str(state))} failed: \[Errno 13\] Permission "
                         rf"denied: '{re.escape(str(folder))}/\.s\.msgpack\.tmp-([0-9]+)'", error)
    assert found, error
    assert int(found[1]) != proc.popen.pid  # (written by a child)
    assert proc.popen.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr


def test_a_child_killed_while_it_writes_is_a_failed_checkpoint_and_scoring_goes_on(tmp_path: Path) -> None:
    """A child killed as it writes (the OOM killer, say) is a checkpoint that failed: told with what killed
    it, its temporary file removed; the parent goes on scoring, and the next tick writes one again."""
    config = write_config(tmp_path, extra=CONFIG)
    state = tmp_path / "s.msgpack"
    proc = Proc(["run", "--config", str(config), "--state", str(state)], cmd=RG)
    try:
        proc.write(series_lines(SERIES))
        assert wait_until(lambda: _lines(proc) >= SERIES, 120), proc.stderr
        child = _stop_the_writer(proc)
        os.kill(child, signal.SIGKILL)
        told = f"E! [riverguard] checkpoint to {state} failed: the process writing it (PID {child}) was killed by " \
            "SIGKILL"
        assert proc.wait_stderr(lambda err: told.encode() in err, 30), proc.stderr
        assert not (tmp_path / f".s.msgpack.tmp-{child}").exists()
        proc.write(_more(100, 10))
        assert wait_until(lambda: _lines(proc) >= SERIES + 10, 30), proc.stderr
        assert proc.wait_stderr(lambda err: b"written again, after 1 failed attempt(s)" in err, 60), proc.stderr
        _end(proc)
    finally:
        _end(proc, kill=True)
    assert b"Traceback" not in proc.stderr


def test_a_parent_killed_while_its_child_writes_takes_the_child_with_it(tmp_path: Path) -> None:
    """``run`` SIGKILLed (the OOM killer, Telegraf's last resort) while its child writes a checkpoint: the
    child kept the lock it inherited until it finished, so the restarted ``run`` waited for it, named the dead
    parent as the holder, and past its 10 s passed every metric through unscored until the next restart. The
    child now dies with its parent: the restart finds the lock free, restores the checkpoint before (the
    child's write is given up, as the parent's own would have been) and removes the child's temporary file."""
    config = write_config(tmp_path, extra=CONFIG)
    state = tmp_path / "s.msgpack"
    first = series_lines(SERIES)
    done = subprocess.run([*RG, "run", "--config", str(config), "--state", str(state)], input=first[: first.index(
        b"cpu,host=h100 ")], capture_output=True, timeout=300)  # (a checkpoint of the first 100 series)
    assert done.returncode == 0, done.stderr
    proc = Proc(["run", "--config", str(config), "--state", str(state)], cmd=RG)
    try:
        proc.write(first)
        assert wait_until(lambda: _lines(proc) >= SERIES, 120), proc.stderr
        child = _stop_the_writer(proc, writing=state)
        os.kill(proc.popen.pid, signal.SIGKILL)
        proc.wait(30)
        assert wait_until(lambda: _state(child) in ("Z", None), 30), _state(child)  # (gone: reaped or a zombie)
    finally:
        _end(proc, kill=True)
    assert (tmp_path / f".s.msgpack.tmp-{child}").exists()  # (what it was writing, given up)
    # the checkpoint before: the first 100 series, or (on a loaded machine, where the 20 000 series took
    # more than a tick) one that an earlier child completed
    before = read_checkpoint(state)["series"]
    assert 100 <= before <= SERIES
    again = subprocess.run([*RG, "run", "--config", str(config), "--state", str(state), "--log-level", "debug"],
                           input=_more(100, 10), capture_output=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert b"in use by" not in again.stderr and b"unscored" not in again.stderr, again.stderr
    assert f"restored {before} series".encode() in again.stderr, again.stderr
    assert again.stdout.count(b"_anomaly_score=") == 10
    assert not list(tmp_path.glob(".s.msgpack.tmp-*"))


def test_a_fork_refused_for_a_while_is_tried_again_at_the_next_checkpoint(tmp_path: Path) -> None:
    """A fork refused once (EAGAIN: the user's process limit; ENOMEM) made every later periodic checkpoint
    synchronous for the rest of the process's life: Telegraf's inputs waited at each again. Now that tick's
    checkpoint is written by ``run`` itself (one ``W!`` for the streak) and the next tick forks again."""
    stderr, refused = a_fork_refused_for_a_while(tmp_path, refused_for=2.5)  # (two more ticks, each refused)
    assert refused == 1, stderr
    assert b"E! " not in stderr and b"Traceback" not in stderr, stderr
