"""The command line: run, replay, check-config, sample-config, arguments and exit codes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import LOG_PREFIXES, RIVERGUARD, strip_added
from riverguard import __version__, cli
from riverguard.detectors import resolve


def _stream(n: int = 300) -> bytes:
    lines = [b"# recorded on host a\n"]
    for i in range(n):
        value = 500 if i == n - 5 else 10 + (i % 3)
        lines.append(b"cpu,host=a usage=%d,state=\"ok\" %d\n" % (value, i * 10**9))
        lines.append(b"mem,host=a used=%di %d\n" % (1000 + i % 2, i * 10**9))
    lines.append(b"cpu,host=a usage=1_0 999\n")
    return b"".join(lines)


def test_run_and_replay_give_the_same_bytes(tmp_path: Path) -> None:
    """``replay`` of files (and of stdin, '-') is exactly what ``run`` writes for the same stream."""
    data = _stream()
    cut1 = data.index(b"\n", data.index(b"mem,")) + 1  # after the first cpu and mem metrics
    cut2 = data.index(b"\n", len(data) // 2) + 1
    (tmp_path / "a.lp").write_bytes(data[:cut1])
    (tmp_path / "c.lp").write_bytes(data[cut2:])
    out_path = tmp_path / "out.lp"
    procs = [
        subprocess.Popen(
            [*RIVERGUARD, "replay", "--output", str(out_path), "a.lp", "-", "c.lp"],
            cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ),
        subprocess.Popen(
            [*RIVERGUARD, "run", "--log-level", "debug"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ),
    ]
    replay_out, replay_err = procs[0].communicate(data[cut1:cut2], timeout=60)
    run_out, run_err = procs[1].communicate(data, timeout=60)
    assert procs[0].returncode == 0, replay_err
    assert procs[1].returncode == 0, run_err
    assert replay_out == b""  # --output: nothing on stdout
    replayed = out_path.read_bytes()
    assert replayed == run_out
    assert strip_added(run_out) == data

    # Defaults without --config: every numeric field, the default detector and its warm-up.
    warmup = resolve("default").default_warmup
    assert 0 < warmup < 295
    cpu = [line for line in run_out.splitlines() if line.startswith(b"cpu,") and b"_anomaly_score" in line]
    assert len(cpu) == 300
    assert all(b"usage_anomaly_score=0.0,usage_anomaly=false" in line for line in cpu[:warmup])
    flagged = [i for i, line in enumerate(cpu) if b"usage_anomaly=true" in line]
    assert 295 in flagged  # the 500 spike
    assert b"state_anomaly" not in run_out  # strings are never scored
    assert all(b"used_anomaly_score=" in line for line in run_out.splitlines() if line.startswith(b"mem,"))

    for err in (replay_err, run_err):
        for line in err.splitlines():
            assert line.startswith(LOG_PREFIXES), line
    assert b"D! " in run_err  # --log-level debug is honoured
    summary = replay_err.decode()
    assert "I! [riverguard] metrics: 601 (1 unparsable)" in summary
    assert "series: 2 (2 scored)" in summary
    assert re.search(r"anomalies: [1-9]", summary)
    assert "cpu,host=a usage" in summary  # top series by anomalies


def test_replay_to_stdout(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    path = tmp_path / "in.lp"
    path.write_bytes(b"m v=1 1\nm v=oops 2\nm v=1 3")  # no newline at the end of the file
    assert cli.main(["replay", "--log-level", "error", str(path)]) == 0
    captured = capsysbinary.readouterr()
    assert captured.out == (
        b"m v=1,v_anomaly_score=0.0,v_anomaly=false 1\nm v=oops 2\nm v=1,v_anomaly_score=0.0,v_anomaly=false 3\n"
    )
    err = captured.err.decode().splitlines()
    assert err[0].startswith(f'E! [riverguard] {path}:2: not line protocol: invalid field value "oops" at column 5')
    assert "I! [riverguard] metrics: 3 (1 unparsable)" in err


def test_replay_missing_file_fails_before_writing(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    good = tmp_path / "good.lp"
    good.write_bytes(b"m v=1 1\n")
    missing = tmp_path / "missing.lp"
    assert cli.main(["replay", str(good), str(missing)]) == 1
    captured = capsysbinary.readouterr()
    assert captured.out == b""
    assert captured.err.startswith(b"E! ") and str(missing).encode() in captured.err


def test_replay_with_bad_config_exits_2(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[rule]]\nname = "x"\nthreshold = 2\n')
    data = tmp_path / "in.lp"
    data.write_bytes(b"m v=1 1\n")
    assert cli.main(["replay", "--config", str(cfg), str(data)]) == 2
    captured = capsysbinary.readouterr()
    assert captured.out == b""
    assert captured.err.count(b"\n") == 1 and b"key 'threshold'" in captured.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    from riverguard.engine import ACCELERATED

    hot_path = "compiled hot path" if ACCELERATED else "pure Python: no compiled hot path"
    assert capsys.readouterr().out.strip() == f"riverguard {__version__} ({hot_path})"


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["run", "--log-level", "loud"], ["replay"], ["check-config"], ["run", "extra"]],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("E! [riverguard] riverguard") and "--help" in err and err.count("\n") == 1


def test_sample_config_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sample-config"]) == 0
    assert capsys.readouterr().out == cli.sample_config()
    assert "[[rule]]" in cli.sample_config()


def test_usage_errors_carry_a_telegraf_level_prefix() -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "riverguard", "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("E! ") and "invalid choice" in result.stderr


def test_a_field_given_twice_is_scored_once() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "riverguard", "run"], input=b"m v=1,v=2 1\n", capture_output=True, check=True
    )
    assert result.stdout == b"m v=1,v=2,v_anomaly_score=0.0,v_anomaly=false 1\n"
