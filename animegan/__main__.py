"""Command line: ``python -m animegan INPUT [INPUT|DIR ...] --style STYLE [--out DIR] ...``.

Each photo becomes ``<stem>_<style>.png`` in ``--out``. A bad file is reported
and skipped; the exit code is 1 if any photo failed, 2 for unusable arguments
or missing weights.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm.auto import tqdm

from . import imaging
from .engine import OutOfMemory, stylize
from .memory import parse_bytes, resolve_device
from .precision import PRECISIONS, resolve
from .registry import Registry
from .styles import UnknownStyleError
from .weights import WeightsError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m animegan", description="Turn photos into anime art (AnimeGANv2).")
    p.add_argument("inputs", nargs="+", type=Path, help="image files or folders (folders are walked for images)")
    p.add_argument("--style", default="hayao", help="style id or name: hayao, shinkai, paprika (default: hayao)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", type=Path, help="a .pt state dict or a TF1 checkpoint prefix for this style")
    src.add_argument("--weights-dir", type=Path, help="folder holding <style>.pt or the upstream TF checkpoint files")
    p.add_argument("--out", type=Path, default=Path("."), help="output folder (default: current folder)")
    p.add_argument("--max-side", type=int, default=None,
                   help="downscale so the longer side is at most N px (0: native size; default: the style's)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    p.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                   help="auto (default): fp16 on CUDA, bf16 on a CPU with native bf16 (AVX512_BF16/AMX), else fp32; "
                        "fp32 gives the reference output")
    p.add_argument("--keep-brightness", action="store_true", help="match the photo's mean brightness (upstream post-step)")
    p.add_argument("--offline", action="store_true", help="never download weights")
    p.add_argument("--max-pixels", type=int, default=imaging.DEFAULT_MAX_PIXELS, help="refuse images above this many pixels")
    p.add_argument("--memory-budget", help="memory one photo may use, e.g. 2G (default: free VRAM minus a margin, "
                   "or 2 GiB of RAM); larger photos run in tiles with whole-image statistics")
    p.add_argument("--tile", type=int, default=None, help="0: never tile; N: always N px tiles (default: from the budget)")
    args = p.parse_args(argv)
    if args.max_side is not None and args.max_side < 0:
        p.error("--max-side must be 0 (native size) or a positive number of pixels")
    if args.tile is not None and args.tile < 0:
        p.error("--tile must be 0 (never tile) or a tile size in px")
    try:
        parse_bytes(args.memory_budget)
    except ValueError as exc:
        p.error(str(exc))
    return args


def collect(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(path)  # a missing or broken file is reported when it is processed
    return files


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    registry = Registry(
        weights_dir=args.weights_dir, offline=True if args.offline else None,
        weights={args.style.lower(): args.weights} if args.weights else None,
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
    failed = 0
    written: set[Path] = set()
    for path in tqdm(files, unit="photo", disable=None):
        try:
            result = stylize(path, spec, registry=registry, device=device, precision=args.precision, max_side=args.max_side,
                             keep_brightness=args.keep_brightness, max_pixels=args.max_pixels,
                             memory_budget=args.memory_budget, tile=args.tile)
            target = args.out / f"{path.stem}_{spec.id}.png"
            n = 2
            while target in written:  # same stem from two folders (or a.jpg and a.png): keep both
                target = args.out / f"{path.stem}_{spec.id}_{n}.png"
                n += 1
            target.write_bytes(imaging.encode_png(result.image))
            written.add(target)
            for notice in result.stats.notices:
                tqdm.write(f"{path}: {notice}")
        except (imaging.InvalidImageError, OutOfMemory, OSError) as exc:
            failed += 1
            tqdm.write(f"skipped {path}: {exc}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(files)} photos failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
