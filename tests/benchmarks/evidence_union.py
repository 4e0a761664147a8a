"""``python -m tests.benchmarks.evidence_union``: the default detector's flags, or'd with five more kinds of evidence.

A probe for issue 12's CMD target (twenty-eighth session; ``peak`` the
twenty-ninth, its stricter forms the thirtieth), modelled on
``excursions``: each candidate below is computed online and causally, with
a state per series of a few floats (the seasonal residual excepted: it needs
the values of a day or a week), and gives a score per sample; a run of
scores at or above a threshold is flagged once, when it has lasted
``lasting`` (0 or an hour of sample time), at most once every 6 hours
(``excursions.excursion_flags`` with no rank; a parameter's word ``qH``:
every ``H`` hours, ``quiet``). The flags are or'd with the
default detector's at its shipped threshold and scored on both corpora,
NAB's standard profile and event-wise, as ``riverguard evaluate`` does. The
candidates:

- ``mult``: a multiplicative deviation upwards, ``log(value + eps)`` against
  an exponentially weighted robust level of the last ``tau`` in units of the
  exponentially weighted mean absolute deviation of the log values
  (``eps`` a tenth of the series' mean magnitude over a week, the deviation
  at least 0.05, i.e. 5 %);
- ``seasonal``: the value minus the value a ``lag`` (1 or 7 days) earlier at
  the same phase, upwards (``1+7``: the lesser of the two scores, so above
  both the day before and the week before), in units of the residual's
  exponentially weighted mean absolute deviation (a week, at least 5 % of
  the mean magnitude); it keeps a day's or a week's values;
- ``cusum``: a two-sided CUSUM of robustly standardized values (level and
  mean absolute deviation weighted over a day, each value clipped to 4
  deviations) with drift ``drift``: sustained small shifts;
- ``lone``: what ``mongodb-machine-rps`` shows (single minutes at 2.5 to 4
  times the level of the minutes around them): ``mult``'s deviation against
  the last ``tau`` of level, flagged on the next sample when that one is back
  under half the threshold (a lone value, one sample late); ``tau`` ``1f``:
  an hour, and only in series sampled once a minute or more often (NAB has
  none: its 5-minute series are left to the default);
- ``peak``: the excursion above a level, in units of the typical day's
  largest excursion (the median over the last ``days`` days): a peak
  several times the size of the series' usual daily peaks. Stricter forms
  (the parameter ``DAYS [max] [newR] [qH]``, ``_peak``): ``newR``, only
  above every one of the last ``R`` days' largest excursions too (a new
  record); ``max``, the largest of the ``DAYS`` days' peaks as the unit
  rather than their median; ``q24``, 24 hours between two flags.

Prints a table, then for each candidate's best rows (the best CMD score, the
best with NAB within its budget of false alarms per series-day, 0.074, and
the best within both budgets, CMD's 0.043 too: at most 135 and 76 false
alarms) the extra catches by category
and the extra false alarms by file (the 8 files with the most); last, a few
pairs of rows or'd together with the default. About 4 minutes for both
corpora; ``--only NAME`` runs one candidate's rows and the pairs with it
(``peak``: about 2.5 minutes). ``--server`` counts instead the alarms
that each of ``SERVER_ROWS`` adds to the default's on ``noise_alarms``'
quiet server (14 days at 60 s; about 100 seconds): the default detector's
parameters are all that ``noise_alarms`` takes, so a candidate cannot be
plugged in there.

``--corroborate`` (thirty-second session; about 50 seconds): the default's
flags kept only where a second view agrees, and a candidate that needs two
views at once. The views are ``peak`` (14 days, ``P``), ``mult`` (a week,
``M``) and ``seasonal`` (7 days, ``S7``). A flag of the default whose
evidence (its ``_why``) is a time-of-day extreme (``hour``), or that or a
new extreme (``hour+extreme``: the most false alarms on both corpora), or
any flag (``all``), is kept only if one of the views is at ``g`` or more in size,
up or down (a gate); or'd with that: ``P`` at 3 and a second view at its
threshold at the same sample (lasting 1 h, 24 h apart), and ``lone`` 1f at
10. First what each kind of the default's evidence catches (its flags left
out), then every row of the grid, then the held-out choice: the row best on one
corpus within its budget, and what it gives on the other. ``--server``
also counts what four of these rows (``SERVER_CORROBORATED``) add to the
default's alarms on the quiet server, or take from them.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from riverguard.config import parse
from riverguard.detectors import REGISTRY
from riverguard.evaluate import events
from riverguard.evaluate.corpus import NabFile, default_corpus_path, load_corpus
from riverguard.evaluate.runner import run_corpus

from . import noise_alarms
from .excursions import excursion_flags, figures, show
from .label_bound import HOLD

DAY = 86400.0
BUDGET = {"nab": 0.074, "cmd": 0.043}  # false alarms per series-day, issue 12
WARM = 30  # samples before a candidate scores


def _alpha(gap: float, tau: float, n: int) -> float:
    """The weight of the ``n``-th sample (from 1) in an EW average of time constant ``tau`` s: at least ``1 / n``, so
    that the first samples make a plain mean rather than the first value's echo."""
    return max(1.0 - math.exp(-max(gap, 0.0) / tau), 1.0 / n)


