"""edgepack.packager: turn a model into a compressed, verifiable bundle for one target device.

May import edgepack.runtime; the runtime never imports the packager.
"""

from .api import PackageResult, package
from .convert.options import ConvertOptions

__all__ = ["package", "PackageResult", "ConvertOptions"]
