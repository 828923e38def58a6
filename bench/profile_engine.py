"""Where one whole-image pass spends its time, per precision, and how many dtype casts it makes (torch.profiler).

A bf16 run casts only the 3-channel photo on the way in (uint8 -> fp32 -> bf16) and the 3-channel output
on the way out (bf16 -> fp32 -> uint8), never an activation between layers; this prints the count of
``aten::_to_copy`` calls on tensors of more than 3 channels (must be 0) and on the photo/output.

    python bench/profile_engine.py --side 512 --precisions fp32 bf16
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan.inference import run_whole
from animegan.registry import Registry

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"
PHOTO = SHARED / "photos" / "railway_crossing.jpg"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--side", type=int, default=512)
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--rows", type=int, default=8, help="ops listed per precision (default 8)")
    args = p.parse_args()
    command = shlex.join(["python", "bench/profile_engine.py", "--side", str(args.side), "--precisions", *args.precisions])
    print(f"command : {command}")
    rgb = np.asarray(Image.open(PHOTO).convert("RGB").resize((args.side, args.side), Image.LANCZOS))
    with tempfile.TemporaryDirectory() as cache:
        registry = Registry(weights={"hayao": WEIGHTS}, cache_dir=Path(cache), offline=True)
        for precision in args.precisions:
            model = registry.get("hayao", "cpu", precision).model
            run_whole(model, rgb, precision)  # warm-up: oneDNN primitives, allocator
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                run_whole(model, rgb, precision)
            events = prof.key_averages()
            total = sum(e.self_cpu_time_total for e in events)
            casts = [(e.input_shapes[0], e.count) for e in prof.key_averages(group_by_input_shape=True)
                     if e.key == "aten::_to_copy" and e.input_shapes and len(e.input_shapes[0]) >= 3]
            between = sum(n for shape, n in casts if shape[-3] > 3)  # NCHW or CHW: channels third from the end
            at_ends = sum(n for shape, n in casts if shape[-3] <= 3)
            print(f"\n{precision} at {args.side}x{args.side}: {total / 1e3:.0f} ms of self CPU time; dtype casts of "
                  f"activations between layers: {between}; of the photo and the output: {at_ends}")
            for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:args.rows]:
                print(f"  {e.key:<28} {100 * e.self_cpu_time_total / total:5.1f}%  {e.self_cpu_time_total / 1e3:8.1f} ms"
                      f"  x{e.count}")
    print(f"\nre-run  : {command}")


if __name__ == "__main__":
    main()
