"""Run NAB files through riverguard's engine and read the scores back from its output.

Each CSV becomes line protocol (``nab,category=<c>,file=<f> value=<v> <ns>``;
another measurement, field and more tags with a :class:`Shape`), goes through
:class:`riverguard.engine.Engine` exactly as in ``riverguard run``/``replay``
(:func:`riverguard.stream.process_chunks`), and the score and flag of every
row are read from the fields the engine added to the output lines
(``<field><score_suffix>`` and ``<field><flag_suffix>``; under a ``scope =
"metric"`` rule the metric-level ``[output] metric_score_field`` and
``metric_flag_field``).

>>> from riverguard.config import default_config
>>> from riverguard.engine import Engine
>>> out = run_lines(Engine(default_config()), b"nab,file=a value=1.5 1000\\n")
>>> out
b'nab,file=a value=1.5,value_anomaly_score=0.0,value_anomaly=false 1000\\n'
>>> read_output(out, "_anomaly_score", "_anomaly")
[OutputRow(series=b'nab,file=a', timestamp=1000, score=0.0, flag=False)]
>>> read_output(b"nab,file=a value=9.0,anomaly_score=0.75,anomaly=true 2000\\n", "_anomaly_score", "_anomaly",
...             metric=("anomaly_score", "anomaly"))
[OutputRow(series=b'nab,file=a', timestamp=2000, score=0.75, flag=True)]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..config import Config
from ..engine import Engine
from ..lineprotocol import FLOAT, ParseError, escape_key, escape_measurement, raw_fields
from ..log import Log
from ..stream import process_chunks
from .corpus import NabFile, parse_value
from .shape import FIELD, FILE_TAGS, MEASUREMENT, Shape

__all__ = [
    "FIELD", "MEASUREMENT", "FILE_TAGS", "FileRun", "OutputRow", "Shape", "file_series", "read_output", "run_file",
    "run_lines", "to_line_protocol",
]

_CHUNK = 1 << 16

_TRUE = {b"t", b"T", b"true", b"True", b"TRUE"}
_FALSE = {b"f", b"F", b"false", b"False", b"FALSE"}


def file_series(f: NabFile, shape: Shape = Shape()) -> bytes:
    """Measurement and tags of the file's metrics, escaped, the tags in key order as Telegraf writes them.

    >>> from pathlib import Path
    >>> f = NabFile("c/x.csv", "c", "x.csv", Path("x"), np.array([0]), ["1"])
    >>> print(file_series(f).decode(), file_series(f, Shape("cpu", "usage_idle", (("host", "web 1"),))).decode())
    nab,category=c,file=x.csv cpu,category=c,file=x.csv,host=web\\ 1
    """
    tags = sorted([*zip(FILE_TAGS, (f.category, f.name), strict=True), *shape.tags])
    return escape_measurement(shape.measurement) + b"".join(
        b"," + escape_key(key) + b"=" + _tag(value) for key, value in tags
    )


def _tag(name: str) -> bytes:
    r"""A folder or file name as a tag value: escaped as :func:`escape_key` does; a newline or carriage return,
    which no line can hold, written as ``\n`` or ``\r``; a name that is not UTF-8 (the surrogates of
    ``os.fsdecode``) as its bytes.

    >>> _tag("a b,c.csv"), _tag("new\nline.csv"), _tag("f\udcff.csv")
    (b'a\\ b\\,c.csv', b'new\\nline.csv', b'f\xff.csv')
    """
    return escape_key(name, "surrogateescape").replace(b"\n", b"\\n").replace(b"\r", b"\\r")


def to_line_protocol(f: NabFile, shape: Shape = Shape()) -> bytes:
    """The file as line protocol, one metric per row, nanosecond timestamps.

    >>> import numpy as np
    >>> from pathlib import Path
    >>> f = NabFile("c/x y.csv", "c", "x y.csv", Path("x"), np.array([0, 300_000_000_000]), ["1", "2.5"])
    >>> print(to_line_protocol(f).decode(), end="")
    nab,category=c,file=x\\ y.csv value=1.0 0
    nab,category=c,file=x\\ y.csv value=2.5 300000000000
    """
    head = file_series(f, shape) + b" " + escape_key(shape.field) + b"="
    lines = []
    for i, (text, ts) in enumerate(zip(f.values, f.timestamps.tolist(), strict=True)):
        try:
            value = parse_value(text)
        except ValueError as err:
            raise ValueError(f"{f.path}: row {i + 1}: {err}") from None
        lines.append(head + repr(value).encode() + b" " + str(ts).encode() + b"\n")
    return b"".join(lines)


def run_lines(engine: Engine, data: bytes) -> bytes:
    """``data`` through ``engine`` the way ``riverguard replay`` streams it."""
    out: list[bytes] = []
    chunks = (data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK))
    process_chunks(engine, chunks, out.append)
    return b"".join(out)


class OutputRow(NamedTuple):
    """What the output says about one metric: score/flag are None when absent.

    ``series`` is the metric's measurement and tag set exactly as written
    (escaped bytes), e.g. ``b"nab,category=c,file=f.csv"``.
    """

    series: bytes
    timestamp: int | None
    score: float | None
    flag: bool | None


def read_output(data: bytes, score_suffix: str, flag_suffix: str, field: str = FIELD,
                metric: tuple[str, str] | None = None) -> list[OutputRow]:
    """Each output metric's series, timestamp, and the score and flag added for ``field``.

    The values are read from the text of the added fields (``<field><score_suffix>``
    and ``<field><flag_suffix>``, keys escaped as the engine writes them); for a metric
    without them, from the metric-level fields named in ``metric`` (score, flag), which
    a ``scope = "metric"`` rule that takes ``field`` writes instead.
    """
    keys = [(escape_key(field + score_suffix), escape_key(field + flag_suffix))]
    if metric is not None:
        keys.append((escape_key(metric[0]), escape_key(metric[1])))
    rows = []
    for line in data.split(b"\n"):
        if not line or line.startswith(b"#"):
            continue
        try:
            series, fields, timestamp = raw_fields(line)
        except ParseError as err:
            raise ValueError(f"riverguard wrote a line that is not line protocol ({err}): {line[:120]!r}") from None
        score: float | None = None
        flag: bool | None = None
        score_key, flag_key = next(((s, f) for s, f in keys if s in fields), keys[0])
        text = fields.get(score_key)
        if text is not None:
            if not FLOAT.fullmatch(text):
                raise ValueError(f"score {text!r} is not a float in {line[:120]!r}")
            score = float(text)
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"score {text!r} out of [0, 1] in {line[:120]!r}")
        text = fields.get(flag_key)
        if text is not None:
            if text in _TRUE:
                flag = True
            elif text in _FALSE:
                flag = False
            else:
                raise ValueError(f"flag {text!r} is not a boolean in {line[:120]!r}")
        rows.append(OutputRow(series, timestamp, score, flag))
    return rows


class FileRun(NamedTuple):
    """One file's scores and flags as read from riverguard's output."""

    scores: np.ndarray
    flags: np.ndarray
    unscored: int  # rows whose output carried no score (no rule matched, or the detector failed)
    thresholds: frozenset[float]  # the thresholds of the rules that scored the file


def run_file(config: Config, f: NabFile, log: Log | None = None, shape: Shape = Shape()) -> FileRun:
    """Run one file, as metrics of ``shape``, through a fresh engine; scores and flags come from the output
    lines."""
    engine = Engine(config, log or Log("error"))
    out = run_lines(engine, to_line_protocol(f, shape))
    names = config.output
    rows = read_output(out, names.score_suffix, names.flag_suffix, shape.field,
                       metric=(names.metric_score_field, names.metric_flag_field))
    if len(rows) != f.rows:
        raise ValueError(f"{f.key}: riverguard wrote {len(rows)} metrics for {f.rows} rows")
    series = file_series(f, shape)
    scores = np.zeros(f.rows)
    flags = np.zeros(f.rows, dtype=bool)
    unscored = 0
    for i, (row, ts) in enumerate(zip(rows, f.timestamps.tolist(), strict=True)):
        if row.timestamp != ts or row.series != series:
            raise ValueError(f"{f.key}: output metric {i + 1} does not match input row {i + 1}")
        if row.score is None:
            unscored += 1
            continue
        scores[i] = row.score
        flags[i] = bool(row.flag)
    thresholds = frozenset(
        s.rule.effective_threshold for s in engine.series.values() if s.rule is not None and s.detector is not None
    )
    return FileRun(scores, flags, unscored, thresholds)


def run_corpus(
    config: Config,
    files: list[NabFile],
    log: Log | None = None,
    progress: Callable[[int], None] | None = None,
    shape: Shape = Shape(),
) -> list[FileRun]:
    """:func:`run_file` for each file; ``progress`` is called with each file's row count."""
    runs = []
    for f in files:
        runs.append(run_file(config, f, log, shape))
        if progress:
            progress(f.rows)
    return runs
