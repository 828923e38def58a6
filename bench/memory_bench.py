"""Memory benchmarks for the memory-aware engine. Each prints its figures and the command that re-runs it.

    python bench/memory_bench.py model [--precision bf16]  # peak bytes per pixel of whole runs (fresh process per size)
    python bench/memory_bench.py 4k [--precision bf16]     # peak RSS of a 3840x2160 photo at native size, default budget
    python bench/memory_bench.py soak --runs 200  # RSS growth over sequential conversions in one process
    python bench/memory_bench.py tiles            # tiled vs whole at 1024 px on five real photos, old vs new statistics
    python bench/memory_bench.py tiles --photos animegan/examples/astronaut.jpg --budgets 1G 900M 800M 600M
    python bench/memory_bench.py tiles --sizes 2048 --budgets 2G --seams

Peak RSS is the kernel's high-water mark of the measuring process (VmHWM), read in a fresh child process so
nothing earlier in this script counts. Not tests: figures to re-measure on the machine at hand.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"
PHOTOS = sorted((SHARED / "photos").glob("*.jpg"))


def _child(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line."""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def prelude(precision: str = "fp32") -> str:
    """Child-process setup: the model in ``precision`` loaded and warmed up, so only the run itself is measured."""
    return f"""
import json, sys, numpy as np, torch
sys.path.insert(0, {str(REPO)!r})
from PIL import Image
from animegan import Registry, stylize
from animegan.memory import process_rss, PeakRSS
PRECISION = {precision!r}
registry = Registry(weights={{"hayao": {str(WEIGHTS)!r}}}, offline=True)
registry.get("hayao", "cpu", PRECISION)
stylize(np.zeros((64, 64, 3), np.uint8), "hayao", registry=registry, device="cpu", max_side=0, precision=PRECISION)
"""


def photo_at(width: int, height: int) -> np.ndarray:
    """A real photo resized (LANCZOS) to the given size: realistic content at any resolution."""
    return np.asarray(Image.open(PHOTOS[0]).convert("RGB").resize((width, height), Image.LANCZOS))


def cmd_model(args: argparse.Namespace) -> None:
    rows = []
    for side in args.sizes:
        r = _child(prelude(args.precision) + f"""
rgb = np.asarray(Image.open({str(PHOTOS[0])!r}).convert("RGB").resize(({side}, {side}), Image.LANCZOS))
base = process_rss()
with PeakRSS() as p:
    stylize(rgb, "hayao", registry=registry, device="cpu", max_side=0, tile=0, precision=PRECISION)
print(json.dumps({{"delta": p.peak - base, "pixels": {side * side}}}))
""")
        rows.append((side, r["delta"], r["pixels"]))
        print(f"{side}x{side}: peak above baseline {r['delta'] / 2**20:8.0f} MiB = {r['delta'] / r['pixels']:6.0f} B/px")
    if len(rows) >= 2:
        px = np.array([r[2] for r in rows], float)
        by = np.array([r[1] for r in rows], float)
        slope, icpt = np.polyfit(px, by, 1)
        from animegan import memory
        print(f"fit ({args.precision}): peak = {icpt / 2**20:.0f} MiB + {slope:.0f} B/px  (animegan/memory.py uses "
              f"FIXED_BYTES + bytes_per_pixel('cpu', {args.precision!r}) = {memory.bytes_per_pixel('cpu', args.precision)})")


def cmd_4k(args: argparse.Namespace) -> None:
    budget = repr(args.budget)
    r = _child(prelude(args.precision) + f"""
rgb = np.asarray(Image.open({str(PHOTOS[0])!r}).convert("RGB").resize((3840, 2160), Image.LANCZOS))
base = process_rss()
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
res = stylize(rgb, "hayao", registry=registry, device="cpu", max_side=0, memory_budget={budget}, precision=PRECISION)
hwm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({{"hwm": hwm, "base": base, "seconds": res.stats.seconds, "plan": res.stats.plan,
                  "size": res.image.size, "tiles": res.stats.tiles}}))
""")
    from animegan.memory import estimate_bytes
    untiled = estimate_bytes(3840 * 2160, "cpu", args.precision) + r["base"]
    print(f"3840x2160 native, {args.precision}, budget {args.budget or 'default'}: peak RSS {r['hwm'] / 2**30:.2f} GiB "
          f"(process before the run {r['base'] / 2**30:.2f} GiB), {r['seconds']:.0f} s, output {r['size']}, "
          f"{r['tiles']} tiles: {r['plan']}")
    print(f"untiled estimate from the memory model: {untiled / 2**30:.1f} GiB")


