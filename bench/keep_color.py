"""Keep colour's figures, each against the plain result measured in the same run (run under `flock -x`).

    python bench/keep_color.py chroma    # |Cb/Cr - photo's| at strengths 0, 0.5, 1; high-pass luma vs the plain result
    python bench/keep_color.py methods   # the colour rules compared: luma/chroma, Lab, chroma scaled with luma
    python bench/keep_color.py flicker   # video flicker index with and without keep colour, smoothing on and off
    python bench/keep_color.py cost      # time of the colour step per 512x512 photo, next to the model's time
    python bench/keep_color.py all

Needs ANIMEGAN_SHARED (photos, the stand-in Hayao weights). Nothing is written into the repository.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan import imaging, video
from animegan.engine import stylize
from animegan.options import RunOptions
from animegan.registry import Registry

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"
PHOTOS = ("railway_crossing", "kyoto_street_kimono", "cars_bridge_forest")


def registry() -> Registry:
    return Registry(weights={"hayao": WEIGHTS}, cache_dir=tempfile.mkdtemp(prefix="kcbench-"), offline=True)


# --- measures ------------------------------------------------------------------------------------

def ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 full-range Y, Cb, Cr (Cb/Cr centred on 0), as JPEG has them."""
    a = rgb.astype(np.float32)
    y = a @ imaging.LUMA
    return y, (a[..., 2] - y) * 0.564, (a[..., 0] - y) * 0.713


