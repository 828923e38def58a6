"""Shared fixtures: the test material in ../shared (never copied into the repo) and a registry over it."""
from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared")).resolve()


def load_bench(name: str) -> ModuleType:
    """A script of bench/ as a module (bench/ is not a package): loaded by path once, and registered, as
    dataclasses need."""
    key = f"animegan_bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[key]


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test material {path} is missing (set ANIMEGAN_SHARED to the shared folder)")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def hayao_pt(shared: Path) -> Path:
    """Stand-in Hayao weights (float32 state dict dequantised from an 8-bit export)."""
    return _need(shared / "weights" / "hayao-int8-dequant.pt")


@pytest.fixture(scope="session")
def hayao_ckpt(shared: Path) -> Path:
    """The same weights as a genuine TF1 checkpoint prefix."""
    prefix = shared / "weights" / "tf-ckpt" / "Hayao-int8-dequant.ckpt"
    _need(Path(f"{prefix}.index"))
    return prefix


@pytest.fixture(scope="session")
def photos(shared: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(_need(shared / "photos").glob("*.jpg"))}


@pytest.fixture(scope="session")
def registry(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory):
    """A registry whose 'hayao' style uses the stand-in weights; other styles are offline and missing."""
    from animegan import Registry

    return Registry(weights={"hayao": hayao_pt}, cache_dir=tmp_path_factory.mktemp("cache"), offline=True)


@pytest.fixture(scope="session")
def small_photo(photos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real photo at 192 px (JPEG), so that a conversion takes well under a second on CPU."""
    im = Image.open(photos["railway_crossing"]).convert("RGB")
    im.thumbnail((192, 192), Image.LANCZOS)
    path = tmp_path_factory.mktemp("photo") / "railway.jpg"
    im.save(path, quality=92)
    return path


def all_at_once(n: int, call: Callable[[int], Any], timeout: float) -> list[Any]:
    """``call(i)`` for i < n, in n threads released together; each one's result, or the exception it raised."""
    results: list[Any] = [None] * n
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except Exception as exc:  # noqa: BLE001 (returned to the caller, who asserts on it)
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return results


@pytest.fixture(scope="module")
def one_ray_at_a_time() -> Iterator[None]:
    """Held by every test module that starts Ray, across pytest-xdist's workers: two Ray instances on one machine
    (a `ray start --head` cluster with token auth beside a local one) made a GCS answer the other's driver."""
    import tempfile

    from filelock import FileLock

    with FileLock(str(Path(tempfile.gettempdir()) / "animegan-tests-ray.lock")):
        yield


@pytest.fixture
def clean_weights_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No weights variable from outside (CI exports ANIMEGAN_OFFLINE=1): the test sets what it needs."""
    from animegan import settings

    for name in (settings.ENV_OFFLINE, settings.ENV_HF_OFFLINE, settings.ENV_MIRROR, settings.ENV_WEIGHTS_DIR,
                 settings.ENV_CACHE_DIR):
        monkeypatch.delenv(name, raising=False)


PROCESS_TORCH_THREADS = 0   # torch's own thread count in a fresh process (what the CLI and app subprocesses use)


def pytest_configure(config: pytest.Config) -> None:
    """Under ``-n 2`` two test processes share the cores: each runs its in-process models on one thread, so
    they do not fight over the cores (the app servers the tests start choose their own)."""
    global PROCESS_TORCH_THREADS
    import torch

    PROCESS_TORCH_THREADS = torch.get_num_threads()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run in-process models on ``n`` threads: bit-exact comparisons with another process need its count
    (a float sum splits differently over another number of threads)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Files that take longest (servers, browsers, clips), slowest first: run in this order, the two workers of
# `pytest -n 2 --dist loadfile` start on them and finish on quick files instead of waiting on one long one at
# the end. Items within a file keep their order (module fixtures stay shared). Order from `--durations=0`.
SLOW_FILES = ("test_browser.py", "test_timeouts.py", "test_video_browser.py", "test_public_link.py", "test_ray_video.py",
              "test_tiling.py", "test_framing.py", "test_ray_backend.py", "test_video_app.py", "test_side_by_side.py",
              "test_video_security.py", "test_keep_color.py", "test_app.py", "test_portrait_app.py",
              "test_hardening_load.py", "test_metrics.py", "test_temp_lifecycle.py", "test_batch.py",
              "test_redis_cache.py", "test_keep_color_app.py", "test_video.py", "test_hardening_inputs.py",
              "test_mcp.py", "test_ray_cluster.py", "test_hardening_limits.py", "test_video_matrix.py",
              "test_first_use.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FILES)))  # stable: the rest keep their order
