"""`edgepack targets` (list, show, detect): the device profiles and this device, from edgepack.runtime.profile,
edgepack.runtime.device and edgepack.runtime.compat. Registered on the main group by cli.py."""

from __future__ import annotations

import json

import click


# --- targets -------------------------------------------------------------------------------------------

@click.group("targets", invoke_without_command=True)
@click.pass_context
def targets_cmd(ctx: click.Context) -> None:
    """List the device profiles (`targets show NAME` prints one)."""
    if ctx.invoked_subcommand is None:
        from edgepack.runtime.profile import builtin_names, load_profile

        click.echo(f"{'name':<20} {'arch':<8} {'cores':>5} {'budget':>8}  {'providers':<28} description")
        for name in builtin_names():
            p = load_profile(name)
            providers = ",".join(x.replace("ExecutionProvider", "") for x in p.providers)
            budget = f"{p.memory.budget_mb} MB" if p.memory.budget_mb else "-"
            click.echo(f"{name:<20} {p.device.architecture:<8} {p.device.cores or '-':>5} {budget:>8}  "
                       f"{providers:<28} {p.description}")


@targets_cmd.command("show")
@click.argument("name")
def targets_show(name: str) -> None:
    """Print one profile (a name, or a profile file of your own) as JSON."""
    from edgepack.runtime.profile import load_profile

    click.echo(json.dumps(load_profile(name).to_dict(), indent=2))


@targets_cmd.command("detect")
@click.option("--json", "as_json", is_flag=True, help="Print the device as JSON.")
def targets_detect(as_json: bool) -> None:
    """Describe this device and how each profile matches it."""
    from edgepack.runtime.compat import closest, compare
    from edgepack.runtime.device import detect_with_onnxruntime
    from edgepack.runtime.profile import builtin_names, load_profile

    device = detect_with_onnxruntime()
    profiles = [load_profile(name) for name in builtin_names()]
    matches = {}
    for p in profiles:
        c = compare(p, device)
        matches[p.name] = {"refused": c.refusals, "differences": c.notes}
    best = closest(profiles, device)
    if as_json:
        click.echo(json.dumps({"device": device.to_dict(), "closest": best.name if best else None,
                               "targets": matches}, indent=1))
        return
    d = device.to_dict()
    features = d["features"]
    click.echo(f"this device: {d['architecture']}, {d['cpu'] or 'CPU unknown'}, {d['cores']} usable cores, "
               f"{d['memory_mb']} MB memory ({d['available_mb']} MB available)")
    click.echo(f"  features   {' '.join(features) if features is not None else 'unknown'}")
    click.echo(f"  providers  {', '.join(d['providers'])}")
    for name, m in matches.items():
        verdict = ("refused: " + "; ".join(m["refused"]) if m["refused"] else
                   "matches" if not m["differences"] else "runs, differs: " + "; ".join(m["differences"]))
        click.echo(f"  {name:<20} {verdict}")
    click.echo(f"closest profile: {best.name if best else 'none'}")


def register(group: click.Group) -> None:
    group.add_command(targets_cmd)
