"""The Gradio app: styles, the Convert queue, error -> ``gr.Error`` mapping and the live memory panel.

Wiring (flags, queue sizes, launch) lives in ``app.py``; this module only builds Blocks from a
:class:`~animegan.serving.ServeConfig` and a shared :class:`~animegan.registry.Registry`, so tests can build
their own. Three events matter:

* Convert / ``/stylize`` (API): queued on the ``convert`` concurrency group, limited to the configured
  number of conversions at once. Lazily cached examples run on the same group.
* the memory panel: a ``gr.Timer`` tick with ``queue=False``, so it never waits behind conversions and never
  takes a place in the queue (``max_size`` counts queued events only).
* ``/stats`` (undocumented, ``queue=False``): the handler's in-flight gauge and the queue length, so tests and
  operators can check the limit. Read it with ``POST /gradio_api/run/stats {"data": []}``, the unqueued route the
  browser uses for ``queue=False`` events (gradio_client sends every call through the queue).
"""
from __future__ import annotations

import atexit
import dataclasses
import base64
import logging
import os
import re
import shutil
import tempfile
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
from PIL import Image

from . import imaging, memory
from .engine import OutOfMemory, RunStats, StylizeResult, stylize
from .imaging import InvalidImageError
from .registry import Registry
from .result_cache import MemoryCache, ResultCache
from .serving import ServeConfig
from .styles import StyleSpec, UnknownStyleError
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
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
EXAMPLE_MAX_SIDE = 512
KEEP_RESULTS = 64               # result PNGs kept on disk (Gradio copies each into its own cache first)
ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in {"1", "true"}

CSS = """
#title h1 {margin-bottom: 0}
#memory-panel {font-size: 0.9em}
#memory-panel p, #memory-panel li {margin: 0.1em 0}
#notice {min-height: 2.5em}
"""


