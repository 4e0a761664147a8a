"""The benchmark driver: throughput, memory, latency and checkpoint figures for riverguard.

Everything that involves the stream goes through the real ``riverguard run``
process, fed on stdin by a writer and drained on stdout by a reader thread,
as Telegraf's execd processor does. Process start-up is excluded: each
process first echoes a comment line (``# ready``) and the clock starts only
once that line is back. A minimal Python pass-through (reads stdin in chunks,
writes every line back with two fixed fields added, flushing when the input is
drained) runs the same streams in the same run, as the baseline for ratios.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .bench_stream import Stream, numeric_fields

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("riverguard")
RIVERGUARD = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "riverguard"]
READY = b"# ready\n"
TIMEOUT = 600.0

#: The baseline: the least a Python execd processor has to do.
PASSTHROUGH = r"""
import os, select
ADD = b",value_anomaly_score=0.0,value_anomaly=false "
def write_all(data):
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]
buf = b""
out = []
while True:
    data = os.read(0, 1 << 20)
    if not data:
        break
    buf += data
    *lines, buf = buf.split(b"\n")
    for line in lines:
        head, sep, ts = line.rpartition(b" ")
        out.append(head + ADD + ts + b"\n" if sep else line + b"\n")
    if out and not select.select([0], [], [], 0)[0]:
        write_all(b"".join(out))
        out = []
if buf:
    out.append(buf + b"\n")
write_all(b"".join(out))
"""
PASSTHROUGH_CMD = [sys.executable, "-c", PASSTHROUGH]

#: Throughput with [output] explain = true, as a fraction of without (issue 14).
EXPLAIN_RATIO = 0.6

TARGETS = {
    "throughput_default": (">=", 150_000, "numeric fields/s, default detector, end to end"),
    "bytes_per_series": ("<=", 4096, "RSS bytes per series (100 000 series)"),
    "latency_p99_ms": ("<=", 20.0, "ms, p99 of a 1 000-metric batch"),
    "checkpoint_save_s": ("<=", 2.0, "s, save 100 000 series"),
    "checkpoint_load_s": ("<=", 2.0, "s, load 100 000 series"),
    "checkpoint_tick_stall_s": ("<=", 0.1, "s, the parent's stall at a periodic checkpoint, 100 000 series"),
    "sentinel_us_per_sample": ("<=", 5.0, "us per sample, sentinel in process"),
    "context_us_per_sample": ("<=", 5.0, "us per sample, context in process"),
}

# (hosts, rounds) of the throughput streams; a host is 46 series (2 cores + cpu-total, mem, 2 disks).
FULL = {
    # hst builds its trees on a series' first sample (about 3 ms each): fewer series, more samples.
    "throughput": {"default": (200, 120), "zscore": (200, 60), "hst": (20, 150), "pad": (100, 100), "river": (20, 150)},
    "latency": {"hosts": 167, "warm_rounds": 60, "batches": 200},
    "memory": (1_000, 10_000, 100_000),
    "checkpoint": 100_000,
    "detectors": (200_000, 5),
}
QUICK = {
    "throughput": {"default": (40, 60), "zscore": (40, 30), "hst": (5, 40), "pad": (10, 40), "river": (5, 40)},
    "latency": {"hosts": 167, "warm_rounds": 5, "batches": 20},
    "memory": (1_000, 5_000, 10_000),
    "checkpoint": 10_000,
    "detectors": (20_000, 3),
}


# -- the process driver ---------------------------------------------------------


class _Reader(threading.Thread):
    """Drains a pipe, counting lines; notes the instant the count reaches ``target``."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.lines = 0
        self.target: int | None = None
        self.reached_at: float | None = None
        self.cond = threading.Condition()
        self.closed = False

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except OSError:
                chunk = b""
            now = time.perf_counter()
            with self.cond:
                if not chunk:
                    self.closed = True
                    self.cond.notify_all()
                    return
                self.lines += chunk.count(b"\n")
                if self.target is not None and self.reached_at is None and self.lines >= self.target:
                    self.reached_at = now
                    self.cond.notify_all()

    def expect(self, lines: int) -> None:
        """Watch for ``lines`` more lines than read so far... counted from the current target."""
        with self.cond:
            base = self.target if self.target is not None else 0
            self.target = base + lines
            self.reached_at = None
            if self.lines >= self.target:
                self.reached_at = time.perf_counter()

    def wait(self, timeout: float = TIMEOUT) -> float:
        """The instant the target was reached."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.reached_at is None:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise RuntimeError(f"only {self.lines} of {self.target} lines came back")
                self.cond.wait(left)
            return self.reached_at


class Process:
    """A running processor (riverguard or the pass-through), started and warmed up."""

    def __init__(self, cmd: list[str], tmp: Path, env: dict[str, str] | None = None) -> None:
        self.errpath = tmp / f"stderr-{time.monotonic_ns()}.log"
        self.errfile = open(self.errpath, "wb")  # noqa: SIM115
        self.popen = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errfile,
                                      bufsize=0, cwd=ROOT, env={**os.environ, **(env or {})})
        self.stdin = self.popen.stdin.fileno()
        self.reader = _Reader(self.popen.stdout.fileno())
        self.reader.start()
        started = time.perf_counter()
        self.reader.expect(1)
        self.write(READY)
        self.startup_s = self.reader.wait(120) - started

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.stdin, view[: 1 << 16]):]

    def rss(self) -> int:
        """Resident set size in bytes (VmRSS)."""
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def close(self) -> int:
        self.popen.stdin.close()
        code = self.popen.wait(120)
        self.reader.join(10)
        self.errfile.close()
        return code

    def stderr(self) -> str:
        return self.errpath.read_text(errors="replace")


def stream_through(cmd: list[str], data: bytes, tmp: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Seconds from the first byte written to the last output line read (start-up excluded)."""
    proc = Process(cmd, tmp, env)
    lines = data.count(b"\n")
    proc.reader.expect(lines)
    writer = threading.Thread(target=proc.write, args=(data,), daemon=True)
    t0 = time.perf_counter()
    writer.start()
    t1 = proc.reader.wait()
    writer.join()
    code = proc.close()
    if code != 0:
        raise RuntimeError(f"{cmd[:3]} exited {code}: {proc.stderr()[-2000:]}")
    return {"seconds": t1 - t0, "startup_s": proc.startup_s}


