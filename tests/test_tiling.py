"""Tiled inference: tiles share whole-image statistics, plans follow the budget, OOM is recovered from."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animegan import engine, inference, memory
from animegan.imaging import psnr
from animegan.model import NORM_LAYERS, CoreTally, LayerNorm

EXAMPLES = Path(__file__).resolve().parents[1] / "animegan" / "examples"


@pytest.fixture(scope="module")
def model(registry):
    return registry.get("hayao", "cpu", "fp32").model


@pytest.fixture(scope="module")
def photo(photos) -> np.ndarray:
    # 300x200: sides not multiples of 4 on purpose (300 is, 202 is not) to exercise padding too
    return np.asarray(Image.open(photos["railway_crossing"]).convert("RGB").resize((300, 202), Image.LANCZOS))


@pytest.fixture(scope="module")
def whole(model, photo) -> np.ndarray:
    return inference.run_whole(model, photo)


def test_tiles_with_exact_statistics_match_the_whole_run(model, photo, whole):
    tiled = inference.run_tiled(model, photo, tile=96, halo=64, stats_side=10_000)
    assert tiled.shape == whole.shape
    assert psnr(tiled, whole) >= 60
    assert np.abs(tiled.astype(int) - whole).max() <= 2


def _norm_input_sizes(model, rgb: np.ndarray) -> list[int]:
    """Elements of every layer norm's input in a whole run, in the order the network meets them."""
    sizes: list[int] = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].numel()))
             for m in model.modules() if isinstance(m, LayerNorm)]
    try:
        inference.run_whole(model, rgb)
    finally:
        for hook in hooks:
            hook.remove()
    return sizes


def test_core_tallies_partition_every_feature_map(model, photo):
    """Cores counted at full, 1/2 and 1/4 resolution add up to each whole feature map, nothing twice."""
    padded = inference.pad(torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].float(),
                           *inference.padding_for(*photo.shape[:2]))
    padded = padded[0].permute(1, 2, 0).to(torch.uint8).numpy()
    assert padded.shape[:2] == (204, 300)
    recorded, _ = inference._record(model, padded, 300, "fp32")
    tally = CoreTally(NORM_LAYERS)  # every layer, tiles replaying the recorded (exact) statistics
    grid = inference.tile_grid(204, 300, 72, 64)
    assert len(grid) == 15  # 3 x 5 cores of 68 and 60 px, halos clipped at the borders
    inference.tally_pass(model, padded, grid, recorded.values, tally)
    assert tally.counted() == _norm_input_sizes(model, padded)
    for (m0, v0), (m1, v1) in zip(recorded.values, tally.stats().values):
        assert abs(m1 - m0).item() <= 1e-5 * v0.sqrt().item() and abs(v1 / v0 - 1).item() <= 1e-5


def test_layer_statistics_from_tiles_are_the_whole_photos(model, photo):
    padded = np.ascontiguousarray(photo[:120, :160])
    recorded, _ = inference._record(model, padded, 160, "fp32")
    measured = inference.layer_statistics(model, padded, tile=64, halo=64)  # 2 x 3 tiles
    assert len(measured.values) == len(recorded.values) == NORM_LAYERS == sum(isinstance(m, LayerNorm) for m in model.modules())
    for (m0, v0), (m1, v1) in zip(recorded.values, measured.values):
        assert abs(m1 - m0).item() <= 1e-5 * v0.sqrt().item() and abs(v1 / v0 - 1).item() <= 1e-5


def test_tiles_as_faithful_as_the_whole_run_where_extrapolation_drifts(registry, model):
    """A real photo (the repo's astronaut) whose extrapolated statistics drift; budget and tile force that path."""
    rgb = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB").resize((224, 224), Image.LANCZOS))
    whole = inference.run_whole(model, rgb)
    plan = memory.plan_run(224, 224, "cpu", "fp32", 100 << 20, tile=112)
    assert plan.tiled and plan.stats_side < 224 and plan.passes == NORM_LAYERS + 1
    assert "layer by layer (25 passes)" in plan.describe()
    steps: list[tuple[int, int]] = []
    result = engine.stylize(rgb, "hayao", registry=registry, device="cpu", max_side=0, memory_budget=100 << 20,
                            tile=112, on_tile=lambda done, total: steps.append((done, total)))
    tiled = np.asarray(result.image)
    assert result.stats.tiles == 4 and steps == [(i, 100) for i in range(1, 101)]
    assert any("25 passes" in n for n in result.stats.notices)
    assert psnr(tiled, whole) >= 50
    extrapolated = inference.run_tiled(model, rgb, tile=112, halo=64, stats_side=plan.stats_side,
                                       statistics="extrapolated")
    assert psnr(extrapolated, whole) < psnr(tiled, whole) - 6


def test_a_timeout_in_on_tile_stops_the_statistics_passes(model, photo):
    calls: list[int] = []

    def stop(done: int, total: int) -> None:
        calls.append(done)
        if done == 5:
            raise TimeoutError(f"stopped after {done} of {total}")
    with pytest.raises(TimeoutError, match="stopped after 5 of 100"):  # 2 x 2 tiles, 24 + 1 passes
        inference.run_tiled(model, photo, tile=152, halo=64, stats_side=100, on_tile=stop)
    assert calls == [1, 2, 3, 4, 5]


