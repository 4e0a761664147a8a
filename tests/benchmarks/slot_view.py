"""``python -m tests.benchmarks.slot_view``: the second view of ``evidence_union --corroborate`` taken from the time-of-day slots.

``evidence_union --corroborate`` keeps the default's time-of-day and
new-extreme flags only where a second view agrees; its best view, the value a
week before (``S7``), needs a week of values per series. The time-of-day step
already keeps, for each of its slots (an hour, weekdays and weekends apart),
the mean and variance of the values: a value's distance from its slot's mean
in the slot's standard deviations (``Zslot``, before the value is learned)
is a coarser view of the same thing, in no more memory. This script runs the
plain-Python build (``RIVERGUARD_PURE_PYTHON``, set here before riverguard is
imported), whose ``TimeOfDay.observe`` it wraps to record that distance, and
prints the rows of docs/detection.md's "Within the memory now free": the gate
``hour+extreme`` by ``peak`` | ``mult`` at 2 or ``Zslot`` at 3 or 4, alone and
with the two-view candidate and ``lone`` (``evidence_union.corroborated``),
beside the same gate with ``S7``. About 90 seconds (the plain build is slow).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

# riverguard is imported in the functions below, not here: run as a script this module sets
# RIVERGUARD_PURE_PYTHON first; imported (pytest collects the doctests of tests/), it must change nothing.


def slot_distances(c: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per file, each sample's distance from its time-of-day slot's mean in the slot's standard deviations (0
    until the slot has been visited ``day_visits`` times), and the evidence of each score (``_why``), from one run
    of the detector (``evidence_union.per_sample``)."""
    from riverguard.detectors import steps

    from . import evidence_union as eu

    seen: list[float] = []
    observe = steps.TimeOfDay.observe

    def wrapped(self, x, lmean, t, span, var, z_scale, z, gap):  # type: ignore[no-untyped-def]
        slot, distance = self.slot_at(t), 0.0
        if slot >= 0:
            v = x - lmean if self.cfg.day_detrend else x
            i = 2 * slot
            if self._visits[slot] >= self.cfg.day_visits and self._stat[i + 1] > 0.0:
                distance = abs(v - self._stat[i]) / math.sqrt(self._stat[i + 1])
        seen.append(distance)
        return observe(self, x, lmean, t, span, var, z_scale, z, gap)

    steps.TimeOfDay.observe = wrapped
    try:  # (observe runs once a sample at most: none for the first, nor for a wild value)
        runs = eu.per_sample(c, lambda det: seen.pop() if seen else 0.0, lambda det: det._why)
    finally:
        steps.TimeOfDay.observe = observe
    distances, why = [values[:, 0] for values in runs], [values[:, 1].astype(int) for values in runs]
    return distances, why


#: (the gate's views, the slot distance's threshold, or None; with the candidates) for each row printed
ROWS: Sequence[tuple[tuple[str, ...], float | None, bool]] = (
    (("P", "S7", "M"), None, False),
    (("P", "S7", "M"), None, True),
    (("P", "M", "Z"), 3.0, False),
    (("P", "M", "Z"), 3.0, True),
    (("P", "M", "Z"), 4.0, True),
)


def main() -> int:
    from riverguard.detectors import steps

    from . import evidence_union as eu
    from .excursions import figures, show

    if steps.cython.compiled:
        raise SystemExit("riverguard was imported compiled: run this as python -m tests.benchmarks.slot_view")
    corpora = {"nab": eu.load("nab", "RIVERGUARD_NAB"), "cmd": eu.load("cmd", "RIVERGUARD_CMD")}
    measured = {n: slot_distances(c) for n, c in corpora.items()}
    views = {n: [{v: eu.VIEWS[v](x, t) for v in ("P", "M", "S7")} for x, t in c.series] for n, c in corpora.items()}
    lone = {n: [eu._lone(x, t, "1f")(10.0) for x, t in c.series] for n, c in corpora.items()}
    print("hour+extreme gated by the views at 2 (Zslot: at z) | candidates | NAB | CMD")
    print("  default alone" + " " * 34 + "| " + " | ".join(show(figures(c.files, c.default)) for c in corpora.values()))
    for gate, z, candidates in ROWS:
        cells = []
        for n, c in corpora.items():
            distances, why = measured[n]
            union = []
            for i, (d, (_, t)) in enumerate(zip(c.default, c.series, strict=True)):
                seen = dict(views[n][i])
                if z is not None:
                    seen["Z"] = distances[i] * (2.0 / z)  # (at 2, as the gate reads every view: Zslot at z)
                union.append(eu.corroborated(d, t, why[i], seen, lone[n][i] if candidates else None, "hour+extreme",
                                             gate, 2.0, ("M", 2.0) if candidates else None))
            cells.append(figures(c.files, union))
        named = "|".join(gate) if z is None else "|".join(gate).replace("Z", f"Zslot {z:g}")
        label = f"{named} | {'P 3 & M 2, lone' if candidates else 'none'}"
        print(f"  {label:<45} | " + " | ".join(map(show, cells)), flush=True)
    return 0


if __name__ == "__main__":
    os.environ["RIVERGUARD_PURE_PYTHON"] = "1"  # (before riverguard is imported: the build whose steps can be wrapped)
    sys.exit(main())
