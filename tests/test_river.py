"""River models from the config (``detector = "river"``) and one model per metric (``scope = "metric"``).

Every test but the unsaveable-model one drives the real ``riverguard`` process on real files.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest

from conftest import readme_example, refusal, run_cli
from riverguard.state import store

T0 = 1_700_000_000_000_000_000
STEP = 10_000_000_000

#: A River pipeline, a scaler then a one-class SVM, on each field of "sensor".
SVM_RULE = readme_example("svm")
#: One half-space trees model per cpu metric over its usage_* fields.
HST_METRIC_RULE = readme_example("hosts")


def recorded(samples: int, seed: int = 1) -> bytes:
    """Sensor readings (two fields) and an 8-field cpu metric of two hosts; a spike in each (three cpu fields at once); usage_5 missing now and then."""
    rng = random.Random(seed)
    lines = []
    for i in range(samples):
        ts = T0 + i * STEP
        temp = rng.gauss(20.0, 2.0) + {samples - 100: 30.0, samples - 150: -30.0}.get(i, 0.0)
        lines.append(f"sensor,room=a temp={temp!r},hum={rng.gauss(50.0, 5.0)!r} {ts}")
        for h in range(2):
            fields = ",".join(
                f"usage_{k}={rng.gauss(10.0 * k + 5.0, 1.0 + k) + (60.0 if i == samples - 50 and k in (1, 3, 6) else 0.0)!r}"
                for k in range(8)
                if not (i % 37 == 0 and k == 5)
            )
            lines.append(f"cpu,host=h{h} {fields},procs={200 + i % 7}i {ts}")  # procs: not the metric rule's
    return ("\n".join(lines) + "\n").encode()


def _config(tmp_path: Path, text: str, name: str = "rg.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _replay(config: Path, data: Path, state: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    args = ["replay", "--config", str(config), str(data)]
    if state is not None:
        args += ["--state", str(state)]
    result = run_cli(args, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def test_check_config_shows_the_river_spec_and_the_metric_scope(tmp_path: Path) -> None:
    config = _config(tmp_path, SVM_RULE + HST_METRIC_RULE)
    result = run_cli(["check-config", str(config)])
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert '"detector": "river", "scope": "field"' in out
    assert '"model": [{"class": "preprocessing.StandardScaler"}, {"class": "anomaly.OneClassSVM", "nu": 0.2}]' in out
    assert '"detector": "hst", "scope": "metric"' in out


PAD_HINT = 'anomaly.PredictiveAnomalyDetection is not supported (it fails before its forecaster has learned): use detector = "pad" instead'
BAD_SPECS = {
    "unknown class": ('model = [{class = "anomaly.Nope"}]', "params.model[0].class", 'River has no "anomaly.Nope"'),
    "outside river": ('model = {class = "os.system"}', "params.model.class", "is not a River class"),
    "a function, not a class": ('model = {class = "stats.Mean.update"}', "params.model.class", "not a River estimator class"),
    "private path": ('model = {class = "anomaly._private"}', "params.model.class", "is not a River class"),
    "unknown parameter": (
        'model = [{class = "preprocessing.StandardScaler"}, {class = "anomaly.OneClassSVM", nuu = 0.2}]',
        "params.model[1].nuu",
        "unknown parameter for anomaly.OneClassSVM",
    ),
    "bad parameter value": (
        'model = {class = "anomaly.HalfSpaceTrees", n_trees = "ten"}', "params.model.n_trees", "n_trees must be an integer in [1, 100], got 'ten'",
    ),
    "bad parameter value River refuses": (
        'model = {class = "anomaly.OneClassSVM", clip_gradient = "x"}', "params.model", "the model fails on a sample",
    ),
    "not an anomaly detector": ('model = {class = "preprocessing.StandardScaler"}', "params.model", "is not an anomaly detector"),
    "nested spec of the wrong kind": (
        'model = {class = "anomaly.PredictiveAnomalyDetection", predictive_model = {class = "time_series.Nope"}}',
        "params.model.predictive_model.class",
        'River has no "time_series.Nope"',
    ),
    # Refused, as the README says, and with a pointer to pad (it was AttributeError / IndexError from River).
    "predictive anomaly detection": (
        'model = {class = "anomaly.PredictiveAnomalyDetection"}', "params.model", PAD_HINT,
    ),
    "predictive anomaly detection around holt-winters": (
        'model = {class = "anomaly.PredictiveAnomalyDetection", predictive_model = {class = "time_series.HoltWinters",'
        " alpha = 0.3, beta = 0.1, gamma = 0.6, seasonality = 24}}",
        "params.model",
        PAD_HINT,
    ),
    "predictive anomaly detection in a filter": (
        'model = {class = "anomaly.ThresholdFilter", threshold = 0.5,'
        ' anomaly_detector = {class = "anomaly.PredictiveAnomalyDetection"}}',
        "params.model",
        PAD_HINT,
    ),
    "no model": ("window = 10", "params.model", "required"),
    "bad window": ('model = {class = "anomaly.HalfSpaceTrees"}\nwindow = 0', "params.window", "window must be an integer in [1, 1000000], got 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_a_bad_spec_is_refused_naming_file_rule_and_key(tmp_path: Path, case: str) -> None:
    """``check-config`` exits 2 with one line; ``run`` says the same, then passes the metrics through."""
    params, key, message = BAD_SPECS[case]
    config = _config(tmp_path, f'[[rule]]\nname = "mine"\ndetector = "river"\n[rule.params]\n{params}\n')
    both = case == "unknown class" or message == PAD_HINT
    for args in (["check-config", str(config)], ["run", "--config", str(config)])[: 2 if both else 1]:
        result = refusal(args)
        err = result.stderr.decode()
        assert err.startswith("E! ") and err.count("\n") == 1, err  # one line, no traceback
        assert f'{config}: rule 1 "mine", key \'{key}\'' in err, err
        assert message in err, err


def test_metric_scope_needs_a_detector_that_takes_several_fields(tmp_path: Path) -> None:
    config = _config(tmp_path, '[[rule]]\nname = "m"\nscope = "metric"\ndetector = "sentinel"\n')
    result = run_cli(["check-config", str(config)])
    assert result.returncode == 2
    assert b"key 'scope'" in result.stderr and b'detector "sentinel" models one field at a time' in result.stderr
    assert b"(hst, river)" in result.stderr
    config.write_text('[[rule]]\nname = "m"\nscope = "metric"\ndetector = "river"\n[rule.params]\nmodel = {class = "anomaly.GaussianScorer"}\n')
    result = run_cli(["check-config", str(config)])
    assert result.returncode == 2 and b"key 'scope'" in result.stderr and b"learns from a target" in result.stderr


def test_both_rules_score_through_run_and_replay_alike(tmp_path: Path) -> None:
    config = _config(tmp_path, SVM_RULE + HST_METRIC_RULE)
    data = recorded(1400)
    path = tmp_path / "data.lp"
    path.write_bytes(data)
    replayed = _replay(config, path).stdout
    ran = run_cli(["run", "--config", str(config)], input=data, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == replayed
    lines = replayed.splitlines()
    assert len(lines) == len(data.splitlines())
    sensor = [line for line in lines if line.startswith(b"sensor,")]
    cpu = [line for line in lines if line.startswith(b"cpu,")]
    assert all(b",temp_anomaly_score=" in line and b",hum_anomaly=" in line for line in sensor)
    # One model per metric: metric-level fields only, also when a field is missing.
    assert all(re.search(rb",anomaly_score=[0-9.e-]+,anomaly=(true|false) \d+$", line) for line in cpu)
    assert not any(b"usage_3_anomaly" in line for line in cpu)
    assert any(b",usage_4=" in line and b",usage_5=" not in line for line in cpu)
    # The SVM's calibrated scores spread over [0, 1]; the jump of three usage fields on both hosts is flagged by the
    # metric's trees. (The linear SVM on one field flags neither temperature spike: see the README.)
    temp_scores = {float(re.search(rb"temp_anomaly_score=([^,]+)", line).group(1)) for line in sensor}
    assert len(temp_scores) > 200 and min(temp_scores) == 0.0 and max(temp_scores) >= 0.99
    assert all(b",anomaly=true" in line for line in cpu[2 * (1400 - 50) : 2 * (1400 - 50) + 2])


def _split_run(tmp_path: Path, config: Path, data: bytes, cut: int) -> bytes:
    """``replay`` the first ``cut`` lines, checkpoint, then ``run`` (Telegraf's way) on the rest."""
    lines = data.splitlines(keepends=True)
    first, state = tmp_path / "first.lp", tmp_path / f"state-{cut}.msgpack"
    first.write_bytes(b"".join(lines[:cut]))
    a = _replay(config, first, state)
    b = run_cli(["run", "--config", str(config), "--state", str(state)], input=b"".join(lines[cut:]), timeout=300)
    assert b.returncode == 0, b.stderr
    assert b"restored" in b.stderr and b"W! " not in b.stderr, b.stderr
    return a.stdout + b.stdout


@pytest.mark.parametrize("cut", [3, 1500, 2999])
def test_output_is_byte_identical_across_a_restart(tmp_path: Path, cut: int) -> None:
    config = _config(tmp_path, SVM_RULE + HST_METRIC_RULE + '[output]\nmetric_score_field = "mscore"\nmetric_flag_field = "mflag"\n')
    data = recorded(1100)
    path = tmp_path / "data.lp"
    path.write_bytes(data)
    whole = _replay(config, path).stdout
    assert b",mscore=" in whole and b",mflag=" in whole and b",anomaly_score=" not in whole
    assert _split_run(tmp_path, config, data, cut) == whole


def test_compiled_and_pure_python_paths_agree(tmp_path: Path) -> None:
    config = _config(tmp_path, SVM_RULE + HST_METRIC_RULE + '[[rule]]\nname = "rest"\n')
    data = recorded(400) + b"disk,host=h0 used=5i,free=3.5 1\n" * 3
    path = tmp_path / "data.lp"
    path.write_bytes(data)
    compiled = _replay(config, path).stdout
    pure = subprocess.run(
        [sys.executable, "-m", "riverguard", "replay", "--config", str(config), str(path)],
        capture_output=True, env={**os.environ, "RIVERGUARD_PURE_PYTHON": "1"}, check=True, timeout=300,
    ).stdout
    assert compiled == pure
    assert b"used_anomaly_score=" in compiled and b"procs_anomaly_score=" in compiled


def test_a_changed_spec_starts_those_series_fresh(tmp_path: Path) -> None:
    config = _config(tmp_path, SVM_RULE)
    path = tmp_path / "data.lp"
    path.write_bytes(recorded(50))
    state = tmp_path / "s.msgpack"
    _replay(config, path, state)
    config.write_text(SVM_RULE.replace("nu = 0.2", "nu = 0.3"))
    result = _replay(config, path, state)
    assert b"restored 0 series" in result.stderr and b"2 start fresh because their rule or parameters changed" in result.stderr


def _huge_among_noise(hosts: int, samples: int, at: int, seed: int, start: int = 0) -> bytes:
    """N(0, 1) sensor readings of ``hosts`` rooms, one 1e308 (huge but finite) in each at sample ``at``."""
    rng = random.Random(seed)
    lines = []
    for i in range(start, start + samples):
        for h in range(hosts):
            value = 1e308 if i == at else rng.gauss(0.0, 1.0)
            lines.append(f"sensor,room=r{h} temp={value!r} {T0 + i * STEP}")
    return ("\n".join(lines) + "\n").encode()


def test_a_model_that_fails_starts_fresh_and_is_not_checkpointed(tmp_path: Path) -> None:
    """One 1e308 leaves the README's scaler at inf and every later raw score NaN: the series starts fresh with
    a new model (one W! per series, rate-limited) instead of passing every later sample unscored, and the
    checkpoint holds the fresh model, so a restart scores from the first sample."""
    config = _config(tmp_path, SVM_RULE)
    rooms = 15
    first, state = tmp_path / "first.lp", tmp_path / "s.msgpack"
    first.write_bytes(_huge_among_noise(rooms, 150, at=100, seed=5))
    result = _replay(config, first, state)
    err = result.stderr.decode()
    failed = re.findall(r"^W! \[riverguard\] detector 'river' failed on series (sensor,room=r\d+) temp: ValueError: "
                        r".*; the field passes unscored and the series starts fresh with a new model$", err, re.M)
    held = sum(int(n) for n in re.findall(r"^W! \[riverguard\] (\d+) more series whose detector failed were not "
                                          r"reported \(rate limit\)$", err, re.M))
    assert len(failed) == len(set(failed)) and len(failed) + held == rooms, err  # one line per series, or counted
    assert "E! " not in err, err
    lines = result.stdout.splitlines()
    unscored = [line for line in lines if b"temp_anomaly_score=" not in line]
    assert len(unscored) == rooms, unscored  # the sample each model failed on, and no other
    assert all(b"temp_anomaly_score=" in line for line in lines[-5 * rooms:])
    rest = tmp_path / "rest.lp"
    rest.write_bytes(_huge_among_noise(rooms, 50, at=-1, seed=6, start=150))
    again = _replay(config, rest, state)
    assert f"restored {rooms} series".encode() in again.stderr, again.stderr
    assert b"failed" not in again.stderr, again.stderr
    assert all(b"temp_anomaly_score=" in line for line in again.stdout.splitlines())


def _svm_checkpoint(tmp_path: Path) -> tuple[Path, Path, dict, list]:
    config = _config(tmp_path, SVM_RULE)
    path = tmp_path / "data.lp"
    path.write_bytes(recorded(60))
    state = tmp_path / "s.msgpack"
    _replay(config, path, state)
    checkpoint = store.read(state)
    return config, state, checkpoint.header, checkpoint.records


def _replace_class(node: object, old: str, new: str) -> object:
    if isinstance(node, dict):
        return {k: (new if v == old else _replace_class(v, old, new)) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_class(v, old, new) for v in node]
    return node


@pytest.mark.parametrize(
    "foreign",
    [
        "river.anomaly.hst:HalfSpaceTrees",  # a River class riverguard's own detectors may hold, not this rule
        "river.linear_model.log_reg:LogisticRegression",
        "os:system",
    ],
)
def test_a_checkpoint_naming_a_class_outside_the_spec_is_refused(tmp_path: Path, foreign: str) -> None:
    config, state, header, records = _svm_checkpoint(tmp_path)
    crafted = [[*r[:6], _replace_class(r[6], "river.anomaly.svm:OneClassSVM", foreign)] for r in records]
    assert crafted != records
    store.write(state, header, crafted)
    data = recorded(30)
    result = run_cli(["run", "--config", str(config), "--state", str(state)], input=data)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith(b"W! ")]
    assert len(warnings) == 1 and b"unusable" in warnings[0] and b"not allowed in a checkpoint" in warnings[0], result.stderr
    assert b"starting fresh" in warnings[0]
    assert result.stdout == run_cli(["run", "--config", str(config)], input=data).stdout
    assert list(tmp_path.glob("s.msgpack.corrupt-*"))