#: Parameters a detector cannot do without (``river`` has no default model): the README's pipeline.
_REQUIRED_PARAMS = {
    "river": '[rule.params]\nmodel = [{class = "preprocessing.StandardScaler"}, {class = "anomaly.OneClassSVM", nu = 0.2}]\n',
}


def _config(tmp: Path, detector: str, explain: bool = False, warmup: int | None = None) -> Path:
    path = tmp / f"{detector}{'-explain' if explain else ''}{'' if warmup is None else f'-w{warmup}'}.toml"
    head = "[output]\nexplain = true\n" if explain else ""
    rule = f'[[rule]]\nname = "all"\ndetector = "{detector}"\n' + ("" if warmup is None else f"warmup = {warmup}\n")
    path.write_text(head + rule + _REQUIRED_PARAMS.get(detector, ""))
    return path


#: The explain runs' warm-up: the throughput streams are shorter than the default's (200 samples), and a
#: series in its warm-up writes only its expected value; past it, the band is computed on every sample.
EXPLAIN_WARMUP = 10


# -- the measurements -----------------------------------------------------------------


def bench_throughput(sizes: dict[str, tuple[int, int]], tmp: Path, say: Any) -> dict[str, Any]:
    from riverguard.detectors import DEFAULT, REGISTRY

    out: dict[str, Any] = {}
    baseline: dict[tuple[int, int], float] = {}
    from riverguard.engine import ACCELERATED

    # The default detector with a short warm-up (EXPLAIN_WARMUP), without and with explanations
    # ([output] explain = true), in two interleaved rounds: their ratio is the cost of explaining;
    # and without the compiled hot path (RIVERGUARD_PURE_PYTHON=1), when it is built.
    names = ["default", "default-explain-off", "default-explain", "default-explain-off-again", "default-explain-again"]
    names += (["default-pure"] if ACCELERATED else []) + sorted(n for n in REGISTRY if n != DEFAULT)
    for run_name in names:
        pure = run_name == "default-pure"
        explained = "explain" in run_name
        explain = explained and "explain-off" not in run_name
        env = {"RIVERGUARD_PURE_PYTHON": "1"} if pure else None
        name = "default" if run_name.startswith("default") else run_name
        hosts, rounds = sizes.get(name, sizes["default"])  # a new detector: the default's size
        stream = Stream(hosts, seed=7)
        data = stream.generate(rounds)
        fields = numeric_fields(data)
        metrics = data.count(b"\n")
        if (hosts, rounds) not in baseline:
            run = stream_through(PASSTHROUGH_CMD, data, tmp)
            baseline[(hosts, rounds)] = fields / run["seconds"]
        if explained:
            config = ["--config", str(_config(tmp, DEFAULT, explain=explain, warmup=EXPLAIN_WARMUP))]
        else:
            config = [] if name == "default" else ["--config", str(_config(tmp, name))]
        run = stream_through([*RIVERGUARD, "run", *config], data, tmp, env)
        rate = fields / run["seconds"]
        label = f"default ({DEFAULT})" if name == "default" else name
        if explained:
            label += f", warmup = {EXPLAIN_WARMUP}, explain = {'true' if explain else 'false'}"
        if pure:
            label += ", pure Python"
        name = run_name
        out[name] = {
            "detector": label,
            "series": stream.series,
            "samples_per_series": rounds,
            "metrics": metrics,
            "numeric_fields": fields,
            "seconds": round(run["seconds"], 3),
            "fields_per_s": round(rate),
            "metrics_per_s": round(metrics / run["seconds"]),
            "passthrough_fields_per_s": round(baseline[(hosts, rounds)]),
            "ratio_to_passthrough": round(rate / baseline[(hosts, rounds)], 4),
            "startup_s": round(run["startup_s"], 3),
        }
        say(f"  throughput {label}: {rate:,.0f} fields/s ({fields:,} fields in {run['seconds']:.2f} s, "
            f"pass-through {baseline[(hosts, rounds)]:,.0f} fields/s)")
    # explain on / off: the ratio of each round, and of the better run of each
    rounds = [(out[f"default-explain{a}"]["fields_per_s"], out[f"default-explain-off{a}"]["fields_per_s"])
              for a in ("", "-again")]
    for name in ("default-explain-off", "default-explain"):
        again = out.pop(name + "-again")
        if again["fields_per_s"] > out[name]["fields_per_s"]:
            out[name] = again
    on, off = out["default-explain"]["fields_per_s"], out["default-explain-off"]["fields_per_s"]
    out["explain_ratio"] = round(on / off, 4)
    out["explain_ratio_rounds"] = [round(a / b, 4) for a, b in rounds]
    for i, (a, b) in enumerate(rounds, 1):
        say(f"  round {i}: explain = true / false: {a:,} / {b:,} fields/s = {a / b:.3f}")
    say(f"  explain = true / false, best of each: {on:,} / {off:,} fields/s = {on / off:.3f} (target >= {EXPLAIN_RATIO})")
    return out


