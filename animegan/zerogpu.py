"""Hugging Face ZeroGPU: a converter whose photos, webcam frames and clips each run inside ``spaces.GPU``.

On a ZeroGPU Space the GPU exists only inside functions decorated with ``spaces.GPU``, which run in a forked
process: arguments and results cross by pickling (so no callbacks cross; the deadline does, as seconds left), and
each call asks for a ``duration``. Asking too much lowers the visitor's place in the GPU queue and spends quota
checks; asking too little kills the run. So the duration is computed from the input (``spaces.GPU`` takes a
callable given the call's arguments): pixels x the seconds per megapixel measured on this Space's earlier runs,
times the frames for a clip, with a margin, bounded by :data:`MIN_DURATION_S` and ``max_duration``.

Use :func:`wrap` where the app picks its converter: off ZeroGPU it returns the converter unchanged.
"""
from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from . import flags, imaging
from .engine import Converter, FrameProgress, StylizeResult, TileProgress
from .options import RunOptions
from .styles import get_style
from .temporal import DEFAULT_MOMENTUM, FrameSmoother
from .weights.download import Progress

if TYPE_CHECKING:  # PyAV loads only with the first clip
    from .preview import PreviewSink

MIN_DURATION_S = 10           # never ask for less: acquiring the GPU and moving a model to it take seconds
MAX_DURATION_S = 120          # ZeroGPU's limit for most visitors; a Space may raise it (wrap(max_duration=...))
START_S = 8.0                 # per call: the model moved to the GPU, the first kernels compiled
MARGIN = 1.5                  # the estimate times this: a slower GPU share or a cold cache must not kill the run
ASSUMED_S_PER_MP = 1.0        # seconds per megapixel before any run was measured (deliberately generous)
MEASURE_WEIGHT = 0.3          # how much each new measurement moves the running estimate


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space (it sets ``SPACES_ZERO_GPU``)."""
    return flags.switch(os.environ.get("SPACES_ZERO_GPU"), False)


def wrap(converter: Converter, max_duration: float = MAX_DURATION_S) -> Converter:
    """``converter`` run inside ``spaces.GPU`` on a ZeroGPU Space; anywhere else, ``converter`` itself."""
    if not on_zero_gpu():
        return converter
    return ZeroGPUConverter(converter, max_duration=max_duration)


class ZeroGPUConverter:
    """Each of ``inner``'s three calls inside its own ``spaces.GPU`` function, with a duration for its input.

    Decorated once, here (ZeroGPU registers its functions when they are decorated, before the app starts).
    Callbacks stay outside (they cannot follow a forked run): tile and frame progress are not reported, and a
    clip's ``check`` is asked before and after it; the options' deadline stops the run inside.
    """

    def __init__(self, inner: Converter, max_duration: float = MAX_DURATION_S, spaces_module: Any = None) -> None:
        if spaces_module is None:
            import spaces  # type: ignore[import-not-found]  # only on Hugging Face Spaces

            spaces_module = spaces
        self.inner = inner
        self.max_duration = max_duration
        self.seconds_per_mp = ASSUMED_S_PER_MP
        self._lock = threading.Lock()
        gpu = spaces_module.GPU
        self._photo = gpu(self._photo_on_gpu, duration=self._photo_duration)
        self._frame = gpu(self._frame_on_gpu, duration=self._frame_duration)
        self._clip = gpu(self._clip_on_gpu, duration=self._clip_duration)

    # -- the Converter calls ------------------------------------------------------------------------
    def __call__(self, source: imaging.ImageSource, options: RunOptions, on_tile: TileProgress | None = None,
                 progress: Progress | None = None) -> StylizeResult:
        portable, left = options.portable()
        result, per_mp = self._photo(source, portable, left)
        self._measured(per_mp)
        return result

    def frame(self, rgb: np.ndarray, options: RunOptions, smoother: FrameSmoother | None = None) -> np.ndarray:
        portable, left = options.portable()
        out, state, per_mp = self._frame(rgb, portable, left, smoother)
        self._measured(per_mp)
        if smoother is not None and state is not None:
            smoother.adopt(state)  # the GPU process worked on a copy
        return out

    def clip(self, source: str | os.PathLike, dest: str | os.PathLike, options: RunOptions, *,
             temporal: bool = True, limits: Any = None, on_frame: FrameProgress | None = None,
             check: Callable[[], None] | None = None, momentum: float = DEFAULT_MOMENTUM,
             preview: PreviewSink | None = None) -> Any:
        """A clip inside ``spaces.GPU`` (a forked process): ``preview`` is never called, as nothing comes back from
        there before the whole clip does."""
        if check is not None:
            check()
        portable, left = options.portable()
        stats, per_mp = self._clip(str(source), str(dest), portable, left, temporal, limits, momentum)
        self._measured(per_mp)
        if on_frame is not None:
            on_frame(stats.frames, stats.frames)
        if check is not None:
            check()
        return stats

    def replicas(self) -> list[dict]:
        return self.inner.replicas()

    # -- inside spaces.GPU (a forked process: only what pickles goes in and out) ---------------------
    def _photo_on_gpu(self, source: imaging.ImageSource, options: RunOptions,
                      left: float | None) -> tuple[StylizeResult, float | None]:
        result = self.inner(source, options.rebased(left))
        pixels = result.stats.input_size[0] * result.stats.input_size[1]
        return result, None if result.stats.cached else _per_mp(result.stats.seconds, pixels)

    def _frame_on_gpu(self, rgb: np.ndarray, options: RunOptions, left: float | None,
                      smoother: FrameSmoother | None) -> tuple[np.ndarray, FrameSmoother | None, float | None]:
        start = time.perf_counter()
        out = self.inner.frame(rgb, options.rebased(left), smoother)
        return out, smoother, _per_mp(time.perf_counter() - start, rgb.shape[0] * rgb.shape[1])

    def _clip_on_gpu(self, source: str, dest: str, options: RunOptions, left: float | None, temporal: bool,
                     limits: Any, momentum: float) -> tuple[Any, float | None]:
        stats = self.inner.clip(source, dest, options.rebased(left), temporal=temporal, limits=limits,
                                momentum=momentum)
        w, h = stats.frame_size  # what the model ran on (side by side writes twice as wide)
        return stats, _per_mp(stats.model_seconds / max(stats.frames, 1), w * h)

    # -- durations: called by spaces.GPU with the call's own arguments -------------------------------
    def _photo_duration(self, source: imaging.ImageSource, options: RunOptions, left: float | None) -> int:
        return self.duration(photo_pixels(source, options), 1, left)

    def _frame_duration(self, rgb: np.ndarray, options: RunOptions, left: float | None,
                        smoother: FrameSmoother | None) -> int:
        return self.duration(rgb.shape[0] * rgb.shape[1], 1, left)

    def _clip_duration(self, source: str, dest: str, options: RunOptions, left: float | None, temporal: bool,
                       limits: Any, momentum: float) -> int:
        from . import clips  # PyAV: only for clips

        info = clips.probe(source, limits or clips.VideoLimits(max_pixels=options.max_pixels))
        w, h = clips.output_size(info, options.max_side)
        return self.duration(w * h, max(info.frames, 1), left)

    def duration(self, pixels: int, frames: int, left: float | None = None) -> int:
        """Seconds to ask for: ``frames`` of ``pixels`` at the measured speed, with margin, bounded (and never
        past the request's own time left)."""
        with self._lock:
            per_mp = self.seconds_per_mp
        wanted = START_S + MARGIN * frames * per_mp * pixels / 1e6
        limit = self.max_duration if left is None else max(MIN_DURATION_S, min(self.max_duration, left))
        return int(min(limit, max(MIN_DURATION_S, round(wanted))))

    def _measured(self, per_mp: float | None) -> None:
        if per_mp is None:
            return
        with self._lock:
            self.seconds_per_mp += MEASURE_WEIGHT * (per_mp - self.seconds_per_mp)


def _per_mp(seconds: float, pixels: int) -> float | None:
    return seconds / (pixels / 1e6) if pixels > 0 and seconds > 0 else None


def photo_pixels(source: imaging.ImageSource, options: RunOptions) -> int:
    """The pixels a photo will run at, from its header (no decoding), capped by the options' max side; an
    unreadable header counts as the pixel limit (the run itself will say what is wrong)."""
    try:
        if isinstance(source, np.ndarray):
            h, w = source.shape[:2]
        elif isinstance(source, Image.Image):
            w, h = source.size
        else:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source)) as image:
                w, h = image.size
        side = options.photo_side(get_style(options.style).max_side)
    except Exception:  # noqa: BLE001 - an unreadable input or unknown style: assume the largest (the run says why)
        return options.max_pixels
    if side:
        w, h = imaging.fit_within((w, h), side)
    return min(w * h, options.max_pixels)
