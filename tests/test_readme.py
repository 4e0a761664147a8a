"""The README's sample config and Example are what riverguard really does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_sample_config_block_is_the_shipped_sample() -> None:
    block = re.search(r"<!-- sample-config:.*?-->\n```toml\n(.*?)```", README, re.S)
    assert block, "the README lost its sample-config block"
    shipped = subprocess.run(
        [sys.executable, "-m", "riverguard", "sample-config"], capture_output=True, check=True, text=True
    ).stdout
    assert block.group(1) == shipped


def _check_diff(name: str, args: list[str]) -> None:
    block = re.search(rf"<!-- {name}:.*?-->\n```diff\n(.*?)```", README, re.S)
    assert block, f"the README lost its {name} block"
    before = [line[2:] for line in block.group(1).splitlines() if line.startswith("- ")]
    after = [line[2:] for line in block.group(1).splitlines() if line.startswith("+ ")]
    assert before and len(before) == len(after)
    result = subprocess.run(
        [sys.executable, "-m", "riverguard", "run", *args],
        input="".join(line + "\n" for line in before),
        capture_output=True,
        check=True,
        text=True,
    )
    assert result.stdout.splitlines() == after


def test_example_diff_is_real_output() -> None:
    _check_diff("example", [])


def test_explain_example_is_real_output(tmp_path: Path) -> None:
    config = re.search(r"<!-- example-explain-config:.*?-->\n```toml\n(.*?)```", README, re.S)
    assert config, "the README lost its explain config"
    path = tmp_path / "riverguard.toml"
    path.write_text(config.group(1))
    _check_diff("example-explain", ["--config", str(path)])
