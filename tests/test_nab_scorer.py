"""The NAB scorer on tiny hand-made files, with expected values worked out by hand.

Layout used by most tests: 100 rows (timestamps 0..99), so probation is
floor(0.15 * 100) = 15 rows, and one window on rows 40..49 (width w = 10,
last row r = 49).

    S(x) = 2 / (1 + exp(5x)) - 1,  S(-1) = 0.9866142981514303
    detection at row i in the window earns tp * S(-(r - i + 1) / w) / S(-1)
    false positive at row i after the window costs fp * S(|r - i| / (w - 1))
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from riverguard.evaluate.nab import (
    PROFILES,
    FileLabels,
    normalise,
    prepare,
    probation_length,
    scaled_sigmoid,
    score_file,
    sweep,
)

STANDARD = PROFILES["standard"]
LOW_FP = PROFILES["reward_low_FP_rate"]
LOW_FN = PROFILES["reward_low_FN_rate"]
S_MINUS_1 = 0.9866142981514303  # 2 / (1 + e^-5) - 1


def one_window(rows: int = 100, window: tuple[int, int] = (40, 49)):
    return prepare(FileLabels("f.csv", list(range(rows)), [window]))


def at(*rows: int, n: int = 100) -> list[bool]:
    return [i in rows for i in range(n)]


def test_profiles_are_nabs():
    assert (STANDARD.tp, STANDARD.fn, STANDARD.fp) == (1.0, 1.0, 0.11)
    assert (LOW_FP.tp, LOW_FP.fn, LOW_FP.fp) == (1.0, 1.0, 0.22)
    assert (LOW_FN.tp, LOW_FN.fn, LOW_FN.fp) == (1.0, 2.0, 0.11)


def test_sigmoid_and_probation():
    assert scaled_sigmoid(-1.0) == pytest.approx(S_MINUS_1, abs=1e-15)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.0) == pytest.approx(2 / (1 + math.exp(15)) - 1)  # still the sigmoid at 3
    assert scaled_sigmoid(3.0001) == -1.0  # beyond 3: exactly -1
    assert probation_length(100) == 15
    assert probation_length(4032) == 604  # floor(604.8)
    assert probation_length(5000) == 750
    assert probation_length(22695) == 750  # capped


def test_detection_at_window_start_earns_tp_weight():
    # p = -(49 - 40 + 1) / 10 = -1  ->  S(-1) / S(-1) = 1
    s = score_file(one_window(), at(40), STANDARD)
    assert s.raw == pytest.approx(1.0)
    assert (s.windows, s.hits, s.false_positives) == (1, 1, 0)


def test_early_detection_beats_late_one():
    # row 45: p = -(49 - 45 + 1) / 10 = -0.5, S(-0.5) = 2 / (1 + e^-2.5) - 1 = 0.8482836399575129
    mid = score_file(one_window(), at(45), STANDARD)
    assert mid.raw == pytest.approx(0.8482836399575129 / S_MINUS_1)  # 0.85979...
    assert mid.raw == pytest.approx(0.859792, abs=1e-6)
    # row 49 (last row): p = -1/10, S(-0.1) = 2 / (1 + e^-0.5) - 1 = 0.24491866240370913
    late = score_file(one_window(), at(49), STANDARD)
    assert late.raw == pytest.approx(0.24491866240370913 / S_MINUS_1)
    assert 1.0 > mid.raw > late.raw > 0.0


def test_only_the_earliest_detection_in_a_window_counts():
    both = score_file(one_window(), at(45, 40, 49), STANDARD)
    assert both.raw == pytest.approx(1.0)
    assert (both.hits, both.false_positives) == (1, 0)


def test_missed_window_costs_fn_weight():
    assert score_file(one_window(), at(), STANDARD).raw == -1.0
    assert score_file(one_window(), at(), LOW_FP).raw == -1.0
    assert score_file(one_window(), at(), LOW_FN).raw == -2.0


def test_fp_just_after_window_costs_less_than_far_one():
    # row 52: q = |49 - 52| / (10 - 1) = 1/3, S(1/3) = 2 / (1 + e^(5/3)) - 1 = -0.6822618...
    near = score_file(one_window(), at(40, 52), STANDARD)
    s_third = 2 / (1 + math.exp(5 / 3)) - 1
    assert s_third == pytest.approx(-0.682262, abs=1e-6)
    assert near.raw == pytest.approx(1.0 + 0.11 * s_third)
    # row 90: q = 41/9 > 3  ->  S = -1, costs the full fp weight
    far = score_file(one_window(), at(40, 90), STANDARD)
    assert far.raw == pytest.approx(1.0 - 0.11)
    assert near.raw > far.raw
    assert (near.false_positives, far.false_positives) == (1, 1)
    # row 76: q = 27/9 = 3 exactly, still on the sigmoid: S(3) = 2 / (1 + e^15) - 1
    edge = score_file(one_window(), at(40, 76), STANDARD)
    assert edge.raw == pytest.approx(1.0 + 0.11 * (2 / (1 + math.exp(15)) - 1))
    # the reward_low_FP_rate profile doubles the cost
    assert score_file(one_window(), at(40, 90), LOW_FP).raw == pytest.approx(1.0 - 0.22)


def test_fp_before_any_window_costs_full_weight():
    s = score_file(one_window(), at(20), STANDARD)
    assert s.raw == pytest.approx(-1.0 - 0.11)  # window missed, FP with no earlier window
    assert (s.hits, s.false_positives) == (0, 1)


def test_fp_is_weighted_by_the_previous_window_not_the_next():
    # windows 30..39 (w=10) and 70..79; row 65 is 26 rows after the first (q = 26/9 = 2.89)
    prepared = prepare(FileLabels("f.csv", list(range(100)), [(30, 39), (70, 79)]))
    s = score_file(prepared, at(30, 70, 65), STANDARD)
    assert s.raw == pytest.approx(2.0 + 0.11 * (2 / (1 + math.exp(5 * 26 / 9)) - 1))
    # a file with no window: every detection costs -fp
    flat = prepare(FileLabels("f.csv", list(range(100)), []))
    s = score_file(flat, at(50, 60), STANDARD)
    assert s.raw == pytest.approx(-0.22)
    assert (s.windows, s.false_positives) == (0, 2)


def test_probation_rows_are_ignored():
    # rows 0..14 are probationary: a detection there is neither a FP nor a hit
    assert score_file(one_window(), at(3, 14), STANDARD).raw == -1.0
    assert score_file(one_window(), at(3, 14), STANDARD).false_positives == 0
    assert score_file(one_window(), at(15), STANDARD).false_positives == 1  # row 15 is scored
    # a window inside probation is not counted at all (and its rows are not FPs)
    early = one_window(window=(2, 8))
    assert early.n_windows == 0
    s = score_file(early, at(5, 9), STANDARD)
    assert (s.raw, s.windows, s.hits, s.false_positives) == (0.0, 0, 0, 0)


def test_window_straddling_probation_counts_only_its_scored_rows():
    # window 10..19, probation 15: a detection on row 12 does not count, one on 15 does
    straddle = one_window(window=(10, 19))
    assert score_file(straddle, at(12), STANDARD).raw == -1.0
    # row 15: p = -(19 - 15 + 1) / 10 = -0.5
    assert score_file(straddle, at(12, 15), STANDARD).raw == pytest.approx(0.8482836399575129 / S_MINUS_1)


def test_normalisation():
    # one window: null = -1, perfect = 1 (standard); hit at start + one far FP: 100 * (0.89 + 1) / 2
    s = score_file(one_window(), at(40, 90), STANDARD)
    assert normalise(s.raw, s.windows, STANDARD) == pytest.approx(94.5)
    assert normalise(-1.0, 1, STANDARD) == 0.0
    assert normalise(1.0, 1, STANDARD) == 100.0
    # reward_low_FN_rate: null = -2, perfect = 1, a miss is still 0
    assert normalise(-2.0, 1, LOW_FN) == 0.0
    assert normalise(0.0, 1, LOW_FN) == pytest.approx(100 * 2 / 3)


def test_window_bounds_follow_nab_row_lookup():
    # a clock that steps back (as in machine_temperature_system_failure.csv): bounds are the
    # first row with exactly that timestamp
    ts = [0, 10, 20, 30, 40, 25, 35, 45, 50, 60] * 1
    prepared = prepare(FileLabels("f.csv", ts, [(20, 45)]))
    assert prepared.bounds == [(2, 7)]
    # bounds between rows move inwards
    prepared = prepare(FileLabels("f.csv", list(range(0, 1000, 10)), [(401, 489)]))
    assert prepared.bounds == [(41, 48)]


def test_sweep_matches_brute_force_on_random_files():
    rng = np.random.default_rng(7)
    for trial in range(20):
        files, scores = [], []
        for _ in range(3):
            n = int(rng.integers(40, 200))
            starts = sorted(rng.choice(np.arange(10, n - 12, 12), size=int(rng.integers(0, 3)), replace=False))
            windows = [(int(a), int(a) + int(rng.integers(1, 10))) for a in starts]
            files.append(prepare(FileLabels("f", list(range(n)), windows)))
            # few distinct values so that ties happen
            scores.append(np.round(rng.random(n) ** 3, 1 if trial % 2 else 3))
        for profile in PROFILES.values():
            best = sweep(files, scores, profile)
            scored = {float(v) for f, s in zip(files, scores) for v in s[f.scorable]}  # probation excluded
            candidates = [math.inf, *sorted(scored, reverse=True)]
            brute = [sum(score_file(f, s >= t, profile).raw for f, s in zip(files, scores)) for t in candidates]
            assert best.raw == pytest.approx(max(brute))
            # the curve itself is right at every candidate
            assert list(best.thresholds) == candidates
            assert np.allclose(best.raws, brute)
            # ties go to the highest threshold
            assert best.threshold == candidates[int(np.argmax(np.round(brute, 9)))]


def test_sweep_prefers_never_firing_when_everything_costs():
    prepared = one_window()
    scores = np.zeros(100)
    scores[90] = 0.9  # a far false positive only
    best = sweep([prepared], [scores], STANDARD)
    assert best.threshold == math.inf
    assert best.raw == -1.0 and best.score == 0.0


def test_sweep_picks_the_threshold_that_catches_the_window():
    prepared = one_window()
    scores = np.full(100, 0.1)
    scores[42] = 0.8  # in the window: p = -0.8
    scores[90] = 0.9  # far FP, above the window's score
    best = sweep([prepared], [scores], STANDARD)
    assert best.threshold == 0.8
    hit = (2 / (1 + math.exp(-4)) - 1) / S_MINUS_1
    assert best.raw == pytest.approx(hit - 0.11)
    assert best.score == pytest.approx(100 * (hit - 0.11 + 1) / 2)
