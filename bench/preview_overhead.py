"""What watching a clip as it converts costs the conversion: ``video.stylize_video`` with a preview
(:class:`animegan.preview.SegmentWriter` writing segments) against the same call without one, alternating, in one
process, at each max side. Prints the medians, their ratio, and what the preview wrote and dropped.
Not a test: figures to re-measure (on a shared machine they are noisy; compare the ratio, not the seconds).

    python bench/preview_overhead.py --sides 128 320 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animegan import Registry, preview, video

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
CLIP = SHARED / "video" / "railway_pan_320x240_2s.mp4"
WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"


def one(registry: Registry, side: int, folder: Path, with_preview: bool) -> tuple[float, str]:
    writer = None
    if with_preview:
        writer = preview.SegmentWriter(folder / "preview", video.probe(CLIP).fps, lambda s: None)
    start = time.perf_counter()
    stats = video.stylize_video(CLIP, folder / "out.mp4", "hayao", registry=registry, max_side=side, device="cpu",
                                preview=writer)
    if writer is not None:
        writer.close()
    seconds = time.perf_counter() - start
    note = ""
    if writer is not None:
        note = f"{writer.written}/{stats.frames} frames previewed in {len(writer.segments)} segments, " \
               f"{writer.dropped} dropped"
    return seconds, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[128, 320])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(weights={"hayao": WEIGHTS}, cache_dir=Path(tmp) / "cache", offline=True)
        one(registry, min(args.sides), Path(tmp) / "warm", False)  # load the model once
        for side in args.sides:
            plain, watched, notes = [], [], []
            for r in range(args.rounds):
                plain.append(one(registry, side, Path(tmp) / f"p{side}-{r}", False)[0])
                seconds, note = one(registry, side, Path(tmp) / f"w{side}-{r}", True)
                watched.append(seconds)
                notes.append(note)
            a, b = statistics.median(plain), statistics.median(watched)
            print(f"max side {side}: without preview {a:.2f} s, with preview {b:.2f} s (median of {args.rounds}); "
                  f"ratio {b / a:.3f}; {notes[-1]}")


if __name__ == "__main__":
    main()
