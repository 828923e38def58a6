"""The Video tab: the page's Convert video, its Stop button and the ``/stylize_video`` API.

The clip passes the upload gate like a photo, its container is probed against the limits before any work
(``--max-video-seconds``, ``--max-video-frames``, pixels per frame), then the engine decodes, stylises and encodes
it frame by frame into this process's private results folder. Both events run on the photos' concurrency group
(``state.CONVERT_GROUP``): a video takes the same place in the queue as a photo. The deadline (``--timeout``), the
client watch (a closed page, an API client gone) and the Stop button are checked between frames; a stopped or
failed run leaves no file behind.
"""
from __future__ import annotations

import contextvars
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from .. import gradio_internals, imaging, preview, temp_files, video
from ..upload_gate import PhotoRefused
from . import inputs, texts
from .state import CONVERT_GROUP, LastRun, StylizeApp

log = logging.getLogger("animegan.app")

API_NAME = "stylize_video"
KEEP_VIDEOS = 8                 # result videos kept on disk (Gradio copies each into its own cache first)
NOUN = "video"                  # what Gradio's own file check refused, in this tab's words
STOP = "video"                  # this tab's Stop button (state.StylizeApp.press_stop)
PREVIEW_FOLDER = "preview"      # the run's preview segments, inside its result folder


