"""Optional compiled builds of the hot modules (Cython, pure-Python mode).

The ``.py`` files are the only source. ``python -m extraction_watch.compile``
(run by ``make``) compiles the modules named in :data:`COMPILED` with Cython,
using the C types declared in the ``.pxd`` files beside them, into
``<sys.prefix>/exw-native/models/`` (or ``$EXW_NATIVE_DIR``), with a digest
of the sources they were built from. When ``models`` is imported and every
digest still matches the sources, that directory goes first on the package's
search path, so ``import models.engine`` loads the compiled module;
otherwise (not built, sources edited since, another Python, or
``EXW_PURE_PYTHON=1``) the package stays pure Python. Both builds give the
same alerts byte for byte (tests/test_native.py runs a stream through each).

Nothing here imports Cython: a machine without a C compiler runs the same
code, slower.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

__all__ = ["COMPILED", "DIGESTS", "active", "activate", "native_dir", "shared_sources",
           "source_digests"]

# the per-event and per-tick path (the rest runs a few times per tick at most).
# contract.py stays interpreted: compiled, it gained 4% and Cython typed a .get()
# on its `dict[str, float]` memo as a C double, which breaks on a miss (None).
# Annotations type locals in the compiled build: annotate only what always holds.
COMPILED = (
    "account",
    "aggregate",
    "templates",
    "egress",
    "engine",
    "account_score",
    "cluster_score",
    "cohort",
    "linking",
    "wire",
    "alerts",
    "evidence",
    "ranking",
)
DIGESTS = "_digests.json"

_active = False


def native_dir() -> Path:
    """Where the compiled modules of this interpreter live."""
    configured = os.environ.get("EXW_NATIVE_DIR")
    return Path(configured) if configured else Path(sys.prefix) / "exw-native" / "models"


def shared_sources(package_dir: Path) -> list[Path]:
    """The ``.pxd`` declarations and C headers every compiled module is built with."""
    return sorted([*package_dir.glob("*.pxd"), *package_dir.glob("*.h")])


def source_digests(package_dir: Path) -> dict[str, str]:
    """sha256 of each compiled module's source, and of every ``.pxd`` and C header (they
    cimport or include each other)."""
    shared = hashlib.sha256()
    for path in sorted(shared_sources(package_dir)):
        shared.update(path.name.encode() + b"\0" + path.read_bytes())
    digests = {}
    for name in COMPILED:
        digest = shared.copy()
        digest.update((package_dir / f"{name}.py").read_bytes())
        digests[name] = digest.hexdigest()
    return digests


def _abi() -> str:
    return f"{sys.implementation.cache_tag}-{sys.platform}"


def activate(package_path: list[str]) -> bool:
    """Put the compiled modules first on ``package_path`` if they match the sources."""
    global _active
    if os.environ.get("EXW_PURE_PYTHON", "") not in ("", "0"):
        return False
    where = native_dir()
    try:
        built = json.loads((where / DIGESTS).read_text())
    except (OSError, ValueError):
        return False  # never built: pure Python
    source = Path(package_path[-1])
    try:
        current = source_digests(source)
    except OSError:
        return False
    if built.get("abi") != _abi() or built.get("modules") != current:
        warnings.warn(f"compiled modules in {where} do not match the sources in {source} "
                      "(edited since the build?): running pure Python; `make install` "
                      "rebuilds them", RuntimeWarning, stacklevel=2)
        return False
    package_path.insert(0, str(where))
    _active = True
    return True


def active() -> bool:
    """Whether this process runs the compiled modules."""
    return _active


def manifest(package_dir: Path) -> dict:
    """What a build records next to the modules it compiled."""
    return {"abi": _abi(), "modules": source_digests(package_dir)}
