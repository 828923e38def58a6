"""stylize(): the one public entry point, on real photos (kept small for speed)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import all_at_once
from PIL import Image

from animegan import InvalidImageError, WeightsMissingError, stylize
from animegan.engine import default_precision

LUMA = np.array([0.299, 0.587, 0.114])


def luma(image: Image.Image | np.ndarray) -> float:
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float64)
    return float((rgb.reshape(-1, 3).mean(0) * LUMA).sum())


@pytest.fixture(scope="module")
def small_photo(photos: dict[str, Path]) -> Image.Image:
    """A real photo, shrunk to 144x96 (multiples of 4: no padding)."""
    with Image.open(photos["railway_crossing"]) as im:
        return im.convert("RGB").resize((144, 96), Image.LANCZOS)


def test_downscale_to_max_side_and_stats(registry, photos: dict[str, Path], hayao_pt: Path) -> None:
    path = photos["cars_bridge_forest"]
    with Image.open(path) as im:
        original = im.size
    result = stylize(path, "hayao", registry=registry, device="cpu", max_side=128)
    s = result.stats
    scale = 128 / max(original)
    expected = (round(original[0] * scale), round(original[1] * scale))
    assert max(expected) == 128
    assert result.image.size == expected and result.image.mode == "RGB"
    assert (s.style, s.device, s.precision) == ("hayao", "cpu", default_precision(torch.device("cpu")))
    assert s.original_size == original and s.input_size == expected and s.output_size == expected
    assert s.downscaled is True
    assert s.seconds > 0 and s.peak_memory >= 0 and s.peak_memory_kind  # the run's own peak: test_first_use.py
    assert s.weights_source == str(hayao_pt)
    assert len(s.notices) == 1
    assert f"downscaled from {original[0]}x{original[1]} to {expected[0]}x{expected[1]}" in s.notices[0]


def test_max_side_zero_is_native(registry, small_photo: Image.Image) -> None:
    result = stylize(small_photo, registry=registry, device="cpu", max_side=0)
    assert result.image.size == (144, 96)
    assert result.stats.downscaled is False and result.stats.notices == []
    assert result.stats.original_size == result.stats.input_size == (144, 96)


def test_default_max_side_is_the_styles(registry) -> None:
    """No max_side: the style's own (1024 for hayao); a cheap 1100x16 strip shows it."""
    strip = np.random.default_rng(3).integers(0, 256, size=(16, 1100, 3), dtype=np.uint8)
    result = stylize(strip, "hayao", registry=registry, device="cpu")
    assert registry.style("hayao").max_side == 1024
    assert result.image.size == (1024, 15)
    assert result.stats.downscaled and "max side 1024" in result.stats.notices[0]


def test_inputs_of_every_kind_agree(registry, small_photo: Image.Image, tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    small_photo.save(path)
    outs = [np.asarray(stylize(src, registry=registry, device="cpu", max_side=0).image)
            for src in (small_photo, np.asarray(small_photo), path, str(path), path.read_bytes())]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    assert not np.array_equal(outs[0], np.asarray(small_photo))


def test_alpha_is_kept(registry, small_photo: Image.Image) -> None:
    h, w = 96, 144
    alpha = np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))
    alpha[:10] = 0
    rgba = small_photo.copy()
    rgba.putalpha(Image.fromarray(alpha))
    result = stylize(rgba, registry=registry, device="cpu", max_side=0)
    assert result.image.mode == "RGBA" and result.image.size == (w, h)
    np.testing.assert_array_equal(np.asarray(result.image.getchannel("A")), alpha)
    # Colour is stylised exactly as without alpha.
    plain = stylize(small_photo, registry=registry, device="cpu", max_side=0)
    np.testing.assert_array_equal(np.asarray(result.image.convert("RGB")), np.asarray(plain.image))


def test_keep_brightness_moves_luma_towards_the_photo(registry, photos: dict[str, Path]) -> None:
    with Image.open(photos["kyoto_street_kimono"]) as im:
        photo = im.convert("RGB").resize((128, 96), Image.LANCZOS)
    raw = stylize(photo, registry=registry, device="cpu", max_side=0)
    kept = stylize(photo, registry=registry, device="cpu", max_side=0, keep_brightness=True)
    before = abs(luma(raw.image) - luma(photo))
    after = abs(luma(kept.image) - luma(photo))
    assert before > 2, "the style should change brightness for this check to mean anything"
    assert after < before and after < 1.5


def test_errors_reach_the_caller(registry) -> None:
    with pytest.raises(InvalidImageError):
        stylize(b"definitely not an image", registry=registry, device="cpu")
    with pytest.raises(WeightsMissingError, match="Shinkai-53"):
        stylize(np.zeros((16, 16, 3), np.uint8), "shinkai", registry=registry, device="cpu")


def test_concurrent_calls_match_serial_runs(registry, photos: dict[str, Path]) -> None:
    inputs = []
    for i, (name, size) in enumerate(zip(sorted(photos) * 2, [(96, 64), (64, 96), (80, 80), (100, 68)])):
        with Image.open(photos[name]) as im:
            inputs.append(im.convert("RGB").resize(size, Image.LANCZOS))
    serial = [np.asarray(stylize(p, registry=registry, device="cpu", max_side=0).image) for p in inputs]
    loads_before = registry.loads
    results = all_at_once(4, lambda i: np.asarray(stylize(inputs[i], registry=registry, device="cpu", max_side=0).image),
                          timeout=120)
    assert not [r for r in results if isinstance(r, BaseException)], results
    for got, want in zip(results, serial):
        np.testing.assert_array_equal(got, want)
    assert registry.loads == loads_before
    # Different inputs really gave different outputs (the comparison above is not between four copies of one image).
    assert len({r.tobytes() for r in serial}) == 4


def test_png_round_trip(registry, small_photo: Image.Image) -> None:
    from animegan.imaging import encode_png

    result = stylize(small_photo, registry=registry, device="cpu", max_side=0)
    back = Image.open(io.BytesIO(encode_png(result.image)))
    np.testing.assert_array_equal(np.asarray(back), np.asarray(result.image))
