"""edgepack.runtime: open a bundle, decode its tensors lazily, and run it with onnxruntime.

This package is what goes onto the device: it imports only numpy, onnxruntime, zstandard and the
standard library.

    from edgepack.runtime import load
    session = load("model.edgepack")
    outputs = session.run({"x": x})          # {output name: array}

Every name below is imported on first use (PEP 562), so that a process pays in time and memory only for the
modules it uses: `load` does not import the delta machinery, nor `apply_delta` the session's.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compat import TargetWarning
    from .delta import Applied, apply_delta
    from .delta_format import (
        BadDeltaMagic, CorruptDelta, DeltaError, InvalidDelta, ResultMismatch, TruncatedDelta, UnsupportedDeltaVersion,
        WrongBase,
    )
    from .delta_reader import Delta, open_delta
    from .device import DeviceInfo, detect
    from .errors import (
        BadMagic, BadSignature, BundleError, CorruptTensor, DeviceMismatch, EdgepackError, GenerationTimeout,
        InputError, InvalidGraph, InvalidKey, InvalidManifest, InvalidOffset, LimitExceeded, LoadBudgetExceeded,
        ManifestTooLarge, NoSuchTensor, NotARegularFile, RunTimeout, SessionError, SignatureError, TargetError,
        TooLargeForDevice, TrailingBytes, TruncatedBundle, UnknownCodec, UnsignedBundle, UnsupportedVersion,
    )
    from .limits import TRUSTED, UNTRUSTED, LoadLimits
    from .manifest import Manifest, TensorEntry
    from .profile import Profile, builtin_names, load_profile
    from .reader import Bundle, inspect, open_bundle
    from .session import LoadStats, Session, TensorSpec, load

__all__ = [
    "load", "open_bundle", "inspect", "Bundle", "Session", "TensorSpec", "LoadStats", "Manifest",
    "TensorEntry", "Profile", "load_profile", "builtin_names", "DeviceInfo", "detect", "TargetWarning",
    "EdgepackError", "BundleError", "BadMagic", "UnsupportedVersion", "TruncatedBundle", "TrailingBytes",
    "ManifestTooLarge", "InvalidManifest", "InvalidOffset", "LimitExceeded", "UnknownCodec", "CorruptTensor",
    "InvalidGraph", "NoSuchTensor", "NotARegularFile", "TooLargeForDevice", "SignatureError", "UnsignedBundle",
    "BadSignature", "InvalidKey", "TargetError", "DeviceMismatch", "SessionError", "RunTimeout", "InputError",
    "GenerationTimeout", "LoadLimits", "UNTRUSTED", "TRUSTED", "LoadBudgetExceeded",
    "apply_delta", "Applied", "open_delta", "Delta", "DeltaError", "BadDeltaMagic", "UnsupportedDeltaVersion",
    "TruncatedDelta", "CorruptDelta", "InvalidDelta", "WrongBase", "ResultMismatch",
]

_HOME = {name: module for module, names in {  # where each name lives
    "compat": ("TargetWarning",),
    "delta": ("Applied", "apply_delta"),
    "delta_format": ("BadDeltaMagic", "CorruptDelta", "DeltaError", "InvalidDelta", "ResultMismatch",
        "TruncatedDelta", "UnsupportedDeltaVersion", "WrongBase"),
    "delta_reader": ("Delta", "open_delta"),
    "device": ("DeviceInfo", "detect"),
    "errors": ("BadMagic", "BadSignature", "BundleError", "CorruptTensor", "DeviceMismatch", "EdgepackError",
        "GenerationTimeout", "InputError", "InvalidGraph", "InvalidKey", "InvalidManifest", "InvalidOffset",
        "LimitExceeded", "LoadBudgetExceeded", "ManifestTooLarge", "NoSuchTensor", "NotARegularFile", "RunTimeout",
        "SessionError", "SignatureError", "TargetError", "TooLargeForDevice", "TrailingBytes", "TruncatedBundle",
        "UnknownCodec", "UnsignedBundle", "UnsupportedVersion"),
    "limits": ("TRUSTED", "UNTRUSTED", "LoadLimits"),
    "manifest": ("Manifest", "TensorEntry"),
    "profile": ("Profile", "builtin_names", "load_profile"),
    "reader": ("Bundle", "inspect", "open_bundle"),
    "session": ("LoadStats", "Session", "TensorSpec", "load"),
}.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later lookups find it here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
