"""Side by side: how close a video's halves are to the input and to the plain result, and what it costs.

    python bench/side_by_side.py halves      # PSNR of each half of a side-by-side clip (tests/test_side_by_side.py's)
    python bench/side_by_side.py cost [--photo PATH] [--clip PATH] [--side 1024] [--clip-side 0] [--repeats 3]

``halves``: the test's clip (:func:`crossing_clip`) converted plain and side by side; per frame, the left half
against the input's frames, the right half against the plain result's, and two wrong pairings (the left half
against the result, the right half one frame off) that a bound must reject.
``cost``: plain and side-by-side runs alternate, so machine noise falls on both; the minimum of each is reported,
with the ratio, the output sizes and the bytes written. The model runs on the same pixels either way: the
difference is the composition (one copy of the input beside the result) and encoding twice the pixels.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image

from animegan import Registry, imaging, stylize, video

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def _best(fn: Callable[[], object], n: int = 5) -> float:
    """The fastest of ``n`` calls, in ms."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


CLIP_SIZE = (128, 96)
CLIP_FPS = 12
CLIP_FRAMES = 12
TONE_RATE = 44100


def crossing_clip(path: Path, photo: Path) -> Path:
    """1 s at 12 fps, 128x96: a bright square crossing a real photo, with a 440 Hz AAC tone of the same length."""
    w, h = CLIP_SIZE
    base = np.asarray(Image.open(photo).convert("RGB").resize((w, h), Image.LANCZOS))
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=CLIP_FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = out.add_stream("aac", rate=TONE_RATE)
        aus.layout = "mono"
        for i in range(CLIP_FRAMES):
            rgb = base.copy()
            rgb[30:46, i * 9:i * 9 + 16] = (250, 240, 40)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        n = TONE_RATE * CLIP_FRAMES // CLIP_FPS
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / TONE_RATE)).astype(np.float32)
        for start in range(0, n, 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = TONE_RATE, start
            out.mux(aus.encode(chunk))
        out.mux(aus.encode(None))
    return path


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def halves_psnr(clip: Path, plain: Path, side: Path) -> dict[str, list[float]]:
    """Per frame, in dB: each half of ``side`` against what it must show, and two pairings it must not match."""
    inputs, result, both = frames_of(clip), frames_of(plain), frames_of(side)
    w = both[0].shape[1] // 2
    return {"left_vs_input": [imaging.psnr(f[:, :w], x) for f, x in zip(both, inputs, strict=True)],
            "right_vs_plain": [imaging.psnr(f[:, w:], p) for f, p in zip(both, result, strict=True)],
            "left_vs_plain (wrong)": [imaging.psnr(f[:, :w], p) for f, p in zip(both, result, strict=True)],
            "right_one_frame_off (wrong)": [imaging.psnr(f[:, w:], p) for f, p in zip(both[1:], result[:-1],
                                                                                       strict=True)]}


def halves(registry: Registry) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        clip = crossing_clip(Path(tmp) / "crossing.mp4", SHARED / "photos" / "railway_crossing.jpg")
        for name, side_by_side in (("plain", False), ("side", True)):
            video.stylize_video(clip, Path(tmp) / f"{name}.mp4", registry=registry, style="hayao", device="cpu",
                                precision="fp32", max_side=0, side_by_side=side_by_side)
        both = frames_of(Path(tmp) / "side.mp4")
        w = both[0].shape[1] // 2
        mad = {"left": max(float(np.abs(f[:, :w].astype(np.int16) - x).mean())
                           for f, x in zip(both, frames_of(clip), strict=True)),
               "right": max(float(np.abs(f[:, w:].astype(np.int16) - p).mean())
                            for f, p in zip(both, frames_of(Path(tmp) / "plain.mp4"), strict=True))}
        psnr = halves_psnr(clip, Path(tmp) / "plain.mp4", Path(tmp) / "side.mp4")
    return {**{k: {"min_db": round(min(v), 1), "max_db": round(max(v), 1)} for k, v in psnr.items()},
            "max_mean_abs_diff": mad}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("halves", "cost"))
    p.add_argument("--photo", type=Path, default=SHARED / "photos" / "railway_crossing.jpg")
    p.add_argument("--clip", type=Path, default=SHARED / "video" / "railway_pan_320x240_2s.mp4")
    p.add_argument("--weights", type=Path, default=SHARED / "weights" / "hayao-int8-dequant.pt")
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--clip-side", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    registry = Registry(weights={"hayao": args.weights}, offline=True)
    print(json.dumps(halves(registry) if args.what == "halves" else cost(registry, args), indent=1))


def cost(registry: Registry, args: argparse.Namespace) -> dict:
    photo: dict[bool, list[float]] = {False: [], True: []}
    png: dict[bool, int] = {}
    sizes: dict[tuple[str, bool], tuple[int, int]] = {}
    for _ in range(args.repeats):
        for side_by_side in (False, True):
            t = time.perf_counter()
            result = stylize(args.photo, "hayao", registry=registry, device="cpu", precision="fp32",
                             max_side=args.side, side_by_side=side_by_side)
            png[side_by_side] = len(imaging.encode_png(result.image))
            photo[side_by_side].append(time.perf_counter() - t)
            sizes[("photo", side_by_side)] = result.image.size
    # The parts side by side adds, timed alone (less noisy than whole runs on a shared machine): composing, and
    # encoding the PNG of twice the pixels.
    plain = stylize(args.photo, "hayao", registry=registry, device="cpu", precision="fp32", max_side=args.side).image
    source = imaging.load_photo(args.photo, max_side=args.side).rgb
    micro = {"compose_ms": _best(lambda: imaging.side_by_side(source, np.asarray(plain))),
             "png_plain_ms": _best(lambda: imaging.encode_png(plain)),
             "png_side_by_side_ms": _best(lambda: imaging.encode_png(
                 Image.fromarray(imaging.side_by_side(source, np.asarray(plain)))))}
    clip: dict[bool, list[float]] = {False: [], True: []}
    mp4: dict[bool, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for side_by_side in (False, True):
                dest = Path(tmp) / f"{side_by_side}.mp4"
                stats = video.stylize_video(args.clip, dest, registry=registry, style="hayao", device="cpu",
                                            precision="fp32", max_side=args.clip_side, side_by_side=side_by_side)
                clip[side_by_side].append(stats.seconds)
                mp4[side_by_side] = dest.stat().st_size
                sizes[("clip", side_by_side)] = stats.output_size
    return {
        "photo": {"plain_s": min(photo[False]), "side_by_side_s": min(photo[True]),
                  "ratio": min(photo[True]) / min(photo[False]), "sizes": [sizes["photo", False], sizes["photo", True]],
                  "png_bytes": [png[False], png[True]], **micro},
        "clip": {"plain_s": min(clip[False]), "side_by_side_s": min(clip[True]),
                 "ratio": min(clip[True]) / min(clip[False]), "sizes": [sizes["clip", False], sizes["clip", True]],
                 "mp4_bytes": [mp4[False], mp4[True]]},
    }


if __name__ == "__main__":
    main()
