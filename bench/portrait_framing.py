"""Time of each framing against ``whole`` on the same portrait, measured in the same run (CPU fp32 by default).

    ANIMEGAN_SHARED=../shared flock -x /tmp/animegan-cpu.lock python bench/portrait_framing.py [--runs 3]

A portrait style runs with the stand-in Hayao weights (the real portrait weights are not downloadable here);
``paste+hayao`` stylises the background with the Hayao style on the same weights.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan import Registry, stylize

STYLE = "face_paint_512_v2"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", type=Path, default=Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared")))
    p.add_argument("--photo", type=Path, default=REPO / "animegan" / "examples" / "astronaut.jpg")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    weights = args.shared / "weights" / "hayao-int8-dequant.pt"
    registry = Registry(weights={STYLE: weights, "hayao": weights}, offline=True)
    cases = [("whole", "keep"), ("face", "keep"), ("center", "keep"), ("paste", "keep"), ("paste", "hayao")]
    times = {}
    for framing, background in cases:
        def once(framing: str = framing, background: str = background) -> float:
            start = time.perf_counter()
            stylize(args.photo, STYLE, registry=registry, framing=framing, background=background, device=args.device,
                    precision="fp32", max_side=0)
            return time.perf_counter() - start
        once()  # warm-up: model load, detector load
        times[(framing, background)] = statistics.median(once() for _ in range(args.runs))
    base = times[("whole", "keep")]
    print(f"{'framing':16} {'seconds':>8} {'vs whole':>9}")
    for (framing, background), t in times.items():
        name = framing if background == "keep" or framing != "paste" else f"{framing}+{background}"
        print(f"{name:16} {t:8.2f} {t / base:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
