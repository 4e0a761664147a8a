"""The command line: run, replay, check-config, sample-config, arguments and exit codes."""

from __future__ import annotations

import contextlib
import gzip
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest

from conftest import (LOG_PREFIXES, RIVERGUARD, ROOT, UNUSABLE, expiring_series, reader_gone, refused_line, run_cli,
                      sensor_lines, stdin_from, strip_added, wait_until)
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
    assert cli.main(["replay", str(path)]) == 0
    captured = capsysbinary.readouterr()
    assert captured.out == (
        b"m v=1,v_anomaly_score=0.0,v_anomaly=false 1\nm v=oops 2\nm v=1,v_anomaly_score=0.0,v_anomaly=false 3\n"
    )
    err = captured.err.decode().splitlines()
    assert err[0].startswith(f'E! [riverguard] {path}:2: not line protocol: invalid field value "oops" at column 5')
    assert "I! [riverguard] metrics: 3 (1 unparsable)" in err


def test_an_error_column_counts_the_bytes_skipped_before_a_line() -> None:
    """A line after spaces or tabs (which InfluxDB skips, as riverguard does) is written back with them,
    and its error's column is in that line as written: it counted from after them (column 5 for column 8)."""
    proc = run_cli(["replay", "-"], input=b'   m v=1x 5\n\t m v="a 5\nm v=1x 5\n', text=False)
    assert proc.returncode == 0 and proc.stdout == b'   m v=1x 5\n\t m v="a 5\nm v=1x 5\n'
    assert [line.split(b": not line protocol: ")[1].split(b";")[0] for line in proc.stderr.splitlines()[:3]] == [
        b'invalid field value "1x" at column 8', b"unterminated string value at column 7",
        b'invalid field value "1x" at column 5',
    ], proc.stderr


@pytest.mark.parametrize("option", ["-o", "--output"])
def test_replay_output_dash_is_stdout(tmp_path: Path, option: str) -> None:
    """'-' is stdin among replay's inputs and stdout for --output (it wrote a file named '-')."""
    (tmp_path / "in.lp").write_bytes(b"m v=1 1\n")
    proc = subprocess.run(
        [*RIVERGUARD, "replay", option, "-", "-", "in.lp"], cwd=tmp_path, input=b"m v=2 0\n", capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"m v=2,v_anomaly_score=0.0,v_anomaly=false 0\nm v=1,v_anomaly_score=0.0,v_anomaly=false 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.lp"]


