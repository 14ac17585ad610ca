"""Doctests of the modules that run compiled (models/_native.py) are collected from their
``.py`` source, which this process did not import: tests/test_native.py runs them in a
pure-Python process instead."""

from __future__ import annotations

from pathlib import Path

from models import _native

_MODELS = Path(_native.__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    if _native.active() and collection_path.parent == _MODELS and \
            collection_path.suffix == ".py" and collection_path.stem in _native.COMPILED:
        return True
    return None