def cmd_soak(args: argparse.Namespace) -> None:
    r = _child(prelude() + f"""
rng = np.random.default_rng(0)
src = np.asarray(Image.open({str(PHOTOS[1])!r}).convert("RGB"))
samples = []
for i in range({args.runs}):
    h, w = int(rng.integers(96, 257)), int(rng.integers(96, 257))
    y, x = int(rng.integers(0, src.shape[0] - h)), int(rng.integers(0, src.shape[1] - w))
    tile = 96 if i % 5 == 4 else None  # every fifth run is tiled
    stylize(np.ascontiguousarray(src[y:y + h, x:x + w]), "hayao", registry=registry, device="cpu", max_side=0, tile=tile,
            precision=PRECISION)
    samples.append(process_rss())
import time, animegan.memory as m
time.sleep(m.IDLE_TRIM_DELAY_S + 1)  # the heap is given back once the process has been idle that long
print(json.dumps({{"rss": samples, "idle": process_rss()}}))
""")
    from animegan.memory import MAX_UNTRIMMED_RUNS

    rss = r["rss"]
    warm = max(1, len(rss) // 10)
    # RSS right after a run saw-tooths between trims (animegan.memory.MAX_UNTRIMMED_RUNS): compare the peaks
    # of whole trim cycles, the last one of the warm-up against the last one of the soak.
    cycle = MAX_UNTRIMMED_RUNS
    ref, end = max(rss[max(0, warm - cycle):warm]), max(rss[-cycle:])
    growth = (end - ref) / ref * 100
    print(f"{len(rss)} conversions (96-256 px, every 5th tiled), RSS right after each run: highest of the last "
          f"{cycle} warm-up runs (of {warm}) {ref / 2**20:.0f} MiB, highest of the last {cycle} runs {end / 2**20:.0f} MiB: "
          f"growth {growth:+.1f}%; highest after warm-up {max(rss[warm:]) / 2**20:.0f} MiB; "
          f"{r['idle'] / 2**20:.0f} MiB once idle")


EXAMPLES = REPO / "animegan" / "examples"
TILE_PHOTOS = PHOTOS + [EXAMPLES / "coffee.jpg", EXAMPLES / "rocket.jpg"]


def cmd_tiles(args: argparse.Namespace) -> None:
    """Tiled vs whole run, per photo, size and budget: statistics from the tiles (now) vs extrapolated (before)."""
    import time

    import torch

    from animegan import Registry, inference, memory
    from animegan.imaging import psnr
    registry = Registry(weights={"hayao": WEIGHTS}, offline=True)
    model = registry.get("hayao", "cpu", "fp32").model
    photos = [Path(p) for p in args.photos] if args.photos else TILE_PHOTOS
    print(f"{'photo':<22} {'size':>9} {'budget':>6}  {'plan':<44} {'layers':>8} {'extrap.':>8} "
          f"{'whole s':>7} {'layers s':>8} {'extrap. s':>9} {'ratio':>5}")
    crops = []
    worst = None
    for path in photos:
        img = Image.open(path).convert("RGB")
        for side in args.sizes:
            scale = side / max(img.size)
            rgb = np.asarray(img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS))
            h, w = rgb.shape[:2]
            note = f" (upscaled from {img.width}x{img.height})" if scale > 1 else ""
            with torch.inference_mode():
                start = time.perf_counter()
                whole = inference.run_whole(model, rgb)
                t_whole = time.perf_counter() - start
            for budget_text in args.budgets:
                plan = memory.plan_run(h, w, "cpu", "fp32", memory.parse_bytes(budget_text))
                if not plan.tiled or plan.passes == 1:
                    print(f"{path.stem:<22} {w}x{h} {budget_text:>6}: {plan.describe()}: nothing to compare, "
                          "pass a smaller budget")
                    continue
                times, outs = {}, {}
                for method in ("layers", "extrapolated"):
                    start = time.perf_counter()
                    outs[method] = inference.run_tiled(model, rgb, tile=plan.tile, halo=plan.halo,
                                                       stats_side=plan.stats_side, statistics=method)
                    times[method] = time.perf_counter() - start
                db = {m: psnr(o, whole) for m, o in outs.items()}
                worst = min(worst, db["layers"]) if worst is not None else db["layers"]
                grid = plan.tile_count(h, w)
                plan_text = f"{grid} tiles of {plan.tile} px; extrap. from {plan.stats_side} px"
                print(f"{path.stem:<22} {f'{w}x{h}':>9} {budget_text:>6}  {plan_text:<44} {db['layers']:6.1f} dB "
                      f"{db['extrapolated']:5.1f} dB {t_whole:7.1f} {times['layers']:8.1f} {times['extrapolated']:9.1f} "
                      f"{times['layers'] / times['extrapolated']:5.1f}{note}", flush=True)
                if args.seams:
                    crops.append(_seam_strip(model, rgb, whole, outs["layers"], plan))
    if worst is not None:
        print(f"lowest PSNR with statistics from the tiles: {worst:.1f} dB; 'layers': statistics measured over the "
              f"tiles ({inference.tiled_passes(True)} passes), 'extrap.': two downscaled runs (the method before); "
              "ratio = layers s / extrap. s, same process")
    if crops:
        out = REPO / "docs" / "tile_seam.png"
        sheet = Image.new("RGB", (crops[0].width, sum(c.height for c in crops) + 8 * (len(crops) - 1)), "white")
        y = 0
        for c in crops:
            sheet.paste(c, (0, y))
            y += c.height + 8
        sheet.save(out, optimize=True)
        print(f"wrote {out.relative_to(REPO)}: per photo, 4x crops at a tile corner: untiled | tiled (statistics from "
              "the tiles) | tiles normalised alone")


