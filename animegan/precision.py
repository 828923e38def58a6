"""Which number format a run uses: ``auto``, ``fp32``, ``bf16`` or ``fp16``.

``auto`` picks the fastest format whose output stays close to fp32 (>= 45 dB PSNR against fp32 on the
real test photos, bench/bench_engine.py): fp16 on CUDA, bf16 on a CPU that computes bf16 natively, fp32 otherwise.
"Natively" needs all three of: oneDNN agreeing to run bf16 kernels, ATen's vectorised kernels (the norms,
pads and resizes between convolutions), and a CPU flag for bf16 dot products (AVX512_BF16 or AMX-BF16).
oneDNN alone is not enough: it accepts bf16 on any AVX-512 CPU and then emulates it, slower than fp32.

The decision is a pure function of the capabilities (:func:`decide`), so it is tested from given ones;
:func:`detect_cpu` reads this machine's once.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
NATIVE_FP16_FLAGS = frozenset({"avx512_fp16", "amx_fp16"})
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class CpuCapabilities:
    """What this CPU and this torch build can do; every field is a plain value so tests can make any CPU."""

    onednn_bf16: bool          # torch.ops.mkldnn._is_mkldnn_bf16_supported(): oneDNN will run bf16 kernels
    onednn_fp16: bool          # torch.ops.mkldnn._is_mkldnn_fp16_supported()
    aten_capability: str       # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...
    flags: frozenset[str]      # CPU feature flags (/proc/cpuinfo, plus what torch's cpuinfo reports)

    @property
    def native_bf16(self) -> bool:
        return self.onednn_bf16 and self.aten_capability.upper() != "DEFAULT" and bool(self.flags & NATIVE_BF16_FLAGS)

    @property
    def native_fp16(self) -> bool:
        return self.onednn_fp16 and self.aten_capability.upper() != "DEFAULT" and bool(self.flags & NATIVE_FP16_FLAGS)

    def describe(self) -> str:
        found = sorted(self.flags & (NATIVE_BF16_FLAGS | NATIVE_FP16_FLAGS)) or ["no bf16/fp16 flags"]
        return (f"oneDNN bf16 {'yes' if self.onednn_bf16 else 'no'}, ATen {self.aten_capability}, "
                f"{', '.join(found)}")


@dataclass(frozen=True)
class Decision:
    precision: Precision
    notice: str = ""           # empty, or what the user should know (emulated, slower)


def decide(requested: str | None, device_type: str, cpu: CpuCapabilities) -> Decision:
    """The precision a run uses for a request (None or 'auto' pick) on a device type; raises for unknown names."""
    name = (requested or "auto").strip().lower()
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; use one of {', '.join(PRECISIONS)}")
    if name == "auto":
        if device_type == "cuda":
            return Decision("fp16")
        return Decision("bf16" if cpu.native_bf16 else "fp32")
    if device_type != "cpu":
        return Decision(name)  # type: ignore[arg-type]
    if name == "bf16" and not cpu.native_bf16:
        return Decision("bf16", "bf16 on this CPU is emulated (no AVX512_BF16 or AMX): slower than fp32 here")
    if name == "fp16" and not cpu.native_fp16:
        return Decision("fp16", "fp16 on this CPU is emulated (no AVX512_FP16 or AMX-FP16): much slower than fp32")
    return Decision(name)  # type: ignore[arg-type]


def _cpuinfo_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _torch_flags() -> frozenset[str]:
    """Flags from torch's own cpuinfo probe (works where /proc/cpuinfo does not, e.g. macOS or Windows)."""
    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported",
              "amx_fp16": "_is_amx_fp16_supported"}
    found = set()
    for flag, name in probes.items():
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                found.add(flag)
        except RuntimeError:
            pass
    return frozenset(found)


def _onednn(name: str) -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(getattr(torch.ops.mkldnn, name)())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def detect_cpu() -> CpuCapabilities:
    """This machine's capabilities (read once per process)."""
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        capability = "DEFAULT"
    return CpuCapabilities(onednn_bf16=_onednn("_is_mkldnn_bf16_supported"),
                           onednn_fp16=_onednn("_is_mkldnn_fp16_supported"),
                           aten_capability=capability, flags=_cpuinfo_flags() | _torch_flags())


def resolve(requested: str | None, device: torch.device) -> Decision:
    """:func:`decide` on this machine (and, for bf16 on CUDA, whether the GPU has it: Ampere or later)."""
    decision = decide(requested, device.type, detect_cpu())
    if device.type == "cuda" and decision.precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return Decision("bf16", "bf16 on this GPU is emulated (it has no bf16 tensor cores): slower than fp16")
    return decision


def default_precision(device: torch.device) -> Precision:
    """What ``precision="auto"`` (or none) runs on ``device``: the rule every caller shares (the engine, the
    registry's preload, the replicas)."""
    return resolve("auto", device).precision
