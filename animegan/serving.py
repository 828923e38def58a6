"""How the app is served: flags and their environment equivalents, and the defaults that depend on the device.

Every flag has an environment variable, so a Hugging Face Space (which runs ``python app.py`` with no
arguments) is configured through its settings page. Flags win over the environment.
"""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import flags, imaging
from .batch import DEFAULT_MAX_BATCH
from .memory import parse_bytes, shared_budget
from .options import check_keep_color
from .precision import PRECISIONS
from .result_cache import DEFAULT_CACHE_SIZE, ResultCache, cache_capacity, open_cache
from .styles import UnknownStyleError, get_style
from .weights import WeightsOrigin

log = logging.getLogger(__name__)

# CPU: one conversion at a time, with a torch thread per core. On this project's quiet 2-core machine, 4 concurrent
# users sending 512x512 photos through the app got 1.52 images/s that way and 1.50 with 2 conversions x 1 thread
# (p95 2.8 s both), while a single user waits half as long with 2 threads (a 512x512 conversion in the engine:
# 0.70 s against 1.35 s): bench/bench_throughput.py, results in bench/results/. An earlier build, before the
# malloc tuning (memory.tune_cpu_allocator), scaled badly with threads and favoured 2 x 1 by 1.28x. Larger
# machines were not measured: --concurrency and --torch-threads split their cores.
CPU_WORKERS = 1
GPU_CONCURRENCY = 1
DEFAULT_MAX_QUEUE = 16
DEFAULT_MAX_FILE_SIZE = "25mb"
DEFAULT_TIMEOUT_S = 300.0         # one conversion; a native-size 50 MP photo takes minutes on a 2-core CPU
DEFAULT_TEMP_MAX_AGE_S = 3 * 3600  # uploads and results older than this are deleted from the server's disk
DEFAULT_PORT = 7860

BACKENDS = ("local", "ray")
DEFAULT_REPLICAS = 2
# The live webcam mirror: small frames, a few a second, one stream at a time beside the conversion queue (a stream
# holds its concurrency slot for its whole time limit, so it has a group of its own).
DEFAULT_WEBCAM_SIDE = 256
DEFAULT_WEBCAM_FPS = 8.0
DEFAULT_WEBCAM_SECONDS = 60
DEFAULT_WEBCAM_STREAMS = 1


