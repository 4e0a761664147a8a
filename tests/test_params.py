"""Each detector parameter is declared once; the constructor, validation, config, fingerprint and docs follow it."""

from __future__ import annotations

import math
import re
import struct
from collections import Counter
from pathlib import Path

import pytest

from riverguard import config
from riverguard.detectors import REGISTRY, steps_of
from riverguard.detectors.params import Param, markdown
from riverguard.detectors.steps import Pipeline
from riverguard.engine import Engine
from riverguard.log import Log
from riverguard.stream import process_chunks

ROOT = Path(__file__).resolve().parents[1]
DETECTORS = ROOT / "plugin" / "riverguard" / "detectors"
NAMES = sorted(REGISTRY)


def test_docs_table_is_in_sync() -> None:
    expected = markdown([REGISTRY[name] for name in NAMES], steps_of)
    assert (ROOT / "docs" / "parameters.md").read_text() == expected, (
        "docs/parameters.md is stale: python -m riverguard.detectors > docs/parameters.md"
    )


def test_docs_name_the_rules_warmup_not_the_internal_setting_it_fills() -> None:
    # a rule's `warmup` fills the detectors' internal `learn` (WARMUP_PARAM), which no user sets by that name
    text = markdown([REGISTRY[name] for name in NAMES], steps_of)
    internal = {REGISTRY[name].WARMUP_PARAM for name in NAMES if getattr(REGISTRY[name], "WARMUP_PARAM", None)}
    assert internal == {"learn"}
    assert not re.findall(r"(?<![`_])\blearn\b(?![_`])", text), "docs/parameters.md says learn for the rule's warmup"


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_is_declared_once_with_a_valid_default(name: str) -> None:
    cls = REGISTRY[name]
    names = [p.name for p in cls.PARAMS]
    assert len(names) == len(set(names))
    assert cls.defaults() == {p.name: p.default for p in cls.PARAMS}
    for p in cls.PARAMS:
        assert p.check(p.default) == p.default, p.name
        assert p.doc and p.doc.endswith("."), p.name
    if any(p.default is None for p in cls.PARAMS):
        return  # a required parameter (river's model): no instance with the defaults alone
    det = cls()
    assert det.params() == cls.defaults()
    assert {n: getattr(det, n) for n in names} == cls.defaults()  # settings read under their own names


@pytest.mark.parametrize("name", NAMES)
def test_out_of_range_values_are_refused_naming_the_parameter_and_range(name: str) -> None:
    cls = REGISTRY[name]
    required = {p.name: p.default for p in cls.PARAMS if p.default is None}
    if required:
        pytest.skip("a required parameter the detector checks itself (river's model spec)")
    for p in cls.PARAMS:
        for bad in _outside(p):
            with pytest.raises(ValueError, match=rf"^{p.name} must be {re.escape(p.describe())}, got "):
                cls(**{p.name: bad})
            text = f'[[rule]]\nname = "r"\ndetector = "{name}"\n[rule.params]\n{p.name} = {_toml(bad)}\n'
            # (the parameter a rule's warmup sets is refused in params whatever its value)
            says = "set the rule's warmup instead" if p.name == getattr(cls, "WARMUP_PARAM", None) else f"{p.name} must be "
            with pytest.raises(config.ConfigError, match=rf"key 'params.{p.name}': {says}"):
                config.parse(text)


@pytest.mark.parametrize("name", NAMES)
def test_every_integer_parameter_has_a_bounded_range(name: str) -> None:
    """A huge integer is refused by check-config naming it, not an OverflowError (a C long) or a model that
    grows with it (hst's height): every integer parameter, a list's items too, declares both ends."""
    for p in REGISTRY[name].PARAMS:
        for q in (p, p.items) if p.items is not None else (p,):
            if q.kind is int:
                assert q.low is not None and q.high is not None, f"{name}: {q.name} has no bounded range"
                assert q.high <= 2**63 - 1 and q.low >= -(2**63), q.name


def _outside(p: Param) -> list[object]:
    """Values just outside ``p``'s range, and one of the wrong type."""
    out: list[object] = ["x" if p.kind is not str else 1]
    if p.low is not None:
        out.append(p.low if p.low_open else (p.low - 1 if p.kind is int else p.low - 0.5))
    if p.high is not None:
        out.append(p.high if p.high_open else (p.high + 1 if p.kind is int else p.high + 0.5))
    if p.choices:
        out.append("nope")
    if p.kind is float:  # (TOML writes inf and nan: no setting takes them)
        out += [float("inf"), float("-inf"), float("nan")]
    return out