def test_one_unsaveable_model_does_not_stop_the_checkpoint_of_the_others(tmp_path: Path) -> None:
    from riverguard.config import load
    from riverguard.engine import Engine
    from riverguard.log import Log
    from riverguard.state import StateStore
    from riverguard.stream import feed

    config = _config(tmp_path, SVM_RULE + f'[state]\npath = "{tmp_path / "s.msgpack"}"\n')
    import io

    errors = io.StringIO()
    engine = Engine(load(config), Log("info", stream=errors))
    feed(engine, b"sensor,room=a temp=1.5,hum=2.5 1\nsensor,room=b temp=1.5,hum=2.5 1\n", final=True)
    broken = engine.series[b"sensor,room=a temp"].detector
    broken._model["StandardScaler"].oddity = object()  # nothing the rule's allowlist can rebuild
    assert StateStore(engine, tmp_path / "s.msgpack").save()
    assert "W! " in errors.getvalue() and "the models of 1 series could not be saved" in errors.getvalue()
    again = Engine(load(config), Log("info", stream=errors))
    assert StateStore(again, tmp_path / "s.msgpack").restore() == 3
    assert b"sensor,room=a temp" not in again.series and b"sensor,room=b temp" in again.series
    assert "1 series was checkpointed without its model (it could not be saved): it starts fresh" in errors.getvalue()


