"""Which masks that ``--continue`` would keep are not of the image now of their name.

--continue took a mask for done by its file name alone: run over a second site's folder with the same names
(``IMG_0001.png``), or over a folder whose image was edited since, it kept the other image's mask and summary.csv
went on naming it (clinician trial of session 42). A row records the SHA-256 of the file it was made from; rows of
runs before it record none, and then a mask of another size than the image is the sign left.
"""
from __future__ import annotations

from pathlib import Path

from ..files import UnreadableImageError, read_header
from ..files.digest import file_sha256


def outputs_of_other_images(kept: dict, input_dir: Path) -> list[tuple[str, str]]:
    """(image file name, why its kept mask is another image's) for each image of ``kept``: {image path: (its mask that
    --continue would keep, summary.csv's row of that file or None)}."""
    found = []
    here = str(Path(input_dir).resolve())
    for image, (mask, row) in kept.items():
        recorded = row.get("input_sha256") if row is not None and row.get("status") == "done" else ""
        try:
            if recorded:
                if file_sha256(image) != recorded:
                    folder = row.get("input_folder") or ""
                    found.append((image.name, f"its mask was made from {Path(folder) / image.name}, another file of this "
                                              f"name" if folder and folder != here else
                                  "the file changed since its mask was made from it (its SHA-256 differs)"))
            elif mask.suffix == ".png":
                mask_size, image_size = read_header(mask), read_header(image)
                if mask_size != image_size:
                    found.append((image.name, f"its mask is {mask_size[1]}x{mask_size[0]} pixels, the image "
                                              f"{image_size[1]}x{image_size[0]}"))
        except (OSError, UnreadableImageError):  # (unreadable: the run itself says so, or the mask is kept as it is)
            continue
    return found
