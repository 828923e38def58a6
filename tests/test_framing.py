"""Portrait framing end to end: the real detector on real photos, the real model (the stand-in Hayao weights passed
as a portrait style's weights: the computation and the plumbing are under test, not the portrait weights)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, load_bench
from PIL import Image

from animegan import Registry, framing
from animegan.__main__ import main
from animegan.engine import LocalConverter, stylize
from animegan.imaging import psnr
from animegan.options import RunOptions
from animegan.result_cache import MemoryCache, result_key

PORTRAIT = "face_paint_512_v2"
ASTRONAUT = REPO / "animegan" / "examples" / "astronaut.jpg"
BENCH = load_bench("detectors")  # the by-eye boxes and the two-face photo live with the detector comparison
FAST = {"device": "cpu", "precision": "fp32"}


@pytest.fixture(scope="module")
def registry(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The portrait style and the Hayao scene style both on the stand-in weights."""
    return Registry(weights={PORTRAIT: hayao_pt, "hayao": hayao_pt, "celeba_distill": hayao_pt},
                    cache_dir=tmp_path_factory.mktemp("cache"), offline=True)


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def centre(box: tuple[int, int, int, int]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


# -- fidelity ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "framing_mode"), [("kyoto_street_kimono_512", "whole"),
                                                    ("railway_crossing_333x222", "whole"),
                                                    ("kyoto_street_kimono_512", "center")])
def test_a_portrait_style_computes_as_the_port(name: str, framing_mode: str, shared: Path, hayao_pt: Path,
                                               tmp_path: Path) -> None:
    """The real face_paint_512_v2 style file, the stand-in weights given with --weights, at native size: >= 60 dB
    against the port's own computation. ``center`` of a 512 px square is that square at 512 px: the framing path
    adds nothing either."""
    ref = shared / "reference" / "portrait"
    photo = ref / f"{name}_input.png"
    assert main([str(photo), "--style", PORTRAIT, "--weights", str(hayao_pt), "--max-side", "0", "--framing", framing_mode,
                 "--out", str(tmp_path), "--offline", "--device", "cpu", "--precision", "fp32", "-q"]) == 0
    out = rgb(tmp_path / f"{photo.stem}_{PORTRAIT}.png")
    oracle = rgb(ref / f"{name}_oracle.png")
    assert out.shape == oracle.shape
    assert psnr(out, oracle) >= 60, psnr(out, oracle)


# -- the detector -----------------------------------------------------------------------------------------
def test_one_face_is_found_where_measured_by_eye() -> None:
    faces = framing.detect_faces(rgb(ASTRONAUT))
    assert len(faces) == 1
    got, eye = faces[0].box.as_tuple(), BENCH.ASTRONAUT_FACE  # by eye: forehead to chin, cheek to cheek
    width = eye[2] - eye[0]
    (gx, gy), (ex, ey) = centre(got), centre(eye)
    assert abs(gx - ex) <= 0.2 * width and abs(gy - ey) <= 0.2 * width, (got, eye)
    assert 0.75 <= faces[0].box.width / width <= 1.4, (got, eye)
    assert faces[0].eyes is not None and abs(faces[0].tilt) < 5  # she holds her head about level


def test_two_faces_give_two_boxes() -> None:
    photo, truth = BENCH.two_faces()
    faces = framing.detect_faces(photo)
    assert len(faces) == 2
    for box in truth:
        assert sum(BENCH.matches(f.box.as_tuple(), box) for f in faces) == 1, ([f.box for f in faces], box)


@pytest.mark.parametrize("name", ["cars_bridge_forest", "railway_crossing"])
def test_photos_without_a_face_find_none(name: str, photos: dict[str, Path]) -> None:
    assert framing.detect_faces(rgb(photos[name])) == []


def test_a_tilted_face_is_levelled() -> None:
    photo = Image.open(ASTRONAUT).convert("RGB").rotate(-8, resample=Image.BICUBIC, center=(225, 120))
    framed = framing.frame(np.asarray(photo), "face")
    assert 6 <= framed.tilts[0] <= 14, framed  # clockwise 8 deg, plus her own 2-3 deg
    assert "eyes levelled by" in framed.notice
    square = framing.crop_square(np.asarray(photo), framed.squares[0], 512, framed.tilts[0])
    again = framing.detect_faces(square)
    assert len(again) == 1 and abs(again[0].tilt) <= 3


