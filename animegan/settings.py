"""The engine's settings, read from the environment through the one table (``flags.FLAGS``)."""
from __future__ import annotations

import os
from pathlib import Path

from . import flags

ENV_WEIGHTS_DIR = flags.FLAGS["weights_dir"].env    # folder with <style>.pt or upstream TF checkpoint files
ENV_CACHE_DIR = flags.FLAGS["cache_dir"].env        # where converted weights are cached
ENV_OFFLINE = flags.FLAGS["offline"].env            # 1: never download
ENV_HF_OFFLINE = flags.FLAGS["hf_offline"].env      # honoured too, as Hugging Face tools do
ENV_MIRROR = flags.FLAGS["weights_mirror"].env      # base URL serving the upstream files by name, instead of GitHub
ENV_STYLES_DIR = flags.FLAGS["styles_dir"].env      # folder of extra style TOML files (adds or overrides by id)

DOWNLOAD_TIMEOUT_S = 30.0
DOWNLOAD_CHUNK = 1 << 16


def env_flag(name: str) -> bool:
    """An on/off variable by its name, read with the one truthy parser (unset, empty or unknown: off)."""
    return flags.switch(os.environ.get(name), default=False)


def offline() -> bool:
    return flags.offline()


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


def styles_dir() -> Path | None:
    """A folder of extra (or overriding) style files; the packaged styles are always there."""
    value = os.environ.get(ENV_STYLES_DIR)
    return Path(value).expanduser() if value else None


def mirror() -> str | None:
    return os.environ.get(ENV_MIRROR) or None
