"""A River spec whose size would take unreasonable time or memory is refused at load, naming the key.

``anomaly.HalfSpaceTrees`` with ``height = 30`` (2^31 nodes a tree) made ``check-config`` hang (over
a minute, 1.6 GB, still growing) and ``run`` too; other classes have sizes like it. These tests drive
the real ``riverguard`` process with a subprocess timeout, so a hang fails the test instead of the suite.
"""

from __future__ import annotations

import re
import resource
import subprocess
from pathlib import Path

import pytest

from conftest import RIVERGUARD, refusal
from riverguard.detectors import river_spec

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
#: Longer than riverguard's start-up with River's import on a busy machine, far shorter than the hangs.
TIMEOUT = 20
#: Memory a refused config may take (the hangs grew past it): a test on a broken build cannot take the machine down.
MEMORY = 2 << 30


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def _riverguard(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*RIVERGUARD, *args], input=b"sensor x=1 1\n", capture_output=True, timeout=TIMEOUT, preexec_fn=_limit, check=False
    )


def _config(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "big.toml"
    path.write_text(f'[[rule]]\nname = "big"\nmeasurement = "sensor"\ndetector = "river"\n[rule.params]\nmodel = {model}\n')
    return path


HST = "n_trees trees of 2 ** (height + 1) nodes"
#: spec, the key check-config names, and what it says.
TOO_BIG = {
    "hst height": (
        '[{class = "preprocessing.MinMaxScaler"}, {class = "anomaly.HalfSpaceTrees", height = 30}]',
        "params.model[1].height", f"height must be an integer in [1, 12], got 30: each series builds {HST}",
    ),
    "hst n_trees": ('{class = "anomaly.HalfSpaceTrees", n_trees = 1000000}', "params.model.n_trees",
                    "n_trees must be an integer in [1, 100], got 1000000"),
    "hst height as a float": ('{class = "anomaly.HalfSpaceTrees", height = 30.0}', "params.model.height",
                              "height must be an integer in [1, 12], got 30.0"),
    "hst in a filter": (
        '{class = "anomaly.QuantileFilter", q = 0.95, anomaly_detector = {class = "anomaly.HalfSpaceTrees", height = 24}}',
        "params.model.anomaly_detector.height", "height must be an integer in [1, 12], got 24",
    ),
    "loda cuts": ('{class = "anomaly.LODA", n_random_cuts = 100000000}', "params.model.n_random_cuts",
                  "n_random_cuts must be an integer in [1, 1000], got 100000000"),
    "lof neighbours": ('{class = "anomaly.LocalOutlierFactor", n_neighbors = 1000000}', "params.model.n_neighbors",
                       "n_neighbors must be an integer in [1, 100], got 1000000"),
    "lof window": (
        '{class = "anomaly.LocalOutlierFactor", engine = {class = "neighbors.LazySearch", window_size = 10000000}}',
        "params.model.engine.window_size", "window_size must be an integer in [1, 3000], got 10000000",
    ),
    "random trees embedding": (
        '[{class = "feature_extraction.RandomTreesEmbedding", height = 40}, {class = "anomaly.OneClassSVM"}]',
        "params.model[0].height", "height must be an integer in [1, 12], got 40",
    ),
    "projection": (
        '[{class = "preprocessing.GaussianRandomProjector", n_components = 100000000}, {class = "anomaly.HalfSpaceTrees"}]',
        "params.model[0].n_components", "n_components must be an integer in [1, 10000], got 100000000",
    ),
    "polynomial degree": (
        '[{class = "feature_extraction.PolynomialExtender", degree = 100000000}, {class = "anomaly.HalfSpaceTrees"}]',
        "params.model[0].degree", "degree must be an integer in [1, 5], got 100000000",
    ),
    "gaussian scorer window past a C long": (
        '{class = "anomaly.GaussianScorer", window_size = 1180591620717411303424}', "params.model.window_size",
        "window_size must be an integer in [1, 1000000000], got 1180591620717411303424",
    ),
    "snarimax order inside a refused model": (
        '{class = "anomaly.PredictiveAnomalyDetection", predictive_model = {class = "time_series.SNARIMAX", p = 1, d = 100000000, q = 1}}',
        "params.model.predictive_model.d", "d must be an integer in [0, 10], got 100000000",
    ),
    # A class without measured bounds: a size or count at most 100 times River's default.
    "general guard": (
        '[{class = "preprocessing.LDA", n_components = 100000000}, {class = "anomaly.HalfSpaceTrees"}]',
        "params.model[0].n_components",
        "n_components must be an integer <= 1000, got 100000000: a size or count of preprocessing.LDA, at most 100 times River's default (10)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(TOO_BIG))
def test_an_oversized_river_spec_is_refused_at_load_naming_the_key(tmp_path: Path, case: str) -> None:
    spec, key, message = TOO_BIG[case]
    config = _config(tmp_path, spec)
    for args in (["check-config", str(config)], ["run", "--config", str(config)]):
        result = refusal(args, _riverguard)  # (a hang fails here, on the subprocess timeout)
        err = result.stderr.decode()
        assert err.startswith("E! ") and err.count("\n") == 1, err  # one line, no traceback
        assert f'{config}: rule 1 "big", key \'{key}\': {message}' in err, err
        # (run scored nothing: the metric came back as it was, unscored)
        assert result.stdout == (b"sensor x=1 1\n" if args[0] == "run" else b""), result.stdout


#: River's defaults written out, and the largest value of each bound (of the models a checkpoint can keep): they load and run.
AT_THE_BOUNDS = [
    '{class = "anomaly.HalfSpaceTrees", n_trees = 10, height = 12, window_size = 250}',
    '[{class = "preprocessing.MinMaxScaler"}, {class = "anomaly.HalfSpaceTrees", n_trees = 100, height = 8}]',
    '{class = "anomaly.LODA", n_bins = 1000, n_random_cuts = 1000}',
    '{class = "anomaly.LocalOutlierFactor", n_neighbors = 100, engine = {class = "neighbors.LazySearch", window_size = 3000}}',
    '{class = "anomaly.GaussianScorer", window_size = 1000000000, grace_period = 100}',
    '[{class = "feature_extraction.PolynomialExtender", degree = 5}, {class = "anomaly.HalfSpaceTrees"}]',
    # (no measured bound: River's default, and 100 times it)
    '[{class = "preprocessing.FeatureHasher", n_features = 1048576}, {class = "anomaly.HalfSpaceTrees", seed = 9223372036854775807}]',
    '[{class = "preprocessing.FeatureHasher", n_features = 104857600}, {class = "anomaly.HalfSpaceTrees"}]',
]


def test_river_defaults_and_the_bounds_themselves_load_and_run(tmp_path: Path) -> None:
    rules = "".join(
        f'[[rule]]\nname = "r{i}"\nmeasurement = "sensor"\nfields = ["f{i}"]\ndetector = "river"\n[rule.params]\nmodel = {spec}\n'
        for i, spec in enumerate(AT_THE_BOUNDS)
    )
    config = tmp_path / "ok.toml"
    config.write_text(rules)
    result = subprocess.run([*RIVERGUARD, "check-config", str(config)], capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    line = "sensor " + ",".join(f"f{i}={i}.5" for i in range(len(AT_THE_BOUNDS)))
    stream = "".join(f"{line} {1_700_000_000 + t}000000000\n" for t in range(5)).encode()
    ran = subprocess.run([*RIVERGUARD, "run", "--config", str(config)], input=stream, capture_output=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.count(b"\n") == 5 and ran.stdout.count(b"_anomaly_score=") == 5 * len(AT_THE_BOUNDS), ran.stdout


def test_the_readme_lists_every_measured_bound() -> None:
    """The README's table of River bounds is the code's (``river_spec._BOUNDS``)."""
    for name, params in river_spec._BOUNDS.items():
        row = re.search(rf"^\| `{re.escape(name)}` \|(.*)\|$", README, re.M)
        assert row, f"the README has no row for {name}"
        listed = dict(re.findall(r"`(\w+)` (?:\d+ to )?(\d+)", row.group(1)))
        assert listed == {p.name: str(int(p.high)) for p in params}, (name, listed)
