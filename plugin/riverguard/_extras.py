"""The command that installs one of riverguard's optional extras (``report``, ``collect``).

riverguard is installed from a checkout (README, Install), and PyPI's
``riverguard`` is not this project: the command names the extra's own
packages (or the checkout), as the README does, never ``pip install 'riverguard[...]'``.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["install_command"]

#: What the README's Install section writes for the checkout.
PLACEHOLDER = "/path/to/this/checkout"


def install_command(extra: str) -> str:
    """``<this environment's pip> install 'package>=version'`` for the packages the extra adds, as the README
    advises (installing the checkout again with the extra builds and compiles riverguard again: minutes);
    without that metadata, ``install '<checkout>[extra]'`` (the checkout pip recorded, else the placeholder)."""
    source = PLACEHOLDER
    packages: list[str] = []
    try:
        from importlib.metadata import distribution

        dist = distribution("riverguard")
        for requirement in dist.requires or ():
            name, _, marker = requirement.partition(";")
            if marker.strip().replace("'", '"') == f'extra == "{extra}"':
                packages.append(name.strip())
        origin = json.loads(dist.read_text("direct_url.json") or "{}")
        url = urlsplit(origin.get("url", ""))
        if url.scheme == "file" and "dir_info" in origin:
            source = unquote(url.path)
    except Exception:  # noqa: BLE001 - no metadata: the README's placeholder still says what to do
        pass
    pip = Path(sys.executable).with_name("pip")
    command = shlex.quote(str(pip)) if pip.exists() else f"{shlex.quote(sys.executable)} -m pip"
    return f"{command} install {' '.join(map(shlex.quote, packages or [f'{source}[{extra}]']))}"
