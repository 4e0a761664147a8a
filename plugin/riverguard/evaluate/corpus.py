"""NAB's folder layout: ``data/<category>/<file>.csv``, ``windows.json``, ``reference/``.

>>> parse_timestamp("1970-01-01 00:00:01"), parse_timestamp("2014-04-10 16:15:00.000000")
(1000000000, 1397146500000000000)
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .nab import FileLabels

__all__ = ["NabError", "NabFile", "default_nab_path", "load_corpus", "load_reference", "parse_timestamp"]

ENV_VAR = "RIVERGUARD_NAB"


class NabError(Exception):
    """The NAB folder is missing or not in NAB's layout; the message says what."""


@dataclass
class NabFile:
    """One labelled series: ``key`` is ``"<category>/<file>.csv"`` as in windows.json."""

    key: str
    category: str
    name: str
    path: Path
    timestamps: np.ndarray  # int64 nanoseconds since the epoch, UTC
    values: list[str]  # the CSV's value text, row by row
    windows: list[tuple[int, int]] = field(default_factory=list)  # inclusive, ns

    @property
    def rows(self) -> int:
        return len(self.values)

    def labels(self) -> FileLabels:
        return FileLabels(self.key, self.timestamps, self.windows)


def parse_timestamp(text: str) -> int:
    """Nanoseconds since the epoch of a NAB timestamp (``YYYY-MM-DD HH:MM:SS[.ffffff]``, UTC)."""
    try:
        return int(np.datetime64(text.strip().replace(" ", "T"), "ns").astype(np.int64))
    except ValueError as err:
        raise ValueError(f"invalid timestamp {text!r}") from err


def _parse_timestamps(texts: list[str], where: str) -> np.ndarray:
    try:
        return np.array([t.strip().replace(" ", "T") for t in texts], dtype="datetime64[ns]").astype(np.int64)
    except ValueError as err:
        raise NabError(f"{where}: invalid timestamp: {err}") from None


def _read_csv(path: Path, columns: tuple[str, ...]) -> dict[str, list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in columns if c not in header]
            if missing:
                raise NabError(f"{path}: missing column(s) {', '.join(missing)} (header: {','.join(header)})")
            index = [header.index(c) for c in columns]
            out: dict[str, list[str]] = {c: [] for c in columns}
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) < len(header):
                    raise NabError(f"{path}:{lineno}: expected {len(header)} columns, got {len(row)}")
                for c, i in zip(columns, index, strict=True):
                    out[c].append(row[i])
    except OSError as err:
        raise NabError(f"{path}: cannot read: {err}") from None
    return out


def default_nab_path() -> Path:
    """``$RIVERGUARD_NAB``, else ``../shared/nab`` beside the repository."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    return repo.parent / "shared" / "nab"


def load_corpus(root: str | Path) -> list[NabFile]:
    """Every CSV under ``root/data`` with its windows from ``root/windows.json``, sorted by key."""
    root = Path(root)
    data = root / "data"
    windows_path = root / "windows.json"
    if not data.is_dir():
        raise NabError(f"{root}: no NAB corpus here (expected {data}/<category>/<file>.csv)")
    try:
        windows = json.loads(windows_path.read_text(encoding="utf-8"))
    except OSError as err:
        raise NabError(f"{windows_path}: cannot read: {err}") from None
    except json.JSONDecodeError as err:
        raise NabError(f"{windows_path}: invalid JSON: {err}") from None
    if not isinstance(windows, dict):
        raise NabError(f"{windows_path}: expected an object of file -> windows")
    files = []
    for path in sorted(data.glob("*/*.csv")):
        key = f"{path.parent.name}/{path.name}"
        if key not in windows:
            raise NabError(f"{windows_path}: no entry for {key}")
        cols = _read_csv(path, ("timestamp", "value"))
        ts = _parse_timestamps(cols["timestamp"], str(path))
        try:
            bounds = [(parse_timestamp(a), parse_timestamp(b)) for a, b in windows[key]]
        except (ValueError, TypeError) as err:
            raise NabError(f"{windows_path}: {key}: invalid window: {err}") from None
        files.append(NabFile(key, path.parent.name, path.name, path, ts, cols["value"], bounds))
    if not files:
        raise NabError(f"{data}: no CSV files (expected {data}/<category>/<file>.csv)")
    return files


def resolve_reference(root: str | Path, detector: str | Path) -> Path:
    """A reference detector folder: a path as given, or a name under ``root/reference``."""
    path = Path(detector)
    if path.is_dir():
        return path
    candidate = Path(root) / "reference" / str(detector)
    if candidate.is_dir():
        return candidate
    raise NabError(f"no reference outputs at {path} or {candidate}")


def load_reference(corpus: list[NabFile], detector_dir: str | Path) -> list[np.ndarray]:
    """A published detector's scores for each corpus file (``<category>/<detector>_<file>``)."""
    detector_dir = Path(detector_dir)
    detector = detector_dir.name
    scores = []
    for f in corpus:
        path = detector_dir / f.category / f"{detector}_{f.name}"
        if not path.is_file():
            raise NabError(f"{detector_dir}: no output for {f.key} (expected {path})")
        cols = _read_csv(path, ("timestamp", "anomaly_score"))
        ts = _parse_timestamps(cols["timestamp"], str(path))
        if len(ts) != f.rows or not np.array_equal(ts, f.timestamps):
            raise NabError(f"{path}: its timestamps differ from {f.path}")
        try:
            s = np.array([float(x) for x in cols["anomaly_score"]], dtype=np.float64)
        except ValueError as err:
            raise NabError(f"{path}: invalid anomaly_score: {err}") from None
        if np.any(np.isnan(s)):
            raise NabError(f"{path}: anomaly_score holds NaN")
        scores.append(s)
    return scores