class ConversionTimeout(RuntimeError):
    """A conversion ran past the configured per-request limit and was stopped between two tiles."""


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

    def __init__(self, config: ServeConfig, registry: Registry) -> None:
        self.config = config
        self.registry = registry
        self.gauge = ConversionGauge()
        self.last_run: LastRun | None = None
        self.demo: gr.Blocks | None = None
        self.results_dir = Path(tempfile.mkdtemp(prefix="animegan-results-"))
        atexit.register(shutil.rmtree, self.results_dir, True)
        self._results: deque[Path] = deque()
        self._results_lock = threading.Lock()
        self._availability: tuple[float, dict[str, tuple[bool, str]]] = (0.0, {})
        _APPS[id(self)] = self
        # The backend seam: a callable with stylize()'s signature. Ray Serve's backend replaces it (app.py).
        self.convert: Callable[..., StylizeResult] = stylize
        self.metrics: Any = None  # animegan.metrics.Metrics with --metrics (imported only then)
        # Results by photo content + style + settings: a repeat (or an example) skips the model entirely.
        self.cache: ResultCache | None = MemoryCache(config.cache_size) if config.cache_size else None
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
    def stylize(self, image: Any, style: str | None, max_side: Any, keep_brightness: Any,
                progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008 (Gradio's way)
        """Turn a photo into anime art in one AnimeGANv2 style; the result has the photo's size (up to max_side).

        Args:
            image: the photo to convert (JPEG, PNG, WebP, ...): a file or URL; transparency and EXIF orientation are kept.
            style: style id: "hayao" (Miyazaki), "shinkai" (Makoto Shinkai) or "paprika" (Satoshi Kon).
            max_side: longest side of the result in pixels; larger photos are downscaled first. 0 keeps the native size.
            keep_brightness: true to match the photo's overall brightness (upstream's optional post-step).

        Returns:
            the stylized picture as a PNG file, and a one-line notice (size, time, device, memory, downscaling).
        """
        started = time.perf_counter()
        try:
            path, text, stats = self._convert(image, style, max_side, keep_brightness, progress)
        except gr.Error as exc:
            self._observe(style, started, error=exc)
            raise
        self._observe(style, started, stats=stats)
        return path, text

    def _observe(self, style: Any, started: float, stats: RunStats | None = None, error: gr.Error | None = None) -> None:
        if self.metrics is not None:
            self.metrics.record(str(style or "none"), self.config.device_type, time.perf_counter() - started, stats,
                                error_title=getattr(error, "title", None) or ("Error" if error else None),
                                replica=stats.replica if stats else None)

    def _convert(self, image: Any, style: str | None, max_side: Any, keep_brightness: Any,
                 progress: gr.Progress) -> tuple[str, str, RunStats]:
        """The conversion itself. Inputs arrive unprocessed (``preprocess=False``) so that every check, and so
        every message the user sees, is ours: the photo may be a path or Gradio's file payload.
        """
        with self.gauge:
            source, name = _photo_source(image)
            spec = self._style(style)
            side = _max_side(max_side)
            keep = _flag(keep_brightness)
            try:
                progress(0.0, desc=f"Preparing the {spec.name} style")
                on_bytes = None if ZERO_GPU else _download_progress(progress)
                progress(0.1, desc=f"Stylizing ({spec.name})")
                on_tile = None if ZERO_GPU else _tile_progress(progress, self.config.timeout)
                result, gpus = self._run(id(self), source, spec.id, side, keep, self.config.device, on_bytes, on_tile)
                progress(0.95, desc="Encoding PNG")
                path = self._save(result.image, f"{name}-{spec.id}.png", result.png)
            except gr.Error:
                raise
            except Exception as exc:  # mapped to a message the user can act on; tracebacks go to the log only
                raise user_error(exc, spec, side) from exc
            self.last_run = LastRun(result.stats, time.time(), gpus)
            return str(path), notice(result.stats, spec.name), result.stats

    def example(self, image: Any, style: str, max_side: Any, keep_brightness: Any):
        """The examples' function (cached lazily): the same conversion, shaped for the UI's outputs."""
        png, text = self.stylize(image, style, max_side, keep_brightness)
        return comparison(image, png), png, text

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

    # -- panels -----------------------------------------------------------------------------------
    def memory_panel(self) -> str:
        return memory_markdown(self)

    def styles_panel(self) -> str:
        return styles_markdown(self.styles(), self.availability())

    def panels(self) -> tuple[str, str]:
        return self.memory_panel(), self.styles_panel()

    def stats(self) -> dict:
        """In-flight gauge and limits (``/stats``): proves how many conversions ran at once."""
        snap = self.gauge.snapshot()
        queue = getattr(self.demo, "_queue", None)  # Gradio's queue: len() counts waiting (not running) events
        snap["queued"] = len(queue) if queue is not None else None
        snap.update(concurrency_limit=self.config.workers(), max_queue=self.config.max_queue,
                    torch_threads=torch.get_num_threads(), device=self.config.device)
        snap["result_cache"] = dataclasses.asdict(self.cache.stats()) if self.cache is not None else None
        if hasattr(self.convert, "replicas"):  # Ray Serve backend: what each replica last reported
            snap["replicas"] = self.convert.replicas()
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


def _run_engine(app_id: int, source: imaging.ImageSource, style: str, max_side: int, keep: bool, device: str,
                on_bytes, on_tile=None) -> tuple[StylizeResult, list[memory.GpuReading] | None]:
    """The one function that touches the model (and the GPU): on ZeroGPU it is wrapped by ``spaces.GPU``."""
    app = _APPS[app_id]
    result = app.convert(source, style, registry=app.registry, device=device, precision=app.config.precision, max_side=max_side,
                     keep_brightness=keep, progress=on_bytes, memory_budget=app.config.memory_budget,
                     tile=app.config.tile, on_tile=on_tile, max_pixels=app.config.max_pixels, cache=app.cache)
    gpus = memory.gpu_readings()[0] if ZERO_GPU else None  # NVML is only meaningful inside the GPU function there
    return result, gpus


# -- inputs -------------------------------------------------------------------------------------------
def _photo_source(image: Any) -> tuple[imaging.ImageSource, str]:
    """A path, Gradio's file payload (dict or FileData) or a data: URL -> something the engine decodes, and a name."""
    if image is None or image == "":
        raise gr.Error("Add a photo first: upload one, take one with the webcam, or paste one from the clipboard.",
                       title="No photo", print_exception=False)
    if hasattr(image, "model_dump"):
        image = image.model_dump()
    if isinstance(image, dict):
        path, url, orig = image.get("path"), image.get("url"), image.get("orig_name")
        if not path and isinstance(url, str) and url.startswith("data:"):
            try:
                return base64.b64decode(url.split(",", 1)[1]), Path(orig or "photo").stem
            except (ValueError, IndexError):
                raise gr.Error("The pasted image could not be read.", title="Unusable photo", print_exception=False) from None
        if not path:
            raise gr.Error("The photo did not reach the server; upload it again.", title="No photo", print_exception=False)
        return str(path), _safe_stem(orig or path)
    if isinstance(image, (str, Path)):
        return str(image), _safe_stem(image)
    raise gr.Error(f"Expected a photo file, got {type(image).__name__}.", title="Unusable photo", print_exception=False)


def _safe_stem(name: str | Path) -> str:
    stem = Path(str(name)).stem[:60] or "photo"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)


def _max_side(value: Any) -> int:
    if value is None or value == "":
        return 0
    try:
        side = round(float(value))
    except (TypeError, ValueError):
        raise gr.Error(f"Max side must be a number of pixels (0 for native size), got {value!r}.",
                       title="Bad max side", print_exception=False) from None
    if side < 0:
        raise gr.Error("Max side must be 0 (native size) or a positive number of pixels.", title="Bad max side",
                       print_exception=False)
    return side


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _tile_progress(progress: gr.Progress, timeout: float | None = None):
    """Tile progress, and the per-request timeout: checked between tiles, so a stopped run wastes at most one tile.

    (A photo small enough for one whole-image pass always finishes: there is no point between to stop at.)
    """
    deadline = time.monotonic() + timeout if timeout else None

    def report(done: int, total: int) -> None:
        if total > 1:
            progress(0.1 + 0.85 * done / total, desc=f"Stylizing tile {done} of {total}")
        if deadline is not None and done < total and time.monotonic() > deadline:
            raise ConversionTimeout(f"stopped after {done} of {total} tiles: the limit is {timeout:g} s per conversion")
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
    if (isinstance(exc, ValueError) and "device" in str(exc)) or (isinstance(exc, RuntimeError) and "CUDA GPU" in str(exc)):
        return gr.Error(f"The server's device setting is unusable: {exc}", title="Server setup", print_exception=False)
    ref = uuid.uuid4().hex[:8]
    log.error("conversion failed (ref %s, style %s, max side %s)", ref, spec.id, max_side, exc_info=exc)
    return gr.Error(f"Something went wrong while converting this photo (reference {ref}; the details are in the "
                    "server log). Try again, or try another photo or a smaller 'Max side'.",
                    title="Conversion failed", print_exception=False)


# -- texts ------------------------------------------------------------------------------------------
def notice(stats: RunStats, style_name: str | None = None) -> str:
    """The plain-text line shown under the result (and returned by the API): size, time, memory, downscaling."""
    w, h = stats.output_size
    parts = [(f"{style_name or stats.style.title()} style: {w}x{h} px in {stats.seconds:.2f} s on {stats.device} "
              f"in {stats.precision} (peak memory {memory.fmt_bytes(stats.peak_memory)}, {stats.peak_memory_kind}).")]
    if stats.cached:
        parts = [f"{style_name or stats.style.title()} style: {w}x{h} px from the result cache "
                 f"({1000 * stats.seconds:.0f} ms; the same photo, style and settings were converted before)."]
    if stats.downscaled:
        ow, oh = stats.original_size
        parts.append(f"Your photo was downscaled from {ow}x{oh} to {stats.input_size[0]}x{stats.input_size[1]} "
                     "by 'Max side'; set it to 0 for the native size.")
    parts += [n[:1].upper() + n[1:] + ("" if n.endswith(".") else ".")
              for n in stats.notices if not n.lower().startswith("downscaled")]
    return " ".join(parts)


def style_label(spec: StyleSpec, ok: bool) -> str:
    return f"{spec.name}: {spec.description}" + ("" if ok else " (unavailable, see Styles below)")


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
        lines.append(f"- Last run: {_style_name(app, s.style)} {s.output_size[0]}x{s.output_size[1]} on {s.device} in {s.seconds:.2f} s, "
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


def comparison(photo: Any, png: str) -> tuple[Image.Image, str]:
    """Before/after for the slider: the photo as the model saw it (EXIF-rotated, at the result's size)."""
    source, _ = _photo_source(photo)
    after = Image.open(png)
    before = imaging.load_photo(source, max_side=max(after.size))
    image = imaging.to_image(before.rgb, before.alpha)
    if image.size != after.size:
        image = image.resize(after.size, Image.LANCZOS)
    return image, png


def example_rows(app: StylizeApp) -> tuple[list[list[Any]], list[str]]:
    photos = sorted(EXAMPLES_DIR.glob("*.jpg"))
    avail = app.availability()
    usable = [s for s in app.styles() if avail.get(s.id, (False, ""))[0]] or list(app.styles()[:1])
    rows, labels = [], []
    for i, photo in enumerate(photos):
        spec = usable[i % len(usable)]
        rows.append([str(photo), spec.id, EXAMPLE_MAX_SIDE, False])
        labels.append(f"{photo.stem.title()} · {spec.name}")
    return rows, labels


# -- the Blocks ---------------------------------------------------------------------------------------
def build_demo(config: ServeConfig, registry: Registry | None = None) -> gr.Blocks:
    """The whole UI for one configuration. Call ``.queue()`` on it (``app.py`` does) before launching."""
    registry = registry or Registry(weights_dir=config.weights_dir, weights=config.weights, offline=config.offline)
    app = StylizeApp(config, registry)
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
        gr.Markdown("# AnimeGANv2: photos to anime art\nUpload a photo, choose a style, press **Convert**. "
                    "Drag the slider over the result to compare it with your photo.", elem_id="title")
        if unavailable:
            gr.Markdown(f"**Unavailable styles:** {', '.join(unavailable)}. Their weights are missing and downloading is off; "
                        "see *Styles* below for where to put the files.", elem_id="unavailable")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                photo = gr.Image(label="Photo", type="filepath", image_mode=None, format="png",
                                 sources=["upload", "webcam", "clipboard"], height=360, elem_id="photo")
                style = gr.Radio(choices=[(style_label(s, avail.get(s.id, (False, ""))[0]), s.id) for s in styles],
                                 value=first_ok, label="Style", elem_id="style")
                with gr.Row():
                    max_side = gr.Slider(0, 4096, value=app.default_max_side(), step=32, label="Max side (px)",
                                         info="Longer side of the result; larger photos are downscaled. 0 = native size.",
                                         elem_id="max-side")
                    keep = gr.Checkbox(False, label="Keep brightness",
                                       info="Match the photo's overall brightness (upstream's optional post-step).",
                                       elem_id="keep-brightness")
                convert = gr.Button("Convert", variant="primary", elem_id="convert")
            with gr.Column(scale=1):
                slider = gr.ImageSlider(label="Photo | anime", type="pil", format="png", max_height=420,
                                        buttons=["fullscreen"], interactive=False, elem_id="result")
                result = gr.File(label="Result (PNG)", file_types=[".png"], interactive=False, elem_id="result-file")
                note = gr.Markdown(elem_id="notice")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                examples_rows, example_labels = example_rows(app)
                if examples_rows:
                    examples = gr.Examples(examples_rows, inputs=[photo, style, max_side, keep],
                                           outputs=[slider, result, note], fn=app.example, cache_examples=True,
                                           cache_mode="lazy", example_labels=example_labels, label="Examples")
                styles_box = gr.Markdown(app.styles_panel(), elem_id="styles-panel")
            with gr.Column(scale=1):
                panel = gr.Markdown(app.memory_panel(), elem_id="memory-panel")
        gr.Markdown(f"Conversions run {workers} at a time; up to {config.max_queue} more wait in the queue. "
                    "AnimeGANv2 weights by Xin Chen (TachibanaYoshino): non-commercial use only. "
                    "Example photos: public domain / CC0, from scikit-image (assets/LICENSE.md).", elem_id="footer")

        event = convert.click(app.stylize, inputs=[photo, style, max_side, keep], outputs=[result, note],
                              # the API page and the MCP tool describe it from StylizeApp.stylize's docstring
                              api_name="stylize", preprocess=False, concurrency_limit=workers,
                              concurrency_id=CONVERT_GROUP, show_progress="full", show_progress_on=[slider])
        event.success(comparison, inputs=[photo, result], outputs=slider, queue=False, api_visibility="private",
                      show_progress="hidden")
        if examples_rows and getattr(examples, "cache_event", None) is not None:
            # Lazily cached examples run the model too: put them in the same concurrency group.
            fn = demo.fns[examples.cache_event["id"]]
            fn.concurrency_id, fn.concurrency_limit = CONVERT_GROUP, workers

        timer = gr.Timer(PANEL_EVERY_S)
        timer.tick(app.panels, outputs=[panel, styles_box], queue=False, concurrency_limit=None,
                   concurrency_id=PANEL_GROUP, api_visibility="private", show_progress="hidden")
        gr.api(app.stats, api_name="stats", queue=False, api_visibility="undocumented")
    return demo