def bench_latency(params: dict[str, int], tmp: Path, say: Any) -> dict[str, Any]:
    """Batches of 1 000 metrics against a warmed-up process: write, then wait for the batch's last line."""
    out: dict[str, Any] = {}
    for label, cmd in (("riverguard", [*RIVERGUARD, "run"]), ("passthrough", PASSTHROUGH_CMD)):
        stream = Stream(params["hosts"], seed=11)
        warm = stream.generate(params["warm_rounds"])
        lines: list[bytes] = []
        batches: list[bytes] = []
        while len(batches) < params["batches"]:
            while len(lines) < 1000:
                lines.extend(stream.next_round())
            batches.append(b"".join(lines[:1000]))
            del lines[:1000]
        proc = Process(cmd, tmp)
        proc.reader.expect(warm.count(b"\n"))
        proc.write(warm)
        proc.reader.wait()
        samples = []
        for batch in batches:
            time.sleep(0.01)  # an idle gap, as between Telegraf flushes
            proc.reader.expect(1000)
            t0 = time.perf_counter()
            proc.write(batch)
            samples.append((proc.reader.wait() - t0) * 1000)
        proc.close()
        samples.sort()
        out[label] = {
            "batches": len(samples),
            "metrics_per_batch": 1000,
            "numeric_fields_per_batch": round(numeric_fields(b"".join(batches)) / len(batches)),
            "warm_samples_per_series": params["warm_rounds"],
            "series": stream.series,
            "p50_ms": round(_percentile(samples, 50), 2),
            "p99_ms": round(_percentile(samples, 99), 2),
            "max_ms": round(samples[-1], 2),
        }
        say(f"  latency {label}: p50 {out[label]['p50_ms']} ms, p99 {out[label]['p99_ms']} ms")
    return out


