"""Golden cases: ``tests/testcases/<name>/{riverguard.toml,input.lp,expected.lp}``.

Each folder is replayed through the real command line,
``riverguard replay --config riverguard.toml input.lp``, run in the folder,
and stdout must equal ``expected.lp`` byte for byte. ``expected.lp`` is a
specification: read it before you commit it. See ``testcases/README.md``;
``RIVERGUARD_UPDATE_GOLDEN=1`` rewrites the expected files from the current
output (then review the diff).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import LOG_PREFIXES, RIVERGUARD

CASES_DIR = Path(__file__).resolve().parent / "testcases"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir())
FILES = ("riverguard.toml", "input.lp", "expected.lp")
UPDATE = os.environ.get("RIVERGUARD_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def results() -> dict[str, subprocess.CompletedProcess[bytes]]:
    """Replay every case; the processes run side by side to keep the suite fast."""
    procs = {}
    for name in CASES:
        folder = CASES_DIR / name
        if not all((folder / f).is_file() for f in FILES[:2]):
            continue
        procs[name] = subprocess.Popen(
            [*RIVERGUARD, "replay", "--config", "riverguard.toml", "input.lp"],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def test_there_are_cases() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize("name", CASES)
def test_case_folder_is_complete(name: str) -> None:
    missing = [f for f in FILES if not (CASES_DIR / name / f).is_file()]
    assert not missing, f"testcases/{name} lacks {missing}"


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, results: dict[str, subprocess.CompletedProcess[bytes]]) -> None:
    folder = CASES_DIR / name
    result = results[name]
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    for line in result.stderr.splitlines():
        assert line.startswith(LOG_PREFIXES), line
    expected_path = folder / "expected.lp"
    if UPDATE:
        expected_path.write_bytes(result.stdout)
        pytest.skip(f"rewrote testcases/{name}/expected.lp: review it with git diff")
    expected = expected_path.read_bytes()
    if result.stdout != expected:
        got, want = result.stdout.splitlines(keepends=True), expected.splitlines(keepends=True)
        for i, (g, w) in enumerate(zip(got, want, strict=False), start=1):
            assert g == w, f"testcases/{name}: line {i} differs"
        assert len(got) == len(want), f"testcases/{name}: {len(got)} lines out, {len(want)} expected"
        pytest.fail(f"testcases/{name}: output differs from expected.lp")


@pytest.mark.parametrize("name", CASES)
def test_every_input_metric_comes_back(name: str, results: dict[str, subprocess.CompletedProcess[bytes]]) -> None:
    """Whatever the expected file says, output and input have the same lines once the added fields are gone."""
    from riverguard.config import load
    from conftest import strip_added

    config = load(CASES_DIR / name / "riverguard.toml")
    out = strip_added(
        results[name].stdout,
        config.output.score_suffix.encode(),
        config.output.flag_suffix.encode(),
        (config.output.metric_score_field.encode(), config.output.metric_flag_field.encode()),
    )
    data = (CASES_DIR / name / "input.lp").read_bytes()
    if config.output.score_suffix.encode() in data:
        pytest.skip("its input already holds fields shaped like added ones")
    assert out == data