@dataclass(frozen=True)
class ServeConfig:
    """Everything the app needs to know to build its UI and serve it."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    share: bool = False
    device: str = "auto"
    precision: str = "auto"               # auto: fp16 on CUDA, bf16 on a CPU with native bf16, else fp32
    concurrency: int | None = None        # None: the default for the resolved device
    max_queue: int = DEFAULT_MAX_QUEUE
    max_side: int | None = None           # the UI's initial max side; None: the styles' recommended size
    keep_color: float = 0.0               # the UI's initial Keep colours (so gradio_client's default too)
    weights_dir: Path | None = None
    weights: dict[str, Path] = field(default_factory=dict)
    offline: bool | None = None           # None: the engine decides from ANIMEGAN_OFFLINE / HF_HUB_OFFLINE
    preload: bool = False                 # load every style at start (the local backend)
    weights_origin: WeightsOrigin = field(default_factory=WeightsOrigin)  # which flags the user typed, for messages
    auth: tuple[str, str] | None = None
    max_file_size: str = DEFAULT_MAX_FILE_SIZE
    torch_threads: int | None = None      # None: cores // concurrency on CPU
    memory_budget: int | None = None      # bytes one conversion may use; None: conversion_budget() decides
    tile: int | None = None               # None: planned from the budget; 0: whole image; N: N px tiles
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS
    timeout: float | None = DEFAULT_TIMEOUT_S  # None: no limit
    max_batch: int = DEFAULT_MAX_BATCH    # photos in one batch (0: none); each has a photo's limits and timeout
    temp_max_age: int = DEFAULT_TEMP_MAX_AGE_S
    backend: str = "local"                # where conversions run: this process, or Ray Serve replicas
    ray_address: str | None = None        # None: start a local Ray instance and deploy the replicas there
    replicas: int = DEFAULT_REPLICAS      # Ray Serve replicas (backend ray)
    result_cache_size: int = DEFAULT_CACHE_SIZE  # bytes of result PNGs kept in this process; 0: no result cache
    result_cache: str | None = None       # redis://HOST:PORT/DB: a result cache shared by every app process
    metrics: bool = False                 # serve /metrics (Prometheus) on the app's port
    mcp: bool = False                     # serve Gradio's MCP server (the stylize tool) on the app's port
    max_video_seconds: float | None = None  # None: the engine's default (video.VideoLimits)
    max_video_frames: int | None = None     # None: the engine's default
    webcam_side: int = DEFAULT_WEBCAM_SIDE
    webcam_fps: float = DEFAULT_WEBCAM_FPS
    webcam_seconds: int = DEFAULT_WEBCAM_SECONDS
    webcam_streams: int = DEFAULT_WEBCAM_STREAMS  # 0: no webcam mirror

    @property
    def device_type(self) -> str:
        from .memory import resolve_device

        return resolve_device(self.device).type

    def workers(self) -> int:
        """Conversions that may run at once (the queue's concurrency limit)."""
        if self.concurrency:
            return self.concurrency
        if self.backend == "ray":  # each replica runs one conversion at a time
            return self.replicas
        if self.device_type == "cuda":
            return GPU_CONCURRENCY
        return CPU_WORKERS

    def batch_limit(self) -> int:
        """Photos one batch may hold: ``--max-batch``, never more than ``--max-queue`` (a batch counts as its photos
        against the queue's free places when it joins, so a larger one could never be let in)."""
        return min(self.max_batch, self.max_queue)

    def threads(self) -> int | None:
        """torch intra-op threads per conversion on CPU, so that workers x threads = cores."""
        if self.torch_threads:
            return self.torch_threads
        if self.device_type == "cuda":
            return None
        return max(1, cpu_cores() // self.workers())

    def conversion_budget(self) -> int | None:
        """Bytes one conversion may use: --memory-budget, else a share sized for the app's concurrency."""
        if self.memory_budget:
            return self.memory_budget
        return shared_budget(self.device_type, self.workers())

    def video_limits(self):  # -> video.VideoLimits (imported here: PyAV loads only when videos are used)
        """The limits a video must meet, read from its container before any work."""
        from .video import VideoLimits

        given = {"max_seconds": self.max_video_seconds, "max_frames": self.max_video_frames}
        return VideoLimits(max_pixels=self.max_pixels, **{k: v for k, v in given.items() if v is not None})

    def launch_kwargs(self) -> dict:
        return {
            "server_name": self.host, "server_port": self.port, "share": self.share, "auth": self.auth,
            "max_file_size": self.max_file_size, "show_error": False,
            "mcp_server": True if self.mcp else None,  # None: Gradio's own GRADIO_MCP_SERVER decides
        }


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def open_result_cache(url: str | None, size: int) -> ResultCache | None:
    """The result cache a served process uses (the app's, each replica's): Redis when a URL is given (shared by
    every process), else an in-process LRU of ``size`` bytes, or none for 0. Redis is imported only when asked for."""
    if url:
        from .redis_cache import RedisCache

        return RedisCache(url)
    return open_cache(size)


def parse_weights(pairs: Sequence[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pair in pairs:
        for item in filter(None, (p.strip() for p in pair.split(","))):
            style, sep, path = item.partition("=")
            if not sep or not style.strip() or not path.strip():
                raise ValueError(f"--weights expects STYLE=PATH (e.g. hayao=/models/hayao.pt), got {item!r}")
            out[style.strip().lower()] = Path(path.strip()).expanduser()
    return out


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth expects USER:PASSWORD")
    return user, password


def _or(value, default):
    return default if value is None else value


def _timeout(value: float | None) -> float | None:
    """None (not given): the default; 0: no limit; negative: a usage error."""
    if value is None:
        return DEFAULT_TIMEOUT_S
    if value < 0:
        raise ValueError(f"--timeout must be 0 (no limit) or a number of seconds, got {value}")
    return value or None


def parser() -> argparse.ArgumentParser:
    """The app's flags, from the one table (``flags.FLAGS``)."""
    p = argparse.ArgumentParser(prog="python app.py", description="AnimeGANv2 web app (Gradio).",
                                epilog=flags.epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_arguments(p, flags.FLAGS.values())
    return p


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ServeConfig:
    """Flags first, then ANIMEGAN_* variables (and Gradio's GRADIO_SERVER_NAME/PORT, which Spaces sets), then defaults."""
    env = os.environ if environ is None else environ
    p = parser()
    a = p.parse_args(list(argv or []))
    try:
        return _config(a, env, list(argv or []))
    except ValueError as exc:  # a bad STYLE=PATH, USER:PASS or number: argparse's usage error, exit status 2
        p.error(str(exc))


def _config(a: argparse.Namespace, env: Mapping[str, str], argv: list[str]) -> ServeConfig:

    def pick(name: str):
        """The flag's value, else the variable's (parsed by the table), else None."""
        value = getattr(a, name)
        if value is not None and value != []:
            return value
        return flags.env_value(name, env)

    for old in (f.old_flag for f in flags.FLAGS.values() if f.old_flag):
        if any(arg == old or arg.startswith(old + "=") for arg in argv):
            log.warning("%s is deprecated; use %s", old, next(f.option for f in flags.FLAGS.values() if f.old_flag == old))
    weights = parse_weights([flags.FLAGS["weights"].from_env(env)] if flags.FLAGS["weights"].from_env(env) else [])
    weights.update(parse_weights(a.weights))
    try:  # the registry keys explicit files by style id: accept names ("Hayao") and refuse unknown styles
        weights = {get_style(k).id: v for k, v in weights.items()}
    except UnknownStyleError as exc:
        raise ValueError(f"--weights: {exc}") from None
    # Offline exactly as the engine and the CLI read it: the flag, ANIMEGAN_OFFLINE or HF_HUB_OFFLINE.
    offline = True if a.offline or flags.offline(env) else None
    config = ServeConfig(
        host=pick("host") or env.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        port=pick("port") or int(env.get("GRADIO_SERVER_PORT") or DEFAULT_PORT),
        share=bool(pick("share")),
        device=pick("device") or "auto",
        precision=(pick("precision") or "auto").strip().lower(),
        concurrency=pick("concurrency"),
        max_queue=pick("max_queue") or DEFAULT_MAX_QUEUE,
        max_side=pick("max_side"),
        keep_color=_or(pick("keep_color"), 0.0),
        weights_dir=pick("weights_dir"),
        weights=weights,
        offline=offline,
        preload=bool(pick("preload")),
        weights_origin=WeightsOrigin.from_flags(offline=bool(a.offline), weights_dir=a.weights_dir is not None),
        auth=parse_auth(pick("auth")),
        max_file_size=pick("max_file_size") or DEFAULT_MAX_FILE_SIZE,
        torch_threads=pick("torch_threads"),
        memory_budget=parse_bytes(pick("memory_budget")),
        tile=pick("tile"),
        max_pixels=_or(pick("max_pixels"), imaging.DEFAULT_MAX_PIXELS),
        timeout=_timeout(pick("timeout")),
        max_batch=_or(pick("max_batch"), DEFAULT_MAX_BATCH),
        temp_max_age=_or(pick("temp_max_age"), DEFAULT_TEMP_MAX_AGE_S),
        backend=(pick("backend") or "local").strip().lower(),
        ray_address=pick("ray_address"),
        replicas=pick("replicas") or DEFAULT_REPLICAS,
        result_cache_size=cache_capacity(pick("result_cache_size")),
        result_cache=pick("result_cache"),
        metrics=bool(pick("metrics")),
        mcp=bool(pick("mcp")),
        max_video_seconds=pick("max_video_seconds"),
        max_video_frames=pick("max_video_frames"),
        webcam_side=_or(pick("webcam_side"), DEFAULT_WEBCAM_SIDE),
        webcam_fps=_or(pick("webcam_fps"), DEFAULT_WEBCAM_FPS),
        webcam_seconds=_or(pick("webcam_seconds"), DEFAULT_WEBCAM_SECONDS),
        webcam_streams=_or(pick("webcam_streams"), DEFAULT_WEBCAM_STREAMS),
    )
    if config.backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {config.backend!r}")
    if config.precision not in PRECISIONS:
        raise ValueError(f"--precision must be auto, fp32, bf16 or fp16, got {config.precision!r}")
    if config.replicas < 1:
        raise ValueError(f"--replicas must be at least 1, got {config.replicas}")
    if config.result_cache and not config.result_cache.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"--result-cache expects redis://HOST:PORT/DB, got {config.result_cache!r}")
    try:
        config.device_type  # noqa: B018 (resolving the device is the check: 'cuda' without one is a usage error)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None
    for name in ("concurrency", "max_queue", "torch_threads"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    for name in ("max_pixels", "temp_max_age"):
        if getattr(config, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    for name in ("max_video_seconds", "max_video_frames", "webcam_side", "webcam_fps", "webcam_seconds"):
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be more than 0, got {value}")
    if config.max_batch < 0:
        raise ValueError(f"--max-batch must be 0 (no batches) or more, got {config.max_batch}")
    if config.webcam_streams < 0:
        raise ValueError(f"--webcam-streams must be 0 (no webcam mirror) or more, got {config.webcam_streams}")
    if config.tile is not None and config.tile < 0:
        raise ValueError(f"--tile must be 0 (never tile) or a tile size in px, got {config.tile}")
    if config.max_side is not None and config.max_side < 0:
        raise ValueError(f"--max-side must be 0 (native size) or more, got {config.max_side}")
    try:
        check_keep_color(config.keep_color)
    except ValueError as exc:
        raise ValueError(f"--keep-color: {exc}") from None
    return config
