"""riverguard's TOML configuration: rules, output suffixes and state settings.

``load(path)`` reads and validates a file; ``parse(text, source)`` does the
same for text. The problems found raise one :class:`ConfigError`: every one
it can find, in file order, each a line that names the file, the rule (index
and name) and the key.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import heapq
import json
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import detectors
from .detectors.base import Factory
from .lineprotocol import host_name
from .log import Unreadable, printable, read_text

__all__ = [
    "EXPLAIN_SUFFIXES",
    "Config",
    "ConfigError",
    "MonitorConfig",
    "OutputConfig",
    "Rule",
    "StateConfig",
    "default_config",
    "load",
    "parse",
    "parse_duration", "warnings",
]


class ConfigError(Exception):
    """A configuration that riverguard cannot use; the message says where and why.

    ``errors`` holds every problem found (one line each); the message joins them.
    """

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [message]


@dataclass(frozen=True)
class Rule:
    """One ``[[rule]]``: which series it matches and how they are scored."""

    index: int
    name: str
    measurement: str = "*"
    tags: dict[str, str] = field(default_factory=dict)
    fields: tuple[str, ...] = ("*",)
    detector: str = "default"
    threshold: float | None = None
    warmup: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: "field": one model per field; "metric": one model per measurement + tag set, fed all its matching fields.
    scope: str = "field"

    @functools.cached_property
    def new_detector(self) -> Factory:
        """Makes a fresh detector for a new series, or (``.restore(state)``) a checkpointed one.

        The rule's settings are resolved, and its model built and checked, once, here.
        """
        cls = self.detector_class
        if cls is None:
            raise ValueError('detector "off" makes no detector')
        return cls.factory(self.detector_params)

    #: Write the explanation fields for this rule's series: the rule's own ``explain``, else
    #: ``[output] explain``'s (:func:`parse` resolves it).
    explain: bool = False

    @functools.cached_property
    def detector_class(self) -> type[detectors.Detector] | None:
        """The detector class, or None for ``detector = "off"``."""
        return None if self.detector == "off" else detectors.resolve(self.detector)

    @functools.cached_property
    def effective_threshold(self) -> float:
        cls = self.detector_class
        if self.threshold is not None:
            return self.threshold
        return cls.default_threshold if cls else 1.0

    @functools.cached_property
    def effective_warmup(self) -> int:
        cls = self.detector_class
        if self.warmup is not None:
            return self.warmup
        return cls.default_warmup if cls else 0

    @functools.cached_property
    def held_back(self) -> int:
        """Samples the engine itself writes 0.0 / false for: the warm-up, or, for a detector that learns
        for the warm-up and holds itself back (sentinel, context), the fewest after which it may score
        (a quarter of them once ``learn_time`` of event time has passed: steps.py, rule 5)."""
        if getattr(self.detector_class, "WARMUP_PARAM", None) is None:
            return self.effective_warmup
        learn_time = {**self.detector_class.defaults(), **self.params}.get("learn_time")
        return self.effective_warmup // 4 if learn_time else self.effective_warmup

    @property
    def detector_params(self) -> dict[str, Any]:
        """What the detector is built with: ``params``, and the rule's warm-up where the detector learns by it."""
        cls = self.detector_class
        name = getattr(cls, "WARMUP_PARAM", None)
        return {**self.params, name: self.effective_warmup} if name else dict(self.params)

    @functools.cached_property
    def fingerprint(self) -> str:
        """Identifies the rule's detector and parameters: state learned under another does not carry over."""
        params, layout = self._state_identity
        what = {"detector": self.resolved()["detector"], "params": params}  # (json.dumps below sorts the keys)
        if self.scope != "field":  # (field-scope fingerprints stay what they were before scopes existed)
            what["scope"] = self.scope
        if layout:
            what["state"] = layout
        text = json.dumps(what, sort_keys=True)  # not explain: it changes no state
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def state_layout(self) -> str:
        """The layout of the rule's saved detector state ("" where the detector names none)."""
        return self._state_identity[1]

    @functools.cached_property
    def _state_identity(self) -> tuple[dict[str, Any], str]:
        """``(params, state layout)`` that identify what the rule's detectors learn (for :attr:`fingerprint`)."""
        params = self.resolved()["params"]
        cls = self.detector_class
        name = getattr(cls, "WARMUP_PARAM", None)
        if name:
            # The warm-up is left out (a changed warmup keeps the learned state, as the README says): a constant
            # stands in its place, so that checkpoints written when it was still a param keep their models.
            params = {**params, name: cls.defaults()[name]}
        # the layout of the detector's saved state too: a checkpoint in another layout starts fresh (a detector
        # built from steps gives it per rule, leaving out the steps it has off and their settings)
        identity = getattr(cls, "state_identity", None)
        if identity is not None:
            return identity(params)
        return params, getattr(cls, "STATE_LAYOUT", "")

    @functools.cached_property
    def every_field(self) -> bool:
        """Whether the rule takes every field of the metrics it matches: a ``*`` among its ``fields``."""
        return "*" in self.fields

    def covers_tags(self, later: Rule) -> bool:
        """Whether the rule's tag conditions hold for every tag set that ``later``'s hold for: each of its tag
        keys is one of ``later``'s, with a glob that :func:`_covers` ``later``'s (so, as it, it may say no to
        a rule it covers: never yes to one it does not)."""
        return all(key in later.tags and _covers(glob, later.tags[key]) for key, glob in self.tags.items())

    def hides(self, later: Rule) -> bool:
        """Whether the rule, before ``later``, takes every field that ``later`` names (all of them: a ``*``
        among its ``fields``; or a glob of its own covers each of ``later``'s) of every metric that ``later``
        matches, so that ``later`` takes none (False where the globs do not make that plain: :func:`_covers`)."""
        names = self.every_field or all(any(_covers(mine, theirs) for mine in self.fields) for theirs in later.fields)
        return names and _covers(self.measurement, later.measurement) and self.covers_tags(later)

    def resolved(self) -> dict[str, Any]:
        """Everything the rule means, defaults filled in (for check-config and fingerprints)."""
        cls = self.detector_class
        params = {**cls.defaults(), **self.params} if cls else {}
        params.pop(getattr(cls, "WARMUP_PARAM", None), None)  # shown as the rule's warmup
        return {
            "name": self.name,
            "measurement": self.measurement,
            "tags": dict(sorted(self.tags.items())),
            "fields": list(self.fields),
            "detector": cls.name if cls else "off",
            "scope": self.scope,
            "threshold": self.effective_threshold,
            "warmup": self.effective_warmup,
            "params": dict(sorted(params.items())),
            "explain": self.explain,
        }


