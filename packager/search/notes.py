"""One trial in a few words, for messages and the progress bar."""

from __future__ import annotations

from typing import Any

from edgepack.packager.errors import BudgetNotMet

from .bench import ALL
from .budget import describe_miss
from .trial import Trial, closeness


def describe(t: Trial) -> str:
    """`int8-static, pruned 0.3, 2 nodes in float (a, b), 123,456 bytes`."""
    parts = [t.mode]
    if t.ratio:
        parts.append(f"pruned {t.ratio:g}")
    if t.float_nodes == ALL:
        parts.append("everything in float")
    elif t.float_nodes:
        shown = ", ".join(t.float_nodes[:4]) + (f" and {len(t.float_nodes) - 4} more" if len(t.float_nodes) > 4 else "")
        parts.append(f"{len(t.float_nodes)} node{'s' if len(t.float_nodes) > 1 else ''} in float ({shown})")
    if t.figures.get("bytes"):
        parts.append(f"{t.figures['bytes']:,} bytes")
    return ", ".join(parts)


def _note(t: Trial) -> str:
    if t.error:
        return f"trial {t.index}: failed"
    f = t.figures
    fid = (f"drop {f['accuracy_drop']:.2f} pt" if f.get("accuracy_drop") is not None else
           f"agreement {f['agreement']:.4f}" if f.get("agreement") is not None else
           f"cosine {f['cosine']:.4f}" if f.get("cosine") is not None else "")
    return f"trial {t.index}: {t.mode}, {len(t.float_nodes)} in float, {fid}, {f.get('bytes', 0):,} B " \
           f"{'ok' if t.meets else 'missed'}"


def failure(trials: list[Trial], slower: list[dict[str, Any]], floor: Trial | None, seconds: float) -> BudgetNotMet:
    """The error of a search that met no budget: the closest trial and what it missed; when the speed rule
    alone turned the recipes down, what the model in float (`floor`) missed, so that the advice holds."""
    candidates = [t for t in trials if t.figures]
    best = min(candidates, key=closeness) if candidates else (trials[-1] if trials else None)
    if best is None:
        return BudgetNotMet(f"the budget search could not build any recipe ({seconds:.0f} s)")
    ratios = ", ".join(f"{x['trial']}: {x['ratio']:.2f}x" for x in slower)
    missed = "; ".join(describe_miss(k, v) for k, v in best.misses.items()) or best.error
    records = [t.record() for t in trials]
    if not missed and slower:  # it met every budget: the speed rule alone turned it down
        why = "the quantized recipes that met the fidelity and size budgets ran slower than fp32 on this host " \
              f"(trials {ratios})"
        if floor is not None and (floor.misses or floor.error):   # fp32 cannot meet the budget either
            fails = "; ".join(describe_miss(k, v) for k, v in floor.misses.items()) or f"failed: {floor.error}"
            advice = f"and the model in float (trial {floor.index}) misses it too: {fails}; --allow-slower " \
                     "accepts a slower quantized recipe"
        else:
            advice = "--allow-slower accepts that, or give --quantize none"
        return BudgetNotMet(f"no recipe met the budget in {len(trials)} trials ({seconds:.0f} s): {why}; {advice}",
                            best.record(), best.misses, records)
    missed = missed or "a budget not recorded"
    slow = "" if not slower else (f"; the quantized recipes that met it ran slower than fp32 on this host "
                                  f"(trials {ratios}; --allow-slower accepts that)")
    return BudgetNotMet(f"no recipe met the budget in {len(trials)} trials ({seconds:.0f} s): the closest, "
                        f"trial {best.index} ({describe(best)}), missed {missed}{slow}",
                        best.record() | ({"measured": best.measured} if best.measured else {}), best.misses, records)
