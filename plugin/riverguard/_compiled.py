"""What riverguard needs of Cython's pure-Python mode when Cython is not installed.

The hot modules (``_plainline.py``, ``_hotpath.py``, and the detectors'
``steps.py``, ``sentinel.py``, ``context.py``) are plain Python files that
Cython compiles when a C compiler is there; their types live in a ``.pxd``
beside them. They ``import cython`` for ``cython.compiled`` (the branches it
guards use the rest of ``cython``), for the class decorators
``@cython.cclass`` and ``@cython.no_gc`` and for ``cython.cast``, which stand in here as no-ops;
without Cython they import this module instead, and run as the plain Python
they are.

``RIVERGUARD_PURE_PYTHON=1`` (any value but ``0`` or empty) runs those same
files uncompiled even where the compiled build exists: :func:`prefer_sources` (called by
``riverguard/__init__.py``) makes every ``riverguard`` module load from its
``.py`` file rather than from a compiled extension beside it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = [
    "PURE_PYTHON", "built", "cast", "cclass", "compiled", "is_compiled", "no_gc", "prefer_sources", "uncompiled",
]

#: Uncompiled: this module stands in for ``cython`` only when Cython is not there.
compiled = False


def _as_is(cls: Any) -> Any:
    return cls


#: Class decorators that only mean something compiled (an extension type, not tracked by the cyclic GC).
cclass = no_gc = _as_is


def cast(kind: Any, value: Any) -> Any:
    """``cython.cast``: compiled, a C-level cast to an extension type; uncompiled, the value as it is."""
    return value

#: True when RIVERGUARD_PURE_PYTHON asks for the uncompiled sources ("0", empty or unset: it does not).
PURE_PYTHON = os.environ.get("RIVERGUARD_PURE_PYTHON", "") not in ("", "0")


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from a compiled extension."""
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)


def built(name: str) -> bool:
    """Whether ``riverguard.<name>`` has a compiled extension installed beside its source, in use or not
    (RIVERGUARD_PURE_PYTHON switches it off)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return any(os.path.isfile(os.path.join(here, name + suffix)) for suffix in importlib.machinery.EXTENSION_SUFFIXES)


class _SourceFinder:
    """Finds the modules under ``prefix`` as ``.py`` files only (compiled extensions beside them are skipped).

    A meta path finder by its ``find_spec`` (not a subclass of ``importlib.abc.MetaPathFinder``: importing
    ``importlib.abc`` imports ``importlib.resources``, ``tempfile`` and ``shutil``: 25 ms of a start under
    ``python -X importtime``)."""

    def __init__(self, prefix: str = "riverguard.") -> None:
        self.prefix = prefix

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if not fullname.startswith(self.prefix) or not path:
            return None
        name = fullname.rpartition(".")[2]
        for entry in path:
            source = os.path.join(entry, name + ".py")
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None  # a package, or not riverguard's: the ordinary finders decide


_UNCOMPILED = "riverguard._uncompiled"


def uncompiled(name: str) -> ModuleType:
    """``riverguard.<name>`` imported from its source as plain Python, beside the compiled one.

    The copy lives in ``riverguard._uncompiled``: its relative imports load
    uncompiled copies too. For tests that compare the two builds of one
    source in one process (tests/test_hotpath.py).
    """
    if _UNCOMPILED not in sys.modules:
        package = ModuleType(_UNCOMPILED)
        package.__path__ = [os.path.dirname(os.path.abspath(__file__))]
        package.__package__ = _UNCOMPILED
        sys.modules[_UNCOMPILED] = package
        sys.meta_path.insert(0, _SourceFinder(_UNCOMPILED + "."))
    return importlib.import_module(f"{_UNCOMPILED}.{name}")


def prefer_sources() -> None:
    """Under RIVERGUARD_PURE_PYTHON, load riverguard's modules from their Python sources."""
    if PURE_PYTHON and not any(isinstance(f, _SourceFinder) and f.prefix == "riverguard." for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder())
