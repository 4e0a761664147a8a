"""The README's sample config, examples, commands and messages are what riverguard really does."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import without_a_compiler

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_sample_config_block_is_the_shipped_sample() -> None:
    block = re.search(r"<!-- sample-config:.*?-->\n```toml\n(.*?)```", README, re.S)
    assert block, "the README lost its sample-config block"
    shipped = subprocess.run(
        [sys.executable, "-m", "riverguard", "sample-config"], capture_output=True, check=True, text=True
    ).stdout
    assert block.group(1) == shipped


def _check_diff(name: str, args: list[str]) -> None:
    block = re.search(rf"<!-- {name}:.*?-->\n```diff\n(.*?)```", README, re.S)
    assert block, f"the README lost its {name} block"
    before = [line[2:] for line in block.group(1).splitlines() if line.startswith("- ")]
    after = [line[2:] for line in block.group(1).splitlines() if line.startswith("+ ")]
    assert before and len(before) == len(after)
    result = subprocess.run(
        [sys.executable, "-m", "riverguard", "run", *args],
        input="".join(line + "\n" for line in before),
        capture_output=True,
        check=True,
        text=True,
    )
    assert result.stdout.splitlines() == after


def test_example_diff_is_real_output() -> None:
    _check_diff("example", [])


@pytest.mark.parametrize("name", ["example-explain", "example-explain-default"])
def test_explain_example_is_real_output(tmp_path: Path, name: str) -> None:
    config = re.search(rf"<!-- {name}-config:.*?-->\n```toml\n(.*?)```", README, re.S)
    assert config, f"the README lost its {name} config"
    path = tmp_path / "riverguard.toml"
    path.write_text(config.group(1))
    _check_diff(name, ["--config", str(path)])


def test_spike_example_config_flags_a_one_minute_spike_at_once(tmp_path: Path) -> None:
    """"Spikes": the README's rule (``spike_time = 0``), on crash rates a minute apart whose one-minute spike
    and dip stay inside the range seen, flags them at once (score 0.9); the same rule without its params (the
    default, ``spike_time`` half an hour) does not: it flags the spike on the next minute, as a lone value
    (1.0), and not the dip."""
    from test_spike import MINUTE, spiky

    config = re.search(r"<!-- example-spike-config:.*?-->\n```toml\n(.*?)```", README, re.S)
    assert config, "the README lost its example-spike-config block"
    assert "spike_time = 0" in config.group(1)
    data, spike, _ = spiky(MINUTE, b"crashes", b"rate")
    outputs = []
    for name, text in (("spike", config.group(1)), ("default", config.group(1).split("[rule.params]")[0])):
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        result = subprocess.run([sys.executable, "-m", "riverguard", "run", "--config", str(path)], input=data,
                                capture_output=True, check=True)
        outputs.append(result.stdout.splitlines())
    on, off = outputs
    for i in (spike, spike + 1):  # host a's spike, host b's dip
        assert b",rate_anomaly_score=0.9,rate_anomaly=true " in on[i], on[i]
        assert b",rate_anomaly=false " in off[i], off[i]
    flags = [{i for i, line in enumerate(lines) if b"rate_anomaly=true" in line} for lines in (on, off)]
    # (both flag the early burst and drop that set the range; the default flags host a's spike on its next
    # minute, two lines on, as a lone value: the step that reports it at once with the rule leaves it then)
    assert b",rate_anomaly_score=1.0,rate_anomaly=true " in off[spike + 2]
    assert flags[0] | {spike + 2} == flags[1] | {spike, spike + 1}


def test_quickstart_commands_run_as_written(tmp_path: Path) -> None:
    """The "Try it" block, run line by line by a shell in a folder holding a copy of tests/data, as a newcomer would."""
    block = re.search(r"<!-- quickstart:.*?-->\n```sh\n(.*?)```", README, re.S)
    assert block, "the README lost its quickstart block"
    data = tmp_path / "tests" / "data"
    data.mkdir(parents=True)
    (data / "demo.lp").write_bytes((Path(__file__).resolve().parent / "data" / "demo.lp").read_bytes())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.group(1)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    demo = (data / "demo.lp").read_text().splitlines()
    scored = (tmp_path / "scored.lp").read_text().splitlines()
    assert len(scored) == len(demo)
    assert "usage_user_anomaly=true" in "\n".join(scored)


def _indented_block(marker: str, lang: str) -> str:
    """A fenced block inside a numbered list item (indented three spaces), dedented."""
    block = re.search(rf"<!-- {marker}:.*?-->\n *```{lang}\n(.*?) *```", README, re.S)
    assert block, f"the README lost its {marker} block"
    return "".join(line[3:] + "\n" for line in block.group(1).splitlines())


def test_telegraf_execd_block_is_the_shipped_telegraf_d_file() -> None:
    import tomllib

    shown = tomllib.loads(_indented_block("telegraf-execd", "toml"))["processors"]["execd"]
    root = Path(__file__).resolve().parents[1]
    shipped = tomllib.loads((root / "telegraf.d" / "riverguard.conf").read_text(encoding="utf-8"))["processors"]["execd"]
    assert len(shown) == len(shipped) == 1
    assert shown[0] == {key: shipped[0][key] for key in shown[0]}
    assert set(shipped[0]) - set(shown[0]) == {"data_format"} and shipped[0]["data_format"] == "influx"


def test_telegraf_setup_commands_give_a_config_with_the_state_path(tmp_path: Path) -> None:
    """Step 2 of "Run with Telegraf", with /etc and /var/lib moved into tmp_path, without sudo and the telegraf user."""
    commands = _indented_block("telegraf-setup", "sh")
    header = (Path(__file__).resolve().parents[1] / "telegraf.d" / "riverguard.conf").read_text(encoding="utf-8")
    for line in commands.splitlines():  # telegraf.d/riverguard.conf's header gives the same steps
        assert line.startswith("#") or f"#   {line}\n" in header, line
    commands = commands.replace("sudo ", "").replace("-o telegraf -g telegraf ", "")
    commands = commands.replace("/opt/riverguard/bin/", "").replace("/etc/", f"{tmp_path}/etc/")
    commands = commands.replace("/var/lib/", f"{tmp_path}/var/lib/")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    state = tmp_path / "var" / "lib" / "riverguard" / "riverguard.msgpack"
    assert f'"path": "{state}"' in result.stdout  # check-config's resolved [state]
    assert "Traceback" not in result.stderr


def test_river_api_example_runs() -> None:
    """The "Use riverguard's detectors from River" example is a doctest that passes."""
    import doctest

    block = re.search(r"<!-- river-api-example:.*?-->\n```python\n(.*?)```", README, re.S)
    assert block, "the README lost its river-api-example block"
    test = doctest.DocTestParser().get_doctest(block.group(1), {}, "README river-api-example", "README.md", 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    assert runner.summarize(verbose=False).attempted >= 5
    assert not runner.failures


def _messages_table() -> list[str]:
    """The messages quoted (in backticks, starting with a log prefix) in "Messages and troubleshooting"."""
    table = re.search(r"<!-- messages:.*?-->\n(.*?)\n\n", README, re.S)
    assert table, "the README lost its messages table"
    return re.findall(r"^\| `([EWI]! .*?)` ", table.group(1), re.M)


def _pattern(message: str) -> str:
    """The README's message as a regex: `...`, PATH, NAME, <time> and numbers of 3+ digits stand for anything."""
    pattern = re.escape(message)
    for placeholder, anything in (
        (re.escape("..."), r".*"), ("PATH", r"\S+"), ("NAME", r"\S+"), (re.escape("<time>"), r"\S+")
    ):
        pattern = pattern.replace(placeholder, anything)
    return re.sub(r"\d{3,}", r"\\d+", pattern)


