"""What the summary of a replay or a one-off pull needs of the series a run let go (expired after
``series_ttl`` without a sample, evicted past ``max_series``): they are of this run all the same.

Bounded, whatever the number of series a run goes through: the distinct series are known exactly up to
:data:`EXACT` let go, estimated past that (HyperLogLog, 2**14 registers a count: 16 KiB, about 0.8 %
off); the anomalies of at most :data:`KEEP` (up to twice that between prunes) let-go series are kept,
those with the most.

And :class:`Recent`, a fixed table of keys lately put in (the engine's series that expired after a single
sample, to tell when they come back).
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Iterable
from typing import NamedTuple

#: Distinct series let go that are remembered by key (exact counts); past that, estimated.
EXACT = 50_000
#: Let-go series whose anomaly counts are kept for the top of the summary: those with the most.
KEEP = 1_000

SCORED, ANOMALOUS = 1, 2
_BITS = 14  # HyperLogLog: 2**14 registers
_M = 1 << _BITS
_REST = 64 - _BITS


class Figures(NamedTuple):
    """A run's series (held or let go): how many, how many scored, how many had an anomaly, whether these
    three are exact (else estimated), and the ``n`` with the most anomalies, (count, key) most first."""

    series: int
    scored: int
    anomalous: int
    exact: bool
    top: list[tuple[int, bytes]]


class RunTally:
    """The series a run let go, each once however often it went: whether it was scored, had an anomaly,
    and (for those with the most) how many."""

    def __init__(self) -> None:
        #: Key -> SCORED | ANOMALOUS, while at most EXACT series were let go (None past that).
        self._flags: dict[bytes, int] | None = {}
        #: HyperLogLog registers of the series, the scored, those with an anomaly (past EXACT).
        self._registers: list[bytearray] | None = None
        #: Key -> anomalies in this run, of let-go series that had some (the most, at most 2 * KEEP).
        self.anomalies: dict[bytes, int] = {}

    def add(self, key: bytes, scored: bool, anomalies: int) -> None:
        """Series ``key`` is let go, with a model or not (``scored``), after ``anomalies`` in this run."""
        self._mark(key, _flags_of(scored, anomalies))
        if anomalies > 0:
            self.anomalies[key] = self.anomalies.get(key, 0) + anomalies
            if len(self.anomalies) > 2 * KEEP:
                self.anomalies = {k: c for c, k in _most(self.anomalies.items(), KEEP)}

    def _mark(self, key: bytes, flags: int) -> None:
        """Count series ``key`` with ``flags``: by key up to EXACT series, in the registers past that."""
        if self._flags is not None:
            self._flags[key] = self._flags.get(key, 0) | flags
            if len(self._flags) > EXACT:
                self._registers = [bytearray(_M) for _ in range(3)]
                for known, bits in self._flags.items():
                    _register(self._registers, known, bits)
                self._flags = None
        else:
            assert self._registers is not None
            _register(self._registers, key, flags)

    def figures(self, held: Iterable[tuple[bytes, bool, int]], n: int) -> Figures:
        """This run's figures: the series let go with ``held`` (key, scored, anomalies in this run: those
        seen in this run), a series let go and held again counted once. The tally itself is left as it was."""
        run = RunTally()
        run._flags = None if self._flags is None else dict(self._flags)
        run._registers = None if self._registers is None else [bytearray(r) for r in self._registers]
        anomalies = dict(self.anomalies)
        for key, scored, count in held:
            run._mark(key, _flags_of(scored, count))
            if count > 0:
                anomalies[key] = anomalies.get(key, 0) + count
        if run._flags is not None:
            values = run._flags.values()
            series, scored_n, anomalous = len(run._flags), _having(values, SCORED), _having(values, ANOMALOUS)
        else:
            assert run._registers is not None
            series, scored_n, anomalous = (_estimate(r) for r in run._registers)
        return Figures(series, scored_n, anomalous, run._flags is not None, _most(anomalies.items(), n))


def _most(counts: Iterable[tuple[bytes, int]], n: int) -> list[tuple[int, bytes]]:
    """The ``n`` (count, key) with the most, most first, then by key: the same order every run."""
    return sorted(((c, k) for k, c in counts), key=lambda item: (-item[0], item[1]))[:n]


def _flags_of(scored: bool, anomalies: int) -> int:
    """A series' flags: SCORED when it held a model, ANOMALOUS when it had an anomaly in this run."""
    return (SCORED if scored else 0) | (ANOMALOUS if anomalies > 0 else 0)


def _having(values: Iterable[int], flag: int) -> int:
    return sum(1 for v in values if v & flag)


def fingerprint(key: bytes) -> int:
    """``key``'s 64-bit fingerprint, the same in every process (Python's hash of bytes is not)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def _register(registers: list[bytearray], key: bytes, flags: int) -> None:
    """Add ``key`` to the series' registers, and to the scored' and anomalous' as ``flags`` says."""
    h = fingerprint(key)
    index = h >> _REST
    rank = _REST - (h & ((1 << _REST) - 1)).bit_length() + 1
    for i, wanted in enumerate((True, flags & SCORED, flags & ANOMALOUS)):
        if wanted and registers[i][index] < rank:
            registers[i][index] = rank


def _estimate(registers: bytearray) -> int:
    """HyperLogLog's count of the keys in ``registers`` (linear counting while many are empty)."""
    empty = registers.count(0)
    raw = 0.7213 / (1 + 1.079 / _M) * _M * _M / sum(2.0**-r for r in registers)
    if raw <= 2.5 * _M and empty:
        return round(_M * math.log(_M / empty))
    return round(raw)


#: Slots of a :class:`Recent` (a power of two): 32 KiB of fingerprints.
RECENT = 4096


class Recent:
    """Keys lately put in, by fingerprint, one per slot of :data:`RECENT` (made at the first put: 32 KiB,
    whatever the number of keys put in): a key put in is found by :meth:`take` until a later key of the
    same slot takes its place. Deterministic (:func:`fingerprint`); not in the checkpoint."""

    def __init__(self) -> None:
        self._slots: array[int] | None = None

    def put(self, key: bytes) -> None:
        if self._slots is None:
            self._slots = array("Q", bytes(8 * RECENT))
        h = fingerprint(key) or 1  # (0: an empty slot)
        self._slots[h & (RECENT - 1)] = h

    def take(self, key: bytes) -> bool:
        """Whether ``key`` is in; it is not any more."""
        if self._slots is None:
            return False
        h = fingerprint(key) or 1
        if self._slots[h & (RECENT - 1)] != h:
            return False
        self._slots[h & (RECENT - 1)] = 0
        return True
