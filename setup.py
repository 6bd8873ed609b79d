"""Build the optional compiled packet module.

The package works without it: ``openelb.dataplane.packet`` falls back to a pure-Python twin with
the same API. ``OPENELB_NO_EXTENSIONS=1`` skips the extension entirely; a build that fails (no
compiler, no Cython) is reported and skipped rather than failing the install.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing when the extension cannot be compiled."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure means "use the fallback"
            self._warn(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        sys.stderr.write(
            f"openelb: WARNING: compiled packet module not built ({exc}); "
            "the pure-Python packet module will be used\n"
        )


def extensions() -> list[Extension]:
    if os.environ.get("OPENELB_NO_EXTENSIONS", "") not in ("", "0"):
        sys.stderr.write("openelb: OPENELB_NO_EXTENSIONS set, not building extensions\n")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        sys.stderr.write("openelb: Cython not available, not building extensions\n")
        return []
    ext = Extension(
        "openelb.dataplane._packet",
        sources=["ext/_packet.pyx"],
        extra_compile_args=["-O3"],
    )
    exts = [ext]
    # --- speaker: the native heartbeat pacer (optional like _packet; pure-Python twin exists) ---
    exts.append(
        Extension(
            "openelb.speaker._heartbeat",
            sources=["ext/_heartbeat.pyx"],
            extra_compile_args=["-O2"],
        )
    )
    return list(
        cythonize(
            exts,
            language_level=3,
            compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
            quiet=True,
        )
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
