"""Detector state as plain msgpack data, and back, through an explicit allowlist.

No pickle. ``encode`` turns a detector (and the River objects inside it) into
nested lists, maps, numbers, strings and bytes. Every msgpack map in the
result is a tagged node ``{"\\x00": kind, ...}``; objects name their class as
``"module:QualName"``. ``decode`` rebuilds objects only for classes in an
:class:`Allowlist` (the built-in detectors' by default; a ``detector =
"river"`` rule has its own, the classes of its spec) and never calls a function named by the data: objects are
created with ``cls.__new__`` and their attributes set directly (in the
instance ``__dict__``, or through the class's own ``__slots__`` descriptors);
the only methods it calls are the ``__setstate__``/``setstate`` of the few
allowlisted classes whose state is opaque (River's Rust statistics,
``random.Random``). A function held as an attribute (River's Rust distance
function in ``LocalOutlierFactor``) is saved by name and given back only as
the very object an allowlist holds under that name: never looked up, imported
or called.

An object whose state the codec cannot see (a builtin or extension object
other than those above, a subclass of a builtin container other than
``deque``, a bound method) is refused with :class:`StateCodecError` naming
its type and where it was found, rather than saved without its state.

>>> from riverguard.detectors import ZScore
>>> det = ZScore()
>>> for x in (1.0, 2.0, 4.0):
...     det.learn_one(x)
>>> clone = decode(encode(det))
>>> clone.score_one(10.0) == det.score_one(10.0)
True
>>> decode({"\\x00": "obj", "c": "os:system", "i": 0, "d": []})
Traceback (most recent call last):
...
riverguard.state.codec.StateCodecError: class 'os:system' is not allowed in a checkpoint
"""

from __future__ import annotations

import collections
import functools
import random
import types
from typing import Any

__all__ = ["ALLOWED", "Allowlist", "StateCodecError", "allowlist", "classes_in", "decode", "encode"]

_TAG = "\x00"
_MAX_DEPTH = 200


