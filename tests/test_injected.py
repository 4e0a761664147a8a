"""The recorded demo file with injected anomalies, replayed end to end through the real process.

Spike, level shift, stuck value and dropout (see ``tests/data/demo.py``): with
the default detector and no config, each injection is flagged inside its
window and flags elsewhere stay rare.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

try:
    from tests.data.demo import INJECTIONS, RECORDING, flags, generate
except ImportError:  # tests/ itself on sys.path
    from data.demo import INJECTIONS, RECORDING, flags, generate  # type: ignore[no-redef]


@pytest.fixture(scope="module")
def replayed() -> bytes:
    result = subprocess.run(
        [sys.executable, "-m", "riverguard", "replay", str(RECORDING)], capture_output=True, check=True, timeout=300
    )
    return result.stdout


def test_the_recording_is_the_seeded_generator_output() -> None:
    assert RECORDING.read_text(encoding="utf-8") == generate()


@pytest.mark.parametrize("injection", INJECTIONS, ids=lambda inj: inj.kind)
def test_each_injected_anomaly_is_flagged_in_its_window(replayed: bytes, injection) -> None:
    found = flags(replayed)
    assert found.hits[injection.kind], f"{injection.kind} on {injection.series} at {injection.first} was not flagged"


def test_flags_elsewhere_are_rare(replayed: bytes) -> None:
    found = flags(replayed)
    assert found.scored > 30_000
    rate = len(found.elsewhere) / found.scored
    assert rate <= 0.001, f"{len(found.elsewhere)} flags away from the injections ({rate:.3%} of scored values)"


def test_every_metric_comes_back(replayed: bytes) -> None:
    assert replayed.count(b"\n") == RECORDING.read_bytes().count(b"\n")
