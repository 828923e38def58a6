"""Memory: which device to use, what it has free, and readings for the UI (torch, NVML, process RSS).

NVML (``nvidia-ml-py``, imported as ``pynvml``) is optional at run time: with no
NVIDIA driver every reading here degrades to a plain statement of that fact.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field

import psutil
import torch


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when usable, else CPU; asking for CUDA without one is an error the user can act on."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU here; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {name!r}; use auto, cpu or cuda")


def process_rss() -> int:
    return psutil.Process().memory_info().rss


def available_ram() -> int:
    return psutil.virtual_memory().available


class PeakRSS:
    """Peak resident memory of this process over a block of code.

    On Linux the kernel's high-water mark (VmHWM) is reset through
    ``/proc/self/clear_refs`` and read back, which costs nothing while the
    model runs; elsewhere a sampling thread polls RSS. The figure is for the
    whole process: concurrent runs share it.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._kernel = sys.platform.startswith("linux") and _reset_hwm()

    def __enter__(self) -> "PeakRSS":
        self.peak = process_rss()
        if not self._kernel:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, process_rss())

    def __exit__(self, *exc: object) -> None:
        if self._kernel:
            self.peak = max(self.peak, _read_hwm() or 0, process_rss())
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.peak = max(self.peak, process_rss())


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
            except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
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
            except Exception:
                mine = None
            try:
                util = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:
                util = None
            readings.append(GpuReading(i, name, int(mem.used), int(mem.total), mine, util))
    except Exception as exc:
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


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TB"
