"""The Photo tab: its components, the page's Convert, the ``/stylize`` API and the examples.

* Convert (the page) and ``/stylize`` (API): both queued on the ``convert`` concurrency group, limited to the
  configured number of conversions at once. The page's event also returns the before/after pair for the slider,
  so nothing that decodes a photo runs outside the queue. An example click fills the inputs, then runs the
  page's Convert on the same group.
* Inputs arrive unprocessed (``preprocess=False``) so that every check, and so every message the user sees, is
  ours: the photo may be a path or Gradio's file payload, and it passes the upload gate whatever the payload
  claims to be.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gradio as gr
from PIL import Image

from .. import gradio_internals, imaging
from ..engine import Deadline, RunStats
from ..framing import KEEP
from ..imaging import InvalidImageError
from ..upload_gate import PhotoRefused
from . import inputs, texts
from .batch_part import BatchPart
from .state import CONVERT_GROUP, EXAMPLES_DIR, ZERO_GPU, LastRun, StylizeApp

log = logging.getLogger("animegan.app")

EXAMPLE_MAX_SIDE = 512
NOUN = "photo"  # what Gradio's own file check refused, in this tab's words


class PhotoTab:
    """The Photo tab of one demo (``demo.animegan_photo``): its conversions and its components."""

    noun = NOUN

    def __init__(self, app: StylizeApp) -> None:
        self.app = app

    # -- conversion -----------------------------------------------------------------------------
    def stylize(self, image: Any, style: str | None, max_side: Any, keep_brightness: Any, framing: Any = None,
                background: Any = None, keep_color: Any = None, side_by_side: Any = None,
                request: gr.Request = None,  # type: ignore[assignment]  # Gradio fills it in
                progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008 (Gradio's way)
        """The /stylize API (its description, from the styles, is :func:`texts.stylize_doc`)."""
        path, text, _ = self._observed(image, style, max_side, keep_brightness, request, progress, before=False,
                                       framing=framing, background=background, keep_color=keep_color,
                                       side_by_side=side_by_side)
        return path, text

    def convert_page(self, image: Any, style: str | None, max_side: Any, keep_brightness: Any, framing: Any = None,
                     background: Any = None, keep_color: Any = None, side_by_side: Any = None,
                     request: gr.Request = None,  # type: ignore[assignment]
                     progress: gr.Progress = gr.Progress()) -> tuple[tuple[Any, Any], str, str]:  # noqa: B008
        """The page's Convert: the same conversion, plus the before/after pair for the slider, in one queued job.

        A failure stays readable where the result would be (a toast alone vanishes after a few seconds and leaves
        bare "Error" badges): the notice area shows it, and a toast says it too. The API still raises.
        """
        try:
            path, text, pair = self._observed(image, style, max_side, keep_brightness, request, progress, before=True,
                                              framing=framing, background=background, keep_color=keep_color,
                                              side_by_side=side_by_side)
        except gr.Error as exc:
            gr.Warning(exc.message, title=exc.title)
            return gr.skip(), None, texts.page_error(exc)
        return pair or (path, path), path, text

    def _observed(self, image: Any, style: Any, max_side: Any, keep_brightness: Any, request: gr.Request | None,
                  progress: gr.Progress, before: bool, framing: Any = None, background: Any = None,
                  keep_color: Any = None, side_by_side: Any = None) -> tuple[str, str, tuple[Any, Any] | None]:
        started = time.perf_counter()
        try:
            path, text, stats, pair = self._convert(image, style, max_side, keep_brightness, request, progress,
                                                    before, framing, background, keep_color, side_by_side)
        except gr.Error as exc:
            self.observe(style, started, error=exc)
            raise
        self.observe(style, started, stats=stats)
        return path, text, pair

    def observe(self, style: Any, started: float, stats: RunStats | None = None, error: gr.Error | None = None) -> None:
        """Count one request of this tab in the metrics (with ``--metrics``)."""
        app = self.app
        if app.metrics is not None:
            app.metrics.record(str(style or "none"), app.config.device_type, time.perf_counter() - started, stats,
                               error_title=getattr(error, "title", None) or ("Error" if error else None),
                               replica=stats.replica if stats else None)

    def _convert(self, image: Any, style: str | None, max_side: Any, keep_brightness: Any, request: gr.Request | None,
                 progress: gr.Progress, want_before: bool, framing: Any = None, background: Any = None,
                 keep_color: Any = None, side_by_side: Any = None) -> tuple[str, str, RunStats, tuple[Any, Any] | None]:
        """One photo; the slider's (before, after) pair too when ``want_before`` (None: the result on both sides)."""
        app = self.app
        with app.gauge:
            spec = app.chosen_style(style)
            side = inputs.max_side(max_side)
            # One deadline for the whole request: read, decode, model, encode.
            options = app.options.replace(style=spec.id, max_side=side, keep_brightness=inputs.flag(keep_brightness),
                                          framing=inputs.framing(framing), background=inputs.background(background),
                                          keep_color=inputs.keep_color_value(keep_color),
                                          side_by_side=inputs.side_by_side(side_by_side),
                                          ).with_timeout(app.config.timeout)
            source, name = self._photo(image)
            watch = app.watch(request)
            try:
                watch.check()
                progress(0.0, desc=f"Preparing the {spec.name} style")
                on_bytes = None if ZERO_GPU else _download_progress(progress)
                progress(0.1, desc=f"Stylizing ({spec.name})")
                # On ZeroGPU the run happens in another process: callbacks cannot follow it (the deadline can).
                on_tile = None if ZERO_GPU else _tile_progress(progress, watch.check)
                result = app.converter(source, options, on_tile, on_bytes)
                watch.check()
                progress(0.95, desc="Encoding PNG")
                path = app.save_photo(result.image, imaging.result_name(name, spec.id, side_by_side=options.side_by_side),
                                      result.png)
                pair = slider_pair(source, result.image, result.stats, str(path), options.side_by_side) \
                    if want_before else None
                Deadline.of(options).check("while encoding the result")
            except gr.Error:
                raise
            except Exception as exc:  # mapped to a message the user can act on; tracebacks go to the log only
                if isinstance(exc, InvalidImageError):  # unusable whatever the settings: nothing of it stays on disk
                    app.discard_refused(image)
                raise texts.user_error(exc, spec, side, app.page_text) from exc
            app.last_run = LastRun(result.stats, time.time())
            return str(path), texts.notice(result.stats, spec.name), result.stats, pair

    def _photo(self, image: Any) -> tuple[bytes, str]:
        if image is None or image == "" or image == {}:
            raise gr.Error("Add a photo first: upload one, take one with the webcam, or paste one from the clipboard.",
                           title="No photo", print_exception=False)
        try:
            data, name = self.app.gate.read(image)
        except PhotoRefused as exc:
            log.warning("photo refused: %s", exc.reason)
            raise gr.Error(exc.public, title="Unusable photo", print_exception=False) from None
        return data, inputs.safe_stem(name)

    def framing_controls(self, style: Any, framing: Any) -> tuple[Any, Any]:
        """Framing shows for portrait styles, the background choice for paste."""
        portrait = self.app.is_portrait(style)
        return gr.update(visible=portrait), gr.update(visible=portrait and framing == "paste")

    def refuse_input(self, exc: Exception, path_refused: bool) -> gr.Error:
        """The answer to a request of this tab that Gradio refused before the handler ran (counted as a failure)."""
        error = texts.file_refused(NOUN) if path_refused else texts.bad_request(texts.STYLIZE_TAKES)
        self.observe(None, time.perf_counter(), error=error)
        return error

    # -- the Blocks -----------------------------------------------------------------------------
    def add_tab(self, avail: dict[str, tuple[bool, str]], first_ok: str | None) -> None:
        """The Photo tab's components (and its examples); call inside ``gr.Tabs``. Its events come with
        :meth:`add_events`, after the page's other parts, so that every event keeps its index."""
        app, config, styles = self.app, self.app.config, self.app.styles()
        with gr.Tab("Photo", id="photo-tab"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1):
                    self.photo = gr.Image(label="Photo", type="filepath", image_mode=None, format="png",
                                          sources=["upload", "webcam", "clipboard"], height=360, elem_id="photo")
                    self.style = gr.Radio(choices=texts.style_choices(styles, avail),
                                          value=first_ok, label="Style", elem_id="style")
                    with gr.Row():
                        self.max_side = gr.Slider(0, inputs.MAX_SIDE_LIMIT, value=app.default_max_side(), step=1,
                                                  label="Max side (px)", info=texts.side_info(app.default_max_side()),
                                                  elem_id="max-side")
                        self.keep = gr.Checkbox(False, label="Keep brightness",
                                                info="Match the photo's overall brightness (upstream's optional "
                                                     "post-step).", elem_id="keep-brightness")
                    self.keep_color = gr.Slider(0, 1, value=config.keep_color, step=0.05, label="Keep colours",
                                                elem_id="keep-color",
                                                info="0: the style's colours; 1: the photo's own colours under the "
                                                     "style's lines and tones.")
                    self.side_by_side = gr.Checkbox(False, label="Side by side", elem_id="side-by-side",
                                                    info="The result PNG shows the photo and the anime picture next "
                                                         "to each other, twice as wide (to share; the slider still "
                                                         "compares them).")
                    self.framing = gr.Radio(choices=[("Face", "face"), ("Centre square", "center"),
                                                     ("Whole photo", "whole"), ("Paste faces back", "paste")],
                                            value="face", label="Framing",
                                            info="Portrait styles: which part of the photo the face style sees.",
                                            visible=app.is_portrait(first_ok), elem_id="framing")
                    self.background = gr.Radio(choices=[("Keep the photo", KEEP)] + [(s.name, s.id) for s in styles
                                                                                     if not s.is_portrait],
                                               value=KEEP, label="Background (paste)", visible=False,
                                               elem_id="background")
                    self.convert = gr.Button("Convert", variant="primary", elem_id="convert")
                with gr.Column(scale=1):
                    self.slider = gr.ImageSlider(label="Photo | anime", type="pil", format="png", max_height=420,
                                                 buttons=["fullscreen"], interactive=False, elem_id="result")
                    self.result = gr.File(label="Result (PNG)", file_types=[".png"], interactive=False,
                                          elem_id="result-file")
                    self.note = gr.Markdown(label="Notice", elem_id="notice")  # the label names the API's second output
            rows, labels = example_rows(app)
            self.examples = gr.Examples(rows, inputs=[self.photo, self.style, self.max_side, self.keep, self.framing,
                                                      self.background],
                                        example_labels=labels, label="Examples") if rows else None
            self.batch = BatchPart(self)  # "Many photos": several at once, with the settings above
            self.batch.add_part()

    def add_events(self) -> None:
        """The tab's events; call inside the demo's Blocks, after :meth:`add_tab`."""
        app, workers = self.app, self.app.config.workers()
        page_inputs = [self.photo, self.style, self.max_side, self.keep, self.framing, self.background, self.keep_color,
                       self.side_by_side]
        # The page's event returns the slider's pair too, so no photo is decoded outside the queue. The stable
        # API (/stylize: PNG and notice) is a second event on a hidden trigger, in the same concurrency group.
        # Framing and background show only where they apply (a portrait style; paste).
        self.style.change(self.framing_controls, inputs=[self.style, self.framing],
                          outputs=[self.framing, self.background], queue=False, api_visibility="private",
                          show_progress="hidden")
        self.framing.change(self.framing_controls, inputs=[self.style, self.framing],
                            outputs=[self.framing, self.background], queue=False, api_visibility="private",
                            show_progress="hidden")
        self.convert.click(self.convert_page, inputs=page_inputs, outputs=[self.slider, self.result, self.note],
                           api_visibility="private", preprocess=False, concurrency_limit=workers,
                           concurrency_id=CONVERT_GROUP, show_progress="full", show_progress_on=[self.slider])
        api_trigger = gr.Button(visible=False, elem_id="api-stylize")
        # New inputs go after the first four, with defaults: 4-argument calls keep working.
        api_trigger.click(_api_function(self), inputs=page_inputs, outputs=[self.result, self.note],
                          # the API page and the MCP tool describe it from PhotoTab.stylize's docstring
                          api_name="stylize", preprocess=False, concurrency_limit=workers,
                          concurrency_id=CONVERT_GROUP, show_progress="hidden")
        if self.examples is not None:
            # An example fills the inputs, then runs the page's Convert: the same queue group, the same readable
            # notice when it fails. Not Gradio's example cache: it stored a failure (no weights yet) for good, and
            # its lazy mode breaks on the slider's update (AttributeError: 'ImageSlider' object has no attribute
            # 'info', in Gradio 6.31); repeats come from the result cache instead.
            loaded = gradio_internals.after_example_loads(self.examples)
            loaded.then(self.convert_page, inputs=page_inputs, outputs=[self.slider, self.result, self.note],
                        api_name="example", api_visibility="private", preprocess=False, concurrency_limit=workers,
                        concurrency_id=CONVERT_GROUP, show_progress="full", show_progress_on=[self.slider])
            loaded.then(app.style_choices, outputs=[self.style], queue=False, api_visibility="private",
                        show_progress="hidden")
        self.batch.add_events([self.style, self.max_side, self.keep, self.framing, self.background, self.keep_color,
                                self.side_by_side])
        # The box clamps what is typed to 0..MAX_SIDE_LIMIT in the browser; the line under it says what that means.
        self.max_side.input(lambda v: gr.update(info=texts.side_info(v)), inputs=[self.max_side],
                            outputs=[self.max_side], queue=False, preprocess=False, concurrency_limit=None,
                            api_visibility="private", show_progress="hidden")


