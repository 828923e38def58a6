"""Keep colour: the photo's colours under the style's lines and tones, at any strength, wherever a result is made.

Real photos (../shared), the real stand-in Hayao weights, clips made here; the figures' rules live in
bench/keep_color.py (the same measures the closing note reports).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import REPO, load_bench
from PIL import Image

from animegan import Registry, framing, imaging, video
from animegan.__main__ import main as cli_main
from animegan.engine import LocalConverter, stylize
from animegan.options import RunOptions, check_keep_color
from animegan.result_cache import MemoryCache

BENCH = load_bench("keep_color")
VIDEO_BENCH = load_bench("video_bench")
FAST = {"device": "cpu", "precision": "fp32"}
PORTRAIT = "face_paint_512_v2"


@pytest.fixture(scope="module")
def registry(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Hayao, and a portrait style, both on the stand-in weights (the plumbing is under test, not the weights)."""
    return Registry(weights={"hayao": hayao_pt, PORTRAIT: hayao_pt}, cache_dir=tmp_path_factory.mktemp("cache"),
                    offline=True)


def photo_at(path: Path, side: int) -> np.ndarray:
    return imaging.load_photo(path, max_side=side).rgb


# --- strength 0 -----------------------------------------------------------------------------------

def test_strength_0_is_todays_output_bit_for_bit(registry: Registry, photos: dict[str, Path]) -> None:
    src = photos["kyoto_street_kimono"]
    plain = stylize(src, "hayao", registry=registry, max_side=192, **FAST)
    off = stylize(src, "hayao", registry=registry, max_side=192, keep_color=0, **FAST)
    assert np.array_equal(np.asarray(plain.image), np.asarray(off.image))
    styled = np.asarray(plain.image)
    assert imaging.keep_color(styled, styled[::-1].copy(), 0.0) is styled  # untouched, not recomputed
    # With keep brightness too, 0 adds nothing to it.
    both = stylize(src, "hayao", registry=registry, max_side=192, keep_brightness=True, keep_color=0.0, **FAST)
    bright = stylize(src, "hayao", registry=registry, max_side=192, keep_brightness=True, **FAST)
    assert np.array_equal(np.asarray(both.image), np.asarray(bright.image))
    # Video frames and the webcam's: the same.
    frame = photo_at(src, 96)
    assert np.array_equal(video.stylize_frame(frame, RunOptions(**FAST), registry=registry),
                          video.stylize_frame(frame, RunOptions(keep_color=0.0, **FAST), registry=registry))


# --- strength 1 and between -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["railway_crossing", "kyoto_street_kimono", "cars_bridge_forest"])
def test_strength_1_takes_the_photos_chroma_and_keeps_the_styles_detail(registry: Registry, photos: dict[str, Path],
                                                                         name: str) -> None:
    photo = photo_at(photos[name], 256)
    plain = np.asarray(stylize(photo, "hayao", registry=registry, max_side=0, **FAST).image)
    half = np.asarray(stylize(photo, "hayao", registry=registry, max_side=0, keep_color=0.5, **FAST).image)
    kept = np.asarray(stylize(photo, "hayao", registry=registry, max_side=0, keep_color=1.0, **FAST).image)
    before, middle, after = (BENCH.chroma_mae(x, photo) for x in (plain, half, kept))
    assert after < 0.45 * before and after < 2.5, (before, after)  # measured 4.6 -> 1.2 on average at 512 px
    assert after < middle < before
    # The fine luma detail (lines, texture) is the style's, not the photo's.
    assert BENCH.detail_correlation(kept, plain) > 0.98
    assert BENCH.detail_correlation(kept, plain) > BENCH.detail_correlation(photo, plain) + 0.1
    # Neither greyed nor oversaturated, relative to the brightness the style chose; skin keeps its hue.
    assert 0.95 < BENCH.saturation_ratio(kept, photo) < 1.05
    skin = BENCH.skin(photo)
    if skin.sum() > 200:
        assert 0.9 < BENCH.saturation_ratio(kept, photo, skin) < 1.1
        assert BENCH.hue_error(kept, photo, skin) < 3 < BENCH.hue_error(plain, photo, skin)


