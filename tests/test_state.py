"""Model state survives restarts, crashes and tampering (msgpack checkpoints).

Every test drives the real ``riverguard`` process and real files.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest

from riverguard.detectors import REGISTRY, resolve
from riverguard.state import inspect as read_checkpoint
from riverguard.state import store

try:
    from tests.conftest import (NOBODY, UNUSABLE, Proc, as_a_user, as_nobody, passed_through, spawn, sticky_checkpoint,
                                strip_added, wait_until)
except ImportError:  # tests/ itself on sys.path
    from conftest import (NOBODY, UNUSABLE, Proc, as_a_user, as_nobody, passed_through,  # type: ignore[no-redef]
                          spawn, sticky_checkpoint, strip_added, wait_until)

RG = [sys.executable, "-m", "riverguard"]
#: An input of one comment line: ``run`` loads its checkpoint at its first input (with none, it leaves it alone).
FIRST = b"# a first input\n"
T0 = 1_700_000_000_000_000_000
STEP = 10_000_000_000  # 10 s


def stream(samples: int, hosts: int = 2, seed: int = 1, start: int = 0) -> bytes:
    """A Telegraf-like cpu stream with noise, a spike and a level shift."""
    rng = random.Random(seed)
    lines = []
    for i in range(start, start + samples):
        for h in range(hosts):
            idle = 80.0 + rng.gauss(0.0, 2.0) + (25.0 if i == 400 else 0.0) + (-10.0 if i > 500 else 0.0)
            lines.append(f"cpu,cpu=cpu-total,host=h{h} usage_idle={idle:.3f},procs={200 + rng.randint(0, 5)}i {T0 + i * STEP}")
    return ("\n".join(lines) + "\n").encode()


def run(args: list[str], data: bytes = b"", timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*RG, *args], input=data, capture_output=True, timeout=timeout, check=False)


#: A River pipeline as a rule names it (detector = "river"): a scaler, then a one-class SVM.
SVM_PARAMS = '[rule.params]\nmodel = [{class = "preprocessing.StandardScaler"}, {class = "anomaly.OneClassSVM", nu = 0.2}]'


def write_config(folder: Path, detector: str = "default", extra: str = "", params: str = "") -> Path:
    path = folder / "riverguard.toml"
    path.write_text(f'{extra}\n[[rule]]\nname = "all"\ndetector = "{detector}"\n{params}\n')
    return path


def inspect(path: Path) -> subprocess.CompletedProcess[bytes]:
    return run(["state", "inspect", str(path)])


@pytest.mark.parametrize("detector", sorted(REGISTRY))
def test_restart_is_invisible_in_the_output(tmp_path: Path, detector: str) -> None:
    """One process over the whole file == two processes with a checkpoint between them."""
    config = write_config(tmp_path, detector, params=SVM_PARAMS if detector == "river" else "")
    data = stream(600)
    full = tmp_path / "full.lp"
    full.write_bytes(data)
    whole = run(["replay", "--config", str(config), str(full)])
    assert whole.returncode == 0, whole.stderr
    lines = data.splitlines(keepends=True)
    for split in (1, 731, len(lines) - 1):
        state = tmp_path / f"{detector}-{split}.msgpack"
        first, rest = tmp_path / "first.lp", tmp_path / "rest.lp"
        first.write_bytes(b"".join(lines[:split]))
        rest.write_bytes(b"".join(lines[split:]))
        a = run(["replay", "--config", str(config), "--state", str(state), str(first)])
        b = run(["replay", "--config", str(config), "--state", str(state), str(rest)])
        assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
        assert b"restored 4 series" in b.stderr or split == 1, b.stderr
        assert a.stdout + b.stdout == whole.stdout, f"output differs after a restart at line {split}"


def test_execd_mode_checkpoints_at_eof_and_restores(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "state.msgpack"
    data = stream(300)
    lines = data.splitlines(keepends=True)
    whole = run(["run", "--config", str(config)], data)
    a = run(["run", "--config", str(config), "--state", str(state)], b"".join(lines[:333]))
    b = run(["run", "--config", str(config), "--state", str(state)], b"".join(lines[333:]))
    assert a.returncode == b.returncode == 0
    assert a.stdout + b.stdout == whole.stdout
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


def test_names_with_escaped_spaces_keep_their_models_across_a_restart_and_a_reload(tmp_path: Path, start) -> None:
    """A measurement, tag value or field key holding an escaped space: the series key is split at the first
    space no backslash escapes. (Split at the first space, one such series set the whole checkpoint aside as
    corrupt at every restart, and made a SIGHUP reload fail.)"""
    config = write_config(tmp_path)
    lines = [
        line.replace(b"cpu,cpu=cpu-total,host=h0 usage_idle", b"cpu\\ load,cpu=cpu-total,host=my\\ box usage\\ idle")
        for line in stream(300).splitlines(keepends=True)
    ]
    assert b"host=my\\ box" in lines[0]
    whole = run(["run", "--config", str(config)], b"".join(lines))
    state = tmp_path / "state.msgpack"
    a = run(["run", "--config", str(config), "--state", str(state)], b"".join(lines[:333]))
    b = run(["run", "--config", str(config), "--state", str(state), "--log-level", "info"], b"".join(lines[333:]))
    assert b"restored 4 series" in b.stderr and b"unusable" not in b.stderr, b.stderr
    assert a.stdout + b.stdout == whole.stdout

    proc = start("run", "--config", str(config), "--log-level", "info")
    proc.ready()
    proc.write(b"".join(lines[:333]))
    assert proc.wait_lines(333, 60)
    proc.popen.send_signal(signal.SIGHUP)
    assert proc.wait_stderr(lambda e: b"reloaded" in e, 30), proc.stderr
    assert b"4 series keep their models\n" in proc.stderr, proc.stderr  # and none dropped
    proc.write(b"".join(lines[333:]))
    proc.close_stdin()
    assert proc.wait(60) == 0
    assert proc.stdout == whole.stdout


def test_state_path_from_config_resolves_against_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = write_config(folder, extra='[state]\npath = "data/rg.msgpack"')
    result = run(["run", "--config", str(config)], stream(50))
    assert result.returncode == 0, result.stderr
    assert (folder / "data" / "rg.msgpack").is_file()


@pytest.mark.parametrize("where", ["--state", "config"])
def test_a_state_path_ending_in_a_slash_is_a_folder_even_before_it_exists(tmp_path: Path, where: str) -> None:
    """``--state /var/lib/riverguard/`` (or ``[state] path = "state/"``) names a folder: the checkpoint is
    riverguard.msgpack in it, the folder made if missing. (Before, the slash was dropped: a file named
    ``riverguard`` took the folder's place, and a later ``install -d`` of the folder failed.)"""
    etc = tmp_path / "etc"
    etc.mkdir()
    folder = (etc if where == "config" else tmp_path) / "state"
    config = write_config(etc, extra='[state]\npath = "state/"' if where == "config" else "")
    args = ["run", "--config", str(config)] + (["--state", f"{folder}/"] if where == "--state" else [])
    first = run(args, stream(50))
    assert first.returncode == 0, first.stderr
    assert folder.is_dir(), f"{folder} is not a folder"
    assert read_checkpoint(folder / "riverguard.msgpack")["series"] == 4
    assert f"no checkpoint at {folder / 'riverguard.msgpack'} yet".encode() in first.stderr, first.stderr
    again = run(args, stream(50, start=50))
    assert b"restored 4 series" in again.stderr, again.stderr
    checked = run(["check-config", str(config)])
    if where == "config":
        assert f'"path": "{folder / "riverguard.msgpack"}"'.encode() in checked.stdout, checked.stdout


def test_inspect_reads_a_path_ending_in_a_slash_as_run_writes_it(tmp_path: Path) -> None:
    """``state inspect DIR/`` looks where ``run --state DIR/`` writes: DIR/riverguard.msgpack, DIR made or
    not. (It said ``DIR: no such file`` for a folder not made yet, and read ``afile/`` as the file ``afile``,
    which ``run --state afile/`` refuses.)"""
    config = write_config(tmp_path)
    nodir = tmp_path / "nodir"
    missing = run(["state", "inspect", f"{nodir}/"])
    assert missing.returncode == 2 and missing.stdout == b""
    assert missing.stderr == b"E! [riverguard] %s: no such file\n" % bytes(nodir / "riverguard.msgpack")
    assert run(["run", "--config", str(config), "--state", f"{nodir}/"], stream(50)).returncode == 0
    for given in (f"{nodir}/", str(nodir)):
        assert json.loads(run(["state", "inspect", given]).stdout)["series"] == 4
        assert len(run(["state", "inspect", given, "--series"]).stdout.splitlines()) == 4
    afile = tmp_path / "afile"
    assert run(["run", "--config", str(config), "--state", str(afile)], stream(50)).returncode == 0
    before = afile.read_bytes()
    by_run = run(["run", "--config", str(config), "--state", f"{afile}/"], stream(50))  # (passed through)
    assert (by_run.returncode, by_run.stdout) == (0, stream(50)), by_run.stderr
    assert by_run.stderr == passed_through(b"E! [riverguard] cannot create the lock file %s.lock: %s is a file, not a "
                                           b"folder" % (bytes(afile / "riverguard.msgpack"), bytes(afile)), 100)
    for args in ((), ("--series",)):
        refused = run(["state", "inspect", f"{afile}/", *args])
        assert refused.returncode == 2 and refused.stdout == b"", refused.stdout[:200]
        assert refused.stderr == b"E! [riverguard] %s: no such file: %s is a file, not a folder\n" % (
            bytes(afile / "riverguard.msgpack"), bytes(afile))
    assert afile.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "afile", "afile.lock", "nodir", "riverguard.toml"]


@pytest.mark.parametrize("given", ["st/", "st"])
def test_inspect_of_a_folder_at_the_checkpoint_says_what_to_do(tmp_path: Path, given: str) -> None:
    """``state inspect st`` (or ``st/``) with a folder at st/riverguard.msgpack said only ``E! ...: not a
    regular file``. Now it names the folder where the file should be and what to do, as ``run --state st``
    refusing it does (which the test compares), exit 2, the folder left as it is."""
    folder = tmp_path / "st" / "riverguard.msgpack"
    folder.mkdir(parents=True)
    by_run = run(["run", "--state", f"{tmp_path}/{given}"], stream(3))
    (told,) = [line for line in by_run.stderr.splitlines() if line.startswith(b"E! ")]
    for args in ((), ("--series",)):
        refused = run(["state", "inspect", f"{tmp_path}/{given}", *args])
        assert refused.returncode == 2 and refused.stdout == b"", refused.stderr
        assert refused.stderr == (
            f"E! [riverguard] the checkpoint {folder} is a folder, where the file should be: refusing to read it; "
            "move that folder away, or give state inspect another file or folder\n"
        ).encode()
        same = b"the checkpoint %s is a folder, where the file should be: refusing to " % bytes(folder)
        assert same in told and b"move that folder away, or give " in told
    assert [p.name for p in (tmp_path / "st").iterdir()] == ["riverguard.msgpack"] and not any(folder.iterdir())


def test_inspect_gives_sample_times_to_the_nanosecond(tmp_path: Path) -> None:
    """The oldest and newest sample and each series' last are the timestamps as written, to the nanosecond
    (they went through a float: .123456789 came out as .123457)."""
    state = tmp_path / "s.msgpack"
    lines = b"".join(b"m,host=a v=%d %d\n" % (i, 1_700_000_000_123_456_789 + i * 10**9) for i in range(3))
    result = run(["run", "--config", str(write_config(tmp_path)), "--state", str(state)], lines)
    assert result.returncode == 0, result.stderr
    summary = json.loads(inspect(state).stdout)
    assert (summary["oldest"], summary["newest"]) == ("2023-11-14T22:13:22.123456789Z",) * 2
    listed = subprocess.run([sys.executable, "-m", "riverguard", "state", "inspect", str(state), "--series"],
                            capture_output=True, text=True, check=True)
    assert [json.loads(line)["last"] for line in listed.stdout.splitlines()] == ["2023-11-14T22:13:22.123456789Z"]


def test_inspect_series_matching_none_says_so(tmp_path: Path) -> None:
    """A ``--series`` GLOB that matches no series gets a W! line with how many there are and how keys look
    (a typo, or ``cpu`` for ``cpu,host=a usage_idle``, printed nothing, exit 0, as an empty checkpoint)."""
    state = tmp_path / "s.msgpack"
    lines = b"".join(b"cpu,host=a idle=%d,user=1 %d\n" % (i, T0 + i * STEP) for i in range(3))
    assert run(["run", "--config", str(write_config(tmp_path)), "--state", str(state)], lines).returncode == 0
    for glob in ("cpu", "["):
        none = run(["state", "inspect", str(state), "--series", glob])
        assert none.returncode == 0 and none.stdout == b"", none.stderr
        assert none.stderr == (
            b"W! [riverguard] --series '%s' matched none of the 2 series in %s (a series key is "
            b"'measurement,tag=value field', or 'measurement,tag=value (metric)' for a scope = \"metric\" rule's "
            b"model, as --series without a GLOB lists them)\n" % (glob.encode(), bytes(state))
        )
    some = run(["state", "inspect", str(state), "--series", "cpu*idle"])
    assert len(some.stdout.splitlines()) == 1 and some.stderr == b"", some.stderr
    empty = tmp_path / "empty.msgpack"  # a checkpoint without series: nothing to say, whatever was asked
    assert run(["replay", "--state", str(empty), "-"], b"# no metric\n").returncode == 0
    for args in (["--series"], ["--series", "cpu"], ["--with-state"]):
        listed = run(["state", "inspect", str(empty), *args])
        assert (listed.returncode, listed.stdout, listed.stderr) == (0, b"", b""), (args, listed.stderr)


def test_inspect_names_a_metric_model_as_the_replay_summary_does(tmp_path: Path) -> None:
    """A scope = "metric" model's key was listed with a trailing space ("cpu,cpu=cpu-total,host=h0 "): neither
    the summary's name ("... (metric)") nor the bare measurement and tags matched it as a --series GLOB.
    Now it is listed under the summary's name, and a glob of it matches."""
    state = tmp_path / "s.msgpack"
    config = tmp_path / "rg.toml"
    config.write_text('[[rule]]\nname = "m"\nmeasurement = "cpu"\nscope = "metric"\ndetector = "hst"\n')
    replayed = run(["replay", "--config", str(config), "--state", str(state), "-o", str(tmp_path / "out.lp"), "-"],
                   stream(600))
    assert replayed.returncode == 0, replayed.stderr
    summary = re.findall(rb"I! \[riverguard\] +\d+  (.+)", replayed.stderr)
    assert summary == [b"cpu,cpu=cpu-total,host=h1 (metric)", b"cpu,cpu=cpu-total,host=h0 (metric)"], replayed.stderr
    assert _series(state) == sorted(name.decode() for name in summary)
    for glob in ("cpu,cpu=cpu-total,host=h1 (metric)", "*h1 (metric)", "cpu,*h1*"):
        listed = run(["state", "inspect", str(state), "--series", glob])
        assert listed.stderr == b"" and [json.loads(row)["key"] for row in listed.stdout.splitlines()] == [
            "cpu,cpu=cpu-total,host=h1 (metric)"], (glob, listed.stderr)
    none = run(["state", "inspect", str(state), "--series", "cpu,cpu=cpu-total,host=h1"])  # a key names its field
    assert none.stdout == b"" and b"'measurement,tag=value (metric)'" in none.stderr, none.stderr


