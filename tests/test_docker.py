"""The Docker stack and the Telegraf configs, checked without a Docker engine."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="pyyaml is in the test extras: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
RIVERGUARD = str(Path(sys.executable).with_name("riverguard"))
TELEGRAF_CONFIGS = sorted(DOCKER.glob("*.conf")) + sorted((ROOT / "telegraf.d").glob("*.conf"))
EXEC_COMMAND = ["/opt/riverguard/bin/riverguard", "run", "--config", "/etc/riverguard/riverguard.toml"]

# Debian release of the official telegraf image -> its python3.
DEBIAN_PYTHON = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yml").read_text(encoding="utf-8"))


def _dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text(encoding="utf-8")


def _riverguard_config() -> dict:
    return tomllib.loads((DOCKER / "riverguard.toml").read_text(encoding="utf-8"))


def test_compose_parses_and_references_existing_paths() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"influxdb", "telegraf"} <= set(services)
    named = set(compose["volumes"])
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert context.is_dir(), name
            assert (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            assert target.startswith("/"), volume
            if source.startswith((".", "/")):
                assert (DOCKER / source).resolve().exists(), volume
            else:
                assert source in named, f"{name}: volume {source!r} is not declared"
        for dependency in service.get("depends_on", {}):
            assert dependency in services
    # riverguard's state lives on a named volume, mounted where its config says.
    telegraf = services["telegraf"]
    state_dir = Path(_riverguard_config()["state"]["path"]).parent
    assert f"riverguard-state:{state_dir}" in telegraf["volumes"]
    assert "./riverguard.toml:/etc/riverguard/riverguard.toml:ro" in telegraf["volumes"]


def test_influxdb2_is_initialised_from_the_environment() -> None:
    services = _compose()["services"]
    env = services["influxdb"]["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    for key in ("ORG", "BUCKET", "ADMIN_TOKEN", "USERNAME", "PASSWORD"):
        assert env[f"DOCKER_INFLUXDB_INIT_{key}"], key
    assert services["influxdb"]["image"].startswith("influxdb:2")
    # Telegraf writes with the same org, bucket and token the setup created.
    tenv = services["telegraf"]["environment"]
    assert tenv["INFLUX_ORG"] == env["DOCKER_INFLUXDB_INIT_ORG"]
    assert tenv["INFLUX_BUCKET"] == env["DOCKER_INFLUXDB_INIT_BUCKET"]
    assert tenv["INFLUX_TOKEN"] == env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]


@pytest.mark.parametrize("path", TELEGRAF_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_telegraf_configs_parse_as_toml(path: Path) -> None:
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    execd = doc.get("processors", {}).get("execd", [])
    assert len(execd) == 1
    block = execd[0]
    assert block["command"] == EXEC_COMMAND
    assert block["environment"] == ["PYTHONUNBUFFERED=1"]
    assert block["restart_delay"] == "10s"


def test_telegraf_configs_exist() -> None:
    names = {str(p.relative_to(ROOT)) for p in TELEGRAF_CONFIGS}
    assert {"docker/telegraf.conf", "telegraf.d/riverguard.conf"} <= names


def test_docker_telegraf_conf_has_the_stack() -> None:
    doc = tomllib.loads((DOCKER / "telegraf.conf").read_text(encoding="utf-8"))
    assert set(doc["inputs"]) == {"cpu", "mem", "disk", "diskio", "net", "system"}
    assert doc["inputs"]["cpu"][0]["percpu"] and doc["inputs"]["cpu"][0]["totalcpu"]
    assert list(doc["outputs"]) == ["influxdb_v2"]
    assert doc["agent"]["skip_processors_after_aggregators"] is True


def test_aggregators_note_in_telegraf_d() -> None:
    text = (ROOT / "telegraf.d" / "riverguard.conf").read_text(encoding="utf-8")
    assert "skip_processors_after_aggregators = true" in text


def test_execd_command_is_the_installed_console_script() -> None:
    scripts = _pyproject()["project"]["scripts"]
    assert Path(EXEC_COMMAND[0]).name in scripts
    assert scripts[Path(EXEC_COMMAND[0]).name] == "riverguard._entry:main"
    # The Dockerfile installs it where the command expects it.
    venv = str(Path(EXEC_COMMAND[0]).parent.parent)
    assert f"python3 -m venv {venv}" in _dockerfile()
    assert Path(RIVERGUARD).is_file()


def test_dockerfile_copies_existing_paths() -> None:
    for line in _dockerfile().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:  # (--from copies between build stages)
            sources = [s for s in line.split()[1:-1] if not s.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), line


def test_dockerignore_keeps_local_artefacts_out_and_what_the_dockerfile_copies_in() -> None:
    """The context is the repository root: without .dockerignore a checkout's .venv (hundreds of MB),
    checkpoints in state/ and host-built .so files went to the builder with every build."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:  # Docker's rule: a pattern matches the path or a folder above it
        parts = path.split("/")  # (`**/` is any number of folders, none included; fnmatch's * crosses "/")
        return any(fnmatch.fnmatchcase("/".join(parts[:n]), form)
                   for pattern in patterns for form in (pattern, pattern.replace("**/", ""))
                   for n in range(1, len(parts) + 1))

    for path in (".venv/bin/python", "state/riverguard.msgpack", ".git/HEAD", "build/lib/x.so",
                 "plugin/riverguard/_hotpath.cpython-311-x86_64-linux-gnu.so", "plugin/riverguard/detectors/steps.c",
                 "plugin/riverguard/__pycache__/cli.cpython-311.pyc", "plugin/riverguard.egg-info/PKG-INFO"):
        assert ignored(path), path
    copied = [source for line in _dockerfile().splitlines() if line.startswith("COPY ") and "--from=" not in line
              for source in line.split()[1:-1] if not source.startswith("--")]
    sources = [str(p.relative_to(ROOT)) for source in copied for p in [ROOT / source, *(ROOT / source).rglob("*")]
               if p.is_file() and p.suffix not in (".so", ".c", ".pyc") and "egg-info" not in str(p)]
    assert "plugin/riverguard/cli.py" in sources and "docker/telegraf.conf" in sources
    assert [s for s in sources if ignored(s)] == []


