"""Tiled inference: large photos run layer by layer with the whole photo's exact statistics; plans follow the budget
(whatever the photo's shape); OOM is recovered from."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animegan import engine, inference, layerwise, memory
from animegan.imaging import psnr
from animegan.model import NORM_LAYERS, Generator, LayerNorm, NormStats

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "animegan" / "examples"


@pytest.fixture(scope="module")
def model(registry):
    return registry.get("hayao", "cpu", "fp32").model


@pytest.fixture(scope="module")
def photo(photos) -> np.ndarray:
    # 300x202: a side that is not a multiple of 4 on purpose, to exercise padding too
    return np.asarray(Image.open(photos["railway_crossing"]).convert("RGB").resize((300, 202), Image.LANCZOS))


@pytest.fixture(scope="module")
def whole(model, photo) -> np.ndarray:
    return inference.run_whole(model, photo)


def test_the_generator_is_one_step_per_layer_norm(model):
    steps = list(layerwise.iter_steps(model))
    assert len(steps) == NORM_LAYERS == sum(isinstance(m, LayerNorm) for m in model.modules())
    assert [s.upsample for s in steps].count(True) == 2 and [s.stride for s in steps].count(2) == 2
    assert sum(s.keep_residual for s in steps) == 3  # three inverted residual blocks with a shortcut


@pytest.mark.parametrize("tile", [48, 96, 1000])
def test_tiles_match_the_whole_run(model, photo, whole, tile):
    """Any tile size, 2D tiles (48, 96 px: every border and corner case) or bands: the whole run's pixels."""
    tiled = inference.run_tiled(model, photo, tile=tile)
    assert tiled.shape == whole.shape
    assert psnr(tiled, whole) >= 60
    assert np.abs(tiled.astype(int) - whole).max() <= 2


