"""Monodepth2's top-level package names (``networks``, ``datasets``) for code run from the repository root.

The repository's ``networks/`` and ``datasets/`` folders are one-line shims that call ``alias``; they are not
installed, because an installed top-level ``datasets`` would shadow Hugging Face's.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys


def alias(name: str, package: str) -> None:
    """Make ``import <name>`` and ``from <name>.<module> import ...`` give ``<package>`` and its very modules
    (the same class objects, not copies), by registering them in ``sys.modules`` under the short names."""
    impl = importlib.import_module(package)
    for module in pkgutil.iter_modules(impl.__path__):
        sys.modules[f"{name}.{module.name}"] = importlib.import_module(f"{package}.{module.name}")
    sys.modules[name] = impl
