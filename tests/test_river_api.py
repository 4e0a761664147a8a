"""riverguard's detectors used from River code (``riverguard.river``): valid River estimators, same scores.

River's own estimator checks (``river.checks.yield_checks``) run on each
detector, with two substitutions, because River 0.26's ``check_estimator``
needs scikit-learn and a download: the datasets (River's ``_yield_datasets``
gives an anomaly detector the remote ``CreditCard`` set of 30 features, built
with ``sklearn.datasets`` imported first) are riverguard's seeded labelled
series, and ``check_roc_auc`` (``sklearn.metrics.roc_auc_score``) is the same
check with the AUC computed here. Every other check is River's, run as
``check_estimator`` runs it. The README ("Use riverguard's detectors from
River") lists what this leaves out.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import os
import pickle
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import river  # a hard dependency: never skip these checks
from river import anomaly, base, compose, preprocessing  # noqa: E402
from river import checks as river_checks  # noqa: E402

from riverguard import detectors  # noqa: E402
from riverguard import river as rg  # noqa: E402

RIVER_CLASSES = [rg.Sentinel, rg.Context, rg.ZScore, rg.PAD, rg.HST]
UNIVARIATE = [rg.Sentinel, rg.Context, rg.ZScore, rg.PAD]


def _labelled(n: int, keys: tuple[str, ...]) -> list[tuple[dict[str, float], bool]]:
    """A seeded daily-ish wave with noise and a spike every 97 samples after the first 250 (labelled True)."""
    rng = random.Random(42)
    out = []
    for i in range(n):
        spike = i >= 250 and i % 97 == 0
        x = {k: 50.0 + j * 7.0 + 10.0 * math.sin(2 * math.pi * i / 60) + rng.gauss(0.0, 1.0) for j, k in enumerate(keys)}
        if spike:
            x[keys[0]] += 40.0
        out.append((x, spike))
    return out


def _datasets(model: Any, scale: int = 1) -> Iterator[list[tuple[dict[str, float], bool]]]:
    """Stands in for River's ``_yield_datasets``: one value for every detector, three features for hst."""
    yield _labelled(600 * scale, ("v",))
    if isinstance(model, rg.HST):
        yield _labelled(600 * scale, ("cpu", "mem", "disk"))


def check_roc_auc(anomaly_detector: Any, dataset: Any) -> None:
    """River's ``checks.anomaly.check_roc_auc`` (prequential, AUC >= 0.5), the AUC computed without scikit-learn."""
    scores, labels = [], []
    for x, y in dataset:
        scores.append(anomaly_detector.score_one(x))
        anomaly_detector.learn_one(x)
        labels.append(y)
    assert _roc_auc(labels, scores) >= 0.5


def _roc_auc(labels: list[bool], scores: list[float]) -> float:
    """The probability that an anomaly outscores a normal sample (ties count half): the ROC AUC."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _river_checks(model: Any) -> list[Callable[..., None]]:
    """Every check River's ``check_estimator`` runs on ``model``, on riverguard's datasets."""
    saved = river_checks._yield_datasets, river_checks.anomaly.check_roc_auc
    river_checks._yield_datasets, river_checks.anomaly.check_roc_auc = _datasets, check_roc_auc
    try:
        return [c for c in river_checks.yield_checks(model) if c.__name__ not in model._unit_test_skips()]
    finally:
        river_checks._yield_datasets, river_checks.anomaly.check_roc_auc = saved


def _cases() -> Iterator[Any]:
    for cls in RIVER_CLASSES:
        seen: dict[str, int] = {}
        for check in _river_checks(cls()):
            n = seen[check.__name__] = seen.get(check.__name__, 0) + 1
            yield pytest.param(cls, check, id=f"{cls.__name__}-{check.__name__}-{n}")


@pytest.mark.parametrize(("cls", "check"), list(_cases()))
def test_river_estimator_check(cls: type, check: Callable[..., None]) -> None:
    """River's estimator checks pass on each River-facing detector (as ``check_estimator`` runs them)."""
    check(cls().clone())


