"""Score a run (or published reference outputs) per profile and category; tables and JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..log import plural
from . import events, nab
from .corpus import NabFile

__all__ = ["evaluate_events", "evaluate_scores", "format_duration", "format_tables"]


def _entry(s: nab.FileScore, profile: nab.Profile) -> dict[str, Any]:
    return {
        "score": round(nab.normalise(s.raw, s.windows, profile), 4) if s.windows else None,
        "raw": round(s.raw, 6),
        "windows": s.windows,
        "hits": s.hits,
        "false_positives": s.false_positives,
    }


def _summary(prepared: Sequence[nab.ScoredFile], files: Sequence[NabFile], detections: Sequence[np.ndarray],
             profile: nab.Profile) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The corpus and per-category figures, and each file's."""
    per_file = nab.score_corpus(prepared, detections, profile)
    by_cat: dict[str, nab.FileScore] = {}
    for f, s in zip(files, per_file, strict=True):
        by_cat[f.category] = by_cat[f.category] + s if f.category in by_cat else s
    total = sum(per_file[1:], per_file[0])
    out = _entry(total, profile)
    out["categories"] = {cat: _entry(s, profile) for cat, s in sorted(by_cat.items())}
    return out, [_entry(s, profile) for s in per_file]


def evaluate_scores(
    files: Sequence[NabFile],
    scores: Sequence[np.ndarray],
    flags: Sequence[np.ndarray] | None,
    profiles: Sequence[str],
    per_file: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per profile: the score with the given flags ("configured") and with the swept threshold.

    With ``per_file`` (one dict per file), each file's figures are added to it
    under ``"nab"`` -> profile -> ``"configured"``/``"swept"``.
    """
    prepared = [nab.prepare(f.labels()) for f in files]
    result: dict[str, Any] = {}
    for name in profiles:
        profile = nab.PROFILES[name]
        entry: dict[str, Any] = {"weights": {"tp": profile.tp, "fn": profile.fn, "fp": profile.fp}}
        files_entry: dict[str, list[dict[str, Any]]] = {}
        if flags is not None:
            entry["configured"], files_entry["configured"] = _summary(prepared, files, flags, profile)
        best = nab.sweep(prepared, scores, profile)
        swept, files_entry["swept"] = _summary(prepared, files, [s >= best.threshold for s in scores], profile)
        # The sweep and the per-file scorer must agree; anything else is a bug here.
        assert math.isclose(swept["raw"], best.raw, abs_tol=1e-6), (swept["raw"], best.raw)
        swept["threshold"] = None if math.isinf(best.threshold) else best.threshold
        swept["candidates"] = len(best.thresholds)
        entry["swept"] = swept
        result[name] = entry
        if per_file is not None:
            for i, target in enumerate(per_file):
                target.setdefault("nab", {})[name] = {key: rows[i] for key, rows in files_entry.items()}
    return result


def evaluate_events(
    files: Sequence[NabFile], flags: Sequence[np.ndarray], per_file: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Event-wise figures (:mod:`.events`) for the corpus and per category; each file's into ``per_file``, with
    its probation's length in samples and each of its events (:func:`.events.outcomes`) under ``"detail"``."""
    total = events.EventScore()
    by_cat: dict[str, events.EventScore] = {}
    for i, (f, flagged) in enumerate(zip(files, flags, strict=True)):
        s = events.score_series(f.timestamps, f.incidents(), flagged)
        total = total + s
        by_cat[f.category] = by_cat.get(f.category, events.EventScore()) + s
        if per_file is not None:
            per_file[i]["events"] = {**events.summary(s), "probation_samples": nab.probation_length(f.rows),
                                     "detail": events.outcomes(s)}
    out = events.summary(total)
    out["tolerance_intervals"] = events.TOLERANCE
    out["categories"] = {cat: events.summary(s) for cat, s in sorted(by_cat.items())}
    return out


def _fmt_score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_duration(seconds: float | None) -> str:
    """A delay for a table.

    >>> format_duration(None), format_duration(42.0), format_duration(5400.0), format_duration(2 * 86400.0)
    ('-', '42 s', '90 min', '2.0 d')
    """
    if seconds is None:
        return "-"
    if abs(seconds) < 120:
        return f"{seconds:.0f} s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.0f} min"
    if abs(seconds) < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _event_table(report: dict[str, Any], width: int) -> list[str]:
    ev = report["events"]
    th = ev.get("threshold")
    basis = "configured threshold" if report.get("source") == "riverguard" else "standard profile's swept threshold"
    lines = [
        "",
        f"event-wise ({basis}{'' if th is None else f' {th:g}'}; caught: a flag inside the event or within "
        f"{ev['tolerance_intervals']} sample intervals after it)",
        f"(false alarms: runs of flags outside events and tolerance, one per run and per further "
        f"{ev['tolerance_intervals']} intervals it lasts; NAB's FP: flagged samples outside its wider windows)",
    ]
    head = ("events", "caught", "recall", "false alarms", "precision", "F1", "FA/series-day", "median delay")
    lines.append((f"{'category':<{width}}" + "".join(f"  {h:>{max(len(h), 7)}}" for h in head)).rstrip())
    for cat in [*ev["categories"], None]:
        d = ev if cat is None else ev["categories"][cat]
        cells = (
            str(d["events"]), str(d["caught"]), _fmt_ratio(d["recall"]), str(d["false_alarms"]),
            _fmt_ratio(d["precision"]), _fmt_ratio(d["f1"]), _fmt_ratio(d["false_alarms_per_day"]),
            format_duration(d["median_delay_s"]),
        )  # fmt: skip
        lines.append(
            (f"{cat or 'corpus':<{width}}" + "".join(f"  {c:>{max(len(h), 7)}}" for h, c in zip(head, cells, strict=True))
             ).rstrip()
        )
    return lines


def _missed_list(report: dict[str, Any]) -> list[str]:
    """Each file's events that were missed or not judged (in the probation), one line each, from ``per_file``."""
    lines = ["", "events missed or not judged (start .. end)"]
    for f in report["per_file"]:
        ev = f["events"]
        rows = [
            ("missed    " if o["judged"] else "not judged") + f"  {o['start']} .. {o['end']}"
            + ("" if o["judged"] else f"  (ends in the probation, the first {ev['probation_samples']} samples)")
            for o in ev["detail"] if not o["caught"]
        ]
        if rows:
            unjudged = sum(not o["judged"] for o in ev["detail"])
            lines.append(f"{f['file']}: {len(rows) - unjudged} of {plural(len(ev['detail']), 'event')} missed"
                         + (f", {unjudged} not judged" if unjudged else ""))
            lines.extend("  " + row for row in rows)
    if len(lines) == 2:
        lines.append("none")
    return lines


def format_tables(report: dict[str, Any], missed: bool = False) -> str:
    """The human-readable tables of :func:`evaluate_scores` (and :func:`evaluate_events`) output in a report;
    with ``missed``, then each file's events that were missed or not judged."""
    lines = []
    head = report.get("title")
    if head:
        lines.append(head)
    cats = set()
    for entry in report["profiles"].values():
        cats.update(entry["swept"]["categories"])
    cats.update(report.get("events", {}).get("categories", {}))
    width = max([24, *(len(c) + 1 for c in cats)])
    for name, entry in report["profiles"].items():
        w = entry["weights"]
        lines.append("")
        lines.append(f"profile {name} (tp {w['tp']:g}, fn {w['fn']:g}, fp {w['fp']:g})")
        swept = entry["swept"]
        configured = entry.get("configured")
        th = swept["threshold"]
        sweep_head = f"swept (threshold {'never' if th is None else f'{th:.6g}'})"
        cols = []
        if configured is not None:
            conf_th = report.get("configured_thresholds") or []
            label = "configured" + (
                f" (threshold {', '.join(f'{t:g}' for t in conf_th)})" if conf_th else ""
            )
            cols.append((label, configured))
        cols.append((sweep_head, swept))
        lines.append((f"{'':<{width}}" + "".join(f"  {label:<30}" for label, _ in cols)).rstrip())
        lines.append(
            (f"{'category':<{width}}" + "".join(f"  {'score':>7} {'windows':>9} {'FP':>6}      " for _ in cols)).rstrip()
        )
        for cat in [*swept["categories"], None]:
            row = f"{cat or 'corpus':<{width}}"
            for _, data in cols:
                d = data if cat is None else data["categories"][cat]
                hits = f"{d['hits']}/{d['windows']}"
                row += f"  {_fmt_score(d['score']):>7} {hits:>9} {d['false_positives']:>6}      "
            lines.append(row.rstrip())
    if "events" in report:
        lines.extend(_event_table(report, width))
    if missed:
        lines.extend(_missed_list(report))
    return "\n".join(lines) + "\n"
