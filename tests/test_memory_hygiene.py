"""CPU memory hygiene: the heap goes back to the OS once idle (and at least every few runs), malloc is tuned."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from harness import wait_until

from animegan import memory, stylize

pytestmark = pytest.mark.skipif(memory._LIBC is None, reason="needs glibc (malloc_trim, mallopt)")


def test_trim_waits_until_no_run_is_active_then_happens_once() -> None:
    release = memory._IdleHeapRelease(delay=0.05, max_runs=100)
    release.__enter__()
    release.__enter__()          # two overlapping runs
    release.__exit__(None)
    time.sleep(0.2)
    assert release.trims == 0    # one run is still going
    release.__exit__(None)
    assert wait_until(lambda: release.trims == 1)
    time.sleep(0.2)
    assert release.trims == 1


def test_a_new_run_cancels_the_pending_trim() -> None:
    release = memory._IdleHeapRelease(delay=0.3, max_runs=100)
    with release:
        pass
    with release:                # starts before the idle delay ran out
        time.sleep(0.5)
        assert release.trims == 0
    assert wait_until(lambda: release.trims == 1)


def test_a_busy_process_still_trims_every_max_runs() -> None:
    release = memory._IdleHeapRelease(delay=60, max_runs=3)
    for _ in range(7):
        with release:
            pass
    assert release.trims == 2    # after runs 3 and 6, without ever being idle for 60 s


def test_rss_returns_to_rest_once_idle(registry, monkeypatch) -> None:
    monkeypatch.setattr(memory.cpu_heap_release, "max_runs", 1000)  # only the idle trim, in this test
    photo = np.random.default_rng(5).integers(0, 256, (384, 384, 3), dtype=np.uint8)
    stylize(photo, "hayao", registry=registry, device="cpu", max_side=0)
    assert wait_until(lambda: memory.cpu_heap_release._timer is None, memory.IDLE_TRIM_DELAY_S + 5)
    rest = memory.process_rss()
    stylize(photo, "hayao", registry=registry, device="cpu", max_side=0)
    kept = memory.process_rss()  # right after the run the heap is kept for the next one
    assert kept > rest + (50 << 20)
    assert wait_until(lambda: memory.process_rss() < rest + (kept - rest) / 2, memory.IDLE_TRIM_DELAY_S + 5), \
        (rest >> 20, kept >> 20, memory.process_rss() >> 20)


def test_malloc_is_tuned_at_import_and_counted_by_the_memory_model() -> None:
    assert memory._allocator_tuned  # conftest does not set ANIMEGAN_MALLOC_TUNING=0
    assert memory.bytes_per_pixel("cpu", "fp32") == memory.TUNED_CPU_BYTES_PER_PIXEL["fp32"]
    assert memory.bytes_per_pixel("cpu", "bf16") < memory.bytes_per_pixel("cpu", "fp32")  # half-size activations
    assert memory.bytes_per_pixel("cuda", "fp16") == memory.BYTES_PER_PIXEL[("cuda", "fp16")]


def test_concurrent_runs_share_one_release() -> None:
    release = memory._IdleHeapRelease(delay=0.05, max_runs=1000)
    barrier = threading.Barrier(4)

    def run() -> None:
        with release:
            barrier.wait()
            time.sleep(0.05)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wait_until(lambda: release.trims == 1)
    time.sleep(0.2)
    assert release.trims == 1


def test_out_of_memory_is_recognised_in_every_form_the_gpu_libraries_use() -> None:
    assert memory.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert memory.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"))
    assert memory.is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"))
    assert memory.is_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert not memory.is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_BAD_PARAM"))
    assert not memory.is_out_of_memory(ValueError("out of memory"))  # only the libraries' RuntimeErrors count
