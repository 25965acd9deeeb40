"""Lazy re-exports for the package ``__init__`` files: a name is imported from its module on first use,
so importing a package (and starting the CLI) pulls in no heavy library."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """The module-level ``__getattr__`` (PEP 562) of ``package``: each name of ``exports`` (name -> module)
    is imported from its module when first read."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return __getattr__
