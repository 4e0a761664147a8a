"""Configuration: a bad file is refused at once with one message saying where and why (``run`` then passes
every metric through unscored; the other commands stop, exit 2)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import tomllib
from pathlib import Path

import pytest

from conftest import RIVERGUARD, ROOT, passed_through, refused_line, run_cli, stdin_from
from riverguard import cli, config, detectors
from riverguard.config import ConfigError, load, parse_duration

SAMPLE = ROOT / "plugin" / "riverguard" / "sample.toml"

# name -> (config text, fragments the one error message must contain)
BAD = {
    "unknown-rule-key": (
        '[[rule]]\nname = "cpu"\nfeilds = ["x"]\n',
        ['rule 1 "cpu"', "key 'feilds'", "unknown key"],
    ),
    "unknown-detector": (
        '[[rule]]\nname = "first"\n\n[[rule]]\nname = "second"\ndetector = "isolation"\n',
        ['rule 2 "second"', "key 'detector'", 'unknown detector "isolation"', "zscore"],
    ),
    "wrong-type": (
        '[[rule]]\nname = "w"\nwarmup = 1.5\n',
        ['rule 1 "w"', "key 'warmup'", "1.5"],
    ),
    "threshold-out-of-range": (
        '[[rule]]\nname = "t"\nthreshold = 1.5\n',
        ['rule 1 "t"', "key 'threshold'", "[0, 1]"],
    ),
    "bad-glob": (
        '[[rule]]\nname = "g"\nmeasurement = "cpu[0-9"\n',
        ['rule 1 "g"', "key 'measurement'", "cpu[0-9"],
    ),
    "unknown-detector-parameter": (
        '[[rule]]\nname = "p"\ndetector = "zscore"\n[rule.params]\nfading = 0.1\n',
        ['rule 1 "p"', "key 'params.fading'", "fading_factor"],
    ),
    "bad-duration": (
        '[state]\ncheckpoint_interval = "60 seconds"\n',
        ["[state]", "key 'checkpoint_interval'", "60 seconds"],
    ),
    "invalid-toml": (
        '[[rule]]\nname = "x"\nthreshold = \n',
        ["invalid TOML", "line 3", "column"],
    ),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, bytes, bytes]]:
    """``riverguard run --config BAD`` as a real process, side by side, stdin left open.

    Three kinds are enough here (the process is slow to start); every kind
    goes through the same command in-process below.
    """
    folder = tmp_path_factory.mktemp("bad")
    procs = {}
    for name in SUBPROCESS:
        text = BAD[name][0]
        path = folder / f"{name}.toml"
        path.write_text(text)
        procs[name] = (
            path,
            subprocess.Popen(
                [*RIVERGUARD, "run", "--config", str(path)],
                stdin=subprocess.PIPE,  # not closed before the refusal is said (below)
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            ),
        )
    results = {}
    try:
        for name, (path, proc) in procs.items():
            said = proc.stderr.readline() + proc.stderr.readline()  # said before any input came
            out, err = proc.communicate(_PASSED, timeout=60)
            results[name] = (path, proc.returncode, out, said + err)
    finally:
        for _, proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                pipe.close()
    return results


SUBPROCESS = ["unknown-detector", "bad-duration", "invalid-toml"]
_PASSED = b'm v=1 1\nm s="a\nb" 2\n'  # (what run passes through, as it came, with a refused config)
_STOPPED = "I! [riverguard] stopped after passing 3 lines through unscored"


@pytest.mark.parametrize("name", SUBPROCESS)
def test_bad_config_under_run_is_one_message_then_metrics_pass_through(name: str, bad_runs) -> None:
    path, code, out, err = bad_runs[name]
    assert code == 0
    assert out == _PASSED
    lines = err.decode().splitlines()
    assert lines[1:] == [refused_line(path), _STOPPED], lines
    assert lines[0].startswith("E! ")
    assert str(path) in lines[0]
    for fragment in BAD[name][1]:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", ["run", "replay"])
@pytest.mark.parametrize("name", list(BAD))
def test_bad_config_run_and_replay_in_process(
    name: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD[name][0])
    data = tmp_path / "in.lp"
    data.write_bytes(b"m v=1 1\n")

    def no_input(*args: object, **kwargs: object) -> None:
        raise AssertionError("input was read before the config was validated")

    monkeypatch.setattr("riverguard.stream.serve", no_input)  # (run's input passes through: none given here)
    monkeypatch.setattr("riverguard.stream.replay", no_input)
    args = ["run", "--config", str(path)] if command == "run" else ["replay", "--config", str(path), str(data)]
    with stdin_from(tmp_path / "empty.lp"):
        assert cli.main(args) == (0 if command == "run" else 2)
    captured = capsys.readouterr()
    assert captured.out == ""
    line, *passed = captured.err.splitlines()
    assert passed == ([refused_line(path), "I! [riverguard] stopped after passing 0 lines through unscored"]
                      if command == "run" else [])
    assert line.startswith(f"E! [riverguard] {path}: ")
    for fragment in BAD[name][1]:
        assert fragment in line


@pytest.mark.parametrize("name", list(BAD))
def test_bad_config_check_config(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD[name][0])
    assert cli.main(["check-config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"E! [riverguard] {path}: ")
    for fragment in BAD[name][1]:
        assert fragment in line


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("colour = 1\n", ["top level", "key 'colour'"]),
        ("rule = 3\n", ["top level", "key 'rule'", "[[rule]]"]),
        ('[[rule]]\ndetector = "nope"\n', ["rule 1,", "key 'detector'"]),  # no name: index only
        ('[[rule]]\nname = ""\n', ["rule 1", "key 'name'"]),
        ('[[rule]]\nname = "f"\nfields = "usage_*"\n', ['rule 1 "f"', "key 'fields'"]),
        ('[[rule]]\nname = "f"\nfields = []\n', ['rule 1 "f"', "key 'fields'"]),
        ('[[rule]]\nname = "t"\ntags = { host = "web[" }\n', ['rule 1 "t"', "key 'tags.host'"]),
        ('[[rule]]\nname = "t"\ntags = "host"\n', ['rule 1 "t"', "key 'tags'"]),
        ('[[rule]]\nname = "t"\nthreshold = -0.1\n', ["key 'threshold'"]),
        ('[[rule]]\nname = "t"\nthreshold = "high"\n', ["key 'threshold'"]),
        ('[[rule]]\nname = "t"\nthreshold = true\n', ["key 'threshold'"]),
        ('[[rule]]\nname = "w"\nwarmup = -1\n', ["key 'warmup'"]),
        ('[[rule]]\nname = "d"\ndetector = 3\n', ["key 'detector'"]),
        ('[[rule]]\nname = "p"\ndetector = "zscore"\nparams = { fading_factor = "fast" }\n',
         ["key 'params.fading_factor'", "fading_factor must be a number in (0, 1), got 'fast'"]),
        ('[[rule]]\nname = "p"\ndetector = "zscore"\nparams = { fading_factor = 2.0 }\n',
         ["key 'params.fading_factor'", "(0, 1)"]),
        ('[[rule]]\nname = "p"\nparams = { spike = inf }\n',
         ["key 'params.spike'", "spike must be a number >= 0, got inf: not a finite number"]),
        ('[[rule]]\nname = "p"\ndetector = "hst"\nparams = { n_trees = 2.5 }\n', ["key 'params.n_trees'", "an integer"]),
        ('[[rule]]\nname = "p"\ndetector = "pad"\nparams = { forecaster = "prophet" }\n',
         ["key 'params.forecaster'", "one of holtwinters, snarimax"]),
        ('[[rule]]\nname = "p"\ndetector = "context"\nparams = { orders = [1, 9] }\n',
         ["key 'params.orders'", "1 to 8 values, each an integer in [0, 7]"]),
        ('[[rule]]\nname = "o"\ndetector = "off"\nparams = { x = 1 }\n', ['rule 1 "o"', "key 'params'"]),
        ('[[rule]]\nname = "a"\n[[rule]]\nname = "b"\n[[rule]]\nname = "c"\nbogus = 1\n', ['rule 3 "c"', "key 'bogus'"]),
        ('[output]\nscore_suffix = "_x"\nflag_suffix = "_x"\n', ["[output]", "key 'flag_suffix'"]),
        ('[output]\nscore_suffix = ""\n', ["[output]", "key 'score_suffix'"]),
        ('[output]\nprefix = "a"\n', ["[output]", "key 'prefix'"]),
        ('[state]\nseries_ttl = "1d"\n', ["[state]", "key 'series_ttl'", "1d"]),
        ('[state]\nseries_ttl = "0s"\n', ["[state]", "key 'series_ttl'", "must be greater than zero"]),
        ('[state]\ncheckpoint_interval = 60\n', ["[state]", "key 'checkpoint_interval'"]),
        ('[state]\ncheckpoint_interval = ""\n', ["[state]", "key 'checkpoint_interval'"]),
        ('[state]\nmax_series = 0\n', ["[state]", "key 'max_series'"]),
        ('[state]\npath = 5\n', ["[state]", "key 'path'"]),
        ('[[rule]]\nname = "t"\ntags = { "" = "*" }\n', ['rule 1 "t"', "key 'tags'", "empty tag key"]),
        ("[[rule]\n", ["invalid TOML", "line 1"]),
        ('[[rule]]\nname = "a"\nname = "b"\n', ["invalid TOML", "line 3"]),
    ],
)
def test_more_bad_configs(text: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        config.parse(text, source="my.toml")
    message = str(info.value)
    assert message.startswith("my.toml: ")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


CONTROL = "must not hold a tab, newline or other control character (a field key in line protocol cannot)"
BACKSLASH = ("must not hold a backslash (InfluxDB 1.x keeps it escaped, doubled, in the field key: the name there"
             " would differ)")


@pytest.mark.parametrize(
    ("key", "value", "refusal"),
    [("score_suffix", "_s\tx", CONTROL), ("flag_suffix", "_f\x1b[31m", CONTROL),
     ("metric_score_field", "score\r", CONTROL), ("metric_flag_field", "flag\x85", CONTROL),
     *((key, "_f\\g", BACKSLASH) for key in ("score_suffix", "flag_suffix", "metric_score_field", "metric_flag_field"))],
)
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_an_output_name_with_a_control_character_or_a_backslash_is_refused(tmp_path: Path, key: str, value: str,
                                                                           refusal: str, command: str) -> None:
    """A field key riverguard writes cannot hold a tab (line protocol has no escape for it: InfluxDB and
    Telegraf read it as the separator after the fields), a carriage return or any other control character.
    Only a newline was refused: ``score_suffix = "_s\\t"`` passed check-config and run wrote the tab as is.
    A backslash was taken and written escaped (``_f\\g`` as ``v_f\\\\g``), but InfluxDB 1.x unescapes only
    ``\\,``, ``\\=`` and ``\\ `` in a field key: it stored two backslashes, a name other than the config's."""
    path = tmp_path / "out.toml"
    path.write_text(f"[output]\n{key} = {json.dumps(value)}\n[[rule]]\nfields = [\"v\"]\n")  # (JSON's escapes are TOML's)
    args = ["check-config", str(path)] if command == "check-config" else ["run", "--config", str(path)]
    result = run_cli(args, input=b"cpu v=1 1\n", text=False)
    run = command == "run"  # (passes the metrics through)
    assert (result.returncode, result.stdout) == ((0, b"cpu v=1 1\n") if run else (2, b"")), result.stderr
    line, *passed = result.stderr.decode().splitlines()
    assert passed[:1] == ([refused_line(path)] if run else [])
    assert line == f"E! [riverguard] {path}: [output], key '{key}': {refusal}, got {value!r}", line


