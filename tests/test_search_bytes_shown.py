"""`inspect` and `report` show the bundle file's bytes against --max-bytes, as `package` does: the chosen trial's
bundle lacked the final report the file carries, so its bytes were smaller than the file's (a new user saw
'bundle 6,317 bytes' under a header saying 6,615)."""

from edgepack.packager.report.content import search as search_section
from edgepack.packager.report.parts import Table
from edgepack.packager.search.describe import search_lines

TRIALS = [{"index": 0, "stage": "start", "prune_ratio": 0.0, "mode": "int8-static", "float_nodes": [],
           "meets": True, "bytes": 6317, "accuracy_drop": 0.6, "quantized_weight_fraction": 1.0}]
SEARCH = {"trials": TRIALS, "chosen": 0, "budget": {"max_accuracy_drop": 1.0, "max_bytes": 10000, "max_trials": 24},
          "mode": "int8-static", "stopped": "done", "eval": {"samples": 497, "data": "eval.npz"}}


def test_inspect_shows_the_file_bytes_against_max_bytes():
    held = [line for line in search_lines(SEARCH, bundle_bytes=6615) if line.strip().startswith("holds")][0]
    assert "bundle 6,615 bytes (--max-bytes 10,000 bytes)" in held and "6,317" not in held
    # without the file's size (no bundle at hand), the trial's figure as before
    assert "bundle 6,317 bytes" in "".join(search_lines(SEARCH))


def test_report_budget_table_shows_the_file_bytes():
    d = {"report": {"search": SEARCH}, "bundle": {"bytes": 6615}, "source": {"bytes": 40517}}
    section = search_section(d)
    assert section is not None
    budget = next(i for i in section.items if isinstance(i, Table) and i.header[0] == "budget")
    row = next(r for r in budget.rows if str(r[0]).startswith("--max-bytes"))
    assert row[2] == "6,615"
