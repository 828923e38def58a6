"""``stylize()`` and the :class:`Converter` seam. Stateless per call; shared models come from the registry.

Each call plans its run from the memory budget (whole image, or tiles sharing whole-image statistics),
and recovers from running out of memory: smaller tiles first, then, on CUDA, the CPU. What happened is
told in ``RunStats.notices`` (:class:`~animegan.options.Notice`, by kind).

Callers meet the engine in one way: a :class:`Converter` given the source and a frozen
:class:`~animegan.options.RunOptions`, for a photo (the call), one frame of a stream (``frame``: a webcam's, with
its :class:`~animegan.temporal.FrameSmoother`) or a whole clip (``clip``: file in, MP4 out). :class:`LocalConverter`
runs all three here; ``RayBackend`` runs them on Ray Serve replicas, ``ZeroGPUConverter`` inside ``spaces.GPU``.
A clip's frames and a webcam's take the photo's route: the same plan and the same out-of-memory recovery
(:class:`FrameRun`). ``stylize()``, ``video.stylize_video()`` and ``video.stylize_frame()`` are the same calls with
keywords, for library users.
"""
from __future__ import annotations

import gc
import io
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from PIL import Image

from . import framing as framing_mod
from . import imaging, inference, memory
from . import precision as precision_mod
from .memory import PeakRSS, RunPlan, resolve_device
from .options import Notice, RunOptions, downscaled_notice, side_by_side_notice
from .precision import default_precision
from .registry import LoadedModel, Registry, WeightsArg, default_registry, registry_for
from .result_cache import ResultCache, result_key
from .styles import StyleSpec
from .temporal import DEFAULT_MOMENTUM, FrameSmoother
from .weights.download import Progress

if TYPE_CHECKING:  # PyAV loads only when a clip is converted (LocalConverter.clip imports animegan.clips then)
    from .clips import VideoLimits, VideoStats
    from .preview import PreviewSink

log = logging.getLogger(__name__)
TileProgress = Callable[[int, int], None]  # (tiles done, tiles in all)
FrameProgress = Callable[[int, int], None]  # (frames done, frames expected)
FRAME_RUNS = 16  # frame plans a LocalConverter keeps (style x size x settings of its recent streams)


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
    peak_memory: int              # bytes: CUDA max_memory_allocated, or on CPU the RSS the run added at its peak
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


def device_and_precision(options: RunOptions) -> tuple[torch.device, precision_mod.Decision]:
    """Where and in which number format a run goes (the one rule for photos, framed photos and frames): the
    device asked for (auto: CUDA when usable) and the precision for it, with its notice."""
    dev = resolve_device(options.device)
    return dev, precision_mod.resolve(options.precision or "auto", dev)


def _execute(loaded: LoadedModel, rgb: np.ndarray, plan: RunPlan, precision: str,
             on_tile: TileProgress | None, smoother: FrameSmoother | None = None) -> np.ndarray:
    if smoother is not None:
        smoother.place(next(loaded.model.parameters()).device)
    # Whole or in tiles, a frame smooths into the same running statistics: tiles run layer by layer over the whole
    # frame, so each norm sees the whole frame's moments exactly as a whole run does.
    stats = smoother.norm_stats(rgb, (loaded.spec.id,)) if smoother else None
    if not plan.tiled:
        out = inference.run_whole(loaded.model, rgb, precision, stats)
        if on_tile:
            on_tile(1, 1)
        return out
    return inference.run_tiled(loaded.model, rgb, tile=plan.tile, precision=precision, on_tile=on_tile,
                               stats=stats, map_ram=plan.map_ram)


