"""Engine benchmark: our fp32 CPU path against the popular align_corners=True port, measured in the same run.

ours     = animegan.inference.run_whole on the registry's model: what stylize() runs
           (TF1-faithful upsampling, channels_last, inference_mode, animegan's process settings:
           tuned malloc, small oneDNN caches), uint8 in -> uint8 out.
baseline = the widely used PyTorch port's way (bryandlee/animegan2-pytorch): same weights, Generator
           forward with resize="align_corners", eager fp32, plain NCHW model, torch.no_grad, default threads,
           default malloc and oneDNN settings, uint8 in -> uint8 out.
base+env = the baseline's code in a process with animegan's settings: shows how much of the gain is the
           process settings (mostly malloc: animegan.memory.tune_cpu_allocator) and how much the code.

Each runs in its own worker process (animegan's settings are process-wide, so the baseline must not inherit
them), on square crops of a real photo at each size; the two are driven alternately, one call at a time
(the order flips each round) after one warm-up each, and each call is timed inside its worker. Medians are
reported with the ratio ours / baseline (below 1: ours is faster). Achieved GFLOP/s counts 2 x the generator's
conv MACs (from forward hooks on every Conv2d) and is compared with two GEMM ceilings measured in the same run:
torch.mm (MKL; on AMD CPUs MKL picks a slow path) and oneDNN's (a 1x1 convolution, which is a GEMM, the
kernel our convolutions use). Not a test: a figure to re-measure.

    python bench/bench_engine.py --sizes 256 512 1024 --repeats 5
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
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
    p.add_argument("--worker", choices=["ours", "baseline"], help=argparse.SUPPRESS)
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


def _best_seconds(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of fp32 torch.mm throughput (MKL)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / _best_seconds(lambda: torch.mm(a, b), repeats) / 1e9


def onednn_gemm_gflops(channels: int = 512, side: int = 64, repeats: int = 5) -> float:
    """Best-of fp32 GEMM throughput through oneDNN: a 1x1 convolution, channels_last, as our convs run."""
    conv = torch.nn.Conv2d(channels, channels, 1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(1, channels, side, side).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return 2 * channels * channels * side * side / _best_seconds(lambda: conv(x), repeats) / 1e9


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def worker(kind: str, weights: Path, photo: Path) -> None:
    """Serve timing requests on stdin ("SIDE" per line) with one model; print seconds per call."""
    if kind == "ours":
        with tempfile.TemporaryDirectory() as cache:
            model = Registry(weights={"hayao": weights}, cache_dir=Path(cache), offline=True).get("hayao", "cpu", "fp32").model
        run = lambda rgb: run_whole(model, rgb, "fp32")  # noqa: E731
    else:
        model = Generator().eval()
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        run = lambda rgb: baseline_run(model, rgb)  # noqa: E731
    inputs: dict[int, np.ndarray] = {}
    print("ready", flush=True)
    for line in sys.stdin:
        side = int(line)
        if side not in inputs:
            inputs[side] = square_input(photo, side)
        t = time.perf_counter()
        run(inputs[side])
        print(time.perf_counter() - t, flush=True)


class Worker:
    def __init__(self, kind: str, args: argparse.Namespace, env: dict[str, str]) -> None:
        cmd = [sys.executable, __file__, "--worker", kind, "--weights", str(args.weights), "--photo", str(args.photo)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **env})
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"{kind} worker failed to start")

    def time(self, side: int) -> float:
        self.proc.stdin.write(f"{side}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


# The baseline gets every process default back: no malloc tuning, oneDNN's and ideep's default cache sizes.
BASELINE_ENV = {"ANIMEGAN_MALLOC_TUNING": "0", "LRU_CACHE_CAPACITY": "1024", "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024"}


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args.worker, args.weights, args.photo)
        return
    command = shlex.join(["python", "bench/bench_engine.py", "--sizes", *map(str, args.sizes), "--repeats", str(args.repeats),
                          *(["--weights", str(args.weights)] if args.weights != DEFAULT_WEIGHTS else [])])
    print(f"command : {command}")
    print(f"machine : {cpu_name()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; Python {platform.python_version()}")
    print(f"input   : square crops of {args.photo.name}; weights {args.weights.name}")

    mm, dnn = matmul_gflops(), onednn_gemm_gflops()
    print(f"ceiling : fp32 GEMM, best of 5, measured now: torch.mm 2048x2048 (MKL) {mm:.1f} GFLOP/s; "
          f"oneDNN (1x1 conv 512->512 on 64x64) {dnn:.1f} GFLOP/s")
    base_model = Generator().eval()
    workers = {"ours": Worker("ours", args, {}), "baseline": Worker("baseline", args, BASELINE_ENV),
               "base+env": Worker("baseline", args, {})}
    print()
    header = f"{'size':>9} | {'ours median s (min-max)':>23} | {'baseline median s (min-max)':>27} | {'ours/baseline':>13} | " \
             f"{'base+env s':>10} | {'ours/base+env':>13} | {'GMAC':>6} | {'ours GFLOP/s':>12} | {'base GFLOP/s':>12} | {'ours % of torch.mm':>18} | {'ours % of oneDNN':>16}"
    print(header)
    print("-" * len(header))
    try:
        for side in args.sizes:
            macs = conv_macs(base_model, side)
            for w in workers.values():  # warm-up: allocator, oneDNN primitives
                w.time(side)
            times: dict[str, list[float]] = {k: [] for k in workers}
            for rep in range(args.repeats):
                order = list(workers) if rep % 2 == 0 else list(reversed(workers))  # flips each round
                for name in order:
                    times[name].append(workers[name].time(side))
            ours, base = statistics.median(times["ours"]), statistics.median(times["baseline"])
            base_env = statistics.median(times["base+env"])
            flops = 2 * macs / 1e9
            spread = {k: f"({min(v):.2f}-{max(v):.2f})" for k, v in times.items()}
            print(f"{side:>4}x{side:<4} | {ours:>9.3f} {spread['ours']:>13} | {base:>13.3f} {spread['baseline']:>13} | "
                  f"{ours / base:>13.2f} | {base_env:>10.3f} | {ours / base_env:>13.2f} | {macs / 1e9:>6.1f} | "
                  f"{flops / ours:>12.1f} | {flops / base:>12.1f} | {100 * flops / ours / mm:>17.0f}% | "
                  f"{100 * flops / ours / dnn:>15.0f}%", flush=True)
    finally:
        for w in workers.values():
            w.close()
    print()
    print("ours/baseline < 1 means our engine is faster. GFLOP/s = 2 x conv MACs / median seconds (whole call, uint8 to uint8).")
    print(f"re-run  : {command}")


if __name__ == "__main__":
    main()
