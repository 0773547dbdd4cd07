"""Hostile image and mask files: the one reader (files/images.py) reads what they look like, or refuses
with a clear error; never a silent wrong array, never a MemoryError. Cases: docs/robustness.md."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from hostile_files import (
    H,
    W,
    ellipse_mask,
    jpeg_bytes,
    picture,
    png_claiming,
    save,
    tiff_claiming,
    truncated,
    with_exif_orientation,
)
from PIL import Image

from napari_unetv2.files import UnreadableImageError, read_image, read_mask


def mean_abs(a, b) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# ---- colour modes and channel order (issue 12, item 3) ---------------------------------------------------

def test_cmyk_jpeg_is_read_as_rgb(tmp_path):
    rgb = picture()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    image = read_image(tmp_path / "cmyk.jpg")
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert mean_abs(image, rgb) < 6  # JPEG loss only; read as C, M, Y it would be ~150 off


def test_cmyk_tiff_is_read_as_rgb(tmp_path):
    rgb = picture()
    cmyk = np.asarray(Image.fromarray(rgb).convert("CMYK"))
    tifffile.imwrite(tmp_path / "cmyk.tif", cmyk, photometric="separated")
    image = read_image(tmp_path / "cmyk.tif")
    assert image.shape == (H, W, 3) and mean_abs(image, rgb) < 3


def test_channel_first_rgb_tiff_is_one_rgb_image(tmp_path):
    rgb = picture()
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0))  # (3, H, W), planar RGB
    image = read_image(tmp_path / "planar.tif")
    assert image.shape == (H, W, 3) and np.array_equal(image, rgb)


def test_three_page_gray_tiff_stays_a_stack(tmp_path):
    """The header says which: three gray pages are a stack, not an RGB picture."""
    pages = np.stack([picture(i)[..., 0] for i in range(3)])
    tifffile.imwrite(tmp_path / "stack.tif", pages, photometric="minisblack")
    assert read_image(tmp_path / "stack.tif").shape == (3, H, W)


def test_imagej_hyperstack_is_flattened_to_a_stack(tmp_path):
    data = np.zeros((2, 3, H, W), np.uint8)  # T, Z, Y, X
    tifffile.imwrite(tmp_path / "tz.tif", data, imagej=True, metadata={"axes": "TZYX"})
    assert read_image(tmp_path / "tz.tif").shape == (6, H, W)


def test_palette_png_with_transparency_is_rgba(tmp_path):
    Image.fromarray(picture()).convert("P").save(tmp_path / "p.png", transparency=0)
    image = read_image(tmp_path / "p.png")
    assert image.shape == (H, W, 4)


def test_palette_png_without_transparency_is_rgb(tmp_path):
    rgb = picture()
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    assert image.shape == (H, W, 3) and mean_abs(image, rgb) < 20  # palette quantisation only


def test_gray_alpha_image_drops_alpha(tmp_path):
    gray = picture()[..., 0]
    Image.fromarray(np.dstack([gray, np.full_like(gray, 128)]), "LA").save(tmp_path / "la.png")
    assert np.array_equal(read_image(tmp_path / "la.png"), gray)


def test_one_bit_png_reads_as_0_255(tmp_path):
    Image.fromarray(ellipse_mask().astype(bool)).save(tmp_path / "bits.png")
    image = read_image(tmp_path / "bits.png")
    assert image.dtype == np.uint8 and set(np.unique(image)) == {0, 255}


def test_16_bit_png_keeps_its_values(tmp_path):
    data = (picture()[..., 0].astype(np.uint16) * 257)
    Image.fromarray(data).save(tmp_path / "i16.png")
    image = read_image(tmp_path / "i16.png")
    assert image.dtype == np.uint16 and np.array_equal(image, data)


def test_16_bit_rgb_tiff_keeps_its_values(tmp_path):
    data = picture().astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "rgb16.tif", data, photometric="rgb")
    assert np.array_equal(read_image(tmp_path / "rgb16.tif"), data)


def test_float_tiff_keeps_its_values(tmp_path):
    data = np.linspace(-3, 7, H * W, dtype=np.float32).reshape(H, W)
    tifffile.imwrite(tmp_path / "f.tif", data)
    assert np.array_equal(read_image(tmp_path / "f.tif"), data)


def test_min_is_white_tiff_is_inverted(tmp_path):
    gray = picture()[..., 0]
    tifffile.imwrite(tmp_path / "miniswhite.tif", 255 - gray, photometric="miniswhite")
    assert np.array_equal(read_image(tmp_path / "miniswhite.tif"), gray)


def test_jpeg_named_png_is_read_by_content(tmp_path):
    (tmp_path / "really_a_jpeg.png").write_bytes(jpeg_bytes(picture()))
    assert read_image(tmp_path / "really_a_jpeg.png").shape == (H, W, 3)


def test_png_named_tif_is_read_by_content(tmp_path):
    Image.fromarray(picture()).save(tmp_path / "really_a_png.tif", format="PNG")
    assert np.array_equal(read_image(tmp_path / "really_a_png.tif"), picture())


# ---- orientation ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    rgb = picture()
    path = with_exif_orientation(tmp_path / f"o{orientation}.png", rgb, orientation)
    expected = {3: np.rot90(rgb, 2), 6: np.rot90(rgb, -1), 8: np.rot90(rgb, 1)}[orientation]
    assert np.array_equal(read_image(path), expected)


def test_tiff_orientation_tag_is_applied(tmp_path):
    rgb = picture()
    tifffile.imwrite(tmp_path / "o6.tif", rgb, photometric="rgb", extratags=[(274, 3, 1, 6, True)])
    assert np.array_equal(read_image(tmp_path / "o6.tif"), np.rot90(rgb, -1))


def test_rotated_photo_pairs_with_its_displayed_orientation_mask(tmp_path):
    """A phone photo stored landscape with 'rotate 90' and a mask drawn on what the viewer showed."""
    from napari_unetv2.engine.pairs import find_pairs

    (tmp_path / "images").mkdir()
    with_exif_orientation(tmp_path / "images" / "a.jpg", picture(), 6)
    save(tmp_path / "masks" / "a.png", np.rot90(ellipse_mask(), -1) * 255)
    report = find_pairs(tmp_path)
    assert len(report.pairs) == 1, report.summary()


# ---- size limits and broken files (issue 12, item 4) ----------------------------------------------------

def test_tiff_claiming_50000_squared_is_refused_from_its_header(tmp_path, caplog):
    path = tiff_claiming(tmp_path / "bomb.tif", 50000, 50000)
    with pytest.raises(UnreadableImageError, match="limit"):
        read_image(path)
    assert not [r for r in caplog.records if r.name.startswith("tifffile")], "one clear error, not tifffile's log lines"


def test_png_claiming_30000_squared_is_refused(tmp_path):
    with pytest.raises(UnreadableImageError, match="limit"):
        read_image(png_claiming(tmp_path / "bomb.png", 30000, 30000))


def test_pixel_limit_counts_every_page_of_a_stack(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_UNETV2_MAX_PIXELS", str(10 * H * W))
    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((11, H, W), np.uint8))
    with pytest.raises(UnreadableImageError, match="limit"):
        read_image(tmp_path / "pages.tif")


@pytest.mark.parametrize("maker", ["zero-byte", "truncated-jpeg", "truncated-png", "text", "html"])
def test_broken_files_raise_unreadable(tmp_path, maker):
    path = tmp_path / ("x.png" if maker != "truncated-jpeg" else "x.jpg")
    if maker == "zero-byte":
        path.write_bytes(b"")
    elif maker == "truncated-jpeg":
        truncated(path, jpeg_bytes(picture()), 0.4)
    elif maker == "truncated-png":
        save(tmp_path / "full.png", picture())
        truncated(path, (tmp_path / "full.png").read_bytes(), 0.5)
    elif maker == "text":
        path.write_text("patient list, not an image\n")
    else:
        path.write_text("<html><body>404 Not Found</body></html>")
    with pytest.raises(UnreadableImageError, match="empty" if maker == "zero-byte" else ""):
        read_image(path)


def test_five_channel_tiff_is_refused_clearly(tmp_path):
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((H, W, 5), np.uint8), planarconfig="contig", photometric="minisblack")
    with pytest.raises(UnreadableImageError, match="5 channels"):
        read_image(tmp_path / "five.tif")


def test_folder_named_like_an_image_is_refused_clearly(tmp_path):
    (tmp_path / "scan.png").mkdir()
    with pytest.raises(UnreadableImageError, match="folder"):
        read_image(tmp_path / "scan.png")


def test_decoder_memory_error_becomes_unreadable(tmp_path, monkeypatch):
    import PIL.ImageFile

    save(tmp_path / "a.png", picture())

    def no_memory(self):
        raise MemoryError

    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", no_memory)
    with pytest.raises(UnreadableImageError, match="memory"):
        read_image(tmp_path / "a.png")


# ---- masks (issue 12, item 3) ----------------------------------------------------------------------------

def test_gray_alpha_mask_uses_the_gray_channel(tmp_path):
    mask = ellipse_mask() * 255
    Image.fromarray(np.dstack([mask, np.full_like(mask, 255)]), "LA").save(tmp_path / "la.png")
    assert np.array_equal(read_mask(tmp_path / "la.png"), ellipse_mask())


@pytest.mark.parametrize("labels", [(0, 2), (0, 1), (0, 7), (0, 1, 2, 3)])
def test_label_image_masks_are_foreground_where_positive(tmp_path, labels):
    mask = ellipse_mask() * labels[-1]
    mask[0, : len(labels)] = labels  # every label present
    save(tmp_path / "labels.png", mask.astype(np.uint8))
    assert np.array_equal(read_mask(tmp_path / "labels.png"), (mask > 0).astype(np.uint8))


def test_16_bit_label_mask(tmp_path):
    save(tmp_path / "m16.tif", ellipse_mask().astype(np.uint16) * 1000)
    assert np.array_equal(read_mask(tmp_path / "m16.tif"), ellipse_mask())


def test_rgba_overlay_mask_uses_alpha_when_colour_is_flat(tmp_path):
    alpha = ellipse_mask() * 255
    rgba = np.dstack([np.full((H, W, 3), 255, np.uint8), alpha])
    save(tmp_path / "overlay.png", rgba)
    assert np.array_equal(read_mask(tmp_path / "overlay.png"), ellipse_mask())


def test_palette_mask_uses_indices(tmp_path):
    im = Image.fromarray(ellipse_mask(), "L").convert("P")
    im.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)  # index 0 drawn white, 1 black: indices count
    im.save(tmp_path / "p.png")
    assert np.array_equal(read_mask(tmp_path / "p.png"), ellipse_mask())


def test_jpeg_mask_noise_is_not_foreground(tmp_path):
    (tmp_path / "m.jpg").write_bytes(jpeg_bytes(ellipse_mask() * 255))
    mask = read_mask(tmp_path / "m.jpg")
    assert (mask != ellipse_mask()).mean() < 0.01


def test_nan_mask_is_refused(tmp_path):
    data = ellipse_mask().astype(np.float32)
    data[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", data)
    with pytest.raises(UnreadableImageError, match="NaN"):
        read_mask(tmp_path / "nan.tif")


def test_negative_mask_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "neg.tif", ellipse_mask().astype(np.int16) - 1)
    with pytest.raises(UnreadableImageError, match="negative"):
        read_mask(tmp_path / "neg.tif")


def test_mask_orientation_follows_exif(tmp_path):
    path = with_exif_orientation(tmp_path / "m.png", ellipse_mask() * 255, 8)
    assert np.array_equal(read_mask(path), np.rot90(ellipse_mask(), 1))
