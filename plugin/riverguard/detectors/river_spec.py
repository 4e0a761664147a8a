"""Any River anomaly model, named in the config in River's own ``(class, params)`` idiom."""

from __future__ import annotations

import bisect
import collections
import importlib
import inspect
import math
import re
from typing import Any

from .base import Detector, Factory
from .params import MAX_COUNT, Param

__all__ = ["ParamError", "RiverModel", "build", "measured"]

#: River's subpackages a spec may name classes from (never an arbitrary import path).
_PACKAGES = frozenset(
    "active anomaly bandit cluster compose covariance drift ensemble facto feature_extraction "
    "feature_selection forest imblearn linear_model misc model_selection multiclass multioutput "
    "naive_bayes neighbors optim preprocessing proba reco rules sketch stats time_series tree".split()
)


#: Measured bounds of the River parameters whose cost grows with them, by class: each series pays it
#: again (a clone builds nothing until its first sample; HalfSpaceTrees, RandomTreesEmbedding and the
#: projectors build their trees or weights there). Figures: one series, one field, the first sample
#: (trees) or each sample once the window is full (LODA, LocalOutlierFactor), on the 2-core dev machine.
#: The defaults are River's, there only for the parameter's type.
_TREES = "each series builds n_trees trees of 2 ** (height + 1) nodes at its first sample (10 trees of height 12: 0.3 s, 24 MB; 16: 13 s, 310 MB)"
_PROJECTION = "each series draws n_components weights per field and computes them all at each sample (10000: 17 ms a sample; 100000: 0.36 s, 51 MB)"
_BOUNDS: dict[str, tuple[Param, ...]] = {
    "anomaly.HalfSpaceTrees": (
        Param("n_trees", 10, _TREES, low=1, high=100),
        Param("height", 8, _TREES, low=1, high=12),
        Param("window_size", 250, "a count of samples", low=1, high=MAX_COUNT),
    ),
    "feature_extraction.RandomTreesEmbedding": (
        Param("n_trees", 10, _TREES, low=1, high=100),
        Param("height", 8, _TREES, low=1, high=12),
    ),
    "anomaly.LODA": (
        Param("n_bins", 10, "each of the n_random_cuts histograms of a series keeps up to n_bins bins", low=1, high=1000),
        Param("n_random_cuts", 100, "each sample is projected and counted n_random_cuts times "
              "(1000: 2 ms a sample; 10000: 31 ms and 17 MB a series after 300 samples; 100000: over 60 ms)", low=1, high=1000),
    ),
    "anomaly.LocalOutlierFactor": (
        Param("n_neighbors", 10, "each sample updates the distances to its n_neighbors nearest "
              "(100: 15 ms a sample once the window is full; 1000: 40 ms after 300 samples)", low=1, high=100),
    ),
    "neighbors.LazySearch": (
        Param("window_size", 50, "a LocalOutlierFactor compares each sample with every one in the window "
              "(1000: 1.1 ms a sample once full; 3000: 11 ms)", low=1, high=3000),
    ),
    "anomaly.GaussianScorer": (
        Param("window_size", 1000, "a count of samples", low=1, high=MAX_COUNT),
        Param("grace_period", 100, "a count of samples", low=0, high=MAX_COUNT),
    ),
    "feature_extraction.RBFSampler": (Param("n_components", 100, _PROJECTION, low=1, high=10_000),),
    "preprocessing.GaussianRandomProjector": (Param("n_components", 10, _PROJECTION, low=1, high=10_000),),
    "preprocessing.SparseRandomProjector": (Param("n_components", 10, _PROJECTION, low=1, high=10_000),),
    "feature_extraction.PolynomialExtender": (
        Param("degree", 2, "the features of a series grow as fields ** degree (8 fields, degree 5: 1286 features, "
              "0.6 s at the first sample; degree 8: 12869 features, 9 s)", low=1, high=5),
    ),
    "sketch.Histogram": (Param("max_bins", 256, "a series keeps up to max_bins bins", low=1, high=10_000),),
    # (The pad detector takes p, d and q with these bounds. In a river spec a forecaster only builds
    # inside a PredictiveAnomalyDetection, which is refused at build.)
    "time_series.SNARIMAX": (
        Param("p", 2, "the time per sample grows with the orders", low=0, high=100),
        Param("d", 1, "the time to build grows fast with it (1000: 0.11 s; 100000: over 20 s)", low=0, high=10),
        Param("q", 1, "the time per sample grows with the orders", low=0, high=100),
        Param("sp", 0, "the time per sample grows with the orders", low=0, high=100),
        Param("sd", 0, "the time to build grows fast with it (1000: 0.11 s)", low=0, high=10),
        Param("sq", 0, "the time per sample grows with the orders", low=0, high=100),
    ),
}  # fmt: skip


