"""``python -m tests.benchmarks.nab_tuning``: does tuning the default detector carry over to data it has not seen?

The cross-corpus study (issue 12): a seeded random local search (one to three
parameters nudged at a time, a candidate kept when the standard swept score
improves) tunes the default detector's parameters on one corpus, the NAB
development files (``shared/nab``) or Microsoft's Cloud Monitoring Dataset
(``shared/cmd``); the tuned parameters are then scored on the other corpus,
which the search never saw. Both ways. If tuning found something real, the
other corpus improves as well; if it fits the first corpus, the other one
gets worse. ``--halves`` adds the older within-corpus study: each corpus split
in two halves (alternate files within each category), tuned on one half and
checked on the other. ``--joint`` runs only a feasibility study instead: how
high CMD gets at the shipped threshold among parameter sets that keep NAB at
issue 12's target and both corpora within its false-alarm budgets (it sees
both corpora: a bound, not a tuning to ship).

Each line gives, for the defaults and the tuned parameters, the standard swept
score / the standard score at the shipped threshold / event-wise F1 and false
alarms per series-day at the shipped threshold (``riverguard evaluate``'s
figures).

The detector is called directly (no line protocol) for speed; the scores are
rounded as the engine writes them, with the same warm-up, and the script first
checks that the defaults give the same corpus scores as ``riverguard
evaluate``. About 10 minutes with the compiled detector (300 steps per
search). Deterministic: the same seed gives the same table.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from riverguard.config import Rule
from riverguard.detectors import REGISTRY
from riverguard.engine import format_score
from riverguard.evaluate import events, nab
from riverguard.evaluate.corpus import NabFile, default_corpus_path, default_nab_path, load_corpus

DETECTOR = "sentinel"
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
#: parameter: (lowest, highest); steps are relative (x 0.7 to 1.4) or, for scores and margins, +-0.02 to 0.1
CONTINUOUS = {
    "gain": (1.0, 20.0), "prior": (0.005, 2.0), "fading": (0.005, 0.5), "z_scale": (1.0, 12.0),
    "short": (0.02, 1.0), "long": (1e-4, 0.01), "min_sd": (0.005, 0.3), "pmin": (1e-16, 1e-9),
    "margin": (0.0, 0.3), "damp": (0.0, 0.99), "extreme_sd": (0.5, 6.0), "repeat_decay": (1e-4, 0.01),
    "value_long": (2e-4, 0.02), "day_margin": (0.02, 0.3), "day_score": (0.5, 1.0),
    "spike": (4.0, 40.0), "spike_time": (60.0, 7200.0), "spike_record": (0.1, 1.0),
    "shift": (2.0, 30.0), "shift_samples": (2.0, 100.0), "shift_record": (0.0, 1.0), "spread": (2.0, 30.0),
    "peak": (1.5, 12.0), "rise": (0.5, 8.0), "agree": (0.5, 6.0), "lone": (2.0, 30.0),
}  # fmt: skip
ADDITIVE = {"margin", "damp", "day_score"}
INTEGER = {"bins": (4, 15), "suppress": (100, 900), "learn": (60, 500), "day_visits": (2, 20)}


def halves(files: Sequence[NabFile]) -> tuple[list[int], list[int]]:
    """Alternate files within each category (sorted by key): two halves with every category in both."""
    by_cat: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        by_cat.setdefault(f.category, []).append(i)
    a: list[int] = []
    b: list[int] = []
    for _, idx in sorted(by_cat.items()):
        for j, i in enumerate(sorted(idx, key=lambda k: files[k].key)):
            (a if j % 2 == 0 else b).append(i)
    return a, b


class Corpus:
    """The files, their prepared labels, and scoring of a parameter set on a subset of them."""

    def __init__(self, files: list[NabFile]) -> None:
        self.files = files
        self.prepared = [nab.prepare(f.labels()) for f in files]
        self.values = [[float(v) for v in f.values] for f in files]
        self.times = [(f.timestamps / 1e9).tolist() for f in files]
        self.cls = REGISTRY[DETECTOR]
        self.warmup = Rule(0, "study", detector=DETECTOR).held_back  # the samples the engine holds back

    def scores(self, params: dict[str, Any], idx: Sequence[int]) -> list[np.ndarray]:
        out = []
        for i in idx:
            det = self.cls(**params)
            process = det.process
            s = np.zeros(len(self.values[i]))
            for k, (x, t) in enumerate(zip(self.values[i], self.times[i], strict=True)):
                score = process(x, t)
                if k >= self.warmup:  # the engine writes 0.0 during the warm-up
                    s[k] = float(format_score(score))
            out.append(s)
        return out

    def swept(self, params: dict[str, Any], idx: Sequence[int]) -> dict[str, float]:
        scores = self.scores(params, idx)
        prepared = [self.prepared[i] for i in idx]
        return {p: round(nab.sweep(prepared, scores, nab.PROFILES[p]).score, 2) for p in PROFILES}

    def figures(self, params: dict[str, Any], idx: Sequence[int]) -> dict[str, float | None]:
        """Standard swept, standard at the shipped threshold, event-wise F1 and false alarms per series-day there."""
        scores = self.scores(params, idx)
        prepared = [self.prepared[i] for i in idx]
        standard = nab.PROFILES["standard"]
        threshold = self.cls.default_threshold
        flags = [s >= threshold for s in scores]
        at = nab.score_corpus(prepared, flags, standard)
        total = sum(at[1:], at[0])
        ev = events.EventScore()
        for i, f in zip(idx, flags, strict=True):
            ev = ev + events.score_series(self.files[i].timestamps, self.files[i].incidents(), f)
        summary = events.summary(ev)
        swept = nab.sweep(prepared, scores, standard).score
        return {
            "swept": round(swept, 2),
            "swept_exact": swept,  # (the check against riverguard evaluate, which carries 4 decimals)
            "shipped": round(nab.normalise(total.raw, total.windows, standard), 2),
            "f1": summary["f1"],
            "fa_day": summary["false_alarms_per_day"],
        }


def nudge(params: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One to three parameters moved one step from ``params`` (defaults where unset)."""
    defaults = REGISTRY[DETECTOR].defaults()
    cand = dict(params)
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        name = rng.choice(sorted(CONTINUOUS) + sorted(INTEGER))
        value = cand.get(name, defaults[name])
        if name in INTEGER:
            lo, hi = INTEGER[name]
            step = round(value * rng.choice([0.8, 0.9, 1.1, 1.25])) if value > 20 else value + rng.choice([-2, -1, 1, 2])
            cand[name] = int(min(hi, max(lo, step)))
            continue
        lo, hi = CONTINUOUS[name]
        if name == "pmin":
            new = value * rng.choice([0.1, 0.3, 3.0, 10.0])
        elif name in ADDITIVE:
            new = value + rng.choice([-0.1, -0.05, -0.02, 0.02, 0.05, 0.1])
        else:
            new = value * rng.choice([0.7, 0.8, 0.9, 1.1, 1.25, 1.4])
        cand[name] = float(f"{min(hi, max(lo, new)):.12g}")  # 12 significant digits: short, readable values
    return cand


