"""One prepared check of the CUDA path, run whenever a GPU is at hand; writes bench/results/gpu-<gpu name>.txt.

On a CUDA machine, within ``--deadline`` seconds (default 420; each part is skipped, and says so, when the
time left would not cover it):

1. fp32, fp16 and bf16 (bf16 only where the GPU has it natively) through ``animegan.inference.run_whole``
   (what stylize() runs for a whole image) at 512x512, 1024x1024, 2048x2048 and a 3840x2160 photo: median
   seconds (runs alternate between precisions), speed-up over fp32, PSNR against fp32,
   ``torch.cuda.max_memory_allocated`` above the loaded models, and ``torch.cuda.memory_allocated`` before
   and after every run, which must be equal (a difference is a leak, and is flagged).
2. The 4K photo through ``stylize()`` in fp16 under a 1 GiB budget: the planned tiles and the VRAM peak
   against the budget.
3. An out-of-memory error provoked with ``torch.cuda.set_per_process_memory_fraction`` (the allocator may
   hold only the loaded models plus 64 MiB, so a 2048x2048 whole-image plan cannot fit) and how the engine
   recovered (smaller tiles, or the CPU), then memory back to where it was.
4. The memory panel's NVML reading (``animegan.memory.gpu_readings``) against torch's: this process's VRAM
   and the device's used VRAM, before and after holding a 1 GiB tensor; the two deltas must agree.

Without CUDA it says so, writes nothing and exits 0. ``--emulate`` adds a CPU emulation of fp16 numerics
(clearly labelled; never a GPU figure): conv inputs, weights and outputs rounded to fp16, fp32 sums.

    python bench/gpu_check.py                          # on the GPU machine: writes bench/results/gpu-<name>.txt
    python bench/gpu_check.py --emulate --no-gpu-file  # anywhere: only the CPU emulation table
"""
from __future__ import annotations

import argparse
import gc
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan import memory, stylize
from animegan.imaging import psnr
from animegan.inference import run_whole
from animegan.registry import Registry

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
DEFAULT_WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"
DEFAULT_PHOTO = SHARED / "photos" / "railway_crossing.jpg"
SHAPES = ((512, 512), (1024, 1024), (2048, 2048), (3840, 2160))
FOUR_K = (3840, 2160)
BUDGET_4K = "1G"
OOM_HEADROOM = 64 << 20
NVML_PROBE = 1 << 30


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per precision and size (default 3)")
    p.add_argument("--deadline", type=float, default=420.0, help="seconds the whole check may take (default 420)")
    p.add_argument("--out-dir", type=Path, default=REPO / "bench" / "results", help="where gpu-<name>.txt goes")
    p.add_argument("--emulate", action="store_true", help="also run the CPU emulation of fp16 numerics (labelled)")
    p.add_argument("--emulate-sizes", type=int, nargs="+", default=[512, 1024], help="square sides for --emulate")
    p.add_argument("--no-gpu-file", action="store_true", help="print only; write no result file")
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


