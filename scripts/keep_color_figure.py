"""docs/keep_color.jpg: three photos, each as the photo and then stylised at Keep colours 0, 0.5 and 1.

    python scripts/keep_color_figure.py --weights ../shared/weights/hayao-int8-dequant.pt --photos ../shared/photos

The Hayao weights cannot be downloaded on the machine that made the figure, so the stand-in Hayao weights given
here are used, and the caption says so. Each row runs the model once: the strengths are keep_color applied to
the same result (what stylize(..., keep_color=S) does after the model).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan import Registry, imaging, stylize

PHOTOS = ("kyoto_street_kimono.jpg", "railway_crossing.jpg", "cars_bridge_forest.jpg")
STRENGTHS = (0.0, 0.5, 1.0)
WIDTH = 440                # every column this wide; each row as tall as its photo needs
GAP = 8


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, required=True, help="weights run as the Hayao style")
    p.add_argument("--photos", type=Path, required=True, help="folder holding the three shared photos")
    p.add_argument("--side", type=int, default=512, help="max side the photos are stylised at")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "keep_color.jpg")
    args = p.parse_args()
    registry = Registry(weights={"hayao": args.weights}, offline=True)
    rows = []
    for name in PHOTOS:
        photo = imaging.load_photo(args.photos / name, max_side=args.side).rgb
        styled = np.asarray(stylize(photo, "hayao", registry=registry, max_side=0, device="cpu",
                                    precision="fp32").image)
        rows.append([photo] + [imaging.keep_color(styled, photo, s) for s in STRENGTHS])
    labels = ["photo"] + [f"Keep colours {s:g}" + (" (off)" if s == 0 else "") for s in STRENGTHS]
    heights = [round(WIDTH * r[0].shape[0] / r[0].shape[1]) for r in rows]
    top = 24
    sheet = Image.new("RGB", (GAP + len(labels) * (WIDTH + GAP), top + sum(h + GAP for h in heights) + 30), "white")
    draw = ImageDraw.Draw(sheet)
    for i, label in enumerate(labels):
        draw.text((GAP + i * (WIDTH + GAP), 6), label, fill="black")
    y = top
    for row, h in zip(rows, heights):
        for i, pixels in enumerate(row):
            sheet.paste(Image.fromarray(pixels).resize((WIDTH, h), Image.LANCZOS), (GAP + i * (WIDTH + GAP), y))
        y += h + GAP
    draw.text((GAP, sheet.height - 22), f"Hayao style run with STAND-IN weights ({args.weights.name}), max side "
              f"{args.side}; photos from bryandlee/animegan2-pytorch's samples (MIT).", fill="black")
    args.out.parent.mkdir(exist_ok=True)
    sheet.save(args.out, quality=92, subsampling=0, optimize=True)  # 4:4:4: the chroma is what it shows
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
