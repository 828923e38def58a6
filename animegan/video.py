"""Videos: probe, then decode -> stylise -> encode as a stream, with the sound kept.

A video is the photo path once per frame inside a small bounded pipeline: a decode thread reads ahead
(frames and audio packets, in file order), the caller's thread runs the model on each frame through the
engine's memory plan, and an encode thread writes H.264 behind it. At most ``QUEUE_ITEMS`` items wait
between two stages, so memory does not grow with the duration and the model never waits on the codecs.

* Output: MP4, H.264 yuv420p, ``+faststart`` (the index first, so browsers play while downloading).
* Sound: each audio stream is copied packet for packet when MP4 takes its codec, else re-encoded to AAC.
* Timing: every frame keeps its own timestamp (variable frame rate stays variable), so the output has the
  input's frames, duration and sync.
* Size: the display size (rotation metadata applied: the output is upright), scaled to ``max_side``
  (videos default to :data:`VIDEO_DEFAULT_MAX_SIDE`; 0 = native). yuv420p stores colour at half
  resolution, so both sides must be even: a side that comes out odd loses its last row or column.
  Portrait styles may take ``center`` framing: the centre square of every frame at the style's training size.
* Temporal stability: AnimeGANv2 normalises each layer over the whole frame, so a still background changes
  tone when something moves. :class:`FrameSmoother` keeps a running average of every layer's (mean, var)
  across frames and blends each frame's own into it in the same forward pass (``NormStats`` "smooth"), and
  starts again at a scene cut (a large change of a tiny greyscale copy of the frame).
"""
from __future__ import annotations

import contextlib
import fractions
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image

from . import imaging, inference, memory
from . import precision as precision_mod
from .engine import ConversionTimeout, Deadline, OutOfMemory, options_from
from .memory import RunPlan, resolve_device
from .model import NormStats
from .options import Notice, RunOptions
from .registry import LoadedModel, Registry, default_registry
from .styles import StyleSpec

log = logging.getLogger(__name__)

VIDEO_DEFAULT_MAX_SIDE = 720      # RunOptions.max_side None -> this for videos; 0 = native
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".gif")  # folder walks only; files are probed
DEFAULT_MOMENTUM = 0.9            # weight of the running statistics against a frame's own (bench/video_bench.py flicker)
VIDEO_FRAMINGS = ("whole", "center")  # no face framings: a face box found anew in every frame would shake the picture
CUT_THRESHOLD = 24.0              # mean |change| (0-255) of a 32x32 grey copy between frames that starts a new scene
THUMB_SIDE = 32
QUEUE_ITEMS = 6                   # items waiting between two pipeline stages (frames or audio packets)
CRF = 18                          # x264 quality: visually lossless for most content
ENCODER_THREADS = 1
X264_PRESET = "veryfast"          # the model dominates; a slow preset would steal its cores for little gain
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"})  # codecs copied into MP4 as they are
# Container formats FFmpeg uses for single pictures: those inputs are photos, not videos.
STILL_FORMATS = ("image2", "_pipe", "webp", "png", "bmp", "tiff")


class VideoError(ValueError):
    """The input is not a usable video (or over a limit); the message says what the user can do."""


