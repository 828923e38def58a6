"""The Photo tab's "Many photos" part: several photos converted in turn, a gallery that fills, one ZIP, and the
``/stylize_batch`` API.

Each photo goes through the single photo's own conversion (:meth:`PhotoTab.stylize`): the same upload gate,
the same settings, its own ``--timeout``, counted as one conversion in the gauge and the metrics. The batch runs
on the same concurrency group (``state.CONVERT_GROUP``), holding one slot while its photos run one after another.

The rule that keeps a batch from being one free request (docs/app.md, "Many photos"):

* at most ``--max-batch`` photos (default 10, never more than ``--max-queue``): a larger batch is refused
  before any photo is read;
* each photo has the single photo's limits (upload size, pixels, ``--timeout``), so a batch runs at most
  photos x ``--timeout``; the client watch stops it between photos when nobody waits for it any more;
* a photo that can't be converted is named in the notice (its file name, made safe) and, when the file is
  unusable whatever the settings, deleted like any refused upload; the others still convert. A failure that
  concerns every photo (the style, the settings, the client gone) ends the batch;
* the ZIP is written aside and renamed into place at the end: a stopped or failed batch leaves no ZIP. It lives in
  the private results folder, bounded by count and age like every photo result.
"""
from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from .. import gradio_internals, imaging, upload_gate
from ..batch import BatchTooLarge, ResultNames, ResultZip, check_count
from ..framing import KEEP
from . import inputs, texts
from .state import CONVERT_GROUP
from .watch import ClientGone, Stopped

if TYPE_CHECKING:
    from .photo_tab import PhotoTab

log = logging.getLogger("animegan.app")

API_NAME = "stylize_batch"
PAGE_NAME = "batch_page"        # the page's event (private): Gradio's refusals of its requests are worded here too
VALIDATOR_NAME = "admit_batch"  # the events' validator (BatchPart.admit_batch), which Gradio names after the method
NOUN = "photo"
STOP = "batch"  # this part's Stop button (state.StylizeApp.press_stop)
# Failures of one photo: the batch goes on with the others. Any other failure (the style, a setting, the client
# gone, a server problem) would be the same for every photo and ends the batch.
ONE_PHOTO_TITLES = ("Unusable photo", "No photo", "Too slow", "Out of memory", "Conversion failed")
BATCH_TAKES = ("/stylize_batch takes a list of photo files (uploaded first), a style id, a max side in pixels, "
               "true/false for keep brightness, a framing, a background, a keep-colours strength from 0 to 1 and "
               "true/false for side by side (eight values; gradio_client fills in the last five)")


