"""``riverguard evaluate``: detection quality on labelled data (NAB's layout, or a user's CSV files).

- :mod:`.nab` — a pure NAB scorer (windows, rewards, profiles, threshold sweep);
- :mod:`.events` — event-wise figures (incidents caught, false alarms, delay);
- :mod:`.corpus` — NAB's folder layout (CSV files by category, windows JSON,
  published reference outputs) and labelled ``timestamp,value,label`` CSV files;
- :mod:`.runner` — CSV rows as line protocol through riverguard's engine, the
  scores and flags read back from the output fields;
- :mod:`.report` — per-profile, per-category tables and JSON.

This module stays light (no numpy) so that building the CLI parser is cheap.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..log import Progress, plural, printable
from .shape import FIELD, FILE_TAGS, MEASUREMENT, Shape

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config
    from ..log import Log

__all__ = ["PROFILE_ALIASES", "PROFILE_NAMES", "add_arguments", "main"]

#: NAB's application profiles (cost weights in :data:`riverguard.evaluate.nab.PROFILES`).
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
#: The short names the README's tables use, accepted by ``--profile`` for NAB's.
PROFILE_ALIASES = {"reward_low_FP": "reward_low_FP_rate", "reward_low_FN": "reward_low_FN_rate"}

#: README, "Exit codes": 2 for what the command line or the data given gets wrong, 1 for a failure while running.
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``evaluate`` subcommand's own options (``--config``/``--log-level`` come from the CLI)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--nab",
        metavar="PATH",
        help="a folder in NAB's layout (data/<category>/*.csv and windows.json, or a NAB checkout with "
        "labels/combined_windows.json); default: $RIVERGUARD_NAB, else shared/nab in or above the current folder, "
        "then the riverguard checkout",
    )
    source.add_argument(
        "--labels",
        nargs="+",
        metavar="FILE.csv",
        help="your own labelled series: CSV files with timestamp,value,label (label 0/1), one series per file; "
        "a folder: every *.csv in it, in sorted order",
    )
    parser.add_argument(
        "--profile",
        action="extend",
        nargs="+",
        type=lambda name: PROFILE_ALIASES.get(name, name),
        choices=PROFILE_NAMES,
        metavar="NAME",
        help=f"NAB profile(s), repeatable ({', '.join(PROFILE_NAMES)}, or reward_low_FP, reward_low_FN for short;"
        " default: all three)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--missed",
        action="store_true",
        help="also list each file's events that were missed or not judged (text output; --json always has every "
        "event under per_file)",
    )
    parser.add_argument(
        "--detector",
        metavar="NAME",
        help="score with this registered detector (default parameters) instead of the config's rules (with "
        "--config, only its [output] settings are used: a W! line says so)",
    )
    shape = parser.add_argument_group(
        "the metric each row becomes (so that the rules written for a series score a file as that series)"
    )
    shape.add_argument("--measurement", metavar="NAME", type=_name, default=MEASUREMENT,
                       help=f"the measurement (default: {MEASUREMENT})")
    shape.add_argument("--field", metavar="NAME", type=_name, default=FIELD,
                       help=f"the field that holds the value (default: {FIELD})")
    shape.add_argument(
        "--tag", metavar="KEY=VALUE", type=_tag_option, action="append", default=[],
        help=f"a tag besides {' and '.join(FILE_TAGS)} (the file's folder and name, which tell the files apart); "
        "repeatable",
    )
    parser.add_argument(
        "--reference",
        metavar="DETECTOR_DIR",
        help="score published NAB outputs (a folder, or a name under <nab>/reference/) instead of riverguard",
    )


def _name(text: str) -> str:
    """A measurement, field, tag key or tag value given on the command line: UTF-8 text, not empty, without
    control characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = ""
    if not text or printable(text) != text:
        raise argparse.ArgumentTypeError("give a name of UTF-8 text, not empty, without control characters")
    return text


def _tag_option(text: str) -> tuple[str, str]:
    """``--tag KEY=VALUE``: neither empty, the key not one of :data:`FILE_TAGS`."""
    key, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"{printable(text)!r} is not KEY=VALUE")
    if key in FILE_TAGS:
        raise argparse.ArgumentTypeError(f"{key} is the tag evaluate gives each file itself: give another key")
    return _name(key), _name(value)


