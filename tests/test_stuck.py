"""Stuck values (the stuck step, in ``sentinel`` and ``context``), through the real process.

What a user relies on: a sensor sampled every second whose value freezes
(the same reading, exactly, for minutes) is flagged with the reason
``stuck``, and so is a longer freeze twenty minutes later: a run that was
reported is an incident, not how the series repeats, so it leaves the
repeat statistics. A hold that recurs as routine (a pump that holds its
reading for 5 minutes every hour) is reported once, not every hour: a
run is reported only while it is longer than every earlier one.
"""

from __future__ import annotations

import random
from pathlib import Path

from conftest import flag_reasons as reasons, run_cli, run_rule as run, sensor_lines as lines

#: the freezes: first sample and length (s), each longer than the one before
FREEZES = ((1800, 120), (3000, 150), (4200, 180), (5400, 240))


def frozen(seed: int = 1) -> list[float]:
    """Two hours at 1 s of AR(1) noise around 20 (sd 0.5, three decimals), the value held at the reading
    before each of :data:`FREEZES`."""
    rng = random.Random(seed)
    ar = 0.0
    out: list[float] = []
    for i in range(7200):
        ar = 0.9 * ar + 0.44 * rng.gauss(0.0, 1.0)
        held = any(s <= i < s + n for s, n in FREEZES)
        out.append(out[-1] if held else round(20.0 + 0.5 * ar, 3))
    return out


def test_each_longer_freeze_of_a_sensor_is_reported(tmp_path: Path) -> None:
    """Four freezes 20 minutes apart, each longer than the one before: each is flagged ``stuck`` once, as soon
    as it has lasted longer than the one before it (the first within 30 s), and nothing else is flagged.
    Before, only the first was: its repeats stayed in the repeat statistics (a repeat was then 99 % likely
    after a repeat, for good: those counts decay only while the series repeats), so even a longer freeze
    stayed under the bar."""
    got = reasons(run(tmp_path, lines(frozen())))
    assert [why for _, why in got] == ["stuck"] * 4, got
    into = [i - s for (i, _), (s, _) in zip(got, FREEZES)]  # seconds into each freeze
    assert 0 < into[0] < 30 and into[1:] == [n for _, n in FREEZES[:-1]], got


def test_a_restart_inside_a_reported_freeze_changes_nothing(tmp_path: Path) -> None:
    """A checkpoint and restart in the middle of the second freeze (after its report): the output is byte for
    byte the same as one uninterrupted run, so the mark of a reported run is saved with the state."""
    data = lines(frozen()).splitlines(keepends=True)
    whole = run(tmp_path, b"".join(data))
    state = tmp_path / "s.msgpack"
    cut = 3100
    first = run(tmp_path, b"".join(data[:cut]), state=state)
    second = run(tmp_path, b"".join(data[cut:]), state=state)
    assert first + second == whole


def pump(seed: int = 2) -> list[float]:
    """Six hours at 1 s of the AR(1) noise of :func:`frozen`, the reading held for the last 5 minutes of
    every hour (a pump's routine pause)."""
    rng = random.Random(seed)
    ar = 0.0
    out: list[float] = []
    for i in range(6 * 3600):
        ar = 0.9 * ar + 0.44 * rng.gauss(0.0, 1.0)
        out.append(out[-1] if i % 3600 >= 3300 else round(20.0 + 0.5 * ar, 3))
    return out


def test_a_routine_hold_is_reported_once(tmp_path: Path) -> None:
    """The same 5-minute hold every hour for 6 hours: the first is flagged ``stuck``, the 5 after it, no
    longer than the first, are not: a reported run leaves the repeat statistics but still sets the longest
    run, which a later hold must beat. (Without that record every hold was reported, 24 a day.)"""
    got = reasons(run(tmp_path, lines(pump())))
    assert [(why, i // 3600, i % 3600 >= 3300) for i, why in got] == [("stuck", 0, True)], got


def test_the_smallest_repeat_decay_still_forgets_a_run(tmp_path: Path) -> None:
    """``repeat_decay`` is open at 0: at 1e-17 the weight the earlier steps keep is exactly 1.0, and a reported
    run's steps are still taken out of the statistics (as a plain count) without a division by zero: every
    metric comes back scored, with no error or warning."""
    xs = frozen()
    config = tmp_path / "rg.toml"
    config.write_text('[output]\nexplain = true\n\n[[rule]]\nname = "all"\n[rule.params]\nrepeat_decay = 1e-17\n')
    proc = run_cli(["run", "--config", str(config)], input=lines(xs), timeout=120)
    out = proc.stdout.splitlines()
    assert proc.returncode == 0 and not any(w in proc.stderr for w in (b"E! ", b"W! ", b"Error", b"Exception")), proc.stderr
    assert len(out) == len(xs) and all(b"temp_anomaly_score=" in line for line in out)
    assert [why for _, why in reasons(out)][:1] == ["stuck"]
