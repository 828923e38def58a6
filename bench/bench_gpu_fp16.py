"""FP16 autocast against FP32 on a CUDA GPU, and (on any machine) a CPU *emulation* of FP16 numerics.

GPU part (runs only when torch sees a CUDA device; otherwise it says so and skips): for 512, 1024, 2048 and a
4K photo (3840x2160), both precisions through ``animegan.inference.run_whole`` (what stylize() runs for a
whole image): median latency, images/s, ``torch.cuda.max_memory_allocated`` and the FP16-vs-FP32 PSNR of
the uint8 outputs. Repetitions alternate between the precisions.

Emulation part (``--emulate``; CPU, clearly not a GPU figure): every convolution's input, weights and output
are rounded to fp16 and back (products of fp16 values are exact in fp32 and the sum is kept in fp32, as
tensor cores do; the output is stored as fp16 under autocast); layer norms and activations stay fp32. The PSNR against the plain fp32
run estimates how much of the FP16 difference comes from rounding alone; it says nothing about GPU speed.

    python bench/bench_gpu_fp16.py --emulate --sizes 512 1024
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan.inference import run_whole  # noqa: E402
from animegan.imaging import psnr  # noqa: E402
from animegan.registry import Registry  # noqa: E402

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
DEFAULT_WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"
DEFAULT_PHOTO = SHARED / "photos" / "railway_crossing.jpg"
FOUR_K = (3840, 2160)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048], help="square sides (default 512 1024 2048)")
    p.add_argument("--no-4k", action="store_true", help="skip the 3840x2160 photo")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per precision and size (default 5)")
    p.add_argument("--emulate", action="store_true", help="also run the CPU emulation of fp16 numerics (labelled)")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    return p.parse_args()


def photo_at(photo: Path, w: int, h: int) -> np.ndarray:
    """Centre crop of the photo at the target aspect, resized (LANCZOS) to w x h."""
    with Image.open(photo) as im:
        im = im.convert("RGB")
        sw, sh = im.size
        scale = min(sw / w, sh / h)
        cw, ch = w * scale, h * scale
        box = ((sw - cw) / 2, (sh - ch) / 2, (sw + cw) / 2, (sh + ch) / 2)
        return np.asarray(im.resize((w, h), Image.LANCZOS, box=box)).copy()


def shapes(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    out = [(f"{s}x{s}", s, s) for s in args.sizes]
    if not args.no_4k:
        out.append((f"4K {FOUR_K[0]}x{FOUR_K[1]}", *FOUR_K))
    return out


def gpu_table(args: argparse.Namespace, registry: Registry) -> None:
    dev = torch.device("cuda")
    print(f"GPU     : {torch.cuda.get_device_name(dev)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    models = {p: registry.get("hayao", dev, p).model for p in ("fp32", "fp16")}
    header = f"{'size':>16} | {'fp32 s':>7} | {'fp16 s':>7} | {'fp32 img/s':>10} | {'fp16 img/s':>10} | " \
             f"{'fp16/fp32 time':>14} | {'fp32 peak MiB':>13} | {'fp16 peak MiB':>13} | {'PSNR fp16 vs fp32':>17}"
    print(header)
    print("-" * len(header))
    for label, w, h in shapes(args):
        rgb = photo_at(args.photo, w, h)
        outs, times, peaks = {}, {p: [] for p in models}, {}
        try:
            for p, m in models.items():  # warm-up (cuDNN autotuning, allocator) and the reference outputs
                torch.cuda.reset_peak_memory_stats(dev)
                outs[p] = run_whole(m, rgb, p)
                torch.cuda.synchronize(dev)
                peaks[p] = torch.cuda.max_memory_allocated(dev)
            for rep in range(args.repeats):
                for p in (models if rep % 2 == 0 else reversed(list(models))):
                    torch.cuda.synchronize(dev)
                    t = time.perf_counter()
                    run_whole(models[p], rgb, p)
                    torch.cuda.synchronize(dev)
                    times[p].append(time.perf_counter() - t)
        except torch.OutOfMemoryError:
            print(f"{label:>16} | out of GPU memory for a whole-image pass")
            torch.cuda.empty_cache()
            continue
        t32, t16 = statistics.median(times["fp32"]), statistics.median(times["fp16"])
        print(f"{label:>16} | {t32:>7.3f} | {t16:>7.3f} | {1 / t32:>10.2f} | {1 / t16:>10.2f} | {t16 / t32:>14.2f} | "
              f"{peaks['fp32'] / 2**20:>13.0f} | {peaks['fp16'] / 2**20:>13.0f} | {psnr(outs['fp16'], outs['fp32']):>14.1f} dB")


@contextmanager
def fp16_rounded_convs() -> Iterator[None]:
    """Round every conv2d's input and weight to fp16 (and back) for the duration: FP16 numerics, fp32 sums."""
    original = F.conv2d

    def conv2d(x, weight, bias=None, *rest, **kw):  # type: ignore[no-untyped-def]
        y = original(x.half().float(), weight.half().float(), None if bias is None else bias.half().float(), *rest, **kw)
        return y.half().float()  # autocast's conv output is fp16: stored rounded, read back by fp32 norms

    F.conv2d = conv2d
    torch.nn.modules.conv.F.conv2d = conv2d
    try:
        yield
    finally:
        F.conv2d = original


def emulation_table(args: argparse.Namespace, registry: Registry) -> None:
    print("CPU EMULATION of FP16 numerics (not a GPU measurement): conv inputs/weights/outputs rounded to fp16, fp32 sums;")
    print("norms and activations in fp32. PSNR of the emulated output against the plain fp32 output:")
    model = registry.get("hayao", "cpu", "fp32").model
    header = f"{'size':>16} | {'emulated fp16 vs fp32 PSNR':>26} | {'max |diff|':>10} | {'values identical':>16}"
    print(header)
    print("-" * len(header))
    for label, w, h in shapes(args):
        rgb = photo_at(args.photo, w, h)
        ref = run_whole(model, rgb, "fp32")
        with fp16_rounded_convs():
            emu = run_whole(model, rgb, "fp32")
        diff = np.abs(ref.astype(np.int16) - emu.astype(np.int16))
        print(f"{label:>16} | {psnr(emu, ref):>23.1f} dB | {diff.max():>10d} | {100 * np.mean(diff == 0):>15.2f}%")


def main() -> None:
    args = parse_args()
    command = shlex.join(["python", "bench/bench_gpu_fp16.py", "--sizes", *map(str, args.sizes), "--repeats",
                          str(args.repeats), *(["--no-4k"] if args.no_4k else []), *(["--emulate"] if args.emulate else [])])
    print(f"command : {command}")
    with tempfile.TemporaryDirectory() as cache:
        registry = Registry(weights={"hayao": args.weights}, cache_dir=Path(cache), offline=True)
        if torch.cuda.is_available():
            gpu_table(args, registry)
        else:
            print("GPU     : no CUDA GPU visible to torch here: the FP16 GPU table was not measured (nothing to report).")
        if args.emulate:
            print()
            emulation_table(args, registry)
    print(f"re-run  : {command}")


if __name__ == "__main__":
    main()
