"""Session.generate(timeout=) and `edgepack generate --timeout`: a generation that runs past its time stops
with GenerationTimeout (a RunTimeout), between tokens or inside a step, carrying the tokens made so far."""

import time

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

import llm_models
from edgepack.packager import package
from edgepack.runtime import GenerationTimeout, InputError, RunTimeout, load

pytestmark = pytest.mark.packager
PROMPT = [0, 57, 91, 12, 33]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = llm_models.random_llama(str(tmp_path_factory.mktemp("llama") / "tiny"))
    out = str(tmp_path_factory.mktemp("b") / "fp.edgepack")
    package(folder, out)
    return out


@pytest.fixture(scope="module")
def reference(bundle):
    return load(bundle).generate(PROMPT, 12).token_ids


def test_a_generous_timeout_changes_nothing(bundle, reference):
    g = load(bundle).generate(PROMPT, 12, timeout=60.0)
    assert g.token_ids == reference and g.stop_reason == "length"


def test_a_slow_generation_stops_at_the_timeout_with_the_tokens_so_far(bundle, reference):
    session = load(bundle)
    t0 = time.perf_counter()
    with pytest.raises(GenerationTimeout, match=r"longer than 1.0 s and was stopped after \d+ tokens") as e:
        session.generate(PROMPT, 12, timeout=1.0, on_token=lambda token, piece: time.sleep(0.4))
    # checked after every token: at 0.4 s per token, the third token ends past 1 s at the latest (none at
    # all only if the prefill alone outlasted the second, on a machine loaded beyond reason)
    assert len(e.value.token_ids) <= 3
    assert e.value.token_ids == reference[:len(e.value.token_ids)]
    assert time.perf_counter() - t0 < 10
    assert isinstance(e.value, RunTimeout)
    # the session is still usable, and the watchdog of the stopped call does not touch the next one
    assert session.generate(PROMPT, 12).token_ids == reference


def test_a_timeout_too_short_for_one_step_stops_before_or_after_the_first_token(bundle, reference):
    with pytest.raises(GenerationTimeout) as e:
        load(bundle).generate(PROMPT, 12, timeout=1e-6)
    assert e.value.token_ids in ([], reference[:1])


def test_a_step_in_flight_honours_the_terminate_flag(bundle):
    import onnxruntime as ort

    from edgepack.runtime.generate import KVRunner

    runner = KVRunner(load(bundle), 16, len(PROMPT))
    runner.run_options = ort.RunOptions()
    runner.step(PROMPT)
    runner.run_options.terminate = True  # what the watchdog's timer does
    with pytest.raises(GenerationTimeout, match="stopped at its timeout"):
        runner.step([5])


@pytest.mark.parametrize("bad", [0, -1.0])
def test_a_timeout_must_be_positive(bundle, bad):
    with pytest.raises(InputError, match="timeout must be a positive number"):
        load(bundle).generate(PROMPT, 4, timeout=bad)


def test_cli_generate_timeout_prints_one_line(bundle):
    from click.testing import CliRunner

    from edgepack.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["generate", bundle, "--prompt-ids", "0,57,91", "--max-new-tokens", "8",
                              "--timeout", "0.000001", "--json"])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgepack: error: ") and "longer than 1e-06 s" in lines[0]
    res = runner.invoke(cli, ["generate", bundle, "--prompt-ids", "0,57,91", "--max-new-tokens", "4",
                              "--timeout", "60", "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["generate", bundle, "--prompt-ids", "0,57", "--timeout", "0"])
    assert res.exit_code == 2 and "--timeout" in res.output
