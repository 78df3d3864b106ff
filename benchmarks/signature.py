"""What checking a signature costs: the runtime's pure-Python Ed25519 against OpenSSL's (through
`cryptography`), and load() with public_key= against load() without, on the same bundle in the same run.

    python benchmarks/signature.py              # the shipped digits CNN and a 50 MB MLP
    python benchmarks/signature.py --repeats 50

Medians are printed, since these machines are noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def median_s(call, repeats: int) -> float:
    return medians_s([call], repeats)[0]


def medians_s(calls, repeats: int) -> list[float]:
    """Median time of each call, the calls alternating so that drift in the machine's load hits all alike."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, out in zip(calls, times):
            t0 = time.perf_counter()
            call()
            out.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def verify_costs(repeats: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgepack.runtime import ed25519

    key = Ed25519PrivateKey.generate()
    public, message = key.public_key(), os.urandom(50_000)  # a manifest of a few hundred tensors
    raw, signature = public.public_bytes_raw(), key.sign(message)
    ours = median_s(lambda: ed25519.verify(raw, message, signature), repeats)
    theirs = median_s(lambda: public.verify(signature, message), repeats)
    print(f"Ed25519 verify, 50 KB message: runtime {ours * 1e3:.2f} ms, OpenSSL {theirs * 1e3:.3f} ms "
          f"({ours / theirs:.0f}x)")


def load_costs(folder: str, repeats: int) -> None:
    import edgepack
    import graphs
    from edgepack.packager.demo import demo_files
    from edgepack.packager.sign import keygen, sign_bundle
    from edgepack.runtime import load, open_bundle

    keys = keygen(os.path.join(folder, "key"))
    models = [("digits CNN", demo_files()[0]), ("50 MB MLP", graphs.mlp_bytes(50)[0])]
    for name, model in models:
        path = os.path.join(folder, "m.edgepack")
        edgepack.package(model, output=path)
        sign_bundle(path, keys.private_path)
        opened, checked = medians_s([lambda path=path: open_bundle(path).close(),
                                     lambda path=path: open_bundle(path, public_key=keys.public_path).close()],
                                    repeats * 3)
        plain, signed = medians_s([lambda path=path: load(path),
                                   lambda path=path: load(path, public_key=keys.public_path)], repeats)
        print(f"{name}: open_bundle {opened * 1e3:.2f} ms, with the key {checked * 1e3:.2f} ms; load "
              f"{plain * 1e3:.1f} ms, with the key {signed * 1e3:.1f} ms ({signed / plain:.3f}x)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=21)
    args = p.parse_args()
    verify_costs(args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        load_costs(folder, args.repeats)


if __name__ == "__main__":
    main()