def _run_with_recovery(registry: Registry, spec: StyleSpec, loaded: LoadedModel, rgb: np.ndarray, plan: RunPlan,
                       device: torch.device, precision: str, notices: list[Notice],
                       on_tile: TileProgress | None, smoother: FrameSmoother | None = None,
                       what: str = "this photo") -> tuple[np.ndarray, RunPlan, LoadedModel, int]:
    """Run ``rgb`` under ``plan``; out of memory: smaller tiles, then (on CUDA) the CPU. Photos and frames alike.

    Returns the pixels and what finally ran (plan, model, recoveries), which a stream keeps for its next frames.
    ``what`` names the input in the notices ("this photo", "frames from here on").
    """
    h, w = rgb.shape[:2]
    recoveries = 0
    while True:
        try:
            return _execute(loaded, rgb, plan, precision, on_tile, smoother), plan, loaded, recoveries
        except Exception as exc:
            if not memory.is_out_of_memory(exc):
                raise
            del exc  # drop the traceback: it pins the failed run's tensors
            gc.collect()
            memory.free_device_memory(device)
            recoveries += 1
            nxt = plan.smaller(h, w)
            if nxt is not None:
                notices.append(Notice("out_of_memory", f"out of memory with {plan.describe()}; "
                                      f"{what} ran in tiles of {nxt.tile} px"))
                log.warning("out of memory on %s; retrying with %d px tiles", device, nxt.tile)
                plan = nxt
                continue
            if device.type == "cuda":
                notices.append(Notice("cpu_fallback",
                                      f"the GPU ran out of memory even with the smallest tiles; {what} ran on the CPU"))
                log.warning("out of memory on %s with the smallest tiles; falling back to the CPU", device)
                device = torch.device("cpu")
                precision = "fp32" if precision == "fp32" else default_precision(device)
                loaded = registry.get(spec, device, precision)
                plan = memory.plan_run(h, w, "cpu", precision, memory.default_budget(device))
                continue
            raise OutOfMemory(
                f"not enough memory for {w}x{h} pixels even in {memory.MIN_TILE} px tiles; "
                "lower the max side, close other programs, or raise the memory budget") from None


class FrameRun:
    """Frames of one size through the photo's route: device, precision and plan decided once (as for a photo), the
    same out-of-memory recovery (smaller tiles, then the CPU), and what recovery chose sticks for the next frames.

    Frames are used as given (no max side, no alpha): the caller sizes them. One run serves a stream of frames;
    calls are serialised (a model is shared, a plan is not).
    """

    def __init__(self, registry: Registry, spec: StyleSpec, options: RunOptions, width: int, height: int,
                 progress: Progress | None = None) -> None:
        self.registry, self.spec = registry, spec
        self.device, decision = device_and_precision(options)
        self.precision: str = decision.precision
        self.loaded = registry.get(spec, self.device, self.precision, progress=progress)
        budget = memory.default_budget(self.device, memory.parse_bytes(options.memory_budget))
        self.plan = memory.plan_run(height, width, self.device.type, self.precision, budget, tile=options.tile)
        self.notices: list[Notice] = [Notice("precision", decision.notice)] if decision.notice else []
        if self.plan.tiled:
            self.notices.append(Notice("tiled", f"each frame ran in {self.plan.describe()}"))
        self._lock = threading.Lock()

    def __call__(self, rgb: np.ndarray, smoother: FrameSmoother | None, options: RunOptions) -> np.ndarray:
        """One HxWx3 uint8 RGB frame -> the same size, styled, with the options' colour settings applied."""
        frame = np.ascontiguousarray(rgb)
        with self._lock, memory.run_scope(self.device):
            out, self.plan, self.loaded, _ = _run_with_recovery(
                self.registry, self.spec, self.loaded, frame, self.plan, self.device, self.precision, self.notices,
                None, smoother, what="frames from here on")
            ran_on = next(self.loaded.model.parameters()).device
            if ran_on != self.device:  # the CPU fallback: later frames start there
                self.device, self.precision = ran_on, self.loaded.key.precision
        return imaging.match_photo(out, frame, brightness=options.keep_brightness, color=options.keep_color)

    def describe(self) -> dict[str, str]:
        """The model fields of a clip's stats: where and how the frames ran."""
        return {"style": self.spec.id, "device": str(self.device), "precision": self.precision,
                "plan": self.plan.describe()}