def test_feature_maps_on_disk_give_the_same_result_and_are_removed(model, photo, whole, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    open_maps: list[int] = []
    tiled = inference.run_tiled(model, photo, tile=64, map_ram=0,
                                on_tile=lambda done, total: open_maps.append(_open_files_in(tmp_path)))
    assert psnr(tiled, whole) >= 60
    assert max(open_maps) >= 2  # the map being read and the one being written (unlinked: only open descriptors)
    assert os.listdir(tmp_path) == [] and _open_files_in(tmp_path) == 0


def _open_files_in(folder: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += str(folder) in os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used, closed by now
            pass
    return count


def test_bf16_tiles_match_the_bf16_whole_run(registry, photo):
    model = registry.get("hayao", "cpu", "bf16").model
    reference = inference.run_whole(model, photo, "bf16")
    assert psnr(inference.run_tiled(model, photo, tile=96, precision="bf16"), reference) >= 50


def test_pytorch_port_flavour_any_size(model):
    """The port flavour's resize (align_corners=True to the recorded sizes) on odd sides, tiled exactly too."""
    port = Generator("pytorch-port")
    port.load_state_dict(model.state_dict())
    port.eval()
    rgb = np.random.default_rng(5).integers(0, 256, (101, 150, 3), dtype=np.uint8)
    rgb = np.asarray(Image.fromarray(rgb).resize((150, 101), Image.BILINEAR))
    reference = inference.run_whole(port, rgb)
    assert psnr(inference.run_tiled(port, rgb, tile=40), reference) >= 60


def test_a_real_photo_under_a_budget_that_forces_tiles_matches_its_whole_run(registry):
    """The engine's own plan (no tile forced) for a budget the whole run does not fit: fp32 >= 60 dB, bf16 >= 50."""
    rgb = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB").resize((512, 512), Image.LANCZOS))
    for precision, bar in (("fp32", 60), ("bf16", 50)):
        whole = np.asarray(engine.stylize(rgb, "hayao", registry=registry, device="cpu", max_side=0, tile=0,
                                          precision=precision).image)
        budget = memory.estimate_bytes(memory.run_pixels(512, 512), "cpu", precision) // 3
        steps: list[tuple[int, int]] = []
        result = engine.stylize(rgb, "hayao", registry=registry, device="cpu", max_side=0, memory_budget=budget,
                                precision=precision, on_tile=lambda done, total, steps=steps: steps.append((done, total)))
        assert result.stats.tiles > 1 and "layer by layer" in result.stats.plan
        assert any("exact statistics in one pass" in n for n in result.stats.notices)
        assert steps[-1][0] == steps[-1][1] == len(steps)
        assert psnr(np.asarray(result.image), whole) >= bar, precision


def test_a_timeout_in_on_tile_stops_the_run(model, photo):
    calls: list[int] = []

    def stop(done: int, total: int) -> None:
        calls.append(done)
        if done == 5:
            raise TimeoutError(f"stopped after {done} of {total}")
    with pytest.raises(TimeoutError, match="stopped after 5 of"):
        inference.run_tiled(model, photo, tile=96, on_tile=stop)
    assert calls == [1, 2, 3, 4, 5]


def test_smoothed_statistics_blend_layer_by_layer_as_a_whole_run_does(model, photo):
    """A video's running statistics: a tiled frame blends each layer's exact statistics as the whole run does."""
    other = np.ascontiguousarray(photo[::-1])
    runs = {}
    for name, run in (("whole", lambda s: inference.run_whole(model, photo, stats=s)),
                      ("tiled", lambda s: inference.run_tiled(model, photo, tile=96, stats=s))):
        running = NormStats(mode="smooth", momentum=0.5)
        inference.run_whole(model, other, stats=running)  # the earlier frame
        runs[name] = run(NormStats(mode="smooth", values=running.values, momentum=0.5))
    assert psnr(runs["tiled"], runs["whole"]) >= 60
    assert psnr(runs["whole"], inference.run_whole(model, photo)) < 55  # the blend did change the frame


def test_tiles_without_shared_statistics_would_show_seams(model, photo, whole):
    """The failure exact statistics prevent: each tile normalised on its own."""
    out = np.zeros_like(whole)
    for r in range(0, 202, 100):
        for c in range(0, 300, 100):
            out[r:r + 100, c:c + 100] = inference.run_whole(model, np.ascontiguousarray(photo[r:r + 100, c:c + 100]))
    assert psnr(out, whole) < 35


def test_tiles_cover_every_map_once():
    for h, w, area in ((8, 100, 64), (200, 300, 4096), (51, 2000, 20_000), (3, 5, 64), (1000, 8, 4096)):
        seen = np.zeros((h, w), int)
        for t in layerwise.tiles(h, w, area):
            seen[t.rows[0]:t.rows[1], t.cols[0]:t.cols[1]] += 1
        assert (seen == 1).all(), (h, w, area)


def test_tiny_tiles_still_read_enough_context(model):
    rgb = np.random.default_rng(3).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    reference = inference.run_whole(model, rgb)
    out = inference.run_tiled(model, rgb, tile=4)
    assert out.shape == rgb.shape and psnr(out, reference) >= 60


def test_plan_whole_when_it_fits_tiles_when_not():
    gib = 1 << 30
    assert not memory.plan_run(512, 512, "cpu", "fp32", 2 * gib).tiled
    plan = memory.plan_run(2160, 3840, "cpu", "fp32", 2 * gib)
    assert plan.tiled and plan.estimate <= 2 * gib
    assert memory.MIN_TILE <= plan.tile < 3840 and plan.disk > 0 and plan.map_ram + plan.disk == \
        memory.map_bytes(2160, 3840, "cpu", "fp32")
    assert "temporary files" in plan.describe()
    smaller = memory.plan_run(2160, 3840, "cpu", "fp32", gib)
    assert smaller.tile < plan.tile and smaller.map_ram < plan.map_ram
    assert not memory.plan_run(1024, 1024, "cpu", "fp32", 4 * gib, tile=256).disk  # room for every map in RAM
    # fp16 on CUDA needs fewer bytes per pixel: a bigger photo fits whole in the same budget
    assert not memory.plan_run(1200, 1200, "cuda", "fp16", 2 * gib).tiled
    assert memory.plan_run(1200, 1200, "cuda", "fp32", 2 * gib).tiled


def test_budget_from_free_memory_figures(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (6 << 30, 16 << 30))
    cuda = torch.device("cuda")
    assert memory.default_budget(cuda) == (6 << 30) - memory.CUDA_MARGIN
    assert memory.default_budget(cuda, 1 << 30) == 1 << 30  # a user cap below what is free wins
    assert memory.default_budget(cuda, 64 << 30) == (6 << 30) - memory.CUDA_MARGIN
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (100 << 20, 16 << 30))
    assert memory.default_budget(cuda) == 0
    assert memory.plan_run(512, 512, "cuda", "fp16", 0).tiled


def test_one_user_gets_half_the_ram_and_the_app_shares_it(monkeypatch):
    from animegan.serving import ServeConfig

    monkeypatch.setattr(memory, "available_ram", lambda: 24 << 30)
    cpu = torch.device("cpu")
    assert memory.default_budget(cpu) == 12 << 30  # the library and the CLI: one user
    assert memory.default_budget(cpu, 1 << 30) == 1 << 30
    assert ServeConfig(device="cpu").conversion_budget() == memory.DEFAULT_CPU_BUDGET
    monkeypatch.setattr(memory, "available_ram", lambda: 6 << 30)
    assert ServeConfig(device="cpu", concurrency=3).conversion_budget() == 1 << 30  # 6 GiB / 2 / 3 conversions
    assert ServeConfig(device="cpu", memory_budget=300 << 20).conversion_budget() == 300 << 20


def test_thin_photos_are_planned_at_what_they_really_cost():
    """A 1 px high photo runs as 8 px high (the network's smallest side) plus its pads' borders: plan for that."""
    plan = memory.plan_run(1, 119_304, "cpu", "fp32", 512 << 20)
    assert memory.run_pixels(1, 119_304) >= 16 * 119_304
    assert plan.tiled and plan.estimate <= 512 << 20
    square = memory.plan_run(768, 768, "cpu", "fp32", 2 << 30)
    assert memory.run_pixels(1024, 1024) < 1.04 * 1024 * 1024 and not square.tiled


THIN_RUN = """
import json, sys, numpy as np
from animegan import Registry, stylize
from animegan.memory import PeakRSS, process_rss
registry = Registry(weights={"hayao": sys.argv[1]}, offline=True)
stylize(np.zeros((64, 64, 3), np.uint8), "hayao", registry=registry, device="cpu", max_side=0, precision="fp32")
h, w, budget = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
base = process_rss()
with PeakRSS() as peak:
    result = stylize(rgb, "hayao", registry=registry, device="cpu", max_side=0, precision="fp32",
                     memory_budget=budget, max_pixels=10**9)
print(json.dumps({"used": peak.peak - base, "plan": result.stats.plan, "size": list(result.image.size)}))
"""


@pytest.mark.parametrize("shape", [(1, 60_000), (60_000, 2), (9, 40_000)])
def test_a_thin_photo_stays_within_its_budget(shape, shared):
    """Peak RSS of very thin and very wide photos, in a fresh process, against the budget they were given."""
    budget = 256 << 20
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", THIN_RUN, str(shared / "weights" / "hayao-int8-dequant.pt"),
                          *map(str, shape), str(budget)], capture_output=True, text=True, env=env, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["size"] == [shape[1], shape[0]]
    assert r["used"] <= budget, r


