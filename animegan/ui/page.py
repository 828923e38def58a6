"""The whole page: the tabs, the styles and memory panels, the footer, and the answers to requests Gradio refuses.

Wiring (flags, queue sizes, launch) lives in ``app.py``; this module only builds Blocks from a
:class:`~animegan.serving.ServeConfig` and a shared :class:`~animegan.registry.Registry`, so tests can build their
own. Besides the tabs' events (``photo_tab``, ``video_tab``, ``webcam_tab``), two events matter:

* the memory panel: a ``gr.Timer`` tick with ``queue=False``, so it never waits behind conversions and never
  takes a place in the queue (``max_size`` counts queued events only).
* ``/stats`` (undocumented, ``queue=False``): the handler's in-flight gauge and the queue length, so tests and
  operators can check the limit. Read it with ``POST /gradio_api/run/stats {"data": []}``, the unqueued route the
  browser uses for ``queue=False`` events (gradio_client sends every call through the queue).

What the page keeps lives on the demo: ``demo.animegan`` (the shared :class:`~animegan.ui.state.StylizeApp`),
``demo.animegan_photo``, ``demo.animegan_video`` and ``demo.animegan_webcam`` (None with ``--webcam-streams 0``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from .. import gradio_internals, imaging
from ..engine import Converter
from ..registry import Registry
from ..result_cache import ResultCache
from ..serving import ServeConfig
from . import batch_part, texts, video_tab, webcam_tab
from .photo_tab import PhotoTab
from .state import StylizeApp
from .video_tab import VideoTab
from .webcam_tab import WebcamTab

log = logging.getLogger("animegan.app")

PANEL_GROUP = "memory-panel"    # the panel's own id (it is not queued at all, see above)
PANEL_EVERY_S = 1.0

CSS = """
#title h1 {margin-bottom: 0}
#memory-panel {font-size: 0.9em}
#memory-panel p, #memory-panel li {margin: 0.1em 0}
#notice {min-height: 2.5em}
/* The webcam mirror records nothing: its start button (Gradio's "Record", no option renames it) says what it does */
""" + gradio_internals.WEBCAM_BUTTON_CSS


def cache_cleanup(max_age: int) -> tuple[int, int]:
    """Gradio's ``delete_cache`` (frequency, age): uploads and results older than ``max_age`` s are deleted."""
    return max(1, min(3600, max_age // 2)), max_age


def build_demo(config: ServeConfig, registry: Registry | None = None, converter: Converter | None = None,
               cache: ResultCache | None = None, metrics: Any = None) -> gr.Blocks:
    """The whole UI for one configuration, with everything it uses given here (``app.py`` chooses them).

    ``converter``: where conversions run (default: this process); ``cache``: the result cache of this process
    (None: none); ``metrics``: ``animegan.metrics.Metrics`` or None. Call ``.queue()`` before launching.
    """
    registry = registry or Registry(weights_dir=config.weights_dir, weights=config.weights, offline=config.offline,
                                    origin=config.weights_origin)
    app = StylizeApp(config, registry, converter, cache, metrics)
    styles = app.styles()
    avail = app.availability(fresh=True)
    first_ok = next((s.id for s in styles if avail.get(s.id, (False, ""))[0]), styles[0].id if styles else None)
    unavailable = [s.name for s in styles if not avail.get(s.id, (False, ""))[0]]
    imaging.set_pillow_guard(config.max_pixels)
    photo, videos = PhotoTab(app), VideoTab(app)
    webcam = WebcamTab(app) if config.webcam_streams > 0 else None

    with gr.Blocks(title="AnimeGANv2: photos to anime art", analytics_enabled=False,
                   delete_cache=cache_cleanup(config.temp_max_age)) as demo:
        demo.animegan = app  # tests and app.py reach the shared state through the demo
        demo.animegan_photo, demo.animegan_video, demo.animegan_webcam = photo, videos, webcam
        app.demo = demo
        gr.Markdown("# AnimeGANv2: photos to anime art\nUpload a photo, choose a style, press **Convert**, then drag "
                    "the slider over the result to compare it with your photo. The **Video** tab converts clips "
                    "with their sound; the **Webcam mirror** runs live.", elem_id="title")
        if unavailable:
            gr.Markdown(f"**Unavailable styles:** {', '.join(unavailable)}. Their weights are missing and downloading is off; "
                        "see *Styles* below for where to put the files.", elem_id="unavailable")
        with gr.Tabs(elem_id="inputs"):
            photo.add_tab(avail, first_ok)
            choices = texts.style_choices(styles, avail)
            videos.add_tab(choices, first_ok)
            if webcam is not None:
                webcam.add_tab(choices, first_ok)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                styles_box = gr.Markdown(app.styles_panel(), elem_id="styles-panel")
            with gr.Column(scale=1):
                panel = gr.Markdown(app.memory_panel(), elem_id="memory-panel")
        gr.Markdown(f"Conversions run {config.workers()} at a time; up to {config.max_queue} more wait in the queue. "
                    f"{texts.licence_lines(styles)} "
                    "Example photos: public domain / CC0, from scikit-image (animegan/examples/LICENSE.md).",
                    elem_id="footer")
        photo.add_events()
        timer = gr.Timer(PANEL_EVERY_S)
        timer.tick(app.panels, outputs=[panel, styles_box, photo.style], queue=False, concurrency_limit=None,
                   concurrency_id=PANEL_GROUP, api_visibility="private", show_progress="hidden")
        gr.api(app.stats, api_name="stats", queue=False, api_visibility="undocumented")
    gradio_internals.answer_input_errors(demo, _refusals(photo, videos, webcam))
    # Now, not before: the examples above are chosen from what may be downloaded, not from one probe's answer.
    # The panels' timer then shows which styles cannot be downloaded, before anyone clicks.
    registry.check_downloads_in_background()
    return demo


def _refusals(photo: PhotoTab, videos: VideoTab,
              webcam: WebcamTab | None) -> Callable[[str | None, str, Exception], gr.Error]:
    """Requests that Gradio itself cannot parse (a missing argument, a number where a file goes) fail before our
    handlers run, and Gradio answers them with ``{"error": null}`` (``show_error=False`` hides its text, which
    may name server paths). They get a message of ours instead, worded by the tab whose event it is (the photo's
    for every other event), and are counted like every failure."""
    tabs: dict[str | None, Any] = {video_tab.API_NAME: videos, batch_part.API_NAME: photo.batch,
                                   batch_part.PAGE_NAME: photo.batch, batch_part.VALIDATOR_NAME: photo.batch}
    if webcam is not None:
        tabs[webcam_tab.API_NAME] = webcam

    def answer(api_name: str | None, name: str, exc: Exception) -> gr.Error:
        tab = tabs.get(api_name) or tabs.get(name) or photo  # a validator has no API name of its own
        path_refused = gradio_internals.is_refused_path(exc)
        if path_refused:  # Gradio's own file check: the same answer as the upload gate's
            log.warning("%s refused by Gradio's file check: %s", tab.noun, exc)
        else:
            log.info("request refused before the handler (%s): %s", api_name or name, exc)
        return tab.refuse_input(exc, path_refused)

    return answer
