"""Helpers to take a valid bundle apart and put it back together with one thing wrong."""

import json

import zstandard

from edgepack.runtime.format import DATA_START, FLAG_MANIFEST_ZSTD, HEADER, HEADER_SIZE, MAGIC, VERSION


def parts(data: bytes):
    """(header fields, data section, manifest dict, signature) of a bundle's bytes."""
    magic, version, flags, m_off, m_len, s_len = HEADER.unpack(data[:HEADER_SIZE])
    stored = data[m_off:m_off + m_len]
    if flags & FLAG_MANIFEST_ZSTD:
        stored = zstandard.ZstdDecompressor().decompress(stored)
    manifest = json.loads(stored)
    return (magic, version, flags), data[DATA_START:m_off], manifest, data[m_off + m_len:m_off + m_len + s_len]


def assemble(data_section: bytes, manifest, signature: bytes = b"", magic=MAGIC, version=VERSION, flags=0,
             manifest_bytes: bytes | None = None) -> bytes:
    """A bundle with the manifest stored as plain JSON (flags=0), unless other bytes and flags are given."""
    m = manifest_bytes if manifest_bytes is not None else json.dumps(manifest, separators=(",", ":")).encode()
    header = HEADER.pack(magic, version, flags, DATA_START + len(data_section), len(m), len(signature))
    return header + bytes(DATA_START - HEADER_SIZE) + data_section + m + signature


def edit_manifest(data: bytes, edit) -> bytes:
    """A copy of the bundle with edit(manifest) applied (edit mutates the dict in place)."""
    _, section, manifest, sig = parts(data)
    edit(manifest)
    return assemble(section, manifest, sig)


def write(folder, data: bytes):
    """`data` written to a bundle file in `folder`; returns its path."""
    path = folder / "x.edgepack"
    path.write_bytes(data)
    return path
