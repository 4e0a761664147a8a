"""Every River anomaly model, as a rule names it (``detector = "river"``): it works end to end, or is refused clearly.

The models are those of the installed River's ``river.anomaly`` module, enumerated (a model River adds
is tested too; one that needs arguments needs an entry in ``NESTED``). Each runs with its default
arguments, the filters around a sensible inner model. Working means: ``riverguard check-config``
passes, ``riverguard run`` scores a stream through a pipe, the checkpoint saves, and a restart
gives byte-identical output to an uninterrupted run. Refused means: exit 2 with one line naming
the file, the rule and the key, and why (never an internal Python message).

The end-to-end tests drive the real ``riverguard`` process on real files; the checkpoint round
trips below them run in-process (they are fast, and check the saved bytes themselves).
"""

from __future__ import annotations

import inspect
import random
from pathlib import Path
from typing import Any

import msgpack
import pytest
from river import anomaly, base

from conftest import run_cli
from riverguard.config import parse
from riverguard.state import codec, store

T0 = 1_700_000_000_000_000_000
STEP = 10_000_000_000

#: The models whose constructor needs arguments: a filter around a sensible inner model.
NESTED = {
    "QuantileFilter": '{class = "anomaly.QuantileFilter", anomaly_detector = {class = "anomaly.HalfSpaceTrees"}, q = 0.95}',
    "ThresholdFilter": '{class = "anomaly.ThresholdFilter", anomaly_detector = {class = "anomaly.HalfSpaceTrees"}, threshold = 0.5}',
}

#: More specs worth the same checks: the ones first reported refused, and a filter around a
#: detector that learns from a target.
EXTRA = {
    "LocalOutlierFactor n_neighbors=10": '{class = "anomaly.LocalOutlierFactor", n_neighbors = 10}',
    "StandardScaler | LocalOutlierFactor": '[{class = "preprocessing.StandardScaler"}, {class = "anomaly.LocalOutlierFactor"}]',
    "QuantileFilter(GaussianScorer)": '{class = "anomaly.QuantileFilter", anomaly_detector = {class = "anomaly.GaussianScorer"}, q = 0.95}',
}

#: Models refused on purpose, and what the refusal says.
REFUSED = {
    "PredictiveAnomalyDetection": "anomaly.PredictiveAnomalyDetection is not supported (it fails before its forecaster has learned)",
}


def _anomaly_models() -> list[str]:
    """The names of the anomaly models in the installed River's ``river.anomaly``."""
    kinds = (base.AnomalyDetector, base.AnomalyFilter, base.SupervisedAnomalyDetector)
    return sorted(
        name for name, obj in vars(anomaly).items()
        if not name.startswith("_") and inspect.isclass(obj) and issubclass(obj, kinds)
    )  # fmt: skip


MODELS = {name: NESTED.get(name, f'{{class = "anomaly.{name}"}}') for name in _anomaly_models()}
WORKING = {**{name: spec for name, spec in MODELS.items() if name not in REFUSED}, **EXTRA}


def test_the_enumeration_found_river_s_anomaly_models() -> None:
    """A sanity check of the enumeration the other tests are parametrized by."""
    assert {"HalfSpaceTrees", "LocalOutlierFactor", "OneClassSVM", "QuantileFilter", "ThresholdFilter"} <= set(MODELS)
    assert set(REFUSED) <= set(MODELS)