def test_output_names_that_need_escaping_are_escaped_and_read_back(tmp_path: Path) -> None:
    """A comma, an equals sign or a space in an [output] name is escaped in the field key, and riverguard's own
    parser reads the key back as the name: a second pass takes the fields as already there."""
    path = tmp_path / "out.toml"
    path.write_text('[output]\nscore_suffix = " score,x=y"\nflag_suffix = "_f=g h"\n'
                    '[[rule]]\nfields = ["v"]\ndetector = "zscore"\nwarmup = 2\n')
    data = b"cpu v=1 1\ncpu v=2 2\ncpu v=1 3\ncpu v=9 4\n"
    first = run_cli(["replay", "--config", str(path), "-"], input=data)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[-1] == b"cpu v=9,v\\ score\\,x\\=y=1.0,v_f\\=g\\ h=true 4", lines
    from riverguard.lineprotocol import parse, unescape

    assert [unescape(f.key) for f in parse(lines[-1]).fields] == ["v", "v score,x=y", "v_f=g h"]
    again = run_cli(["replay", "--config", str(path), "-"], input=first.stdout)
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr
    assert b"series: 0 (0 scored)" in again.stderr  # (the fields are taken as riverguard's own, not scored again)


#: Values that passed check-config and then crashed ``run`` (OverflowError from select, a traceback, exit 1),
#: crashed check-config itself (a C long), or hung the first metric (hst's height): each is now exit 2 with one
#: line naming the key and its range.
HUGE = {
    "checkpoint-interval": ('[state]\ncheckpoint_interval = "100000000h"\n',
                            ["[state]", "key 'checkpoint_interval'", 'at most "87600h"']),
    "monitor-interval": ('[monitor]\ninterval = "100000000h"\n', ["[monitor]", "key 'interval'", 'at most "87600h"']),
    "series-ttl": ('[state]\nseries_ttl = "87601h"\n', ["[state]", "key 'series_ttl'", 'at most "87600h"']),
    "max-series": ("[state]\nmax_series = 9223372036854775808\n", ["[state]", "key 'max_series'", "[1, 1000000000]"]),
    "warmup": ('[[rule]]\nname = "w"\nwarmup = 9223372036854775808\n',
               ['rule 1 "w"', "key 'warmup'", "an integer in [0, 1000000000], got 9223372036854775808"]),
    "suppress": ('[[rule]]\nname = "s"\nparams = { suppress = 9223372036854775808 }\n',
                 ["key 'params.suppress'", "suppress must be an integer in [0, 1000000000]"]),
    "hst-height": ('[[rule]]\nname = "h"\ndetector = "hst"\nparams = { height = 40 }\n',
                   ["key 'params.height'", "height must be an integer in [1, 12], got 40"]),
    "hst-trees": ('[[rule]]\nname = "h"\ndetector = "hst"\nparams = { n_trees = 100000 }\n',
                  ["key 'params.n_trees'", "n_trees must be an integer in [1, 100]"]),
    "snarimax-order": ('[[rule]]\nname = "p"\ndetector = "pad"\nparams = { forecaster = "snarimax", d = 1000000000 }\n',
                       ["key 'params.d'", "d must be an integer in [0, 10]"]),
}


