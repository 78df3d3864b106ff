"""The valid bundles the fuzzer mutates: one per kind of graph in tests/graphs.py, the shipped digits CNN,
one with externally bound tensors, and signed copies (whose mutants must load with the public key only if
they still compute exactly what the original did).

Seeds are built once (packaging needs onnx and the packager) into a folder that worker processes read:
NAME.edgepack, NAME.npz (feeds and expected outputs) and, for signed seeds, NAME.pub (raw public key).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

import bundles

# Seeds whose copies are signed: a small MLP and a graph with subgraphs.
SIGNED = ("mlp", "subgraphs")


def signing_seed(name: str) -> bytes:
    """A fixed key per signed seed (not a secret: it signs test bundles only). One key per seed, so that a
    mutant that passes the check is that seed's bundle, whose outputs the oracle knows."""
    import hashlib

    return hashlib.sha256(f"edgepack fuzz seed {name}".encode()).digest()


@dataclass
class Seed:
    name: str
    data: bytes
    feeds: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    public_key: bytes | None = None
    manifest: dict = field(default_factory=dict)    # filled by decode()
    graph: bytes = b""
    tensors: list[bytes] = field(default_factory=list)

    def decode(self, path: str) -> Seed:
        self.manifest, self.graph, self.tensors = bundles.decoded(path)
        return self


def _package(model, path: str) -> None:
    import edgepack

    edgepack.package(model, output=path, level=1)


def _external(path: str) -> tuple:
    """A model whose 1 MiB weight is bound externally (as in graphs over 2 GB), by lowering the limit."""
    import graphs
    from edgepack.packager import skeleton

    model, feeds = graphs.mlp(d_in=512, hidden=(512,), d_out=8)
    saved = skeleton.INLINE_LIMIT
    skeleton.INLINE_LIMIT = 200_000
    try:
        _package(model, path)
    finally:
        skeleton.INLINE_LIMIT = saved
    return model, feeds


def sign_with_seed(path: str, seed: bytes, folder: str) -> bytes:
    """Sign the bundle at `path` with the key derived from `seed`; return the raw public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgepack.packager.sign import sign_bundle

    key = Ed25519PrivateKey.from_private_bytes(seed)
    key_path = os.path.join(folder, "signing.key")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    sign_bundle(path, key_path)
    return key.public_key().public_bytes_raw()


def build(folder: str) -> list[str]:
    """Write every seed into `folder`; return their names."""
    import graphs
    from edgepack.packager.demo import demo_files
    from edgepack.runtime import load

    model_path, samples_path = demo_files()  # the shipped digits CNN and its held-out samples

    os.makedirs(folder, exist_ok=True)
    names = []
    for name, builder in graphs.ALL.items():
        model, feeds = builder()
        _package(model, os.path.join(folder, f"{name}.edgepack"))
        names.append((name, feeds))
    _external(os.path.join(folder, "external.edgepack"))
    names.append(("external", graphs.mlp(d_in=512, hidden=(512,), d_out=8)[1]))
    _package(model_path, os.path.join(folder, "digits.edgepack"))
    with np.load(samples_path) as samples:
        names.append(("digits", {"x": samples["x"][:2]}))
    for name in SIGNED:
        signed = f"{name}-signed"
        path = os.path.join(folder, f"{signed}.edgepack")
        with open(os.path.join(folder, f"{name}.edgepack"), "rb") as src, open(path, "wb") as dst:
            dst.write(src.read())
        with open(os.path.join(folder, f"{signed}.pub"), "wb") as f:
            f.write(sign_with_seed(path, signing_seed(name), folder))
        names.append((signed, dict(names)[name]))
    for name, feeds in names:
        path = os.path.join(folder, f"{name}.edgepack")
        expected = load(path).run(feeds)
        np.savez(os.path.join(folder, f"{name}.npz"), **{f"in:{k}": v for k, v in feeds.items()},
                 **{f"out:{k}": v for k, v in expected.items()})
    return [name for name, _ in names]


def read(folder: str) -> list[Seed]:
    """The seeds a previous build() wrote, decoded."""
    seeds = []
    for entry in sorted(os.listdir(folder)):
        if not entry.endswith(".edgepack"):
            continue
        name = entry[:-len(".edgepack")]
        path = os.path.join(folder, entry)
        with open(path, "rb") as f:
            data = f.read()
        with np.load(os.path.join(folder, f"{name}.npz")) as z:
            feeds = {k[3:]: z[k] for k in z.files if k.startswith("in:")}
            expected = {k[4:]: z[k] for k in z.files if k.startswith("out:")}
        pub = os.path.join(folder, f"{name}.pub")
        public = open(pub, "rb").read() if os.path.exists(pub) else None
        seeds.append(Seed(name, data, feeds, expected, public).decode(path))
    return seeds
