"""The `edgepack` command: thin wrappers over the Python API, one per subcommand.

Errors on bad input print one line (`edgepack: error: ...`) and exit 1; usage errors exit 2; a bug prints one
line and exits 3 (set EDGEPACK_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from edgepack.runtime.errors import EdgepackError


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgepackError as e:
            click.echo(f"edgepack: error: {_one_line(e)}", err=True)
            ctx.exit(1)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, BrokenPipeError):
            raise
        except KeyboardInterrupt:
            click.echo("edgepack: interrupted", err=True)
            ctx.exit(130)
        except Exception as e:
            if os.environ.get("EDGEPACK_DEBUG"):
                raise
            click.echo(f"edgepack: internal error: {type(e).__name__}: {_one_line(e)[:500]} "
                       "(a bug; rerun with EDGEPACK_DEBUG=1 for a traceback)", err=True)
            ctx.exit(3)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="edgepack")
def cli() -> None:
    """Package neural networks for edge devices, and run them there."""


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


# --- package -------------------------------------------------------------------------------------------

@cli.command("package")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Bundle file to write.")
@click.option("--target", default=None, help="Target profile name or file (default: this host's generic profile).")
@click.option("--level", type=click.IntRange(1, 22), default=None, help="zstd level (default: the profile's).")
def package_cmd(model: str, output: str, target: str | None, level: int | None) -> None:
    """Package MODEL (.onnx) into a bundle for one target device."""
    from edgepack.packager import package

    result = package(model, output=output, target=target, level=level)
    click.echo(f"wrote {result.path}: {result.bundle_bytes:,} bytes, {result.ratio:.3f}x the "
               f"{result.source_bytes:,}-byte source, for {result.target}")


# --- run -----------------------------------------------------------------------------------------------

def random_feeds(session: Any, seed: int = 0) -> dict[str, Any]:
    """Feeds of the right dtypes and shapes (dynamic dimensions set to 1)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in session.inputs:
        shape = [d if isinstance(d, int) else 1 for d in spec.shape]
        dtype = np.dtype(spec.dtype or np.float32)
        if dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        else:  # integers (ids, indices) and booleans: small values valid for any vocabulary
            feeds[spec.name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds


def _load_npz(path: str, what: str) -> dict[str, Any]:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise EdgepackError(f"{path}: cannot read {what} ({_one_line(e)[:200]}); give an .npz file") from None


@cli.command("run")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--inputs", "inputs_path", type=click.Path(dir_okay=False), default=None,
              help=".npz of feeds keyed by input name (default: random feeds, and it says so).")
@click.option("--output", "output_path", type=click.Path(dir_okay=False), default=None,
              help="Write the outputs to this .npz, keyed by output name.")
@click.option("--target", default=None, help="Run with this profile instead of the one the bundle records.")
@click.option("--public-key", "public_key", type=click.Path(dir_okay=False), default=None,
              help="Refuse the bundle unless this key (a .pub file from keygen) signed it.")
def run_cmd(bundle: str, inputs_path: str | None, output_path: str | None, target: str | None,
            public_key: str | None) -> None:
    """Run BUNDLE once and print its outputs' shapes and first values."""
    import numpy as np

    from edgepack.packager.writer import write_atomic
    from edgepack.runtime import load

    session = load(bundle, target=target, public_key=public_key)
    if inputs_path:
        feeds = _load_npz(inputs_path, "inputs")
        feeds.pop("labels", None)
    else:
        feeds = random_feeds(session)
        click.echo("note: no --inputs given: running on random inputs "
                   + ", ".join(f"{k}{list(v.shape)}" for k, v in feeds.items()), err=True)
    outputs = session.run(feeds)
    for name, value in outputs.items():
        flat = np.asarray(value).ravel()
        click.echo(f"{name}: {value.dtype}{list(value.shape)} {np.array2string(flat[:6], precision=4)}"
                   f"{' ...' if flat.size > 6 else ''}")
    if output_path:
        import io

        buf = io.BytesIO()
        np.savez(buf, **outputs)
        write_atomic(output_path, [buf.getvalue()])
        click.echo(f"wrote {output_path}")


# --- inspect -------------------------------------------------------------------------------------------

def summary(path: str) -> dict[str, Any]:
    """What `inspect --json` prints: the manifest plus sizes; decodes nothing."""
    from edgepack.runtime import open_bundle

    with open_bundle(path) as b:
        m = b.manifest
        return {
            "path": path, "bundle_bytes": b.file_size, "stored_bytes": m.stored_bytes, "raw_bytes": m.raw_bytes,
            "compression_ratio": (m.stored_bytes / m.raw_bytes) if m.raw_bytes else 1.0,
            "signed": bool(b.signature), "signer": b.signer, "tensor_count": len(m.tensors), "manifest": m.raw,
        }