def _percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def bench_memory(levels: tuple[int, ...], tmp: Path, say: Any, params: str | None = None) -> dict[str, Any]:
    """RSS of one riverguard process after it has seen 3 samples of each of K series.

    The default config, or with ``params`` (the inside of a TOML inline table, e.g. ``spike = 0.0,
    suppress = 100``) one rule of the default detector with those ``params``.
    """
    cmd = [*RIVERGUARD, "run"]
    if params is not None:
        path = tmp / f"memory-{len(list(tmp.glob('memory-*.toml')))}.toml"
        path.write_text(f'[[rule]]\nname = "all"\nparams = {{ {params} }}\n')
        cmd += ["--config", str(path)]
    proc = Process(cmd, tmp)
    rss: dict[int, int] = {"0": proc.rss()}  # type: ignore[dict-item]
    round_no = 0
    for k in levels:
        stream = Stream(math.ceil(k / 46), seed=5).trim(k)
        stream.round = round_no
        for _ in range(3):
            data = b"".join(stream.next_round())
            proc.reader.expect(data.count(b"\n"))
            proc.write(data)
            proc.reader.wait()
        round_no = stream.round
        time.sleep(0.3)
        rss[k] = proc.rss()
        say(f"  memory{'' if params is None else f' ({params})'}: {k:,} series -> RSS {rss[k] / 2**20:.1f} MiB")
    proc.close()
    base = levels[0]
    out: dict[str, Any] = {
        "definition": "series = measurement + tag set + field; 3 samples each; RSS from /proc/<pid>/status VmRSS",
        "params": params,
        "rss_bytes": {str(k): v for k, v in rss.items()},
    }
    for k in levels[1:]:
        out[f"bytes_per_series_{k}"] = round((rss[k] - rss[base]) / (k - base))
    return out