@pytest.mark.parametrize("name", sorted(HUGE))
def test_a_huge_duration_or_integer_is_exit_2_naming_the_key(name: str, tmp_path: Path) -> None:
    text, fragments = HUGE[name]
    path = tmp_path / "huge.toml"
    path.write_text(text)
    result = run_cli(["check-config", str(path)], timeout=60)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert err.startswith(f"E! [riverguard] {path}: ") and err.count("\n") == 1, err  # one line, no traceback
    for fragment in fragments:
        assert fragment in err, err


def test_the_longest_durations_run(tmp_path: Path) -> None:
    """The bounds themselves are taken, and run scores with them (the wait's time arithmetic stays in range)."""
    path = tmp_path / "long.toml"
    path.write_text(
        '[[rule]]\nname = "all"\nwarmup = 1000000000\n'
        f'[state]\npath = "{tmp_path / "state"}"\ncheckpoint_interval = "87600h"\nseries_ttl = "87600h"\n'
        'max_series = 1000000000\n[monitor]\ninterval = "87600h"\n'
    )
    result = subprocess.run(
        [*RIVERGUARD, "run", "--config", str(path)], input=b"m v=1 1700000000000000000\n",
        capture_output=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"m v=1,v_anomaly_score=0.0,v_anomaly=false 1700000000000000000\n")


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert cli.main(["check-config", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_check_config_on_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(SAMPLE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{SAMPLE}: OK, 2 rule(s)"
    rules = [json.loads(line.split(": ", 1)[1]) for line in out if line.startswith("rule ")]
    assert [r["name"] for r in rules] == ["skip-counters", "everything-else"]
    default = detectors.resolve("default")
    assert [r["detector"] for r in rules] == ["off", default.name]  # "default" is resolved
    assert rules[0]["fields"] == ["bytes_*", "packets_*", "err_*", "drop_*"]
    assert rules[1]["threshold"] == default.default_threshold and rules[1]["warmup"] == default.default_warmup
    # defaults filled in; the one the rule's warmup sets is shown as the warmup
    learns_by = default.WARMUP_PARAM
    assert rules[1]["params"] == {k: v for k, v in default.defaults().items() if k != learns_by}
    assert rules[1]["warmup"] == default.defaults()[learns_by]
    assert rules[1]["measurement"] == "*" and rules[1]["fields"] == ["*"]
    assert any(line.startswith("output: ") for line in out)
    state = json.loads(next(line for line in out if line.startswith("state: ")).split(": ", 1)[1])
    assert state["checkpoint_interval_s"] == 60.0 and state["series_ttl_s"] == 86400.0


def test_sample_config_command_prints_a_valid_config(tmp_path: Path) -> None:
    result = run_cli(["sample-config"], timeout=60)
    assert result.returncode == 0 and result.stderr == b""
    assert result.stdout == SAMPLE.read_bytes()
    path = tmp_path / "riverguard.toml"
    path.write_bytes(result.stdout)
    tomllib.loads(result.stdout.decode())
    loaded = load(path)
    assert [r.name for r in loaded.rules] == ["skip-counters", "everything-else"]


def test_relative_state_path_resolves_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "etc" / "riverguard"
    folder.mkdir(parents=True)
    path = folder / "riverguard.toml"
    path.write_text('[state]\npath = "state/rg.msgpack"\n')
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load("../etc/riverguard/riverguard.toml").state.path == folder / "state" / "rg.msgpack"
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    state = json.loads(next(line for line in out.splitlines() if line.startswith("state: ")).split(": ", 1)[1])
    assert state["path"] == str(folder / "state" / "rg.msgpack")
    absolute = tmp_path / "abs.msgpack"
    path.write_text(f'[state]\npath = "{absolute}"\n')
    assert load(path).state.path == absolute


def test_a_state_path_from_home_is_in_that_home(tmp_path: Path) -> None:
    """``path = "~/..."`` is in the home folder of the user riverguard runs as, as in a shell (it was a folder
    named ``~`` beside the config, which ``check-config`` alone showed); ``--state ~/...`` quoted too."""
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "etc" / "riverguard.toml"
    config.parent.mkdir()
    config.write_text('[state]\npath = "~/state/"\n\n[[rule]]\nname = "all"\ndetector = "zscore"\n')
    env = {**os.environ, "HOME": str(home)}
    shown = run_cli(["check-config", str(config)], env=env, text=True)
    assert shown.returncode == 0, shown.stderr
    state = json.loads(next(line for line in shown.stdout.splitlines() if line.startswith("state: ")).split(": ", 1)[1])
    assert state["path"] == str(home / "state" / "riverguard.msgpack")
    ran = run_cli(["run", "--config", str(config)], input=b"m v=1 1\n", env=env)
    assert ran.returncode == 0 and ran.stdout.startswith(b"m v=1,"), ran.stderr
    assert (home / "state" / "riverguard.msgpack").is_file() and not (config.parent / "~").exists()
    ran = run_cli(["replay", "--state", "~/other.msgpack", "-"], input=b"m v=1 1\n", env=env, cwd=tmp_path)
    assert ran.returncode == 0 and (home / "other.msgpack").is_file(), ran.stderr


NO_HOME = "~no-such-user-riverguard"


def test_a_state_path_from_an_unknown_home_is_refused_with_a_message(tmp_path: Path, start) -> None:
    """``~user`` of a user the system does not know: exit 2 with what is wrong (``run --state``: the same
    ``E!`` line, and every metric passed through, as for any state path it cannot use: exit 2 was a restart
    loop under Telegraf), and on SIGHUP the config is refused and the process goes on with the one it had (a
    Python traceback, exit 1, stopped ``run``, lost the metrics that followed the SIGHUP)."""
    config = tmp_path / "rg.toml"
    config.write_text(f'[state]\npath = "{NO_HOME}/rg.msgpack"\n')
    why = f"'{NO_HOME}/rg.msgpack': no home folder for '{NO_HOME}' (no such user?)"
    for args, said in (
        (["check-config", str(config)], f"E! [riverguard] {config}: [state], key 'path': {why}\n"),
        (["replay", "--state", f"{NO_HOME}/rg.msgpack", "-"], f"E! [riverguard] --state {why}\n"),
        (["state", "inspect", f"{NO_HOME}/rg.msgpack"], f"E! [riverguard] {why}\n"),
    ):
        result = run_cli(args, input="m v=1 1\n", text=True)
        assert (result.returncode, result.stdout, result.stderr) == (2, "", said), args
    result = run_cli(["run", "--state", f"{NO_HOME}/rg.msgpack"], input=b"m v=1 1\nm v=2 2\n")
    told = f"E! [riverguard] --state {why}\n".encode()
    assert (result.returncode, result.stdout, result.stderr) == (0, b"m v=1 1\nm v=2 2\n", passed_through(told, 2))
    config.write_text('[state]\npath = "state/"\n\n[[rule]]\nname = "all"\ndetector = "zscore"\n')
    proc = start("run", "--config", str(config))
    proc.ready()
    proc.write(b"m v=1 1\n")
    assert proc.wait_lines(1, 30), proc.stderr
    config.write_text(f'[state]\npath = "{NO_HOME}/"\n')
    proc.popen.send_signal(signal.SIGHUP)
    assert proc.wait_stderr(lambda e: b"still running on the previous config" in e, 30), proc.stderr
    proc.write(b"m v=2 2\n")
    proc.close_stdin()
    assert proc.wait(30) == 0, proc.stderr
    assert proc.stdout.count(b"\n") == 2 and b"Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60s", 60.0),
        ("100ms", 0.1),
        ("24h", 86400.0),
        ("1h30m", 5400.0),
        ("1m", 60.0),
        ("1.5s", 1.5),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("10ns", 1e-8),
        ("2h0m5s", 7205.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "60", "s", "60 s", "-5s", "1d", "1h30", "1.2.3s", "5S", "1m 30s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_state_durations_are_seconds() -> None:
    cfg = config.parse('[state]\ncheckpoint_interval = "1500ms"\nseries_ttl = "1h30m"\nmax_series = 7\n')
    assert (cfg.state.checkpoint_interval, cfg.state.series_ttl, cfg.state.max_series) == (1.5, 5400.0, 7)


@pytest.mark.parametrize(("section", "key"), [("state", "checkpoint_interval"), ("state", "series_ttl"),
                                              ("monitor", "interval")])
@pytest.mark.parametrize("short", ["1ns", "999ms"])
def test_a_duration_under_a_second_is_taken_as_one_with_a_warning(tmp_path: Path, section: str, key: str,
                                                                  short: str) -> None:
    """Every duration setting has a least value, 1 s, as it has a most. None had: check-config passed
    [monitor] interval = "1ms" (1610 health lines in 2 s; 44 826 with "1ns") and checkpoint_interval = "1ms"
    (753 checkpoints written in 2 s). Such a config loaded before, so it is taken with "1s" and a warning, not
    refused (under Telegraf's execd a refusal restarts riverguard into a loop after an upgrade)."""
    path = tmp_path / "short.toml"
    path.write_text(f'[{section}]\n{key} = "{short}"\n[[rule]]\nname = "all"\n')
    said = f'W! [riverguard] {path}: [{section}], key \'{key}\': "{short}" is under the least, "1s": using "1s"\n'
    checked = run_cli(["check-config", str(path)], timeout=60)
    assert checked.returncode == 0 and checked.stderr.decode() == said, checked.stderr
    taken = json.loads(next(line for line in checked.stdout.decode().splitlines() if line.startswith(f"{section}: "))
                       .split(": ", 1)[1])
    assert taken[f"{key}_s"] == 1.0
    result = run_cli(["run", "--config", str(path)], input=b"m v=1 1\n", timeout=60)
    assert result.returncode == 0 and result.stdout.startswith(b"m v=1"), result.stderr
    assert result.stderr.decode().startswith(said), result.stderr
    path.write_text(f'[{section}]\n{key} = "1s"\n[[rule]]\nname = "all"\n')  # the least itself: no warning
    assert run_cli(["check-config", str(path)]).stderr == b""


def test_a_duration_under_a_second_warns_at_a_sighup_reload(tmp_path: Path, start) -> None:
    path = tmp_path / "rg.toml"
    path.write_text('[[rule]]\nname = "all"\ndetector = "zscore"\n')
    proc = start("run", "--config", str(path))
    proc.ready()
    path.write_text('[monitor]\ninterval = "500ms"\n[[rule]]\nname = "all"\ndetector = "zscore"\n')
    proc.popen.send_signal(signal.SIGHUP)
    said = f'W! [riverguard] {path}: [monitor], key \'interval\': "500ms" is under the least, "1s": using "1s"'
    assert proc.wait_stderr(lambda e: said.encode() in e, 30), proc.stderr
    proc.write(b"m v=1 1\n")
    proc.close_stdin()
    assert proc.wait(30) == 0, proc.stderr
    assert b"E! " not in proc.stderr and b"Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(("section", "key"), [("state", "checkpoint_interval"), ("monitor", "interval")])
def test_a_zero_duration_is_exit_2_naming_the_key(tmp_path: Path, section: str, key: str) -> None:
    path = tmp_path / "zero.toml"
    path.write_text(f'[{section}]\n{key} = "0s"\n[[rule]]\nname = "all"\n')
    result = run_cli(["check-config", str(path)], timeout=60)
    assert (result.returncode, result.stdout, result.stderr.decode()) == (
        2, b"", f"E! [riverguard] {path}: [{section}], key '{key}': must be greater than zero\n")


def test_defaults_without_rules_score_nothing() -> None:
    cfg = config.parse("")
    assert cfg.rules == ()
    assert (cfg.output.score_suffix, cfg.output.flag_suffix) == ("_anomaly_score", "_anomaly")


def test_integer_threshold_and_float_params_accept_ints() -> None:
    (rule,) = config.parse('[[rule]]\nname = "x"\ndetector = "zscore"\nthreshold = 1\nparams = { min_std = 2 }\n').rules
    assert rule.effective_threshold == 1.0
    assert rule.params == {"min_std": 2}


def _refused_without_river(path: Path) -> list[str]:
    """check-config's stderr lines on ``path``, which it refuses (exit 2), having checked (``-X importtime``)
    that it did not import River."""
    import sys

    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "riverguard", "check-config", str(path)],
                          capture_output=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().splitlines()
    imported = {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}
    assert "riverguard.config" in imported and "river" not in imported
    return [line for line in lines if not line.startswith("import time:")]


def test_a_metric_scope_rule_of_a_univariate_detector_names_those_that_take_several(tmp_path: Path) -> None:
    """The message lists the detectors scope = "metric" takes, from their declarations, without importing
    River (which made check-config on this error take about 3 s); a detector registered by a program is listed."""
    path = tmp_path / "rg.toml"
    path.write_text('[[rule]]\nname = "m"\nscope = "metric"\n')
    lines = _refused_without_river(path)
    assert lines[-1].startswith("E! ") and lines[-1].endswith("needs one that takes several (hst, river)"), lines[-1]

    class Several(detectors.Detector):
        name = "several"
        multivariate = True

    detectors.REGISTRY["several"] = Several  # type: ignore[assignment]
    try:
        with pytest.raises(ConfigError, match=r"takes several \(hst, river, several\)"):
            config.parse(path.read_text())
    finally:
        del detectors.REGISTRY["several"]


def test_the_lazy_detectors_declare_whether_they_take_several_features() -> None:
    """The registry's word for a detector not imported yet is the class's own ``multivariate``, and the
    parameters a rule may set are the class's own."""
    for name, lazy in detectors._LAZY.items():
        assert detectors.REGISTRY[name].multivariate is lazy.multivariate, name
        assert lazy.params == tuple(p.name for p in detectors.rule_params(detectors.REGISTRY[name])), name


def test_an_unknown_key_is_told_where_it_belongs_without_importing_river(tmp_path: Path) -> None:
    """Telling where an unknown key belongs read every detector's parameters from its class, which imported
    River's (zscore, hst, pad): about 1.6 s more for check-config on a typo. The names now come from the
    registry's table; the message names the River detectors' parameters as before."""
    path = tmp_path / "rg.toml"
    path.write_text('[state]\npth = "x"\n[[rule]]\nname = "a"\nn_trees = 5\nfading_factor = 0.1\n')
    assert [line for line in _refused_without_river(path) if line.startswith("E! ")] == [
        f"E! [riverguard] {path}: [state], key 'pth': unknown key, did you mean 'path'? (allowed: "
        "checkpoint_interval, max_series, path, series_ttl)",
        f"E! [riverguard] {path}: rule 1 \"a\", key 'n_trees': unknown key, a parameter of detector \"hst\", not of "
        f"this rule's \"sentinel\" (allowed: {RULE_KEYS})",
        f"E! [riverguard] {path}: rule 1 \"a\", key 'fading_factor': unknown key, a parameter of detector "
        f"\"zscore\", not of this rule's \"sentinel\" (allowed: {RULE_KEYS})",
    ]


# -- every problem gets its own line ---------------------------------------------------------------

# Six problems, each on its own (the README's check-config example of a newcomer's typos).
EVERY = (
    '[state]\nmax_series = -1\nseries_ttl = "1 day"\n'
    '[[rule]]\nname = "a"\nmeasurment = "cpu"\ntreshold = 0.3\nwarmup = "10"\n[rule.params]\nfadng = 0.1\n'
)
RULE_KEYS = "detector, explain, fields, measurement, name, params, scope, tags, threshold, warmup"


def _sentinel_params() -> str:
    """The parameters a sentinel rule may set in params: all but the one its warmup sets."""
    cls = detectors.resolve("sentinel")
    return ", ".join(sorted(p.name for p in cls.PARAMS if p.name != cls.WARMUP_PARAM))


def _every_lines(path: Path) -> list[str]:
    return [
        f"E! [riverguard] {path}: [state], key 'max_series': expected an integer in [1, 1000000000], got -1",
        f"E! [riverguard] {path}: [state], key 'series_ttl': invalid duration \"1 day\" "
        '(expected e.g. "60s", "100ms", "24h")',
        f"E! [riverguard] {path}: rule 1 \"a\", key 'measurment': unknown key, did you mean 'measurement'? "
        f"(allowed: {RULE_KEYS})",
        f"E! [riverguard] {path}: rule 1 \"a\", key 'treshold': unknown key, did you mean 'threshold'? "
        f"(allowed: {RULE_KEYS})",
        f"E! [riverguard] {path}: rule 1 \"a\", key 'warmup': expected an integer in [0, 1000000000], got '10'",
        f"E! [riverguard] {path}: rule 1 \"a\", key 'params.fadng': unknown parameter for detector \"sentinel\", "
        f"did you mean 'fading'? (known: {_sentinel_params()})",
    ]


def _check_config(path: Path) -> tuple[int, bytes, list[str]]:
    proc = run_cli(["check-config", str(path)], timeout=60)
    return proc.returncode, proc.stdout, proc.stderr.decode().splitlines()


def test_check_config_gives_every_problem_its_own_line_in_file_order(tmp_path: Path) -> None:
    """It gave two lines for these six problems: one per section or rule."""
    path = tmp_path / "rg.toml"
    path.write_text(EVERY)
    code, out, lines = _check_config(path)
    assert (code, out) == (2, b"")
    assert lines == _every_lines(path)


def test_an_unknown_top_level_key_hides_no_other_problem(tmp_path: Path) -> None:
    """It was the only line printed."""
    path = tmp_path / "rg.toml"
    path.write_text(EVERY + "[outptu]\nexplain = true\n")
    code, out, lines = _check_config(path)
    assert (code, out) == (2, b"")
    allowed = "monitor, output, rule, state"
    assert lines == [*_every_lines(path),
                     f"E! [riverguard] {path}: top level, key 'outptu': unknown key, did you mean 'output'? (allowed: {allowed})"]


@pytest.mark.parametrize(
    ("text", "told"),
    [
        ('[[rule]]\nname = "a"\ndetector = "zscroe"\n',
         'rule 1 "a", key \'detector\': unknown detector "zscroe", did you mean "zscore"? (known: default, off, '),
        ('[[rule]]\nname = "a"\ndetector = "HST"\n', 'unknown detector "HST", did you mean "hst"? (known: '),
        ('[[rule]]\nname = "a"\ndetector = "isolation"\n', 'unknown detector "isolation" (known: '),
        ('[[rule]]\nname = "a"\ndetector = "zscore"\nparams = { min_sdt = 1 }\n',
         "key 'params.min_sdt': unknown parameter for detector \"zscore\", did you mean 'min_std'? (known: "),
        ('[[rule]]\nname = "a"\ndetector = "zscore"\nparams = { colour = 1 }\n',
         "key 'params.colour': unknown parameter for detector \"zscore\" (known: "),
        ('[state]\ncheckpoint_intervall = "5s"\n',
         "[state], key 'checkpoint_intervall': unknown key, did you mean 'checkpoint_interval'? (allowed: "),
        ('[monitor]\nintervals = "5s"\n', "[monitor], key 'intervals': unknown key, did you mean 'interval'? (allowed: "),
        ('[output]\nexplian = true\n', "[output], key 'explian': unknown key, did you mean 'explain'? (allowed: "),
        ("[[rules]]\n", "top level, key 'rules': unknown key, did you mean 'rule'? (allowed: "),
        ('[[rule]]\nname = "a"\ncolour = "red"\n', "rule 1 \"a\", key 'colour': unknown key (allowed: "),
    ],
)
def test_a_mistyped_name_gets_the_close_one_it_may_mean(text: str, told: str) -> None:
    """A key, a detector or a parameter that is not known, but close to one that is (difflib), is told with
    it: "did you mean ...?"; nothing is guessed when none is close."""
    with pytest.raises(ConfigError) as info:
        config.parse(text, source="my.toml")
    message = str(info.value)
    assert message.startswith("my.toml: ") and "\n" not in message and told in message, message


def test_a_key_in_the_wrong_section_is_told_where_it_belongs(tmp_path: Path) -> None:
    """A key another section takes was only "unknown key" (with a did-you-mean for close spellings alone):
    `threshold` before any header, `checkpoint_interval` after a [[rule]] (TOML puts it in that rule), `explain`
    in [state] (two sections take it). A misspelling close only to another section's key says which."""
    path = tmp_path / "rg.toml"
    path.write_text('threshold = 0.9\n[state]\nexplain = true\n[[rule]]\nname = "cpu"\ncheckpoint_interval = "30s"\n'
                    'intervall = "5s"\n')
    code, out, lines = _check_config(path)
    assert (code, out) == (2, b"")
    state = "checkpoint_interval, max_series, path, series_ttl"
    assert lines == [
        f"E! [riverguard] {path}: top level, key 'threshold': unknown key, it belongs in a [[rule]] (allowed: monitor, "
        "output, rule, state)",
        f"E! [riverguard] {path}: [state], key 'explain': unknown key, it belongs in a [[rule]] or in [output] "
        f"(allowed: {state})",
        f"E! [riverguard] {path}: rule 1 \"cpu\", key 'checkpoint_interval': unknown key, it belongs in [state] "
        f"(allowed: {RULE_KEYS})",
        f"E! [riverguard] {path}: rule 1 \"cpu\", key 'intervall': unknown key, did you mean 'interval' (in "
        f"[monitor])? (allowed: {RULE_KEYS})",
    ]


def test_a_detector_parameter_outside_params_is_told_where_it_belongs(tmp_path: Path) -> None:
    """A detector's parameter written in the [[rule]] itself (``spike = 3`` under ``[[rule]]``, not under
    ``[rule.params]``) got "did you mean 'scope'?", a key it has nothing to do with; a rule's own key written in
    [rule.params] (``threshold``) got the detector's parameter list alone."""
    path = tmp_path / "rg.toml"
    path.write_text('[[rule]]\nname = "cpu"\nspike = 3.0\nextrem_time = "5m"\n[rule.params]\nthreshold = 0.9\n')
    code, out, lines = _check_config(path)
    assert (code, out) == (2, b"")
    assert lines == [
        f"E! [riverguard] {path}: rule 1 \"cpu\", key 'spike': unknown key, it belongs in [rule.params] "
        f"(allowed: {RULE_KEYS})",
        f"E! [riverguard] {path}: rule 1 \"cpu\", key 'extrem_time': unknown key, did you mean 'extreme_time' (in "
        f"[rule.params])? (allowed: {RULE_KEYS})",
        f"E! [riverguard] {path}: rule 1 \"cpu\", key 'params.threshold': unknown parameter for detector "
        f"\"sentinel\", it belongs in a [[rule]] (known: {_sentinel_params()})",
    ]


def test_a_parameter_of_another_detector_is_not_told_to_go_in_params(tmp_path: Path) -> None:
    """``spike = 3.0`` in a rule with ``detector = "zscore"`` was told "it belongs in [rule.params]", where it
    was then refused as an unknown parameter of zscore. [rule.params] is named only when the rule's detector
    (sentinel when none is given) takes the parameter; else the message says whose parameter it is."""
    path = tmp_path / "rg.toml"
    path.write_text('[[rule]]\nname = "z"\ndetector = "zscore"\nspike = 3.0\nmin_std = 0.1\n'
                    '[[rule]]\nname = "s"\nmin_std = 0.1\n')
    code, out, lines = _check_config(path)
    assert (code, out) == (2, b"")
    owners = " or ".join(f'"{name}"' for name in sorted(detectors.REGISTRY)
                         if "spike" in {p.name for p in detectors.REGISTRY[name].PARAMS})
    assert lines == [
        f"E! [riverguard] {path}: rule 1 \"z\", key 'spike': unknown key, a parameter of detector {owners}, not "
        f"of this rule's \"zscore\" (allowed: {RULE_KEYS})",
        f"E! [riverguard] {path}: rule 1 \"z\", key 'min_std': unknown key, it belongs in [rule.params] "
        f"(allowed: {RULE_KEYS})",
        f"E! [riverguard] {path}: rule 2 \"s\", key 'min_std': unknown key, a parameter of detector \"zscore\", "
        f"not of this rule's \"sentinel\" (allowed: {RULE_KEYS})",
    ]


def test_a_key_in_params_is_told_where_it_belongs_as_in_any_section(tmp_path: Path) -> None:
    """[rule.params] had a hint of its own, narrower than every other section's: ``explain`` was told to go in
    a [[rule]] alone (not [output]), ``interval`` and ``max_series`` got no place, another detector's
    parameter was not said to be its. The one rule of the other sections now places them."""
    path = tmp_path / "rg.toml"
    path.write_text('[[rule]]\nname = "z"\ndetector = "zscore"\n[rule.params]\nexplain = true\ninterval = "5s"\n'
                    'max_series = 5\nn_trees = 3\nthreshold = 0.9\nmin_sdt = 1\n')
    code, out, lines = _check_config(path)
    assert (code, out) == (2, b"")
    told = f"E! [riverguard] {path}: rule 1 \"z\", key 'params.%s': unknown parameter for detector \"zscore\", %s " \
        "(known: fading_factor, min_std)"
    assert lines == [told % pair for pair in (
        ("explain", "it belongs in a [[rule]] or in [output]"),
        ("interval", "it belongs in [monitor]"),
        ("max_series", "it belongs in [state]"),
        ("n_trees", 'a parameter of detector "hst", not of this rule\'s "zscore"'),
        ("threshold", "it belongs in a [[rule]]"),
        ("min_sdt", "did you mean 'min_std'?"),
    )]


def test_start_up_gives_every_problem_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "rg.toml"
    path.write_text(EVERY)
    checked = run_cli(["check-config", str(path)], timeout=60)
    assert (checked.returncode, checked.stdout) == (2, b"")
    assert checked.stderr.decode().splitlines() == _every_lines(path)
    proc = run_cli(["run", "--config", str(path)], input=b"m v=1 1\n", timeout=60)
    assert (proc.returncode, proc.stdout) == (0, b"m v=1 1\n")  # (passed through)
    assert proc.stderr.decode().splitlines()[:-2] == _every_lines(path)


def test_problems_come_in_file_order_across_interleaved_sections(tmp_path: Path) -> None:
    """Rules, sections and unknown keys in any order: each line where its key is in the file."""
    path = tmp_path / "rg.toml"
    path.write_text(
        'colour = "red"\n'
        '[[rule]]\nname = "a"\nwarmup = -1\nthreshold = 2\n'
        '[output]\nscore_suffix = ""\nprefix = "x"\n'
        '[[rule]]\nname = "a"\ndetector = "nope"\nparams = { x = 1 }\nexplain = "yes"\n'
        '[outptu]\n'
        '[state]\ncheckpoint_interval = 60\n'
        '[[rule]]\nname = "c"\ndetector = "zscore"\n[rule.params]\nfading_factor = 2.0\nmin_std = -1\n'
    )
    code, _, lines = _check_config(path)
    assert code == 2
    where = [line.removeprefix(f"E! [riverguard] {path}: ").split(": ")[0] for line in lines]
    assert where == [
        "top level, key 'colour'",
        "rule 1 \"a\", key 'warmup'",
        "rule 1 \"a\", key 'threshold'",
        "[output], key 'score_suffix'",
        "[output], key 'prefix'",
        'rule 2 "a"',  # duplicate name
        "rule 2 \"a\", key 'detector'",  # (an unknown detector: its params go unchecked)
        "rule 2 \"a\", key 'explain'",
        "top level, key 'outptu'",
        "[state], key 'checkpoint_interval'",
        "rule 3 \"c\", key 'params.fading_factor'",
        "rule 3 \"c\", key 'params.min_std'",
    ], lines
    assert 'rule 2 "a": duplicate name (rule 1 has it)' in lines[5]


def test_the_unknown_parameter_message_lists_only_parameters_that_can_be_set() -> None:
    """sentinel's list named learn, which params refuses ("set the rule's warmup instead")."""
    with pytest.raises(ConfigError) as info:
        config.parse('[[rule]]\nname = "s"\ndetector = "sentinel"\n[rule.params]\nlearnn = 5\n', source="my.toml")
    known = str(info.value).split("(known: ")[1].rstrip(")").split(", ")
    assert "learn" not in known and "learn_time" in known and "spike" in known


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """A config saved with a UTF-8 BOM (Notepad) was refused: "invalid TOML: Invalid statement (at line 1, column 1)"."""
    path = tmp_path / "rg.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'[[rule]]\nname = "bom"\n')
    code, out, lines = _check_config(path)
    assert (code, lines) == (0, [])
    assert out.decode().splitlines()[0] == f"{path}: OK, 1 rule(s)"
    path.write_bytes(b"\xef\xbb\xbf" + b'[[rule]]\nname = 1\n')  # and its problems are told as without one
    code, _, lines = _check_config(path)
    assert code == 2 and lines == [f"E! [riverguard] {path}: rule 1, key 'name': expected a non-empty string, got 1"]


def test_explain_on_a_rule_that_cannot_explain_is_a_warning(tmp_path: Path) -> None:
    """A river rule writes only F_anomaly_reason of the explanation fields, a scope = "metric" rule none:
    with explain on (here from [output]) check-config and run say so, once each; explain = false in the
    rule silences it, and rules that explain get no word."""
    model = 'params.model = [{class = "preprocessing.StandardScaler"}, {class = "anomaly.OneClassSVM"}]\n'
    rules = (
        '[[rule]]\nname = "m"\nmeasurement = "cpu"\nscope = "metric"\ndetector = "hst"\nOFF'
        '[[rule]]\nname = "r"\nmeasurement = "mem"\ndetector = "river"\n' + model + "OFF"
        '[[rule]]\nname = "rest"\n'
    )
    path = tmp_path / "rg.toml"
    path.write_text("[output]\nexplain = true\n" + rules.replace("OFF", ""))
    checked = run_cli(["check-config", str(path)], timeout=60)
    ran = run_cli(["run", "--log-level", "warn", "--config", str(path)], timeout=60)
    assert checked.returncode == ran.returncode == 0, checked.stderr
    assert checked.stderr == ran.stderr == (
        f'W! [riverguard] {path}: rule 1 "m": explain is on, but a scope = "metric" model writes no explanation'
        ' (one score for the metric); explain = false in the rule says so\n'
        f'W! [riverguard] {path}: rule 2 "r": explain is on, but detector "river" gives no expected value or band:'
        ' of the explanation fields only F_anomaly_reason is written, "novelty", on flagged points; explain = false'
        " in the rule says so\n"
    ).encode()
    path.write_text("[output]\nexplain = true\n" + rules.replace("OFF", "explain = false\n"))
    checked = run_cli(["check-config", str(path)], timeout=60)
    assert checked.returncode == 0 and checked.stderr == b"", checked.stderr


def test_rules_a_narrower_catch_all_hides_are_a_warning(tmp_path: Path) -> None:
    """A rule with ``*`` among its fields takes every field of the metrics it matches: a later rule whose every
    metric it matches (same or a broader measurement glob, tag conditions it meets) takes none, a scope = "metric"
    rule as a field one. check-config and run said so only where the catch-all matched every measurement and no
    tags; "cpu*" is broader than "cpu", and host "d*" than "db*": those rules are used."""
    hst = 'scope = "metric"\ndetector = "hst"\n'
    path = tmp_path / "rg.toml"
    path.write_text(
        '[[rule]]\nname = "cpu"\nmeasurement = "cpu"\nfields = ["usage_*", "*"]\n'
        '[[rule]]\nname = "cpu-whole"\nmeasurement = "cpu"\n' + hst
        + '[[rule]]\nname = "cpu-web"\nmeasurement = "cpu"\ntags = {host = "web*"}\nfields = ["usage_user"]\n'
        '[[rule]]\nname = "cpus"\nmeasurement = "cpu*"\n' + hst
        + '[[rule]]\nname = "db"\ntags = {host = "db*"}\ndetector = "off"\n'
        '[[rule]]\nname = "db1-disk"\nmeasurement = "disk"\ntags = {host = "db1", dc = "*"}\n' + hst
        + '[[rule]]\nname = "d-disk"\nmeasurement = "disk"\ntags = {host = "d*"}\n' + hst
        + '[[rule]]\nname = "rest"\n'
        '[[rule]]\nname = "late"\nmeasurement = "mem"\n'
    )
    checked = run_cli(["check-config", str(path)], timeout=60)
    ran = run_cli(["run", "--log-level", "warn", "--config", str(path)], timeout=60)
    assert checked.returncode == ran.returncode == 0, checked.stderr
    hidden = f"W! [riverguard] {path}: rule %d \"%s\" is never used: rule %d \"%s\" before it matches every field"
    assert checked.stderr.decode().splitlines() == ran.stderr.decode().splitlines() == [
        hidden % (2, "cpu-whole", 1, "cpu") + " of every metric it matches",
        hidden % (3, "cpu-web", 1, "cpu") + " of every metric it matches",
        hidden % (6, "db1-disk", 5, "db") + " of every metric it matches",
        hidden % (9, "late", 8, "rest"),
    ]


def test_rules_whose_fields_an_earlier_rule_names_are_a_warning(tmp_path: Path) -> None:
    """An IoT site's config: raw ADC counts off everywhere, then a rule to score the temperature sensors' raw
    counts. The first rule takes "raw" in every measurement, so the second scores nothing, and neither
    check-config nor run said so (only a ``*`` among an earlier rule's fields was looked at). A rule hidden only
    by several together ("line5") goes unnamed, as the README says; one with a broader measurement glob is used."""
    path = tmp_path / "rg.toml"
    path.write_text(
        '[[rule]]\nname = "raw-off"\nfields = ["raw", "adc_*"]\ndetector = "off"\n'
        '[[rule]]\nname = "raw-temp"\nmeasurement = "temperature"\nfields = ["raw"]\n'
        '[[rule]]\nname = "flow"\nmeasurement = "flow"\nfields = ["value"]\n'
        '[[rule]]\nname = "line5"\nmeasurement = "flow"\ntags = {line = "L5"}\nfields = ["value", "raw"]\n'
        '[[rule]]\nname = "flow-l1"\nmeasurement = "flow"\ntags = {line = "L1"}\nfields = ["value"]\n'
        '[[rule]]\nname = "flows"\nmeasurement = "flow*"\nfields = ["value"]\n'
    )
    checked = run_cli(["check-config", str(path)], timeout=60)
    metrics = b'temperature,line=L1 raw=1i 1\nflow,line=L1 value=1.5,adc_3=4i,raw=2i 2\nflows,line=L1 value=1.5 3\n'
    ran = run_cli(["run", "--log-level", "warn", "--config", str(path)], input=metrics, timeout=60)
    assert checked.returncode == ran.returncode == 0, checked.stderr
    assert ran.stdout.count(b"_anomaly_score=") == 2  # flow's value and flows': the hidden rules score nothing
    hidden = f"W! [riverguard] {path}: rule %d \"%s\" is never used: rule %d \"%s\" before it matches every field"
    assert checked.stderr.decode().splitlines() == ran.stderr.decode().splitlines() == [
        hidden % (2, "raw-temp", 1, "raw-off") + ' it names ("raw")',
        hidden % (5, "flow-l1", 3, "flow") + ' it names ("value") of every metric it matches',
    ]


@pytest.mark.parametrize("command", [["run", "--config"], ["replay", "-", "--config"], ["check-config"]])
def test_a_config_that_cannot_be_read_is_told_in_the_projects_words(tmp_path: Path, command: list[str]) -> None:
    """A missing config said ``E! x.toml: cannot read: [Errno 2] No such file or directory: 'x.toml'``, where
    every other file riverguard is given says ``PATH: no such file``; a folder, ``[Errno 21] Is a directory``.
    Now they say it as ``evaluate --labels`` does for its files."""
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "latin1.toml").write_bytes(b'[[rule]]\nname = "caf\xe9"\n')
    expected = {
        "x.toml": "x.toml: no such file",
        "conf.d": "conf.d: is a folder, not a config file",
        "latin1.toml": "latin1.toml:2: not UTF-8 text",
    }
    for given, said in expected.items():
        result = run_cli([*command, given], cwd=tmp_path, text=True)
        run = command[0] == "run"  # (passes the metrics through)
        assert result.returncode == (0 if run else 2), result.stderr
        assert result.stderr.startswith(f"E! [riverguard] {said}\n" + (refused_line(given) if run else "")), result.stderr


def test_each_hidden_rule_is_named_with_the_first_earlier_rule_that_hides_it() -> None:
    """``warnings`` tries on a later rule only the earlier ones that may cover its measurement (a plain name
    covers only itself): every earlier rule was tried on every later one, and a config of 3 000 rules of one
    measurement each took 13 s to check, at every start of ``run`` too. On random configs of plain and glob
    measurements, tags and fields it names the same rules, each with the same earlier one, as that did."""
    rng = random.Random(12)
    measurements = ["cpu", "cpu0", "mem", "disk", "*", "cpu*", "c?u", "m[ae]m"]
    for _ in range(300):
        text = ""
        for i in range(rng.randint(1, 12)):
            text += f'[[rule]]\nname = "r{i}"\nmeasurement = "{rng.choice(measurements)}"\n'
            if rng.random() < 0.3:
                text += f'tags = {{ host = "{rng.choice(["web1", "web*", "*"])}" }}\n'
            if rng.random() < 0.5:
                text += f'fields = ["{rng.choice(["usage_*", "usage_idle", "*", "free"])}"]\n'
        parsed = config.parse(text, source="r.toml")
        expected = []  # every earlier rule tried, in order
        for at, later in enumerate(parsed.rules):
            rule = next((rule for rule in parsed.rules[:at] if rule.hides(later)), None)
            if rule is not None:
                expected.append(f'rule {later.index} "{later.name}" is never used: rule {rule.index} "{rule.name}" ')
        said = [line.removeprefix("r.toml: ") for line in config.warnings(parsed) if "is never used" in line]
        assert len(said) == len(expected), text
        assert all(line.startswith(start) for line, start in zip(said, expected)), text
