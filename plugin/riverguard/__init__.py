"""riverguard: online anomaly detection for Telegraf, one detector per series.

The default detector, ``sentinel``, is riverguard's own, as are ``context``
and ``zscore``; ``hst`` and ``pad`` wrap River models.

The public API is small: :func:`load_config`, :class:`ConfigError`,
:class:`Engine` and the detector registry in :mod:`riverguard.detectors`.
"""

from __future__ import annotations

from importlib import metadata

from ._compiled import prefer_sources

prefer_sources()  # RIVERGUARD_PURE_PYTHON=1: the modules below load from their .py files, never compiled

from .config import ConfigError  # noqa: E402
from .config import load as load_config  # noqa: E402
from .engine import Engine  # noqa: E402

try:
    __version__ = metadata.version("riverguard")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+src"

__all__ = ["ConfigError", "Engine", "__version__", "load_config"]
