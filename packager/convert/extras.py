"""Optional dependencies: import them only when a conversion needs them, and name the extra when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgepack.packager.errors import MissingExtra


def require(module: str, feature: str, extra: str) -> ModuleType:
    """Import `module` for `feature`, or raise MissingExtra naming `pip install 'edgepack[extra]'`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(feature, extra, module) from e