def test_a_turned_crop_of_no_angle_is_the_plain_crop() -> None:
    """The turned path samples the same place as the plain resize (pixel centres agree): no half-pixel shift."""
    photo = rgb(ASTRONAUT)
    square = framing.Box(150, 40, 300, 190)
    plain = framing.crop_square(photo, square, 512)
    turned = framing.crop_square(photo, square, 512, 1e-9)  # not 0: takes the warpAffine path
    assert psnr(turned, plain) > 40, psnr(turned, plain)
    small = framing.crop_square(photo, square, 96, 1e-9)  # downscaled first (factor < 0.8)
    assert psnr(small, framing.crop_square(photo, square, 96)) > 33


def test_paste_levels_a_tilted_face_and_turns_it_back() -> None:
    """Paste turns a tilted face's square upright for the style, then turns the result back: with the style
    replaced by the identity, the pasted circle is the photo again; pasted upright, it would be 10 degrees off."""
    photo = np.asarray(Image.open(ASTRONAUT).convert("RGB").rotate(-8, resample=Image.BICUBIC, center=(225, 120)))
    framed = framing.frame(photo, "paste")
    assert len(framed.squares) == len(framed.tilts) == 1 and 6 <= framed.tilts[0] <= 14, framed
    assert "eyes levelled for 1 of them" in framed.notice
    square, tilt = framed.squares[0], framed.tilts[0]
    upright = framing.crop_square(photo, square, 512, tilt)
    assert abs(framing.detect_faces(upright)[0].tilt) <= 3  # the style sees her upright
    circle = framing.feather_mask(square.width) > 0.5
    region = photo[square.y0:square.y1, square.x0:square.x1]
    for turned_back, expected in ((framing.unturn(upright, tilt, square.width), True),
                                  (framing.unturn(upright, 0.0, square.width), False)):
        canvas = photo.copy()
        framing.paste(canvas, turned_back, square)
        got = psnr(canvas[square.y0:square.y1, square.x0:square.x1][circle], region[circle])
        assert (got > 40) == expected, (expected, got)  # 45.5 dB measured; upright 13 dB


@pytest.mark.parametrize("shape", [(1, 1, 3), (8, 10000, 3), (10000, 8, 3), (1, 1, 4)])
def test_degenerate_photos_do_not_crash(shape: tuple[int, int, int], registry: Registry) -> None:
    pixels = np.full(shape, 128, np.uint8)
    assert framing.detect_faces(pixels) == []
    for mode in ("face", "paste"):
        result = stylize(pixels, PORTRAIT, registry=registry, framing=mode, max_side=0, **FAST)
        if mode == "face":  # no face: the centre square, at the training size
            assert result.image.size == (512, 512) and result.stats.framing == "center"
        else:  # nothing to paste: the photo as it is
            assert result.image.size == (shape[1], shape[0])
            assert np.array_equal(np.asarray(result.image), pixels)


# -- framings through the engine --------------------------------------------------------------------------
def test_face_framing_is_the_default_for_portraits(registry: Registry) -> None:
    result = stylize(ASTRONAUT, PORTRAIT, registry=registry, **FAST)
    assert result.image.size == (512, 512) and result.stats.framing == "face"
    assert len(result.stats.faces) == 1
    framing_notices = [n for n in result.stats.notices if n.kind == "framing"]
    assert len(framing_notices) == 1 and "face box 9" in framing_notices[0]  # the box used, e.g. 95x95 at (177, 67)
    small = stylize(ASTRONAUT, "celeba_distill", registry=registry, **FAST)
    assert small.image.size == (256, 256)  # that style was trained on 256 px faces


def test_no_face_falls_back_to_the_centre_with_a_notice(registry: Registry, photos: dict[str, Path]) -> None:
    result = stylize(photos["cars_bridge_forest"], PORTRAIT, registry=registry, framing="face", **FAST)
    assert result.stats.framing == "center" and result.stats.faces == []
    assert result.image.size == (512, 512)
    assert any(n.kind == "framing" and "no face found; fell back to the centre square 538x538" in n
               for n in result.stats.notices)


def test_scene_styles_ignore_framing(registry: Registry, small_photo: Path) -> None:
    plain = stylize(small_photo, "hayao", registry=registry, **FAST)
    framed = stylize(small_photo, "hayao", registry=registry, framing="face", **FAST)
    assert framed.stats.framing == "whole" and framed.image.size == plain.image.size
    assert np.array_equal(np.asarray(framed.image), np.asarray(plain.image))