def mult_scores(x: np.ndarray, t: Sequence[float], tau: float) -> np.ndarray:
    """Upward deviation of ``log(x + eps)`` from its EW robust level (time constant ``tau`` s), in EW mean absolute
    deviations of the log (at least 0.05); 0 in the first ``WARM`` samples and the first ``tau``.

    >>> t = [3600.0 * i for i in range(60)]
    >>> x = np.array([10.0, 11.0, 9.0] * 20); x[50] = 40.0
    >>> s = mult_scores(x, t, DAY)
    >>> int(np.argmax(s)), round(float(s[50])), float(s[:29].max())
    (50, 20, 0.0)
    """
    out = np.zeros(len(x))
    mag = level = dev = 0.0
    for i in range(len(x)):
        v = max(float(x[i]), 0.0)
        if i == 0:
            mag = abs(v)
        else:
            mag += _alpha(t[i] - t[i - 1], 7 * DAY, i + 1) * (abs(v) - mag)
        y = math.log(v + 0.1 * mag + 1e-12)
        if i == 0:
            level, dev, start = y, 0.0, t[0]
            continue
        scale = max(dev, 0.05)
        d = y - level
        if i >= WARM and t[i] - start >= tau:
            out[i] = d / scale
        level += _alpha(t[i] - t[i - 1], tau, i + 1) * (d if i < WARM else max(-3 * scale, min(3 * scale, d)))
        dev += _alpha(t[i] - t[i - 1], tau, i) * ((abs(d) if i < WARM else min(abs(d), 5 * scale)) - dev)
    return out


def seasonal_scores(x: np.ndarray, t: Sequence[float], lag: float) -> np.ndarray:
    """Upward residual of the value against the one ``lag`` s earlier (the nearest sample within half an interval),
    in EW mean absolute deviations of the residual (a week; at least 5 % of the mean magnitude over a week)."""
    out = np.zeros(len(x))
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    dev, mag, seen = 0.0, abs(float(x[0])), 0
    for i in range(1, len(x)):
        mag += _alpha(t[i] - t[i - 1], 7 * DAY, i + 1) * (abs(float(x[i])) - mag)
        j = bisect.bisect_left(t, t[i] - lag - step / 2)
        if j >= i or abs(t[j] - (t[i] - lag)) > step / 2:
            continue
        r = float(x[i]) - float(x[j])
        scale = max(dev, 0.05 * mag, 1e-12)
        if seen >= WARM:
            out[i] = r / scale
        seen += 1
        dev += _alpha(t[i] - t[i - 1], 7 * DAY, seen) * ((abs(r) if seen < WARM else min(abs(r), 5 * scale)) - dev)
    return out