def test_the_checks_that_matter_are_run() -> None:
    """The harness really yields River's checks, the dataset ones included (none silently lost)."""
    names = {c.__name__ for c in _river_checks(rg.Sentinel())}
    assert {
        "check_clone_with_new_params_applies", "check_get_params_matches_signature", "check_repr_roundtrips_clone",
        "check_learn_one", "check_predict_one_pure", "check_no_state_aliasing_with_input",
        "check_clone_is_independent", "check_pickling", "check_roc_auc", "check_emerging_features",
        "check_bounded_memory_growth",
    } <= names  # fmt: skip


def _broken_clone() -> type:
    """A ZScore whose constructor silently drops ``min_std`` (so clone() loses that setting)."""

    class LosesMinStd(rg.ZScore):
        pass

    keep = LosesMinStd.__init__

    def __init__(self: Any, **params: Any) -> None:
        params.pop("min_std", None)
        keep(self, **params)

    __init__.__signature__ = keep.__signature__  # type: ignore[attr-defined]
    LosesMinStd.__init__ = __init__  # type: ignore[method-assign]
    return LosesMinStd


class _MutatesInput(rg.ZScore):
    """A ZScore that changes the dict it learns from."""

    def learn_one(self, x: dict[str, Any], t: float | None = None) -> None:
        super().learn_one(x, t)
        x["v"] = 0.0


@pytest.mark.parametrize(
    ("cls", "check_name"),
    [(_broken_clone(), "check_clone_with_new_params_applies"), (_MutatesInput, "check_learn_one")],
    ids=["clone-loses-a-setting", "learn_one-mutates-x"],
)
def test_a_broken_detector_fails_the_checks(cls: type, check_name: str) -> None:
    """The checks above can fail: a detector that stops being a valid River estimator is caught."""
    found = [c for c in _river_checks(cls()) if c.__name__ == check_name]
    assert found
    with pytest.raises(AssertionError):
        for check in found:
            check(cls().clone())


@pytest.mark.parametrize("cls", RIVER_CLASSES, ids=lambda c: c.__name__)
def test_is_a_river_anomaly_detector(cls: type) -> None:
    det = cls()
    assert isinstance(det, base.AnomalyDetector)
    assert isinstance(det, detectors.Detector)  # and still a riverguard detector
    assert det.clone()._get_params() == det._get_params()


def _stream(n: int = 2000, step: float = 300.0) -> list[tuple[float, float]]:
    """(value, event time in seconds): a daily cycle, a sample every ``step`` seconds, with a spike."""
    rng = random.Random(3)
    t0 = 1_700_000_000.0
    out = []
    for i in range(n):
        t = t0 + step * i
        v = 40.0 + 15.0 * math.sin(2 * math.pi * (t % 86400) / 86400) + rng.gauss(0.0, 1.5)
        if i in (1500, 1501, 1502):
            v += 60.0
        out.append((round(v, 3), t))
    return out


@pytest.mark.parametrize("name", ["sentinel", "context", "zscore", "pad"])
def test_same_scores_as_the_engine(name: str) -> None:
    """score_one then learn_one on ``{"v": value}`` with the time gives the engine's ``process(value, t)``, exactly."""
    engine = detectors.resolve(name)()
    river_facing = getattr(rg, type(engine).__name__)(time_key="at")
    expected, got = [], []
    for v, t in _stream():
        expected.append(engine.process(v, t))
        x = {"v": v, "at": dt.datetime.fromtimestamp(t, dt.timezone.utc)}
        got.append(river_facing.score_one(x))
        river_facing.learn_one(x)
    assert got == expected
    assert max(expected) > 0.5  # the stream is not trivially scored 0