def bench_checkpoint(n: int, tmp: Path, say: Any) -> dict[str, Any]:
    """In-process: an Engine (default config) fed ``n`` series x 3 samples, then StateStore save and restore."""
    from riverguard.config import default_config
    from riverguard.engine import Engine
    from riverguard.log import Log
    from riverguard.state import StateStore
    from riverguard.stream import process_chunks

    stream = Stream(math.ceil(n / 46), seed=3).trim(n)
    data = stream.generate(3)
    log = Log("error")
    engine = Engine(default_config(), log)
    process_chunks(engine, [data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)], lambda b: None)
    assert len(engine.series) == n, len(engine.series)
    path = tmp / "checkpoint.msgpack"
    gc.collect()
    store = StateStore(engine, path)
    t0 = time.perf_counter()
    ok = store.save()
    save_s = time.perf_counter() - t0
    assert ok, "checkpoint save failed"
    size = path.stat().st_size
    # run's periodic checkpoint (StateStore.tick): the parent's stall is the tick call (fork + return); the
    # child writes meanwhile (its time: last_seconds once reaped)
    stalls, writes = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        store.tick()
        stalls.append(time.perf_counter() - t0)
        assert store.fd is not None, "the periodic checkpoint was not written in the background"
        while not store.poll():  # (the child is reaped once done)
            time.sleep(0.005)
        assert store.error is None, store.error
        writes.append(store.last_seconds)
    tick_s, child_s = statistics.median(stalls), statistics.median(writes)
    # the child's own memory while it writes (copy-on-write): with the parent idle, then scoring the same
    # series at full speed (each page either writes is copied)
    parent_rss = _status_bytes("/proc/self/status", "VmRSS")
    idle = _child_memory(store)
    rounds = min(40, max(4, math.ceil(2 * child_s * 1e6 / n)))  # (enough to score until the child is done)
    busy = _child_memory(store, stream.generate(rounds), lambda chunk: process_chunks(engine, [chunk], lambda b: None))
    del engine
    gc.collect()
    fresh = Engine(default_config(), log)
    t0 = time.perf_counter()
    restored = StateStore(fresh, path).restore()
    load_s = time.perf_counter() - t0
    assert restored == n, restored
    say(f"  checkpoint: {n:,} series, save {save_s:.2f} s, load {load_s:.2f} s, {size / 2**20:.1f} MiB; periodic "
        f"(forked) stall {tick_s * 1000:.1f} ms (max {max(stalls) * 1000:.1f}), child writes in {child_s:.2f} s, "
        f"{save_s / tick_s:.0f}x shorter a stall than the synchronous save")
    say(f"  checkpoint child's memory (peak of /proc/<child>/smaps_rollup), parent RSS {parent_rss / 2**20:.0f} MiB: "
        f"parent idle: Private_Dirty {idle['private_dirty'] / 2**20:.0f} MiB, Pss {idle['pss'] / 2**20:.0f} MiB; "
        f"parent scoring ({busy['samples_during']:,} samples while the child wrote, {busy['samples_per_s_during']:,} "
        f"a second; {busy['samples_per_s_after'] or 0:,} a second after{', input ran out' if busy['ran_out'] else ''}): "
        f"Private_Dirty {busy['private_dirty'] / 2**20:.0f} MiB, Pss {busy['pss'] / 2**20:.0f} MiB")
    return {"series": n, "save_s": round(save_s, 3), "load_s": round(load_s, 3), "bytes": size,
            "bytes_per_series": round(size / n), "tick_stall_s": round(tick_s, 4),
            "tick_stall_max_s": round(max(stalls), 4), "tick_child_s": round(child_s, 3),
            "tick_stall_ratio": round(save_s / tick_s, 1), "parent_rss_bytes": parent_rss,
            "child_memory_idle": idle, "child_memory_scoring": busy}


