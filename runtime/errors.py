"""Every error edgepack raises on bad input derives from EdgepackError.

Each failure has its own type and names the offending item, so that a caller can tell a truncated download
from a tampered tensor, and the CLI can print one line that says what to do next. The errors only the packager
raises (a failed conversion or quantization, a budget not met) live in edgepack.packager.errors.
"""

from __future__ import annotations


def _restore(cls: type[EdgepackError], args: tuple[object, ...], state: dict[str, object]) -> EdgepackError:
    """An error as pickle rebuilds it: its message and attributes, without calling its __init__."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class EdgepackError(Exception):
    """Base class of every error edgepack raises on bad input or a failed check.

    Picklable whatever its __init__ takes: Exception's own pickling calls cls(*self.args), which fails (or
    wraps the message twice) for the errors built from a path and details, so an error raised in a worker
    process (multiprocessing, concurrent.futures) would break the pool that receives it."""

    def __reduce__(self) -> tuple[object, ...]:
        return _restore, (type(self), self.args, self.__dict__)


# --- bundle format -------------------------------------------------------------------------------------

class BundleError(EdgepackError):
    """The file is not a valid edgepack bundle."""


class NotARegularFile(BundleError):
    """The path is a directory, FIFO, device, socket or a /proc or /sys file: nothing a bundle can be."""

    def __init__(self, path: str, what: str):
        super().__init__(f"{path}: not a bundle file: it is {what}; give the path of a regular .edgepack file")
        self.what = what  # for readers of other files (deltas) to say it in their own words


class BadMagic(BundleError):
    def __init__(self, path: str):
        super().__init__(f"{path}: not an edgepack bundle (wrong magic bytes)")


class UnsupportedVersion(BundleError):
    def __init__(self, path: str, version: int, supported: tuple[int, ...]):
        super().__init__(f"{path}: bundle format version {version} is not supported by this runtime "
                         f"(supported: {', '.join(map(str, supported))}); upgrade edgepack")


class TruncatedBundle(BundleError):
    def __init__(self, path: str, expected: int, actual: int):
        super().__init__(f"{path}: truncated: the bundle declares {expected} bytes but the file has {actual}; "
                         "copy it again")


class TrailingBytes(BundleError):
    def __init__(self, path: str, expected: int, actual: int):
        super().__init__(f"{path}: {actual - expected} unexpected bytes after the end of the bundle "
                         f"(declared size {expected})")


class ManifestTooLarge(BundleError):
    def __init__(self, path: str, size: int, limit: int):
        super().__init__(f"{path}: manifest of {size} bytes exceeds the limit of {limit} bytes")


class InvalidManifest(BundleError):
    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: invalid manifest: {problem}")


class InvalidOffset(BundleError):
    def __init__(self, path: str, name: str, problem: str):
        self.tensor = name
        super().__init__(f"{path}: tensor {name!r}: {problem}")


class LimitExceeded(BundleError):
    def __init__(self, path: str, what: str, value: int, limit: int):
        super().__init__(f"{path}: {what} is {value}, over the limit of {limit}")


class TooLargeForDevice(BundleError):
    def __init__(self, path: str, size: int, memory: int | None = None):
        have = (f"more than the {memory} bytes of memory this machine has" if memory is not None else
                "more than this process can allocate")
        super().__init__(f"{path}: decoding it takes {size} bytes, {have}; package a smaller model for this "
                         "device (quantize or prune it)")


class UnknownCodec(BundleError):
    def __init__(self, path: str, name: str, codec: str):
        self.tensor = name
        super().__init__(f"{path}: tensor {name!r} uses codec {codec!r}, which this runtime does not know; "
                         "upgrade edgepack")


class CorruptTensor(BundleError):
    """A tensor's stored bytes do not decode to what its manifest entry says (hash, size or codec stream)."""

    def __init__(self, path: str, name: str, problem: str):
        self.tensor = name
        super().__init__(f"{path}: tensor {name!r} is corrupt: {problem}")


class NoSuchTensor(BundleError, KeyError):
    """A tensor name the bundle does not have (a KeyError too, for code that looks names up)."""

    __str__ = Exception.__str__  # KeyError's would quote the message

    def __init__(self, name: str, path: str = "bundle"):
        self.tensor = name
        super().__init__(f"{path}: no tensor named {name!r}; the manifest lists the ones it has")


class MalformedRecord(BundleError):
    """The manifest's free-form `target`, `provenance` or `report` is not in the form edgepack writes, so a
    command that lays it out for people cannot show it (the bundle itself may still load and run)."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: the manifest's target, provenance or report is not in the form edgepack "
                         f"writes ({problem}); the bundle was not made by edgepack, or was edited")


class InvalidGraph(BundleError):
    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: invalid graph: {problem}")


# --- signatures ----------------------------------------------------------------------------------------

class SignatureError(EdgepackError):
    """A signature is missing, malformed, or does not match the bundle."""


class UnsignedBundle(SignatureError):
    def __init__(self, path: str):
        super().__init__(f"{path}: the bundle is not signed, and a public key was given; sign it with "
                         "`edgepack sign`, or load it without a public key if you trust its source")


class BadSignature(SignatureError):
    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: signature check failed: {problem}; the bundle was changed after signing, "
                         "or signed with another key: do not use it")


class InvalidKey(SignatureError):
    def __init__(self, source: str, problem: str):
        super().__init__(f"{source}: not a usable Ed25519 key: {problem}")


# --- models, options and targets -----------------------------------------------------------------------

class ModelError(EdgepackError):
    """The input model cannot be read or converted."""


class OptionError(EdgepackError):
    """An option or combination of options is invalid."""


class TargetError(EdgepackError):
    """A target profile is unknown, malformed, or cannot run on this device."""


class DeviceMismatch(TargetError):
    """This device lacks what the bundle's profile requires (a CPU feature); force=True runs it anyway."""


class MissingDependency(EdgepackError):
    """An optional package is needed; the message names the extra that installs it (`edgepack[text]` for the
    runtime's tokenizer). The packager's own, edgepack.packager.errors.MissingExtra, derives from it."""

    def __init__(self, feature: str, extra: str, module: str):
        self.extra = extra
        super().__init__(f"{feature} needs the optional package {module!r}: pip install 'edgepack[{extra}]'")


class SessionError(EdgepackError):
    """onnxruntime refused the model or failed to run it."""


class RunTimeout(SessionError):
    """A run took longer than the timeout given to Session.run and was stopped."""


class GenerationTimeout(RunTimeout):
    """Session.generate took longer than its timeout and was stopped, between tokens or inside a step;
    token_ids holds the tokens generated before it stopped."""

    def __init__(self, message: str, token_ids: list[int]):
        self.token_ids = token_ids
        super().__init__(message)


class LoadBudgetExceeded(SessionError):
    """Loading the bundle would take more than its load budget allows (runtime/limits.py, LoadLimits)."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")


class InputError(EdgepackError):
    """Feeds given to run() do not match the model's inputs."""
