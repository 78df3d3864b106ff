"""The sections of a bundle's report (manifest["report"]), named once: the pipeline's steps write them, the CLI,
`edgepack show` and `edgepack report` read them. Each section's own fields are documented in docs/FORMAT.md and
docs/BUDGET.md; `Report` says which sections there are and which step writes each.
"""

from __future__ import annotations

from typing import Any, TypedDict

from edgepack.runtime.feeds import RECORDED

IMPORT = "import"               # import step: the converter's check against the source model's outputs
LLM = "llm"                     # import step: a language model's architecture and tokenizer
PRUNE = "prune"                 # prune step
QUANTIZATION = "quantization"   # quantize step: the quantizer's counts and the recipe chosen
WARNINGS = "warnings"           # quantize and fidelity steps: lines for the user, appended in order
FIDELITY = "fidelity"           # fidelity step: figures per output against the original
INPUT_SHAPES = RECORDED         # fidelity step: the sample shapes of inputs with dynamic dimensions
LAYERS = "layers"               # fidelity step: bytes per layer before and after
SEARCH = "search"               # budget search: its trials and choice (deterministic)
LOSSLESS = "lossless"           # encode step: tensors, raw and stored bytes, codecs used
# returned to the caller (PackageResult.report), never written into the bundle: they differ from run to run
SPEED = "speed"                 # fidelity step: timings of both models on this host
SEARCH_TIMING = "search_timing"  # budget search: seconds and measurements


class LosslessSection(TypedDict):
    tensors: int
    raw_bytes: int
    stored_bytes: int
    codecs: dict[str, int]


class ImportSection(TypedDict):
    check: dict[str, Any]


# The report as a whole (every section optional): functional syntax, since "import" is a keyword; the keys
# are literals (a type checker needs them so) and equal the names above (tests/test_report.py checks).
Report = TypedDict("Report", {
    "import": ImportSection,
    "llm": dict[str, Any],
    "prune": dict[str, Any],
    "quantization": dict[str, Any],
    "warnings": list[str],
    "fidelity": dict[str, Any],
    "input_shapes": dict[str, list[int]],
    "layers": dict[str, Any],
    "search": dict[str, Any],
    "lossless": LosslessSection,
    "speed": dict[str, Any],
    "search_timing": dict[str, Any],
}, total=False)

IN_BUNDLE = (IMPORT, LLM, SEARCH, PRUNE, QUANTIZATION, WARNINGS, FIDELITY, INPUT_SHAPES, LAYERS, LOSSLESS)
RUN_ONLY = (SPEED, SEARCH_TIMING)

__all__ = ["IMPORT", "LLM", "PRUNE", "QUANTIZATION", "WARNINGS", "FIDELITY", "INPUT_SHAPES", "LAYERS", "SEARCH",
           "LOSSLESS", "SPEED", "SEARCH_TIMING", "Report", "LosslessSection", "ImportSection", "IN_BUNDLE",
           "RUN_ONLY"]
