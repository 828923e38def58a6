"""The state one demo shares between its sessions and tabs: :class:`StylizeApp` (``demo.animegan``).

It holds what every tab uses (the registry, where conversions run, the upload gate, the gauge, the last run, result
folders, the style choices) and nothing that belongs to one tab. Every piece of state lives on this object, which
lives on its demo: two demos in one process share nothing. Every tab runs the model through ``converter`` (photos,
clips and webcam frames alike), which :func:`animegan.zerogpu.wrap` puts inside ``spaces.GPU`` on a ZeroGPU Space.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from PIL import Image

from .. import gradio_internals, imaging, memory, temp_files, zerogpu
from ..engine import Converter, LocalConverter
from ..options import RunOptions
from ..registry import Registry
from ..request_guard import Listeners
from ..result_cache import ResultCache
from ..serving import ServeConfig
from ..styles import StyleSpec, UnknownStyleError
from ..upload_gate import PhotoRefused, UploadGate
from . import texts
from .watch import ClientWatch, StopPresses, StopWatch

CONVERT_GROUP = "convert"       # concurrency id of every event that runs the model (photos and videos)
AVAILABILITY_TTL_S = 10.0
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"  # package data (animegan/examples/LICENSE.md)
KEEP_RESULTS = 64               # result PNGs kept on disk (Gradio copies each into its own cache first)
ZERO_GPU = zerogpu.on_zero_gpu()  # the model runs in a forked GPU worker: progress callbacks cannot follow it


def gradio_upload_folder() -> str:
    """Where Gradio keeps uploads (``GRADIO_TEMP_DIR``, read the way Gradio reads it)."""
    return gradio_internals.upload_folder()


class ConversionGauge:
    """Conversions running right now, the most ever seen at once, and totals: real instrumentation of the handler."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = self.peak = self.started = self.succeeded = self.failed = 0
        self.stopped = self.unavailable = 0

    def __enter__(self) -> ConversionGauge:  # noqa: PYI034
        with self._lock:
            self.running += 1
            self.started += 1
            self.peak = max(self.peak, self.running)
        return self

    def __exit__(self, exc_type, exc: BaseException | None, *tb: object) -> None:
        title = getattr(exc, "title", None)
        with self._lock:
            self.running -= 1
            if exc_type is None:
                self.succeeded += 1
            elif title in texts.STOPPED_TITLES:
                self.stopped += 1
            elif title in texts.UNAVAILABLE_TITLES:
                self.unavailable += 1
            else:
                self.failed += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"running": self.running, "peak": self.peak, "started": self.started,
                    "succeeded": self.succeeded, "failed": self.failed, "stopped": self.stopped,
                    "unavailable": self.unavailable}


@dataclass
class LastRun:
    stats: Any  # RunStats of a photo, or video.VideoStats (the memory panel shows either)
    finished: float