def test_an_unsaveable_metric_model_is_named_as_the_summary_names_it(tmp_path: Path) -> None:
    """The W! for a model the checkpoint could not save named a scope = "metric" one by its raw key,
    'sensor,room=a \\n': it now names it as the replay's summary does, 'sensor,room=a (metric)'."""
    import io

    from riverguard.config import load
    from riverguard.engine import METRIC_FIELD, Engine
    from riverguard.log import Log
    from riverguard.state import StateStore
    from riverguard.stream import feed

    rule = SVM_RULE.replace("[rule.params]", 'scope = "metric"\n[rule.params]')
    config = _config(tmp_path, rule + f'[state]\npath = "{tmp_path / "s.msgpack"}"\n')
    errors = io.StringIO()
    engine = Engine(load(config), Log("info", stream=errors))
    feed(engine, b"sensor,room=a temp=1.5,hum=2.5 1\nsensor,room=b temp=1.5,hum=2.5 1\n", final=True)
    engine.series[b"sensor,room=a " + METRIC_FIELD].detector._model["StandardScaler"].oddity = object()
    assert StateStore(engine, tmp_path / "s.msgpack").save()
    assert "could not be saved and will start fresh after a restart (the others are saved); first: " \
           "'sensor,room=a (metric)': " in errors.getvalue(), errors.getvalue()