def _what_rules_see(files: list[Any], shape: Shape) -> str:
    """What evaluate's metrics look like to a config's rules, for the E! line when no sample was scored: the
    rule a user wrote for their own metrics (``measurement = "cpu"``) matches none of them."""
    from .runner import file_series

    example = file_series(files[0], shape).decode("utf-8", "backslashreplace")
    keys = sorted([*FILE_TAGS, *(k for k, _ in shape.tags)])
    tags = ", ".join(f"{k} (the folder)" if k == "category" else k for k in keys[:-1]) + f" and {keys[-1]}"
    return (f'evaluate scores each row as a metric of measurement "{shape.measurement}", tags {tags}, and one'
            f' field "{shape.field}" ({example} {shape.field}=...): give --measurement, --field (and --tag'
            f' KEY=VALUE) as the series your rules select has them, or a rule for measurement "{shape.measurement}"'
            f' and field "{shape.field}"')


def _tell_probation(per_file: list[dict[str, Any]], log: Log, shown: int = 3) -> None:
    """One line for the events and flags in the series' probations, which no figure counts: a ``W!`` line when
    labelled events are left out, else an ``I!`` line for the flags."""
    events = sum(f["events"]["probation_events"] for f in per_file)
    flags = sum(f["events"]["probation_flags"] for f in per_file)
    if not events and not flags:
        return
    total = events + sum(f["events"]["events"] for f in per_file)
    held = [f"{events} of {plural(total, 'labelled event')}"] if events else []
    held += [plural(flags, "flag")] if flags else []
    files = sorted((f for f in per_file if f["events"]["probation_events"] or f["events"]["probation_flags"]),
                   key=lambda f: not f["events"]["probation_events"])  # (stable: those with events first)
    where = []
    for f in files[:shown]:
        ev = f["events"]
        counts = [plural(ev["probation_events"], "event")] if ev["probation_events"] else []
        counts += [plural(ev["probation_flags"], "flag")] if ev["probation_flags"] else []
        where.append(f"{f['file']} (first {plural(ev['probation_samples'], 'sample')}: {', '.join(counts)})")
    if len(files) > shown:
        where.append(f"{len(files) - shown} more files (--json: per_file events)")
    (log.warn if events else log.info)(
        "the probation (as in NAB, the first min(0.15 × samples, 750) samples of each series, not judged) holds "
        + " and ".join(held) + ", not counted in the figures: " + "; ".join(where)
    )


