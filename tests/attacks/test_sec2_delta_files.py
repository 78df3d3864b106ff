"""Finding F6 of the second security review: the delta reader opened its path with a blocking os.open and no
file-type check, so a FIFO hung `edgepack apply` forever and a directory raised a bare IsADirectoryError."""

import os
import sys
import threading

import pytest

from edgepack.runtime.delta_format import InvalidDelta
from edgepack.runtime.delta_reader import is_delta, open_delta


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are POSIX")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "d.edgedelta"
    os.mkfifo(fifo)
    outcome = []

    def attempt():
        try:
            open_delta(fifo)
        except Exception as e:
            outcome.append(e)
        outcome.append(is_delta(fifo))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # blocked in open(): a writer lets it go, then the test fails
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail("opening a FIFO as a delta blocked")
    assert isinstance(outcome[0], InvalidDelta) and "FIFO" in str(outcome[0]) and outcome[1] is False


def test_a_directory_is_refused_with_a_typed_error(tmp_path):
    with pytest.raises(InvalidDelta, match="directory"):
        open_delta(tmp_path)
    assert not is_delta(tmp_path)
