"""Makers of the hostile files a hospital file share holds, for tests/test_hostile_*.py.

Each writes one file and returns its path. Pictures are small (64x80) so tests stay fast.
"""
from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

H, W = 64, 80


def picture(seed: int = 0, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """An RGB frame with a dark ellipse: textured, so colour mistakes change the model's output."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    inside = ((yy - h / 2) / (h / 4)) ** 2 + ((xx - w / 2) / (w / 4)) ** 2 <= 1
    base = np.array([200, 140, 130]) + rng.normal(0, 10, (h, w, 3))
    lesion = np.array([110, 50, 50]) + rng.normal(0, 10, (h, w, 3))
    return np.where(inside[..., None], lesion, base).clip(0, 255).astype(np.uint8)


def ellipse_mask(size: tuple[int, int] = (H, W)) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    return (((yy - h / 2) / (h / 4)) ** 2 + ((xx - w / 2) / (w / 4)) ** 2 <= 1).astype(np.uint8)


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        tifffile.imwrite(path, array, **kwargs)
    else:
        Image.fromarray(array).save(path, **kwargs)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A few hundred bytes of PNG whose header declares ``width`` x ``height`` gray pixels (a 'PNG bomb'
    in spirit: decoding would allocate width*height bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    Path(path).write_bytes(data)
    return Path(path)


def tiff_claiming(path: Path, width: int, height: int, size_mb: float = 2.0) -> Path:
    """A TIFF of about ``size_mb`` whose header claims ``width`` x ``height`` (uncompressed, one strip)."""
    with tifffile.TiffFile(_small_tiff(path)) as tif:
        page = tif.pages[0]
        offsets = {tag: page.tags[tag].valueoffset for tag in (256, 257)}
    data = bytearray(Path(path).read_bytes())
    for tag, value in ((256, width), (257, height)):
        data[offsets[tag]: offsets[tag] + 4] = struct.pack("<I", value)
    data += b"\x00" * int(size_mb * 1e6)
    Path(path).write_bytes(bytes(data))
    return Path(path)


def _small_tiff(path: Path) -> Path:
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), rowsperstrip=16)
    return Path(path)


def truncated(path: Path, source: bytes, keep: float = 0.5) -> Path:
    Path(path).write_bytes(source[: int(len(source) * keep)])
    return Path(path)


def jpeg_bytes(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95, **kwargs)
    return buffer.getvalue()


def with_exif_orientation(path: Path, array: np.ndarray, orientation: int) -> Path:
    im = Image.fromarray(array)
    exif = im.getexif()
    exif[274] = orientation
    im.save(path, exif=exif.tobytes())
    return Path(path)


def tree_digest(root: Path, exclude: Path | None = None) -> dict[str, str]:
    """{relative path: sha256 or link target or 'dir'} for everything under ``root`` except ``exclude``
    (symlinks are not followed: their targets are recorded)."""
    root = Path(root)
    found = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if exclude is not None and (here == exclude or exclude in here.parents):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = here / name
            if exclude is not None and path == exclude:
                continue
            rel = os.fsencode(path.relative_to(root)).hex()
            st = path.lstat()
            if path.is_symlink():
                found[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                found[rel] = f"dir:{oct(st.st_mode)}"
            elif path.is_file():
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest() + f":{oct(st.st_mode)}:{st.st_mtime_ns}"
            else:
                found[rel] = f"special:{oct(st.st_mode)}"
    return found
