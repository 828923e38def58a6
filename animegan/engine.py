"""``stylize()`` and the :class:`Converter` seam. Stateless per call; shared models come from the registry.

Each call plans its run from the memory budget (whole image, or tiles sharing whole-image statistics),
and recovers from running out of memory: smaller tiles first, then, on CUDA, the CPU. What happened is
told in ``RunStats.notices`` (:class:`~animegan.options.Notice`, by kind).

Callers meet the engine in one way: a converter called with the source and a frozen
:class:`~animegan.options.RunOptions`. :class:`LocalConverter` runs here; ``RayBackend`` runs on Ray Serve
replicas. ``stylize()`` is the same call with keywords, for library users.
"""
from __future__ import annotations

import gc
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from . import framing as framing_mod
from . import imaging, inference, memory
from . import precision as precision_mod
from .memory import PeakRSS, RunPlan, resolve_device
from .options import Notice, RunOptions
from .registry import LoadedModel, Precision, Registry, default_registry
from .result_cache import ResultCache, result_key
from .styles import StyleSpec
from .weights.download import Progress

log = logging.getLogger(__name__)
TileProgress = Callable[[int, int], None]  # (tiles done, tiles in all)


class OutOfMemory(RuntimeError):
    """Even the smallest tiles did not fit; the message says what the user can do."""


class ConversionTimeout(RuntimeError):
    """The run passed its deadline; checked after decoding, between tiles and before encoding."""


class Deadline:
    """A point on the monotonic clock a run must not pass, checked at the engine's stopping points.

    (A whole-image pass cannot be interrupted: the memory budget bounds how long one can take.)
    """

    def __init__(self, at: float | None, limit_s: float | None = None) -> None:
        self.at = at
        self.limit_s = limit_s

    @classmethod
    def of(cls, options: RunOptions) -> Deadline:
        """The deadline a run's options carry (RunOptions.with_timeout sets it)."""
        return cls(options.deadline, options.timeout_s)

    def check(self, where: str) -> None:
        if self.at is not None and time.monotonic() > self.at:
            limit = f"the limit is {self.limit_s:g} s per conversion" if self.limit_s else "its deadline passed"
            raise ConversionTimeout(f"stopped {where}: {limit}")


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
    plan: str = ""                # how it ran: whole image, or tiles
    tiles: int = 0                # tiles in the final pass (0: whole image)
    oom_recoveries: int = 0
    notices: list[Notice] = field(default_factory=list)
    replica: str = ""             # which Ray Serve replica ran it (set by the replica); empty: this process
    cached: bool = False          # True: the result came from the result cache, the model did not run
    framing: str = "whole"        # portraits: the framing that ran (face, center, paste; face without a face: center)
    faces: list[tuple[int, int, int, int]] = field(default_factory=list)  # face boxes used (x0, y0, x1, y1, photo px)


@dataclass
class StylizeResult:
    image: Image.Image
    stats: RunStats
    png: bytes | None = None      # the encoded PNG when a result cache was used (callers need not encode again)


def default_precision(device: torch.device) -> Precision:
    """What ``precision="auto"`` runs on this device (see :mod:`animegan.precision`)."""
    return precision_mod.resolve("auto", device).precision


def _execute(loaded: LoadedModel, rgb: np.ndarray, plan: RunPlan, precision: str,
             on_tile: TileProgress | None) -> np.ndarray:
    if not plan.tiled:
        out = inference.run_whole(loaded.model, rgb, precision)
        if on_tile:
            on_tile(1, 1)
        return out
    return inference.run_tiled(loaded.model, rgb, tile=plan.tile, precision=precision, on_tile=on_tile,
                               map_ram=plan.map_ram)


