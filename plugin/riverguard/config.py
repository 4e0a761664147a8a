"""riverguard's TOML configuration: rules, output suffixes and state settings.

``load(path)`` reads and validates a file; ``parse(text, source)`` does the
same for text. Every problem raises :class:`ConfigError`, whose message names
the file, the rule (index and name) and the key.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import detectors
from .detectors.base import Factory

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
    path: Path | None = None
    checkpoint_interval: float = 60.0
    max_series: int = 100_000
    series_ttl: float = 24 * 3600.0


@dataclass(frozen=True)
class MonitorConfig:
    #: Seconds between two ``riverguard`` health lines on stdout; None: off.
    interval: float | None = None


@dataclass(frozen=True)
class Config:
    rules: tuple[Rule, ...]
    output: OutputConfig = OutputConfig()
    state: StateConfig = StateConfig()
    monitor: MonitorConfig = MonitorConfig()
    source: str = "<default>"


DEFAULT_RULE = Rule(index=0, name="default")


def default_config() -> Config:
    """What ``riverguard run`` uses without ``--config``: every numeric field, default detector."""
    return Config(rules=(DEFAULT_RULE,))


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")


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
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    return parse(text, source=str(path), base=path.resolve().parent)


_RULE_KEYS = {"name", "measurement", "tags", "fields", "detector", "threshold", "warmup", "params", "scope", "explain"}
_TOP_KEYS = {"rule", "output", "state", "monitor"}


class _Where:
    """Builds error messages that name the file, the rule and the key."""

    def __init__(self, source: str, section: str) -> None:
        self.source = source
        self.section = section

    def error(self, key: str | None, message: str) -> ConfigError:
        where = f"{self.source}: {self.section}"
        if key is not None:
            where += f", key '{key}'"
        return ConfigError(f"{where}: {message}")


def parse(text: str, source: str = "<string>", base: Path | None = None) -> Config:
    """Validate config ``text``; ``base`` is the folder relative paths resolve against."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: invalid TOML: {err}") from None
    top = _Where(source, "top level")
    _check_keys(doc, _TOP_KEYS, top)
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list):
        raise top.error("rule", "must be an array of tables ([[rule]])")
    errors: list[str] = []
    sections = {}
    for name, make in (
        ("output", lambda: _parse_output(doc.get("output", {}), _Where(source, "[output]"))),
        ("state", lambda: _parse_state(doc.get("state", {}), _Where(source, "[state]"), base or Path.cwd())),
        ("monitor", lambda: _parse_monitor(doc.get("monitor", {}), _Where(source, "[monitor]"))),
    ):
        try:
            sections[name] = make()
        except ConfigError as err:
            errors.append(str(err))
    rule_errors: list[str] = []
    parsed: list[Rule] = []
    explain = sections["output"].explain if "output" in sections else False  # a rule's own explain, else this
    for i, raw in enumerate(raw_rules, start=1):  # every rule is checked: all problems at once
        try:
            parsed.append(_parse_rule(i, raw, source, explain))
        except ConfigError as err:
            rule_errors.append(str(err))
    first: dict[str, int] = {}
    for rule in parsed:
        if rule.name in first:
            rule_errors.append(f'{source}: rule {rule.index} "{rule.name}": duplicate name (rule {first[rule.name]} has it)')
        first.setdefault(rule.name, rule.index)
    errors = rule_errors + errors  # (in the order of the file's usual layout: rules, then the sections)
    if errors:
        raise ConfigError("\n".join(errors), errors)
    return Config(rules=tuple(parsed), output=sections["output"], state=sections["state"],
                  monitor=sections["monitor"], source=source)


def warnings(config: Config) -> list[str]:
    """What is valid but probably not meant: no rule at all, rules an earlier catch-all hides."""
    found = []
    if not config.rules:
        found.append(
            f"{config.source}: no [[rule]]: this config scores nothing "
            "(without --config riverguard scores every numeric field with the default detector)"
        )
    for i, rule in enumerate(config.rules):
        if rule.measurement == "*" and not rule.tags and "*" in rule.fields:
            found.extend(
                f'{config.source}: rule {later.index} "{later.name}" is never used: '
                f'rule {rule.index} "{rule.name}" before it matches every field'
                for later in config.rules[i + 1 :]
            )
            break
    return found


