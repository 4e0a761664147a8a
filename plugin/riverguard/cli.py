"""The ``riverguard`` command line."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import os
import re
import shlex
import signal
import stat
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

from . import __version__
from .config import Config, ConfigError, default_config, duration_text, load, state_path
from .config import warnings as config_warnings
from .engine import UNITS, Engine, series_name
from .log import LEVELS, Log, Progress, os_reason, plural, printable
from .output import OutputError, flush, stop

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .signals import Signals

#: The exit codes (README, "Exit codes"): 2 when what was given is wrong and nothing was done (the command
#: line, the config, a file or folder named, a checkpoint that cannot be used, a missing extra), 1 when
#: something failed while running (a write, a server, a broken pipe, a bad input found midway, the final
#: checkpoint, an unexpected error), 128 + the signal when interrupted: 130 (SIGINT), 143 (SIGTERM: ``replay``
#: and a one-off ``pull``, which stop cleanly; the others end by its default action, which a shell shows so).
EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2
#: The commands whose stdout is a stream of metrics: one its reader no longer takes is lost, said (``E!``) and
#: exit 1. The others print something to read (``state inspect``, ``check-config``, ``--help``), which a reader
#: may stop reading when it has what it wants (``| head``): they stop quietly (:func:`riverguard.output.stop`).
STREAMS = frozenset({"run", "replay", "collect"})


class _ArgumentParser(argparse.ArgumentParser):
    """Usage errors as one ``E! `` line (Telegraf reads stderr by level prefix), exit 2.

    A value that starts with a minus and a digit (``--delay -5s``, ``--since -1h``) is the option's
    value, as a negative number is: argparse took it for an unknown option and said only "expected one
    argument"; the option's own check now says what is wrong with it. No riverguard option looks so.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-[0-9.]")

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"E! [riverguard] {self.prog}: {printable(message)} (see {self.prog} --help)\n")