def _status_bytes(path: str, key: str) -> int:
    """A ``key: N kB`` entry of a /proc status-like file (status, smaps_rollup), in bytes."""
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _child_memory(store: Any, data: bytes = b"", score: Any = None) -> dict[str, Any]:
    """One periodic checkpoint (``store.tick()``): the peaks of its child's Private_Dirty and Pss (bytes, from
    /proc/<child>/smaps_rollup, read every 5 ms by a thread) while it writes; the parent meanwhile idle, or
    scoring ``data`` (``score(chunk)``, 64 KiB at a time) until the child is done, then the rest with no child
    (the samples per second of both: what copy-on-write costs the parent)."""
    store.tick()
    assert store.fd is not None, "the periodic checkpoint was not written in the background"
    (child,) = [int(pid) for task in Path("/proc/self/task").iterdir()
                for pid in (task / "children").read_text().split()]
    smaps = f"/proc/{child}/smaps_rollup"
    peak = {"private_dirty": 0, "pss": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak["private_dirty"] = max(peak["private_dirty"], _status_bytes(smaps, "Private_Dirty"))
                peak["pss"] = max(peak["pss"], _status_bytes(smaps, "Pss"))
            except (OSError, KeyError):  # (it has exited)
                return
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    at, rates, started = 0, [], time.perf_counter()
    for forked in (True, False):
        begun, samples = time.perf_counter(), 0
        while at < len(data) and (not forked or not store.poll()):
            end = data.find(b"\n", at + (1 << 16)) + 1 or len(data)
            score(data[at:end])
            samples += numeric_fields(data[at:end])
            at = end
        rates.append((samples, time.perf_counter() - begun))
        while forked and not store.poll():
            time.sleep(0.005)
    done.set()
    sampler.join()
    assert store.error is None, store.error
    out: dict[str, Any] = {**peak, "child_s": round(store.last_seconds, 3)}
    if score is not None:
        (during, took), (after, took_after) = rates
        out.update(samples_during=during, samples_per_s_during=round(during / took),
                   samples_per_s_after=round(after / took_after) if after else None, ran_out=after == 0)
    return out


class _EwmaZ:
    """The baseline of the in-process detector costs: an exponentially weighted z-score in plain Python.

    About the least an online detector does per sample (two running moments and
    one distance), written here so that it does not change when riverguard does.
    """

    def __init__(self, alpha: float = 0.02) -> None:
        self.alpha, self.mean, self.var = alpha, 0.0, 0.0

    def process(self, x: float, t: float | None = None) -> float:
        d = x - self.mean
        self.mean += self.alpha * d
        self.var = (1.0 - self.alpha) * (self.var + self.alpha * d * d)
        return abs(d) / math.sqrt(self.var) if self.var > 0.0 else 0.0


def bench_detectors(params: tuple[int, int], say: Any) -> dict[str, Any]:
    """In process, per sample: ``process(x, t)`` of sentinel and context on one long realistic series.

    The series is the tests' ``realistic_series`` (a daily wave, noise, a level
    shift, spikes, a flat stretch; 5-minute times). Each detector starts fresh
    in every round; rounds interleave the detectors and the baseline, and the
    best round of each counts (the machine is shared).
    """
    from riverguard.detectors import REGISTRY
    from tests.conftest import realistic_series

    samples, rounds = params
    data = realistic_series(samples)
    makers = {"baseline": _EwmaZ, "sentinel": REGISTRY["sentinel"], "context": REGISTRY["context"]}
    best = {name: math.inf for name in makers}
    for _ in range(rounds):
        for name, make in makers.items():
            process = make().process
            gc.collect()
            t0 = time.perf_counter()
            for x, t in data:
                process(x, t)
            best[name] = min(best[name], (time.perf_counter() - t0) / samples)
    out: dict[str, Any] = {"samples": samples, "rounds": rounds,
                           "baseline": "plain-Python EWMA z-score (tests/benchmarks/bench_main.py: _EwmaZ)",
                           "baseline_us_per_sample": round(best["baseline"] * 1e6, 3)}
    for name in ("sentinel", "context"):
        cls = makers[name]
        out[name] = {"class": f"{cls.__module__}.{cls.__qualname__}", "compiled": _compiled(cls),
                     "us_per_sample": round(best[name] * 1e6, 3),
                     "ratio_to_baseline": round(best[name] / best["baseline"], 2)}
        say(f"  detector {name}: {best[name] * 1e6:.2f} us per sample "
            f"({best[name] / best['baseline']:.1f} x the baseline's {best['baseline'] * 1e6:.2f} us)")
    return out


def _compiled(cls: type) -> bool:
    """Whether the class comes from an extension module rather than from its .py source."""
    module = sys.modules.get(cls.__module__)
    return not str(getattr(module, "__file__", "")).endswith(".py")


# -- report ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from riverguard import __version__ as version
        from riverguard.engine import ACCELERATED as accelerated
    except ImportError:  # pragma: no cover
        version, accelerated = "?", False
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "riverguard": version,
        "hot_path": "compiled" if accelerated else "pure Python",
        "loadavg_at_start": os.getloadavg(),
        "git": _git(),
    }


