"""Security review 5: edgepack's errors crossing a process boundary.

Exception pickles as cls(*args), but most edgepack errors take a path and details and build their message,
so unpickling one raised TypeError (TruncatedBundle, CorruptTensor, LimitExceeded...) or wrapped the message
twice (BadMagic). A service that loads untrusted bundles in worker processes, as isolation suggests, lost its
pool to one truncated bundle: concurrent.futures raised BrokenProcessPool for every pending job, and
multiprocessing.Pool's result thread died, so that pool.get() hung until its timeout."""

import concurrent.futures
import inspect
import multiprocessing
import pickle

import pytest

import edgepack.packager.errors  # their classes, for the walk below
import edgepack.runtime.delta_format  # noqa: F401
from conftest import write
from edgepack.runtime import load
from edgepack.runtime.errors import EdgepackError, TruncatedBundle


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _argument(annotation: str):
    kind = str(annotation)
    return 7 if kind.startswith("int") else (1, 2) if kind.startswith("tuple") else [3] if kind.startswith("list") \
        else {"k": 1} if kind.startswith("dict") else "bundle.edgepack"


def _example(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if cls.__init__ is Exception.__init__ or params[0].kind is inspect.Parameter.VAR_POSITIONAL:
        return cls("bundle.edgepack: something is wrong")
    return cls(*(_argument(p.annotation) for p in params
                 if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD))


ERRORS = sorted({c for c in _subclasses(EdgepackError) if c.__module__.startswith("edgepack.")},
                key=lambda c: c.__qualname__)


@pytest.mark.parametrize("cls", [EdgepackError, *ERRORS], ids=lambda c: c.__name__)
def test_every_error_survives_pickling(cls):
    error = _example(cls)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is cls
    assert str(back) == str(error) and back.args == error.args
    assert back.__dict__ == error.__dict__  # .tensor, .what, .token_ids, .nodes...


def test_a_truncated_bundle_in_a_worker_process_raises_its_error_in_the_parent(tmp, mlp_bundle):
    path = write(tmp, mlp_bundle[0][:-10], "truncated.edgepack")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with pytest.raises(TruncatedBundle, match="truncated"):
            pool.submit(load, str(path)).result(timeout=120)
        with pytest.raises(TruncatedBundle):  # the pool still works
            pool.submit(load, str(path)).result(timeout=120)