class StateCodecError(ValueError):
    """State that cannot be encoded, or data that is not a valid encoding.

    ``path`` is where in the encoded object the encoder met the problem (``"._nn.dist_func"``),
    empty for the object itself and for decoding errors."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []

    def __str__(self) -> str:
        return f"{self.message} (at {''.join(self.path)})" if self.path else self.message


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class Allowlist:
    """What a checkpoint may construct: classes by ``"module:QualName"``, ``defaultdict`` factories,
    and the functions an object may hold.

    ``frames`` are the classes rebuilt from their attributes; the opaque ones
    (River's Rust statistics, its ``VectorDict``, ``random.Random``) are rebuilt
    from their own state through the few methods named above. A Rust statistic
    among ``frames`` (``RsQuantile`` in a ``QuantileFilter``) is taken as an
    opaque one. ``functions`` are given back by name as these very objects.
    """

    def __init__(self, frames: list[type], factories: list[type], functions: list[Any] = ()) -> None:  # type: ignore[assignment]
        opaque = _opaque()
        rust = _rust()
        self.rust = {c for c in (*opaque[:2], *frames) if c in rust}
        self.frames = {c for c in frames if c not in self.rust}
        self.vectordict = opaque[2]
        self.classes: dict[str, type] = {_name(c): c for c in [*frames, *opaque, random.Random]}
        self.factories: dict[str, type] = {_name(c): c for c in (float, int, list, dict, tuple, *factories)}
        self.functions: dict[str, Any] = {_name(f): f for f in functions}


@functools.cache
def _opaque() -> tuple[type, type, type]:
    """River's Rust-backed statistics (opaque state via __getstate__/__setstate__) and its VectorDict."""
    from river import linear_model, stats

    return (
        type(stats.EWMean(0.5)._ewmean),  # type: ignore[attr-defined]
        type(stats.EWVar(0.5)._ewvar),  # type: ignore[attr-defined]
        type(linear_model.LinearRegression()._weights),
    )


@functools.cache
def _rust() -> frozenset[type]:
    """River's Rust statistics whose state is opaque bytes: the classes of the module of
    ``RsEWMean`` that define both ``__getstate__`` and ``__setstate__`` (``RsQuantile`` and the like)."""
    import sys

    module = sys.modules[_opaque()[0].__module__]
    return frozenset(
        c for c in vars(module).values() if isinstance(c, type) and "__getstate__" in vars(c) and "__setstate__" in vars(c)
    )


#: Python's flag for a class created at run time (a class statement, but also most extension types).
_HEAPTYPE = 1 << 9


@functools.cache
def _layout(t: type) -> tuple[tuple[tuple[str, Any], ...], bool, str | None]:
    """How an object of class ``t`` keeps its attributes: its ``__slots__`` (name and member descriptor,
    base classes first), whether it has an instance ``__dict__``, and why the codec cannot see all of
    its state (None when it can).

    The state is all in the ``__dict__`` and the slots only when no class of the MRO but
    ``object`` (and ``deque``, whose items are saved too) adds storage of its own at the C level:
    none has a C-level ``__new__`` or variable-size items, and each is at most its base's size
    plus its slots and a dict and a weakref pointer (a class statement), or exactly its base's
    size (a builtin type such as ``typing.Generic`` in some Pythons). So a builtin, a Cython or
    Rust extension type, or a subclass of ``dict``, ``list`` or ``tuple`` (a namedtuple) is refused.
    """
    slots: list[tuple[str, Any]] = []
    for klass in reversed(t.__mro__):
        if klass is object or klass is collections.deque:
            continue
        own: list[tuple[str, Any]] = []
        declared = klass.__dict__.get("__slots__", ())
        for name in (declared,) if isinstance(declared, str) else declared:
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"
            descriptor = klass.__dict__.get(name)
            if isinstance(descriptor, types.MemberDescriptorType):
                own.append((name, descriptor))
        base = klass.__base__ or object
        c_new = type(klass.__dict__.get("__new__")) is types.BuiltinFunctionType
        room = 8 * (len(own) + 2) if klass.__flags__ & _HEAPTYPE else 0
        if c_new or klass.__itemsize__ or klass.__basicsize__ - base.__basicsize__ > room:
            kind = _kind(t)
            return (), False, f"it holds {'an' if kind[0] in 'aeiouAEIOU' else 'a'} {kind}, whose state riverguard cannot save"
        slots += own
    return tuple(slots), t.__dictoffset__ != 0, None


def _kind(t: type) -> str:
    """A class as an error message names it: ``numpy.ndarray``, ``functools.partial``, or
    ``mod.Foo (a subclass of dict)``."""
    dotted = t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
    if t.__flags__ & _HEAPTYPE:
        for klass in t.__mro__[1:]:
            if klass is not object and not klass.__flags__ & _HEAPTYPE:
                return f"{dotted} (a subclass of {klass.__qualname__})"
    return dotted


def _function_name(f: Any) -> str | None:
    """``"module:QualName"`` of a module-level function, builtin or Python; None for anything else
    (a bound method, a lambda, a nested function, a callable object)."""
    t = type(f)
    if t is types.BuiltinFunctionType:
        if f.__self__ is not None and type(f.__self__) is not types.ModuleType:
            return None  # a builtin bound to an object
    elif t is not types.FunctionType or "<" in f.__qualname__:
        return None
    module = getattr(f, "__module__", None)
    return f"{module}:{f.__qualname__}" if isinstance(module, str) else None


@functools.cache
def _default() -> Allowlist:
    """The built-in detectors and the River classes inside them (imported on first use)."""
    from river import anomaly, compose, linear_model, optim, preprocessing, stats, time_series
    from river.time_series import holt_winters as _hw
    from river.time_series import snarimax as _snarimax
    from river.tree import padded as _padded

    from .. import detectors

    frames: list[type] = [
        *(detectors.REGISTRY[name] for name in detectors.REGISTRY if name != "river"),
        anomaly.HalfSpaceTrees,
        anomaly.PredictiveAnomalyDetection,
        _padded.PaddedBranch,
        _padded.PaddedLeaf,
        preprocessing.MinMaxScaler,
        preprocessing.StandardScaler,
        stats.EWMean,
        stats.EWVar,
        stats.Mean,
        stats.Var,
        stats.Min,
        stats.Max,
        time_series.HoltWinters,
        time_series.SNARIMAX,
        _hw.AdditiveLevel,
        _hw.MultiplicativeLevel,
        _hw.Trend,
        _hw.AdditiveSeason,
        _hw.MultiplicativeSeason,
        _snarimax.Differencer,
        compose.Pipeline,
        linear_model.LinearRegression,
        optim.SGD,
        optim.schedulers.Constant,
        optim.losses.Squared,
        optim.initializers.Zeros,
    ]
    return Allowlist(frames, [stats.Min, stats.Max, stats.Mean, stats.Var])


def allowlist(frames: list[type], factories: list[type] = (), functions: list[Any] = ()) -> Allowlist:  # type: ignore[assignment]
    """An allowlist of exactly these classes (plus the opaque River helpers) and functions, e.g. one rule's models."""
    return Allowlist(list(frames), list(factories), list(functions))


def __getattr__(name: str) -> Any:
    if name == "ALLOWED":  # classes the default allowlist may construct, by "module:QualName"
        return _default().classes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def encode(obj: Any, allowed: Allowlist | None = None) -> Any:
    """Plain msgpack-ready data for ``obj``, whose classes must all be in ``allowed`` (default: the built-in ones)."""
    return _Encoder(allowed or _default()).encode(obj, 0)


def decode(data: Any, allowed: Allowlist | None = None) -> Any:
    """Rebuild what :func:`encode` produced, constructing only classes in ``allowed``; raise
    :class:`StateCodecError` on anything else."""
    return _Decoder(allowed or _default()).decode(data, 0)


def classes_in(obj: Any) -> tuple[list[type], list[type], list[Any]]:
    """The classes of the objects reachable from ``obj`` (not the plain containers), the
    classes used as ``defaultdict`` factories and the functions held, each in the order first met.

    Raises :class:`StateCodecError` for an object the codec cannot save (its message names the
    type, its ``path`` where it was found)."""
    encoder = _Encoder(None)
    try:
        encoder.encode(obj, 0)
    except StateCodecError as err:
        if err.path:
            err.path.insert(0, type(obj).__qualname__)
        raise
    return list(encoder.found), list(encoder.found_factories), list(encoder.found_functions.values())


class _Encoder:
    def __init__(self, allowed: Allowlist | None) -> None:
        """``allowed`` None: accept every class and record it in ``found`` (see :func:`classes_in`)."""
        self.allowed = allowed
        self.found: dict[type, None] = {}
        self.found_factories: dict[type, None] = {}
        self.found_functions: dict[str, Any] = {}
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # keep encoded objects alive so ids stay unique

    def encode(self, obj: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise StateCodecError("state nested too deeply")
        t = type(obj)
        if obj is None or t in (bool, float, str, bytes):
            return obj
        if t is int:
            if -(2**63) <= obj < 2**64:
                return obj
            return {_TAG: "bigint", "v": str(obj)}
        d = depth + 1
        if t is list:
            return [self.encode(v, d) for v in obj]
        if t is tuple:
            return {_TAG: "tuple", "v": [self.encode(v, d) for v in obj]}
        if t is dict:
            return {_TAG: "dict", "v": self._items(obj, d)}
        if t is collections.OrderedDict:
            return {_TAG: "odict", "v": self._items(obj, d)}
        if t is collections.Counter:
            return {_TAG: "counter", "v": self._items(obj, d)}
        if t is collections.defaultdict:
            return {_TAG: "ddict", "f": self._factory(obj.default_factory, d), "v": self._items(obj, d)}
        if t is collections.deque:
            return {_TAG: "deque", "m": obj.maxlen, "v": [self.encode(v, d) for v in obj]}
        if t in (set, frozenset):
            items = sorted((self.encode(v, d) for v in obj), key=repr)
            return {_TAG: "set" if t is set else "frozenset", "v": items}
        if t is types.BuiltinFunctionType or t is types.FunctionType:
            return self._function(obj)
        key = id(obj)
        if key in self.memo:
            return {_TAG: "ref", "i": self.memo[key]}
        name = _name(t)
        allowed = self.allowed
        if allowed is None:
            self.found[t] = None
        elif allowed.classes.get(name) is not t:
            raise StateCodecError(f"class {name!r} is not allowed in a checkpoint")
        index = self.memo[key] = len(self.memo)
        self.keep.append(obj)
        if t in (allowed.rust if allowed is not None else _rust()):
            args = list(obj.__getnewargs__()) if hasattr(t, "__getnewargs__") else []
            return {_TAG: "rust", "c": name, "i": index, "a": args, "s": obj.__getstate__()}
        if t is random.Random:
            version, internal, gauss = obj.getstate()
            return {_TAG: "random", "c": name, "i": index, "s": [version, list(internal), gauss]}
        if t is _opaque()[2]:
            return {_TAG: "vdict", "c": name, "i": index, "v": self._items(obj.to_dict(), d)}
        slots, has_dict, problem = _layout(t)
        if problem is not None:
            raise StateCodecError(problem)
        node: dict[str, Any] = {_TAG: "obj", "c": name, "i": index, "d": self._attributes(obj.__dict__, d) if has_dict else []}
        if slots:
            values = {}
            for slot, descriptor in slots:
                try:
                    values[slot] = descriptor.__get__(obj, t)
                except AttributeError:  # an unset slot stays unset
                    continue
            node["s"] = self._attributes(values, d)
        if isinstance(obj, collections.deque):
            node["m"] = obj.maxlen
            node["q"] = [self.encode(v, d) for v in obj]
        return node

    def _attributes(self, mapping: dict[str, Any], depth: int) -> list[Any]:
        """An object's attributes as key, value pairs; an error inside one says which (when finding classes)."""
        return self._pairs(mapping, depth, ".{}".format)

    def _pairs(self, mapping: Any, depth: int, where: Any) -> list[Any]:
        """``mapping``'s key, value pairs, encoded; an error inside a value says which (``where(key)``, when
        finding classes)."""
        out: list[Any] = []
        for k, v in mapping.items():
            out.append(self.encode(k, depth))
            try:
                out.append(self.encode(v, depth))
            except StateCodecError as err:
                if self.allowed is None:
                    err.path.insert(0, where(k))
                raise
        return out

    def _function(self, f: Any) -> dict[str, Any]:
        name = _function_name(f)
        if name is None:
            what = "method" if type(f) is types.BuiltinFunctionType else "function"
            raise StateCodecError(f"it holds the {what} {f.__qualname__}, which riverguard cannot save by name")
        if self.allowed is None:
            if self.found_functions.setdefault(name, f) is not f:
                raise StateCodecError(f"it holds two functions named {name}")
        elif self.allowed.functions.get(name) is not f:
            raise StateCodecError(f"function {name!r} is not allowed in a checkpoint")
        return {_TAG: "func", "c": name}

    def _items(self, mapping: Any, depth: int) -> list[Any]:
        """A mapping's items as key, value pairs (an error inside one says ``[key]``)."""
        return self._pairs(mapping, depth, "[{!r}]".format)

    def _factory(self, factory: Any, depth: int) -> Any:
        if factory is None:
            return None
        if isinstance(factory, functools.partial) and not factory.keywords:
            return {_TAG: "partial", "f": self._factory(factory.func, depth), "a": [self.encode(a, depth) for a in factory.args]}
        if not isinstance(factory, type):
            what = getattr(factory, "__qualname__", None)
            what = f"{type(factory).__name__} {what}" if isinstance(what, str) else _kind(type(factory))
            raise StateCodecError(f"it holds a defaultdict whose factory is a {what}, which riverguard cannot save")
        name = _name(factory)
        if self.allowed is None:
            self.found_factories[factory] = None
        elif self.allowed.factories.get(name) is not factory:
            raise StateCodecError(f"defaultdict factory {name} is not allowed in a checkpoint")
        return {_TAG: "class", "c": name}


class _Decoder:
    def __init__(self, allowed: Allowlist) -> None:
        self.allowed = allowed
        self.memo: dict[int, Any] = {}

    def decode(self, data: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise StateCodecError("state nested too deeply")
        t = type(data)
        if data is None or t in (bool, int, float, str, bytes):
            return data
        d = depth + 1
        if t is list:
            return [self.decode(v, d) for v in data]
        if t is not dict:
            raise StateCodecError(f"unexpected {t.__name__} in state")
        kind = data.get(_TAG)
        try:
            handler = getattr(self, f"_k_{kind}")
        except (AttributeError, TypeError):
            raise StateCodecError(f"unknown node kind {kind!r}") from None
        try:
            return handler(data, d)
        except StateCodecError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, OverflowError, AttributeError) as err:
            raise StateCodecError(f"malformed {kind!r} node: {type(err).__name__}: {err}") from None

    def _list(self, data: Any, depth: int) -> list[Any]:
        if type(data) is not list:
            raise StateCodecError("expected a list")
        return [self.decode(v, depth) for v in data]

    def _pairs(self, data: Any, depth: int) -> list[tuple[Any, Any]]:
        items = self._list(data, depth)
        if len(items) % 2:
            raise StateCodecError("odd number of items in a mapping")
        return list(zip(items[::2], items[1::2]))

    def _cls(self, name: Any) -> type:
        cls = self.allowed.classes.get(name) if isinstance(name, str) else None
        if cls is None:
            raise StateCodecError(f"class {name!r} is not allowed in a checkpoint")
        return cls

    def _remember(self, data: dict[str, Any], obj: Any) -> Any:
        index = data["i"]
        if type(index) is not int or index in self.memo:
            raise StateCodecError("bad object index")
        self.memo[index] = obj
        return obj

    def _k_bigint(self, data: dict[str, Any], depth: int) -> int:
        return int(str(data["v"]))

    def _k_tuple(self, data: dict[str, Any], depth: int) -> tuple[Any, ...]:
        return tuple(self._list(data["v"], depth))

    def _k_dict(self, data: dict[str, Any], depth: int) -> dict[Any, Any]:
        return dict(self._pairs(data["v"], depth))

    def _k_odict(self, data: dict[str, Any], depth: int) -> collections.OrderedDict[Any, Any]:
        return collections.OrderedDict(self._pairs(data["v"], depth))

    def _k_counter(self, data: dict[str, Any], depth: int) -> collections.Counter[Any]:
        return collections.Counter(dict(self._pairs(data["v"], depth)))

    def _k_ddict(self, data: dict[str, Any], depth: int) -> collections.defaultdict[Any, Any]:
        factory = self._factory(data["f"], depth)
        return collections.defaultdict(factory, self._pairs(data["v"], depth))

    def _k_deque(self, data: dict[str, Any], depth: int) -> collections.deque[Any]:
        maxlen = data["m"]
        if maxlen is not None and type(maxlen) is not int:
            raise StateCodecError("bad deque maxlen")
        return collections.deque(self._list(data["v"], depth), maxlen)

    def _k_set(self, data: dict[str, Any], depth: int) -> set[Any]:
        return set(self._list(data["v"], depth))

    def _k_frozenset(self, data: dict[str, Any], depth: int) -> frozenset[Any]:
        return frozenset(self._list(data["v"], depth))

    def _k_ref(self, data: dict[str, Any], depth: int) -> Any:
        index = data["i"]
        if type(index) is not int or index not in self.memo:
            raise StateCodecError("reference to an unknown object")
        return self.memo[index]

    def _k_rust(self, data: dict[str, Any], depth: int) -> Any:
        cls = self._cls(data["c"])
        if cls not in self.allowed.rust:
            raise StateCodecError(f"{data['c']!r} is not an opaque-state class")
        args = self._list(data["a"], depth)
        if not all(type(a) in (int, float, bool, str) or a is None for a in args) or type(data["s"]) is not bytes:
            raise StateCodecError("bad opaque state")
        obj = cls.__new__(cls, *args)
        try:
            obj.__setstate__(data["s"])
        except BaseException as err:  # whatever the extension raises on bad bytes; a Rust panic is a BaseException
            if isinstance(err, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                raise
            raise StateCodecError(f"bad opaque state for {data['c']!r}: {type(err).__name__}") from None
        return self._remember(data, obj)

    def _k_random(self, data: dict[str, Any], depth: int) -> random.Random:
        if self._cls(data["c"]) is not random.Random:
            raise StateCodecError("bad random state class")
        version, internal, gauss = data["s"]
        if type(internal) is not list or not all(type(v) is int for v in internal):
            raise StateCodecError("bad random state")
        obj = random.Random()
        obj.setstate((version, tuple(internal), gauss))
        return self._remember(data, obj)

    def _k_vdict(self, data: dict[str, Any], depth: int) -> Any:
        cls = self._cls(data["c"])
        if cls is not self.allowed.vectordict:
            raise StateCodecError("bad vector class")
        pairs = self._pairs(data["v"], depth)
        if not all(type(v) in (int, float) for _, v in pairs):
            raise StateCodecError("bad vector values")
        return self._remember(data, cls(dict(pairs)))

    def _k_obj(self, data: dict[str, Any], depth: int) -> Any:
        cls = self._cls(data["c"])
        if cls not in self.allowed.frames:
            raise StateCodecError(f"{data['c']!r} cannot be rebuilt from attributes")
        obj = cls.__new__(cls)
        self._remember(data, obj)
        if isinstance(obj, collections.deque):
            maxlen = data["m"]
            if maxlen is not None and type(maxlen) is not int:
                raise StateCodecError("bad deque maxlen")
            collections.deque.__init__(obj, self._list(data["q"], depth), maxlen)
        pairs = self._pairs(data["d"], depth)
        if pairs and not _layout(cls)[1]:
            raise StateCodecError(f"{data['c']!r} has no instance __dict__")
        for key, value in pairs:
            if type(key) is not str or key.startswith("__"):
                raise StateCodecError(f"bad attribute name {key!r}")
            obj.__dict__[key] = value
        if "s" in data:
            self._slots(obj, data, depth)
        return obj

    def _slots(self, obj: Any, data: dict[str, Any], depth: int) -> None:
        """Set the slots of ``obj`` that ``data`` holds, through its class's own member descriptors only."""
        descriptors = dict(_layout(type(obj))[0])
        for key, value in self._pairs(data["s"], depth):
            descriptor = descriptors.get(key) if type(key) is str else None
            if descriptor is None:
                raise StateCodecError(f"bad slot name {key!r} for {data['c']!r}")
            descriptor.__set__(obj, value)

    def _k_func(self, data: dict[str, Any], depth: int) -> Any:
        name = data["c"]
        f = self.allowed.functions.get(name) if isinstance(name, str) else None
        if f is None:
            raise StateCodecError(f"function {name!r} is not allowed in a checkpoint")
        return f

    def _factory(self, data: Any, depth: int) -> Any:
        if data is None:
            return None
        if type(data) is not dict:
            raise StateCodecError("bad defaultdict factory")
        if data.get(_TAG) == "partial":
            return functools.partial(self._factory(data["f"], depth), *self._list(data["a"], depth))
        factory = self.allowed.factories.get(data.get("c")) if data.get(_TAG) == "class" else None
        if factory is not None:
            return factory
        raise StateCodecError(f"defaultdict factory {data.get('c')!r} is not allowed")
