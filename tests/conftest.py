"""Shared helpers: run the real ``riverguard`` process the way Telegraf does.

Telegraf's execd processor starts the command once, writes line protocol to
its stdin (one metric per write when traffic is light), reads metrics back
from its stdout as a stream and logs its stderr. :class:`Proc` does the same
with unbuffered pipes and background reader threads, so a test can assert
how long each metric takes to come back.
"""

from __future__ import annotations

import math
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
#: The console script installed next to the interpreter running the tests.
SCRIPT = Path(sys.executable).with_name("riverguard")
RIVERGUARD: list[str] = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "riverguard"]
PYTHON_M: list[str] = [sys.executable, "-m", "riverguard"]
LOG_PREFIXES = (b"E! ", b"W! ", b"I! ", b"D! ")


def readme_example(name: str) -> str:
    """A config block of the README's "Bring your own River model" (``<!-- river-example: NAME. ... -->``)."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(rf"<!-- river-example: {name}\..*?-->\n```toml\n(.*?)```", readme, re.S)
    assert block, f"the README lost its river example {name!r}"
    return "\n" + block.group(1)


def refused_line(config: str | Path) -> str:
    """The ``E!`` line ``run`` adds after the problems of a refused ``config`` (as ``--config`` gave it)."""
    return (f"E! [riverguard] {config} is refused (above): passing every metric through unscored until this process "
            f"stops; fix it (riverguard check-config {shlex.quote(str(config))} says what is wrong), then restart "
            "Telegraf")


def refusal(args: list[str], runner: Callable[[list[str]], subprocess.CompletedProcess[bytes]] | None = None
            ) -> subprocess.CompletedProcess[bytes]:
    """``riverguard ARGS`` (by ``runner``, :func:`run_cli` by default) given a ``--config`` it refuses: every
    command exits 2, but ``run``, which passes its input through (exit 0) with :func:`refused_line` last on
    stderr (before its count of the lines passed); the result, those lines taken off ``run``'s stderr (the
    problems, as ``check-config`` gives them)."""
    result = (runner or run_cli)(args)
    if args[0] != "run":
        assert result.returncode == 2, result.stderr
        return result
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines(keepends=True)
             if not line.startswith(b"I! [riverguard] stopped after passing ")]  # (said when lines came)
    assert lines and lines[-1].rstrip(b"\n").decode() == refused_line(args[args.index("--config") + 1]), lines
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout, b"".join(lines[:-1]))


#: What ``run`` adds to the E! line of a state path it cannot use (the line replay and check-config give),
#: before it passes every metric through unscored.
UNUSABLE = "; passing every metric through unscored until this process stops; fix that, then restart Telegraf"


def passed_through(told: bytes, lines: int) -> bytes:
    """``run``'s whole stderr (default log level) for a state path refused with the stderr ``told`` (one E!
    line, as replay and check-config give it), after it passed ``lines`` lines through unscored."""
    from riverguard.log import plural

    return told.removesuffix(b"\n") + (f"{UNUSABLE}\nI! [riverguard] stopped after passing {plural(lines, 'line')} "
                                       "through unscored\n").encode()


@contextmanager
def stdin_from(path: Path, data: bytes = b"") -> Iterator[None]:
    """fd 0 read from ``path`` (written with ``data``) for an in-process ``run``, then the test's own back."""
    path.write_bytes(data)
    saved = os.dup(0)
    try:
        with open(path, "rb") as file:
            os.dup2(file.fileno(), 0)
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)


def run_cli(args: list[str], *, input: bytes | None = None, cwd: Path | None = None, timeout: float = 30,
            env: dict[str, str] | None = None, text: bool = False) -> subprocess.CompletedProcess[Any]:
    """Run ``riverguard ARGS`` to completion and capture its output (as str with ``text``)."""
    if input is None:
        input = "" if text else b""
    return subprocess.run(
        [*RIVERGUARD, *args], input=input, capture_output=True, cwd=cwd, timeout=timeout, env=env, check=False,
        text=text,
    )


class _Reader(threading.Thread):
    """Reads a pipe into a growing buffer, remembering when each chunk arrived."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.data = bytearray()
        self.cond = threading.Condition()
        self.closed = False

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                chunk = b""
            with self.cond:
                if not chunk:
                    self.closed = True
                    self.cond.notify_all()
                    return
                self.data += chunk
                self.cond.notify_all()

    def wait_for(self, predicate: Callable[[bytes], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(bytes(self.data)):
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return predicate(bytes(self.data))
                self.cond.wait(left)
            return True


#: The processes the running test started (:func:`spawn`, the ``start`` fixture): ended after it if still running.
_STARTED: list[subprocess.Popen[Any]] = []


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(cmd, **kwargs)``, the process ended after the test (:func:`end`) if it still runs then:
    a ``run`` or a ``pull --follow`` runs until it is stopped, and one whose test failed first outlived pytest."""
    proc: subprocess.Popen[Any] = subprocess.Popen(cmd, **kwargs)
    _STARTED.append(proc)
    return proc


