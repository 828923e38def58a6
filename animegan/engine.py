"""``stylize()``: the one public entry point. Stateless per call; shared models come from the registry."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from . import imaging, inference
from .memory import PeakRSS, resolve_device
from .registry import Precision, Registry, default_registry
from .styles import StyleSpec
from .weights.download import Progress


@dataclass
class RunStats:
    style: str
    device: str
    precision: str
    original_size: tuple[int, int]
    input_size: tuple[int, int]   # what the model saw (after max-side downscaling)
    output_size: tuple[int, int]
    downscaled: bool
    seconds: float
    peak_memory: int              # bytes: CUDA max_memory_allocated, or process peak RSS on CPU
    peak_memory_kind: str
    weights_source: str
    notices: list[str] = field(default_factory=list)


@dataclass
class StylizeResult:
    image: Image.Image
    stats: RunStats


def default_precision(device: torch.device) -> Precision:
    return "fp16" if device.type == "cuda" else "fp32"


def stylize(image: imaging.ImageSource, style: str | StyleSpec = "hayao", *, registry: Registry | None = None,
            device: str | torch.device = "auto", precision: Precision | None = None,
            max_side: int | None = None, keep_brightness: bool = False,
            max_pixels: int = imaging.DEFAULT_MAX_PIXELS, progress: Progress | None = None) -> StylizeResult:
    """Turn a photo into anime art in one style.

    ``max_side``: None uses the style's recommended maximum, 0 keeps the native size.
    ``keep_brightness``: upstream's optional post-step (off: output is exactly the model's).
    Raises ``InvalidImageError`` for unusable images and ``WeightsError`` when a style's weights are unavailable.
    """
    registry = registry or default_registry()
    spec = registry.style(style)
    dev = resolve_device(device)
    precision = precision or default_precision(dev)
    limit = spec.max_side if max_side is None else max_side
    photo = imaging.load_photo(image, max_side=limit or None, max_pixels=max_pixels)
    loaded = registry.get(spec, dev, precision, progress=progress)

    notices = []
    if photo.downscaled:
        notices.append(f"downscaled from {photo.original_size[0]}x{photo.original_size[1]} to "
                       f"{photo.size[0]}x{photo.size[1]} (max side {limit}); set max side 0 for native size")
    start = time.perf_counter()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with PeakRSS() as rss:
        try:
            rgb = inference.run_whole(loaded.model, photo.rgb, precision)
        finally:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    if dev.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(dev), "CUDA max_memory_allocated"
        torch.cuda.empty_cache()
    else:
        peak, kind = rss.peak, "process peak RSS"
    if keep_brightness:
        rgb = imaging.keep_brightness(rgb, photo.rgb)
    out = imaging.to_image(rgb, photo.alpha)
    stats = RunStats(
        style=spec.id, device=str(dev), precision=precision, original_size=photo.original_size,
        input_size=photo.size, output_size=out.size, downscaled=photo.downscaled, seconds=seconds,
        peak_memory=peak, peak_memory_kind=kind, weights_source=loaded.weights_source, notices=notices,
    )
    return StylizeResult(out, stats)
