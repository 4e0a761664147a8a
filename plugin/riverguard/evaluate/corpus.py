"""Labelled series: NAB's folder layout, or a user's own ``timestamp,value,label`` CSV files.

- NAB layout: ``data/<category>/<file>.csv`` (``timestamp,value``), the windows
  in ``windows.json`` (or ``labels/combined_windows.json`` in a NAB checkout),
  published detector outputs in ``reference/`` (or ``results/``).
- Labelled CSV (:func:`load_labels`): one series per file, ``label`` 0/1 per
  row; each run of labelled rows is an *event*, and NAB windows are built
  around the events the way ``shared/cmd`` was converted.

A row with an empty value is a gap (no sample, as Telegraf would send none).
A bad row raises :class:`DataError` saying ``file:line: reason``.

>>> parse_timestamp("1970-01-01 00:00:01"), parse_timestamp("2014-04-10 16:15:00.000000")
(1000000000, 1397146500000000000)
>>> parse_timestamp("2014-04-10T16:15:00Z") == parse_timestamp("2014-04-10 18:15:00+02:00")
True
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..log import Unreadable, os_reason, plural, read_text
from .nab import FileLabels, probation_length

__all__ = [
    "DataError",
    "NabError",
    "NabFile",
    "default_corpus_path",
    "find_corpus",
    "search_starts",
    "default_nab_path",
    "load_corpus",
    "load_labels",
    "load_reference",
    "parse_timestamp",
    "parse_value",
]

ENV_VAR = "RIVERGUARD_NAB"
#: Where a NAB checkout keeps its windows, and where this repository's corpora keep them.
WINDOWS_FILES = ("windows.json", "labels/combined_windows.json")
#: Where published detector outputs live: this repository's corpora, a NAB checkout.
REFERENCE_DIRS = ("reference", "results")
#: NAB's labeller: a window is this fraction of the file's rows, shared among its events.
WINDOW_FRACTION = 0.10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class NabError(Exception):
    """The corpus is missing or not in NAB's layout; the message says what."""


class DataError(NabError):
    """A file's content is wrong; the message starts with ``file:line:`` where a row is at fault."""


@dataclass
class NabFile:
    """One labelled series: ``key`` is ``"<category>/<file>.csv"`` as in windows.json (or the path given).

    ``windows`` are NAB's scoring windows, ``events`` the labelled incidents
    the event-wise figures count (a NAB corpus's events are its windows).
    """

    key: str
    category: str
    name: str
    path: Path
    timestamps: np.ndarray  # int64 nanoseconds since the epoch, UTC
    values: list[str]  # the CSV's value text, row by row
    windows: list[tuple[int, int]] = field(default_factory=list)  # inclusive, ns
    events: list[tuple[int, int]] | None = None  # inclusive, ns; None: the windows
    #: Rows read from the file, and how many of them repeated an earlier row's timestamp (merged into it);
    #: the others without a value are gaps. None: one sample per row (a NAB corpus file).
    read: int | None = None
    merged: int = 0

    @property
    def rows(self) -> int:
        return len(self.values)

    def labels(self) -> FileLabels:
        return FileLabels(self.key, self.timestamps, self.windows)

    def incidents(self) -> list[tuple[int, int]]:
        """The events the event-wise figures count."""
        return list(self.windows) if self.events is None else list(self.events)


def parse_timestamp(text: str) -> int:
    """Nanoseconds since the epoch of an ISO 8601 timestamp (``T`` or space; ``Z``, an offset, or none: UTC)."""
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"invalid timestamp {text!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    delta = stamp - _EPOCH
    ns = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    if not -(2**63) <= ns < 2**63:
        raise OutOfRange(f"timestamp {text.strip()!r} is outside the nanosecond range of line protocol ({_RANGE})")
    return ns


#: The times a nanosecond timestamp (int64) holds, as line protocol and InfluxDB read them.
_RANGE = "1677-09-21 00:12:43 to 2262-04-11 23:47:16 UTC"


class OutOfRange(ValueError):
    """A valid ISO 8601 time that no nanosecond timestamp holds."""


