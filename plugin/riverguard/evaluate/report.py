"""Score a run (or published reference outputs) per profile and category; tables and JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import nab
from .corpus import NabFile

__all__ = ["evaluate_scores", "format_tables"]


def _summary(prepared: Sequence[nab.ScoredFile], files: Sequence[NabFile], detections: Sequence[np.ndarray],
             profile: nab.Profile) -> dict[str, Any]:
    per_file = nab.score_corpus(prepared, detections, profile)
    by_cat: dict[str, nab.FileScore] = {}
    for f, s in zip(files, per_file, strict=True):
        by_cat[f.category] = by_cat[f.category] + s if f.category in by_cat else s
    total = sum(per_file[1:], per_file[0])

    def entry(s: nab.FileScore) -> dict[str, Any]:
        return {
            "score": round(nab.normalise(s.raw, s.windows, profile), 4) if s.windows else None,
            "raw": round(s.raw, 6),
            "windows": s.windows,
            "hits": s.hits,
            "false_positives": s.false_positives,
        }

    out = entry(total)
    out["categories"] = {cat: entry(s) for cat, s in sorted(by_cat.items())}
    return out


def evaluate_scores(
    files: Sequence[NabFile],
    scores: Sequence[np.ndarray],
    flags: Sequence[np.ndarray] | None,
    profiles: Sequence[str],
) -> dict[str, Any]:
    """Per profile: the score with the given flags ("configured") and with the swept threshold."""
    prepared = [nab.prepare(f.labels()) for f in files]
    result: dict[str, Any] = {}
    for name in profiles:
        profile = nab.PROFILES[name]
        entry: dict[str, Any] = {"weights": {"tp": profile.tp, "fn": profile.fn, "fp": profile.fp}}
        if flags is not None:
            entry["configured"] = _summary(prepared, files, flags, profile)
        best = nab.sweep(prepared, scores, profile)
        swept = _summary(prepared, files, [s >= best.threshold for s in scores], profile)
        # The sweep and the per-file scorer must agree; anything else is a bug here.
        assert math.isclose(swept["raw"], best.raw, abs_tol=1e-6), (swept["raw"], best.raw)
        swept["threshold"] = None if math.isinf(best.threshold) else best.threshold
        swept["candidates"] = len(best.thresholds)
        entry["swept"] = swept
        result[name] = entry
    return result


def _fmt_score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_tables(report: dict[str, Any]) -> str:
    """The human-readable tables of :func:`evaluate_scores` output wrapped in a report."""
    lines = []
    head = report.get("title")
    if head:
        lines.append(head)
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
        width = 24
        lines.append((f"{'':<{width}}" + "".join(f"  {label:<30}" for label, _ in cols)).rstrip())
        lines.append(
            (f"{'category':<{width}}" + "".join(f"  {'score':>7} {'windows':>9} {'FP':>6}      " for _ in cols)).rstrip()
        )
        cats = list(swept["categories"])
        for cat in [*cats, None]:
            row = f"{cat or 'corpus':<{width}}"
            for _, data in cols:
                d = data if cat is None else data["categories"][cat]
                hits = f"{d['hits']}/{d['windows']}"
                row += f"  {_fmt_score(d['score']):>7} {hits:>9} {d['false_positives']:>6}      "
            lines.append(row.rstrip())
    return "\n".join(lines) + "\n"
