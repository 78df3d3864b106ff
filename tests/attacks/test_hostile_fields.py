"""Finding 7 of issue 19: well-formed bundles, every hash right, whose free-form `target`, `provenance` and
`report` hold what the packager never writes, or whose tensor names are lone surrogates or terminal escapes.
15 of 52 `inspect`/`report` runs ended in an internal error (exit 3). Every command that reads a bundle must
print its output or one error line, exit 0 or 1, and print names with such characters as escapes."""

import json

import pytest
from click.testing import CliRunner

from edgepack.cli import cli

import bundles
from conftest import write

HOSTILE = {
    "target name list": ("target", {"name": ["x"]}),
    "target name surrogate": ("target", {"name": "\udc80\x1b[2J"}),
    "target memory string": ("target", {"name": "t", "memory": "lots"}),
    "target providers number": ("target", {"name": "t", "providers": 5}),
    "source string": ("provenance", {"source": "model.onnx"}),
    "source bytes string": ("provenance", {"source": {"name": "m", "bytes": "many"}}),
    "source name object": ("provenance", {"source": {"name": {"a": 1}, "sha256": 5}}),
    "steps number": ("provenance", {"steps": 5}),
    "steps of numbers": ("provenance", {"steps": [1, 2]}),
    "step without name": ("provenance", {"steps": [{"options": {}}]}),
    "version object": ("provenance", {"edgepack_version": {"a": 1}}),
    "prune string": ("report", {"prune": "all"}),
    "prune layers number": ("report", {"prune": {"method": "channels", "layers": 5}}),
    "quantization list": ("report", {"quantization": [1]}),
    "quantization odd fields": ("report", {"quantization": {"mode": 1, "quantized": 5, "bytes_before": "x"}}),
    "fidelity outputs number": ("report", {"fidelity": {"outputs": 5}}),
    "fidelity output fields": ("report", {"fidelity": {"outputs": {"y": {"accuracy": "x",
                                                                         "reference_accuracy": 1}}}}),
    "search trials string": ("report", {"search": {"trials": "x", "chosen": 3}}),
    "warnings number": ("report", {"warnings": 5}),
    "warnings escapes": ("report", {"warnings": ["\udc80\x1b[31mred\x07"]}),
    "layers numbers": ("report", {"layers": [5]}),
    "layers tensors number": ("report", {"layers": [{"name": "l", "tensors": 5}]}),
    "speed string": ("report", {"speed": "fast"}),
    "extra surrogate key": ("report", {"\udc80": "\ud800"}),
}
NAMES = {"name surrogate": "\udc80w", "name escape": "\x1b[31mred\x1b[0m", "name newline": "a\nb\rc",
         "name astral": "\U0001f600\u202e"}

READ = [["inspect"], ["inspect", "--json"], ["inspect", "--all"], ["verify"], ["run"],
        ["report", "-o", "-", "--no-measure", "--format", "md"], ["report", "-o", "-", "--no-measure", "--format",
                                                                   "json"],
        ["report", "-o", "{tmp}/r.html", "--no-measure"]]


def _hostile(data: bytes, case: str) -> bytes:
    if case in NAMES:
        return bundles.edit_manifest(data, lambda m: m["tensors"][0].update(name=NAMES[case]))
    key, value = HOSTILE[case]
    return bundles.edit_manifest(data, lambda m: m.update({key: value}))


def _check(result, args) -> None:
    assert result.exit_code in (0, 1), (args, result.exit_code, result.output, result.exception)
    if result.exit_code == 1:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("edgepack: error: "), (args, result.stderr)
    for text in (result.stdout, result.stderr):
        assert "\x1b" not in text and "\x07" not in text, (args, text)
        text.encode("utf-8")  # no lone surrogate reached the terminal


@pytest.mark.parametrize("case", [*HOSTILE, *NAMES])
def test_every_command_is_total_on_hostile_fields(tmp, mlp_bundle, case):
    path = write(tmp, _hostile(mlp_bundle[0], case))
    runner = CliRunner()
    for args in READ:
        full = [a.format(tmp=tmp) for a in args[:1]] + [str(path)] + [a.format(tmp=tmp) for a in args[1:]]
        _check(runner.invoke(cli, full), full)


@pytest.mark.parametrize("case", ["target memory string", "name surrogate", "source string"])
def test_measure_is_total_on_hostile_fields(tmp, mlp_bundle, case):
    path = write(tmp, _hostile(mlp_bundle[0], case))
    runner = CliRunner()
    for args in (["measure", str(path), "--runs", "1"], ["report", str(path), "-o", "-", "--runs", "1",
                                                         "--format", "md"]):
        _check(runner.invoke(cli, args), args)


def test_a_surrogate_name_is_refused_in_one_escaped_line(tmp, mlp_bundle):
    # security review 2, F7: a name not writable as UTF-8 is an invalid manifest (it could reach no ONNX graph)
    path = write(tmp, _hostile(mlp_bundle[0], "name surrogate"))
    result = CliRunner().invoke(cli, ["inspect", "--all", str(path)])
    _check(result, ["inspect"])
    assert result.exit_code == 1 and "not valid Unicode" in result.stderr


@pytest.mark.parametrize("case", sorted(set(NAMES) - {"name surrogate"}))
def test_names_are_printed_as_escapes(tmp, mlp_bundle, case):
    path = write(tmp, _hostile(mlp_bundle[0], case))
    result = CliRunner().invoke(cli, ["inspect", "--all", str(path)])
    assert result.exit_code == 0, result.output
    name = NAMES[case]
    shown = "".join(ch if ch.isprintable() else "\\" for ch in name)
    assert any(line.strip().startswith(shown[:1]) for line in result.stdout.splitlines())
    assert name not in result.stdout
    listed = json.loads(CliRunner().invoke(cli, ["inspect", "--json", str(path)]).stdout)
    assert name in [t["name"] for t in listed["manifest"]["tensors"]]  # JSON keeps the name, as an escape