def _run_with_recovery(registry: Registry, spec: StyleSpec, loaded: LoadedModel, rgb: np.ndarray, plan: RunPlan,
                       device: torch.device, precision: str, notices: list[Notice],
                       on_tile: TileProgress | None) -> tuple[np.ndarray, RunPlan, LoadedModel, int]:
    h, w = rgb.shape[:2]
    recoveries = 0
    while True:
        try:
            return _execute(loaded, rgb, plan, precision, on_tile), plan, loaded, recoveries
        except Exception as exc:  # noqa: BLE001 - only memory errors are handled; the rest re-raise
            if not memory.is_out_of_memory(exc):
                raise
            del exc  # drop the traceback: it pins the failed run's tensors
            gc.collect()
            memory.free_device_memory(device)
            recoveries += 1
            nxt = plan.smaller(h, w)
            if nxt is not None:
                notices.append(Notice("out_of_memory",
                                      f"out of memory with {plan.describe()}; retried with tiles of {nxt.tile} px"))
                log.warning("out of memory on %s; retrying with %d px tiles", device, nxt.tile)
                plan = nxt
                continue
            if device.type == "cuda":
                notices.append(Notice("cpu_fallback",
                                      "the GPU ran out of memory even with the smallest tiles; this photo ran on the CPU"))
                log.warning("out of memory on %s with the smallest tiles; falling back to the CPU", device)
                device = torch.device("cpu")
                precision = "fp32" if precision == "fp32" else default_precision(device)
                loaded = registry.get(spec, device, precision)
                plan = memory.plan_run(h, w, "cpu", precision, memory.default_budget(device))
                continue
            raise OutOfMemory(
                f"not enough memory for a {w}x{h} photo even in {memory.MIN_TILE} px tiles; "
                "lower the max side, close other programs, or raise the memory budget") from None


class Converter(Protocol):
    """Where conversions run: this process (:class:`LocalConverter`) or model replicas (``RayBackend``).

    A new backend is one class with this call, and one line where the app picks its backend.
    """

    def __call__(self, source: imaging.ImageSource, options: RunOptions, on_tile: TileProgress | None = None,
                 progress: Progress | None = None) -> StylizeResult: ...

    def replicas(self) -> list[dict]:
        """What each model server last reported (empty when conversions run in this process)."""
        ...


class LocalConverter:
    """Conversions in this process, with models from ``registry`` and results in ``cache`` (if any)."""

    def __init__(self, registry: Registry | None = None, cache: ResultCache | None = None) -> None:
        self.registry = registry or default_registry()
        self.cache = cache

    def __call__(self, source: imaging.ImageSource, options: RunOptions, on_tile: TileProgress | None = None,
                 progress: Progress | None = None) -> StylizeResult:
        return convert(source, options, registry=self.registry, on_tile=on_tile, progress=progress, cache=self.cache)

    def replicas(self) -> list[dict]:
        return []


def options_from(options: RunOptions | None, settings: dict[str, Any]) -> RunOptions:
    """A library call's one ``options``, or its keyword settings as options (``deadline``: seconds from now or a
    :class:`Deadline`); never both, so no setting is silently dropped."""
    if options is None:
        settings = dict(settings)
        deadline = settings.pop("deadline", None)
        options = RunOptions(**settings)
        if isinstance(deadline, Deadline):
            options = options.replace(deadline=deadline.at, timeout_s=deadline.limit_s)
        elif deadline is not None:
            options = options.with_timeout(deadline)
    elif settings:
        raise TypeError(f"pass either options or keyword settings, not both ({', '.join(settings)})")
    return options


def stylize(image: imaging.ImageSource, style: str | StyleSpec = "hayao", *, registry: Registry | None = None,
            options: RunOptions | None = None, progress: Progress | None = None,
            on_tile: TileProgress | None = None, cache: ResultCache | None = None, **settings: Any) -> StylizeResult:
    """Turn a photo into anime art in one style.

    Settings are :class:`~animegan.options.RunOptions` fields as keywords (``max_side``, ``keep_brightness``,
    ``device``, ``precision``, ``memory_budget``, ``tile``, ``max_pixels``), or one ``options``; ``deadline``
    may also be given as seconds from now (or a :class:`Deadline`).
    ``max_side``: None uses the style's recommended maximum, 0 keeps the native size.
    ``progress``: weight download (bytes done, total); ``on_tile``: (tiles done, total) while running.
    Raises ``InvalidImageError`` for unusable images, ``WeightsError`` when a style's weights are
    unavailable, ``OutOfMemory`` when nothing fits and ``ConversionTimeout`` past the deadline.
    ``precision``: auto (fp16 on CUDA, bf16 on a CPU with native bf16, else fp32), fp32, bf16 or fp16;
    a precision this machine only emulates still runs, with a notice that it is slower.
    ``cache``: results by decoded pixels + style + weights + settings; a hit returns the stored PNG without
    running the model (``stats.cached``), a miss stores this run's PNG.
    """
    if options is None:
        settings["style"] = style.id if isinstance(style, StyleSpec) else style
    options = options_from(options, settings)
    return convert(image, options, registry=registry, on_tile=on_tile, progress=progress, cache=cache,
                   spec=style if isinstance(style, StyleSpec) else None)


