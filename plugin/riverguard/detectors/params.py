"""Detector parameters, each declared once: name, default, type, valid range and a one-line doc.

A detector lists its :class:`Param` objects in ``PARAMS`` (a detector built
from steps takes the ``PARAMS`` of each step). Everything else is derived from
that list: the constructor's keywords and their validation (:func:`resolve`,
whose errors name the parameter and its range), ``defaults()``, the config
checks and ``check-config`` messages (``riverguard.config``), the rule
fingerprint that decides whether a checkpoint still fits, and the parameter
tables in ``docs/parameters.md`` (:func:`markdown`, written by
``python -m riverguard.detectors``, kept in sync by a test).

>>> bins = Param("bins", 10, "Quantisation levels of the range seen so far.", low=2, high=15)
>>> bins.check(7)
7
>>> bins.check(1)
Traceback (most recent call last):
ValueError: bins must be an integer in [2, 15], got 1
>>> resolve((bins,), {"bins": 4})
{'bins': 4}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["MAX_COUNT", "Param", "defaults", "markdown", "resolve", "signature"]

#: The upper bound of every count of samples a setting takes (a rule's ``warmup``, ``suppress``, a window,
#: ``[state] max_series``): a billion, 30 years of one sample a second. Every integer setting has a bounded
#: range, so that a huge one is refused by ``check-config`` (naming it) and never reaches C (a C long) or
#: memory that grows with it.
MAX_COUNT = 1_000_000_000

_KIND_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "one of", tuple: "a list"}


@dataclass(frozen=True)
class Param:
    """One parameter: its type is the type of ``default`` (a float parameter also takes an int).

    ``low``/``high`` bound it (``low_open``/``high_open``: the bound itself is
    refused); ``choices`` lists the values a string may take; a tuple holds
    ``items`` (a Param for one element) and ``length`` (min, max).
    """

    name: str
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    items: Param | None = None
    length: tuple[int, int] = (0, 0)
    #: For a parameter without a default (None): what it takes, in words; the detector checks it.
    values: str = ""

    @property
    def kind(self) -> type:
        return type(self.default)

    def describe(self) -> str:
        """The valid values in words, e.g. ``a number in (0, 1]``."""
        kind = self.kind
        if self.default is None:
            return self.values
        if kind is str:
            return "one of " + ", ".join(self.choices)
        if kind is tuple:
            assert self.items is not None
            lo, hi = self.length
            return f"{lo} to {hi} values, each {self.items.describe()}"
        text = _KIND_NAMES[kind]
        if kind is bool or (self.low is None and self.high is None):
            return text
        if self.high is None:
            return f"{text} {'>' if self.low_open else '>='} {_num(self.low)}"
        if self.low is None:
            return f"{text} {'<' if self.high_open else '<='} {_num(self.high)}"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"{text} in {left}{_num(self.low)}, {_num(self.high)}{right}"

    def check(self, value: Any) -> Any:
        """``value`` as the detector stores it; ValueError naming the parameter and its range if invalid."""
        kind = self.kind
        ok: bool
        if self.default is None:  # checked by the detector itself (e.g. a River model spec)
            return value
        if kind is float:
            ok = type(value) in (float, int)
            if ok:
                value = float(value)
        elif kind is tuple:
            ok = isinstance(value, (tuple, list))
            if ok:
                try:
                    value = tuple(self.items.check(v) for v in value)  # type: ignore[union-attr]
                except ValueError:
                    ok = False
                ok = ok and self.length[0] <= len(value) <= self.length[1]
        else:
            ok = type(value) is kind
        if ok and kind is str:
            ok = value in self.choices
        finite = True
        if ok and kind in (int, float):
            finite = math.isfinite(value)  # (TOML's inf and nan: no setting means "infinitely")
            ok = finite and not (
                (self.low is not None and (value < self.low or (self.low_open and value == self.low)))
                or (self.high is not None and (value > self.high or (self.high_open and value == self.high)))
            )
        if not ok:
            why = "" if finite else ": not a finite number"
            raise ValueError(f"{self.name} must be {self.describe()}, got {value!r}{why}")
        return value

    def but(self, **changes: Any) -> Param:
        """This parameter with some fields changed (e.g. another detector's default)."""
        return replace(self, **changes)


def _num(v: float | None) -> str:
    return repr(v) if isinstance(v, float) and not v.is_integer() else str(int(v))  # type: ignore[arg-type]


def resolve(params: Iterable[Param], given: dict[str, Any], owner: str = "detector") -> dict[str, Any]:
    """Every parameter's value: ``given`` validated, defaults filled in.

    Run once per rule (a detector class's ``factory``), not per series.
    """
    known = {p.name: p for p in params}
    for name in given:
        if name not in known:
            raise TypeError(f"{owner} got an unexpected parameter {name!r} (known: {', '.join(sorted(known))})")
    return {name: p.check(given[name]) if name in given else p.default for name, p in known.items()}


def defaults(params: Iterable[Param]) -> dict[str, Any]:
    """``{name: default}``."""
    return {p.name: p.default for p in params}


def signature(params: Iterable[Param]) -> Any:
    """An :class:`inspect.Signature` of keyword parameters with their defaults (for ``help()``)."""
    import inspect

    return inspect.Signature(
        [inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default) for p in params]
    )


def markdown(detectors: Iterable[Any], group: Callable[[Any], Iterable[tuple[str, tuple[Param, ...]]]]) -> str:
    """The parameter tables of ``detectors`` (one per detector, grouped by step), as Markdown."""
    out = [
        "# Detector parameters",
        "",
        "Generated from the parameter declarations (`riverguard.detectors.params`);",
        "`tests/test_params.py` checks that this file is in sync. Regenerate it with",
        "`python -m riverguard.detectors > docs/parameters.md`.",
        "",
        "Set them in a rule's `params` table, e.g. `params = { suppress = 200 }`.",
        "A rule's `warmup` sets how many samples a series sees before it may be",
        "scored or flagged (see the README).",
    ]
    for cls in detectors:
        out += ["", f"## {cls.name}", "", "| step | parameter | default | valid values | meaning |", "|---|---|---|---|---|"]
        for step, params in group(cls):
            for p in params:
                if p.name == getattr(cls, "WARMUP_PARAM", None):
                    continue  # set by the rule's warmup, not in params
                default = list(p.default) if isinstance(p.default, tuple) else p.default
                if default is None:
                    default = "(required)"
                else:
                    default = str(default).lower() if isinstance(default, bool) else repr(default).replace("'", '"')
                out.append(f"| {step} | `{p.name}` | `{default}` | {p.describe()} | {p.doc} |")
    return "\n".join(out) + "\n"
