"""The edgepack version, in a module of its own: the packager records it in every bundle without importing the
top-level package (which imports the packager on first use)."""

__version__ = "0.1.0"