class VideoTab:
    """The Video tab's conversions of one demo (``demo.animegan_video``, shared by its sessions)."""

    noun = NOUN

    def __init__(self, app: StylizeApp) -> None:
        self.app = app
        self.config = app.config
        self.limits = app.config.video_limits()
        # Result folders are bounded by count and by age, like the photos' (a video is larger: fewer are kept).
        self.results = temp_files.ResultFolders(max(KEEP_VIDEOS, 2 * self.config.workers()), self.config.temp_max_age)

    def stylize_video(self, video_file: Any, style: str | None, max_side: Any, temporal: Any, framing: Any = None,
                      keep_color: Any = None, side_by_side: Any = None,
                      request: gr.Request = None,  # type: ignore[assignment]  # Gradio fills it in
                      progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008 (Gradio's way)
        """The /stylize_video API (its description, from the styles, is :func:`texts.stylize_video_doc`)."""
        return self._observed(video_file, style, max_side, temporal, framing, request, progress, keep_color,
                              side_by_side)

    def convert_page(self, video_file: Any, style: str | None, max_side: Any, temporal: Any, framing: Any = None,
                     keep_color: Any = None, side_by_side: Any = None,
                     request: gr.Request = None,  # type: ignore[assignment]
                     progress: gr.Progress = gr.Progress()  # noqa: B008
                     ) -> Iterator[tuple[Any, Any, Any]]:
        """The page's Convert: (preview, result, notice). The preview plays each segment as the run makes it; at the
        end the finished MP4 and its notice. A failure stays readable in the notice area (and a toast says it too).

        The run goes on in a thread of its own (the generator only passes segments on): Stop, a closed page and the
        deadline reach it through its checks between frames, as before, and its folder (segments included) goes.
        """
        segments: queue.Queue = queue.Queue()  # a few per second at most; the run never waits on the page
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = self._observed(video_file, style, max_side, temporal, framing, request, progress,
                                                   keep_color, side_by_side, on_segment=segments.put)
            except BaseException as exc:  # noqa: BLE001 - raised again in the page's thread below
                outcome["error"] = exc
            finally:
                segments.put(None)

        # The copied context carries Gradio's (progress, warnings) into the run's thread.
        worker = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="video-convert", daemon=True)
        worker.start()
        while (segment := segments.get()) is not None:
            yield segment, gr.skip(), gr.skip()
        worker.join()
        error = outcome.get("error")
        if isinstance(error, gr.Error) and error.title == texts.STOPPED_TITLE:
            yield None, None, texts.STOPPED_NOTICE  # its user knows: no toast
            return
        if isinstance(error, gr.Error):
            gr.Warning(error.message, title=error.title)
            yield gr.skip(), None, texts.page_error(error)
            return
        if error is not None:
            raise error
        path, text = outcome["result"]
        yield gr.skip(), path, text

    def _observed(self, video_file: Any, style: Any, max_side: Any, temporal: Any, framing: Any,
                  request: gr.Request | None, progress: gr.Progress, keep_color: Any = None,
                  side_by_side: Any = None,
                  on_segment: Callable[[preview.Segment], None] | None = None) -> tuple[str, str]:
        started = time.perf_counter()
        try:
            path, text, stats = self._convert(video_file, style, max_side, temporal, framing, request, progress,
                                              keep_color, side_by_side, on_segment)
        except gr.Error as exc:
            self.observe(style, started, None, exc)
            raise
        self.observe(style, started, stats, None)
        return path, text

    def observe(self, style: Any, started: float, stats: video.VideoStats | None, error: gr.Error | None) -> None:
        """Count one request of this tab in the metrics (with ``--metrics``)."""
        metrics = self.app.metrics
        if metrics is not None and hasattr(metrics, "record_video"):
            metrics.record_video(str(style or "none"), time.perf_counter() - started, stats,
                                 error_title=getattr(error, "title", None) or ("Error" if error else None))

    def _convert(self, video_file: Any, style: Any, max_side: Any, temporal: Any, framing: Any,
                 request: gr.Request | None, progress: gr.Progress, keep_color: Any = None, side_by_side: Any = None,
                 on_segment: Callable[[preview.Segment], None] | None = None) -> tuple[str, str, video.VideoStats]:
        app = self.app
        with app.gauge:
            spec = app.chosen_style(style)
            side = inputs.video_side(max_side)
            smooth = inputs.temporal(temporal)
            # One deadline for the whole request: probe, decode, model, encode.
            options = app.options.replace(style=spec.id, max_side=side, framing=inputs.video_framing(framing),
                                          keep_color=inputs.keep_color_value(keep_color),
                                          side_by_side=inputs.side_by_side(side_by_side),
                                          ).with_timeout(self.config.timeout)
            source, name = self._video(video_file)
            watch = app.watch(request, stop_button=STOP)
            folder = app.result_folder()
            writer: preview.SegmentWriter | None = None
            try:
                watch.check()
                info = video.probe(source, self.limits, timeout=options.seconds_left())  # the limits, before any work
                progress(0.0, desc=f"Preparing the {spec.name} style")
                folder.mkdir(parents=True)
                dest = folder / imaging.result_name(name, spec.id, "mp4", side_by_side=options.side_by_side)
                if on_segment is not None:  # the preview's segments live and go with the result
                    writer = preview.SegmentWriter(folder / PREVIEW_FOLDER, info.fps, on_segment)
                stats = app.converter.clip(source, dest, options, temporal=smooth, limits=self.limits,
                                           on_frame=_frame_progress(progress, info), check=watch.check,
                                           preview=writer)
                if writer is not None:
                    writer.close()  # its last segment goes out before the result
                watch.check()
            except BaseException as exc:
                if writer is not None:
                    writer.abandon()
                shutil.rmtree(folder, ignore_errors=True)  # a stopped or failed run leaves nothing behind
                if isinstance(exc, gr.Error):
                    raise
                if isinstance(exc, video.VideoError):
                    app.discard_refused(str(source))  # unusable whatever the settings: nothing of it stays on disk
                    raise gr.Error(f"This video can't be used: {str(exc).rstrip('.')}.", title="Unusable video",
                                   print_exception=False) from None
                if isinstance(exc, Exception):
                    raise texts.video_error(exc, spec, side) from exc
                raise
            self.results.keep(folder)
            app.last_run = LastRun(stats, time.time())
            return str(dest), texts.video_notice(stats, spec.name, info), stats

    def _video(self, payload: Any) -> tuple[Path, str]:
        if payload is None or payload == "" or payload == {}:
            raise gr.Error("Add a video first: upload one or record one with the webcam.", title="No video",
                           print_exception=False)
        try:
            path, name = self.app.gate.checked_path(payload, "video")
        except PhotoRefused as exc:
            log.warning("video refused: %s", exc.reason)
            raise gr.Error(exc.public, title="Unusable video", print_exception=False) from None
        return path, inputs.safe_stem(name)

    def press_stop(self, request: gr.Request) -> None:
        """The page's Stop: its conversion that joined the queue before now ends at its next check."""
        self.app.press_stop(request, STOP)

    def refuse_input(self, exc: Exception, path_refused: bool) -> gr.Error:
        """The answer to a request of this tab that Gradio refused before the handler ran (counted as a failure)."""
        error = texts.file_refused(NOUN) if path_refused else texts.bad_request(texts.VIDEO_TAKES)
        self.observe(None, time.perf_counter(), None, error)
        return error

    # -- the Blocks -----------------------------------------------------------------------------
    def add_tab(self, choices: list[tuple[str, str]], first_ok: str | None) -> None:
        """The Video tab and its events; call inside ``gr.Tabs``."""
        app, config, workers = self.app, self.config, self.config.workers()
        with gr.Tab("Video", id="video-tab"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1):
                    clip = gr.Video(label="Video", sources=["upload", "webcam"], include_audio=True, format=None,
                                    webcam_options=gr.WebcamOptions(mirror=False), height=320, elem_id="video")
                    style = gr.Radio(choices=choices, value=first_ok, label="Style", elem_id="video-style")
                    with gr.Row():
                        max_side = gr.Slider(0, 4096, value=video.VIDEO_DEFAULT_MAX_SIDE, step=16,
                                             label="Max side (px)",
                                             info="Longer side of the result; larger clips are downscaled. "
                                                  "0 = native size.", elem_id="video-max-side")
                        temporal = gr.Checkbox(True, label="Temporal smoothing",
                                               info="Steady tones from frame to frame (no flicker).", elem_id="temporal")
                    keep_color = gr.Slider(0, 1, value=config.keep_color, step=0.05, label="Keep colours",
                                           elem_id="video-keep-color",
                                           info="0: the style's colours; 1: the clip's own colours under the style's "
                                                "lines.")
                    side_by_side = gr.Checkbox(False, label="Side by side", elem_id="video-side-by-side",
                                               info="The clip and the anime video next to each other, twice as "
                                                    "wide, with the sound.")
                    framing = gr.Radio(choices=[("Whole frame", "whole"), ("Centre square", "center")], value="whole",
                                       label="Framing", info="Portrait styles: the whole frame, or its centre square "
                                       "at the style's training size.", visible=app.is_portrait(first_ok),
                                       elem_id="video-framing")
                    with gr.Row():
                        convert = gr.Button("Convert video", variant="primary", elem_id="convert-video")
                        stop = gr.Button("Stop", variant="stop", elem_id="stop-video")
                    gr.Markdown(f"Clips up to {self.limits.max_seconds:g} s and {self.limits.max_frames} frames; the "
                                "sound is kept.", elem_id="video-limits")
                with gr.Column(scale=1):
                    live = gr.Video(label="Preview (plays as it converts)", streaming=True, autoplay=True,
                                    interactive=False, buttons=[], height=240, elem_id="video-preview")
                    gradio_internals.stream_segments(live, _segment_chunk)
                    result = gr.Video(label="Anime video (MP4)", format=None, interactive=False, autoplay=False,
                                      buttons=["download"], height=360, elem_id="video-result")
                    note = gr.Markdown(label="Notice", elem_id="video-notice")
            api_trigger = gr.Button(visible=False, elem_id="api-stylize-video")  # inside the tab: Tabs hold only tabs
        style.change(lambda s: gr.update(visible=app.is_portrait(s)), inputs=[style], outputs=[framing], queue=False,
                     api_visibility="private", show_progress="hidden")
        page_inputs = [clip, style, max_side, temporal, framing, keep_color, side_by_side]
        convert.click(self.convert_page, inputs=page_inputs, outputs=[live, result, note],
                      api_visibility="private", preprocess=False, concurrency_limit=workers,
                      concurrency_id=CONVERT_GROUP, show_progress="full", show_progress_on=[result])
        # Stop: the page's running conversion ends at its next check between frames and says so itself (not
        # Gradio's cancels, whose "Error" badge on the outputs races whatever clears it: watch.StopPresses).
        stop.click(self.press_stop, inputs=None, outputs=None, queue=False, api_visibility="private",
                   show_progress="hidden")
        # framing came after the first four inputs, with a default: 4-argument calls keep working.
        api_trigger.click(_api_function(self), inputs=page_inputs, outputs=[result, note],
                          api_name=API_NAME, preprocess=False, concurrency_limit=workers,
                          concurrency_id=CONVERT_GROUP, show_progress="hidden")


def _segment_chunk(value: Any) -> tuple[bytes, float] | None:
    """A preview segment the page's Convert yielded -> its bytes and length, for the streaming preview."""
    if not isinstance(value, preview.Segment):
        return None
    try:
        return value.path.read_bytes(), value.duration
    except FileNotFoundError:  # the run was stopped, and its folder removed, before this one went out
        return None


def _frame_progress(progress: gr.Progress, info: video.VideoInfo) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        progress((done, total or info.frames or None), desc="Stylizing frames", unit="frames")
    return report


def _api_function(tab: VideoTab) -> Callable[..., tuple[str, str]]:
    """``tab.stylize_video`` with the description written from this app's styles (Gradio reads ``__doc__``)."""
    def stylize_video(video_file: Any, style: str | None, max_side: Any, temporal: Any, framing: Any = "whole",
                      keep_color: float = 0.0, side_by_side: bool = False,
                      request: gr.Request = None,  # type: ignore[assignment]  # Gradio fills it in
                      progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008 (Gradio's way)
        return tab.stylize_video(video_file, style, max_side, temporal, framing, keep_color, side_by_side, request,
                                 progress)
    stylize_video.__doc__ = texts.stylize_video_doc(tab.app.styles(), tab.limits)
    return stylize_video
