"""Which masks that ``--continue`` would keep are not of the image now of their name.

--continue took a mask for done by its file name alone: run over a second site's folder with the same names
(``IMG_0001.png``), or over a folder whose image was edited since, it kept the other image's mask and summary.csv
went on naming it (clinician trial of session 42). A row records the SHA-256 of the file it was made from; rows of
runs before it record none, and then a mask of another size than the image is the sign left. A mask is an image's by
its stem (``IMG_0.png`` is the mask of ``IMG_0.jpg`` and of ``IMG_0.png``): a row of another file of that stem made
it for that other file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from ..files import UnreadableImageError, read_header
from ..files.digest import file_sha256


def outputs_of_other_images(kept: dict, rows: list[dict], input_folder: str, name_of: Callable[[Path], str],
                            should_stop: Optional[Callable[[], bool]] = None,
                            checked: Optional[Callable[[int, int], None]] = None) -> Optional[list[tuple[str, str]]]:
    """(image file name, why its mask is another image's) for each image of ``kept`` ({image path: its existing mask
    file}); ``rows``: summary.csv's; ``name_of``: an image's name as rows write it. None when ``should_stop`` said
    stop (hashing a large folder's files takes a while). ``checked(done, total)`` after each image: every kept input
    is read whole for its hash, and the run showed nothing meanwhile (stop note 42)."""
    done = {}
    for row in rows:
        if row.get("status") == "done" and row.get("file"):
            done.setdefault(Path(row["file"]).stem, []).append(row)
    found = []
    for index, (image, mask) in enumerate(kept.items()):
        if checked is not None:
            checked(index, len(kept))
        if should_stop is not None and should_stop():
            return None
        name = name_of(image)
        of_stem = done.get(image.stem, [])
        row = next((r for r in of_stem if r["file"] == name), None)
        try:
            if row is None and of_stem:
                found.append((name, f"its mask was made from {of_stem[-1]['file']}, another file of this name's stem"))
            elif row is not None and row.get("input_sha256"):
                if file_sha256(image) != row["input_sha256"]:
                    folder = row.get("input_folder") or ""
                    found.append((name, f"its mask was made from {Path(folder) / name}, another file of this name"
                                  if folder and folder != input_folder else
                                  "the file changed since its mask was made from it (its SHA-256 differs)"))
            elif mask.suffix == ".png":  # (rows of runs before the hash was recorded, or no row)
                mask_size, image_size = read_header(mask), read_header(image)
                if mask_size != image_size:
                    found.append((name, f"its mask is {mask_size[1]}x{mask_size[0]} pixels, the image "
                                        f"{image_size[1]}x{image_size[0]}"))
        except (OSError, UnreadableImageError):  # (unreadable: the run itself says so, or the mask is kept as it is)
            continue
    if checked is not None and kept:
        checked(len(kept), len(kept))
    return found