def test_the_rule_keeps_the_styles_luma_and_the_photos_hue_where_colour_would_clip() -> None:
    """A saturated skin tone and a saturated blue, where the style made them much brighter or darker: the luma stays
    the style's, the hue the photo's (clipping a channel instead would turn skin orange), saturation follows luma."""
    photo = np.zeros((4, 4, 3), np.uint8)
    photo[:2] = (224, 150, 110)          # skin
    photo[2:] = (20, 40, 200)            # deep blue
    styled = np.empty_like(photo)
    styled[:, :2] = 245                   # the style brightened to near white
    styled[:, 2:] = 40                    # the style darkened
    out = imaging.keep_color(styled, photo, 1.0)
    y_out, _, _ = BENCH.ycbcr(out)
    assert np.abs(y_out - BENCH.ycbcr(styled)[0]).max() < 1.5
    assert BENCH.hue_error(out, photo) < 3
    dark = np.zeros((4, 4), bool)
    dark[:, 2:] = True
    assert 0.9 < BENCH.saturation_ratio(out, photo, dark) < 1.1  # not garish in the darkened half
    half = imaging.keep_color(styled, photo, 0.5)
    assert np.abs(BENCH.ycbcr(half)[0] - BENCH.ycbcr(styled)[0]).max() < 1.5
    with pytest.raises(ValueError, match="at the result's size"):
        imaging.keep_color(styled, photo[:2], 1.0)


def test_keep_brightness_and_keep_color_combine(registry: Registry, photos: dict[str, Path]) -> None:
    """Brightness first (one gain), then colour at that brightness: the photo's mean luma and its colours."""
    photo = photo_at(photos["cars_bridge_forest"], 192)
    plain = np.asarray(stylize(photo, "hayao", registry=registry, max_side=0, **FAST).image)
    both = np.asarray(stylize(photo, "hayao", registry=registry, max_side=0, keep_brightness=True, keep_color=1,
                              **FAST).image)
    assert np.array_equal(both, imaging.keep_color(imaging.keep_brightness(plain, photo), photo, 1.0))
    mean_luma = [float(BENCH.ycbcr(x)[0].mean()) for x in (photo, plain, both)]
    assert abs(mean_luma[2] - mean_luma[0]) < 3 < abs(mean_luma[1] - mean_luma[0]), mean_luma
    assert BENCH.chroma_mae(both, photo) < 0.45 * BENCH.chroma_mae(plain, photo)


# --- where it applies -----------------------------------------------------------------------------

def test_tiles_and_precision(registry: Registry, photos: dict[str, Path]) -> None:
    """After the model, pixel by pixel: a tiled run takes it the same way (no seams), and so does bf16."""
    photo = photo_at(photos["railway_crossing"], 320)
    tiled = stylize(photo, "hayao", registry=registry, max_side=0, tile=128, **FAST)
    kept = stylize(photo, "hayao", registry=registry, max_side=0, tile=128, keep_color=1.0, **FAST)
    assert kept.stats.tiles > 1
    assert np.array_equal(np.asarray(kept.image), imaging.keep_color(np.asarray(tiled.image), photo, 1.0))
    bf16 = stylize(photo, "hayao", registry=registry, max_side=0, device="cpu", precision="bf16")
    bf16_kept = stylize(photo, "hayao", registry=registry, max_side=0, device="cpu", precision="bf16", keep_color=1.0)
    assert BENCH.chroma_mae(np.asarray(bf16_kept.image), photo) < 0.45 * BENCH.chroma_mae(np.asarray(bf16.image), photo)


def test_paste_keeps_the_photos_colours_around_the_face(registry: Registry) -> None:
    """Portrait paste: the face stylised with the photo's colours blends into the untouched photo around it."""
    photo, _ = load_bench("detectors").two_faces()
    plain = stylize(photo, PORTRAIT, registry=registry, framing="paste", max_side=0, **FAST)
    kept = stylize(photo, PORTRAIT, registry=registry, framing="paste", max_side=0, keep_color=1.0, **FAST)
    assert len(kept.stats.faces) == 2
    h, w = photo.shape[:2]
    seam = np.zeros((h, w), bool)
    inside = np.zeros((h, w), bool)
    for face in kept.stats.faces:
        sq = framing.face_square(framing.Face(framing.Box(*face)), w, h)
        mask = framing.feather_mask(sq.width)[:sq.height, :sq.width]
        seam[sq.y0:sq.y1, sq.x0:sq.x1] |= (mask > 0.05) & (mask < 0.95)
        inside[sq.y0:sq.y1, sq.x0:sq.x1] |= mask >= 0.95
    out_plain, out_kept = np.asarray(plain.image), np.asarray(kept.image)
    for where in (seam, inside):
        before = BENCH.chroma_mae(out_plain[where][None], photo[where][None])
        after = BENCH.chroma_mae(out_kept[where][None], photo[where][None])
        assert after < 0.5 * before, (before, after)
    assert BENCH.detail_correlation(out_kept, out_plain) > 0.98  # the face is still the style's drawing