def main(args: argparse.Namespace, config: Config, log: Log) -> int:
    """Run ``riverguard evaluate``; return the exit code."""
    from pathlib import Path

    from .. import detectors
    from ..config import Config as _Config
    from ..config import Rule
    from . import nab
    from .corpus import (
        ENV_VAR,
        DataError,
        NabError,
        default_nab_path,
        describe,
        find_corpus,
        load_corpus,
        load_labels,
        load_reference,
        resolve_reference,
        search_starts,
    )
    from .report import evaluate_events, evaluate_scores, format_tables
    from .runner import run_corpus

    shape = Shape(args.measurement, args.field, tuple(dict(args.tag).items()))
    reshaped = [o for o, given in (("--measurement", shape.measurement != MEASUREMENT),
                                   ("--field", shape.field != FIELD), ("--tag", shape.tags)) if given]
    if args.reference and (args.detector or args.labels or reshaped):
        log.error("--reference scores published outputs of a NAB-layout folder; it cannot be combined with "
                  + ("--detector" if args.detector else "--labels" if args.labels else reshaped[0]))
        return EXIT_USAGE
    if args.detector:  # (before any file is looked for or read: a wrong name is the first thing to hear)
        if args.detector not in detectors.REGISTRY and args.detector != "default":
            log.error(f'unknown detector "{args.detector}" (known: {", ".join(sorted(detectors.REGISTRY))})')
            return EXIT_USAGE
        rule = Rule(index=1, name=f"evaluate-{args.detector}", detector=args.detector, explain=config.output.explain)
        try:
            rule.new_detector()  # a detector with a required parameter (river's model) has no defaults to run
        except (ValueError, TypeError) as err:
            log.error(f"--detector {args.detector}: {err}; give the rule with --config instead")
            return EXIT_USAGE
        if config.source != "<default>" and config.rules:
            log.warn(f"--detector {args.detector} scores every series instead of the {len(config.rules)} rule(s) "
                     f"of {config.source}; only its [output] settings are used")
        config = _Config(rules=(rule,), output=config.output, state=config.state, source=config.source)
    root = Path(args.nab) if args.nab else default_nab_path()
    if not (args.nab or args.labels or os.environ.get(ENV_VAR) or find_corpus("nab")):
        # searched, not one folder given: say where (default_nab_path's fallback was never looked at alone)
        cwd, *checkout = search_starts()
        log.error(
            f"no shared/nab with a data/ folder in or above {cwd}"
            + (f" (nor in or above the checkout {checkout[0]})" if checkout else "")
            + f"; give --nab PATH or set ${ENV_VAR}"
        )
        return EXIT_USAGE
    profiles = list(dict.fromkeys(args.profile or PROFILE_NAMES))
    started = time.perf_counter()
    try:
        files = load_labels(args.labels, log.warn) if args.labels else load_corpus(root)
    except DataError as err:
        log.error(str(err))
        return EXIT_USAGE
    except NabError as err:  # say where the folder came from, so the user knows what to change
        where = ("--nab" if args.nab else f"${ENV_VAR}" if os.environ.get(ENV_VAR)
                 else f"found in or above the current folder; give --nab PATH or set ${ENV_VAR} for another")
        log.error(f"{err} ({where})")
        return EXIT_USAGE
    rows = sum(f.rows for f in files)
    what = "labelled files" if args.labels else f"{Path(root).resolve().name} (NAB layout)"
    report: dict[str, Any] = {"files": len(files), "rows": rows}
    if args.labels:
        report["labels"] = [f.key for f in files]
    else:
        report["nab"] = str(root)
    if args.reference:
        try:
            ref = resolve_reference(root, args.reference)
            scores = load_reference(files, ref)
        except NabError as err:
            log.error(str(err))
            return EXIT_USAGE
        report.update(source="reference", detector=ref.name)
        report["title"] = f"{what}: published outputs of {ref.name} ({describe(files)})"
        # the event-wise figures need flags: the standard profile's swept threshold
        best = nab.sweep([nab.prepare(f.labels()) for f in files], scores, nab.PROFILES["standard"])
        flags = None
        event_flags, event_threshold = [s >= best.threshold for s in scores], best.threshold
    else:
        progress = Progress(rows, "evaluate") if sys.stderr.isatty() else None
        try:
            runs = run_corpus(config, files, log, progress, shape)
        finally:
            if progress:
                progress.close()
        scores = [r.scores for r in runs]
        flags = [r.flags for r in runs]
        thresholds = sorted(set().union(*(r.thresholds for r in runs)))
        unscored = sum(r.unscored for r in runs)
        names = sorted({(r.detector_class.name if r.detector_class else "off") for r in config.rules}) or ["none"]
        report.update(
            source="riverguard",
            config=config.source,
            detector=args.detector or ",".join(names),
            configured_thresholds=thresholds,
            unscored_rows=unscored,
        )
        report["title"] = (
            f"{what}: riverguard, config {config.source}"
            + (f", detector {args.detector}" if args.detector else "")
            + f" ({describe(files)})"
        )
        if unscored == rows:  # a config that does not fit the metrics: no figure means anything
            log.error(f"none of the {plural(rows, 'sample')} carried a score (no rule of {config.source} matched, or"
                      f" the detector failed): {_what_rules_see(files, shape)}")
            return EXIT_USAGE
        if unscored:  # (some scored: the rules see the metrics)
            log.warn(f"{unscored} of the {plural(rows, 'sample')} carried no score (no rule matched, or the detector"
                     " failed)")
        event_flags, event_threshold = flags, (thresholds[0] if len(thresholds) == 1 else None)
    per_file: list[dict[str, Any]] = [
        {"file": f.key, "category": f.category, "rows": f.rows, "windows": len(f.windows)} for f in files
    ]
    report["profiles"] = evaluate_scores(files, scores, flags, profiles, per_file)
    report["events"] = {"threshold": event_threshold, **evaluate_events(files, event_flags, per_file)}
    report["per_file"] = per_file
    report["seconds"] = round(time.perf_counter() - started, 3)
    _tell_probation(per_file, log)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_tables(report, missed=args.missed))
        sys.stdout.write(f"\ndone in {report['seconds']:.1f} s\n")
    sys.stdout.flush()
    return EXIT_OK
