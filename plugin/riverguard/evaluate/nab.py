"""A pure NAB scorer: windows, scaled-sigmoid rewards, cost profiles, threshold sweep.

This follows the Numenta Anomaly Benchmark's scoring (NAB v1.1, ``sweeper.py``):

- The first ``min(floor(0.15 * rows), 750)`` rows of a file are probationary
  and not scored.
- Inside an anomaly window only the earliest detection counts; it earns
  ``tp * S(p) / S(-1)`` with ``S(x) = 2 / (1 + exp(5x)) - 1`` and
  ``p = -(r - i + 1) / w`` (``r`` the window's last row, ``w`` its width in
  rows). A window with no detection costs ``-fn``.
- A detection outside every window costs ``fp * S(q)`` with
  ``q = |r_prev - i| / (w_prev - 1)`` measured from the end of the previous
  window (``S(q) = -1`` when ``q > 3``); with no earlier window it costs ``-fp``.
- ``normalised = 100 * (raw - null) / (perfect - null)``, ``null = -fn * windows``
  and ``perfect = tp * windows``.

Everything here is plain data in, numbers out: :class:`FileLabels` (row
timestamps and windows) is turned into a :class:`ScoredFile` (per-row rewards
and costs) once, after which :func:`score_file` scores a detection mask and
:func:`sweep` finds the single threshold that maximises a corpus score.

>>> labels = FileLabels("demo.csv", list(range(100)), [(40, 49)])
>>> prepared = prepare(labels)
>>> prepared.probation, prepared.n_windows
(15, 1)
>>> hit = score_file(prepared, [i == 40 for i in range(100)], PROFILES["standard"])
>>> round(hit.raw, 6), hit.hits, hit.false_positives
(1.0, 1, 0)
>>> miss = score_file(prepared, [False] * 100, PROFILES["standard"])
>>> miss.raw, miss.hits
(-1.0, 0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PROFILES",
    "FileLabels",
    "FileScore",
    "Profile",
    "ScoredFile",
    "SweepResult",
    "normalise",
    "prepare",
    "probation_length",
    "scaled_sigmoid",
    "score_corpus",
    "score_file",
    "sweep",
]

PROBATION_PERCENT = 0.15
PROBATION_MAX_ROWS = 750  # 0.15 * 5000, as in NAB


@dataclass(frozen=True)
class Profile:
    """Cost weights of one NAB application profile."""

    name: str
    tp: float
    fn: float
    fp: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 1.0, 0.11),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 1.0, 0.22),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 2.0, 0.11),
}


def scaled_sigmoid(x: float) -> float:
    """NAB's ``S(x) = 2 / (1 + exp(5x)) - 1``, taken as -1 when ``x > 3``.

    >>> round(scaled_sigmoid(-1.0), 6), scaled_sigmoid(0.0), scaled_sigmoid(3.5)
    (0.986614, 0.0, -1.0)
    """
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probation_length(rows: int) -> int:
    """Rows at the start of a file that are not scored.

    >>> probation_length(4032), probation_length(22695), probation_length(10)
    (604, 750, 1)
    """
    return int(min(math.floor(PROBATION_PERCENT * rows), PROBATION_MAX_ROWS))


@dataclass
class FileLabels:
    """One file's row timestamps (any sortable numbers, e.g. ns) and its windows.

    Windows are ``(start, end)`` timestamps, both inclusive, located by row
    (first exact match, as NAB does). A bound that is not exactly a row
    timestamp is moved inwards to the nearest row (NAB's windows always fall
    on rows).
    """

    name: str
    timestamps: Sequence[int]
    windows: Sequence[tuple[int, int]]


@dataclass
class ScoredFile:
    """One file prepared for scoring: what a detection on each row would earn.

    ``window[i]`` is the index of the window row ``i`` lies in, or -1;
    ``value[i]`` is, for a window row, its unit reward ``S(p) / S(-1)`` and,
    for a row outside every window, its unit cost (``S(q)`` or -1, negative);
    ``scorable[i]`` is False for probationary rows.
    """

    name: str
    rows: int
    probation: int
    bounds: list[tuple[int, int]]  # (first row, last row) of each window
    window: np.ndarray
    value: np.ndarray
    scorable: np.ndarray
    counted: np.ndarray  # bool per window: has at least one scorable row

    @property
    def n_windows(self) -> int:
        return int(self.counted.sum())


def prepare(labels: FileLabels) -> ScoredFile:
    """Compute the per-row rewards and costs of one file."""
    ts = np.asarray(labels.timestamps)
    n = len(ts)
    bounds: list[tuple[int, int]] = []
    for start, end in sorted(labels.windows):
        lo, hi = _row_of(ts, start, first=True), _row_of(ts, end, first=False)
        if lo is None or hi is None or hi < lo:
            raise ValueError(f"{labels.name}: window {start}..{end} holds no row")
        if bounds and lo <= bounds[-1][1]:
            raise ValueError(f"{labels.name}: windows overlap")
        bounds.append((lo, hi))
    window = np.full(n, -1, dtype=np.int64)
    value = np.empty(n, dtype=np.float64)
    max_tp = scaled_sigmoid(-1.0)
    idx = np.arange(n, dtype=np.float64)
    # Rows before the first window: full cost.
    first = bounds[0][0] if bounds else n
    value[:first] = -1.0
    for k, (lo, hi) in enumerate(bounds):
        width = hi - lo + 1
        window[lo : hi + 1] = k
        p = -(hi - idx[lo : hi + 1] + 1) / width
        value[lo : hi + 1] = (2.0 / (1.0 + np.exp(5.0 * p)) - 1.0) / max_tp
        nxt = bounds[k + 1][0] if k + 1 < len(bounds) else n
        if nxt > hi + 1:
            after = idx[hi + 1 : nxt]
            if width > 1:
                q = np.abs(hi - after) / (width - 1)
                with np.errstate(over="ignore"):
                    s = 2.0 / (1.0 + np.exp(5.0 * q)) - 1.0
                s[q > 3.0] = -1.0
            else:  # NAB would divide by zero here; treat every row as far away
                s = np.full(len(after), -1.0)
            value[hi + 1 : nxt] = s
    probation = probation_length(n)
    scorable = np.ones(n, dtype=bool)
    scorable[:probation] = False
    counted = np.array([hi >= probation for _, hi in bounds], dtype=bool)
    return ScoredFile(labels.name, n, probation, bounds, window, value, scorable, counted)


def _row_of(ts: np.ndarray, stamp: int, *, first: bool) -> int | None:
    """The row of a window bound: the first row with exactly that timestamp (as NAB
    does: a file's clock may step back), else the first row at or after it
    (``first``) or the last row at or before it."""
    exact = np.flatnonzero(ts == stamp)
    if len(exact):
        return int(exact[0])
    near = np.flatnonzero(ts >= stamp) if first else np.flatnonzero(ts <= stamp)
    if not len(near):
        return None
    return int(near[0] if first else near[-1])


@dataclass
class FileScore:
    """One file (or a sum of files) scored at one threshold under one profile."""

    raw: float
    windows: int
    hits: int
    false_positives: int

    def __add__(self, other: FileScore) -> FileScore:
        return FileScore(
            self.raw + other.raw,
            self.windows + other.windows,
            self.hits + other.hits,
            self.false_positives + other.false_positives,
        )


def score_file(prepared: ScoredFile, detections: Iterable[bool] | np.ndarray, profile: Profile) -> FileScore:
    """Score a detection mask (one bool per row) on one file."""
    det = np.asarray(detections, dtype=bool)
    if det.shape != (prepared.rows,):
        raise ValueError(f"{prepared.name}: {det.shape[0]} detections for {prepared.rows} rows")
    det = det & prepared.scorable
    outside = det & (prepared.window < 0)
    fp_raw = float(prepared.value[outside].sum()) * profile.fp
    hits = 0
    tp_raw = 0.0
    for k, (lo, hi) in enumerate(prepared.bounds):
        if not prepared.counted[k]:
            continue
        inside = np.flatnonzero(det[lo : hi + 1])
        if len(inside):
            hits += 1
            tp_raw += profile.tp * float(prepared.value[lo + inside[0]])
        else:
            tp_raw -= profile.fn
    return FileScore(tp_raw + fp_raw, prepared.n_windows, hits, int(outside.sum()))


def normalise(raw: float, windows: int, profile: Profile) -> float:
    """``100 * (raw - null) / (perfect - null)``.

    >>> normalise(-3.0, 3, PROFILES["standard"]), normalise(3.0, 3, PROFILES["standard"])
    (0.0, 100.0)
    """
    null = -profile.fn * windows
    perfect = profile.tp * windows
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)


def score_corpus(
    files: Sequence[ScoredFile], detections: Sequence[np.ndarray], profile: Profile
) -> list[FileScore]:
    """:func:`score_file` for each file."""
    return [score_file(f, d, profile) for f, d in zip(files, detections, strict=True)]


@dataclass
class SweepResult:
    """The best threshold over a corpus, and the score curve it was picked from."""

    threshold: float  # math.inf: never fire
    raw: float
    windows: int
    thresholds: np.ndarray  # distinct candidate thresholds, descending (inf first)
    raws: np.ndarray  # raw corpus score at each candidate
    profile: Profile

    @property
    def score(self) -> float:
        """The normalised corpus score at the best threshold."""
        return normalise(self.raw, self.windows, self.profile)


def _events(prepared: ScoredFile, scores: np.ndarray, profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """(threshold, change of raw score) pairs: lowering the threshold to ``t`` adds the change."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (prepared.rows,):
        raise ValueError(f"{prepared.name}: {s.shape[0]} scores for {prepared.rows} rows")
    ok = prepared.scorable
    outside = ok & (prepared.window < 0)
    th = [s[outside]]
    dv = [prepared.value[outside] * profile.fp]
    for k, (lo, hi) in enumerate(prepared.bounds):
        if not prepared.counted[k]:
            continue
        lo = max(lo, prepared.probation)
        ws = s[lo : hi + 1]
        # The detection at threshold t is the first row with score >= t, so only
        # rows whose score beats every earlier row of the window ("records")
        # can ever be the detection. Going down in threshold, the detection
        # moves from the last record (highest score) to earlier ones.
        prev_max = np.maximum.accumulate(np.concatenate(([-np.inf], ws[:-1])))
        rec = np.flatnonzero(ws > prev_max)
        rec_val = prepared.value[lo + rec] * profile.tp
        later = np.concatenate((rec_val[1:], [-profile.fn]))
        change = np.zeros(len(ws))
        change[rec] = rec_val - later
        th.append(ws)  # every scored row's value is a candidate threshold, as in NAB
        dv.append(change)
    return np.concatenate(th), np.concatenate(dv)


def sweep(files: Sequence[ScoredFile], scores: Sequence[np.ndarray], profile: Profile) -> SweepResult:
    """The threshold (a distinct score value, or never firing) with the best corpus score.

    Ties go to the highest threshold. Runs in O(rows log rows).
    """
    ths, dvs = [], []
    windows = 0
    for prepared, s in zip(files, scores, strict=True):
        t, d = _events(prepared, s, profile)
        ths.append(t)
        dvs.append(d)
        windows += prepared.n_windows
    th = np.concatenate(ths) if ths else np.empty(0)
    dv = np.concatenate(dvs) if dvs else np.empty(0)
    if np.any(np.isnan(th)):
        raise ValueError("scores contain NaN")
    order = np.argsort(-th, kind="stable")
    th, dv = th[order], dv[order]
    null = -profile.fn * windows
    cum = null + np.cumsum(dv)
    # Keep the last position of each run of equal thresholds: all rows with
    # that score switch on together.
    last = np.ones(len(th), dtype=bool)
    if len(th) > 1:
        last[:-1] = th[1:] != th[:-1]
    thresholds = np.concatenate(([math.inf], th[last]))
    raws = np.concatenate(([null], cum[last]))
    best = int(np.argmax(raws))  # first maximum = highest threshold
    return SweepResult(float(thresholds[best]), float(raws[best]), windows, thresholds, raws, profile)
