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

from . import settings
from .memory import parse_bytes
from .styles import UnknownStyleError, get_style

# CPU: measured on a 2-core machine with stylize() on 512x341 photos: 1 conversion x 2 torch threads gave
# 0.53-0.71 photos/s at 1.4-1.9 s each, 2 conversions x 1 thread 0.53-0.64 photos/s at 3.1-3.8 s each (and twice
# the peak memory); only tiny 256 px photos favoured two workers. So one conversion at a time uses every core.
# Above 8 cores one conversion stops scaling well, so larger machines get one worker per 8 cores (not measured).
CPU_CORES_PER_WORKER = 8
GPU_CONCURRENCY = 1
DEFAULT_MAX_QUEUE = 16
DEFAULT_MAX_FILE_SIZE = "25mb"
DEFAULT_PORT = 7860

ENV = {
    "host": "ANIMEGAN_HOST",
    "port": "ANIMEGAN_PORT",
    "share": "ANIMEGAN_SHARE",
    "device": "ANIMEGAN_DEVICE",
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
}


@dataclass(frozen=True)
class ServeConfig:
    """Everything the app needs to know to build its UI and serve it."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    share: bool = False
    device: str = "auto"
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

    @property
    def device_type(self) -> str:
        from .memory import resolve_device

        return resolve_device(self.device).type

    def workers(self) -> int:
        """Conversions that may run at once (the queue's concurrency limit)."""
        if self.concurrency:
            return self.concurrency
        if self.device_type == "cuda":
            return GPU_CONCURRENCY
        return max(1, cpu_cores() // CPU_CORES_PER_WORKER)

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
    p.add_argument("--concurrency", type=int, help="conversions run at once (default: 1 on a GPU, per core count on CPU)")
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
    )
    try:
        config.device_type  # noqa: B018 (resolving the device is the check: 'cuda' without one is a usage error)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None
    for name in ("concurrency", "max_queue", "torch_threads"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if config.tile is not None and config.tile < 0:
        raise ValueError(f"--tile must be 0 (never tile) or a tile size in px, got {config.tile}")
    if config.max_side is not None and config.max_side < 0:
        raise ValueError(f"--max-side must be 0 (native size) or more, got {config.max_side}")
    return config
