"""Files on disk: atomic writes (a crash leaves the old file or the new one) and image/mask reading/writing."""
from .atomic import atomic_directory, atomic_write_bytes, atomic_write_text, recover_directory
from .images import (
    IMAGE_SUFFIXES,
    UnreadableImageError,
    read_image,
    read_mask,
    write_png_atomic,
    write_tiff_atomic,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "UnreadableImageError",
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_image",
    "read_mask",
    "recover_directory",
    "write_png_atomic",
    "write_tiff_atomic",
]