def measured(name: str) -> tuple[Param, ...]:
    """The measured bounds of River class ``name`` (``"anomaly.HalfSpaceTrees"``), with River's defaults.

    riverguard's ``hst`` and ``pad`` detectors build those classes and take the same bounds.

    >>> [(p.name, p.high) for p in measured("anomaly.HalfSpaceTrees")]
    [('n_trees', 100), ('height', 12), ('window_size', 1000000000)]
    """
    return _BOUNDS[name]


#: A River parameter that reads as a size or a count: for a class without measured bounds, an integer
#: given to it may be at most ``_GENERAL_FACTOR`` times River's default (a positive integer).
_SIZE_NAME = re.compile(
    r"^(n|num|number|max|maximum)_|(^|_)(size|capacity|height|depth|degree|k|maxlen|window|components|factors|"
    r"bins|clusters|models|trees|estimators|neighbors|iters|sweeps)$"
)
_GENERAL_FACTOR = 100
_resolved_bounds: dict[type, dict[str, Param]] | None = None


class ParamError(ValueError):
    """A spec riverguard cannot build; ``key`` says where in ``[rule.params]`` (e.g. ``model[1].nu``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _is_spec(value: Any) -> bool:
    return type(value) is dict and "class" in value


def _resolve(name: Any, key: str) -> type:
    """The River class called ``name`` (``"anomaly.OneClassSVM"``), looked up inside ``river.*`` only."""
    if not isinstance(name, str):
        raise ParamError(key, f'expected a class name such as "anomaly.OneClassSVM", got {name!r}')
    parts = name.split(".")
    if len(parts) < 2 or parts[0] not in _PACKAGES or not all(p.isidentifier() and not p.startswith("_") for p in parts):
        raise ParamError(key, f'"{name}" is not a River class (expected "<package>.<Class>" inside river, e.g. "anomaly.HalfSpaceTrees")')
    from river import base

    obj: Any = importlib.import_module(f"river.{parts[0]}")
    for part in parts[1:]:
        obj = getattr(obj, part, None)
        if obj is None:
            raise ParamError(key, f'River has no "{name}"')
    if not (isinstance(obj, type) and issubclass(obj, base.Base) and obj.__module__.startswith("river.")):
        raise ParamError(key, f'"{name}" is not a River estimator class')
    return obj


def build(spec: Any, key: str = "model", seed: int = 0) -> Any:
    """The River object a spec describes: ``{class = "...", param = value, ...}``, or a list of
    them (a ``compose.Pipeline``); parameter values may be specs themselves. A class that takes
    a ``seed`` the spec leaves out gets ``seed``, so every run (and every series) repeats."""
    if isinstance(spec, list):
        if not spec:
            raise ParamError(key, "an empty list is not a model (a list is a compose.Pipeline of specs)")
        from river import compose

        steps = [build(step, f"{key}[{i}]", seed) for i, step in enumerate(spec)]
        return steps[0] if len(steps) == 1 else compose.Pipeline(*steps)
    if not _is_spec(spec):
        raise ParamError(key, f'expected a model spec such as {{class = "anomaly.HalfSpaceTrees"}}, got {spec!r}')
    cls = _resolve(spec["class"], f"{key}.class")
    signature = inspect.signature(cls)
    known = {n for n, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    params: dict[str, Any] = {}
    for name, value in spec.items():
        if name == "class":
            continue
        if name not in known:
            raise ParamError(f"{key}.{name}", f'unknown parameter for {spec["class"]} (known: {", ".join(sorted(known))})')
        params[name] = _value(value, f"{key}.{name}", seed)
    _check_bounds(cls, spec, signature, key)
    if "seed" in known and "seed" not in params:
        params["seed"] = seed
    try:
        return cls(**params)
    except Exception as err:  # noqa: BLE001 - whatever River raises on bad settings
        raise ParamError(key, f'{spec["class"]} refuses these parameters: {type(err).__name__}: {err}') from None


def _bounds(cls: type) -> dict[str, Param]:
    """The measured bounds of ``cls``'s parameters (by name), if it is one of ``_BOUNDS``'s classes."""
    global _resolved_bounds
    if _resolved_bounds is None:
        _resolved_bounds = {}
        for name, params in _BOUNDS.items():
            try:
                _resolved_bounds[_resolve(name, name)] = {p.name: p for p in params}
            except ParamError:  # a class this River does not have
                pass
    return _resolved_bounds.get(cls, {})


def _check_bounds(cls: type, spec: dict[str, Any], signature: inspect.Signature, key: str) -> None:
    """Refuse, before anything is built, a size or count that would take unreasonable time or memory.

    A parameter of ``_BOUNDS`` takes an integer in its measured range. Any other integer is at most
    ``MAX_COUNT`` in size (``seed``: a 64-bit integer), and one given to a parameter named as a size
    or count (``n_models``, ``capacity``, ``k``...) at most ``_GENERAL_FACTOR`` times River's default.
    """
    measured = _bounds(cls)
    for name, value in spec.items():
        param = measured.get(name)
        if param is not None:
            try:
                param.check(value)
            except ValueError as err:
                why = f": {param.doc}" if type(value) in (int, float) else ""  # (a size out of range: its cost)
                raise ParamError(f"{key}.{name}", f"{err}{why}") from None
            continue
        if type(value) is not int:
            continue
        if name == "seed":
            if not -(2**63) <= value < 2**63:
                raise ParamError(f"{key}.{name}", f"seed must be an integer in [-{2**63}, {2**63 - 1}], got {value!r}")
            continue
        default = signature.parameters[name].default
        if _SIZE_NAME.search(name) and type(default) is int and default > 0:
            high = min(_GENERAL_FACTOR * default, MAX_COUNT)
            if value > high:
                raise ParamError(
                    f"{key}.{name}",
                    f"{name} must be an integer <= {high}, got {value!r}: a size or count of {spec['class']}, at most "
                    f"{_GENERAL_FACTOR} times River's default ({default}) so that a series' model stays small",
                )
        if not -MAX_COUNT <= value <= MAX_COUNT:
            raise ParamError(f"{key}.{name}", f"{name} must be an integer in [-{MAX_COUNT}, {MAX_COUNT}], got {value!r}")


def _value(value: Any, key: str, seed: int) -> Any:
    if _is_spec(value) or (isinstance(value, list) and value and all(_is_spec(v) for v in value)):
        return build(value, key, seed)
    if isinstance(value, dict):
        return {k: _value(v, f"{key}.{k}", seed) for k, v in value.items()}
    if isinstance(value, list):
        return [_value(v, f"{key}[{i}]", seed) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ParamError(key, f"unsupported value {value!r} (numbers, strings, booleans, lists, tables and specs)")


def _skeleton(model: Any) -> Any:
    """The model's shape: its class, and its steps' classes for a pipeline (what a checkpoint must match)."""
    steps = getattr(model, "steps", None)
    if isinstance(steps, dict):
        return (type(model), tuple(type(step) for step in steps.values()))
    return type(model)


class RiverModel(Detector):
    """A River anomaly detector (or a pipeline ending in one), built from a spec, with its
    scores mapped to [0, 1] against the series' own score history.

    Raw River scores are on each model's own scale (a one-class SVM's can be
    negative, half-space trees' sit in [0, 1] but high on normal data). Each
    series keeps its last ``window`` raw scores, and a sample scores one minus
    its conformal p-value among them: ``1 - (k + 1) / (n + 1)`` when ``k`` of
    the ``n`` remembered raw scores are at least as high as its own. In the
    spirit of ``river.anomaly.QuantileFilter`` (whose threshold is a running
    quantile of the scores), a threshold reads as a quantile: 0.999 flags a
    sample whose raw score is higher than every one of the last 999, and on
    scores that do not drift it is reached by at most 0.1 % of samples. So a
    threshold ``1 - a`` needs ``window >= 1/a - 1`` and flags nothing before
    the series has that many raw scores (the warm-up is built in).

    While all the remembered raw scores are equal (a model that has not learned
    enough to score, such as half-space trees in their first window), the first
    raw score that differs starts the history afresh.

    A field is fed as ``{"x": value}``; with ``scope = "metric"`` the model gets
    the metric's fields by name. A detector that learns from a target (River's
    ``SupervisedAnomalyDetector``, e.g. ``anomaly.GaussianScorer``) gets the
    field's value as ``y`` and no features. ``anomaly.PredictiveAnomalyDetection``
    is refused: it fails before its forecaster has learned (the ``pad``
    detector is the one to use).

    Parameters
    ----------
    model
        The spec: ``{"class": "anomaly.HalfSpaceTrees", "n_trees": 5}``, a list of specs
        (a ``compose.Pipeline``), parameter values may be specs. Classes are looked up
        inside ``river`` only.
    window
        Raw scores remembered per series for the calibration.

    Examples
    --------
    >>> import random
    >>> from riverguard.detectors.river_spec import RiverModel
    >>> rng = random.Random(3)
    >>> det = RiverModel({"class": "anomaly.GaussianScorer", "window_size": 500})
    >>> normal = [det.process(rng.gauss(10.0, 1.0)) for _ in range(1200)]
    >>> sum(score >= det.default_threshold for score in normal)
    0
    >>> round(det.process(25.0), 4)  # a higher raw score than every one of the last 1000
    0.999
    """

    __slots__ = ("model", "window", "_model", "_supervised", "_skeleton", "_allowed", "_history", "_sorted", "_varied")

    name = "river"
    default_threshold = 0.999
    default_warmup = 0  # the calibration cannot reach the default threshold before 999 raw scores
    #: Takes several features at once (``scope = "metric"``).
    multivariate = True
    PARAMS = (
        Param("model", None, "The River model (or pipeline) that scores each sample.",
              values='a River model spec, e.g. [{class = "preprocessing.MinMaxScaler"}, {class = "anomaly.HalfSpaceTrees"}]'),
        Param("window", 1000, "Raw scores remembered to rank the newest one against (a threshold 1 - a needs "
              "window >= 1/a - 1).", low=1, high=1_000_000),
    )  # fmt: skip

    def __init__(self, model: Any = None, window: int = 1000) -> None:
        if model is None:
            raise ParamError("model", 'required: a River model spec such as [{class = "preprocessing.MinMaxScaler"}, {class = "anomaly.HalfSpaceTrees"}]')
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 1_000_000:
            raise ParamError("window", f"expected an integer in [1, 1000000], got {window!r}")
        self.model = model
        self.window = window
        self._model = build(model)
        self._check(self._model)
        self._supervised = _supervised(self._model)
        self._skeleton = _skeleton(self._model)
        self._allowed: Any = None
        self._history: collections.deque[float] = collections.deque()
        self._sorted: list[float] = []
        self._varied = False  # whether the raw scores have differed yet

    @staticmethod
    def _check(model: Any) -> None:
        from river import anomaly, base

        if any(isinstance(part, anomaly.PredictiveAnomalyDetection) for part in _parts(model)):
            raise ParamError(
                "model",
                "anomaly.PredictiveAnomalyDetection is not supported (it fails before its forecaster has learned):"
                ' use detector = "pad" instead, the same detection around a Holt-Winters or SNARIMAX forecaster',
            )
        final = model
        steps = getattr(model, "steps", None)
        if isinstance(steps, dict):
            final = list(steps.values())[-1]
            if isinstance(final, base.SupervisedAnomalyDetector):
                raise ParamError("model", f"{type(final).__name__} learns from a target: use it alone, not at the end of a pipeline")
        if not isinstance(final, (base.AnomalyDetector, base.AnomalyFilter, base.SupervisedAnomalyDetector)):
            raise ParamError("model", f"{type(final).__name__} is not an anomaly detector (the model, or a pipeline's last step, must be one)")

    @classmethod
    def factory(cls, params: dict[str, Any]) -> Factory:  # type: ignore[override]
        """Build and check the rule's model once; each new series then gets a ``clone()`` of it.

        The check runs a clone on two samples, and records the classes (and functions) it
        then holds: they, and only they, may be rebuilt from this rule's checkpointed series
        (which are rebuilt from their state, not cloned first). A model holding something a
        checkpoint cannot keep is refused here, naming what and where.
        """
        from ..state import codec

        prototype = cls(**params)
        trial = prototype._fresh()
        try:
            for x in (0.0, 1.0, 0.5):
                trial.process(x)
            if trial._supervised:
                trial._model.score_one(None, 1.0)
        except Exception as err:  # noqa: BLE001 - whatever the model raises on a sample
            raise ParamError("model", f"the model fails on a sample: {type(err).__name__}: {err}") from None
        try:
            frames, factories, functions = codec.classes_in(trial._model)
        except codec.StateCodecError as err:
            raise ParamError("model", f"{_label(prototype.model)} cannot be checkpointed: {err}") from None
        prototype._allowed = codec.allowlist(frames, factories, functions)
        return _Factory(prototype)

    @property
    def univariate(self) -> bool:
        """True for a model that learns from a target (it watches one field: no ``scope = "metric"``)."""
        return self._supervised

    def _fresh(self, clone: bool = True) -> RiverModel:
        """A series' detector with this one's settings, nothing learned: a clone of this one's model,
        or (``clone`` False) no model until :meth:`load_state` gives it one."""
        new = object.__new__(type(self))
        new.model, new.window = self.model, self.window
        new._model = self._model.clone() if clone else None
        new._supervised, new._skeleton, new._allowed = self._supervised, self._skeleton, self._allowed
        new._history = collections.deque()
        new._sorted = []
        new._varied = False
        return new

    def _raw(self, x: float | dict[str, float], t: float | None) -> float:
        model = self._model
        if self._supervised:
            if isinstance(x, dict):
                raise ValueError(f"{type(model).__name__} learns from a target: it watches one field at a time")
            raw = model.score_one(None, x)
        else:
            raw = model.score_one({"x": x} if not isinstance(x, dict) else x)
        raw = float(raw)
        if not math.isfinite(raw):
            raise ValueError(f"{type(model).__name__} returned a raw score of {raw}")
        return raw

    def _rank(self, raw: float) -> float:
        ranked = self._sorted
        n = len(ranked)
        return 1.0 - (n - bisect.bisect_left(ranked, raw) + 1) / (n + 1)

    def score_one(self, x: float | dict[str, float], t: float | None = None) -> float:  # type: ignore[override]
        return self._rank(self._raw(x, t))

    def process(self, x: float | dict[str, float], t: float | None = None) -> float:  # type: ignore[override]
        raw = self._raw(x, t)
        score = self._rank(raw)
        self.learn_one(x, t)
        self._remember(raw)
        return score

    def learn_one(self, x: float | dict[str, float], t: float | None = None) -> None:  # type: ignore[override]
        if self._supervised:
            self._model.learn_one(None, x)
        else:
            self._model.learn_one({"x": x} if not isinstance(x, dict) else x)

    def _remember(self, raw: float) -> None:
        history, ranked = self._history, self._sorted
        if not self._varied and ranked and ranked[0] != raw:  # the model's first informative score
            history.clear()
            ranked.clear()
            self._varied = True
        if len(history) >= self.window:
            del ranked[bisect.bisect_left(ranked, history.popleft())]
        history.append(raw)
        bisect.insort(ranked, raw)

    def dump_state(self) -> list[Any]:
        from ..state import codec

        return [codec.encode(self._model, self._allowed), list(self._history), self._varied]

    def load_state(self, state: list[Any]) -> None:
        from ..state import codec

        if len(state) != 3 or type(state[1]) is not list or len(state[1]) > self.window or type(state[2]) is not bool:
            raise ValueError("bad river model state")
        if not all(type(v) is float and math.isfinite(v) for v in state[1]):
            raise ValueError("bad river model score history")
        model = codec.decode(state[0], self._allowed)
        if _skeleton(model) != self._skeleton:
            raise ValueError(f"the checkpoint holds a {type(model).__name__}, not the rule's model")
        self._model = model
        self._history = collections.deque(state[1])
        self._sorted = sorted(state[1])
        self._varied = state[2]

    def params(self) -> dict[str, Any]:
        return {"model": self.model, "window": self.window}


def _label(spec: Any) -> str:
    """The spec as a message names it: its class (``anomaly.LODA``), or ``the pipeline`` for a list."""
    if _is_spec(spec):
        return str(spec["class"])
    if isinstance(spec, list) and len(spec) == 1 and _is_spec(spec[0]):
        return str(spec[0]["class"])
    return "the pipeline"


def _parts(model: Any) -> list[Any]:
    """The model, a pipeline's steps and a filter's detector, nested ones included."""
    parts = [model]
    steps = getattr(model, "steps", None)
    for part in steps.values() if isinstance(steps, dict) else ():
        parts += _parts(part)
    inner = getattr(model, "anomaly_detector", None)
    if inner is not None:
        parts += _parts(inner)
    return parts


def _supervised(model: Any) -> bool:
    from river import base

    inner = getattr(model, "anomaly_detector", model) if isinstance(model, base.AnomalyFilter) else model
    return isinstance(inner, base.SupervisedAnomalyDetector)


class _Factory(Factory):
    """A rule's river models: a clone of the checked prototype for a new series; a checkpointed
    series gets the model its state holds (decoded through the rule's allowlist), without a clone."""

    __slots__ = ("prototype",)

    def __init__(self, prototype: RiverModel) -> None:
        super().__init__(RiverModel, prototype.params())
        self.prototype = prototype

    def __call__(self) -> RiverModel:
        return self.prototype._fresh()

    def restore(self, state: Any) -> RiverModel:
        detector = self.prototype._fresh(clone=False)
        detector.load_state(state)
        return detector
