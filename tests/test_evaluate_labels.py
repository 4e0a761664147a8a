"""``riverguard evaluate --labels``: a user's own labelled CSV files, and the event-wise rules.

Every test writes real files and runs the real ``riverguard evaluate``.
The event-wise rules are checked with ``zscore`` on a constant series: a
value that differs from a series that has never varied scores 1.0, and the
constant values after it score low, so each flag lands exactly where the
file puts a spike.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import RIVERGUARD

MINUTE = 60
START = 1_700_000_000  # 2023-11-14 22:13:20 UTC
ROWS = 1000  # probation: the first 150 rows
ZSCORE = '[[rule]]\ndetector = "zscore"\nthreshold = 0.999\nwarmup = 10\n'


def evaluate(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RIVERGUARD, "evaluate", *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env, check=False
    )


def stamp(i: int, style: str = "space") -> str:
    t = datetime.fromtimestamp(START + MINUTE * i, UTC)
    if style == "T":
        return t.strftime("%Y-%m-%dT%H:%M:%S")
    if style == "Z":
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == "offset":  # the same instant, written in UTC+02:00
        return datetime.fromtimestamp(START + MINUTE * i + 7200).strftime("%Y-%m-%d %H:%M:%S") + "+02:00"
    return t.strftime("%Y-%m-%d %H:%M:%S")


def series(path: Path, *, spikes: dict[int, float] = {}, labels: set[int] = set(), gaps: set[int] = set(),
           extra: dict[int, list[str]] = {}, style: str = "space", rows: int = ROWS) -> Path:  # noqa: B006
    """A constant series of 10 with ``spikes``, ``labels`` (row numbers), ``gaps`` (empty values) and
    ``extra`` rows written before row i (``value,label`` pairs at row i's timestamp)."""
    lines = ["timestamp,value,label"]
    for i in range(rows):
        for more in extra.get(i, []):
            lines.append(f"{stamp(i, style)},{more}")
        value = "" if i in gaps else repr(spikes.get(i, 10.0))
        lines.append(f"{stamp(i, style)},{value},{int(i in labels)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def report(*files: Path, config: Path) -> dict:
    result = evaluate("--labels", *map(str, files), "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


@pytest.fixture()
def zscore(tmp_path: Path) -> Path:
    path = tmp_path / "zscore.toml"
    path.write_text(ZSCORE)
    return path


def per_file(data: dict) -> dict[str, dict]:
    return {Path(f["file"]).name: f["events"] for f in data["per_file"]}


# -- the event-wise rules ---------------------------------------------------------


def test_a_flag_inside_an_event_catches_it(tmp_path: Path, zscore: Path):
    f = series(tmp_path / "inside.csv", spikes={301: 50.0}, labels={300, 301, 302})
    ev = report(f, config=zscore)["events"]
    assert (ev["events"], ev["caught"], ev["false_alarms"]) == (1, 1, 0)
    assert ev["median_delay_s"] == 60.0  # from the event's first row to the flag
    assert ev["recall"] == ev["precision"] == ev["f1"] == 1.0


def test_a_flag_within_the_tolerance_after_an_event_catches_it_and_later_is_a_false_alarm(tmp_path: Path, zscore):
    # tolerance: 5 sample intervals (5 minutes here) after the event's last row
    f = series(tmp_path / "after.csv", spikes={306: 50.0, 607: 50.0}, labels={300, 301, 600, 601})
    ev = report(f, config=zscore)["events"]
    assert (ev["events"], ev["caught"], ev["false_alarms"]) == (2, 1, 1)
    assert ev["median_delay_s"] == 360.0
    assert ev["recall"] == 0.5 and ev["precision"] == 0.5 and ev["f1"] == 0.5


def test_a_long_run_of_flags_counts_once_per_tolerance_it_lasts(tmp_path: Path, zscore: Path):
    # an isolated flag: 1; eleven flags in a row lasting 10 minutes: 1 + 10 // 5 = 3
    run = {800 + k: float(2 ** (k + 6)) for k in range(11)}
    f = series(tmp_path / "run.csv", spikes={500: 50.0, **run})
    data = report(f, config=zscore)
    ev = data["events"]
    assert (ev["events"], ev["caught"], ev["false_alarms"]) == (0, 0, 4)
    assert ev["recall"] is None and ev["precision"] == 0.0 and ev["f1"] is None
    # one series, judged from row 150 to row 999: 849 minutes
    assert ev["series_days"] == round(849 / 1440, 3)
    assert ev["false_alarms_per_day"] == round(4 / (849 / 1440), 4)
    assert data["profiles"]["standard"]["configured"]["false_positives"] == 12  # NAB counts every flagged row


def test_probation_flags_and_events_are_not_judged(tmp_path: Path, zscore: Path):
    f = series(tmp_path / "probation.csv", spikes={100: 50.0, 120: 50.0}, labels={100, 101, 400})
    ev = report(f, config=zscore)["events"]
    assert (ev["events"], ev["caught"], ev["false_alarms"]) == (1, 0, 0)  # only the event at row 400 counts
    assert ev["recall"] == 0.0 and ev["median_delay_s"] is None


PROBATION_NOTE = ("the probation (as in NAB, the first min(0.15 × samples, 750) samples of each series, not judged) "
                  "holds {held}, not counted in the figures: {where}\n")


def test_events_and_flags_in_the_probation_are_told_and_counted_apart(tmp_path: Path, zscore: Path):
    # two labelled incidents, one in the first 150 rows; two flags there: the figures leave them out, and say so
    f = series(tmp_path / "probation.csv", spikes={100: 50.0, 120: 50.0}, labels={100, 101, 400})
    note = PROBATION_NOTE.format(held="1 of 2 labelled events and 2 flags",
                                 where=f"{f} (first 150 samples: 1 event, 2 flags)")
    for args in (("--json",), ()):
        result = evaluate("--labels", str(f), "--config", str(zscore), *args)
        assert result.returncode == 0, result.stderr
        assert result.stderr == "W! [riverguard] " + note
    data = json.loads(evaluate("--labels", str(f), "--config", str(zscore), "--json").stdout)
    ev = data["events"]
    assert (ev["events"], ev["probation_events"], ev["probation_flags"]) == (1, 1, 2)
    assert data["events"]["categories"][tmp_path.name]["probation_flags"] == 2
    mine = data["per_file"][0]["events"]
    assert (mine["probation_events"], mine["probation_flags"], mine["probation_samples"]) == (1, 2, 150)
    # flags alone there: told as information; nothing there: nothing told
    flags = series(tmp_path / "flags.csv", spikes={100: 50.0}, labels={400})
    result = evaluate("--labels", str(flags), "--config", str(zscore))
    assert result.stderr == "I! [riverguard] " + PROBATION_NOTE.format(
        held="1 flag", where=f"{flags} (first 150 samples: 1 flag)")
    quiet = series(tmp_path / "quiet.csv", spikes={400: 50.0}, labels={400})
    assert evaluate("--labels", str(quiet), "--config", str(zscore)).stderr == ""


def test_the_probation_line_names_a_few_files_those_with_events_first(tmp_path: Path, zscore: Path):
    names = [series(tmp_path / f"f{i}.csv", spikes={100: 50.0}) for i in range(4)]
    late = series(tmp_path / "g.csv", labels={50})
    result = evaluate("--labels", str(tmp_path), "--config", str(zscore))
    assert result.returncode == 0, result.stderr
    where = "; ".join([f"{late} (first 150 samples: 1 event)", *(f"{f} (first 150 samples: 1 flag)" for f in names[:2]),
                       "2 more files (--json: per_file events)"])
    assert result.stderr == "W! [riverguard] " + PROBATION_NOTE.format(
        held="1 of 1 labelled event and 4 flags", where=where)


def test_json_gives_each_event_its_times_and_whether_a_flag_caught_it(tmp_path: Path, zscore: Path):
    # caught 6 minutes in (within the tolerance), missed (the flag at 607 is past it), one in the probation
    f = series(tmp_path / "after.csv", spikes={306: 50.0, 607: 50.0}, labels={100, 300, 301, 600, 601})
    detail = report(f, config=zscore)["per_file"][0]["events"]["detail"]
    iso = {i: stamp(i, "T") + "Z" for i in (100, 300, 301, 306, 600, 601)}
    assert detail == [
        {"start": iso[100], "end": iso[100], "judged": False, "caught": None, "first_flag": None, "delay_s": None},
        {"start": iso[300], "end": iso[301], "judged": True, "caught": True, "first_flag": iso[306], "delay_s": 360.0},
        {"start": iso[600], "end": iso[601], "judged": True, "caught": False, "first_flag": None, "delay_s": None},
    ]


def test_missed_lists_the_events_missed_or_not_judged(tmp_path: Path, zscore: Path):
    f = series(tmp_path / "after.csv", spikes={306: 50.0, 607: 50.0}, labels={100, 300, 301, 600, 601})
    caught = series(tmp_path / "inside.csv", spikes={301: 50.0}, labels={300, 301, 302})
    plain = evaluate("--labels", str(f), str(caught), "--config", str(zscore))
    listed = evaluate("--labels", str(f), str(caught), "--config", str(zscore), "--missed")
    assert plain.returncode == listed.returncode == 0, listed.stderr
    assert "missed or not judged" not in plain.stdout
    tables, block = listed.stdout.split("\n\nevents missed or not judged (start .. end)\n")
    assert tables == plain.stdout.split("\ndone in")[0].rstrip("\n")
    assert block.split("\ndone in")[0] == (
        f"{f}: 1 of 3 events missed, 1 not judged\n"
        f"  not judged  {stamp(100, 'T')}Z .. {stamp(100, 'T')}Z  (ends in the probation, the first 150 samples)\n"
        f"  missed      {stamp(600, 'T')}Z .. {stamp(601, 'T')}Z\n"
    )
    none = evaluate("--labels", str(caught), "--config", str(zscore), "--missed")
    assert "\nevents missed or not judged (start .. end)\nnone\n" in none.stdout


def test_gaps_repeated_timestamps_and_the_corpus_figures(tmp_path: Path, zscore: Path):
    # rows 300-302 are gaps labelled as an incident; the flag just after catches it
    gap = series(tmp_path / "gap.csv", spikes={303: 50.0}, labels={300, 301, 302}, gaps={300, 301, 302},
                 # row 500: a spike, then 10 at the same time (kept: no flag); row 700: 10, then a spike (kept)
                 extra={500: ["1000.0,0"], 700: ["10.0,1"]}, style="Z")
    text = gap.read_text().replace(f"{stamp(700, 'Z')},10.0,0", f"{stamp(700, 'Z')},1000.0,0")
    gap.write_text(text)
    others = [
        series(tmp_path / "inside.csv", spikes={301: 50.0}, labels={300, 301, 302}),
        series(tmp_path / "after.csv", spikes={306: 50.0, 607: 50.0}, labels={300, 301, 600, 601}),
    ]
    result = evaluate("--labels", *map(str, (gap, *others)), "--config", str(zscore), "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    # said once, for that file: a column of dates without times comes down to one row a day
    assert result.stderr.count("W! ") == 1 and f"W! [riverguard] {gap}: 2 of the {ROWS + 2} rows read repeat an " \
        f"earlier row's timestamp: {ROWS} timestamps left (each keeps its last value and the union of its labels); " \
        "are the timestamps whole?\n" in result.stderr, result.stderr
    data = json.loads(result.stdout)
    files = per_file(data)
    assert data["per_file"][0]["rows"] == ROWS - 3  # three gaps; the two repeated timestamps are one sample each
    assert (files["gap.csv"]["events"], files["gap.csv"]["caught"], files["gap.csv"]["false_alarms"]) == (2, 2, 0)
    assert sorted([files["gap.csv"]["median_delay_s"]]) == [90.0]  # delays 180 s and 0 s
    ev = data["events"]
    assert (ev["events"], ev["caught"], ev["false_alarms"]) == (5, 4, 1)
    assert ev["recall"] == 0.8 and ev["precision"] == 0.8 and ev["f1"] == 0.8
    assert ev["median_delay_s"] == 120.0  # of 180, 0, 60, 360
    assert ev["tolerance_intervals"] == 5 and ev["threshold"] == 0.999
    assert set(ev["categories"]) == {tmp_path.name}
    # the tables say the same
    table = evaluate("--labels", str(gap), *map(str, others), "--config", str(zscore))
    assert table.returncode == 0, table.stderr
    corpus_line = [line for line in table.stdout.splitlines() if line.startswith("corpus")][-1]
    assert corpus_line.split()[1:7] == ["5", "4", "0.800", "1", "0.800", "0.800"]
    assert "within 5 sample intervals" in table.stdout


@pytest.mark.parametrize("style", ["T", "Z", "offset"])
def test_timestamp_styles_give_the_same_figures(tmp_path: Path, zscore: Path, style: str):
    kwargs = {"spikes": {306: 50.0, 607: 50.0, 800: 30.0}, "labels": {300, 301, 600, 601}}
    plain = report(series(tmp_path / "plain.csv", **kwargs), config=zscore)
    other = report(series(tmp_path / "other.csv", style=style, **kwargs), config=zscore)
    for data in (plain, other):
        data.pop("labels"), data.pop("seconds"), data["per_file"][0].pop("file")
    assert plain == other


def test_the_default_detector_on_a_labelled_file(tmp_path: Path):
    # no config: the default detector, its configured threshold, NAB windows built around the events
    import random

    rng = random.Random(4)
    spikes = {i: 10.0 + rng.gauss(0.0, 1.0) for i in range(3000)}
    spikes.update({2000 + k: 40.0 for k in range(3)})
    f = series(tmp_path / "mine.csv", spikes=spikes, labels={2000, 2001, 2002}, rows=3000)
    result = evaluate("--labels", str(f), "--json", "--profile", "standard")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["labels"] == [str(f)] and data["per_file"][0]["windows"] == 1
    assert data["events"]["caught"] == 1 and data["profiles"]["standard"]["configured"]["hits"] == 1


def test_a_metric_scope_rule_is_judged_by_its_metric_level_score(tmp_path: Path):
    """A scope = "metric" rule writes the metric-level anomaly_score and anomaly (here with the names
    [output] gives them), not value_anomaly_score: evaluate read only the latter, said "W! 1000 of 1000 rows
    carried no score" and judged a detector that never fires. Now it reads the metric-level fields."""
    import random

    rng = random.Random(4)
    spikes = {i: 10.0 + rng.gauss(0.0, 1.0) for i in range(ROWS)}
    spikes.update({700 + k: 60.0 for k in range(3)})
    f = series(tmp_path / "metric.csv", spikes=spikes, labels={700, 701, 702})
    config = tmp_path / "metric.toml"
    config.write_text('[output]\nmetric_score_field = "whole score"\nmetric_flag_field = "whole"\n'
                      '[[rule]]\nname = "m"\nscope = "metric"\ndetector = "hst"\n')
    result = evaluate("--labels", str(f), "--config", str(config), "--json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    data = json.loads(result.stdout)
    assert data["unscored_rows"] == 0 and data["configured_thresholds"] == [0.97]
    swept = data["profiles"]["standard"]["swept"]
    assert swept["threshold"] is not None and swept["candidates"] > 100  # the scores, not 0 for every row
    assert data["events"]["caught"] == 1


def test_a_file_in_the_working_folder_is_in_that_folders_category(tmp_path: Path, zscore: Path):
    folder = tmp_path / "disk-latency"
    folder.mkdir()
    f = series(folder / "host1.csv", spikes={500: 50.0}, labels={500})
    result = evaluate("--config", str(zscore), "--labels", f.name, "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert [row["category"] for row in json.loads(result.stdout)["per_file"]] == ["disk-latency"]
    table = evaluate("--config", str(zscore), "--labels", f.name, cwd=folder).stdout
    assert re.search(r"^disk-latency ", table, re.M) and not re.search(r"^\. ", table, re.M), table


def test_file_and_folder_names_that_line_protocol_cannot_carry_as_they_are(tmp_path: Path, zscore: Path):
    """A file's folder and name become the tags of its metrics. A name that is not UTF-8 stopped evaluate
    with a traceback (UnicodeEncodeError, exit 1), and one holding a newline cut each metric in two (an E!
    line per row, then a traceback); both are scored now, as any other name."""
    folders = {"not-utf8": tmp_path / os.fsdecode(b"disk-\xff"), "newline": tmp_path / "plain"}
    names = {"not-utf8": os.fsdecode(b"host\xfe.csv"), "newline": "host\n1.csv"}
    for case, folder in folders.items():
        folder.mkdir()
        f = series(folder / names[case], spikes={500: 50.0}, labels={500})
        result = evaluate("--config", str(zscore), "--labels", str(f), "--json")
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("E! ") == 0, result.stderr
        data = json.loads(result.stdout)
        assert [row["category"] for row in data["per_file"]] == [folder.name]
        assert data["events"]["caught"] == 1 and data["per_file"][0]["windows"] == 1, data


# -- bad rows: file:line: reason, exit 2, never a traceback ------------------------

HEADER = "timestamp,value,label\n"
GOOD = "2024-01-01 00:00:00,1.5,0\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (HEADER + GOOD + "2024-01-01 00:01:00,abc,0\n", ":3: value 'abc' is not a number"),
        (HEADER + GOOD + "2024-01-01 00:01:00,nan,0\n", ":3: value 'nan' is not finite"),
        (HEADER + GOOD + "2024-01-01 00:01:00,inf,0\n", ":3: value 'inf' is not finite"),
        (HEADER + GOOD + "yesterday,1,0\n", ":3: timestamp 'yesterday' is not ISO 8601"),
        (HEADER + GOOD + "1767225900,1,0\n", ":3: timestamp '1767225900' is not ISO 8601 (e.g. 2024-05-01 12:00:00); "
         "epoch numbers are refused: export with rfc3339 timestamps or convert them (README, Detection quality)"),
        (HEADER + GOOD + "2024-13-01 00:00:00,1,0\n", ":3: timestamp '2024-13-01 00:00:00' is not ISO 8601"),
        (HEADER + GOOD + ",1,0\n", ":3: empty timestamp"),
        # beyond int64 nanoseconds: a traceback (OverflowError, exit 1) before
        (HEADER + GOOD + "9999-01-01 00:00:00,1,0\n", ":3: timestamp '9999-01-01 00:00:00' is outside the nanosecond"),
        (HEADER + "1600-01-01T00:00:00+02:00,1,0\n" + GOOD, ":2: timestamp '1600-01-01T00:00:00+02:00' is outside"),
        (HEADER + GOOD + "2024-01-01 00:01:00,1,2\n", ":3: label '2' is not 0 or 1"),
        (HEADER + GOOD + "2024-01-01 00:01:00,1,\n", ":3: label '' is not 0 or 1"),
        (HEADER + GOOD + "\n2024-01-01 00:01:00,1\n", ":4: expected 3 columns, got 2"),
        ("timestamp,value\n" + GOOD, ":1: missing column(s) label in the header"),
        ("", ": empty file"),
        (HEADER, ": no rows after the header"),
        (HEADER + "2024-01-01 00:00:00,,0\n", ": no values (every row is a gap)"),
        (HEADER + GOOD + '2024-01-01 00:01:00,"1\n', ":3: expected 3 columns, got 2"),  # an unclosed quote
        (HEADER + GOOD + "2024-01-01 00:01:00,1\0,0\n", ":3: value '1\\x00' is not a number"),
    ],
)
def test_a_bad_row_says_file_and_line(tmp_path: Path, content: str, message: str):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = evaluate("--labels", str(path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert result.stderr == f"E! [riverguard] {path}{message}" + result.stderr.split(message, 1)[1]
    assert result.stderr.count("\n") == 1


def test_binary_missing_and_folder_inputs(tmp_path: Path):
    binary = tmp_path / "bin.csv"
    binary.write_bytes(HEADER.encode() + GOOD.encode() + b"2024-01-01 00:01:00,\xff\xfe,0\n")
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "notes.txt").write_text("not a csv\n")
    (tmp_path / "none" / "sub.csv").mkdir()  # a folder, not a CSV file
    cases = {
        str(binary): f"{binary}:3: not UTF-8 text",
        str(tmp_path / "missing.csv"): f"{tmp_path / 'missing.csv'}: no such file",
        str(tmp_path): f"{binary}:3: not UTF-8 text",  # a folder: its CSV files
        str(tmp_path / "none"): f"{tmp_path / 'none'}: a folder with no *.csv file in it: give the CSV files, or a"
        " folder holding them",
    }
    for arg, message in cases.items():
        result = evaluate("--labels", arg)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr == f"E! [riverguard] {message}\n"


def test_a_bad_row_in_a_nab_layout_folder_and_a_gap_there(tmp_path: Path):
    root = tmp_path / "corpus"
    (root / "data" / "cat").mkdir(parents=True)
    rows = [f"{stamp(i)},{10 + i % 7}" for i in range(400)]
    rows[200] = f"{stamp(200)},"  # a gap: no sample
    (root / "data" / "cat" / "a.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    (root / "windows.json").write_text(json.dumps({"cat/a.csv": [[stamp(300), stamp(310)]]}))
    result = evaluate("--nab", str(root), "--json", "--profile", "standard")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["rows"] == 399 and data["events"]["events"] == 1 and data["per_file"][0]["windows"] == 1
    rows[250] = f"{stamp(250)},12a"
    (root / "data" / "cat" / "a.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    result = evaluate("--nab", str(root))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == f"E! [riverguard] {root / 'data' / 'cat' / 'a.csv'}:252: value '12a' is not a number\n"


def test_a_time_beyond_nanoseconds_in_a_nab_layout_folder_is_a_bad_row(tmp_path: Path):
    """numpy read 9999-01-01 as nanoseconds without a word, wrapped around to 1815: the file was scored with
    its rows out of order in time. It is a bad row, as in --labels."""
    root = tmp_path / "corpus"
    (root / "data" / "cat").mkdir(parents=True)
    rows = [f"{stamp(i)},{10 + i % 7}" for i in range(400)]
    rows[250] = "9999-01-01 00:00:00,12"
    (root / "data" / "cat" / "a.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    (root / "windows.json").write_text(json.dumps({"cat/a.csv": [[stamp(300), stamp(310)]]}))
    result = evaluate("--nab", str(root))
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stdout == ""
    assert result.stderr == (
        f"E! [riverguard] {root / 'data' / 'cat' / 'a.csv'}:252: timestamp '9999-01-01 00:00:00' is outside the "
        "nanosecond range of line protocol (1677-09-21 00:12:43 to 2262-04-11 23:47:16 UTC)\n"
    )
    rows[250] = f"{stamp(250)},12"  # the same file within the range: scored
    (root / "data" / "cat" / "a.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    assert evaluate("--nab", str(root)).returncode == 0


def test_labels_and_nab_are_exclusive(tmp_path: Path):
    result = evaluate("--labels", "x.csv", "--nab", str(tmp_path))
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


# -- NAB layouts and where the corpus is found ------------------------------------


def test_a_standard_nab_checkout(nab_root: Path, tmp_path: Path):
    """labels/combined_windows.json and results/<detector>/, as in github.com/numenta/NAB."""
    keys = ("realAdExchange/exchange-2_cpc_results.csv", "artificialWithAnomaly/art_daily_jumpsup.csv")
    windows = json.loads((nab_root / "windows.json").read_text())
    checkout = tmp_path / "NAB"
    for key in keys:
        category, name = key.split("/")
        (checkout / "data" / category).mkdir(parents=True, exist_ok=True)
        shutil.copy(nab_root / "data" / key, checkout / "data" / key)
        (checkout / "results" / "numenta" / category).mkdir(parents=True, exist_ok=True)
        shutil.copy(nab_root / "reference" / "numenta" / category / f"numenta_{name}",
                    checkout / "results" / "numenta" / category)
    (checkout / "data" / "README.md").write_text("not a data file\n")
    (checkout / "labels").mkdir()
    (checkout / "labels" / "combined_windows.json").write_text(json.dumps({k: windows[k] for k in keys}))
    result = evaluate("--nab", str(checkout), "--json", "--profile", "standard")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["files"] == 2 and data["profiles"]["standard"]["swept"]["windows"] == 2
    assert [f["file"] for f in data["per_file"]] == sorted(keys)
    ref = evaluate("--nab", str(checkout), "--reference", "numenta", "--json", "--profile", "standard")
    assert ref.returncode == 0, ref.stderr
    assert json.loads(ref.stdout)["events"]["events"] == 2


def test_the_cloud_monitoring_corpus(cmd_root: Path):
    result = evaluate("--nab", str(cmd_root), "--json", "--profile", "standard")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["files"], data["rows"], data["profiles"]["standard"]["swept"]["windows"]) == (60, 225162, 214)
    assert data["events"]["events"] == 214 and len(data["per_file"]) == 60
    assert sum(f["events"]["false_alarms"] for f in data["per_file"]) == data["events"]["false_alarms"]
    assert sum(f["nab"]["standard"]["configured"]["hits"] for f in data["per_file"]) == (
        data["profiles"]["standard"]["configured"]["hits"]
    )


def test_the_default_corpus_is_found_from_the_working_folder(nab_root: Path, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "RIVERGUARD_NAB"}
    work = tmp_path / "project" / "sub"
    work.mkdir(parents=True)
    shared = tmp_path / "project" / "shared" / "nab"
    (shared / "data" / "cat").mkdir(parents=True)
    (shared / "data" / "cat" / "a.csv").write_text(
        "timestamp,value\n" + "".join(f"{stamp(i)},{i % 5}\n" for i in range(300))
    )
    (shared / "windows.json").write_text(json.dumps({"cat/a.csv": []}))
    result = evaluate("--json", "--profile", "standard", cwd=work, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["nab"] == str(shared)


def test_the_default_corpus_path_is_never_inside_an_installed_package(tmp_path: Path):
    """An installed copy (site-packages in a virtual environment) looks beside the working folder,
    not at <venv>/lib/shared/nab, where the path relative to the module used to point."""
    import riverguard

    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    shutil.copytree(Path(riverguard.__file__).parent, site / "riverguard",
                    ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    (venv / "lib" / "shared" / "nab" / "data").mkdir(parents=True)  # where the old lookup went
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RIVERGUARD_NAB"}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run(
        [sys.executable, "-c", "from riverguard.evaluate.corpus import default_nab_path; print(default_nab_path())"],
        capture_output=True, text=True, cwd=work, env=env, check=True,
    ).stdout.strip()
    assert not Path(out).is_relative_to(venv), out
    assert out == str(tmp_path / "shared" / "nab")  # nothing found: ../shared/nab, named in the error message


def test_profile_takes_several_names_as_the_synopsis_shows(tmp_path: Path, zscore: Path):
    """The README's synopsis is ``[--profile NAME ...]``: ``--profile standard reward_low_FP`` was
    ``unrecognized arguments: reward_low_FP`` (exit 2); only ``--profile A --profile B`` worked."""
    f = series(tmp_path / "host1.csv", spikes={500: 50.0}, labels={500})
    several = evaluate("--config", str(zscore), "--labels", str(f), "--json", "--profile", "standard", "reward_low_FP")
    assert several.returncode == 0, several.stderr
    assert list(json.loads(several.stdout)["profiles"]) == ["standard", "reward_low_FP_rate"]
    repeated = evaluate("--config", str(zscore), "--labels", str(f), "--json", "--profile", "standard",
                        "--profile", "reward_low_FP_rate")
    assert repeated.returncode == 0, repeated.stderr
    assert json.loads(repeated.stdout)["profiles"] == json.loads(several.stdout)["profiles"]
    bad = evaluate("--labels", str(f), "--profile", "standard", "nosuch")
    assert bad.returncode == 2 and "nosuch" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_an_unknown_detector_is_told_before_any_file_is_looked_at(tmp_path: Path):
    """``evaluate --detector nope`` first said what it found wrong with the NAB lookup, or read the --labels
    files and printed their warnings, and only then ``unknown detector "nope"``. The name is checked first."""
    repeated = series(tmp_path / "rep.csv", extra={500: ["10.0,0"]})  # a repeated timestamp: a W! line when read
    env = {k: v for k, v in os.environ.items() if k != "RIVERGUARD_NAB"}
    for args in (["--labels", str(repeated)], ["--labels", str(tmp_path / "missing.csv")], ["--nab", str(tmp_path)], []):
        result = evaluate(*args, "--detector", "nope", cwd=tmp_path, env=env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith('E! [riverguard] unknown detector "nope" (known: ') \
            and result.stderr.count("\n") == 1, (args, result.stderr)


def test_the_rows_read_and_the_samples_kept_are_told_apart(tmp_path: Path, zscore: Path):
    """``(1 file, 595 rows)`` stood next to ``W! ... 1 of 601 rows repeat ...``: the title counted samples and
    called them rows. It now gives the rows read, the samples kept and why they differ."""
    f = series(tmp_path / "mine.csv", gaps={300, 301, 302, 303, 304}, extra={500: ["10.0,0"]}, rows=600)
    result = evaluate("--labels", str(f), "--config", str(zscore))
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"W! [riverguard] {f}: 1 of the 601 rows read repeats an earlier row's timestamp: 600 timestamps left "
        "(each keeps its last value and the union of its labels); are the timestamps whole?\n"
    )
    assert result.stdout.splitlines()[0] == (
        f"labelled files: riverguard, config {zscore} (1 file, 601 rows read, 595 samples kept: 1 row with a "
        "repeated timestamp merged, 5 rows without a value)"
    ), result.stdout


def _unscored_told(tmp_path: Path, names: tuple[str, ...], rule: str, *args: str,
                   code: int = 0) -> tuple[str, Path]:
    """What evaluate says on stderr for a folder ``disk`` of labelled files ``names`` and a config of one
    zscore rule, with lines ``rule`` (``measurement = ...``) and options ``args``; and the config. It exits
    with ``code``, and prints nothing on stdout when that is not 0."""
    folder = tmp_path / "disk"
    folder.mkdir(exist_ok=True)
    for name in names:
        series(folder / name, spikes={500: 50.0}, labels={500})
    config = tmp_path / "rule.toml"
    config.write_text(f'[[rule]]\nname = "r"\n{rule}detector = "zscore"\n')
    result = evaluate("--labels", str(folder), "--config", str(config), "--json", *args)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and (code == 0 or result.stdout == ""), result.stdout
    return result.stderr, config


def test_a_config_that_scores_no_sample_is_an_error_that_says_what_a_rule_must_match(tmp_path: Path):
    """A config written for the user's own metrics (`measurement = "cpu"`) scores none of evaluate's: it printed a
    W! line and tables of windows never hit at a threshold swept to "never", and exited 0. Figures of a run
    that scored nothing mean nothing: it is a config that does not fit, E! and exit 2, saying what the
    metrics are and how to make the rules see them."""
    told, config = _unscored_told(tmp_path, ("host 1.csv",), 'measurement = "cpu"\nfields = ["usage_*"]\n', code=2)
    assert told == (
        f"E! [riverguard] none of the {ROWS} samples carried a score (no rule of {config} matched, or the detector"
        ' failed): evaluate scores each row as a metric of measurement "nab", tags category (the folder) and file,'
        ' and one field "value" (nab,category=disk,file=host\\ 1.csv value=...): give --measurement, --field (and'
        ' --tag KEY=VALUE) as the series your rules select has them, or a rule for measurement "nab" and field'
        ' "value"\n'
    )
    # Written so, the rule scores every sample.
    config.write_text('[[rule]]\nname = "nab"\nmeasurement = "nab"\nfields = ["value"]\ndetector = "zscore"\n')
    assert report(tmp_path / "disk" / "host 1.csv", config=config)["unscored_rows"] == 0


PRODUCTION = 'measurement = "cpu"\nfields = ["usage_*"]\ntags = { host = "web1" }\n'


def test_measurement_field_and_tag_feed_the_files_as_the_series_the_production_rules_select(tmp_path: Path):
    """To tune the rule of a production config (`measurement = "cpu"`, a host's usage fields), the rule had to
    be rewritten for measurement "nab" and field "value". --measurement, --field and --tag feed each file as
    that series (the file's category and file tags kept): the production rule scores every sample, with the
    figures of the same rule rewritten for evaluate's own metrics."""
    shaped = ("--measurement", "cpu", "--field", "usage_idle", "--tag", "host=web1")
    told, config = _unscored_told(tmp_path, ("a.csv", "b.csv"), PRODUCTION, *shaped)
    assert told == ""
    result = evaluate("--labels", str(tmp_path / "disk"), "--config", str(config), "--json", *shaped)
    production = json.loads(result.stdout)
    rewritten = tmp_path / "nab.toml"
    rewritten.write_text('[[rule]]\nname = "r"\nmeasurement = "nab"\nfields = ["value"]\ndetector = "zscore"\n')
    own = report(tmp_path / "disk", config=rewritten)
    assert production["unscored_rows"] == 0 and production["configured_thresholds"] == [0.999]
    for key in ("profiles", "events", "per_file", "labels"):
        assert production[key] == own[key], key
    assert production["events"]["caught"] == 2


@pytest.mark.parametrize(("option", "message"), [
    (("--tag", "host"), "argument --tag: 'host' is not KEY=VALUE"),
    (("--tag", "host="), "argument --tag: give a name of UTF-8 text, not empty, without control characters"),
    (("--tag", "file=a.csv"), "argument --tag: file is the tag evaluate gives each file itself: give another key"),
    (("--measurement", ""), "argument --measurement: give a name of UTF-8 text, not empty, without control "
     "characters"),
    (("--field", "a\nb"), "argument --field: give a name of UTF-8 text, not empty, without control characters"),
])
def test_a_bad_measurement_field_or_tag_is_a_usage_error(tmp_path: Path, option: tuple[str, str], message: str):
    result = evaluate("--labels", str(series(tmp_path / "a.csv")), *option)
    assert (result.returncode, result.stdout) == (2, "") and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"E! [riverguard] riverguard evaluate: {message} (see "), result.stderr


def test_measurement_and_field_feed_a_nab_layout_folder_too_and_not_published_outputs(tmp_path: Path):
    root = tmp_path / "corpus"
    (root / "data" / "cat").mkdir(parents=True)
    rows = [f"{stamp(i)},{50.0 if i == 300 else 10.0}" for i in range(400)]
    (root / "data" / "cat" / "a.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    (root / "windows.json").write_text(json.dumps({"cat/a.csv": [[stamp(295), stamp(305)]]}))
    config = tmp_path / "cpu.toml"
    config.write_text('[[rule]]\nmeasurement = "cpu"\nfields = ["usage_idle"]\ndetector = "zscore"\nwarmup = 10\n')
    result = evaluate("--nab", str(root), "--config", str(config), "--json", "--measurement", "cpu", "--field",
                      "usage_idle")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    data = json.loads(result.stdout)
    assert data["unscored_rows"] == 0 and data["events"]["caught"] == 1
    result = evaluate("--nab", str(root), "--config", str(config))
    assert result.returncode == 2 and result.stderr.startswith("E! [riverguard] none of the 400 samples"), result.stderr
    (root / "reference" / "x").mkdir(parents=True)
    result = evaluate("--nab", str(root), "--reference", "x", "--tag", "host=a")
    assert (result.returncode, result.stdout) == (2, "") and result.stderr == (
        "E! [riverguard] --reference scores published outputs of a NAB-layout folder; it cannot be combined with"
        " --tag\n"
    )


def test_a_config_that_misses_the_shape_given_is_told_with_that_shape(tmp_path: Path):
    told, config = _unscored_told(tmp_path, ("a.csv",), PRODUCTION, "--measurement", "cpu", "--field",
                                  "usage_idle", "--tag", "host=db1", "--tag", "dc=eu", code=2)
    assert told == (
        f"E! [riverguard] none of the {ROWS} samples carried a score (no rule of {config} matched, or the detector"
        ' failed): evaluate scores each row as a metric of measurement "cpu", tags category (the folder), dc, file'
        ' and host, and one field "usage_idle" (cpu,category=disk,dc=eu,file=a.csv,host=db1 usage_idle=...): give'
        ' --measurement, --field (and --tag KEY=VALUE) as the series your rules select has them, or a rule for'
        ' measurement "cpu" and field "usage_idle"\n'
    )


def test_samples_left_unscored_while_others_were_scored_get_no_hint_on_what_a_rule_must_match(tmp_path: Path):
    """The hint on what a rule must match was added to every count of unscored samples, also where the rules
    did match evaluate's metrics (some scored, or a detector failed): it is for when none was scored, and then
    it is an error; a partial miss stays a W! line."""
    told, _ = _unscored_told(tmp_path, ("a.csv", "b.csv"), 'measurement = "nab"\ntags = { file = "a.csv" }\n')
    assert told == (
        f"W! [riverguard] {ROWS} of the {2 * ROWS} samples carried no score (no rule matched, or the detector"
        " failed)\n"
    )


def test_a_folder_is_every_csv_file_in_it_in_sorted_order(tmp_path: Path, zscore: Path):
    """`evaluate --labels FOLDER` was refused (`is a folder, not a CSV file`): it takes every *.csv in the
    folder, sorted by name, as if they were given one by one (not its subfolders, nor other files)."""
    folder = tmp_path / "disk-latency"
    folder.mkdir()
    for name, at in (("host2.csv", 400), ("host1.csv", 500), ("host10.csv", 600)):
        series(folder / name, spikes={at: 50.0}, labels={at})
    (folder / "README.txt").write_text("not a series\n")
    (folder / "old").mkdir()
    series(folder / "old" / "host0.csv")
    named = [str(folder / name) for name in ("host1.csv", "host10.csv", "host2.csv")]
    whole = evaluate("--labels", str(folder), "--config", str(zscore), "--json")
    one_by_one = evaluate("--labels", *named, "--config", str(zscore), "--json")
    assert whole.returncode == 0 and whole.stderr == "", whole.stderr
    data = json.loads(whole.stdout)
    assert data["labels"] == named and data["files"] == 3
    assert [row["category"] for row in data["per_file"]] == ["disk-latency"] * 3
    assert data["events"]["caught"] == 3
    data.pop("seconds")
    assert data == {k: v for k, v in json.loads(one_by_one.stdout).items() if k != "seconds"}


def test_a_folder_takes_a_csv_file_whatever_the_case_of_its_suffix(tmp_path: Path, zscore: Path):
    """`--labels FOLDER` took `a.csv` and not `B.CSV` (a file exported on Windows): the suffix is matched
    whatever its case."""
    folder = tmp_path / "disk"
    folder.mkdir()
    series(folder / "a.csv", spikes={400: 50.0}, labels={400})
    series(folder / "B.CSV", spikes={500: 50.0}, labels={500})
    data = report(folder, config=zscore)
    assert data["labels"] == [str(folder / "B.CSV"), str(folder / "a.csv")] and data["files"] == 2


def test_a_folder_in_nab_layout_given_to_labels_is_pointed_to_nab(tmp_path: Path):
    """A folder whose CSV files are in its subfolders (NAB's layout) was told only "a folder with no *.csv
    file in it"; it is now told that this is --nab's, with the folder to give it where there is one."""
    (tmp_path / "corpus" / "data" / "disk").mkdir(parents=True)
    series(tmp_path / "corpus" / "data" / "disk" / "host1.csv")
    (tmp_path / "other" / "disk").mkdir(parents=True)
    series(tmp_path / "other" / "disk" / "host1.csv")
    no_csv = "a folder with no *.csv file in it: its subfolders hold some, as in NAB's layout"
    corpus = tmp_path / "corpus"
    windows = f"once its windows are in {corpus / 'windows.json'}"
    for given, message in (
        (corpus, f"{corpus}: {no_csv}: give --labels {corpus}/data/*/ for the files in its subfolders, or --nab "
                 f"{corpus} {windows}"),
        (corpus / "data", f"{corpus / 'data'}: {no_csv}: give --labels {corpus}/data/*/ for the files in its "
                          f"subfolders, or --nab {corpus} {windows}"),
        (tmp_path / "other", f"{tmp_path / 'other'}: {no_csv}: give --labels {tmp_path / 'other'}/*/ for the files "
                             "in its subfolders, or put them in data/<category>/*.csv under the folder given to --nab"),
    ):
        result = evaluate("--labels", str(given))
        assert (result.returncode, result.stdout, result.stderr) == (2, "", f"E! [riverguard] {message}\n")
    assert evaluate("--labels", str(corpus / "data" / "disk")).returncode == 0  # (the hint's glob, expanded)
    (corpus / "windows.json").write_text(json.dumps({"disk/host1.csv": []}))  # --nab now takes it: said plainly
    for given in (corpus, corpus / "data"):
        result = evaluate("--labels", str(given))
        assert result.stderr == f"E! [riverguard] {given}: {no_csv}: give --nab {corpus}\n"
        assert evaluate("--nab", str(corpus)).returncode == 0


def test_a_nab_layout_takes_csv_files_whatever_the_case_of_their_suffix(tmp_path: Path):
    """`--labels` takes `B.CSV` and pointed a NAB layout holding one to `--nab`, which then said "no CSV
    files": both read the suffix whatever its case."""
    root = tmp_path / "corpus"
    (root / "data" / "disk").mkdir(parents=True)
    rows = [f"{stamp(i)},{10 + i % 7}" for i in range(400)]
    (root / "data" / "disk" / "B.CSV").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    (root / "data" / "disk" / "a.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    (root / "windows.json").write_text(json.dumps({"disk/B.CSV": [[stamp(300), stamp(310)]], "disk/a.csv": []}))
    result = evaluate("--nab", str(root), "--json")
    assert result.returncode == 0, result.stderr
    assert [f["file"] for f in json.loads(result.stdout)["per_file"]] == ["disk/B.CSV", "disk/a.csv"]


def test_the_tables_say_why_nab_fp_and_event_wise_false_alarms_differ(tmp_path: Path, zscore: Path):
    """A run printed `FP 3` in the profile tables and `false alarms 1` event-wise without a word on why: a line
    under the event-wise header now says how each counts (runs of flags; NAB: flagged samples)."""
    f = series(tmp_path / "a.csv", spikes={500: 50.0, 800: 50.0, 801: 50.0, 802: 50.0}, labels={500})
    result = evaluate("--labels", str(f), "--config", str(zscore), "--profile", "standard")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"corpus +[0-9.]+ +1/1 +3 .*", lines[6]), lines[6]  # the configured threshold's FP
    at = lines.index("event-wise (configured threshold 0.999; caught: a flag inside the event or within 5 sample "
                     "intervals after it)")
    assert lines[at + 1] == (
        "(false alarms: runs of flags outside events and tolerance, one per run and per further 5 intervals it lasts;"
        " NAB's FP: flagged samples outside its wider windows)"
    )
    assert re.fullmatch(r"corpus +1 +1 +1\.000 +1 .*", lines[at + 4]), lines[at + 4]
