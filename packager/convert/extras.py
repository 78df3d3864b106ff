"""Optional dependencies: import them only when a conversion needs them, and name the extra when missing."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from edgepack.packager.errors import MissingExtra


def require(module: str, feature: str, extra: str) -> ModuleType:
    """Import `module` for `feature`, or raise MissingExtra naming `pip install 'edgepack[extra]'`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(feature, extra, module) from e


def installed(module: str, feature: str, extra: str) -> None:
    """Raise MissingExtra, as require() does, unless `module` can be imported; without importing it (for a
    module that a child process will import)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        found = False
    if not found:
        raise MissingExtra(feature, extra, module)
