"""Watch a clip as it converts: its finished frames -> short H.264 MPEG-TS segments, written in a thread of its own.

A clip's pipeline (:func:`animegan.clips.run_clip`) hands each finished frame and its time to a preview sink; a
:class:`SegmentWriter` is one. It never makes the pipeline wait: frames go into a queue of :data:`QUEUE_FRAMES`, and
a frame that finds it full is dropped (the preview holds the frame before it a little longer). Its own thread encodes
them (x264 ``ultrafast``, ``zerolatency``: no frame is held back, one thread) into segments of about
:data:`SEGMENT_S` of the clip; a segment also closes once it has waited :data:`SEGMENT_WAIT_S` for frames, so a
slow run still shows something every couple of seconds. Each segment is a file of its own in the writer's folder
(the caller's private result folder), handed to ``on_segment`` when complete. Timestamps run on from one segment to
the next on the clip's own clock (its first frame at :data:`CLOCK_START_S`), so a player plays them in a row at the
clip's frame rate.

When the frames are finished in another process (``--backend ray``), a writer there encodes them and the segments'
bytes travel back: :meth:`SegmentWriter.add_encoded` takes such a segment into this side's writer, and
:meth:`SegmentWriter.settings` says how the far writer should cut them. :class:`EncodedSink` names that pair, the
interface a remote backend previews through.

The preview is silent and made for watching: the finished MP4 (with its sound, at the pipeline's quality) is the
result. Nothing here knows about Gradio; the Video tab serves the segments (``gradio_internals.stream_segments``).
"""
from __future__ import annotations

import contextlib
import fractions
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import av
import numpy as np

log = logging.getLogger(__name__)

SEGMENT_S = 1.0         # seconds of the clip per segment (a player starts after the first one)
SEGMENT_WAIT_S = 2.0    # wall seconds a segment waits for more frames before it is closed anyway
QUEUE_FRAMES = 8        # frames waiting for the encoder; more are dropped, never waited for
CLOCK = 90_000          # MPEG-TS timestamps tick at 90 kHz
CLOCK_START_S = 10.0    # the clip's first frame on the segments' clock: clear of zero (the muxer's own delay and
                        # clock references sit before the first timestamp; a player starts at whatever comes first)
X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "crf": "26"}

PreviewSink = Callable[[np.ndarray, float], None]  # (HxWx3 uint8 RGB frame, its time in seconds) -> never blocks

_END = object()


@runtime_checkable
class EncodedSink(Protocol):
    """A preview that also takes segments encoded elsewhere (a :class:`SegmentWriter` is one): what a backend whose
    frames are finished in another process previews through."""

    def settings(self) -> dict[str, Any]:
        """Keyword arguments for the far side's :class:`SegmentWriter` (fps, segment_s, wait_s, queue_frames)."""
        ...

    def add_encoded(self, data: bytes, start: float, duration: float, frames: int) -> bool:
        """One finished segment's bytes, in playing order; False when it was not taken."""
        ...


@dataclass(frozen=True)
class Segment:
    """One finished preview segment: an MPEG-TS file with H.264 video only."""

    path: Path
    index: int         # 0, 1, 2... in playing order
    start: float       # seconds on the clip's clock (its first frame = 0)
    duration: float    # seconds it plays for
    frames: int