def test_inspect_oldest_and_newest_are_of_the_series_last_samples(tmp_path: Path) -> None:
    """The README said "oldest and newest sample"; they are the oldest and the newest of the series' last
    samples (a checkpoint keeps no first sample): the README says so now, and the keys stay."""
    state = tmp_path / "s.msgpack"
    lines = b"".join(b"m,host=b v=%d %d\n" % (i, T0 + i * 10**9) for i in range(6))
    lines += b"".join(b"m,host=a v=%d %d\n" % (i, T0 + i * 10**9) for i in range(3))  # last seen at +2 s
    result = run(["run", "--config", str(write_config(tmp_path)), "--state", str(state)], lines)
    assert result.returncode == 0, result.stderr
    summary = json.loads(inspect(state).stdout)
    # T0 + 0 s, the oldest sample, is nowhere: oldest is host=a's last, newest host=b's.
    assert (summary["oldest"], summary["newest"]) == ("2023-11-14T22:13:22Z", "2023-11-14T22:13:25Z")
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    inspect_item = readme[readme.index("- **Inspect.**"):readme.index("## Messages and troubleshooting")]
    assert "oldest and newest sample" not in inspect_item
    assert ("`oldest` and `newest`: not the first and the last sample learned, but the last sample of the series"
            " seen least recently and of the one seen most recently") in inspect_item


def test_missing_file_is_normal_and_inspect_reports(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "s.msgpack"
    result = run(["run", "--config", str(config), "--state", str(state)], stream(100))
    assert result.returncode == 0
    assert b"W! " not in result.stderr and b"E! " not in result.stderr
    assert b"I! [riverguard] no checkpoint" in result.stderr
    report = inspect(state)
    assert report.returncode == 0, report.stderr
    summary = json.loads(report.stdout)
    assert summary["format"] == "riverguard-state" and summary["version"] == 2
    assert summary["series"] == 4
    assert summary["detectors"] == {resolve("default").name: 4}
    assert summary["oldest"] == summary["newest"] == "2023-11-14T22:29:50Z"
    assert summary["bytes"] == state.stat().st_size


def test_inspect_fails_cleanly_on_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(b"\x00garbage")
    report = inspect(bad)
    assert report.returncode == 2 and report.stdout == b""
    assert report.stderr == b"E! [riverguard] %s: not a riverguard checkpoint (foreign format)\n" % bytes(bad)
    # A checkpoint cut inside its header (the first kilobyte or so) is said to be one, damaged; in words that
    # read as one sentence, parentheses never nested (it said "is unusable (a riverguard checkpoint damaged
    # (unreadable header: No more data to unpack.)); ...")
    state = tmp_path / "cut.msgpack"
    lines = b"".join(b"m,host=a v=%d %d\n" % (i, T0 + i * STEP) for i in range(3))
    assert run(["run", "--config", str(write_config(tmp_path)), "--state", str(state)], lines).returncode == 0
    state.write_bytes(state.read_bytes()[:100])
    damaged = b"a damaged riverguard checkpoint (unreadable header: no more data to unpack)"
    report = inspect(state)
    assert report.returncode == 2 and report.stdout == b""
    assert report.stderr == b"E! [riverguard] %s: %s\n" % (bytes(state), damaged)
    restart = run(["run", "--state", str(state)], lines)
    assert restart.returncode == 0, restart.stderr
    (aside,) = tmp_path.glob("cut.msgpack.corrupt-*")
    assert restart.stderr.splitlines()[0] == b"W! [riverguard] checkpoint %s is unusable: %s; renamed to %s; starting fresh" % (
        bytes(state), damaged, aside.name.encode())
    missing = inspect(tmp_path / "missing")
    assert missing.returncode == 2
    assert missing.stderr == b"E! [riverguard] %s: no such file\n" % bytes(tmp_path / "missing")
    # A folder is read as the checkpoint riverguard keeps in it: the message names that file.
    empty = inspect(tmp_path)
    assert empty.returncode == 2
    assert empty.stderr == b"E! [riverguard] %s: no such file\n" % bytes(tmp_path / "riverguard.msgpack")


def test_changed_rule_starts_fresh_and_says_so(tmp_path: Path) -> None:
    state = tmp_path / "s.msgpack"
    config = write_config(tmp_path, "zscore", params="[rule.params]\nfading_factor = 0.02")
    assert run(["run", "--config", str(config), "--state", str(state)], stream(200)).returncode == 0
    config = write_config(tmp_path, "zscore", params="[rule.params]\nfading_factor = 0.05")
    later = stream(100, start=200)
    changed = run(["run", "--config", str(config), "--state", str(state)], later)
    fresh = run(["run", "--config", str(config)], later)
    assert changed.stdout == fresh.stdout  # nothing carried over from the old parameters
    info = [line for line in changed.stderr.splitlines() if line.startswith(b"I! ") and b"restored" in line]
    assert info and b"restored 0 series" in info[0] and b"4 start fresh" in info[0], changed.stderr


#: Rules before and after a change: cpu's from scope "field" to "metric", mem's back, disk's turned off, net's
#: unchanged; and the data they learn from (40 samples: 4 cpu field models, 1 mem metric model, disk's, net's).
SCOPES_BEFORE = (
    '[[rule]]\nname = "cpu"\nmeasurement = "cpu"\ndetector = "hst"\n'
    '[[rule]]\nname = "mem"\nmeasurement = "mem"\nscope = "metric"\ndetector = "hst"\n'
    '[[rule]]\nname = "disk"\nmeasurement = "disk"\n'
    '[[rule]]\nname = "net"\nmeasurement = "net"\n'
)
SCOPES_AFTER = (
    '[[rule]]\nname = "cpu"\nmeasurement = "cpu"\nscope = "metric"\ndetector = "hst"\n'
    '[[rule]]\nname = "mem"\nmeasurement = "mem"\ndetector = "hst"\n'
    '[[rule]]\nname = "disk"\nmeasurement = "disk"\ndetector = "off"\n'
    '[[rule]]\nname = "net"\nmeasurement = "net"\n'
)
SCOPES_DATA = b"".join(
    b"cpu,host=h%d u=%d,v=2 %d\nmem,host=h0 a=%d,b=3 %d\ndisk,host=h0 free=%d %d\nnet,host=h0 rx=%d %d\n"
    % (i % 2, i % 7, i, i % 5, i, i % 3, i, i % 4, i) for i in range(1, 41)
)
#: How the I! lines of a restore and a reload count the models the change drops.
SCOPES_DROPPED = (
    b'4 field models dropped: a scope = "metric" rule now takes their fields into a metric\'s model; '
    b'1 metric model dropped: no scope = "metric" rule takes its metric any more; '
    b"1 no longer matches a scoring rule"
)


def _learned(tmp_path: Path, before_rules: str, after_rules: str, data: bytes) -> tuple[Path, Path, Path]:
    """A checkpoint of the models ``run`` learned from ``data`` under ``before_rules`` (a config file's text), that
    config file, and one holding ``after_rules``."""
    state = tmp_path / "s.msgpack"
    before = tmp_path / "before.toml"
    before.write_text(before_rules)
    after = tmp_path / "after.toml"
    after.write_text(after_rules)
    first = run(["run", "--config", str(before), "--state", str(state)], data)
    assert first.returncode == 0, first.stderr
    return state, before, after


def test_a_changed_scope_drops_the_models_it_cannot_use_and_says_why(tmp_path: Path) -> None:
    """A rule whose scope changed between restarts cannot use the other scope's models (one field's model
    cannot score a metric's fields together, nor the reverse): they are dropped, each count with its own
    reason in the restore's I! line; the series whose rule is unchanged keep their models."""
    state, before, after = _learned(tmp_path, SCOPES_BEFORE, SCOPES_AFTER, SCOPES_DATA)
    assert read_checkpoint(state)["series"] == 7  # cpu: 2 hosts x 2 fields; mem: 1 metric model; disk; net
    proc = run(["run", "--config", str(after), "--state", str(state)], FIRST)
    assert proc.returncode == 0, proc.stderr
    info = [line for line in proc.stderr.splitlines() if b"restored" in line]
    assert len(info) == 1 and info[0].startswith(b"I! [riverguard] restored 1 series from "), proc.stderr
    assert info[0].split(b"s; ", 1)[1] == SCOPES_DROPPED, info
    assert read_checkpoint(state)["series"] == 1  # net's, with its samples
    kept = [json.loads(line) for line in run(["state", "inspect", str(state), "--series"]).stdout.splitlines()]
    assert [(s["key"], s["samples"]) for s in kept] == [("net,host=h0 rx", 40)]
    # A model barred by a field of the user's (here: `explain` turned on for host b's rule too, while the
    # user's string w_anomaly_expected was noted under host a's, which explains w) is dropped for that
    # reason, not for matching no rule.
    state.unlink()
    before.write_text('[[rule]]\nname = "a"\ntags = {host = "a"}\nexplain = true\n[[rule]]\nname = "all"\n')
    after.write_text('[output]\nexplain = true\n[[rule]]\nname = "a"\ntags = {host = "a"}\n[[rule]]\nname = "all"\n')
    first = run(["run", "--config", str(before), "--state", str(state)],
                b'cpu,host=b w=1 1\ncpu,host=a w=2,w_anomaly_expected="x" 2\n')
    assert first.returncode == 0 and read_checkpoint(state)["series"] == 1, first.stderr
    proc = run(["run", "--config", str(after), "--state", str(state)], FIRST)
    info = [line for line in proc.stderr.splitlines() if b"restored" in line]
    assert len(info) == 1 and info[0].split(b"s; ", 1)[1] == (
        b"1 dropped: a field of yours holds one of its added names with another type"
    ), proc.stderr


def test_a_series_key_the_parser_now_refuses_drops_that_series_only(tmp_path: Path) -> None:
    """A checkpoint of an earlier version that took a tag key given twice (``m,a=1,a=2 v``: refused now, as
    InfluxDB refuses it) restores every other series: that one is dropped, with its reason in the restore's
    I! line. (It was the whole checkpoint: set aside as unusable, every model lost.)"""
    config = write_config(tmp_path)
    state = tmp_path / "s.msgpack"
    data = b"cpu,host=a v=1 1\nm,a=1,b=2 v=1 3\n"
    assert run(["run", "--config", str(config), "--state", str(state)], data).returncode == 0
    checkpoint = store.read(state)
    records = [list(r) for r in checkpoint.records]
    assert sorted(r[0] for r in records) == [b"cpu,host=a v", b"m,a=1,b=2 v"]
    for record in records:
        if record[0].startswith(b"m,"):
            record[0] = b"m,a=1,a=2 v"  # as the earlier version checkpointed it
    store.write(state, checkpoint.header, records)
    proc = run(["run", "--config", str(config), "--state", str(state)], b"cpu,host=a v=2 5\n")
    assert proc.returncode == 0, proc.stderr
    info = [line for line in proc.stderr.splitlines() if b"restored" in line]
    assert len(info) == 1 and info[0].startswith(b"I! [riverguard] restored 1 series from "), proc.stderr
    assert info[0].split(b"s; ", 1)[1] == (
        b"1 dropped: its series key is not valid line protocol any more (a tag key given twice?)"
    ), info
    assert b"unusable" not in proc.stderr and not list(tmp_path.glob("s.msgpack.corrupt-*"))
    kept = [json.loads(line) for line in run(["state", "inspect", str(state), "--series"]).stdout.splitlines()]
    assert [(s["key"], s["samples"]) for s in kept] == [("cpu,host=a v", 2)]


def test_a_reload_counts_each_reason_a_model_is_dropped_apart(tmp_path: Path, start) -> None:
    """SIGHUP's I! line gives the same reasons as a restore's (one table for both): the scope changes, a rule
    turned off, another detector (io), and a model barred by a field of the user's (gpu: host b's rule now
    explains w, whose w_anomaly_expected is the user's string, noted under host a's rule) are told apart.
    Only net's model is kept."""
    extra = '[[rule]]\nname = "io"\nmeasurement = "io"\n[[rule]]\nname = "gpu-a"\nmeasurement = "gpu"\n' \
            'tags = {host = "a"}\nexplain = true\n[[rule]]\nname = "gpu"\nmeasurement = "gpu"\n'
    config = tmp_path / "rg.toml"
    config.write_text(SCOPES_BEFORE + extra)
    data = SCOPES_DATA + b"".join(b"io,host=h0 r=%d %d\ngpu,host=b w=%d %d\n" % (i % 3, i, i % 6, i) for i in range(1, 41))
    data += b'gpu,host=a w=1,w_anomaly_expected="x" 41\n'
    proc = start("run", "--config", str(config))
    proc.ready()
    proc.write(data)
    assert proc.wait_lines(data.count(b"\n"), 60), proc.stderr
    config.write_text(SCOPES_AFTER + extra.replace('"io"\n', '"io"\ndetector = "zscore"\n', 1) + "explain = true\n")
    proc.popen.send_signal(signal.SIGHUP)
    assert proc.wait_stderr(lambda e: b"reloaded" in e, 30), proc.stderr
    proc.close_stdin()
    assert proc.wait(60) == 0
    info = [line for line in proc.stderr.splitlines() if b"reloaded" in line]
    assert info == [
        b"I! [riverguard] received SIGHUP: config " + str(config).encode() + b" reloaded, 7 rule(s); "
        b"1 series keeps its model; 1 starts fresh because its rule or parameters changed; " + SCOPES_DROPPED
        + b"; 1 dropped: a field of yours holds one of its added names with another type"
    ], proc.stderr


#: A scope = "metric" rule for cpu, and a catch-all after it; and the same two the other way round (the catch-all
#: first takes every field: the metric rule takes none, as if it were gone).
_WHOLE_CPU = '[[rule]]\nname = "whole"\nmeasurement = "cpu"\nscope = "metric"\ndetector = "hst"\n'
HIDDEN_BEFORE = _WHOLE_CPU + '[[rule]]\nname = "all"\n'
HIDDEN_AFTER = '[[rule]]\nname = "all"\n' + _WHOLE_CPU
HIDDEN_DATA = b"".join(
    b"cpu,host=a u=%d,w=2 %d\ncpu,host=b u=%d %d\nmem,host=a v=%d %d\n" % ((i % 3, i) * 3) for i in range(1, 21)
)


def _series(state: Path) -> list[str]:
    """The keys of the series a checkpoint holds (``state inspect --series``)."""
    listed = run(["state", "inspect", str(state), "--series"])
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line)["key"] for line in listed.stdout.splitlines()]


def test_a_metric_rule_behind_a_catch_all_keeps_no_models(tmp_path: Path, start) -> None:
    """A scope = "metric" rule that an earlier catch-all hides takes no field: its metric models are dropped at a
    restore and at a reload, as those of a rule that is gone, with the same I! line (they were kept, checkpointed
    and counted against max_series until series_ttl expired them)."""
    state, _, after = _learned(tmp_path, HIDDEN_BEFORE, HIDDEN_AFTER, HIDDEN_DATA)
    assert _series(state) == ["cpu,host=a (metric)", "cpu,host=b (metric)", "mem,host=a v"]
    saved = state.read_bytes()
    gone = tmp_path / "gone.toml"
    gone.write_text('[[rule]]\nname = "all"\n')
    for config in (after, gone):
        state.write_bytes(saved)
        proc = run(["run", "--config", str(config), "--state", str(state)], b"cpu,host=a u=1,w=2 21\n")
        assert proc.returncode == 0, proc.stderr
        info = [line for line in proc.stderr.splitlines() if b"restored" in line]
        assert len(info) == 1 and info[0].partition(b"s; ")[2] == (
            b'2 metric models dropped: no scope = "metric" rule takes their metric any more'
        ), proc.stderr
        assert info[0].startswith(b"I! [riverguard] restored 1 series from ")
        assert _series(state) == ["cpu,host=a u", "cpu,host=a w", "mem,host=a v"], config
    # A reload to rules where a catch-all for cpu alone comes first (it hides the metric rule in cpu only, and a
    # W! now says so) drops them too.
    config = tmp_path / "rg.toml"
    config.write_text(HIDDEN_BEFORE)
    state.unlink()
    proc = start("run", "--config", str(config), "--state", str(state))
    proc.ready()
    proc.write(HIDDEN_DATA)
    assert proc.wait_lines(HIDDEN_DATA.count(b"\n"), 60), proc.stderr
    config.write_text('[[rule]]\nname = "cpu"\nmeasurement = "cpu"\n' + HIDDEN_BEFORE)
    proc.popen.send_signal(signal.SIGHUP)
    assert proc.wait_stderr(lambda e: b"reloaded" in e, 30), proc.stderr
    proc.close_stdin()
    assert proc.wait(60) == 0
    info = [line for line in proc.stderr.splitlines() if b"reloaded" in line]
    assert len(info) == 1 and info[0].endswith(
        b"reloaded, 3 rule(s); 1 series keeps its model; "
        b'2 metric models dropped: no scope = "metric" rule takes their metric any more'
    ), proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith(b"W! ")] == [
        b'W! [riverguard] %s: rule 2 "whole" is never used: rule 1 "cpu" before it matches every field of every '
        b"metric it matches" % bytes(config),
    ], proc.stderr
    assert _series(state) == ["mem,host=a v"]


