"""Episodes (the new-extremes step): a reported excursion that comes back is not learned, through the real process.

What a user relies on: a sensor sampled every second that misbehaves for a
few minutes (sparse spikes far beyond anything seen), recovers, and does it
again an hour later is flagged again each time, not only the first time
(when the range was new); an episode that recurs as a routine, every hour
or every 8 hours, is flagged the first four times and then learned; a
state that no run could have written is refused; a level that moves and
stays is learned as before (flagged once); and a restart in the middle of
an episode, or between two, changes no byte of the output.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from conftest import flag_reasons as reasons, run_rule as run, sensor_lines as lines
from riverguard.detectors import REGISTRY

MINUTE = 60
HOUR = 3600
#: an episode: 4 minutes in which every 20th sample jumps 8 standard deviations
LENGTH = 4 * MINUTE


def sensor(starts: list[int], n: int, lift: float = 0.0, lift_at: int | None = None) -> list[float]:
    """``n`` seconds of a sensor around 50 (sd 1; seeded), with an episode from each of ``starts``; with
    ``lift``, the level moves up by that much from ``lift_at`` on and stays."""
    rng = random.Random(7)
    out = []
    for i in range(n):
        x = 50.0 + rng.gauss(0.0, 1.0)
        if any(s <= i < s + LENGTH for s in starts) and (i - 3) % 20 == 0:
            x += 8.0
        if lift_at is not None and i >= lift_at:
            x += lift
        out.append(round(x, 3))
    return out


def flagged(flags: list[tuple[int, str]], starts: list[int]) -> list[int]:
    """The episodes (their first samples) with a flag inside them or within 5 s after."""
    return [s for s in starts if any(s <= i < s + LENGTH + 5 for i, _ in flags)]


def test_an_episode_that_comes_back_is_flagged_again(tmp_path: Path) -> None:
    """Three episodes an hour apart: each is flagged, nothing else. (Before, the first one's spikes stayed in
    the range seen so far, and the second and third were none: only the first was flagged.)"""
    starts = [40 * MINUTE, 100 * MINUTE, 160 * MINUTE]
    got = reasons(run(tmp_path, lines(sensor(starts, 200 * MINUTE))))
    assert flagged(got, starts) == starts, got
    assert all(any(s <= i < s + LENGTH + 5 for s in starts) for i, _ in got), got
    assert {why for _, why in got} == {"spike"}, got


@pytest.mark.parametrize(("every", "times"), [(1, 10), (8, 12)])
def test_an_episode_that_recurs_is_learned_after_four(tmp_path: Path, every: int, times: int) -> None:
    """The same episode every hour for 10 hours, or every 8 hours for 4 days: the first four are flagged,
    then it is learned (each episode not learned owes two days of event time, and none is while four are
    owed). With a debt of 8 hours, paid as fast, an episode every 8 hours was flagged every time."""
    starts = [40 * MINUTE + every * HOUR * k for k in range(times)]
    got = reasons(run(tmp_path, lines(sensor(starts, starts[-1] + HOUR))))
    assert flagged(got, starts) == starts[:4], got


@pytest.mark.parametrize(
    ("olo", "ohi", "mid"),
    [(0.0, 1.0, True), (-1e6, 1e6, True), (-1e6, 1e6, False), (51.0, 49.0, True), (49.0, 50.0, None)],
)
def test_a_range_before_an_episode_that_no_run_wrote_is_refused(olo: float, ohi: float, mid: bool | None) -> None:
    """A saved range before an episode must lie within the range seen, its low end not above its high end,
    with an excursion in progress (``mid``: the state is taken inside a reported one; None: no excursion at
    all): a range put back from a tampered checkpoint (-1e6 .. 1e6) would hide every later new extreme. The
    state as a run wrote it loads."""
    det = REGISTRY["sentinel"]()
    cut = 40 * MINUTE + 30 if mid else 30 * MINUTE
    for i, x in enumerate(sensor([40 * MINUTE], cut)):
        det.process(x, float(1.7e9 + i))
    state = det.state_by_name()
    assert (state["extremes"]["olo"] < state["extremes"]["ohi"]) is bool(mid)  # (mid: reported, and kept)
    record = det.dump_state()
    REGISTRY["sentinel"]().load_state(record)
    det.extremes._olo = olo
    det.extremes._ohi = ohi
    if mid is None:
        det.extremes._run = 0.0
        det.extremes._calm = -1.0
    with pytest.raises(ValueError, match="extremes"):
        REGISTRY["sentinel"]().load_state(det.dump_state())


@pytest.mark.parametrize("lift", [8.0, 12.0])
def test_a_level_that_moves_and_stays_is_learned(tmp_path: Path, lift: float) -> None:
    """A step up that stays (no episode: the recent level does not come back): flagged in its first minute,
    then not for the next half hour (a range put back would report it again within minutes), and once more
    in three hours at most (noise at the new level beyond its range, an hour later: as before episodes)."""
    at = 40 * MINUTE
    got = reasons(run(tmp_path, lines(sensor([], 4 * HOUR, lift, at))))
    assert got and at <= got[0][0] < at + MINUTE, got
    assert [i for i, _ in got if at + MINUTE <= i < at + 30 * MINUTE] == [] and len(got) <= 3, got


@pytest.mark.parametrize("cut", [100 * MINUTE + 30, 100 * MINUTE + LENGTH + 30, 130 * MINUTE])
def test_a_restart_inside_or_after_an_episode_changes_nothing(tmp_path: Path, cut: int) -> None:
    """One process over the whole input == two with a checkpoint between them, cut inside the second episode,
    in the calm that ends it, and between episodes (the range before it and the debt are saved)."""
    data = lines(sensor([40 * MINUTE, 100 * MINUTE, 160 * MINUTE], 200 * MINUTE)).splitlines(keepends=True)
    whole = run(tmp_path, b"".join(data))
    state = tmp_path / f"s{cut}.msgpack"
    head = run(tmp_path, b"".join(data[:cut]), state=state)
    tail = run(tmp_path, b"".join(data[cut:]), state=state)
    assert head + tail == whole
