"""riverguard's version: the one place it is written (pyproject.toml reads it from here at build time).

A module rather than :func:`importlib.metadata.version`: that call reads the installed distributions'
metadata (importing ``email``, ``zipfile`` and ``csv`` on the way), 41 to 47 ms of a start under
``python -X importtime``, and the ``run`` that Telegraf starts names its version at once (a ``D!`` line,
the health line, the checkpoint).
"""

__version__ = "0.1.0"