#: What makes a glob more than a plain name (fnmatch's ``*``, ``?`` and ``[...]``).
_GLOB_SPECIAL = re.compile(r"[*?[]")


def _covers(glob: str, other: str) -> bool:
    """Whether glob ``glob`` matches every name that glob ``other`` matches, where that is simple to tell:
    ``glob`` is ``*`` or ``other`` itself, or ``other`` is a plain name that ``glob`` matches. Otherwise
    (``cpu*`` and ``cpu?``, say) no, even where it does: a rule hidden may go unnamed, none is named wrongly.

    >>> _covers("*", "cpu?"), _covers("cpu*", "cpu0"), _covers("cpu*", "cpu?"), _covers("cpu", "cpu*")
    (True, True, False, False)
    """
    return glob in ("*", other) or (_GLOB_SPECIAL.search(other) is None and fnmatch.fnmatchcase(other, glob))


#: The explanation fields of a scored field F are F<flag_suffix><one of these>.
EXPLAIN_SUFFIXES = ("_expected", "_lower", "_upper", "_reason")


@dataclass(frozen=True)
class OutputConfig:
    score_suffix: str = "_anomaly_score"
    flag_suffix: str = "_anomaly"
    #: The metric-level fields a ``scope = "metric"`` rule adds.
    metric_score_field: str = "anomaly_score"
    metric_flag_field: str = "anomaly"
    #: Add F<flag_suffix>_expected, _lower, _upper (and _reason when flagged) for every scored field F.
    explain: bool = False

    @property
    def explain_suffixes(self) -> tuple[str, str, str, str]:
        """The suffixes of the expected value, the band's edges and the reason (after the field key)."""
        flag = self.flag_suffix
        return tuple(flag + suffix for suffix in EXPLAIN_SUFFIXES)  # type: ignore[return-value]


@dataclass(frozen=True)
class StateConfig:
    #: The checkpoint file (:func:`state_path`: a folder given is already the file in it); None: nothing kept.
    path: Path | None = None
    checkpoint_interval: float = 60.0
    max_series: int = 100_000
    series_ttl: float = 24 * 3600.0


#: The health line's tags riverguard sets itself (:mod:`riverguard.monitor`): ``[monitor] tags`` cannot set them.
MONITOR_OWN_TAGS = {"mode": "compiled or pure", "status": "scoring or passthrough",
                    "version": "riverguard's version"}


@dataclass(frozen=True)
class MonitorConfig:
    #: Seconds between two ``riverguard`` health lines on stdout; None: off.
    interval: float | None = None
    #: ``[monitor] tags`` as written (key -> value): added to the health line's, over its default ``host``
    #: (this machine's name); an empty value leaves that tag out.
    tags: dict[str, str] = field(default_factory=dict)

    def line_tags(self) -> dict[str, str]:
        """The health line's tags a user decides, by key: ``host`` (this machine's name) unless ``tags`` sets
        it, and ``tags``; those with an empty value left out."""
        tags = {"host": host_name(), **self.tags}
        return {key: tags[key] for key in sorted(tags) if tags[key]}


@dataclass(frozen=True)
class Config:
    rules: tuple[Rule, ...]
    output: OutputConfig = OutputConfig()
    state: StateConfig = StateConfig()
    monitor: MonitorConfig = MonitorConfig()
    source: str = "<default>"
    #: What the config said that was taken otherwise (a duration under the least): logged as warnings.
    notes: tuple[str, ...] = field(default=(), compare=False)


DEFAULT_RULE = Rule(index=0, name="default")


def default_config() -> Config:
    """What ``riverguard run`` uses without ``--config``: every numeric field, default detector."""
    return Config(rules=(DEFAULT_RULE,))