@pytest.mark.parametrize(("precision", "unit"), [("s", 10**9), ("ms", 10**6), ("us", 10**3)])
def test_replay_precision_is_the_unit_the_models_read_timestamps_in(tmp_path: Path, precision: str,
                                                                     unit: int) -> None:
    """The demo recording with timestamps in seconds (or ms, us), replayed with ``--precision``, is scored
    exactly as in nanoseconds, and keeps its timestamps as written; the state holds them in nanoseconds.
    Before, ``--precision`` only told InfluxDB: the models read seconds as nanoseconds (10 422 of the demo's
    scores differed, and state inspect gave 1970). A timestamp that is out of range in nanoseconds is a bad
    line, passed through."""
    demo = (ROOT / "tests" / "data" / "demo.lp").read_bytes().splitlines(keepends=True)
    coarse = [b"%s %d\n" % (line.rsplit(b" ", 1)[0], int(line.rsplit(b" ", 1)[1]) // unit) for line in demo]
    (tmp_path / "demo.lp").write_bytes(b"".join(coarse) + b"m v=1 %d\n" % (2**63 // unit + 1))
    proc = subprocess.run(
        [*RIVERGUARD, "replay", "--precision", precision, "--state", "st", "-o", "out.lp", "demo.lp"], cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"demo.lp:{len(demo) + 1}: not line protocol: timestamp out of range at this --precision" in proc.stderr
    fine = run_cli(["replay", "-"], input=b"".join(demo), timeout=120)
    out = (tmp_path / "out.lp").read_bytes().splitlines()
    assert out[-1] == b"m v=1 %d" % (2**63 // unit + 1)
    assert [line.rsplit(b" ", 1)[0] for line in out[:-1]] == [line.rsplit(b" ", 1)[0] for line in fine.stdout.splitlines()]
    assert [line.rsplit(b" ", 1)[1] for line in out[:-1]] == [line.rsplit(b" ", 1)[1].rstrip(b"\n") for line in coarse]
    newest = max(int(line.rsplit(b" ", 1)[1]) for line in demo) // unit * unit
    inspected = run_cli(["state", "inspect", "st"], cwd=tmp_path, text=True)
    from riverguard.log import iso_ns

    assert f'"newest": "{iso_ns(newest)}"' in inspected.stdout, inspected.stdout


@pytest.mark.parametrize("line", [b"m v=1 \t99999999999999", b"m v=1 99999999999999  ", b'm v="a b" 99999999999999'])
def test_a_timestamp_out_of_range_at_the_precision_is_pointed_at(line: bytes) -> None:
    """The column of "timestamp out of range at this --precision" was the last space's: the tab before the
    timestamp (column 7), or a space after it (column 23). It is the timestamp's."""
    proc = run_cli(["replay", "--precision", "s", "-"], input=line + b"\n", text=False)
    assert proc.returncode == 0 and proc.stdout == line + b"\n", proc.stderr
    column = line.index(b"9") + 1
    assert b"timestamp out of range at this --precision at column %d;" % column in proc.stderr, proc.stderr


def test_replay_report_dash_is_refused(tmp_path: Path) -> None:
    """The HTML report goes to a file; '--report -' wrote a file named '-'."""
    (tmp_path / "in.lp").write_bytes(b"m v=1 1\n")
    proc = subprocess.run(
        [*RIVERGUARD, "replay", "--report", "-", "-o", "out.lp", "in.lp"], cwd=tmp_path, capture_output=True,
        text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "E! [riverguard] --report -: the report is an HTML file, not a stream; give it a file name\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.lp"]


@pytest.mark.parametrize("option", [["--report-top", "3"], ["--report-series", "cpu,* usage_*"]])
def test_replay_report_options_without_report_are_refused(tmp_path: Path, option: list[str]) -> None:
    """--report-top and --report-series only shape the report: without --report they were taken and
    silently ignored (exit 0, no report, no word), where --db or --skip-metrics without --influx-url is
    refused."""
    (tmp_path / "in.lp").write_bytes(b"m v=1 1\n")
    proc = subprocess.run(
        [*RIVERGUARD, "replay", *option, "-o", "out.lp", "in.lp"], cwd=tmp_path, capture_output=True,
        text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"E! [riverguard] {option[0]} needs --report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.lp"]


def test_replay_missing_file_fails_before_writing(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    good = tmp_path / "good.lp"
    good.write_bytes(b"m v=1 1\n")
    missing = tmp_path / "missing.lp"
    assert cli.main(["replay", str(good), str(missing)]) == 2
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
    from riverguard._compiled import PURE_PYTHON, built
    from riverguard.engine import ACCELERATED

    hot_path = "compiled hot path" if ACCELERATED else "pure Python: no compiled hot path"
    if PURE_PYTHON and built("_hotpath"):
        hot_path = "pure Python: the compiled hot path is switched off by RIVERGUARD_PURE_PYTHON"
    assert capsys.readouterr().out.strip() == f"riverguard {__version__} ({hot_path})"


def test_the_version_is_the_installed_one() -> None:
    """``riverguard --version`` reads plugin/riverguard/_version.py, which the build reads too (pyproject's
    dynamic version): what pip says is installed is what riverguard says it is."""
    from importlib import metadata

    proc = run_cli(["--version"], text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:2] == ["riverguard", metadata.version("riverguard")]


def _imported(proc: subprocess.CompletedProcess[str]) -> set[str]:
    """The modules a process started with PYTHONPROFILEIMPORTTIME=1 imported (its stderr's listing)."""
    return {line.split("|")[2].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")} - {
        "imported package"}


def test_run_starts_without_what_only_other_commands_need() -> None:
    """Telegraf starts ``riverguard run`` (at every start and after every crash); it imported InfluxDB's HTTP
    client, ``pull``, the HTML report (for other subcommands' options), ``importlib.metadata`` (for the
    version) and ``importlib.abc`` (with ``importlib.resources`` and ``tempfile``): 0.33 s to start and score
    one metric, 0.21 s without them (docs/performance.md, "Start-up")."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = run_cli(["run"], input="cpu,host=a usage_idle=1 1\n", env=env, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("cpu,host=a usage_idle=1")
    imported = _imported(proc)
    assert {"riverguard.engine", "riverguard.stream"} <= imported  # the listing is read
    assert not imported & {"riverguard.influx", "riverguard.pull", "riverguard.report", "http.client",
                           "importlib.metadata", "importlib.abc", "importlib.resources", "tempfile"}
    # the commands that need them still have their options
    replay = run_cli(["replay", "--help"], env=env, text=True)
    assert "--report-top" in replay.stdout and "--influx-url" in replay.stdout
    assert {"riverguard.influx", "riverguard.report"} <= _imported(replay)
    assert "--influx-url" in run_cli(["pull", "--help"], text=True).stdout


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


# -- what a newcomer trying the README met ------------------------------------------


def test_missing_extras_name_their_packages_never_pypis_riverguard(tmp_path: Path) -> None:
    """riverguard comes from a checkout: `pip install 'riverguard[collect]'` would fetch PyPI's namesake. The
    message named the checkout with the extra, which builds and compiles riverguard again (minutes), where the
    README says to install the extra's package alone: it now names that package, with its version."""
    fake = tmp_path / "site" / "psutil"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    result = run_cli(["collect", "--count", "1"], text=True, timeout=60,
                     env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    pip = Path(sys.executable).with_name("pip")
    assert result.returncode == 2  # a missing extra, as for replay --report
    assert result.stderr == (
        f"E! [riverguard] collect needs the optional collect extra (psutil): {pip} install 'psutil>=5.9'\n"
    )
    usage = run_cli(["replay", "--help"], text=True, timeout=60).stdout
    assert "riverguard[" not in usage and "pip install '/path/to/this/checkout[report]'" in usage
    assert "pip install '/path/to/this/checkout[report,collect]'" in (ROOT / "README.md").read_text()


def test_log_level_error_keeps_the_replay_summary_quiet(tmp_path: Path) -> None:
    (tmp_path / "in.lp").write_bytes(_stream(20))
    quiet = run_cli(["replay", "--log-level", "error", "in.lp"], cwd=tmp_path, timeout=60)
    assert quiet.returncode == 0
    (line,) = quiet.stderr.splitlines()  # the one bad line in the stream is an error: it stays
    assert line.startswith(b"E! [riverguard] in.lp:42: not line protocol")
    told = run_cli(["replay", "in.lp"], cwd=tmp_path, timeout=60)
    assert b"I! [riverguard] metrics: 41 (1 unparsable)\n" in told.stderr and quiet.stdout == told.stdout


def test_the_summary_says_how_many_series_with_anomalies_it_leaves_out(tmp_path: Path) -> None:
    """The summary lists the 5 series with the most anomalies; the demo flags 6, and the sixth
    (mem,host=web2 used_percent, the level shift) was left out without a word."""
    demo = run_cli(["replay", "-o", str(tmp_path / "out.lp"), str(ROOT / "tests/data/demo.lp")], text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr
    lines = demo.stderr.splitlines()
    top = lines.index("I! [riverguard] top series by anomalies:")
    listed = [re.fullmatch(r"I! \[riverguard\] +(\d+)  (.+)", line) for line in lines[top + 1 : top + 6]]
    assert all(listed) and "mem,host=web2 used_percent" not in demo.stderr, demo.stderr
    assert lines[top + 6 :] == ["I! [riverguard]      ...  and 1 more series"], demo.stderr
    # Five or fewer: all of them, and no such line.
    (tmp_path / "in.lp").write_bytes(_stream())
    few = run_cli(["replay", "in.lp"], cwd=tmp_path, text=True, timeout=60)
    assert few.returncode == 0 and "I! [riverguard]        1  cpu,host=a usage" in few.stderr, few.stderr
    assert "more series" not in few.stderr


def _flagged(out: Path) -> dict[str, int]:
    """The anomalies in a replay's output, by series as the summary names them (``m,tags field``)."""
    from riverguard.lineprotocol import raw_fields

    counts: dict[str, int] = {}
    for line in out.read_bytes().splitlines():
        head, fields, _ = raw_fields(line)
        for key, value in fields.items():
            if key.endswith(b"_anomaly") and value == b"true":
                name = f"{head.decode()} {key[: -len('_anomaly')].decode()}"
                counts[name] = counts.get(name, 0) + 1
    return counts


def _summary_of(stderr: str) -> list[str]:
    return [line.removeprefix("I! [riverguard] ") for line in stderr.splitlines()
            if line.startswith("I! [riverguard] ") and not line.startswith("I! [riverguard] no checkpoint")]


def test_the_summary_counts_a_series_that_expired_during_the_run(tmp_path: Path) -> None:
    """A newcomer's trial: series ``a`` (a spike at its 300th sample), then three days later ``b`` alone. ``a``
    expired (series_ttl) and the summary dropped it: ``series: 1 (1 scored)``, ``anomalies: 1`` and no top
    series, while the output held a's one anomaly. The summary is of all of this run."""
    (tmp_path / "expire.lp").write_text(expiring_series(), encoding="utf-8")
    proc = run_cli(["replay", "-o", "out.lp", "expire.lp"], cwd=tmp_path, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _flagged(tmp_path / "out.lp") == {"m,s=a v": 1}
    assert _summary_of(proc.stderr) == [
        "metrics: 5400 (0 unparsable)",
        "series: 2 (2 scored)",
        "anomalies: 1",
        "series dropped: 0 evictions (max_series, 0 of a series not yet scored), 1 expiry (series_ttl)",
        "top series by anomalies:",
        "       1  m,s=a v",
    ], proc.stderr


def test_the_summary_counts_each_evicted_series_once_with_all_its_anomalies(tmp_path: Path) -> None:
    """Eight series in turn, 200 samples each with a spike, twice over, through ``max_series = 2``: each is
    evicted, comes back (starting fresh) and is evicted again. The summary listed only the two held at the end;
    it counts each of the eight once (not once a stay), with the anomalies of both its stays, as the output."""
    (tmp_path / "rg.toml").write_text('[state]\nmax_series = 2\n[[rule]]\nfields = ["v"]\ndetector = "zscore"\n'
                                      "warmup = 30\n", encoding="utf-8")
    lines, t = [], 1_700_000_000 * 10**9
    for _ in range(2):
        for host in range(8):
            for i in range(200):
                t += 10**9
                value = 1000 * (host + 1) if i in (100, 150)[: 1 + host % 2] else 10 + i % 3
                lines.append(f"m,host=h{host} v={value} {t}\n")
    (tmp_path / "in.lp").write_text("".join(lines), encoding="utf-8")
    proc = run_cli(["replay", "--config", "rg.toml", "-o", "out.lp", "in.lp"], cwd=tmp_path, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    flagged = _flagged(tmp_path / "out.lp")
    assert sorted(flagged.values()) == [2, 2, 2, 2, 4, 4, 4, 4], flagged  # 1 or 2 a stay, two stays each
    top = sorted(flagged.items(), key=lambda item: (-item[1], item[0]))[:5]
    assert _summary_of(proc.stderr) == [
        "metrics: 3200 (0 unparsable)",
        "series: 8 (8 scored)",
        f"anomalies: {sum(flagged.values())}",
        "series dropped: 14 evictions (max_series, 0 of a series not yet scored), 0 expiries (series_ttl)",
        "top series by anomalies:",
        *(f"  {count:>6}  {name}" for name, count in top),
        "     ...  and 3 more series",
    ], proc.stderr


def test_the_summary_of_a_run_through_more_series_than_it_remembers_is_an_estimate(tmp_path: Path) -> None:
    """Past the series let go that it remembers by key (riverguard.tally.EXACT: 50 000), the summary estimates
    how many series the run had (its memory stays bounded whatever their number), and says so."""
    from riverguard import tally

    n = tally.EXACT + 10_000
    (tmp_path / "rg.toml").write_text("[state]\nmax_series = 100\n[[rule]]\nfields = [\"v\"]\n", encoding="utf-8")
    data = b"".join(b"m,id=%d v=1 %d\n" % (i, 10**9 * (i + 1)) for i in range(n))
    (tmp_path / "in.lp").write_bytes(data)
    proc = run_cli(["replay", "--config", "rg.toml", "-o", "out.lp", "in.lp"], cwd=tmp_path, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    found = re.search(r"^I! \[riverguard\] series: about (\d+) \(about (\d+) scored\)$", proc.stderr, re.M)
    assert found, proc.stderr
    assert abs(int(found[1]) - n) < 0.03 * n and found[1] == found[2], proc.stderr


def test_the_summarys_memory_of_the_series_let_go_is_bounded() -> None:
    """A run through millions of short-lived series: what the summary keeps of them stays bounded (exact
    keys up to EXACT, then 3 x 16 KiB of registers; the anomaly counts of at most 2 x KEEP series), and the
    top series are still those with the most."""
    from riverguard import tally

    gone = tally.RunTally()
    n = 3 * tally.EXACT
    for i in range(n):
        gone.add(b"m,id=%d v" % i, i % 2 == 0, 1000 + i if i % 97 == 0 else 1 if i % 3 == 0 else 0)
        assert len(gone.anomalies) <= 2 * tally.KEEP
    assert gone._flags is None and gone._registers is not None
    figures = gone.figures([(b"m,id=0 v", True, 5)], 2)
    assert not figures.exact and abs(figures.series - n) < 0.03 * n and abs(figures.scored - n / 2) < 0.03 * n
    last = (n - 1) // 97 * 97
    assert figures.top == [(1000 + last, b"m,id=%d v" % last), (1000 + last - 97, b"m,id=%d v" % (last - 97))]
    assert gone.figures([(b"m,id=0 v", True, 5)], 2) == figures  # (the tally is left as it was)


def test_the_summary_counts_a_series_let_go_and_held_again_once() -> None:
    from riverguard import tally

    gone = tally.RunTally()
    gone.add(b"a", True, 2)
    gone.add(b"b", False, 0)
    held = [(b"a", True, 1), (b"c", True, 0)]
    figures = gone.figures(held, 5)
    assert figures == tally.Figures(3, 2, 1, True, [(3, b"a")])
    assert gone.figures(held, 5) == figures and gone._flags == {b"a": 3, b"b": 0}


def test_state_help_says_what_each_command_does_with_the_config_path() -> None:
    """replay and pull never touch the config's [state] path; only run lets --state override it."""
    def state_help(command: str) -> str:
        usage = run_cli([command, "--help"], text=True, timeout=60).stdout
        found = re.search(r"^  --state PATH\s+(.*?)(?:\n  -|\n\n|\Z)", usage, re.S | re.M)
        assert found, usage
        return " ".join(found.group(1).split())

    assert state_help("run") == "checkpoint file (overrides [state] path in the config)"
    for command in ("replay", "pull"):
        assert state_help(command) == (
            "checkpoint file to restore the models from and save them to (without it nothing is kept; "
            "the config's [state] path is never used)"
        ), command


def test_check_config_shows_whether_each_rule_explains(tmp_path: Path) -> None:
    """A rule's explain is its own, else [output] explain's: check-config prints the value that applies,
    and run writes explanation fields for exactly those rules' fields."""
    config = tmp_path / "rg.toml"
    rules = '[[rule]]\nname = "cpu"\nmeasurement = "cpu"\nexplain = {cpu}\n\n[[rule]]\nname = "rest"\n'
    data = b"".join(b"cpu,host=a v=%d %d\nmem,host=a v=%d %d\n" % (i % 7, i, i % 5, i) for i in range(30))
    for output, cpu, want in (("true", "false", (False, True)), ("false", "true", (True, False))):
        config.write_text(f"[output]\nexplain = {output}\n\n" + rules.format(cpu=cpu))
        checked = run_cli(["check-config", str(config)], timeout=60)
        assert checked.returncode == 0, checked.stderr
        shown = [line for line in checked.stdout.splitlines() if line.startswith(b"rule ")]
        assert [b'"explain": true' in line for line in shown] == list(want), shown
        assert [b'"explain": false' in line for line in shown] == [not w for w in want], shown
        ran = run_cli(["run", "--config", str(config)], input=data, timeout=60)
        out = ran.stdout.splitlines()
        assert [any(b"v_anomaly_expected=" in line for line in out if line.startswith(m)) for m in (b"cpu", b"mem")] == list(want)


def test_check_config_and_run_report_a_config_the_same_way(tmp_path: Path) -> None:
    config = tmp_path / "rg.toml"
    config.write_text('[[rule]]\nname = "a"\ndetector = "zscroe"\n\n[[rule]]\nname = "b"\nthreshold = 5\n')
    checked = run_cli(["check-config", str(config)], timeout=60)
    ran = run_cli(["run", "--log-level", "warn", "--config", str(config)], timeout=60)
    assert (checked.returncode, ran.returncode) == (2, 0)  # (run: passes every metric through, below)
    assert ran.stderr == checked.stderr + refused_line(config).encode() + b"\n" and len(checked.stderr.splitlines()) == 2
    assert ran.stderr.startswith(f'E! [riverguard] {config}: rule 1 "a", key \'detector\': unknown detector'.encode())
    config.write_text('[[rule]]\nname = "all"\n\n[[rule]]\nname = "cpu"\nmeasurement = "cpu"\n')
    checked = run_cli(["check-config", str(config)], timeout=60)
    ran = run_cli(["run", "--log-level", "warn", "--config", str(config)], timeout=60)
    assert checked.returncode == ran.returncode == 0
    assert checked.stderr == ran.stderr == (
        f'W! [riverguard] {config}: rule 2 "cpu" is never used: rule 1 "all" before it matches every field\n'.encode()
    )


#: Three metrics as Telegraf writes them, one with a string value across lines, the last without its newline.
_THREE = b'cpu,host=a usage=1 1\nlog,host=a msg="two\nlines",n=1i 2\nmem,host=a used=3i 3'


@pytest.mark.parametrize("config", ["bad.toml", "missing.toml", "syntax.toml"])
def test_run_with_a_refused_config_passes_every_metric_through(tmp_path: Path, config: str) -> None:
    """Under Telegraf's execd a process that exits is restarted, and every metric written to it meanwhile
    is lost: ``run`` with a config ``check-config`` refuses exited 2, into the same refusal at every
    restart, forever. It says the same lines and one more, at once (before any input), and gives every
    metric back as it came, exit 0 at EOF; the config's checkpoint is never made nor opened."""
    (tmp_path / "bad.toml").write_text('[state]\npath = "st/"\n\n[[rule]]\nname = "a"\ndetector = "zscroe"\n')
    (tmp_path / "syntax.toml").write_text('[state]\npath = "st/"\n\n[[rule]\nname = "a"\n')
    checked = run_cli(["check-config", config], cwd=tmp_path)
    assert checked.returncode == 2 and checked.stderr.startswith(b"E! "), checked.stderr
    ran = run_cli(["run", "--config", config], input=_THREE, cwd=tmp_path)
    assert (ran.returncode, ran.stdout) == (0, _THREE), ran.stderr
    assert ran.stderr.decode() == (
        checked.stderr.decode() + refused_line(config) + "\nI! [riverguard] stopped after passing 3 lines through unscored\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"bad.toml", "syntax.toml"})  # no st/, no lock


def test_run_with_a_refused_config_says_so_before_any_input(tmp_path: Path, start) -> None:
    """A human at a terminal sees the refusal at once, not at EOF; a SIGHUP reads the config again and says
    whether it is valid now (scoring takes a restart); the metrics keep coming back unscored meanwhile."""
    config = tmp_path / "rg.toml"
    config.write_text('[[rule]]\nname = "a"\ndetector = "zscroe"\n')
    proc = start("run", "--config", str(config))
    said = refused_line(config).encode()
    assert proc.wait_stderr(lambda e: said in e, 30), proc.stderr
    proc.write(b"cpu v=1 1\n")
    assert proc.wait_lines(1, 30), proc.stderr
    proc.popen.send_signal(signal.SIGHUP)
    still = f"E! [riverguard] received SIGHUP: {config} is still refused (above): passing every metric through unscored"
    assert proc.wait_stderr(lambda e: still.encode() in e, 30), proc.stderr
    config.write_text('[[rule]]\nname = "a"\ndetector = "zscore"\n')
    proc.popen.send_signal(signal.SIGHUP)
    valid = (f"W! [riverguard] received SIGHUP: {config} is valid now, but this process goes on passing every metric "
             "through unscored: restart Telegraf to score with it")
    assert proc.wait_stderr(lambda e: valid.encode() in e, 30), proc.stderr
    proc.write(b"cpu v=2 2\n")
    proc.close_stdin()
    assert proc.wait(30) == 0, proc.stderr
    assert proc.stdout == b"cpu v=1 1\ncpu v=2 2\n"
    assert proc.stderr.count(b"E! [riverguard] " + str(config).encode() + b": rule 1") == 2  # at start, at the first SIGHUP


#: A state path no riverguard can use, whatever user it runs as (--state given in the folder the test runs in,
#: holding rg.toml): made by the test, what the E! line says.
_UNUSABLE_STATES = {
    "fifo": ("fifo", "not a regular file or a folder"),
    "folder at the checkpoint": ("st/", "is a folder, where the file should be"),
    "under a file": ("a-file/rg.msgpack", "a-file is a file, not a folder"),
    "/proc": ("/proc/riverguard-test/rg.msgpack", "on the kernel's proc filesystem"),
    "the config": ("rg.toml", "--state rg.toml is the --config file rg.toml: refusing to overwrite what is being read"),
}


@pytest.mark.parametrize("case", list(_UNUSABLE_STATES))
def test_run_with_a_state_path_it_cannot_use_passes_every_metric_through(tmp_path: Path, case: str) -> None:
    """A state path no user can use (a FIFO, a folder where the checkpoint file goes, a file where a folder
    should be, /proc, the config file itself) made run exit 2: under Telegraf's execd every metric written to
    it was lost, and the restart met the same path, for ever. It now says the E! line replay gives (which
    still exits 2), and what it does and what to do, then gives every metric back as it came, the health line
    last (status=passthrough), exit 0 at EOF; no file is made, renamed or changed."""
    state, says = _UNUSABLE_STATES[case]
    (tmp_path / "rg.toml").write_text('[monitor]\ninterval = "1h"\n\n[[rule]]\nname = "all"\n')
    if case == "fifo":
        os.mkfifo(tmp_path / "fifo")
    elif case == "folder at the checkpoint":
        (tmp_path / "st" / "riverguard.msgpack").mkdir(parents=True)
    elif case == "under a file":
        (tmp_path / "a-file").write_text("mine")

    def files() -> dict[Path, tuple[int, bytes | None]]:
        return {p: (p.lstat().st_mode, p.read_bytes() if p.is_file() else None) for p in sorted(tmp_path.rglob("*"))}

    before = files()
    ran = run_cli(["run", "--config", "rg.toml", "--state", state], input=_THREE, cwd=tmp_path)
    replayed = run_cli(["replay", "--config", "rg.toml", "--state", state, "-"], input=_THREE, cwd=tmp_path)
    assert files() == before
    assert (replayed.returncode, replayed.stdout) == (2, b""), replayed.stderr
    (told,) = replayed.stderr.decode().splitlines()
    assert told.startswith("E! [riverguard] ") and says in told, told
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.decode() == f"{told}{UNUSABLE}\nI! [riverguard] stopped after passing 3 lines through unscored\n"
    health = ran.stdout.removeprefix(_THREE + b"\n")  # (the last metric ended before the health line)
    assert health.startswith(b"riverguard,") and health.count(b"\n") == 1, ran.stdout
    assert b",status=passthrough" in health.split(b" ")[0] and b"metrics=3i" in health, health


# -- exit codes (README, "Exit codes") ---------------------------------------------

#: Every usage error of every command: what was given is wrong (command line, config, a file or folder named,
#: a checkpoint that cannot be used, a missing extra), so nothing is done: exit 2, one E! line or message.
#: In the folder the test runs in: in.lp (a good recording), good.csv (labelled), bad.toml (an unknown detector),
#: garbage.msgpack, dir/ (a folder), fifo (a named pipe); `hidden` names the extras made unimportable.
USAGE_ERRORS = [
    (["frobnicate"], (), "invalid choice"),
    (["run", "--bogus"], (), "unrecognized arguments: --bogus"),
    (["replay", "--precision", "h", "in.lp"], (), "invalid choice"),
    (["check-config", "bad.toml"], (), 'unknown detector "zscroe"'),
    (["run", "--config", "bad.toml", "--bogus"], (), "unrecognized arguments: --bogus"),  # (not passed through)
    (["replay", "--config", "bad.toml", "in.lp"], (), 'unknown detector "zscroe"'),  # (only run passes through)
    (["replay", "--config", "missing.toml", "in.lp"], (), "missing.toml: no such file"),
    (["replay", "missing.lp"], (), "cannot read missing.lp: no such file"),
    (["replay", "dir"], (), "it is a folder"),
    (["replay", "in.lp", "bad.toml"], (), "bad.toml is a .toml file, not line protocol: did you mean --config bad.toml?"),
    (["replay", "rg.conf"], (), "rg.conf reads as TOML (a config?), not line protocol: did you mean --config rg.conf?"),
    (["replay", "-o", "dir", "in.lp"], (), "is a folder: give a file name"),
    (["replay", "-o", "in.lp", "in.lp"], (), "refusing to overwrite what is being read"),
    (["replay", "--state", "in.lp", "in.lp"], (), "--state in.lp is the input file in.lp"),
    (["replay", "-o", "r.html", "--report", "r.html", "in.lp"], (), "--report r.html is the --output file r.html"),
    (["replay", "--report", "-", "in.lp"], (), "the report is an HTML file"),
    (["replay", "--report", "r.html", "in.lp"], ("bokeh",), "needs the optional report extra"),
    (["replay", "--state", "fifo", "in.lp"], (), "not a regular file"),
    (["replay", "--influx-url", "http://127.0.0.1:1", "in.lp"], (), "--db"),
    (["pull", "--config", "bad.toml", "--influx-url", "http://127.0.0.1:1", "--db", "a"], (), 'unknown detector "zscroe"'),
    (["pull", "--influx-url", "http://127.0.0.1:1", "--db", "a", "--since", "30"], (), "has no unit"),
    (["pull", "--influx-url", "http://127.0.0.1:1", "--db", "a", "--every", "10s"], (), "--every goes with --follow"),
    (["collect", "--count", "1"], ("psutil",), "needs the optional collect extra"),
    (["collect", "--interval", "soon"], (), '--interval: invalid duration "soon"'),
    (["collect", "--count", "0"], (), "--count >= 1"),
    (["collect", "--interval", "1ns"], (), '--interval must be at least 10ms (one kernel tick, the unit of cpu time), got "1ns"'),
    (["collect", "--interval", "9ms", "--count", "1"], (), '--interval must be at least 10ms'),
    (["evaluate", "--detector", "nosuch", "--labels", "good.csv"], (), 'unknown detector "nosuch"'),
    (["evaluate", "--config", "bad.toml", "--labels", "good.csv"], (), 'unknown detector "zscroe"'),
    (["evaluate", "--reference", "numenta", "--labels", "good.csv"], (), "cannot be combined with --labels"),
    (["evaluate", "--nab", "dir"], (), "no NAB corpus here"),
    (["evaluate", "--labels", "missing.csv"], (), "missing.csv: no such file"),
    (["evaluate", "--labels", "dir"], (), "dir: a folder with no *.csv file in it"),
    (["evaluate", "--labels", "in.lp"], (), "in.lp"),
    (["state", "inspect", "missing.msgpack"], (), "no such file"),
    (["state", "inspect", "garbage.msgpack"], (), "not a riverguard checkpoint"),
    (["state", "inspect", "fifo"], (), "not a regular file"),
]


@pytest.mark.parametrize("args, hidden, message", USAGE_ERRORS, ids=[" ".join(c[0]) + "".join(f" (no {h})" for h in c[1]) for c in USAGE_ERRORS])
def test_every_usage_error_exits_2(tmp_path: Path, args: list[str], hidden: tuple[str, ...], message: str) -> None:
    """An unknown --detector was exit 1 and an unknown detector in the config exit 2; a missing collect extra
    exit 1 and a missing report extra exit 2; a missing replay input 1, a missing evaluate input 2. One rule now."""
    (tmp_path / "in.lp").write_bytes(b"cpu,host=a v=1 1\ncpu,host=a v=2 2\n")
    (tmp_path / "good.csv").write_text("timestamp,value,label\n" + "".join(
        f"2024-01-01 00:{i:02d}:00,{i % 3}.5,0\n" for i in range(30)))
    (tmp_path / "bad.toml").write_text('[[rule]]\nname = "a"\ndetector = "zscroe"\n')
    (tmp_path / "rg.conf").write_text('# a config under another name\n[[rule]]\nname = "a"\n')
    (tmp_path / "garbage.msgpack").write_bytes(b"\x00garbage")
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    env = dict(os.environ)
    for name in hidden:  # as if the extra were not installed: a package of that name that fails to import
        (tmp_path / "site" / name).mkdir(parents=True)
        (tmp_path / "site" / name / "__init__.py").write_text(f"raise ImportError('{name} hidden by the test')\n")
        env["PYTHONPATH"] = str(tmp_path / "site")
    env.pop("RIVERGUARD_NAB", None)
    result = run_cli([*args], cwd=tmp_path, text=True, timeout=60, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    # Every line with a Telegraf log prefix (README, Messages), the E! line saying what is wrong.
    assert all(line.startswith(("E! [riverguard] ", "W! [riverguard] ", "I! [riverguard] "))
               for line in result.stderr.splitlines()), result.stderr
    assert any(line.startswith("E! [riverguard] ") and message in line for line in result.stderr.splitlines())


def test_collect_help_and_refusal_write_the_least_interval_as_the_readme() -> None:
    """--help and the README said "10ms" while the refusal said "0.01s": one duration, written as a user
    writes it, in all three."""
    usage = " ".join(run_cli(["collect", "--help"], text=True, timeout=60).stdout.split())
    refused = run_cli(["collect", "--interval", "1ns"], text=True, timeout=60)
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert 'at least "10ms"' in usage, usage
    assert "--interval must be at least 10ms " in refused.stderr, refused.stderr
    assert "`--interval` at least `10ms`" in readme


def test_a_replay_input_that_is_no_config_is_replayed_and_a_pipe_is_not_read_twice(tmp_path: Path) -> None:
    """Inputs are looked at for a config given in place of --config (test_every_usage_error_exits_2): a
    recording with only comments is none, and an input that is a pipe (`replay <(zcat x.gz)`) is not read
    for it, so every line still reaches the replay."""
    (tmp_path / "notes.lp").write_text("# nothing recorded yet\n")
    data = b"".join(b"cpu,host=a v=%d %d\n" % (i, i) for i in range(5))
    read_end, write_end = os.pipe()  # as the shell gives `<(cmd)`: /dev/fd/N, a pipe the process inherits
    os.write(write_end, data)
    os.close(write_end)
    try:
        result = subprocess.run([*RIVERGUARD, "replay", "notes.lp", f"/dev/fd/{read_end}"], cwd=tmp_path,
                                capture_output=True, timeout=60, pass_fds=(read_end,))
    finally:
        os.close(read_end)
    assert result.returncode == 0, result.stderr
    assert strip_added(result.stdout) == b"# nothing recorded yet\n" + data


def test_a_config_redirected_to_replays_stdin_is_refused(tmp_path: Path) -> None:
    """`replay riverguard.toml` is refused (did you mean --config?), but `replay - < riverguard.toml` was not
    looked at: every line of the config was an E! "not line protocol", passed through to the output, exit 0. A
    stdin that is a regular file now gets the files' check, read without moving its offset; line protocol
    whose first line starts with "[" (a measurement may: `[agent],host=a v=1`) is replayed as before."""
    config = tmp_path / "rg.conf"
    config.write_text('# a config under another name\n[agent]\ninterval = "10s"\n[[rule]]\nname = "a"\n')
    named = tmp_path / "riverguard.toml"
    named.write_text("")  # (a .toml file is refused whatever it holds, as a file input is)
    for path, told in ((config, "reads as TOML (a config?)"), (named, "is a .toml file")):
        with open(path, "rb") as stdin:
            result = subprocess.run([*RIVERGUARD, "replay", "-"], stdin=stdin, capture_output=True, timeout=60)
        assert (result.returncode, result.stdout) == (2, b""), result.stderr
        assert result.stderr.decode() == (f"E! [riverguard] stdin ({path}) {told}, not line protocol: did you mean"
                                          f" --config {path}?\n")
    recording = tmp_path / "in.lp"
    recording.write_bytes(b"[agent],host=a v=1 1\n[[rule]] v=2 2\nname v=3 3\n")
    with open(recording, "rb") as stdin:
        result = subprocess.run([*RIVERGUARD, "replay", "-"], stdin=stdin, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert strip_added(result.stdout) == recording.read_bytes()
    assert b"E!" not in result.stderr


def test_the_config_hint_quotes_a_path_as_the_shell_reads_it(tmp_path: Path) -> None:
    """`did you mean --config my rg.toml?` could not be pasted: the shell made two words of it. The path is now
    quoted as a shell reads it (shlex.quote), given as an input or redirected to stdin; a plain one is left as
    it is."""
    folder = tmp_path / "my configs"
    folder.mkdir()
    spaced = folder / "rg's.toml"
    spaced.write_text('[[rule]]\nname = "a"\n')
    result = run_cli(["replay", "my configs/rg's.toml"], cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, b""), result.stderr
    assert result.stderr.decode() == ("E! [riverguard] my configs/rg's.toml is a .toml file, not line protocol: "
                                      "did you mean --config 'my configs/rg'\"'\"'s.toml'?\n")
    with open(spaced, "rb") as stdin:
        result = subprocess.run([*RIVERGUARD, "replay", "-"], stdin=stdin, capture_output=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.decode().endswith(f"did you mean --config '{folder}/rg'\"'\"'s.toml'?\n"), result.stderr
    assert shlex.split(result.stderr.decode().rsplit("--config ", 1)[1].rstrip("?\n")) == [str(spaced)]


def test_a_named_pipe_given_to_replay_is_opened_once(tmp_path: Path) -> None:
    """The inputs' check opened each input and closed it before the replay: a writer into a named pipe
    (``mkfifo``) went on with that first reader, its data lost when it closed, and the replay then waited for
    a writer that never came (or read what was left). The check no longer opens a pipe: it is read once."""
    import threading

    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    data = b"".join(b"cpu,host=a v=%d %d\n" % (i % 7, i) for i in range(2000))

    def write() -> None:
        with open(fifo, "wb") as f:  # (waits for a reader)
            f.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        result = subprocess.run([*RIVERGUARD, "replay", str(fifo)], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the replay waited for a writer into the named pipe: the check had opened it before")
    finally:
        with contextlib.suppress(OSError):  # a writer still waiting for a reader: let it go
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(5)
    assert result.returncode == 0, result.stderr
    assert strip_added(result.stdout) == data


@pytest.mark.parametrize("failure", ["binary input", "broken gzip", "stdout closed"])
def test_failures_while_running_exit_1(tmp_path: Path, failure: str) -> None:
    """What was given was fine, and something failed while running: exit 1 (README, Exit codes)."""
    good = b"".join(b"cpu,host=a v=%d %d\n" % (i % 7, i) for i in range(20_000))
    message = None
    if failure == "binary input":
        (tmp_path / "in.lp").write_bytes(b"cpu v=1 1\n" + bytes(range(256)))
        message = "binary data"
    elif failure == "broken gzip":  # cut partway: the first half is read, then the rest is missing
        whole = gzip.compress(good)
        (tmp_path / "in.lp").write_bytes(whole[: len(whole) // 2])
        message = "broken gzip data after"
    else:  # the reader is gone before the first write (`riverguard replay -o - in.lp | head`): said as run says it
        (tmp_path / "in.lp").write_bytes(good)
        message = "stdout was closed: stopping"
    args = ["replay", "-o", str(tmp_path / "out.lp") if failure != "stdout closed" else "-", str(tmp_path / "in.lp")]
    with reader_gone() if failure == "stdout closed" else nullcontext(subprocess.PIPE) as stdout:
        result = subprocess.run([*RIVERGUARD, *args], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert any(line.startswith("E! [riverguard] ") and message in line for line in result.stderr.splitlines()), (
        result.stderr
    )


def _head_1(args: list[str], stdin: Any = None) -> tuple[bytes, int, str]:
    """``riverguard ARGS | head -1``: a real pipe, closed by its reader after the first line, as head does.
    That line, the exit code and stderr."""
    proc = subprocess.Popen([*RIVERGUARD, *args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()
        proc.stdout.close()  # head exits after its line
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    return first, code, stderr


@pytest.mark.parametrize("command", ["run", "replay -o -", "replay"])
def test_a_reader_gone_midway_is_told_as_run_tells_it(tmp_path: Path, command: str) -> None:
    """`riverguard replay -o - in.lp | head -1` exited 1 with nothing on stderr, while `run` says `E! [riverguard]
    stdout was closed: stopping` (README, Exit codes: the E! line says what). A real pipe, closed by its reader
    after the first line, as head does; the same E! line from each."""
    path = tmp_path / "in.lp"
    path.write_bytes(b"".join(b"cpu,host=a v=%d %d\n" % (i % 7, i) for i in range(200_000)))  # beyond a pipe's buffer
    args = {"run": ["run"], "replay -o -": ["replay", "-o", "-", str(path)], "replay": ["replay", str(path)]}[command]
    with open(path, "rb") as stdin:
        first, code, stderr = _head_1(args, stdin)
    assert first.startswith(b"cpu,host=a v=0"), stderr
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if line.startswith("E! ")] == [
        "E! [riverguard] stdout was closed: stopping"
    ], stderr


@pytest.mark.parametrize("unbuffered", ["1", ""])
@pytest.mark.parametrize("command", ["sample-config", "replay", "replay -o", "run", "evaluate", "replay --help"])
def test_a_write_to_a_full_file_is_told_and_exits_1(tmp_path: Path, command: str, unbuffered: str) -> None:
    """stdout (or --output) on a file that reaches the size limit (``ulimit -f``; a full disk alike): an E! line,
    exit 1. Under PYTHONUNBUFFERED=1 (the Telegraf setup sets it) Python's stdout wrote what fit and dropped the
    rest: ``sample-config > riverguard.toml`` and ``replay rec.lp > out.lp`` left a cut file and exited 0; without
    it the commands stopped on a traceback. ``run`` still writes its final checkpoint. argparse's ``--help``
    dropped the error of its own write: a cut help, exit 0 (unbuffered), or a traceback at exit (exit 120)."""
    import resource

    limit = 64 << 10  # bytes: the output is larger, the checkpoint of one series smaller
    (tmp_path / "in.lp").write_bytes(b"".join(b"cpu,host=a v=%d %d\n" % (i % 7, i * 10**10) for i in range(5_000)))
    (tmp_path / "lab.csv").write_text("timestamp,value,label\n" + "".join(
        f"2026-01-{1 + i // 1440:02d} {i // 60 % 24:02d}:{i % 60:02d}:00,{i % 7},0\n" for i in range(5_000)))
    args = {
        "sample-config": ["sample-config"],
        "replay": ["replay", "in.lp"],
        "replay -o": ["replay", "-o", "out.lp", "in.lp"],
        "run": ["run", "--state", "st/"],
        "evaluate": ["evaluate", "--json", "--labels", "lab.csv"],
        "replay --help": ["replay", "--help"],
    }[command]
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    if command in ("sample-config", "evaluate", "replay --help"):
        limit = 1 << 10  # the sample config is 2.6 kB, the report and the help some more
    with open(tmp_path / "in.lp", "rb") as stdin, open(tmp_path / "stdout", "wb") as stdout:
        result = subprocess.run(
            [*RIVERGUARD, *args], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            env=env, timeout=120, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
        )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    named = "out.lp" if command == "replay -o" else "stdout"
    assert f"E! [riverguard] cannot write to {named} (File too large): stopping" in result.stderr.splitlines()
    assert all(line.startswith(("E! [riverguard] ", "I! [riverguard] ")) for line in result.stderr.splitlines())
    if command == "replay -o":  # the half-written output is not put in place
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.lp", "lab.csv", "stdout"]
        # nor when only the last of it, flushed at the close, does not fit: the old file stays as it was
        (tmp_path / "out.lp").write_bytes(b"old\n")
        (tmp_path / "small.lp").write_bytes(b"".join(b"cpu,host=a v=%d %d\n" % (i, i) for i in range(40)))
        small = subprocess.run(
            [*RIVERGUARD, "replay", "-o", "out.lp", "small.lp"], capture_output=True, text=True, cwd=tmp_path,
            env=env, timeout=60, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024)),
        )
        assert small.returncode == 1 and "cannot write to out.lp (File too large)" in small.stderr, small.stderr
        assert (tmp_path / "out.lp").read_bytes() == b"old\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.lp", "lab.csv", "out.lp", "small.lp", "stdout"]
    if command == "run":  # the models are saved all the same
        state = run_cli(["state", "inspect", str(tmp_path / "st")], text=True)
        assert '"series": 1' in state.stdout, state.stderr


@pytest.mark.parametrize("closed", [0, 1, 2])
def test_a_standard_descriptor_closed_at_start_is_held_by_the_null_device(tmp_path: Path, closed: int) -> None:
    """Started with stdin, stdout or stderr closed, the next file riverguard opened took its number: run's own
    signal pipe became its stdin (it waited there for good), sample-config with stdout closed stopped on a
    traceback, and run --state with stderr closed stopped at its first message, every metric lost (exit 1)."""
    data = b"".join(b"cpu,host=a v=%d %d\n" % (i % 7, i * 10**10) for i in range(50))
    args = {0: ["run"], 1: ["sample-config"], 2: ["run", "--state", "st/"]}[closed]
    result = subprocess.run([*RIVERGUARD, *args], input=data, capture_output=True, cwd=tmp_path, timeout=30,
                            preexec_fn=lambda: os.close(closed))  # (after the pipes are in place)
    if closed == 0:  # no input: at its end at once
        assert result.returncode == 0 and result.stdout == b"", result.stderr
        assert b"I! [riverguard] stopped after 0 metrics" in result.stderr
    elif closed == 1:  # a write refused, as any failed write is told
        assert result.returncode == 1
        assert result.stderr == b"E! [riverguard] cannot write to stdout (Bad file descriptor): stopping\n"
    else:  # the messages go nowhere; every metric comes back and the models are saved
        assert result.returncode == 0 and result.stderr == b""
        assert strip_added(result.stdout) == data
        assert (tmp_path / "st" / "riverguard.msgpack").exists()


@pytest.mark.parametrize("inputs", [["-"], ["in.lp", "-"]])
def test_replay_of_a_closed_stdin_is_refused(tmp_path: Path, inputs: list[str]) -> None:
    """``replay -`` started with stdin closed (``0<&-``) read the null device put there at start: an empty
    input, exit 0 without a word. Closed stdin is now refused as any input that cannot be read, before
    anything is replayed (exit 2); an empty stdin is still replayed as such."""
    (tmp_path / "in.lp").write_bytes(b"cpu v=1 1\n")
    command = " ".join(shlex.quote(arg) for arg in [*RIVERGUARD, "replay", *inputs])
    closed = subprocess.run(["sh", "-c", command + " 0<&-"], capture_output=True, cwd=tmp_path, timeout=30)
    assert (closed.returncode, closed.stdout) == (2, b""), closed.stderr
    assert closed.stderr == b"E! [riverguard] cannot read stdin: it is closed\n"
    empty = subprocess.run(["sh", "-c", "true | " + command], capture_output=True, cwd=tmp_path, timeout=30)
    assert empty.returncode == 0 and b"E! " not in empty.stderr, empty.stderr


@pytest.mark.parametrize("stdout", ["closed", "reader gone"])
@pytest.mark.parametrize("option", ["--version", "--help"])
def test_what_argparse_prints_is_handled_as_any_output(option: str, stdout: str) -> None:
    """--version and --help, printed by argparse, were outside riverguard's stdout handling: with stdout
    closed (held by the read-only null device) or its reader gone, a traceback through Python's exit flush
    ("Exception ignored", exit 120). Now as for any output: a failed write told in one E! line, exit 1; the
    reader gone, as for every command that prints something to read, quiet, exit 0."""
    with reader_gone() as write_end:
        result = subprocess.run([*RIVERGUARD, option], stdout=write_end, stderr=subprocess.PIPE, text=True,
                                timeout=60, preexec_fn=(lambda: os.close(1)) if stdout == "closed" else None)
    if stdout == "reader gone":
        assert (result.returncode, result.stderr) == (0, "")
        return
    assert result.returncode == 1, result.stderr
    assert result.stderr == "E! [riverguard] cannot write to stdout (Bad file descriptor): stopping\n"


@pytest.mark.parametrize("command", ["state inspect --series", "state inspect", "check-config", "sample-config",
                                     "evaluate"])
def test_a_reader_that_stops_reading_what_to_read_stops_it_quietly(tmp_path: Path, command: str) -> None:
    """`riverguard state inspect X --series | head -2` (and `check-config ... | head -1`, a large config) said
    `E! [riverguard] stdout was closed: stopping` and exited 1: a reader that has what it wanted is the
    ordinary use of head on a command that only prints something to read. It now stops without a word, exit 0,
    as cat, ls or git log do for a person, and in a script under `set -o pipefail` (which a death by SIGPIPE,
    141, would fail). A real pipe, closed by its reader after the first line, as head does; a reader gone
    before the first write for the commands whose output a pipe's buffer holds whole. (`run`, `replay` and
    `collect` still say it, exit 1: their metrics are lost; test_a_reader_gone_midway_is_told_as_run_tells_it.)"""
    state, config = tmp_path / "st.msgpack", tmp_path / "rg.toml"
    if command.startswith("state"):  # 3000 series: a listing well beyond a pipe's buffer
        data = b"".join(b"cpu,host=h%04d v=%d.5 %d\n" % (h, h % 7, 10**18 + i * 10**10) for i in range(3) for h in range(3000))
        assert run_cli(["run", "--state", str(state)], input=data, timeout=120).returncode == 0
    # 300 rules: check-config prints about 350 KB, far beyond a pipe's buffer (64 KiB); 3000 took 6 to 10 s to check
    config.write_text("".join(f'[[rule]]\nname = "r{i}"\nmeasurement = "m{i}"\n' for i in range(300)))
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "s.csv").write_text("timestamp,value,label\n" + "".join(f"2024-05-01 {i // 60:02d}:{i % 60:02d}:00,{i % 5},0\n" for i in range(50)))
    args = {"state inspect --series": ["state", "inspect", str(state), "--series"],
            "state inspect": ["state", "inspect", str(state)],
            "check-config": ["check-config", str(config)], "sample-config": ["sample-config"],
            "evaluate": ["evaluate", "--labels", str(labels)]}[command]
    if command in ("state inspect --series", "check-config"):
        first, code, stderr = _head_1(args)
        assert first, stderr
    else:
        with reader_gone() as write_end:
            result = subprocess.run([*RIVERGUARD, *args], stdout=write_end, stderr=subprocess.PIPE, text=True,
                                    timeout=120)
        code, stderr = result.returncode, result.stderr
    assert code == 0, stderr
    assert "E! " not in stderr and "Traceback" not in stderr, stderr


@pytest.mark.parametrize("stdout", ["reader gone", "full disk"])
def test_a_crash_is_told_when_stdout_fails_too(tmp_path: Path, stdout: str) -> None:
    """An unexpected error (here put in by a script: nothing provokes one) with output still buffered for a
    stdout that fails: the flush after the crash raised its own error in place of the crash's, so the E! line
    and the traceback were never logged (reader gone: exit 1 and nothing on stderr). Now the crash is told
    first, then the failed stdout as for any command."""
    script = tmp_path / "crash.py"
    script.write_text(
        "import sys\n"
        "import riverguard.cli\n"
        "from riverguard import _entry\n"
        "def crash(args):\n"
        "    sys.stdout.write('kept in the buffer\\n')\n"
        "    raise RuntimeError('kaboom')\n"
        "riverguard.cli._main = crash\n"
        "sys.argv = ['riverguard', 'sample-config']\n"
        "sys.exit(_entry._command())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # (buffered: the flush fails)
    with open("/dev/full", "wb") if stdout == "full disk" else reader_gone() as out:
        result = subprocess.run([sys.executable, str(script)], stdout=out, stderr=subprocess.PIPE, text=True,
                                env=env, timeout=60)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "E! [riverguard] riverguard stopped on an unexpected error: RuntimeError: kaboom", lines
    assert "E! [riverguard] RuntimeError: kaboom" in lines and "Exception ignored" not in result.stderr
    told = "cannot write to stdout (No space left on device)" if stdout == "full disk" else "stdout was closed"
    told = [f"E! [riverguard] {told}: stopping"]
    assert lines[lines.index("E! [riverguard] RuntimeError: kaboom") + 1:] == told


def test_a_stop_exits_130(start, tmp_path: Path) -> None:
    """Interrupted (SIGINT) after a metric went through, with a checkpoint in use: 130, the metric written."""
    state = tmp_path / "s.msgpack"
    proc = start("replay", "--state", str(state), "-")
    proc.write(b"cpu v=1 1\n")
    assert proc.wait_lines(1, 30), proc.stderr  # (a regression fails here after 30 s, it does not hang)
    assert proc.stdout == b"cpu v=1,v_anomaly_score=0.0,v_anomaly=false 1\n"
    proc.popen.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130, proc.stderr


@pytest.mark.parametrize(
    ("follow", "sig", "code"),
    [(False, signal.SIGINT, 130), (False, signal.SIGTERM, 143), (True, signal.SIGINT, 0),
     (True, signal.SIGTERM, 0)],
    ids=["once-SIGINT", "once-SIGTERM", "follow-SIGINT", "follow-SIGTERM"],
)
def test_a_pull_stopped_by_a_signal_exits_as_the_readme_says(tmp_path: Path, follow: bool, sig: int, code: int) -> None:
    """README, "Exit codes": `pull --follow` stopped by SIGTERM or SIGINT is done (0); a one-off pull is
    interrupted: 128 + the signal (130, 143), here while it waits on a server that never answers, where the
    first stop waits for the answer and a second one ends it at once."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        port = server.getsockname()[1]
        args = ["pull", "--influx-url", f"http://127.0.0.1:{port}", "--db", "x", "-m", "cpu",
                "--state", str(tmp_path / "s.msgpack"), "--log-level", "info"]
        proc = subprocess.Popen([*RIVERGUARD, *args, *(["--follow", "--every", "1s"] if follow else [])],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            conn, _ = server.accept()  # it is waiting for the answer: the signal comes mid-request
            with conn:
                proc.send_signal(sig)
                if not follow:  # (apart: two at once would be taken as one)
                    time.sleep(0.5)
                    proc.send_signal(sig)
                if follow:  # it stops after the pass: end the pass (the request fails) rather than wait its timeout
                    time.sleep(0.5)
                    conn.close()
                _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == code, err
    if not follow:
        name = signal.Signals(sig).name
        assert f"W! [riverguard] stopped at once by a second {name}: nothing was committed, in the checkpoint" in err.decode()


def test_a_pulls_writer_thread_leaves_the_stop_signals_to_the_main_thread(tmp_path: Path) -> None:
    """A signal the kernel gave pull's writer thread left the main thread waiting on a server that does not
    answer until its 60 s timeout, and two SIGTERMs meanwhile were one (the test above failed about 1 run in
    17 under load: exit 1 after 60 s). Every thread but the main one blocks SIGTERM, SIGINT and SIGHUP."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        port = server.getsockname()[1]
        proc = subprocess.Popen([*RIVERGUARD, "pull", "--influx-url", f"http://127.0.0.1:{port}", "--db", "x", "-m",
                                 "cpu", "--state", str(tmp_path / "s.msgpack")],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            conn, _ = server.accept()  # (the pass has started its writer thread)
            with conn:
                masks = {}
                for task in Path(f"/proc/{proc.pid}/task").iterdir():
                    status = (task / "status").read_text()
                    masks[int(task.name)] = int(status.split("SigBlk:", 1)[1].split()[0], 16)
        finally:
            proc.kill()
            proc.wait()
    others = {tid: mask for tid, mask in masks.items() if tid != proc.pid}
    assert others, "no writer thread: the test no longer tests anything"
    wanted = sum(1 << (sig - 1) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
    assert all(mask & wanted == wanted for mask in others.values()), {t: hex(m) for t, m in others.items()}
    assert masks[proc.pid] & wanted == 0, hex(masks[proc.pid])


def test_help_does_not_call_every_model_a_river_model() -> None:
    """`riverguard --help` said "one River model per series", but the default detector is riverguard's own."""
    usage = run_cli(["--help"], text=True, timeout=60)
    assert usage.returncode == 0, usage.stderr
    text = " ".join(usage.stdout.split())
    assert "River model per series" not in text
    assert "one online model per series (riverguard's detectors or River's)" in text


def test_run_called_in_process_gives_the_signal_handlers_back(tmp_path: Path) -> None:
    """``run`` ignores SIGTERM, SIGINT and SIGHUP once it is done, when it is the process's own command (a
    late SIGTERM then cannot end it with -15). Called as ``main(ARGS)`` by a program or a test, it left
    SIGTERM ignored in the caller, and every child the caller started after it inherited that: the suite's
    later subprocesses ignored SIGTERM. Here the caller's handlers come back, each as it was."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nname = "a"\ndetector = "zscroe"\n')
    watched = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    before = {sig: signal.getsignal(sig) for sig in watched}
    with stdin_from(tmp_path / "empty.lp"):  # (a refused config: the input passes through, none here)
        assert cli.main(["run", "--config", str(bad)]) == 0
    assert {sig: signal.getsignal(sig) for sig in watched} == before


def test_a_count_of_one_takes_the_singular() -> None:
    """The closing line said ``stopped after 1 metrics: 1 series, 1 anomalies`` and the rate limit ``1 more
    unparsable metrics were not reported``: a count of one now takes the singular, others the plural."""
    one = run_cli(["run"], input=b"cpu,host=a v=1 1\n", text=False)
    assert one.returncode == 0, one.stderr
    assert b"I! [riverguard] stopped after 1 metric: 1 series held, 0 anomalies, " in one.stderr, one.stderr
    # one spike after the warm-up: exactly one anomaly flagged, and counted so
    xs = [10.0 + i % 3 for i in range(300)]
    xs[295] = 500.0
    spike = run_cli(["run"], input=sensor_lines(xs))
    assert spike.returncode == 0, spike.stderr
    assert spike.stdout.count(b"temp_anomaly=true") == 1, spike.stdout
    assert b"I! [riverguard] stopped after 300 metrics: 1 series held, 1 anomaly, " in spike.stderr, spike.stderr
    # eleven bad lines at once: ten are told, the eleventh is counted
    bad = run_cli(["run"], input=b"".join(b"not line protocol %d\n" % i for i in range(11)))
    assert bad.returncode == 0, bad.stderr
    assert b"W! [riverguard] 1 more unparsable metric was not reported (rate limit)\n" in bad.stderr, bad.stderr
    assert b"I! [riverguard] stopped after 11 metrics: 0 series held, 0 anomalies, " in bad.stderr, bad.stderr


def test_a_count_of_one_evicted_series_or_byte_takes_the_singular(tmp_path: Path) -> None:
    """``1 series evicted (max_series, 1 before they were scored)``, ``1 series evicted before they were
    scored`` and ``broken gzip data after 1 bytes``: one now takes the singular. (The evictions are counted,
    not the series: ``1 eviction``.)"""
    (tmp_path / "ev.toml").write_text('[state]\nmax_series = 1\n\n[[rule]]\nname = "all"\n', encoding="utf-8")
    evicted = run_cli(["run", "--config", "ev.toml"], cwd=tmp_path,
                      input=b"cpu,host=a v=1 1700000000000000000\ncpu,host=b v=1 1700000001000000000\n")
    assert evicted.returncode == 0, evicted.stderr
    assert b"W! [riverguard] 1 eviction of a series not yet scored (1 since start): max_series = 1" in evicted.stderr
    assert b", 1 eviction (max_series, 1 of a series not yet scored), 0 expiries " in evicted.stderr, evicted.stderr
    # a gzip member of one byte, then a member cut short: broken after the first byte
    (tmp_path / "in.lp.gz").write_bytes(gzip.compress(b"x") + gzip.compress(b"cpu v=1 1\n" * 1000)[:30])
    broken = run_cli(["replay", "-o", str(tmp_path / "out.lp"), "in.lp.gz"], cwd=tmp_path)
    assert broken.returncode == 1 and (
        b"E! [riverguard] in.lp.gz: broken gzip data after 1 byte (Compressed file ended") in broken.stderr, broken.stderr


def test_a_source_behind_the_clock_is_scored_as_any() -> None:
    """A source two days behind the rest (a batch upload, a host's clock behind) is scored and its spike
    flagged. (Its series started fresh at each sample, scored 0 and never flagged, while a W! line asked
    whether a host's clock was wrong and advised a larger series_ttl or an execd block of its own.)"""
    now = 1_700_000_000 * 10**9
    data = b"".join(b"cpu,host=a v=%d %d\n" % (i % 5, now + i * 10**9) for i in range(300))
    data += b"".join(b"cpu,host=late v=%d %d\n" % (i % 5, now - 2 * 86_400 * 10**9 + i * 10**9) for i in range(300))
    data += b"cpu,host=late v=50 %d\n" % (now - 2 * 86_400 * 10**9 + 300 * 10**9)
    result = run_cli(["run"], input=data)
    assert result.returncode == 0, result.stderr
    assert b"W! " not in result.stderr, result.stderr
    late = [line for line in result.stdout.splitlines() if line.startswith(b"cpu,host=late ")]
    assert len(late) == 301 and b",v_anomaly=true " in late[-1], late[-1]
    assert sum(b",v_anomaly_score=0.0," not in line for line in late) > 50  # (scored past its warm-up)


def _series_after_series(lines: list[bytes]) -> list[bytes]:
    """``lines`` as ``influx_inspect export`` writes them: series after series, each in time order."""
    by_series: dict[bytes, list[bytes]] = {}
    for line in lines:
        by_series.setdefault(line.rsplit(b" ", 2)[0] + b" " + line.split(b" ")[1].split(b"=")[0], []).append(line)
    return [line for key in sorted(by_series) for line in by_series[key]]


def test_files_of_the_same_time_and_an_export_score_as_in_time_order(tmp_path: Path) -> None:
    """Three hosts' two fields every 5 minutes over 4 days, a spike and a host silent for two days (past
    series_ttl): replayed as files one per measurement one after the other, or as ``influx_inspect export``
    writes them (series after series), every line is scored as in the file in time order, with no W!
    line. (A newcomer replayed a file per measurement: the second's series, and an export's, were more
    than series_ttl behind the stream's clock the first had left, so they started fresh at each sample,
    scored 0.)"""
    now = 1_700_000_000 * 10**9
    rng = random.Random(7)
    lines = []
    for i in range(4 * 288):
        t = now + i * 300 * 10**9
        for host in ("a", "b", "c"):
            if host == "c" and 288 <= i < 3 * 288:
                continue  # silent for two days: it starts fresh when it comes back, in every order
            for name in ("env", "counter"):
                v = 50 + rng.gauss(0, 1) + (40 if (host, name, i) == ("b", "env", 1000) else 0)
                lines.append(b"%s,host=%s v=%.3f %d\n" % (name.encode(), host.encode(), v, t))
    (tmp_path / "time.lp").write_bytes(b"".join(lines))
    (tmp_path / "env.lp").write_bytes(b"".join(line for line in lines if line.startswith(b"env,")))
    (tmp_path / "counter.lp").write_bytes(b"".join(line for line in lines if line.startswith(b"counter,")))
    (tmp_path / "export.lp").write_bytes(b"".join(_series_after_series(lines)))
    ordered = run_cli(["replay", "time.lp"], cwd=tmp_path)
    assert ordered.returncode == 0 and b"W! " not in ordered.stderr, ordered.stderr
    expected = sorted(ordered.stdout.splitlines())
    assert sum(b"v_anomaly=true" in line for line in expected) >= 1
    assert b"1 expiry (series_ttl)" in ordered.stderr or b"expiries" in ordered.stderr
    for files in (["env.lp", "counter.lp"], ["export.lp"]):
        result = run_cli(["replay", *files], cwd=tmp_path)
        assert result.returncode == 0 and b"W! " not in result.stderr, (files, result.stderr)
        got = sorted(result.stdout.splitlines())
        differ = sum(a != b for a, b in zip(got, expected))
        assert got == expected, f"{files}: {differ} of {len(expected)} lines differ"


def test_timestamps_in_seconds_read_as_nanoseconds_are_told_once(tmp_path: Path) -> None:
    """Data stamped in seconds replayed without --precision s was read as 1970 + 1.7 s, scored differently, and
    nothing said so. One W! line, once per process, now says what the first timestamps look like; nanosecond
    data (after 1970's first 21 days) and a replay given --precision never get it."""
    seconds = b"".join(b"cpu,host=a v=%d %d\n" % (i % 3, 1_700_000_000 + 10 * i) for i in range(600))
    (tmp_path / "a.lp").write_bytes(seconds[: len(seconds) // 2])
    (tmp_path / "b.lp").write_bytes(seconds[len(seconds) // 2:])
    replayed = run_cli(["replay", "a.lp", "b.lp"], cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    warned = [line for line in replayed.stderr.splitlines() if line.startswith(b"W! ")]
    assert len(warned) == 1 and re.fullmatch(  # (one of the first timestamps the clock still holds)
        rb"W! \[riverguard\] the timestamps look like seconds, not nanoseconds: 17000\d{5} is 2023-11-14T22:\d\d:\d\dZ "
        rb"in seconds, 1970-01-01T00:00:01\.70000\d+Z in nanoseconds; if they are, give --precision s", warned[0]
    ), replayed.stderr
    ran = run_cli(["run"], input=seconds[:200].rpartition(b"\n")[0] + b"\n")  # fewer than 16: told at the end
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.count(b"W! ") == 1 and b"look like seconds" in ran.stderr and (
        b"or replay them with riverguard replay --precision s\n") in ran.stderr, ran.stderr
    millis = b"".join(b"cpu,host=a v=%d %d\n" % (i % 3, 1_700_000_000_000 + 10 * i) for i in range(100))
    assert b"look like milliseconds" in run_cli(["run"], input=millis).stderr
    # Nor do nanoseconds from 1970-02-01 (test data: they read as 2054 in microseconds, told before), nor a
    # replay given --precision ns (told before: ns is the default unit).
    test_data = b"".join(b"cpu,host=a v=%d %d\n" % (i % 3, (31 * 86400 + 60 * i) * 10**9) for i in range(20))
    for args, data in ((["replay", "--precision", "s", "-"], seconds), (["replay", "--precision", "ns", "-"], seconds),
                       (["run"], b"".join(b"cpu v=%d %d\n" % (i % 3, (978_307_200 + i) * 10**9) for i in range(50))),
                       (["run"], test_data)):
        quiet = run_cli(args, input=data)
        assert quiet.returncode == 0 and b"W! " not in quiet.stderr, (args, quiet.stderr)


def test_an_interrupted_replay_says_what_it_left(start, tmp_path: Path) -> None:
    """An interrupted replay keeps the old -o file and writes no checkpoint, as it should, but it exited 130
    without a word: one W! line now says what became of both."""
    out, state = tmp_path / "out.lp", tmp_path / "s.msgpack"
    out.write_bytes(b"the old output\n")
    proc = start("replay", "--state", str(state), "-o", str(out), "-", cwd=tmp_path)
    proc.write(b"cpu v=1 1\ncpu v=2 2\n")
    assert wait_until(lambda: list(tmp_path.glob(".out.lp.tmp-*")), 30), proc.stderr  # the replay has begun
    proc.popen.send_signal(signal.SIGINT)  # (however many of the two lines it has read: the W! says)
    assert proc.wait(30) == 130, proc.stderr
    assert re.search(
        rb"\nW! \[riverguard\] interrupted after (0 metrics|1 metric|2 metrics): %s left as it was, "
        rb"no checkpoint written\n$" % re.escape(bytes(out)), proc.stderr
    ), proc.stderr
    assert out.read_bytes() == b"the old output\n" and not state.exists()
    # to stdout, with no checkpoint: the metrics written so far are there
    proc = start("replay", "-", cwd=tmp_path)
    proc.write(b"cpu v=1 1\n")
    assert proc.wait_lines(1, 30), proc.stderr
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 143, proc.stderr
    assert proc.stderr == b"W! [riverguard] interrupted after 1 metric: the output up to there went to stdout, no --state\n"
    # with --report, written only at the end: the line says it was not
    proc = start("replay", "--report", "r.html", "-", cwd=tmp_path)
    proc.write(b"cpu v=1 1\n")
    assert proc.wait_lines(1, 30), proc.stderr
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 143, proc.stderr
    assert proc.stderr == (b"W! [riverguard] interrupted after 1 metric: the output up to there went to stdout, no --state, "
                           b"--report r.html not written\n") and not (tmp_path / "r.html").exists()


def test_a_stop_while_replay_goes_back_to_read_a_pipe_ends_it() -> None:
    """A SIGINT that landed after one read of a pipe returned and before the next began was handled only once
    that read returned: with nothing more coming, replay waited for good (10 of 150 stops here, on a busy
    machine). Each read now waits in select() on the pipe and on a wake-up pipe the signals write to."""
    hangs = 0
    for i in range(40):
        proc = subprocess.Popen([*RIVERGUARD, "replay", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"cpu v=1 1\n" * 50)
        proc.stdin.flush()
        os.read(proc.stdout.fileno(), 10)  # scored: it goes back to read
        time.sleep((i % 7) * 0.0003)
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(10) == 130
        except subprocess.TimeoutExpired:
            hangs += 1
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()  # type: ignore[union-attr]
    assert hangs == 0


def test_a_stop_as_the_output_file_is_made_leaves_nothing_behind(start, tmp_path: Path) -> None:
    """A SIGINT the moment replay's temporary output file appeared (before the replay's try, which drops it)
    exited 130 without a word and left ``.out.lp.tmp-N`` behind (with ``--report``, 1 to 2 tries in 3 here).
    The file is now made inside that try, and the stop is told as any other."""
    out = tmp_path / "out.lp"
    for _ in range(20):  # (a race: at 1 in 3, 20 tries all miss it once in about 3 000 runs)
        out.write_bytes(b"the old output\n")
        proc = start("replay", "--report", "r.html", "-o", str(out), "-", cwd=tmp_path)
        proc.write(b"cpu v=1 1\n")
        assert wait_until(lambda: list(tmp_path.glob(".out.lp.tmp-*")), 30), proc.stderr
        proc.popen.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130, proc.stderr
        assert re.search(rb"^W! \[riverguard\] interrupted after (0 metrics|1 metric): %s left as it was, no --state, "
                         rb"--report r.html not written\n$" % re.escape(bytes(out)), proc.stderr), proc.stderr
        assert out.read_bytes() == b"the old output\n" and not list(tmp_path.glob(".out.lp.tmp-*"))


def test_a_stop_while_a_fifo_output_waits_for_its_reader_ends_the_replay(start, tmp_path: Path) -> None:
    """``replay -o FIFO`` opens the FIFO, which waits for a reader. SIGINT and SIGTERM were held (blocked)
    from just before that open until the replay began: with no reader, neither stopped it, only SIGKILL did.
    The output is now opened inside the replay's try, whose finally drops a temporary file whatever stops it,
    with nothing held: the stop ends the wait, told as any other."""
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    (tmp_path / "in.lp").write_bytes(b"cpu v=1 1\n")
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = start("replay", "-o", str(fifo), "in.lp", cwd=tmp_path)
        wchan = Path(f"/proc/{proc.popen.pid}/wchan")
        assert wait_until(lambda: wchan.read_text() == "wait_for_partner", 30), proc.stderr  # in the FIFO's open
        proc.popen.send_signal(sig)
        assert proc.wait(10) == 128 + sig, proc.stderr
        assert proc.stderr == (b"W! [riverguard] interrupted after 0 metrics: %s has the output up to there, "
                               b"no --state\n" % bytes(fifo)), proc.stderr


def test_the_debug_start_line_comes_first(tmp_path: Path) -> None:
    """With --log-level debug, ``I! restored ...`` came before ``D! ... started``: the start line is now the
    first, before what the checkpoint's restore says."""
    for _ in range(2):  # no checkpoint yet, then one to restore
        result = run_cli(["run", "--log-level", "debug", "--state", "st/"], input=b"cpu v=1 1\n", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        lines = result.stderr.splitlines()
        assert lines[0].startswith(b"D! [riverguard] riverguard ") and b" started with 1 rule(s) from " in lines[0], lines
    assert any(line.startswith(b"I! [riverguard] restored 1 series") for line in lines), lines


def test_replay_skips_a_byte_order_mark_at_the_start_of_a_file(tmp_path: Path) -> None:
    """A UTF-8 byte order mark at the very start of a replayed file (an editor's) became part of the first
    measurement's name: a series of its own, ``\\ufeffm``. replay now drops it, gzipped or from stdin too,
    and says so once per file; ``run`` (Telegraf's stdin) reads its input as it comes."""
    body = b"m v=1 1\nm v=2 2\n"
    (tmp_path / "bom.lp").write_bytes(b"\xef\xbb\xbf" + body)
    (tmp_path / "bom.lp.gz").write_bytes(gzip.compress(b"\xef\xbb\xbf" + body))
    (tmp_path / "plain.lp").write_bytes(b"m v=3 3\n")
    plain = run_cli(["replay", "-o", "-", "plain.lp"], cwd=tmp_path)
    replay = run_cli(["replay", "-o", "-", "bom.lp", "bom.lp.gz", "plain.lp"], cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert b"\xef\xbb\xbf" not in replay.stdout and replay.stdout.endswith(plain.stdout), replay.stdout
    assert strip_added(replay.stdout) == body + body + b"m v=3 3\n"
    notes = [line for line in replay.stderr.splitlines() if b"byte order mark" in line]
    assert notes == [b"I! [riverguard] bom.lp: skipped the UTF-8 byte order mark at its start",
                     b"I! [riverguard] bom.lp.gz: skipped the UTF-8 byte order mark at its start"], replay.stderr
    assert b"I! [riverguard] series: 1 (1 scored)" in replay.stderr, replay.stderr  # m v: one series
    piped = run_cli(["replay", "-o", "-", "-"], input=b"\xef\xbb\xbf" + body)
    assert strip_added(piped.stdout) == body and b"stdin: skipped the UTF-8 byte order mark" in piped.stderr
    run = run_cli(["run"], input=b"\xef\xbb\xbf" + body)
    assert run.stdout.startswith(b"\xef\xbb\xbfm v=1,") and b"byte order mark" not in run.stderr, run.stderr
