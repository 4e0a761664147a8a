"""``python -m tests.benchmarks.nab_tuning [--iterations N] [--seed S]``: does tuning sentinel on NAB generalise?

A held-out check of parameter tuning, the question behind issue 4's swept
target. The 41 files are split in two halves (alternate files within each
category, so both halves hold every category). A seeded random local search
(one to three parameters nudged at a time, a candidate kept when the standard
swept score improves) tunes the default detector's parameters on one half; the
tuned parameters are then scored on the other half, which the search never saw.
If tuning found something real, the held-out half improves as well; if it fits
the noise of the files it was tuned on, the held-out half gets worse. The same
search is also run on the whole corpus, which is how a number above the
defaults can be had without generalising.

The detector is called directly (no line protocol) for speed; the scores are
rounded as the engine writes them, with the same warm-up, and the script first
checks that the defaults give the same corpus score as ``riverguard evaluate``.
It takes about 5 minutes with the compiled twin. Deterministic: the same seed
gives the same table.
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

from riverguard.detectors import REGISTRY
from riverguard.engine import format_score
from riverguard.evaluate import nab
from riverguard.evaluate.corpus import NabFile, default_nab_path, load_corpus

DETECTOR = "sentinel"
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
#: parameter: (lowest, highest); steps are relative (x 0.7 to 1.4) or, for scores and margins, +-0.02 to 0.1
CONTINUOUS = {
    "gain": (1.0, 20.0), "prior": (0.005, 2.0), "fading": (0.005, 0.5), "z_scale": (1.0, 12.0),
    "short": (0.02, 1.0), "long": (1e-4, 0.01), "min_sd": (0.005, 0.3), "pmin": (1e-16, 1e-9),
    "margin": (0.0, 0.3), "damp": (0.0, 0.99), "extreme_sd": (0.5, 6.0), "repeat_decay": (1e-4, 0.01),
    "value_long": (2e-4, 0.02), "day_margin": (0.02, 0.3), "day_score": (0.5, 1.0),
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
        self.warmup = self.cls.default_warmup

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


def engine_score() -> float:
    """The default detector's standard swept score from ``riverguard evaluate`` (through the engine)."""
    out = subprocess.run(
        [sys.executable, "-m", "riverguard", "evaluate", "--detector", DETECTOR, "--json", "--profile", "standard",
         "--log-level", "error"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(json.loads(out.stdout)["profiles"]["standard"]["swept"]["score"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.nab_tuning", description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=300, help="search steps per run (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="search seed (default 1)")
    args = parser.parse_args(argv)
    corpus = Corpus(load_corpus(default_nab_path()))
    a, b = halves(corpus.files)
    parts = {"A": a, "B": b, "all": list(range(len(corpus.files)))}
    defaults = {name: corpus.swept({}, idx) for name, idx in parts.items()}
    direct = defaults["all"]
    through_engine = engine_score()
    print(f"defaults, whole corpus: direct {direct['standard']:.2f}, riverguard evaluate {through_engine:.2f}")
    if abs(direct["standard"] - through_engine) > 0.005:
        print("E! the direct path does not reproduce riverguard evaluate", file=sys.stderr)
        return 1
    print(f"halves: A {len(a)} files, B {len(b)} files; {args.iterations} search steps, seed {args.seed}")
    print("tuned on | tuned params                              | score on tuned half        | score on the other half")

    def fmt(scores: dict[str, float]) -> str:
        return "/".join(f"{scores[p]:.2f}" for p in PROFILES)

    for name, other in (("A", "B"), ("B", "A"), ("all", None)):
        params, tuned = search(corpus, parts[name], defaults[name], args.iterations, args.seed)
        held = "-" if other is None else f"{fmt(defaults[other])} -> {fmt(corpus.swept(params, parts[other]))}"
        print(f"{name:8s} | {json.dumps(params, sort_keys=True)}")
        print(f"{'':8s} | {'':41s} | {fmt(defaults[name])} -> {fmt(tuned)} | {held}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
