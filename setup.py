"""Compile riverguard's hot modules when Cython and a C compiler are there; everything else is in pyproject.toml.

A module is compiled when a ``.pxd`` sits beside its ``.py`` (Cython's
pure-Python mode: the ``.py`` is the definition, the ``.pxd`` adds C types),
or when it is a ``.pyx``. Without Cython or a C compiler the build carries on
and riverguard runs the same ``.py`` files in pure Python (the same output,
more slowly); `riverguard --version` and `make bench` say which path is in use.
"""

from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build extensions if possible; warn (and go on without them) if not."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as err:  # noqa: BLE001 - any build failure means "no accelerator"
            self.warn(f"riverguard: compiled hot path not built ({err}); running in pure Python")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as err:  # noqa: BLE001
            self.warn(f"riverguard: {ext.name} not built ({err}); running in pure Python")


try:
    from Cython.Build import cythonize
except ImportError:
    ext_modules = []
else:
    sources = sorted(
        [pxd.with_suffix(".py") for pxd in Path("plugin/riverguard").rglob("*.pxd") if pxd.with_suffix(".py").exists()]
        + list(Path("plugin/riverguard").rglob("*.pyx"))
    )
    ext_modules = cythonize(
        [
            Extension(
                ".".join(path.relative_to("plugin").with_suffix("").parts),
                [str(path)],
                extra_compile_args=["-O2", "-ffp-contract=off"],
            )
            for path in sources
        ],
        language_level=3,
        quiet=True,
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
