"""The steps Sentinel and Context share: prediction error, likelihood, new extremes, stuck values, suppression.

A subclass supplies the *sequence surprise* (:meth:`_Likelihood._surprise`),
its part of the state (:meth:`_Likelihood._dump_surprise`,
:meth:`_Likelihood._load_surprise`) and its ``__init__``, which checks its own
parameters and then calls :meth:`_Likelihood._setup` with the shared ones.
"""

from __future__ import annotations

import math
import sys
from array import array
from typing import Any

from .base import Detector

_SQRT1_2 = math.sqrt(0.5)
_INT, _FLOAT = {int}, {float}
_DAY = 86400.0
_SWAP = sys.byteorder != "little"  # the slot ranges are saved little-endian


def _pack(a: array) -> bytes:
    """An ``array('d')`` as little-endian bytes."""
    if _SWAP:
        a = array("d", a)
        a.byteswap()
    return a.tobytes()


def _unpack(b: bytes) -> array:
    """The inverse of :func:`_pack`."""
    a = array("d", b)
    if _SWAP:
        a.byteswap()
    return a


class _Likelihood(Detector):
    """Raw surprise -> anomaly likelihood, with new extremes, stuck values and suppression (see Sentinel)."""

    __slots__ = (
        "fading",
        "z_scale",
        "short",
        "long",
        "min_sd",
        "pmin",
        "margin",
        "extreme",
        "fire",
        "suppress",
        "damp",
        "extreme_sd",
        "learn",
        "repeat_decay",
        "value_long",
        "day_slots",
        "weekend_slots",
        "day_margin",
        "day_visits",
        "day_score",
        "day_fading",
        "day_detrend",
        "day_through",
        "stuck_longest",
        "_day_width",
        "_avg",
        "_c0",
        "_c1",
        "_dhi",
        "_dlo",
        "_dslot",
        "_dstat",
        "_dvis",
        "_hi",
        "_k0",
        "_k1",
        "_lmean",
        "_len",
        "_lo",
        "_lvar",
        "_maxlen",
        "_mean",
        "_mu",
        "_n",
        "_prev",
        "_qday",
        "_quiet",
        "_rep",
        "_rhi",
        "_rlo",
        "_run",
        "_s2",
        "_scale",
        "_step",
        "_var",
    )

    def _setup(
        self,
        fading: float,
        z_scale: float,
        short: float,
        long: float,
        min_sd: float,
        pmin: float,
        margin: float,
        extreme: float,
        fire: float,
        suppress: int,
        damp: float,
        extreme_sd: float,
        learn: int,
        repeat_decay: float,
        value_long: float,
        day_slots: int,
        weekend_slots: bool,
        day_margin: float,
        day_visits: int,
        day_score: float,
        day_fading: float,
        day_detrend: bool,
        day_through: bool,
        stuck_longest: bool,
    ) -> None:
        """Check the shared parameters the subclass has not checked, store them and start the shared state."""
        if type(day_slots) is not int or not 0 <= day_slots <= 96 or type(weekend_slots) is not bool:
            raise ValueError("day_slots must be an integer in [0, 96], weekend_slots a boolean")
        if not day_margin >= 0.0 or type(day_visits) is not int or not 1 <= day_visits <= 255:
            raise ValueError("day_margin must be >= 0, day_visits an integer in [1, 255]")
        if not 0.0 <= day_score <= 1.0 or not 0.0 <= day_fading < 1.0:
            raise ValueError("day_score must be in [0, 1], day_fading in [0, 1)")
        if type(day_detrend) is not bool or type(day_through) is not bool or type(stuck_longest) is not bool:
            raise ValueError("day_detrend, day_through and stuck_longest must be booleans")
        if not min_sd > 0.0 or not 0.0 < pmin < 0.5 or not margin >= 0.0:
            raise ValueError("min_sd must be > 0, pmin in (0, 0.5), margin >= 0")
        if not 0.0 <= extreme <= 1.0 or not 0.0 <= damp <= 1.0 or not 0.0 < fire:
            raise ValueError("extreme and damp must be in [0, 1], fire > 0")
        if not extreme_sd >= 0.0 or type(learn) is not int or learn < 0 or not 0.0 < repeat_decay < 1.0:
            raise ValueError("extreme_sd must be >= 0, learn an integer >= 0, repeat_decay in (0, 1)")
        if not 0.0 < value_long < 1.0:
            raise ValueError("value_long must be in (0, 1)")
        if type(suppress) is not int or suppress < 0:
            raise ValueError("suppress must be an integer >= 0")
        self.fading = fading
        self.z_scale = z_scale
        self.short = short
        self.long = long
        self.min_sd = min_sd
        self.pmin = pmin
        self.margin = margin
        self.extreme = extreme
        self.fire = fire
        self.suppress = suppress
        self.damp = damp
        self.extreme_sd = extreme_sd
        self.learn = learn
        self.repeat_decay = repeat_decay
        self.value_long = value_long
        self.day_slots = day_slots
        self.weekend_slots = weekend_slots
        self.day_margin = day_margin
        self.day_visits = day_visits
        self.day_score = day_score
        self.day_fading = day_fading
        self.day_detrend = day_detrend
        self.day_through = day_through
        self.stuck_longest = stuck_longest
        self._day_width = _DAY / day_slots if day_slots else 0.0
        self._scale = -1.0 / math.log10(pmin)
        self._n = 0
        self._lo = self._hi = 0.0  # range seen so far
        self._rlo = self._rhi = 0.0  # the range as it was when the current excursion beyond it began
        self._mean = self._var = 0.0  # EW mean and variance of the values
        self._lmean = self._lvar = 0.0  # long-run mean and variance of the values
        self._avg = 0.0  # short average of the raw score
        self._mu = self._s2 = 0.0  # long-run mean and variance of the short average
        self._quiet = 0  # suppressed samples left
        self._qday = False  # the suppression was started by a time-of-day extreme
        self._prev = 0.0  # the previous value
        # repeats ("same value as the previous one") as a two-state Markov chain:
        # decayed counts of steps from a non-repeat (c0, k0 of them repeats) and from a repeat (c1, k1)
        self._c0 = self._k0 = self._c1 = self._k1 = 0.0
        self._rep = False  # the previous step was a repeat
        self._run = 0.0  # -log10 probability of the current run of repeats (-1: not scored)
        self._step = 0.0  # -log10 P(repeat | repeat) frozen at the start of the run
        self._len = 0  # repeats in the current run
        self._maxlen = 0  # repeats in the longest run that has ended
        # time-of-day slots (and weekend ones): the range seen in each, and passes through it (<= 255)
        slots = day_slots * (2 if weekend_slots else 1)
        self._dlo = array("d", bytes(8 * slots))
        self._dhi = array("d", bytes(8 * slots))
        self._dvis = bytearray(slots)
        self._dslot = -1  # the previous sample's slot (-1: none yet)
        # and the EW mean and variance of the value in each slot (interleaved: mean, variance)
        self._dstat = array("d", bytes(16 * slots))

    def _surprise(self, x: float, lo: float, span: float, n: int) -> float:
        """Step 1a: learn ``x`` in the sequence model and return its raw surprise (at most 1).

        ``lo`` and ``span`` are the range seen before ``x``; ``n`` counts the samples before ``x`` (>= 1).
        """
        raise NotImplementedError

    def _dump_surprise(self) -> list[Any]:
        """The sequence model's part of :meth:`dump_state`."""
        raise NotImplementedError

    def _load_surprise(self, part: list[Any]) -> bool:
        """Restore what :meth:`_dump_surprise` returned if it is valid; False (changing nothing) if not."""
        raise NotImplementedError

    def score_one(self, x: float, t: float | None = None) -> float:
        """Score ``x`` without learning it (the likelihood as if ``x`` were next)."""
        probe = type(self)(**self.params())
        probe.load_state(self.dump_state())
        return probe.process(x, t)

    def learn_one(self, x: float, t: float | None = None) -> None:
        self.process(x, t)

    def process(self, x: float, t: float | None = None) -> float:
        n = self._n
        self._n = n + 1
        if n == 0:
            self._lo = self._hi = self._rlo = self._rhi = self._mean = self._prev = self._lmean = x
            return 0.0
        # 4. stuck value: probability of the current run of repeats
        stuck = 0.0
        rep = x == self._prev
        self._prev = x
        if rep:
            self._len += 1
        else:
            if self._len > self._maxlen:
                self._maxlen = self._len
            self._len = 0
        # with stuck_longest, a run is scored only while it is longer than every run before it
        longest = self._len > self._maxlen or not self.stuck_longest
        keep = 1.0 - self.repeat_decay
        if self._rep:
            c1 = self._c1 * keep + 1.0
            k1 = self._k1 * keep + rep
            if rep:
                run = self._run
                if run >= 0.0:
                    run += self._step
                    stuck = run * self._scale if longest else 0.0
                    if stuck >= self.fire:
                        run = -1.0  # a stuck run is reported once
                    self._run = run
            # the counts before this step decide P(repeat | repeat) for the rest of the run
            self._c1, self._k1 = c1, k1
        else:
            if rep:
                if n > self.learn:
                    self._run = -math.log10((self._k0 + 0.5) / (self._c0 + 1.0))
                    self._step = -math.log10((self._k1 + 0.5) / (self._c1 + 1.0))
                    stuck = self._run * self._scale if longest else 0.0
                else:
                    self._run = -1.0
            self._c0 = self._c0 * keep + 1.0
            self._k0 = self._k0 * keep + rep
        self._rep = rep
        lo = self._lo
        hi = self._hi
        span = hi - lo
        if x > hi:
            self._hi = x
        elif x < lo:
            self._lo = x
        # 3. new extremes: how far beyond the range as it was when the current excursion
        # began (a slow slide to a new low is measured from where it left the range)
        rlo = self._rlo
        rhi = self._rhi
        ext = 0.0
        if x > rhi:
            ext = x - rhi
        elif x < rlo:
            ext = rlo - x
        else:  # back inside: the reference catches up with the range
            self._rlo = self._lo
            self._rhi = self._hi
        # ... that is also far from the long-run mean, in long-run standard deviations
        lam = self.value_long if n * self.value_long > 1.0 else 1.0 / n
        dl = x - self._lmean
        if ext > 0.0:
            far = dl * dl > self.extreme_sd * self.extreme_sd * self._lvar
        self._lmean += lam * dl
        self._lvar = (1.0 - lam) * (self._lvar + lam * dl * dl)
        # 1a. sequence surprise (the subclass's model)
        raw = self._surprise(x, lo, span, n)
        # 1b. prediction error against the EW mean
        d = x - self._mean
        var = self._var
        if var > 0.0:
            z = abs(d) / (math.sqrt(var) * self.z_scale)
            if z > 1.0:
                z = 1.0
        else:
            z = 0.0 if d == 0.0 else 1.0
        # the time-of-day slot of the event time (-1: none), and what the slots keep: the value's
        # deviation from the long-run mean (day_detrend), so a series that grows or sinks over weeks
        # does not set a new record for the hour every day
        slot = -1
        if self._day_width and t is not None and -1e15 < t < 1e15:
            day = t // _DAY
            slot = int((t - day * _DAY) // self._day_width)
            if slot >= self.day_slots:  # rounding, with a width that does not divide the day
                slot = self.day_slots - 1
            if self.weekend_slots and (int(day) + 3) % 7 >= 5:  # 1970-01-01 was a Thursday
                slot += self.day_slots
            v = x - self._lmean if self.day_detrend else x
            vis = self._dvis[slot]  # passes through the slot before this sample
            # ... and the prediction error against the slot's EW mean, in the slot's EW standard deviations
            if self.day_fading:
                stat = self._dstat
                i = 2 * slot
                if vis:
                    ds = v - stat[i]
                    dvar = stat[i + 1]
                    if vis >= self.day_visits and dvar > 0.0:
                        zs = abs(ds) / (math.sqrt(dvar) * self.z_scale)
                        if zs > z:
                            z = zs if zs < 1.0 else 1.0
                    a = self.day_fading
                    stat[i] += a * ds
                    stat[i + 1] = (1.0 - a) * (dvar + a * ds * ds)
                else:  # a slot starts at the value, with the variance of the recent values
                    stat[i] = v
                    stat[i + 1] = var
        if z > raw:
            raw = z
        elif raw < 0.0:
            raw = 0.0
        a = self.fading
        self._mean += a * d
        self._var = (1.0 - a) * (var + a * d * d)
        # 2. likelihood of the short average against its long-run distribution
        avg = self._avg + self.short * (raw - self._avg)
        self._avg = avg
        mu = self._mu
        s2 = self._s2
        sd = math.sqrt(s2)
        if sd < self.min_sd:
            sd = self.min_sd
        dm = avg - mu
        p = 0.5 * math.erfc(dm / sd * _SQRT1_2)
        lam = self.long if n * self.long > 1.0 else 1.0 / n
        self._mu = mu + lam * dm
        self._s2 = (1.0 - lam) * (s2 + lam * dm * dm)
        score = -math.log10(p) * self._scale if p > self.pmin else 1.0
        tod = False  # the score is a time-of-day extreme
        # 3b. new extremes for the time of day: beyond the range seen in this slot on earlier days
        if slot >= 0:
            if vis:
                dlo = self._dlo[slot]
                dhi = self._dhi[slot]
                if v < dlo:
                    if vis >= self.day_visits and dlo - v > self.day_margin * span and self.day_score > score:
                        score = self.day_score
                        tod = True
                    self._dlo[slot] = v
                elif v > dhi:
                    if vis >= self.day_visits and v - dhi > self.day_margin * span and self.day_score > score:
                        score = self.day_score
                        tod = True
                    self._dhi[slot] = v
            else:
                self._dlo[slot] = self._dhi[slot] = v
            if slot != self._dslot:
                self._dslot = slot
                if vis < 255:
                    self._dvis[slot] = vis + 1
        # ext > 0 whenever this holds (margin and the span are >= 0), so far is set
        if ext > self.margin * (rhi - rlo) and far:
            if self.extreme > score:
                score = self.extreme
                tod = False
            self._rlo = self._lo  # the next excursion is measured from here
            self._rhi = self._hi
        if stuck > score:
            score = stuck if stuck < 1.0 else 1.0
            tod = False
        # 5. minimum history
        if n < self.learn:
            score = 0.0
        # 6. suppression (a time-of-day extreme gets through a suppression that another kind of
        # report started, and starts its own)
        if self._quiet:
            self._quiet -= 1
            if tod and not self._qday and self.day_through:
                if score >= self.fire:
                    self._quiet = self.suppress
                    self._qday = True
            else:
                score *= self.damp
        elif score >= self.fire:
            self._quiet = self.suppress
            self._qday = tod
        return score

    def dump_state(self) -> list[Any]:
        return [
            self._n, float(self._lo), float(self._hi), float(self._mean), float(self._var), *self._dump_surprise(),
            float(self._avg), float(self._mu), float(self._s2), self._quiet,
            float(self._lmean), float(self._lvar), float(self._prev), float(self._c0), float(self._k0),
            float(self._c1), float(self._k1), int(self._rep), float(self._run), float(self._step),
            float(self._rlo), float(self._rhi), _pack(self._dlo), _pack(self._dhi), bytes(self._dvis), self._dslot,
            self._len, self._maxlen, int(self._qday), _pack(self._dstat),
        ]  # fmt: skip

    def load_state(self, state: list[Any]) -> None:
        bad = f"bad {self.name} state"
        try:
            (n, lo, hi, mean, var, *part, avg, mu, s2, quiet,
             lmean, lvar, prev, c0, k0, c1, k1, rep, run, step, rlo, rhi, dlo, dhi, dvis, dslot, rlen, maxlen, qday, dstat) = state  # fmt: skip
        except (TypeError, ValueError):
            raise ValueError(bad) from None
        if (
            {type(n), type(quiet), type(rep), type(qday), type(rlen), type(maxlen)} != _INT
            or min(n, quiet, rep, qday, rlen, maxlen) < 0
            or max(n, quiet, rlen, maxlen) >= 1 << 62  # no real series gets there: a tampered file (the compiled twin keeps int64)
            or rep > 1
            or qday > 1
            or {type(v) for v in (lo, hi, rlo, rhi, mean, var, avg, mu, s2, lmean, lvar, prev, c0, k0, c1, k1, run, step)}
            != _FLOAT
            or {type(dlo), type(dhi), type(dvis), type(dstat)} != {bytes}
            or len(dlo) != 8 * len(self._dvis)
            or len(dstat) != 2 * len(dlo)
            or len(dhi) != len(dlo)
            or len(dvis) != len(self._dvis)
            or type(dslot) is not int
            or not -1 <= dslot < len(dvis)
            or not self._load_surprise(part)  # last: it restores its part when it is valid
        ):
            raise ValueError(bad)
        self._n, self._lo, self._hi, self._mean, self._var = n, lo, hi, mean, var
        self._quiet, self._qday = quiet, bool(qday)
        self._avg, self._mu, self._s2 = avg, mu, s2
        self._lmean, self._lvar, self._prev = lmean, lvar, prev
        self._c0, self._k0, self._c1, self._k1 = c0, k0, c1, k1
        self._rep, self._run, self._step = bool(rep), run, step
        self._len, self._maxlen = rlen, maxlen
        self._rlo, self._rhi = rlo, rhi
        self._dlo, self._dhi, self._dvis, self._dslot = _unpack(dlo), _unpack(dhi), bytearray(dvis), dslot
        self._dstat = _unpack(dstat)
