"""``python -m tests.benchmarks.startup [--baseline PYTHON] [--runs N]``: start-up of ``riverguard run``.

With the default detector (no config), as Telegraf starts it: the process is
spawned, one metric is written to its stdin at once (stdin stays open), and
the clock stops when its first output line (that metric, scored) comes back:
interpreter start, imports, config, engine, one metric, flush. Then stdin is
closed and the time to exit is noted too, with the CPU time the process
used (user + system, from ``wait4``): on a loaded machine the wall clock
mostly measures the wait for a core, the CPU time much less so. ``--baseline`` is another
checkout's Python (e.g. ``/work/wt/base/.venv/bin/python``): runs alternate
between the two, so both see the same load; the ratio is what to read on a
shared machine. A third arm, the floor, is this Python echoing the line back
(``python -c``: interpreter start and nothing else). The load average is
printed before and after.

Compiled bytecode is cached as on an installed system (pip writes ``.pyc``
files at install time; an editable install writes them on the first run):
the children run without ``PYTHONDONTWRITEBYTECODE`` and with
``PYTHONPYCACHEPREFIX`` set to a temporary folder, which the warm-up run
fills, so no checkout is written to. ``--no-bytecode-cache`` keeps the
environment as it is (with ``PYTHONDONTWRITEBYTECODE=1`` every riverguard
module is compiled from source at each start).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

LINE = b"cpu,host=a usage_idle=97.5 1700000000000000000\n"


FLOOR = "import sys; sys.stdout.write(sys.stdin.readline().rstrip() + ' usage_idle_anomaly_score=0\\n')"


def once(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Seconds to the first output line, to exit after stdin closes, and of CPU used (user + system)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(LINE)
    proc.stdin.flush()
    first = proc.stdout.readline()
    ready = time.perf_counter() - start
    proc.stdin.close()
    proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    done = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or b"usage_idle_anomaly_score=" not in first:
        raise SystemExit(f"{command}: bad run ({first!r}, exit {proc.returncode})")
    return ready, done, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="another checkout's Python, measured alternately")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-bytecode-cache", action="store_true", help="keep the environment's bytecode setting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        env = None
        if not args.no_bytecode_cache:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPYCACHEPREFIX"] = cache
        return _run(args, env)


def _run(args: argparse.Namespace, env: dict[str, str] | None) -> int:
    pythons = {"this checkout": [sys.executable, "-m", "riverguard", "run"]}
    if args.baseline:
        pythons["baseline"] = [args.baseline, "-m", "riverguard", "run"]
    pythons["floor"] = [sys.executable, "-c", FLOOR]
    print("load average at start:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    for command in pythons.values():
        once(command, env)  # warm the file cache (and the bytecode cache)
    ready: dict[str, list[float]] = {name: [] for name in pythons}
    done: dict[str, list[float]] = {name: [] for name in pythons}
    cpu: dict[str, list[float]] = {name: [] for name in pythons}
    for _ in range(args.runs):
        for name, command in pythons.items():
            r, d, c = once(command, env)
            ready[name].append(r)
            done[name].append(d)
            cpu[name].append(c)
    print("load average at end:  ", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    cached = "bytecode cached" if env else "environment as is"
    print(f"`riverguard run`, default detector, {args.runs} runs each, interleaved ({cached}):")
    for name in pythons:
        r, d = ready[name], done[name]
        print(
            f"  {name:14s} first output line: median {statistics.median(r):.3f} s "
            f"(min {min(r):.3f}, max {max(r):.3f}); to exit: median {statistics.median(d):.3f} s; "
            f"CPU: median {statistics.median(cpu[name]):.3f} s"
        )
    if args.baseline:
        ratio = statistics.median(ready["this checkout"]) / statistics.median(ready["baseline"])
        paired = [a / b for a, b in zip(ready["this checkout"], ready["baseline"])]
        print(f"  ratio of medians {ratio:.3f}; per pair: median {statistics.median(paired):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
