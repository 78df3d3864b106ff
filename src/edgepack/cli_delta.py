"""`edgepack delta`, `edgepack apply`, and `inspect` on a delta: thin wrappers over the delta API.

cli.py registers these commands on its group and sends `inspect` here when its argument is a delta. Tensor
names and provenance are the bundles' (or the update's) word: every line is printed escaped.
"""

from __future__ import annotations

import json
from typing import Any

import click

from edgepack.packager.untrusted import printable


@click.command("delta")
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Delta file to write.")
@click.option("--level", type=click.IntRange(1, 22), default=19, show_default=True,
              help="zstd level for the coded differences (only the packager pays for a higher one).")
def delta_cmd(old: str, new: str, output: str, level: int) -> None:
    """Write the update that turns bundle OLD into bundle NEW on a device: unchanged blobs referenced by
    hash, changed tensors coded against the old ones. Applied, it gives NEW byte for byte (and NEW's
    signature with it)."""
    from edgepack.packager.delta import describe, make_delta

    for line in describe(make_delta(old, new, output, level=level)):
        click.echo(printable(line))


@click.command("apply")
@click.argument("base", type=click.Path(dir_okay=False))
@click.argument("update", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Bundle file to write.")
@click.option("--public-key", "public_key", type=click.Path(dir_okay=False), default=None,
              help="Refuse, before writing anything, an update whose result is not signed by this key.")
def apply_cmd(base: str, update: str, output: str, public_key: str | None) -> None:
    """Apply UPDATE (from `edgepack delta`) to the bundle BASE, writing the new bundle atomically. BASE is
    never modified; the wrong base, or a corrupt update, writes nothing."""
    from edgepack.runtime.delta import apply_delta

    done = apply_delta(base, update, output, public_key=public_key)
    signed = f", signed by key {done.signer}" + (" (checked)" if public_key else "") if done.signer else ""
    click.echo(f"wrote {done.path}: {done.bytes:,} bytes; {done.copied} blobs kept, {done.changed} tensors rebuilt "
               f"from differences, {done.carried} carried whole{signed}")


def delta_summary(path: str) -> dict[str, Any]:
    """What `inspect` says about a delta: base and result, and the bytes each changed blob takes."""
    from edgepack.runtime.delta_format import OP_COPY
    from edgepack.runtime.delta_reader import open_delta

    with open_delta(path) as d:
        r = d.result
        changed = [{"name": op.result.name, "op": op.op, "transform": op.transform or None,
                    "delta_bytes": op.delta_bytes, "stored_bytes": op.result.length, "raw_bytes": op.result.raw_length}
                   for op in d.ops if op.op != OP_COPY]
        return {"path": path, "delta_bytes": d.file_size, "result_bytes": r.file_bytes,
                "ratio": d.file_size / r.file_bytes, "base_manifest_sha256": d.base_sha256,
                "base_bytes": d.base_bytes, "result_sha256": r.sha256,
                "result_signer": d.result.signature[8:16].hex() if r.signature else None,
                "blobs": len(d.ops), "unchanged": len(d.ops) - len(changed), "changed": changed,
                "provenance": d.index["provenance"]}


def inspect_delta(path: str, as_json: bool) -> None:
    s = delta_summary(path)
    if as_json:
        click.echo(json.dumps(s, indent=1))
        return
    prov = s["provenance"]
    click.echo(f"{printable(path)}: edgepack delta, {s['delta_bytes']:,} bytes = {s['ratio']:.4f}x the full bundle "
               f"it makes ({s['result_bytes']:,} bytes)")
    click.echo(f"  base        {printable(prov.get('base', '?'))}: {s['base_bytes']:,} bytes, manifest sha256 "
               f"{s['base_manifest_sha256']}")
    signer = f", signed by key {s['result_signer']}" if s["result_signer"] else ", unsigned"
    click.echo(f"  result      {printable(prov.get('result', '?'))}: sha256 {s['result_sha256']}{signer}")
    click.echo(f"  blobs       {s['blobs']}: {s['unchanged']} unchanged (referenced by hash), {len(s['changed'])} "
               "changed")
    if s["changed"]:
        names = [printable(c["name"]) for c in s["changed"]]
        width = max(map(len, names))
        click.echo(f"  {'name':<{width}}  {'how':<12} {'delta':>10} {'stored':>10}  ratio")
        for name, c in zip(names, s["changed"]):
            how = c["op"] + (f"/{c['transform']}" if c["transform"] else "")
            click.echo(f"  {name:<{width}}  {how:<12} {c['delta_bytes']:>10,} {c['stored_bytes']:>10,}  "
                       f"{c['delta_bytes'] / max(c['stored_bytes'], 1):.3f}")


def register(group: click.Group) -> None:
    group.add_command(delta_cmd)
    group.add_command(apply_cmd)
