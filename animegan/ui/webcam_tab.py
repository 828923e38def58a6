"""The Webcam mirror tab: a live ``.stream()`` event that stylises webcam frames.

The stream runs on its own concurrency group (a stream holds its slot for its whole time limit, so it must not
block conversions). A stream beyond ``--webcam-streams`` is refused by the request guard
(:meth:`WebcamTab.slots`) rather than left waiting in Gradio's queue, where it would take a photo's place. Gradio
keeps only the newest frame a stream has sent, so frames that arrive while one is being stylised are dropped, never
queued. Each frame passes the same size and pixel gates as a photo; each session has its own
:class:`~animegan.video.FrameSmoother` and fps reading.
"""
from __future__ import annotations

import base64
import binascii
import io
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from .. import gradio_internals, imaging, video
from ..imaging import InvalidImageError
from ..request_guard import Slots
from ..upload_gate import PhotoRefused
from . import inputs, texts
from .state import StylizeApp

log = logging.getLogger("animegan.app")

API_NAME = "mirror"             # the stream event's name (not an API endpoint: its visibility is private)
WEBCAM_GROUP = "webcam"         # the mirror's own concurrency id (see above)
FPS_WINDOW = 12                 # frames over which the mirror's achieved fps is measured
WEBCAM_JPEG_QUALITY = 85
NOUN = "webcam frame"           # what Gradio's own file check refused, in this tab's words
_DATA_URL_TYPES = ("data:image/jpeg;base64,", "data:image/png;base64,", "data:image/webp;base64,")


class WebcamTab:
    """The webcam mirror of one demo (``demo.animegan_webcam``, shared by its sessions)."""

    noun = NOUN

    def __init__(self, app: StylizeApp) -> None:
        self.app = app
        self.config = app.config

    def mirror(self, frame: Any, style: Any, temporal: Any, session: WebcamSession | None, keep_color: Any = None) \
            -> tuple[Any, str, WebcamSession | None]:
        """One webcam frame in, its stylised copy out (a JPEG data URL: nothing is written to disk), the fps text,
        and the session's state (smoother and frame times)."""
        if frame is None or frame == {} or frame == "":
            return None, "", session
        spec = self.app.chosen_style(style)
        strength = inputs.keep_color_value(keep_color)  # frame by frame, after the model: the smoothing state is unchanged
        smooth = inputs.temporal(temporal)
        if session is None or session.style != spec.id or session.temporal != smooth:
            session = WebcamSession(spec.id, smooth)  # a new style or setting starts the smoothing afresh
        data = self._frame_bytes(frame)
        try:
            photo = imaging.load_photo(data, max_side=self.config.webcam_side, max_pixels=self.config.max_pixels)
            options = self.app.options.replace(style=spec.id, max_side=self.config.webcam_side, keep_color=strength)
            out = self.app.converter.frame(photo.rgb, options, session.smoother)
        except InvalidImageError as exc:
            self.count_frame("unusable_frame")
            raise gr.Error(f"This webcam frame can't be used: {str(exc).rstrip('.')}.", title="Unusable frame",
                           print_exception=False) from None
        except Exception as exc:
            self.count_frame("error")
            raise texts.user_error(exc, spec, self.config.webcam_side) from exc
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
        """Count one frame in the metrics (with ``--metrics``): ok, error or unusable_frame."""
        metrics = self.app.metrics
        if metrics is not None and hasattr(metrics, "record_webcam_frame"):
            metrics.record_webcam_frame(outcome)

    def refuse_input(self, exc: Exception, path_refused: bool) -> gr.Error:
        """The answer to a frame that Gradio refused before the handler ran (counted as an unusable frame)."""
        error = texts.file_refused(NOUN) if path_refused else \
            gr.Error(texts.WEBCAM_TAKES, title="Unusable frame", print_exception=False)
        self.count_frame("unusable_frame")
        return error

    def slots(self) -> Slots | None:
        """The webcam stream's slots for the request guard: a stream beyond ``--webcam-streams`` is refused at the
        door instead of waiting in Gradio's queue, whose one ``max_size`` would count it against the photos."""
        demo = self.app.demo
        fns = gradio_internals.event_indices(demo, API_NAME)
        if not fns or self.config.webcam_streams <= 0:
            return None
        n = self.config.webcam_streams
        return Slots(fns=fns, in_use=lambda: gradio_internals.group_in_use(demo, WEBCAM_GROUP), limit=n,
                     busy=f"The webcam mirror is busy: {n} stream{'s' if n != 1 else ''} at a time, each for at most "
                          f"{self.config.webcam_seconds} s. Start the webcam again in a moment.")

    # -- the Blocks -----------------------------------------------------------------------------
    def add_tab(self, choices: list[tuple[str, str]], first_ok: str | None) -> None:
        """The Webcam mirror tab and its stream event; call inside ``gr.Tabs``."""
        config = self.config
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
        camera.stream(self.mirror, inputs=[camera, style, temporal, session, keep_color],
                      outputs=[mirror, fps, session], stream_every=1.0 / config.webcam_fps,
                      time_limit=config.webcam_seconds, concurrency_limit=config.webcam_streams,
                      concurrency_id=WEBCAM_GROUP, preprocess=False, postprocess=False, show_progress="hidden",
                      api_name=API_NAME, api_visibility="private")


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
    """A frame as a JPEG data URL: the mirror's output goes to the page without touching the disk."""
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
