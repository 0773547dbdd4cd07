"""The SHA-256 of a file's bytes: what a record names an input file by, beside its name (two sites' ``IMG_0001.png``,
or one edited since, are other files of one name). SHA-256, not a hash of our own, so that a reviewer checks a record
with any tool (``sha256sum``)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()  # (hashlib.file_digest is Python 3.11's; the project runs on 3.10 too)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class DigestingReader:
    """A batch run's image reader that notes the SHA-256 of each file it decodes, for its summary row: hashed in the
    reading thread (read ahead, not in the network's way), just before decoding, and checked unchanged (size and time)
    after it, so that the hash is of the bytes segmented."""

    def __init__(self, read):
        self.read, self.digests = read, {}

    def __call__(self, path: Path):
        before = os.stat(path)
        digest = file_sha256(path)
        image = self.read(path)
        after = os.stat(path)
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            raise OSError(f"{Path(path).name} changed while it was read (written to meanwhile?); run --continue "
                          "again once it is complete")
        self.digests[Path(path)] = digest
        return image