def _decode(path: Path) -> str:
    try:
        return read_text(path, "a CSV file")
    except Unreadable as err:
        raise DataError(str(err)) from None


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each non-blank CSV row, the header included."""
    text = _decode(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    lineno = 1
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                yield lineno, row
            lineno = reader.line_num + 1
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: {err}") from None


def _header(path: Path, rows: Iterator[tuple[int, list[str]]], columns: tuple[str, ...]) -> list[int]:
    """The index of each of ``columns`` in the header (names compared case-insensitively)."""
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: empty file (expected a header {','.join(columns)} and rows)")
    lineno, header = first
    names = [h.strip().lower() for h in header]
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(
            f"{path}:{lineno}: missing column(s) {', '.join(missing)} in the header "
            f"(expected {','.join(columns)}, got {','.join(h.strip() for h in header)})"
        )
    return [names.index(c) for c in columns]


def _cells(path: Path, lineno: int, row: list[str], index: list[int]) -> list[str]:
    if len(row) <= max(index):
        raise DataError(f"{path}:{lineno}: expected {max(index) + 1} columns, got {len(row)}")
    return [row[i].strip() for i in index]


def parse_value(text: str) -> float:
    """A sample's value: a finite number, else ValueError saying why.

    >>> parse_value("2.5"), parse_value(" 1e3 ")
    (2.5, 1000.0)
    """
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"value {text!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"value {text!r} is not finite")
    return number


def _value(path: Path, lineno: int, text: str) -> None:
    """Refuse a value that is not a finite number."""
    try:
        parse_value(text)
    except ValueError as err:
        raise DataError(f"{path}:{lineno}: {err}") from None


def _timestamp(path: Path, lineno: int, text: str) -> int:
    if not text:
        raise DataError(f"{path}:{lineno}: empty timestamp")
    try:
        return parse_timestamp(text)
    except OutOfRange as err:
        raise DataError(f"{path}:{lineno}: {err}") from None
    except ValueError:
        # (a number: an export's epoch seconds or nanoseconds, refused as ambiguous; the README says how to convert)
        epoch = ("; epoch numbers are refused: export with rfc3339 timestamps or convert them (README, "
                 "Detection quality)") if text.lstrip("-").replace(".", "", 1).isdigit() else ""
        raise DataError(f"{path}:{lineno}: timestamp {text!r} is not ISO 8601 (e.g. 2024-05-01 12:00:00){epoch}") \
            from None


def _read_nab_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    """A NAB data file's samples: every row (as NAB scores them), except gaps (empty values)."""
    rows = _rows(path)
    index = _header(path, rows, ("timestamp", "value"))
    stamps: list[str] = []
    values: list[str] = []
    lines: list[int] = []
    for lineno, row in rows:
        stamp, value = _cells(path, lineno, row, index)
        if not value:
            continue  # a gap
        _value(path, lineno, value)
        stamps.append(stamp)
        values.append(value)
        lines.append(lineno)
    try:  # fast path: NAB's own format, parsed at once
        iso = [s.replace(" ", "T") for s in stamps]
        ts = np.array(iso, dtype="datetime64[ns]").astype(np.int64)
        # numpy wraps a time beyond the nanosecond range (1677 to 2262) around silently: to the second, the
        # same times again; any that differs is read row by row below, which says which and why
        seconds = np.array(iso, dtype="datetime64[s]").astype(np.int64)
        if not np.array_equal(np.floor_divide(ts, 10**9), seconds):
            raise ValueError("out of range")
    except ValueError:
        ts = np.array([_timestamp(path, ln, s) for ln, s in zip(lines, stamps, strict=True)], dtype=np.int64)
    return ts, values


def _find_upwards(start: Path, name: str) -> Iterator[Path]:
    for base in (start, *start.parents):
        yield base / "shared" / name


def search_starts() -> list[Path]:
    """The folders in or above which :func:`find_corpus` looks for ``shared/<name>``: the current
    directory, then the source checkout riverguard runs from, if it runs from one (an editable
    install or a run from the source tree; not an installed package)."""
    starts = [Path.cwd()]
    source = Path(__file__).resolve().parents[3]
    if (source / "pyproject.toml").is_file():
        starts.append(source)
    return starts


def find_corpus(name: str = "nab") -> Path | None:
    """The first ``shared/<name>`` holding a ``data`` folder in or above one of :func:`search_starts`
    (never inside an installed package or its virtual environment), or None."""
    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    for start in search_starts():
        for path in _find_upwards(start, name):
            resolved = path.resolve()
            if any(resolved.is_relative_to(p) for p in prefixes if p != Path("/")):
                continue
            if (path / "data").is_dir():
                return path
    return None


