"""Carry ``checkpoint-record-state.msgpack`` over to the current state layout (``python tests/data/relayout_fixture.py``).

The fixture's two models (tests/test_state.py, ``FIXTURE_RULES``) keep every
value they hold, name by name; a scalar the current layout adds takes the
value a fresh model of the same rule holds (right for state that starts
empty, such as the new-extremes step's range before a reported episode:
check that it is right for yours). Buffers are kept as they are, and a
layout that drops a field is refused. The fingerprints and layouts are the
rules' own (``Rule.fingerprint``, ``Rule.state_layout``).
"""

from __future__ import annotations

import struct
import sys
import tempfile
from pathlib import Path

from riverguard.config import load
from riverguard.detectors.steps import read_record
from riverguard.state import store

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from test_state import FIXTURE_RULES  # noqa: E402

PATH = HERE / "checkpoint-record-state.msgpack"


def _by_name(layout: str, record: list) -> dict[str, float | int | bool]:
    """The scalars of a saved record, by their layout names (``n``, ``extremes.lo``, ...): read_record's."""
    out: dict[str, float | int | bool] = {}
    for key, value in read_record(layout, record).items():
        if isinstance(value, dict):
            out.update({f"{key}.{name}": v for name, v in value.items() if not isinstance(v, bytes)})
        else:
            out[key] = value
    return out


def main() -> None:
    old = store.read(PATH)
    with tempfile.TemporaryDirectory() as d:
        config = Path(d) / "rules.toml"
        config.write_text(FIXTURE_RULES)
        rules = {str(r.index): r for r in load(config).rules}
    records = []
    for record in old.records:
        rec = list(record)
        index = next(k for k, fp in old.header["rules"].items() if fp == rec[2])
        rule = rules[index]
        fields = [f.rsplit(":", 1) for f in rule.state_layout.partition(" | ")[0].partition(": ")[2].split()]
        state = rec[6][0]
        values = _by_name(old.header["layouts"][rec[2]], state)
        if not set(values) <= {name for name, _ in fields}:
            raise SystemExit(f"rule {index}: the layout drops {sorted(set(values) - {name for name, _ in fields})}")
        start = _by_name(rule.state_layout, rule.new_detector().dump_state())
        packed = struct.pack("<" + "".join("d" if code == "d" else "q" for _, code in fields),
                             *[values.get(name, start[name]) for name, _ in fields])  # fmt: skip
        rec[2] = rule.fingerprint
        rec[6] = [[packed, *state[1:]], *rec[6][1:]]
        records.append(rec)
    header = {k: v for k, v in old.header.items() if k not in ("format", "version", "created", "series")}
    header["rules"] = {index: rule.fingerprint for index, rule in rules.items()}
    header["layouts"] = {rule.fingerprint: rule.state_layout for rule in rules.values()}
    store.write(PATH, header, records)
    print(f"{PATH.name}: {len(records)} models, fingerprints {sorted(header['layouts'])}")


if __name__ == "__main__":
    main()