def _toml(v: object) -> str:
    return f'"{v}"' if isinstance(v, str) else repr(v)


def test_a_toml_array_sets_a_list_parameter() -> None:
    rule = config.parse('[[rule]]\nname = "c"\ndetector = "context"\nparams = { orders = [1, 3] }\n').rules[0]
    assert rule.params["orders"] == (1, 3)
    assert REGISTRY["context"](**rule.params).orders == (1, 3)


def test_fingerprint_follows_parameters_and_state_layout() -> None:
    rule = config.parse('[[rule]]\nname = "s"\n').rules[0]
    other = config.parse('[[rule]]\nname = "s"\nparams = { suppress = 3 }\n').rules[0]
    assert rule.fingerprint != other.fingerprint
    assert REGISTRY["sentinel"].STATE_LAYOUT.startswith("record 2: n:q t0:d t1:d gap:d surprise.b1:q surprise.b2:q error.mean:d ")


@pytest.mark.parametrize("params", [{}, {"spike": 0.0}, {"spike": 12.0}])
@pytest.mark.parametrize("name", ["sentinel", "context"])
def test_the_state_record_follows_the_steps_declarations(name: str, params: dict[str, float]) -> None:
    """The state layout lists every name in the ``STATE`` and ``BUFFERS`` of the steps that are on, in
    order, and the record that ``dump_state`` saves holds exactly those values there (8 bytes per
    scalar, then the buffers); ``state_by_name`` reads them back under their names."""
    cls = REGISTRY[name]
    det = cls(**params)
    for i in range(500):
        det.process(10.0 + (i * 7919) % 13 + (30.0 if i == 400 else 0.0), 1.7e9 + 300.0 * i)
    steps = [(s, step) for s, step in cls.STEPS if getattr(det, s) is not None]
    assert len(steps) == len(cls.STEPS) - _off(cls, det.cfg.values)  # a step switched off is left out
    layout = cls.state_identity({**cls.defaults(), **params})[1]
    scalars, buffers = layout.split(": ", 1)[1].split(" | ")
    fields = [f.split(":") for f in scalars.split()]
    assert [f[0] for f in fields] == ["n", "t0", "t1", "gap"] + [f"{s}.{n}" for s, step in steps for n in step.STATE]
    assert [b.split(":")[0] for b in buffers.split()] == [f"{s}.{n}" for s, step in steps for n in step.BUFFERS]
    named = det.state_by_name()
    record = det.dump_state()
    values = struct.unpack("<" + "".join("d" if code == "d" else "q" for _, code in fields), record[0])
    for (field, code), value in zip(fields, values):
        step, _, key = field.rpartition(".")
        held = named[step][key] if step else named[key]
        assert type(held) is {"d": float, "q": int, "?": bool}[code] and held == value, field
    assert record[1:] == [named[s][n] for s, step in steps for n in step.BUFFERS]
    assert named["n"] == 500 and named["extremes"]["hi"] >= 40.0 and named["day"]["slot"] >= 0  # a real state


#: the steps that can be off: (their switch, the pipeline attribute, a value that switches it on, the settings
#: other than the switch that a rule may give, the names of its state)
SWITCHED = [
    ("spike", "spikes", 12.0, ("spike_fading = 0.5, spike_score = 0.2", "spike_record = 0.9", "spike_time = 60.0"),
     ("mean", "mad", "top", "run", "count", "peak", "crec", "owe")),
    ("shift", "shifts", 8.0, ("shift_time = 30.0, shift_score = 0.2", "shift_record = 0.9", "shift_samples = 5.0"),
     ("mean", "dev", "top", "run", "long", "ldev")),
    ("spread", "spreads", 10.0, (), ("mean", "dev", "top", "run", "long", "last")),  # (its other settings are the shift step's)
    ("counter_time", "counter", 86400.0, ("counter_burst = 2.0", "counter_burst = 8.0"),
     ("rises:q", "since", "last", "rise", "top", "said:?")),
]


def _off(cls: type, values: dict[str, object]) -> int:
    """How many of ``cls``'s steps ``values`` switch off (each is then left out)."""
    return sum(1 for _, step in cls.STEPS if step.SWITCH is not None and not values[step.SWITCH])