def test_parse_bytes():
    assert memory.parse_bytes("2G") == 2 << 30
    assert memory.parse_bytes("1500M") == 1500 << 20
    assert memory.parse_bytes("1.5GiB") == int(1.5 * (1 << 30))
    assert memory.parse_bytes("auto") is None
    with pytest.raises(ValueError):
        memory.parse_bytes("lots")


class _OOMAbove:
    """Wraps every convolution: raises torch.OutOfMemoryError for inputs of more than ``limit`` pixels (whole runs
    and layer-by-layer tiles alike)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.sizes, self.real = limit, [], torch.nn.Conv2d.forward
        self.forward = lambda conv, x: self(conv, x)  # a plain function: becomes Conv2d's bound method

    def __call__(self, conv, x):
        self.sizes.append(x.shape[-2] * x.shape[-1])
        if self.sizes[-1] > self.limit:
            raise torch.OutOfMemoryError(f"injected: {tuple(x.shape)} above {self.limit} px")
        return self.real(conv, x)


def test_oom_retries_with_smaller_tiles_and_keeps_serving(registry, photos, monkeypatch):
    fake = _OOMAbove(limit=30_000)  # a whole 320x216 run's first conv reads 326x222 = 72k px; 160 px tiles fit
    monkeypatch.setattr(torch.nn.Conv2d, "forward", fake.forward)
    src = Image.open(photos["kyoto_street_kimono"]).convert("RGB").resize((320, 216))
    result = engine.stylize(src, "hayao", registry=registry, device="cpu", max_side=0)
    assert result.image.size == (320, 216)
    assert result.stats.oom_recoveries >= 1 and result.stats.tiles > 1
    assert any("out of memory" in n for n in result.stats.notices)
    assert max(fake.sizes[-3:]) <= 30_000
    monkeypatch.setattr(torch.nn.Conv2d, "forward", fake.real)
    again = engine.stylize(src, "hayao", registry=registry, device="cpu", max_side=0)
    assert again.stats.oom_recoveries == 0 and again.stats.tiles == 0


def test_oom_at_the_smallest_tile_is_a_clear_error(registry, photos, monkeypatch):
    monkeypatch.setattr(torch.nn.Conv2d, "forward", _OOMAbove(limit=64).forward)
    src = Image.open(photos["kyoto_street_kimono"]).convert("RGB").resize((256, 160))
    with pytest.raises(engine.OutOfMemory, match="lower the max side"):
        engine.stylize(src, "hayao", registry=registry, device="cpu", max_side=0)


def test_cuda_oom_falls_back_to_cpu(registry, photos, monkeypatch):
    """The CUDA branch of the recovery, driven without a GPU: every 'GPU' attempt fails, the CPU one works."""
    cpu_model = registry.get("hayao", "cpu", "fp32")
    real = inference.forward
    fake_gpu_calls = []

    def forward(model, x, precision="fp32", stats=None):
        if precision == "fp16":  # only the 'GPU' attempts run in fp16
            fake_gpu_calls.append(tuple(x.shape[-2:]))
            raise torch.OutOfMemoryError("injected CUDA OOM")
        return real(model, x, precision, stats)

    def run_tiled(model, rgb, **kwargs):
        if kwargs.get("precision") == "fp16":
            fake_gpu_calls.append(rgb.shape[:2])
            raise torch.OutOfMemoryError("injected CUDA OOM")
        return real_tiled(model, rgb, **kwargs)

    real_tiled = inference.run_tiled
    monkeypatch.setattr(inference, "forward", forward)
    monkeypatch.setattr(inference, "run_tiled", run_tiled)
    rgb = np.asarray(Image.open(photos["cars_bridge_forest"]).convert("RGB").resize((256, 136)))
    plan = memory.plan_run(136, 256, "cuda", "fp16", 1 << 30)
    notices: list[str] = []
    out, _final, loaded, recoveries = engine._run_with_recovery(
        registry, cpu_model.spec, cpu_model, rgb, plan, torch.device("cuda"), "fp16", notices, None)
    assert out.shape == (136, 256, 3)
    assert loaded.key.device == "cpu" and recoveries >= 2
    assert "ran on the CPU" in notices[-1]
    assert len(fake_gpu_calls) >= 2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_leaves_only_the_weights_allocated(registry, photos):
    registry.get("hayao", "cuda", "fp16")
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    result = engine.stylize(photos["railway_crossing"], "hayao", registry=registry, device="cuda")
    assert torch.cuda.memory_allocated() == before
    assert result.stats.peak_memory > 0 and result.stats.device.startswith("cuda")
