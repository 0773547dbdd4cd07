"""Files on disk: atomic writes (a crash leaves the old file or the new one), image/mask reading/writing and
paths named by data that must stay inside their folder."""
from .atomic import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_text,
    interrupts_deferred,
    recover_directory,
    remove_stale_temporaries,
)
from .images import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    UnreadableImageError,
    mask_to_binary,
    read_header,
    read_image,
    read_mask,
    read_mask_of_shape,
    write_png_atomic,
    write_tiff_atomic,
)
from .jsonfile import read_json
from .lock import hold, is_held, locked, release
from .paths import UnsafePathError, child_path, file_safe, relative_inside, safe_name, same_file_key

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "UnreadableImageError",
    "UnsafePathError",
    "child_path",
    "file_safe",
    "interrupts_deferred",
    "hold",
    "is_held",
    "locked",
    "release",
    "read_json",
    "mask_to_binary",
    "read_header",
    "relative_inside",
    "remove_stale_temporaries",
    "safe_name",
    "same_file_key",
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_image",
    "read_mask",
    "read_mask_of_shape",
    "recover_directory",
    "write_png_atomic",
    "write_tiff_atomic",
]