DATA = Path(__file__).parent / "data"


def _fixture(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A copy of ``tests/data/checkpoint-NAME-state.msgpack`` to run on, and a config file holding the
    rules the fixtures were written with (:data:`FIXTURE_RULES`)."""
    state = tmp_path / "s.msgpack"
    state.write_bytes((DATA / f"checkpoint-{name}-state.msgpack").read_bytes())
    config = tmp_path / "rules.toml"
    config.write_text(FIXTURE_RULES)
    return state, config


def test_checkpoint_with_positional_states_starts_fresh_and_says_so(tmp_path: Path) -> None:
    """A checkpoint written before detector states were saved by name (riverguard 0.1.0 up to the
    detector refactor): its series start fresh with the usual I! line; the file is not set aside."""
    state, _ = _fixture(tmp_path, "positional")
    proc = run(["replay", "--state", str(state), str(DATA / "checkpoint-positional-state.lp")])
    assert proc.returncode == 0, proc.stderr
    assert b"restored 0 series" in proc.stderr and b"2 start fresh because their rule or parameters changed" in proc.stderr
    assert b"W!" not in proc.stderr and b"unusable" not in proc.stderr
    assert not list(tmp_path.glob("*.corrupt-*"))
    assert read_checkpoint(state)["series"] == 2  # rewritten in the new layout


#: The rules the checkpoint-*-state.msgpack files were written with (a context and a sentinel series).
# (the models in the fixtures were saved before the spike, shift, spread, counter and views steps were part of sentinel:
# spike = 0, shift = 0, spread = 0, counter_time = 0 and peak = 0 is that rule, with that rule's fingerprint and state layout)
FIXTURE_RULES = ('[[rule]]\nname = "w"\nfields = ["w"]\ndetector = "context"\nwarmup = 50\n\n'
                 '[[rule]]\nname = "rest"\nwarmup = 50\nparams = { spike = 0.0, shift = 0.0, spread = 0.0, counter_time = 0.0, peak = 0.0 }\n')


def test_checkpoint_with_states_by_name_from_0c40294_starts_fresh_and_says_so(tmp_path: Path) -> None:
    """A checkpoint written by 0c40294 (states saved by name, one mapping per step) is in another state
    layout than the flat record: its series start fresh with the usual I! line, nothing is misread,
    the file is not set aside, and the output is that of a fresh start."""
    state, config = _fixture(tmp_path, "by-name")
    later = str(DATA / "checkpoint-by-name-state.lp")
    proc = run(["replay", "--config", str(config), "--state", str(state), later])
    fresh = run(["replay", "--config", str(config), later])
    assert proc.returncode == 0, proc.stderr
    assert b"restored 0 series" in proc.stderr and b"2 start fresh because their rule or parameters changed" in proc.stderr
    assert b"W!" not in proc.stderr and b"unusable" not in proc.stderr
    assert not list(tmp_path.glob("*.corrupt-*"))
    assert proc.stdout == fresh.stdout != (DATA / "checkpoint-by-name-state.out").read_bytes()
    assert read_checkpoint(state)["series"] == 2  # rewritten in the new layout


@pytest.mark.parametrize("pure", [False, True])
def test_checkpoint_with_flat_records_keeps_its_models(tmp_path: Path, pure: bool) -> None:
    """The same two models as the 0c40294 checkpoint above (300 samples each), saved as flat records
    (``STATE_LAYOUT`` "record 2"; converted once from that file, name by name, given the series'
    last event time as ``t1`` when that was added, and its interval, 600 s, as ``gap`` when the
    pipeline took that over from the spike step): the next 100 samples come out byte for
    byte as 0c40294 wrote them in one uninterrupted run of all 400, compiled and pure (``long_time``
    bounds the likelihood's weight only after 1 000 samples). Carry this file over when the layout
    changes: ``python tests/data/relayout_fixture.py`` (it was, when the new-extremes step kept the range
    before a reported episode, and when the stuck step kept a debt: those values at a fresh model's)."""
    state, config = _fixture(tmp_path, "record")
    env = {**os.environ, "RIVERGUARD_PURE_PYTHON": "1" if pure else ""}
    proc = subprocess.run(
        [*RG, "replay", "--config", str(config), "--state", str(state), str(DATA / "checkpoint-by-name-state.lp")],
        capture_output=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert b"restored 2 series" in proc.stderr and b"start fresh" not in proc.stderr, proc.stderr
    assert proc.stdout == (DATA / "checkpoint-by-name-state.out").read_bytes()
    assert b"w_anomaly=true" in proc.stdout  # the state carried what it takes to flag the incident at sample 350


def test_inspect_shows_each_series_state_by_name(tmp_path: Path) -> None:
    """``state inspect --with-state``: each series' learned state under the names its steps declare, read
    through the layout the checkpoint's header says it was saved in; a checkpoint saved by name
    (0c40294) is shown as saved."""
    config = write_config(tmp_path)
    state = tmp_path / "s.msgpack"
    assert run(["run", "--config", str(config), "--state", str(state)], stream(300)).returncode == 0
    listed = run(["state", "inspect", str(state), "--series", "*usage_idle", "--with-state"])
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    cls = REGISTRY[resolve("default").name]
    assert len(rows) == 2
    for row in rows:
        named = row["state"]
        assert list(named) == ["n", "t0", "t1", "gap"] + [n for n, step in cls.STEPS if step.SWITCH is None or cls.defaults()[step.SWITCH]]
        assert named["n"] == row["samples"] == 300 and named["t0"] == T0 / 1e9
        assert list(named["stuck"]) == list(cls.STEPS[5][1].STATE) and type(named["stuck"]["rep"]) is bool
        assert named["surprise"]["counts"] == "<1000 bytes>" and 60.0 < named["error"]["mean"] < 90.0
    old = run(["state", "inspect", str(DATA / "checkpoint-by-name-state.msgpack"), "--with-state"])
    assert old.returncode == 0, old.stderr
    assert [json.loads(line)["state"]["n"] for line in old.stdout.splitlines()] == [300, 300]


def test_inspect_prints_json_that_reads_back_as_saved(tmp_path: Path) -> None:
    """Every form of ``state inspect`` prints JSON: a state saved by name that holds a nil and a list
    (none of today's detectors saves one; a checkpoint from another build, or edited) shows them as null
    and an array, not as Python's text ``"None"``; a float that is not finite as its name."""
    config = write_config(tmp_path, "zscore")
    state = tmp_path / "s.msgpack"
    assert run(["run", "--config", str(config), "--state", str(state)], stream(50)).returncode == 0
    checkpoint = store.read(state)
    records = [list(r) for r in checkpoint.records]
    saved = records[0][6][0]
    records[0][6] = [{**saved, "last": None, "recent": [1.5, None, float("inf")], "gap": float("nan")}]
    store.write(state, checkpoint.header, records)
    summary = json.loads(inspect(state).stdout)
    assert summary["series"] == 4 and summary["detectors"] == {"zscore": 4}
    for args in (["--series"], ["--with-state"]):
        listed = run(["state", "inspect", str(state), *args])
        assert listed.returncode == 0, listed.stderr
        rows = {row["key"]: row for row in map(json.loads, listed.stdout.splitlines())}
        assert len(rows) == 4 and all(row["samples"] == 50 for row in rows.values())
    edited = rows[records[0][0].decode()]["state"]
    assert edited["last"] is None and edited["recent"] == [1.5, None, "inf"] and edited["gap"] == "nan"
    assert edited["n"] == saved["n"] == 50 and edited["mean"] == f"<{len(saved['mean'])} bytes>"


@pytest.mark.parametrize("layout", ["record 3 | x:4", "", "record 2: n:q t0 | a:4", "record 2: n:q | a"])
def test_inspect_shows_no_state_for_a_header_layout_it_cannot_read(layout: str) -> None:
    """A damaged or foreign layout in a checkpoint's header: ``state inspect --with-state`` shows that
    series' state as null (ValueError inside), never a traceback."""
    from riverguard.detectors import Sentinel
    from riverguard.detectors.steps import read_record
    from riverguard.state import _named

    det = Sentinel()
    for i in range(300):
        det.process(50.0 + i % 7, T0 / 1e9 + 60.0 * i)
    record = det.dump_state()
    assert _named([record], Sentinel.STATE_LAYOUT)["n"] == 300  # the record itself is sound
    with pytest.raises(ValueError):
        read_record(layout, record)
    assert _named([record], layout) is None


def _start(config: Path, state: Path, stderr: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """``riverguard run --config CONFIG --state STATE`` with its stdin and stdout on pipes, as Telegraf starts it."""
    return subprocess.Popen(
        [*RG, "run", "--config", str(config), "--state", str(state)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
    )


def test_checkpoints_failing_in_a_row_are_told_once_a_minute_and_the_first_written_again(tmp_path: Path) -> None:
    """Each failed checkpoint had its E! line (pull commits each pass: one every --every) and the first one
    written again none. Now the first failure of a streak is told, then one a minute at most (how many, since
    when), and always a save that asks to be told (a process's last); an I! line when one is written again."""
    from riverguard.config import parse as parse_config
    from riverguard.engine import Engine
    from riverguard.log import Log
    from riverguard.state import FAILURE_REPEAT, StateStore

    lines = io.StringIO()
    store = StateStore(Engine(parse_config(""), Log("info", lines)), tmp_path / "cp.msgpack")
    now = [0.0]
    store.clock = lambda: now[0]
    store.path.mkdir()  # a folder where the checkpoint goes: it cannot replace it (as root too)

    def save_at(t: float, tell: bool = False) -> list[str]:
        now[0] = t
        start = len(lines.getvalue())
        assert store.save(tell) is not store.path.is_dir()
        return lines.getvalue()[start:].splitlines()

    first = save_at(0)
    assert len(first) == 1 and first[0].startswith(f"E! [riverguard] checkpoint to {store.path} failed: [Errno 21]")
    assert store.error and store.error.startswith("[Errno 21] Is a directory")
    assert save_at(10) == save_at(FAILURE_REPEAT - 1) == []
    again = save_at(FAILURE_REPEAT)
    assert len(again) == 1
    assert again[0].startswith(f"E! [riverguard] checkpoint to {store.path} failed again: [Errno 21]")
    assert again[0].endswith(" (4 failed in a row; none written by this process yet)")
    assert save_at(FAILURE_REPEAT + 10) == []
    assert save_at(FAILURE_REPEAT + 20, tell=True)[0].endswith(" (6 failed in a row; none written by this process yet)")
    store.path.rmdir()
    assert save_at(100) == [f"I! [riverguard] checkpoint to {store.path} written again, after 6 failed attempt(s)"]
    assert store.error is None and store.failures == 6 and store.checkpoints == 1
    assert save_at(110) == []
    store.path.unlink()
    store.path.mkdir()
    new = save_at(115)  # a new streak: told at once
    assert len(new) == 1 and new[0].startswith(f"E! [riverguard] checkpoint to {store.path} failed: [Errno 21]")
    assert save_at(116) == []
    assert save_at(175)[0].endswith(" (3 failed in a row; the last one written 65s ago)")


def test_run_tells_a_checkpoint_failing_in_a_row_once_and_when_it_is_written_again(tmp_path: Path) -> None:
    """run checkpoints every checkpoint_interval: with its folder made read-only, an E! line each time; now one
    (again once a minute at most), an I! line when one is written again, and the final one is always told."""
    prefix = as_a_user(tmp_path)
    folder = tmp_path / "state"
    folder.mkdir()
    state = folder / "s.msgpack"
    # (the health line, every second while idle, counts the checkpoints that failed, told or not)
    config = write_config(tmp_path, extra='[state]\ncheckpoint_interval = "1s"\n[monitor]\ninterval = "1s"')
    proc = Proc(["run", "--config", str(config), "--state", str(state)], cmd=[*prefix, *RG])

    def failed() -> int:
        counts = re.findall(rb"^riverguard,.*[ ,]checkpoint_failures=([0-9]+)i", proc.stdout, re.M)
        return int(counts[-1]) if counts else 0

    try:
        proc.write(stream(5))
        assert wait_until(lambda: proc.stdout.count(b"\ncpu,") + proc.stdout.startswith(b"cpu,") >= 10, 30), \
            proc.stderr
        assert wait_until(state.exists, 30), proc.stderr  # the first checkpoint
        folder.chmod(0o555)
        assert proc.wait_stderr(lambda err: b"E! " in err, 30), proc.stderr  # the first that fails
        assert wait_until(lambda: failed() >= 2, 30), proc.stdout[-2000:]  # and one more, told by no line
        told = proc.stderr.decode()
        assert told.count("E! ") == 1 and f"E! [riverguard] checkpoint to {state} failed: [Errno 13]" in told, told
        folder.chmod(0o755)
        assert proc.wait_stderr(lambda err: b"written again" in err, 30), proc.stderr
        again = proc.stderr.decode().splitlines()[-1]
        assert again.startswith(f"I! [riverguard] checkpoint to {state} written again, after "), again
        assert int(again.split("after ")[1].split(" ")[0]) >= 2, again  # (all but the first told by no line)
        folder.chmod(0o555)
        # the first of the new streak before the end, so that the final one is "failed again" however loaded
        assert proc.wait_stderr(lambda err: err.count(b"E! ") >= 2, 30), proc.stderr
        proc.close_stdin()
        assert proc.wait(30) == 1, proc.stderr
    finally:
        folder.chmod(0o755)
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.wait(30)
    last = proc.stderr.decode().split(again, 1)[1]
    errors = [line for line in last.splitlines() if line.startswith("E! ")]
    assert len(errors) == 3, last
    assert errors[0].startswith(f"E! [riverguard] checkpoint to {state} failed: [Errno 13]")
    assert errors[1].startswith(f"E! [riverguard] checkpoint to {state} failed again: [Errno 13]")  # the final one
    assert errors[2] == "E! [riverguard] the final checkpoint failed: the models learned since the last one are lost"


def test_replay_whose_final_checkpoint_fails_writes_its_output_and_exits_1(tmp_path: Path) -> None:
    """replay --state did not look at its checkpoint's save: an E! line, then exit 0, the models it learned
    lost. Now exit 1 as run's final checkpoint does, after the same E! line; the output is written all the
    same (it is right: only the checkpoint is behind). (A file size limit below the checkpoint's size, as a
    full disk: unlike a read-only folder, refused at start, nothing says so before the checkpoint is written.)"""
    import resource

    folder = tmp_path / "state"
    folder.mkdir()
    state, config = folder / "s.msgpack", write_config(tmp_path)
    lines = stream(300).splitlines(keepends=True)
    first, rest = tmp_path / "first.lp", tmp_path / "rest.lp"
    first.write_bytes(b"".join(lines[:300]))
    rest.write_bytes(b"".join(lines[300:]))
    whole = run(["replay", "--config", str(config), str(first), str(rest)])
    a = run(["replay", "--config", str(config), "--state", str(state), str(first)])
    assert whole.returncode == a.returncode == 0, (whole.stderr, a.stderr)
    saved = state.read_bytes()
    limit = len(saved) // 2  # (stdout, a pipe, has no such limit)
    b = subprocess.run([*RG, "replay", "--config", str(config), "--state", str(state), str(rest)],
                       capture_output=True, timeout=120,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert b.returncode == 1, b.stderr
    errors = [line for line in b.stderr.decode().splitlines() if line.startswith("E! ")]
    assert len(errors) == 2, b.stderr
    assert errors[0].startswith(f"E! [riverguard] checkpoint to {state} failed: [Errno 27] File too large")
    assert errors[1] == "E! [riverguard] the final checkpoint failed: the models learned since the last one are lost"
    assert a.stdout + b.stdout == whole.stdout
    assert state.read_bytes() == saved
    assert sorted(p.name for p in folder.iterdir()) == ["s.msgpack", "s.msgpack.lock"]
    assert b"Traceback" not in b.stderr


def _peak_rss(args: list[str]) -> int:
    """The peak RSS (bytes) of ``riverguard`` run with ``args``, which must succeed."""
    proc = subprocess.Popen([*RG, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr
    told = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    assert proc.returncode == 0, told
    return usage.ru_maxrss * 1024


def test_a_large_checkpoint_is_written_without_a_copy_of_it_in_memory(tmp_path: Path) -> None:
    """A checkpoint's body (every series' model) was packed whole in memory before it was written: saving
    20 000 series (a 63 MiB file) took 63 MiB more than the process held, as did run's periodic checkpoint
    in its child, on top of the pages it copies. Now it is written out as it is packed: the process that
    saves them peaks 2.7 MiB above the same process without --state, and the file reads back whole."""
    series = 20_000
    data = tmp_path / "in.lp"
    data.write_bytes(b"".join(f"cpu,host=h{h} v={(h * 7 + i) % 13}.5 {T0 + i * STEP}\n".encode()
                              for i in range(2) for h in range(series)))
    config, state = write_config(tmp_path), tmp_path / "s.msgpack"
    without = _peak_rss(["replay", "--config", str(config), str(data)])
    with_state = _peak_rss(["replay", "--config", str(config), "--state", str(state), str(data)])
    size = state.stat().st_size
    assert size > 40 << 20, size
    assert with_state - without < size // 8, (with_state - without, size)
    assert json.loads(inspect(state).stdout)["series"] == series


def test_sigterm_writes_a_checkpoint(tmp_path: Path) -> None:
    state = tmp_path / "s.msgpack"
    config = write_config(tmp_path)
    proc = _start(config, state)
    assert proc.stdin and proc.stdout
    proc.stdin.write(stream(20))
    proc.stdin.flush()
    for _ in range(40):
        proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert json.loads(inspect(state).stdout)["series"] == 4


def test_periodic_checkpoint_while_running(tmp_path: Path) -> None:
    state = tmp_path / "s.msgpack"
    config = write_config(tmp_path, extra='[state]\ncheckpoint_interval = "1s"')
    proc = _start(config, state, subprocess.DEVNULL)
    assert proc.stdin and proc.stdout
    try:
        proc.stdin.write(stream(5))
        proc.stdin.flush()
        for _ in range(10):
            proc.stdout.readline()
        deadline = time.monotonic() + 5
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.exists(), "no checkpoint within 5 s with checkpoint_interval = 1s and stdin still open"
    finally:
        proc.kill()
        proc.wait()


# -- a checkpoint in use: Telegraf's second copy of the processor, after the aggregators ---------------


def _passes_through_for_life(proc: Proc, data: bytes, meanwhile: Callable[[], bool] = lambda: True) -> None:
    """A ``run`` that passes every metric through: half of ``data``'s lines before a SIGHUP (``meanwhile``
    once they are written), half after, all of it back as it came; still running (nothing for Telegraf to
    restart) until stdin closes, then exit 0."""
    lines = data.splitlines(keepends=True)
    half = len(lines) // 2
    proc.write(b"".join(lines[:half]))
    assert meanwhile(), proc.stderr
    assert proc.wait_lines(half, 60), proc.stderr
    proc.popen.send_signal(signal.SIGHUP)
    proc.write(b"".join(lines[half:]))
    assert proc.wait_lines(len(lines), 30), proc.stderr
    assert proc.popen.poll() is None, proc.stderr
    proc.close_stdin()
    assert proc.wait(30) == 0, proc.stderr
    assert proc.stdout == data  # every metric, as it came, unscored


def _has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open."""
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        return any(os.readlink(fd) == str(path) for fd in fds.iterdir())
    return False


def test_of_two_copies_on_one_checkpoint_the_one_sent_metrics_first_scores(tmp_path: Path, start) -> None:
    """With aggregators Telegraf starts two copies of the processor on one [state] path, the one after the
    aggregators first; it is sent nothing until the aggregators' first period, while the one before them
    has the inputs' metrics at their first gather. Both took the lock at start, so the copy started first
    usually had it, and every metric of the inputs went back unscored. The lock is now taken at the first
    input: the copy sent metrics first scores them (README, "Aggregators")."""
    state = tmp_path / "rg.msgpack"
    after = start("run", "--state", str(state))  # started first; no metric for it yet
    assert wait_until(lambda: _has_open(after.popen.pid, tmp_path / "rg.msgpack.lock"), 30), after.stderr
    before = start("run", "--state", str(state))
    data = stream(20)
    before.write(data)
    before.close_stdin()
    assert before.wait(60) == 0, before.stderr
    assert before.stdout.count(b"usage_idle_anomaly_score=") == 40, before.stderr
    assert b"W! " not in before.stderr and b"in use" not in before.stderr
    assert b"W! " not in after.stderr  # it waits for a metric: it has not tried the lock
    after.write(stream(5, start=20))  # the aggregators' first metrics, once the inputs' copy has stopped
    after.close_stdin()
    assert after.wait(60) == 0, after.stderr
    assert b"restored 4 series" in after.stderr and after.stdout.count(b"usage_idle_anomaly_score=") == 10


@pytest.mark.parametrize("stop", ["eof", "sigterm"])
def test_a_run_stopped_before_any_input_leaves_the_checkpoint_alone(tmp_path: Path, start, stop: str) -> None:
    """A ``run`` stopped before its first metric (Telegraf's copy after the aggregators, stopped before their
    first period) loaded the checkpoint and wrote it again, the same models: seconds of Telegraf's 10 s
    shutdown for a large one, and a SIGKILL mid-write on busy cores. With nothing read it now takes neither
    the lock nor the checkpoint: the file is left as it was."""
    state = tmp_path / "rg.msgpack"
    assert run(["run", "--state", str(state)], stream(20)).returncode == 0
    before = state.stat()
    proc = start("run", "--state", str(state))
    if stop == "eof":
        proc.close_stdin()
    else:
        time.sleep(1.0)  # (past Python's start: riverguard's handlers are in place)
        proc.terminate()
    assert proc.wait(30) == 0, proc.stderr
    after = state.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert b"restored" not in proc.stderr and b"checkpoint" not in proc.stderr, proc.stderr
    assert proc.stdout == b""


def _settled(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` has used no CPU for 0.5 s (its start and what it does before any input done)."""
    def cpu() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime (ticks)

    deadline = time.monotonic() + timeout
    last, since = cpu(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = cpu()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 0.5:
            return True
    return False


def test_the_first_metric_after_a_start_does_not_wait_for_the_checkpoint_to_load(tmp_path: Path, start) -> None:
    """``run`` takes the checkpoint's lock at its first metric, and loaded the checkpoint only then: the
    first metric after a start waited for the whole load (0.68 to 1.12 s for 20 000 series), and every
    input of Telegraf's single-threaded processor chain with it. The checkpoint is now read and decoded
    while ``run`` waits for its first metric: that metric comes back in a fraction of a load's time. The
    thread that read it is gone by then (checkpoints are written by a forked child)."""
    from riverguard.config import load
    from riverguard.engine import Engine
    from riverguard.state import StateStore

    config, state = write_config(tmp_path), tmp_path / "rg.msgpack"
    series = 20_000
    data = b"".join(b"m,h=h%d v=%d %d\n" % (i, i % 7, T0 + i) for i in range(series))
    assert run(["run", "--config", str(config), "--state", str(state)], data).returncode == 0
    began = time.monotonic()  # a load of the checkpoint, here and now
    assert StateStore(Engine(load(config)), state).restore() == series
    cold = time.monotonic() - began
    proc = start("run", "--config", str(config), "--state", str(state))
    assert _settled(proc.popen.pid, 30), proc.stderr
    began = time.monotonic()
    proc.write(b"m,h=h1 v=3 %d\n" % (T0 + series))
    assert proc.wait_lines(1, 60), proc.stderr
    waited = time.monotonic() - began
    assert waited < cold / 2, (waited, cold, proc.stderr)
    assert os.listdir(f"/proc/{proc.popen.pid}/task") == [str(proc.popen.pid)]  # no thread but the main one
    proc.close_stdin()
    assert proc.wait(60) == 0, proc.stderr
    assert b"restored %d series" % series in proc.stderr and proc.stdout.count(b"\n") == 1


@pytest.mark.parametrize("meanwhile", ["replaced", "created"])
def test_a_checkpoint_written_between_start_and_first_metric_is_the_one_restored(tmp_path: Path, start,
                                                                                   meanwhile: str) -> None:
    """``run`` reads the checkpoint while it waits for its first metric, before it has the lock; another
    process may write one meanwhile (the holder of a restart's overlap, at its final checkpoint): at the lock
    ``run`` restores the file there then, whether it replaced the one read or came where there was none.
    Its output is that of a ``run`` that found that checkpoint at start."""
    config, state = write_config(tmp_path), tmp_path / "rg.msgpack"
    if meanwhile == "replaced":
        assert run(["run", "--config", str(config), "--state", str(state)], stream(20)).returncode == 0  # 4 series
    written = tmp_path / "written"
    written.mkdir()
    assert run(["run", "--config", str(config), "--state", str(written / "rg.msgpack")],
               stream(30, hosts=3, seed=2)).returncode == 0  # 6 series
    shutil.copy(written / "rg.msgpack", tmp_path / "copy.msgpack")
    proc = start("run", "--config", str(config), "--state", str(state))
    assert _settled(proc.popen.pid, 30), proc.stderr
    os.replace(written / "rg.msgpack", state)
    data = stream(10, hosts=3, seed=3, start=30)
    proc.write(data)
    proc.close_stdin()
    assert proc.wait(60) == 0, proc.stderr
    assert b"restored 6 series" in proc.stderr, proc.stderr
    expected = run(["run", "--config", str(config), "--state", str(tmp_path / "copy.msgpack")], data)
    assert expected.returncode == 0 and b"restored 6 series" in expected.stderr
    assert proc.stdout == expected.stdout


def test_a_second_run_on_a_checkpoint_in_use_passes_every_metric_through(tmp_path: Path, start) -> None:
    """With aggregators Telegraf starts a second copy of each processor, here on the same [state] path. It
    waited 10 s for the lock, then exited 2 without reading stdin: every metric sent to it was lost, and
    Telegraf restarted it every restart_delay (a crash loop). Now it says why in one W! line and passes
    every metric through unscored, byte for byte, for its whole life (SIGHUP too). replay, a one-shot
    command, still fails loudly (exit 2)."""
    config = write_config(tmp_path, extra='[state]\npath = "rg.msgpack"\n')
    holder = start("run", "--config", str(config))
    holder.ready()
    holder.write(stream(300))
    assert holder.wait_lines(600, 60), holder.stderr
    data = stream(20, seed=5, start=300)
    # A temporary checkpoint beside the one in use (the holder's, being written, or one a killed process left):
    # only a holder of the lock may remove it, and the second never holds it. (No PID is that high.)
    writing = tmp_path / ".rg.msgpack.tmp-4194305"
    writing.write_bytes(b"x" * 3000)
    # The second copy's config asks for a health line too: it writes none (README, "Aggregators").
    second_config = tmp_path / "second.toml"
    second_config.write_text('[monitor]\ninterval = "1s"\n' + config.read_text())
    # replay waits for the lock as long as the second copy (10 s) before it fails: both wait at once
    recording = tmp_path / "more.lp"
    recording.write_bytes(data)
    replay = spawn([*RG, "replay", "--config", str(config), "--state", str(tmp_path / "rg.msgpack"), str(recording)],
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = start("run", "--config", str(second_config))
    # (the first half while it waits for the lock: read, and not lost)
    _passes_through_for_life(second, data, lambda: second.wait_stderr(lambda e: b"W! " in e, 60))  # no health line
    log = second.stderr.splitlines()
    warned = [line for line in log if line.startswith(b"W! ")]
    assert len(warned) == 1, second.stderr
    assert f"in use by another riverguard (PID {holder.popen.pid}".encode() in warned[0]
    assert b"skip_processors_after_aggregators = true" in warned[0] and b"its own --state" in warned[0]
    # Which of Telegraf's two copies takes the lock is the one sent a metric first (README, "Aggregators"):
    # usually, not always, the one before the aggregators; the line must not tell the user it is the other.
    assert b"second copy" not in warned[0] and b"sent a metric first" in warned[0], warned[0]
    assert not any(line.startswith(b"E! ") for line in log), second.stderr
    assert writing.read_bytes() == b"x" * 3000 and b"temporary checkpoint" not in second.stderr

    replayed_out, replayed_err = replay.communicate(timeout=120)
    assert replay.returncode == 2 and replayed_out == b"", replayed_err
    assert b"E! [riverguard] checkpoint" in replayed_err and b"in use by another riverguard" in replayed_err

    holder.close_stdin()  # the holder's models were never touched by the others
    assert holder.wait(30) == 0, holder.stderr
    after = run(["run", "--config", str(config)], data)  # the next start scores again, with the holder's models
    assert after.returncode == 0 and b"restored 4 series" in after.stderr, after.stderr
    assert b"removed 1 temporary checkpoint file(s) (3000 bytes)" in after.stderr and not writing.exists()
    assert after.stdout.count(b"usage_idle_anomaly_score=") == 40


def test_sigterm_while_waiting_for_the_lock_gives_back_what_was_read(tmp_path: Path, start) -> None:
    """Stopped while it waits for a checkpoint in use, riverguard writes back the metrics it was sent
    (it was killed by the signal, exit -15, and they were lost). It waits 2 s more for the lock (it may
    come: test_sigterm_during_start_up_and_restore_still_returns_the_input_and_saves_it), not the rest of
    the 10 s: Telegraf's SIGKILL follows its SIGTERM by 5 s."""
    state = tmp_path / "rg.msgpack"
    holder = start("run", "--state", str(state))
    holder.ready()
    data = stream(10)
    second = start("run", "--state", str(state))
    second.write(data)
    assert second.wait_stderr(lambda e: b"waiting up to 10s" in e, 30), second.stderr
    stopped = time.monotonic()
    second.terminate()
    assert second.wait(30) == 0, second.stderr
    assert 2 <= time.monotonic() - stopped < 8, second.stderr
    assert second.stdout == data
    assert b"passing every metric through unscored" in second.stderr
    holder.close_stdin()
    assert holder.wait(30) == 0


def test_a_state_folder_removed_while_running_is_made_again_with_its_lock(tmp_path: Path, start) -> None:
    """The state folder removed while ``run`` ran (``rm -rf``): at its next checkpoint it wrote the checkpoint
    again but not its lock file, and a second riverguard on the same checkpoint started at once, without
    waiting, and both wrote it. Now the checkpoint makes the folder and the lock file again and locks it, with
    one W! line naming the folder: a second riverguard waits for it as for any holder."""
    config = write_config(tmp_path, extra='[state]\npath = "gone/"\ncheckpoint_interval = "1s"\n')
    folder = tmp_path / "gone"
    first = start("run", "--config", str(config))
    first.ready()
    first.write(stream(20))
    assert first.wait_lines(40, 30) and wait_until((folder / "riverguard.msgpack").exists, 10), first.stderr
    shutil.rmtree(folder)
    assert first.wait_stderr(lambda e: b"W! " in e, 10), first.stderr
    assert [line for line in first.stderr.splitlines() if not line.startswith(b"I! ")] == [
        b"W! [riverguard] the state folder %s was removed while riverguard ran: re-created it and its lock" % bytes(folder)
    ]
    assert wait_until((folder / "riverguard.msgpack").exists, 10)
    assert (folder / "riverguard.msgpack.lock").read_text() == f"{first.popen.pid}\n"
    second = start("run", "--config", str(config))
    second.write(stream(20, seed=2, start=20))
    assert second.wait_stderr(lambda e: f"is in use by PID {first.popen.pid}".encode() in e, 30), second.stderr
    first.write(stream(10, start=40))
    first.close_stdin()
    assert first.wait(30) == 0, first.stderr
    assert first.stderr.count(b"W! ") == 1 and b"E! " not in first.stderr, first.stderr
    assert first.stdout.count(b"\n") == 60  # nothing lost
    second.close_stdin()  # it had the models the first saved at its end
    assert second.wait(30) == 0, second.stderr
    assert b"restored 4 series" in second.stderr and second.stdout.count(b"usage_idle_anomaly_score=") == 40


def _checkpointed_then_folder_removed(tmp_path: Path, start) -> tuple[Path, Path, Proc]:
    """A ``run`` on state folder ``gone/`` that has written a checkpoint of 20 metrics there, the folder then
    removed: its config, the folder and the process."""
    config = write_config(tmp_path, extra='[state]\npath = "gone/"\n')
    folder = tmp_path / "gone"
    first = start("run", "--config", str(config))
    first.ready()
    first.write(stream(20))
    assert first.wait_lines(40, 30), first.stderr
    first.popen.send_signal(signal.SIGHUP)  # (a checkpoint now)
    assert wait_until((folder / "riverguard.msgpack").exists, 30), first.stderr
    shutil.rmtree(folder)
    return config, folder, first


def test_a_state_folder_replaced_by_a_file_while_running_is_said_so_and_the_file_kept(tmp_path: Path,
                                                                                      start) -> None:
    """The state folder replaced by a file while ``run`` ran: each checkpoint failed with ``[Errno 17] File
    exists`` (the lock's folder made again over the file). Now the E! line says the folder is a file; the
    file is left as it is, and once it is a folder again the checkpoint is written there."""
    config, folder, first = _checkpointed_then_folder_removed(tmp_path, start)
    folder.write_text("the user's\n")
    first.popen.send_signal(signal.SIGHUP)
    assert first.wait_stderr(lambda e: b"E! " in e, 30), first.stderr
    assert [line for line in first.stderr.splitlines() if line.startswith(b"E! ")] == [
        b"E! [riverguard] checkpoint to %s failed: the state folder %s was replaced by a file while riverguard "
        b"ran: the checkpoint is written again once it is a folder (the file is left as it is)"
        % (bytes(folder / "riverguard.msgpack"), bytes(folder))
    ]
    assert folder.read_text() == "the user's\n"
    folder.unlink()
    first.close_stdin()
    assert first.wait(30) == 0, first.stderr  # (the final checkpoint: the folder made again)
    assert (folder / "riverguard.msgpack").exists() and b"Errno" not in first.stderr, first.stderr
    assert first.stdout.count(b"\n") == 40


def test_a_checkpoint_another_process_took_after_its_folder_was_removed_is_not_overwritten(tmp_path: Path,
                                                                                           start) -> None:
    """The state folder removed while ``run`` ran, and a second riverguard started on the checkpoint before
    the first's next checkpoint: that one holds the new lock, and the first must not write the checkpoint it
    owns. The first says so (E!), passes every metric on and exits 1 (its final checkpoint failed)."""
    config, folder, first = _checkpointed_then_folder_removed(tmp_path, start)
    second = start("run", "--config", str(config))
    second.ready()
    assert wait_until((folder / "riverguard.msgpack.lock").exists, 30), second.stderr
    first.close_stdin()
    assert first.wait(30) == 1, first.stderr
    assert first.stdout.count(b"\n") == 40
    failed = [line for line in first.stderr.splitlines() if line.startswith(b"E! ")][0]
    assert failed == (
        b"E! [riverguard] checkpoint to %s failed: the lock file %s was replaced while riverguard ran, and another "
        b"riverguard (PID %d) has locked the checkpoint since: not overwriting it (this process's models are not "
        b"saved; stop one of the two)" % (bytes(folder / "riverguard.msgpack"), bytes(folder / "riverguard.msgpack.lock"),
                                          second.popen.pid)
    )
    assert not (folder / "riverguard.msgpack").exists()  # (the second has written none yet)
    second.close_stdin()
    assert second.wait(30) == 0, second.stderr


def _hosts(hosts: range, samples: range) -> bytes:
    """One field per host, hosts in turn at each 10 s step (so the last host is the most recently seen)."""
    return b"".join(
        b"m,host=h%d v=%d %d\n" % (h, (i * 7 + h * 3) % 11, T0 + i * STEP) for i in samples for h in hosts
    )


OVER_990 = b"; 990 dropped to fit [state] max_series = 10 (stale ones first, then the least recently seen)"


def test_a_lowered_max_series_applies_to_a_restored_checkpoint(tmp_path: Path, start) -> None:
    """After a restart with a lower [state] max_series, the restored checkpoint is cut to the max_series
    most recently seen series, with an I! line. (It restored them all and the limit was never enforced:
    after 1000 series restored with max_series = 10 and 5 new ones, 1000 were held and the 5 evicted.)
    The output is what a process that got the lower max_series by SIGHUP at that point writes."""
    zscore = '[[rule]]\nname = "all"\ndetector = "zscore"\n'
    big, small = tmp_path / "big.toml", tmp_path / "small.toml"
    big.write_text("[state]\nmax_series = 1000\n\n" + zscore)
    small.write_text("[state]\nmax_series = 10\n\n" + zscore)
    first = _hosts(range(1000), range(40))  # 40 samples: past zscore's warm-up of 30
    then = _hosts(range(990, 1000), range(40, 50)) + _hosts(range(5), range(50, 52))
    state = tmp_path / "rg.msgpack"
    a = run(["run", "--config", str(big), "--state", str(state)], first)
    assert a.returncode == 0, a.stderr
    b = run(["run", "--config", str(small), "--state", str(state)], then)
    assert b.returncode == 0, b.stderr
    assert re.search(rb"I! \[riverguard\] restored 10 series from \S+ in \S+s" + re.escape(OVER_990) + rb"\n", b.stderr), b.stderr
    assert b"W! " not in b.stderr.split(OVER_990)[0]
    listed = run(["state", "inspect", str(state), "--series"])
    keys = sorted(json.loads(row)["key"] for row in listed.stdout.splitlines())
    assert len(keys) == 10 and keys == sorted(f"m,host=h{h} v" for h in (*range(995, 1000), *range(5))), keys
    out = b.stdout.splitlines()
    assert b"v_anomaly_score=0.0," not in out[0] and out[0].startswith(b"m,host=h990 ")  # kept: its model goes on
    assert b"v_anomaly_score=0.0," in out[-1] and out[-1].startswith(b"m,host=h4 ")  # dropped: starts afresh

    proc = start("run", "--config", str(big), "--log-level", "info")
    proc.ready()
    proc.write(first)
    assert proc.wait_lines(40_000, 120), proc.stderr
    big.write_text(small.read_text())
    proc.popen.send_signal(signal.SIGHUP)
    assert proc.wait_stderr(lambda e: b"reloaded" in e, 30), proc.stderr
    # The reload's I! line counts the 10 series held, and the 990 dropped as the restore's line does. (It
    # said "1000 series keep their models" while 10 were held, and counted the 990 as evicted by the stream.)
    assert b"1 rule(s); 10 series keep their models" + OVER_990 + b"\n" in proc.stderr, proc.stderr
    proc.write(then)
    proc.close_stdin()
    assert proc.wait(60) == 0, proc.stderr
    assert proc.stdout == a.stdout + b.stdout
    assert b" 5 evictions (max_series, 0 of a series not yet scored)" in proc.stderr, proc.stderr


def test_fields_no_rule_scores_take_no_room_from_the_models(tmp_path: Path) -> None:
    """``max_series`` bounds the models: fields that no rule scores (an ``off`` rule here) pass through and
    never evict one. (They counted against it: 3 hosts' models under max_series = 3, with 20 new hosts of an
    unscored measurement between their samples, were evicted at every round and never left their warm-up;
    after a restart, which restores models only, other series were evicted than in one process.)"""
    config = tmp_path / "rg.toml"
    config.write_text(
        '[state]\nmax_series = 3\n\n[[rule]]\nname = "quiet"\nmeasurement = "quiet"\ndetector = "off"\n\n'
        '[[rule]]\nname = "z"\nmeasurement = "z"\ndetector = "zscore"\n'
    )
    rounds = [
        _hosts(range(3), range(i, i + 1)).replace(b"m,", b"z,")
        + b"".join(b"quiet,host=q%d v=1 %d\n" % (i * 20 + q, T0 + i * STEP) for q in range(20))
        for i in range(40)
    ]
    state = tmp_path / "rg.msgpack"
    whole = run(["run", "--config", str(config), "--state", str(state)], b"".join(rounds))
    assert whole.returncode == 0, whole.stderr
    assert b" 0 evictions (max_series, 0 of a series not yet scored)" in whole.stderr, whole.stderr
    listed = [json.loads(row) for row in run(["state", "inspect", str(state), "--series"]).stdout.splitlines()]
    assert sorted((row["key"], row["samples"]) for row in listed) == [(f"z,host=h{h} v", 40) for h in range(3)]
    out = whole.stdout.splitlines(keepends=True)
    assert [line for line in out if line.startswith(b"quiet,")] == [
        line for r in rounds for line in r.splitlines(keepends=True) if line.startswith(b"quiet,")
    ]
    assert all(b"v_anomaly_score=0.0," not in line for line in out[-23:-20])  # past zscore's warm-up of 30
    state.unlink()
    first = run(["run", "--config", str(config), "--state", str(state)], b"".join(rounds[:25]))
    then = run(["run", "--config", str(config), "--state", str(state)], b"".join(rounds[25:]))
    assert first.returncode == then.returncode == 0, first.stderr + then.stderr
    assert first.stdout + then.stdout == whole.stdout


def test_kill_9_at_any_moment_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    state = tmp_path / "s.msgpack"
    config = write_config(tmp_path)
    rng = random.Random(20261128)
    data = stream(400, hosts=50)
    loaded = 0
    for _trial in range(15):
        proc = _start(config, state, subprocess.DEVNULL)

        def drain(proc: subprocess.Popen[bytes] = proc) -> None:
            assert proc.stdout
            while proc.stdout.read1(1 << 16):
                pass

        def feed(proc: subprocess.Popen[bytes] = proc) -> None:
            try:
                assert proc.stdin
                proc.stdin.write(data)
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass

        feeder, drainer = threading.Thread(target=feed), threading.Thread(target=drain)
        feeder.start()
        assert proc.stdout
        first = proc.stdout.readline()  # the process is up and scoring
        drainer.start()
        # A checkpoint every 0.1 s (a SIGHUP writes one; checkpoint_interval is 1 s at least)
        done = threading.Event()

        def checkpoints(proc: subprocess.Popen[bytes] = proc, done: threading.Event = done) -> None:
            while not done.wait(0.1):
                proc.send_signal(signal.SIGHUP)

        hups = threading.Thread(target=checkpoints)
        hups.start()
        time.sleep(rng.uniform(0.0, 0.8))
        done.set()
        hups.join()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        feeder.join()
        drainer.join()
        assert first
        if state.exists():
            assert read_checkpoint(state)["series"] > 0  # raises if the file is unreadable
            loaded += 1
        assert not list(tmp_path.glob("*.corrupt-*"))
    assert loaded >= 10, "the kills should mostly land after the first checkpoint"


# -- stopping: SIGTERM at any moment, temporary files of killed processes ------------------------------------


def series_lines(n: int, start: int = 0) -> bytes:
    """One metric on each of ``n`` new series: ``n`` models to checkpoint (about 3 KB each with the default detector)."""
    return b"".join(b"cpu,host=h%d v=%d %d\n" % (i, i % 10, T0 + i) for i in range(start, start + n))


#: Room for the series these tests make (the default max_series is 10 000).
MANY_SERIES = "[state]\nmax_series = 300000"


def _sigterm_until_done(proc, every: float = 0.01, timeout: float = 60) -> int:  # type: ignore[no-untyped-def]
    """Send SIGTERM every ``every`` seconds, as an impatient supervisor would, until ``run`` has said its last
    line (sent after the final checkpoint) or exited; its exit code."""
    deadline = time.monotonic() + timeout
    while proc.popen.poll() is None and b"I! [riverguard] stopped after" not in proc.stderr:
        assert time.monotonic() < deadline, proc.stderr
        proc.popen.send_signal(signal.SIGTERM)
        time.sleep(every)
    return proc.wait(30)


def test_sigterm_during_the_final_checkpoint_waits_for_it(tmp_path: Path, start) -> None:  # type: ignore[no-untyped-def]
    # Telegraf closes stdin, then sends SIGTERM 5 s later: with many series that lands inside the final
    # checkpoint. It used to end the process there (exit -15, no checkpoint, a temporary file left behind).
    folder = tmp_path / "state"
    folder.mkdir()
    config = write_config(tmp_path, extra=MANY_SERIES)
    data = series_lines(3000)  # a checkpoint of about 10 MB: a few tenths of a second to write
    proc = start("run", "--config", str(config), "--state", str(folder), "--log-level", "debug")
    proc.write(data)
    assert proc.wait_lines(3000, timeout=60), proc.stderr
    proc.close_stdin()
    assert _sigterm_until_done(proc) == 0, proc.stderr
    assert read_checkpoint(folder / "riverguard.msgpack")["series"] == 3000
    assert not [p.name for p in folder.iterdir() if ".tmp-" in p.name]
    # said once however many came, with the time it took
    assert proc.stderr.count(b"while writing the checkpoint") == 1, proc.stderr
    assert b"D! [riverguard] checkpoint: 3000 series" in proc.stderr


def test_sigterm_after_the_last_line_still_exits_0(tmp_path: Path) -> None:
    """A SIGTERM after the final checkpoint and the last log line, while the interpreter shuts down, has
    nothing left to stop: exit 0. (Python's finalization put the default handlers back, and such a SIGTERM
    ended the process with -15: 5 times in 5 with 50 000 series; now and then in the test above.)"""
    import select

    data = b"".join(b"m,h=h%d v=%d %d\n" % (i, i % 7, T0 + i) for i in range(20_000))
    for _ in range(3):
        proc = subprocess.Popen([*RG, "run"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        proc.stdin.write(data)
        proc.stdin.close()
        err = b""
        while b"I! [riverguard] stopped after" not in err:
            assert select.select([proc.stderr], [], [], 60)[0], err
            chunk = os.read(proc.stderr.fileno(), 65536)
            assert chunk, err
            err += chunk
        while proc.poll() is None:  # a supervisor's SIGTERM, late
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            time.sleep(0.001)
        proc.stderr.close()
        assert proc.wait() == 0


def test_sigterm_during_start_up_and_restore_still_returns_the_input_and_saves_it(tmp_path: Path, start) -> None:  # type: ignore[no-untyped-def]
    # Telegraf may stop riverguard while it starts: waiting for the lock (a restart's overlap), restoring the
    # models. It used to end at once there: the metrics already written to its stdin were lost, nothing logged.
    import fcntl

    state = tmp_path / "s.msgpack"
    config = write_config(tmp_path, extra=MANY_SERIES)
    assert run(["run", "--config", str(config), "--state", str(state)], series_lines(3000)).returncode == 0
    fd = os.open(f"{state}.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as the process before it would, still writing its final checkpoint
    try:
        proc = start("run", "--config", str(config), "--state", str(state))
        data = series_lines(200, start=3000)
        proc.write(data)
        assert proc.wait_stderr(lambda err: b"is in use by PID" in err, 60), proc.stderr
        proc.popen.send_signal(signal.SIGTERM)
    finally:
        os.close(fd)  # the lock is free: it restores the 3000 series, under more SIGTERMs
    assert _sigterm_until_done(proc) == 0, proc.stderr
    assert strip_added(proc.stdout) == data
    assert b"I! [riverguard] restored 3000 series" in proc.stderr
    assert b"I! [riverguard] received SIGTERM: finishing" in proc.stderr
    assert read_checkpoint(state)["series"] == 3200
    assert not list(tmp_path.glob(".s.msgpack.tmp-*"))


def test_sigterm_during_a_replays_final_checkpoint_leaves_output_and_checkpoint_together(tmp_path: Path) -> None:
    # replay puts its --output in place, then checkpoints: a stop in between used to leave the new output with
    # the old models (the checkpoint given up). It now waits for the checkpoint; the exit code is SIGTERM's 143.
    config = write_config(tmp_path, extra=MANY_SERIES)
    source, out, state = tmp_path / "in.lp", tmp_path / "out.lp", tmp_path / "s.msgpack"
    source.write_bytes(series_lines(6000))  # a checkpoint of half a second or so
    proc = subprocess.Popen([*RG, "replay", "--config", str(config), "--state", str(state), "-o", str(out), str(source)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and proc.poll() is None:  # in place: the checkpoint comes next
            assert time.monotonic() < deadline
            time.sleep(0.001)
        proc.send_signal(signal.SIGTERM)  # as a supervisor stops it (its handler ends with the process)
        stderr = proc.stderr.read()  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == 143, stderr
    assert out.read_bytes().count(b"\n") == 6000
    assert read_checkpoint(state)["series"] == 6000, stderr
    assert stderr.count(b"I! [riverguard] received SIGTERM while writing the output and the checkpoint") == 1, stderr
    assert not list(tmp_path.glob(".s.msgpack.tmp-*"))


def test_a_stop_during_a_checkpoint_takes_effect_once_it_is_written(tmp_path: Path) -> None:
    # Where nothing else handles SIGTERM (a one-off pull) it still ends the process, but after the checkpoint.
    script = (
        "import sys, time\n"
        "from riverguard.log import Log\n"
        "from riverguard.signals import checkpointing\n"
        "with checkpointing(Log(), 'the checkpoint x'):\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(0.5)\n"
        "    print('written', flush=True)\n"
        "print('after', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout and proc.stdout.readline() == b"writing\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    assert out == b"written\n"
    assert err.startswith(b"I! [riverguard] received SIGTERM while writing the checkpoint x: completed it first")


def test_start_up_removes_the_temporary_files_of_killed_processes(tmp_path: Path) -> None:
    # A process killed while it wrote a checkpoint leaves its .<name>.tmp-<pid>, a checkpoint's size; each
    # start has another PID, so a crash loop used to fill the disk. Only the lock's holder writes them.
    folder = tmp_path / "state"
    folder.mkdir()
    config = write_config(tmp_path)
    orphans = {".riverguard.msgpack.tmp-4242": 3000, ".riverguard.msgpack.tmp-17": 1500}
    kept = ["riverguard.msgpack.tmp-4242", ".riverguard.msgpack.tmp-4242.bak", ".riverguard.msgpack.tmp-x",
            ".other.msgpack.tmp-4242", "notes.txt"]
    for name, size in orphans.items():
        (folder / name).write_bytes(b"\0" * size)
    for name in kept:
        (folder / name).write_text("mine\n")
    (folder / ".riverguard.msgpack.tmp-99").mkdir()  # not a file: not the store's
    first = run(["run", "--config", str(config), "--state", str(folder)], stream(20))
    assert first.returncode == 0, first.stderr
    assert b"I! [riverguard] removed 2 temporary checkpoint file(s) (4500 bytes)" in first.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*kept, ".riverguard.msgpack.tmp-99", "riverguard.msgpack", "riverguard.msgpack.lock"]
    )
    assert read_checkpoint(folder / "riverguard.msgpack")["series"] == 4
    second = run(["run", "--config", str(config), "--state", str(folder)], stream(5, start=20))
    assert second.returncode == 0 and b"temporary checkpoint" not in second.stderr, second.stderr


def _valid_file(tmp_path: Path, config: Path) -> Path:
    state = tmp_path / "s.msgpack"
    assert run(["run", "--config", str(config), "--state", str(state)], stream(50)).returncode == 0
    return state


def _crafted(state: Node) -> tuple[dict[str, object], list[list[object]]]:
    key = b"cpu,cpu=cpu-total,host=h0 usage_idle"
    from riverguard.config import Rule

    fingerprint = Rule(index=1, name="all").fingerprint
    return {"riverguard": "0.1.0", "rules": {}}, [[key, "zscore", fingerprint, 60, T0, 0, state]]


Node = object
SENTINEL = "/tmp/riverguard-pwned"
_PAYLOADS: dict[str, Node] = {
    "os.system": {"\x00": "obj", "c": "os:system", "i": 0, "d": ["command", f"touch {SENTINEL}"]},
    "posix.system": {"\x00": "obj", "c": "posix:system", "i": 0, "d": []},
    "subprocess.Popen": {"\x00": "obj", "c": "subprocess:Popen", "i": 0, "d": ["args", ["touch", SENTINEL]]},
    "builtins.eval": {"\x00": "rust", "c": "builtins:eval", "i": 0, "a": [f"__import__('os').system('touch {SENTINEL}')"], "s": b""},
    "off-allowlist class": {"\x00": "obj", "c": "river.linear_model.log_reg:LogisticRegression", "i": 0, "d": []},
    "factory naming a function": {
        "\x00": "obj",
        "c": "riverguard.detectors.zscore:ZScore",
        "i": 0,
        "d": ["_mean", {"\x00": "ddict", "f": {"\x00": "class", "c": "os:system"}, "v": []}],
    },
    "dunder attribute": {"\x00": "obj", "c": "riverguard.detectors.zscore:ZScore", "i": 0, "d": ["__class__", None]},
    "compact state of the wrong shape": [["not", "bytes", None]],
    # River's Rust statistics panic on bytes they cannot parse (a BaseException): it stopped the process.
    "opaque state that does not parse": {"\x00": "rust", "c": "river._river_rust.stats:RsEWMean", "i": 0, "a": [0.5], "s": b"\xff"},
    "function by name": {"\x00": "obj", "c": "riverguard.detectors.zscore:ZScore", "i": 0, "d": ["f", {"\x00": "func", "c": "posix:system"}]},
    "slot not declared": {"\x00": "obj", "c": "riverguard.detectors.zscore:ZScore", "i": 0, "d": [], "s": ["__class__", None]},
    "unknown node kind": {"\x00": "pickle", "v": b"cos\nsystem\n."},
}


@pytest.mark.parametrize("name", sorted(_PAYLOADS))
def test_crafted_payload_never_executes_and_processing_goes_on(tmp_path: Path, name: str) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "s.msgpack"
    header, records = _crafted(_PAYLOADS[name])
    store.write(state, header, records)
    _expect_set_aside(tmp_path, config, state)
    assert not os.path.exists(SENTINEL)


def _damaged(tmp_path: Path, config: Path) -> dict[str, bytes]:
    valid = _valid_file(tmp_path, config).read_bytes()
    body_flip = bytearray(valid)
    body_flip[len(valid) // 2] ^= 0xFF
    header_flip = bytearray(valid)
    header_flip[valid.index(b"created") + 9] ^= 0x01  # a digit of its UTC time: still a valid header
    head = {"format": "riverguard-state", "version": 99, "series": 0}
    other_version = msgpack.packb(head) + msgpack.packb(msgpack.packb([])) + msgpack.packb({"sha256": ""})
    return {
        "truncated": valid[: len(valid) // 2],
        "truncated header": valid[:5],
        "random bytes": random.Random(3).randbytes(4096),
        "empty": b"",
        "flipped byte": bytes(body_flip),
        "flipped header bit": bytes(header_flip),
        "other format version": other_version,
        "foreign msgpack": msgpack.packb({"hello": "world"}),
        "trailing garbage": valid + b"\x01",
    }


@pytest.mark.parametrize(
    "name",
    ["truncated", "truncated header", "random bytes", "empty", "flipped byte", "flipped header bit",
     "other format version", "foreign msgpack", "trailing garbage"],
)
def test_damaged_file_is_set_aside_and_processing_goes_on(tmp_path: Path, name: str) -> None:
    """(A flipped bit in the header was used: the header had no checksum of its own, and one in its stream
    clock changed every score after a restart.)"""
    config = write_config(tmp_path)
    content = _damaged(tmp_path, config)[name]
    state = tmp_path / "s.msgpack"
    state.write_bytes(content)
    _expect_set_aside(tmp_path, config, state)


def test_a_checkpoint_without_a_header_checksum_is_still_read(tmp_path: Path) -> None:
    """Checkpoints written before the header had a checksum in the trailer go on being restored."""
    config = write_config(tmp_path)
    state = _valid_file(tmp_path, config)
    valid = state.read_bytes()
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(valid)
    header, body, trailer = list(unpacker)
    assert set(trailer) == {"sha256", "header_sha256"}
    state.write_bytes(valid[: len(valid) - len(msgpack.packb(trailer))] + msgpack.packb({"sha256": trailer["sha256"]}))
    result = run(["run", "--config", str(config), "--state", str(state)], stream(60))
    assert result.returncode == 0, result.stderr
    assert b"W! " not in result.stderr and b"I! [riverguard] restored " in result.stderr, result.stderr


def _lagging_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """A checkpoint of series a, in time with the stream, and b, two hours behind it (series_ttl 1h)."""
    config = write_config(tmp_path, detector="zscore", extra='[state]\nseries_ttl = "1h"',
                          params="warmup = 2\n[rule.params]\nmin_std = 1.0")
    state = tmp_path / "s.msgpack"
    lines = b"".join(b"m a=%d %d\nm b=%d %d\n" % (i % 2, T0 + i * 10**9, 1 + i % 2, T0 - 7200 * 10**9 + i * 10**9)
                     for i in range(20))
    assert run(["run", "--config", str(config), "--state", str(state)], lines).returncode == 0
    return config, state


def test_a_series_behind_the_clock_goes_on_across_a_restart(tmp_path: Path) -> None:
    """The checkpoint keeps when each series was seen on the stream's clock (``seen_at``, the records' eighth
    field, version 2): b, two hours behind the clock, goes on after the restart and its spike is flagged."""
    config, state = _lagging_checkpoint(tmp_path)
    checkpoint = store.read(state)
    assert checkpoint.header["version"] == 2 and "seen_at" not in checkpoint.header
    assert all(len(record) == 8 and type(record[7]) is int for record in checkpoint.records)
    result = run(["run", "--config", str(config), "--state", str(state)], b"m b=50 %d\n" % (T0 - 7180 * 10**9))
    assert result.returncode == 0 and b"W! " not in result.stderr, result.stderr
    assert result.stdout.startswith(b"m b=50,b_anomaly_score=1.0,b_anomaly=true "), result.stdout


def test_a_checkpoint_of_more_series_than_a_header_array_holds_is_restored(tmp_path: Path) -> None:
    """70 000 series: when ``seen_at`` was a list in the header, a checkpoint of more than 65 536 series was
    refused by the header's limits (set aside, every model lost at the restart)."""
    config = write_config(tmp_path, detector="zscore")
    state = tmp_path / "s.msgpack"
    fields = ",".join(f"f{k}=1" for k in range(100))
    lines = b"".join(f"m,h=h{h} {fields} {T0 + h}\n".encode() for h in range(700))
    assert run(["run", "--config", str(config), "--state", str(state)], lines).returncode == 0
    result = run(["run", "--config", str(config), "--state", str(state)], FIRST)
    assert result.returncode == 0 and b"restored 70000 series" in result.stderr, result.stderr


def test_a_version_1_checkpoint_is_read_as_the_rule_was(tmp_path: Path) -> None:
    """A checkpoint written before ``seen_at`` was kept (version 1, records of seven fields): each series was
    seen at its last timestamp, as the rule was then, so b (two hours behind the clock) starts fresh at its
    next sample once, and a goes on."""
    config, state = _lagging_checkpoint(tmp_path)
    checkpoint = store.read(state)
    header = {k: v for k, v in checkpoint.header.items() if k not in ("format", "created", "series")}
    store.write(state, {**header, "version": 1}, [r[:7] for r in checkpoint.records], len(checkpoint.records))
    data = b"m b=50 %d\nm a=40 %d\n" % (T0 - 7180 * 10**9, T0 + 20 * 10**9)
    result = run(["run", "--config", str(config), "--state", str(state)], data)
    assert result.returncode == 0 and b"W! " not in result.stderr and b"restored 2 series" in result.stderr, result.stderr
    assert result.stdout.splitlines() == [
        b"m b=50,b_anomaly_score=0.0,b_anomaly=false %d" % (T0 - 7180 * 10**9),
        b"m a=40,a_anomaly_score=1.0,a_anomaly=true %d" % (T0 + 20 * 10**9),
    ], result.stdout


@pytest.mark.parametrize("seen_at", ["x", 2**63, 1.5])
def test_a_malformed_seen_at_sets_the_file_aside(tmp_path: Path, seen_at: object) -> None:
    config, state = _lagging_checkpoint(tmp_path)
    checkpoint = store.read(state)
    header = {k: v for k, v in checkpoint.header.items() if k not in ("format", "version", "created", "series")}
    records = [[*r[:7], seen_at] for r in checkpoint.records]
    store.write(state, header, records, len(records))
    _expect_set_aside(tmp_path, config, state)


def test_counts_beyond_32_bits_stop_at_their_end(tmp_path: Path) -> None:
    """A series' sample and anomaly counts are 32 bits (a compiled series stays 64 bytes): a checkpoint's
    larger count is read as 4 294 967 295, and the series is scored and counted on."""
    config, state = _lagging_checkpoint(tmp_path)
    checkpoint = store.read(state)
    header = {k: v for k, v in checkpoint.header.items() if k not in ("format", "version", "created", "series")}
    records = [[*r[:3], 2**40, r[4], 2**40, *r[6:]] for r in checkpoint.records]
    store.write(state, header, records, len(records))
    result = run(["run", "--config", str(config), "--state", str(state)], b"m a=40 %d\n" % (T0 + 20 * 10**9))
    assert result.returncode == 0 and b"a_anomaly=true" in result.stdout, result.stderr
    saved = store.read(state)
    assert sorted((r[3], r[5]) for r in saved.records) == [(2**32 - 1, 2**32 - 1)] * 2


def test_a_context_total_that_disagrees_with_its_counts_sets_the_file_aside(tmp_path: Path) -> None:
    """Sentinel saves the total of each context's counts (``surprise.totals``) but works it out from the
    counts: a saved total that is not their sum can only come from an edited file, refused as any other
    impossible state (the file set aside, one warning, a fresh start)."""
    config = write_config(tmp_path)
    state = _valid_file(tmp_path, config)
    checkpoint = store.read(state)
    records = [list(r) for r in checkpoint.records]
    assert {r[1] for r in records} == {"sentinel"}
    layout = REGISTRY["sentinel"].STATE_LAYOUT.partition(" | ")[2].split()
    part = 1 + layout.index("surprise.totals:100")
    saved = list(records[0][6][0])
    totals = bytearray(saved[part])
    row = next(i for i, t in enumerate(totals) if t)
    totals[row] -= 1
    records[0][6] = [[*saved[:part], bytes(totals), *saved[part + 1 :]]]
    store.write(state, checkpoint.header, records)
    _expect_set_aside(tmp_path, config, state)


def _expect_set_aside(tmp_path: Path, config: Path, state: Path) -> None:
    data = stream(60)
    result = run(["run", "--config", str(config), "--state", str(state)], data)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(data.splitlines())
    assert result.stdout == run(["run", "--config", str(config)], data).stdout  # started fresh
    warnings = [line for line in result.stderr.splitlines() if line.startswith(b"W! ")]
    assert len(warnings) == 1 and b"unusable" in warnings[0] and b"starting fresh" in warnings[0], result.stderr
    aside = list(tmp_path.glob("s.msgpack.corrupt-*"))
    assert len(aside) == 1, "the unusable file should be renamed aside"
    assert inspect(state).returncode == 0  # a fresh checkpoint was written at exit


def _special(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A state path that is not a regular file (in ``tmp_path`` only) and the node it stands for."""
    if kind == "fifo":
        path = tmp_path / "s.msgpack"
        os.mkfifo(path)
        return path, path
    if kind == "device":
        if os.geteuid() != 0:
            pytest.skip("mknod needs root")
        path = tmp_path / "null"
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
        return path, path
    if kind == "symlink":  # to a node of our own: never a system path (a regression would rename what it names)
        target = tmp_path / "node"
        if os.geteuid() == 0:
            os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        else:
            os.mkfifo(target)
        path = tmp_path / "s.msgpack"
        path.symlink_to(target)
        return path, target
    assert kind == "fifo in the folder"
    os.mkfifo(tmp_path / "riverguard.msgpack")
    return tmp_path, tmp_path / "riverguard.msgpack"


@pytest.mark.parametrize("kind", ["fifo", "device", "symlink", "fifo in the folder"])
@pytest.mark.parametrize("command", ["run", "replay"])
def test_a_state_path_that_is_not_a_regular_file_is_refused_untouched(tmp_path: Path, kind: str, command: str) -> None:
    """A device or a FIFO as the checkpoint: one E! line naming it, at once; it is never opened, renamed aside
    or replaced. (It was: a device was renamed to ``.corrupt-*`` and a regular file written in its place,
    which as root did that to the real /dev/null; a FIFO blocked the start for ever.) replay exits 2; run
    passes every metric through unscored, exit 0 at EOF (it exited 2: under Telegraf's execd, every metric
    lost and a restart into the same refusal, for ever)."""
    state, node = _special(tmp_path, kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    modes = os.lstat(node).st_mode
    data = f"cpu,host=a v=1 {T0}\n".encode()
    lp = tmp_path / "in.lp"
    if command == "replay":
        lp.write_bytes(data)
        before.append(lp.name)
        before.sort()
    args = ["run", "--state", str(state)] if command == "run" else ["replay", "--state", str(state), str(lp)]
    result = run(args, data if command == "run" else b"", timeout=20)
    assert (result.returncode, result.stdout) == ((0, data) if command == "run" else (2, b"")), result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(b"E! ")]
    assert len(errors) == 1 and b"not a regular file or a folder" in errors[0], result.stderr
    assert (b"character device" if kind == "device" or (kind == "symlink" and os.geteuid() == 0) else b"FIFO") in errors[0]
    assert errors[0].endswith(UNUSABLE.encode()) == (command == "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing renamed, created or replaced"
    assert os.lstat(node).st_mode == modes
    if kind == "symlink":
        assert os.readlink(state) == str(node)


def test_inspect_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    state, _ = _special(tmp_path, "fifo")
    result = run(["state", "inspect", str(state)], timeout=20)
    assert result.returncode == 2 and b"not a regular file" in result.stderr, result.stderr


@pytest.mark.parametrize("command", ["run", "replay"])
@pytest.mark.parametrize("given", ["st/", "st"])
def test_a_folder_where_the_checkpoint_file_goes_is_refused_at_start(tmp_path: Path, command: str, given: str) -> None:
    """A folder named as the checkpoint file (st/riverguard.msgpack): ``st/`` and ``st`` both name that file.
    ``st/`` had riverguard.msgpack added twice (the checkpoint went to st/riverguard.msgpack/riverguard.msgpack,
    exit 0); ``st`` took the folder for an unusable checkpoint ("not a regular file", "could not rename it"),
    scored the whole input, and failed every checkpoint ("[Errno 21] Is a directory"), exit 1. Now both are
    refused at start as a FIFO there is: one E! line naming the folder where the file should be, nothing
    created or renamed (a folder is never renamed or replaced); replay exits 2, nothing read, and run passes
    every metric through unscored, exit 0 at EOF (it exited 2: under Telegraf, every metric lost)."""
    folder = tmp_path / "st" / "riverguard.msgpack"
    folder.mkdir(parents=True)
    (folder / "keep.txt").write_text("mine")
    lp = tmp_path / "in.lp"
    lp.write_bytes(stream(3))
    state = f"{tmp_path}/{given}"
    args = ["run", "--state", state] if command == "run" else ["replay", "--state", state, str(lp)]
    result = run(args, lp.read_bytes() if command == "run" else b"")
    told = (f"E! [riverguard] the checkpoint {folder} is a folder, where the file should be: refusing to use, "
            "rename or replace it; move that folder away, or give --state (or [state] path) another file or folder\n"
            ).encode()
    if command == "run":
        assert (result.returncode, result.stdout) == (0, lp.read_bytes()), result.stderr
        assert result.stderr == passed_through(told, 6)
    else:
        assert (result.returncode, result.stdout) == (2, b""), result.stderr
        assert result.stderr == told
    assert [p.name for p in (tmp_path / "st").iterdir()] == ["riverguard.msgpack"]
    assert [p.name for p in folder.iterdir()] == ["keep.txt"] and (folder / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("case", ["read-only folder", "folder at the checkpoint", "folder it cannot make"])
def test_replay_refuses_a_checkpoint_it_cannot_write_before_reading_its_input(tmp_path: Path, case: str) -> None:
    """replay --state with a checkpoint it could not write (its folder made read-only after a first replay
    left the checkpoint and its lock file; a folder at the checkpoint file's path) read and scored all its
    input, then exited 1 on the final checkpoint: the work was lost. Now it refuses at start, before it reads
    a byte (its stdin here stays open and unwritten: reading it would block), with the E! line run gives for
    the same state path, exit 2, nothing written. (A state folder it cannot make was refused at start
    already.)"""
    prefix = as_a_user(tmp_path)
    folder = tmp_path / "state"
    folder.mkdir()
    state = folder / "s.msgpack"
    if case == "read-only folder":
        first = run(["replay", "--state", str(state), "-"], stream(5))
        assert first.returncode == 0 and state.is_file(), first.stderr
    elif case == "folder at the checkpoint":
        state = folder
        (folder / "riverguard.msgpack").mkdir()
    else:
        state = folder / "missing" / "s.msgpack"
    if case != "folder at the checkpoint":
        folder.chmod(0o555)
    before = sorted(p.name for p in folder.iterdir())
    try:
        by_run = subprocess.run([*prefix, *RG, "run", "--state", str(state)], input=stream(5), capture_output=True,
                                timeout=60)
        replay = subprocess.Popen([*prefix, *RG, "replay", "--state", str(state), "-"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = replay.communicate(timeout=30)  # (stdin left open: never written, never closed)
        except subprocess.TimeoutExpired:
            replay.kill()
            out, err = replay.communicate()
            pytest.fail(f"replay waited for its input instead of refusing its checkpoint: {err!r}")
    finally:
        folder.chmod(0o755)
    told = [line for line in by_run.stderr.splitlines() if line.startswith(b"E! ")]
    assert len(told) == 1, by_run.stderr
    told[0] = told[0].removesuffix(UNUSABLE.encode())
    assert replay.returncode == 2, err
    assert err.splitlines() == told and out == b""
    assert sorted(p.name for p in folder.iterdir()) == before


def test_denied_never_advises_running_riverguard_as_root(tmp_path: Path) -> None:
    """For a folder (or file) of another user's, the E! line ended "or run riverguard as <owner>": for root's,
    run a processor fed by the network as root; and it said to ``chown`` root's /etc to riverguard's user. For
    a folder of root's not made for riverguard, it names a folder of riverguard's own in it instead. (/etc:
    root's, and riverguard may not create its lock file there.)"""
    import pwd

    as_user = as_nobody("root's /etc is riverguard's own folder then")
    me = pwd.getpwuid(NOBODY if as_user else os.geteuid()).pw_name
    if not as_user and (os.stat("/etc").st_uid != 0 or os.access("/etc", os.W_OK)):
        pytest.skip("/etc here is not a root-owned folder closed to this user")
    state = Path("/etc") / f"riverguard-test-{os.getpid()}.msgpack"
    result = subprocess.run([*as_user, *RG, "replay", "--state", str(state), "-"], input=b"", capture_output=True,
                            timeout=60, check=False)
    mode = f"{stat.S_IMODE(os.stat('/etc').st_mode):04o}"
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"E! [riverguard] cannot create the lock file {state}.lock in /etc: permission denied (owner root, mode "
        f"{mode}; riverguard runs as {me}): run `install -d -o {me} /etc/riverguard` and give --state (or [state] "
        f"path) /etc/riverguard/\n"
    ).encode()


@pytest.mark.parametrize("command", ["run", "replay"])
def test_another_users_checkpoint_in_a_sticky_folder_is_refused_at_start(tmp_path: Path, command: str) -> None:
    """In a sticky folder (/tmp, mode 1777) only a file's owner (or the folder's) may replace it. Another
    user's checkpoint there that riverguard could read and lock was used all the same: every checkpoint's
    rename over it failed (EPERM), so both scored all their input, failed every checkpoint and exited 1 at
    the final one. Now both refuse it at start, with the E! line that names the file, its owner, the
    folder's mode and the chown (run: then passing every metric through unscored; replay: exit 2, no output),
    the checkpoint left as it is."""
    import pwd

    prefix, state = sticky_checkpoint(tmp_path)
    folder = state.parent
    before = state.read_bytes()
    data = stream(5, start=300)
    args = ["run", "--state", str(state)] if command == "run" else ["replay", "--state", str(state), "-"]
    result = subprocess.run([*prefix, *RG, *args], input=data, capture_output=True, timeout=60, check=False)
    me = pwd.getpwuid(NOBODY).pw_name
    told = (f"E! [riverguard] cannot replace the checkpoint {state}: its folder {folder} is sticky (mode 1777): "
            f"only the file's owner (or the folder's) may replace it (owner root, mode 0644; riverguard runs as {me}): run "
            f"`chown {me} {state}`")
    if command == "run":
        assert result.returncode == 0, result.stderr
        assert [line for line in result.stderr.splitlines() if not line.startswith(b"I! ")] == [
            f"{told}{UNUSABLE}".encode()]
        assert result.stdout == data
    else:
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"{told}\n".encode() and result.stdout == b""
    assert state.read_bytes() == before and stat.S_IMODE(state.stat().st_mode) == 0o644
    assert sorted(p.name for p in folder.iterdir()) == ["rg.msgpack", "rg.msgpack.lock"]


# -- a checkpoint of another user's: riverguard run once as root on Telegraf's state path ----------------


def test_the_sticky_folder_is_checked_when_the_temporary_files_trial_fails_otherwise(tmp_path: Path) -> None:
    """Whether another user's checkpoint in a sticky folder may be replaced was checked only when the trial of
    the temporary file beside it succeeded; any other error of the trial (here: the checkpoint's name leaves
    no room for the temporary file's, ENAMETOOLONG) skipped it, and ``replay --state`` scored its input to
    fail at the final checkpoint (exit 1). It is refused at start."""
    prefix, state = sticky_checkpoint(tmp_path)
    long = state.rename(state.with_name("r" * 250))  # its lock file's name (+ ".lock"): 255 bytes, the most
    result = subprocess.run([*prefix, *RG, "replay", "--state", str(long), "-"], input=stream(5, start=300),
                            capture_output=True, timeout=60, check=False)
    assert result.returncode == 2 and result.stdout == b"", result.stderr
    assert result.stderr.startswith(f"E! [riverguard] cannot replace the checkpoint {long}: its folder ".encode())
    assert b"is sticky (mode 1777): only the file's owner (or the folder's) may replace it" in result.stderr


def _others_checkpoint(tmp_path: Path, which: str = "checkpoint") -> tuple[Path, dict[str, bytes], dict[str, int]]:
    """A checkpoint of 4 series (and its lock file) that a run left, ``which`` of them then made unreadable
    (mode 0000, as a root-owned 0600 file is to telegraf); the folder's files and modes, to compare."""
    state = tmp_path / "rg.msgpack"
    first = run(["run", "--state", str(state)], stream(300))
    assert first.returncode == 0 and state.is_file(), first.stderr
    files = {p.name: p.read_bytes() for p in sorted(tmp_path.iterdir())}
    (state if which == "checkpoint" else state.with_name("rg.msgpack.lock")).chmod(0)
    modes = {p.name: p.stat().st_mode for p in sorted(tmp_path.iterdir())}
    return state, files, modes


def _untouched(folder: Path, files: dict[str, bytes], modes: dict[str, int]) -> None:
    """Nothing in ``folder`` renamed, created, written or changed mode (the files made readable again to compare)."""
    assert {p.name: p.stat().st_mode for p in sorted(folder.iterdir())} == modes
    for p in folder.iterdir():
        p.chmod(0o600)
    assert {p.name: p.read_bytes() for p in sorted(folder.iterdir())} == files


@pytest.mark.parametrize("which", ["checkpoint", "lock file"])
def test_a_run_that_cannot_read_its_checkpoint_passes_every_metric_through_and_keeps_it(
        tmp_path: Path, start, which: str) -> None:
    """A checkpoint this process may not read (another user's: riverguard run once as root, then by Telegraf as
    telegraf) was taken for a corrupt one: renamed aside to .corrupt-*, every model dropped, and the next
    checkpoint started the warm-up again. Now run says why in one E! line (owner, mode, the chown), passes
    every metric through unscored, byte for byte, for its whole life (no exit: no restart loop under
    Telegraf), and leaves the checkpoint as it is. The same for a lock file it may not open (which said
    "cannot create the lock file", and exited 2)."""
    prefix = as_a_user(tmp_path)
    state, files, modes = _others_checkpoint(tmp_path, which)
    data = stream(20, seed=5, start=300)
    proc = start("run", "--state", str(state), cmd=[*prefix, *RG])
    _passes_through_for_life(proc, data)
    errors = [line for line in proc.stderr.splitlines() if line.startswith(b"E! ")]
    assert len(errors) == 1, proc.stderr
    shown = state if which == "checkpoint" else state.with_name("rg.msgpack.lock")
    action = b"read the checkpoint" if which == "checkpoint" else b"open the lock file"
    assert errors[0].startswith(b"E! [riverguard] cannot " + action + f" {shown}: permission denied (owner ".encode())
    assert b", mode 0000; riverguard runs as " in errors[0] and b"passing every metric through unscored" in errors[0]
    assert b"chmod u+rw" in errors[0] or b"`chown " in errors[0], errors[0]
    assert b"unusable" not in proc.stderr and b"starting fresh" not in proc.stderr and b"W! " not in proc.stderr
    _untouched(tmp_path, files, modes)
    # the owner fixed (_untouched did): the models are all there
    after = run(["run", "--state", str(state)], data)
    assert after.returncode == 0 and b"restored 4 series" in after.stderr, after.stderr


@pytest.mark.parametrize("folder", ["riverguard's", "not riverguard's", "its own"])
def test_another_users_checkpoint_and_folder_are_fixed_by_one_line_that_keeps_the_models(tmp_path: Path,
                                                                                       folder: str) -> None:
    """riverguard run once as root with --state st/ left st/, its checkpoint and lock file root's. Run as
    Telegraf's user, it said to chown the two files; that done, the next start said st may not be written: make
    st/riverguard and give that as --state, leaving the checkpoint and its models behind. Now the first line
    names the folder, and what it says to run (done here, as it is written) brings every model back at the
    next start: one chown of the folder, the checkpoint and the lock file; for a folder not riverguard's
    (other files in it, as /var/lib), a folder of its own with the checkpoint moved in; for a folder of the
    user's own it may not write, its chmod and the files' chown."""
    import pwd
    import shlex

    if os.geteuid() != 0:
        pytest.skip("leaving a checkpoint and a folder of another user's takes root")
    prefix = as_nobody("a checkpoint of root's is then another user's")
    me = pwd.getpwuid(NOBODY).pw_name
    state = f"{tmp_path}/st/" if folder != "not riverguard's" else f"{tmp_path}/lib/rg.msgpack"
    if folder == "not riverguard's":
        (tmp_path / "lib").mkdir()
        (tmp_path / "lib" / "other").write_bytes(b"")
    first = run(["run", "--state", state], stream(300))  # (as root)
    assert first.returncode == 0, first.stderr
    checkpoint = Path(state) / "riverguard.msgpack" if state.endswith("/") else Path(state)
    where = checkpoint.parent
    if folder == "its own":
        os.chown(where, NOBODY, NOBODY)
        where.chmod(0o555)
    data = stream(5, seed=5, start=300)
    by_nobody = subprocess.run([*prefix, *RG, "run", "--state", state], input=data, capture_output=True, timeout=60)
    assert by_nobody.returncode == 0 and by_nobody.stdout == data, by_nobody.stderr
    mode = f"{stat.S_IMODE(where.stat().st_mode):04o}"
    files = f"{checkpoint} {checkpoint}.lock"
    fix = {
        "riverguard's": f"`chown {me} {where} {files}`",
        "not riverguard's": f"`install -d -o {me} {where}/riverguard`, `mv {checkpoint} {where}/riverguard/riverguard"
                            f".msgpack`, `chown {me} {where}/riverguard/riverguard.msgpack` and give --state (or "
                            f"[state] path) {where}/riverguard/",
        "its own": f"`chmod u+rwx {where}` and `chown {me} {files}`",
    }[folder]
    owner = me if folder == "its own" else "root"
    assert [line for line in by_nobody.stderr.splitlines() if not line.startswith(b"I! ")] == [
        f"E! [riverguard] cannot write the checkpoint {checkpoint} in {where}: permission denied (owner {owner}, "
        f"mode {mode}; riverguard runs as {me}): run {fix}{UNUSABLE}".encode()]
    for command in re.findall(r"`([^`]*)`", fix):  # (as root, as the admin would)
        subprocess.run(shlex.split(command), check=True, timeout=60)
    state = fix.rsplit(" ", 1)[1] if "give --state" in fix else state
    after = subprocess.run([*prefix, *RG, "run", "--state", state], input=data, capture_output=True, timeout=60)
    assert after.returncode == 0, after.stderr
    assert b"restored 4 series" in after.stderr and b"E! " not in after.stderr, after.stderr


@pytest.mark.parametrize("where", ["st/", "st/deeper/rg.msgpack", "st/missing/", "shut/u/st/", "others/u/st/",
                                   "group/u/st/"])
def test_a_state_folder_this_user_may_not_write_passes_every_metric_through(tmp_path: Path, start,
                                                                           where: str) -> None:
    """A state folder Telegraf's user may not write (step 2 of the setup left out) stopped run at start, exit 2,
    none of its input back: under Telegraf a restart every restart_delay, the metrics sent meanwhile lost. Now
    it is handled as another user's checkpoint is: one E! line (the folder, owner, mode, the fix), every metric
    through unscored, byte for byte, until stdin closes, exit 0. replay --state still exits 2, with that line.
    A state folder that does not exist is to be made for that user (README step 2's ``install -d -o``): the
    line told to chown the folder above it, /var/lib for /var/lib/riverguard. Under a folder it may not even
    search (``shut``, its own, mode 0600; ``others``, another user's, mode 0700; ``group``, another user's of
    its group, mode 0700), run stopped on a traceback, exit 1; then the line told to make the state folder,
    which that folder does not let it reach: it names that folder and the chmod that lets this user in. For
    another user's folder (root's, say) it told to run riverguard as that user: now a state path outside it."""
    import pwd

    prefix = as_a_user(tmp_path)
    folder = tmp_path / where.split("/")[0]
    folder.mkdir(mode=0o555)
    mode = "0555"
    owner = me = pwd.getpwuid(os.geteuid()).pw_name
    if where.startswith(("shut/", "others/", "group/")):
        (folder / "u").mkdir()
        folder.chmod(0o600 if where.startswith("shut/") else 0o700)
        mode = f"{stat.S_IMODE(folder.stat().st_mode):04o}"
    if where.startswith(("others/", "group/")):
        if os.geteuid() != 0:
            pytest.skip("a folder of another user's needs root to make")
        os.chown(folder, 65534, 65534 if where.startswith("others/") else os.getegid())  # (nobody's)
        owner = pwd.getpwuid(65534).pw_name
    data = stream(20, seed=5, start=300)
    state = f"{tmp_path}/{where}"  # (a trailing / kept: a folder to make)
    proc = start("run", "--state", state, cmd=[*prefix, *RG])
    _passes_through_for_life(proc, data)
    errors = [line for line in proc.stderr.splitlines() if line.startswith(b"E! ")]
    assert len(errors) == 1, proc.stderr
    said = f"permission denied (owner {owner}, mode {mode}; riverguard runs as {me}): "
    if where == "st/":
        told = f"cannot create the lock file {folder}/riverguard.msgpack.lock in {folder}: {said}run `chmod u+rwx {folder}`"
    elif folder.name in ("shut", "others", "group"):
        advice = {  # (for another user's folder, not: run riverguard as that user, root say)
            "shut": f"run `chmod u+x {folder}`",
            "others": f"use a state path outside it, or have {owner} run `chmod o+x {folder}`",
            "group": f"run `chmod g+x {folder}`, or use a state path outside it",
        }[folder.name]
        told = f"cannot reach the state folder {tmp_path / where.rstrip('/')} through {folder}: {said}" \
            f"{folder} must let {me} in: {advice}"
    else:
        missing = tmp_path / where.rstrip("/") if where.endswith("/") else (tmp_path / where).parent
        told = f"cannot create the state folder {missing} in {folder}: {said}run `install -d -o {me} {missing}`"
    assert errors[0] == f"E! [riverguard] {told}{UNUSABLE}".encode()
    assert list(folder.iterdir()) == ([folder / "u"] if mode != "0555" else [])
    replay = subprocess.run([*prefix, *RG, "replay", "--state", state, "-"], input=data, capture_output=True,
                            timeout=60)
    assert replay.returncode == 2 and replay.stdout == b"", replay.stderr
    assert replay.stderr.startswith(f"E! [riverguard] {told}".encode()), replay.stderr


def test_a_read_only_state_folder_with_its_lock_file_is_told_before_any_input(tmp_path: Path, start) -> None:
    """A state folder made read-only with its lock file there (README, "cannot write the checkpoint ... in"):
    "found at start, before any input is read". Once run took the checkpoint's lock at its first metric, the
    E! line came only then (a run whose inputs send nothing yet, or the copy after the aggregators, said
    nothing, and its health line said nothing either). It comes at start again; every metric still passes
    through."""
    prefix = as_a_user(tmp_path)
    folder = tmp_path / "st"
    folder.mkdir()
    (folder / "riverguard.msgpack.lock").write_bytes(b"")
    folder.chmod(0o555)
    proc = start("run", "--state", f"{folder}/", cmd=[*prefix, *RG])
    told = f"E! [riverguard] cannot write the checkpoint {folder}/riverguard.msgpack in {folder}: ".encode()
    assert proc.wait_stderr(lambda e: told in e, 30), proc.stderr  # no input sent yet
    data = stream(4, seed=5)
    _passes_through_for_life(proc, data)
    assert sorted(folder.iterdir()) == [folder / "riverguard.msgpack.lock"]


@pytest.mark.parametrize("command", ["replay", "pull", "state inspect"])
def test_a_checkpoint_that_cannot_be_read_stops_a_one_shot_command_untouched(tmp_path: Path, command: str) -> None:
    """replay --state and pull renamed another user's checkpoint aside as corrupt and went on with fresh
    models; state inspect printed Python's "[Errno 13]". Now each exits 2 (a checkpoint that cannot be used)
    with the one E! line run gives, and the file is left as it is."""
    prefix = as_a_user(tmp_path)
    state, files, modes = _others_checkpoint(tmp_path)
    args = {
        "replay": ["replay", "--state", str(state), "-"],
        # (no server there: the checkpoint is refused before any request)
        "pull": ["pull", "--state", str(state), "--influx-url", "http://127.0.0.1:9", "--db", "x", "-m", "cpu"],
        "state inspect": ["state", "inspect", str(state)],
    }[command]
    result = subprocess.run([*prefix, *RG, *args], input=stream(5, start=300), capture_output=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stdout == b""
    errors = [line for line in result.stderr.splitlines() if line.startswith(b"E! ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"E! [riverguard] cannot read the checkpoint {state}: permission denied (owner ".encode())
    assert b"Traceback" not in result.stderr and b"Errno" not in result.stderr
    _untouched(tmp_path, files, modes)


def test_ttl_drops_idle_series(tmp_path: Path) -> None:
    state = tmp_path / "s.msgpack"
    config = write_config(tmp_path, extra='[state]\nseries_ttl = "1h"')
    old = f"cpu,host=old v=1 {T0}\n".encode()
    recent = b"".join(f"cpu,host=new v={i} {T0 + 7200 * 10**9 + i}\n".encode() for i in range(5))
    assert run(["run", "--config", str(config), "--state", str(state)], old + recent).returncode == 0
    summary = json.loads(inspect(state).stdout)
    assert summary["series"] == 1
    assert summary["oldest"].startswith("2023-11-15T00:13:20")


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_one_million_series_keep_memory_bounded(tmp_path: Path) -> None:
    state = tmp_path / "s.msgpack"
    config = write_config(tmp_path, extra="[state]\nmax_series = 10000")
    proc = _start(config, state)
    assert proc.stdin and proc.stdout and proc.stderr
    total, chunk = 1_000_000, 50_000
    rss: dict[int, int] = {}
    out_lines = 0

    def drain() -> None:
        nonlocal out_lines
        assert proc.stdout
        for block in iter(lambda: proc.stdout.read1(1 << 20), b""):
            out_lines += block.count(b"\n")

    reader = threading.Thread(target=drain)
    reader.start()
    for start in range(0, total, chunk):
        proc.stdin.write(b"".join(b"m,id=%d v=1.5 %d\n" % (i, T0 + i) for i in range(start, start + chunk)))
        proc.stdin.flush()
        done = start + chunk
        if done in (100_000, total):
            while out_lines < done:
                time.sleep(0.05)
            rss[done] = _rss_kib(proc.pid)
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    reader.join()
    stderr = proc.stderr.read().decode()
    assert out_lines == total
    assert "990000 evictions" in stderr, stderr
    assert json.loads(inspect(state).stdout)["series"] == 10_000
    print(f"\nRSS after 100k series: {rss[100_000] / 1024:.1f} MiB; after 1M: {rss[total] / 1024:.1f} MiB")
    assert rss[total] < rss[100_000] * 1.2 + 8 * 1024, rss


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_while_riverguard_loads_waits_for_its_handlers(tmp_path: Path, sig: signal.Signals) -> None:
    """Loading riverguard takes Python about a tenth of a second; a signal then ended the process (-15, -2
    with a traceback, -1), and the metrics Telegraf had written to its stdin were lost. The command blocks
    the three signals before loading the rest (riverguard._entry), so here a signal sent right after that
    point, before the handlers exist, waits for them: SIGTERM and SIGINT stop run as at any moment, every
    metric back and exit 0; SIGHUP reloads the config it has just read."""
    data = stream(20)
    script = (
        "import os, signal, sys\n"
        "from riverguard import _entry\n"
        "_entry.hold()\n"
        f"os.kill(os.getpid(), {int(sig)})\n"
        "sys.argv = ['riverguard', 'run']\n"
        "sys.exit(_entry._command())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], input=data, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert strip_added(proc.stdout) == data and proc.stdout.count(b"usage_idle_anomaly_score=") == 40
    assert b"Traceback" not in proc.stderr
    if sig == signal.SIGHUP:
        assert b"reload" in proc.stderr.lower(), proc.stderr


def _summary_lines(stderr: bytes) -> list[str]:
    """The end-of-run summary of a replay (its I! lines from ``metrics:`` on), without the prefix."""
    lines = [line.removeprefix("I! [riverguard] ") for line in stderr.decode().splitlines()]
    return lines[next(i for i, line in enumerate(lines) if line.startswith("metrics: ")):]


def test_the_summary_after_a_restored_checkpoint_gives_this_runs_figures(tmp_path: Path) -> None:
    """A replay that restored a checkpoint said ``anomalies: 0``, then listed the top series by anomalies with
    the counts of the runs before (kept in the checkpoint), and ``series: 18 (18 scored)`` after ``metrics:
    0``. Now every figure is this run's, and the series held, the checkpoint's included, say so."""
    demo = (Path(__file__).parent / "data" / "demo.lp").read_bytes().splitlines(keepends=True)
    (tmp_path / "first.lp").write_bytes(b"".join(demo[:10000]))  # 2 anomalies: web1's cpu
    (tmp_path / "second.lp").write_bytes(b"".join(demo[10000:]))  # 4 more, each in another series
    (tmp_path / "none.lp").write_bytes(b"")
    state = str(tmp_path / "state")

    def replay(name: str) -> list[str]:
        proc = run(["replay", "--state", state, "-o", str(tmp_path / "out.lp"), str(tmp_path / name)])
        assert proc.returncode == 0, proc.stderr
        return _summary_lines(proc.stderr)

    first = replay("first.lp")
    assert first[1:3] == ["series: 18 (18 scored)", "anomalies: 2"], first  # (nothing restored: as before)
    second = replay("second.lp")
    assert second[1:4] == [
        "series: 18 in this run (18 scored); 18 held, the checkpoint's included (18 scored)",
        "anomalies: 4",
        "top series by anomalies:",
    ], second
    top = [line.split(None, 1) for line in second[4:]]
    assert len(top) == 4 and all(count == "1" for count, _ in top), second  # each this run's one
    assert not any("host=web1 usage" in key for _, key in top), second  # the first run's
    assert replay("none.lp") == [
        "metrics: 0 (0 unparsable)",
        "series: 0 in this run (0 scored); 18 held, the checkpoint's included (18 scored)",
        "anomalies: 0",
    ]


def test_the_top_series_keep_this_runs_anomalies_of_a_series_that_started_fresh(tmp_path: Path) -> None:
    """A series that starts fresh (series_ttl without a sample) begins its count since its model started at 0
    (``state inspect`` shows that count); the summary's top series took it, and lost the anomalies the
    series had earlier in the run: ``anomalies: 2`` over ``1  m v``. They are this run's, and count."""
    lines, t = [], T0
    for _ in range(2):
        for i in range(300):
            t += STEP
            lines.append(f"m v={1 + i % 2} {t}\n")
        t += STEP
        lines.append(f"m v=1000 {t}\n")  # flagged
        t += 3 * 86400 * 10**9
        for i in range(200):  # another series moves the stream's clock on: m is stale at its next sample
            t += STEP
            lines.append(f"n w={1 + i % 2} {t}\n")
    (tmp_path / "in.lp").write_text("".join(lines), encoding="utf-8")
    (tmp_path / "rg.toml").write_text('[state]\nseries_ttl = "1h"\n[[rule]]\nfields = ["v"]\ndetector = "zscore"\n'
                                      'warmup = 30\n', encoding="utf-8")
    proc = run(["replay", "--config", str(tmp_path / "rg.toml"), "-o", str(tmp_path / "out.lp"), str(tmp_path / "in.lp")])
    assert proc.returncode == 0, proc.stderr
    summary = _summary_lines(proc.stderr)
    assert summary[2:] == [
        "anomalies: 2",
        "series dropped: 0 evictions (max_series, 0 of a series not yet scored), 1 expiry (series_ttl)",
        "top series by anomalies:",
        "       2  m v",
    ], summary


def test_a_reload_does_not_make_every_restored_series_seen_in_this_run(tmp_path: Path) -> None:
    """The summary's ``series: N in this run`` took a series as seen when its last-seen stamp was newer than
    the restore; a reload (SIGHUP: :meth:`Engine.reconfigure`) stamps every series it keeps again, and all 18
    were then seen. Now a series is seen in this run when a sample of it arrives, whatever came after."""
    from riverguard.config import default_config
    from riverguard.engine import Engine
    from riverguard.lineprotocol import Splitter
    from riverguard.log import Log
    from riverguard.state import StateStore

    demo = (Path(__file__).parent / "data" / "demo.lp").read_bytes().splitlines(keepends=True)
    path = tmp_path / "cp.msgpack"

    def feed(engine: Engine, data: bytes) -> None:
        for record in Splitter().split(data)[0]:
            engine.process(record)

    first = Engine(default_config())
    feed(first, b"".join(demo[:2000]))
    assert StateStore(first, path).save()
    lines = io.StringIO()
    engine = Engine(default_config(), Log("info", lines))
    StateStore(engine, path).restore()
    feed(engine, demo[2000])  # one metric: one series of the 18 (its string field is not one)
    engine.reconfigure(default_config())
    engine.log_summary()
    assert "I! [riverguard] series: 1 in this run (1 scored); 18 held, the checkpoint's included (18 scored)\n" in (
        lines.getvalue()), lines.getvalue()