def test_start_up_does_not_import_river_for_the_default_detector(tmp_path: Path) -> None:
    """``riverguard run`` with the default detector (and a checkpoint) never imports River or scipy."""
    state = tmp_path / "s.msgpack"
    probe = (
        "import sys, runpy; sys.argv = ['riverguard', 'run', '--state', sys.argv[1]]\n"
        "try:\n    runpy.run_module('riverguard', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('river', 'scipy', 'numpy', 'pandas')), file=sys.stderr)\n"
    )
    for _ in range(2):  # without, then with a checkpoint to restore
        result = subprocess.run(
            [sys.executable, "-c", probe, str(state)], input=b"cpu,host=a idle=97.5 1\n", capture_output=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(b"cpu,host=a idle=97.5,idle_anomaly_score=")
        assert result.stderr.splitlines()[-1] == b"[]", result.stderr
    assert state.exists()


def test_checkpoint_records_stay_plain_msgpack(tmp_path: Path) -> None:
    """A river series' state is plain data (no pickle, no extension types): msgpack with ext disabled reads it."""
    _config_path, state, _header, records = _svm_checkpoint(tmp_path)
    assert {r[1] for r in records} == {"river"}
    for record in records:
        msgpack.unpackb(msgpack.packb(record[6], use_bin_type=True), max_ext_len=0, strict_map_key=False)


def test_evaluate_asks_for_a_config_for_river(tmp_path: Path) -> None:
    """``river`` has no default model: ``evaluate --detector river`` says so (no traceback)."""
    labels = tmp_path / "one.csv"
    labels.write_text("timestamp,value,label\n" + "".join(f"2024-01-01 00:{i:02d}:00,{i % 3}.5,0\n" for i in range(30)))
    result = run_cli(["evaluate", "--detector", "river", "--labels", str(labels)], timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(b"E! ") and result.stderr.count(b"\n") == 1, result.stderr
    assert b"--detector river: required: a River model spec" in result.stderr and b"--config" in result.stderr


def test_a_restored_series_is_rebuilt_from_its_state_without_cloning_the_rule_model() -> None:
    """Restoring a series decodes its model from the checkpoint; the rule's prototype is not cloned
    for it (a clone per restored series was built and thrown away). A new series gets a clone."""
    from riverguard import config as rg_config

    rule = rg_config.parse(
        '[[rule]]\nname = "r"\ndetector = "river"\n[rule.params]\n'
        'model = [{class = "preprocessing.StandardScaler"}, {class = "anomaly.OneClassSVM", nu = 0.2}]\n'
    ).rules[0]
    factory = rule.new_detector
    trained = factory()
    rng = random.Random(3)
    for _ in range(50):
        trained.process(rng.gauss(10.0, 1.0))
    state = trained.dump_state()
    clones = []
    prototype = factory.prototype._model
    original = type(prototype).clone
    type(prototype).clone = lambda self, *a, **k: clones.append(self) or original(self, *a, **k)
    try:
        restored = factory.restore(state)
        assert clones == []
        fresh = factory()
        assert len(clones) == 1 and fresh._model is not prototype
    finally:
        type(prototype).clone = original
    assert restored.dump_state() == state
    assert restored.process(3.0) == trained.process(3.0)