def _seam_strip(model, rgb: np.ndarray, whole: np.ndarray, tiled: np.ndarray, plan) -> Image.Image:
    """A 96 px crop centred on the first inner tile corner, shown 4x: untiled | tiled | tiles normalised alone."""
    from animegan import inference
    from animegan.imaging import psnr
    h, w = rgb.shape[:2]
    ph, pw = inference.padding_for(h, w)
    naive = np.zeros_like(whole)
    for ys, xs in inference.tile_grid(h + ph, w + pw, plan.tile, 0):
        part = np.ascontiguousarray(rgb[ys.core[0]:ys.core[1], xs.core[0]:xs.core[1]])
        if part.size:
            naive[ys.core[0]:ys.core[1], xs.core[0]:xs.core[1]] = inference.run_whole(model, part)
    print(f"  tiles normalised alone: {psnr(naive, whole):.1f} dB")
    ys = inference.spans(h + ph, plan.tile, 0)
    xs = inference.spans(w + pw, plan.tile, 0)
    cy = ys[0].core[1] if len(ys) > 1 else h // 2
    cx = xs[0].core[1] if len(xs) > 1 else w // 2
    y0, x0 = max(0, min(h - 96, cy - 48)), max(0, min(w - 96, cx - 48))
    row = [Image.fromarray(a[y0:y0 + 96, x0:x0 + 96]).resize((384, 384), Image.NEAREST) for a in (whole, tiled, naive)]
    strip = Image.new("RGB", (3 * 384 + 2 * 8, 384), "white")
    for i, im in enumerate(row):
        strip.paste(im, (i * (384 + 8), 0))
    return strip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("model")
    m.add_argument("--sizes", type=int, nargs="+", default=[384, 512, 768, 1024])
    m.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    k = sub.add_parser("4k")
    k.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    k.add_argument("--budget", default=None, help="memory budget (default: the engine's CPU default)")
    s = sub.add_parser("soak")
    s.add_argument("--runs", type=int, default=200)
    t = sub.add_parser("tiles")
    t.add_argument("--budgets", nargs="+", default=["1G"], help="budgets under what the photo needs whole, so it tiles")
    t.add_argument("--sizes", type=int, nargs="+", default=[1024], help="longest side(s) each photo is resized to")
    t.add_argument("--photos", nargs="+", help="photo files (default: the shared photos, coffee and rocket)")
    t.add_argument("--seams", action="store_true", help="also compare tiles normalised alone; write docs/tile_seam.png")
    args = p.parse_args()
    print("$ python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]))
    {"model": cmd_model, "4k": cmd_4k, "soak": cmd_soak, "tiles": cmd_tiles}[args.cmd](args)


if __name__ == "__main__":
    main()
