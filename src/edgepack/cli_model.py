"""`edgepack export` (the packaged model back out as an .onnx file) and the inputs and outputs `inspect` shows.
Registered on the main group by cli.py."""

from __future__ import annotations

import click


@click.command("export")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--public-key", "public_key", type=click.Path(dir_okay=False), default=None,
              help="Refuse the bundle unless this key (a .pub file from keygen) signed it.")
def export_cmd(bundle: str, output: str, public_key: str | None) -> None:
    """Write the model packaged in BUNDLE as an .onnx file: exactly the model the runtime runs (bit-identical
    initializers), for Netron, onnxruntime_perf_test or onnx. Every tensor's SHA-256 is checked."""
    from edgepack.packager.export import export_model

    done = export_model(bundle, output, public_key=public_key)
    data = f", its largest tensors in {done.data_path}" if done.data_path else ""
    click.echo(f"wrote {done.path}: {done.model_bytes:,} bytes, {done.tensors} tensors{data}")


def register(group: click.Group) -> None:
    group.add_command(export_cmd)