@dataclass(frozen=True)
class VideoLimits:
    """What a video may be, checked from the container's header before any frame is decoded."""

    max_seconds: float = 30.0
    max_frames: int = 1800
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS   # per frame


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` read from the container (headers, and the first frame for its rotation)."""

    width: int                 # display size: rotation applied
    height: int
    frames: int                # from the header, or estimated from duration x rate when it has none
    fps: float
    seconds: float
    rotation: int              # degrees counter-clockwise that make the stored frames upright
    video_codec: str
    audio_streams: int


@dataclass
class VideoStats:
    frames: int
    fps_in: float              # the input's frame rate (average over the file)
    fps_out: float             # the output's (equal to the input's: every timestamp is kept)
    seconds: float             # wall time of the whole conversion
    model_seconds: float       # of which the model ran
    input_size: tuple[int, int]    # display size of the input (rotation applied)
    output_size: tuple[int, int]
    audio_kept: bool           # every audio stream copied or re-encoded (True when there is none)
    audio_mode: str            # "copied" | "aac" | "none"
    temporal: bool
    notices: list[Notice] = field(default_factory=list)
    style: str = ""
    device: str = ""
    precision: str = ""
    plan: str = ""
    scene_cuts: int = 0
    framing: str = "whole"     # or "center": the centre square of every frame

    @property
    def processing_fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


# --- probing -----------------------------------------------------------------------------------

@contextlib.contextmanager
def _opened(path: str | os.PathLike) -> Iterator[av.container.InputContainer]:
    p = Path(path)
    if not p.exists():
        raise VideoError(f"no such file: {p}")
    if p.is_dir():
        raise VideoError(f"{p} is a folder, not a video")
    if p.stat().st_size == 0:
        raise VideoError("the file is empty")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise VideoError(f"not a video this app can read (FFmpeg: {_reason(exc)}); "
                         "use an MP4, MOV, WebM, MKV or AVI file, or a GIF") from None
    try:
        yield container
    finally:
        container.close()


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _is_still(container: av.container.InputContainer) -> bool:
    name = container.format.name
    return any(part in name for part in STILL_FORMATS)


def is_video(path: str | os.PathLike) -> bool:
    """True when FFmpeg reads ``path`` as moving pictures (a still image, audio or garbage: False).

    Recognised by probing the container, never by the file name. A GIF counts as a photo here (callers that
    route files, like the CLI, keep converting its first frame as before); :func:`stylize_video` given an
    animated GIF treats it as a video. An animated WebP is never a video (FFmpeg does not decode them).
    """
    try:
        with _opened(path) as container:
            return not (_is_still(container) or container.format.name == "gif") and bool(container.streams.video)
    except (VideoError, av.error.FFmpegError, OSError):
        return False


def probe(path: str | os.PathLike, limits: VideoLimits | None = None) -> VideoInfo:
    """Read a video's header and check it against ``limits`` before any work; raise VideoError if unusable."""
    limits = limits or VideoLimits()
    with _opened(path) as container:
        if _is_still(container):
            raise VideoError(f"this is a still image ({container.format.name}), not a video; convert it as a photo"
                             + (" (an animated WebP cannot be read as a video here: save it as GIF or MP4)"
                                if "webp" in container.format.name else ""))
        if not container.streams.video:
            n = len(container.streams.audio)
            raise VideoError(f"the file has sound ({n} audio stream{'s' * (n != 1)}) but no pictures"
                             if n else "the file has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        w, h = ctx.width, ctx.height
        if w <= 0 or h <= 0:
            raise VideoError("the video's header gives no frame size; the file is damaged or not a video")
        if w * h > limits.max_pixels:
            raise VideoError(f"the video's frames are {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is "
                             f"{limits.max_pixels / 1e6:.0f} MP per frame. Downscale it first.")
        fps = _rate(stream)
        seconds = _duration(container, stream)
        frames = stream.frames or (round(seconds * fps) if seconds and fps else 0)
        if seconds > limits.max_seconds:
            raise VideoError(f"the video is {seconds:.1f} s long; the limit is {limits.max_seconds:g} s. "
                             "Trim it first.")
        if frames > limits.max_frames:
            raise VideoError(f"the video has {frames} frames; the limit is {limits.max_frames}. Trim it or "
                             "lower its frame rate first.")
        rotation = _first_frame_rotation(container, stream)
        if rotation % 180:
            w, h = h, w
        return VideoInfo(width=w, height=h, frames=frames, fps=fps, seconds=seconds, rotation=rotation,
                         video_codec=ctx.name, audio_streams=len(container.streams.audio))


def _rate(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else 0.0


def _first_frame_rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Decode the first frame: it carries the display matrix, and a file whose frames never decode is caught here."""
    try:
        for frame in container.decode(stream):
            return _quarter_turns(frame.rotation) * 90
    except av.error.FFmpegError as exc:
        raise VideoError(f"the video's first frame cannot be decoded (FFmpeg: {_reason(exc)}); "
                         "the file is damaged or in a codec this build cannot read") from None
    raise VideoError("the video has no frame that can be decoded; the file is damaged or truncated")


def _quarter_turns(rotation: float | None) -> int:
    return round((rotation or 0) / 90) % 4


def output_limit(max_side: int | None) -> int:
    """The max side a video runs at: None -> :data:`VIDEO_DEFAULT_MAX_SIDE`; 0 -> native."""
    return VIDEO_DEFAULT_MAX_SIDE if max_side is None else max_side


def output_size(info: VideoInfo, max_side: int | None, square: int | None = None) -> tuple[int, int]:
    """(width, height) of the output: the display size fitted to ``max_side`` (None: 720, 0: native), sides even.

    ``square``: ``center`` framing, the centre square of every frame at this side (a portrait style's
    training size), or smaller when ``max_side`` asks for less.
    """
    limit = output_limit(max_side)
    if limit < 0:
        raise ValueError(f"max side must be 0 (native size) or a positive number of pixels, not {limit}")
    if square:
        side = min(square, limit) if limit else square
        return max(2, side - side % 2), max(2, side - side % 2)
    w, h = imaging.fit_within((info.width, info.height), limit or None)
    return max(2, w - w % 2), max(2, h - h % 2)


def video_framing(spec: StyleSpec, framing: str | None) -> str:
    """The framing a video runs with: ``whole`` (the default, and always for scene styles) or ``center``.

    Face framings are refused: a face box found anew in every frame moves, and the picture would shake.
    """
    value = (framing or "").strip().lower()
    if value in ("", "auto"):
        return "whole"
    if value in VIDEO_FRAMINGS:
        return value if spec.is_portrait else "whole"
    raise VideoError(f"videos run with framing 'whole' (the whole frame, any style) or 'center' (the centre "
                     f"square, portrait styles), not {framing!r}")


def _decode_size(info: VideoInfo, size: tuple[int, int], center: bool) -> tuple[int, int]:
    """The display size frames are decoded at: the output size, or for ``center`` the frame scaled so that
    its short side is the square's (the square is then cut from its middle)."""
    if not center:
        return size
    side = size[0]
    short = min(info.width, info.height)
    return max(side, round(info.width * side / short)), max(side, round(info.height * side / short))


# --- temporal smoothing ------------------------------------------------------------------------

class FrameSmoother:
    """Temporal state of one stream of frames (a video, a webcam session): layer statistics across frames.

    ``momentum``: weight of the running (mean, var) of every layer norm against the frame's own (0: plain
    per-frame runs). The average starts again at a scene cut, and when the frame size or the model changes.
    """

    def __init__(self, momentum: float = DEFAULT_MOMENTUM, cut_threshold: float = CUT_THRESHOLD) -> None:
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), not {momentum}")
        self.momentum = momentum
        self.cut_threshold = cut_threshold
        self.cuts = 0
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the running statistics: the next frame runs as if it were the first."""
        self._values: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._thumb: np.ndarray | None = None
        self._key: tuple | None = None

    def norm_stats(self, rgb: np.ndarray, key: tuple = ()) -> NormStats:
        """The statistics one frame's forward pass smooths into (starting again at a cut or a new key)."""
        with self._lock:
            return NormStats(mode="smooth", values=self._running(rgb, key), momentum=self.momentum)

    def _running(self, rgb: np.ndarray, key: tuple) -> list[tuple[torch.Tensor, torch.Tensor]]:
        thumb = thumbnail(rgb)
        key = (rgb.shape, *key)
        if self._key != key:
            self.reset()
            self._key = key
        elif self._thumb is not None and float(np.abs(thumb - self._thumb).mean()) > self.cut_threshold:
            self._values = []
            self.cuts += 1
        self._thumb = thumb
        return self._values


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A 32x32 grey copy (float32, 0-255): what scene cuts are detected on, for well under a millisecond."""
    return np.asarray(Image.fromarray(rgb).convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.BILINEAR),
                      dtype=np.float32)


# --- one frame ---------------------------------------------------------------------------------

class _FrameRunner:
    """Runs frames of one size through the engine's memory plan; after running out of memory, smaller tiles stick."""

    def __init__(self, loaded: LoadedModel, plan: RunPlan, precision: str, device: torch.device) -> None:
        self.loaded, self.plan, self.precision, self.device = loaded, plan, precision, device
        self.notices: list[Notice] = []
        if plan.tiled:
            self.notices.append(Notice("tiled", f"each frame ran in {plan.describe()}"))

    def __call__(self, rgb: np.ndarray, smoother: FrameSmoother | None) -> np.ndarray:
        h, w = rgb.shape[:2]
        while True:
            try:
                with memory.run_scope(self.device):
                    stats = smoother.norm_stats(rgb, (self.loaded.spec.id,)) if smoother else None
                    if not self.plan.tiled:
                        return inference.run_whole(self.loaded.model, rgb, self.precision, stats)
                    return inference.run_tiled(self.loaded.model, rgb, tile=self.plan.tile, precision=self.precision,
                                               stats=stats, map_ram=self.plan.map_ram)
            except Exception as exc:
                if not memory.is_out_of_memory(exc):
                    raise
                del exc
                memory.free_device_memory(self.device)
                nxt = self.plan.smaller(h, w)
                if nxt is None:
                    raise OutOfMemory(f"not enough memory for {w}x{h} frames even in {memory.MIN_TILE} px tiles; "
                                      "lower the max side or raise the memory budget") from None
                self.notices.append(Notice("out_of_memory", f"out of memory with {self.plan.describe()}; "
                                                            f"frames from here on ran in tiles of {nxt.tile} px"))
                self.plan = nxt


def _prepare(options: RunOptions, registry: Registry, width: int, height: int
             ) -> tuple[_FrameRunner, list[Notice]]:
    spec = registry.style(options.style)
    dev = resolve_device(options.device)
    decision = precision_mod.resolve(options.precision or "auto", dev)
    loaded = registry.get(spec, dev, decision.precision)
    budget = memory.default_budget(dev, memory.parse_bytes(options.memory_budget))
    plan = memory.plan_run(height, width, dev.type, decision.precision, budget, tile=options.tile)
    notices = [Notice("precision", decision.notice)] if decision.notice else []
    return _FrameRunner(loaded, plan, decision.precision, dev), notices


_runners: dict[tuple, _FrameRunner] = {}
_runners_lock = threading.Lock()


def stylize_frame(frame: np.ndarray, options: RunOptions, smoother: FrameSmoother | None = None,
                  registry: Registry | None = None) -> np.ndarray:
    """One HxWx3 uint8 RGB frame (a webcam's) -> the same size, stylised; ``smoother`` carries a stream's state.

    The frame is used as given (no max side: the caller sizes its frames). Runs through the same memory
    plan as photos; the plan of a (style, size, device, precision) is kept for the next frames.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise VideoError(f"a frame must be HxWx3 uint8 RGB, not {frame.shape} {frame.dtype}")
    h, w = frame.shape[:2]
    if h * w > options.max_pixels:
        raise VideoError(f"the frame is {w}x{h}; the limit is {options.max_pixels / 1e6:.0f} MP")
    registry = registry or default_registry()
    key = (id(registry), options.style, options.device, options.precision, options.memory_budget, options.tile, h, w)
    with _runners_lock:
        runner = _runners.get(key)
    if runner is None or registry.style(options.style) is not runner.loaded.spec:
        runner, _ = _prepare(options, registry, w, h)
        with _runners_lock:
            if len(_runners) > 32:
                _runners.clear()
            _runners[key] = runner
    Deadline.of(options).check("before the frame")
    out = runner(np.ascontiguousarray(frame), smoother)
    return imaging.keep_brightness(out, frame) if options.keep_brightness else out


# --- the pipeline ------------------------------------------------------------------------------

_END = object()


@dataclass
class _Frame:
    rgb: np.ndarray
    pts: int | None
    time_base: fractions.Fraction


class _Stage(threading.Thread):
    """A pipeline thread whose exception is kept for the caller to raise."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self.error = exc


def _put(q: queue.Queue, item: Any, stop: threading.Event, consumer: _Stage | None = None) -> bool:
    """Put unless the pipeline is stopping or the consumer has ended (a full queue is waited on in short steps)."""
    while not stop.is_set() and (consumer is None or consumer.is_alive()):
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event, other: _Stage) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if other.error is not None:
                raise other.error
            if stop.is_set() or not other.is_alive():
                return _END


def _decode(source: str, size: tuple[int, int], rotation: int, reencode: set[int], max_pixels: int,
            out: queue.Queue, stop: threading.Event, counter: list[int], crop: tuple[int, int] | None = None) -> None:
    """Frames (RGB, display orientation, ``size``) and audio packets or frames, in file order, into ``out``.

    ``crop``: (width, height) cut from the middle of each upright frame (``center`` framing).
    """
    turns = _quarter_turns(rotation)
    w, h = size if turns % 2 == 0 else (size[1], size[0])   # the stored frame's size before turning upright
    with _opened(source) as container:
        streams = [container.streams.video[0], *container.streams.audio]
        streams[0].thread_count = 1  # as the encoder: the model needs the cores, decoding a frame is quick
        try:
            for packet in container.demux(streams):
                if stop.is_set():
                    return
                if packet.stream.type == "audio":
                    if packet.stream.index in reencode:
                        for frame in packet.decode():
                            if not _put(out, ("audio", packet.stream.index, frame), stop):
                                return
                    elif packet.dts is not None and packet.size and not _put(
                            out, ("audio", packet.stream.index, packet), stop):
                        return
                    continue
                for frame in packet.decode():
                    if frame.width * frame.height > max_pixels:
                        raise VideoError(f"a frame is {frame.width}x{frame.height}, over the "
                                         f"{max_pixels / 1e6:.0f} MP limit (the header claimed less)")
                    rgb = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA"
                                           if frame.width * frame.height > w * h else "BICUBIC")
                    if turns:
                        rgb = np.ascontiguousarray(np.rot90(rgb, turns))
                    if crop:
                        top, left = (rgb.shape[0] - crop[1]) // 2, (rgb.shape[1] - crop[0]) // 2
                        rgb = np.ascontiguousarray(rgb[top:top + crop[1], left:left + crop[0]])
                    counter[0] += 1
                    if not _put(out, _Frame(rgb, frame.pts, frame.time_base), stop):
                        return
        except av.error.FFmpegError as exc:
            raise VideoError(f"the video could not be read to the end after {counter[0]} frames "
                             f"(FFmpeg: {_reason(exc)}); the file is damaged or truncated") from None
    _put(out, _END, stop)


class _Writer:
    """The output container: H.264 video with the input's timestamps, audio copied or re-encoded to AAC."""

    def __init__(self, path: Path, source: av.container.InputContainer, size: tuple[int, int], fps: float) -> None:
        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        src = source.streams.video[0]
        rate = fractions.Fraction(fps).limit_denominator(1001 * 1000) if fps else fractions.Fraction(25)
        self.video = self.container.add_stream("libx264", rate=rate)
        self.video.width, self.video.height = size
        self.video.pix_fmt = "yuv420p"
        self.video.time_base = src.time_base
        self.video.codec_context.time_base = src.time_base
        self.video.options = {"crf": str(CRF), "preset": X264_PRESET}
        # One encoder thread: even at 720p it outruns the model many times over, and more threads would only
        # interrupt the model's own threads (whose work is split evenly across every core and waits on the slowest).
        self.video.codec_context.thread_count = ENCODER_THREADS
        self.time_base = src.time_base
        self.audio: dict[int, av.stream.Stream] = {}
        self.reencode: set[int] = set()
        for stream in source.streams.audio:
            if stream.codec_context.name in MP4_AUDIO:
                self.audio[stream.index] = self.container.add_stream_from_template(stream)
            else:
                aac = self.container.add_stream("aac", rate=stream.rate or 44100)
                aac.layout = stream.layout if stream.layout and stream.layout.nb_channels <= 2 else "stereo"
                self.audio[stream.index] = aac
                self.reencode.add(stream.index)
        self.last_pts: int | None = None
        self.frames = 0

    @property
    def audio_mode(self) -> str:
        if not self.audio:
            return "none"
        return "aac" if self.reencode else "copied"

    def write_frame(self, item: _Frame, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        pts = item.pts
        if item.time_base != self.time_base and pts is not None:  # a decoder on another clock (rare)
            pts = round(pts * item.time_base / self.time_base)
        if pts is None or (self.last_pts is not None and pts <= self.last_pts):
            # a missing or repeated timestamp: one tick after the last keeps the order the muxer requires
            pts = 0 if self.last_pts is None else self.last_pts + 1
        self.last_pts = pts
        frame.pts, frame.time_base = pts, self.time_base
        self.container.mux(self.video.encode(frame))
        self.frames += 1

    def write_audio(self, index: int, data: av.Packet | av.AudioFrame) -> None:
        stream = self.audio[index]
        if isinstance(data, av.Packet):
            data.stream = stream
            self.container.mux(data)
        else:
            self.container.mux(stream.encode(data))

    def finish(self) -> None:
        self.container.mux(self.video.encode(None))
        for index in self.reencode:
            self.container.mux(self.audio[index].encode(None))
        self.container.close()

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()


def result_path(dest_dir: str | os.PathLike, stem: str, style: str) -> Path:
    """``<stem>_<style>.mp4`` in ``dest_dir`` (the photo naming rule, with the video's extension)."""
    return Path(dest_dir) / imaging.result_name(stem, style, ext="mp4")


def stylize_video(source: str | os.PathLike, dest: str | os.PathLike, options: RunOptions | str | None = None, *,
                  temporal: bool = True, limits: VideoLimits | None = None, registry: Registry | None = None,
                  on_frame: Callable[[int, int], None] | None = None, check: Callable[[], None] | None = None,
                  momentum: float = DEFAULT_MOMENTUM, **keywords: Any) -> VideoStats:
    """Stylise a video file into an MP4 at ``dest``, with its sound; returns what happened.

    Settings: one ``options`` (or a style id there) or :class:`~animegan.options.RunOptions` fields as keywords (``style``,
    ``max_side`` (None: 720, 0: native), ``device``, ``precision``, ``memory_budget``, ``tile``,
    ``keep_brightness``, ``deadline`` in seconds, ``framing``: ``whole`` or, for portrait styles, ``center``). ``limits`` are checked from the header before any work
    (None: :class:`VideoLimits` defaults). ``temporal``: smooth the layer statistics across frames.
    ``on_frame(done, expected)`` after each frame; ``check()`` between frames (what it raises stops the run);
    the options' deadline is checked there too (:class:`~animegan.engine.ConversionTimeout`).
    Nothing is left at ``dest`` unless the whole video was written: the output is built in a hidden file
    beside it and renamed at the end. Raises VideoError for unusable input.
    """
    start = time.perf_counter()
    if isinstance(options, str):  # stylize_video(src, dest, "hayao", ...) like stylize(photo, "hayao", ...)
        options, keywords = None, {**keywords, "style": options}
    options = options_from(options, keywords)
    registry = registry or default_registry()
    spec = registry.style(options.style)
    center = video_framing(spec, options.framing) == "center"
    source = str(source)
    dest = Path(dest)
    limits = limits or VideoLimits(max_pixels=options.max_pixels)
    info = probe(source, limits)
    size = output_size(info, options.max_side, square=(spec.train_size or min(info.width, info.height))
                       if center else None)
    decoded_size = _decode_size(info, size, center)
    deadline = Deadline.of(options)
    runner, notices = _prepare(options, registry, *size)
    deadline.check("after loading the style")
    fitted = imaging.fit_within((info.width, info.height), output_limit(options.max_side) or None)
    if center:
        notices.append(Notice("framing", f"framing center: the centre square of every frame, at {size[0]}x{size[1]}"))
    elif fitted != (info.width, info.height):
        notices.append(Notice("downscaled", f"frames downscaled from {info.width}x{info.height} to {size[0]}x{size[1]} "
                              f"(max side {output_limit(options.max_side)}); set max side 0 for native size"))
    if size != fitted and not center:
        notices.append(Notice("other", f"cropped to {size[0]}x{size[1]}: H.264 in yuv420p needs even sides"))
    if info.rotation:
        notices.append(Notice("other", f"turned upright ({info.rotation} degrees, from the rotation metadata)"))
    smoother = FrameSmoother(momentum) if temporal and momentum > 0 else None

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.partial.mp4")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(QUEUE_ITEMS)
    styled: queue.Queue = queue.Queue(QUEUE_ITEMS)
    counter = [0]
    writer: _Writer | None = None
    stages: list[_Stage] = []
    model_seconds = 0.0
    done = False
    try:
        with _opened(source) as head:
            writer = _Writer(tmp, head, size, info.fps)
        decoder = _Stage("video-decode", lambda: _decode(source, decoded_size, info.rotation, writer.reencode,
                                                         limits.max_pixels, decoded, stop, counter,
                                                         crop=size if center else None))
        encoder = _Stage("video-encode", lambda: _encode(writer, styled, stop, decoder))
        stages = [decoder, encoder]
        for stage in stages:
            stage.start()
        frames = 0
        expected = max(info.frames, 1)
        while True:
            item = _get(decoded, stop, decoder)
            if item is _END:
                break
            if isinstance(item, _Frame):
                t0 = time.perf_counter()
                rgb = runner(item.rgb, smoother)
                if options.keep_brightness:
                    rgb = imaging.keep_brightness(rgb, item.rgb)
                model_seconds += time.perf_counter() - t0
                frames += 1
                if on_frame:
                    on_frame(frames, max(expected, frames))
                item = ("frame", item, rgb)
            if not _put(styled, item, stop, encoder) or encoder.error is not None:
                break
            if item[0] == "frame":
                if check:
                    check()
                deadline.check(f"after {frames} of {expected} frames")
        _put(styled, _END, stop, encoder)
        encoder.join()
        for stage in stages:
            if stage.error is not None:
                raise stage.error
        if frames == 0:
            raise VideoError("no frame of the video could be decoded; the file is damaged")
        if info.frames and _short(frames, info.frames):
            raise VideoError(f"the video ends early: {frames} of the {info.frames} frames its header lists could "
                             "be read; the file is truncated or damaged")
        writer.finish()
        os.replace(tmp, dest)
        done = True
    finally:
        stop.set()
        for stage in stages:
            stage.join(timeout=30)
        if not done:
            if writer is not None:
                writer.abandon()
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    notices += runner.notices
    seconds = time.perf_counter() - start
    return VideoStats(frames=frames, fps_in=info.fps, fps_out=_output_rate(dest), seconds=seconds,
                      model_seconds=model_seconds, input_size=(info.width, info.height), output_size=size,
                      audio_kept=True, audio_mode=writer.audio_mode, temporal=smoother is not None,
                      notices=notices, style=runner.loaded.spec.id, device=str(runner.device),
                      precision=runner.precision, plan=runner.plan.describe(),
                      scene_cuts=smoother.cuts if smoother else 0, framing="center" if center else "whole")


def _short(read: int, listed: int) -> bool:
    """Fewer frames than the header lists, beyond what edit lists legitimately drop (a couple of frames)."""
    return listed - read > max(2, listed // 50)


def _output_rate(path: Path) -> float:
    with _opened(path) as container:
        return _rate(container.streams.video[0])


def _encode(writer: _Writer, styled: queue.Queue, stop: threading.Event, decoder: _Stage) -> None:
    while not stop.is_set():
        try:
            item = styled.get(timeout=0.1)
        except queue.Empty:
            continue
        if item is _END:
            return
        kind, first, second = item
        if kind == "frame":
            writer.write_frame(first, second)
        else:
            writer.write_audio(first, second)


__all__ = [
    "VIDEO_DEFAULT_MAX_SIDE",
    "VIDEO_FRAMINGS",
    "ConversionTimeout",
    "FrameSmoother",
    "VideoError",
    "VideoInfo",
    "VideoLimits",
    "VideoStats",
    "is_video",
    "output_size",
    "probe",
    "result_path",
    "stylize_frame",
    "stylize_video",
    "video_framing",
]