def cusum_scores(x: np.ndarray, t: Sequence[float], drift: float, tau: float = DAY) -> np.ndarray:
    """max(S+, S-) of a two-sided CUSUM over values standardized by an EW level and mean absolute deviation
    (time constant ``tau``), each clipped to 4 deviations (the sums never restart: a shift is one run).

    A shift of 2 deviations from the 60th hourly sample on:

    >>> t = [3600.0 * i for i in range(100)]
    >>> x = np.array([10.0, 11.0, 9.0] * 33 + [10.0]); x[60:] += 1.4
    >>> s = cusum_scores(x, t, 0.5)
    >>> float(s[59]) < 2, float(s[70]) > 10
    (True, True)
    """
    out = np.zeros(len(x))
    level, dev, hi, lo = float(x[0]), 0.0, 0.0, 0.0
    for i in range(1, len(x)):
        v = float(x[i])
        scale = max(dev, 1e-3 * abs(level), 1e-12)
        z = (v - level) / scale if i < WARM else max(-4.0, min(4.0, (v - level) / scale))
        if i >= WARM:
            hi, lo = max(0.0, hi + z - drift), max(0.0, lo - z - drift)
            out[i] = max(hi, lo)
        level += _alpha(t[i] - t[i - 1], tau, i + 1) * z * scale
        dev += _alpha(t[i] - t[i - 1], tau, i) * ((abs(v - level) if i < WARM else min(abs(v - level), 5 * scale))
                                                  - dev)
    return out


def lone_scores(x: np.ndarray, t: Sequence[float], tau: float) -> Callable[[float], np.ndarray]:
    """For a threshold ``k``: ``mult``'s score of a value at ``k`` or more, placed on the next sample when that one
    scores under ``k / 2`` (0 elsewhere)."""
    s = mult_scores(x, t, tau)

    def at(k: float) -> np.ndarray:
        out = np.zeros(len(s))
        hit = (s[:-1] >= k) & (s[1:] < k / 2)
        out[1:][hit] = s[:-1][hit]
        return out

    return at


