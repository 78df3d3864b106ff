"""`edgepack verify`, `edgepack keygen` and `edgepack sign`: a bundle's checksums and signature, over
edgepack.runtime.open_bundle and edgepack.packager.sign. Registered on the main group by cli.py."""

from __future__ import annotations

import click

from edgepack.runtime.errors import EdgepackError


# --- verify --------------------------------------------------------------------------------------------

@click.command("verify")
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

@click.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace PATH and PATH.pub if they exist.")
def keygen_cmd(path: str, force: bool) -> None:
    """Write a new Ed25519 key pair: PATH (private, PEM, mode 0600) and PATH.pub (public, PEM)."""
    from edgepack.packager.sign import keygen

    pair = keygen(path, overwrite=force)
    click.echo(f"wrote {pair.private_path} (private: keep it secret) and {pair.public_path} "
               f"(public: ship it with the runtime); key id {pair.key_id}")


@click.command("sign")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--key", "key", required=True, type=click.Path(dir_okay=False), help="Private key file (from keygen).")
def sign_cmd(bundle: str, key: str) -> None:
    """Verify BUNDLE, then sign it with KEY (rewrites the file atomically)."""
    from edgepack.packager.sign import sign_bundle

    signed = sign_bundle(bundle, key)
    click.echo(f"signed {signed.path} with key {signed.key_id} ({signed.bundle_bytes:,} bytes)")


def register(group: click.Group) -> None:
    for command in (verify_cmd, keygen_cmd, sign_cmd):
        group.add_command(command)
