"""One session shared by many threads gives exactly the outputs of sequential runs; loads and tensor reads
may run concurrently too (README, "Threads")."""

import random
import threading

import numpy as np
import pytest

import edgepack
from edgepack.packager.demo import demo_files
from edgepack.runtime import load, open_bundle

THREADS, REQUESTS = 8, 100


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The shipped digits CNN (convolutions, residual adds), packaged, and 800 distinct requests."""
    model_path, samples_path = demo_files()
    path = tmp_path_factory.mktemp("c") / "digits.edgepack"
    edgepack.package(model_path, output=path)
    x = np.load(samples_path)["x"]
    rng = np.random.default_rng(0)
    requests = [x[rng.integers(0, len(x), size=int(rng.integers(1, 5)))] for _ in range(THREADS * REQUESTS)]
    return path, requests


def _in_threads(work, n):
    errors = []

    def guarded(k):
        try:
            work(k)
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)
    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_one_session_from_8_threads_matches_sequential_runs(digits):
    path, requests = digits
    session = load(path)
    expected = [session.run({"x": x}) for x in requests]
    got = [None] * len(requests)
    start = threading.Barrier(THREADS)

    def work(k):
        order = list(range(k, len(requests), THREADS))
        random.Random(k).shuffle(order)
        start.wait()  # all threads run at once
        for i in order:
            got[i] = session.run({"x": requests[i]})
    _in_threads(work, THREADS)
    assert sum(1 for g in got if g is not None) == THREADS * REQUESTS
    for want, have in zip(expected, got):
        assert want.keys() == have.keys()
        assert all(np.array_equal(want[k], have[k]) for k in want)


def test_loads_and_tensor_reads_may_run_concurrently(digits):
    path, requests = digits
    x = requests[0]
    want = load(path).run({"x": x})
    with open_bundle(path) as bundle:
        tensors = {t.name: bundle.tensor(t.name) for t in bundle.manifest.tensors}
        results = [None] * THREADS

        def work(k):
            session = load(path)
            results[k] = session.run({"x": x})
            for name, value in tensors.items():
                assert np.array_equal(bundle.tensor(name), value)
        _in_threads(work, THREADS)
    for r in results:
        assert all(np.array_equal(r[k], want[k]) for k in want)
