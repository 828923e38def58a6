"""docs/portrait_framing.png: one photo in face, center and paste framing, side by side.

    python scripts/portrait_figure.py --weights ../shared/weights/hayao-int8-dequant.pt

The real portrait weights cannot be downloaded on the machine that made the figure, so a portrait style is run with
the weights given here (the stand-in Hayao weights: same layout), and the caption says so.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan import Registry, stylize

STYLE = "face_paint_512_v2"
PANEL = 360


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, required=True, help="weights run as the portrait style")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "portrait_framing.png")
    args = p.parse_args()
    registry = Registry(weights={STYLE: args.weights}, offline=True)
    # An off-centre portrait: the astronaut example cut to a landscape whose centre is not her face.
    photo = np.asarray(Image.open(REPO / "animegan" / "examples" / "astronaut.jpg").convert("RGB").crop((40, 20, 512, 300)))
    panels = [("photo (472x280)", Image.fromarray(photo))]
    for mode in ("face", "center", "paste"):
        result = stylize(photo, STYLE, registry=registry, framing=mode, device="cpu", precision="fp32", max_side=0)
        panels.append((f"{mode}: {result.image.size[0]}x{result.image.size[1]}", result.image.convert("RGB")))
    width = sum(round(PANEL * im.width / im.height) for _, im in panels) + 10 * (len(panels) + 1)
    sheet = Image.new("RGB", (width, PANEL + 70), "white")
    draw = ImageDraw.Draw(sheet)
    x = 10
    for label, im in panels:
        w = round(PANEL * im.width / im.height)
        sheet.paste(im.resize((w, PANEL), Image.LANCZOS), (x, 10))
        draw.text((x, PANEL + 16), label, fill="black")
        x += w + 10
    draw.text((10, PANEL + 42), f"Style {STYLE} run with STAND-IN weights ({args.weights.name}, the Hayao stand-in), "
              "not the real portrait weights: the framing is what this shows.", fill="black")
    args.out.parent.mkdir(exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