def _config(tmp_path: Path, spec: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(f'[[rule]]\nname = "m"\nmeasurement = "sensor"\ndetector = "river"\n[rule.params]\nmodel = {spec}\n')
    return path


def _stream(samples: int, seed: int = 5) -> bytes:
    """One sensor's temperature, with a spike near the end (one series: LocalOutlierFactor is O(n²))."""
    rng = random.Random(seed)
    lines = []
    for i in range(samples):
        temp = rng.gauss(20.0, 2.0) + (30.0 if i == samples - 30 else 0.0)
        lines.append(f"sensor,room=a temp={temp!r} {T0 + i * STEP}\n")
    return "".join(lines).encode()


SAMPLES = 240
CUT = 130


@pytest.mark.parametrize("name", sorted(WORKING))
def test_model_scores_and_checkpoints_through_a_restart(tmp_path: Path, name: str) -> None:
    config = _config(tmp_path, WORKING[name])
    checked = run_cli(["check-config", str(config)], timeout=120)
    assert checked.returncode == 0, checked.stderr
    assert b'"detector": "river"' in checked.stdout

    data = _stream(SAMPLES)
    whole = run_cli(["run", "--config", str(config)], input=data, timeout=300)
    assert whole.returncode == 0, whole.stderr
    assert not [line for line in whole.stderr.splitlines() if not line.startswith(b"I! ")], whole.stderr
    lines = whole.stdout.splitlines()
    assert len(lines) == SAMPLES
    scores = [float(line.split(b",temp_anomaly_score=")[1].split(b",")[0]) for line in lines]
    assert all(0.0 <= score <= 1.0 for score in scores)

    # Telegraf's way across a restart: the first part, a checkpoint at exit, then the rest.
    state = tmp_path / "s.msgpack"
    head, tail = data.splitlines(keepends=True)[:CUT], data.splitlines(keepends=True)[CUT:]
    first = run_cli(["run", "--config", str(config), "--state", str(state)], input=b"".join(head), timeout=300)
    assert first.returncode == 0, first.stderr
    assert b"W! " not in first.stderr and b"E! " not in first.stderr, first.stderr  # every model saved
    records = store.read(state).records
    assert len(records) == 1 and records[0][1] == "river" and records[0][6] is not None
    msgpack.unpackb(msgpack.packb(records[0][6], use_bin_type=True), max_ext_len=0, strict_map_key=False)  # plain data
    second = run_cli(["run", "--config", str(config), "--state", str(state)], input=b"".join(tail), timeout=300)
    assert second.returncode == 0, second.stderr
    assert b"restored 1 series" in second.stderr and b"W! " not in second.stderr, second.stderr
    assert first.stdout + second.stdout == whole.stdout


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_refused_model_is_exit_2_naming_the_rule_and_the_key(tmp_path: Path, name: str) -> None:
    config = _config(tmp_path, MODELS[name])
    result = run_cli(["check-config", str(config)], timeout=120)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert err.startswith("E! ") and err.count("\n") == 1, err
    assert f'{config}: rule 1 "m", key \'params.model\': {REFUSED[name]}' in err, err


def test_a_model_that_cannot_be_checkpointed_is_refused_saying_what_it_holds(tmp_path: Path) -> None:
    """River's RBFSampler keeps its random weights in a defaultdict whose factory is one of its own
    bound methods: nothing the codec can save by name. The rule is refused when the config is loaded,
    naming where that is (it was ``key 'params'`` and the codec's bare message)."""
    config = _config(tmp_path, '[{class = "feature_extraction.RBFSampler"}, {class = "anomaly.OneClassSVM"}]')
    for args in (["check-config", str(config)], ["run", "--config", str(config)]):
        result = run_cli(args, timeout=120)
        run = args[0] == "run"  # (then passes the metrics through: that is one E! line more, and an I! one)
        assert result.returncode == (0 if run else 2), result.stderr
        err = result.stderr.decode()
        assert err.startswith("E! ") and err.count("\n") == (3 if run else 1), err
        assert (
            f'{config}: rule 1 "m", key \'params.model\': the pipeline cannot be checkpointed: it holds a defaultdict'
            " whose factory is a method RBFSampler._random_weights, which riverguard cannot save"
            " (at Pipeline.steps['RBFSampler'].weights)"
        ) in err, err


# In-process: the saved bytes of each working model, and its behaviour after a restore.


def _factory(spec: str) -> Any:
    return parse(f'[[rule]]\nname = "m"\ndetector = "river"\n[rule.params]\nmodel = {spec}\n').rules[0].new_detector


@pytest.mark.parametrize("name", sorted(WORKING))
def test_checkpoint_bytes_are_deterministic_and_restore_the_same_behaviour(name: str) -> None:
    factory = _factory(WORKING[name])
    rng = random.Random(11)
    values = [rng.gauss(20.0, 2.0) for _ in range(200)]
    trained = factory()
    for x in values[:120]:
        trained.process(x)
    saved = msgpack.packb(trained.dump_state(), use_bin_type=True)
    assert msgpack.packb(trained.dump_state(), use_bin_type=True) == saved  # saving twice, the same bytes
    restored = factory.restore(msgpack.unpackb(saved, raw=False, strict_map_key=False))
    assert msgpack.packb(restored.dump_state(), use_bin_type=True) == saved  # restored, it saves the same bytes
    assert [restored.process(x) for x in values[120:]] == [trained.process(x) for x in values[120:]]
    assert msgpack.packb(restored.dump_state(), use_bin_type=True) == msgpack.packb(trained.dump_state(), use_bin_type=True)


def test_a_checkpoint_may_name_only_the_functions_its_rule_holds() -> None:
    """LocalOutlierFactor's distance (River's Rust ``euclidean_distance_tuple``) is saved by name and
    restored as the very function the rule's model holds; any other name is refused, never looked up."""
    factory = _factory('{class = "anomaly.LocalOutlierFactor"}')
    detector = factory()
    for x in (1.0, 2.0, 3.0):
        detector.process(x)
    state = detector.dump_state()
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("\x00") == "func":
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(state[0])
    assert found and {n["c"] for n in found} == {"river._river_rust.vectordict:euclidean_distance_tuple"}
    restored = factory.restore(state)
    assert restored._model._nn.dist_func is detector._model._nn.dist_func
    for name in ("builtins:eval", "os:system", "river.utils.math:minkowski_distance"):
        for node in found:
            node["c"] = name
        with pytest.raises(ValueError, match="is not allowed in a checkpoint"):
            factory.restore(state)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        # A slot the class does not declare (Bin's are left, right and count).
        ({"\x00": "obj", "c": "river.sketch.histogram:Bin", "i": 0, "d": [], "s": ["__class__", None]}, "bad slot name"),
        # Attributes for a class without an instance __dict__.
        ({"\x00": "obj", "c": "river.sketch.histogram:Bin", "i": 0, "d": ["left", 1.0]}, "has no instance __dict__"),
        # Opaque Rust state that does not parse (River panics: refused like any bad state, not a crash).
        ({"\x00": "rust", "c": "river._river_rust.stats:RsQuantile", "i": 0, "a": [], "s": b"\xff"}, "bad opaque state"),
    ],
)
def test_crafted_slots_and_opaque_state_are_refused(node: dict[str, Any], message: str) -> None:
    from river.sketch.histogram import Bin

    from river import stats

    allowed = codec.allowlist([Bin, type(stats.Quantile(0.5)._quantile)])  # type: ignore[attr-defined]
    with pytest.raises(codec.StateCodecError, match=message):
        codec.decode(node, allowed)


class _Pair(dict):  # state the codec cannot see: the items of a dict subclass
    pass


@pytest.mark.parametrize(
    ("value", "held"),
    [
        (_Pair(a=1), "it holds a test_river_models._Pair (a subclass of dict), whose state riverguard cannot save"),
        (lambda a, b: 0.0, "it holds the function <lambda>, which riverguard cannot save by name"),
        (random.Random(1).random, "it holds the method Random.random, which riverguard cannot save by name"),
        (memoryview(b"x"), "it holds a memoryview, whose state riverguard cannot save"),
    ],
)
def test_state_the_codec_cannot_see_is_refused_naming_it_and_where(value: Any, held: str) -> None:
    from river import stats

    mean = stats.Mean()
    mean.extra = {"k": value}  # type: ignore[attr-defined]
    with pytest.raises(codec.StateCodecError) as raised:
        codec.classes_in(mean)
    assert held in str(raised.value) and str(raised.value).endswith("(at Mean.extra['k'])")
