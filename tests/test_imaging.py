"""Preprocessing properties (hypothesis): any size and Pillow mode in -> same size, RGB out, alpha iff the mode has it.

Also: EXIF orientations land pixels where a viewer shows them, 16-bit greys scale to 8 bits, and arbitrary or
cut-off bytes raise ``InvalidImageError`` (never another exception). Examples are tiny so the file runs in seconds.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from animegan import imaging
from animegan.imaging import InvalidImageError, load_photo

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# mode -> has an alpha channel after preprocessing
MODES = {"1": False, "L": False, "P": False, "P+t": True, "RGB": False, "RGBA": True, "LA": True, "PA": True,
         "CMYK": False, "YCbCr": False, "LAB": False, "HSV": False, "I": False, "I;16": False, "F": False,
         "RGBa": True, "La": True}

sizes = st.tuples(st.integers(1, 48), st.integers(1, 48))


def make_image(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    """A random image of ``mode`` built from its own bands (so every mode is exercised with real content)."""
    rng = np.random.default_rng(seed)
    w, h = size
    if mode in ("I", "I;16"):
        # Pillow 13 drops fromarray's mode argument: the dtype alone picks I;16 (uint16) or I (int32)
        im = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16 if mode == "I;16" else np.int32))
        assert im.mode == mode
        return im
    if mode == "F":
        return Image.fromarray(rng.normal(128, 80, (h, w)).astype(np.float32))
    if mode in ("P", "P+t", "PA"):
        im = Image.frombytes("P", size, rng.integers(0, 256, (h, w), dtype=np.uint8).tobytes())
        im.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
        if mode == "P+t":
            im.info["transparency"] = int(rng.integers(0, 256))
        if mode == "PA":
            im = im.convert("PA")
        return im
    if mode == "1":
        return Image.fromarray(rng.integers(0, 2, (h, w), dtype=np.uint8) * 255).convert("1")
    bands = len(Image.new(mode, (1, 1)).getbands())
    data = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
    return Image.frombytes(mode, size, data.tobytes())


@FAST
@given(mode=st.sampled_from(sorted(MODES)), size=sizes, seed=st.integers(0, 2**16))
@example(mode="RGBA", size=(1, 1), seed=0)
def test_any_mode_and_size_gives_rgb_of_the_same_size(mode: str, size: tuple[int, int], seed: int) -> None:
    photo = load_photo(make_image(mode, size, seed))
    w, h = size
    assert photo.rgb.shape == (h, w, 3) and photo.rgb.dtype == np.uint8
    assert photo.original_size == size and photo.size == size and not photo.downscaled
    if MODES[mode]:
        assert photo.alpha is not None and photo.alpha.shape == (h, w) and photo.alpha.dtype == np.uint8
    else:
        assert photo.alpha is None


@FAST
@given(mode=st.sampled_from(["RGB", "RGBA", "L", "LA", "P+t"]), size=st.tuples(st.integers(1, 300), st.integers(1, 300)),
       max_side=st.integers(1, 96))
@example(mode="RGB", size=(300, 1), max_side=64)
def test_max_side_keeps_the_aspect_and_never_upscales(mode: str, size: tuple[int, int], max_side: int) -> None:
    photo = load_photo(make_image(mode, size, 1), max_side=max_side)
    w, h = size
    ow, oh = photo.size
    assert photo.original_size == size
    if max(w, h) <= max_side:
        assert (ow, oh) == (w, h) and not photo.downscaled
    else:
        assert max(ow, oh) == max_side and min(ow, oh) >= 1 and photo.downscaled
        # the shorter side is the rounded scaled side (at least one pixel)
        scale = max_side / max(w, h)
        assert abs((ow if w < h else oh) - max(1, min(w, h) * scale)) <= 1
    if photo.alpha is not None:
        assert photo.alpha.shape == photo.rgb.shape[:2]


@FAST
@given(size=sizes, seed=st.integers(0, 2**16))
def test_rgb_and_alpha_pass_through_unchanged(size: tuple[int, int], seed: int) -> None:
    rgba = np.asarray(make_image("RGBA", size, seed))
    photo = load_photo(Image.fromarray(rgba))
    assert np.array_equal(photo.rgb, rgba[..., :3]) and np.array_equal(photo.alpha, rgba[..., 3])
    assert np.array_equal(load_photo(rgba[..., :3].copy()).rgb, rgba[..., :3])  # ndarray input, same pixels
    grey = rgba[..., 0].copy()
    out = load_photo(Image.fromarray(grey)).rgb
    assert all(np.array_equal(out[..., c], grey) for c in range(3))
    la = load_photo(Image.fromarray(rgba[..., :2].copy()))
    assert np.array_equal(la.alpha, rgba[..., 1]) and np.array_equal(la.rgb[..., 2], rgba[..., 0])


@FAST
@given(size=sizes, seed=st.integers(0, 2**16))
def test_sixteen_bit_grey_scales_to_eight_bits(size: tuple[int, int], seed: int) -> None:
    w, h = size
    values = np.random.default_rng(seed).integers(0, 65536, (h, w), dtype=np.uint16)
    values.flat[0] = 65535  # a real 16-bit image: something above 255
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, format="PNG")  # uint16 -> mode I;16: a genuine 16-bit greyscale PNG
    photo = load_photo(buf.getvalue())
    want = np.floor(values.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)
    assert np.abs(photo.rgb[..., 0].astype(int) - want).max() <= 1
    assert photo.rgb.shape == (h, w, 3)


# Where the stored image's top-left pixel appears once a viewer applies each EXIF orientation (TIFF/EXIF spec):
# 1 as stored, 2 mirrored, 3 rotated 180, 4 flipped, 5 transposed, 6 rotated 90 clockwise, 7 transversed, 8 rotated 270.
CORNER = {1: "tl", 2: "tr", 3: "br", 4: "bl", 5: "tl", 6: "tr", 7: "br", 8: "bl"}


@FAST
@given(orientation=st.integers(1, 8), size=st.tuples(st.integers(2, 40), st.integers(2, 40)),
       fmt=st.sampled_from(["PNG", "WEBP"]))
def test_exif_orientation_puts_pixels_where_viewers_show_them(orientation: int, size: tuple[int, int], fmt: str) -> None:
    w, h = size
    stored = np.zeros((h, w, 3), dtype=np.uint8)
    stored[0, 0] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format=fmt, exif=exif, **({"lossless": True} if fmt == "WEBP" else {}))
    photo = load_photo(buf.getvalue())
    ow, oh = photo.size
    assert (ow, oh) == ((h, w) if orientation >= 5 else (w, h))
    y, x = np.unravel_index(np.argmax(photo.rgb[..., 0].astype(int) - photo.rgb[..., 1]), (oh, ow))
    corner = ("t" if y == 0 else "b" if y == oh - 1 else "?") + ("l" if x == 0 else "r" if x == ow - 1 else "?")
    assert corner == CORNER[orientation]


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=2048))
@example(data=b"")
@example(data=b"\x89PNG\r\n\x1a\n")
@example(data=b"GIF89a")
def test_arbitrary_bytes_are_an_image_or_a_clear_error(data: bytes) -> None:
    try:
        photo = load_photo(data)
    except InvalidImageError as exc:
        assert str(exc)
    else:
        assert photo.rgb.ndim == 3 and photo.rgb.shape[2] == 3


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(7)
    im = Image.fromarray(rng.integers(0, 256, (40, 56, 4), dtype=np.uint8))
    if fmt == "JPEG":
        im = im.convert("RGB")
    if fmt == "GIF":
        im = im.convert("P")
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


ENCODED = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")}


@settings(max_examples=120, deadline=None)
@given(fmt=st.sampled_from(sorted(ENCODED)), cut=st.floats(0.0, 0.999))
def test_cut_off_files_are_a_clear_error(fmt: str, cut: float) -> None:
    """A file cut at any point: refused with our error (a header-only cut may still decode if the format allows)."""
    data = ENCODED[fmt]
    short = data[: int(len(data) * cut)]
    try:
        photo = load_photo(short)
    except InvalidImageError as exc:
        assert str(exc)
    else:
        assert photo.size == (56, 40)


@pytest.mark.parametrize("array", [np.zeros((4, 4, 3), np.float64), np.zeros((4, 4, 2, 2), np.uint8),
                                   np.zeros((0, 5, 3), np.uint8)])
def test_arrays_that_are_not_images(array: np.ndarray) -> None:
    with pytest.raises(InvalidImageError):
        load_photo(array)


def test_pillow_guard_follows_the_configured_limit() -> None:
    before = Image.MAX_IMAGE_PIXELS
    try:
        imaging.set_pillow_guard(10)  # never below the default's guard
        assert Image.MAX_IMAGE_PIXELS == 2 * imaging.DEFAULT_MAX_PIXELS
        imaging.set_pillow_guard(3 * imaging.DEFAULT_MAX_PIXELS)
        assert Image.MAX_IMAGE_PIXELS == 6 * imaging.DEFAULT_MAX_PIXELS
    finally:
        Image.MAX_IMAGE_PIXELS = before