def _git() -> str:
    """The commit benchmarked, with `+dirty` if plugin/ has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "plugin"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+dirty" if dirty else "")


def _verdict(key: str, value: float) -> str:
    op, limit, _ = TARGETS[key]
    ok = value >= limit if op == ">=" else value <= limit
    return "PASS" if ok else "FAIL"


def table(results: dict[str, Any]) -> tuple[list[list[str]], dict[str, dict[str, Any]]]:
    rows: list[list[str]] = []
    verdicts: dict[str, dict[str, Any]] = {}

    def target(key: str, value: float) -> str:
        op, limit, unit = TARGETS[key]
        v = _verdict(key, value)
        verdicts[key] = {"value": value, "target": f"{op} {limit}", "unit": unit, "result": v}
        return f"{op} {limit:,} {v}"

    for name, r in results.get("throughput", {}).items():
        if name == "explain_ratio_rounds":
            rows.append(["throughput ratio per round, explain = true / false", " / ".join(f"{x:.3f}" for x in r),
                         "", "", ""])
            continue
        if name == "explain_ratio":
            ok = "PASS" if r >= EXPLAIN_RATIO else "FAIL"
            verdicts["explain_ratio"] = {"value": r, "target": f">= {EXPLAIN_RATIO}", "unit": "explain on / off",
                                         "result": ok}
            rows.append(["throughput ratio, explain = true / false", f"{r:.3f}", "", "", f">= {EXPLAIN_RATIO} {ok}"])
            continue
        rows.append([
            f"throughput, {r['detector']} ({r['series']:,} series x {r['samples_per_series']})",
            f"{r['fields_per_s']:,} fields/s",
            f"{r['passthrough_fields_per_s']:,} fields/s",
            f"{r['ratio_to_passthrough']:.3f}",
            target("throughput_default", r["fields_per_s"]) if name == "default" else "",
        ])
    lat = results.get("latency")
    if lat:
        rg, pt = lat["riverguard"], lat["passthrough"]
        for q in ("p50", "p99"):
            rows.append([
                f"latency {q}, batch of 1 000 metrics (~{rg['numeric_fields_per_batch']:,} fields)",
                f"{rg[q + '_ms']:.1f} ms", f"{pt[q + '_ms']:.1f} ms", f"{rg[q + '_ms'] / pt[q + '_ms']:.1f}x",
                target("latency_p99_ms", rg["p99_ms"]) if q == "p99" else "",
            ])
    # the target holds for the default config; a run with other rule params (--memory-params) is shown beside it
    for mem in [results.get("memory"), *results.get("memory_params", [])]:
        if not mem:
            continue
        keys = sorted((k for k in mem if k.startswith("bytes_per_series_")), key=lambda k: int(k.rsplit("_", 1)[1]))
        given = mem.get("params")
        for k in keys:
            n = int(k.rsplit("_", 1)[1])
            rows.append([f"memory per series at {n:,} series (RSS growth){'' if given is None else f', {given}'}",
                         f"{mem[k]:,} B", "", "", target("bytes_per_series", mem[k]) if k == keys[-1] and given is None
                         else ""])
    cp = results.get("checkpoint")
    if cp:
        rows.append([f"checkpoint save, {cp['series']:,} series", f"{cp['save_s']:.2f} s", "", "",
                     target("checkpoint_save_s", cp["save_s"])])
        rows.append([f"periodic checkpoint stall (fork), {cp['series']:,} series", f"{cp['tick_stall_s'] * 1000:.1f} ms",
                     f"{cp['save_s']:.2f} s (synchronous save)", f"{cp['tick_stall_ratio']:.0f}x",
                     target("checkpoint_tick_stall_s", cp["tick_stall_s"])])
        rows.append([f"checkpoint load, {cp['series']:,} series", f"{cp['load_s']:.2f} s", "", "",
                     target("checkpoint_load_s", cp["load_s"])])
        busy = cp.get("child_memory_scoring")
        if busy:
            rows.append([f"periodic checkpoint's child, private memory while it writes, {cp['series']:,} series",
                         f"{busy['private_dirty'] / 2**20:.0f} MiB (Pss {busy['pss'] / 2**20:.0f} MiB)",
                         f"{cp['parent_rss_bytes'] / 2**20:.0f} MiB (parent RSS)", "", ""])
        rows.append(["checkpoint file size", f"{cp['bytes'] / 2**20:.1f} MiB ({cp['bytes_per_series']:,} B/series)",
                     "", "", ""])
    det = results.get("detectors")
    if det:
        for name in ("sentinel", "context"):
            d = det[name]
            rows.append([f"{name} in process ({'compiled' if d['compiled'] else 'Python'}), per sample",
                         f"{d['us_per_sample']:.2f} us", f"{det['baseline_us_per_sample']:.2f} us (EWMA z)",
                         f"{d['ratio_to_baseline']:.1f}x", target(f"{name}_us_per_sample", d["us_per_sample"])])
    return rows, verdicts


def render(rows: list[list[str]]) -> str:
    head = ["measure", "riverguard", "pass-through", "ratio", "target"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small, fast run (figures are not comparable)")
    parser.add_argument("--output", default=str(ROOT / "bench-results.json"), help="JSON results (default: %(default)s)")
    parser.add_argument("--only", action="append", choices=["throughput", "latency", "memory", "checkpoint", "detectors"],
                        help="run only these parts (repeatable)")
    parser.add_argument("--memory-params", action="append", default=[], metavar="TOML",
                        help="also measure memory with a rule of the default detector with these params, "
                             "e.g. 'spike = 0.0, suppress = 100' (repeatable)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    parts = args.only or ["throughput", "latency", "memory", "checkpoint", "detectors"]

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    info = machine()
    say(f"riverguard {info['riverguard']} benchmark ({'quick' if args.quick else 'full'}) on {info['nproc']} x "
        f"{info['cpu_model']}, Python {info['python']}, {info['hot_path']} hot path, load average {info['loadavg_at_start']}")
    results: dict[str, Any] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="riverguard-bench-") as name:
        tmp = Path(name)
        if "throughput" in parts:
            results["throughput"] = bench_throughput(plan["throughput"], tmp, say)
        if "latency" in parts:
            results["latency"] = bench_latency(plan["latency"], tmp, say)
        if "memory" in parts:
            results["memory"] = bench_memory(plan["memory"], tmp, say)
            if args.memory_params:
                results["memory_params"] = [bench_memory(plan["memory"], tmp, say, p) for p in args.memory_params]
        if "checkpoint" in parts:
            results["checkpoint"] = bench_checkpoint(plan["checkpoint"], tmp, say)
        if "detectors" in parts:
            results["detectors"] = bench_detectors(plan["detectors"], say)
    info["loadavg_at_end"] = os.getloadavg()
    rows, verdicts = table(results)
    elapsed = time.monotonic() - started
    report = {
        "mode": "quick" if args.quick else "full",
        "command": " ".join(["python -m tests.benchmarks", *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "seconds": round(elapsed, 1),
        "results": results,
        "targets": verdicts,
        "stream": "tests/benchmarks/bench_stream.py: cpu (10 fields), mem (6), disk (5) per host, seeded",
    }
    print()
    print(f"machine: {info['nproc']} CPUs, {info['cpu_model']}, Python {info['python']}, "
          f"riverguard {info['riverguard']} at {info['git']}, load average {info['loadavg_at_start'][0]:.2f} at start, {info['loadavg_at_end'][0]:.2f} at end")
    print(render(rows))
    print()
    for key, v in verdicts.items():
        print(f"{v['result']}  {key}: {v['value']:,} (target {v['target']} {v['unit']})")
    if args.quick:
        print("(quick run: smaller streams and fewer series than the targets are defined for)")
    print(f"bench time {elapsed:.0f} s; JSON written to {args.output}")
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    return 0
