"""The memory panel's GPU readings when NVML is absent, has no driver, or fails part-way (no GPU needed)."""
from __future__ import annotations

import sys
import types

import pytest

from animegan import memory


class NVMLError(Exception):
    pass


class FakeNVML(types.ModuleType):
    """pynvml as a machine with one GPU has it; ``broken`` names the calls that raise NVMLError."""

    NVMLError = NVMLError

    def __init__(self, *broken: str) -> None:
        super().__init__("pynvml")
        self.broken = set(broken)

    def _call(self, name: str, value):
        if name in self.broken:
            raise NVMLError(f"{name} failed")
        return value

    def nvmlInit(self):
        return self._call("init", None)

    def nvmlDeviceGetCount(self):
        return self._call("count", 1)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self._call("handle", object())

    def nvmlDeviceGetName(self, handle):
        return self._call("name", b"Fake GPU")

    def nvmlDeviceGetMemoryInfo(self, handle):
        return self._call("memory", types.SimpleNamespace(used=3 << 30, total=16 << 30))

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        import os

        return self._call("processes", [types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=1 << 30)])

    def nvmlDeviceGetUtilizationRates(self, handle):
        return self._call("utilization", types.SimpleNamespace(gpu=42))


@pytest.fixture()
def nvml(monkeypatch: pytest.MonkeyPatch):
    def install(module) -> None:
        monkeypatch.setitem(sys.modules, "pynvml", module)
        monkeypatch.setattr(memory, "_nvml_state", {"tried": False, "ok": False, "why": ""})
    return install


def test_a_working_gpu_is_read_whole(nvml) -> None:
    nvml(FakeNVML())
    readings, status = memory.gpu_readings()
    assert status == "ok"
    assert [(r.name, r.used, r.total, r.process_used, r.utilization) for r in readings] == [
        ("Fake GPU", 3 << 30, 16 << 30, 1 << 30, 42)]


def test_nvml_not_installed(nvml) -> None:
    nvml(None)  # `import pynvml` raises ImportError
    assert memory.gpu_readings() == ([], "nvidia-ml-py is not installed")


def test_no_driver(nvml) -> None:
    nvml(FakeNVML("init"))
    readings, status = memory.gpu_readings()
    assert readings == [] and status.startswith("no NVIDIA driver") and "init failed" in status


@pytest.mark.parametrize("broken", ["processes", "utilization"])
def test_an_optional_reading_that_fails_leaves_the_rest(nvml, broken: str) -> None:
    nvml(FakeNVML(broken))
    readings, status = memory.gpu_readings()
    assert status == "ok" and len(readings) == 1 and readings[0].used == 3 << 30
    assert (readings[0].process_used is None) == (broken == "processes")
    assert (readings[0].utilization is None) == (broken == "utilization")


def test_a_reading_that_fails_is_said(nvml) -> None:
    nvml(FakeNVML("memory"))
    readings, status = memory.gpu_readings()
    assert readings == [] and status == "NVML reading failed (memory failed)"


def test_an_unexpected_error_is_not_swallowed(nvml) -> None:
    """Only NVML's own errors mean 'no reading'; anything else is a bug and surfaces."""
    module = FakeNVML()
    module.nvmlDeviceGetCount = lambda: 1 / 0
    nvml(module)
    with pytest.raises(ZeroDivisionError):
        memory.gpu_readings()
