"""Engine benchmark: our CPU path in fp32 and bf16 against the popular align_corners=True port, in the same run.

fp32     = animegan.inference.run_whole on the registry's fp32 model: what stylize(precision="fp32") runs
           (TF1-faithful upsampling, channels_last, inference_mode, animegan's process settings:
           tuned malloc, small oneDNN caches), uint8 in -> uint8 out.
bf16     = the same on the registry's bf16 model (weights cast to bf16, layer-norm gamma/beta and statistics
           in fp32): what stylize(precision="bf16") runs, and precision="auto" on a CPU with native bf16.
autocast = the fp32 model under torch.autocast("cpu", dtype=torch.bfloat16): the plain way to get bf16, for
           comparison (casts weights and activations at every convolution).
baseline = the widely used PyTorch port's way (bryandlee/animegan2-pytorch): same weights, Generator
           forward with resize="align_corners", eager fp32, plain NCHW model, torch.no_grad, default threads,
           default malloc and oneDNN settings, uint8 in -> uint8 out.
base+env = the baseline's code in a process with animegan's settings: shows how much of the gain is the
           process settings (mostly malloc: animegan.memory.tune_cpu_allocator) and how much the code.

Each runs in its own worker process (animegan's settings are process-wide, so the baseline must not inherit
them), on square crops of a real photo at each size; the variants are driven alternately, one call at a time
(the order flips each round) after one warm-up each, and each call is timed inside its worker. Medians are
reported with the speed-up over fp32 (above 1: faster than fp32) and the PSNR of each variant's output
against fp32's. Achieved GFLOP/s counts 2 x the generator's conv MACs (from forward hooks on every Conv2d) and
is compared with GEMM ceilings measured in the same run: oneDNN's in fp32 and in bf16 (a 1x1 convolution,
which is a GEMM, the kernel our convolutions use), and torch.mm fp32 (MKL; on AMD CPUs MKL picks a slow
path). Not a test: a figure to re-measure; run it alone (flock -x /tmp/animegan-cpu.lock on a shared machine).

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

from animegan import precision
from animegan.imaging import psnr
from animegan.inference import run_whole
from animegan.model import Generator
from animegan.registry import Registry

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
DEFAULT_WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"
DEFAULT_PHOTO = SHARED / "photos" / "railway_crossing.jpg"
VARIANTS = ("fp32", "bf16", "autocast", "baseline", "base+env")
BF16_VARIANTS = ("bf16", "autocast")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="square input sides (default: 256 512 1024)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each variant per size (default: 5)")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help=f"a .pt state dict (default: {DEFAULT_WEIGHTS})")
    p.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help=f"photo the inputs are cut from (default: {DEFAULT_PHOTO})")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                   help=f"what to time (default: all of {' '.join(VARIANTS)}); fp32 is always run, as the reference")
    p.add_argument("--int8-ceiling", action="store_true",
                   help="also measure the eager int8 GEMM ceiling (quantized 1x1 conv) next to the bf16 one")
    p.add_argument("--out", type=Path, help="also write the table to this file (e.g. bench/results/engine-bf16.txt)")
    p.add_argument("--worker", choices=["fp32", "bf16", "autocast", "baseline"], help=argparse.SUPPRESS)
    p.add_argument("--outputs", type=Path, help=argparse.SUPPRESS)
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


def onednn_gemm_gflops(dtype: torch.dtype = torch.float32, channels: int = 512, side: int = 64,
                       repeats: int = 5) -> float:
    """Best-of GEMM throughput through oneDNN in ``dtype``: a 1x1 convolution, channels_last, as our convs run."""
    conv = torch.nn.Conv2d(channels, channels, 1, bias=False).to(dtype=dtype, memory_format=torch.channels_last)
    x = torch.randn(1, channels, side, side).to(dtype=dtype, memory_format=torch.channels_last)
    with torch.inference_mode():
        return 2 * channels * channels * side * side / _best_seconds(lambda: conv(x), repeats) / 1e9


def int8_gemm_gops(channels: int = 512, side: int = 64, repeats: int = 5) -> tuple[float, str]:
    """Best-of int8 GEMM throughput of PyTorch's eager quantized 1x1 convolution (x86/fbgemm engine, uint8 x int8).

    The ceiling an eager int8 engine could reach here; the issue's bar for adopting int8 is 1.3x over bf16.
    """
    import warnings

    engines = torch.backends.quantized.supported_engines
    torch.backends.quantized.engine = "x86" if "x86" in engines else "fbgemm"
    with warnings.catch_warnings():  # quantized tensor creation is deprecated in torch 2.13; still the eager route
        warnings.simplefilter("ignore")
        conv = torch.ao.nn.quantized.Conv2d(channels, channels, 1, bias=False)
        x = torch.quantize_per_tensor(torch.randn(1, channels, side, side), 0.05, 64, torch.quint8)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            gops = 2 * channels * channels * side * side / _best_seconds(lambda: conv(x), repeats) / 1e9
    return gops, torch.backends.quantized.engine


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def worker(kind: str, weights: Path, photo: Path, outputs: Path) -> None:
    """Serve timing requests on stdin ("SIDE" per line) with one model; print seconds per call.

    The first output at each size is saved to ``outputs/<kind>-<side>.npy`` for the PSNR against fp32.
    """
    if kind in ("fp32", "bf16", "autocast"):
        with tempfile.TemporaryDirectory() as cache:
            registry = Registry(weights={"hayao": weights}, cache_dir=Path(cache), offline=True)
            model = registry.get("hayao", "cpu", "bf16" if kind == "bf16" else "fp32").model
        if kind == "autocast":
            def run(rgb: np.ndarray) -> np.ndarray:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return run_whole(model, rgb, "fp32")
        else:
            run = lambda rgb: run_whole(model, rgb, kind)
    else:
        model = Generator().eval()
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        run = lambda rgb: baseline_run(model, rgb)
    inputs: dict[int, np.ndarray] = {}
    print("ready", flush=True)
    for line in sys.stdin:
        side = int(line)
        if side not in inputs:
            inputs[side] = square_input(photo, side)
        t = time.perf_counter()
        out = run(inputs[side])
        seconds = time.perf_counter() - t
        target = outputs / f"{kind}-{side}.npy"
        if not target.exists():
            np.save(target, out)
        print(seconds, flush=True)


class Worker:
    def __init__(self, name: str, kind: str, args: argparse.Namespace, env: dict[str, str], outputs: Path) -> None:
        cmd = [sys.executable, __file__, "--worker", kind, "--weights", str(args.weights), "--photo", str(args.photo),
               "--outputs", str(outputs / name.replace("+", "_"))]
        (outputs / name.replace("+", "_")).mkdir()
        self.outputs = outputs / name.replace("+", "_")
        self.kind = kind
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **env})
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"{name} worker failed to start")

    def time(self, side: int) -> float:
        self.proc.stdin.write(f"{side}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def output(self, side: int) -> np.ndarray:
        return np.load(self.outputs / f"{self.kind}-{side}.npy")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


# The baseline gets every process default back: no malloc tuning, oneDNN's and ideep's default cache sizes.
BASELINE_ENV = {"ANIMEGAN_MALLOC_TUNING": "0", "LRU_CACHE_CAPACITY": "1024", "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024"}


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args.worker, args.weights, args.photo, args.outputs)
        return
    variants = ["fp32"] + [v for v in VARIANTS if v in args.variants and v != "fp32"]
    command = shlex.join(["python", "bench/bench_engine.py", "--sizes", *map(str, args.sizes), "--repeats", str(args.repeats),
                          *(["--variants", *variants] if set(variants) != set(VARIANTS) else []),
                          *(["--int8-ceiling"] if args.int8_ceiling else []),
                          *(["--weights", str(args.weights)] if args.weights != DEFAULT_WEIGHTS else [])])
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"command : {command}")
    say(f"machine : {cpu_name()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; Python {platform.python_version()}; "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {precision.detect_cpu().describe()}; "
        f"precision auto -> {precision.resolve('auto', torch.device('cpu')).precision}")
    say(f"input   : square crops of {args.photo.name}; weights {args.weights.name}")
    mm, dnn32, dnn16 = matmul_gflops(), onednn_gemm_gflops(torch.float32), onednn_gemm_gflops(torch.bfloat16)
    say(f"ceiling : GEMM, best of 5, measured now: oneDNN (1x1 conv 512->512 on 64x64, channels_last) fp32 "
        f"{dnn32:.1f} GFLOP/s, bf16 {dnn16:.1f} GFLOP/s ({dnn16 / dnn32:.2f}x); torch.mm 2048x2048 fp32 (MKL) {mm:.1f}")
    if args.int8_ceiling:
        gops, engine = int8_gemm_gops()
        say(f"ceiling : int8 GEMM, eager quantized 1x1 conv 512->512 on 64x64 ({engine} engine): {gops:.1f} GOP/s, "
            f"{gops / dnn16:.2f}x the bf16 ceiling (int8 is adopted only at >= 1.3x over bf16 end to end)")
    base_model = Generator().eval()
    kinds = {"fp32": ("fp32", {}), "bf16": ("bf16", {}), "autocast": ("autocast", {}),
             "baseline": ("baseline", BASELINE_ENV), "base+env": ("baseline", {})}
    with tempfile.TemporaryDirectory() as tmp:
        workers = {name: Worker(name, kinds[name][0], args, kinds[name][1], Path(tmp)) for name in variants}
        say()
        header = (f"{'size':>9} | {'variant':>8} | {'median s (min-max)':>20} | {'speed-up vs fp32':>16} | "
                  f"{'PSNR vs fp32':>12} | {'GFLOP/s':>7} | {'% of oneDNN fp32':>16} | {'% of oneDNN bf16':>16}")
        say(header)
        say("-" * len(header))
        try:
            for side in args.sizes:
                macs = conv_macs(base_model, side)
                for w in workers.values():  # warm-up: allocator, oneDNN primitives; saves the outputs
                    w.time(side)
                times: dict[str, list[float]] = {k: [] for k in workers}
                for rep in range(args.repeats):
                    order = list(workers) if rep % 2 == 0 else list(reversed(workers))  # flips each round
                    for name in order:
                        times[name].append(workers[name].time(side))
                reference = workers["fp32"].output(side)
                t32 = statistics.median(times["fp32"])
                for name in variants:
                    t = statistics.median(times[name])
                    gflops = 2 * macs / 1e9 / t
                    q = psnr(workers[name].output(side), reference)
                    spread = f"({min(times[name]):.2f}-{max(times[name]):.2f})"
                    say(f"{side:>4}x{side:<4} | {name:>8} | {t:>7.3f} {spread:>12} | {t32 / t:>15.2f}x | "
                        f"{'identical' if q == float('inf') else f'{q:.1f} dB':>12} | {gflops:>7.1f} | "
                        f"{100 * gflops / dnn32:>15.0f}% | {100 * gflops / dnn16:>15.0f}%")
                say(f"{'':>9} | conv work {macs / 1e9:.1f} GMAC")
        finally:
            for w in workers.values():
                w.close()
    say()
    say("speed-up vs fp32 > 1 means faster than our fp32 engine. GFLOP/s = 2 x conv MACs / median seconds (whole call, "
        "uint8 to uint8); compare bf16 variants with the bf16 ceiling and fp32 ones with the fp32 ceiling.")
    say(f"re-run  : {command}")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
