"""Engine benchmark: our fp32 CPU path against the popular align_corners=True port, measured in the same run.

ours     = animegan.inference.run_whole on the registry's model: what stylize() runs
           (TF1-faithful upsampling, channels_last, inference_mode), uint8 in -> uint8 out.
baseline = the widely used PyTorch port's way (bryandlee/animegan2-pytorch): same weights, Generator
           forward with resize="align_corners", eager fp32, plain NCHW model, torch.no_grad, default threads,
           uint8 in -> uint8 out.

Both run on square crops of a real photo at each size, with interleaved repetitions (the order alternates
each round) after one warm-up each; medians are reported with the ratio ours / baseline (below 1: ours is
faster). Achieved GFLOP/s counts 2 x the generator's conv MACs (from forward hooks on every Conv2d) and is
compared with a large fp32 matmul measured in the same run. Not a test: a figure to re-measure.

    python bench/bench_engine.py --sizes 256 512 1024 --repeats 5
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan.inference import run_whole  # noqa: E402
from animegan.model import Generator  # noqa: E402
from animegan.registry import Registry  # noqa: E402

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
DEFAULT_WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"
DEFAULT_PHOTO = SHARED / "photos" / "railway_crossing.jpg"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="square input sides (default: 256 512 1024)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each variant per size (default: 5)")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help=f"a .pt state dict (default: {DEFAULT_WEIGHTS})")
    p.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help=f"photo the inputs are cut from (default: {DEFAULT_PHOTO})")
    return p.parse_args()


def square_input(photo: Path, side: int) -> np.ndarray:
    """Centre square of the photo, resized (LANCZOS) to side x side."""
    with Image.open(photo) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        return np.asarray(im.resize((side, side), Image.LANCZOS, box=box)).copy()


def baseline_run(model: Generator, rgb: np.ndarray) -> np.ndarray:
    """The popular port's inference: NCHW float tensor, align_corners=True upsampling, no_grad."""
    with torch.no_grad():
        x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float() / 127.5 - 1.0
        y = model(x, resize="align_corners")
        return ((y[0] + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def conv_macs(model: Generator, side: int) -> int:
    """Multiply-accumulates of every convolution for a side x side input (norms, activations, resizes excluded)."""
    total = 0

    def hook(mod: torch.nn.Conv2d, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, side, side))
    finally:
        for h in handles:
            h.remove()
    return total


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of fp32 GEMM throughput: the machine's practical ceiling for conv-heavy work."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    args = parse_args()
    command = shlex.join(["python", "bench/bench_engine.py", "--sizes", *map(str, args.sizes), "--repeats", str(args.repeats),
                          *(["--weights", str(args.weights)] if args.weights != DEFAULT_WEIGHTS else [])])
    print(f"command : {command}")
    print(f"machine : {cpu_name()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; Python {platform.python_version()}")
    print(f"input   : square crops of {args.photo.name}; weights {args.weights.name}")

    with tempfile.TemporaryDirectory() as cache:
        registry = Registry(weights={"hayao": args.weights}, cache_dir=Path(cache), offline=True)
        ours_model = registry.get("hayao", "cpu", "fp32").model
    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    base_model = Generator().eval()
    base_model.load_state_dict(state)

    peak = matmul_gflops()
    print(f"ceiling : fp32 matmul 2048x2048 = {peak:.1f} GFLOP/s (best of 5, measured now)")
    print()
    header = f"{'size':>9} | {'ours median s (min-max)':>23} | {'baseline median s (min-max)':>27} | {'ours/baseline':>13} | " \
             f"{'GMAC':>6} | {'ours GFLOP/s':>12} | {'base GFLOP/s':>12} | {'ours % of matmul':>16}"
    print(header)
    print("-" * len(header))
    for side in args.sizes:
        rgb = square_input(args.photo, side)
        macs = conv_macs(base_model, side)
        variants = {"ours": lambda: run_whole(ours_model, rgb, "fp32"), "baseline": lambda: baseline_run(base_model, rgb)}
        for fn in variants.values():  # warm-up: allocator, oneDNN primitives
            fn()
        times: dict[str, list[float]] = {k: [] for k in variants}
        for rep in range(args.repeats):
            order = list(variants) if rep % 2 == 0 else list(reversed(variants))
            for name in order:
                t = time.perf_counter()
                variants[name]()
                times[name].append(time.perf_counter() - t)
        ours, base = statistics.median(times["ours"]), statistics.median(times["baseline"])
        flops = 2 * macs / 1e9
        spread = {k: f"({min(v):.2f}-{max(v):.2f})" for k, v in times.items()}
        print(f"{side:>4}x{side:<4} | {ours:>9.3f} {spread['ours']:>13} | {base:>13.3f} {spread['baseline']:>13} | "
              f"{ours / base:>13.2f} | {macs / 1e9:>6.1f} | "
              f"{flops / ours:>12.1f} | {flops / base:>12.1f} | {100 * flops / ours / peak:>15.0f}%")
    print()
    print("ours/baseline < 1 means our engine is faster. GFLOP/s = 2 x conv MACs / median seconds (whole call, uint8 to uint8).")
    print(f"re-run  : {command}")


if __name__ == "__main__":
    main()
