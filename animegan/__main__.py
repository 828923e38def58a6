"""Command line.

``python -m animegan INPUT [INPUT|DIR ...] --style STYLE [--out DIR] ...`` converts photos and videos: each photo
becomes ``<stem>_<style>.png`` in ``--out`` (``imaging.result_name``), each video ``<stem>_<style>.mp4`` with its
sound (videos are recognised by probing the file, not by its name; see :mod:`animegan.video`), and one line per
written file (path, size, seconds) goes to stdout unless ``--quiet``. ``--side-by-side`` puts the input left of the
result (``<stem>_<style>_side_by_side.png`` / ``.mp4``). A bad file is reported and skipped; the exit
code is 1 if any input failed, 2 for unusable arguments or missing weights.

``python -m animegan download [STYLE ...] [--to DIR]`` gets weights ready before they are needed (all styles by
default): found locally or downloaded, verified, converted and cached; ``--to`` also writes ``<style>.pt`` files
into DIR for ``--weights-dir`` on an offline machine or in a Docker image. The exit code is 1 if any style
could not be made ready, 2 for unusable arguments. A photo file named ``download`` is given as ``./download``.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
from tqdm.auto import tqdm

from . import flags, imaging, video
from .batch import ResultNames
from .engine import ConversionTimeout, LocalConverter, OutOfMemory, device_and_precision
from .framing import KEEP, DetectorMissing
from .memory import fmt_bytes, parse_bytes
from .options import RunOptions, check_keep_color
from .registry import Registry
from .styles import UnknownStyleError, load_styles, style_ids
from .weights import WeightsDownloadError, WeightsError, WeightsOrigin
from .weights.folder import write_weights_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DOWNLOAD = "download"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The conversion command's arguments; its options come from the one table (``flags.CLI_FLAGS``)."""
    scenes = [s.id for s in load_styles() if not s.is_portrait]
    p = argparse.ArgumentParser(prog="python -m animegan",
                                description="Turn photos and videos into anime art (AnimeGANv2). A video becomes\n"
                                            "<stem>_<style>.mp4 (H.264, its sound kept, same frames and timing).",
                                epilog="Get weights ready first (all styles, or some; --to DIR fills a weights\n"
                                       "folder): python -m animegan download [STYLE ...] [--to DIR].\n"
                                       "A photo named 'download' is given as ./download.\n\n"
                                       + flags.epilog(flags.ENGINE_VARIABLES),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, help="image or video files, or folders (walked for images and videos); "
                   "a file is taken as a video when its container holds moving pictures")
    flags.add_arguments(p, flags.CLI_FLAGS.values(), fill={"styles": style_ids(), "scenes": ", ".join(scenes),
                                                           "video_max_side": video.VIDEO_DEFAULT_MAX_SIDE})
    args = p.parse_args(argv)
    if args.max_pixels is None:
        args.max_pixels = imaging.DEFAULT_MAX_PIXELS
    if args.max_side is not None and args.max_side < 0:
        p.error("--max-side must be 0 (native size) or a positive number of pixels")
    if args.max_video_seconds < 0:
        p.error("--max-video-seconds must be 0 (no limit) or a number of seconds")
    try:
        check_keep_color(args.keep_color)
    except ValueError as exc:
        p.error(f"--keep-color: {exc}")
    if args.tile is not None and args.tile < 0:
        p.error("--tile must be 0 (never tile) or a tile size in px")
    args.background = args.background.strip().lower()
    if args.background not in (KEEP, *scenes):
        p.error(f"--background must be {KEEP} or a scene style ({', '.join(scenes)}), not {args.background!r}")
    try:
        parse_bytes(args.memory_budget)
    except ValueError as exc:
        p.error(str(exc))
    return args


def parse_download_args(argv: list[str]) -> argparse.Namespace:
    """The download command's arguments; its options come from the one table (``flags.DOWNLOAD_FLAGS``)."""
    p = argparse.ArgumentParser(
        prog="python -m animegan download",
        description="Get styles' weights ready: take them from the weights folder or the cache, or download them "
                    "(size and git SHA-1 checked while streaming), convert and cache them. With --to, also write "
                    "<style>.pt files that --weights-dir / ANIMEGAN_WEIGHTS_DIR accept (offline machines, Docker builds).")
    p.add_argument("styles", nargs="*", metavar="STYLE", help="style ids or names (default: every style)")
    flags.add_arguments(p, flags.DOWNLOAD_FLAGS.values())
    return p.parse_args(argv)


def collect(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | set(video.VIDEO_SUFFIXES))
        else:
            files.append(path)  # a missing or broken file is reported when it is processed
    return files


def written_line(path: Path, size: int, seconds: float) -> str:
    """One line per written file, for scripts and logs as much as for people: path, size, seconds."""
    return f"{path}  {fmt_bytes(size)}  {seconds:.2f} s"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == DOWNLOAD:
        if Path(DOWNLOAD).exists():
            print(f"note: '{DOWNLOAD}' is the weights command; to convert the file named {DOWNLOAD}, "
                  f"write ./{DOWNLOAD}", file=sys.stderr)
        with quiet_registry_log():
            return download_main(argv[1:])
    with quiet_registry_log():
        return convert_main(argv)


