"""The generator: fidelity to the upstream TF graph, the TF1 resize, and sizes in == sizes out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animegan.imaging import psnr
from animegan.inference import padding_for, run_whole, to_pixels, to_tensor
from animegan.model import Generator, NormStats, upsample2x_tf1


@pytest.fixture(scope="module")
def model(registry):
    return registry.get("hayao", "cpu", "fp32").model


@pytest.fixture(scope="module")
def reference(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = shared / "reference"
    photo = np.asarray(Image.open(folder / "railway_crossing_input_768x512.png").convert("RGB"))
    oracle = np.asarray(Image.open(folder / "railway_crossing_oracle_768x512.png").convert("RGB"))
    assert photo.shape == oracle.shape == (512, 768, 3)
    return photo, oracle


@pytest.fixture(scope="module")
def ours_on_reference(model, reference) -> np.ndarray:
    """One fp32 CPU pass through exactly what stylize() runs (slow-ish: ~7 s)."""
    return run_whole(model, reference[0], "fp32")


@pytest.fixture(scope="module")
def align_corners_on_reference(model, reference) -> np.ndarray:
    """The popular port's upsampling (align_corners=True) on the same weights (~6 s)."""
    with torch.inference_mode():
        return to_pixels(model(to_tensor(reference[0], torch.device("cpu")), resize="align_corners"))


@pytest.mark.slow
def test_matches_tensorflow_oracle(ours_on_reference: np.ndarray, reference) -> None:
    oracle = reference[1]
    assert ours_on_reference.shape == oracle.shape and ours_on_reference.dtype == np.uint8
    assert psnr(ours_on_reference, oracle) >= 60.0
    assert np.abs(ours_on_reference.astype(int) - oracle.astype(int)).max() <= 1
    # The model really stylised the photo (an identity would be about 17 dB away from the oracle).
    assert psnr(reference[0], oracle) < 25


@pytest.mark.slow
def test_align_corners_port_is_far_from_the_oracle(align_corners_on_reference: np.ndarray, ours_on_reference: np.ndarray,
                                                  reference) -> None:
    assert psnr(align_corners_on_reference, reference[1]) < 30.0
    assert psnr(align_corners_on_reference, ours_on_reference) < 30.0


# --- TF1 legacy ResizeBilinear ---------------------------------------------------------------------

def tf1_resize_bilinear_x2(x: np.ndarray) -> np.ndarray:
    """Direct transcription of TF1 ResizeBilinear (align_corners=False, half_pixel_centers=False) on NCHW."""
    n, c, h, w = x.shape
    out = np.empty((n, c, 2 * h, 2 * w), np.float64)
    for oy in range(2 * h):
        sy = oy * (h / (2 * h))
        y0 = int(np.floor(sy))
        y1 = min(y0 + 1, h - 1)
        ly = sy - y0
        for ox in range(2 * w):
            sx = ox * (w / (2 * w))
            x0 = int(np.floor(sx))
            x1 = min(x0 + 1, w - 1)
            lx = sx - x0
            top = x[:, :, y0, x0] + (x[:, :, y0, x1] - x[:, :, y0, x0]) * lx
            bottom = x[:, :, y1, x0] + (x[:, :, y1, x1] - x[:, :, y1, x0]) * lx
            out[:, :, oy, ox] = top + (bottom - top) * ly
    return out


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 1, 1), (1, 2, 6, 1), (1, 1, 1, 9), (1, 3, 16, 12)])
def test_upsample_matches_tf1_legacy_resize(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape).astype(np.float32)
    got = upsample2x_tf1(torch.from_numpy(x)).numpy()
    assert got.shape == (shape[0], shape[1], 2 * shape[2], 2 * shape[3])
    np.testing.assert_allclose(got, tf1_resize_bilinear_x2(x.astype(np.float64)), rtol=0, atol=1e-5)


def test_upsample_is_not_half_pixel_bilinear() -> None:
    x = torch.arange(12, dtype=torch.float32).reshape(1, 1, 3, 4)
    half_pixel = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert not torch.allclose(upsample2x_tf1(x), half_pixel)
    assert upsample2x_tf1(x)[0, 0, 0, 0] == x[0, 0, 0, 0] and upsample2x_tf1(x)[0, 0, -1, -1] == x[0, 0, -1, -1]


def test_upsample_channels_last_input() -> None:
    x = torch.randn(1, 8, 6, 10).contiguous(memory_format=torch.channels_last)
    assert torch.equal(upsample2x_tf1(x), upsample2x_tf1(x.contiguous()))


# --- sizes -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("h, w", [
    (1, 1), (3, 5), (5, 3), (2, 9), (4, 4), (7, 7), (8, 8), (9, 13), (400, 8), (8, 400), (6, 401),
    (63, 97), (64, 64), (66, 130), (97, 130), (255, 301),
])
def test_output_size_equals_input_size(model, h: int, w: int) -> None:
    rgb = np.random.default_rng(h * 1000 + w).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    out = run_whole(model, rgb)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert out.std() > 0 or h * w == 1


def test_multiples_of_four_are_not_padded() -> None:
    for side in range(8, 2049, 4):
        assert padding_for(side, side) == (0, 0)
    assert padding_for(512, 768) == (0, 0)
    for h in range(1, 300):
        ph, pw = padding_for(h, 8)
        assert pw == 0
        assert (h + ph) % 4 == 0 and h + ph >= 8
        assert (ph == 0) == (h % 4 == 0 and h >= 8)
        if h >= 8:
            assert ph < 4


def test_unpadded_run_equals_plain_forward(model) -> None:
    """A multiple-of-4 photo goes through the network as it is: same pixels as a direct forward pass."""
    rgb = np.random.default_rng(7).integers(0, 256, size=(72, 60, 3), dtype=np.uint8)
    with torch.inference_mode():
        direct = to_pixels(model(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1))
    np.testing.assert_array_equal(run_whole(model, rgb), direct)


def test_padded_run_differs_from_a_crop_free_run(model) -> None:
    """Padding changes the whole-image norm statistics: it must only happen when needed (this shows it matters)."""
    rgb = np.random.default_rng(8).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    whole = run_whole(model, rgb)
    padded = run_whole(model, np.pad(rgb, ((0, 8), (0, 8), (0, 0)), mode="reflect"))[:64, :64]
    assert not np.array_equal(whole, padded)


def test_replayed_statistics_reproduce_the_run(model) -> None:
    x = to_tensor(np.random.default_rng(9).integers(0, 256, size=(48, 40, 3), dtype=np.uint8), torch.device("cpu"))
    with torch.inference_mode():
        stats = NormStats(mode="record")
        recorded = model(x, stats)
        replayed = model(x, stats.replaying())
        plain = model(x)
    assert len(stats.values) == 24
    torch.testing.assert_close(replayed, recorded, rtol=0, atol=1e-5)
    torch.testing.assert_close(plain, recorded, rtol=0, atol=1e-5)


def test_channels_last_model_matches_plain_model(model, hayao_pt: Path) -> None:
    plain = Generator().eval()
    plain.load_state_dict(torch.load(hayao_pt, weights_only=True))
    x = torch.rand(1, 3, 40, 56) * 2 - 1
    with torch.inference_mode():
        torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last)), plain(x), rtol=0, atol=2e-5)