def _provoke(fragment: str, tmp: Path) -> str:
    """Make riverguard say the message containing ``fragment``, the way a user would meet it; its stderr."""
    rg = [sys.executable, "-m", "riverguard"]

    def run(args: list[str], stdin: str = "") -> str:
        return subprocess.run(rg + args, input=stdin, capture_output=True, text=True, cwd=tmp, timeout=60).stderr

    config = tmp / "riverguard.toml"
    if fragment == "was not compiled at install":
        return subprocess.run(rg + ["run"], input="cpu v=1\n", capture_output=True, text=True, cwd=tmp, timeout=60,
                              env=without_a_compiler(tmp)).stderr
    if fragment == "no [[rule]]":
        config.write_text("[state]\nmax_series = 100\n")
        return run(["run", "--config", "riverguard.toml"], "cpu v=1\n")
    if fragment == "not line protocol":
        return run(["run"], "cpu,host=a usage_idle=97.2 1700000000000000000\nthis is not lp\n")
    if fragment in ("unknown detector", "is refused (above)"):  # (run: then passes the metric through)
        config.write_text('[[rule]]\nname = "a"\ndetector = "zscroe"\n')
        if fragment == "is refused (above)":
            return run(["run", "--config", "riverguard.toml"], "cpu v=1\n")
        return run(["check-config", "riverguard.toml"])
    if fragment == "unrecognized arguments":
        return run(["run", "--bogus"])
    if fragment == "is under the least":
        config.write_text('[monitor]\ninterval = "500ms"\n\n[[rule]]\nname = "all"\n')
        return run(["check-config", "riverguard.toml"])
    if fragment == "no checkpoint at":
        return run(["run", "--state", "state.msgpack"], "cpu v=1\n")
    if fragment == "is unusable":
        (tmp / "state.msgpack").write_bytes(b"not a checkpoint")
        return run(["run", "--state", "state.msgpack"], "cpu v=1\n")
    if fragment in ("is in use by another riverguard", "passing every metric through unscored"):
        holder = subprocess.Popen(rg + ["run", "--state", "held.msgpack"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        try:
            assert holder.stdin is not None
            holder.stdin.write(b"cpu v=1\n")  # it takes the lock at its first metric
            holder.stdin.flush()
            lock = tmp / "held.msgpack.lock"
            while not (lock.exists() and lock.read_text().strip() == str(holder.pid)):
                time.sleep(0.05)
            if fragment == "passing every metric through unscored":  # a second run: its metrics pass through
                return run(["run", "--state", "held.msgpack"], "cpu v=1\n")
            (tmp / "in.lp").write_text("cpu v=1\n")  # a one-shot command: exit 2
            return run(["replay", "--state", "held.msgpack", "in.lp"])
        finally:
            holder.communicate(timeout=30)
    if fragment == "not a regular file or a folder":
        os.mkfifo(tmp / "state.msgpack")
        return run(["run", "--state", "state.msgpack"], "cpu v=1\n")
    if fragment == "is a folder, where the file should be":  # --state st, st/riverguard.msgpack a folder
        (tmp / "st" / "riverguard.msgpack").mkdir(parents=True)
        return run(["run", "--state", "st"], "cpu v=1\n")
    if fragment == "not a riverguard checkpoint":
        (tmp / "state.msgpack").write_bytes(b"not a checkpoint")
        return run(["state", "inspect", "state.msgpack"])
    if fragment == "ahead of the stream's clock":  # one line two days ahead
        t0 = 1_700_000_000 * 10**9
        lines = [f"cpu v=1 {t0 + i * 10**10 + (172800 * 10**9 if i == 5 else 0)}\n" for i in range(10)]
        return run(["run"], "".join(lines))
    if fragment in ("cannot read the checkpoint", "cannot open the lock file"):  # another user's file
        from conftest import as_a_user

        prefix = as_a_user(tmp)
        run(["run", "--state", "state.msgpack"], "cpu v=1\n")
        (tmp / ("state.msgpack" if fragment == "cannot read the checkpoint" else "state.msgpack.lock")).chmod(0)
        return subprocess.run([*prefix, *rg, "run", "--state", "state.msgpack"], input="cpu v=1\n",
                              capture_output=True, text=True, cwd=tmp, timeout=60).stderr
    if fragment == "cannot write the checkpoint":  # a run as root made the state folder and its files root's
        from conftest import as_nobody

        if os.geteuid() != 0:
            pytest.skip("leaving a state folder of another user's takes root")
        prefix = as_nobody("root's files are then another user's")
        run(["run", "--state", "st/"], "cpu v=1\n")
        return subprocess.run([*prefix, *rg, "run", "--state", "st/"], input="cpu v=1\n", capture_output=True,
                              text=True, cwd=tmp, timeout=60).stderr
    if fragment == "stopped with stdin still open":  # a stop by hand while the last metric is half-written
        proc = subprocess.Popen(rg + ["run"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=tmp)
        proc.stdin.write(b"cpu,host=a v=1 1\ncpu,host=a v=12")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        proc.stdout.readline()  # type: ignore[union-attr]  (the first metric back: the second was read with it)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        proc.stdin.close()  # type: ignore[union-attr]
        return proc.stderr.read().decode()  # type: ignore[union-attr]
    if fragment == "cannot replace the checkpoint":  # root's checkpoint in a sticky folder (/tmp)
        from conftest import sticky_checkpoint

        prefix, state = sticky_checkpoint(tmp)
        return subprocess.run([*prefix, *rg, "run", "--state", str(state)], input="cpu v=1\n",
                              capture_output=True, text=True, cwd=tmp, timeout=60).stderr
    if fragment in ("lock file PATH.lock in PATH", "the state folder"):  # a state folder Telegraf's user may
        from conftest import as_a_user  # not write, or one missing in a folder it may not write

        prefix = as_a_user(tmp)
        (tmp / "st").mkdir(mode=0o555)
        state = "st/" if fragment == "lock file PATH.lock in PATH" else "st/missing/"
        return subprocess.run([*prefix, *rg, "run", "--state", state], input="cpu v=1\n", capture_output=True,
                              text=True, cwd=tmp, timeout=60).stderr
    if fragment == "reach the state folder":  # a state folder under a folder Telegraf's user may not search
        from conftest import as_a_user

        prefix = as_a_user(tmp)
        (tmp / "shut" / "u").mkdir(parents=True)
        (tmp / "shut").chmod(0o600)
        return subprocess.run([*prefix, *rg, "run", "--state", "shut/u/st/"], input="cpu v=1\n", capture_output=True,
                              text=True, cwd=tmp, timeout=60).stderr
    if fragment == "is the --config file":
        config.write_text('[[rule]]\nname = "all"\n')
        return run(["run", "--config", "riverguard.toml", "--state", "riverguard.toml"], "cpu v=1\n")
    if fragment == "cannot create the lock file":
        (tmp / "a-file").write_text("")
        return run(["run", "--state", "a-file/state.msgpack"], "cpu v=1\n")
    if fragment == "checkpoint to":  # the state folder disappears (a file takes its place) while riverguard runs
        (tmp / "gone").mkdir()
        proc = subprocess.Popen(rg + ["run", "--state", "gone/state.msgpack"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp, text=True)
        while not (tmp / "gone" / "state.msgpack.lock").exists():
            time.sleep(0.05)
        shutil.rmtree(tmp / "gone")
        (tmp / "gone").write_text("")
        return proc.communicate("cpu v=1\n", timeout=30)[1]
    if fragment == "was removed while riverguard ran":  # the state folder removed (rm -rf) while riverguard runs
        proc = subprocess.Popen(rg + ["run", "--state", "gone/"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp, text=True)
        while not (tmp / "gone" / "riverguard.msgpack.lock").exists():
            time.sleep(0.05)
        shutil.rmtree(tmp / "gone")
        return proc.communicate("cpu v=1\n", timeout=30)[1]
    if fragment == "temporary checkpoint file(s)":  # left by processes killed while writing a checkpoint
        (tmp / ".state.msgpack.tmp-111").write_bytes(b"x" * 3000)
        (tmp / ".state.msgpack.tmp-222").write_bytes(b"x" * 1500)
        return run(["run", "--state", "state.msgpack"], "cpu v=1\n")
    if fragment == "while writing the checkpoint":  # Telegraf's SIGTERM lands in the final checkpoint
        lines = "".join(f"cpu,host=h{i} v={i % 10} {1700000000000000000 + i}\n" for i in range(20000))
        # (a rule: without one nothing is scored, the checkpoint is empty and over before a SIGTERM can land)
        config.write_text('[state]\nmax_series = 30000\n\n[[rule]]\nname = "all"\n')
        err = tmp / "stderr"
        with err.open("wb") as stderr:
            proc = subprocess.Popen(rg + ["run", "--config", "riverguard.toml", "--state", "state.msgpack",
                                          "--log-level", "debug"],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp)
            proc.stdin.write(lines.encode())  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]  (Telegraf's shutdown: stdin closes, SIGTERM follows)
            deadline = time.monotonic() + 60
            while b"started with" not in err.read_bytes():  # its handlers are in place
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.01)
            while proc.poll() is None and b"stopped after" not in err.read_bytes():
                assert time.monotonic() < deadline
                proc.send_signal(signal.SIGTERM)  # again and again, as an impatient supervisor would
                time.sleep(0.01)
            proc.wait(30)
        return err.read_text()
    if fragment == "evictions of a series not yet scored":  # containers living a minute, 40 new ones a minute
        from test_expiry import churn

        config.write_text('[state]\nmax_series = 200\n\n[[rule]]\nname = "all"\n')
        return run(["run", "--config", "riverguard.toml"], churn(30, 40).decode())
    if fragment == "eviction of a trained model":  # one metric with more fields than max_series, then cpu again
        from test_expiry import wide

        config.write_text('[state]\nmax_series = 500\n\n[[rule]]\nname = "all"\n')
        return run(["run", "--config", "riverguard.toml"], wide(500).decode())
    if fragment == "return of a series that expired":  # a backup series every 10 minutes, series_ttl = "5m"
        from test_expiry import slow

        config.write_text('[state]\nseries_ttl = "5m"\n\n[[rule]]\nname = "all"\n')
        return run(["run", "--config", "riverguard.toml"], slow(10, minutes=20).decode())
    if fragment == "gives no expected value or band":
        config.write_text('[output]\nexplain = true\n\n[[rule]]\nname = "cpu"\n\n[[rule]]\nname = "models"\n'
                          'detector = "river"\nparams.model = {class = "anomaly.HalfSpaceTrees"}\n')
        return run(["check-config", "riverguard.toml"])
    if fragment == "still being written":  # a periodic checkpoint's child slower than checkpoint_interval
        from test_checkpoint_background import a_tick_skipped

        return a_tick_skipped(tmp).decode()
    if fragment in ("cannot start a process", "in the background again"):  # a fork refused, then not
        from test_checkpoint_background import a_fork_refused_for_a_while

        return a_fork_refused_for_a_while(tmp)[0].decode()
    if fragment == "would write":
        return run(["run"], "cpu,host=a v=1,v_anomaly=0.5 1\n")
    if fragment == "--report needs":  # Bokeh cannot be imported
        (tmp / "no-bokeh" / "bokeh").mkdir(parents=True)
        (tmp / "no-bokeh" / "bokeh" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
        (tmp / "in.lp").write_text("cpu v=1\n")
        env = {**os.environ, "PYTHONPATH": f"{tmp / 'no-bokeh'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        return subprocess.run(rg + ["replay", "--report", "r.html", "in.lp"], capture_output=True, text=True,
                              cwd=tmp, env=env, timeout=60).stderr
    raise AssertionError(f"no way to provoke this README message yet: add one to _provoke ({fragment!r})")


_FRAGMENTS = (  # (tried in this order: one naming a message that contains another comes first)
    "was removed while riverguard ran", "lock file PATH.lock in PATH", "reach the state folder", "the state folder", "cannot read the checkpoint", "cannot open the lock file",
    "cannot write the checkpoint", "cannot replace the checkpoint", "still being written", "cannot start a process",
    "in the background again", "stopped with stdin still open", "is the --config file",
    "no [[rule]]", "is under the least", "not line protocol", "is refused (above)", "unknown detector", "unrecognized arguments", "no checkpoint at",
    "is unusable", "passing every metric through unscored", "is in use by another riverguard", "cannot create the lock file", "checkpoint to",
    "evictions of a series not yet scored", "eviction of a trained model", "return of a series that expired",
    "--report needs", "would write", "not a regular file or a folder",
    "is a folder, where the file should be",
    "ahead of the stream's clock", "temporary checkpoint file(s)", "while writing the checkpoint",
    "not a riverguard checkpoint", "gives no expected value or band", "was not compiled at install",
)


@pytest.mark.parametrize("message", _messages_table(), ids=lambda message: message[3:60])
def test_every_message_in_the_troubleshooting_table_is_what_riverguard_says(message: str, tmp_path: Path) -> None:
    fragment = next((f for f in _FRAGMENTS if f in message), message)
    stderr = _provoke(fragment, tmp_path)
    assert re.search(_pattern(message), stderr, re.M), f"the README says\n  {message}\nriverguard said\n{stderr}"
    assert "Traceback" not in stderr


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_every_profile_name_in_the_readme_is_taken_by_evaluate(tmp_path: Path) -> None:
    """"Detection quality" names NAB's profiles, and its tables the short names: `--profile` takes
    each (it refused reward_low_FP and reward_low_FN) and reports them under NAB's names."""
    listed = re.search(r"It prints NAB's three profiles \((.*?)\) per category", README, re.S)
    assert listed, "the README lost the sentence naming the profiles"
    names = re.findall(r"`(\w+)`", listed.group(1))
    header = re.search(r"^\| corpus \| (.*?) \| recall \|", README, re.M)
    assert header, "the README lost its table of corpus figures"
    names += header.group(1).split(" | ")
    assert {"reward_low_FP", "reward_low_FN_rate"} <= set(names)
    csv = tmp_path / "cat" / "series.csv"
    csv.parent.mkdir()
    csv.write_text("timestamp,value,label\n" + "".join(
        f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00,{50.0 if i == 400 else 10.0},{int(i == 400)}\n" for i in range(600)
    ))
    args = [arg for name in names for arg in ("--profile", name)]
    result = subprocess.run(
        [sys.executable, "-m", "riverguard", "evaluate", "--labels", str(csv), "--json", *args],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert list(json.loads(result.stdout)["profiles"]) == ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]


def test_every_link_in_the_readme_and_docs_leads_somewhere() -> None:
    """A link to a file names one that exists, and a link to a heading names one that exists there."""
    root = Path(__file__).resolve().parents[1]
    broken = []
    for page in [root / "README.md", root / "CHANGELOG.md", *sorted((root / "docs").glob("*.md"))]:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def _help(command: str) -> str:
    result = subprocess.run([sys.executable, "-m", "riverguard", *command.split(), "--help"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def _commands_table() -> dict[str, set[str]]:
    """The options each command's rows of the README's Commands table name, by command (``state inspect``)."""
    section = README.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for cell in re.findall(r"^\| `riverguard ([^`]+)` \|", section, re.M):
        words = cell.split()
        command = " ".join(words[:2]) if words[0] == "state" else words[0]
        rows.setdefault(command, set()).update(re.findall(r"--[a-z][a-z-]*", cell))
    return rows


def test_the_commands_table_names_every_option_of_each_commands_help() -> None:
    """The Commands table left out options its commands' --help lists (`pull --until`, `--chunk-size`,
    `--measurement`, `--config`, `--state`, 2.x's options; `replay --precision`) and wrote `evaluate ...`: the
    rows of each command together name what its --help does, no more (`--log-level`: the line below the table),
    and each argument of a --help says what it is (`check-config PATH` did not)."""
    table = _commands_table()
    help_commands = set(re.findall(r"^    ([a-z-]+)", _help(""), re.M))
    assert set(table) == help_commands - {"state"} | {"state inspect"}, sorted(table)
    logged = re.search(r"^((?:`\w+`(?:, | and ))+`\w+`) also take `--log-level error\|warn\|info\|debug`", README,
                       re.M)
    assert logged, "the README lost the line on --log-level below the Commands table"
    with_log_level = set(re.findall(r"`(\w+)`", logged.group(1)))
    undescribed = []
    for command, named in table.items():
        text = _help(command)
        usage = text.split("\n\n", 1)[0]
        options = set(re.findall(r"(?:\[|\| )(--[a-z][a-z-]*)", usage)) - {"--log-level"}
        assert named == options, (command, "only in --help:", options - named, "only in the README:", named - options)
        assert ("--log-level" in usage) == (command in with_log_level), command
        # an argument's line: its name, then its description on that line or the next, indented
        for m in re.finditer(r"^  (-[^\n]*?|[A-Z][A-Z_.]*(?: \[[^\n]*\])?)(?:  +\S.*)?\n(?=(\s{3,}\S)?)", text, re.M):
            if not re.search(r"\S  +\S", m.group(0).strip()) and not m.group(2):
                undescribed.append(f"{command} {m.group(1).strip()}")
    assert not undescribed, undescribed


def test_the_epoch_conversion_gives_a_labelled_file_evaluate_takes(tmp_path: Path) -> None:
    """`--labels` refuses epoch timestamps, and the README did not say how to convert a file that has them: the
    one-line conversion it now gives makes a file evaluate reads as the same series written in ISO 8601."""
    line = re.search(r"`(python3 -c '[^`]+') <epoch\.csv >labelled\.csv`", README)
    assert line, "the README lost the conversion of epoch timestamps"
    start = 1_767_225_600  # 2026-01-01 00:00:00 UTC
    rows = [(start + 60 * i, 50.0 if i == 400 else 10.0, int(i == 400)) for i in range(600)]
    (tmp_path / "epoch.csv").write_text("timestamp,value,label\n" + "".join(f"{t},{v},{x}\n" for t, v, x in rows))
    iso = tmp_path / "iso.csv"
    iso.write_text("timestamp,value,label\n" + "".join(
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(t))},{v},{x}\n" for t, v, x in rows))
    evaluate = [sys.executable, "-m", "riverguard", "evaluate", "--json", "--labels"]
    refused = subprocess.run([*evaluate, "epoch.csv"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert refused.returncode == 2 and "is not ISO 8601" in refused.stderr, refused.stderr
    subprocess.run(f"{line.group(1)} <epoch.csv >labelled.csv", shell=True, check=True, cwd=tmp_path, timeout=60)
    figures = []
    for name in ("labelled.csv", "iso.csv"):
        result = subprocess.run([*evaluate, name], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        figures.append((data["profiles"], data["events"], data["rows"]))
    assert figures[0] == figures[1] and figures[0][2] == 600


def test_lone_value_example_is_real_output() -> None:
    """"A second view that agrees": the three lines around a lone minute of three days of a request rate (the
    series of tests/test_views.py's lone values, whole numbers) replayed through ``riverguard run``."""
    from test_views import T0, _minutes

    block = re.search(r"<!-- example-lone:.*?-->\n```diff\n(.*?)```", README, re.S)
    assert block, "the README lost its example-lone block"
    before = [line[2:] for line in block.group(1).splitlines() if line.startswith("- ")]
    after = [line[2:] for line in block.group(1).splitlines() if line.startswith("+ ")]
    at = 2 * 1440 - 10
    lines = [f"requests,host=db rps={round(x)} {int(T0 + 60 * i) * 10**9}"
             for i, x in enumerate(_minutes(3, {at: 3.0}))]
    assert lines[at - 1 : at + 2] == before
    result = subprocess.run([sys.executable, "-m", "riverguard", "run"], input="".join(line + "\n" for line in lines),
                            capture_output=True, check=True, text=True)
    assert result.stdout.splitlines()[at - 1 : at + 2] == after