def slider_pair(source: bytes, image: Image.Image, stats: RunStats, path: str,
                side_by_side: bool) -> tuple[Any, Any] | None:
    """The slider's (before, after). Side by side: the picture's two halves, so the slider still compares the photo
    with the result (any framing: the left half is what the model saw) while the file is the side-by-side PNG.
    Otherwise the photo at the result's size and the result; a face or centre square has no "before" of its size
    (None: the result on both sides)."""
    if side_by_side:
        return imaging.halves(image)
    if stats.framing in ("whole", "paste"):
        return before_image(source, image.size), path
    return None


def before_image(source: bytes, size: tuple[int, int]) -> Image.Image:
    """The slider's "before": the photo as the model saw it (EXIF-rotated, at the result's size)."""
    before = imaging.load_photo(source, max_side=max(size))
    image = imaging.to_image(before.rgb, before.alpha)
    if image.size != size:
        image = image.resize(size, Image.LANCZOS)
    return image


def example_rows(app: StylizeApp) -> tuple[list[list[Any]], list[str]]:
    """Examples only for styles that can run now: those whose weights are on this machine. When none is, and
    downloads are allowed, the first such style (its download is the first visitor's wait); else no examples."""
    photos = sorted(EXAMPLES_DIR.glob("*.jpg"))
    avail = app.availability()
    can_run = [s for s in app.styles() if avail.get(s.id, (False, ""))[0]]
    local = [s for s in can_run if not avail[s.id][1].startswith("downloaded on first use")]
    usable = local or can_run[:1]
    if not usable:
        return [], []
    rows, labels = [], []
    scenes = [s for s in usable if not s.is_portrait] or usable
    for i, photo in enumerate(photos):
        spec = scenes[i % len(scenes)]
        rows.append([str(photo), spec.id, EXAMPLE_MAX_SIDE, False, "face", KEEP])
        labels.append(f"{photo.stem.title()} · {spec.name}")
    portrait = next((s for s in usable if s.is_portrait), None)
    if portrait is not None:  # the portrait example: the astronaut, framed by her face
        rows.append([str(EXAMPLES_DIR / "astronaut.jpg"), portrait.id, EXAMPLE_MAX_SIDE, False, "face", KEEP])
        labels.append(f"Astronaut · {portrait.name} (portrait)")
    return rows, labels


def _tile_progress(progress: gr.Progress, check: Callable[[], None]) -> Callable[[int, int], None]:
    """Tile progress for the page, and the client check between tiles (the engine checks the deadline there)."""
    def report(done: int, total: int) -> None:
        if total > 1:
            progress(0.1 + 0.85 * done / total, desc=f"Stylizing tile {done} of {total}")
        if done < total:
            check()
    return report


def _download_progress(progress: gr.Progress) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        progress((done, total), desc="Downloading weights", unit="bytes")
    return report


def _api_function(tab: PhotoTab) -> Callable[..., tuple[str, str]]:
    """``tab.stylize`` with the description written from this app's styles (Gradio reads ``__doc__``)."""
    def stylize(image: Any, style: str | None, max_side: Any, keep_brightness: Any, framing: Any = "face",
                background: Any = KEEP, keep_color: float = 0.0, side_by_side: bool = False,
                request: gr.Request = None,  # type: ignore[assignment]  # Gradio fills it in
                progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008 (Gradio's way)
        return tab.stylize(image, style, max_side, keep_brightness, framing, background, keep_color, side_by_side,
                           request, progress)
    stylize.__doc__ = texts.stylize_doc(tab.app.styles())
    return stylize
