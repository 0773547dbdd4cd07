"""The SHA-256 of a file's bytes: what a record names an input file by, beside its name (two sites' ``IMG_0001.png``,
or one edited since, are other files of one name). SHA-256, not a hash of our own, so that a reviewer checks a record
with any tool (``sha256sum``)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