def convert(image: imaging.ImageSource, options: RunOptions, *, registry: Registry | None = None,
            on_tile: TileProgress | None = None, progress: Progress | None = None,
            cache: ResultCache | None = None, spec: StyleSpec | None = None) -> StylizeResult:
    """The conversion itself (see :func:`stylize`)."""
    deadline = Deadline.of(options)
    registry = registry or default_registry()
    spec = spec or registry.style(options.style)
    mode = framing_mod.mode_for(spec.is_portrait, options.framing)
    if mode != "whole":
        return _convert_framed(image, options.replace(framing=mode), spec, registry, on_tile, progress, cache)
    dev = resolve_device(options.device)
    decision = precision_mod.resolve(options.precision or "auto", dev)
    precision = decision.precision
    limit = spec.max_side if options.max_side is None else options.max_side
    if limit < 0:
        raise ValueError(f"max side must be 0 (native size) or a positive number of pixels, not {limit}")
    photo = imaging.load_photo(image, max_side=limit or None, max_pixels=options.max_pixels)
    deadline.check("after decoding the photo")
    loaded = registry.get(spec, dev, precision, progress=progress)
    deadline.check("after loading the style")

    notices: list[Notice] = [Notice("precision", decision.notice)] if decision.notice else []
    if photo.downscaled:
        notices.append(Notice("downscaled", f"downscaled from {photo.original_size[0]}x{photo.original_size[1]} to "
                              f"{photo.size[0]}x{photo.size[1]} (max side {limit}); set max side 0 for native size"))
    h, w = photo.rgb.shape[:2]
    budget = memory.default_budget(dev, memory.parse_bytes(options.memory_budget))
    plan = memory.plan_run(h, w, dev.type, precision, budget, tile=options.tile)
    keep_brightness = options.keep_brightness
    key = _cache_key(photo, loaded, plan, dev, keep_brightness) if cache is not None else ""
    if cache is not None and (hit := _from_cache(cache, key, photo, loaded, plan, notices)) is not None:
        return hit
    start = time.perf_counter()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with memory.run_scope(dev), PeakRSS() as rss:
        rgb, plan, loaded, recoveries = _run_with_recovery(registry, spec, loaded, photo.rgb, plan, dev, precision,
                                                           notices, _checking(on_tile, deadline))
    seconds = time.perf_counter() - start
    ran_on = next(loaded.model.parameters()).device
    if ran_on.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(ran_on), "CUDA max_memory_allocated"
    else:
        peak, kind = rss.peak, "process peak RSS"
    if plan.tiled:
        notices.append(Notice("tiled", f"ran in {plan.describe()}"))
    if keep_brightness:
        rgb = imaging.keep_brightness(rgb, photo.rgb)
    out = imaging.to_image(rgb, photo.alpha)
    n_tiles = plan.tile_count(h, w)
    stats = RunStats(
        style=spec.id, device=str(ran_on), precision=loaded.key.precision, original_size=photo.original_size,
        input_size=photo.size, output_size=out.size, downscaled=photo.downscaled, seconds=seconds,
        peak_memory=peak, peak_memory_kind=kind, weights_source=loaded.weights_source, plan=plan.describe(),
        tiles=n_tiles, oom_recoveries=recoveries, notices=notices,
    )
    png = None
    deadline.check("before encoding the result")
    if cache is not None:
        png = imaging.encode_png(out)
        if not recoveries:  # a run that recovered from running out of memory is not what the key describes
            cache.put(key, png)
    return StylizeResult(out, stats, png)


