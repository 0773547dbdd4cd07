"""Image and mask files: the one reader (colour modes, channel order, orientation, a pixel limit) and
atomic PNG/TIFF writing.

Reading rules (docs/robustness.md lists the cases and their tests):

- Every format's size is checked from its header *before* decoding: a file whose pixels exceed
  :data:`MAX_PIXELS` (over all frames/pages; ``NAPARI_UNETV2_MAX_PIXELS`` overrides) is refused with
  :class:`UnreadableImageError`, so a 2 MB TIFF claiming 50000x50000 never allocates 7.5 GB.
- Colour modes become what they look like: CMYK -> RGB (through the file's ICC profile when it has
  one), palette -> RGB(A), 1-bit -> 0/255, gray+alpha -> gray; 16-bit (I;16), 32-bit integer (I) and
  float (F) data keep their values.
- TIFF: a samples axis anywhere (channel-first ``(3, H, W)`` planar RGB) is moved last; other leading
  axes (Z, T, pages) form a stack ``(N, H, W[, C])``; min-is-white is inverted; CMYK is converted.
- EXIF (JPEG/PNG/...) and TIFF orientation tags are applied: arrays are in the orientation that
  photo viewers show, for images and masks alike.
"""
from __future__ import annotations

import io
import logging
import math
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from .atomic import atomic_write_bytes

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
TIFF_SUFFIXES = {".tif", ".tiff"}
# Pillow refuses more than twice its MAX_IMAGE_PIXELS (89.5 M) as a decompression bomb; the same limit
# now holds for every format, TIFF included.
MAX_PIXELS = 178_956_970
# A mask with few distinct values and a maximum below this is a label image: foreground where > 0.
LABEL_MAX = 128


class UnreadableImageError(ValueError):
    pass


def max_pixels() -> int:
    override = os.environ.get("NAPARI_UNETV2_MAX_PIXELS", "")
    return int(override) if override.isdigit() and int(override) > 0 else MAX_PIXELS


def _check_pixels(path: Path, pixels: int, limit: Optional[int]) -> None:
    limit = max_pixels() if limit is None else limit
    if pixels > limit:
        raise UnreadableImageError(
            f"Cannot read image {path.name}: its header declares {pixels:,} pixels, more than the limit of "
            f"{limit:,} (set NAPARI_UNETV2_MAX_PIXELS to allow larger images)."
        )


# ---- orientation -------------------------------------------------------------------------------------

def _orient(array: np.ndarray, orientation: int, y_axis: int, x_axis: int) -> np.ndarray:
    """Apply an EXIF/TIFF orientation value (1-8) to the (y, x) axes: stored -> displayed."""
    # Each value as steps of "t" (swap y and x), "x" (flip left-right), "y" (flip top-bottom); 6 turns
    # the picture 90 degrees clockwise, 8 counter-clockwise, as Pillow's ImageOps.exif_transpose.
    steps = {2: "x", 3: "xy", 4: "y", 5: "t", 6: "tx", 7: "txy", 8: "ty"}.get(int(orientation), "")
    for step in steps:
        if step == "t":
            array = np.swapaxes(array, y_axis, x_axis)
        else:
            array = np.flip(array, axis=x_axis if step == "x" else y_axis)
    return np.ascontiguousarray(array)


# ---- TIFF ----------------------------------------------------------------------------------------------

def _tiff_layout(series) -> tuple[tuple[int, ...], str]:
    return tuple(int(s) for s in series.shape), str(series.axes)


def _tiff_pixels(shape: tuple[int, ...], axes: str) -> int:
    channels = shape[axes.index("S")] if "S" in axes else 1
    return math.prod(shape) // max(1, channels)


def _tiff_channels_last(data: np.ndarray, axes: str) -> tuple[np.ndarray, bool]:
    """Samples ('S', or an ImageJ 'C' axis of 3/4) last; leading axes flattened into one stack axis."""
    for name in ("S", "C"):
        if name in axes and (name == "S" or data.shape[axes.index(name)] in (3, 4)):
            i = axes.index(name)
            data = np.moveaxis(data, i, -1)
            axes = axes[:i] + axes[i + 1:] + "S"
            break
    channels = 1 if axes.endswith("S") else 0
    spatial_end = len(axes) - channels
    lead = data.shape[: spatial_end - 2]
    if lead:
        n = math.prod(lead)
        data = data.reshape((n,) + data.shape[spatial_end - 2:])
        if n == 1:
            data = data[0]
    if channels and data.shape[-1] == 1:
        data, channels = data[..., 0], 0
    return data, bool(channels)