def file_name(gpu: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'gpu-nvidia-h100-80gb-hbm3.txt'."""
    return "gpu-" + (re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-") or "unknown") + ".txt"


class Report:
    """Lines printed as they come and kept for the result file."""

    def __init__(self, deadline: float) -> None:
        self.lines: list[str] = []
        self.start = time.perf_counter()
        self.deadline = deadline
        self.failures: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def left(self) -> float:
        return self.deadline - (time.perf_counter() - self.start)

    def fail(self, what: str) -> None:
        self.failures.append(what)
        self(f"FAIL    : {what}")


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def timed_run(model: torch.nn.Module, rgb: np.ndarray, precision: str, dev: torch.device,
              leaks: list[str]) -> tuple[np.ndarray, float]:
    """One whole-image run: its pixels and seconds; a change of memory_allocated over it is appended to ``leaks``."""
    torch.cuda.synchronize(dev)
    before = torch.cuda.memory_allocated(dev)
    t = time.perf_counter()
    out = run_whole(model, rgb, precision)  # returns host pixels: the GPU work is finished
    seconds = time.perf_counter() - t
    torch.cuda.synchronize(dev)
    after = torch.cuda.memory_allocated(dev)
    if after != before:
        leaks.append(f"{precision}: {before} -> {after} bytes")
    return out, seconds


def precision_table(say: Report, registry: Registry, dev: torch.device, photo: Path, repeats: int) -> None:
    precisions = ["fp32", "fp16"]
    if torch.cuda.is_bf16_supported(including_emulation=False):
        precisions.append("bf16")
    else:
        say("bf16    : this GPU has no native bf16 (before Ampere): not timed")
    models = {p: registry.get("hayao", dev, p).model for p in precisions}
    torch.cuda.synchronize(dev)
    resting = torch.cuda.memory_allocated(dev)
    say(f"models  : {', '.join(precisions)} loaded; torch.cuda.memory_allocated {mib(resting)}")
    header = (f"{'size':>9} | {'precision':>9} | {'median s':>8} | {'img/s':>6} | {'speed-up vs fp32':>16} | "
              f"{'PSNR vs fp32':>12} | {'peak above models':>17} | allocated before == after every run")
    say(header)
    say("-" * len(header))
    for w, h in SHAPES:
        if say.left() < 60:
            say(f"{w}x{h}: skipped, {say.left():.0f} s left of the deadline")
            continue
        rgb = photo_at(photo, w, h)
        outs: dict[str, np.ndarray] = {}
        peaks: dict[str, int] = {}
        times: dict[str, list[float]] = {p: [] for p in precisions}
        leaks: list[str] = []
        try:
            for p in precisions:  # warm-up (cuDNN autotuning, allocator), the reference outputs and the peaks
                torch.cuda.reset_peak_memory_stats(dev)
                outs[p], _ = timed_run(models[p], rgb, p, dev, leaks)
                peaks[p] = torch.cuda.max_memory_allocated(dev) - resting
            for rep in range(repeats):
                for p in (precisions if rep % 2 == 0 else precisions[::-1]):
                    times[p].append(timed_run(models[p], rgb, p, dev, leaks)[1])
        except torch.OutOfMemoryError:
            gc.collect()
            torch.cuda.empty_cache()
            say(f"{w:>4}x{h:<4} | out of GPU memory for a whole-image pass (the engine would tile it)")
            continue
        t32 = statistics.median(times["fp32"])
        for p in precisions:
            t = statistics.median(times[p])
            q = psnr(outs[p], outs["fp32"])
            say(f"{w:>4}x{h:<4} | {p:>9} | {t:>8.3f} | {1 / t:>6.2f} | {t32 / t:>15.2f}x | "
                f"{'identical' if q == float('inf') else f'{q:.1f} dB':>12} | {mib(peaks[p]):>17} | "
                f"{'yes' if not any(s.startswith(p + ':') for s in leaks) else 'NO'}")
        for leak in leaks:
            say.fail(f"memory_allocated changed over a run at {w}x{h}: {leak}")
        del outs
    torch.cuda.synchronize(dev)
    if torch.cuda.memory_allocated(dev) != resting:
        say.fail(f"memory_allocated after the table {torch.cuda.memory_allocated(dev)} != {resting} before it")


def budget_4k(say: Report, registry: Registry, dev: torch.device, photo: Path) -> None:
    if say.left() < 60:
        say(f"4K budget: skipped, {say.left():.0f} s left")
        return
    rgb = photo_at(photo, *FOUR_K)
    budget = memory.parse_bytes(BUDGET_4K)
    before = torch.cuda.memory_allocated(dev)
    res = stylize(rgb, "hayao", registry=registry, device=dev, precision="fp16", max_side=0, memory_budget=BUDGET_4K)
    torch.cuda.synchronize(dev)
    peak_above = res.stats.peak_memory - before
    say(f"4K fp16 under a {BUDGET_4K} budget: {res.stats.seconds:.2f} s, {res.stats.tiles} tiles ({res.stats.plan}); "
        f"CUDA peak {mib(res.stats.peak_memory)} = models {mib(before)} + {mib(peak_above)} "
        f"({100 * peak_above / budget:.0f}% of the budget); allocated after {mib(torch.cuda.memory_allocated(dev))}")
    if peak_above > budget:
        say.fail(f"4K peak above the loaded models {mib(peak_above)} exceeds the {BUDGET_4K} budget")
    if torch.cuda.memory_allocated(dev) != before:
        say.fail(f"4K run: memory_allocated {before} -> {torch.cuda.memory_allocated(dev)}")


@contextmanager
def allocator_cap(dev: torch.device, cap: int) -> Iterator[None]:
    """Let the caching allocator hold at most ``cap`` bytes on ``dev`` (as a fraction of the total) for the block."""
    total = torch.cuda.get_device_properties(dev).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), dev)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, dev)
        torch.cuda.empty_cache()


def provoked_oom(say: Report, registry: Registry, dev: torch.device, photo: Path) -> None:
    if say.left() < 60:
        say(f"OOM check: skipped, {say.left():.0f} s left")
        return
    rgb = photo_at(photo, 2048, 2048)
    registry.get("hayao", dev, "fp16")
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()  # reserved = what the loaded models hold, not blocks cached by earlier runs
    before = torch.cuda.memory_allocated(dev)
    cap = torch.cuda.memory_reserved(dev) + OOM_HEADROOM
    with allocator_cap(dev, cap):
        start = time.perf_counter()
        res = stylize(rgb, "hayao", registry=registry, device=dev, precision="fp16", max_side=0)
        seconds = time.perf_counter() - start
    torch.cuda.synchronize(dev)
    after = torch.cuda.memory_allocated(dev)
    s = res.stats
    say(f"OOM     : allocator capped at {mib(cap)} (loaded models + {mib(OOM_HEADROOM)}), 2048x2048 fp16 planned from "
        f"free VRAM: {s.oom_recoveries} out-of-memory error(s) recovered, ran on {s.device} in {s.precision}, "
        f"{s.tiles} tiles, {seconds:.1f} s; notices: {' | '.join(s.notices) or 'none'}")
    say(f"          memory_allocated before {mib(before)}, after {mib(after)}")
    if s.oom_recoveries < 1:
        say.fail("the capped run did not run out of memory: the OOM path was not exercised")
    if after != before:
        say.fail(f"memory_allocated after the OOM recovery {after} != {before} before it")


def nvml_vs_torch(say: Report, dev: torch.device) -> None:
    def read() -> tuple[memory.GpuReading | None, str]:
        gpus, status = memory.gpu_readings()
        index = dev.index or 0
        return next((g for g in gpus if g.index == index), None), status

    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    g0, status = read()
    if g0 is None:
        say(f"NVML    : no reading ({status}); the memory panel shows torch's figures only")
        return
    r0 = torch.cuda.memory_reserved(dev)
    probe = torch.empty(NVML_PROBE, dtype=torch.uint8, device=dev)
    torch.cuda.synchronize(dev)
    g1, _ = read()
    r1 = torch.cuda.memory_reserved(dev)
    del probe
    torch.cuda.empty_cache()
    g2, _ = read()
    if g1 is None or g2 is None:
        say(f"NVML    : the reading failed midway ({read()[1]})")
        return
    say(f"NVML    : {g0.name}: device used {mib(g0.used)} of {mib(g0.total)}; this process "
        f"{mib(g0.process_used) if g0.process_used is not None else 'n/a (not reported in this container)'}; "
        f"torch reserved {mib(r0)}, allocated {mib(torch.cuda.memory_allocated(dev))} "
        f"(the difference to NVML's process figure is the CUDA context and libraries)")
    d_nvml, d_torch = g1.used - g0.used, r1 - r0
    say(f"          holding a {mib(NVML_PROBE)} tensor: NVML device used +{mib(d_nvml)}, torch reserved +{mib(d_torch)}; "
        f"released: NVML {mib(g2.used)} (was {mib(g0.used)})")
    if abs(d_nvml - d_torch) > 64 << 20:
        say.fail(f"NVML and torch disagree on a {mib(NVML_PROBE)} allocation: +{mib(d_nvml)} vs +{mib(d_torch)} "
                 "(another process may have allocated meanwhile)")


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
        torch.nn.modules.conv.F.conv2d = original


def emulation_table(say: Callable[[str], None], registry: Registry, photo: Path, sizes: list[int]) -> None:
    say("CPU EMULATION of FP16 numerics (not a GPU measurement): conv inputs/weights/outputs rounded to fp16, fp32 sums;")
    say("norms and activations in fp32. PSNR of the emulated output against the plain fp32 output:")
    model = registry.get("hayao", "cpu", "fp32").model
    header = f"{'size':>16} | {'emulated fp16 vs fp32 PSNR':>26} | {'max |diff|':>10} | {'values identical':>16}"
    say(header)
    say("-" * len(header))
    for side in sizes:
        rgb = photo_at(photo, side, side)
        ref = run_whole(model, rgb, "fp32")
        with fp16_rounded_convs():
            emu = run_whole(model, rgb, "fp32")
        diff = np.abs(ref.astype(np.int16) - emu.astype(np.int16))
        say(f"{f'{side}x{side}':>16} | {psnr(emu, ref):>23.1f} dB | {diff.max():>10d} | {100 * np.mean(diff == 0):>15.2f}%")


def main() -> int:
    args = parse_args()
    command = shlex.join(["python", "bench/gpu_check.py", *sys.argv[1:]])
    print(f"command : {command}")
    with tempfile.TemporaryDirectory() as cache:
        registry = Registry(weights={"hayao": args.weights}, cache_dir=Path(cache), offline=True)
        if args.emulate:
            emulation_table(print, registry, args.photo, args.emulate_sizes)
        if not torch.cuda.is_available():
            print(f"GPU     : no CUDA device visible to torch {torch.__version__} (CUDA build: {torch.version.cuda}); "
                  "nothing measured, no result file written.")
            return 0
        dev = torch.device("cuda", torch.cuda.current_device())
        name = torch.cuda.get_device_name(dev)
        say = Report(args.deadline)
        props = torch.cuda.get_device_properties(dev)
        say(f"command : {command}")
        say(f"GPU     : {name}, {mib(props.total_memory)}, compute capability {props.major}.{props.minor}; torch "
            f"{torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        say(f"input   : {args.photo.name} cropped and resized; weights {args.weights.name}; deadline {args.deadline:.0f} s")
        parts: list[tuple[str, Callable[[], None]]] = [
            ("precisions", lambda: precision_table(say, registry, dev, args.photo, args.repeats)),
            ("4K budget", lambda: budget_4k(say, registry, dev, args.photo)),
            ("OOM", lambda: provoked_oom(say, registry, dev, args.photo)),
            ("NVML", lambda: nvml_vs_torch(say, dev)),
        ]
        for label, part in parts:
            say()
            try:
                part()
            except Exception as exc:  # noqa: BLE001 - one failing part must not hide the others' figures
                say.fail(f"{label}: {type(exc).__name__}: {exc}")
        say()
        say(f"result  : {'all checks passed' if not say.failures else f'{len(say.failures)} check(s) FAILED'}; "
            f"{time.perf_counter() - say.start:.0f} s")
        say(f"re-run  : {command}")
        if not args.no_gpu_file:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            target = args.out_dir / file_name(name)
            target.write_text("\n".join(say.lines) + "\n")
            print(f"wrote   : {target}")
        return 1 if say.failures else 0


if __name__ == "__main__":
    sys.exit(main())