def _checking(on_tile: TileProgress | None, deadline: Deadline) -> TileProgress | None:
    """The caller's tile progress, then the deadline: a run stops between tiles, wasting at most one."""
    if deadline.at is None:
        return on_tile

    def report(done: int, total: int) -> None:
        if on_tile is not None:
            on_tile(done, total)
        if done < total:
            deadline.check(f"after {done} of {total} tiles")
    return report


def _cache_key(photo: imaging.Photo, loaded: LoadedModel, plan: RunPlan, dev: torch.device, keep: bool) -> str:
    """Everything that changes the output pixels: the photo as decoded, weights, device type, precision, plan."""
    run = ["layers", plan.tile] if plan.tiled else ["whole"]
    return result_key(photo.rgb, photo.alpha, style=loaded.spec.id, weights_fingerprint=loaded.weights_fingerprint,
                      settings={"keep_brightness": keep, "device": dev.type, "precision": loaded.key.precision,
                                "run": run})


def _convert_framed(image: imaging.ImageSource, options: RunOptions, spec: StyleSpec, registry: Registry,
                    on_tile: TileProgress | None, progress: Progress | None,
                    cache: ResultCache | None) -> StylizeResult:
    """A portrait: frame (:mod:`animegan.framing`), then each square, and a paste's background, through
    :func:`convert` as whole photos of their own (so tiling, memory recovery and the deadline apply unchanged)."""
    start = time.perf_counter()
    deadline = Deadline.of(options)
    paste = options.framing == "paste"
    limit = spec.max_side if options.max_side is None else options.max_side
    if limit < 0:
        raise ValueError(f"max side must be 0 (native size) or a positive number of pixels, not {limit}")
    # face / center crop from the photo at full resolution (the square is resized to the training size anyway)
    photo = imaging.load_photo(image, max_side=(limit or None) if paste else None, max_pixels=options.max_pixels)
    deadline.check("after decoding the photo")
    background = _background(registry, options.background) if paste else None
    inner = options.replace(framing="whole", max_side=0)  # each part at the size it is given
    dev = resolve_device(options.device)
    loaded = registry.get(spec, dev, precision_mod.resolve(options.precision or "auto", dev).precision, progress=progress)
    key = ""
    if cache is not None:
        key = _framed_key(registry, loaded, photo, options, background)
        hit = cache.get(key)
        if hit is not None:
            image_out = Image.open(io.BytesIO(hit))
            stats = RunStats(style=spec.id, device=loaded.key.device, precision=loaded.key.precision,
                             original_size=photo.original_size, input_size=photo.size, output_size=image_out.size,
                             downscaled=photo.downscaled, seconds=time.perf_counter() - start, peak_memory=0,
                             peak_memory_kind="none (result cache)", weights_source=loaded.weights_source,
                             plan="result cache hit", cached=True, framing=options.framing)
            return StylizeResult(image_out, stats, hit)
    framed = framing_mod.frame(photo.rgb, options.framing)
    pixels = photo.rgb if photo.alpha is None else np.dstack([photo.rgb, photo.alpha])
    size = spec.train_size or max(photo.size)
    parts: list[RunStats] = []
    notices: list[Notice] = [Notice("framing", framed.notice)]

    def run(pixels_in: np.ndarray, opts: RunOptions, part_spec: StyleSpec | None) -> np.ndarray:
        result = convert(pixels_in, opts, registry=registry, on_tile=on_tile, progress=progress, spec=part_spec)
        parts.append(result.stats)
        notices.extend(n for n in result.stats.notices if n not in notices)
        return np.asarray(result.image)

    if not paste:
        out = Image.fromarray(run(framing_mod.crop_square(pixels, framed.squares[0], size, framed.tilts[0]), inner, spec))
    else:
        if background is None:
            canvas = photo.rgb.copy()
        else:
            canvas = run(photo.rgb, inner.replace(style=background.id), background)[..., :3].copy()
        for square, tilt in zip(framed.squares, framed.tilts):
            deadline.check("between faces")
            styled = run(framing_mod.crop_square(photo.rgb, square, size, tilt), inner, spec)
            framing_mod.paste(canvas, framing_mod.unturn(styled, tilt, square.width), square)
        if photo.downscaled:
            notices.insert(0, Notice("downscaled", f"downscaled from {photo.original_size[0]}x{photo.original_size[1]} "
                                     f"to {photo.size[0]}x{photo.size[1]} (max side {limit}); set max side 0 for native size"))
        out = imaging.to_image(canvas, photo.alpha)
    first = parts[0] if parts else None  # paste with no face and the photo kept: nothing ran
    stats = RunStats(
        style=spec.id, device=first.device if first else loaded.key.device,
        precision=first.precision if first else loaded.key.precision, original_size=photo.original_size,
        input_size=photo.size, output_size=out.size, downscaled=paste and photo.downscaled,
        seconds=time.perf_counter() - start, peak_memory=max((p.peak_memory for p in parts), default=0),
        peak_memory_kind=first.peak_memory_kind if first else "none (no face to stylise)",
        weights_source=loaded.weights_source,
        plan="; ".join(dict.fromkeys(f"{p.style}: {p.plan}" for p in parts)) or "nothing to run",
        tiles=sum(p.tiles for p in parts), oom_recoveries=sum(p.oom_recoveries for p in parts), notices=notices,
        framing=framed.mode, faces=[f.box.as_tuple() for f in framed.faces],
    )
    deadline.check("before encoding the result")
    png = None
    if cache is not None:
        png = imaging.encode_png(out)
        if not stats.oom_recoveries:
            cache.put(key, png)
    return StylizeResult(out, stats, png)


