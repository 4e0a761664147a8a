"""Carry ``checkpoint-record-state.msgpack`` over to the current state layout (``python tests/data/relayout_fixture.py``).

The fixture's two models (tests/test_state.py, ``FIXTURE_RULES``) keep every
value they hold, name by name; a scalar the current layout adds takes the
value a fresh model of the same rule holds (right for state that starts
empty, such as the new-extremes step's range before a reported episode:
check that it is right for yours). Buffers are kept as they are, and a
layout that drops or retypes a field is refused. The fingerprints and
layouts come from a checkpoint written under the same rules now.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from riverguard.config import load
from riverguard.state import store

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from test_state import FIXTURE_RULES  # noqa: E402

PATH = HERE / "checkpoint-record-state.msgpack"


def _fields(layout: str) -> list[tuple[str, str]]:
    return [tuple(f.rsplit(":", 1)) for f in layout.partition(" | ")[0].partition(": ")[2].split()]  # type: ignore[misc]


def main() -> None:
    old = store.read(PATH)
    with tempfile.TemporaryDirectory() as d:
        config = Path(d) / "rules.toml"
        config.write_text(FIXTURE_RULES)
        fresh = Path(d) / "s.msgpack"
        subprocess.run([sys.executable, "-m", "riverguard", "replay", "--config", str(config), "--state", str(fresh),
                        str(HERE / "checkpoint-by-name-state.lp")], check=True, capture_output=True)  # fmt: skip
        now = store.read(fresh).header
        rules = {str(r.index): r for r in load(config).rules}
    records = []
    for record in old.records:
        rec = list(record)
        index = next(k for k, fp in old.header["rules"].items() if fp == rec[2])
        before, after = _fields(old.header["layouts"][rec[2]]), _fields(now["layouts"][now["rules"][index]])
        if not set(before) <= set(after):
            raise SystemExit(f"rule {index}: the layout drops or retypes {sorted(set(before) - set(after))}")
        state = rec[6][0]
        values = dict(zip([n for n, _ in before], struct.unpack("<" + "".join("d" if c == "d" else "q" for _, c in before), state[0])))
        initial = rules[index].new_detector().dump_state()[0]
        start = dict(zip([n for n, _ in after], struct.unpack("<" + "".join("d" if c == "d" else "q" for _, c in after), initial)))
        packed = struct.pack("<" + "".join("d" if c == "d" else "q" for _, c in after), *[values.get(n, start[n]) for n, _ in after])
        rec[2] = now["rules"][index]
        rec[6] = [[packed, *state[1:]], *rec[6][1:]]
        records.append(rec)
    header = {k: v for k, v in old.header.items() if k not in ("format", "version", "created", "series")}
    header["rules"] = now["rules"]
    header["layouts"] = {fp: now["layouts"][fp] for fp in now["rules"].values()}
    store.write(PATH, header, records)
    print(f"{PATH.name}: {len(records)} models, fingerprints {sorted(now['rules'].values())}")


if __name__ == "__main__":
    main()
