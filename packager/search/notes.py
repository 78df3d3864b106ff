"""One trial in a few words, for messages and the progress bar."""

from __future__ import annotations

from .bench import ALL
from .trial import Trial


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
