"""Tensor-level runs of the generator: pixels <-> tensors, size padding, device and precision.

Pure functions over their arguments: nothing is kept between calls, so any
number of threads may run them at once on a shared model.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import layerwise
from .model import SIZE_MULTIPLE, Generator, NormStats

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


def pad_pixels(rgb: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """:func:`pad` on HxWx3 uint8 pixels, without a float copy of the photo."""
    if not ph and not pw:
        return rgb
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="reflect" if ph < h and pw < w else "edge")


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
# Every layer norm of AnimeGANv2 normalises over the whole feature map, so tiles run alone through the whole
# network would each get their own statistics: different tones per tile and visible seams. A photo too large
# for one pass runs layer by layer instead (animegan.layerwise): every norm gets the whole photo's exact
# statistics, for one pass of compute.

def run_tiled(model: Generator, rgb: np.ndarray, *, tile: int, precision: str = "fp32",
              on_tile: Callable[[int, int], None] | None = None, stats: NormStats | None = None,
              map_ram: int | None = None) -> np.ndarray:
    """Stylise a photo layer by layer in tiles of about ``tile`` x ``tile`` px: the whole run's result.

    ``map_ram``: bytes of intermediate feature maps kept in RAM, the rest in temporary files that are removed
    after the run (None: all in RAM). ``stats``: as :func:`run_whole` (``mode="smooth"``: a video's running
    statistics, blended layer by layer). ``on_tile(done, total)`` counts tiles over every layer; an exception
    it raises stops the run.
    """
    h0, w0 = rgb.shape[:2]
    ph, pw = padding_for(h0, w0, model.spec.size_multiple)
    padded = pad_pixels(rgb, ph, pw)
    h, w = padded.shape[:2]
    area = max(tile, MIN_SIDE) ** 2
    params = next(model.parameters())
    progress = _Progress(on_tile, layerwise.step_count(model, h, w, area))

    def to_input(pixels: np.ndarray) -> torch.Tensor:
        return to_tensor(pixels, params.device, params.dtype)

    with torch.inference_mode(), autocast_for(params.device, precision):
        out = layerwise.run_layerwise(model, padded, to_input, area=area, map_ram=map_ram, stats=stats,
                                      step_done=progress.step)
    return out[:h0, :w0] if (ph or pw) else out


def tile_count(model: Generator, height: int, width: int, tile: int) -> int:
    """Tiles a layer-by-layer run over a photo of this size visits, over all layers (its progress total)."""
    ph, pw = padding_for(height, width, model.spec.size_multiple)
    return layerwise.step_count(model, height + ph, width + pw, max(tile, MIN_SIDE) ** 2)


class _Progress:
    def __init__(self, on_tile: Callable[[int, int], None] | None, total: int) -> None:
        self.on_tile, self.total, self.done = on_tile, total, 0

    def step(self) -> None:
        self.done += 1
        if self.on_tile:
            self.on_tile(min(self.done, self.total), self.total)
