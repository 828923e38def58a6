"""How far bf16 output is from fp32 on every real photo: the figure behind precision="auto" choosing bf16.

For each photo in the shared photos folder, scaled so its longer side is each ``--sides`` value (LANCZOS,
sides rounded to multiples of 4 so no padding is involved), both precisions run the whole photo through
stylize() (tile=0). Then both run in the same tiles (``animegan.inference.run_tiled``, the plan the engine
makes for bf16 under half the memory a whole bf16 run needs: layer by layer, exact statistics), to separate what tiling costs from what bf16 costs: tiled bf16 and tiled fp32 against untiled fp32,
and tiled bf16 against tiled fp32. PSNR over the uint8 outputs, max |diff| on the 0-255 scale.
The issue's bars: bf16 >= 45 dB against fp32 on every photo at 512 and 1024; tiled bf16 >= 40 dB.

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

from animegan import Registry, memory, stylize
from animegan.imaging import psnr
from animegan.inference import run_tiled

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
    args = p.parse_args()
    command = shlex.join(["python", "bench/precision_quality.py", "--sides", *map(str, args.sides)])
    print(f"command : {command}")
    photos = sorted((SHARED / "photos").glob("*.jpg"))
    header = (f"{'photo':>22} | {'size':>9} | {'bf16 vs fp32':>12} | {'max |diff|':>10} | "
              f"{'tiled bf16 vs fp32':>18} | {'tiled fp32 vs fp32':>18} | {'tiled bf16 vs tiled fp32':>24} | tiles")
    print(header)
    print("-" * len(header))
    worst, worst_tiled = float("inf"), float("inf")
    with tempfile.TemporaryDirectory() as cache:
        registry = Registry(weights={"hayao": WEIGHTS}, cache_dir=Path(cache), offline=True)
        models = {p: registry.get("hayao", "cpu", p).model for p in ("fp32", "bf16")}
        for side in args.sides:
            for path in photos:
                rgb = scaled(path, side)
                h, w = rgb.shape[:2]
                run = {p: np.asarray(stylize(rgb, "hayao", registry=registry, device="cpu", precision=p, max_side=0,
                                             tile=0).image) for p in models}
                budget = memory.estimate_bytes(memory.run_pixels(h, w), "cpu", "bf16") // 2
                plan = memory.plan_run(h, w, "cpu", "bf16", budget)
                tiled = {p: run_tiled(m, rgb, tile=plan.tile, precision=p, map_ram=plan.map_ram)
                         for p, m in models.items()}
                q, d = psnr(run["bf16"], run["fp32"]), np.abs(run["bf16"].astype(int) - run["fp32"]).max()
                qt = psnr(tiled["bf16"], run["fp32"])
                worst, worst_tiled = min(worst, q), min(worst_tiled, qt)
                n = plan.tile_count(h, w)
                print(f"{path.stem:>22} | {w:>4}x{h:<4} | {q:>9.1f} dB | {d:>10} | {qt:>15.1f} dB | "
                      f"{psnr(tiled['fp32'], run['fp32']):>15.1f} dB | {psnr(tiled['bf16'], tiled['fp32']):>21.1f} dB | "
                      f"{n} tiles of {plan.tile} px, layer by layer", flush=True)
    print(f"lowest bf16 vs fp32 PSNR: {worst:.1f} dB (bar: 45 dB); lowest tiled bf16 vs untiled fp32: "
          f"{worst_tiled:.1f} dB (bar: 40 dB)")
    print(f"re-run  : {command}")


if __name__ == "__main__":
    main()
