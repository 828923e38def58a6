"""How far bf16 output is from fp32 on every real photo: the figure behind precision="auto" choosing bf16.

For each photo in the shared photos folder, scaled so its longer side is each ``--sides`` value (LANCZOS,
sides rounded to multiples of 4 so no padding is involved), both precisions run the whole photo through
stylize() (tile=0); a third run is bf16 in tiles under ``--budget`` (whole-image statistics replayed from
smaller runs), compared with untiled fp32. PSNR over the uint8 outputs, max |diff| on the 0-255 scale.
The issue's bar: bf16 >= 45 dB against fp32 on every photo at 512 and 1024; tiled bf16 >= 40 dB.

    python bench/precision_quality.py --sides 512 1024
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan import Registry, stylize  # noqa: E402
from animegan.imaging import psnr  # noqa: E402

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"


def scaled(path: Path, side: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        s = side / max(im.size)
        size = (max(8, round(im.width * s / 4) * 4), max(8, round(im.height * s / 4) * 4))
        return np.asarray(im.resize(size, Image.LANCZOS))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sides", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--budget", default="256M", help="memory budget of the tiled bf16 run (default 256M: it tiles)")
    args = p.parse_args()
    command = shlex.join(["python", "bench/precision_quality.py", "--sides", *map(str, args.sides),
                          *(["--budget", args.budget] if args.budget != "256M" else [])])
    print(f"command : {command}")
    photos = sorted((SHARED / "photos").glob("*.jpg"))
    header = (f"{'photo':>22} | {'size':>9} | {'bf16 vs fp32':>12} | {'max |diff|':>10} | "
              f"{'tiled bf16 vs fp32':>18} | {'max |diff|':>10} | tiled plan")
    print(header)
    print("-" * len(header))
    worst = float("inf")
    with tempfile.TemporaryDirectory() as cache:
        registry = Registry(weights={"hayao": WEIGHTS}, cache_dir=Path(cache), offline=True)
        for side in args.sides:
            for path in photos:
                rgb = scaled(path, side)
                run = {p: np.asarray(stylize(rgb, "hayao", registry=registry, device="cpu", precision=p, max_side=0,
                                             tile=0).image) for p in ("fp32", "bf16")}
                tiled = stylize(rgb, "hayao", registry=registry, device="cpu", precision="bf16", max_side=0,
                                memory_budget=args.budget)
                t = np.asarray(tiled.image)
                q, qt = psnr(run["bf16"], run["fp32"]), psnr(t, run["fp32"])
                worst = min(worst, q)
                d = np.abs(run["bf16"].astype(int) - run["fp32"]).max()
                dt = np.abs(t.astype(int) - run["fp32"]).max()
                print(f"{path.stem:>22} | {rgb.shape[1]:>4}x{rgb.shape[0]:<4} | {q:>9.1f} dB | {d:>10} | "
                      f"{qt:>15.1f} dB | {dt:>10} | {tiled.stats.tiles} tiles: {tiled.stats.plan}", flush=True)
    print(f"lowest bf16 vs fp32 PSNR: {worst:.1f} dB (bar: 45 dB)")
    print(f"re-run  : {command}")


if __name__ == "__main__":
    main()
