"""The Video tab and the live webcam mirror: the app's side of :mod:`animegan.video`.

* **Video** (the page's Convert and the ``/stylize_video`` API): the clip passes the upload gate like a photo,
  its container is probed against the limits before any work (``--max-video-seconds``, ``--max-video-frames``,
  pixels per frame), then the engine decodes, stylises and encodes it frame by frame into this process's private
  results folder. Both events run on the photos' concurrency group (``ui.CONVERT_GROUP``): a video takes the
  same place in the queue as a photo. The deadline (``--timeout``), the client watch (a closed page, an API
  client gone) and the Stop button are checked between frames; a stopped or failed run leaves no file behind.
* **Webcam mirror**: a ``.stream()`` event on its own concurrency group (a stream holds its slot for its whole
  time limit, so it must not block conversions). A stream beyond ``--webcam-streams`` is refused by the request
  guard (:meth:`VideoApp.webcam_slots`) rather than left waiting in Gradio's queue, where it would take a photo's
  place. Gradio keeps only the newest frame a stream has sent, so frames
  that arrive while one is being stylised are dropped, never queued. Each frame passes the same size and pixel
  gates as a photo; each session has its own :class:`~animegan.video.FrameSmoother` and fps reading.
"""
from __future__ import annotations

import base64
import binascii
import io
import logging
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from . import gradio_internals, imaging, memory, video
from .engine import ConversionTimeout, OutOfMemory
from .imaging import InvalidImageError
from .memory import DeviceError
from .request_guard import Slots
from .styles import StyleSpec
from .ui import (
    CONVERT_GROUP,
    WEBCAM_API,
    ClientGone,
    ClientWatch,
    LastRun,
    Stopped,
    StylizeApp,
    _flag,
    _max_side,
    _safe_stem,
    keep_color_value,
    style_label,
    user_error,
)
from .upload_gate import PhotoRefused
from .weights import WeightsError

log = logging.getLogger("animegan.app")

WEBCAM_GROUP = "webcam"         # the mirror's own concurrency id (see above)
KEEP_VIDEOS = 8                 # result videos kept on disk (Gradio copies each into its own cache first)
FPS_WINDOW = 12                 # frames over which the mirror's achieved fps is measured
WEBCAM_JPEG_QUALITY = 85
STOPPED_NOTICE = "**Stopped:** the conversion was stopped; nothing was kept."
_DATA_URL_TYPES = ("data:image/jpeg;base64,", "data:image/png;base64,", "data:image/webp;base64,")


class StopWatch(ClientWatch):
    """:class:`~animegan.ui.ClientWatch`, plus the Stop button: Gradio cancels a running job by dropping it from
    its active jobs (the worker thread runs on), so a job no longer there was stopped by its user."""

    def check(self) -> None:
        event, queue = self.event, getattr(self.app.demo, "_queue", None)
        # Stop first: a cancelled job's client also stops listening, which would read as a client that left.
        if event is not None and queue is not None and not any(
                job is not None and event in job for job in list(getattr(queue, "active_jobs", []) or [])):
            raise Stopped("the conversion was stopped")
        super().check()


