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
from .engine import stylize
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
    p.add_argument("--keep-brightness", action="store_true", help="match the photo's mean brightness (upstream post-step)")
    p.add_argument("--offline", action="store_true", help="never download weights")
    p.add_argument("--max-pixels", type=int, default=imaging.DEFAULT_MAX_PIXELS, help="refuse images above this many pixels")
    return p.parse_args(argv)


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
        registry.get(spec, "cpu" if args.device == "auto" else args.device, "fp32")
    except (UnknownStyleError, WeightsError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = collect(args.inputs)
    if not files:
        print("error: no images found in the given inputs", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in tqdm(files, unit="photo", disable=None):
        try:
            result = stylize(path, spec, registry=registry, device=args.device, max_side=args.max_side,
                             keep_brightness=args.keep_brightness, max_pixels=args.max_pixels)
            target = args.out / f"{path.stem}_{spec.id}.png"
            target.write_bytes(imaging.encode_png(result.image))
            for notice in result.stats.notices:
                tqdm.write(f"{path}: {notice}")
        except (imaging.InvalidImageError, OSError) as exc:
            failed += 1
            tqdm.write(f"skipped {path}: {exc}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(files)} photos failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
