"""Compile the hot modules of :mod:`models` with Cython (see :mod:`models._native`).

``python -m extraction_watch.compile [--out DIR]`` writes the extension
modules and their source digests to ``DIR`` (default: where
:func:`models._native.native_dir` looks). Without Cython or a C compiler it
says so and exits 0 with nothing built: the package then runs as pure Python.
``--check`` exits 1 if the compiled modules are missing or stale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":
    # this process compiles the sources: it has no use for a (perhaps stale) build of them
    os.environ["EXW_PURE_PYTHON"] = "1"

from models import _native  # noqa: E402

PACKAGE_DIR = Path(_native.__file__).resolve().parent


# Optimise whatever CFLAGS says: setuptools takes a CFLAGS from the environment *instead of*
# the interpreter's own flags (its -O3 among them), so a CFLAGS=-g build ran unoptimised,
# 40-60% slower (measured on the engine bench). The last -O on the command line wins, and
# these come after CFLAGS.
OPTIMISE = [] if sys.platform == "win32" else ["-O3"]


def build(out: Path, jobs: int = 2, quiet: bool = True,
          names: tuple[str, ...] = _native.COMPILED) -> list[str]:
    """Compile ``names`` (all of :data:`models._native.COMPILED` but in tests) into ``out``;
    return the module names built."""
    from Cython.Build import cythonize  # build-time only (the dev extra)
    from setuptools import Distribution, Extension

    with tempfile.TemporaryDirectory(prefix="exw-native-") as tmp:
        work = Path(tmp)
        # copy the sources so the C files and build objects never land in the checkout
        pkg = work / "models"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        for path in _native.shared_sources(PACKAGE_DIR):
            shutil.copy2(path, pkg / path.name)
        for name in names:
            shutil.copy2(PACKAGE_DIR / f"{name}.py", pkg / f"{name}.py")
        extensions = [Extension(f"models.{name}", [str(pkg / f"{name}.py")],
                                extra_compile_args=OPTIMISE)
                      for name in names]
        cwd = os.getcwd()
        os.chdir(work)  # cythonize names modules from the package layout under the cwd
        try:
            modules = cythonize(extensions, language_level=3, quiet=quiet, nthreads=jobs,
                                compiler_directives={
                                    "embedsignature": True,
                                    # C types come from the .pxd files only: an annotation
                                    # such as dict[str, float] would otherwise type a
                                    # .get() result as a C double, which fails on None
                                    "annotation_typing": False,
                                })
            dist = Distribution({"name": "exw-native", "ext_modules": modules})
            dist.script_args = ["build_ext", "--build-lib", str(work / "lib"),
                                "--build-temp", str(work / "tmp"), "-j", str(jobs)]
            if quiet:
                dist.script_args.insert(0, "-q")
            dist.parse_command_line()
            dist.run_commands()
        finally:
            os.chdir(cwd)
        built = sorted((work / "lib" / "models").glob("*.so")) + \
            sorted((work / "lib" / "models").glob("*.pyd"))
        out.mkdir(parents=True, exist_ok=True)
        for old in list(out.glob("*.so")) + list(out.glob("*.pyd")):
            old.unlink()
        (out / _native.DIGESTS).unlink(missing_ok=True)
        for path in built:
            shutil.copy2(path, out / path.name)
        # the digests go last: a build cut short is never taken for a good one
        (out / _native.DIGESTS).write_text(json.dumps(_native.manifest(PACKAGE_DIR), indent=1))
        return [p.name.split(".")[0] for p in built]


def is_current(out: Path) -> bool:
    try:
        built = json.loads((out / _native.DIGESTS).read_text())
    except (OSError, ValueError):
        return False
    return built == _native.manifest(PACKAGE_DIR) and all(
        any(out.glob(f"{name}.*")) for name in _native.COMPILED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m extraction_watch.compile",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="target directory (default: %(default)s -> models._native.native_dir())")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless the compiled modules match the sources")
    parser.add_argument("--force", action="store_true", help="rebuild even if current")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    out = args.out or _native.native_dir()
    if args.check:
        ok = is_current(out)
        print(f"compiled modules in {out}: {'current' if ok else 'missing or stale'}")
        return 0 if ok else 1
    if not args.force and is_current(out):
        print(f"compiled modules in {out} are current")
        return 0
    try:
        import Cython  # noqa: F401
    except ImportError:
        print("Cython is not installed: models stays pure Python (slower, same results)",
              file=sys.stderr)
        return 0
    try:
        names = build(out, jobs=args.jobs)
    except Exception as exc:  # no C compiler, missing headers, ...
        print(f"could not compile the hot modules ({type(exc).__name__}: {exc}): models stays "
              "pure Python (slower, same results)", file=sys.stderr)
        return 0
    print(f"compiled {len(names)} modules into {out}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