@pytest.mark.parametrize(("switch", "attr", "value", "others", "state"), SWITCHED)
@pytest.mark.parametrize("name", ["sentinel", "context"])
def test_a_step_that_is_off_leaves_the_fingerprint_and_state_as_they_were(
    name: str, switch: str, attr: str, value: float, others: tuple[str, ...], state: tuple[str, ...]
) -> None:
    """A step with a switch (the spike step while ``spike`` is 0, ``context``'s default; the shift step while
    ``shift`` is 0, the spread step while ``spread`` is 0 and the counter step while ``counter_time`` is 0,
    also ``context``'s defaults; ``sentinel`` has all four on) is off: its other settings change
    nothing then, so they stay out of the fingerprint, and it holds no state. Switched on, its settings and
    its state's layout are in the fingerprint (test_warmup pins the defaults')."""
    cls = REGISTRY[name]

    def fingerprint(params: str) -> str:
        return config.parse(f'[[rule]]\nname = "s"\ndetector = "{name}"\nparams = {{ {params} }}\n').rules[0].fingerprint

    # (with the steps that also read its settings off too: Step.USES, test below)
    mine = {p.name for _, s in cls.STEPS if s.SWITCH == switch for p in s.PARAMS}
    users = "".join(f", {s.SWITCH} = 0.0" for _, s in cls.STEPS if s.SWITCH and set(s.USES) & mine)
    off = fingerprint(f"{switch} = 0.0{users}")
    for same in others:
        assert fingerprint(f"{switch} = 0.0{users}, {same}") == off, same
    whole = int(value)
    on = [fingerprint(p) for p in (f"{switch} = {value}", f"{switch} = {whole}", f"{switch} = {value * 2}",
                                   *(f"{switch} = {value}, {o}" for o in others[1:2]))]
    assert off not in on and on[0] == on[1] and len(set(on)) == 2 + bool(others)
    plain = config.parse(f'[[rule]]\nname = "s"\ndetector = "{name}"\n').rules[0].fingerprint
    default_on = bool(cls.defaults()[switch])
    assert plain == (on[0] if cls.defaults()[switch] == value else off)
    params, layout = cls.state_identity({**cls.defaults(), switch: value})
    params_off, layout_off = cls.state_identity({**cls.defaults(), switch: 0.0})
    names = "".join(f" {attr}.{n}" + ("" if ":" in n else ":d") for n in state)  # (a float unless typed)
    assert layout.replace(names, "") == layout_off and names in layout
    assert cls.STATE_LAYOUT == (layout if default_on else layout_off)
    assert {p.name for _, step in cls.STEPS if step.SWITCH == switch for p in step.PARAMS} <= set(params)
    assert switch not in params_off and attr not in cls(**{switch: 0.0}).state_by_name()
    both = {s.SWITCH: 1.0 for _, s in cls.STEPS if s.SWITCH}
    assert list(cls(**both).state_by_name()) == ["n", "t0", "t1", "gap"] + [a for a, _ in cls.STEPS]


@pytest.mark.parametrize("name", ["sentinel", "context"])
def test_settings_a_step_shares_stay_in_the_fingerprint_while_it_is_on(name: str) -> None:
    """The spread step reads the shift step's settings (``Spread.USES``): with the shift step off and the
    spread step on, ``shift_time`` still changes the fingerprint (a model learned over one window is not
    restored under another); with both off (and the counter step, which reads the window) it does not. The
    counter step reads the window and ``extreme`` (``Counter.USES``), not the rest."""

    def fingerprint(params: str) -> str:
        return config.parse(f'[[rule]]\nname = "s"\ndetector = "{name}"\nparams = {{ {params} }}\n').rules[0].fingerprint

    for other in ("shift_time = 60.0", "shift_time_last = 0.0", "shift_record = 0.9"):
        assert fingerprint(f"shift = 0.0, spread = 10.0") != fingerprint(f"shift = 0.0, spread = 10.0, {other}"), other
        off = "shift = 0.0, spread = 0.0, counter_time = 0.0"
        assert fingerprint(off) == fingerprint(f"{off}, {other}"), other
        counter = "shift = 0.0, spread = 0.0, counter_time = 3600.0"
        assert (fingerprint(counter) != fingerprint(f"{counter}, {other}")) == other.startswith("shift_time ="), other
    spread = dict(REGISTRY[name].STEPS)["spreads"]
    shift = dict(REGISTRY[name].STEPS)["shifts"]
    assert set(spread.USES) == {p.name for p in shift.PARAMS} - {"shift"}
    assert dict(REGISTRY[name].STEPS)["counter"].USES == ("shift_time", "shift_samples", "extreme")


