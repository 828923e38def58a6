"""Every setting of the app and the engine, once: flag, environment variable, parser, default and help.

The app builds its argparse from this table (``serving.parser``), reads the environment through it
(``serving.load_config``), and the engine's own settings (``settings``) read their variables through the same
entries. The command line (``python -m animegan``) builds its parser from ``CLI_FLAGS`` and ``DOWNLOAD_FLAGS``,
which reuse the app's entries where an option means the same thing; ``add_arguments`` turns entries into argparse
options for all three. A Hugging Face Space, which runs ``python app.py`` without arguments, sets the variables.
Old names still work for one release, with a warning: ``--cache-size``/``ANIMEGAN_CACHE_SIZE``,
``--cache``/``ANIMEGAN_CACHE`` and ``ANIMEGAN_CACHE_TTL`` (the *result* cache's; ``ANIMEGAN_CACHE_DIR`` stays
the weights cache's).
"""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .framing import FRAMINGS
from .precision import PRECISIONS

log = logging.getLogger(__name__)

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def truthy(value: str | None) -> bool | None:
    """The one reading of an on/off variable: True, False, or None when unset or empty (so a default applies)."""
    if value is None or value.strip() == "":
        return None
    v = value.strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise ValueError(f"expected one of {', '.join(sorted(TRUE | FALSE))}, got {value!r}")


def switch(value: str | None, default: bool) -> bool:
    """An on/off variable where a wrong value must not stop the process (the engine's own): ``truthy``, with
    ``default`` for unset, empty or unreadable values. The app's flags use ``truthy`` and refuse a garbled value."""
    try:
        on = truthy(value)
    except ValueError:
        return default
    return default if on is None else on


