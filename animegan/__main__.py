"""Command line.

``python -m animegan INPUT [INPUT|DIR ...] --style STYLE [--out DIR] ...`` converts photos and videos: each photo
becomes ``<stem>_<style>.png`` in ``--out`` (``imaging.result_name``), each video ``<stem>_<style>.mp4`` with its
sound (videos are recognised by probing the file, not by its name; see :mod:`animegan.video`), and one line per
written file (path, size, seconds) goes to stdout unless ``--quiet``. A bad file is reported and skipped; the exit
code is 1 if any input failed, 2 for unusable arguments or missing weights.

``python -m animegan download [STYLE ...] [--to DIR]`` gets weights ready before they are needed (all styles by
default): found locally or downloaded, verified, converted and cached; ``--to`` also writes ``<style>.pt`` files
into DIR for ``--weights-dir`` on an offline machine or in a Docker image. The exit code is 1 if any style
could not be made ready, 2 for unusable arguments. A photo file named ``download`` is given as ``./download``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import av
from tqdm.auto import tqdm

from . import imaging, video
from .engine import ConversionTimeout, LocalConverter, OutOfMemory
from .framing import FRAMINGS, KEEP, DetectorMissing
from .memory import fmt_bytes, parse_bytes, resolve_device
from .options import RunOptions
from .precision import PRECISIONS, resolve
from .registry import Registry
from .styles import UnknownStyleError, load_styles, style_ids
from .weights import WeightsError, WeightsOrigin
from .weights.folder import write_weights_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DOWNLOAD = "download"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m animegan",
                                description="Turn photos and videos into anime art (AnimeGANv2). A video becomes "
                                            "<stem>_<style>.mp4 (H.264, its sound kept, same frames and timing).",
                                epilog="Get weights ready first (all styles, or some; --to DIR fills a weights "
                                       "folder): python -m animegan download [STYLE ...] [--to DIR]. "
                                       "A photo named 'download' is given as ./download.")
    p.add_argument("inputs", nargs="+", type=Path, help="image or video files, or folders (walked for images and videos); "
                   "a file is taken as a video when its container holds moving pictures")
    p.add_argument("--style", default="hayao", help=f"style id or name: {style_ids()} (default: hayao)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", type=Path, help="a .pt state dict or a TF1 checkpoint prefix for this style")
    src.add_argument("--weights-dir", type=Path, help="folder holding <style>.pt or the upstream TF checkpoint files")
    p.add_argument("--out", type=Path, default=Path("."), help="output folder (default: current folder)")
    p.add_argument("--max-side", type=int, default=None,
                   help="downscale so the longer side is at most N px (0: native size; default: the style's for "
                        f"photos, {video.VIDEO_DEFAULT_MAX_SIDE} for videos)")
    p.add_argument("--temporal", choices=["on", "off"], default="on",
                   help="videos: smooth each layer's statistics across frames so still backgrounds keep their tones "
                        "(on, default), or run every frame on its own (off)")
    p.add_argument("--max-video-seconds", type=float, default=0,
                   help="refuse videos longer than this, checked from the header (default 0: no limit)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    p.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                   help="auto (default): fp16 on CUDA, bf16 on a CPU with native bf16 (AVX512_BF16/AMX), else fp32; "
                        "fp32 gives the reference output")
    p.add_argument("--keep-brightness", action="store_true", help="match the photo's mean brightness (upstream post-step)")
    p.add_argument("--framing", choices=list(FRAMINGS), default=None,
                   help="portrait styles: face (default: the largest face, squared), center (centre square), whole "
                        "(the whole photo), paste (faces stylised and pasted back into the photo); scene styles ignore it; "
                        "videos: whole (default) or center")
    p.add_argument("--background", default=KEEP, metavar="keep|STYLE",
                   help="with --framing paste: keep the rest of the photo (default), or stylise it with a scene style "
                        f"({', '.join(s.id for s in load_styles() if not s.is_portrait)})")
    p.add_argument("--offline", action="store_true", help="never download weights")
    p.add_argument("--max-pixels", type=int, default=imaging.DEFAULT_MAX_PIXELS, help="refuse images above this many pixels")
    p.add_argument("--memory-budget", help="memory one photo may use, e.g. 2G (default, for this one command: free "
                   "VRAM minus a margin, or half the available RAM); larger photos run layer by layer in tiles, "
                   "as exact as a whole run")
    p.add_argument("--tile", type=int, default=None, help="0: never tile; N: always N px tiles (default: from the budget)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors (no progress, no line per written file)")
    args = p.parse_args(argv)
    if args.max_side is not None and args.max_side < 0:
        p.error("--max-side must be 0 (native size) or a positive number of pixels")
    if args.max_video_seconds < 0:
        p.error("--max-video-seconds must be 0 (no limit) or a number of seconds")
    if args.tile is not None and args.tile < 0:
        p.error("--tile must be 0 (never tile) or a tile size in px")
    scenes = [s.id for s in load_styles() if not s.is_portrait]
    args.background = args.background.strip().lower()
    if args.background not in (KEEP, *scenes):
        p.error(f"--background must be {KEEP} or a scene style ({', '.join(scenes)}), not {args.background!r}")
    try:
        parse_bytes(args.memory_budget)
    except ValueError as exc:
        p.error(str(exc))
    return args


def parse_download_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m animegan download",
        description="Get styles' weights ready: take them from the weights folder or the cache, or download them "
                    "(size and git SHA-1 checked while streaming), convert and cache them. With --to, also write "
                    "<style>.pt files that --weights-dir / ANIMEGAN_WEIGHTS_DIR accept (offline machines, Docker builds).")
    p.add_argument("styles", nargs="*", metavar="STYLE", help="style ids or names (default: every style)")
    p.add_argument("--to", type=Path, metavar="DIR", help="also write <style>.pt into DIR (atomically)")
    p.add_argument("--weights-dir", type=Path, metavar="DIR", help="take weights from this folder when it has them")
    p.add_argument("--offline", action="store_true", help="never download: only the weights folder and the cache")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
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
        return download_main(argv[1:])
    return convert_main(argv)


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
        device = resolve_device(args.device)  # preload exactly the model stylize() will ask for
        registry.get(spec, device, resolve(args.precision, device).precision)
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
                         max_pixels=args.max_pixels, memory_budget=args.memory_budget, tile=args.tile)
    convert = LocalConverter(registry)
    failed = 0
    written: set[Path] = set()
    # The user's own files: no duration or frame-count limit unless asked for; the per-frame pixel guard stays.
    limits = video.VideoLimits(max_seconds=args.max_video_seconds or float("inf"), max_frames=2**62,
                               max_pixels=args.max_pixels)
    for path in tqdm(files, unit="file", disable=True if args.quiet else None):
        start = time.perf_counter()
        try:
            is_clip = video.is_video(path)
            n = 1
            target = args.out / imaging.result_name(path.stem, spec.id, ext="mp4" if is_clip else "png")
            while target in written:  # same stem from two folders (or a.jpg and a.png): keep both
                n += 1
                target = args.out / imaging.result_name(path.stem, spec.id, ext="mp4" if is_clip else "png", n=n)
            if is_clip:
                notices = _convert_video(path, target, options, registry, limits, args)
                size = target.stat().st_size
            else:
                result = convert(path, options)
                data = imaging.encode_png(result.image)
                target.write_bytes(data)
                notices, size = result.stats.notices, len(data)
            written.add(target)
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
        except (WeightsError, OSError) as exc:
            failed += 1
            print(f"error: {spec.id}: {exc}", file=sys.stderr, flush=True)
        registry.unload(spec.id)  # one style's tensors at a time
    if failed:
        print(f"{failed} of {len(specs)} styles are not ready", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
