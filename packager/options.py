"""One mechanism for every step's options: typed frozen dataclasses checked by their annotations.

Each step's options (convert.ConvertOptions, prune.PruneOptions, quantize.QuantizeOptions, search.Budget) is a
frozen dataclass deriving from `Options`. Constructing one checks it (`check`, run by `__post_init__`): every
field against its annotation, then the class's own `_check()` for ranges and combinations of fields.
`build(cls, given)` makes one from an instance (already checked) or a mapping of its fields: unknown keys are
refused naming the known ones, and a None value leaves the field at its default (a dict built from unset
command-line flags or a JSON null means "not given").

What each kind of annotation accepts:

    Literal["a", "b"]        one of those values (messages list them sorted)
    bool                     True or False (not 0, 1 or "yes")
    int                      an int, not a bool
    float                    an int or float, not a bool, finite
    str                      a str
    tuple[str, ...]          a list or tuple of non-empty strings; stored as a tuple
    Path (str | PathLike)    a str or os.PathLike; stored as a str (os.fspath)
    X | None                 None, or what X accepts

Each refusal is an OptionError naming the option as the user spells it (`Options.option_name`: the
command-line flag where the message is about one) and what it accepts (`Options.ACCEPTS`, else the kind's
phrase above).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from edgepack.runtime.errors import OptionError

# A file or folder option: accepts a str or os.PathLike, stores a str (so bundles and records hold text).
Path = Annotated[str, "path"]

T = TypeVar("T", bound="Options")


class Options:
    """Base of the steps' option dataclasses: checked when constructed (see the module's docstring)."""

    WHAT: ClassVar[str] = "step"                 # "unknown {WHAT} option(s) ..."
    SPELLING: ClassVar[dict[str, str]] = {}      # field -> how messages name it (its flag), default the field
    ACCEPTS: ClassVar[dict[str, str]] = {}       # field -> what it accepts, in words, over the kind's phrase

    def __post_init__(self) -> None:
        check(self)

    def _check(self) -> None:
        """Ranges and combinations of fields, run after every field's type is checked; raise OptionError."""

    @classmethod
    def option_name(cls, field: str) -> str:
        return cls.SPELLING.get(field, field)

    def refuse(self, field: str, accepts: str | None = None, hint: str = "") -> OptionError:
        """`NAME must be ACCEPTS, got VALUE` for `field`, to raise from `_check`."""
        return OptionError(f"{self.option_name(field)} must be {accepts or self.ACCEPTS[field]}, got "
                           f"{getattr(self, field)!r}{hint}")


def build(cls: type[T], given: T | Mapping[str, Any] | None) -> T:
    """A `cls` from an instance of it (returned as is: it was checked when made), a mapping of its fields
    (unknown keys refused, None values left at the default) or None (the defaults)."""
    if given is None:
        return cls()
    if isinstance(given, cls):
        return given
    if not isinstance(given, Mapping):
        raise OptionError(f"{cls.WHAT} options must be a {cls.__name__} or a dict of its fields, got "
                          f"{type(given).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in given if k not in known)
    if unknown:
        raise OptionError(f"unknown {cls.WHAT} option(s) {unknown}; known: {', '.join(known)}")
    return cls(**{k: v for k, v in given.items() if v is not None})


def check(obj: Options) -> None:
    """Check every field of `obj` against its annotation (lists become tuples, paths str), then `obj._check()`."""
    cls = type(obj)
    for name, hint in _hints(cls).items():
        value = getattr(obj, name)
        kept = _value(hint, value, cls, name)
        if kept is not value:
            object.__setattr__(obj, name, kept)  # frozen: normalise in place, once, at construction
    obj._check()


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """Each field's annotation, evaluated once per class."""
    if cls not in _HINTS:
        hints = get_type_hints(cls, include_extras=True)
        _HINTS[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return _HINTS[cls]


def _value(hint: Any, value: Any, cls: type[Options], name: str) -> Any:
    """`value` as field `name` of annotation `hint` keeps it, or OptionError."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if value is None and len(rest) < len(args):
            return None
        if any(a is os.PathLike or get_origin(a) is os.PathLike for a in rest):
            return _path(value, cls, name)
        if len(rest) != 1:
            raise TypeError(f"{cls.__name__}.{name}: no rule for the annotation {hint}")
        return _value(rest[0], value, cls, name)
    if origin is Annotated:
        if "path" in args[1:]:
            return _path(value, cls, name)
        return _value(args[0], value, cls, name)
    if origin is Literal:
        if any(isinstance(value, type(a)) and value == a for a in args):
            return value
        # sorted: typing caches `Literal[...] | None` by the set of values, so the declared order can be another's
        raise _refused(cls, name, value, f"one of {', '.join(sorted(str(a) for a in args))}", ";")
    if hint is bool:
        ok = isinstance(value, bool)
        kind = "true or false"
    elif hint is int:
        ok = type(value) is int
        kind = "an integer"
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        kind = "a number"
    elif hint is str:
        ok = isinstance(value, str)
        kind = "a string"
    elif origin is tuple and args == (str, ...):
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
            return value if isinstance(value, tuple) else tuple(value)
        raise _refused(cls, name, value, "a list of names")
    else:
        raise TypeError(f"{cls.__name__}.{name}: no rule for the annotation {hint}")
    if not ok:
        raise _refused(cls, name, value, kind)
    return value


def _path(value: Any, cls: type[Options], name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
    raise _refused(cls, name, value, "a path (a str or os.PathLike)")


def _refused(cls: type[Options], name: str, value: Any, kind: str, sep: str = ",") -> OptionError:
    return OptionError(f"{cls.option_name(name)} must be {cls.ACCEPTS.get(name, kind)}{sep} got {value!r}")