def test_paste_keeps_the_size_and_far_pixels(registry: Registry) -> None:
    photo, _ = BENCH.two_faces()
    result = stylize(photo, PORTRAIT, registry=registry, framing="paste", background="keep", max_side=0, **FAST)
    out = np.asarray(result.image)
    assert out.shape == photo.shape and len(result.stats.faces) == 2
    touched = np.zeros(photo.shape[:2], bool)
    h, w = photo.shape[:2]
    for face in result.stats.faces:
        sq = framing.face_square(framing.Face(framing.Box(*face)), w, h)
        touched[sq.y0:sq.y1, sq.x0:sq.x1] |= framing.feather_mask(sq.width) > 0
        inner = out[sq.y0 + sq.height // 3: sq.y1 - sq.height // 3, sq.x0 + sq.width // 3: sq.x1 - sq.width // 3]
        assert psnr(inner, photo[sq.y0 + sq.height // 3: sq.y1 - sq.height // 3,
                                 sq.x0 + sq.width // 3: sq.x1 - sq.width // 3]) < 25  # the face was stylised
    assert (~touched).sum() > 0.3 * touched.size
    assert np.array_equal(out[~touched], photo[~touched])  # beyond the feathered masks: the photo, bit for bit


def test_paste_with_a_scene_background_tiles_a_big_photo(registry: Registry) -> None:
    big = Image.open(ASTRONAUT).convert("RGB").resize((512, 512), Image.LANCZOS)  # past tile=256: 4 tiles
    result = stylize(np.asarray(big), PORTRAIT, registry=registry, framing="paste", background="hayao", max_side=0,
                     tile=256, **FAST)
    assert result.image.size == (512, 512) and len(result.stats.faces) == 1
    assert result.stats.tiles > 1 and "hayao: tiles" in result.stats.plan  # the background ran the normal tiled path
    assert any(n.kind == "tiled" for n in result.stats.notices)
    with pytest.raises(ValueError, match="unknown background 'celeba_distill'"):
        stylize(np.asarray(big), PORTRAIT, registry=registry, framing="paste", background="celeba_distill", **FAST)


def test_the_cache_key_includes_framing_and_background(registry: Registry) -> None:
    pixels = np.zeros((8, 8, 3), np.uint8)
    base = {"style": PORTRAIT, "weights_fingerprint": "w", "settings": {}}
    keys = {result_key(pixels, None, **base, framing=f, background=b)
            for f, b in [("face", "keep"), ("center", "keep"), ("paste", "keep"), ("paste", "hayao:abc"), ("whole", "keep")]}
    assert len(keys) == 5
    cache = MemoryCache()
    convert = LocalConverter(registry, cache)
    face = convert(ASTRONAUT, RunOptions(style=PORTRAIT, framing="face", **FAST))
    center = convert(ASTRONAUT, RunOptions(style=PORTRAIT, framing="center", **FAST))
    assert not face.stats.cached and not center.stats.cached
    assert not np.array_equal(np.asarray(face.image), np.asarray(center.image))
    again = convert(ASTRONAUT, RunOptions(style=PORTRAIT, framing="face", **FAST))
    assert again.stats.cached and again.png == face.png
    assert cache.stats().entries == 2


def test_without_opencv_face_framing_says_which_extra(monkeypatch: pytest.MonkeyPatch, registry: Registry) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    framing._cascade.cache_clear()
    try:
        with pytest.raises(framing.DetectorMissing, match=r"animegan\[portraits\]"):
            framing.detect_faces(rgb(ASTRONAUT))
        center = stylize(ASTRONAUT, PORTRAIT, registry=registry, framing="center", **FAST)  # needs no detector
        assert center.image.size == (512, 512)
    finally:
        framing._cascade.cache_clear()


def test_cli_framing_and_background(hayao_pt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "hayao.pt").symlink_to(hayao_pt)  # the background style's weights, from the folder
    monkeypatch.setenv("ANIMEGAN_WEIGHTS_DIR", str(weights))
    args = [str(ASTRONAUT), "--style", PORTRAIT, "--weights", str(hayao_pt), "--out", str(tmp_path / "out"),
            "--offline", "--device", "cpu", "--precision", "fp32", "-q"]
    assert main([*args, "--framing", "paste", "--background", "hayao"]) == 0
    assert Image.open(tmp_path / "out" / f"astronaut_{PORTRAIT}.png").size == (512, 512)
    with pytest.raises(SystemExit):
        main([*args, "--background", "celeba_distill"])