class VideoApp:
    """The Video tab's conversions and the webcam mirror of one demo (shared by its sessions)."""

    def __init__(self, app: StylizeApp) -> None:
        self.app = app
        self.config = app.config
        self.limits = app.config.video_limits()
        self._results: deque[Path] = deque()
        self._results_lock = threading.Lock()

    # -- video files ----------------------------------------------------------------------------------
    def stylize_video(self, video_file: Any, style: str | None, max_side: Any, temporal: Any, framing: Any = None,
                      keep_color: Any = None, request: gr.Request = None,  # type: ignore[assignment]  # Gradio fills it in
                      progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008 (Gradio's way)
        """The /stylize_video API (its description, from the styles, is :func:`stylize_video_doc`)."""
        return self._observed(video_file, style, max_side, temporal, framing, request, progress, keep_color)

    def convert_page(self, video_file: Any, style: str | None, max_side: Any, temporal: Any, framing: Any = None,
                     keep_color: Any = None, request: gr.Request = None,  # type: ignore[assignment]
                     progress: gr.Progress = gr.Progress()) -> tuple[Any, str]:  # noqa: B008
        """The page's Convert: a failure stays readable in the notice area (and a toast says it too)."""
        try:
            path, text = self._observed(video_file, style, max_side, temporal, framing, request, progress, keep_color)
        except gr.Error as exc:
            gr.Warning(exc.message, title=exc.title)
            return None, f"**{exc.title or 'Error'}:** {exc.message}"
        return path, text

    def _observed(self, video_file: Any, style: Any, max_side: Any, temporal: Any, framing: Any,
                  request: gr.Request | None, progress: gr.Progress, keep_color: Any = None) -> tuple[str, str]:
        started = time.perf_counter()
        try:
            path, text, stats = self._convert(video_file, style, max_side, temporal, framing, request, progress,
                                              keep_color)
        except gr.Error as exc:
            self._observe(style, started, None, exc)
            raise
        self._observe(style, started, stats, None)
        return path, text

    def _observe(self, style: Any, started: float, stats: video.VideoStats | None, error: gr.Error | None) -> None:
        metrics = self.app.metrics
        if metrics is not None and hasattr(metrics, "record_video"):
            metrics.record_video(str(style or "none"), time.perf_counter() - started, stats,
                                 error_title=getattr(error, "title", None) or ("Error" if error else None))

    def _convert(self, video_file: Any, style: Any, max_side: Any, temporal: Any, framing: Any,
                 request: gr.Request | None, progress: gr.Progress,
                 keep_color: Any = None) -> tuple[str, str, video.VideoStats]:
        app = self.app
        with app.gauge:
            spec = app._style(style)
            side = _video_side(max_side)
            smooth = True if temporal is None else _flag(temporal)
            # One deadline for the whole request: probe, decode, model, encode.
            options = app.options.replace(style=spec.id, max_side=side, framing=_video_framing(framing),
                                          keep_color=keep_color_value(keep_color)).with_timeout(self.config.timeout)
            source, name = self._video(video_file)
            watch = StopWatch(app, request)
            folder = app.results_dir / uuid.uuid4().hex[:12]
            try:
                watch.check()
                info = video.probe(source, self.limits, timeout=options.seconds_left())  # the limits, before any work
                progress(0.0, desc=f"Preparing the {spec.name} style")
                folder.mkdir(parents=True)
                dest = folder / imaging.result_name(name, spec.id, "mp4")
                stats = video.stylize_video(source, dest, options, temporal=smooth, limits=self.limits,
                                            registry=app.registry, on_frame=_frame_progress(progress, info),
                                            check=watch.check)
                watch.check()
            except BaseException as exc:
                shutil.rmtree(folder, ignore_errors=True)  # a stopped or failed run leaves nothing behind
                if isinstance(exc, gr.Error):
                    raise
                if isinstance(exc, video.VideoError):
                    app.discard_refused(str(source))  # unusable whatever the settings: nothing of it stays on disk
                    raise gr.Error(f"This video can't be used: {str(exc).rstrip('.')}.", title="Unusable video",
                                   print_exception=False) from None
                if isinstance(exc, Exception):
                    raise video_error(exc, spec, side) from exc
                raise
            self._keep(folder)
            app.last_run = LastRun(stats, time.time())
            return str(dest), video_notice(stats, spec.name, info), stats

    def _video(self, payload: Any) -> tuple[Path, str]:
        if payload is None or payload == "" or payload == {}:
            raise gr.Error("Add a video first: upload one or record one with the webcam.", title="No video",
                           print_exception=False)
        try:
            path, name = self.app.gate.checked_path(payload, "video")
        except PhotoRefused as exc:
            log.warning("video refused: %s", exc.reason)
            raise gr.Error(exc.public, title="Unusable video", print_exception=False) from None
        return path, _safe_stem(name)

    def _keep(self, folder: Path) -> None:
        """Result folders are bounded by count and by age, like the photos' (a video is larger: fewer are kept)."""
        with self._results_lock:
            self._results.append(folder)
            too_old = time.time() - self.config.temp_max_age
            while len(self._results) > max(KEEP_VIDEOS, 2 * self.config.workers()) or (
                    len(self._results) > 1 and _mtime(self._results[0]) < too_old):
                shutil.rmtree(self._results.popleft(), ignore_errors=True)

    # -- the webcam mirror ------------------------------------------------------------------------------
    def mirror(self, frame: Any, style: Any, temporal: Any, session: WebcamSession | None, keep_color: Any = None) \
            -> tuple[Any, str, WebcamSession | None]:
        """One webcam frame in, its stylised copy out (a JPEG data URL: nothing is written to disk), the fps text,
        and the session's state (smoother and frame times)."""
        if frame is None or frame == {} or frame == "":
            return None, "", session
        spec = self.app._style(style)
        strength = keep_color_value(keep_color)  # frame by frame, after the model: the smoothing state is unchanged
        smooth = True if temporal is None else _flag(temporal)
        if session is None or session.style != spec.id or session.temporal != smooth:
            session = WebcamSession(spec.id, smooth)  # a new style or setting starts the smoothing afresh
        data = self._frame_bytes(frame)
        try:
            photo = imaging.load_photo(data, max_side=self.config.webcam_side, max_pixels=self.config.max_pixels)
            options = self.app.options.replace(style=spec.id, max_side=self.config.webcam_side, keep_color=strength)
            out = video.stylize_frame(photo.rgb, options, session.smoother, registry=self.app.registry)
        except InvalidImageError as exc:
            self.count_frame("unusable_frame")
            raise gr.Error(f"This webcam frame can't be used: {str(exc).rstrip('.')}.", title="Unusable frame",
                           print_exception=False) from None
        except Exception as exc:
            self.count_frame("error")
            raise user_error(exc, spec, self.config.webcam_side) from exc
        session.tick()
        self.count_frame("ok")
        return {"url": jpeg_data_url(out), "orig_name": "webcam.jpg"}, session.fps_text(photo.size), session

    def _frame_bytes(self, frame: Any) -> bytes:
        """The frame's bytes: the page sends a JPEG data URL (bounded like an upload); a file payload passes the
        upload gate like any photo."""
        if hasattr(frame, "model_dump"):
            frame = frame.model_dump()
        url = frame.get("url") if isinstance(frame, dict) else None
        if isinstance(url, str) and url.startswith("data:"):
            limit = self.app.gate.max_bytes
            if len(url) > limit * 4 // 3 + 64:
                self.count_frame("unusable_frame")
                raise gr.Error(f"The webcam frame is larger than the {limit / (1 << 20):.0f} MB upload limit.",
                               title="Unusable frame", print_exception=False)
            prefix = next((p for p in _DATA_URL_TYPES if url.startswith(p)), None)
            try:
                if prefix is None:
                    raise ValueError(url[:30])
                return base64.b64decode(url[len(prefix):], validate=True)
            except (ValueError, binascii.Error):
                self.count_frame("unusable_frame")
                raise gr.Error("The webcam frame is not a JPEG, PNG or WebP image.", title="Unusable frame",
                               print_exception=False) from None
        try:
            data, _ = self.app.gate.read(frame)
        except PhotoRefused as exc:
            self.count_frame("unusable_frame")
            log.warning("webcam frame refused: %s", exc.reason)
            raise gr.Error(exc.public.replace("photo", "webcam frame"), title="Unusable frame",
                           print_exception=False) from None
        return data

    def count_frame(self, outcome: str) -> None:
        metrics = self.app.metrics
        if metrics is not None and hasattr(metrics, "record_webcam_frame"):
            metrics.record_webcam_frame(outcome)

    def webcam_slots(self) -> Slots | None:
        """The webcam stream's slots for the request guard: a stream beyond ``--webcam-streams`` is refused at the
        door instead of waiting in Gradio's queue, whose one ``max_size`` would count it against the photos."""
        demo = self.app.demo
        fns = frozenset(i for i, fn in getattr(demo, "fns", {}).items() if fn.api_name == WEBCAM_API)
        if not fns or self.config.webcam_streams <= 0:
            return None
        n = self.config.webcam_streams
        return Slots(fns=fns, in_use=lambda: gradio_internals.group_in_use(demo, WEBCAM_GROUP), limit=n,
                     busy=f"The webcam mirror is busy: {n} stream{'s' if n != 1 else ''} at a time, each for at most "
                          f"{self.config.webcam_seconds} s. Start the webcam again in a moment.")


@dataclass
class WebcamSession:
    """One browser session's webcam stream: its style, its temporal state and when its last frames were served."""

    style: str
    temporal: bool
    smoother: video.FrameSmoother | None = None
    served: deque[float] = field(default_factory=lambda: deque(maxlen=FPS_WINDOW))

    def __post_init__(self) -> None:
        if self.temporal and self.smoother is None:
            self.smoother = video.FrameSmoother()

    def __deepcopy__(self, memo: dict) -> WebcamSession:  # Gradio copies state values; the smoother is ours alone
        return self

    def tick(self) -> None:
        self.served.append(time.monotonic())

    def fps(self) -> float | None:
        if len(self.served) < 2:
            return None
        span = self.served[-1] - self.served[0]
        return (len(self.served) - 1) / span if span > 0 else None

    def fps_text(self, size: tuple[int, int]) -> str:
        fps = self.fps()
        rate = f"{fps:.1f} fps" if fps is not None else "measuring fps"
        return f"{rate} at {size[0]}x{size[1]} px ({'smoothed' if self.temporal else 'per frame'})"


def jpeg_data_url(rgb: np.ndarray, quality: int = WEBCAM_JPEG_QUALITY) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _video_side(value: Any) -> int | None:
    """None or empty: the engine's default for videos (720 px); otherwise the photos' rule (0 = native)."""
    if value is None or value == "":
        return None
    return _max_side(value)


def _video_framing(value: Any) -> str:
    """The Video tab's framing: whole (default) or center (portrait styles; scene styles run whole frames)."""
    text = str(value or "whole").strip().lower()
    if text not in video.VIDEO_FRAMINGS:
        raise gr.Error(f"Video framing must be whole or center, not {text[:24]!r}: a face found anew in every "
                       "frame would shake the picture.", title="Bad framing", print_exception=False)
    return text


def _frame_progress(progress: gr.Progress, info: video.VideoInfo) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        progress((done, total or info.frames or None), desc="Stylizing frames", unit="frames")
    return report


def video_error(exc: Exception, spec: StyleSpec, side: int | None) -> gr.Error:
    """The photo's mapping (``ui.user_error``) where it fits a video too; a video's own words where it does not."""
    if isinstance(exc, ConversionTimeout):
        log.warning("video conversion timed out (style %s, max side %s): %s", spec.id, side, exc)
        return gr.Error(f"This video took too long and was {exc}. Try a smaller 'Max side' (for example 480) or a "
                        "shorter clip.", title="Too slow", print_exception=False)
    if isinstance(exc, OutOfMemory) or memory.is_out_of_memory(exc):
        log.warning("out of memory in a video (style %s, max side %s): %s", spec.id, side, exc)
        return gr.Error("Ran out of memory while stylizing this video. Try a smaller 'Max side' (for example 480); "
                        "other conversions running at the same time also use memory.", title="Out of memory",
                        print_exception=False)
    if isinstance(exc, (ClientGone, WeightsError, DeviceError)):
        return user_error(exc, spec, side or 0)
    ref = uuid.uuid4().hex[:8]
    log.error("video conversion failed (ref %s, style %s, max side %s)", ref, spec.id, side, exc_info=exc)
    return gr.Error(f"Something went wrong while converting this video (reference {ref}; the details are in the "
                    "server log). Try again, or try another clip or a smaller 'Max side'.",
                    title="Conversion failed", print_exception=False)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def video_notice(stats: video.VideoStats, style_name: str, info: video.VideoInfo) -> str:
    """The line under the result (and the API's second output): frames, sizes, time, speed, sound."""
    w, h = stats.output_size
    speed = stats.processing_fps
    sound = {"copied": "sound copied as it was", "aac": "sound re-encoded to AAC", "none": "no sound in the input"}
    parts = [(f"{style_name} style: {stats.frames} frames at {w}x{h} px, {stats.fps_in:g} fps, "
             f"in {memory.fmt_seconds(stats.seconds)} ({speed:.1f} frames/s{_where(stats)}); "
             f"{sound.get(stats.audio_mode, 'sound: ' + stats.audio_mode)}; "
             f"{'temporal smoothing on' if stats.temporal else 'per-frame (no smoothing)'}.")]
    iw, ih = stats.input_size
    if (iw, ih) != (w, h) and stats.framing == "whole":
        parts.append(f"Downscaled from {iw}x{ih} by 'Max side'; set it to 0 for the native size.")
    parts += [n[:1].upper() + n[1:] + ("" if n.endswith(".") else ".")
              for n in stats.notices if getattr(n, "kind", "") != "downscaled"]
    return " ".join(parts)


def _where(stats: video.VideoStats) -> str:
    device, precision = getattr(stats, "device", ""), getattr(stats, "precision", "")
    return (f" on {device}" if device else "") + (f" in {precision}" if precision else "")


def stylize_video_doc(styles: tuple[StyleSpec, ...], limits: video.VideoLimits) -> str:
    """The /stylize_video API's description (the API page and the MCP tool read it), written from the styles."""
    ids = ", ".join(f'"{s.id}" ({s.name})' for s in styles)
    portraits = ", ".join(s.id for s in styles if s.is_portrait) or "none here"
    return f"""Turn a video clip into anime art in one AnimeGANv2 style, frame by frame, keeping its sound.

    Args:
        video_file: the clip (MP4, MOV, WebM, MKV...: anything FFmpeg reads), uploaded as a file; at most {limits.max_seconds:g} s and {limits.max_frames} frames.
        style: style id, one of {ids}.
        max_side: longest side of the result in pixels (default {video.VIDEO_DEFAULT_MAX_SIDE}); larger clips are downscaled first. 0 keeps the native size.
        temporal: true (default) to smooth the tones across frames (no flicker); false for independent frames.
        framing: "whole" (default): the whole frame; "center": portrait styles ({portraits}) only, the centre square of every frame at the style's training size (scene styles ignore it).
        keep_color: 0 (default) to 1: how far the result takes the clip's own colours under the style's lines and tones, frame by frame.

    Returns:
        the stylized clip as an MP4 file (H.264, the input's frames, timing and sound), and a one-line notice.
    """


# -- the Blocks ---------------------------------------------------------------------------------------
def add_tabs(app: StylizeApp, avail: dict[str, tuple[bool, str]], first_ok: str | None) -> VideoApp:
    """The Video tab and (unless ``--webcam-streams 0``) the Webcam tab; call inside ``gr.Tabs``."""
    videos = VideoApp(app)
    config = app.config
    workers = config.workers()
    choices = [(style_label(s, avail.get(s.id, (False, ""))[0]), s.id) for s in app.styles()]
    with gr.Tab("Video", id="video-tab"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                clip = gr.Video(label="Video", sources=["upload", "webcam"], include_audio=True, format=None,
                                webcam_options=gr.WebcamOptions(mirror=False), height=320, elem_id="video")
                style = gr.Radio(choices=choices, value=first_ok, label="Style", elem_id="video-style")
                with gr.Row():
                    max_side = gr.Slider(0, 4096, value=video.VIDEO_DEFAULT_MAX_SIDE, step=16, label="Max side (px)",
                                         info="Longer side of the result; larger clips are downscaled. 0 = native size.",
                                         elem_id="video-max-side")
                    temporal = gr.Checkbox(True, label="Temporal smoothing",
                                           info="Steady tones from frame to frame (no flicker).", elem_id="temporal")
                keep_color = gr.Slider(0, 1, value=config.keep_color, step=0.05, label="Keep colours",
                                       elem_id="video-keep-color",
                                       info="0: the style's colours; 1: the clip's own colours under the style's lines.")
                framing = gr.Radio(choices=[("Whole frame", "whole"), ("Centre square", "center")], value="whole",
                                   label="Framing", info="Portrait styles: the whole frame, or its centre square at "
                                   "the style's training size.", visible=app.is_portrait(first_ok),
                                   elem_id="video-framing")
                with gr.Row():
                    convert = gr.Button("Convert video", variant="primary", elem_id="convert-video")
                    stop = gr.Button("Stop", variant="stop", elem_id="stop-video")
                gr.Markdown(f"Clips up to {videos.limits.max_seconds:g} s and {videos.limits.max_frames} frames; the "
                            "sound is kept.", elem_id="video-limits")
            with gr.Column(scale=1):
                result = gr.Video(label="Anime video (MP4)", format=None, interactive=False, autoplay=False,
                                  buttons=["download"], height=360, elem_id="video-result")
                note = gr.Markdown(label="Notice", elem_id="video-notice")
        api_trigger = gr.Button(visible=False, elem_id="api-stylize-video")  # inside the tab: Tabs hold only tabs
    style.change(lambda s: gr.update(visible=app.is_portrait(s)), inputs=[style], outputs=[framing], queue=False,
                 api_visibility="private", show_progress="hidden")
    running = convert.click(videos.convert_page, inputs=[clip, style, max_side, temporal, framing, keep_color],
                            outputs=[result, note],
                            api_visibility="private", preprocess=False, concurrency_limit=workers,
                            concurrency_id=CONVERT_GROUP, show_progress="full", show_progress_on=[result])
    # Stop: the job is cancelled, and the result area says so (the cancelled event alone leaves an "Error" badge)
    stop.click(None, cancels=[running], api_visibility="private").then(
        lambda: (None, STOPPED_NOTICE), outputs=[result, note], queue=False, api_visibility="private",
        show_progress="minimal")
    # framing came after the first four inputs, with a default: 4-argument calls keep working.
    api_trigger.click(_api_function(videos), inputs=[clip, style, max_side, temporal, framing, keep_color],
                      outputs=[result, note],
                      api_name="stylize_video", preprocess=False, concurrency_limit=workers,
                      concurrency_id=CONVERT_GROUP, show_progress="hidden")
    if config.webcam_streams > 0:
        _webcam_tab(videos, choices, first_ok)
    return videos


def _webcam_tab(videos: VideoApp, choices: list[tuple[str, str]], first_ok: str | None) -> None:
    config = videos.config
    side = config.webcam_side
    with gr.Tab("Webcam mirror", id="webcam-tab"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                camera = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy", height=320,
                                  webcam_options=gr.WebcamOptions(
                                      mirror=True, constraints={"video": {"width": {"ideal": max(320, side)}}}),
                                  elem_id="webcam")
                style = gr.Radio(choices=choices, value=first_ok, label="Style", elem_id="webcam-style")
                temporal = gr.Checkbox(True, label="Temporal smoothing", elem_id="webcam-temporal")
                keep_color = gr.Slider(0, 1, value=config.keep_color, step=0.05, label="Keep colours",
                                       elem_id="webcam-keep-color",
                                       info="0: the style's colours; 1: your own colours under the style's lines.")
            with gr.Column(scale=1):
                mirror = gr.Image(label="Anime mirror", interactive=False, height=320, elem_id="webcam-result")
                fps = gr.Markdown(elem_id="webcam-fps")
        gr.Markdown(f"A live mirror at {side} px; streams stop after {config.webcam_seconds} s (start again to "
                    f"continue). Frames that arrive while one is being stylised are skipped, not queued.",
                    elem_id="webcam-note")
        session = gr.State(None)
    camera.stream(videos.mirror, inputs=[camera, style, temporal, session, keep_color], outputs=[mirror, fps, session],
                  stream_every=1.0 / config.webcam_fps, time_limit=config.webcam_seconds,
                  concurrency_limit=config.webcam_streams, concurrency_id=WEBCAM_GROUP, preprocess=False,
                  postprocess=False, show_progress="hidden", api_name=WEBCAM_API, api_visibility="private")


def _api_function(videos: VideoApp) -> Callable[..., tuple[str, str]]:
    """``videos.stylize_video`` with the description written from this app's styles (Gradio reads ``__doc__``)."""
    def stylize_video(video_file: Any, style: str | None, max_side: Any, temporal: Any, framing: Any = "whole",
                      keep_color: float = 0.0, request: gr.Request = None,  # type: ignore[assignment]  # Gradio fills it in
                      progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008 (Gradio's way)
        return videos.stylize_video(video_file, style, max_side, temporal, framing, keep_color, request, progress)
    stylize_video.__doc__ = stylize_video_doc(videos.app.styles(), videos.limits)
    return stylize_video