class BatchPart:
    """Many photos at once, for one Photo tab (``tab.batch``)."""

    noun = NOUN

    def __init__(self, tab: PhotoTab) -> None:
        self.tab = tab
        self.app = tab.app
        self.limit = self.app.config.batch_limit()

    # -- admission ------------------------------------------------------------------------------
    def refusal(self, count: int) -> str | None:
        """Why a batch of ``count`` photos is not admitted now, or None: over the limit, or more photos than the queue
        has places left (each photo counts as one request, as Gradio counts a single photo against ``max_size``)."""
        try:
            check_count(count, self.limit)
        except BatchTooLarge as exc:
            return str(exc)
        room = self.app.config.max_queue - (gradio_internals.waiting_count(self.app.demo) or 0)
        if count > room:
            return (f"The queue has room for {max(room, 0)} more photos right now and this batch has {count} (a batch "
                    "counts as its photos). Send fewer, or try again in a moment.")
        return None

    def admit_batch(self, files: Any, *settings: Any) -> tuple[dict, ...]:
        """Gradio's validator for both events: it runs when the request joins the queue, before it waits, so a batch
        over the limits is refused at once (the page shows the reason on the file box). Only the number of photos
        is judged here; everything else is the handler's, as for a single photo."""
        count = len(files) if isinstance(files, (list, tuple)) else 0
        problem = self.refusal(count) if count else None
        return (gr.validate(problem is None, problem or ""), *(gr.validate(True, "") for _ in settings))

    # -- conversion -----------------------------------------------------------------------------
    def stylize_batch(self, files: Any, style: str | None, max_side: Any, keep_brightness: Any = False,
                      framing: Any = "face", background: Any = KEEP, keep_color: Any = 0.0, side_by_side: Any = False,
                      request: gr.Request = None,  # type: ignore[assignment]  # Gradio fills it in
                      progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008 (Gradio's way)
        """The /stylize_batch API (its description: :func:`batch_doc`): the ZIP and the notice."""
        outcome = None
        for outcome in self._run(files, style, max_side, keep_brightness, framing, background, keep_color,
                                 side_by_side, request, progress):
            pass
        assert outcome is not None and outcome.zip_path is not None
        return str(outcome.zip_path), outcome.notice()

    def convert_page(self, files: Any, style: str | None, max_side: Any, keep_brightness: Any, framing: Any,
                     background: Any, keep_color: Any, side_by_side: Any = False,
                     request: gr.Request = None,  # type: ignore[assignment]  # Gradio fills it in
                     progress: gr.Progress = gr.Progress()) -> Iterator[tuple[Any, Any, str]]:  # noqa: B008
        """The page's Convert all: the gallery fills as photos finish, then the ZIP comes. A failure stays
        readable in the notice area (and a toast says it too)."""
        outcome = None
        try:
            for outcome in self._run(files, style, max_side, keep_brightness, framing, background, keep_color,
                                     side_by_side, request, progress):
                done = outcome.zip_path is not None
                yield (outcome.gallery(), str(outcome.zip_path) if done else None,
                       outcome.notice() if done else outcome.progress_line())
        except gr.Error as exc:
            if exc.title == texts.STOPPED_TITLE:  # its user knows: no toast
                done = len(outcome.done) + len(outcome.failed) if outcome is not None else 0
                yield [], None, (f"**Stopped:** the batch was stopped after {done} of "
                                 f"{outcome.count if outcome is not None else '?'} photos; no ZIP was made.")
                return
            gr.Warning(exc.message, title=exc.title)
            yield (outcome.gallery() if outcome is not None else gr.skip()), None, texts.page_error(exc)

    def _run(self, files: Any, style: Any, max_side: Any, keep_brightness: Any, framing: Any, background: Any,
             keep_color: Any, side_by_side: Any, request: gr.Request | None,
             progress: gr.Progress) -> Iterator[Outcome]:
        """Yields the outcome after each photo; the last one has the ZIP. Raises ``gr.Error`` for a batch it refuses
        or ends (and then leaves no ZIP)."""
        app = self.app
        payloads = self._payloads(files)
        try:  # admit_batch() refused it already when it joined the queue; this holds for every way in
            check_count(len(payloads), self.limit)
        except BatchTooLarge as exc:
            raise gr.Error(str(exc), title="Too many photos", print_exception=False) from None
        # Every setting is read before any photo, so a wrong one fails at once, not once per photo.
        spec = app.chosen_style(style)
        side = inputs.max_side(max_side) or 0
        for check, value in ((inputs.flag, keep_brightness), (inputs.framing, framing),
                             (inputs.background, background), (inputs.keep_color_value, keep_color)):
            check(value)
        beside = inputs.side_by_side(side_by_side)
        watch = app.watch(request, stop_button=STOP)
        try:
            watch.check()
        except ClientGone as exc:
            raise texts.user_error(exc, spec, side) from None
        started = time.perf_counter()
        folder = app.result_folder()
        folder.mkdir(parents=True)
        archive = ResultZip(folder / imaging.result_name("photos", spec.id, "zip"))
        outcome = Outcome(spec.name, len(payloads), started)
        names = ResultNames()
        try:
            yield outcome  # the page clears the last batch's gallery and ZIP at once
            for i, payload in enumerate(payloads):
                if watch.stopped():  # the part's Stop: between photos (a client gone: each photo's own watch)
                    raise texts.user_error(Stopped("the batch was stopped"), spec, side)
                shown = shown_name(payload, i)
                step = _PhotoProgress(progress, i, len(payloads))
                try:
                    path, notice = self.tab.stylize(payload, style, max_side, keep_brightness, framing=framing,
                                                    background=background, keep_color=keep_color,
                                                    side_by_side=beside, request=request, progress=step)
                except gr.Error as exc:
                    if exc.title not in ONE_PHOTO_TITLES:
                        raise
                    log.info("batch photo %d of %d not converted: %s", i + 1, len(payloads), exc.title)
                    outcome.failed.append((shown, exc.message))
                    yield outcome
                    continue
                name = names.take(names.free(inputs.safe_stem(upload_gate.display_name(payload) or "photo"),
                                             spec.id, side_by_side=beside))
                archive.add(name, Path(path).read_bytes())
                outcome.done.append((path, name, notice))
                if i + 1 < len(payloads):
                    yield outcome
            if not outcome.done:
                raise gr.Error(f"None of the {len(payloads)} photos could be converted. {outcome.failures()}",
                               title="Unusable photo", print_exception=False)
            progress(1.0, desc="Writing the ZIP")
            outcome.zip_path = archive.finish()
        except BaseException:
            archive.abort()  # a stopped or failed batch leaves no ZIP
            shutil.rmtree(folder, ignore_errors=True)
            raise
        app.photo_results.keep(folder)
        outcome.seconds = time.perf_counter() - started
        yield outcome

    def press_stop(self, request: gr.Request) -> None:
        """The part's Stop: the batch of this page that joined before now ends after the photo it is converting
        (that photo's result is dropped with the rest: a stopped batch leaves no ZIP)."""
        self.app.press_stop(request, STOP)

    def _payloads(self, files: Any) -> list[Any]:
        if files is None or files == "" or files == [] or files == {}:
            raise gr.Error("Add photos first: choose several photo files (or drop them on the box).",
                           title="No photos", print_exception=False)
        if not isinstance(files, (list, tuple)):
            raise texts.bad_request(BATCH_TAKES)
        return list(files)

    def refuse_input(self, exc: Exception, path_refused: bool) -> gr.Error:
        """The answer to a batch request that Gradio refused before the handler ran (counted as a failure)."""
        error = texts.file_refused(NOUN) if path_refused else texts.bad_request(BATCH_TAKES)
        self.tab.observe(None, time.perf_counter(), error=error)
        return error

    # -- the Blocks -----------------------------------------------------------------------------
    def add_part(self) -> None:
        """The part's components: an accordion under the single photo; call inside the Photo tab."""
        with gr.Accordion("Many photos", open=False, visible=self.limit > 0, elem_id="batch"):
            gr.Markdown(f"Convert up to {self.limit} photos at once with the settings above: they are converted "
                        "one after another, appear below as they finish, and come as one ZIP "
                        "(`<name>_<style>.png` each).", elem_id="batch-help")
            with gr.Row(equal_height=False):
                with gr.Column(scale=1):
                    self.files = gr.File(label="Photos", file_count="multiple", file_types=["image"], height=240,
                                         elem_id="batch-files")
                    with gr.Row():
                        self.convert = gr.Button("Convert all", variant="primary", elem_id="batch-convert")
                        self.stop = gr.Button("Stop", variant="stop", elem_id="batch-stop")
                with gr.Column(scale=1):
                    self.gallery = gr.Gallery(label="Anime photos", columns=3, height=300, object_fit="contain",
                                              interactive=False, buttons=["download", "fullscreen"],
                                              elem_id="batch-gallery")
                    self.zip = gr.File(label="All results (ZIP)", interactive=False, elem_id="batch-zip")
                    self.note = gr.Markdown(label="Notice", elem_id="batch-notice")
            self.api_trigger = gr.Button(visible=False, elem_id="api-stylize-batch")

    def add_events(self, settings: list[Any]) -> None:
        """The part's events; ``settings``: the tab's style, max side, keep brightness, framing, background, keep
        colours and side by side components, in that order (the API's order after the files)."""
        workers = self.app.config.workers()
        self.convert.click(self.convert_page, inputs=[self.files, *settings],
                           outputs=[self.gallery, self.zip, self.note], api_name=PAGE_NAME, api_visibility="private",
                           preprocess=False, concurrency_limit=workers, concurrency_id=CONVERT_GROUP,
                           show_progress="full", show_progress_on=[self.gallery], validator=self.admit_batch)
        self.stop.click(self.press_stop, inputs=None, outputs=None, queue=False, api_visibility="private",
                        show_progress="hidden")
        self.api_trigger.click(_api_function(self), inputs=[self.files, *settings], outputs=[self.zip, self.note],
                               api_name=API_NAME, preprocess=False, concurrency_limit=workers,
                               concurrency_id=CONVERT_GROUP, show_progress="hidden", validator=self.admit_batch)


class Outcome:
    """What a batch has done so far: results (path, ZIP name, notice), failures (shown name, message)."""

    def __init__(self, style_name: str, count: int, started: float) -> None:
        self.style_name = style_name
        self.count = count
        self.started = started
        self.done: list[tuple[str, str, str]] = []
        self.failed: list[tuple[str, str]] = []
        self.zip_path: Path | None = None
        self.seconds = 0.0

    def gallery(self) -> list[tuple[str, str]]:
        return [(path, name) for path, name, _ in self.done]

    def progress_line(self) -> str:
        return (f"{len(self.done) + len(self.failed)} of {self.count} photos done "
                f"({len(self.failed)} not converted)." if self.failed else
                f"{len(self.done)} of {self.count} photos done.")

    def failures(self) -> str:
        return " ".join(f"Not converted: {shown}: {message}" for shown, message in self.failed)

    def notice(self) -> str:
        head = (f"{self.style_name} style: {len(self.done)} of {self.count} photos converted in "
                f"{self.seconds:.1f} s, in one ZIP ({self.zip_path.name if self.zip_path else 'none'}).")
        return f"{head} {self.failures()}".strip()


def shown_name(payload: Any, index: int) -> str:
    """How a message names a photo of the batch: its place, and its file name made safe (never a server path)."""
    name = upload_gate.display_name(payload)
    if not name:
        return f"photo {index + 1}"
    suffix = re.sub(r"[^A-Za-z0-9]", "", Path(name).suffix)[:8]
    return f"photo {index + 1} ({inputs.safe_stem(name)}{'.' + suffix if suffix else ''})"


class _PhotoProgress:
    """The batch's progress as one photo's conversion reports it: ``Photo 3 of 10: ...`` over the whole bar."""

    def __init__(self, progress: gr.Progress, index: int, count: int) -> None:
        self.progress, self.index, self.count = progress, index, count

    def __call__(self, value: Any, desc: str | None = None, total: Any = None, unit: str = "steps") -> None:
        if isinstance(value, tuple):  # (done, total): a download of weights
            done, whole = value
            value = done / whole if whole else 0.0
        fraction = min(max(float(value or 0.0), 0.0), 1.0)
        self.progress((self.index + fraction) / self.count,
                      desc=f"Photo {self.index + 1} of {self.count}" + (f": {desc}" if desc else ""))


def batch_doc(styles: Any, limit: int) -> str:
    """The /stylize_batch API's description (the API page reads it)."""
    ids = ", ".join(f'"{s.id}"' for s in styles)
    return f"""Turn several photos into anime art in one AnimeGANv2 style, one after another, and get them as one ZIP.

    Args:
        files: the photos ({imaging.FORMATS_TEXT}), each uploaded as a file; at most {limit}. Each has the single photo's limits (size, pixels, time).
        style: style id, one of {ids}.
        max_side: longest side of each result in pixels; larger photos are downscaled first. 0 keeps the native size.
        keep_brightness: true to match each photo's overall brightness.
        framing: "face" (default), "center", "whole" or "paste"; portrait styles only.
        background: with framing "paste": "keep" (default) or a scene style id.
        keep_color: 0 (default) to 1: how far each result takes its photo's own colours.
        side_by_side: true for each photo beside its result in one PNG twice as wide (<name>_<style>_side_by_side.png).

    Returns:
        a ZIP of PNGs named <name>_<style>.png (then _2, _3... for repeated names), and a notice that names every photo that could not be converted and why.
    """


def _api_function(part: BatchPart) -> Callable[..., tuple[str, str]]:
    """``part.stylize_batch`` with the description written from this app's styles (Gradio reads ``__doc__``)."""
    def stylize_batch(files: list[Any], style: str | None, max_side: Any, keep_brightness: Any = False,
                      framing: Any = "face", background: Any = KEEP, keep_color: float = 0.0,
                      side_by_side: bool = False,
                      request: gr.Request = None,  # type: ignore[assignment]  # Gradio fills it in
                      progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008 (Gradio's way)
        return part.stylize_batch(files, style, max_side, keep_brightness, framing, background, keep_color,
                                  side_by_side, request, progress)
    stylize_batch.__doc__ = batch_doc(part.app.styles(), part.limit)
    return stylize_batch