@contextlib.contextmanager
def quiet_registry_log() -> Iterator[None]:
    """The registry logs a style that failed to load (for a server's log); a command prints that error itself,
    once, so its log line would only say the same thing twice. Restored after: main() may run in a process
    that goes on (tests, a script calling it)."""
    logger = logging.getLogger("animegan.registry")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def convert_main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    registry = Registry(
        weights_dir=args.weights_dir, offline=True if args.offline else None,
        weights={args.style.lower(): args.weights} if args.weights else None,
        origin=WeightsOrigin.from_flags(offline=args.offline, weights_dir=args.weights_dir is not None),
    )
    try:
        spec = registry.style(args.style)
        if args.weights:  # the registry keys explicit files by style id
            registry.weights = {spec.id: args.weights}
        device, decision = device_and_precision(RunOptions(device=args.device, precision=args.precision))
        registry.get(spec, device, decision.precision)  # preload exactly the model the conversions will ask for
    except (UnknownStyleError, WeightsError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = collect(args.inputs)
    if not files:
        print("error: no images found in the given inputs", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    options = RunOptions(style=spec.id, device=str(device), precision=args.precision, max_side=args.max_side,
                         keep_brightness=args.keep_brightness, framing=args.framing, background=args.background,
                         max_pixels=args.max_pixels, memory_budget=args.memory_budget, tile=args.tile,
                         keep_color=args.keep_color, side_by_side=args.side_by_side)
    convert = LocalConverter(registry)
    failed = 0
    names = ResultNames()
    # The user's own files: no duration or frame-count limit unless asked for; the per-frame pixel guard stays.
    limits = video.VideoLimits(max_seconds=args.max_video_seconds or float("inf"), max_frames=2**62,
                               max_pixels=args.max_pixels)
    for path in tqdm(files, unit="file", disable=True if args.quiet else None):
        start = time.perf_counter()
        try:
            is_clip = video.is_video(path)
            # same stem from two folders (or a.jpg and a.png): keep both (the web app's batch ZIP names alike)
            target = args.out / names.free(path.stem, spec.id, ext="mp4" if is_clip else "png",
                                           side_by_side=args.side_by_side)
            if is_clip:
                notices = _convert_video(path, target, options, registry, limits, args)
                size = target.stat().st_size
            else:
                result = convert(path, options)
                data = imaging.encode_png(result.image)
                target.write_bytes(data)
                notices, size = result.stats.notices, len(data)
            names.take(target.name)
            if not args.quiet:
                for notice in notices:  # stderr: stdout stays one line per written file, for scripts
                    tqdm.write(f"{path}: {notice}", file=sys.stderr)
                tqdm.write(written_line(target, size, time.perf_counter() - start), file=sys.stdout)
        except (DetectorMissing, WeightsError) as exc:  # the same for every photo (a background's weights): stop
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (imaging.InvalidImageError, video.VideoError, av.error.FFmpegError, OutOfMemory, ConversionTimeout,
                OSError) as exc:
            failed += 1
            tqdm.write(f"skipped {path}: {exc}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(files)} photos failed", file=sys.stderr)
    return 1 if failed else 0


def _convert_video(path: Path, target: Path, options: RunOptions, registry: Registry, limits: video.VideoLimits,
                   args: argparse.Namespace) -> list:
    """One video, with a progress bar over its frames (rate and time left); returns its notices."""
    with tqdm(unit="frame", desc=path.name, leave=False, disable=True if args.quiet else None) as bar:
        def on_frame(done: int, expected: int) -> None:
            bar.total = expected
            bar.update(done - bar.n)
        stats = video.stylize_video(path, target, options, temporal=args.temporal == "on", limits=limits,
                                    registry=registry, on_frame=on_frame)
    return [*stats.notices, f"{stats.frames} frames at {stats.processing_fps:.2f} frames/s, sound {stats.audio_mode}"]


def download_main(argv: list[str]) -> int:
    args = parse_download_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    registry = Registry(weights_dir=args.weights_dir, offline=True if args.offline else None,
                        origin=WeightsOrigin.from_flags(offline=args.offline, weights_dir=args.weights_dir is not None))
    try:
        specs = [registry.style(s) for s in args.styles] if args.styles else list(registry.styles())
    except UnknownStyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    specs = list(dict.fromkeys(specs))
    failed = 0
    hints: dict[str, None] = {}  # what to do without network: the same for every style, said once at the end
    for spec in specs:  # the byte progress bars come from the download itself (shown on a terminal only)
        start = time.perf_counter()
        try:
            weights = registry.weights_for(spec)
            line = f"{spec.id}: ready, from {weights.source}"
            if args.to is not None:
                target, changed = write_weights_file(weights.state_dict, args.to, spec.id)
                line = (f"{spec.id}: {written_line(target.absolute(), target.stat().st_size, time.perf_counter() - start)}"
                        f"{'' if changed else ' (unchanged)'}, from {weights.source}")
            else:
                line += f" ({time.perf_counter() - start:.2f} s)"
            if not args.quiet:
                print(line, flush=True)
        except WeightsDownloadError as exc:  # one short line each; the way out once, below
            failed += 1
            print(f"error: {spec.id}: {exc.short}", file=sys.stderr, flush=True)
            if exc.hint:
                hints[exc.hint] = None
        except (WeightsError, OSError) as exc:
            failed += 1
            print(f"error: {spec.id}: {exc}", file=sys.stderr, flush=True)
        registry.unload(spec.id)  # one style's tensors at a time
    for hint in hints:
        print(f"check the network; without it, {hint}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(specs)} styles are not ready", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
