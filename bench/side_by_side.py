"""What side by side costs over the plain result: a photo (run + PNG encode) and a clip (the whole conversion).

    python bench/side_by_side.py [--photo PATH] [--clip PATH] [--side 1024] [--clip-side 0] [--repeats 3]

Plain and side-by-side runs alternate, so machine noise falls on both; the minimum of each is reported, with the
ratio, the output sizes and the bytes written. The model runs on the same pixels either way: the difference is the
composition (one copy of the input beside the result) and encoding twice the pixels.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photo", type=Path, default=SHARED / "photos" / "railway_crossing.jpg")
    p.add_argument("--clip", type=Path, default=SHARED / "video" / "railway_pan_320x240_2s.mp4")
    p.add_argument("--weights", type=Path, default=SHARED / "weights" / "hayao-int8-dequant.pt")
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--clip-side", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    registry = Registry(weights={"hayao": args.weights}, offline=True)
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
    print(json.dumps({
        "photo": {"plain_s": min(photo[False]), "side_by_side_s": min(photo[True]),
                  "ratio": min(photo[True]) / min(photo[False]), "sizes": [sizes["photo", False], sizes["photo", True]],
                  "png_bytes": [png[False], png[True]], **micro},
        "clip": {"plain_s": min(clip[False]), "side_by_side_s": min(clip[True]),
                 "ratio": min(clip[True]) / min(clip[False]), "sizes": [sizes["clip", False], sizes["clip", True]],
                 "mp4_bytes": [mp4[False], mp4[True]]},
    }, indent=1))


if __name__ == "__main__":
    main()