def check_frame(frame: np.ndarray, options: RunOptions) -> None:
    """A stream frame must be HxWx3 uint8 RGB within the pixel limit (``InvalidImageError`` says what is wrong)."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        what = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise imaging.InvalidImageError(f"a frame must be HxWx3 uint8 RGB, not {what}")
    h, w = frame.shape[:2]
    if h * w > options.max_pixels:
        raise imaging.InvalidImageError(f"the frame is {w}x{h}; the limit is {options.max_pixels / 1e6:.0f} MP")


class Converter(Protocol):
    """Where conversions run: this process (:class:`LocalConverter`), Ray Serve replicas (``RayBackend``), or
    ZeroGPU's ``spaces.GPU`` (``ZeroGPUConverter``). Photos, stream frames and clips go through the same backend.

    A new backend is one class with these calls, and one line where the app picks its backend.
    """

    def __call__(self, source: imaging.ImageSource, options: RunOptions, on_tile: TileProgress | None = None,
                 progress: Progress | None = None) -> StylizeResult:
        """A photo."""
        ...

    def frame(self, rgb: np.ndarray, options: RunOptions, smoother: FrameSmoother | None = None) -> np.ndarray:
        """One frame of a stream (a webcam's): HxWx3 uint8 RGB in, the same size out. ``smoother``: the stream's
        temporal state (updated in place), None for plain per-frame runs."""
        ...

    def clip(self, source: str | os.PathLike, dest: str | os.PathLike, options: RunOptions, *,
             temporal: bool = True, limits: VideoLimits | None = None, on_frame: FrameProgress | None = None,
             check: Callable[[], None] | None = None, momentum: float = DEFAULT_MOMENTUM,
             preview: PreviewSink | None = None) -> VideoStats:
        """A video file -> an MP4 at ``dest`` with its sound (see :func:`animegan.video.stylize_video`).

        ``preview(rgb, seconds)``: each finished frame as it is written, to watch the clip as it converts (it must
        not block). A backend whose frames are finished elsewhere previews only through a
        :class:`~animegan.preview.EncodedSink` (a SegmentWriter: Ray Serve sends it the segments encoded there) or
        not at all (ZeroGPU); it never calls a plain callable."""
        ...

    def replicas(self) -> list[dict]:
        """What each model server last reported (empty when conversions run in this process)."""
        ...


class LocalConverter:
    """Conversions in this process, with models from ``registry`` and results in ``cache`` (if any).

    It keeps the frame plans of its last :data:`FRAME_RUNS` streams (style, size and settings), so a webcam's
    frames are planned once and an out-of-memory recovery sticks for the frames after it.
    """

    def __init__(self, registry: Registry | None = None, cache: ResultCache | None = None) -> None:
        self.registry = registry or default_registry()
        self.cache = cache
        self._runs: OrderedDict[tuple, FrameRun] = OrderedDict()
        self._runs_lock = threading.Lock()

    def __call__(self, source: imaging.ImageSource, options: RunOptions, on_tile: TileProgress | None = None,
                 progress: Progress | None = None) -> StylizeResult:
        return convert(source, options, registry=self.registry, on_tile=on_tile, progress=progress, cache=self.cache)

    def frame(self, rgb: np.ndarray, options: RunOptions, smoother: FrameSmoother | None = None) -> np.ndarray:
        check_frame(rgb, options)
        h, w = rgb.shape[:2]
        run = self._frame_run(options, w, h)
        Deadline.of(options).check("before the frame")
        return run(rgb, smoother, options)

    def _frame_run(self, options: RunOptions, width: int, height: int) -> FrameRun:
        spec = self.registry.style(options.style)
        key = (spec.id, options.device, options.precision, options.memory_budget, options.tile, width, height)
        with self._runs_lock:
            run = self._runs.get(key)
            if run is not None and run.spec is spec:  # (a reloaded style file makes a new spec: plan again)
                self._runs.move_to_end(key)
                return run
        run = FrameRun(self.registry, spec, options, width, height)
        with self._runs_lock:
            self._runs[key] = run
            while len(self._runs) > FRAME_RUNS:
                self._runs.popitem(last=False)
        return run

    def clip(self, source: str | os.PathLike, dest: str | os.PathLike, options: RunOptions, *,
             temporal: bool = True, limits: VideoLimits | None = None, on_frame: FrameProgress | None = None,
             check: Callable[[], None] | None = None, momentum: float = DEFAULT_MOMENTUM,
             preview: PreviewSink | None = None) -> VideoStats:
        from . import clips  # PyAV: loaded by the first clip, not by photos

        deadline = Deadline.of(options)
        spec = self.registry.style(options.style)
        runs: list[FrameRun] = []

        def start(width: int, height: int) -> Callable[[np.ndarray, FrameSmoother | None], np.ndarray]:
            runs.append(FrameRun(self.registry, spec, options, width, height))  # a clip's own plan (its OOM sticks)
            deadline.check("after loading the style")
            return lambda rgb, smoother: runs[0](rgb, smoother, options)

        def between(where: str) -> None:
            if check is not None:
                check()
            deadline.check(where)

        stats = clips.run_clip(source, dest, options, start, spec=spec, check=between, temporal=temporal,
                               limits=limits, on_frame=on_frame, momentum=momentum, preview=preview)
        run = runs[0]
        first = [n for n in run.notices if n.kind == "precision"]  # as a photo's: the precision notice leads
        stats.notices = first + stats.notices + [n for n in run.notices if n.kind != "precision"]
        for name, value in run.describe().items():
            setattr(stats, name, value)
        return stats

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
            on_tile: TileProgress | None = None, cache: ResultCache | None = None, weights: WeightsArg = None,
            **settings: Any) -> StylizeResult:
    """Turn a photo into anime art in one style.

    Settings are :class:`~animegan.options.RunOptions` fields as keywords (``max_side``, ``keep_brightness``,
    ``keep_color`` (0 to 1: how far the result takes the photo's own colours), ``device``, ``precision``,
    ``memory_budget``, ``tile``, ``max_pixels``, ``side_by_side``: the photo as the model saw it left of the
    result, in one image twice as wide), or one ``options``; ``deadline`` may also be given as seconds from now (or
    a :class:`Deadline`).
    ``max_side``: None uses the style's recommended maximum, 0 keeps the native size.
    ``progress``: weight download (bytes done, total); ``on_tile``: (tiles done, total) while running.
    Raises ``InvalidImageError`` for unusable images, ``WeightsError`` when a style's weights are
    unavailable, ``OutOfMemory`` when nothing fits and ``ConversionTimeout`` past the deadline.
    ``precision``: auto (fp16 on CUDA, bf16 on a CPU with native bf16, else fp32), fp32, bf16 or fp16;
    a precision this machine only emulates still runs, with a notice that it is slower.
    ``cache``: results by decoded pixels + style + weights + settings; a hit returns the stored PNG without
    running the model (``stats.cached``), a miss stores this run's PNG.
    ``weights``: a weights file for this style (a ``.pt`` or an upstream checkpoint's ``.index``), or a mapping of
    style id to file; not with ``registry`` (give a registry its files as ``Registry(weights={...})``).
    """
    if options is None:
        settings["style"] = style.id if isinstance(style, StyleSpec) else style
    options = options_from(options, settings)
    registry = registry_for(weights, options.style, registry)
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
    dev, decision = device_and_precision(options)
    precision = decision.precision
    limit = options.photo_side(spec.max_side)
    photo = imaging.load_photo(image, max_side=limit or None, max_pixels=options.max_pixels)
    deadline.check("after decoding the photo")
    loaded = registry.get(spec, dev, precision, progress=progress)
    deadline.check("after loading the style")

    notices: list[Notice] = [Notice("precision", decision.notice)] if decision.notice else []
    if photo.downscaled:
        notices.append(downscaled_notice(photo.original_size, photo.size, limit))
    if options.side_by_side:
        notices.append(side_by_side_notice(photo.size))
    h, w = photo.rgb.shape[:2]
    budget = memory.default_budget(dev, memory.parse_bytes(options.memory_budget))
    plan = memory.plan_run(h, w, dev.type, precision, budget, tile=options.tile)
    key = _cache_key(photo, loaded, plan, dev, options) if cache is not None else ""
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
        peak, kind = rss.added, f"RAM the run added, process peak {memory.fmt_bytes(rss.peak)}"
    if plan.tiled:
        notices.append(Notice("tiled", f"ran in {plan.describe()}"))
    rgb = imaging.match_photo(rgb, photo.rgb, brightness=options.keep_brightness, color=options.keep_color)
    out = imaging.to_image(rgb, photo.alpha)
    if options.side_by_side:
        out = Image.fromarray(imaging.side_by_side(photo.pixels, np.asarray(out)))
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


def _cache_key(photo: imaging.Photo, loaded: LoadedModel, plan: RunPlan, dev: torch.device,
               options: RunOptions) -> str:
    """Everything that changes the output pixels: the photo as decoded, weights, device type, precision, plan,
    the post-steps."""
    run = ["layers", plan.tile] if plan.tiled else ["whole"]
    return result_key(photo.rgb, photo.alpha, style=loaded.spec.id, weights_fingerprint=loaded.weights_fingerprint,
                      settings={"keep_brightness": options.keep_brightness, "device": dev.type,
                                "precision": loaded.key.precision, "run": run, **_output_settings(options)})


def _output_settings(options: RunOptions) -> dict[str, object]:
    """Keep colour's and side by side's parts of a cache key: each absent when off, so the keys of results without
    them are unchanged (and a plain result is never answered for a side-by-side request, nor the other way)."""
    settings: dict[str, object] = {}
    if options.keep_color:
        settings["keep_color"] = [float(options.keep_color), imaging.KEEP_COLOR_VERSION]
    if options.side_by_side:
        settings["side_by_side"] = True
    return settings


def _convert_framed(image: imaging.ImageSource, options: RunOptions, spec: StyleSpec, registry: Registry,
                    on_tile: TileProgress | None, progress: Progress | None,
                    cache: ResultCache | None) -> StylizeResult:
    """A portrait: frame (:mod:`animegan.framing`), then each square, and a paste's background, through
    :func:`convert` as whole photos of their own (so tiling, memory recovery and the deadline apply unchanged)."""
    start = time.perf_counter()
    deadline = Deadline.of(options)
    paste = options.framing == "paste"
    limit = options.photo_side(spec.max_side)
    # face / center crop from the photo at full resolution (the square is resized to the training size anyway)
    photo = imaging.load_photo(image, max_side=(limit or None) if paste else None, max_pixels=options.max_pixels)
    deadline.check("after decoding the photo")
    background = _background(registry, options.background) if paste else None
    inner = options.replace(framing="whole", max_side=0, side_by_side=False)  # each part at the size it is given
    dev, decision = device_and_precision(options)
    loaded = registry.get(spec, dev, decision.precision, progress=progress)
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
    pixels = photo.pixels
    size = spec.train_size or max(photo.size)
    parts: list[RunStats] = []
    notices: list[Notice] = [Notice("framing", framed.notice)]

    def run(pixels_in: np.ndarray, opts: RunOptions, part_spec: StyleSpec | None) -> np.ndarray:
        result = convert(pixels_in, opts, registry=registry, on_tile=on_tile, progress=progress, spec=part_spec)
        parts.append(result.stats)
        notices.extend(n for n in result.stats.notices if n not in notices)
        return np.asarray(result.image)

    if not paste:
        before = framing_mod.crop_square(pixels, framed.squares[0], size, framed.tilts[0])
        out = Image.fromarray(run(before, inner, spec))
    else:
        before = pixels
        if background is None:
            canvas = photo.rgb.copy()
        else:
            canvas = run(photo.rgb, inner.replace(style=background.id), background)[..., :3].copy()
        for square, tilt in zip(framed.squares, framed.tilts):
            deadline.check("between faces")
            styled = run(framing_mod.crop_square(photo.rgb, square, size, tilt), inner, spec)
            framing_mod.paste(canvas, framing_mod.unturn(styled, tilt, square.width), square)
        if photo.downscaled:
            notices.insert(0, downscaled_notice(photo.original_size, photo.size, limit))
        out = imaging.to_image(canvas, photo.alpha)
    if options.side_by_side:  # the square the style saw (face, center), or the whole photo (paste)
        notices.append(side_by_side_notice(out.size))
        out = Image.fromarray(imaging.side_by_side(before, np.asarray(out)))
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
                "detector": framing_mod.detector_name() if options.framing in ("face", "paste") else None,
                **_output_settings(options)}
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
