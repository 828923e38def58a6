"""Memory: which device to use, what it has free, and readings for the UI (torch, NVML, process RSS).

NVML (``nvidia-ml-py``, imported as ``pynvml``) is optional at run time: with no
NVIDIA driver every reading here degrades to a plain statement of that fact.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Self

import psutil
import torch

from . import flags, layerwise
from .inference import padding_for
from .model import Generator


class DeviceError(RuntimeError):
    """The device asked for does not exist here; the message says which to use instead."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when usable, else CPU; asking for CUDA without one is an error the user can act on."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU here; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device {name!r}; use auto, cpu or cuda")


def process_rss() -> int:
    return psutil.Process().memory_info().rss


def available_ram() -> int:
    return psutil.virtual_memory().available


class PeakRSS:
    """Peak resident memory of a process (this one by default) over a block of code.

    For this process on Linux the kernel's high-water mark (VmHWM) is reset through
    ``/proc/self/clear_refs`` and read back, which costs nothing while the model runs;
    otherwise (another process, or another OS) a sampling thread polls RSS every
    ``interval`` seconds. The figure is for the whole process: concurrent runs share it. ``added`` is the peak
    less the RSS at the start: what the block itself needed on top of what the process already held.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = self.start = 0
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        own = pid is None or pid == os.getpid()
        self._kernel = own and sys.platform.startswith("linux") and _reset_hwm()

    def current(self) -> int:
        """RSS now, or 0 once the process has gone."""
        try:
            return self._proc.memory_info().rss
        except psutil.Error:
            return 0

    @property
    def added(self) -> int:
        return max(0, self.peak - self.start)

    def __enter__(self) -> Self:
        self.peak = self.start = self.current()
        if not self._kernel:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self.current()
            if not rss:  # the process ended
                return
            self.peak = max(self.peak, rss)

    def __exit__(self, *exc: object) -> None:
        if self._kernel:
            self.peak = max(self.peak, _read_hwm() or 0, self.current())
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.peak = max(self.peak, self.current())


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _read_hwm() is not None
    except OSError:
        return False


def _read_hwm() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class GpuReading:
    index: int
    name: str
    used: int
    total: int
    process_used: int | None  # this process's VRAM when NVML can tell (not in every container)
    utilization: int | None


@dataclass
class MemoryReport:
    """One snapshot for the memory panel."""

    gpus: list[GpuReading] = field(default_factory=list)
    nvml_status: str = ""
    torch_cuda: dict[str, int] = field(default_factory=dict)  # allocated / reserved / peak, bytes
    rss: int = 0
    ram_available: int = 0
    ram_total: int = 0


_nvml_lock = threading.Lock()
_nvml_state: dict[str, object] = {"tried": False, "ok": False, "why": ""}


def _nvml():
    """Import and initialise NVML once; return the module or None with the reason recorded."""
    with _nvml_lock:
        if not _nvml_state["tried"]:
            _nvml_state["tried"] = True
            try:
                import pynvml

                pynvml.nvmlInit()
                _nvml_state.update(ok=True, module=pynvml)
            except ImportError:
                _nvml_state["why"] = "nvidia-ml-py is not installed"
            except pynvml.NVMLError as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
                _nvml_state["why"] = f"no NVIDIA driver ({exc})"
        return _nvml_state.get("module") if _nvml_state["ok"] else None


def gpu_readings() -> tuple[list[GpuReading], str]:
    nvml = _nvml()
    if nvml is None:
        return [], str(_nvml_state["why"])
    readings = []
    try:
        pid = os.getpid()
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            name = nvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            mine = None
            try:
                for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if proc.pid == pid and proc.usedGpuMemory is not None:
                        mine = int(proc.usedGpuMemory)
            except nvml.NVMLError:  # not supported on every GPU or driver: the reading goes without it
                mine = None
            try:
                util = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except nvml.NVMLError:
                util = None
            readings.append(GpuReading(i, name, int(mem.used), int(mem.total), mine, util))
    except nvml.NVMLError as exc:
        return readings, f"NVML reading failed ({exc})"
    return readings, "ok"


def memory_report() -> MemoryReport:
    gpus, status = gpu_readings()
    report = MemoryReport(gpus=gpus, nvml_status=status, rss=process_rss())
    vm = psutil.virtual_memory()
    report.ram_available, report.ram_total = vm.available, vm.total
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        report.torch_cuda = {
            "allocated": torch.cuda.memory_allocated(),
            "reserved": torch.cuda.memory_reserved(),
            "peak": torch.cuda.max_memory_allocated(),
        }
    return report


def fmt_seconds(seconds: float) -> str:
    """0.021 -> '21 ms', 2.5 -> '2.50 s': milliseconds below a second, so a fast answer never reads '0 s'."""
    return f"{max(1, round(seconds * 1000))} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TB"


# --- memory model and run plans ------------------------------------------------------------------
# Peak activation bytes of one whole-image pass = FIXED + PER_PIXEL x pixels. The CPU figures were
# measured here (bench/memory_bench.py model [--precision bf16]: peak RSS over the run, 384^2..1024^2):
# fp32 about 1500 B/px with glibc's default malloc, up to 2400 B/px with tune_cpu_allocator (freed buffers
# stay in the heap, where they fragment); bf16 up to 880 B/px untuned and 990 B/px tuned (half-size
# activations), counted as 1050 tuned: a tiled 4K photo planned at 1000 peaked 2% over its budget in the
# statistics run (bench/memory_bench.py 4k --precision bf16). CPU fp16 was not measured and counts as fp32. No GPU was available to measure the CUDA rows:
# they are estimates from tensor sizes (fp16/bf16 halve activations) and only a first guess, since a CUDA
# out-of-memory error is recovered from (bench/gpu_check.py measures the 4K peak on a GPU).
BYTES_PER_PIXEL = {("cpu", "fp32"): 1500, ("cpu", "bf16"): 900, ("cpu", "fp16"): 1500,
                   ("cuda", "fp32"): 1500, ("cuda", "fp16"): 900, ("cuda", "bf16"): 900}
TUNED_CPU_BYTES_PER_PIXEL = {"fp32": 2400, "bf16": 1050, "fp16": 2400}
FIXED_BYTES = 64 << 20
PHOTO_BYTES_PER_PIXEL = 6  # a layer-by-layer run keeps the padded input and the uint8 output whole
DEFAULT_CPU_BUDGET = 2 << 30
CUDA_MARGIN = 512 << 20
MIN_TILE = 128
BORDER = 8  # px a whole run's reflect pads add around the photo, in full-resolution terms (see run_pixels)


def parse_bytes(text: str | int | None) -> int | None:
    """'2G', '1500M', '800000000' -> bytes; None or '' or 'auto' -> None."""
    if text is None or isinstance(text, int):
        return text
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    if t in ("", "AUTO"):
        return None
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if mult != 1 else t) * mult
    except ValueError:
        raise ValueError(f"memory budget {text!r} is not a size like 2G or 1500M") from None
    if value <= 0:
        raise ValueError(f"memory budget {text!r} must be positive")
    return int(value)


def default_budget(device: torch.device, requested: int | None = None) -> int:
    """Bytes one run may use, sized for one user (the library and the CLI): free VRAM minus a margin on CUDA,
    half the available RAM on the CPU; ``requested`` caps it (on CUDA) or replaces it (on the CPU)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        budget = max(0, free - CUDA_MARGIN)
        return min(budget, requested) if requested else budget
    if requested:
        return requested
    return available_ram() // 2


