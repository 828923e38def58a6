"""Prometheus metrics for the app (``--metrics``): conversions, latency, queue, cache, tiles, memory.

Optional: needs ``prometheus_client`` (``pip install -r requirements-extras.txt``) and is imported only when
``--metrics`` is on, so the default app never loads it. Each :class:`Metrics` owns its own
``CollectorRegistry``: two demos in one process (tests) never share counters, and nothing Gradio or Ray
registers in the global registry leaks into ``/metrics``.

What is counted comes from real instrumentation: the UI handler reports every conversion (its ``RunStats``
or its error), a small ASGI middleware counts requests the queue refused, and gauges (queue depth, RSS, VRAM,
cache counts) are read at scrape time.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("--metrics needs prometheus_client: pip install prometheus_client "
                      "(or pip install -r requirements-extras.txt)") from exc

from . import memory
from .engine import RunStats

METRICS_PATH = "/metrics"
# Conversions take ~0.3 s (256 px, CPU) to minutes (4K tiled on CPU): roughly doubling buckets cover both.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256)
# Every outcome label: "ok" and the titles of the errors the app raises (anything else counts as "error").
OUTCOMES = frozenset({"ok", "error", "no_photo", "unusable_photo", "no_style_chosen", "unknown_style", "bad_max_side",
                      "too_slow", "style_unavailable", "out_of_memory", "server_setup", "conversion_failed",
                      "bad_request", "client_gone"})
# Video conversions: the photo outcomes plus the Video tab's own error titles; the sound as the output got it.
VIDEO_OUTCOMES = OUTCOMES | {"no_video", "unusable_video"}
AUDIO_MODES = frozenset({"copied", "aac", "none"})
WEBCAM_OUTCOMES = frozenset({"ok", "unusable_frame", "error"})
REFUSAL_REASONS = frozenset({"body_too_large", "upload_too_large", "file_by_link", "mcp_link", "login_required",
                             "unknown_endpoint", "stream_busy"})
CacheErrors = Callable[[], Mapping[str, int]]  # cache backend -> failures so far (the request ran without the cache)


def outcome_label(title: str | None) -> str:
    """'Out of memory' -> 'out_of_memory': the outcome label of a failed conversion, from the error's title."""
    return re.sub(r"[^a-z0-9]+", "_", (title or "error").lower()).strip("_") or "error"


