"""riverguard: online anomaly detection for Telegraf, one detector per series.

The default detector, ``sentinel``, is riverguard's own, as are ``context``
and ``zscore``; ``hst`` and ``pad`` wrap River models.

The public API is small: :func:`load_config`, :class:`ConfigError`,
:class:`Engine` and the detector registry in :mod:`riverguard.detectors`.
"""

from __future__ import annotations

from typing import Any

from ._compiled import prefer_sources

prefer_sources()  # RIVERGUARD_PURE_PYTHON=1: the modules below load from their .py files, never compiled

__all__ = ["ConfigError", "Engine", "__version__", "load_config"]


def __getattr__(name: str) -> Any:
    """The public names, loaded on first use: the ``riverguard`` command blocks its signals before it loads
    the rest (``riverguard._entry``), and a package import that loaded it all would come first."""
    if name == "__version__":
        from ._version import __version__ as value
    elif name in ("ConfigError", "load_config"):
        from . import config

        value = config.ConfigError if name == "ConfigError" else config.load
    elif name == "Engine":
        from .engine import Engine as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
