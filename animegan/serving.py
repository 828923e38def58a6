"""How the app is served: flags and their environment equivalents, and the defaults that depend on the device.

Every flag has an environment variable, so a Hugging Face Space (which runs ``python app.py`` with no
arguments) is configured through its settings page. Flags win over the environment.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import imaging, settings
from .memory import parse_bytes
from .result_cache import DEFAULT_CACHE_SIZE, cache_capacity
from .styles import UnknownStyleError, get_style

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

ENV = {
    "host": "ANIMEGAN_HOST",
    "port": "ANIMEGAN_PORT",
    "share": "ANIMEGAN_SHARE",
    "device": "ANIMEGAN_DEVICE",
    "precision": "ANIMEGAN_PRECISION",          # auto (default), fp32, bf16 or fp16
    "concurrency": "ANIMEGAN_CONCURRENCY",
    "max_queue": "ANIMEGAN_MAX_QUEUE",
    "max_side": "ANIMEGAN_MAX_SIDE",
    "weights_dir": settings.ENV_WEIGHTS_DIR,
    "weights": "ANIMEGAN_WEIGHTS",          # comma-separated STYLE=PATH pairs
    "offline": settings.ENV_OFFLINE,
    "auth": "ANIMEGAN_AUTH",                # user:pass
    "max_file_size": "ANIMEGAN_MAX_FILE_SIZE",
    "torch_threads": "ANIMEGAN_TORCH_THREADS",
    "memory_budget": "ANIMEGAN_MEMORY_BUDGET",  # e.g. 2G; default: free VRAM minus a margin, or 2 GiB of RAM
    "tile": "ANIMEGAN_TILE",                    # 0: never tile; N: force N px tiles; unset: from the budget
    "max_pixels": "ANIMEGAN_MAX_PIXELS",        # largest image (width x height) accepted, read from its header
    "timeout": "ANIMEGAN_TIMEOUT",              # seconds one conversion may run; 0: no limit
    "temp_max_age": "ANIMEGAN_TEMP_MAX_AGE",    # seconds uploads and results are kept on disk
    "backend": "ANIMEGAN_BACKEND",              # local (default) or ray
    "ray_address": "ANIMEGAN_RAY_ADDRESS",      # auto or ray://HOST:PORT; unset: start a local Ray
    "replicas": "ANIMEGAN_REPLICAS",
    "cache_size": "ANIMEGAN_CACHE_SIZE",        # bytes of results kept in this process, e.g. 256M; 0: no cache
    "cache": "ANIMEGAN_CACHE",                  # redis://HOST:PORT/DB: share results through Redis
    "metrics": "ANIMEGAN_METRICS",
    "mcp": "ANIMEGAN_MCP",
}
BACKENDS = ("local", "ray")
DEFAULT_REPLICAS = 2


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
    weights_dir: Path | None = None
    weights: dict[str, Path] = field(default_factory=dict)
    offline: bool | None = None           # None: the engine decides from ANIMEGAN_OFFLINE / HF_HUB_OFFLINE
    auth: tuple[str, str] | None = None
    max_file_size: str = DEFAULT_MAX_FILE_SIZE
    torch_threads: int | None = None      # None: cores // concurrency on CPU
    memory_budget: int | None = None      # bytes one conversion may use; None: per device (see memory.py)
    tile: int | None = None               # None: planned from the budget; 0: whole image; N: N px tiles
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS
    timeout: float | None = DEFAULT_TIMEOUT_S  # None: no limit
    temp_max_age: int = DEFAULT_TEMP_MAX_AGE_S
    backend: str = "local"                # where conversions run: this process, or Ray Serve replicas
    ray_address: str | None = None        # None: start a local Ray instance and deploy the replicas there
    replicas: int = DEFAULT_REPLICAS      # Ray Serve replicas (backend ray)
    cache_size: int = DEFAULT_CACHE_SIZE  # bytes of result PNGs kept in this process; 0: no result cache
    cache: str | None = None              # redis://HOST:PORT/DB: a result cache shared by every app process
    metrics: bool = False                 # serve /metrics (Prometheus) on the app's port
    mcp: bool = False                     # serve Gradio's MCP server (the stylize tool) on the app's port

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

    def threads(self) -> int | None:
        """torch intra-op threads per conversion on CPU, so that workers x threads = cores."""
        if self.torch_threads:
            return self.torch_threads
        if self.device_type == "cuda":
            return None
        return max(1, cpu_cores() // self.workers())

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


def _flag(value: str | None) -> bool | None:
    if value is None or value.strip() == "":
        return None
    return value.strip().lower() in {"1", "true", "yes", "on"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python app.py", description="AnimeGANv2 web app (Gradio).",
                                epilog="Every flag has an environment variable: " +
                                ", ".join(f"--{k.replace('_', '-')}={v}" for k, v in ENV.items()))
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 to serve the network)")
    p.add_argument("--port", type=int, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--share", action="store_true", default=None, help="also open a public gradio.live link")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto: CUDA when present, else CPU")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                   help="default auto: fp16 on CUDA, bf16 on a CPU with native bf16 (AVX512_BF16/AMX), else fp32")
    p.add_argument("--concurrency", type=int,
                   help="conversions run at once (default: 1, using every core on CPU; with --backend ray: --replicas)")
    p.add_argument("--max-queue", type=int, help=f"requests allowed to wait; more get 'queue full' (default {DEFAULT_MAX_QUEUE})")
    p.add_argument("--max-side", type=int, help="initial 'max side' in the UI (0: native size; default: the style's)")
    p.add_argument("--weights-dir", type=Path, help="folder with <style>.pt or the upstream TF checkpoint files")
    p.add_argument("--weights", action="append", default=[], metavar="STYLE=PATH",
                   help="weights file (.pt or TF checkpoint prefix) for one style; repeatable")
    p.add_argument("--offline", action="store_true", default=None, help="never download weights")
    p.add_argument("--auth", metavar="USER:PASS", help="require this login")
    p.add_argument("--max-file-size", help=f"largest upload accepted (default {DEFAULT_MAX_FILE_SIZE})")
    p.add_argument("--torch-threads", type=int, help="torch threads per conversion on CPU (default: cores / concurrency)")
    p.add_argument("--memory-budget", help="memory one conversion may use, e.g. 2G (default: free VRAM minus a "
                   "margin on a GPU, 2 GiB of RAM on CPU); larger photos run in tiles")
    p.add_argument("--tile", type=int, help="0: never tile; N: always use N px tiles (default: decided by the budget)")
    p.add_argument("--max-pixels", type=int, help="refuse images above this many pixels, read from the file header "
                   f"before decoding (default {imaging.DEFAULT_MAX_PIXELS})")
    p.add_argument("--timeout", type=float, help="seconds one conversion may run before it is stopped at the next "
                   f"tile (0: no limit; default {DEFAULT_TIMEOUT_S:.0f})")
    p.add_argument("--temp-max-age", type=int, help="seconds uploads and results stay on the server's disk "
                   f"(default {DEFAULT_TEMP_MAX_AGE_S})")
    p.add_argument("--backend", choices=BACKENDS, help="where conversions run: local (this process, default) or ray "
                   "(Ray Serve replicas; pip install -r requirements-extras.txt)")
    p.add_argument("--ray-address", help="join this Ray cluster (auto, or ray://HOST:10001); default: start a local Ray")
    p.add_argument("--replicas", type=int, help=f"Ray Serve replicas to deploy (default {DEFAULT_REPLICAS})")
    p.add_argument("--cache-size", help="bytes of results kept in memory, e.g. 256M: the same photo, style and "
                   f"settings again is answered without running the model (0: off; default {DEFAULT_CACHE_SIZE >> 20}M)")
    p.add_argument("--cache", metavar="redis://HOST:PORT/DB", help="keep results in Redis, shared by every app "
                   "process and replica (default: in this process only)")
    p.add_argument("--metrics", action="store_true", default=None, help="serve Prometheus metrics at /metrics "
                   "(off by default: see SECURITY.md)")
    p.add_argument("--mcp", action="store_true", default=None, help="serve Gradio's MCP server, so AI assistants can "
                   "call the stylize tool")
    return p


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ServeConfig:
    """Flags first, then ANIMEGAN_* variables (and Gradio's GRADIO_SERVER_NAME/PORT, which Spaces sets), then defaults."""
    env = os.environ if environ is None else environ
    p = parser()
    a = p.parse_args(list(argv or []))
    try:
        return _config(a, env)
    except ValueError as exc:  # a bad STYLE=PATH, USER:PASS or number: argparse's usage error, exit status 2
        p.error(str(exc))


def _config(a: argparse.Namespace, env: Mapping[str, str]) -> ServeConfig:

    def pick(name: str, flag_value, convert=str):
        if flag_value is not None:
            return flag_value
        raw = env.get(ENV[name])
        return convert(raw) if raw not in (None, "") else None

    weights = parse_weights([env[ENV["weights"]]] if env.get(ENV["weights"]) else [])
    weights.update(parse_weights(a.weights))
    try:  # the registry keys explicit files by style id: accept names ("Hayao") and refuse unknown styles
        weights = {get_style(k).id: v for k, v in weights.items()}
    except UnknownStyleError as exc:
        raise ValueError(f"--weights: {exc}") from None
    offline = a.offline if a.offline is not None else _flag(env.get(ENV["offline"]))
    config = ServeConfig(
        host=pick("host", a.host) or env.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        port=pick("port", a.port, int) or int(env.get("GRADIO_SERVER_PORT") or DEFAULT_PORT),
        share=bool(a.share if a.share is not None else _flag(env.get(ENV["share"]))),
        device=pick("device", a.device) or "auto",
        precision=(pick("precision", a.precision) or "auto").strip().lower(),
        concurrency=pick("concurrency", a.concurrency, int),
        max_queue=pick("max_queue", a.max_queue, int) or DEFAULT_MAX_QUEUE,
        max_side=pick("max_side", a.max_side, int),
        weights_dir=pick("weights_dir", a.weights_dir, Path),
        weights=weights,
        offline=offline,
        auth=parse_auth(pick("auth", a.auth)),
        max_file_size=pick("max_file_size", a.max_file_size) or DEFAULT_MAX_FILE_SIZE,
        torch_threads=pick("torch_threads", a.torch_threads, int),
        memory_budget=parse_bytes(pick("memory_budget", a.memory_budget)),
        tile=pick("tile", a.tile, int),
        max_pixels=_or(pick("max_pixels", a.max_pixels, int), imaging.DEFAULT_MAX_PIXELS),
        timeout=_timeout(pick("timeout", a.timeout, float)),
        temp_max_age=_or(pick("temp_max_age", a.temp_max_age, int), DEFAULT_TEMP_MAX_AGE_S),
        backend=(pick("backend", a.backend) or "local").strip().lower(),
        ray_address=pick("ray_address", a.ray_address),
        replicas=pick("replicas", a.replicas, int) or DEFAULT_REPLICAS,
        cache_size=cache_capacity(pick("cache_size", a.cache_size)),
        cache=pick("cache", a.cache),
        metrics=bool(a.metrics if a.metrics is not None else _flag(env.get(ENV["metrics"]))),
        mcp=bool(a.mcp if a.mcp is not None else _flag(env.get(ENV["mcp"]))),
    )
    if config.backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {config.backend!r}")
    if config.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"--precision must be auto, fp32, bf16 or fp16, got {config.precision!r}")
    if config.replicas < 1:
        raise ValueError(f"--replicas must be at least 1, got {config.replicas}")
    if config.cache and not config.cache.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"--cache expects redis://HOST:PORT/DB, got {config.cache!r}")
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
    if config.tile is not None and config.tile < 0:
        raise ValueError(f"--tile must be 0 (never tile) or a tile size in px, got {config.tile}")
    if config.max_side is not None and config.max_side < 0:
        raise ValueError(f"--max-side must be 0 (native size) or more, got {config.max_side}")
    return config
