"""Event-wise figures: incidents caught, false alarms, delay, in the series' own time.

NAB's profiles reward an early detection inside a window and charge each
flagged row outside one; an operator counts differently: was each incident
noticed, how many alerts were raised for nothing, how long it took. The rules
(also in docs/detection.md, "Event-wise figures"):

- **Event**: a run of labelled rows (a NAB corpus: one anomaly window), the
  span from its first to its last timestamp.
- **Tolerance** ``T``: :data:`TOLERANCE` sample intervals, the interval being
  the series' median spacing of samples (5 minutes for a 1-minute series,
  5 hours for an hourly one).
- **Caught**: an event is caught when a flag falls inside it or within ``T``
  after its end; the **delay** is the time from the event's start to its first
  such flag. Other flags in the same span are part of the same detection.
- **False alarms**: flags outside every event and its tolerance form runs
  (consecutive flagged samples); a run counts one false alarm, plus one more
  for each further ``T`` it lasts: ``1 + floor((last - first) / T)``.
- **Probation**: as in NAB, the first ``min(floor(0.15 * rows), 750)`` samples
  are not judged: flags there are ignored, and so are events that end there
  (both are counted apart, ``probation_flags`` and ``probation_events``).
- **recall** = caught / events, **precision** = caught / (caught + false
  alarms), **F1** their harmonic mean, **false alarms per series-day** = false
  alarms / days of judged time summed over the series, **median delay** over
  the caught events.

>>> minute = 60 * 10**9
>>> ts = np.arange(1000) * minute
>>> flags = np.zeros(1000, dtype=bool)
>>> flags[[300, 302, 500, 800, 801, 802, 803, 804, 805]] = True
>>> s = score_series(ts, [(298 * minute, 301 * minute), (600 * minute, 610 * minute)], flags)
>>> s.events, s.caught, s.false_alarms, s.delays
(2, 1, 3, [120.0])
>>> s.outcomes[0]
EventOutcome(start=17880000000000, end=18060000000000, judged=True, first_flag=18000000000000)
>>> s.outcomes[1].first_flag is None
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..log import iso_ns
from .nab import probation_length

__all__ = ["TOLERANCE", "EventOutcome", "EventScore", "outcomes", "score_series", "summary"]

#: Sample intervals after an event in which a flag still catches it; also the stretch
#: of a run of flags that counts one more false alarm.
TOLERANCE = 5

_DAY_NS = 86400 * 10**9


class EventOutcome(NamedTuple):
    """One labelled event: its inclusive span (ns), whether it was judged (it ends after the probation), and
    the time of the first flag that caught it (None: missed, or not judged)."""

    start: int
    end: int
    judged: bool
    first_flag: int | None


@dataclass
class EventScore:
    """Event-wise counts for one series (or a sum of series)."""

    events: int = 0
    caught: int = 0
    false_alarms: int = 0
    days: float = 0.0  # judged time, in days
    delays: list[float] = field(default_factory=list)  # seconds, one per caught event
    probation_events: int = 0  # events that end in the probation: not judged
    probation_flags: int = 0  # flagged samples in the probation: not judged
    outcomes: list[EventOutcome] = field(default_factory=list)  # every event, in time order

    def __add__(self, other: EventScore) -> EventScore:
        return EventScore(
            self.events + other.events,
            self.caught + other.caught,
            self.false_alarms + other.false_alarms,
            self.days + other.days,
            self.delays + other.delays,
            self.probation_events + other.probation_events,
            self.probation_flags + other.probation_flags,
            self.outcomes + other.outcomes,
        )


def interval(timestamps: np.ndarray) -> int:
    """The series' median positive spacing of samples, in the timestamps' unit (1 when unknown).

    >>> interval(np.array([0, 60, 120, 120, 300]))
    60
    """
    steps = np.diff(np.asarray(timestamps, dtype=np.int64))
    steps = steps[steps > 0]
    return int(np.median(steps)) if len(steps) else 1


def score_series(
    timestamps: np.ndarray, events: Sequence[tuple[int, int]], flags: np.ndarray, tolerance: int = TOLERANCE
) -> EventScore:
    """Event-wise counts for one series: sample timestamps (ns, in order), inclusive event spans (ns), a flag per sample."""
    ts = np.asarray(timestamps, dtype=np.int64)
    flags = np.asarray(flags, dtype=bool)
    if flags.shape != ts.shape:
        raise ValueError(f"{len(flags)} flags for {len(ts)} samples")
    n = len(ts)
    probation = probation_length(n)
    spans = sorted((int(a), int(b)) for a, b in events)
    if probation >= n:  # no sample (probation_length(n) < n otherwise): nothing is judged
        return EventScore(probation_events=len(spans), outcomes=[EventOutcome(a, b, False, None) for a, b in spans])
    start_time = int(ts[probation])
    span = tolerance * interval(ts)
    counted = [end >= start_time for _, end in spans]
    starts = np.array([a for a, _ in spans], dtype=np.int64)
    first_flag: list[int | None] = [None] * len(spans)
    runs: list[list[int]] = []  # [first time, last time, last index] of each run of false-alarm flags
    for i in np.flatnonzero(flags[probation:]) + probation:
        t = int(ts[i])
        k = int(np.searchsorted(starts, t, side="right")) - 1  # the last event starting at or before t
        if k >= 0 and t <= spans[k][1] + span:
            if first_flag[k] is None:
                first_flag[k] = t
            continue
        if runs and runs[-1][2] == i - 1:
            runs[-1][1], runs[-1][2] = t, int(i)
        else:
            runs.append([t, t, int(i)])
    false_alarms = sum(1 + (last - first) // span for first, last, _ in runs) if span > 0 else len(runs)
    judged = [
        EventOutcome(start, end, ok, first if ok else None)
        for (start, end), first, ok in zip(spans, first_flag, counted, strict=True)
    ]
    delays = [d for d in map(_delay, judged) if d is not None]
    return EventScore(sum(counted), len(delays), int(false_alarms), (int(ts[-1]) - start_time) / _DAY_NS, delays,
                      len(spans) - sum(counted), int(flags[:probation].sum()), judged)


def _delay(o: EventOutcome) -> float | None:
    """Seconds from the event's start to the first flag that caught it (None: not caught)."""
    return None if o.first_flag is None else (o.first_flag - o.start) / 1e9


