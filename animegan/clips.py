"""Video files: probe, then decode -> frames -> encode as a stream, with the sound kept.

The model is not here: :func:`run_clip` is given a frame function (a converter's, see
:meth:`animegan.engine.LocalConverter.clip`) and runs it once per frame inside a small bounded pipeline: a decode
thread reads ahead (frames and audio packets, in file order), the caller's thread runs the frame function, and an
encode thread writes H.264 behind it. At most ``QUEUE_ITEMS`` items wait between two stages, so memory does not
grow with the duration and the model never waits on the codecs. (PyAV loads with this module: photos never pay it.)

* Input: only the containers of :data:`CONTAINERS`, recognised from their first bytes and named to FFmpeg, so that
  no playlist or list reader (which would open other files on the server) ever runs; every limit is checked from
  the header and again while decoding (frames counted, timestamps, each frame's pixels before allocation).
* Output: MP4, H.264 yuv420p, ``+faststart`` (the index first, so browsers play while downloading).
* Sound: each audio stream is copied packet for packet when MP4 takes its codec, else re-encoded to AAC.
* Timing: every frame keeps its own timestamp (variable frame rate stays variable), so the output has the
  input's frames, duration and sync.
* Size: the display size (rotation metadata applied: the output is upright), scaled to ``max_side``
  (videos default to :data:`VIDEO_DEFAULT_MAX_SIDE`; 0 = native). yuv420p stores colour at half
  resolution, so both sides must be even: a side that comes out odd loses its last row or column.
  Portrait styles may take ``center`` framing: the centre square of every frame at the style's training size.
* Temporal stability: :class:`~animegan.temporal.FrameSmoother` (one per clip) carries layer statistics across
  frames.
* Side by side (``RunOptions.side_by_side``): each styled frame is written beside its decoded input
  (:func:`animegan.imaging.side_by_side`), twice as wide; the encoder's settings and the sound are unchanged.
"""
from __future__ import annotations

import contextlib
import fractions
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from . import clip_probe, imaging
from .options import Notice, RunOptions, downscaled_notice, side_by_side_notice
from .preview import PreviewSink
from .styles import StyleSpec
from .temporal import DEFAULT_MOMENTUM, FrameSmoother

log = logging.getLogger(__name__)

