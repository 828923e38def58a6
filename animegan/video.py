"""Videos and webcam frames, for library users: :func:`stylize_video` and :func:`stylize_frame`.

Both are the local converter's calls with keywords (:meth:`animegan.engine.LocalConverter.clip` and
``.frame``): a clip's frames and a webcam's take the photo's route through the engine. The file side (probe,
decode, encode, sound, limits) is :mod:`animegan.clips`; the temporal state is :mod:`animegan.temporal`. Their
public names are here too, so ``animegan.video`` stays the one module video callers import.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .clips import (
    AUDIO_MARGIN_S,
    CONTAINERS,
    CRF,
    MAX_AUDIO_STREAMS,
    MAX_STREAMS,
    QUEUE_ITEMS,
    SNIFF_BYTES,
    VIDEO_DEFAULT_MAX_SIDE,
    VIDEO_FRAMINGS,
    VIDEO_SUFFIXES,
    VideoError,
    VideoInfo,
    VideoLimits,
    VideoStats,
    container_format,
    is_video,
    output_limit,
    output_size,
    probe,
    result_path,
    video_framing,
)
from .engine import ConversionTimeout, LocalConverter, options_from
from .imaging import InvalidImageError
from .options import RunOptions
from .preview import PreviewSink
from .registry import Registry, WeightsArg, registry_for
from .temporal import CUT_THRESHOLD, DEFAULT_MOMENTUM, FrameSmoother, thumbnail


def stylize_video(source: str | os.PathLike, dest: str | os.PathLike, options: RunOptions | str | None = None, *,
                  temporal: bool = True, limits: VideoLimits | None = None, registry: Registry | None = None,
                  on_frame: Callable[[int, int], None] | None = None, check: Callable[[], None] | None = None,
                  momentum: float = DEFAULT_MOMENTUM, weights: WeightsArg = None,
                  preview: PreviewSink | None = None, **keywords: Any) -> VideoStats:
    """Stylise a video file into an MP4 at ``dest``, with its sound; returns what happened.

    Settings: one ``options`` (or a style id there) or :class:`~animegan.options.RunOptions` fields as keywords
    (``style``, ``max_side`` (None: 720, 0: native), ``device``, ``precision``, ``memory_budget``, ``tile``,
    ``keep_brightness``, ``keep_color``, ``deadline`` in seconds, ``framing``: ``whole`` or, for portrait styles,
    ``center``). ``limits`` are checked from the header before any work (None: :class:`VideoLimits` defaults).
    ``temporal``: smooth the layer statistics across frames. ``on_frame(done, expected)`` after each frame;
    ``check()`` between frames (what it raises stops the run); the options' deadline is checked there too
    (:class:`~animegan.engine.ConversionTimeout`). Nothing is left at ``dest`` unless the whole video was written.
    Raises VideoError for unusable input. ``weights``: as :func:`animegan.stylize` takes it. ``preview(rgb, seconds)``:
    each finished frame as it is written (an :class:`animegan.preview.SegmentWriter` makes playable segments of them).
    """
    if isinstance(options, str):  # stylize_video(src, dest, "hayao", ...) like stylize(photo, "hayao", ...)
        options, keywords = None, {**keywords, "style": options}
    options = options_from(options, keywords)
    converter = LocalConverter(registry_for(weights, options.style, registry))
    return converter.clip(source, dest, options, temporal=temporal, limits=limits, on_frame=on_frame, check=check,
                          momentum=momentum, preview=preview)


def stylize_frame(frame: np.ndarray, options: RunOptions, smoother: FrameSmoother | None = None,
                  registry: Registry | None = None) -> np.ndarray:
    """One HxWx3 uint8 RGB frame (a webcam's) -> the same size, stylised; ``smoother`` carries a stream's state.

    The frame is used as given (no max side: the caller sizes its frames) and runs through the photo's memory plan
    and recovery. Each call plans afresh; a stream that wants its plan kept (and an out-of-memory recovery to
    stick) calls one :class:`~animegan.engine.LocalConverter`'s ``frame`` instead.
    """
    try:
        return LocalConverter(registry).frame(frame, options, smoother)
    except InvalidImageError as exc:
        raise VideoError(str(exc)) from None


__all__ = [
    "AUDIO_MARGIN_S",
    "CONTAINERS",
    "CRF",
    "CUT_THRESHOLD",
    "DEFAULT_MOMENTUM",
    "MAX_AUDIO_STREAMS",
    "MAX_STREAMS",
    "QUEUE_ITEMS",
    "SNIFF_BYTES",
    "VIDEO_DEFAULT_MAX_SIDE",
    "VIDEO_FRAMINGS",
    "VIDEO_SUFFIXES",
    "ConversionTimeout",
    "FrameSmoother",
    "VideoError",
    "VideoInfo",
    "VideoLimits",
    "VideoStats",
    "container_format",
    "is_video",
    "output_limit",
    "output_size",
    "probe",
    "result_path",
    "stylize_frame",
    "stylize_video",
    "thumbnail",
    "video_framing",
]
