"""Build the optional compiled hot path (riverguard._hotpath); everything else is in pyproject.toml.

Without Cython or a C compiler the build carries on and riverguard runs in
pure Python (the same output, more slowly); `riverguard --version` and
`make bench` say which path is in use.
"""

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
    ext_modules = cythonize(
        [
            Extension(name, [path], extra_compile_args=["-O2", "-ffp-contract=off"])
            for name, path in (
                ("riverguard._hotpath", "plugin/riverguard/_hotpath.pyx"),
                ("riverguard.detectors._sentinel_c", "plugin/riverguard/detectors/_sentinel_c.pyx"),
            )
        ],
        language_level=3,
        quiet=True,
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