#: The longest duration a setting takes: 10 years. Longer ones (a typo, or a stand-in for "never") would
#: overflow the time arithmetic of the stream's wait (select) and of the series' clock.
_MAX_DURATION = 87600 * 3600.0
#: The shortest: one second. Shorter ones make no sense for any of them (a health line or a checkpoint
#: every millisecond floods the output or the disk; a series idle for less than that starts fresh each sample);
#: a positive one under it is taken as it, with a warning (such configs loaded before there was a least, and a
#: refusal would put riverguard under Telegraf's execd into a restart loop after an upgrade).
_MIN_DURATION = 1.0
#: The most samples or series an integer setting counts (a billion).
_MAX_COUNT = detectors.params.MAX_COUNT

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")


def duration_text(seconds: float) -> str:
    """A duration for a message, as a Telegraf config usually writes it (:func:`parse_duration` reads it
    back): up to a minute in seconds (``"60s"``, not ``"1m"``), else in whole hours or whole minutes if it is
    one, else in seconds; under a second in milliseconds (``"10ms"``, not ``"0.01s"``), or in micro- or
    nanoseconds under a millisecond.

    >>> [duration_text(s) for s in (86400.0, 3600.0, 5400.0, 120.0, 90.0, 60.0, 45.0, 1.5, 1000001.0)]
    ['24h', '1h', '90m', '2m', '90s', '60s', '45s', '1.5s', '1000001s']
    >>> [duration_text(s) for s in (0.2, 0.1, 0.01, 0.007, 0.0005, 1e-9, 0.0)]
    ['200ms', '100ms', '10ms', '7ms', '500us', '1ns', '0s']
    """
    if seconds > 60:
        for unit, size in (("h", 3600), ("m", 60)):
            if seconds % size == 0:
                return f"{seconds / size:.15g}{unit}"
    if 0 < seconds < 1:
        for unit, size in (("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
            if seconds >= size or unit == "ns":
                return f"{seconds / size:.15g}{unit}"
    return f"{seconds:.15g}s"


def parse_duration(text: str) -> float:
    """Seconds in a Telegraf-style duration such as ``"60s"``, ``"100ms"`` or ``"1h30m"``.

    >>> parse_duration("1h30m"), parse_duration("100ms")
    (5400.0, 0.1)
    """
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise ValueError(f'invalid duration "{text}" (expected e.g. "60s", "100ms", "24h")')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise ValueError("empty duration")
    return total


def load(path: str | Path) -> Config:
    """Read and validate the config file at ``path``."""
    path = Path(path)
    try:
        text = read_text(path, "a config file")
    except Unreadable as err:
        raise ConfigError(str(err)) from None
    return parse(text, source=str(path), base=path.resolve().parent, file=path)


_RULE_KEYS = {"name", "measurement", "tags", "fields", "detector", "threshold", "warmup", "params", "scope", "explain"}
_TOP_KEYS = {"rule", "output", "state", "monitor"}
_OUTPUT_STRINGS = ("score_suffix", "flag_suffix", "metric_score_field", "metric_flag_field")
_OUTPUT_KEYS = {*_OUTPUT_STRINGS, "explain"}
_STATE_KEYS = {"path", "checkpoint_interval", "max_series", "series_ttl"}
_MONITOR_KEYS = {"interval", "tags"}
#: Where each section's keys go, as a message says it: a key written in another section is told where it belongs.
_SECTIONS = {
    "at the top level": _TOP_KEYS,
    "in a [[rule]]": _RULE_KEYS,
    "in [output]": _OUTPUT_KEYS,
    "in [state]": _STATE_KEYS,
    "in [monitor]": _MONITOR_KEYS,
}

#: A table header line: ``[name...]`` or ``[[name...]]``, with the first part of its key.
_HEADER = re.compile(r"""\s*\[(\[?)\s*("[^"\n]*"|'[^'\n]*'|[A-Za-z0-9_-]+)\s*(\]?)""")
_MULTILINE_QUOTES = re.compile(r'"""|' + "'''")


def _headers(text: str) -> list[tuple[str, bool]]:
    """``(first part of the key, whether it is exactly [[that]])`` for each table header of ``text``, in order.

    A light scan (multi-line strings are skipped, not parsed): :func:`parse` checks its count of
    ``[[rule]]`` against the rules TOML read, and orders by the document's keys where it is off.
    """
    found = []
    quote = None  # the multi-line string's delimiter while inside one
    for line in text.splitlines():
        if quote is None and (m := _HEADER.match(line)):
            array = m.group(1) == "[" and m.group(3) == "]" and line[m.end():].lstrip().startswith("]")
            found.append((m.group(2).strip("\"'"), array))
        pos = 0
        while True:  # (a multi-line string may open and close on one line, several times)
            if quote is None:
                m = _MULTILINE_QUOTES.search(line, pos)
                if m is None:
                    break
                quote, pos = m.group(), m.end()
            else:
                end = line.find(quote, pos)
                if end < 0:
                    break
                quote, pos = None, end + 3
    return found


class _Problems:
    """Every problem found in one config, each with its place in the file so that they are listed in file order.

    A place is the block's (the top-level key's, or the ``[[rule]]``'s) then the key's within the block:
    TOML keeps each table's keys in the file's order, and headers give the blocks' lines.
    """

    def __init__(self, source: str, text: str, doc: dict[str, Any]) -> None:
        self.source = source
        self.found: list[tuple[tuple[Any, ...], int, str]] = []
        self.notes: list[str] = []  # warnings: what is taken otherwise than written
        self._doc_order = {key: i for i, key in enumerate(doc)}
        rules = doc.get("rule")
        self._lines: dict[Any, int] = {}  # the header that opens each block: its index among the headers
        headers = _headers(text)
        if not isinstance(rules, list) or sum(array for name, array in headers if name == "rule") == len(rules):
            count = 0
            for at, (name, array) in enumerate(headers):
                if name == "rule" and array:
                    count += 1
                    self._lines[("rule", count)] = at
                self._lines.setdefault(name, at)
        # else: the scan is off (a header-like line in a string?): blocks in the document's order, rules together

    def block(self, key: str, rule: int = 0) -> tuple[int, int, int]:
        """The place of top-level ``key`` (of its ``rule``-th table for ``rule``): blocks that no header
        opens (keys set before the first header, inline tables) come first, as TOML requires."""
        line = self._lines.get(("rule", rule) if rule else key, -1)
        return (line, self._doc_order.get(key, len(self._doc_order)), rule)

    def add(self, place: tuple[Any, ...], message: str) -> None:
        self.found.append((place, len(self.found), message))

    def messages(self) -> list[str]:
        return [message for _, _, message in sorted(self.found)]


def _place_in(table: Any, key: str | None) -> tuple[int, ...]:
    """Where ``key`` (dotted for a nested one: ``params.fading``) stands in ``table``; missing keys go last."""
    if key is None or not isinstance(table, dict):
        return ()
    keys = list(table)
    if key in table:
        return (keys.index(key),)
    head, _, rest = key.partition(".")
    if head in table and rest:
        return (keys.index(head), *_place_in(table[head], rest))
    return (len(keys),)


class _Where:
    """Notes problems in one section or rule: each message names the file, the section or rule and the key."""

    def __init__(self, problems: _Problems, section: str, block: tuple[int, ...], table: Any) -> None:
        self.problems = problems
        self.section = section
        self.block = block
        self.table = table
        self.count = 0  # problems noted here

    def _where(self, key: str | None) -> str:
        where = f"{self.problems.source}: {self.section}"
        return where if key is None else f"{where}, key '{key}'"

    def add(self, key: str | None, message: str, *, at: str | None = None) -> None:
        """A problem with ``key`` (None: the whole section); ``at``: a key to place it by, not named."""
        self.problems.add((self.block, _place_in(self.table, key or at)), f"{self._where(key)}: {message}")
        self.count += 1

    def note(self, key: str, message: str) -> None:
        """Something about ``key`` taken otherwise than written: a warning, not a problem."""
        self.problems.notes.append(f"{self._where(key)}: {message}")


def parse(text: str, source: str = "<string>", base: Path | None = None, file: Path | None = None) -> Config:
    """Validate config ``text``; ``base`` is the folder relative paths resolve against, ``file`` the file the
    text was read from (its ``[state] path`` must not name it).

    Every problem found is reported (each section, each key of each rule, each rule's params once its detector
    is known), in file order: :class:`ConfigError`'s ``errors`` has one line for each.
    """
    text = text.removeprefix("\ufeff")  # a byte-order mark (some Windows editors write one) is not TOML's
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: invalid TOML: {err}") from None
    problems = _Problems(source, text, doc)
    for key in doc:
        if key not in _TOP_KEYS:
            _Where(problems, "top level", problems.block(key), None).add(key, _unknown_key(key, _TOP_KEYS))
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list):
        _Where(problems, "top level", problems.block("rule"), None).add("rule", "must be an array of tables ([[rule]])")
        raw_rules = []

    def where(name: str) -> _Where:
        return _Where(problems, f"[{name}]", problems.block(name), doc.get(name))

    output = _parse_output(doc.get("output", {}), where("output"))
    state = _parse_state(doc.get("state", {}), where("state"), base or Path.cwd(), file)
    monitor = _parse_monitor(doc.get("monitor", {}), where("monitor"))
    explain = output.explain if output is not None else False  # a rule's own explain, else this
    parsed: list[Rule] = []
    first: dict[str, int] = {}
    for i, raw in enumerate(raw_rules, start=1):  # every rule is checked: all problems at once
        name = raw.get("name") if isinstance(raw, dict) else None
        label = f"rule {i}" + (f' "{name}"' if isinstance(name, str) else "")
        rule_where = _Where(problems, label, problems.block("rule", i), raw)
        rule = _parse_rule(i, raw, rule_where, explain)
        if rule is not None:
            parsed.append(rule)
        if isinstance(raw, dict) and (name := raw.get("name", f"rule-{i}")) and isinstance(name, str):
            if name in first:  # (told whatever else is wrong with either rule)
                named = _Where(problems, f'rule {i} "{name}"', rule_where.block, raw)
                named.add(None, f"duplicate name (rule {first[name]} has it)", at="name")
            first.setdefault(name, i)
    errors = problems.messages()
    if errors:
        raise ConfigError("\n".join(errors), errors)
    assert output is not None and state is not None and monitor is not None
    return Config(rules=tuple(parsed), output=output, state=state, monitor=monitor, source=source,
                  notes=tuple(problems.notes))


def warnings(config: Config) -> list[str]:
    """What is valid but probably not meant: no rule at all, rules an earlier catch-all hides, explanations
    asked of a rule that cannot give them."""
    found = list(config.notes)
    if not config.rules:
        found.append(
            f"{config.source}: no [[rule]]: this config scores nothing "
            "(without --config riverguard scores every numeric field with the default detector)"
        )
    if config.monitor.tags and config.monitor.interval is None:
        found.append(f'{config.source}: [monitor] has tags but no interval: no health line is written '
                     '(interval = "60s" writes one a minute)')
    for later, rule in _hidden(config.rules):
        if rule is not None:
            everywhere = rule.measurement == "*" and not rule.tags
            names = ", ".join(f'"{glob}"' for glob in later.fields)
            found.append(
                f'{config.source}: rule {later.index} "{later.name}" is never used: '
                f'rule {rule.index} "{rule.name}" before it matches every field'
                + ("" if rule.every_field else f" it names ({names})")
                + ("" if everywhere else " of every metric it matches")
            )
    for rule in config.rules:
        cls = rule.detector_class if rule.explain else None
        if cls is None:
            continue
        where = f'{config.source}: rule {rule.index} "{rule.name}": explain is on'
        if rule.scope == "metric":
            found.append(f'{where}, but a scope = "metric" model writes no explanation (one score for the metric); '
                         "explain = false in the rule says so")
        elif cls.explain is detectors.Detector.explain:
            found.append(
                f'{where}, but detector "{rule.detector}" gives no expected value or band: of the explanation '
                'fields only F_anomaly_reason is written, "novelty", on flagged points; explain = false in the '
                "rule says so"
            )
    return found


def _hidden(rules: list[Rule]) -> Iterator[tuple[Rule, Rule | None]]:
    """Each rule with the first earlier one that hides it (:meth:`Rule.hides`), or None.

    An earlier rule whose measurement is a plain name covers only a later rule of that very measurement
    (:func:`_covers`): those are looked up by name, and only the earlier rules with a glob are tried on
    every later one. Trying every earlier rule, ``check-config`` took 13.1 s on a config of 3 000 rules of
    one measurement each (1.5 s so), and ``run`` as long at every start.
    """
    plain: dict[str, list[int]] = {}  # (the positions of the earlier rules of each plain measurement)
    globs: list[int] = []  # (and of those whose measurement is a glob)
    for at, later in enumerate(rules):
        earlier = heapq.merge(globs, plain.get(later.measurement, ()))
        yield later, next((rules[i] for i in earlier if rules[i].hides(later)), None)
        if _GLOB_SPECIAL.search(later.measurement) is None:
            plain.setdefault(later.measurement, []).append(at)
        else:
            globs.append(at)


def _closest(word: str, known: Iterable[str]) -> str | None:
    """The one of ``known`` closest to a mistyped ``word`` (difflib, whatever the case), if one is close enough.

    >>> _closest("treshold", _RULE_KEYS), _closest("HST", ["hst", "zscore"]), _closest("colour", _RULE_KEYS)
    ('threshold', 'hst', None)
    """
    lowered = {name.lower(): name for name in sorted(known, reverse=True)}  # (the first name of those alike)
    close = difflib.get_close_matches(word.lower(), sorted(lowered), n=1)
    return lowered[close[0]] if close else None


def _unknown(what: str, word: str, known: list[str], *, listed: str = "known", quote: str = "'",
             hint: str | None = None) -> str:
    """The one wording of a name that is not known (a key, a detector, a parameter): ``unknown WHAT, did you
    mean 'X'? (LISTED: KNOWN...)``, with the one of ``known`` closest to ``word`` if any (or ``hint``, said in
    its place).

    >>> _unknown('detector "HST"', "HST", ["hst", "zscore"], quote='"')
    'unknown detector "HST", did you mean "hst"? (known: hst, zscore)'
    """
    if hint is None:
        close = _closest(word, known)
        hint = "" if close is None else f"did you mean {quote}{close}{quote}?"
    return f"unknown {what}{', ' + hint if hint else ''} ({listed}: {', '.join(known)})"


def _unknown_key(key: str, allowed: Iterable[str], detector: str | None = None) -> str:
    """The message for ``key``, not one of ``allowed``, with :func:`_placed`'s hint.

    >>> _unknown_key("threshold", _TOP_KEYS)
    'unknown key, it belongs in a [[rule]] (allowed: monitor, output, rule, state)'
    >>> for key in ("explain", "intervall", "pth"):
    ...     print(_unknown_key(key, _STATE_KEYS).split(" (allowed")[0])
    unknown key, it belongs in a [[rule]] or in [output]
    unknown key, did you mean 'interval' (in [monitor])?
    unknown key, did you mean 'path'?
    """
    return _unknown("key", key, sorted(allowed), listed="allowed", hint=_placed(key, allowed, detector))


def _placed(key: str, allowed: Iterable[str], detector: str | None = None) -> str | None:
    """Where ``key``, not one of ``allowed`` (a section's keys, or a detector's parameters), belongs when
    another section takes it; else None, when an allowed key is close to it (:func:`_unknown` names that
    one), else another section's close key, with that section. In a rule whose ``detector`` is known,
    [rule.params] is named for that detector's parameters only: another detector's is said to be its."""
    hint = None
    owners = _param_owners()
    params = {name for name, takers in owners.items() if detector is None or detector in takers}
    sections = {**_SECTIONS, "in [rule.params]": params}
    places = [place for place, keys in sections.items() if key in keys]  # (never the section ``allowed`` is)
    if places:
        hint = f"it belongs {' or '.join(places)}"
    elif key in owners:  # (another detector's parameter: in [rule.params] it would be refused too)
        takers = " or ".join(f'"{name}"' for name in owners[key])
        hint = f'a parameter of detector {takers}, not of this rule\'s "{detector}"'
    elif _closest(key, allowed) is None:
        elsewhere = {name: place for place, keys in sections.items() for name in keys if name not in allowed}
        close = _closest(key, elsewhere)
        if close is not None:
            hint = f"did you mean '{close}' ({elsewhere[close]})?"
    return hint


def _param_owners() -> dict[str, list[str]]:
    """Each parameter a rule may set in ``[rule.params]`` for one detector or another (not those its warmup
    sets), with the detectors that take it (sorted): where :func:`_unknown_key` tells such a key written in
    another section to go."""
    owners: dict[str, list[str]] = {}
    for name, params in sorted(detectors.REGISTRY.rule_params().items()):  # (imports no detector: River's take 1 s)
        for param in params:
            owners.setdefault(param, []).append(name)
    return owners


def _check_keys(table: Any, allowed: set[str], where: _Where, detector: str | None = None) -> bool:
    """Note each unknown key of ``table`` (a rule's, whose ``detector`` is known: see :func:`_unknown_key`);
    False (noted) if it is not a table at all."""
    if not isinstance(table, dict):
        where.add(None, "must be a table")
        return False
    for key in table:
        if key not in allowed:
            where.add(key, _unknown_key(key, allowed, detector))
    return True


def _glob(value: Any, key: str, where: _Where) -> bool:
    """Whether ``value`` is a usable glob (noting why not)."""
    if not isinstance(value, str) or not value:
        where.add(key, f"expected a non-empty glob string, got {value!r}")
        return False
    if value.count("[") != value.count("]"):
        where.add(key, f"invalid glob {value!r}: unbalanced brackets")
        return False
    try:
        re.compile(fnmatch.translate(value))
    except re.error as err:
        where.add(key, f"invalid glob {value!r}: {err}")
        return False
    return True


def _parse_rule(index: int, raw: Any, where: _Where, explain_default: bool = False) -> Rule | None:
    """The rule, or None once its problems are noted: every key is checked, each on its own; the params
    once the detector is known, and the detector built from them once each of them is valid."""
    detector = raw.get("detector", "default") if isinstance(raw, dict) else None
    known_detector = isinstance(detector, str) and (detector in ("default", "off") or detector in detectors.REGISTRY)
    # (one not known is told below; till then a key is placed as for any detector)
    named = (detectors.DEFAULT if detector == "default" else detector) if known_detector else None
    if not _check_keys(raw, _RULE_KEYS, where, named):
        return None
    name = raw.get("name")
    if name is None:
        name = f"rule-{index}"
    elif not isinstance(name, str) or not name:
        where.add("name", f"expected a non-empty string, got {name!r}")
    measurement = raw.get("measurement", "*")
    _glob(measurement, "measurement", where)
    tags = raw.get("tags", {})
    if not isinstance(tags, dict):
        where.add("tags", "expected a table of tag key to glob")
    else:
        if "" in tags:  # (line protocol has no empty tag key: such a rule would never match)
            where.add("tags", 'an empty tag key ("" = ...) is in no metric: the rule would never match')
        tags = {str(k): v for k, v in tags.items() if k and _glob(v, f"tags.{k}", where)}
    fields = raw.get("fields", ["*"])
    if not isinstance(fields, list) or not fields:
        where.add("fields", f"expected a non-empty list of globs, got {fields!r}")
    else:
        fields = tuple(f for f in fields if _glob(f, "fields", where))
    if not isinstance(detector, str):
        where.add("detector", f"expected a string, got {detector!r}")
    elif not known_detector:
        known = ["default", "off", *sorted(detectors.REGISTRY)]
        where.add("detector", _unknown(f'detector "{detector}"', detector, known, quote='"'))
    threshold = raw.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            where.add("threshold", f"expected a number in [0, 1], got {threshold!r}")
            threshold = None
        else:
            threshold = float(threshold)
    warmup = raw.get("warmup")
    if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup <= _MAX_COUNT):
        where.add("warmup", f"expected an integer in [0, {_MAX_COUNT}], got {warmup!r}")
        warmup = None  # (the detector's own, to check the params with)
    params = raw.get("params", {})
    if not isinstance(params, dict):
        where.add("params", "expected a table")
        params = None
    scope = raw.get("scope", "field")
    if scope not in ("field", "metric"):
        where.add("scope", f'expected "field" or "metric", got {scope!r}')
        scope = None
    explain = raw.get("explain", explain_default)
    if not isinstance(explain, bool):
        where.add("explain", f"expected true or false, got {explain!r}")
    if not known_detector:
        return None  # its params and scope cannot be checked against it
    if detector == "off":
        if params:
            where.add("params", 'detector "off" takes no parameters')
        if scope == "metric":
            where.add("scope", 'detector "off" has no model to share: use scope = "field"')
    else:
        params = _check_params(detector, params, scope, where, warmup)
    if where.count:
        return None
    return Rule(index, name, measurement, tags, fields, detector, threshold, warmup, dict(params), scope, explain)