def _background(registry: Registry, background: str | None) -> StyleSpec | None:
    """paste's background: None to keep the photo, else a scene style (a portrait style is not one)."""
    wanted = (background or framing_mod.KEEP).strip().lower()
    if wanted == framing_mod.KEEP:
        return None
    scenes = [s for s in registry.styles() if not s.is_portrait]
    spec = next((s for s in scenes if wanted in (s.id, s.name.lower())), None)
    if spec is None:
        raise ValueError(f"unknown background {background!r}; choose {framing_mod.KEEP} or a scene style: "
                         f"{', '.join(s.id for s in scenes)}")
    return spec


def _framed_key(registry: Registry, loaded: LoadedModel, photo: imaging.Photo, options: RunOptions,
                background: StyleSpec | None) -> str:
    """A framed result's key: the photo as decoded, the portrait (and background) weights, the detector, and the
    settings the parts ran with."""
    dev, precision = torch.device(loaded.key.device), loaded.key.precision
    settings = {"keep_brightness": options.keep_brightness, "device": dev.type, "precision": precision,
                "tile": options.tile, "memory_budget": options.memory_budget,
                "detector": framing_mod.detector_name() if options.framing in ("face", "paste") else None}
    bg = "keep"
    if background is not None:
        bg = f"{background.id}:{registry.get(background, dev, precision).weights_fingerprint}"
    return result_key(photo.rgb, photo.alpha, style=loaded.spec.id, weights_fingerprint=loaded.weights_fingerprint,
                      settings=settings, framing=options.framing or "face", background=bg)


def _from_cache(cache: ResultCache, key: str, photo: imaging.Photo, loaded: LoadedModel, plan: RunPlan,
                notices: list[str]) -> StylizeResult | None:
    start = time.perf_counter()
    png = cache.get(key)
    if png is None:
        return None
    image = Image.open(io.BytesIO(png))  # decoded lazily: callers that only need the PNG never pay for it
    stats = RunStats(
        style=loaded.spec.id, device=loaded.key.device, precision=loaded.key.precision,
        original_size=photo.original_size, input_size=photo.size, output_size=image.size,
        downscaled=photo.downscaled, seconds=time.perf_counter() - start, peak_memory=0,
        peak_memory_kind="none (result cache)", weights_source=loaded.weights_source,
        plan="result cache hit", notices=notices, cached=True,
    )
    return StylizeResult(image, stats, png)