def _tiff_colours(data: np.ndarray, page, keep_palette_indices: bool) -> np.ndarray:
    photometric = int(page.photometric) if page.photometric is not None else 1
    if photometric == 0 and np.issubdtype(data.dtype, np.integer):  # MINISWHITE: 0 is white
        data = np.iinfo(data.dtype).max - data
    elif photometric == 3 and not keep_palette_indices and page.colormap is not None:  # PALETTE
        cmap = np.asarray(page.colormap)
        rgb = cmap[:, np.clip(data, 0, cmap.shape[1] - 1)]
        data = np.moveaxis(rgb, 0, -1)
        data = (data // 257).astype(np.uint8) if data.max() > 255 else data.astype(np.uint8)
    elif photometric == 5 and data.ndim >= 3 and data.shape[-1] >= 4:  # SEPARATED: CMYK
        top = float(np.iinfo(data.dtype).max) if np.issubdtype(data.dtype, np.integer) else 1.0
        cmyk = data[..., :4].astype(np.float32) / top
        rgb = (1.0 - cmyk[..., :3]) * (1.0 - cmyk[..., 3:4])
        data = (rgb * 255.0 + 0.5).astype(np.uint8)
    return data


@contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """tifffile logs each inconsistency of a damaged header (as warnings and errors); the caller gets one clear error."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _read_tiff(path: Path, limit: Optional[int], keep_palette_indices: bool) -> np.ndarray:
    import tifffile

    with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape, axes = _tiff_layout(series)
        _check_pixels(path, _tiff_pixels(shape, axes), limit)
        page = tif.pages[0]
        data = series.asarray()
        data, has_channels = _tiff_channels_last(data, axes)
        if has_channels and data.shape[-1] > 4:
            raise UnreadableImageError(f"Cannot read image {path.name}: it has {data.shape[-1]} channels per pixel; "
                                       "expected gray, RGB or RGBA (pick the channels to use and save them).")
        converted = _tiff_colours(data, page, keep_palette_indices)
        has_channels = has_channels or converted.ndim > data.ndim  # a palette became RGB
        data = converted
        orientation = page.tags.get(274)
        if orientation is not None and orientation.value not in (None, 1):
            y_axis = data.ndim - (3 if has_channels else 2)
            data = _orient(data, orientation.value, y_axis, y_axis + 1)
    return np.asarray(data)


def _tiff_header(path: Path) -> tuple[int, int]:
    import tifffile

    with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
        shape, axes = _tiff_layout(tif.series[0])
        orientation = tif.pages[0].tags.get(274)
    height, width = shape[axes.index("Y")], shape[axes.index("X")]
    if orientation is not None and orientation.value in (5, 6, 7, 8):
        height, width = width, height
    return height, width


# ---- Pillow (PNG, JPEG, BMP and anything else) -------------------------------------------------------------

def _cmyk_to_rgb(im):
    icc = im.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # a damaged profile: fall back to the plain formula below
            pass
    return im.convert("RGB")


def _pil_to_array(im, keep_alpha: bool, keep_palette_indices: bool) -> np.ndarray:
    mode = im.mode
    if mode == "CMYK":
        im = _cmyk_to_rgb(im)
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        if keep_palette_indices and mode == "P":
            return np.asarray(im)
        im = im.convert("RGBA" if (mode == "PA" or "transparency" in im.info) else "RGB")
    elif mode in ("LA", "La"):
        if not keep_alpha:
            im = im.getchannel("L")
        elif mode == "La":
            im = im.convert("LA")
    elif mode in ("RGBa", "RGBX", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGBA" if mode == "RGBa" else "RGB")
    return np.asarray(im)


def _open_pil(path: Path, limit: Optional[int]):
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit here is checked below
        try:
            im = Image.open(path)
        except Image.DecompressionBombError as err:  # Pillow's own check fired first (same limit)
            raise UnreadableImageError(f"Cannot read image {path.name}: more pixels than the limit of "
                                       f"{max_pixels() if limit is None else limit:,} ({err})") from err
    _check_pixels(path, im.width * im.height, limit)
    return im


def _read_pil(path: Path, limit: Optional[int], keep_alpha: bool, keep_palette_indices: bool) -> np.ndarray:
    from PIL import Image

    with _open_pil(path, limit) as im:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
            orientation = im.getexif().get(274, 1)
            data = _pil_to_array(im, keep_alpha, keep_palette_indices)
    # Orientation is applied to the array (not by ImageOps.exif_transpose) so palette indices keep their meaning.
    if orientation not in (None, 1):
        data = _orient(data, orientation, 0, 1)
    return np.asarray(data)


def _pil_header(path: Path) -> tuple[int, int]:
    with _open_pil(path, limit=None) as im:
        orientation = im.getexif().get(274, 1)
        width, height = im.size
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


# ---- public API ------------------------------------------------------------------------------------------

def _decode(path: str | Path, limit: Optional[int], keep_alpha: bool, keep_palette_indices: bool) -> np.ndarray:
    path = Path(path)
    if path.is_dir():
        raise UnreadableImageError(f"Cannot read image {path}: it is a folder.")
    if path.is_file() and path.stat().st_size == 0:  # (a FIFO or device is left to the decoders' own errors)
        raise UnreadableImageError(f"Cannot read image {path}: the file is empty (0 bytes; an interrupted copy?).")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            try:
                return _read_tiff(path, limit, keep_palette_indices)
            except tifffile.TiffFileError:
                pass  # named .tif but not a TIFF: let Pillow identify it
        return _read_pil(path, limit, keep_alpha, keep_palette_indices)
    except (FileNotFoundError, PermissionError, UnreadableImageError):
        raise
    except MemoryError as err:
        raise UnreadableImageError(f"Cannot read image {path}: not enough memory to decode it ({err}).") from err
    except Exception as err:  # decoders raise many types for a corrupt or foreign file
        raise UnreadableImageError(f"Cannot read image {path}: {type(err).__name__}: {err}") from err


def read_image(path: str | Path, max_pixels: Optional[int] = None) -> np.ndarray:
    """The pixel array of an image file in displayed orientation: 2-D gray, (H, W, 3) RGB, (H, W, 4) RGBA,
    or a stack (N, H, W[, C]); uint8/uint16/int32/float as stored (see the module's rules)."""
    return _decode(path, max_pixels, keep_alpha=False, keep_palette_indices=False)


def read_header(path: str | Path) -> tuple[int, int]:
    """(height, width) in displayed orientation, from the header only; UnreadableImageError if unreadable."""
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            try:
                return _tiff_header(path)
            except tifffile.TiffFileError:
                pass
        return _pil_header(path)
    except (FileNotFoundError, UnreadableImageError):
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure means "unreadable"
        raise UnreadableImageError(f"Cannot read image {path}: {type(err).__name__}: {err}") from err


def mask_to_binary(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """The one rule that turns a stored mask into uint8 0/1 (documented in docs/robustness.md).

    - (H, W, 2) gray+alpha: the gray channel (the alpha when the gray is constant and the alpha is not).
    - (H, W, 3|4) colour: the brightest of R, G, B (coloured masks); the alpha when RGB is constant.
    - Then: floats within [0, 1] -> >= 0.5 (probabilities, 0/1 masks); a label image (maximum below
      128, e.g. 0/1, {0, 2} or several classes) -> > 0; 8-bit range -> >= 128 (0/255 masks, JPEG noise);
      larger ranges -> > 0 when they hold at most 16 values (16-bit labels), else >= half the maximum.
    """
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim == 3 and mask.shape[-1] in (2, 3, 4):
        colour = mask[..., 0] if mask.shape[-1] == 2 else mask[..., :3].max(axis=-1)
        alpha = mask[..., -1] if mask.shape[-1] in (2, 4) else None
        if alpha is not None and colour.min() == colour.max() and alpha.min() != alpha.max():
            colour = alpha
        mask = colour
    elif mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise UnreadableImageError(f"Mask {name} has shape {mask.shape}; expected a 2-D or RGB image.")
    if mask.dtype == bool:
        return mask.astype(np.uint8)
    if not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)):
        raise UnreadableImageError(f"Mask {name} has pixel type {mask.dtype}; expected integers or floats.")
    if mask.size == 0:
        raise UnreadableImageError(f"Mask {name} is empty (shape {mask.shape}).")
    if np.issubdtype(mask.dtype, np.floating) and not np.isfinite(mask).all():
        raise UnreadableImageError(f"Mask {name} contains NaN or infinite values.")
    low, high = float(mask.min()), float(mask.max())
    if low < 0:
        raise UnreadableImageError(f"Mask {name} has negative values (minimum {low}); expected 0 for background.")
    integral = np.issubdtype(mask.dtype, np.integer) or bool(np.all(mask == np.round(mask)))
    if high <= 1.0 and not integral:
        return (mask >= 0.5).astype(np.uint8)
    if high < LABEL_MAX:
        return (mask > 0).astype(np.uint8)
    if high <= 255:
        return (mask >= 128).astype(np.uint8)
    if integral and np.unique(mask).size <= 16:
        return (mask > 0).astype(np.uint8)
    return (mask >= high / 2).astype(np.uint8)


def read_mask(path: str | Path, max_pixels: Optional[int] = None) -> np.ndarray:
    """A binary mask (uint8 0/1) from a mask file, by :func:`mask_to_binary`'s rule."""
    data = _decode(path, max_pixels, keep_alpha=True, keep_palette_indices=True)
    return mask_to_binary(data, Path(path).name)


def read_mask_of_shape(path: str | Path, shape: tuple) -> np.ndarray:
    """A mask file that must fit an image of ``shape``: (H, W) an image file read by :func:`read_mask`'s rule, (N, H, W)
    a multi-page TIFF (foreground where > 0). 0/1 uint8; no more pixels read than ``shape`` holds; ValueError for a
    file of another shape (or a shape that is neither)."""
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"a mask is 2-D or a stack of 2-D planes, not {shape}")
    pixels = int(np.prod(shape))
    mask = read_mask(path, max_pixels=pixels) if len(shape) == 2 else (read_image(path, max_pixels=pixels) > 0)
    if mask.shape != shape:
        raise ValueError(f"its mask is {mask.shape}, the image {shape}")
    return mask.astype(np.uint8)