def _check_params(detector: str, params: dict[str, Any] | None, scope: str | None, where: _Where,
                  warmup: int | None) -> dict[str, Any] | None:
    """The rule's ``params`` checked against its detector (None if any is refused), and its ``scope``."""
    cls = detectors.resolve(detector)
    shared = scope == "metric" and getattr(cls, "multivariate", False)  # (the model itself is checked below)
    if scope == "metric" and not shared:
        several = ", ".join(detectors.REGISTRY.multivariate())
        where.add(
            "scope", f'detector "{cls.name}" models one field at a time; scope = "metric" needs one that takes several ({several})'
        )
    if params is None:
        return None
    learns_by = getattr(cls, "WARMUP_PARAM", None)
    declared = {p.name: p for p in detectors.rule_params(cls)}  # (a rule sets learns_by by its warmup)
    checked: dict[str, Any] = {}
    before = where.count
    for key, value in params.items():
        param = declared.get(key)
        if key == learns_by:
            where.add(
                f"params.{key}",
                f"set the rule's warmup instead (samples before a series may be scored or flagged; "
                f'"{cls.name}" learns for that long)',
            )
        elif param is None:  # (placed as a key of any other section is: threshold in a [[rule]], ...)
            where.add(f"params.{key}", _unknown(f'parameter for detector "{cls.name}"', key, sorted(declared),
                                                hint=_placed(key, declared, cls.name)))
        else:
            try:
                checked[key] = param.check(value)  # (a TOML array becomes the tuple a list parameter holds)
            except ValueError as err:
                where.add(f"params.{key}", str(err))
    if where.count > before:
        return None  # (a detector built without those would be checked on what the rule does not say)
    rule = Rule(0, "", detector=detector, warmup=warmup, params=checked, scope=scope or "field")
    try:
        sample = rule.new_detector()
    except (ValueError, TypeError) as err:
        key = getattr(err, "key", None)
        where.add(f"params.{key}" if key else "params", str(err))
        return None
    if shared and getattr(sample, "univariate", False):
        where.add("scope", f"this {cls.name} model learns from a target and watches one field at a time: use scope = \"field\"")
    return checked


