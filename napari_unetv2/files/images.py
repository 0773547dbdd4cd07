"""Image and mask files: reading (imageio/tifffile) with clear errors, and atomic PNG/TIFF writing."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


class UnreadableImageError(ValueError):
    pass


def read_image(path: str | Path) -> np.ndarray:
    """The pixel array of an image file, as stored (uint8/uint16/float; 2-D, RGB or RGBA)."""
    path = Path(path)
    try:
        if path.suffix.lower() in {".tif", ".tiff"}:
            import tifffile

            return np.asarray(tifffile.imread(path))
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    except FileNotFoundError:
        raise
    except Exception as err:  # imageio raises many types for a corrupt or foreign file
        raise UnreadableImageError(f"Cannot read image {path}: {err}") from err


def read_mask(path: str | Path) -> np.ndarray:
    """A binary mask (uint8 0/1) from 0/255, 0/1 or RGB mask files."""
    mask = read_image(path)
    if mask.ndim == 3:
        mask = mask[..., :3].max(axis=-1)
    if mask.ndim != 2:
        raise UnreadableImageError(f"Mask {path} has shape {mask.shape}; expected a 2-D or RGB image.")
    threshold = 0.5 if mask.max() <= 1 else (128 if mask.max() <= 255 else mask.max() / 2)
    return (mask >= threshold).astype(np.uint8)


def write_png_atomic(path: str | Path, array: np.ndarray) -> None:
    """Write a PNG via a temporary file and rename, so an interrupt never leaves half a file."""
    import imageio.v3 as iio

    buffer = io.BytesIO()
    iio.imwrite(buffer, array, extension=".png")
    atomic_write_bytes(Path(path), buffer.getvalue())


def write_tiff_atomic(path: str | Path, array: np.ndarray) -> None:
    """Write a TIFF (stacks, float probabilities, 16-bit images) atomically, as :func:`write_png_atomic`."""
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    atomic_write_bytes(Path(path), buffer.getvalue())
