"""Memory benchmarks for the memory-aware engine. Each prints its figures and the command that re-runs it.

    python bench/memory_bench.py model [--precision bf16]  # peak bytes per pixel of whole runs (fresh process per size)
    python bench/memory_bench.py 4k [--precision bf16] [--before DIR]  # 3840x2160 at native size: time, peak RSS
    python bench/memory_bench.py soak --runs 200  # RSS growth over sequential conversions in one process
    python bench/memory_bench.py tiles [--before DIR]  # tiled vs whole: five photos, 2048 px/2G and 1024 px/600M, bf16+fp32
    python bench/memory_bench.py thin [--before DIR]   # very thin and very wide photos: planned vs real peak RSS

``--before DIR`` measures an older checkout (``git worktree add DIR COMMIT``) right after each case, the same way.

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


FOURK_RUN = """
import json, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from PIL import Image
from animegan import Registry, stylize
from animegan.memory import process_rss
photo, precision, weights = sys.argv[2], sys.argv[3], sys.argv[4]
budget = sys.argv[5] if len(sys.argv) > 5 else None
registry = Registry(weights={"hayao": weights}, offline=True)
stylize(np.zeros((64, 64, 3), np.uint8), "hayao", registry=registry, device="cpu", max_side=0, precision=precision)
rgb = np.asarray(Image.open(photo).convert("RGB").resize((3840, 2160), Image.LANCZOS))
base = process_rss()
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
res = stylize(rgb, "hayao", registry=registry, device="cpu", max_side=0, memory_budget=budget, precision=precision)
hwm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({"hwm": hwm, "base": base, "seconds": res.stats.seconds, "plan": res.stats.plan,
                  "size": res.image.size, "tiles": res.stats.tiles}))
"""


def cmd_4k(args: argparse.Namespace) -> None:
    """A 3840x2160 photo at native size under the app's default budget for one conversion (2 GiB on a machine
    with 8 GiB or more available), or ``--budget``; ``--budget auto``: the library's one-user default."""
    from animegan.memory import estimate_bytes, run_pixels

    repos = [("now", REPO)] + ([("before", Path(args.before))] if args.before else [])
    budget = [] if args.budget == "auto" else [args.budget]
    for name, repo in repos:
        r = _run_in(repo, FOURK_RUN, PHOTOS[0], args.precision, WEIGHTS, *budget)
        print(f"3840x2160 native, {args.precision}, budget {args.budget}, {name}: peak RSS {r['hwm'] / 2**30:.2f} GiB "
              f"(process before the run {r['base'] / 2**30:.2f} GiB), {r['seconds']:.0f} s, output {r['size']}, "
              f"{r['tiles']} tiles: {r['plan']}", flush=True)
    untiled = estimate_bytes(run_pixels(2160, 3840), "cpu", args.precision)
    print(f"untiled estimate from the memory model: {untiled / 2**30:.1f} GiB above the process")


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
TILE_PHOTOS = PHOTOS + [EXAMPLES / "astronaut.jpg", EXAMPLES / "rocket.jpg"]

TILES_RUN = """
import json, sys, time, numpy as np
sys.path.insert(0, sys.argv[1])
from PIL import Image
from animegan import Registry, memory, stylize
from animegan.imaging import psnr
path, side, budget, precision, weights = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
registry = Registry(weights={"hayao": weights}, offline=True)
stylize(np.zeros((64, 64, 3), np.uint8), "hayao", registry=registry, device="cpu", max_side=0, precision=precision)
img = Image.open(path).convert("RGB")
scale = side / max(img.size)
rgb = np.asarray(img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS))
c0 = time.process_time()
whole = stylize(rgb, "hayao", registry=registry, device="cpu", max_side=0, tile=0, precision=precision)
c1 = time.process_time()
tiled = stylize(rgb, "hayao", registry=registry, device="cpu", max_side=0, memory_budget=budget, precision=precision)
c2 = time.process_time()
print(json.dumps({"whole_s": whole.stats.seconds, "tiled_s": tiled.stats.seconds, "plan": tiled.stats.plan,
                  "whole_cpu": c1 - c0, "tiled_cpu": c2 - c1,
                  "psnr": psnr(np.asarray(tiled.image), np.asarray(whole.image)), "size": list(rgb.shape[:2]),
                  "peak": tiled.stats.peak_memory}))
"""