def _parse_output(raw: Any, where: _Where) -> OutputConfig | None:
    names = _OUTPUT_STRINGS
    if not _check_keys(raw, _OUTPUT_KEYS, where):
        return None
    values: dict[str, Any] = {}
    for key in names:
        if key in raw:
            value = raw[key]
            if not isinstance(value, str) or not value:
                where.add(key, f"expected a non-empty string, got {value!r}")
            elif (problem := _unwritable(value, "field key")) is not None:
                where.add(key, problem)
            else:
                values[key] = value
    if "explain" in raw:
        if not isinstance(raw["explain"], bool):
            where.add("explain", f"expected true or false, got {raw['explain']!r}")
        else:
            values["explain"] = raw["explain"]
    out = OutputConfig(**values)
    refused = {*names, "explain"} & (set(raw) - set(values))  # (not compared with each other: told already)
    if not {"score_suffix", "flag_suffix"} & refused and out.score_suffix == out.flag_suffix:
        where.add("flag_suffix", "must differ from score_suffix")
    if not {"metric_score_field", "metric_flag_field"} & refused and out.metric_score_field == out.metric_flag_field:
        where.add("metric_flag_field", "must differ from metric_score_field")
    if not {"score_suffix", "flag_suffix"} & refused and out.score_suffix in out.explain_suffixes:
        where.add("score_suffix", f"must differ from the explanation suffixes {', '.join(out.explain_suffixes)}")
    return None if where.count else out