def end(proc: subprocess.Popen[Any]) -> None:
    """Kill ``proc`` (by its PID) if it still runs, and close the pipes the test held to it."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:
            pass


@pytest.fixture(autouse=True)
def _end_what_the_test_started() -> Iterator[None]:
    """After each test, :func:`end` every process it started (:func:`spawn`)."""
    yield
    while _STARTED:
        end(_STARTED.pop())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds have passed (what it says then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


@contextmanager
def reader_gone() -> Iterator[int]:
    """The write end of a pipe whose reader is gone (``riverguard ... | head`` once head exited): a write to
    it fails with EPIPE. Closed on leaving."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        yield write_end
    finally:
        os.close(write_end)


class Proc:
    """A running ``riverguard`` with unbuffered stdin/stdout/stderr pipes."""

    def __init__(self, args: list[str], cmd: list[str] | None = None, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            [*(cmd or RIVERGUARD), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            cwd=cwd,
            env=env,
        )
        self.out = _Reader(self.popen.stdout.fileno())
        self.err = _Reader(self.popen.stderr.fileno())
        self.out.start()
        self.err.start()

    @property
    def stdout(self) -> bytes:
        with self.out.cond:
            return bytes(self.out.data)

    @property
    def stderr(self) -> bytes:
        with self.err.cond:
            return bytes(self.err.data)

    def write(self, data: bytes) -> None:
        """One write to stdin (the pipe is unbuffered: it is sent as it is)."""
        self.popen.stdin.write(data)

    def wait_lines(self, n: int, timeout: float) -> bool:
        """Wait until stdout holds at least ``n`` newline-terminated lines."""
        return self.out.wait_for(lambda d: d.count(b"\n") >= n, timeout)

    def wait_stderr(self, predicate: Callable[[bytes], bool], timeout: float) -> bool:
        return self.err.wait_for(predicate, timeout)

    def close_stdin(self) -> None:
        self.popen.stdin.close()

    def terminate(self) -> None:
        self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """Exit code; raises ``subprocess.TimeoutExpired`` if still running. Readers are joined."""
        code = self.popen.wait(timeout)
        self.out.join(5)
        self.err.join(5)
        return code

    def ready(self, timeout: float = 30.0) -> None:
        """Block until the process answers (imports done), using a metric that is then discarded."""
        self.write(b"# ready\n")
        assert self.wait_lines(1, timeout), f"riverguard did not start: {self.stderr!r}"
        with self.out.cond:
            assert bytes(self.out.data) == b"# ready\n"
            del self.out.data[:]

    def kill(self) -> None:
        end(self.popen)


@pytest.fixture
def start() -> Callable[..., Proc]:
    """Start ``riverguard ARGS``; every process started is killed at teardown if still alive (:func:`spawn`)."""

    def _start(*args: str, cmd: list[str] | None = None, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> Proc:
        proc = Proc(list(args), cmd=cmd, cwd=cwd, env=env)
        _STARTED.append(proc.popen)
        return proc

    return _start


def without_a_compiler(tmp_path: Path) -> dict[str, str]:
    """The environment of a ``python -m riverguard`` installed without a C compiler: a copy of the package
    with no compiled module (on PYTHONPATH, before the installed one), RIVERGUARD_PURE_PYTHON unset."""
    import riverguard

    copy = tmp_path / "no-compiler"
    shutil.copytree(Path(riverguard.__file__).parent, copy / "riverguard",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(copy)}
    env.pop("RIVERGUARD_PURE_PYTHON", None)
    return env


def as_a_user(tmp_path: Path) -> list[str]:
    """The command prefix under which a file's mode holds for riverguard, as it does for Telegraf's user
    (``telegraf``): as root, without the capabilities that bypass it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH;
    ``setpriv``). Skips the test when a file of mode 0000 can still be read so."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("as root a file's mode holds only without CAP_DAC_OVERRIDE: needs setpriv (util-linux)")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    probe = tmp_path / ".probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        readable = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe)!r}, 'rb')"],
                                  capture_output=True, timeout=60).returncode == 0
    finally:
        probe.unlink()
    if readable:
        pytest.skip("cannot make a file unreadable to riverguard here (mode 0000 is read all the same)")
    return prefix


#: The user :func:`as_nobody` runs riverguard as (``nobody``), as Telegraf runs it as ``telegraf``.
NOBODY = 65534


def as_nobody(why: str) -> list[str]:
    """The command prefix that runs riverguard as another user than root, as Telegraf's user would: as root,
    ``nobody`` through ``setpriv``, with no capability but CAP_DAC_READ_SEARCH (to read the checkout and the
    test's folders wherever they are); as any other user, none. Skips the test, saying ``why`` root needs it,
    without ``setpriv``."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip(f"running as root without setpriv (util-linux): {why}")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


def sticky_checkpoint(tmp_path: Path) -> tuple[list[str], Path]:
    """A checkpoint of root's in a sticky folder (``tmp_path/tmp``, mode 1777, as ``/tmp``), made readable
    (mode 0644) and without its lock file (root's: refused at start already), which only root may replace
    there; and the prefix that runs riverguard as another user (:func:`as_nobody`). Skips unless root."""
    if os.geteuid() != 0:
        pytest.skip("leaving a checkpoint of another user's takes root")
    prefix = as_nobody("root may replace any file in a sticky folder")
    folder = tmp_path / "tmp"
    folder.mkdir()
    folder.chmod(0o1777)
    state = folder / "rg.msgpack"
    first = subprocess.run([*RIVERGUARD, "run", "--state", str(state)], input=b"cpu v=1 1\ncpu v=2 2\n",
                           capture_output=True, timeout=60, check=False)
    assert first.returncode == 0 and state.is_file(), first.stderr
    state.chmod(0o644)  # readable to riverguard's user: only replacing it is refused
    state.with_name(state.name + ".lock").unlink()
    return prefix, state


def strip_added(
    data: bytes,
    score_suffix: bytes = b"_anomaly_score",
    flag_suffix: bytes = b"_anomaly",
    metric_fields: tuple[bytes, bytes] = (b"anomaly_score", b"anomaly"),
) -> bytes:
    """``data`` with every ``,K<score_suffix>=<float>`` and ``,K<flag_suffix>=<bool>`` riverguard added removed,
    the explanation fields after them (``,K<flag_suffix>_expected=<float>`` ... ``_reason="<word>"``),
    and every metric-level pair (``scope = "metric"``) at the end of the fields.

    Only the exact shapes riverguard writes are removed (a float in [0, 1] written
    by Python's repr, and the literal ``true``/``false``), so this cannot hide a
    malformed addition.
    """
    import re

    key = rb"(?:[^\\,= \n]|\\[^\n])+"
    score = re.escape(score_suffix)
    flag = re.escape(flag_suffix)
    value = rb"=(?:0\.0|1\.0|0\.[0-9]+|[1-9](?:\.[0-9]+)?e-[0-9]+)"
    number = rb"=-?[0-9]+(?:\.[0-9]+(?:e[-+][0-9]+)?|e[-+][0-9]+)"  # an explanation value (format_value)
    explained = b"".join(rb"(?:," + key + flag + part + number + rb")?" for part in (b"_expected", b"_lower", b"_upper"))
    pattern = re.compile(
        rb"," + key + score + value + rb"(?:," + key + flag + rb"=(?:true|false))?" + explained
        + rb'(?:,' + key + flag + rb'_reason="[a-z_]+")?(?=[ \n\r]|,|$)'
    )
    metric = re.compile(  # a scope = "metric" rule's pair, always both, after the last field
        rb"," + re.escape(metric_fields[0]) + value + rb"," + re.escape(metric_fields[1]) + rb"=(?:true|false)(?=[ \n\r]|$)"
    )
    return metric.sub(b"", pattern.sub(b"", data))


def _corpus(name: str, env_var: str) -> Path:
    """A corpus where ``riverguard evaluate`` looks for it; skipped when absent, failed in CI."""
    from riverguard.evaluate.corpus import default_corpus_path

    path = default_corpus_path(name, env_var)
    if not (path / "windows.json").is_file() or not (path / "data").is_dir():
        message = (
            f"corpus {name} not found at {path} (expected data/ and windows.json): "
            f"set {env_var} or put shared/{name} beside the repository"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def nab_root() -> Path:
    """The NAB development corpus (``$RIVERGUARD_NAB`` or ``shared/nab``)."""
    return _corpus("nab", "RIVERGUARD_NAB")


@pytest.fixture(scope="session")
def cmd_root() -> Path:
    """The Cloud Monitoring Dataset in NAB's layout (``$RIVERGUARD_CMD`` or ``shared/cmd``)."""
    return _corpus("cmd", "RIVERGUARD_CMD")


def realistic_series(n: int, seed: int = 3) -> list[tuple[float, float]]:
    """A daily-ish wave with noise, a level shift, spikes and a flat stretch; 5-minute event times."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = 50.0 + 10.0 * math.sin(2 * math.pi * i / 288) + rng.gauss(0.0, 2.0)
        if i > n // 2:
            x += 15.0
        if i % 997 == 500:
            x += 80.0
        if n // 3 < i < n // 3 + 50:
            x = 42.0
        out.append((x, 1.7e9 + 300.0 * i))
    return out


def samples(
    times: Sequence[float | None],
    value: Callable[[int, bytes, Callable[[float], float]], float],
    *,
    series: bytes,
    field: bytes,
    seed: int = 0,
    hosts: tuple[bytes, ...] = (b"a",),
    fmt: bytes = b"%.3f",
) -> bytes:
    """Line protocol of ``series,host=H field=value(i, H, gauss)`` at each event time ``times[i]`` (s; None:
    no timestamp), one line per host in ``hosts`` order; ``gauss(sd)`` draws noise from a generator seeded
    with ``seed``, so a stream is the same bytes on every run."""
    rng = random.Random(seed)

    def gauss(sd: float) -> float:
        return rng.gauss(0.0, sd)

    lines = []
    for i, t in enumerate(times):
        stamp = b"" if t is None else b" %d" % (t * 10**9)
        for host in hosts:
            lines.append(b"%s,host=%s %s=%s%s\n" % (series, host, field, fmt % value(i, host, gauss), stamp))
    return b"".join(lines)


def sensor_lines(xs: Sequence[float], t0: int = 19674 * 86400, step: int = 1) -> bytes:
    """Line protocol of ``sensor,host=a temp=x`` for each value of ``xs``, one every ``step`` seconds (a
    second by default) from ``t0`` (a Monday, 2023-11-13 00:00 UTC)."""
    return samples([t0 + step * i for i in range(len(xs))], lambda i, _host, _gauss: xs[i], series=b"sensor",
                   field=b"temp")  # fmt: skip


def expiring_series() -> str:
    """A newcomer's trial of the summary: series ``m,s=a v`` (400 samples a minute apart, 10 ± 1 but one 80 at
    the 300th), then, three days later, 5 000 of ``m,s=b v`` alone: ``a`` expires (series_ttl) during the run."""
    rng = random.Random(1)
    lines, t = [], 1_700_000_000 * 10**9
    for i in range(400):
        t += 60 * 10**9
        lines.append("m,s=a v=%.3f %d\n" % (80 if i == 300 else 10 + rng.uniform(-1, 1), t))
    t += 3 * 86400 * 10**9
    for _ in range(5000):
        t += 60 * 10**9
        lines.append("m,s=b v=%.3f %d\n" % (10 + rng.uniform(-1, 1), t))
    return "".join(lines)


def flag_reasons(out: list[bytes]) -> list[tuple[int, str]]:
    """``(line, reason)`` of each flagged ``temp`` in the output lines of a run with explanations on."""
    got = []
    for i, line in enumerate(out):
        if b" temp_anomaly=true" in line.replace(b",", b" "):
            got.append((i, line.split(b'temp_anomaly_reason="')[1].split(b'"')[0].decode()))
    return got


def run_rule(tmp_path: Path, data: bytes, rule: str = "", state: Path | None = None) -> list[bytes]:
    """``riverguard run`` of ``data`` under one rule named ``all`` (``rule``: more of its keys and tables, such
    as ``[rule.params]``), explanations on, checkpointing to ``state`` if given: the output lines. A config
    file of its own in ``tmp_path`` each call."""
    config = tmp_path / f"r{len(list(tmp_path.glob('*.toml')))}.toml"
    config.write_text(f'[output]\nexplain = true\n\n[[rule]]\nname = "all"\n{rule}')
    args = ["run", "--config", str(config)] + (["--state", str(state)] if state else [])
    proc = run_cli(args, input=data, timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr
    # a detector that raises passes its field through unscored (and logs it): a test reading no flag must not pass
    assert b"failed on series" not in proc.stderr, proc.stderr
    return proc.stdout.splitlines(keepends=True)


def sensor_runs(params: dict[str, Any] | None = None, long: bool = False) -> tuple[int, int]:
    """``python -m tests.benchmarks.sensor_runs`` with ``params`` (28 labelled runs of 20 minutes at 1 s, scored
    as ``riverguard evaluate --labels`` does; with ``long``, ``--long``: 28 runs of 4 hours with 4 incidents
    each): the events caught and the event-wise false alarms it prints."""
    # Imported here, as pytest imports tests/benchmarks (``benchmarks``): ``python -m tests.benchmarks`` imports
    # this module too (for realistic_series), where ``benchmarks`` is not importable.
    from benchmarks.sensor_runs import figures

    got = figures(params, long)
    return got["caught"], got["false_alarms"]


def benchmark_lines(module: str, *args: str) -> list[str]:
    """The output lines of ``python -m tests.benchmarks.<module> *args``, run as a user runs it (from the
    repository root); it must succeed and write nothing on stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", f"tests.benchmarks.{module}", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return proc.stdout.splitlines()