def _pxd_attributes(path: Path) -> dict[str, dict[str, str]]:
    """``{class: {attribute: C type}}`` declared in a .pxd (``cdef [public|readonly] TYPE a, b``)."""
    out: dict[str, dict[str, str]] = {}
    current = ""
    for line in path.read_text().splitlines():
        m = re.match(r"cdef class (\w+)", line)
        if m:
            current = m.group(1)
            out[current] = {}
            continue
        m = re.match(r"    cdef (?:public |readonly )?([\w ]+?) (\*?\w+(?:, \w+)*)$", line)
        if m and current:
            for attr in m.group(2).split(", "):
                out[current][attr] = m.group(1)
    return out


C_TYPES = {bool: {"bint"}, int: {"int", "int64_t"}, float: {"double"}, tuple: {"tuple"}, str: {"str"}}


@pytest.mark.parametrize("name", ["sentinel", "context"])
def test_pxd_types_every_declared_parameter_and_state_name(name: str) -> None:
    """The .pxd beside a compiled module only adds types: each declared parameter has one in the detector's
    settings class (``Settings``, or its subclass with the surprise step's), each state name in its step's."""
    cls = REGISTRY[name]
    declared = {**_pxd_attributes(DETECTORS / "steps.pxd"), **_pxd_attributes(DETECTORS / f"{name}.pxd")}
    settings = {**declared["Settings"], **declared[cls.SETTINGS.__name__]}
    for p in cls.PARAMS:
        assert settings.get(p.name) in C_TYPES[p.kind], (cls.SETTINGS.__name__, p.name)
    fresh = cls(**{s.SWITCH: 1.0 for _, s in cls.STEPS if s.SWITCH})  # (a step that is off is left out)
    for attr, step_cls in cls.STEPS:
        attrs = {k: v for c in reversed(step_cls.__mro__) for k, v in declared.get(c.__name__, {}).items()}  # (and its bases')
        step = getattr(fresh, attr)
        assert not set(attrs) & {p.name for p in cls.PARAMS}, step_cls.__name__  # (the rule's, not the step's)
        for state in step_cls.STATE:
            kind = type(getattr(step, "_" + state))
            assert attrs.get("_" + state) in C_TYPES[kind], (step_cls.__name__, state)
    assert issubclass(cls, Pipeline)


def _wave(i: int, phase: float) -> float:
    """A daily wave with a spike now and then, one sample every 5 minutes."""
    return 10.0 + 3.0 * math.sin(i / 288.0 * 2.0 * math.pi + phase) + (25.0 if i % 997 == 500 else 0.0) + (i * 7919) % 13 / 10.0


@pytest.mark.parametrize("params", [{"spike": 0.0}, {"spike": 12.0}])
@pytest.mark.parametrize("name", ["sentinel", "context"])
def test_a_rules_series_share_its_settings_and_keep_their_state_apart(name: str, params: dict[str, float]) -> None:
    """The settings are kept once per rule: every step of every series of a rule refers to the one settings
    object the rule's factory made. What each series learns stays its own: a series fed beside another scores
    what it scores alone, and a series made after both starts from nothing."""
    cls = REGISTRY[name]
    make = cls.factory(params)
    a, b, alone = make(), make(), make()
    assert a.cfg is b.cfg and type(a.cfg) is cls.SETTINGS and a.cfg.values == cls(**params).params()
    for det in (a, b):
        steps = [getattr(det, s) for s, _ in cls.STEPS if getattr(det, s) is not None]
        assert len(steps) == len(cls.STEPS) - _off(cls, a.cfg.values) and all(step.cfg is a.cfg for step in steps)
    scores = []
    for i in range(3000):
        t = 1.7e9 + 300.0 * i
        scores.append(a.process(_wave(i, 0.0), t))
        b.process(_wave(i, 2.0) * 3.0, t)
        assert scores[-1] == alone.process(_wave(i, 0.0), t), i
    assert max(scores) >= 0.5  # (the spikes were scored)
    assert a.dump_state() == alone.dump_state() != b.dump_state()
    assert make().dump_state() == cls(**params).dump_state()