#: The checkpoint's name in a state folder (``riverguard.state.FOLDER_FILE``).
STATE_FOLDER_FILE = "riverguard.msgpack"


def state_path(raw: str, base: Path) -> Path:
    """The checkpoint file of a state path as written (``[state] path``, ``--state``, ``state inspect PATH``),
    resolved against ``base``. One that ends with a slash names a folder, also before it exists: the checkpoint
    is ``riverguard.msgpack`` in it (resolved, the slash would be lost and a file would take the folder's name);
    so is one that is a folder (:func:`checkpoint_file`). That is decided once, here: what it gives is the
    file, even when a folder sits there (``st/`` and ``st`` both give ``st/riverguard.msgpack``, never
    ``st/riverguard.msgpack/riverguard.msgpack``: the store refuses that folder). A leading ``~`` or ``~user``
    is that home folder, as in a shell (a config's ``path = "~/rg.msgpack"`` was a folder named ``~`` beside
    the config).

    >>> str(state_path("state/", Path("/etc/riverguard"))), str(state_path("rg.msgpack", Path("/etc")))
    ('/etc/riverguard/state/riverguard.msgpack', '/etc/rg.msgpack')
    >>> str(state_path("~root/rg.msgpack", Path("/etc"))) == str(Path("~root").expanduser() / "rg.msgpack")
    True

    Raises ValueError when the home folder is unknown (``~nosuchuser``; ``~`` without ``$HOME`` for a user
    the system does not know):

    >>> state_path("~nosuchuser-x/rg.msgpack", Path("/etc"))
    Traceback (most recent call last):
    ValueError: '~nosuchuser-x/rg.msgpack': no home folder for '~nosuchuser-x' (no such user?)
    """
    try:
        given = Path(raw).expanduser()
    except (RuntimeError, KeyError):  # (Python 3.11: RuntimeError)
        home = raw.split("/", 1)[0]
        raise ValueError(f"{raw!r}: no home folder for {home!r} (no such user?)") from None
    path = (base / given).resolve()
    return path / STATE_FOLDER_FILE if raw.endswith("/") else checkpoint_file(path)