# zlib's run-length strategy (Z_RLE): for masks, whose rows are long runs of 0 or 255, as fast as the
# default strategy and about half the file size; the pixels are the same.
_Z_RLE = 3


def write_png_atomic(path: str | Path, array: np.ndarray, compress_level: int = 6, run_length: bool = False) -> None:
    """Write a PNG via a temporary file and rename, so an interrupt never leaves half a file.

    ``compress_level``: zlib's 0-9 (6, Pillow's default, as before); ``run_length``: zlib's run-length
    strategy (for masks). The pixels read back are the same either way, only the file size and the time
    to write differ. 8-bit gray and RGB(A) go to Pillow directly: imageio's wrapper cost more than the
    encoding itself for a mask (about 1.3 of 3 ms); other types go through imageio, which converts them."""
    array = np.asarray(array)
    buffer = io.BytesIO()
    if array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        from PIL import Image

        options = {"compress_type": _Z_RLE} if run_length else {}
        Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=compress_level,
                                                          **options)
    else:
        import imageio.v3 as iio

        iio.imwrite(buffer, array, extension=".png", compress_level=compress_level)
    atomic_write_bytes(Path(path), buffer.getvalue())


def write_tiff_atomic(path: str | Path, array: np.ndarray, compress: bool = False) -> None:
    """Write a TIFF (stacks, float probabilities, 16-bit images) atomically, as :func:`write_png_atomic`; ``compress``:
    zlib (Python's own: no codec package needed), for masks, whose long runs it shrinks a hundredfold."""
    import tifffile

    array = np.asarray(array)
    # Say what the array is: (H, W, 3|4) is colour; anything else (a (3, H, W) stack of masks included)
    # is gray pages, so it is read back with the same shape.
    colour = array.ndim == 3 and array.shape[-1] in (3, 4)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, photometric="rgb" if colour else "minisblack",
                     compression="zlib" if compress else None)
    atomic_write_bytes(Path(path), buffer.getvalue())