def _run_in(repo: Path, code: str, *args: object) -> dict:
    """``code`` in a fresh interpreter that imports animegan from ``repo``; it prints one JSON line."""
    env = dict(os.environ, PYTHONPATH=str(repo))
    out = subprocess.run([sys.executable, "-c", code, str(repo), *map(str, args)], check=True, capture_output=True,
                         text=True, cwd=repo, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cmd_tiles(args: argparse.Namespace) -> None:
    """Tiled (under a budget that forces tiles) against whole, per photo, size, budget and precision: PSNR and time
    ratio, each pair measured in one fresh process; with ``--before``, the same for an older checkout right after."""
    photos = [Path(p) for p in args.photos] if args.photos else TILE_PHOTOS
    repos = [("now", REPO)] + ([("before", Path(args.before))] if args.before else [])
    repos = [r for r in repos if r[0] in args.codes]
    print(f"{'photo':<20} {'size':>9} {'budget':>6} {'prec':>4} {'code':>6} {'PSNR':>8} {'whole s':>7} {'tiled s':>7} "
          f"{'ratio':>5} {'CPU s ratio':>11}  plan")
    worst: dict[tuple[str, str], list[float]] = {}
    for path in photos:
        for case in args.cases:
            side, budget = case.split(":")
            for precision in args.precisions:
                for name, repo in repos:
                    r = _run_in(repo, TILES_RUN, path, side, budget, precision, WEIGHTS)
                    ratio = r["tiled_s"] / r["whole_s"]
                    h, w = r["size"]
                    worst.setdefault((name, precision), []).append(ratio)
                    print(f"{path.stem:<20} {f'{w}x{h}':>9} {budget:>6} {precision:>4} {name:>6} {r['psnr']:6.1f} dB "
                          f"{r['whole_s']:7.1f} {r['tiled_s']:7.1f} {ratio:5.2f} {r['tiled_cpu'] / r['whole_cpu']:11.2f}  "
                          f"{r['plan']}", flush=True)
    for (name, precision), ratios in worst.items():
        print(f"{name} {precision}: tiled/whole wall-time ratio {min(ratios):.2f}..{max(ratios):.2f} "
              f"(median {float(np.median(ratios)):.2f}) over {len(ratios)} cases; 'CPU s ratio': the same in CPU "
              "seconds of the process (steadier on a shared machine)")


THIN_RUN = """
import json, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from animegan import Registry, memory, stylize
from animegan.memory import PeakRSS, process_rss
h, w, budget, precision, weights = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
registry = Registry(weights={"hayao": weights}, offline=True)
stylize(np.zeros((64, 64, 3), np.uint8), "hayao", registry=registry, device="cpu", max_side=0, precision=precision)
rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
base = process_rss()
with PeakRSS() as peak:
    r = stylize(rgb, "hayao", registry=registry, device="cpu", max_side=0, precision=precision, memory_budget=budget,
                max_pixels=10**9)
plan = memory.plan_run(h, w, "cpu", precision, memory.parse_bytes(budget))
print(json.dumps({"used": peak.peak - base, "estimate": plan.estimate, "plan": r.stats.plan, "seconds": r.stats.seconds}))
"""


def cmd_thin(args: argparse.Namespace) -> None:
    """Very thin and very wide photos: what the plan predicts against the peak RSS a fresh process really adds."""
    repos = [("now", REPO)] + ([("before", Path(args.before))] if args.before else [])
    for shape in args.shapes:
        h, w = (int(v) for v in shape.split("x"))
        for precision in args.precisions:
            for name, repo in repos:
                r = _run_in(repo, THIN_RUN, h, w, args.budget, precision, WEIGHTS)
                print(f"{h}x{w} {precision} {name:>6}: planned {r['estimate'] / 2**20:6.0f} MiB, used "
                      f"{r['used'] / 2**20:6.0f} MiB of a {args.budget} budget = {r['used'] / (h * w):6.0f} B per photo px, "
                      f"{r['seconds']:.1f} s: {r['plan']}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("model")
    m.add_argument("--sizes", type=int, nargs="+", default=[384, 512, 768, 1024])
    m.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    k = sub.add_parser("4k")
    k.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    k.add_argument("--budget", default="2G", help="memory budget (default 2G: the app's per-conversion default; "
                   "auto: the library's one-user default, half the available RAM)")
    k.add_argument("--before", help="an older checkout measured right after, the same way")
    s = sub.add_parser("soak")
    s.add_argument("--runs", type=int, default=200)
    t = sub.add_parser("tiles")
    t.add_argument("--cases", nargs="+", default=["2048:2G", "1024:600M"],
                   help="SIDE:BUDGET pairs: each photo resized to that longest side, tiled under that budget")
    t.add_argument("--precisions", nargs="+", default=["bf16", "fp32"], choices=["fp32", "bf16"])
    t.add_argument("--photos", nargs="+", help="photo files (default: the shared photos, astronaut and rocket)")
    t.add_argument("--before", help="an older checkout (git worktree add DIR COMMIT) measured right after, the same way")
    t.add_argument("--codes", nargs="+", default=["now", "before"], help="which of now/before to measure")
    n = sub.add_parser("thin")
    n.add_argument("--shapes", nargs="+", default=["1x119304", "8x60000", "60000x2", "1x300000"], help="HxW")
    n.add_argument("--budget", default="512M")
    n.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    n.add_argument("--before", help="an older checkout measured right after, the same way")
    args = p.parse_args()
    print("$ python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]))
    {"model": cmd_model, "4k": cmd_4k, "soak": cmd_soak, "tiles": cmd_tiles, "thin": cmd_thin}[args.cmd](args)


if __name__ == "__main__":
    main()