VIDEO_DEFAULT_MAX_SIDE = 720      # RunOptions.max_side None -> this for videos; 0 = native
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".gif")  # folder walks only; files are probed
VIDEO_FRAMINGS = ("whole", "center")  # no face framings: a face box found anew in every frame would shake the picture
QUEUE_ITEMS = 6                   # items waiting between two pipeline stages (frames or audio packets)
CRF = 18                          # x264 quality: visually lossless for most content
ENCODER_THREADS = 1
X264_PRESET = "veryfast"          # the model dominates; a slow preset would steal its cores for little gain
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"})  # codecs copied into MP4 as they are
# Sample rates the AAC encoder takes (other sound is re-encoded to AAC); sound at another rate goes to 48 kHz.
AAC_RATES = frozenset({96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000})


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
    output_size: tuple[int, int]   # the written video's (side by side: twice the styled frames' width)
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
    side_by_side: bool = False  # each frame's input left of its result

    @property
    def frame_size(self) -> tuple[int, int]:
        """The styled frames' size: the output's, or its right half when side by side."""
        w, h = self.output_size
        return (w // 2, h) if self.side_by_side else (w, h)

    @property
    def processing_fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


# --- opening: only known containers, named to FFmpeg -------------------------------------------

# Containers a video may come in: recognised from their first bytes before FFmpeg sees the file, and then named to
# it (``format=``), so its probe never picks the reader. The ones left out read other files or URLs named inside
# the input (hls, dash, concat, image2 patterns, ...) or are not what people have. None of these opens anything
# else: MOV's external data references stay off (``enable_drefs``), and only the ``file`` protocol is allowed.
CONTAINERS = {
    "mov": "MP4 / MOV / M4V / 3GP (phones, cameras, editors)",
    "matroska": "WebM / MKV (browsers' recorders, editors)",
    "avi": "AVI",
    "mpegts": "MPEG-TS / M2TS / MTS (broadcast, camcorders)",
    "mpeg": "MPEG-PS / VOB / MPG (camcorders, DVDs)",
    "gif": "GIF",
    "yuv4mpegpipe": "Y4M (raw frames from video tools)",
}
_MOV_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
# Still pictures, recognised only to say so (FFmpeg reads them as one-frame "videos").
_STILLS = ((b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpeg"), (b"BM", "bmp"), (b"II*\0", "tiff"), (b"MM\0*", "tiff"))
SNIFF_BYTES = 4096
MAX_STREAMS = 16          # streams of any kind in one file (FFmpeg's demuxers stop at one more)
MAX_AUDIO_STREAMS = 4     # audio streams kept; later ones are left out, with a notice
OPEN_TIMEOUT_S = 20.0     # FFmpeg's open and probe, at most (and never past the run's deadline)
READ_TIMEOUT_S = 10.0     # one packet read, at most (FFmpeg's interrupt callback)
AUDIO_MARGIN_S = 1.0      # sound kept after the last frame (and after the duration limit)
AUDIO_LEAD_S = 10.0       # sound this far past the last frame read: the pictures have ended, stop reading
AUDIO_LEAD_BYTES = 16 << 20  # nor hold more than this much sound waiting for pictures
PIXEL_SLACK = 8           # the decoders' own cap is 1/8 above the limit: they count rows padded to 64 bytes


def container_format(head: bytes) -> str | None:
    """The FFmpeg reader for a file starting with ``head`` (its first :data:`SNIFF_BYTES`), None when it is
    not one of :data:`CONTAINERS`."""
    if head[4:8] in _MOV_BOXES:
        return "mov"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX", b"AVI\x19"):
        return "avi"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"\0\0\1\xba":
        return "mpeg"
    if head[:10] == b"YUV4MPEG2 ":
        return "yuv4mpegpipe"
    for size, first in ((188, 0), (192, 4)):  # MPEG-TS packets, plain or with M2TS's 4-byte time codes
        if len(head) >= first + 3 * size and all(head[first + k * size] == 0x47 for k in range(3)):
            return "mpegts"
    return None


def _still_kind(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return next((kind for magic, kind in _STILLS if head.startswith(magic)), None)


def _unknown_container(head: bytes) -> str:
    kind = _still_kind(head)
    if kind:
        return (f"this is a still image ({kind}), not a video; convert it as a photo"
                + (" (an animated WebP cannot be read as a video here: save it as GIF or MP4)" if kind == "webp"
                   else ""))
    text = head[:64].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    what = ("a playlist or list of other files" if text.startswith((b"#extm3u", b"ffconcat", b"<?xml", b"<mpd",
                                                                    b"file ", b"#"))
            else "not a video container this app reads")
    return f"{what}; use an MP4, MOV, WebM, MKV, AVI or MPEG-TS file, or a GIF"


@contextlib.contextmanager
def _opened(path: str | os.PathLike, max_pixels: int = imaging.DEFAULT_MAX_PIXELS,
            timeout: float | None = None) -> Iterator[av.container.InputContainer]:
    """The file opened by the reader its first bytes name (never FFmpeg's guess), reaching no other file or URL,
    with at most :data:`MAX_STREAMS` streams and every decoder capped at ``max_pixels`` (with slack) per frame,
    before anything is allocated for a frame. ``timeout``: seconds FFmpeg's open and probe may take."""
    p = Path(path)
    if not p.exists():
        raise VideoError(f"no such file: {p}")
    if p.is_dir():
        raise VideoError(f"{p} is a folder, not a video")
    if not p.is_file():
        raise VideoError(f"{p} is not a regular file")
    if p.stat().st_size == 0:
        raise VideoError("the file is empty")
    with p.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    fmt = container_format(head)
    if fmt is None:
        raise VideoError(_unknown_container(head))
    cap = str(_decoder_cap(max_pixels))
    options = {"format_whitelist": fmt, "protocol_whitelist": "file", "max_streams": str(MAX_STREAMS + 1),
               "enable_drefs": "0", "use_absolute_path": "0",
               "max_pixels": cap}  # also given to the decoders the probe opens (avformat_find_stream_info)
    open_s = OPEN_TIMEOUT_S if timeout is None else max(0.1, min(timeout, OPEN_TIMEOUT_S))
    if fmt in clip_probe.LAZY_FORMATS:  # streams FFmpeg finds only while probing get no pixel cap: probe apart first
        _probed_apart(p, fmt, options, max_pixels, open_s)
    try:
        container = av.open(str(p), format=fmt, options=options, metadata_errors="ignore",
                            timeout=(open_s, READ_TIMEOUT_S))
    except av.error.FFmpegError as exc:
        raise VideoError(f"not a video this app can read (FFmpeg's {CONTAINERS[fmt]} reader: {_reason(exc)}); "
                         "the file is damaged or truncated") from None
    try:
        if len(container.streams) > MAX_STREAMS:  # FFmpeg made one more, then stopped or refused the file
            raise VideoError(f"the file has more than {MAX_STREAMS} streams (video, sound, subtitles...); "
                             f"the limit is {MAX_STREAMS}")
        for stream in container.streams:
            if stream.type == "video" and stream.codec_context is not None:
                stream.codec_context.options = {"max_pixels": cap}
        yield container
    finally:
        container.close()


def _probed_apart(path: Path, fmt: str, options: dict[str, str], max_pixels: int, timeout: float) -> None:
    """FFmpeg's probe of ``path`` in a memory-capped child (:mod:`clip_probe`); refuses what did not fit in it, or
    a video stream over ``max_pixels``, before this process's own probe decodes anything."""
    try:
        found = clip_probe.streams(path, fmt, options, _decoder_cap(max_pixels), timeout)
    except clip_probe.ProbeRefused as exc:
        raise VideoError(str(exc)) from None
    for kind, w, h in found:
        if kind == "video":
            _check_frame_pixels(w, h, max_pixels)


def _check_frame_pixels(w: int, h: int, max_pixels: int) -> None:
    """The one refusal of frames over the pixel limit, as a header (or the capped probe) gives their size."""
    if w * h > max_pixels:
        raise VideoError(f"the video's frames are {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is "
                         f"{max_pixels / 1e6:.0f} MP per frame. Downscale it first.")


def _decoder_cap(max_pixels: int) -> int:
    return max_pixels + max_pixels // PIXEL_SLACK


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def is_video(path: str | os.PathLike) -> bool:
    """True when ``path`` is one of :data:`CONTAINERS` with moving pictures (a still image, audio or garbage: False).

    Recognised by its first bytes and its container, never by the file name. A GIF counts as a photo here (callers
    that route files, like the CLI, keep converting its first frame as before); :func:`animegan.video.stylize_video` given an
    animated GIF treats it as a video. An animated WebP is never a video (FFmpeg does not decode them).
    """
    try:
        with _opened(path) as container:
            return container.format.name != "gif" and bool(container.streams.video)
    except (VideoError, av.error.FFmpegError, OSError):
        return False


# --- probing -----------------------------------------------------------------------------------

def probe(path: str | os.PathLike, limits: VideoLimits | None = None, timeout: float | None = None) -> VideoInfo:
    """Read a video's header and check it against ``limits`` before any work; raise VideoError if unusable.

    ``timeout``: seconds FFmpeg may take to open and probe it (None: :data:`OPEN_TIMEOUT_S`); the first frame is
    decoded for its rotation, under the per-frame pixel cap.
    """
    limits = limits or VideoLimits()
    with _opened(path, limits.max_pixels, timeout) as container:
        if not container.streams.video:
            n = len(container.streams.audio)
            raise VideoError(f"the file has sound ({n} audio stream{'s' * (n != 1)}) but no pictures"
                             if n else "the file has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        w, h = ctx.width, ctx.height
        if w <= 0 or h <= 0:  # also what the decoders' pixel cap leaves of a size over it
            raise VideoError(f"the video's header gives no frame size, or one over the {limits.max_pixels / 1e6:.0f} "
                             "megapixel limit per frame; downscale it first, or the file is damaged")
        _check_frame_pixels(w, h, limits.max_pixels)
        fps = _rate(stream)
        seconds = _duration(container, stream)
        frames = stream.frames or (round(seconds * fps) if seconds and fps else 0)
        if seconds > limits.max_seconds:
            raise VideoError(f"the video is {seconds:.1f} s long; the limit is {limits.max_seconds:g} s. "
                             "Trim it first.")
        if frames > limits.max_frames:
            raise VideoError(f"the video has {frames} frames; the limit is {limits.max_frames}. Trim it or "
                             "lower its frame rate first.")
        rotation = _first_frame_rotation(container, stream, limits.max_pixels)
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


def _first_frame_rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                          max_pixels: int) -> int:
    """Decode the first frame: it carries the display matrix, and a file whose frames never decode is caught here."""
    try:
        for frame in container.decode(stream):
            return _quarter_turns(frame.rotation) * 90
    except av.error.FFmpegError as exc:
        raise VideoError(f"the video's first frame cannot be decoded (FFmpeg: {_reason(exc)}); the file is "
                         "damaged, in a codec this build cannot read, or its frame is over the "
                         f"{max_pixels / 1e6:.0f} MP limit (its header claimed less)") from None
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


def is_video_framing(value: str) -> bool:
    """Whether a video accepts this (stripped, lower-case) framing: whole, center, or "auto" / "" for whole (the
    one check: the engine's and the page's)."""
    return value in ("", "auto") or value in VIDEO_FRAMINGS


def video_framing(spec: StyleSpec, framing: str | None) -> str:
    """The framing a video runs with: ``whole`` (the default, and always for scene styles) or ``center``.

    Face framings are refused: a face box found anew in every frame moves, and the picture would shake.
    """
    value = (framing or "").strip().lower()
    if not is_video_framing(value):
        raise VideoError(f"videos run with framing 'whole' (the whole frame, any style) or 'center' (the centre "
                         f"square, portrait styles), not {framing!r}")
    return "center" if value == "center" and spec.is_portrait else "whole"


def _decode_size(info: VideoInfo, size: tuple[int, int], center: bool) -> tuple[int, int]:
    """The display size frames are decoded at: the output size, or for ``center`` the frame scaled so that
    its short side is the square's (the square is then cut from its middle)."""
    if not center:
        return size
    side = size[0]
    short = min(info.width, info.height)
    return max(side, round(info.width * side / short)), max(side, round(info.height * side / short))


# --- the pipeline ------------------------------------------------------------------------------

_END = object()


@dataclass
class _Frame:
    rgb: np.ndarray
    pts: int | None
    time_base: fractions.Fraction

    def seconds(self, index: int, fps: float) -> float:
        """Its time on the file's clock; a frame without a timestamp: its place at the nominal rate."""
        if self.pts is not None:
            return float(self.pts * self.time_base)
        return index / fps if fps else index / 25


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


class _SoundWindow:
    """Which sound packets go with the pictures: none more than :data:`AUDIO_MARGIN_S` after the last frame read,
    nor after the duration limit. Sound that runs ahead of the frames (files interleave loosely) waits here until
    frames catch up; once it runs :data:`AUDIO_LEAD_S` (or :data:`AUDIO_LEAD_BYTES`) ahead, the pictures have
    ended and reading stops: hours of sound after a few frames cost nothing."""

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self.origin: float | None = None      # the first timestamp of any stream
        self.frames_end: float | None = None  # the latest frame's
        self.last = 0.0
        self.waiting: deque[tuple[float, av.Packet]] = deque()
        self.bytes = 0

    def _seen(self, t: float) -> None:
        self.origin = t if self.origin is None else min(self.origin, t)

    def frame(self, t: float | None) -> list[av.Packet]:
        """A frame at ``t`` was read: the sound it lets through."""
        if t is not None:
            self._seen(t)
            self.frames_end = t if self.frames_end is None else max(self.frames_end, t)
        return self._release()

    def sound(self, packet: av.Packet) -> list[av.Packet] | None:
        """The packets that may go now (this one among them, or held, or dropped); None: stop reading."""
        t = float(packet.pts * packet.time_base) if packet.pts is not None else self.last
        self.last = t
        self._seen(t)
        if t - self.origin > self.max_seconds + AUDIO_MARGIN_S:
            return None if self._ahead(t) else []
        self.waiting.append((t, packet))
        self.bytes += packet.size
        if self._ahead(t) or self.bytes > AUDIO_LEAD_BYTES:
            return None
        return self._release()

    def finish(self) -> list[av.Packet]:
        """The end of the file: what still waits and belongs to the pictures; the rest is dropped."""
        out = self._release()
        self.waiting.clear()
        return out

    def _ahead(self, t: float) -> bool:
        return t - (self.origin if self.frames_end is None else self.frames_end) > AUDIO_LEAD_S

    def _release(self) -> list[av.Packet]:
        if self.frames_end is None:
            return []
        out = []
        while self.waiting and self.waiting[0][0] <= self.frames_end + AUDIO_MARGIN_S:
            out.append(self.waiting.popleft()[1])
            self.bytes -= out[-1].size
        return out


def _decode(source: str, size: tuple[int, int], rotation: int, audio: set[int], reencode: set[int],
            limits: VideoLimits, out: queue.Queue, stop: threading.Event, counter: list[int],
            crop: tuple[int, int] | None = None) -> None:
    """Frames (RGB, display orientation, ``size``) and audio packets or frames of the ``audio`` streams, in file
    order, into ``out``.

    The limits hold for what is read, not what the header said: frames are counted as they come, the duration is
    read from their timestamps, every frame's size is capped before it is allocated (the decoder's ``max_pixels``),
    and sound is kept only alongside the pictures (:class:`_SoundWindow`).
    ``crop``: (width, height) cut from the middle of each upright frame (``center`` framing).
    """
    turns = _quarter_turns(rotation)
    w, h = size if turns % 2 == 0 else (size[1], size[0])   # the stored frame's size before turning upright
    sound = _SoundWindow(limits.max_seconds)
    with _opened(source, limits.max_pixels) as container:
        video = container.streams.video[0]
        video.thread_count = 1  # as the encoder: the model needs the cores, decoding a frame is quick
        streams = [video, *(s for s in container.streams.audio if s.index in audio)]

        def send_sound(packets: list[av.Packet]) -> bool:
            for packet in packets:
                index = packet.stream.index
                if index in reencode:
                    for frame in packet.decode():
                        if not _put(out, ("audio", index, frame), stop):
                            return False
                elif packet.dts is not None and not _put(out, ("audio", index, packet), stop):
                    return False
            return True

        def send_frames(frames: list[av.VideoFrame]) -> bool:
            for frame in frames:
                counter[0] += 1
                if counter[0] > limits.max_frames:
                    raise VideoError(f"the video has more than {limits.max_frames} frames (more than its header "
                                     "says); trim it or lower its frame rate first")
                base = frame.time_base or video.time_base  # frames drained at the end carry none
                t = float(frame.pts * base) if frame.pts is not None else None
                if t is not None and sound.origin is not None and t - sound.origin > limits.max_seconds:
                    raise VideoError(f"the video runs past {limits.max_seconds:g} s (longer than its header says); "
                                     "trim it first")
                if frame.width * frame.height > limits.max_pixels:
                    raise VideoError(f"a frame is {frame.width}x{frame.height}, over the "
                                     f"{limits.max_pixels / 1e6:.0f} MP limit (the header claimed less)")
                rgb = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA"
                                       if frame.width * frame.height > w * h else "BICUBIC")
                if turns:
                    rgb = np.ascontiguousarray(np.rot90(rgb, turns))
                if crop:
                    top, left = (rgb.shape[0] - crop[1]) // 2, (rgb.shape[1] - crop[0]) // 2
                    rgb = np.ascontiguousarray(rgb[top:top + crop[1], left:left + crop[0]])
                if not _put(out, _Frame(rgb, frame.pts, base), stop) or not send_sound(sound.frame(t)):
                    return False
            return True

        try:
            flushed = False  # the video decoder's end-of-file packet went through
            for packet in container.demux(streams):
                if stop.is_set():
                    return
                if packet.stream.type == "audio":
                    if not packet.size:  # an end-of-file packet: the sound decoders are flushed below
                        continue
                    ready = sound.sound(packet)
                    if ready is None:  # sound far past the last frame: the pictures have ended
                        break
                    if not send_sound(ready):
                        return
                else:
                    flushed = not packet.size
                    if not send_frames(packet.decode()):
                        return
            if not (flushed or send_frames(video.decode(None))) or not send_sound(sound.finish()):
                return
            for index in sorted(reencode & audio):
                for frame in container.streams[index].decode(None):
                    if not _put(out, ("audio", index, frame), stop):
                        return
        except av.error.FFmpegError as exc:
            raise VideoError(f"the video could not be read to the end after {counter[0]} frames "
                             f"(FFmpeg: {_reason(exc)}); the file is damaged or truncated, or a frame is over the "
                             f"{limits.max_pixels / 1e6:.0f} MP limit") from None
    _put(out, _END, stop)


class _Writer:
    """The output container: H.264 video with the input's timestamps, audio copied or re-encoded to AAC.

    At most :data:`MAX_AUDIO_STREAMS` audio streams are kept (``dropped_audio``: how many were left out).
    """

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
        sounds = list(source.streams.audio)
        self.dropped_audio = max(0, len(sounds) - MAX_AUDIO_STREAMS)
        for stream in sounds[:MAX_AUDIO_STREAMS]:
            if stream.codec_context.name in MP4_AUDIO:
                self.audio[stream.index] = self.container.add_stream_from_template(stream)
            else:
                # PCM and the like: AAC, mono or stereo with a named layout (the encoder refuses an unnamed
                # "2 channels" one, as MKV and AVI give PCM), at a rate AAC takes; PyAV's encoder resamples.
                channels = stream.layout.nb_channels if stream.layout else stream.channels
                aac = self.container.add_stream("aac", rate=stream.rate if stream.rate in AAC_RATES else 48000)
                aac.layout = "mono" if channels == 1 else "stereo"
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


def result_path(dest_dir: str | os.PathLike, stem: str, style: str, side_by_side: bool = False) -> Path:
    """``<stem>_<style>.mp4`` in ``dest_dir`` (the photo naming rule, with the video's extension)."""
    return Path(dest_dir) / imaging.result_name(stem, style, ext="mp4", side_by_side=side_by_side)


FrameFn = Callable[[np.ndarray, "FrameSmoother | None"], np.ndarray]  # one RGB frame (and the clip's smoother) -> styled
StartFrames = Callable[[int, int], FrameFn]  # (width, height) of the frames -> the function that styles them
Check = Callable[[str], None]  # called between frames with where the run is; what it raises stops the run


def run_clip(source: str | os.PathLike, dest: str | os.PathLike, options: RunOptions, start: StartFrames, *,
             spec: StyleSpec, check: Check, temporal: bool = True, limits: VideoLimits | None = None,
             on_frame: Callable[[int, int], None] | None = None,
             momentum: float = DEFAULT_MOMENTUM, preview: PreviewSink | None = None) -> VideoStats:
    """A video file -> an MP4 at ``dest`` with its sound, each frame through ``start(width, height)``'s function.

    ``options``: the size (``max_side``, ``framing``), ``max_pixels`` and the time left for FFmpeg's open; the
    model's settings are the frame function's business. ``limits`` are checked from the header before ``start`` is
    called (None: :class:`VideoLimits` with ``options.max_pixels``). ``preview(rgb, seconds)`` gets every finished
    frame with its time, as it is handed to the encoder (:class:`animegan.preview.SegmentWriter`: watch the clip as
    it converts); it must not block. ``check(where)`` runs after every item (sound
    after the last frame is inside the deadline too). Nothing is left at ``dest`` unless the whole video was
    written: the output is built in a hidden file beside it and renamed at the end. Raises VideoError for unusable
    input. The stats' model fields (style, device, precision, plan) are the caller's to fill.
    """
    start_s = time.perf_counter()
    center = video_framing(spec, options.framing) == "center"
    source = str(source)
    dest = Path(dest)
    limits = limits or VideoLimits(max_pixels=options.max_pixels)
    info = probe(source, limits, timeout=options.seconds_left())
    size = output_size(info, options.max_side, square=(spec.train_size or min(info.width, info.height))
                       if center else None)
    decoded_size = _decode_size(info, size, center)
    run_frame = start(*size)
    notices: list[Notice] = []
    fitted = imaging.fit_within((info.width, info.height), output_limit(options.max_side) or None)
    if center:
        notices.append(Notice("framing", f"framing center: the centre square of every frame, at {size[0]}x{size[1]}"))
    elif fitted != (info.width, info.height):
        notices.append(downscaled_notice((info.width, info.height), size, output_limit(options.max_side), "frames "))
    if size != fitted and not center:
        notices.append(Notice("other", f"cropped to {size[0]}x{size[1]}: H.264 in yuv420p needs even sides"))
    if info.rotation:
        notices.append(Notice("other", f"turned upright ({info.rotation} degrees, from the rotation metadata)"))
    written = (2 * size[0], size[1]) if options.side_by_side else size  # 2w: still even, as yuv420p needs
    if options.side_by_side:
        notices.append(side_by_side_notice(size))
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
        with _opened(source, limits.max_pixels, options.seconds_left()) as head:
            writer = _Writer(tmp, head, written, info.fps)
        if writer.dropped_audio:
            notices.append(Notice("other", f"kept the first {MAX_AUDIO_STREAMS} of {MAX_AUDIO_STREAMS + writer.dropped_audio} "
                                           "audio streams"))
        decoder = _Stage("video-decode", lambda: _decode(source, decoded_size, info.rotation, set(writer.audio),
                                                         writer.reencode, limits, decoded, stop, counter,
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
                rgb = run_frame(item.rgb, smoother)
                model_seconds += time.perf_counter() - t0
                if options.side_by_side:
                    rgb = imaging.side_by_side(item.rgb, rgb)
                frames += 1
                if on_frame:
                    on_frame(frames, max(expected, frames))
                if preview is not None:  # the frame as written (never waits: a preview drops what it can't take)
                    preview(rgb, item.seconds(frames - 1, info.fps))
                item = ("frame", item, rgb)
            if not _put(styled, item, stop, encoder) or encoder.error is not None:
                break
            check(f"after {frames} of {expected} frames")
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
    seconds = time.perf_counter() - start_s
    return VideoStats(frames=frames, fps_in=info.fps, fps_out=_output_rate(dest), seconds=seconds,
                      model_seconds=model_seconds, input_size=(info.width, info.height), output_size=written,
                      audio_kept=True, audio_mode=writer.audio_mode, temporal=smoother is not None,
                      notices=notices, style=spec.id, scene_cuts=smoother.cuts if smoother else 0,
                      framing="center" if center else "whole", side_by_side=options.side_by_side)


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
    "CONTAINERS",
    "VIDEO_DEFAULT_MAX_SIDE",
    "VIDEO_FRAMINGS",
    "VIDEO_SUFFIXES",
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
    "run_clip",
    "video_framing",
]