@cli.command("inspect")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest and sizes as JSON.")
@click.option("--all", "show_all", is_flag=True, help="List every tensor (default: the 20 largest).")
def inspect_cmd(bundle: str, as_json: bool, show_all: bool) -> None:
    """Show BUNDLE's manifest: target, provenance, tensors and sizes. Decodes no tensor."""
    s = summary(bundle)
    if as_json:
        click.echo(json.dumps(s, indent=1))
        return
    m = s["manifest"]
    prov = m["provenance"]
    src = prov.get("source", {})
    click.echo(f"{bundle}: edgepack bundle v{m['version']}, {s['bundle_bytes']:,} bytes"
               f"{(', signed by key ' + str(s['signer'])) if s['signed'] else ''}")
    click.echo(f"  target      {m['target'].get('name', '?')}")
    click.echo(f"  source      {src.get('name', '?')} ({src.get('kind', '?')}, {src.get('bytes', 0):,} bytes, "
               f"sha256 {str(src.get('sha256', ''))[:16]}...)")
    click.echo(f"  steps       {', '.join(step['name'] for step in prov.get('steps', []))}")
    click.echo(f"  tensors     {s['tensor_count']}: {_human(s['raw_bytes'])} raw, {_human(s['stored_bytes'])} "
               f"stored ({s['compression_ratio']:.3f}x)")
    tensors = sorted(m["tensors"], key=lambda t: -t["raw_length"])
    shown = tensors if show_all else tensors[:20]
    width = max([len(t["name"]) for t in shown] + [4])
    click.echo(f"  {'name':<{width}}  {'dtype':<8} {'shape':<18} {'codec':<14} {'raw':>10} {'stored':>10}  ratio")
    for t in shown:
        ratio = t["length"] / t["raw_length"] if t["raw_length"] else 1.0
        click.echo(f"  {t['name']:<{width}}  {t['dtype']:<8} {str(t['shape']):<18} {t['codec']:<14} "
                   f"{_human(t['raw_length']):>10} {_human(t['length']):>10}  {ratio:.3f}")
    if len(shown) < len(tensors):
        click.echo(f"  ... {len(tensors) - len(shown)} smaller tensors (--all lists them)")
    report = m.get("report") or {}
    extra = {k: v for k, v in report.items() if k != "lossless"}
    if extra:
        click.echo("  report      " + json.dumps(extra)[:2000])


# --- verify --------------------------------------------------------------------------------------------

@cli.command("verify")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--public-key", "public_key", type=click.Path(dir_okay=False), default=None,
              help="Also require a valid signature by this key (a .pub file from keygen).")
def verify_cmd(bundle: str, public_key: str | None) -> None:
    """Check every tensor's SHA-256, the padding and the file's structure (and the signature, with a key)."""
    from edgepack.runtime import open_bundle

    with open_bundle(bundle, public_key=public_key) as b:
        problems = b.verify()
        n, raw, signer = len(b.manifest.tensors), b.manifest.raw_bytes, b.signer
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise EdgepackError(problems[0] + more)
    signed = (f", signed by key {signer}" if public_key else
              f" (signed by key {signer}: pass --public-key to check the signature)" if signer else "")
    click.echo(f"ok: {bundle}: graph and {n} tensors, {raw:,} bytes, every SHA-256 matches{signed}")


# --- keys and signatures -------------------------------------------------------------------------------

@cli.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace PATH and PATH.pub if they exist.")
def keygen_cmd(path: str, force: bool) -> None:
    """Write a new Ed25519 key pair: PATH (private, PEM, mode 0600) and PATH.pub (public, PEM)."""
    from edgepack.packager.sign import keygen

    pair = keygen(path, overwrite=force)
    click.echo(f"wrote {pair.private_path} (private: keep it secret) and {pair.public_path} "
               f"(public: ship it with the runtime); key id {pair.key_id}")


@cli.command("sign")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--key", "key", required=True, type=click.Path(dir_okay=False), help="Private key file (from keygen).")
def sign_cmd(bundle: str, key: str) -> None:
    """Verify BUNDLE, then sign it with KEY (rewrites the file atomically)."""
    from edgepack.packager.sign import sign_bundle

    signed = sign_bundle(bundle, key)
    click.echo(f"signed {signed.path} with key {signed.key_id} ({signed.bundle_bytes:,} bytes)")


# --- targets -------------------------------------------------------------------------------------------

@cli.group("targets", cls=_Group, invoke_without_command=True)
@click.pass_context
def targets_cmd(ctx: click.Context) -> None:
    """List the device profiles (`targets show NAME` prints one)."""
    if ctx.invoked_subcommand is None:
        from edgepack.runtime.profile import builtin_names, load_profile

        for name in builtin_names():
            click.echo(f"{name:<22} {load_profile(name).description}")


@targets_cmd.command("show")
@click.argument("name")
def targets_show(name: str) -> None:
    """Print one profile (a name, or a profile file of your own) as JSON."""
    from edgepack.runtime.profile import load_profile

    click.echo(json.dumps(load_profile(name).to_dict(), indent=2))


# --- demo ----------------------------------------------------------------------------------------------

@cli.command("demo")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Keep the bundle here.")
def demo_cmd(output: str | None) -> None:
    """Package the shipped digits model for this host, run it on real samples, report."""
    from edgepack.packager.demo import run_demo

    for line in run_demo(output).lines():
        click.echo(line)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="edgepack")
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
