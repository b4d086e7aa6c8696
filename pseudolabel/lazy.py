"""Package namespaces whose names are imported on first use (PEP 562).

A package that re-exports from heavy modules (torch, h5py) keeps ``import pkg.config`` light:

    __getattr__, __dir__ = lazy_exports(__name__, {"run": "stage", "TrainConfig": "config"})

``pkg.run`` then imports ``pkg.stage`` the first time it is asked for, and only then.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: name -> the submodule that defines it."""

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return getattr_, dir_
