"""Tensor-level runs of the generator: pixels <-> tensors, size padding, device and precision.

Pure functions over their arguments: nothing is kept between calls, so any
number of threads may run them at once on a shared model.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from .model import NORM_LAYERS, NORM_REACH, SIZE_MULTIPLE, CoreTally, Generator, NormStats, TallyDone

MIN_SIDE = 8  # the smallest side whose internal reflect pads are all valid (3 px at full, 1 px at quarter res)


def to_tensor(rgb: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xHxW in [-1, 1] (upstream: x / 127.5 - 1)."""
    x = torch.from_numpy(rgb if rgb.flags.writeable else rgb.copy()).to(device).permute(2, 0, 1).unsqueeze(0).float()
    x = (x / 127.5 - 1.0).to(dtype)  # scaled in fp32, then rounded once to the model's dtype
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else x


def to_pixels(y: torch.Tensor) -> np.ndarray:
    """1x3xHxW in [-1, 1] -> HxWx3 uint8, rounded."""
    y = ((y[0].float() + 1.0) * 127.5).clamp_(0, 255).round_()
    return y.to(torch.uint8).permute(1, 2, 0).cpu().numpy().copy()


def padding_for(h: int, w: int, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """Bottom/right padding that makes both sides valid for the network; zero when already valid.

    Sides that are multiples of ``multiple`` (4 for the tf1 flavour, 1 for the PyTorch port's) and at least 8
    run untouched, as upstream does: padding would change the whole-image layer-norm statistics and so every
    output pixel.
    """
    def need(side: int) -> int:
        target = max(MIN_SIDE, -(-side // multiple) * multiple)
        return target - side
    return need(h), need(w)


def pad(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    if not ph and not pw:
        return x
    h, w = x.shape[-2:]
    # Reflect mirrors real content; a side too small to mirror (1-4 px) repeats its edge instead.
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """CUDA half precisions also run under autocast (norms in fp32); on the CPU the model's dtype is the run's."""
    if device.type == "cuda" and precision in ("fp16", "bf16"):
        return torch.autocast("cuda", dtype=torch.float16 if precision == "fp16" else torch.bfloat16)
    return contextlib.nullcontext()


def forward(model: Generator, x: torch.Tensor, precision: str = "fp32", stats: NormStats | None = None) -> torch.Tensor:
    """One generator pass on an already padded tensor."""
    with torch.inference_mode(), autocast_for(x.device, precision):
        return model(x, stats)


def run_whole(model: Generator, rgb: np.ndarray, precision: str = "fp32", stats: NormStats | None = None) -> np.ndarray:
    """Stylise a whole photo in one pass: output has exactly the input's size."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    h, w = rgb.shape[:2]
    ph, pw = padding_for(h, w, model.spec.size_multiple)
    x = pad(to_tensor(rgb, device, dtype), ph, pw)
    y = forward(model, x, precision, stats)
    del x
    out = to_pixels(y[..., :h, :w])
    del y
    return out


# --- tiles -------------------------------------------------------------------------------------
# Every layer norm of AnimeGANv2 normalises over the whole feature map, so tiles run alone would each
# get their own statistics: different tones per tile and visible seams. Tiles here all replay one set of
# whole-image statistics instead: recorded on the whole photo when that fits, else predicted from two
# downscaled copies that do (NormStats.extrapolated). Overlapping tiles are blended with linear ramps.

@dataclass(frozen=True)
class Span:
    core: tuple[int, int]   # the rows (or cols) this tile is responsible for
    input: tuple[int, int]  # what it reads: core plus halo, clipped to the image


def spans(length: int, core: int, halo: int) -> list[Span]:
    """Split ``length`` (a multiple of 4) into balanced cores of at most ``core`` px, each read with ``halo``."""
    n = max(1, math.ceil(length / core))
    step = -(-length // n // SIZE_MULTIPLE) * SIZE_MULTIPLE
    out = []
    for c0 in range(0, length, step):
        c1 = min(length, c0 + step)
        # a short last core with little halo still reads at least MIN_SIDE px, or the network's pads fail
        i0 = max(0, min(c0 - halo, c1 - MIN_SIDE))
        out.append(Span((c0, c1), (i0, min(length, max(c1 + halo, i0 + MIN_SIDE)))))
    return out


def blend_weights(span: Span, length: int, band: int) -> np.ndarray:
    """1-D weights over ``span.input``: 1 in the core, linear ramps across inner borders (they sum to 1)."""
    p = np.arange(span.input[0], span.input[1], dtype=np.float32) + 0.5
    c0, c1 = span.core
    if not band:
        return ((p >= c0) & (p < c1)).astype(np.float32)
    w = np.ones_like(p)
    if c0 > 0:
        w *= np.clip((p - (c0 - band / 2)) / band, 0, 1)
    if c1 < length:
        w *= np.clip(((c1 + band / 2) - p) / band, 0, 1)
    return w


def tile_grid(h: int, w: int, core: int, halo: int) -> list[tuple[Span, Span]]:
    return [(ys, xs) for ys in spans(h, core, halo) for xs in spans(w, core, halo)]


def _record(model: Generator, rgb: np.ndarray, side: int, precision: str) -> tuple[NormStats, int]:
    """Run a copy of ``rgb`` whose longer side is about ``side`` and record every layer's statistics."""
    from PIL import Image  # local: only tiled runs need it

    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    sh = max(MIN_SIDE, round(h * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)
    sw = max(MIN_SIDE, round(w * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)
    small = rgb if (sh, sw) == (h, w) else np.asarray(Image.fromarray(rgb).resize((sw, sh), Image.LANCZOS))
    params = next(model.parameters())
    stats = NormStats(mode="record")
    x = to_tensor(small, params.device, params.dtype)
    forward(model, x, precision, stats)
    del x
    return stats, max(sh, sw)


def whole_image_stats(model: Generator, rgb: np.ndarray, stats_side: int, precision: str = "fp32") -> NormStats:
    """Layer statistics of the whole (padded) photo, exact when ``stats_side`` covers it, else extrapolated."""
    side = max(rgb.shape[:2])
    if stats_side >= side:
        return _record(model, rgb, side, precision)[0].replaying()
    near, near_side = _record(model, rgb, stats_side, precision)
    far, far_side = _record(model, rgb, round(stats_side / math.sqrt(2)), precision)
    return NormStats.extrapolated(near, near_side, far, far_side, side)


StatisticsMethod = Literal["layers", "extrapolated"]


def run_tiled(model: Generator, rgb: np.ndarray, *, tile: int, halo: int, stats_side: int,
              precision: str = "fp32",
              on_tile: Callable[[int, int], None] | None = None,
              statistics: StatisticsMethod = "layers",
              adjust: Callable[[NormStats], NormStats] | None = None) -> np.ndarray:
    """Stylise a photo tile by tile with shared whole-image layer-norm statistics; output size == input size.

    ``tile``: core size in px; ``halo``: context read around each core (both rounded to multiples of 4);
    ``stats_side``: longest side a whole-image statistics run may use (the memory budget decides it); when it
    covers the photo, one recorded run gives exact statistics and the tiles run once (``tiled_passes``).
    Otherwise ``statistics`` says where they come from:

    * ``"layers"`` (default): measured from the tiles themselves, one layer norm per pass
      (:func:`layer_statistics`), then a last pass makes the pixels: as faithful as the whole run.
    * ``"extrapolated"``: predicted from two downscaled runs (:meth:`NormStats.extrapolated`), one pass:
      faster, but 36-42 dB from the whole run on some photos (bench/memory_bench.py tiles).

    ``on_tile(done, total)`` counts tile runs over all passes; an exception it raises stops the run.
    ``adjust``: changes the whole-image statistics before the tiles replay them (a video smooths them across frames).
    """
    tile = max(SIZE_MULTIPLE, tile // SIZE_MULTIPLE * SIZE_MULTIPLE)
    halo = halo // SIZE_MULTIPLE * SIZE_MULTIPLE
    h0, w0 = rgb.shape[:2]
    ph, pw = padding_for(h0, w0)
    src = torch.from_numpy(rgb if rgb.flags.writeable else rgb.copy()).permute(2, 0, 1)[None].float()
    padded = pad(src, ph, pw)[0].permute(1, 2, 0).to(torch.uint8).numpy()
    del src
    h, w = padded.shape[:2]
    plan = tile_grid(h, w, tile, halo)
    exact = stats_side >= max(h0, w0)  # a whole run of the (padded) photo fits: record it (as memory.plan_run)
    passes = tiled_passes(not exact, statistics)
    progress = _Progress(on_tile, passes * len(plan))
    if passes > 1:
        stats = layer_statistics(model, padded, tile, halo, precision, progress)
    else:
        stats = whole_image_stats(model, padded, max(h, w) if exact else stats_side, precision)
    if adjust is not None:
        stats = adjust(stats)
    out = np.zeros((h, w, 3), np.float32)
    band = halo // 2
    for ys, xs in plan:
        y = forward(model, _tile_input(padded, ys, xs, model), precision, stats.replaying())
        pixels = ((y[0].float() + 1.0) * 127.5).permute(1, 2, 0).cpu().numpy()
        del y
        weight = np.outer(blend_weights(ys, h, band), blend_weights(xs, w, band))[..., None]
        out[ys.input[0]:ys.input[1], xs.input[0]:xs.input[1]] += pixels * weight
        progress.step()
    return np.clip(np.round(out[:h0, :w0]), 0, 255).astype(np.uint8)


def tiled_passes(extrapolating: bool, statistics: StatisticsMethod = "layers") -> int:
    """Passes over the tiles: one per layer norm and one for the pixels when statistics are measured by layers."""
    return NORM_LAYERS + 1 if extrapolating and statistics == "layers" else 1


class _Progress:
    def __init__(self, on_tile: Callable[[int, int], None] | None, total: int) -> None:
        self.on_tile, self.total, self.done = on_tile, total, 0

    def step(self) -> None:
        self.done += 1
        if self.on_tile:
            self.on_tile(min(self.done, self.total), self.total)


def _tile_input(padded: np.ndarray, ys: Span, xs: Span, model: Generator) -> torch.Tensor:
    params = next(model.parameters())
    return to_tensor(padded[ys.input[0]:ys.input[1], xs.input[0]:xs.input[1]], params.device, params.dtype)


def core_region(ys: Span, xs: Span) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """A tile's core as (rows r0:r1, cols c0:c1) of its own input, and that input's (H, W)."""
    region = (ys.core[0] - ys.input[0], ys.core[1] - ys.input[0], xs.core[0] - xs.input[0], xs.core[1] - xs.input[0])
    return region, (ys.input[1] - ys.input[0], xs.input[1] - xs.input[0])


def tally_pass(model: Generator, padded: np.ndarray, plan: list[tuple[Span, Span]], values: list,
               tally: CoreTally, precision: str = "fp32",
               progress: _Progress | None = None) -> CoreTally:
    """Run every tile replaying ``values`` and add each counted norm's input over the tile's core to ``tally``."""
    for ys, xs in plan:
        region, size = core_region(ys, xs)
        replay = NormStats(mode="replay", values=values, tally=tally, region=region, input_size=size)
        try:
            forward(model, _tile_input(padded, ys, xs, model), precision, replay)
        except TallyDone:  # the counted layer was reached: the rest of the network is not needed
            pass
        if progress:
            progress.step()
    return tally


def layer_statistics(model: Generator, padded: np.ndarray, tile: int, halo: int, precision: str = "fp32",
                     progress: _Progress | None = None) -> NormStats:
    """The whole photo's exact layer-norm statistics, measured over its tiles one layer norm at a time.

    ``padded``: the photo with sides already multiples of 4; ``tile``/``halo`` as in :func:`run_tiled`.
    A norm's input depends on every earlier norm's statistics, so pass k replays the k already exact ones,
    stops at norm k and sums its input over each tile's core in float64: after ``NORM_LAYERS`` passes all
    are the whole photo's (up to what the halo hides from a tile). Each pass stops at its norm and reads
    only the context that norm can see (``NORM_REACH``), so early passes are cheap; memory is that of one
    tile run, since the passes run one after another.
    Replacing every layer at once from a pass under a guess (a fixed-point iteration) does not converge:
    a layer's sums only fit the upstream statistics they were measured under, and on a 512 px photo the
    errors of the deep layers grew from 2e-2 to 0.1 to 0.6 over two passes instead of shrinking.
    """
    h, w = padded.shape[:2]
    values: list[tuple[torch.Tensor, torch.Tensor]] = []
    for layer in range(NORM_LAYERS):
        reach = min(halo, -(-NORM_REACH[layer] // SIZE_MULTIPLE) * SIZE_MULTIPLE)
        grid = tile_grid(h, w, tile, reach)  # same cores as the pixel pass: the same partition of the photo
        tally = tally_pass(model, padded, grid, values, CoreTally(NORM_LAYERS, only=layer), precision, progress)
        values.append(tally.moments(layer))
    return NormStats(mode="replay", values=values)
