"""The Gradio app: styles, the Convert queue, error -> ``gr.Error`` mapping and the live memory panel.

Wiring (flags, queue sizes, launch) lives in ``app.py``; this module only builds Blocks from a
:class:`~animegan.serving.ServeConfig` and a shared :class:`~animegan.registry.Registry`, so tests can build
their own. Three events matter:

* Convert (the page) and ``/stylize`` (API): both queued on the ``convert`` concurrency group, limited to the
  configured number of conversions at once. The page's event also returns the before/after pair for the
  slider, so nothing that decodes a photo runs outside the queue. Lazily cached examples run on the same group.
* the memory panel: a ``gr.Timer`` tick with ``queue=False``, so it never waits behind conversions and never
  takes a place in the queue (``max_size`` counts queued events only).
* ``/stats`` (undocumented, ``queue=False``): the handler's in-flight gauge and the queue length, so tests and
  operators can check the limit. Read it with ``POST /gradio_api/run/stats {"data": []}``, the unqueued route the
  browser uses for ``queue=False`` events (gradio_client sends every call through the queue).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from gradio.exceptions import InvalidPathError
from PIL import Image

from . import flags, imaging, memory, temp_files
from .engine import ConversionTimeout, Converter, Deadline, LocalConverter, OutOfMemory, RunStats, StylizeResult
from .framing import FRAMINGS, KEEP, DetectorMissing
from .imaging import InvalidImageError
from .memory import DeviceError
from .options import RunOptions
from .registry import Registry
from .request_guard import Listeners
from .result_cache import ResultCache
from .serving import ServeConfig
from .styles import GROUPS, StyleSpec, UnknownStyleError
from .upload_gate import REFUSED, PhotoRefused, UploadGate
from .weights import WeightsError, WeightsMissingError

try:  # Hugging Face ZeroGPU: the GPU exists only inside functions decorated with spaces.GPU
    import spaces  # type: ignore[import-not-found]
except ImportError:
    spaces = None

log = logging.getLogger("animegan.app")

CONVERT_GROUP = "convert"       # concurrency id of every event that runs the model
PANEL_GROUP = "memory-panel"    # the panel's own id (it is not queued at all, see above)
PANEL_EVERY_S = 1.0
AVAILABILITY_TTL_S = 10.0
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"  # package data (animegan/examples/LICENSE.md)
EXAMPLE_MAX_SIDE = 512
# The slider's end and the largest max side a request may ask for (0 = native size goes beyond it): a 50 MP
# photo's longer side is at most about 8700 px at 4:3, so larger values only ever meant "native".
MAX_SIDE_LIMIT = 8192
KEEP_RESULTS = 64               # result PNGs kept on disk (Gradio copies each into its own cache first)
ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in {"1", "true"}

CSS = """
#title h1 {margin-bottom: 0}
#memory-panel {font-size: 0.9em}
#memory-panel p, #memory-panel li {margin: 0.1em 0}
#notice {min-height: 2.5em}
"""


# A queued job whose client has not listened for its result for this long was abandoned (env: tests use 1 s).
CLIENT_GRACE_S = flags.env_value("client_grace") or 5.0


class ClientGone(RuntimeError):
    """Nobody waits for this conversion any more (the page was closed, the API client went away)."""


class ConversionGauge:
    """Conversions running right now, the most ever seen at once, and totals: real instrumentation of the handler."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = self.peak = self.started = self.succeeded = self.failed = 0

    def __enter__(self) -> ConversionGauge:  # noqa: PYI034
        with self._lock:
            self.running += 1
            self.started += 1
            self.peak = max(self.peak, self.running)
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        with self._lock:
            self.running -= 1
            if exc_type is None:
                self.succeeded += 1
            else:
                self.failed += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"running": self.running, "peak": self.peak, "started": self.started,
                    "succeeded": self.succeeded, "failed": self.failed}


@dataclass
class LastRun:
    stats: RunStats
    finished: float
    gpus: list[memory.GpuReading] | None = None  # NVML readings taken inside the GPU function (ZeroGPU)