class StylizeApp:
    """State shared by every session and tab of one demo: the registry, the gauge, the last run, result files."""

    def __init__(self, config: ServeConfig, registry: Registry, converter: Converter | None = None,
                 cache: ResultCache | None = None, metrics: Any = None) -> None:
        self.config = config
        self.registry = registry
        self.gauge = ConversionGauge()
        self.last_run: LastRun | None = None
        self.demo: gr.Blocks | None = None
        self.results_dir = temp_files.private_dir(temp_files.RESULTS_PREFIX)
        # With --mcp, Gradio's MCP server writes each base64 input to a file before uploading it: into a folder of
        # ours, aged out like uploads (app.py's sweeper) and removed at exit.
        self.mcp_dir: Path | None = None
        if config.mcp:
            folder = temp_files.private_dir(temp_files.MCP_PREFIX)
            self.mcp_dir = folder if gradio_internals.redirect_mcp_inputs(folder) else None
        # The only files a request may make the server read: Gradio's uploads and our example photos.
        self.gate = UploadGate.of([gradio_upload_folder(), EXAMPLES_DIR], memory.parse_bytes(config.max_file_size))
        self.listeners = Listeners()  # shared with the request guard in front of Gradio (app.py)
        self.stop_presses = StopPresses()  # the Stop buttons of the pages (the Video tab, many photos)
        # Each photo of a batch is a result folder too, and its gallery shows them until the batch ends.
        self.photo_results = temp_files.ResultFolders(
            max(KEEP_RESULTS, 2 * config.workers() * (1 + config.batch_limit())), config.temp_max_age)
        self._availability: tuple[float, int, dict[str, tuple[bool, str]]] = (0.0, -1, {})
        self._labels: tuple[str, ...] = ()  # the style choices as the page shows them
        # Results by photo content + style + settings (a repeat or an example skips the model), and where
        # conversions run: both chosen by app.py (a Ray backend holds its cache in its replicas).
        self.cache = cache
        # On a ZeroGPU Space each of its calls runs inside spaces.GPU, with a duration for its input (zerogpu.py).
        self.converter: Converter = zerogpu.wrap(converter or LocalConverter(registry, cache))
        self.metrics: Any = metrics  # animegan.metrics.Metrics with --metrics (imported only then)
        # Settings that are the same for every request, built once; each request adds its own.
        self.options = RunOptions(device=config.device, precision=config.precision, max_pixels=config.max_pixels,
                                  memory_budget=config.conversion_budget(), tile=config.tile)

    # -- styles ---------------------------------------------------------------------------------
    def styles(self) -> tuple[StyleSpec, ...]:
        return self.registry.styles()

    def availability(self, fresh: bool = False) -> dict[str, tuple[bool, str]]:
        when, checks, value = self._availability
        if fresh or not value or checks != self.registry.checks or time.monotonic() - when > AVAILABILITY_TTL_S:
            checks = self.registry.checks
            value = self.registry.availability()
            self._availability = (time.monotonic(), checks, value)
        return value

    def chosen_style(self, style: str | None) -> StyleSpec:
        """The style a request chose, or a ``gr.Error`` that says what is wrong with the choice."""
        if not style:
            raise texts.no_style()
        try:
            return self.registry.style(str(style))
        except UnknownStyleError as exc:
            raise texts.unknown_style(exc) from None

    def is_portrait(self, style: Any) -> bool:
        """Whether a style choice (anything a page sends) names a portrait style: framing choices show for those."""
        try:
            return bool(style) and self.registry.style(str(style)).is_portrait
        except UnknownStyleError:
            return False

    def page_text(self, text: str) -> str:
        """A message as the page shows it: full paths for an app served on this machine only (its user is the one
        who puts weights files in place), server folders shortened on a public one (:func:`texts.public_text`)."""
        local = not self.config.share and self.config.host in ("127.0.0.1", "localhost", "::1")
        return text if local else texts.public_text(text)

    def default_max_side(self) -> int:
        if self.config.max_side is not None:
            return self.config.max_side
        return max((s.max_side for s in self.styles()), default=1024)

    # -- requests -------------------------------------------------------------------------------
    def watch(self, request: gr.Request | None, stop_button: str | None = None) -> ClientWatch:
        """The client watch of the job ``request`` runs in (with ``stop_button``, "video" or "batch", that Stop
        button's too: :meth:`press_stop`)."""
        if stop_button:
            return StopWatch(self.demo, self.listeners, request, self.stop_presses, stop_button)
        return ClientWatch(self.demo, self.listeners, request)

    def press_stop(self, request: gr.Request | None, what: str) -> None:
        """A page's Stop (``what``: "video", "batch"): its run of that kind that joined before now ends at its
        next check."""
        self.stop_presses.press(getattr(request, "session_hash", None), what)

    def discard_refused(self, payload: Any) -> None:
        """Delete an input that can never be converted (its upload, and the MCP server's copy of the same bytes);
        payloads the upload gate refuses are never touched."""
        try:
            path, _ = self.gate.checked_path(payload)
        except PhotoRefused:
            return
        temp_files.discard_refused(path, gradio_upload_folder(), self.mcp_dir)

    def result_folder(self) -> Path:
        """A new folder for one result, in this process's private results folder (not created yet)."""
        return self.results_dir / uuid.uuid4().hex[:12]

    def save_photo(self, image: Image.Image, filename: str, png: bytes | None = None) -> Path:
        """Write a photo's result PNG into a folder of its own (bounded like every result folder)."""
        folder = self.result_folder()
        folder.mkdir(parents=True)
        path = folder / filename
        path.write_bytes(png if png is not None else imaging.encode_png(image))
        self.photo_results.keep(folder)
        return path

    # -- panels -----------------------------------------------------------------------------------
    def memory_panel(self) -> str:
        return texts.memory_markdown(self.registry, self.gauge.snapshot(), self.config.workers(), self.last_run,
                                     ZERO_GPU)

    def styles_panel(self) -> str:
        return texts.styles_markdown(self.styles(), self.availability(), self.page_text)

    def panels(self) -> tuple[str, str, Any]:
        """The memory panel, the styles panel, and the style choices when a style's availability changed (a failed
        download, or a download host that does not answer, marks it unavailable), else no update (the user's
        choice stays as it is). Each tick may start a new download-host probe in the background (once a minute)."""
        self.registry.check_downloads_in_background()
        avail = self.availability()
        labels = tuple(texts.style_label(s, avail.get(s.id, (False, ""))[0]) for s in self.styles())
        changed = labels != self._labels
        self._labels = labels
        radio = gr.update(choices=list(zip(labels, [s.id for s in self.styles()]))) if changed else gr.skip()
        return self.memory_panel(), texts.styles_markdown(self.styles(), avail, self.page_text), radio

    def style_choices(self) -> Any:
        """The style choices with their current availability (an example's inputs reset them to the page's first
        labels, which may predate a probe or a failed download)."""
        return gr.update(choices=texts.style_choices(self.styles(), self.availability()))

    def stats(self) -> dict:
        """In-flight gauge and limits (``/stats``): proves how many conversions ran at once."""
        snap = self.gauge.snapshot()
        snap["queued"] = gradio_internals.waiting_count(self.demo)  # waiting (not running) events
        snap.update(concurrency_limit=self.config.workers(), max_queue=self.config.max_queue,
                    torch_threads=torch.get_num_threads(), device=self.config.device)
        snap["result_cache"] = dataclasses.asdict(self.cache.stats()) if self.cache is not None else None
        snap["replicas"] = self.converter.replicas()  # Ray Serve: what each replica last reported
        return snap