def test_the_result_cache_tells_strengths_apart(registry: Registry, small_photo: Path) -> None:
    cache = MemoryCache()
    convert = LocalConverter(registry, cache)
    base = RunOptions(style="hayao", **FAST)
    plain = convert(small_photo, base)
    assert convert(small_photo, base.replace(keep_color=0.0)).stats.cached  # 0 is today's key
    half = convert(small_photo, base.replace(keep_color=0.5))
    full = convert(small_photo, base.replace(keep_color=1.0))
    assert not half.stats.cached and not full.stats.cached
    assert len({plain.png, half.png, full.png}) == 3
    assert convert(small_photo, base.replace(keep_color=0.5)).stats.cached
    # Framed results too.
    face = convert(REPO / "animegan" / "examples" / "astronaut.jpg", base.replace(style=PORTRAIT, framing="paste"))
    face_kept = convert(REPO / "animegan" / "examples" / "astronaut.jpg",
                        base.replace(style=PORTRAIT, framing="paste", keep_color=1.0))
    assert not face_kept.stats.cached and face_kept.png != face.png


def test_options_carry_the_strength_to_another_process() -> None:
    """Ray replicas get RunOptions pickled, then rebased to their clock and given their device."""
    options = RunOptions(style="hayao", keep_color=0.75).with_timeout(30)
    portable, left = options.portable()
    there = pickle.loads(pickle.dumps(portable)).rebased(left).replace(device="cpu")
    assert there.keep_color == 0.75


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.01, 1.01, "0.5", None, [0.5]])
def test_bad_strengths_are_refused_with_a_message(bad: object, registry: Registry, small_photo: Path) -> None:
    with pytest.raises(ValueError, match="keep colour must be a number from 0"):
        RunOptions(keep_color=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keep colour must be a number from 0"):
        stylize(small_photo, "hayao", registry=registry, keep_color=bad)
    with pytest.raises(ValueError, match="keep colour must be a number from 0"):
        video.stylize_video(small_photo, small_photo.with_suffix(".mp4"), "hayao", keep_color=bad)
    assert check_keep_color(1) == 1.0 and check_keep_color(0.25) == 0.25


def test_cli_keep_color(hayao_pt: Path, photos: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str], registry: Registry) -> None:
    monkeypatch.setenv("ANIMEGAN_CACHE_DIR", str(tmp_path / "cache"))
    small = tmp_path / "in" / "street.png"
    small.parent.mkdir()
    Image.fromarray(photo_at(photos["kyoto_street_kimono"], 160)).save(small)
    for bad in ("nan", "inf", "1.5", "-1", "lots"):
        with pytest.raises(SystemExit) as exit_:
            cli_main([str(small), "--weights", str(hayao_pt), "--keep-color", bad])
        assert exit_.value.code == 2
        assert "--keep-color" in capsys.readouterr().err
    code = cli_main([str(small), "--weights", str(hayao_pt), "--offline", "--precision", "fp32", "--device", "cpu",
                     "--keep-color", "1", "--out", str(tmp_path / "out"), "-q"])
    assert code == 0
    written = np.asarray(Image.open(tmp_path / "out" / "street_hayao.png").convert("RGB"))
    photo = np.asarray(Image.open(small).convert("RGB"))
    plain = np.asarray(stylize(small, "hayao", registry=registry, **FAST).image)
    assert np.array_equal(written, imaging.keep_color(plain, photo, 1.0))


# --- videos and the webcam ------------------------------------------------------------------------

@pytest.mark.parametrize("temporal", [True, False])
def test_no_flicker_is_added(registry: Registry, temporal: bool) -> None:
    """video_bench's flicker index (output change on pixels whose input did not change) with keep colour 1 is no
    higher than without, with the temporal smoothing on and off (the webcam runs this same frame function)."""
    frames, boxes = VIDEO_BENCH.still_camera_clip(160, 120, 10)
    index = {}
    for s in (0.0, 1.0):
        smoother = video.FrameSmoother() if temporal else None
        options = RunOptions(style="hayao", keep_color=s, **FAST)
        index[s] = BENCH.flicker_index(frames, boxes, [video.stylize_frame(f, options, smoother, registry)
                                                       for f in frames], 16)
    assert index[1.0] <= index[0.0] * 1.02, index


def test_a_video_file_takes_its_own_colours(registry: Registry, photos: dict[str, Path], tmp_path: Path) -> None:
    frames, _ = VIDEO_BENCH.still_camera_clip(128, 96, 6)
    clip = VIDEO_BENCH.write_clip(tmp_path / "walk.mp4", frames, fps=12)
    outs = {}
    for s in (0.0, 1.0):
        video.stylize_video(clip, tmp_path / f"out{s}.mp4", "hayao", registry=registry, max_side=0, keep_color=s,
                            **FAST)
        outs[s] = [f.to_ndarray(format="rgb24") for f in av.open(str(tmp_path / f"out{s}.mp4")).decode(video=0)]
    inputs = [f.to_ndarray(format="rgb24") for f in av.open(str(clip)).decode(video=0)]
    assert len(outs[1.0]) == len(inputs) == 6
    for src, plain, kept in zip(inputs, outs[0.0], outs[1.0]):
        assert BENCH.chroma_mae(kept, src) < 0.6 * BENCH.chroma_mae(plain, src)