class StylizeApp:
    """State shared by every session of one demo: the registry, the gauge, the last run, result files."""

    def __init__(self, config: ServeConfig, registry: Registry, converter: Converter | None = None,
                 cache: ResultCache | None = None, metrics: Any = None) -> None:
        self.config = config
        self.registry = registry
        self.gauge = ConversionGauge()
        self.last_run: LastRun | None = None
        self.demo: gr.Blocks | None = None
        self.results_dir = temp_files.private_dir(temp_files.RESULTS_PREFIX)
        # The only files a request may make the server read: Gradio's uploads and our example photos.
        self.gate = UploadGate.of([gradio_upload_folder(), EXAMPLES_DIR], memory.parse_bytes(config.max_file_size))
        self.listeners = Listeners()  # shared with the request guard in front of Gradio (app.py)
        self._results: deque[Path] = deque()
        self._results_lock = threading.Lock()
        self._availability: tuple[float, dict[str, tuple[bool, str]]] = (0.0, {})
        self._labels: tuple[str, ...] = ()  # the style choices as the page shows them
        _APPS[id(self)] = self
        # Results by photo content + style + settings (a repeat or an example skips the model), and where
        # conversions run: both chosen by app.py (a Ray backend holds its cache in its replicas).
        self.cache = cache
        self.converter: Converter = converter or LocalConverter(registry, cache)
        self.metrics: Any = metrics  # animegan.metrics.Metrics with --metrics (imported only then)
        # Settings that are the same for every request, built once; each request adds its own.
        self.options = RunOptions(device=config.device, precision=config.precision, max_pixels=config.max_pixels,
                                  memory_budget=config.conversion_budget(), tile=config.tile)
        self._run = spaces.GPU(duration=120)(_run_engine) if spaces is not None else _run_engine

    # -- styles ---------------------------------------------------------------------------------
    def styles(self) -> tuple[StyleSpec, ...]:
        return self.registry.styles()

    def availability(self, fresh: bool = False) -> dict[str, tuple[bool, str]]:
        when, value = self._availability
        if fresh or not value or time.monotonic() - when > AVAILABILITY_TTL_S:
            value = self.registry.availability()
            self._availability = (time.monotonic(), value)
        return value

    def default_max_side(self) -> int:
        if self.config.max_side is not None:
            return self.config.max_side
        return max((s.max_side for s in self.styles()), default=1024)

    # -- conversion -----------------------------------------------------------------------------
    def stylize(self, image: Any, style: str | None, max_side: Any, keep_brightness: Any, framing: Any = None,
                background: Any = None, request: gr.Request = None,  # type: ignore[assignment]  # Gradio fills it in
                progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008 (Gradio's way)
        """The /stylize API (its description, from the styles, is :func:`stylize_doc`)."""
        path, text, _ = self._observed(image, style, max_side, keep_brightness, request, progress, before=False,
                                       framing=framing, background=background)
        return path, text

    def convert_page(self, image: Any, style: str | None, max_side: Any, keep_brightness: Any, framing: Any = None,
                     background: Any = None, request: gr.Request = None,  # type: ignore[assignment]
                     progress: gr.Progress = gr.Progress()) -> tuple[tuple[Image.Image, str], str, str]:  # noqa: B008
        """The page's Convert: the same conversion, plus the before/after pair for the slider, in one queued job.

        A failure stays readable where the result would be (a toast alone vanishes after a few seconds and leaves
        bare "Error" badges): the notice area shows it, and a toast says it too. The API still raises.
        """
        try:
            path, text, before = self._observed(image, style, max_side, keep_brightness, request, progress, before=True,
                                                framing=framing, background=background)
        except gr.Error as exc:
            gr.Warning(exc.message, title=exc.title)
            return gr.skip(), None, f"**{exc.title or 'Error'}:** {exc.message}"
        return (before if before is not None else path, path), path, text

    def _observed(self, image: Any, style: Any, max_side: Any, keep_brightness: Any, request: gr.Request | None,
                  progress: gr.Progress, before: bool, framing: Any = None,
                  background: Any = None) -> tuple[str, str, Image.Image | None]:
        started = time.perf_counter()
        try:
            path, text, stats, before = self._convert(image, style, max_side, keep_brightness, request, progress,
                                                      before, framing, background)
        except gr.Error as exc:
            self._observe(style, started, error=exc)
            raise
        self._observe(style, started, stats=stats)
        return path, text, before

    def _observe(self, style: Any, started: float, stats: RunStats | None = None, error: gr.Error | None = None) -> None:
        if self.metrics is not None:
            self.metrics.record(str(style or "none"), self.config.device_type, time.perf_counter() - started, stats,
                                error_title=getattr(error, "title", None) or ("Error" if error else None),
                                replica=stats.replica if stats else None)

    def _convert(self, image: Any, style: str | None, max_side: Any, keep_brightness: Any, request: gr.Request | None,
                 progress: gr.Progress, want_before: bool, framing: Any = None,
                 background: Any = None) -> tuple[str, str, RunStats, Image.Image | None]:
        """The conversion itself. Inputs arrive unprocessed (``preprocess=False``) so that every check, and so
        every message the user sees, is ours: the photo may be a path or Gradio's file payload, and it passes
        the upload gate whatever the payload claims to be.
        """
        with self.gauge:
            spec = self._style(style)
            side = _max_side(max_side)
            # One deadline for the whole request: read, decode, model, encode.
            options = self.options.replace(style=spec.id, max_side=side, keep_brightness=_flag(keep_brightness),
                                           framing=_framing(framing), background=_background(background),
                                           ).with_timeout(self.config.timeout)
            source, name = self._photo(image)
            watch = ClientWatch(self, request)
            try:
                watch.check()
                progress(0.0, desc=f"Preparing the {spec.name} style")
                on_bytes = None if ZERO_GPU else _download_progress(progress)
                progress(0.1, desc=f"Stylizing ({spec.name})")
                # On ZeroGPU the run happens in another process: callbacks cannot follow it (the deadline can).
                on_tile = None if ZERO_GPU else _tile_progress(progress, watch)
                portable, time_left = options.portable()
                result, gpus = self._run(id(self), source, portable, time_left, on_bytes, on_tile)
                watch.check()
                progress(0.95, desc="Encoding PNG")
                path = self._save(result.image, imaging.result_name(name, spec.id), result.png)
                before = before_image(source, result.image.size) if want_before and result.stats.framing in (
                    "whole", "paste") else None  # a face or centre square has no "before" of its size
                Deadline.of(options).check("while encoding the result")
            except gr.Error:
                raise
            except Exception as exc:  # mapped to a message the user can act on; tracebacks go to the log only
                raise user_error(exc, spec, side) from exc
            self.last_run = LastRun(result.stats, time.time(), gpus)
            return str(path), notice(result.stats, spec.name), result.stats, before

    def _photo(self, image: Any) -> tuple[bytes, str]:
        if image is None or image == "" or image == {}:
            raise gr.Error("Add a photo first: upload one, take one with the webcam, or paste one from the clipboard.",
                           title="No photo", print_exception=False)
        try:
            data, name = self.gate.read(image)
        except PhotoRefused as exc:
            log.warning("photo refused: %s", exc.reason)
            raise gr.Error(exc.public, title="Unusable photo", print_exception=False) from None
        return data, _safe_stem(name)

    def example(self, image: Any, style: str, max_side: Any, keep_brightness: Any, framing: Any = None,
                background: Any = None, request: gr.Request = None):  # type: ignore[assignment]
        """The examples' function (cached lazily): the same conversion, shaped for the UI's outputs."""
        return self.convert_page(image, style, max_side, keep_brightness, framing, background, request, gr.Progress())

    def _style(self, style: str | None) -> StyleSpec:
        if not style:
            raise gr.Error("Choose a style first.", title="No style chosen", print_exception=False)
        try:
            return self.registry.style(str(style))
        except UnknownStyleError as exc:
            raise gr.Error(str(exc), title="Unknown style", print_exception=False) from None

    def _save(self, image: Image.Image, filename: str, png: bytes | None = None) -> Path:
        folder = self.results_dir / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        path = folder / filename
        path.write_bytes(png if png is not None else imaging.encode_png(image))
        with self._results_lock:  # bounded by count and by age (the same age as Gradio's own cache)
            self._results.append(folder)
            too_old = time.time() - self.config.temp_max_age
            while len(self._results) > max(KEEP_RESULTS, 2 * self.config.workers()) or (
                    len(self._results) > 1 and _mtime(self._results[0]) < too_old):
                shutil.rmtree(self._results.popleft(), ignore_errors=True)
        return path

    def is_portrait(self, style: Any) -> bool:
        """Whether a style choice (anything a page sends) names a portrait style: framing choices show for those."""
        try:
            return bool(style) and self.registry.style(str(style)).is_portrait
        except UnknownStyleError:
            return False

    def framing_controls(self, style: Any, framing: Any) -> tuple[Any, Any]:
        """Framing shows for portrait styles, the background choice for paste."""
        portrait = self.is_portrait(style)
        return gr.update(visible=portrait), gr.update(visible=portrait and framing == "paste")

    # -- panels -----------------------------------------------------------------------------------
    def memory_panel(self) -> str:
        return memory_markdown(self)

    def styles_panel(self) -> str:
        return styles_markdown(self.styles(), self.availability())

    def panels(self) -> tuple[str, str, Any]:
        """The memory panel, the styles panel, and the style choices when a style's availability changed (a failed
        download marks it unavailable until it loads), else no update (the user's choice stays as it is)."""
        avail = self.availability()
        labels = tuple(style_label(s, avail.get(s.id, (False, ""))[0]) for s in self.styles())
        changed = labels != self._labels
        self._labels = labels
        radio = gr.update(choices=list(zip(labels, [s.id for s in self.styles()]))) if changed else gr.skip()
        return self.memory_panel(), styles_markdown(self.styles(), avail), radio

    def stats(self) -> dict:
        """In-flight gauge and limits (``/stats``): proves how many conversions ran at once."""
        snap = self.gauge.snapshot()
        queue = getattr(self.demo, "_queue", None)  # Gradio's queue: len() counts waiting (not running) events
        snap["queued"] = len(queue) if queue is not None else None
        snap.update(concurrency_limit=self.config.workers(), max_queue=self.config.max_queue,
                    torch_threads=torch.get_num_threads(), device=self.config.device)
        snap["result_cache"] = dataclasses.asdict(self.cache.stats()) if self.cache is not None else None
        snap["replicas"] = self.converter.replicas()  # Ray Serve: what each replica last reported
        return snap


_APPS: dict[int, StylizeApp] = {}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def cache_cleanup(max_age: int) -> tuple[int, int]:
    """Gradio's ``delete_cache`` (frequency, age): uploads and results older than ``max_age`` s are deleted."""
    return max(1, min(3600, max_age // 2)), max_age


def _run_engine(app_id: int, source: imaging.ImageSource, options: RunOptions, time_left: float | None,
                on_bytes=None, on_tile=None) -> tuple[StylizeResult, list[memory.GpuReading] | None]:
    """The one function that touches the model (and the GPU): on ZeroGPU it is wrapped by ``spaces.GPU``.

    The deadline crosses as seconds left: on ZeroGPU this function may run in another process.
    """
    app = _APPS[app_id]
    result = app.converter(source, options.rebased(time_left), on_tile, on_bytes)
    gpus = memory.gpu_readings()[0] if ZERO_GPU else None  # NVML is only meaningful inside the GPU function there
    return result, gpus


# -- inputs -------------------------------------------------------------------------------------------
def gradio_upload_folder() -> str:
    """Where Gradio keeps uploads (``GRADIO_TEMP_DIR``, read the way Gradio reads it)."""
    from gradio.utils import get_upload_folder

    return get_upload_folder()


class ClientWatch:
    """Is anyone still waiting for this conversion? Checked before the run, between tiles and before encoding.

    Gradio marks a queued job dead when its result stream closes (``Event.alive``); a job joined by a client that
    never opened its result stream, or whose stream closed, is also abandoned after ``CLIENT_GRACE_S``. The
    request guard counts open streams (``Listeners``). Without a request (a direct call), nothing is watched.
    """

    def __init__(self, app: StylizeApp, request: gr.Request | None) -> None:
        self.app = app
        self.event = _queue_event(app.demo, request)

    def check(self) -> None:
        event = self.event
        if event is None:
            return
        if not event.alive:
            raise ClientGone("its client disconnected")
        keys = (f"session:{event.session_hash}", f"event:{event._id}")
        if self.app.listeners.listening(*keys):
            return
        waited = time.monotonic() - event.enqueue_time
        if waited > CLIENT_GRACE_S:
            raise ClientGone(f"no client has listened for its result for {waited:.0f} s")


def _queue_event(demo: gr.Blocks | None, request: gr.Request | None) -> Any:
    """The queue's record of the job this request runs in (None outside the queue)."""
    raw = getattr(request, "request", None) if request is not None else None
    queue = getattr(demo, "_queue", None)
    if raw is None or queue is None:
        return None
    for job in list(getattr(queue, "active_jobs", []) or []):
        for event in job or []:
            if getattr(event, "request", None) is raw:
                return event
    return None


def _safe_stem(name: str | Path) -> str:
    stem = Path(str(name)).stem[:60] or "photo"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)


def _max_side(value: Any) -> int:
    if value is None or value == "":
        return 0
    try:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        side = round(number)
    except (TypeError, ValueError, OverflowError):
        shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:20] + "..."
        raise gr.Error(f"Max side must be a number of pixels (0 for native size), got {shown}.",
                       title="Bad max side", print_exception=False) from None
    if side < 0:
        raise gr.Error("Max side must be 0 (native size) or a positive number of pixels.", title="Bad max side",
                       print_exception=False)
    if side > MAX_SIDE_LIMIT:
        raise gr.Error(f"Max side can be at most {MAX_SIDE_LIMIT} px; use 0 for the photo's native size.",
                       title="Bad max side", print_exception=False)
    return side


def side_info(value: Any) -> str:
    """The max-side box's line for its current value: the browser clamps a typed -5 to 0 and 99999 to the
    limit without a word, so the line says where the value ended up and what it does."""
    try:
        side = int(float(value))
    except (TypeError, ValueError, OverflowError):
        side = -1
    if side <= 0:
        return ("0 = native size: the photo's own size, the slowest setting (values below 0 become 0; "
                "large photos run in tiles).")
    if side >= MAX_SIDE_LIMIT:
        return f"{MAX_SIDE_LIMIT} px is the largest max side (larger values become {MAX_SIDE_LIMIT}; 0 = native size)."
    return f"Longer side of the result: photos larger than {side} px are downscaled. 0 = native size."


def _framing(value: Any) -> str | None:
    """The framing choice (None or "": the style's default); a scene style ignores it."""
    text = str(value or "").strip().lower()
    if text and text not in FRAMINGS and text != "auto":
        raise gr.Error(f"Framing must be one of {', '.join(FRAMINGS)}, not {text[:24]!r}.", title="Bad framing",
                       print_exception=False)
    return text or None


def _background(value: Any) -> str:
    return str(value or KEEP).strip().lower()


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in flags.TRUE
    return bool(value)


def _tile_progress(progress: gr.Progress, watch: ClientWatch):
    """Tile progress for the page, and the client check between tiles (the engine checks the deadline there)."""
    def report(done: int, total: int) -> None:
        if total > 1:
            progress(0.1 + 0.85 * done / total, desc=f"Stylizing tile {done} of {total}")
        if done < total:
            watch.check()
    return report


def _download_progress(progress: gr.Progress):
    def report(done: int, total: int) -> None:
        progress((done, total), desc="Downloading weights", unit="bytes")
    return report


# -- errors -----------------------------------------------------------------------------------------
def user_error(exc: BaseException, spec: StyleSpec, max_side: int) -> gr.Error:
    """Every failure becomes a readable message; only unexpected ones are logged with their traceback."""
    if isinstance(exc, InvalidImageError):
        return gr.Error(f"This photo can't be used: {str(exc).rstrip('.')}.", title="Unusable photo", print_exception=False)
    if isinstance(exc, ClientGone):
        log.info("conversion stopped (style %s): %s", spec.id, exc)
        return gr.Error(f"Stopped: {exc}.", title="Client gone", print_exception=False)
    if isinstance(exc, ConversionTimeout):
        log.warning("conversion timed out (style %s, max side %s): %s", spec.id, max_side or "native", exc)
        return gr.Error(f"This conversion took too long and was {exc}. Try a smaller 'Max side' "
                        f"({'for example 1024' if max_side == 0 or max_side > 1024 else 'or a smaller photo'}).",
                        title="Too slow", print_exception=False)
    if isinstance(exc, WeightsMissingError):
        return gr.Error(f"The {spec.name} style is unavailable: {public_text(str(exc))}", title="Style unavailable",
                        print_exception=False)
    if isinstance(exc, WeightsError):
        return gr.Error(f"The {spec.name} style could not be loaded: {public_text(str(exc))}", title="Style unavailable",
                        print_exception=False)
    if isinstance(exc, OutOfMemory) or memory.is_out_of_memory(exc):
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        log.warning("out of memory (style %s, max side %s): %s", spec.id, max_side or "native", exc)
        hint = "a smaller 'Max side' (for example 1024 or 768)" if max_side == 0 or max_side > 768 else \
            "a smaller 'Max side' or a smaller photo"
        return gr.Error(f"Ran out of memory while stylizing at {'native size' if max_side == 0 else f'max side {max_side}'}. "
                        f"Try again with {hint}; other conversions running at the same time also use memory.",
                        title="Out of memory", print_exception=False)
    if isinstance(exc, DetectorMissing):
        return gr.Error(f"Face framing is unavailable on this server: {exc}", title="Server setup", print_exception=False)
    if isinstance(exc, ValueError) and str(exc).startswith(("unknown background", "unknown framing")):
        return gr.Error(f"{str(exc)[:1].upper()}{str(exc)[1:]}.", title="Bad request", print_exception=False)
    if isinstance(exc, DeviceError):
        return gr.Error(f"The server's device setting is unusable: {exc}", title="Server setup", print_exception=False)
    ref = uuid.uuid4().hex[:8]
    log.error("conversion failed (ref %s, style %s, max side %s)", ref, spec.id, max_side, exc_info=exc)
    return gr.Error(f"Something went wrong while converting this photo (reference {ref}; the details are in the "
                    "server log). Try again, or try another photo or a smaller 'Max side'.",
                    title="Conversion failed", print_exception=False)


# -- texts ------------------------------------------------------------------------------------------
def stylize_doc(styles: tuple[StyleSpec, ...]) -> str:
    """The /stylize API's description (the API page and the MCP tool read it), written from the style files."""
    ids = ", ".join(f'"{s.id}" ({s.name})' for s in styles)
    portraits = ", ".join(s.id for s in styles if s.is_portrait) or "none here"
    scenes = ", ".join(s.id for s in styles if not s.is_portrait)
    return f"""Turn a photo into anime art in one AnimeGANv2 style; the result has the photo's size (up to max_side).

    Args:
        image: the photo to convert ({imaging.FORMATS_TEXT}), uploaded as a file; transparency and EXIF orientation are kept.
        style: style id, one of {ids}.
        max_side: longest side of the result in pixels; larger photos are downscaled first. 0 keeps the native size.
        keep_brightness: true to match the photo's overall brightness (upstream's optional post-step).
        framing: "face" (default), "center", "whole" or "paste"; portrait styles ({portraits}) only, scene styles ignore it. face: the largest face in a square at the style's training size; center: the centre square; whole: the whole photo; paste: every face stylised and pasted back into the whole photo.
        background: with framing "paste": "keep" (default) keeps the rest of the photo as it is; a scene style id ({scenes}) stylises it.

    Returns:
        the stylized picture as a PNG file, and a one-line notice (size, time, device, memory, downscaling).
    """


def licence_lines(styles: tuple[StyleSpec, ...]) -> str:
    """The footer's licence text: each distinct licence of the styles, once."""
    return " ".join(dict.fromkeys(s.licence for s in styles))


def notice(stats: RunStats, style_name: str | None = None) -> str:
    """The plain-text line shown under the result (and returned by the API): size, time, memory, downscaling."""
    w, h = stats.output_size
    parts = [(f"{style_name or stats.style.title()} style: {w}x{h} px in {stats.seconds:.2f} s on {stats.device} "
              f"in {stats.precision} (peak memory {memory.fmt_bytes(stats.peak_memory)}, {stats.peak_memory_kind}).")]
    if stats.cached:
        parts = [f"{style_name or stats.style.title()} style: {w}x{h} px from the cache, converted earlier "
                 f"(the same photo, style and settings; answered in {memory.fmt_seconds(stats.seconds)})."]
    if stats.downscaled:
        ow, oh = stats.original_size
        parts.append(f"Your photo was downscaled from {ow}x{oh} to {stats.input_size[0]}x{stats.input_size[1]} "
                     "by 'Max side'; set it to 0 for the native size.")
    parts += [n[:1].upper() + n[1:] + ("" if n.endswith(".") else ".")
              for n in stats.notices if getattr(n, "kind", "") != "downscaled"]
    return " ".join(parts)


def style_label(spec: StyleSpec, ok: bool) -> str:
    """The choice's text, headed by its group (Scenes, Portraits)."""
    return (f"{GROUPS.get(spec.group, spec.group)} · {spec.name}: {spec.description}"
            + ("" if ok else " (unavailable, see Styles below)"))


def styles_markdown(styles: tuple[StyleSpec, ...], availability: dict[str, tuple[bool, str]]) -> str:
    lines = ["**Styles**"]
    for spec in styles:
        ok, why = availability.get(spec.id, (False, "unknown"))
        lines.append(f"- {spec.name}: {'available' if ok else 'unavailable'}, {public_text(why)}")
    return "\n".join(lines)


_SERVER_PATH = re.compile(r"(?<![\w:/.])/[^\s,;()'\"]+")


def public_text(text: str) -> str:
    """Server paths -> their last component: a public page need not show the server's folders (the log keeps them)."""
    def name(m: re.Match) -> str:
        path = m.group(0)
        tail = path[len(path.rstrip(".")):]
        return (Path(path.rstrip(".")).name or path) + tail
    return _SERVER_PATH.sub(name, text)


def memory_markdown(app: StylizeApp) -> str:
    report = memory.memory_report()
    lines = [f"**Memory** (at {time.strftime('%H:%M:%S')})"]
    gpus = report.gpus
    if ZERO_GPU:
        gpus = app.last_run.gpus if app.last_run and app.last_run.gpus else []
        lines.append("- ZeroGPU: GPU readings are taken inside the GPU function, during the last run")
    if gpus:
        for g in gpus:
            mine = f", this process {memory.fmt_bytes(g.process_used)}" if g.process_used is not None else ""
            util = f", {g.utilization}% busy" if g.utilization is not None else ""
            lines.append(f"- GPU {g.index} {g.name}: {memory.fmt_bytes(g.used)} / {memory.fmt_bytes(g.total)} used{mine}{util}")
    elif not ZERO_GPU:
        lines.append(f"- No GPU readings: {report.nvml_status or 'no NVIDIA GPU'}. Conversions run on the CPU."
                     if not torch.cuda.is_available() else f"- NVML unavailable ({report.nvml_status})")
    if report.torch_cuda:
        t = report.torch_cuda
        lines.append(f"- torch CUDA: allocated {memory.fmt_bytes(t['allocated'])}, reserved {memory.fmt_bytes(t['reserved'])},"
                     f" peak {memory.fmt_bytes(t['peak'])}")
    lines.append(f"- Process RSS {memory.fmt_bytes(report.rss)}; system RAM available {memory.fmt_bytes(report.ram_available)}"
                 f" of {memory.fmt_bytes(report.ram_total)}")
    g = app.gauge.snapshot()
    lines.append(f"- Conversions: {g['running']} running (limit {app.config.workers()}), {g['succeeded']} done, "
                 f"{g['failed']} failed")
    if app.last_run:
        s = app.last_run.stats
        what = f"- Last run: {_style_name(app, s.style)} {s.output_size[0]}x{s.output_size[1]}"
        if s.cached:  # the model did not run: no device time or peak to report
            lines.append(f"{what} from the cache, converted earlier (answered in {memory.fmt_seconds(s.seconds)})")
        else:
            lines.append(f"{what} on {s.device} in {memory.fmt_seconds(s.seconds)}, "
                         f"peak {memory.fmt_bytes(s.peak_memory)} ({s.peak_memory_kind})")
    loaded = app.registry.loaded()
    if loaded:
        lines.append("- Loaded styles: " + ", ".join(
            f"{m.spec.name} ({m.key.device}, {m.key.precision}, {memory.fmt_bytes(m.param_bytes)})" for m in loaded))
    else:
        lines.append("- Loaded styles: none yet (a style loads on its first conversion)")
    return "\n".join(lines)


def _style_name(app: StylizeApp, style_id: str) -> str:
    try:
        return app.registry.style(style_id).name
    except UnknownStyleError:
        return style_id


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


# -- the Blocks ---------------------------------------------------------------------------------------
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
    workers = config.workers()
    imaging.set_pillow_guard(config.max_pixels)

    with gr.Blocks(title="AnimeGANv2: photos to anime art", analytics_enabled=False,
                   delete_cache=cache_cleanup(config.temp_max_age)) as demo:
        demo.animegan = app  # tests and app.py reach the shared state through the demo
        app.demo = demo
        gr.Markdown("# AnimeGANv2: photos to anime art\nUpload a photo, choose a style, press **Convert**, then drag "
                    "the slider over the result to compare it with your photo. The **Video** tab converts clips "
                    "with their sound; the **Webcam mirror** runs live.", elem_id="title")
        if unavailable:
            gr.Markdown(f"**Unavailable styles:** {', '.join(unavailable)}. Their weights are missing and downloading is off; "
                        "see *Styles* below for where to put the files.", elem_id="unavailable")
        with gr.Tabs(elem_id="inputs"):
            with gr.Tab("Photo", id="photo-tab"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1):
                        photo = gr.Image(label="Photo", type="filepath", image_mode=None, format="png",
                                         sources=["upload", "webcam", "clipboard"], height=360, elem_id="photo")
                        style = gr.Radio(choices=[(style_label(s, avail.get(s.id, (False, ""))[0]), s.id) for s in styles],
                                         value=first_ok, label="Style", elem_id="style")
                        with gr.Row():
                            max_side = gr.Slider(0, MAX_SIDE_LIMIT, value=app.default_max_side(), step=1, label="Max side (px)",
                                                 info=side_info(app.default_max_side()), elem_id="max-side")
                            keep = gr.Checkbox(False, label="Keep brightness",
                                               info="Match the photo's overall brightness (upstream's optional post-step).",
                                               elem_id="keep-brightness")
                        framing = gr.Radio(choices=[("Face", "face"), ("Centre square", "center"), ("Whole photo", "whole"),
                                                    ("Paste faces back", "paste")], value="face", label="Framing",
                                           info="Portrait styles: which part of the photo the face style sees.",
                                           visible=app.is_portrait(first_ok), elem_id="framing")
                        background = gr.Radio(choices=[("Keep the photo", KEEP)] + [(s.name, s.id) for s in styles
                                                                                    if not s.is_portrait],
                                              value=KEEP, label="Background (paste)", visible=False, elem_id="background")
                        convert = gr.Button("Convert", variant="primary", elem_id="convert")
                    with gr.Column(scale=1):
                        slider = gr.ImageSlider(label="Photo | anime", type="pil", format="png", max_height=420,
                                                buttons=["fullscreen"], interactive=False, elem_id="result")
                        result = gr.File(label="Result (PNG)", file_types=[".png"], interactive=False, elem_id="result-file")
                        note = gr.Markdown(label="Notice", elem_id="notice")  # the label names the API's second output
                examples_rows, example_labels = example_rows(app)
                if examples_rows:
                    examples = gr.Examples(examples_rows, inputs=[photo, style, max_side, keep, framing, background],
                                           outputs=[slider, result, note], fn=app.example, cache_examples=True,
                                           cache_mode="lazy", example_labels=example_labels, label="Examples")
            from .ui_video import add_tabs  # the Video and Webcam tabs (ui_video imports this module)

            demo.animegan_video = add_tabs(app, avail, first_ok)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                styles_box = gr.Markdown(app.styles_panel(), elem_id="styles-panel")
            with gr.Column(scale=1):
                panel = gr.Markdown(app.memory_panel(), elem_id="memory-panel")
        gr.Markdown(f"Conversions run {workers} at a time; up to {config.max_queue} more wait in the queue. "
                    f"{licence_lines(styles)} "
                    "Example photos: public domain / CC0, from scikit-image (animegan/examples/LICENSE.md).",
                    elem_id="footer")

        # The page's event returns the slider's pair too, so no photo is decoded outside the queue. The stable
        # API (/stylize: PNG and notice) is a second event on a hidden trigger, in the same concurrency group.
        # Framing and background show only where they apply (a portrait style; paste).
        style.change(app.framing_controls, inputs=[style, framing], outputs=[framing, background], queue=False,
                     api_visibility="private", show_progress="hidden")
        framing.change(app.framing_controls, inputs=[style, framing], outputs=[framing, background], queue=False,
                       api_visibility="private", show_progress="hidden")
        convert.click(app.convert_page, inputs=[photo, style, max_side, keep, framing, background],
                      outputs=[slider, result, note],
                      api_visibility="private", preprocess=False, concurrency_limit=workers,
                      concurrency_id=CONVERT_GROUP, show_progress="full", show_progress_on=[slider])
        api_trigger = gr.Button(visible=False, elem_id="api-stylize")
        # New inputs go after the first four, with defaults: 4-argument calls keep working.
        api_trigger.click(_api_function(app), inputs=[photo, style, max_side, keep, framing, background],
                          outputs=[result, note],
                          # the API page and the MCP tool describe it from StylizeApp.stylize's docstring
                          api_name="stylize", preprocess=False, concurrency_limit=workers,
                          concurrency_id=CONVERT_GROUP, show_progress="hidden")
        if examples_rows and getattr(examples, "cache_event", None) is not None:
            # Lazily cached examples run the model too: put them in the same concurrency group.
            fn = demo.fns[examples.cache_event["id"]]
            fn.concurrency_id, fn.concurrency_limit = CONVERT_GROUP, workers

        # The box clamps what is typed to 0..MAX_SIDE_LIMIT in the browser; the line under it says what that means.
        max_side.input(lambda v: gr.update(info=side_info(v)), inputs=[max_side], outputs=[max_side], queue=False,
                       preprocess=False, concurrency_limit=None, api_visibility="private", show_progress="hidden")
        timer = gr.Timer(PANEL_EVERY_S)
        timer.tick(app.panels, outputs=[panel, styles_box, style], queue=False, concurrency_limit=None,
                   concurrency_id=PANEL_GROUP, api_visibility="private", show_progress="hidden")
        gr.api(app.stats, api_name="stats", queue=False, api_visibility="undocumented")
    _name_input_errors(demo, app)
    return demo


def _api_function(app: StylizeApp) -> Callable[..., tuple[str, str]]:
    """``app.stylize`` with the description written from this app's styles (Gradio reads ``__doc__``)."""
    def stylize(image: Any, style: str | None, max_side: Any, keep_brightness: Any, framing: Any = "face",
                background: Any = KEEP, request: gr.Request = None,  # type: ignore[assignment]  # Gradio fills it in
                progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008 (Gradio's way)
        return app.stylize(image, style, max_side, keep_brightness, framing, background, request, progress)
    stylize.__doc__ = stylize_doc(app.styles())
    return stylize


def _name_input_errors(demo: gr.Blocks, app: StylizeApp) -> None:
    """Requests that Gradio itself cannot parse (a missing argument, a number where a file goes) fail before
    our handlers run, and Gradio answers them with ``{"error": null}`` (``show_error=False`` hides its text,
    which may name server paths). They get a message of ours instead, and are counted like every failure."""
    original = demo.preprocess_data

    async def preprocess_data(block_fn: Any, inputs: list[Any], state: Any, explicit_call: bool = False) -> Any:
        try:
            return await original(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except InvalidPathError as exc:  # Gradio's own file check: the same answer as the upload gate's
            noun = "video" if block_fn.api_name in VIDEO_ENDPOINTS else "photo"
            log.warning("%s refused by Gradio's file check: %s", noun, exc)
            error = gr.Error(REFUSED.replace("photo", noun), title=f"Unusable {noun}", print_exception=False)
            _observe_refusal(app, block_fn, error)
            raise error from None
        except Exception as exc:  # noqa: BLE001 - anything Gradio raised about the request's inputs
            log.info("request refused before the handler (%s): %s", block_fn.api_name or block_fn.name, exc)
            takes = VIDEO_ENDPOINTS.get(block_fn.api_name, "/stylize takes a photo file (uploaded first), a style id, "
                                        "a max side in pixels, true/false for keep brightness, a framing "
                                        "and a background (six values; gradio_client fills in the last two)")
            error = gr.Error(f"This request's inputs do not fit the endpoint: {takes}; see the API page.",
                             title="Bad request", print_exception=False)
            _observe_refusal(app, block_fn, error)
            raise error from None

    demo.preprocess_data = preprocess_data  # type: ignore[method-assign]


# The video endpoints (animegan/ui_video.py), for the refusals above: what each takes.
VIDEO_ENDPOINTS = {"stylize_video": "/stylize_video takes a video file (uploaded first), a style id, a max side in "
                                    "pixels, true/false for temporal smoothing and a framing (five values; "
                                    "gradio_client fills in the last)"}


def _observe_refusal(app: StylizeApp, block_fn: Any, error: gr.Error) -> None:
    videos = getattr(app.demo, "animegan_video", None)
    if block_fn.api_name in VIDEO_ENDPOINTS and videos is not None:
        videos._observe(None, time.perf_counter(), None, error)
    else:
        app._observe(None, time.perf_counter(), error=error)