def outcomes(score: EventScore) -> list[dict[str, Any]]:
    """Each event of an :class:`EventScore` as plain data: its start and end (RFC 3339, UTC), whether it was
    judged and caught (None when not judged), the first flag that caught it and the delay (None when missed).

    >>> minute = 60 * 10**9
    >>> outcomes(EventScore(outcomes=[EventOutcome(0, minute, True, 2 * minute), EventOutcome(0, 0, False, None)]))
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'start': '1970-01-01T00:00:00Z', 'end': '1970-01-01T00:01:00Z', 'judged': True, 'caught': True,
      'first_flag': '1970-01-01T00:02:00Z', 'delay_s': 120.0},
     {'start': '1970-01-01T00:00:00Z', 'end': '1970-01-01T00:00:00Z', 'judged': False, 'caught': None,
      'first_flag': None, 'delay_s': None}]
    """
    return [
        {
            "start": iso_ns(o.start),
            "end": iso_ns(o.end),
            "judged": o.judged,
            "caught": (o.first_flag is not None) if o.judged else None,
            "first_flag": None if o.first_flag is None else iso_ns(o.first_flag),
            "delay_s": _delay(o),
        }
        for o in score.outcomes
    ]


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def summary(score: EventScore) -> dict[str, Any]:
    """The figures of an :class:`EventScore` as plain data (None where undefined)."""
    recall = _ratio(score.caught, score.events)
    precision = _ratio(score.caught, score.caught + score.false_alarms)
    f1 = None
    if recall is not None and precision is not None:
        f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    per_day = _ratio(score.false_alarms, score.days)
    delay = float(np.median(score.delays)) if score.delays else None

    def rounded(x: float | None, digits: int = 4) -> float | None:
        return None if x is None or math.isnan(x) else round(x, digits)

    return {
        "events": score.events,
        "caught": score.caught,
        "false_alarms": score.false_alarms,
        "recall": rounded(recall),
        "precision": rounded(precision),
        "f1": rounded(f1),
        "series_days": rounded(score.days, 3),
        "false_alarms_per_day": rounded(per_day),
        "median_delay_s": rounded(delay, 3),
        "probation_events": score.probation_events,
        "probation_flags": score.probation_flags,
    }