class _Version(argparse.Action):
    """``--version``: one line on stdout, never wrapped at the terminal's width as argparse's own is."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        sys.stdout.write(f"riverguard {__version__} ({_hot_path()})\n")
        parser.exit()


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser. Every subcommand is there with its help line; the options that take a
    module to describe (the report's, InfluxDB's HTTP client, pull's) are added for ``command`` alone:
    importing them all cost tens of milliseconds at every start of a ``run``, which needs none of them."""
    parser = _ArgumentParser(
        prog="riverguard",
        description="Online anomaly detection for Telegraf: one online model per series (riverguard's detectors or River's).",
    )
    parser.add_argument("--version", action=_Version, help="show the version and which hot path runs, and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="PATH", help="riverguard TOML config (default: score every numeric field)")
        p.add_argument("--log-level", choices=list(LEVELS), default="info", help="stderr verbosity (default: info)")

    def state_option(p: argparse.ArgumentParser, help: str) -> None:
        p.add_argument("--state", metavar="PATH", help=help)

    # replay and pull may be given the config a running Telegraf uses: its checkpoint is not theirs to touch
    own_state = ("checkpoint file to restore the models from and save them to (without it nothing is kept; "
                 "the config's [state] path is never used)")

    run = sub.add_parser("run", help="execd mode: line protocol on stdin, scored metrics on stdout")
    common(run)
    state_option(run, "checkpoint file (overrides [state] path in the config)")

    replay = sub.add_parser("replay", help="score recorded line-protocol files through the same engine")
    common(replay)
    state_option(replay, own_state)
    replay.add_argument("--output", "-o", metavar="PATH", help="write here instead of stdout ('-' is stdout)")
    replay.add_argument("files", nargs="+", metavar="FILE", help="line-protocol files ('-' is stdin)")
    if command == "replay":
        _replay_arguments(replay)

    pull = sub.add_parser("pull", help="score points stored in InfluxDB and write them back (once, or --follow)")
    common(pull)
    state_option(pull, own_state)
    if command == "pull":
        from .pull import add_arguments as _pull_arguments

        _pull_arguments(pull)

    check = sub.add_parser("check-config", help="validate a config and print the resolved rules")
    check.add_argument("path", metavar="PATH", help="the riverguard TOML config to check")

    sub.add_parser("sample-config", help="print the documented sample config")
    from .collect import add_parser as _collect_parser

    _collect_parser(sub)

    evaluate = sub.add_parser("evaluate", help="detection quality on labelled data: a NAB-layout corpus or your own timestamp,value,label CSV files")
    common(evaluate)
    from .evaluate import add_arguments as _evaluate_arguments

    _evaluate_arguments(evaluate)

    state = sub.add_parser("state", help="work with checkpoint files")
    state_sub = state.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    inspect = state_sub.add_parser("inspect", help="print a summary of a checkpoint as JSON")
    inspect.add_argument("path", metavar="PATH", help="the checkpoint file (msgpack) to read")
    inspect.add_argument(
        "--series", nargs="?", const="*", metavar="GLOB",
        help="list the series (matching GLOB) instead, one JSON object per line: key, detector, samples, "
        "last time, anomalies",
    )
    inspect.add_argument(
        "--with-state", action="store_true",
        help="list the series (as --series) with each one's learned detector state by name (sentinel, "
        "context, zscore; a buffer as its size)",
    )
    parser.commands = {**sub.choices, "state": inspect}  # type: ignore[attr-defined]  # for usage errors
    return parser


def _replay_arguments(replay: argparse.ArgumentParser) -> None:
    """``replay``'s options for its HTML report and for writing to InfluxDB."""
    from .influx import add_arguments as _influx_arguments
    from .report import DEFAULT_TOP

    report = replay.add_argument_group("report (needs the report extra: pip install '/path/to/this/checkout[report]')")
    report.add_argument("--report", metavar="PATH", help="also write a self-contained HTML report of the replay here")
    report.add_argument("--report-top", metavar="N", type=_count, default=None,  # None: not given (DEFAULT_TOP)
                        help=f"plot the N series with the most anomalies (default: {DEFAULT_TOP})")
    report.add_argument("--report-series", metavar="GLOB", action="append", default=[],
                        help="also plot the series matching GLOB ('measurement,tags field'; repeatable)")
    _influx_arguments(replay)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _load(path: str | None, log: Log) -> Config | None:
    """The config at ``path`` (the default without one), its problems and warnings logged; None if refused.

    Start-up, ``check-config`` and a SIGHUP reload all read a config through here.
    """
    try:
        config = load(path) if path else default_config()
    except ConfigError as err:
        for line in err.errors:
            log.error(line)
        return None
    for line in config_warnings(config):
        log.warn(line)
    return config


def main(argv: list[str] | None = None) -> int:
    """The ``riverguard`` command (``argv`` None: ``sys.argv``). As the process's own command
    (:func:`riverguard._entry.is_process`), which ends when this returns, ``run`` then ignores SIGTERM,
    SIGINT and SIGHUP to the end; a program or a test calling it gets the handlers it had back."""
    args = None
    try:
        try:
            args = _arguments(argv)
            code = _main(args)
        except (SystemExit, KeyboardInterrupt):  # (SystemExit: argparse's --help and --version, printed unchecked)
            flush()
            raise
        flush()  # a write to stdout that failed is told here, not by Python at exit
        return code
    except KeyboardInterrupt as err:  # 130 for SIGINT, 143 for SIGTERM (replay: signals.interrupt)
        from .signals import exit_code

        return exit_code(err)
    except (BrokenPipeError, OutputError) as err:
        return stop(err, reading=args is None or args.command not in STREAMS)
    except Exception as err:  # noqa: BLE001 - a crash still speaks Telegraf's log format
        log = Log("error")
        log.error(f"riverguard stopped on an unexpected error: {type(err).__name__}: {err}")
        for line in traceback.format_exc().rstrip().splitlines():
            log.error(line)
        try:  # only now: a stdout that fails too must not hide the crash
            flush()
        except (BrokenPipeError, OutputError) as failed:
            stop(failed)
        return EXIT_FAIL


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line parsed; a usage error, ``--help`` and ``--version`` raise SystemExit (argparse)."""
    words = sys.argv[1:] if argv is None else argv
    # the subcommand is the first word that is not an option: riverguard's own options (-h, --version) take no value
    parser = _parser(next((word for word in words if not word.startswith("-")), None))
    args, extra = parser.parse_known_args(argv)
    if extra:  # told by the subcommand's parser, so the hint is `riverguard run --help`
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")  # type: ignore[attr-defined]
    return args


def _main(args: argparse.Namespace) -> int:
    from ._entry import is_process, release

    if args.command != "run":
        release()  # (the command's own handlers, or Python's: a signal held since start-up acts now)
    if args.command == "sample-config":
        sys.stdout.write(sample_config())
        return EXIT_OK
    if args.command == "check-config":
        return _check_config(args.path)
    if args.command == "collect":
        from .collect import main as _collect

        return _collect(args)
    if args.command == "state":
        return _state_inspect(args.path, args.series, args.with_state)
    if args.command == "run":
        from .signals import Signals

        # From start-up to exit (the restore and the final checkpoint included) a SIGTERM or SIGINT
        # only asks run to finish: the input already written comes back, the models are saved, exit 0.
        # Then, in the process's own command, they are ignored until it exits.
        signals = Signals()
        release()  # a signal held since start-up is taken now, as one during the run would be
        try:
            return _configured(args, signals)
        finally:
            signals.close(ignore=is_process())
    return _configured(args)


def _configured(args: argparse.Namespace, signals: Signals | None = None) -> int:
    log = Log(args.log_level)
    config = _load(args.config, log)
    if config is None:  # (run passes the metrics through: exiting, under Telegraf, loses them in a restart loop)
        return _run(None, log, args, signals) if args.command == "run" else EXIT_CONFIG
    if args.command in ("replay", "pull") and not args.state and config.state.path is not None:
        # The config may be the one a running Telegraf uses: its models are not replay's to touch.
        log.info(
            f"{args.command} leaves the checkpoint {config.state.path} of [state] path alone (give --state to use one)"
        )
        config = dataclasses.replace(config, state=dataclasses.replace(config.state, path=None))
    if getattr(args, "state", None):
        try:
            given = state_path(args.state, Path.cwd())
        except ValueError as err:
            if args.command != "run":
                log.error(f"--state {err}")
                return EXIT_CONFIG
            # (run: as a state path it cannot use, below; exiting was a restart loop under Telegraf)
            return _run(config, log, args, signals, unusable=f"--state {err}")
        config = dataclasses.replace(config, state=dataclasses.replace(config.state, path=given))
    if args.command in ("replay", "pull"):  # before the checkpoint or any output is touched (run's: _run)
        problem = _check_same_files(args, config)
        if problem:
            log.error(problem)
            return EXIT_CONFIG
    if args.command == "evaluate":
        from .evaluate import main as _evaluate

        return _evaluate(args, config, log)
    if args.command == "run":
        return _run(config, log, args, signals)
    if args.command == "pull":
        from .pull import main as _pull

        return _pull(args, config, log)
    if args.command == "replay":
        from .influx import OptionError, WriteError, from_args

        try:
            sink = from_args(args, log)
        except OptionError as err:
            log.error(str(err))
            return EXIT_CONFIG
        for given, option in ((args.report_top is not None, "--report-top"), (args.report_series, "--report-series")):
            if given and not args.report:  # as --db needs --influx-url: not taken and ignored
                log.error(f"{option} needs --report")
                return EXIT_CONFIG
        if args.report == "-":
            log.error("--report -: the report is an HTML file, not a stream; give it a file name")
            return EXIT_CONFIG
        if args.report:
            from .report import MissingExtra, check_extra

            try:
                check_extra()
            except MissingExtra as err:
                log.error(str(err))
                return EXIT_CONFIG
        try:
            code = _replay(config, log, args.files, sink or args.output, args)
            if code == EXIT_OK and sink is not None and sink.skip:  # it ran out of metrics before the count
                log.warn(sink.skipped_past_the_end())
            # metrics InfluxDB refused were reported one by one, and the rest written: the run failed all the same
            return EXIT_FAIL if code == EXIT_OK and sink is not None and sink.refused else code
        except WriteError as err:
            log.error(str(err))
            if sink is not None:
                log.error(sink.resume_hint(err))
            return EXIT_FAIL
    raise AssertionError(args.command)


def sample_config() -> str:
    """The documented sample configuration shipped with the package."""
    from importlib import resources

    return resources.files("riverguard").joinpath("sample.toml").read_text(encoding="utf-8")


def _check_config(path: str) -> int:
    config = _load(path, Log())
    if config is None:
        return EXIT_CONFIG
    if config.state.path is not None:  # (what fails for every user; a start checks the permissions: check_place)
        from .state import LockError, check_place

        try:
            check_place(config.state.path)
        except LockError as err:
            Log().error(str(err))
            return EXIT_CONFIG
    print(f"{config.source}: OK, {len(config.rules)} rule(s)")
    for rule in config.rules:
        print(f"rule {rule.index}: {json.dumps(rule.resolved())}")
    out, state = config.output, config.state
    print(f"output: {json.dumps(dataclasses.asdict(out))}")
    print(
        "state: "
        + json.dumps(
            {
                "path": str(state.path) if state.path else None,
                "checkpoint_interval_s": state.checkpoint_interval,
                "max_series": state.max_series,
                "series_ttl_s": state.series_ttl,
            }
        )
    )
    print(f"monitor: {json.dumps({'interval_s': config.monitor.interval, 'tags': config.monitor.line_tags()})}")
    return EXIT_OK


def _state_inspect(path: str, series: str | None = None, with_state: bool = False) -> int:
    from .state import CheckpointError, LockError, check_regular, denied, inspect, list_series

    if with_state and series is None:
        series = "*"
    # Where `run --state PATH` would write (state_path): in a folder, or a path ending with "/" (a folder, made
    # or not), the riverguard.msgpack it holds.
    try:
        file = state_path(path, Path.cwd())
    except ValueError as err:
        Log("error").error(str(err))
        return EXIT_CONFIG
    try:  # (a folder where the file should be, a FIFO: said as run says it, with what to give instead)
        check_regular(file, "the checkpoint", reader="state inspect")
    except LockError as err:
        Log("error").error(str(err))
        return EXIT_CONFIG
    try:
        if series is not None:
            rows, held = list_series(file, series, with_state)
        else:
            summary = inspect(file)
    except FileNotFoundError as err:  # (a folder: the checkpoint riverguard keeps in it, which it names)
        Log("error").error(f"{err.filename or file}: no such file")
        return EXIT_CONFIG
    except NotADirectoryError:  # "afile/": run refuses it too (its lock file cannot be made there)
        Log("error").error(f"{file}: no such file: {file.parent} is a file, not a folder")
        return EXIT_CONFIG
    except PermissionError as err:  # another user's file (EACCES, EPERM)
        Log("error").error(denied(file, "read the checkpoint", err))
        return EXIT_CONFIG
    except (CheckpointError, OSError) as err:  # the file given is not a checkpoint it can read
        Log("error").error(f"{file}: {err}")
        return EXIT_CONFIG
    if series is not None:
        if held and not rows:  # a GLOB that matches none of them (a glob is never wrong: "[" is itself; a typo matches nothing)
            Log("info").warn(
                f"--series {series!r} matched none of the {held} series in {file} (a series key is "
                "'measurement,tag=value field', or 'measurement,tag=value (metric)' for a scope = \"metric\" "
                "rule's model, as --series without a GLOB lists them)"
            )
        sys.stdout.writelines(json.dumps(row) + "\n" for row in rows)
    else:
        print(json.dumps(summary, indent=2))
    return EXIT_OK


_NOT_BUILT = "pure Python: no compiled hot path"


def _hot_path() -> str:
    from ._compiled import PURE_PYTHON, built
    from .engine import ACCELERATED

    if ACCELERATED:
        return "compiled hot path"
    if PURE_PYTHON and built("_hotpath"):
        return "pure Python: the compiled hot path is switched off by RIVERGUARD_PURE_PYTHON"
    return _NOT_BUILT


def _setting(config: Config, key: str) -> Any:
    """A setting a SIGHUP cannot change (``key``) in ``config`` (None when off)."""
    if key == "[state] path":
        return config.state.path
    if key == "[state] checkpoint_interval":
        return config.state.checkpoint_interval
    return config.monitor.interval


def _waiting(key: str, asked: Any, in_force: Any) -> str:
    """The W! line for a setting a SIGHUP cannot change (``key``): ``asked`` waits for the next start,
    ``in_force`` (the start's) stays until then (values of :func:`_setting`)."""
    if key == "[state] path":
        return f"[state] path = {asked} takes effect at the next start; checkpoints go to {in_force} until then"
    if key == "[monitor] interval":
        if asked is None:  # the section removed, or left without an interval
            return (f"[monitor] is off in the new config: the health line goes on every {duration_text(in_force)} "
                    "until the next start")
        if in_force is None:
            return f'[monitor] interval = "{duration_text(asked)}" is new: no health line until the next start'
    return (f'{key} = "{duration_text(asked)}" takes effect at the next start; "{duration_text(in_force)}" stays in '
            "force until then")


def _reloader(engine: Engine, store, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """What SIGHUP does: checkpoint, then read the config again; an invalid one changes nothing.

    The settings whose timers or files are set up at start (``[state] path``, ``checkpoint_interval``,
    ``[monitor] interval``) keep the start's values in ``engine.config``, which says what is in force; a
    new value is told once (``W!``), at the SIGHUP that brings it, not again at every later one, and a
    value put back to the one in force is told too (``I!``)."""
    log = engine.log
    start = engine.config
    #: Each such setting (:func:`_setting`): in force (the start's), and as the last config loaded asked for it.
    keys = ("[state] path", "[state] checkpoint_interval", "[monitor] interval")
    waiting = {key: (_setting(start, key),) * 2 for key in keys}

    def tell(key: str, config: Config) -> None:
        in_force, before = waiting[key]
        asked = _setting(config, key)
        waiting[key] = in_force, asked
        if asked == before:
            return  # told at the SIGHUP that brought it (or nothing to tell)
        if asked == in_force:
            log.info(f"received SIGHUP: {key} is back to the value in force; nothing waits for the next start")
        else:
            log.warn(f"received SIGHUP: {_waiting(key, asked, in_force)}")

    def reload() -> None:
        if store is not None:
            if store.save(tell=True):
                log.info(f"received SIGHUP: checkpoint written to {store.path}")
        old = engine.config
        config = _load(args.config, log)
        if config is None:
            log.error(f"received SIGHUP: {args.config} is refused (above); still running on the previous config")
            return
        if not args.state:  # (--state overrides the config's path, at every start too)
            tell("[state] path", config)
        tell("[state] checkpoint_interval", config)
        tell("[monitor] interval", config)  # (the health line's timer is set at start)
        state = dataclasses.replace(config.state, path=old.state.path, checkpoint_interval=old.state.checkpoint_interval)
        # (the health line's new [monitor] tags are its tags from now on)
        monitor = dataclasses.replace(config.monitor, interval=old.monitor.interval)
        config = dataclasses.replace(config, state=state, monitor=monitor)
        kept, dropped = engine.reconfigure(config)
        log.info(
            f"received SIGHUP: config {config.source} reloaded, {len(config.rules)} rule(s); "
            + plural(kept, "series keeps its model", "series keep their models") + engine.dropped_counts(dropped)
        )

    return reload


#: What ``run`` does when it cannot score (a refused config, a checkpoint it cannot have): said in its line.
_PASSING = "passing every metric through unscored until this process stops"


def _refused(log: Log, args: argparse.Namespace, signals: Signals) -> int:
    """``run`` with a config that is refused, its problems told (``E!``, as ``check-config`` tells them): every
    metric passes through unscored, byte for byte, until EOF or SIGTERM/SIGINT (exit 0). Exiting (2, as the
    other commands do) lost every metric under Telegraf's execd, which restarts it into the same refusal.

    Nothing of the config is used: no checkpoint is opened (``[state] path`` or ``--state``: no file touched),
    no health line (``[monitor]`` is the refused config's; its absence tells that nothing scores). A SIGHUP
    reads the config again and says whether it is valid now; scoring takes a restart (of Telegraf), which
    starts with the checkpoint's lock and models as any start does."""
    from .stream import Held, passthrough

    path = args.config
    log.error(f"{path} is refused (above): {_PASSING}; fix it "
              f"(riverguard check-config {shlex.quote(path)} says what is wrong), then restart Telegraf")

    def hangup() -> None:
        if _load(path, log) is None:
            log.error(f"received SIGHUP: {path} is still refused (above): passing every metric through unscored")
        else:
            log.warn(f"received SIGHUP: {path} is valid now, but this process goes on passing every metric through "
                     "unscored: restart Telegraf to score with it")

    return passthrough(log, Held(signals), hangup=hangup)


def _run(config: Config | None, log: Log, args: argparse.Namespace, signals: Signals | None = None,
         unusable: str | None = None) -> int:
    """``run`` on ``config``; None: the config was refused (:func:`_refused`); ``unusable``: why the state
    path given cannot be used (passed through as for a :class:`~riverguard.state.LockError`)."""
    from .signals import Signals
    from .stream import Held, passthrough, serve

    if signals is None:  # (called on its own: the handlers are put back at the end)
        with Signals() as own:
            return _run(config, log, args, own, unusable)
    if config is None:
        return _refused(log, args, signals)
    engine = Engine(config, log)

    def cannot_use(why: str, held: Held | None = None) -> int:
        # A state path it cannot use: another user's checkpoint (riverguard run once as root on Telegraf's
        # state path), a FIFO or a folder where the file should be, a read-only filesystem, the config file
        # itself, a home folder of no user. Exiting lost every metric under Telegraf's execd, which restarts
        # it into the same refusal; scoring on fresh models would drop the learned ones at the next
        # checkpoint. Every metric goes back unscored, the checkpoint left as it is.
        log.error(f"{why}; {_PASSING}; fix that, then restart Telegraf")
        # (nothing scores on this host: the health line, status=passthrough, tells it; a busy lock's holder
        # scores, and its line is the host's)
        monitor = _monitor(engine, config, None, status="passthrough")
        return _last_line(monitor, passthrough(log, held or Held(signals), monitor=monitor), log)

    if unusable is not None:
        return cannot_use(unusable)
    # (the first line, before the lock and the restore say anything)
    hot_path = _hot_path()
    log.debug(f"riverguard {__version__} ({hot_path}) started with {len(config.rules)} rule(s) from {config.source}")
    if hot_path == _NOT_BUILT:  # (not when RIVERGUARD_PURE_PYTHON switched it off: that is asked for)
        log.warn(f"riverguard {__version__}: the hot path was not compiled at install (no C compiler?): it runs in "
                 "pure Python, about 25 to 30 times slower; install gcc and python3-dev (Debian) and install "
                 "riverguard again")
    # The checkpoint's lock is taken at the first input (Held.first: which of Telegraf's two copies with
    # aggregators scores). While it waits for the lock, the input is read into memory (Telegraf is not held up),
    # under the process's signals: a stop there waits Held.STOP_GRACE more for the lock, then ends the wait.
    # Before the first input the checkpoint is read in a thread (StateStore.preload), restored at the lock
    # unless written since: the first metric does not wait for the whole load.
    held = None
    store = None
    if config.state.path is not None:  # (riverguard.state, msgpack with it, is loaded only for a checkpoint)
        from .state import LockBusy, LockError, open_store

        held = Held(signals)
        try:
            same = _check_same_files(args, config)  # (run's: the checkpoint is the --config file)
            if same:
                raise LockError(same)
            store = open_store(engine, idle=held.wait, first=held.first)
        except LockBusy as busy:
            # Under Telegraf, most likely the processor's copy after the aggregators: the copy sent a metric
            # first has the lock (Held.first), usually the inputs'. Exiting would lose every metric sent to it
            # and crash-loop; scoring on throwaway models would change the output from one start to the next.
            # Every metric goes back unscored, as it came. Without the lock it touches no file of the
            # checkpoint's (the holder's temporary ones included).
            log.warn(
                f"checkpoint {busy.path} is in use by another riverguard (PID {busy.holder}, lock "
                f"{busy.lock_path}); waited {busy.waited:.0f}s: {_PASSING}. Under Telegraf with aggregators this "
                "is most likely one of the processor's two copies: the one sent a metric first scores, usually "
                "the one before the aggregators; set [agent] skip_processors_after_aggregators = true in "
                "telegraf.conf (else give each riverguard process its own --state)"
            )
            return passthrough(log, held)
        except LockError as err:
            return cannot_use(str(err), held)
    if not engine.clock.known:  # (a restored clock: the models already took timestamps in their unit)
        engine.unit_hint = ("if they are, send nanoseconds (as Telegraf's execd processor does), or replay them "
                            "with riverguard replay --precision {unit}")
    monitor = _monitor(engine, config, store)
    code = serve(
        engine,
        tick=store.tick if store else None,  # (in the background: see StateStore.tick)
        tick_interval=config.state.checkpoint_interval if store else None,
        child=store,
        reload=_reloader(engine, store, args),
        monitor=monitor,
        signals=signals,
        held=held,
    )
    # A SIGTERM now (Telegraf's, 5 s after it closed stdin) waits for this checkpoint: see signals.checkpointing.
    saved = store.save(tell=True) if store else True
    code = _last_line(monitor, code, log)  # (after the last checkpoint)
    log.info(
        f"stopped after {plural(engine.metrics, 'metric')}: {len(engine.series)} series held, "
        f"{plural(engine.anomalies, 'anomaly', 'anomalies')}, {engine.dropped_in_run()}"
    )
    if not saved:
        _final_checkpoint_failed(log)
        return code or EXIT_FAIL
    return code


def _monitor(engine: Engine, config: Config, store, status: str = "scoring"):  # type: ignore[no-untyped-def]
    """The health line's :class:`~riverguard.monitor.Monitor` of a ``run``, None without ``[monitor] interval``."""
    if config.monitor.interval is None:
        return None
    from .monitor import Monitor

    return Monitor(engine, config.monitor.interval, store, status=status)


def _last_line(monitor, code: int, log: Log) -> int:  # type: ignore[no-untyped-def]
    """Write ``monitor``'s last line at the end of a ``run`` that ends with ``code`` (none after a failure)."""
    from .stream import write_line

    if monitor is not None and code == EXIT_OK:
        code = write_line(1, monitor.line(), log)
    return code


def _final_checkpoint_failed(log: Log) -> None:
    """Say that a process's last checkpoint failed (after the E! line that says why): ``run`` and ``replay``."""
    log.error("the final checkpoint failed: the models learned since the last one are lost")


#: A replay input up to this size is read once before the replay to see whether it is a TOML config.
_TOML_PROBE = 1 << 20


def _check_inputs(files: list[str]) -> str | None:
    """Why an input cannot be read, or None. A config given as an input (``riverguard replay riverguard.toml``,
    ``--config`` forgotten) is refused too: a ``.toml`` file, or a small file that reads as TOML with a key in
    it (no line-protocol metric is valid TOML, so none of its lines could be scored). So is stdin (``-``) when
    it is such a file (``replay - < riverguard.toml``), read where it stands without moving its offset; a pipe
    is not looked at (it could be told only by reading ahead, what it holds is the replay's). A stdin closed
    at start (``0<&-``, the null device put there since) is refused as closed, not replayed as empty."""
    from ._entry import closed_at_start

    for name in files:
        stdin = name == "-"
        shown = "stdin" if stdin else name
        try:
            head = None
            if stdin and closed_at_start(0):
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            st = os.fstat(0) if stdin else os.stat(name)
            path = _stdin_file(st) if stdin else name
            if stat.S_ISDIR(st.st_mode):
                return f"cannot read {name}: it is a folder (give the files in it, e.g. {name.rstrip('/')}/*.lp)"
            if stat.S_ISREG(st.st_mode):
                # a larger file is not read (st_size can be short of a file still written, or 0 in /proc:
                # the length read decides)
                if stdin:
                    at = os.lseek(0, 0, os.SEEK_CUR)  # (pread: stdin's offset stays where the replay starts)
                    head = os.pread(0, _TOML_PROBE + 1, at) if st.st_size - at <= _TOML_PROBE else None
                else:
                    with open(name, "rb") as f:  # (opened even when not read: a file this process may not read is told)
                        head = f.read(_TOML_PROBE + 1) if st.st_size <= _TOML_PROBE else None
            elif not stdin and not os.access(name, os.R_OK):  # a pipe (`<(cmd)`, a named one) or a device: not
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))  # opened here, what it holds is the replay's
        except OSError as err:
            return f"cannot read {shown}: {'it is closed' if err.errno == errno.EBADF else os_reason(err)}"
        if path and stdin:
            shown += f" ({path})"
        hint = f"did you mean --config {shlex.quote(path) if path else 'FILE'}?"  # (to paste: quoted as the shell reads it)
        if path and path.lower().endswith(".toml"):
            return f"{shown} is a .toml file, not line protocol: {hint}"
        if head is not None and len(head) <= _TOML_PROBE and _reads_as_toml(head):
            return f"{shown} reads as TOML (a config?), not line protocol: {hint}"
    return None


def _stdin_file(st: os.stat_result) -> str | None:
    """The path of the regular file stdin was redirected from (``< FILE``), as Linux's /proc names it; None
    when not known (not a regular file, no /proc, the file removed since)."""
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        path = os.readlink("/proc/self/fd/0")
        same = os.stat(path)
    except OSError:
        return None
    return path if (same.st_dev, same.st_ino) == (st.st_dev, st.st_ino) else None


def _reads_as_toml(data: bytes) -> bool:
    """Whether ``data`` is a TOML document holding at least one key (comments and blank lines alone are not).

    >>> _reads_as_toml(b'[[rule]]\\nname = "a"\\n'), _reads_as_toml(b"# only a comment\\n")
    (True, False)
    >>> _reads_as_toml(b"cpu,host=a v=1 1\\n"), _reads_as_toml(b"m v=1\\n"), _reads_as_toml(b"\\x1f\\x8b\\x08")
    (False, False, False)
    """
    import tomllib

    try:
        return bool(tomllib.loads(data.decode("utf-8-sig")))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def _check_output(output: str, option: str = "--output") -> str | None:
    """Why ``-o output`` (or ``--report``) must be refused, or None: a folder, a missing folder (one of the
    inputs or another file named: :func:`_check_same_files`)."""
    target = Path(output)
    if target.is_dir():
        return f"{option} {output} is a folder: give a file name"
    if not target.parent.is_dir():
        return f"{option} {output}: the folder {target.parent} does not exist"
    return None


def _check_same_files(args: argparse.Namespace, config: Config) -> str | None:
    """Why the files named must be refused, or None: two of them are one file (a symlink, a hard link or a
    ``./`` variant too). Those named are ``--config``, the checkpoint (``--state``, or the config's
    ``[state] path`` for ``run``; a folder: the file in it), each ``replay`` input (``-``: stdin, when it is
    a file), ``--output`` and ``--report``. The checkpoint is replaced (and, unusable, renamed aside), the
    output and the report are replaced: none may be another of them, nor a file that is read. Two inputs may
    be one file (it is read twice)."""
    from .config import file_identity

    read = "refusing to overwrite what is being read"
    # (option, as given, the file compared, what it is as the first of a pair, why a second one is refused)
    named: list[tuple[str, str, str | Path, str, str]] = []
    if args.config:
        named.append(("--config", args.config, args.config, "the --config file", read))
    for name in getattr(args, "files", None) or ():
        named.append(("input file", name, name, "the input file", read))
    if config.state.path is not None:
        option = "--state" if getattr(args, "state", None) else "[state] path"
        file = config.state.path  # (a folder given: the checkpoint file in it)
        given = getattr(args, "state", None) or str(config.state.path)
        if Path(given).resolve() != file:  # a folder: the checkpoint in it
            given += f" ({file})"
        named.append((option, given, file, f"the {option} checkpoint",
                      "refusing to overwrite the checkpoint"))
    for option in ("--output", "--report"):
        given = getattr(args, option[2:], None)
        if given and given != "-":
            named.append((option, given, given, f"the {option} file", "refusing to write both to one file"))
    seen: list[tuple[tuple[Any, ...], str, str, str, str]] = []
    for option, given, path, what, why in named:
        if path == "-":  # stdin: compared when it is a file (`replay - < recording.lp`)
            try:
                st = os.fstat(0)
            except OSError:
                continue
            identity = ("file", st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None
            given = "stdin"
        else:
            identity = file_identity(path)
        if identity is None:
            continue
        for other, other_option, other_given, other_what, other_why in seen:
            if other == identity and not option == other_option == "input file":
                if option == "input file":  # (and --config: both only read)
                    other_why = "a config is not line protocol"
                return f"{option} {given} is {other_what} {other_given}: {other_why}"
        seen.append((identity, option, given, what, why))
    return None


class _OutputFile:
    """``--output PATH`` written through a temporary file beside it, renamed over it only on success.

    A failed replay leaves the old file (or none) in place. A device or FIFO is written directly.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.tmp: Path | None = None
        self.mode: int | None = None
        self.file: BinaryIO | None = None  # (:meth:`open`)
        try:
            st = os.stat(self.path)
        except OSError:  # missing; or not to be looked at (a folder closed to it): the open says why
            st = None
        if st is None or stat.S_ISREG(st.st_mode):
            self.mode = stat.S_IMODE(st.st_mode) if st is not None else None
            self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")

    def open(self) -> None:
        """Make the temporary file (a device or a FIFO: open it, which waits for a FIFO's reader). Called
        where :meth:`finish` follows whatever happens: a stop the moment the file is made cannot leave it."""
        self.file = open(self.tmp or self.path, "wb")  # noqa: SIM115

    def write(self, data: bytes) -> int:
        assert self.file is not None
        with self._failing():
            return self.file.write(data)

    @contextlib.contextmanager
    def _failing(self) -> Iterator[None]:
        """A failed write (a full disk, a file size limit) raised as :class:`OutputError` naming the file."""
        try:
            yield
        except OSError as err:
            raise OutputError(err.errno, err.strerror or str(err), str(self.path)) from None

    def finish(self, ok: bool) -> None:
        """Close; on success put the new file in place, otherwise drop it (also when the close itself fails:
        the last of the output, flushed there, did not fit)."""
        try:
            if self.file is not None:  # (None: not opened, or stopped as it was; the temporary file may exist)
                with self._failing():
                    self.file.close()
        except BaseException:
            ok = False
            raise
        finally:
            if self.tmp is not None:
                if ok:
                    if self.mode is not None:
                        os.chmod(self.tmp, self.mode)
                    os.replace(self.tmp, self.path)
                else:
                    self.tmp.unlink(missing_ok=True)


class _Tee:
    """Writes to ``out`` and hands the same bytes (whole metrics) to the report's collector."""

    def __init__(self, out, collector) -> None:  # type: ignore[no-untyped-def]
        self.out = out
        self.collector = collector

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.collector.feed(data)


def _replay(config: Config, log: Log, files: list[str], output: str | None,
            args: argparse.Namespace | None = None) -> int:
    from .signals import checkpointing, interrupt
    from .stream import InputError, replay

    problem = _check_inputs(files)
    if problem:
        log.error(problem)
        return EXIT_CONFIG
    if output == "-":  # stdout, as '-' is stdin among the inputs
        output = None
    if isinstance(output, str):
        problem = _check_output(output)
        if problem:
            log.error(problem)
            return EXIT_CONFIG
    if args is not None and args.report:  # written at the end: refused now, not after the whole replay
        problem = _check_output(args.report, "--report")
        if problem:
            log.error(problem)
            return EXIT_CONFIG
    precision = getattr(args, "precision", None)
    unit = UNITS[precision or "ns"]
    engine = Engine(config, log, time_unit=unit, summary=True)
    store = None
    if config.state.path is not None:  # (riverguard.state, msgpack with it, is loaded only for a checkpoint)
        from .state import LockError, open_store

        try:
            store = open_store(engine)
        except LockError as err:
            log.error(str(err))
            return EXIT_CONFIG
    if precision is None and not engine.clock.known:  # (--precision given, or a restored clock: the unit is known)
        engine.unit_hint = "if they are, give --precision {unit}"
    progress = None
    if sys.stderr.isatty() and "-" not in files:
        progress = Progress(sum(os.path.getsize(f) for f in files), "replay")
    collector = None
    if args is not None and args.report:
        from .report import Collector

        names = config.output
        collector = Collector(names.score_suffix, names.flag_suffix, unit, metric_score_field=names.metric_score_field,
                              metric_flag_field=names.metric_flag_field,
                              metric_scope_in=engine.metric_scope_in if engine.metric_scope else None)
    ok = interrupted = False
    saved = True
    for sig in (signal.SIGINT, signal.SIGTERM):  # stopped: the finally below drops a half-written output
        signal.signal(sig, interrupt)
    out: BinaryIO | _OutputFile
    if output is not None and not isinstance(output, str):
        out = output  # a sink such as riverguard.influx.InfluxWriter (--influx-url)
        engine.drop_unparsable = True  # InfluxDB would refuse the whole batch: never send them
    elif output:
        out = _OutputFile(output)  # (made in the try below, whose finally drops it)
    else:
        out = sys.stdout.buffer
    # Once all the input is scored, a stop waits until the output is in place and the checkpoint written
    # (then exits 130 or 143): the new output never goes with the old models. Not over a sink's last batch,
    # which may take its retries; the checkpoint after it is held back all the same (StateStore.save).
    committing = contextlib.ExitStack()
    try:
        if isinstance(out, _OutputFile):
            try:
                out.open()
            except OSError as err:
                log.error(f"cannot write --output {output}: {err.strerror or err}")
                return EXIT_CONFIG
        replay(engine, files, _Tee(out, collector) if collector else out, progress)  # type: ignore[arg-type]
        if store is not None and (isinstance(out, _OutputFile) or out is sys.stdout.buffer):
            committing.enter_context(checkpointing(log, f"the output and the checkpoint {store.path}"))
        ok = True
    except InputError as err:
        log.error(str(err))
        return EXIT_FAIL
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        with committing:
            if progress:
                progress.close()
            try:
                if isinstance(out, _OutputFile):
                    out.finish(ok)
                elif out is sys.stdout.buffer:
                    with contextlib.suppress(BrokenPipeError):
                        out.flush()
                else:
                    try:
                        out.close()  # (a sink's last batches: a stop there is a stop too, said as any)
                    except KeyboardInterrupt:
                        interrupted = True
                        raise
            finally:
                if interrupted:  # (exit 130 for SIGINT, 143 for SIGTERM)
                    log.warn(_interrupted(engine, out, store, args.report if args is not None else None))
            if ok and store:
                saved = store.save(tell=True)
    engine.log_summary()
    code = EXIT_OK
    if collector is not None:
        code = _write_report(collector, args, log)  # type: ignore[arg-type]
    if not saved:  # the output is written all the same: only the models are behind
        _final_checkpoint_failed(log)
        return code or EXIT_FAIL
    return code


def _interrupted(engine: Engine, out: Any, store: Any, report: str | None = None) -> str:
    """The W! line of a replay stopped (SIGINT, SIGTERM) before its input was all scored: what became of the
    output, the checkpoint (kept as they were: a replay's output never goes with other models) and the
    ``--report`` (written only at the end)."""
    if isinstance(out, _OutputFile) and out.tmp is not None:
        output = f"{out.path} left as it was" if out.mode is not None else f"{out.path} not written"
    elif isinstance(out, _OutputFile):  # a device or a FIFO, written directly
        output = f"{out.path} has the output up to there"
    elif out is sys.stdout.buffer:
        output = "the output up to there went to stdout"
    else:  # a backfill: one number, what InfluxDB acknowledged (the batch in flight was sent again at close)
        output = None
    checkpoint = "no --state"
    if store is not None:
        checkpoint = "no checkpoint written" + (f" ({store.path} keeps the models it had)" if store.path.exists() else "")
    if report:
        checkpoint += f", --report {report} " + ("left as it was" if os.path.exists(report) else "not written")
    if output is None:
        # The replay scores its input from the start again (the checkpoint, if any, is as it was): the same
        # command with --skip-metrics N writes from metric N+1 on, the same as an uninterrupted backfill.
        n = out.resume_from
        again = f"with --skip-metrics {n}" if n else "again"
        return (f"interrupted: {out.target} at {out.url} acknowledged {plural(out.acknowledged, 'metric')} (they stay"
                f" written), {checkpoint}; to resume, run the same command {again}")
    return f"interrupted after {plural(engine.metrics, 'metric')}: {output}, {checkpoint}"


def _write_report(collector, args: argparse.Namespace, log: Log) -> int:  # type: ignore[no-untyped-def]
    import time

    from .report import DEFAULT_TOP, write

    started = time.monotonic()
    try:
        top = DEFAULT_TOP if args.report_top is None else args.report_top
        plotted = write(args.report, collector, top=top, globs=args.report_series, sources=args.files)
    except OSError as err:
        log.error(f"cannot write the report to {args.report}: {err}")
        return EXIT_FAIL
    size = os.path.getsize(args.report)
    log.info(f"report: {plotted} series plotted, {size / 1e6:.1f} MB in {time.monotonic() - started:.1f}s: "
             f"{os.path.abspath(args.report)}")
    unmatched = collector.unmatched(args.report_series)
    if unmatched:
        example = min(collector.series, default=None)
        form = "'measurement,tags field'"
        if any(s.metric for s in collector.series.values()):
            form += " or, a scope = \"metric\" rule's score, 'measurement,tags (metric)'"
        log.warn(
            "--report-series " + ", ".join(repr(glob) for glob in unmatched) + " matched no scored series"
            + (f" (a series is named {form}, as in the summary: {example!r})" if example else "")
        )
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