class _ScrapeTimeCollector:
    """Values read when Prometheus scrapes: process RSS, per-GPU VRAM (NVML), cache counts, queue depth."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Any]:
        rss = GaugeMetricFamily("animegan_process_rss_bytes", "Resident memory of the app process.")
        rss.add_metric([], memory.process_rss())
        yield rss
        gpus, _ = memory.gpu_readings()
        used = GaugeMetricFamily("animegan_gpu_memory_used_bytes", "VRAM in use per GPU (NVML).", labels=["gpu", "name"])
        total = GaugeMetricFamily("animegan_gpu_memory_total_bytes", "VRAM per GPU (NVML).", labels=["gpu", "name"])
        for g in gpus:
            used.add_metric([str(g.index), g.name], g.used)
            total.add_metric([str(g.index), g.name], g.total)
        yield used
        yield total
        depth = GaugeMetricFamily("animegan_queue_depth", "Requests waiting in the conversion queue (not yet running).")
        depth.add_metric([], self.metrics.queue_length() or 0)
        yield depth
        errors = CounterMetricFamily("animegan_cache_errors", "Result-cache backend failures (down, slow, full): "
                                     "those requests ran without the cache.", labels=["backend"])
        for source in self.metrics.cache_error_sources:
            for backend, count in source().items():
                errors.add_metric([backend], count)
        yield errors


class Metrics:
    """The app's metrics. ``record()`` after each conversion; ``asgi_routes()``/``middleware()`` go into the server."""

    def __init__(self, queue_length: Callable[[], int | None] | None = None, styles: Iterable[str] = ()) -> None:
        # Labels come from closed sets only: a request chooses its style id and could otherwise mint a new
        # time series with every call (a 2 KB id per request grew /metrics from 5 kB to 15 MB).
        self.styles = frozenset(styles)
        self.registry = CollectorRegistry(auto_describe=True)
        self.queue_length: Callable[[], int | None] = queue_length or (lambda: 0)
        self.cache_error_sources: list[CacheErrors] = []
        self.cache_backend: str | None = None  # 'memory' or 'redis' when conversions use a result cache
        r = self.registry
        self.conversions = Counter("animegan_conversions", "Conversions by style, device and outcome "
                                   "(ok, or the error's title such as unusable_photo, out_of_memory).",
                                   ["style", "device", "outcome"], registry=r)
        # A separate family (not a label on conversions_total): failed conversions never chose a precision.
        self.precisions = Counter("animegan_conversions_by_precision", "Successful conversions by the device and "
                                  "precision (fp32, bf16, fp16) that produced them, cache hits included.",
                                  ["device", "precision"], registry=r)
        self.latency = Histogram("animegan_conversion_seconds", "Wall time of the conversion handler, by style.",
                                 ["style"], buckets=LATENCY_BUCKETS, registry=r)
        self.rejections = Counter("animegan_queue_rejections", "Requests refused because the queue was full.", registry=r)
        self.refusals = Counter("animegan_request_refusals", "Requests refused before Gradio parsed them, by reason "
                                "(body_too_large, upload_too_large, file_by_link, mcp_link, login_required, "
                                "unknown_endpoint).", ["reason"], registry=r)
        self.tiles = Counter("animegan_tiles", "Tiles run by tiled conversions.", registry=r)
        self.oom_recoveries = Counter("animegan_oom_recoveries", "Out-of-memory errors recovered from (smaller tiles "
                                      "or the CPU).", registry=r)
        self.cache_requests = Counter("animegan_cache_requests", "Result-cache lookups of successful conversions, "
                                      "by backend and result (hit: the model did not run).", ["backend", "result"],
                                      registry=r)
        self.replica_conversions = Counter("animegan_replica_conversions", "Conversions per model replica "
                                           "(the process that ran the model: 'local' or a Ray Serve replica).",
                                           ["replica"], registry=r)
        self.videos = Counter("animegan_video_conversions", "Video conversions by style and outcome (ok, or the "
                              "error's title such as unusable_video, too_slow, client_gone), and what happened to "
                              "their sound (copied, aac, none; failed: none).", ["style", "outcome", "audio"],
                              registry=r)
        self.video_frames = Counter("animegan_video_frames", "Frames of successful video conversions.", registry=r)
        self.video_latency = Histogram("animegan_video_conversion_seconds", "Wall time of the video handler.",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.webcam_frames = Counter("animegan_webcam_frames", "Webcam mirror frames by outcome (ok, unusable_frame, "
                                     "error).", ["outcome"], registry=r)
        r.register(_ScrapeTimeCollector(self))

    # -- recording --------------------------------------------------------------------------------
    def record(self, style: str, device: str, seconds: float, stats: RunStats | None = None,
               error_title: str | None = None, replica: str | None = None) -> None:
        """One finished conversion: its stats when it succeeded, else the title of the error the user saw."""
        outcome = "ok" if error_title is None else outcome_label(error_title)
        if outcome not in OUTCOMES:
            outcome = "error"
        style = style if style in self.styles else "unknown"
        self.conversions.labels(style, stats.device if stats else device, outcome).inc()
        self.latency.labels(style).observe(seconds)
        if stats is not None:
            self.precisions.labels(stats.device, stats.precision).inc()
            self.tiles.inc(stats.tiles)
            self.oom_recoveries.inc(stats.oom_recoveries)
            if self.cache_backend:
                self.cache_requests.labels(self.cache_backend, "hit" if stats.cached else "miss").inc()
            if not stats.cached:
                self.replica_conversions.labels(replica or "local").inc()

    def record_video(self, style: str, seconds: float, stats: Any = None, error_title: str | None = None) -> None:
        """One finished video conversion (``stats``: its ``video.VideoStats``), else the error's title."""
        outcome = "ok" if error_title is None else outcome_label(error_title)
        outcome = outcome if outcome in VIDEO_OUTCOMES else "error"
        audio = stats.audio_mode if stats is not None and stats.audio_mode in AUDIO_MODES else "none"
        self.videos.labels(style if style in self.styles else "unknown", outcome, audio).inc()
        self.video_latency.observe(seconds)
        if stats is not None:
            self.video_frames.inc(stats.frames)

    def record_webcam_frame(self, outcome: str) -> None:
        self.webcam_frames.labels(outcome if outcome in WEBCAM_OUTCOMES else "error").inc()

    def refused(self, reason: str) -> None:
        """A request the guard in front of Gradio refused (see ``request_guard``)."""
        self.refusals.labels(reason if reason in REFUSAL_REASONS else "other").inc()

    def add_cache_errors(self, source: CacheErrors) -> None:
        """A callable giving cumulative failures per cache backend, read at each scrape."""
        self.cache_error_sources.append(source)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # -- serving ----------------------------------------------------------------------------------
    def app_kwargs(self) -> dict[str, Any]:
        """FastAPI arguments for ``demo.launch(app_kwargs=...)``: the /metrics route and the rejection counter.

        Passed at construction, so the route exists before Gradio adds its own and is served on the app's port.
        """
        from starlette.middleware import Middleware
        from starlette.responses import Response
        from starlette.routing import Route

        async def endpoint(request: Any) -> Response:
            return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)

        return {"routes": [Route(METRICS_PATH, endpoint, methods=["GET"])],
                "middleware": [Middleware(QueueRejectionCounter, counter=self.rejections)]}


class QueueRejectionCounter:
    """ASGI middleware: counts ``POST .../queue/join`` answered 503, which is how Gradio refuses a full queue."""

    def __init__(self, app: Any, counter: Any) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or not scope.get("path", "").endswith("/queue/join"):
            await self.app(scope, receive, send)
            return

        async def watch(message: dict) -> None:
            if message.get("type") == "http.response.start" and message.get("status") == 503:
                self.counter.inc()
            await send(message)

        await self.app(scope, receive, watch)