def test_tiles_without_shared_statistics_would_show_seams(model, photo, whole):
    """The failure the shared statistics prevent: each tile normalised on its own."""
    out = np.zeros_like(whole)
    for ys, xs in inference.tile_grid(*photo.shape[:2], 100, 0):
        out[ys.core[0]:ys.core[1], xs.core[0]:xs.core[1]] = inference.run_whole(
            model, np.ascontiguousarray(photo[ys.core[0]:ys.core[1], xs.core[0]:xs.core[1]]))
    assert psnr(out, whole) < 35


def test_extrapolated_statistics_beat_a_single_downscaled_run(model, photo, whole):
    padded = np.ascontiguousarray(photo[:200])
    reference = inference.run_whole(model, padded)
    one, _ = inference._record(model, padded, 160, "fp32")
    single = inference.run_whole(model, padded, stats=one.replaying())
    extrapolated = inference.run_whole(model, padded, stats=inference.whole_image_stats(model, padded, 160))
    assert psnr(extrapolated, reference) > psnr(single, reference)


def test_blend_weights_partition_unity():
    h = 200
    total = np.zeros(h, np.float32)
    for span in inference.spans(h, 64, 32):
        total[span.input[0]:span.input[1]] += inference.blend_weights(span, h, 16)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_spans_are_aligned_and_cover_everything():
    for length in (8, 100, 204, 1000):
        got = inference.spans(length, 96, 64)
        assert got[0].core[0] == 0 and got[-1].core[1] == length
        for a, b in zip(got, got[1:]):
            assert a.core[1] == b.core[0] and a.core[1] % 4 == 0
        assert all(s.input[0] % 4 == 0 for s in got)


def test_tiny_tiles_still_read_enough_context(model):
    # a 4 px core with no halo would feed the network a 4 px input, too small for its reflect pads
    spans = inference.spans(12, 8, 0)
    assert [s.core for s in spans] == [(0, 8), (8, 12)]
    assert all(s.input[1] - s.input[0] >= inference.MIN_SIDE for s in spans)
    rgb = np.random.default_rng(3).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    with torch.inference_mode():
        out = inference.run_tiled(model, rgb, tile=4, halo=0, stats_side=28)
    assert out.shape == rgb.shape


def test_plan_whole_when_it_fits_tiles_when_not():
    gib = 1 << 30
    assert not memory.plan_run(512, 512, "cpu", "fp32", 2 * gib).tiled
    plan = memory.plan_run(2160, 3840, "cpu", "fp32", 2 * gib)
    assert plan.tiled and plan.estimate <= 2 * gib
    assert memory.MIN_TILE <= plan.tile < 3840 and plan.stats_side < 3840
    smaller = memory.plan_run(2160, 3840, "cpu", "fp32", gib)
    assert smaller.tile < plan.tile and smaller.stats_side < plan.stats_side
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


def test_parse_bytes():
    assert memory.parse_bytes("2G") == 2 << 30
    assert memory.parse_bytes("1500M") == 1500 << 20
    assert memory.parse_bytes("1.5GiB") == int(1.5 * (1 << 30))
    assert memory.parse_bytes("auto") is None
    with pytest.raises(ValueError):
        memory.parse_bytes("lots")


class _OOMAbove:
    """Wraps inference.forward: raises torch.OutOfMemoryError for inputs larger than ``limit`` px a side."""

    def __init__(self, limit: int) -> None:
        self.limit, self.sizes, self.real = limit, [], inference.forward

    def __call__(self, model, x, precision="fp32", stats=None):
        self.sizes.append(tuple(x.shape[-2:]))
        if max(x.shape[-2:]) > self.limit:
            raise torch.OutOfMemoryError(f"injected: {tuple(x.shape)} above {self.limit}")
        return self.real(model, x, precision, stats)


def test_oom_retries_with_smaller_tiles_and_keeps_serving(registry, photos, monkeypatch):
    fake = _OOMAbove(limit=240)
    monkeypatch.setattr(inference, "forward", fake)
    src = Image.open(photos["kyoto_street_kimono"]).convert("RGB").resize((320, 216))
    result = engine.stylize(src, "hayao", registry=registry, device="cpu", max_side=0)
    assert result.image.size == (320, 216)
    assert result.stats.oom_recoveries >= 1 and result.stats.tiles > 1
    assert any("out of memory" in n for n in result.stats.notices)
    assert max(max(s) for s in fake.sizes[-3:]) <= 240
    monkeypatch.setattr(inference, "forward", fake.real)
    again = engine.stylize(src, "hayao", registry=registry, device="cpu", max_side=0)
    assert again.stats.oom_recoveries == 0 and again.stats.tiles == 0


def test_oom_at_the_smallest_tile_is_a_clear_error(registry, photos, monkeypatch):
    monkeypatch.setattr(inference, "forward", _OOMAbove(limit=8))
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

    monkeypatch.setattr(inference, "forward", forward)
    rgb = np.asarray(Image.open(photos["cars_bridge_forest"]).convert("RGB").resize((256, 136)))
    plan = memory.plan_run(136, 256, "cuda", "fp16", 1 << 30)
    notices: list[str] = []
    out, final, loaded, recoveries = engine._run_with_recovery(
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