def _check_keys(table: Any, allowed: set[str], where: _Where) -> None:
    if not isinstance(table, dict):
        raise where.error(None, "must be a table")
    for key in table:
        if key not in allowed:
            raise where.error(key, f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _glob(value: Any, key: str, where: _Where) -> str:
    if not isinstance(value, str) or not value:
        raise where.error(key, f"expected a non-empty glob string, got {value!r}")
    if value.count("[") != value.count("]"):
        raise where.error(key, f"invalid glob {value!r}: unbalanced brackets")
    try:
        re.compile(fnmatch.translate(value))
    except re.error as err:
        raise where.error(key, f"invalid glob {value!r}: {err}") from None
    return value


def _parse_rule(index: int, raw: Any, source: str, explain_default: bool = False) -> Rule:
    name = raw.get("name") if isinstance(raw, dict) else None
    label = f"rule {index}" + (f' "{name}"' if isinstance(name, str) else "")
    where = _Where(source, label)
    _check_keys(raw, _RULE_KEYS, where)
    if name is None:
        name = f"rule-{index}"
    elif not isinstance(name, str) or not name:
        raise where.error("name", f"expected a non-empty string, got {name!r}")
    measurement = _glob(raw.get("measurement", "*"), "measurement", where)
    tags = raw.get("tags", {})
    if not isinstance(tags, dict):
        raise where.error("tags", "expected a table of tag key to glob")
    tags = {str(k): _glob(v, f"tags.{k}", where) for k, v in tags.items()}
    fields = raw.get("fields", ["*"])
    if not isinstance(fields, list) or not fields:
        raise where.error("fields", f"expected a non-empty list of globs, got {fields!r}")
    fields = tuple(_glob(f, "fields", where) for f in fields)
    detector = raw.get("detector", "default")
    if not isinstance(detector, str):
        raise where.error("detector", f"expected a string, got {detector!r}")
    if detector not in ("default", "off") and detector not in detectors.REGISTRY:
        known = ", ".join(["default", "off", *sorted(detectors.REGISTRY)])
        raise where.error("detector", f'unknown detector "{detector}" (known: {known})')
    threshold = raw.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise where.error("threshold", f"expected a number in [0, 1], got {threshold!r}")
        threshold = float(threshold)
    warmup = raw.get("warmup")
    if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0):
        raise where.error("warmup", f"expected an integer >= 0, got {warmup!r}")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise where.error("params", "expected a table")
    scope = raw.get("scope", "field")
    if scope not in ("field", "metric"):
        raise where.error("scope", f'expected "field" or "metric", got {scope!r}')
    explain = raw.get("explain", explain_default)
    if not isinstance(explain, bool):
        raise where.error("explain", f"expected true or false, got {explain!r}")
    rule = Rule(index, name, measurement, tags, fields, detector, threshold, warmup, dict(params), scope, explain)
    cls = rule.detector_class
    if cls is None:
        if params:
            raise where.error("params", 'detector "off" takes no parameters')
        if scope == "metric":
            raise where.error("scope", 'detector "off" has no model to share: use scope = "field"')
        return rule
    if scope == "metric" and not getattr(cls, "multivariate", False):
        several = ", ".join(detectors.REGISTRY.multivariate())
        raise where.error(
            "scope", f'detector "{cls.name}" models one field at a time; scope = "metric" needs one that takes several ({several})'
        )
    declared = {p.name: p for p in cls.PARAMS}
    checked = {}
    for key, value in params.items():
        param = declared.get(key)
        if key == getattr(cls, "WARMUP_PARAM", None):
            raise where.error(
                f"params.{key}",
                f"set the rule's warmup instead (samples before a series may be scored or flagged; "
                f'"{cls.name}" learns for that long)',
            )
        if param is None:
            raise where.error(
                f"params.{key}",
                f'unknown parameter for detector "{cls.name}" (known: {", ".join(sorted(declared))})',
            )
        try:
            checked[key] = param.check(value)  # (a TOML array becomes the tuple a list parameter holds)
        except ValueError as err:
            raise where.error(f"params.{key}", str(err)) from None
    rule = Rule(index, name, measurement, tags, fields, detector, threshold, warmup, checked, scope, explain)
    try:
        sample = rule.new_detector()
    except (ValueError, TypeError) as err:
        key = getattr(err, "key", None)
        raise where.error(f"params.{key}" if key else "params", str(err)) from None
    if scope == "metric" and getattr(sample, "univariate", False):
        raise where.error("scope", f"this {cls.name} model learns from a target and watches one field at a time: use scope = \"field\"")
    return rule



def _parse_output(raw: Any, where: _Where) -> OutputConfig:
    names = ("score_suffix", "flag_suffix", "metric_score_field", "metric_flag_field")
    _check_keys(raw, {*names, "explain"}, where)
    values: dict[str, Any] = {}
    for key in names:
        if key in raw:
            value = raw[key]
            if not isinstance(value, str) or not value or "\n" in value:
                raise where.error(key, f"expected a non-empty one-line string, got {value!r}")
            values[key] = value
    if "explain" in raw:
        if not isinstance(raw["explain"], bool):
            raise where.error("explain", f"expected true or false, got {raw['explain']!r}")
        values["explain"] = raw["explain"]
    out = OutputConfig(**values)
    if out.score_suffix == out.flag_suffix:
        raise where.error("flag_suffix", "must differ from score_suffix")
    if out.metric_score_field == out.metric_flag_field:
        raise where.error("metric_flag_field", "must differ from metric_score_field")
    if out.score_suffix in out.explain_suffixes:
        raise where.error("score_suffix", f"must differ from the explanation suffixes {', '.join(out.explain_suffixes)}")
    return out


def _parse_state(raw: Any, where: _Where, base: Path) -> StateConfig:
    _check_keys(raw, {"path", "checkpoint_interval", "max_series", "series_ttl"}, where)
    values: dict[str, Any] = {}
    if "path" in raw:
        if not isinstance(raw["path"], str) or not raw["path"]:
            raise where.error("path", f"expected a non-empty string, got {raw['path']!r}")
        values["path"] = (base / raw["path"]).resolve()
    for key in ("checkpoint_interval", "series_ttl"):
        if key in raw:
            values[key] = _duration(raw[key], key, where)
    if "max_series" in raw:
        value = raw["max_series"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise where.error("max_series", f"expected an integer >= 1, got {value!r}")
        values["max_series"] = value
    return StateConfig(**values)


def _duration(value: Any, key: str, where: _Where) -> float:
    """A positive duration string (``"60s"``) in seconds."""
    if not isinstance(value, str):
        raise where.error(key, f'expected a duration string such as "60s", got {value!r}')
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        raise where.error(key, str(err)) from None
    if seconds <= 0 or not math.isfinite(seconds):
        raise where.error(key, "must be greater than zero")
    return seconds


def _parse_monitor(raw: Any, where: _Where) -> MonitorConfig:
    _check_keys(raw, {"interval"}, where)
    if "interval" not in raw:
        return MonitorConfig()
    return MonitorConfig(interval=_duration(raw["interval"], "interval", where))