def test_dockerfile_builds_the_compiled_hot_path() -> None:
    """The build stage copies every build input (setup.py, the .pyx files) and has a C compiler."""
    text = _dockerfile()
    copied = {source for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line
              for source in line.split()[1:-1]}
    setup_inputs = {"pyproject.toml", "setup.py", "plugin"}
    assert setup_inputs <= copied
    assert [p for p in (ROOT / "plugin").rglob("*.pxd") if p.with_suffix(".py").exists()], "the compiled sources live under plugin/"
    assert re.search(r"apt-get install[^\n]*\bgcc\b[^\n]*", text.replace("\\\n", " "))
    assert "python3-dev" in text
    assert "COPY --from=build /opt/riverguard /opt/riverguard" in text
    assert 'grep -q "(compiled hot path)"' in text


def test_docker_riverguard_config_passes_check_config() -> None:
    proc = subprocess.run(
        [RIVERGUARD, "check-config", str(DOCKER / "riverguard.toml")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "OK, 4 rule(s)" in proc.stdout


def test_base_image_python_satisfies_requires_python() -> None:
    text = _dockerfile()
    telegraf = re.search(r"^ARG TELEGRAF_VERSION=1\.(\d+)$", text, re.M)
    assert telegraf and int(telegraf.group(1)) >= 30  # telegraf 1.30+ images: Debian bookworm
    release = re.search(r"^ARG DEBIAN_RELEASE=(\w+)$", text, re.M).group(1)
    stated = re.search(r"^ARG PYTHON_VERSION=(3\.\d+)$", text, re.M).group(1)
    assert DEBIAN_PYTHON[release] == stated
    requires = _pyproject()["project"]["requires-python"]
    minimum = re.fullmatch(r">=\s*(3)\.(\d+)", requires)
    assert minimum, requires
    assert tuple(map(int, stated.split("."))) >= (int(minimum.group(1)), int(minimum.group(2)))


def _scored_fields() -> list[tuple[str, str]]:
    return [
        (rule["measurement"], field)
        for rule in _riverguard_config()["rule"]
        if rule.get("detector", "default") != "off"
        for field in rule["fields"]
    ]


def test_dashboard_is_valid_and_plots_every_scored_field_with_its_anomalies() -> None:
    doc = json.loads((DOCKER / "dashboard.json").read_text(encoding="utf-8"))
    kinds = {item["kind"] for item in doc}
    assert "Dashboard" in kinds
    assert all(item["apiVersion"] == "influxdata.com/v2alpha1" for item in doc)
    dashboard = next(item for item in doc if item["kind"] == "Dashboard")
    queries = [q["query"] for chart in dashboard["spec"]["charts"] for q in chart["queries"]]
    suffix = _riverguard_config()["output"]
    for measurement, field in _scored_fields():
        for needed in (field, field + suffix["flag_suffix"], field + suffix["score_suffix"]):
            assert any(
                f'r._measurement == "{measurement}"' in q and f'r._field == "{needed}"' in q for q in queries
            ), (measurement, needed)
    # Every query reads the bucket variable the template defines.
    variables = {item["spec"]["name"] for item in doc if item["kind"] == "Variable"}
    assert all("from(bucket: v.bucket)" in q for q in queries) and "bucket" in variables


def test_health_monitor_is_on_in_docker_and_in_the_sample_and_plotted() -> None:
    """[monitor] is on where the README says (docker/, the sample config that telegraf.d/ installs),
    and the dashboard has a panel on the measurement's real fields."""
    from riverguard.cli import sample_config
    from riverguard.monitor import COUNTERS, GAUGES

    assert _riverguard_config()["monitor"]["interval"] == "60s"
    assert tomllib.loads(sample_config())["monitor"]["interval"] == "60s"
    assert "riverguard sample-config" in (ROOT / "telegraf.d" / "riverguard.conf").read_text(encoding="utf-8")
    assert "[monitor]" in (ROOT / "telegraf.d" / "riverguard.conf").read_text(encoding="utf-8")
    doc = json.loads((DOCKER / "dashboard.json").read_text(encoding="utf-8"))
    dashboard = next(item for item in doc if item["kind"] == "Dashboard")
    queries = [q["query"] for chart in dashboard["spec"]["charts"] for q in chart["queries"]]
    health = [q for q in queries if 'r._measurement == "riverguard"' in q]
    plotted = {name for q in health for name in re.findall(r'r\._field == "([a-z_]+)"', q)}
    assert {"metrics", "anomalies", "lag_seconds", "rss_bytes", "series", "checkpoint_failures",
            "checkpoints_skipped"} <= plotted
    assert plotted <= set(COUNTERS) | set(GAUGES), plotted - set(COUNTERS) - set(GAUGES)
    # charts do not overlap on the dashboard's grid
    cells = [(x, y) for c in dashboard["spec"]["charts"]
             for x in range(c["xPos"], c["xPos"] + c["width"]) for y in range(c["yPos"], c["yPos"] + c["height"])]
    assert len(cells) == len(set(cells))