def search(
    corpus: Corpus, idx: Sequence[int], start: dict[str, float], iterations: int, seed: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """Random local search from the defaults (scoring ``start`` on the files ``idx``) on the standard
    swept score; the best parameters and their scores."""
    rng = random.Random(seed)
    best: dict[str, Any] = {}
    best_scores = start
    for _ in range(iterations):
        cand = nudge(best, rng)
        try:
            got = corpus.swept(cand, idx)
        except (ValueError, OverflowError):  # a combination the detector refuses
            continue
        if got["standard"] > best_scores["standard"]:
            best, best_scores = cand, got
    return best, best_scores


#: Issue 12's targets for one parameter set at the shipped threshold: NAB standard at least 74, CMD at least 60,
#: false alarms per series-day no higher than the default's when the issue was filed (0.074 NAB, 0.043 CMD).
TARGETS = {"nab": 74.0, "cmd": 60.0}
BUDGETS = {"nab": 0.074, "cmd": 0.043}


def joint(corpora: dict[str, Corpus], iterations: int, seed: int) -> tuple[dict[str, Any], dict[str, dict]]:
    """The feasibility study (``--joint``): random local search for the highest CMD standard score at the shipped
    threshold among parameter sets that keep NAB at its target and both corpora within their false-alarm
    budgets (:data:`TARGETS`, :data:`BUDGETS`). It sees both corpora, so what it finds is no tuning to ship
    (nothing is left to check it on); it asks whether the detector's parameters can meet issue 12's targets
    together at all. The best parameters and their figures on both corpora."""
    rng = random.Random(seed)
    every = {name: list(range(len(c.files))) for name, c in corpora.items()}

    def figures(params: dict[str, Any]) -> dict[str, dict]:
        return {name: corpora[name].figures(params, every[name]) for name in ("nab", "cmd")}

    def feasible(f: dict[str, dict]) -> bool:
        return f["nab"]["shipped"] >= TARGETS["nab"] and all(
            f[name]["fa_day"] is not None and f[name]["fa_day"] <= BUDGETS[name] for name in BUDGETS
        )

    best: dict[str, Any] = {}
    best_figures = figures(best)
    for _ in range(iterations):
        cand = nudge(best, rng)
        try:
            got = figures(cand)
        except (ValueError, OverflowError):  # a combination the detector refuses
            continue
        if feasible(got) and got["cmd"]["shipped"] > best_figures["cmd"]["shipped"]:
            best, best_figures = cand, got
    return best, best_figures


def engine_score(root: str) -> float:
    """The default detector's standard swept score from ``riverguard evaluate`` (through the engine)."""
    out = subprocess.run(
        [sys.executable, "-m", "riverguard", "evaluate", "--nab", str(root), "--detector", DETECTOR, "--json",
         "--profile", "standard", "--log-level", "error"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(json.loads(out.stdout)["profiles"]["standard"]["swept"]["score"])


def fmt(f: dict[str, float | None]) -> str:
    """swept / shipped, F1, FA per series-day."""
    f1 = "-" if f["f1"] is None else f"{f['f1']:.3f}"
    fa = "-" if f["fa_day"] is None else f"{f['fa_day']:.3f}"
    return f"{f['swept']:.2f}/{f['shipped']:.2f} F1 {f1} FA/d {fa}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.nab_tuning", description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=300, help="search steps per run (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="search seed (default 1)")
    parser.add_argument("--nab", default=None, help="the NAB corpus (default: as riverguard evaluate finds it)")
    parser.add_argument("--cmd", default=None, help="the second corpus (default: shared/cmd, found the same way)")
    parser.add_argument("--halves", action="store_true", help="also tune on half of each corpus, check on the other")
    parser.add_argument("--joint", action="store_true",
                        help="only the feasibility study: the best CMD score within issue 12's NAB target and budgets")
    args = parser.parse_args(argv)
    roots = {"nab": args.nab or default_nab_path(), "cmd": args.cmd or default_corpus_path("cmd", "RIVERGUARD_CMD")}
    corpora = {name: Corpus(load_corpus(root)) for name, root in roots.items()}
    parts: dict[str, tuple[str, list[int]]] = {}
    for name, corpus in corpora.items():
        parts[name] = (name, list(range(len(corpus.files))))
        if args.halves:
            a, b = halves(corpus.files)
            parts[f"{name}/A"], parts[f"{name}/B"] = (name, a), (name, b)
    defaults = {part: corpora[name].figures({}, idx) for part, (name, idx) in parts.items()}
    for name, root in roots.items():
        # at evaluate's precision: 47.415016 is 47.42 here and 47.415 there (printed 47.41)
        direct, through_engine = round(defaults[name]["swept_exact"], 4), engine_score(str(root))
        print(f"defaults on {name} ({len(corpora[name].files)} files): direct {direct:.4f}, "
              f"riverguard evaluate {through_engine:.4f}")
        if abs(direct - through_engine) > 1e-6:
            print(f"E! the direct path does not reproduce riverguard evaluate on {name}", file=sys.stderr)
            return 1
    print(f"{args.iterations} search steps, seed {args.seed}; figures: standard swept/at the shipped threshold, "
          "event-wise F1 and false alarms per series-day at the shipped threshold")
    if args.joint:
        params, got = joint(corpora, args.iterations, args.seed)
        print(f"joint (CMD at the shipped threshold; NAB >= {TARGETS['nab']:g}, FA/d <= {BUDGETS['nab']} NAB, "
              f"{BUDGETS['cmd']} CMD): {json.dumps(params, sort_keys=True)}")
        for name in ("nab", "cmd"):
            print(f"  {name:6s} {fmt(defaults[name])}  ->  {fmt(got[name])}", flush=True)
        return 0
    plan = [("nab", "cmd"), ("cmd", "nab")]
    if args.halves:
        plan += [("nab/A", "nab/B"), ("nab/B", "nab/A"), ("cmd/A", "cmd/B"), ("cmd/B", "cmd/A")]
    for tuned_on, held_out in plan:
        name, idx = parts[tuned_on]
        start = {p: v for p, v in corpora[name].swept({}, idx).items()}
        params, _ = search(corpora[name], idx, start, args.iterations, args.seed)
        other_name, other_idx = parts[held_out]
        tuned = corpora[name].figures(params, idx)
        held = corpora[other_name].figures(params, other_idx)
        print(f"tuned on {tuned_on}: {json.dumps(params, sort_keys=True)}")
        print(f"  {tuned_on:6s} (tuned)    {fmt(defaults[tuned_on])}  ->  {fmt(tuned)}")
        print(f"  {held_out:6s} (held out) {fmt(defaults[held_out])}  ->  {fmt(held)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