@pytest.mark.parametrize("name", ["sentinel", "context"])
def test_a_setting_reads_back_under_its_own_name_from_the_detector_and_its_step(name: str) -> None:
    """River's idiom: ``det.spike``, and ``det.spikes.spike`` on the step that uses it (the switched steps on), with the type declared;
    a step has no other step's settings."""
    cls = REGISTRY[name]
    given = {"spike": 12.0, "shift": 8.0, "spread": 9.0, "counter_time": 600.0, "peak": 4.0, "suppress": 7,
             "weekend_slots": False}
    det = cls(**given)
    values = {**cls.defaults(), **given}  # (not det.params(): the detector's own reads come from the same dict)
    for attr, step_cls in cls.STEPS:
        step = getattr(det, attr)
        for p in step_cls.PARAMS:
            for got in (getattr(step, p.name), getattr(det, p.name)):
                assert got == values[p.name] and type(got) is p.kind, (attr, p.name)
        with pytest.raises(AttributeError, match="no attribute 'no_such_setting'"):
            step.no_such_setting  # noqa: B018
    assert (det.spike, det.spikes.spike, det.suppression.suppress, det.day.weekend_slots) == (12.0, 12.0, 7, False)
    assert (det.shift, det.shifts.shift) == (8.0, 8.0)
    assert (det.spread, det.spreads.spread) == (9.0, 9.0)
    assert (det.counter_time, det.counter.counter_time, det.counter.counter_burst) == (600.0, 600.0, 4.0)
    assert (det.peak, det.views.peak, det.views.agree) == (4.0, 4.0, 2.0)
    with pytest.raises(AttributeError):
        det.error.spike  # noqa: B018  (the spike step's, not the prediction error's)


def test_a_reload_gives_a_rules_series_the_new_settings() -> None:
    """SIGHUP's reload: the series of a rule whose warm-up changed keep what they learned, in detectors that
    share the new rule's settings; the series of a rule whose parameters changed start fresh on the new ones."""
    text = '[[rule]]\nname = "a"\nfields = ["a*"]\nwarmup = {w}\n[[rule]]\nname = "b"\nfields = ["b"]\n{p}'
    engine = Engine(config.parse(text.format(w=50, p="")), Log("error"))
    data = b"".join(b"m a1=%d,a2=%d,b=%d %d\n" % (i % 7, i % 5, i % 3, (1_700_000_000 + 60 * i) * 10**9)
                    for i in range(100))
    process_chunks(engine, [data], lambda _: None)
    old = sorted((s.rule.name, s.detector.learn, s.detector.suppress) for s in engine.series.values())
    assert old == [("a", 50, 400), ("a", 50, 400), ("b", 200, 400)]
    assert engine.reconfigure(config.parse(text.format(w=80, p="params = { suppress = 3 }\n"))) == (2, Counter({Engine.CHANGED: 1}))
    kept = [s.detector for s in engine.series.values()]
    assert len(kept) == 2 and kept[0].cfg is kept[1].cfg and kept[0].learn == kept[0].cfg.learn == 80
    assert all(d.state_by_name()["n"] == 100 for d in kept)  # what they learned
    process_chunks(engine, [b"m a1=1,a2=1,b=1 1700009000000000000\n"], lambda _: None)
    fresh = [s.detector for s in engine.series.values() if s.rule.name == "b"]
    assert len(fresh) == 1 and fresh[0].suppression.suppress == 3 and fresh[0].state_by_name()["n"] == 1


def test_a_state_learned_from_integer_event_times_is_saved_in_the_declared_layout() -> None:
    """Uncompiled, integer event times make integer durations (the excursion's ``extremes.run``). The record's
    layout comes from the steps' declarations (the types a fresh step holds), not from what one series holds
    when the layout is first worked out: a detector fed so is saved in the layout every other one is."""
    from riverguard.detectors.steps import _describe

    cls = REGISTRY["sentinel"]
    det = cls()
    for i in range(253):
        det.process(10.0 + (i * 7919) % 13 + (30.0 if i >= 250 else 0.0), 1_700_000_000 + 10 * i)
    assert det.state_by_name()["extremes"]["run"] > 0  # (an excursion is on: 3 samples into it)
    assert _describe([(name, getattr(det, name)) for name, _ in cls.STEPS])[3] == cls.STATE_LAYOUT