@dataclass(frozen=True)
class Flag:
    name: str                       # attribute name; the flag is --name-with-dashes (kind "env": no flag)
    env: str                        # its variable ("" for a command-line option that has none)
    help: str                       # may name {placeholders} that the parser's builder fills (add_arguments)
    parse: Callable[[str], Any] = str
    kind: Literal["value", "switch", "append", "env"] = "value"
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    old_flag: str | None = None     # deprecated flag name (one release)
    old_env: str | None = None      # deprecated variable name (one release)
    default: Any = None             # argparse's default (the app's are None: the variable or the config decides)
    aliases: tuple[str, ...] = ()   # other spellings: "-q", "--keep-colour"
    group: str | None = None        # options of one group exclude each other

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def from_env(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The variable's raw value (the old name's, with a warning, when only that is set); None when unset."""
        env = os.environ if environ is None else environ
        value = env.get(self.env)
        if (value is None or value == "") and self.old_env and env.get(self.old_env):
            log.warning("%s is deprecated; use %s", self.old_env, self.env)
            value = env[self.old_env]
        return value if value not in (None, "") else None


def _flags(*items: Flag) -> dict[str, Flag]:
    return {f.name: f for f in items}


FLAGS: dict[str, Flag] = _flags(
    Flag("host", "ANIMEGAN_HOST", "address to listen on (default 127.0.0.1; 0.0.0.0 to serve the network)"),
    Flag("port", "ANIMEGAN_PORT", "port (default 7860)", int),
    Flag("share", "ANIMEGAN_SHARE", "also open a public gradio.live link", kind="switch"),
    Flag("device", "ANIMEGAN_DEVICE", "default auto: CUDA when present, else CPU", choices=("auto", "cpu", "cuda")),
    Flag("precision", "ANIMEGAN_PRECISION", "default auto: fp16 on CUDA, bf16 on a CPU with native bf16 "
         "(AVX512_BF16/AMX), else fp32; fp32 gives the reference output", choices=PRECISIONS),
    Flag("concurrency", "ANIMEGAN_CONCURRENCY",
         "conversions run at once (default: 1, using every core on CPU; with --backend ray: --replicas)", int),
    Flag("max_queue", "ANIMEGAN_MAX_QUEUE", "requests allowed to wait; more get 'queue full' (default 16)", int),
    Flag("max_side", "ANIMEGAN_MAX_SIDE", "initial 'max side' in the UI (0: native size; default: the style's)", int),
    Flag("keep_color", "ANIMEGAN_KEEP_COLOR", "initial 'Keep colours' in the UI's tabs, and so the API's default "
         "(as with --max-side), 0 to 1 (default 0: the style's colours)", float, metavar="S"),
    Flag("weights_dir", "ANIMEGAN_WEIGHTS_DIR", "folder with <style>.pt or the upstream TF checkpoint files", Path),
    Flag("weights", "ANIMEGAN_WEIGHTS", "weights file (.pt or TF checkpoint prefix) for one style; repeatable "
         "(variable: comma-separated STYLE=PATH pairs)", kind="append", metavar="STYLE=PATH"),
    Flag("offline", "ANIMEGAN_OFFLINE", "never download weights (HF_HUB_OFFLINE=1 too)", kind="switch"),
    Flag("preload", "ANIMEGAN_PRELOAD", "load every style's model at start (downloading what is missing), so no "
         "visitor waits for a download", kind="switch"),
    Flag("auth", "ANIMEGAN_AUTH", "require this login (the variable is better: a flag shows in process lists)",
         metavar="USER:PASS"),
    Flag("max_file_size", "ANIMEGAN_MAX_FILE_SIZE", "largest upload accepted (default 25mb)"),
    Flag("torch_threads", "ANIMEGAN_TORCH_THREADS", "torch threads per conversion on CPU (default: cores / concurrency)",
         int),
    Flag("memory_budget", "ANIMEGAN_MEMORY_BUDGET", "memory one conversion may use, e.g. 2G (default, per conversion: "
         "free VRAM minus a margin on a GPU; on the CPU 2 GiB, or half the available RAM divided by --concurrency "
         "if less); larger photos run layer by layer in tiles, as exact as a whole run"),
    Flag("tile", "ANIMEGAN_TILE", "0: never tile; N: always use N px tiles (default: decided by the budget)", int),
    Flag("max_pixels", "ANIMEGAN_MAX_PIXELS", "refuse images above this many pixels, read from the file header before "
         "decoding (default 50000000)", int),
    Flag("timeout", "ANIMEGAN_TIMEOUT", "seconds one request may run (decode, model, encode), checked after decoding, "
         "between tiles and before encoding (0: no limit; default 300)", float),
    Flag("max_batch", "ANIMEGAN_MAX_BATCH", "most photos in one many-photos batch (page or /stylize_batch), at most "
         "--max-queue: each photo has the single photo's limits and counts as one request (0: no batches; default 10)", int),
    Flag("temp_max_age", "ANIMEGAN_TEMP_MAX_AGE", "seconds uploads and results stay on the server's disk "
         "(default 10800)", int),
    Flag("backend", "ANIMEGAN_BACKEND", "where conversions run: local (this process, default) or ray (Ray Serve "
         "replicas; pip install -r requirements-extras.txt)", choices=("local", "ray")),
    Flag("ray_address", "ANIMEGAN_RAY_ADDRESS", "join this Ray cluster (auto, or HOST:6379); default: start a local Ray"),
    Flag("replicas", "ANIMEGAN_REPLICAS", "Ray Serve replicas to deploy (default 2)", int),
    Flag("result_cache_size", "ANIMEGAN_RESULT_CACHE_SIZE", "bytes of results kept in memory, e.g. 256M: the same "
         "photo, style and settings again is answered without running the model (0: off; default 256M)",
         old_flag="--cache-size", old_env="ANIMEGAN_CACHE_SIZE"),
    Flag("result_cache", "ANIMEGAN_RESULT_CACHE", "keep results in Redis, shared by every app process and replica "
         "(default: in this process only)", metavar="redis://HOST:PORT/DB", old_flag="--cache", old_env="ANIMEGAN_CACHE"),
    Flag("metrics", "ANIMEGAN_METRICS", "serve Prometheus metrics at /metrics (off by default: see SECURITY.md)",
         kind="switch"),
    Flag("mcp", "ANIMEGAN_MCP", "serve Gradio's MCP server, so AI assistants can call the stylize tool", kind="switch"),
    Flag("max_video_seconds", "ANIMEGAN_MAX_VIDEO_SECONDS", "longest video accepted, in seconds, read from the "
         "container before any work (default 30)", float),
    Flag("max_video_frames", "ANIMEGAN_MAX_VIDEO_FRAMES", "most frames a video may have, read from the container "
         "before any work (default 1800)", int),
    Flag("webcam_side", "ANIMEGAN_WEBCAM_SIDE", "longer side of the live webcam mirror's frames in px (default 256)",
         int),
    Flag("webcam_fps", "ANIMEGAN_WEBCAM_FPS", "frames per second the page sends to the webcam mirror; frames that "
         "arrive while one is being stylised are dropped, not queued (default 8)", float),
    Flag("webcam_seconds", "ANIMEGAN_WEBCAM_SECONDS", "seconds one webcam stream may run before the page must start "
         "it again (default 60)", int),
    Flag("webcam_streams", "ANIMEGAN_WEBCAM_STREAMS", "webcam streams served at once, apart from the conversion "
         "queue (default 1; 0: no webcam mirror)", int),
    # The engine's settings: environment only.
    Flag("cache_dir", "ANIMEGAN_CACHE_DIR", "where converted weights are cached (default ~/.cache/animegan)", Path,
         kind="env"),
    Flag("hf_offline", "HF_HUB_OFFLINE", "honoured like ANIMEGAN_OFFLINE, as Hugging Face tools do", kind="env"),
    Flag("weights_mirror", "ANIMEGAN_WEIGHTS_MIRROR", "base URL serving the upstream files by name, instead of GitHub",
         kind="env"),
    Flag("styles_dir", "ANIMEGAN_STYLES_DIR", "folder of extra style files (adds or overrides styles by id)", Path,
         kind="env"),
    Flag("result_cache_ttl", "ANIMEGAN_RESULT_CACHE_TTL", "seconds a Redis result lives (default: a week)", int,
         kind="env", old_env="ANIMEGAN_CACHE_TTL"),
    Flag("client_grace", "ANIMEGAN_CLIENT_GRACE", "seconds a job may run with no client listening for its result "
         "(default 5)", float, kind="env"),
    Flag("malloc_tuning", "ANIMEGAN_MALLOC_TUNING", "0: keep glibc's default malloc settings", kind="env"),
)


# The command line's options (``python -m animegan INPUT ...``), in the order --help lists them. Those that mean
# what the app's flag means reuse its entry (one help text); the others are the CLI's own. The CLI reads no
# variable of its own: only the engine's (ENGINE_VARIABLES), which its --offline and --weights-dir override.
CLI_FLAGS: dict[str, Flag] = _flags(
    Flag("style", "", "style id or name: {styles} (default: %(default)s)", default="hayao"),
    Flag("weights", "", "a .pt state dict or a TF1 checkpoint prefix for this style", Path, group="source"),
    replace(FLAGS["weights_dir"], group="source"),
    Flag("out", "", "output folder (default: current folder)", Path, default=Path(".")),
    Flag("max_side", "", "downscale so the longer side is at most N px (0: native size; default: the style's for "
         "photos, {video_max_side} for videos)", int),
    Flag("temporal", "", "videos: smooth each layer's statistics across frames so still backgrounds keep their tones "
         "(on, default), or run every frame on its own (off)", choices=("on", "off"), default="on"),
    Flag("max_video_seconds", "", "refuse videos longer than this, checked from the header (default 0: no limit)",
         float, default=0),
    replace(FLAGS["device"], default="auto"),
    replace(FLAGS["precision"], default="auto"),
    Flag("keep_brightness", "", "match the photo's mean brightness (upstream post-step)", kind="switch",
         default=False),
    Flag("keep_color", "", "0 to 1: how far the result takes the photo's own colours under the style's lines and "
         "tones (0: off, default; 1: the photo's colours); photos, portraits and videos alike", float,
         metavar="S", default=0.0, aliases=("--keep-colour",)),
    Flag("framing", "", "portrait styles: face (default: the largest face, squared), center (centre square), whole "
         "(the whole photo), paste (faces stylised and pasted back into the photo); scene styles ignore it; "
         "videos: whole (default) or center", choices=FRAMINGS),
    Flag("background", "", "with --framing paste: keep the rest of the photo (default), or stylise it with a scene "
         "style ({scenes})", metavar="keep|STYLE", default="keep"),
    Flag("side_by_side", "", "put the input (as the model saw it: upright, resized, framed) left of the result, in "
         "one picture exactly twice as wide, named <stem>_<style>_side_by_side.png (.mp4: videos, with their sound)",
         kind="switch", default=False),
    replace(FLAGS["offline"], default=False),
    replace(FLAGS["max_pixels"]),   # None: the CLI applies imaging.DEFAULT_MAX_PIXELS, as the app does
    # one user: the CLI's default budget is the machine's (the app's is a share per conversion)
    replace(FLAGS["memory_budget"], help="memory one photo may use, e.g. 2G (default, for this one command: free VRAM "
            "minus a margin on a GPU, or half the available RAM); larger photos run layer by layer in tiles, as exact "
            "as a whole run"),
    replace(FLAGS["tile"]),
    Flag("quiet", "", "print only errors (no progress, no line per written file)", kind="switch", default=False,
         aliases=("-q",)),
)

# ``python -m animegan download [STYLE ...]``'s options.
DOWNLOAD_FLAGS: dict[str, Flag] = _flags(
    Flag("to", "", "also write <style>.pt into DIR (atomically)", Path, metavar="DIR"),
    replace(FLAGS["weights_dir"], help="take weights from this folder when it has them", metavar="DIR"),
    replace(FLAGS["offline"], help="never download: only the weights folder and the cache", default=False),
    replace(CLI_FLAGS["quiet"], help="print only errors"),
)

# The variables the engine reads itself, so the command line honours them too.
ENGINE_VARIABLES = ("offline", "hf_offline", "weights_dir", "cache_dir", "weights_mirror", "styles_dir",
                    "malloc_tuning")


def add_arguments(parser: argparse.ArgumentParser, entries: Iterable[Flag],
                  fill: Mapping[str, object] | None = None) -> None:
    """One argparse option per entry (kind "env" has none), for the app and the command line alike.

    ``fill`` gives the values of the {placeholders} in help texts that only the caller knows (the style ids).
    """
    groups: dict[str, Any] = {}  # group name -> argparse's mutually exclusive group
    for f in entries:
        if f.kind == "env":
            continue
        target: Any = parser
        if f.group:
            if f.group not in groups:
                groups[f.group] = parser.add_mutually_exclusive_group()
            target = groups[f.group]
        short = [a for a in f.aliases if not a.startswith("--")]
        names = [*short, f.option, *(a for a in f.aliases if a.startswith("--"))]
        names += [f.old_flag] if f.old_flag else []
        help_text = f.help.format_map(fill) if fill else f.help
        help_text += f" ({f.old_flag} is the deprecated name)" if f.old_flag else ""
        if f.kind == "switch":
            target.add_argument(*names, dest=f.name, action="store_true", default=f.default, help=help_text)
        elif f.kind == "append":
            target.add_argument(*names, dest=f.name, action="append", default=[] if f.default is None else f.default,
                                metavar=f.metavar, help=help_text)
        else:
            target.add_argument(*names, dest=f.name, type=f.parse, choices=f.choices, metavar=f.metavar,
                                default=f.default, help=help_text)


def env_value(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """A setting from the environment, parsed (None when unset)."""
    flag = FLAGS[name]
    raw = flag.from_env(environ)
    if raw is None:
        return None
    if flag.kind == "switch" or name in ("hf_offline",):
        return truthy(raw)
    return flag.parse(raw)


def offline(environ: Mapping[str, str] | None = None) -> bool:
    """Downloads are off when ANIMEGAN_OFFLINE or HF_HUB_OFFLINE is on: the app and the CLI read it the same way."""
    return bool(env_value("offline", environ)) or bool(env_value("hf_offline", environ))


def epilog(names: Iterable[str] | None = None) -> str:
    """The environment table for ``--help``: every variable (the app's), or those named."""
    lines = ["environment (flags win):"]
    for f in (FLAGS.values() if names is None else (FLAGS[n] for n in names)):
        lines.append(f"  {f.env:28} {f.option if f.kind != 'env' else '(no flag)'}")
    return "\n".join(lines)
