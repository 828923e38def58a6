"""How a clip should reach a Ray replica: the whole file (bytes in, MP4 bytes out), or batches of frames.

    python bench/ray_clip_bench.py [--frames 48] [--side 320] [--rounds 3] [--batches [B ...]] [--preview]

One local Ray replica (1 torch thread, fp32), as ``--backend ray --replicas 1`` starts it. Per round, in turns:

* ``clip``: ``RayBackend.clip``: the file's bytes go, the replica decodes, runs the model and encodes; the MP4 comes
  back (with progress streamed).
* ``clip+preview`` (with ``--preview``): the same with the Video tab's preview, a ``SegmentWriter`` in a temporary
  folder: the replica encodes the segments and sends their bytes back on the stream. Also prints the segments, their
  bytes and the seconds until the first one arrived.
* ``frames/B``: the app decodes the clip, sends batches of B raw RGB frames (and the stream's smoother) to the
  replica's ``frames`` method, and encodes what comes back (H.264, no sound: the cheapest version of this route).

Prints wall seconds and the app process's CPU seconds (median of the rounds), each as a ratio to ``clip`` measured
in the same run. Needs ANIMEGAN_SHARED (photos, weights); clips are made in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan.options import RunOptions
from animegan.serving import ServeConfig
from animegan.temporal import FrameSmoother

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"


def make_clip(path: Path, frames: int, side: int) -> Path:
    base = Image.open(SHARED / "photos" / "cars_bridge_forest.jpg").convert("RGB")
    w, h = side, side * 3 // 4
    base = np.asarray(base.resize((w, h), Image.LANCZOS))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            f = base.copy()
            x = (i * 7) % (w - 16)
            f[h // 3:h // 3 + 16, x:x + 16] = (250, 240, 40)
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def by_frames(backend, source: Path, dest: Path, options: RunOptions, batch: int) -> int:
    """The other route: decode here, a batch of frames to the replica at a time, encode here."""
    smoother = FrameSmoother()
    portable, _ = options.portable()
    done = 0
    with av.open(str(source)) as inp, av.open(str(dest), "w") as out:
        src = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = src.codec_context.width, src.codec_context.height, "yuv420p"

        def send(frames: list[np.ndarray]) -> None:
            nonlocal smoother, done
            styled, smoother, _ = backend.handle.frames.remote(frames, portable, None, smoother).result()
            for rgb in styled:
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = done
                out.mux(stream.encode(frame))
                done += 1

        pending: list[np.ndarray] = []
        for frame in inp.decode(src):
            pending.append(frame.to_ndarray(format="rgb24"))
            if len(pending) == batch:
                send(pending)
                pending = []
        if pending:
            send(pending)
        out.mux(stream.encode(None))
    return done


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--side", type=int, default=320)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, nargs="*", default=[1, 8])
    p.add_argument("--preview", action="store_true", help="also clip+preview (the Video tab's SegmentWriter)")
    args = p.parse_args()
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    from animegan import preview, ray_backend  # imports Ray (after setting up its auth for this machine)

    config = ServeConfig(backend="ray", replicas=1, device="cpu", precision="fp32", offline=True,
                         weights={"hayao": WEIGHTS}, torch_threads=1, result_cache_size=0)
    backend = ray_backend.RayBackend(config)
    me = psutil.Process()
    options = RunOptions(style="hayao", max_side=0)
    routes = ["clip", *(["clip+preview"] if args.preview else []), *(f"frames/{b}" for b in args.batches)]
    shown: dict[str, list[float]] = {"segments": [], "bytes": [], "first_segment_s": []}
    wall: dict[str, list[float]] = {r: [] for r in routes}
    cpu: dict[str, list[float]] = {r: [] for r in routes}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            clip = make_clip(Path(tmp) / "in.mp4", args.frames, args.side)
            backend.clip(clip, Path(tmp) / "warm.mp4", options)  # model loaded, codecs warm on both sides
            for _ in range(args.rounds):
                for route in routes:
                    dest = Path(tmp) / "out.mp4"
                    c0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
                    if route == "clip":
                        n = backend.clip(clip, dest, options).frames
                    elif route == "clip+preview":
                        arrived: list[float] = []
                        writer = preview.SegmentWriter(Path(tmp) / f"preview{len(wall[route])}", 24,
                                                       lambda _, arrived=arrived: arrived.append(time.perf_counter()))
                        n = backend.clip(clip, dest, options, preview=writer).frames
                        writer.close()
                        shown["segments"].append(len(writer.segments))
                        shown["bytes"].append(sum(s.path.stat().st_size for s in writer.segments))
                        shown["first_segment_s"].append(arrived[0] - t0 if arrived else float("nan"))
                    else:
                        n = by_frames(backend, clip, dest, options, int(route.split("/")[1]))
                    wall[route].append(time.perf_counter() - t0)
                    cpu[route].append(sum(me.cpu_times()[:2]) - c0)
                    assert n == args.frames, (route, n)
    finally:
        ray_backend.serve.shutdown()
        ray_backend.ray.shutdown()
    base_wall, base_cpu = statistics.median(wall["clip"]), statistics.median(cpu["clip"])
    print(json.dumps({
        "frames": args.frames, "size": [args.side, args.side * 3 // 4], "rounds": args.rounds,
        "routes": {r: {"wall_s": round(statistics.median(wall[r]), 3), "app_cpu_s": round(statistics.median(cpu[r]), 3),
                       "wall_vs_clip": round(statistics.median(wall[r]) / base_wall, 3),
                       "app_cpu_vs_clip": round(statistics.median(cpu[r]) / max(base_cpu, 1e-3), 2)}
                   for r in routes},
        **({"preview": {k: round(statistics.median(v), 3) for k, v in shown.items()}} if args.preview else {}),
    }, indent=1))


if __name__ == "__main__":
    main()