def shared_budget(device_type: str, workers: int) -> int | None:
    """The app's budget for one conversion when none is set: on the CPU, 2 GiB or half the available RAM shared by
    the conversions that run at once, whichever is less; on CUDA None (each run takes what VRAM is free then)."""
    if device_type == "cuda":
        return None
    return min(DEFAULT_CPU_BUDGET, available_ram() // 2 // max(1, workers))


def bytes_per_pixel(device_type: str, precision: str) -> int:
    """Peak activation bytes per pixel of a whole-image pass (measured on the CPU, estimated on CUDA)."""
    if device_type == "cpu" and _allocator_tuned:
        return TUNED_CPU_BYTES_PER_PIXEL[precision]
    return BYTES_PER_PIXEL[(device_type, precision)]


def run_pixels(height: int, width: int) -> int:
    """Pixels a whole run really computes for an ``height`` x ``width`` photo: its padded size, plus the border its
    reflect pads add at every resolution (3 px at full, 1 px at 1/4 resolution = 4 full-resolution px, ...).

    Negligible for ordinary photos; for thin ones it is most of the cost: a 1x119304 photo runs as 8x119304,
    and its maps are mostly padding (bench/memory_bench.py thin).
    """
    ph, pw = padding_for(height, width)
    return (height + ph + 2 * BORDER) * (width + pw + 2 * BORDER)


def estimate_bytes(pixels: int, device_type: str, precision: str) -> int:
    """Peak bytes of a whole run over ``pixels`` (as :func:`run_pixels` counts them)."""
    return FIXED_BYTES + bytes_per_pixel(device_type, precision) * pixels


def activation_itemsize(device_type: str, precision: str) -> int:
    """Bytes per value of the feature maps a layer-by-layer run keeps (the model's dtype on the CPU)."""
    if device_type == "cpu":
        return 2 if precision in ("bf16", "fp16") else 4
    return 2 if precision in ("bf16", "fp16") else 4


@functools.cache
def _skeleton(flavour: str = "tf1") -> Generator:
    """The generator's layers without weights (meta device): what map sizes are read from."""
    with torch.device("meta"):
        return Generator(flavour)


def map_bytes(height: int, width: int, device_type: str, precision: str) -> int:
    """The most bytes of feature maps a layer-by-layer run of this (unpadded) photo keeps at once."""
    ph, pw = padding_for(height, width)
    return layerwise.map_sizes(_skeleton(), height + ph, width + pw,
                               activation_itemsize(device_type, precision)).peak_bytes


@dataclass(frozen=True)
class RunPlan:
    """How one photo is run: whole, or layer by layer in tiles (animegan.layerwise), exact either way.

    A tiled run keeps each layer's whole feature map between layers: up to ``map_ram`` bytes in RAM, the
    rest (at most ``disk`` bytes) in temporary files removed after the run.
    """

    tile: int           # tile side in px (full resolution); 0 = whole image in one pass
    budget: int
    estimate: int       # predicted peak bytes of the plan
    map_ram: int = 0    # bytes of feature maps kept in RAM (tiled runs)
    disk: int = 0       # most bytes of temporary files (tiled runs)

    @property
    def tiled(self) -> bool:
        return self.tile > 0

    def smaller(self, height: int, width: int) -> RunPlan | None:
        """The next plan to try after running out of memory, or None when tiles are already the smallest."""
        if not self.tiled:
            tile = max(MIN_TILE, max(height, width) // 2)
        elif self.tile > MIN_TILE:
            tile = max(MIN_TILE, self.tile // 2)
        else:
            return None
        peak = self.disk + self.map_ram if self.tiled else 0
        map_ram = self.map_ram // 2 if self.tiled else 0
        return RunPlan(tile, self.budget, self.estimate // 2, map_ram, max(0, peak - map_ram) if peak else 0)

    def tile_count(self, height: int, width: int) -> int:
        """Tiles of the last layer (the output pixels) of a tiled run; 0: whole image."""
        if not self.tiled:
            return 0
        ph, pw = padding_for(height, width)
        return len(layerwise.tiles(height + ph, width + pw, self.tile * self.tile))

    def describe(self) -> str:
        if not self.tiled:
            return f"whole image (~{fmt_bytes(self.estimate)} of a {fmt_bytes(self.budget)} budget)"
        maps = ("feature maps in RAM" if not self.disk else
                f"feature maps in RAM up to {fmt_bytes(self.map_ram)}, the rest (<= {fmt_bytes(self.disk)}) "
                "in temporary files")
        return (f"tiles of {self.tile} px, layer by layer: the whole photo's exact statistics in one pass, "
                f"{maps} (~{fmt_bytes(self.estimate)} of a {fmt_bytes(self.budget)} budget)")


def plan_run(height: int, width: int, device_type: str, precision: str, budget: int,
             tile: int | None = None) -> RunPlan:
    """Whole image when it fits the budget (or ``tile`` == 0 is forced), else layer by layer in the largest tiles
    that fit half of what is left, the feature maps in the other half (and on disk beyond it).

    ``tile`` > 0 forces tiles of that size (for tests, benchmarks and OOM retries).
    """
    whole = estimate_bytes(run_pixels(height, width), device_type, precision)
    if tile == 0 or (tile is None and whole <= budget):
        return RunPlan(0, budget, whole)
    ph, pw = padding_for(height, width)
    per_px = bytes_per_pixel(device_type, precision)
    base = FIXED_BYTES + PHOTO_BYTES_PER_PIXEL * (height + ph) * (width + pw)
    room = max(0, budget - base)
    if tile is None:
        side = math.isqrt(room // 2 // per_px) - 2 * BORDER
        tile = max(MIN_TILE, side // 4 * 4)
    tile = max(4, tile // 4 * 4)
    work = per_px * (tile + 2 * BORDER) ** 2
    peak_maps = map_bytes(height, width, device_type, precision)
    map_ram = min(peak_maps, max(0, budget - base - work))
    return RunPlan(tile, budget, base + work + map_ram, map_ram, peak_maps - map_ram)


_OOM_TEXTS = ("can't allocate memory", "out of memory", "cudnn_status_alloc_failed", "cublas_status_alloc_failed")


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA OOM, or a CPU allocation failure (which PyTorch reports as a RuntimeError).

    cuDNN and cuBLAS report a failed workspace allocation as their own RuntimeError, not as
    ``torch.OutOfMemoryError``: under a capped allocator that is how a convolution runs out of memory.
    """
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(t in text for t in _OOM_TEXTS)


def free_device_memory(device: torch.device) -> None:
    """Return cached blocks to the driver (CUDA) or freed heap pages to the OS (CPU) at once: after an
    out-of-memory error, and after each CUDA run (a CPU run's heap goes back once idle: :func:`run_scope`).

    On the CPU, glibc keeps freed activation buffers of every photo size in its heap (all the more with
    :func:`tune_cpu_allocator`); without a trim, RSS grew by 180% over 200 conversions of varied sizes
    (bench/memory_bench.py soak).
    """
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
    elif _LIBC is not None:
        _LIBC.malloc_trim(0)


IDLE_TRIM_DELAY_S = 1.0
MAX_UNTRIMMED_RUNS = 8


class _IdleHeapRelease:
    """Gives freed heap pages back to the OS once no run has been active for ``delay`` seconds.

    A trim right after every run cost 44 ms, and the next run then faulted all its pages in again: back-to-back
    512x512 conversions took 0.70 s each that way and 0.56 s without (a busy queue); an idle app still
    returns to its resting RSS a second after its last run, and a busy one trims every ``max_runs`` runs,
    since photos of varied sizes slowly fragment the heap (bench/memory_bench.py soak).
    """

    def __init__(self, delay: float, max_runs: int) -> None:
        self.delay, self.max_runs = delay, max_runs
        self._lock = threading.Lock()
        self._active = 0
        self._runs = 0  # runs ended since the last trim
        self._timer: threading.Timer | None = None
        self.trims = 0

    def __enter__(self) -> None:
        with self._lock:
            self._active += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._active -= 1
            self._runs += 1
            if self._active or _LIBC is None:
                return
            if self._runs >= self.max_runs:  # a busy process never idles: bound the heap's fragmentation anyway
                self._trim_locked()
                return
            self._timer = threading.Timer(self.delay, self._trim)
            self._timer.daemon = True
            self._timer.start()

    def _trim(self) -> None:
        with self._lock:
            if not self._active:
                self._trim_locked()

    def _trim_locked(self) -> None:
        self._timer = None
        self._runs = 0
        _LIBC.malloc_trim(0)
        self.trims += 1


cpu_heap_release = _IdleHeapRelease(IDLE_TRIM_DELAY_S, MAX_UNTRIMMED_RUNS)


@contextlib.contextmanager
def run_scope(device: torch.device) -> Iterator[None]:
    """Around one conversion: afterwards CUDA's cached blocks go back at once, freed heap pages once idle."""
    with cpu_heap_release:
        try:
            yield
        finally:
            if device.type == "cuda" and torch.cuda.is_available():
                free_device_memory(device)


ENV_MALLOC_TUNING = flags.FLAGS["malloc_tuning"].env  # 0: leave glibc's malloc settings alone
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8  # glibc <malloc.h>


def tune_cpu_allocator() -> bool:
    """Let a run reuse freed activation buffers instead of faulting fresh pages in for each one.

    glibc serves blocks over 32 MiB with mmap and unmaps them on free, so each full-resolution activation of
    a 512 px photo costs about 8k page faults (a 34 MB copy: 8 ms fresh, 1 ms into reused memory). Here big
    blocks come from the heap, the heap is not trimmed mid-run, and all threads share one arena so Gradio's
    worker threads benefit too; :func:`run_scope` gives the memory back once the app is idle.
    Twice as fast at 1024 px (bench/bench_engine.py, "base+env"), for a higher peak that the memory model
    counts (TUNED_CPU_BYTES_PER_PIXEL). Process-wide, so it is done once, at import;
    ANIMEGAN_MALLOC_TUNING=0 turns it off.
    """
    global _allocator_tuned
    if _LIBC is None or not flags.switch(os.environ.get(ENV_MALLOC_TUNING), default=True):
        return False
    try:
        mallopt = _LIBC.mallopt
    except AttributeError:
        return False
    _allocator_tuned = all(mallopt(param, value) == 1 for param, value in
                           ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 1 << 30)))
    return _allocator_tuned


def _find_libc():
    """glibc on Linux (malloc_trim, mallopt); None on musl, macOS and Windows, where there is nothing to tune."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018  (glibc only)
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _find_libc()
_allocator_tuned = False
