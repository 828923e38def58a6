"""Tensor-level runs of the generator: pixels <-> tensors, size padding, device and precision.

Pure functions over their arguments: nothing is kept between calls, so any
number of threads may run them at once on a shared model.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from .model import SIZE_MULTIPLE, Generator, NormStats

MIN_SIDE = 8  # the smallest side whose internal reflect pads are all valid (3 px at full, 1 px at quarter res)


def to_tensor(rgb: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xHxW in [-1, 1] (upstream: x / 127.5 - 1)."""
    x = torch.from_numpy(rgb).to(device).permute(2, 0, 1).unsqueeze(0).to(dtype)
    x = x / 127.5 - 1.0
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else x


def to_pixels(y: torch.Tensor) -> np.ndarray:
    """1x3xHxW in [-1, 1] -> HxWx3 uint8, rounded."""
    y = ((y[0].float() + 1.0) * 127.5).clamp_(0, 255).round_()
    return y.to(torch.uint8).permute(1, 2, 0).cpu().numpy().copy()


def padding_for(h: int, w: int) -> tuple[int, int]:
    """Bottom/right padding that makes both sides valid for the network; zero when already valid.

    Sides that are multiples of 4 (and at least 8) run untouched, as upstream does: padding would
    change the whole-image layer-norm statistics and so every output pixel.
    """
    def need(side: int) -> int:
        target = max(MIN_SIDE, -(-side // SIZE_MULTIPLE) * SIZE_MULTIPLE)
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
    if device.type == "cuda" and precision == "fp16":
        return torch.autocast("cuda", dtype=torch.float16)
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
    ph, pw = padding_for(h, w)
    x = pad(to_tensor(rgb, device, dtype), ph, pw)
    y = forward(model, x, precision, stats)
    del x
    out = to_pixels(y[..., :h, :w])
    del y
    return out