@pytest.mark.parametrize("cls", [rg.Sentinel, rg.Context], ids=lambda c: c.__name__)
def test_score_one_resolves_no_setting_and_learns_nothing(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """sentinel's and context's score_one score a twin built from the settings already resolved: the
    constructor, which checks every setting again, is not called (it cost two thirds of a score_one)."""
    from riverguard.detectors import base

    det = cls(time_key="at")
    start = dt.datetime(2026, 11, 2)
    for i, (x, _) in enumerate(_labelled(400, ("v",))):
        det.learn_one({**x, "at": start + dt.timedelta(minutes=i)})
    resolved: list[str] = []
    monkeypatch.setattr(base, "resolve", lambda *args: resolved.append(args[-1]) or dict(det.params()))
    before = det.dump_state()
    scores = [det.score_one({"v": v, "at": start + dt.timedelta(days=1)}) for v in (50.0, 150.0, 50.0)]
    assert resolved == []
    assert det.dump_state() == before  # nothing learned
    assert scores[0] == scores[2] < 0.5 <= scores[1]


def test_hst_same_scores_as_a_metric_scope_rule() -> None:
    engine = detectors.resolve("hst")()
    river_facing = rg.HST()
    rows = [x for x, _ in _labelled(600, ("cpu", "mem", "disk"))]
    expected = [engine.process(dict(x)) for x in rows]
    got = []
    for x in rows:
        got.append(river_facing.score_one(x))
        river_facing.learn_one(x)
    assert got == expected
    assert max(expected) > 0.9


def test_the_time_from_x_from_t_and_none() -> None:
    """``time_key`` (datetime, naive = UTC, or seconds) and the ``t`` keyword give the same scores; ``t`` wins."""
    by_key, by_naive, by_seconds, by_t, untimed = (
        rg.Sentinel(time_key="at"), rg.Sentinel(time_key="at"), rg.Sentinel(time_key="at"), rg.Sentinel(),
        rg.Sentinel(),
    )  # fmt: skip
    scores: dict[str, list[float]] = {k: [] for k in ("key", "naive", "seconds", "t", "none", "t_wins")}
    t_wins = rg.Sentinel(time_key="at")
    for v, t in _stream(step=3600.0):
        aware = dt.datetime.fromtimestamp(t, dt.timezone.utc)
        for key, det, x, kw in (
            ("key", by_key, {"v": v, "at": aware}, {}),
            ("naive", by_naive, {"v": v, "at": aware.replace(tzinfo=None)}, {}),
            ("seconds", by_seconds, {"v": v, "at": t}, {}),
            ("t", by_t, {"v": v}, {"t": aware if int(t) // 3600 % 2 else t}),  # seconds or a datetime
            ("none", untimed, {"v": v}, {}),
            ("t_wins", t_wins, {"v": v, "at": 0.0}, {"t": t}),
        ):
            scores[key].append(det.score_one(x, **kw))
            det.learn_one(x, **kw)
    assert scores["key"] == scores["naive"] == scores["seconds"] == scores["t"] == scores["t_wins"]
    # the time is really used: hourly, scoring starts after 3 days (72 samples), not 200
    assert scores["none"][72:200] == [0.0] * 128 and any(scores["key"][72:200])


def test_pipeline_and_filters() -> None:
    """In a River pipeline the time passes the scaler by a union, under time_key; River's filters wrap a detector."""
    pipeline = (compose.Select("v") | preprocessing.StandardScaler()) + compose.Select("at") | rg.Sentinel(time_key="at")
    alone, scaler = rg.Sentinel(), preprocessing.StandardScaler()
    scores = []
    for v, t in _stream(400, step=3600.0):
        x = {"v": v, "at": t}
        scores.append(pipeline.score_one(x))
        assert scores[-1] == alone.score_one(scaler.transform_one({"v": v}), t=t)
        pipeline.learn_one(x)
        scaler.learn_one({"v": v})
        alone.learn_one(scaler.transform_one({"v": v}), t=t)
    assert any(scores[72:200])  # the time reached the detector: hourly, scoring starts after 3 days, not 200
    filtered = anomaly.QuantileFilter(rg.ZScore(), q=0.99)
    for v, _ in _stream(400):
        filtered.learn_one({"v": v})
    assert filtered.classify(filtered.score_one({"v": 500.0}))


@pytest.mark.parametrize("cls", UNIVARIATE, ids=lambda c: c.__name__)
def test_one_value_only(cls: type) -> None:
    """Two values are refused with a message; no value scores 0.0 and teaches nothing (River's missing feature)."""
    det = cls(time_key="at")
    for v, t in _stream(300):
        det.learn_one({"v": v, "at": t})
    with pytest.raises(ValueError, match="watches one value"):
        det.score_one({"a": 1.0, "b": 2.0})
    before = pickle.dumps(det)
    assert det.score_one({}) == 0.0
    assert det.score_one({"at": 1.0}) == 0.0
    det.learn_one({"at": 2.0})
    assert pickle.dumps(det) == before
    with pytest.raises(TypeError, match="datetime or seconds"):
        det.score_one({"v": 1.0, "at": "yesterday"})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("cls", RIVER_CLASSES, ids=lambda c: c.__name__)
def test_a_nan_or_inf_is_a_missing_value(cls: type, bad: float) -> None:
    """A NaN or infinite value scores 0.0 and teaches nothing (HST: that feature is left out), so a
    later spike scores as it would without it. Before, one NaN set sentinel's long-run mean to NaN
    for good (a spike of 300 then scored 0.20, not 1.0) and one inf made ZScore score 1.0 ever after."""
    rng = random.Random(5)
    clean, spoiled = cls(), cls()
    for i in range(1200):
        x = {"v": float(i % 7)} if cls is not rg.HST else {"v": float(i % 7), "w": rng.gauss(0.0, 1.0)}
        for det in (clean, spoiled):
            det.learn_one(x)
    before = pickle.dumps(spoiled)
    assert spoiled.score_one({"v": bad}) == 0.0
    spoiled.learn_one({"v": bad})
    assert pickle.dumps(spoiled) == before
    if cls is rg.HST:  # the finite feature is still learned, the other left out
        spoiled.learn_one({"v": bad, "w": 0.5})
        clean.learn_one({"w": 0.5})
        assert pickle.dumps(spoiled) == pickle.dumps(clean)
    spike = {"v": 300.0} if cls is not rg.HST else {"v": 300.0, "w": 0.0}
    assert spoiled.score_one(spike) == clean.score_one(spike)
    if cls in (rg.Sentinel, rg.ZScore):
        assert clean.score_one(spike) == 1.0
        assert spoiled.score_one({"v": 3.0}) == clean.score_one({"v": 3.0}) < 0.5


@pytest.mark.parametrize("cls", RIVER_CLASSES, ids=lambda c: c.__name__)
def test_pickle_and_deepcopy_keep_what_was_learned(cls: type) -> None:
    det = cls()
    stream = _labelled(700, ("v",))
    for x, _ in stream[:500]:
        det.learn_one(x)
    for twin in (pickle.loads(pickle.dumps(det)), copy.deepcopy(det)):
        assert type(twin) is cls and twin._get_params() == det._get_params()
        assert [twin.score_one(x) for x, _ in stream[500:]] == [det.score_one(x) for x, _ in stream[500:]]


def test_doctests_in_the_pure_python_build() -> None:
    """The module's examples also hold where the detectors run as plain Python (no compiler)."""
    env = {**os.environ, "RIVERGUARD_PURE_PYTHON": "1"}
    code = (
        "import doctest, riverguard.river as m, riverguard.detectors as d\n"
        "assert not d.COMPILED, d.COMPILED\n"
        "r = doctest.testmod(m)\n"
        "assert r.attempted >= 20 and not r.failed, r\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