def default_corpus_path(name: str = "nab", env_var: str | None = None) -> Path:
    """Where a corpus under ``shared/<name>`` is looked for when no path is given.

    ``$<env_var>`` if set; else :func:`find_corpus`'s; else ``../shared/<name>``
    beside the current directory, for a message.
    """
    if env_var and os.environ.get(env_var):
        return Path(os.environ[env_var])
    found = find_corpus(name)
    if found is not None:
        return found
    candidates = list(_find_upwards(Path.cwd(), name))
    return candidates[1] if len(candidates) > 1 else candidates[0]  # ../shared/<name>, for the message


def default_nab_path() -> Path:
    """``$RIVERGUARD_NAB``, else ``shared/nab`` found as :func:`default_corpus_path` says."""
    return default_corpus_path("nab", ENV_VAR)


def _windows_file(root: Path) -> Path:
    for name in WINDOWS_FILES:
        if (root / name).is_file():
            return root / name
    raise NabError(f"{root}: no windows file (expected {' or '.join(str(root / n) for n in WINDOWS_FILES)})")


def load_corpus(root: str | Path) -> list[NabFile]:
    """Every CSV under ``root/data`` with its windows (``windows.json`` or ``labels/combined_windows.json``)."""
    root = Path(root)
    data = root / "data"
    if not data.is_dir():
        raise NabError(f"{root}: no NAB corpus here (expected {data}/<category>/<file>.csv)")
    windows_path = _windows_file(root)
    try:
        windows = json.loads(windows_path.read_text(encoding="utf-8"))
    except OSError as err:
        raise NabError(f"{windows_path}: cannot read: {err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise NabError(f"{windows_path}: invalid JSON: {err}") from None
    if not isinstance(windows, dict):
        raise NabError(f"{windows_path}: expected an object of file -> windows")
    files = []
    for path in _nab_csv_files(data):
        key = f"{path.parent.name}/{path.name}"
        if key not in windows:
            raise NabError(f"{windows_path}: no entry for {key}")
        ts, values = _read_nab_csv(path)
        if not values:
            raise DataError(f"{path}: no values")
        try:
            bounds = [(parse_timestamp(a), parse_timestamp(b)) for a, b in windows[key]]
        except (ValueError, TypeError, AttributeError) as err:
            raise NabError(f"{windows_path}: {key}: invalid window: {err}") from None
        files.append(NabFile(key, path.parent.name, path.name, path, ts, values, bounds))
    if not files:
        raise NabError(f"{data}: no CSV files (expected {data}/<category>/<file>.csv)")
    return files


# -- a user's own labelled CSV files -------------------------------------------


def _label(path: Path, lineno: int, text: str) -> bool:
    if text in ("0", "1"):
        return text == "1"
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if number in (0.0, 1.0):
        return number == 1.0
    raise DataError(f"{path}:{lineno}: label {text!r} is not 0 or 1")


def _read_labelled_csv(path: Path) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray, int]:
    """Rows merged by timestamp, in time order: (timestamps, values with '' for gaps, labels, is_gap, how many
    rows there were)."""
    rows = _rows(path)
    index = _header(path, rows, ("timestamp", "value", "label"))
    merged: dict[int, list] = {}  # timestamp -> [value text ('' = none yet), label]
    count = 0
    for lineno, row in rows:
        count += 1
        stamp_text, value, label_text = _cells(path, lineno, row, index)
        stamp = _timestamp(path, lineno, stamp_text)
        label = _label(path, lineno, label_text)
        if value:
            _value(path, lineno, value)
        entry = merged.get(stamp)
        if entry is None:
            merged[stamp] = [value, label]
        else:  # a repeated timestamp keeps its last value (as InfluxDB does) and the union of the labels
            if value:
                entry[0] = value
            entry[1] = entry[1] or label
    if not merged:
        raise DataError(f"{path}: no rows after the header")
    order = sorted(merged)
    ts = np.array(order, dtype=np.int64)
    values = [merged[t][0] for t in order]
    labels = np.array([merged[t][1] for t in order], dtype=bool)
    gap = np.array([not v for v in values], dtype=bool)
    return ts, values, labels, gap, count


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True.

    >>> _runs(np.array([0, 1, 1, 0, 1], dtype=bool))
    [(1, 2), (4, 4)]
    """
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def label_windows(samples: np.ndarray, events: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """NAB windows around labelled events, as ``shared/cmd`` was converted.

    Each event gets ``int(0.10 * rows / events)`` rows centred on its first
    sample, extended to cover the whole event; overlapping windows are merged;
    a window that starts in the probationary period is dropped. ``samples``
    are the sample timestamps, the events and windows inclusive timestamp spans.

    >>> label_windows(np.arange(100), [(50, 51), (90, 90)])
    [(48, 52), (88, 92)]
    """
    rows = len(samples)
    if not events or not rows:
        return []
    width = int(WINDOW_FRACTION * rows / len(events))
    spans: list[list[int]] = []
    for start, end in events:
        first = int(np.searchsorted(samples, start, side="left"))
        last = int(np.searchsorted(samples, end, side="right")) - 1
        if first >= rows:
            continue  # after the last sample: no row to hold a window
        last = max(first, last)
        lo = max(0, first - width // 2)
        hi = min(rows - 1, max(last, first + width // 2))
        if spans and lo <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    probation = probation_length(rows)
    return [(int(samples[lo]), int(samples[hi])) for lo, hi in spans if lo >= probation]


def load_labels(paths: list[str | Path], warn: Callable[[str], None] | None = None) -> list[NabFile]:
    """A user's labelled CSV files (``timestamp,value,label``), one series per file; ``warn`` is told of a
    file whose rows repeat timestamps (merged: date-only timestamps, a timestamp column cut to the minute).

    Each run of labelled rows (a gap's label included) is an event; the NAB
    windows come from :func:`label_windows`. A folder stands for every ``*.csv`` file in it, in sorted order
    (:func:`labelled_files`). Keys are the paths as given (a folder's files: the folder joined with each
    name); the category is the name of the file's folder (the file's stem in ``/``).
    """
    files = []
    seen: set[str] = set()
    for given in labelled_files(paths):
        path = Path(given)
        key = str(given)
        if key in seen:
            continue
        seen.add(key)
        ts, values, labels, gap, rows = _read_labelled_csv(path)
        merged = rows - len(ts)
        if warn is not None and merged:
            warn(
                f"{path}: {merged} of the {plural(rows, 'row')} read {'repeats' if merged == 1 else 'repeat'} an "
                f"earlier row's timestamp: {plural(len(ts), 'timestamp')} left (each keeps its last value and the "
                "union of its labels); are the timestamps whole?"
            )
        events = [(int(ts[a]), int(ts[b])) for a, b in _runs(labels)]
        samples = ts[~gap]
        if not len(samples):
            raise DataError(f"{path}: no values (every row is a gap)")
        kept = [v for v in values if v]
        category = path.absolute().parent.name or path.stem  # the folder's own name, even for "x.csv"
        files.append(NabFile(key, category, path.name, path, samples, kept, label_windows(samples, events), events,
                             read=rows, merged=merged))
    return files


def labelled_files(paths: list[str | Path]) -> list[str | Path]:
    """``paths`` with each folder replaced by the ``*.csv`` files directly in it (``.CSV`` too), sorted by name
    (not its subfolders: a NAB-layout corpus is ``--nab``'s). A folder with none, or one that cannot be listed,
    is a :class:`DataError` (one whose subfolders hold some says ``--nab``)."""
    out: list[str | Path] = []
    for given in paths:
        if not os.path.isdir(given):
            out.append(given)
            continue
        try:
            names = _csv_names(given)
        except OSError as err:
            raise DataError(f"{given}: cannot read: {os_reason(err)}") from None
        if not names:
            nab = _nab_hint(given)
            raise DataError(f"{given}: a folder with no *.csv file in it: "
                            + (f"its subfolders hold some, as in NAB's layout: {nab}" if nab
                               else "give the CSV files, or a folder holding them"))
        out.extend(os.path.join(given, name) for name in names)
    return out


def _csv_names(folder: str | Path) -> list[str]:
    """The names of the CSV files directly in ``folder`` (``.csv`` whatever its case), sorted."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.name.lower().endswith(".csv") and not e.is_dir())


def _nab_hint(folder: str | Path) -> str | None:
    """For a folder whose subfolders, not itself, hold CSV files (NAB's layout: ``data/<category>/*.csv``): the
    ``--nab`` it may have meant; None if none of its subfolders (nor of its ``data``) holds any."""
    path = Path(folder)
    if _nab_csv_files(path / "data"):
        root, categories = path, path / "data"
    elif not _nab_csv_files(path):
        return None
    elif path.name == "data":
        root, categories = path.parent, path
    else:
        return (f"give --labels {os.path.join(path, '*', '')} for the files in its subfolders, or put them in "
                "data/<category>/*.csv under the folder given to --nab")
    if any((root / name).is_file() for name in WINDOWS_FILES):
        return f"give --nab {root}"
    return (f"give --labels {os.path.join(categories, '*', '')} for the files in its subfolders, or --nab {root} "
            f"once its windows are in {root / WINDOWS_FILES[0]}")


def _nab_csv_files(data: Path) -> list[Path]:
    """The CSV files of NAB's layout under ``data`` (``<category>/<file>.csv``, ``.csv`` whatever its case, as
    ``--labels`` takes them), sorted by category, then name; an unreadable ``data`` or category holds none."""
    try:
        with os.scandir(data) as entries:
            categories = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []
    files = []
    for category in categories:
        try:
            files.extend(data / category / name for name in _csv_names(data / category) if not name.startswith("."))
        except OSError:
            pass
    return files


def describe(files: list[NabFile]) -> str:
    """How many files, rows and samples ``files`` hold, for a report's title: the rows read and, when fewer
    samples came of them, why (repeated timestamps merged, rows without a value).

    >>> f = NabFile("a.csv", "c", "a.csv", Path("a.csv"), np.zeros(595), ["1"] * 595, read=601, merged=1)
    >>> describe([f]), describe([NabFile("b.csv", "c", "b.csv", Path("b.csv"), np.zeros(1), ["1"])] * 2)
    ('1 file, 601 rows read, 595 samples kept: 1 row with a repeated timestamp merged, 5 rows without a value', '2 files, 2 samples')
    """
    samples = sum(f.rows for f in files)
    read = sum(f.rows if f.read is None else f.read for f in files)
    merged = sum(f.merged for f in files)
    gaps = read - merged - samples
    text = f"{plural(len(files), 'file')}, " + (f"{plural(read, 'row')} read, " if read != samples else "")
    why = [f"{plural(merged, 'row')} with a repeated timestamp merged"] if merged else []
    why += [f"{plural(gaps, 'row')} without a value"] if gaps else []
    return text + plural(samples, "sample") + (" kept: " + ", ".join(why) if why else "")


def resolve_reference(root: str | Path, detector: str | Path) -> Path:
    """A reference detector folder: a path as given, or a name under ``root/reference`` (or ``root/results``)."""
    path = Path(detector)
    if path.is_dir():
        return path
    candidates = [Path(root) / sub / str(detector) for sub in REFERENCE_DIRS]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise NabError(f"no reference outputs at {path} or {' or '.join(map(str, candidates))}")


def load_reference(corpus: list[NabFile], detector_dir: str | Path) -> list[np.ndarray]:
    """A published detector's scores for each corpus file (``<category>/<detector>_<file>``)."""
    detector_dir = Path(detector_dir)
    detector = detector_dir.name
    scores = []
    for f in corpus:
        path = detector_dir / f.category / f"{detector}_{f.name}"
        if not path.is_file():
            raise NabError(f"{detector_dir}: no output for {f.key} (expected {path})")
        rows = _rows(path)
        index = _header(path, rows, ("timestamp", "anomaly_score"))
        stamps, values = [], []
        for lineno, row in rows:
            stamp, score = _cells(path, lineno, row, index)
            stamps.append(_timestamp(path, lineno, stamp))
            try:
                values.append(float(score))
            except ValueError:
                raise DataError(f"{path}:{lineno}: anomaly_score {score!r} is not a number") from None
            if math.isnan(values[-1]):
                raise DataError(f"{path}:{lineno}: anomaly_score is NaN")
        ts = np.array(stamps, dtype=np.int64)
        if len(ts) != f.rows or not np.array_equal(ts, f.timestamps):
            raise NabError(f"{path}: its timestamps differ from {f.path}")
        scores.append(np.array(values, dtype=np.float64))
    return scores
