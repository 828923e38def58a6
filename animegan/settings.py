"""Every environment variable and default of the engine, in one place."""
from __future__ import annotations

import os
from pathlib import Path

ENV_WEIGHTS_DIR = "ANIMEGAN_WEIGHTS_DIR"   # folder with <style>.pt or upstream TF checkpoint files
ENV_CACHE_DIR = "ANIMEGAN_CACHE_DIR"       # where converted weights are cached
ENV_OFFLINE = "ANIMEGAN_OFFLINE"           # 1: never download
ENV_HF_OFFLINE = "HF_HUB_OFFLINE"          # honoured too, as Hugging Face tools do
ENV_MIRROR = "ANIMEGAN_WEIGHTS_MIRROR"     # base URL serving the upstream files by name, instead of GitHub
ENV_STYLES_DIR = "ANIMEGAN_STYLES_DIR"     # folder of style TOML files

PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULT_STYLES_DIR = PACKAGE_ROOT.parent / "styles"
DOWNLOAD_TIMEOUT_S = 30.0
DOWNLOAD_CHUNK = 1 << 16

_TRUE = {"1", "true", "yes", "on"}


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def offline() -> bool:
    return env_flag(ENV_OFFLINE) or env_flag(ENV_HF_OFFLINE)


def offline_variables() -> list[str]:
    """The offline variables that are set, so a message can name the one the user actually set."""
    return [name for name in (ENV_OFFLINE, ENV_HF_OFFLINE) if env_flag(name)]


def cache_dir() -> Path:
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "animegan"


def weights_dir() -> Path | None:
    value = os.environ.get(ENV_WEIGHTS_DIR)
    return Path(value).expanduser() if value else None


def styles_dir() -> Path:
    value = os.environ.get(ENV_STYLES_DIR)
    return Path(value).expanduser() if value else DEFAULT_STYLES_DIR


def mirror() -> str | None:
    return os.environ.get(ENV_MIRROR) or None
