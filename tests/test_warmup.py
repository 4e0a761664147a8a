"""A rule's ``warmup`` is when a series may first be scored or flagged, for the default detector too (issue 15, item 9)."""

from __future__ import annotations

import random
from pathlib import Path

from conftest import run_cli


def _stream(n: int, spike: int) -> bytes:
    rng = random.Random(3)
    lines = []
    for i in range(n):
        v = 500.0 if i == spike else 50.0 + rng.gauss(0.0, 1.0)
        lines.append(b"m,host=a v=%r %d" % (round(v, 3), 1_700_000_000_000_000_000 + i * 10_000_000_000))
    return b"\n".join(lines) + b"\n"


def _scores(out: bytes) -> list[tuple[float, bool]]:
    got = []
    for line in out.splitlines():
        fields = dict(kv.split(b"=") for kv in line.split(b" ")[1].split(b","))
        got.append((float(fields[b"v_anomaly_score"]), fields[b"v_anomaly"] == b"true"))
    return got


def _run(tmp_path: Path, rule: str, data: bytes) -> list[tuple[float, bool]]:
    config = tmp_path / "rg.toml"
    config.write_text('[[rule]]\nname = "all"\n' + rule)
    proc = run_cli(["run", "--config", str(config)], input=data, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return _scores(proc.stdout)


def test_a_short_warmup_lets_the_default_detector_score_sooner(tmp_path: Path) -> None:
    """warmup = 10: zeros for 10 samples, then scores; a spike at sample 60 is flagged (it was not before
    sample 201 whatever the warmup, when the detector's own learn = 200 held it back)."""
    got = _run(tmp_path, "warmup = 10\n", _stream(120, spike=60))
    assert got[:10] == [(0.0, False)] * 10
    assert any(score > 0.0 for score, _ in got[10:60])
    assert got[60] == (1.0, True)


def test_the_default_warmup_is_what_check_config_shows(tmp_path: Path) -> None:
    """Default: 200 samples of 0.0 / false, then the spike at 220 is flagged; check-config says warmup = 200."""
    got = _run(tmp_path, "", _stream(260, spike=220))
    assert got[:200] == [(0.0, False)] * 200
    assert got[220] == (1.0, True)
    config = tmp_path / "rg.toml"
    shown = run_cli(["check-config", str(config)], text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert '"warmup": 200' in shown.stdout and '"learn"' not in shown.stdout


def test_learn_is_not_a_separate_knob(tmp_path: Path) -> None:
    config = tmp_path / "rg.toml"
    config.write_text('[[rule]]\nname = "all"\n[rule.params]\nlearn = 10\n')
    proc = run_cli(["check-config", str(config)], text=True, timeout=60)
    assert proc.returncode != 0
    assert "params.learn" in proc.stderr and "warmup" in proc.stderr


def test_a_changed_warmup_keeps_the_learned_models_and_takes_effect(tmp_path: Path) -> None:
    """150 samples under the default warmup (200: all zeros), checkpointed; restarted with warmup = 10, the
    series keeps its model (the warm-up is not in the fingerprint) and scores at once, its 150 samples being
    past the new warm-up."""
    data = _stream(300, spike=170)
    lines = data.splitlines(keepends=True)
    state = tmp_path / "state.msgpack"
    config = tmp_path / "rg.toml"
    config.write_text('[[rule]]\nname = "all"\n')
    first = run_cli(["run", "--config", str(config), "--state", str(state)], input=b"".join(lines[:150]), timeout=120)
    assert first.returncode == 0, first.stderr
    assert _scores(first.stdout) == [(0.0, False)] * 150
    config.write_text('[[rule]]\nname = "all"\nwarmup = 10\n')
    second = run_cli(["run", "--config", str(config), "--state", str(state)], input=b"".join(lines[150:]), timeout=120)
    assert second.returncode == 0, second.stderr
    assert b"restored 1 series" in second.stderr and b"start fresh" not in second.stderr
    got = _scores(second.stdout)
    assert any(score > 0.0 for score, _ in got[:20])
    assert got[20] == (1.0, True)


def test_checkpoints_of_the_default_rule_keep_matching() -> None:
    """The rule's warm-up is not in the fingerprint: changing it keeps every model. The values are
    pinned so that a change of them is deliberate: they changed when ``learn`` became the warm-up
    (they did not), and with issue 12's sparse-slot and climb rules (a new setting and a new
    ``extremes`` state, ``climb``), after which older checkpoints start fresh, again when the state
    became one flat record (its layout is in the fingerprint), when the spike step became part of
    sentinel, when the pipeline kept the latest event time (``t1``, for ``long_time`` and the spike
    step's span of time), and when it kept the series' usual interval (``gap``, moved from the spike
    step) and new extremes had to last (``extreme_time``; the ``extremes`` state ``run`` and ``calm``), and
    when the shift step became part of sentinel (``shift = 0`` is the rule as it was before), and when the
    spread step did (``spread = 0`` is the rule as it was before; ``context``, where it is off, keeps its
    fingerprint), and when the shift step got a long-run mean of its own (``shifts.long``), and when the
    spike step counted far-out values (``far``; its state ``count``, ``nfar``, ``tfar``, ``prev``, ``said``), and
    when ``far`` became opt-in (0 in ``sentinel``: the state is kept, its setting differs), and when the shift
    step kept the two-day mean of its typical distance (``shifts.ldev``, the floor under it), and when the counter
    step became part of sentinel (``counter_time = 0`` with the steps off before it is each rule as it was), and
    when the new-extremes step kept the range before a reported episode (``extremes.olo``, ``ohi``, ``owe``: every
    ``sentinel`` and ``context`` rule, whose checkpoints start fresh once), and when the stuck step kept a
    debt of its own for freezes that set no record (``stuck.owe``; its run lengths became C ints), and when it
    kept where its runs were (``stuck.rests``: the floor or ceiling, where a series rests), and when bursts of
    far-out values had to beat the series' own clusters of them and ``far`` became 6 in sentinel (``spikes.peak``,
    ``crec``, ``owe`` for ``nfar``, ``tfar``, ``prev``, ``said``; the setting ``far_record`` for ``far_p``), and when
    the views step became part of sentinel (``peak = 0`` is the rule as it was before; ``context``, where it is
    off, keeps its fingerprint), and when the views step looked for lone values (``views.hlevel``, ``hdev``,
    ``hour``, ``pend``, ``tlone`` and the buffer ``tops``; ``peak = 0`` still is the rule before the views step). Not
    when the likelihood's floor grew at fine sampling (``fine_time``): it changes how a sample is scored, not
    what the state holds, and is no part of a fingerprint, at any value."""
    from riverguard.config import Rule

    assert Rule(index=1, name="all").fingerprint == "8646e6746c279b58"
    assert Rule(index=1, name="all", params={"peak": 0.0}).fingerprint == "f08c5f1428989562"
    assert Rule(index=1, name="all", params={"counter_time": 0.0, "peak": 0.0}).fingerprint == "57b0aef4f9d678e6"
    assert Rule(index=1, name="all", params={"spread": 0.0, "counter_time": 0.0, "peak": 0.0}).fingerprint == "adc1f1237b57c1bd"
    assert Rule(index=1, name="all", params={"spike": 0.0, "spread": 0.0, "counter_time": 0.0, "peak": 0.0}).fingerprint == "12b64d08a93bb45b"
    assert Rule(index=1, name="all", params={"shift": 0.0, "spread": 0.0, "counter_time": 0.0, "peak": 0.0}).fingerprint == "e7f21cb7a361603d"
    assert Rule(index=1, name="all", detector="context").fingerprint == "553c4b84308c5224"
    assert Rule(index=1, name="all", warmup=10).fingerprint == "8646e6746c279b58"
    for fine_time in (0.0, 60.0, 300.0):
        assert Rule(index=1, name="all", params={"fine_time": fine_time}).fingerprint == "8646e6746c279b58"