def checkpoint_file(path: Path) -> Path:
    """The checkpoint file of a state path: ``riverguard.msgpack`` inside it when it is a folder (through
    :func:`state_path`, which gives the file: never applied twice)."""
    path = Path(path)
    try:
        folder = path.is_dir()
    except OSError:  # a folder on the way this process may not enter: said where the checkpoint is opened
        folder = False
    return path / STATE_FOLDER_FILE if folder else path


def file_identity(path: str | Path) -> tuple[Any, ...] | None:
    """What tells whether two paths name one file: the device and inode of an existing regular file (a
    symlink, a hard link or a ``./`` variant gives the same), the resolved path of one not made yet; None
    for anything else (a folder, a device, a FIFO: never overwritten as a file is)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ("path", str(Path(path).resolve()))
    except OSError:
        return None
    return ("file", st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def _parse_state(raw: Any, where: _Where, base: Path, file: Path | None = None) -> StateConfig | None:
    if not _check_keys(raw, _STATE_KEYS, where):
        return None
    values: dict[str, Any] = {}
    if "path" in raw:
        if not isinstance(raw["path"], str) or not raw["path"]:
            where.add("path", f"expected a non-empty string, got {raw['path']!r}")
        else:
            try:
                values["path"] = state_path(raw["path"], base)
            except ValueError as err:
                where.add("path", str(err))
                return None
            checkpoint = values["path"]
            same = file is not None and file_identity(file)
            if same and file_identity(checkpoint) == same:
                where.add("path", f"{raw['path']!r} is this config file ({checkpoint}): the checkpoint would replace "
                          'it; name another file, e.g. "riverguard.msgpack"')
    for key in ("checkpoint_interval", "series_ttl"):
        if key in raw:
            values[key] = _duration(raw[key], key, where)
    if "max_series" in raw:
        value = raw["max_series"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_COUNT:
            where.add("max_series", f"expected an integer in [1, {_MAX_COUNT}], got {value!r}")
        else:
            values["max_series"] = value
    return None if where.count else StateConfig(**values)


def _duration(value: Any, key: str, where: _Where) -> float | None:
    """A duration string (``"60s"``) in seconds, up to ``"87600h"``, a positive one under ``"1s"`` taken as that
    (a warning noted); None (noted) if it is not one."""
    if not isinstance(value, str):
        where.add(key, f'expected a duration string such as "60s", got {value!r}')
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        where.add(key, str(err))
        return None
    if seconds <= 0:
        where.add(key, "must be greater than zero")
        return None
    if seconds < _MIN_DURATION:
        least = duration_text(_MIN_DURATION)
        where.note(key, f'"{value}" is under the least, "{least}": using "{least}"')
        return _MIN_DURATION
    if not seconds <= _MAX_DURATION:  # (inf too)
        where.add(key, f'must be at most "87600h" (10 years), got "{value}"')
        return None
    return seconds


def _unwritable(name: str, what: str) -> str | None:
    """Why ``name``, a ``what`` ("field key", "tag key", "tag value") riverguard writes into line protocol as it
    is given, cannot be one; None if it can.

    >>> _unwritable("eu-1", "tag value"), _unwritable("eu\\\\1", "tag value").split(" (")[0]
    (None, 'must not hold a backslash')
    """
    if printable(name) != name:  # (printable escapes each control character)
        return (f"must not hold a tab, newline or other control character (a {what} in line protocol cannot), "
                f"got {name!r}")
    if "\\" in name:
        return (f"must not hold a backslash (InfluxDB 1.x keeps it escaped, doubled, in the {what}: the name there "
                f"would differ), got {name!r}")
    return None


def _parse_monitor(raw: Any, where: _Where) -> MonitorConfig | None:
    if not _check_keys(raw, _MONITOR_KEYS, where):
        return None
    interval = _duration(raw["interval"], "interval", where) if "interval" in raw else None
    tags: dict[str, str] = {}
    raw_tags = raw.get("tags", {})
    if not isinstance(raw_tags, dict):
        where.add("tags", 'expected a table of tag key to value, such as { host = "web1", dc = "eu" }, '
                  f"got {raw_tags!r}")
    else:
        for key, value in raw_tags.items():
            if key in MONITOR_OWN_TAGS:
                where.add(f"tags.{key}", f"riverguard sets this tag itself ({MONITOR_OWN_TAGS[key]}): give yours "
                          "another name")
            elif not key:
                where.add("tags.", 'an empty tag key ("" = ...) cannot be written: line protocol has none')
            elif (problem := _unwritable(key, "tag key")) is not None:
                where.add(f"tags.{key}", problem)
            elif not isinstance(value, str):
                where.add(f"tags.{key}", f'expected a string (an empty one, "", leaves the tag out), got {value!r}')
            elif (problem := _unwritable(value, "tag value")) is not None:
                where.add(f"tags.{key}", problem)
            else:
                tags[key] = value
    return None if where.count else MonitorConfig(interval=interval, tags=tags)