def chroma_mae(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute Cb/Cr difference of two same-size RGB images (0..255 scale)."""
    _, cb_a, cr_a = ycbcr(a)
    _, cb_b, cr_b = ycbcr(b)
    return float((np.abs(cb_a - cb_b).mean() + np.abs(cr_a - cr_b).mean()) / 2)


def high_pass(y: np.ndarray, radius: int = 2) -> np.ndarray:
    """Luma minus its (2r+1)^2 box blur: the lines and fine texture."""
    k = 2 * radius + 1
    c = np.pad(np.pad(y.astype(np.float64), radius, mode="edge").cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return y - (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def detail_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of the two images' high-pass luma: 1 when the fine detail is the same."""
    ha, hb = high_pass(ycbcr(a)[0]).ravel(), high_pass(ycbcr(b)[0]).ravel()
    ha, hb = ha - ha.mean(), hb - hb.mean()
    return float(ha @ hb / np.sqrt((ha @ ha) * (hb @ hb)))


def saturation_ratio(out: np.ndarray, photo: np.ndarray, where: np.ndarray | None = None) -> float:
    """Median over coloured pixels of (chroma / luma) of ``out`` over the photo's: 1 keeps the photo's saturation at
    the result's brightness; below 1 greys, above 1 oversaturates."""
    y_o, cb_o, cr_o = ycbcr(out)
    y_p, cb_p, cr_p = ycbcr(photo)
    coloured = np.hypot(cb_p, cr_p) > 8
    if where is not None:
        coloured &= where
    if not coloured.any():
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (np.hypot(cb_o, cr_o) / (y_o + 1)) / (np.hypot(cb_p, cr_p) / (y_p + 1))
    return float(np.median(ratio[coloured]))


def hue_error(out: np.ndarray, photo: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean hue angle difference in degrees over the photo's coloured pixels."""
    _, cb_o, cr_o = ycbcr(out)
    _, cb_p, cr_p = ycbcr(photo)
    coloured = np.hypot(cb_p, cr_p) > 8
    if where is not None:
        coloured &= where
    turn = np.angle(np.exp(1j * (np.arctan2(cr_o, cb_o) - np.arctan2(cr_p, cb_p))))
    return float(np.degrees(np.abs(turn[coloured])).mean()) if coloured.any() else float("nan")


def skin(photo: np.ndarray) -> np.ndarray:
    """Skin-coloured pixels of a photo (the usual Cb/Cr box), for the 'not grey, not orange' check."""
    y, cb, cr = ycbcr(photo)
    return (cb > -51) & (cb < -1) & (cr > 5) & (cr < 45) & (y > 60)


def photo_and_plain(name: str, side: int, reg: Registry) -> tuple[np.ndarray, np.ndarray]:
    photo = imaging.load_photo(SHARED / "photos" / f"{name}.jpg", max_side=side).rgb
    plain = np.asarray(stylize(photo, "hayao", registry=reg, max_side=0, device="cpu", precision="fp32").image)
    return photo, plain


# --- figures -------------------------------------------------------------------------------------

def chroma(args: argparse.Namespace) -> dict:
    reg = registry()
    out: dict = {"side": args.side}
    for name in PHOTOS:
        photo, plain = photo_and_plain(name, args.side, reg)
        row = {}
        for s in (0.0, 0.5, 1.0):
            kept = imaging.keep_color(plain, photo, s)
            row[f"strength {s:g}"] = {"cbcr_mae": round(chroma_mae(kept, photo), 3),
                                      "detail_corr_vs_plain": round(detail_correlation(kept, plain), 4),
                                      "saturation_ratio": round(saturation_ratio(kept, photo), 3),
                                      "skin_saturation_ratio": round(saturation_ratio(kept, photo, skin(photo)), 3),
                                      "skin_hue_error_deg": round(hue_error(kept, photo, skin(photo)), 2)}
        out[name] = row
    return out


def _rule(name: str, styled: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """The rules weighed before choosing keep_color's (luma from the style, chroma from the photo in each)."""
    if name == "chroma scaled with luma, gamut-fitted (keep_color)":
        return imaging.keep_color(styled, photo, 1.0)
    if name == "Lab: L from the style, a*b* from the photo":
        from PIL import ImageCms
        lab = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")
        rgb = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
        from PIL import Image
        ls = np.asarray(ImageCms.applyTransform(Image.fromarray(styled), lab)).copy()
        lp = np.asarray(ImageCms.applyTransform(Image.fromarray(photo), lab))
        ls[..., 1:] = lp[..., 1:]
        return np.asarray(ImageCms.applyTransform(Image.fromarray(ls, "LAB"), rgb))
    assert name.startswith("YCbCr"), name
    y_s = styled.astype(np.float32) @ imaging.LUMA
    y_p = photo.astype(np.float32) @ imaging.LUMA
    chroma_p = photo.astype(np.float32) - y_p[..., None]
    return np.clip(y_s[..., None] + chroma_p + 0.5, 0, 255).astype(np.uint8)


def methods(args: argparse.Namespace) -> dict:
    reg = registry()
    rules = ("YCbCr: Y from the style, Cb/Cr from the photo, clipped", "Lab: L from the style, a*b* from the photo",
             "chroma scaled with luma, gamut-fitted (keep_color)")
    pairs = [photo_and_plain(name, args.side, reg) for name in PHOTOS]
    out: dict = {"side": args.side}
    for label, rule in [("plain", None)] + [(r, r) for r in rules]:
        rows = []
        for photo, plain in pairs:
            t0 = time.perf_counter()
            kept = plain if rule is None else _rule(rule, plain, photo)
            ms = (time.perf_counter() - t0) * 1000
            y_k = ycbcr(kept)[0]
            darker = ycbcr(plain)[0] < ycbcr(photo)[0] - 10  # where the style darkened the photo
            rows.append([chroma_mae(kept, photo), detail_correlation(kept, plain), saturation_ratio(kept, photo),
                         saturation_ratio(kept, photo, darker), saturation_ratio(kept, photo, skin(photo)),
                         hue_error(kept, photo, skin(photo)), float(np.abs(y_k - ycbcr(plain)[0]).mean()), ms])
        mean = np.nanmean(np.array(rows), axis=0)
        out[label] = dict(zip(["cbcr_mae", "detail_corr_vs_plain", "saturation_ratio", "saturation_ratio_where_darker",
                               "skin_saturation_ratio", "skin_hue_error_deg", "luma_change_vs_plain", "ms"],
                              [round(float(v), 3) for v in mean]))
    return out


def flicker(args: argparse.Namespace) -> dict:
    """bench/video_bench.py's flicker index (output change on still pixels between frames), per keep-colour strength,
    with temporal smoothing on and off; ratios against strength 0 measured here."""
    vb = _video_bench()
    reg = registry()
    w, h, n, margin = 320, 240, args.frames, 32
    frames, boxes = vb.still_camera_clip(w, h, n)
    out: dict = {"clip": f"{w}x{h}, {n} frames", "margin_px": margin}
    for temporal in (True, False):
        base = None
        for s in args.strengths:
            options = RunOptions(style="hayao", precision="fp32", keep_color=s)
            smoother = video.FrameSmoother() if temporal else None
            styled = [video.stylize_frame(f, options, smoother, reg) for f in frames]
            index = flicker_index(frames, boxes, styled, margin)
            base = index if base is None else base
            out[f"temporal {'on' if temporal else 'off'}, keep colour {s:g}"] = {
                "flicker": round(index, 4), "ratio_to_strength_0": round(index / base, 3)}
    return out


def flicker_index(frames: list[np.ndarray], boxes: list[tuple], styled: list[np.ndarray], margin: int) -> float:
    vb = _video_bench()
    changes = []
    for t in range(1, len(frames)):
        mask = vb.still_mask(frames[t - 1], frames[t], boxes[t - 1], boxes[t], margin)
        changes.append(np.abs(styled[t].astype(np.int16) - styled[t - 1]).mean(axis=2)[mask].mean())
    return float(np.mean(changes))


def cost(args: argparse.Namespace) -> dict:
    reg = registry()
    photo = imaging.load_photo(SHARED / "photos" / "kyoto_street_kimono.jpg").rgb[:512, :512]
    photo = np.ascontiguousarray(photo)
    assert photo.shape[:2] == (512, 512), photo.shape
    model = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        plain = np.asarray(stylize(photo, "hayao", registry=reg, max_side=0, device="cpu", precision="fp32").image)
        model.append(time.perf_counter() - t0)
    step = []
    for _ in range(args.reps * 5):
        t0 = time.perf_counter()
        imaging.keep_color(plain, photo, 1.0)
        step.append(time.perf_counter() - t0)
    return {"photo": "512x512", "stylize_s_min": round(min(model), 3), "keep_color_ms_min": round(min(step) * 1000, 2),
            "keep_color_ms_median": round(float(np.median(step)) * 1000, 2),
            "ratio_to_stylize": round(min(step) / min(model), 4)}


def _video_bench():
    key = "animegan_bench_video_bench"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / "bench" / "video_bench.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[key]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["chroma", "methods", "flicker", "cost", "all"])
    p.add_argument("--side", type=int, default=512)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--strengths", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    jobs = {"chroma": chroma, "methods": methods, "flicker": flicker, "cost": cost}
    for name in (jobs if args.what == "all" else [args.what]):
        print(name, json.dumps(jobs[name](args), indent=1), flush=True)


if __name__ == "__main__":
    main()