def peak_scores(x: np.ndarray, t: Sequence[float], days: int, by_max: bool = False, record: int = 0) -> np.ndarray:
    """The excursion above an EW level (a day; it follows a fall at once, a rise at a quarter of that rate), in units
    of the median (``by_max``: the largest) of the largest excursion of each of the last ``days`` UTC days (scored
    from the fourth day; the unit at least 5 % of the mean magnitude, and 1 while every value so far is a whole
    number: a count's one more is not a peak); ``record`` days (at most ``days``): 0 unless the excursion is also
    above each of the last ``record`` days' largest, a new record. The state is ``days`` floats and five more.

    A day of the same two peaks (level 10, peaks of 13), then peaks of 25 at hours 100 and 130:

    >>> t = [3600.0 * i for i in range(150)]
    >>> x = np.array([10.0] * 150); x[3::12] = 13.0; x[[100, 130]] = 25.0
    >>> s = peak_scores(x, t, 14)
    >>> float(s[:72].max()), round(float(s[99]), 2), round(float(s[100]), 2), round(float(s[130]), 2)
    (0.0, 1.0, 5.06, 5.05)

    As a record of the last 7 days, only the first peak of 25 scores (not the usual peaks, not the second):

    >>> s = peak_scores(x, t, 14, record=7)
    >>> np.flatnonzero(s).tolist(), round(float(s[100]), 2)
    ([100], 5.06)
    """
    if record > days:
        raise ValueError(f"a record over {record} days needs {record} days' maxima, not {days}")
    out = np.zeros(len(x))
    maxima: list[float] = []  # the last ``days`` completed days' largest excursion
    day, top = int(t[0] // DAY), -math.inf
    level, mag, whole = float(x[0]), abs(float(x[0])), True
    for i in range(len(x)):
        v = float(x[i])
        whole = whole and v == round(v)
        if int(t[i] // DAY) != day:
            if top > -math.inf:
                maxima = [*maxima, top][-days:]
            day, top = int(t[i] // DAY), -math.inf
        if i:
            mag += _alpha(t[i] - t[i - 1], 7 * DAY, i + 1) * (abs(v) - mag)
        excursion = v - level
        if len(maxima) >= 3 and (not record or excursion > max(maxima[-record:])):
            usual = max(maxima) if by_max else float(np.median(maxima))
            out[i] = excursion / max(usual, 0.05 * mag, 1.0 if whole else 1e-12)
        top = max(top, excursion)
        if i:
            level += _alpha(t[i] - t[i - 1], DAY, i + 1) * excursion * (1.0 if excursion < 0 else 0.25)
    return out


class Candidate(NamedTuple):
    name: str
    param: str  # the name of the parameter of the state (before the scores), whose values are
    values: tuple[str, ...]
    thresholds: tuple[float, ...]
    lasting: tuple[float, ...]  # seconds a run must last (``excursion_flags``), a second parameter
    scores: Callable[[np.ndarray, Sequence[float], str], np.ndarray | Callable[[float], np.ndarray]]


def _seasonal(x: np.ndarray, t: Sequence[float], lags: str) -> np.ndarray:
    """``seasonal_scores`` at each lag of ``lags`` (days, "1+7"): the least of them, so above every one."""
    return np.minimum.reduce([seasonal_scores(x, t, float(d) * DAY) for d in lags.split("+")])


def _lone(x: np.ndarray, t: Sequence[float], tau: str) -> Callable[[float], np.ndarray]:
    """``lone_scores`` with ``tau`` in hours; ``1f``: 1 h, and only where the usual interval is a minute or less."""
    if tau.endswith("f") and (len(t) < 2 or float(np.median(np.diff(t))) > 60.0):
        return lambda k: np.zeros(len(x))
    return lone_scores(x, t, float(tau.removesuffix("f")) * 3600)


def _peak(x: np.ndarray, t: Sequence[float], spec: str) -> np.ndarray:
    """``peak_scores`` for a parameter ``DAYS [max] [newR] [qH]``: the median of ``DAYS`` days' peaks as the unit
    (``max``: the largest), a record over ``R`` days (``newR``); ``qH`` is the quiet time (``quiet``)."""
    days, *words = spec.split()
    record = next((int(w.removeprefix("new")) for w in words if w.startswith("new")), 0)
    return peak_scores(x, t, int(days), "max" in words, record)


def quiet(spec: str) -> float:
    """The least time between two flags of a series in s: ``qH`` in a parameter, ``H`` hours; else 6 h."""
    return next((float(w.removeprefix("q")) * 3600 for w in spec.split() if w.startswith("q")), HOLD)


LASTING = (0.0, 3600.0)
FEATURED = ("", " with NAB within its budget", " within both budgets")  # the rows whose differences are shown
CANDIDATES = (
    Candidate("mult", "tau h", ("24", "168"), (6.0, 10.0, 15.0, 25.0), LASTING,
              lambda x, t, p: mult_scores(x, t, float(p) * 3600)),
    Candidate("seasonal", "lag d", ("1", "7", "1+7"), (10.0, 20.0, 40.0, 80.0), LASTING, _seasonal),
    Candidate("cusum", "drift", ("0.5", "1"), (20.0, 40.0, 80.0, 160.0), LASTING,
              lambda x, t, p: cusum_scores(x, t, float(p))),
    Candidate("lone", "tau h", ("1", "24", "1f"), (6.0, 10.0, 20.0, 40.0), (0.0,), _lone),
    Candidate("peak", "days", ("14", "28"), (3.0, 4.0, 6.0), LASTING, _peak),
    # the thirtieth session's stricter forms of the best row (14, 3, 1 h): a record over 7 or 14 days, a quiet
    # time of 24 h, the largest day's peak as the unit; then a record with the quiet time, and the quiet time at 6
    Candidate("peak", "days", ("14 new7", "14 new14", "14 q24"), (3.0,), (3600.0,), _peak),
    Candidate("peak", "days", ("14 max",), (1.2, 1.5), (3600.0,), _peak),
    Candidate("peak", "days", ("14 new7 q24",), (3.0,), (3600.0,), _peak),
    Candidate("peak", "days", ("14 q24",), (6.0,), (3600.0,), _peak),
)


class Corpus(NamedTuple):
    files: list[NabFile]
    default: list[np.ndarray]
    series: list[tuple[np.ndarray, list[float]]]


#: The default detector as these probes took it: before the views step that they led to was built (thirty-third
#: session; ``peak = 0`` is that detector), so that the tables in docs/detection.md still come out of them.
BEFORE = {"peak": 0.0}


def load(name: str, env: str) -> Corpus:
    files = load_corpus(default_corpus_path(name, env))
    config = parse('[[rule]]\nname = "all"\nparams = { ' + ", ".join(f"{k} = {v!r}" for k, v in BEFORE.items()) + " }\n")
    default = [r.flags for r in run_corpus(config, files)]
    series = [(np.asarray(f.values, dtype=float), (f.timestamps / 1e9).tolist()) for f in files]
    return Corpus(files, default, series)


def per_file(files: Sequence[NabFile], flags: Sequence[np.ndarray]) -> list[events.EventScore]:
    return [events.score_series(f.timestamps, f.incidents(), d) for f, d in zip(files, flags, strict=True)]


def difference(c: Corpus, flags: Sequence[np.ndarray]) -> str:
    """Extra catches by category and extra false alarms by file of ``flags`` against the default's."""
    caught, alarms = Counter(), Counter()
    for f, base, new in zip(c.files, per_file(c.files, c.default), per_file(c.files, flags), strict=True):
        gained = sum(o.first_flag is not None for o in new.outcomes) - sum(o.first_flag is not None
                                                                            for o in base.outcomes)
        if gained:
            caught[f.category] += gained
        if new.false_alarms != base.false_alarms:
            alarms[f.key.removesuffix(".csv")] += new.false_alarms - base.false_alarms
    return ("catches " + (", ".join(f"{k} +{n}" for k, n in caught.most_common()) or "none") + "; false alarms "
            + (", ".join(f"{k} +{n}" for k, n in alarms.most_common(8)) or "none")
            + (f" (+{sum(alarms.values())} in all)" if len(alarms) > 8 else ""))


def flagged(scores: np.ndarray | Callable[[float], np.ndarray], t: Sequence[float], k: float,
            lasting: float, hold: float = HOLD) -> np.ndarray:
    """A candidate's flags at threshold ``k``: one a run that has lasted ``lasting`` s, ``hold`` s apart at least."""
    s = scores(k) if callable(scores) else scores
    return excursion_flags(s, np.ones(len(s)), t, k, 0.0, lasting, hold)


#: Each candidate's scores by name (the several ``peak`` rows share ``_peak``).
SCORES = {c.name: c.scores for c in CANDIDATES}

#: Pairs of the rows above, both or'd with the default: the best of ``seasonal`` with NAB within its budget,
#: then ``peak``'s rows, with ``lone`` at one sample a minute (candidate, parameter, threshold, lasting).
PAIRS = (
    (("seasonal", "7", 10.0, 3600.0), ("lone", "1f", 6.0, 0.0)),
    (("seasonal", "1+7", 10.0, 3600.0), ("lone", "1f", 6.0, 0.0)),
    (("seasonal", "7", 20.0, 3600.0), ("lone", "1f", 6.0, 0.0)),
    (("seasonal", "1+7", 20.0, 3600.0), ("lone", "1f", 10.0, 0.0)),
    (("peak", "14", 3.0, 3600.0), ("lone", "1f", 10.0, 0.0)),
    (("peak", "14", 6.0, 3600.0), ("lone", "1f", 10.0, 0.0)),
    (("peak", "14 q24", 3.0, 3600.0), ("lone", "1f", 10.0, 0.0)),
    (("peak", "14 new14", 3.0, 3600.0), ("lone", "1f", 10.0, 0.0)),
    (("peak", "14 max", 1.5, 3600.0), ("lone", "1f", 10.0, 0.0)),
    (("peak", "14 new7 q24", 3.0, 3600.0), ("lone", "1f", 10.0, 0.0)),
    (("peak", "14 q24", 6.0, 3600.0), ("lone", "1f", 10.0, 0.0)),
)


def pairs(corpora: dict[str, Corpus], only: str | None) -> None:
    print("pairs, or'd with the default:")
    for pair in PAIRS:
        if only and only not in {name for name, *_ in pair}:
            continue
        cells = []
        for c in corpora.values():
            union = list(c.default)
            for name, p, k, lasting in pair:
                union = [u | flagged(SCORES[name](x, t, p), t, k, lasting, quiet(p))
                         for u, (x, t) in zip(union, c.series, strict=True)]
            cells.append(figures(c.files, union))
        label = " + ".join(f"{name} {p} {k:g} {lasting / 3600:g} h" for name, p, k, lasting in pair)
        print(f"  {label:<47} | " + " | ".join(map(show, cells)), flush=True)


#: Rows measured on the quiet server by ``--server``: ``peak``'s best row, and its two within both budgets.
SERVER_ROWS = (("peak", "14", 3.0, 3600.0), ("peak", "14 new14", 3.0, 3600.0), ("peak", "14 max", 1.5, 3600.0))


def server(step: int = 60, days: float = 14.0, per_family: int = 8) -> None:
    """The alarms (``noise_alarms.alarm_starts``) that each of ``SERVER_ROWS`` adds to the default detector's on
    ``noise_alarms``' quiet server, where every flag is a false alarm, per series-day."""
    cls = REGISTRY["sentinel"]
    n = int(days * DAY / step)
    t = [1.7e9 + step * i for i in range(n)]

    def alarms(flags: np.ndarray) -> int:
        return sum(noise_alarms.alarm_starts([t[i] for i in np.flatnonzero(flags)]))

    base = 0
    added: dict[tuple[str, str, float, float], Counter[str]] = {row: Counter() for row in SERVER_ROWS}
    corroborated_added: dict[tuple, Counter[str]] = {row: Counter() for row in SERVER_CORROBORATED}
    for family in noise_alarms.SERVER:
        for seed in range(per_family):
            x = np.asarray(noise_alarms.series(family, n, step, f"{family}/{seed}"), dtype=float)
            det, why = cls(**BEFORE), np.zeros(n, dtype=int)
            default = np.zeros(n, dtype=bool)
            for i, (v, u) in enumerate(zip(x.tolist(), t)):
                default[i] = det.process(v, u) >= cls.default_threshold
                why[i] = det._why
            base += alarms(default)
            views = {v: f(x, t) for v, f in VIEWS.items()}
            lone = _lone(x, t, "1f")(10.0)
            for kinds, gate, g, both, with_lone in SERVER_CORROBORATED:
                flags = corroborated(default, t, why, views, lone if with_lone else None, kinds, gate, g, both)
                corroborated_added[kinds, gate, g, both, with_lone][family] += alarms(flags) - alarms(default)
            for row in SERVER_ROWS:
                name, p, k, lasting = row
                union = default | flagged(SCORES[name](x, t, p), t, k, lasting, quiet(p))
                added[row][family] += alarms(union) - alarms(default)
    series_days = per_family * days
    total = series_days * len(noise_alarms.SERVER)
    print(f"quiet server (noise_alarms --families server), one sample every {step} s for {days:g} days, "
          f"{per_family} series a family: the default's alarms {base}, {base / total:.3f} per series-day; "
          "what each row adds, per series-day, in all and in each family it adds to")
    for row, c in added.items():
        label = " ".join(f"{v:g}" if isinstance(v, float) else v for v in (*row[:3], row[3] / 3600)) + " h"
        print(f"  {label:<24} +{c.total()}, {c.total() / total:.3f}  "
              + ", ".join(f"{f} {k / series_days:.3f}" for f, k in sorted(c.items()) if k))
    for (kinds, gate, g, both, with_lone), c in corroborated_added.items():
        label = (f"{kinds} {'|'.join(gate)} >= {g:g} | " + (f"P 3 & {both[0]} {both[1]:g}" if both else "none")
                 + f" | lone {'yes' if with_lone else 'no'}")
        print(f"  {label:<44} {c.total():+d}, {c.total() / total:+.3f}  "
              + ", ".join(f"{f} {k / series_days:+.3f}" for f, k in sorted(c.items()) if k))


def per_sample(c: Corpus, *record: Callable[[Any], float]) -> list[np.ndarray]:
    """The default detector run over each file of ``c`` (its flags checked to be ``run_corpus``'s): per file, an
    array of ``record``'s values of the detector after each sample (a row a sample, a column a function)."""
    cls, out = REGISTRY["sentinel"], []
    for d, (x, t) in zip(c.default, c.series, strict=True):
        det = cls(**BEFORE)
        values, flags = np.zeros((len(x), len(record))), np.zeros(len(x), dtype=bool)
        for i, (v, u) in enumerate(zip(x.tolist(), t)):
            flags[i] = det.process(v, u) >= cls.default_threshold
            values[i] = [f(det) for f in record]
        if not np.array_equal(flags, d):
            raise AssertionError("the detector's defaults are not the default config's")
        out.append(values)
    return out


def reasons(c: Corpus) -> list[np.ndarray]:
    """The evidence (``_why`` code) of each of the default detector's scores, per file."""
    return [values[:, 0].astype(int) for values in per_sample(c, lambda det: det._why)]


#: The ``_why`` codes (``riverguard.detectors.steps``) of a time-of-day extreme, of one and a new extreme, and all.
GATED = {"hour": (3,), "hour+extreme": (3, 4), "all": tuple(range(1, 10))}
VIEWS = {"P": lambda x, t: peak_scores(x, t, 14), "M": lambda x, t: mult_scores(x, t, 7 * DAY),
         "S7": lambda x, t: seasonal_scores(x, t, 7 * DAY)}
#: The second view of the candidate that needs two, and its threshold (``P`` at 3 being the first).
BOTH = (None, ("M", 2.0), ("M", 3.0), ("S7", 3.0))


def corroborated(default: np.ndarray, t: Sequence[float], why: np.ndarray, views: dict[str, np.ndarray],
                 lone: np.ndarray | None, kinds: str | None, gate: Sequence[str], g: float,
                 both: tuple[str, float] | None) -> np.ndarray:
    """One series' flags for a row of ``--corroborate``: the default's flags of evidence ``GATED[kinds]`` kept where
    a view of ``gate`` is ``g`` or more in size; or'd with ``P`` at 3 and ``both``'s view at its threshold (lasting
    1 h, 24 h apart), and with ``lone``'s scores (``lone`` 1f) at 10."""
    flags = default
    if kinds:
        agree = np.logical_or.reduce([np.abs(views[v]) >= g for v in gate])
        flags = flags & (agree | ~np.isin(why, GATED[kinds]))
    if both:
        second, k = both
        flags = flags | flagged(np.minimum(views["P"] / 3.0, views[second] / k), t, 1.0, 3600.0, 24 * 3600.0)
    if lone is not None:
        flags = flags | flagged(lone, t, 10.0, 0.0)
    return flags


#: Rows of ``--corroborate`` measured on the quiet server too (``--server``): the held-out choices and the best
#: within both budgets (kinds, gate, size, both views, lone).
SERVER_CORROBORATED = (("hour", ("P", "S7", "M"), 3.0, None, False),
                       ("hour+extreme", ("P", "S7", "M"), 2.0, None, False),
                       ("all", ("P", "M"), 1.5, ("M", 2.0), True),
                       ("all", ("P", "S7", "M"), 2.0, ("M", 2.0), True))


def corroborate(corpora: dict[str, Corpus]) -> None:
    views = {(n, v): [f(x, t) for x, t in c.series] for n, c in corpora.items() for v, f in VIEWS.items()}
    lone = {n: [_lone(x, t, "1f")(10.0) for x, t in c.series] for n, c in corpora.items()}
    why = {n: reasons(c) for n, c in corpora.items()}
    print("the default's flags of one kind of evidence left out (what that kind catches and costs):")
    for code, name in enumerate(("surprise", "error", "hour", "extreme", "stuck", "spike", "shift", "spread",
                                 "burst"), start=1):
        print(f"  without {name:<9} | " + " | ".join(
            show(figures(c.files, [d & (w != code) for d, w in zip(c.default, why[n], strict=True)]))
            for n, c in corpora.items()), flush=True)
    rows = []
    grid = [(None, (), 0.0)] + [(kinds, gate, g) for kinds in GATED for gate in (("P", "M"), ("P", "S7", "M"))
                                for g in (1.5, 2.0, 3.0)]
    print("gate (kinds, views, size) | both views | lone | NAB | CMD")
    for (kinds, gate, g), both, with_lone in itertools.product(grid, BOTH, (False, True)):
        cells = []
        for n, c in corpora.items():
            union = [corroborated(d, t, why[n][i], {v: views[n, v][i] for v in VIEWS},
                                  lone[n][i] if with_lone else None, kinds, gate, g, both)
                     for i, (d, (_, t)) in enumerate(zip(c.default, c.series, strict=True))]
            cells.append(figures(c.files, union))
        label = (f"{kinds} {'|'.join(gate)} >= {g:g}" if kinds else "no gate") + " | " + \
            (f"P 3 & {both[0]} {both[1]:g}" if both else "none") + f" | {'yes' if with_lone else 'no'}"
        within = [cell.false_alarms <= BUDGET[n] * cell.days for cell, n in zip(cells, corpora)]
        rows.append((label, cells, within))
        print(f"  {label:<44} | " + " | ".join(map(show, cells)) + (" (both budgets)" if all(within) else ""),
              flush=True)
    print("held out: the best row on one corpus within its budget, and what it gives on the other")
    for j, name in enumerate(corpora):
        label, cells, _ = max((r for r in rows if r[2][j]), key=lambda r: r[1][j].standard)
        print(f"  tuned on {name.upper()}: {label} | " + " | ".join(map(show, cells)))
    label, cells, _ = max((r for r in rows if all(r[2]) and r[1][0].standard >= 74.0), key=lambda r: r[1][1].standard)
    print(f"  best CMD within both budgets, NAB at 74 or more: {label} | " + " | ".join(map(show, cells)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.evidence_union",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted({c.name for c in CANDIDATES}),
                        help="one candidate's rows, and the pairs with it")
    parser.add_argument("--server", action="store_true",
                        help="instead, the alarms that SERVER_ROWS and SERVER_CORROBORATED add on the quiet "
                             "server")
    parser.add_argument("--corroborate", action="store_true",
                        help="instead, the default's flags kept where a second view agrees (see above)")
    args = parser.parse_args(argv)
    if args.server:
        server()
        return 0
    corpora = {"nab": load("nab", "RIVERGUARD_NAB"), "cmd": load("cmd", "RIVERGUARD_CMD")}
    if args.corroborate:
        corroborate(corpora)
        return 0
    print("candidate param         k    lasting | NAB: standard, events caught, false alarms | CMD: the same")
    print("default alone                    | "
          + " | ".join(show(figures(c.files, c.default)) for c in corpora.values()), flush=True)
    for cand in CANDIDATES:
        if args.only and cand.name != args.only:
            continue
        best: dict[str, tuple[tuple[float, int], str, dict[str, list[np.ndarray]]]] = {}  # by FEATURED
        for p in cand.values:
            made = {name: [cand.scores(x, t, p) for x, t in c.series] for name, c in corpora.items()}
            for k, lasting in itertools.product(cand.thresholds, cand.lasting):
                union, cells = {}, []
                for name, c in corpora.items():
                    union[name] = [d | flagged(s, t, k, lasting, quiet(p))
                                   for d, s, (_, t) in zip(c.default, made[name], c.series, strict=True)]
                    cells.append(figures(c.files, union[name]))
                label = f"{cand.name:<9} {cand.param} {p:<8} {k:<4g} {lasting / 3600:g} h"
                print(f"{label} | " + " | ".join(map(show, cells)), flush=True)
                within = [cell.false_alarms <= BUDGET[n] * cell.days for cell, n in zip(cells, corpora)]
                rank = (cells[1].standard, -cells[0].false_alarms - cells[1].false_alarms)  # then fewer false alarms
                for kind, ok in zip(FEATURED, (True, within[0], all(within))):
                    if ok and (kind not in best or rank > best[kind][0]):
                        best[kind] = (rank, label, union)
        shown = set()
        for kind, (_, label, union) in best.items():
            if label not in shown:
                shown.add(label)
                print(f"  best CMD score{kind}, {' '.join(label.split())}: "
                      + " | ".join(f"{n.upper()}: {difference(c, union[n])}" for n, c in corpora.items()), flush=True)
    pairs(corpora, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