class SegmentWriter:
    """A preview sink (call it with a frame and its time) that writes :class:`Segment` files into ``folder``.

    ``fps``: the clip's frame rate (the last frame of a segment shows for one frame's time). ``on_segment`` runs in
    the writer's thread for each finished segment. :meth:`close` writes what is left and waits for the thread;
    :meth:`abandon` stops without another segment. Frames must not change after they are handed over.
    A writer is fed either frames or (:meth:`add_encoded`) segments encoded elsewhere, not both.
    """

    def __init__(self, folder: str | Path, fps: float, on_segment: Callable[[Segment], None], *,
                 segment_s: float = SEGMENT_S, wait_s: float = SEGMENT_WAIT_S,
                 queue_frames: int = QUEUE_FRAMES) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.frame_s = 1.0 / fps if fps and fps > 0 else 1.0 / 25
        self.on_segment = on_segment
        self.segment_s, self.wait_s, self.queue_frames = segment_s, wait_s, queue_frames
        self.offered = self.dropped = self.written = 0
        self.segments: list[Segment] = []
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(queue_frames)
        self._abandoned = threading.Event()
        self._publishing = threading.Lock()  # one segment at a time gets its index, its file and its on_segment
        self._origin: float | None = None
        self._thread = threading.Thread(target=self._run, name="preview-encode", daemon=True)
        self._thread.start()

    def __call__(self, rgb: np.ndarray, t: float) -> None:
        """Offer one frame (its time in seconds, on any origin: the first frame offered is 0); never blocks."""
        self.offer(rgb, t)

    def offer(self, rgb: np.ndarray, t: float) -> bool:
        """False when the frame was dropped (the encoder is behind, or the writer stopped)."""
        self.offered += 1
        if self._abandoned.is_set() or self.error is not None or not self._thread.is_alive():
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait((rgb, t))
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def settings(self) -> dict[str, Any]:
        """How this writer cuts segments, as keyword arguments for another one (``SegmentWriter(folder, **s, ...)``):
        a writer in the process that finishes the frames cuts them as this one would."""
        return {"fps": 1.0 / self.frame_s, "segment_s": self.segment_s, "wait_s": self.wait_s,
                "queue_frames": self.queue_frames}

    def add_encoded(self, data: bytes, start: float, duration: float, frames: int) -> bool:
        """A segment another writer made (its MPEG-TS bytes as they are; ``start``, ``duration`` on the clip's clock):
        written into this writer's folder under its own name and handed to ``on_segment``, in the caller's thread.

        False, and nothing written, once the writer was abandoned or when the segment starts before the end of the
        last one (a rerun of the clip sends its start again: what was shown stays, the rest follows on).
        """
        with self._publishing:
            if self._abandoned.is_set():
                return False
            if self.segments and start < self.segments[-1].start + self.segments[-1].duration - 1e-6:
                return False
            index = len(self.segments)
            path = self.folder / _name(index)
            partial = path.with_name(path.name + ".partial")
            try:
                partial.write_bytes(data)
                partial.replace(path)
            finally:
                partial.unlink(missing_ok=True)
            segment = Segment(path, index, start, duration, frames)
            self.segments.append(segment)
            self.on_segment(segment)
            return True

    def close(self, timeout: float = 30.0) -> None:
        """Finish: the frames queued so far and the last segment are written, then the thread ends."""
        while self._thread.is_alive():
            try:
                self._queue.put(_END, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join(timeout)

    def abandon(self, timeout: float = 30.0) -> None:
        """Stop now: queued frames are dropped and no further segment is handed over."""
        self._abandoned.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_END)
        self._thread.join(timeout)

    # -- the writer's thread ------------------------------------------------------------------
    def _run(self) -> None:
        current: _Open | None = None
        try:
            while not self._abandoned.is_set():
                wait = None if current is None else max(0.0, current.opened + self.wait_s - time.monotonic())
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:  # waited long enough: close it with what it has
                    self._publish(current, None)
                    current = None
                    continue
                if item is _END:
                    break
                rgb, t = item
                if self._origin is None:
                    self._origin = t
                t -= self._origin
                if current is not None and t <= current.last:
                    continue  # a repeated or earlier time: the player could not place it
                if current is not None and (t - current.start >= self.segment_s
                                            or time.monotonic() - current.opened >= self.wait_s):
                    self._publish(current, t)
                    current = None
                if current is None:
                    current = _Open(self.folder / _name(len(self.segments)), len(self.segments), t,
                                    rgb.shape[1], rgb.shape[0], self.frame_s)
                current.add(rgb, t)
                self.written += 1
            if not self._abandoned.is_set() and current is not None:
                self._publish(current, None)
                current = None
        except BaseException as exc:  # noqa: BLE001 - the preview fails alone; the conversion goes on
            self.error = exc
            log.warning("the preview stopped: %s", exc)
        finally:
            if current is not None:
                current.discard()

    def _publish(self, current: _Open, next_start: float | None) -> None:
        """Close ``current`` (it plays until ``next_start``, or one frame after its last) and hand it over."""
        end = next_start if next_start is not None else current.last + self.frame_s
        segment = current.finish(end)
        with self._publishing:
            self.segments.append(segment)
            if not self._abandoned.is_set():
                self.on_segment(segment)


def _name(index: int) -> str:
    return f"preview-{index:05d}.ts"


class _Open:
    """The segment being written: its own MPEG-TS file and x264 encoder (every segment starts on a keyframe)."""

    def __init__(self, path: Path, index: int, start: float, width: int, height: int, frame_s: float) -> None:
        self.path, self.index, self.start, self.last = path, index, start, start
        self.partial = path.with_name(path.name + ".partial")
        self.opened = time.monotonic()
        self.frames = 0
        self.container = av.open(str(self.partial), "w", format="mpegts")
        rate = fractions.Fraction(1 / frame_s).limit_denominator(1001)
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = width - width % 2, height - height % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = fractions.Fraction(1, CLOCK)
        self.stream.codec_context.time_base = fractions.Fraction(1, CLOCK)
        self.stream.options = dict(X264_OPTIONS)
        self.stream.codec_context.thread_count = 1

    def add(self, rgb: np.ndarray, t: float) -> None:
        h, w = self.stream.height, self.stream.width
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
        frame.pts, frame.time_base = round((CLOCK_START_S + t) * CLOCK), fractions.Fraction(1, CLOCK)
        self.container.mux(self.stream.encode(frame))
        self.last = t
        self.frames += 1

    def finish(self, end: float) -> Segment:
        self.container.mux(self.stream.encode(None))
        self.container.close()
        self.partial.replace(self.path)
        self.container = None
        return Segment(self.path, self.index, self.start, max(end - self.start, 1e-3), self.frames)

    def discard(self) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.close()
            with contextlib.suppress(FileNotFoundError):
                self.partial.unlink()


__all__ = ["CLOCK", "CLOCK_START_S", "QUEUE_FRAMES", "SEGMENT_S", "SEGMENT_WAIT_S", "EncodedSink", "PreviewSink", "Segment",
           "SegmentWriter"]
