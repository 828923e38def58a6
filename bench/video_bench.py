"""Video figures, each a ratio against a baseline measured in the same run (run under `flock -x`).

    python bench/video_bench.py flicker    # flicker index with / without temporal smoothing, and fidelity
    python bench/video_bench.py rss        # peak RSS of a 10 s clip vs a 3 s clip (child processes, same size)
    python bench/video_bench.py pipeline   # stylize_video's wall time vs the model's own time for those frames
    python bench/video_bench.py fidelity   # per-frame PSNR vs stylize(), next to H.264's own ceiling
    python bench/video_bench.py fps        # frames/s at 320x240 and 640x360, fp32 and bf16
    python bench/video_bench.py all

Needs ANIMEGAN_SHARED (photos, weights, the railway clip). Clips are made from the shared photos into a
temporary folder; nothing is written into the repository.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan import imaging, inference, memory, video
from animegan.options import RunOptions
from animegan.registry import Registry

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"


def registry() -> Registry:
    return Registry(weights={"hayao": WEIGHTS}, cache_dir=tempfile.mkdtemp(prefix="vbench-"), offline=True)


def photo(name: str, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.open(SHARED / "photos" / name).convert("RGB").resize((w, h), Image.LANCZOS))


def still_camera_clip(w: int, h: int, n: int) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """A still background (railway crossing) with a person-sized cut-out of the kimono photo walking across it.

    Returns the frames and, per frame, the object's box (x0, y0, x1, y1).
    """
    background = photo("railway_crossing.jpg", w, h)
    ow, oh = w // 5, h // 2
    sprite = photo("kyoto_street_kimono.jpg", ow, oh)
    frames, boxes = [], []
    for i in range(n):
        x0 = round((w - ow) * i / max(1, n - 1))
        y0 = h // 3
        f = background.copy()
        f[y0:y0 + oh, x0:x0 + ow] = sprite
        frames.append(f)
        boxes.append((x0, y0, x0 + ow, y0 + oh))
    return frames, boxes


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 24, crf: int = 12, preset: str = "veryfast") -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": str(crf), "preset": preset}
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = i
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    return path


# --- flicker ------------------------------------------------------------------------------------

def flicker(args: argparse.Namespace) -> dict:
    """Mean |output change| between consecutive frames over pixels whose input did not change and that lie
    at least ``margin`` px from the moving object, with and without smoothing; and how far (PSNR over the
    same still pixels) each smoothed frame is from its per-frame run."""
    reg = registry()
    w, h, n, margin = 320, 240, args.frames, args.margin
    frames, boxes = still_camera_clip(w, h, n)
    options = RunOptions(style="hayao", precision=args.precision)
    plain = [video.stylize_frame(f, options, registry=reg) for f in frames]
    out = {"clip": f"{w}x{h}, {n} frames, object {w // 5}x{h // 2} crossing", "margin_px": margin,
           "precision": args.precision, "momenta": {}}
    base = None
    for momentum in args.momenta:
        smoother = video.FrameSmoother(momentum)
        smooth = [video.stylize_frame(f, options, smoother, reg) for f in frames]
        still_changes, plain_changes, psnrs = [], [], []
        for t in range(1, n):
            mask = still_mask(frames[t - 1], frames[t], boxes[t - 1], boxes[t], margin)
            still_changes.append(np.abs(smooth[t].astype(np.int16) - smooth[t - 1]).mean(axis=2)[mask].mean())
            plain_changes.append(np.abs(plain[t].astype(np.int16) - plain[t - 1]).mean(axis=2)[mask].mean())
            psnrs.append(imaging.psnr(smooth[t][mask], plain[t][mask]))
        base = float(np.mean(plain_changes))
        index = float(np.mean(still_changes))
        out["momenta"][momentum] = {"flicker_smoothed": round(index, 4), "ratio_to_plain": round(index / base, 3),
                                    "min_psnr_vs_plain_db": round(min(psnrs), 2),
                                    "mean_psnr_vs_plain_db": round(float(np.mean(psnrs)), 2),
                                    "cuts": smoother.cuts}
    out["flicker_plain"] = round(base, 4)
    return out


def still_mask(a: np.ndarray, b: np.ndarray, box_a: tuple, box_b: tuple, margin: int) -> np.ndarray:
    mask = np.all(a == b, axis=2)
    for x0, y0, x1, y1 in (box_a, box_b):
        mask[max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin] = False
    return mask


# --- peak RSS -----------------------------------------------------------------------------------

def rss(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="vbench-rss-"))
    w, h, fps = 256, 192, 24
    results = {}
    for seconds in (3, 10):
        frames, _ = still_camera_clip(w, h, 24)
        clip = write_clip(tmp / f"clip{seconds}.mp4", (frames + frames[::-1]) * (seconds * fps // 48) +
                          frames[: (seconds * fps) % 48])
        r = subprocess.run([sys.executable, __file__, "_child", str(clip), str(tmp / f"out{seconds}.mp4"),
                            args.precision], capture_output=True, text=True, check=True)
        results[f"{seconds}s"] = json.loads(r.stdout.strip().splitlines()[-1])
    a, b = results["3s"]["peak_rss"], results["10s"]["peak_rss"]
    return {"size": f"{w}x{h} @ {fps} fps", "precision": args.precision, "runs": results,
            "ratio_10s_to_3s": round(b / a, 3)}


def child(args: argparse.Namespace) -> None:
    stats = video.stylize_video(args.src, args.dst, registry=registry(), style="hayao", max_side=0,
                                precision=args.precision)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"frames": stats.frames, "peak_rss": peak, "seconds": round(stats.seconds, 2)}))


# --- pipeline vs model --------------------------------------------------------------------------

def pipeline(args: argparse.Namespace) -> dict:
    """The shared clip through stylize_video, against the model alone on the same decoded frames."""
    reg = registry()
    src = SHARED / "video" / "railway_pan_320x240_2s.mp4"
    with av.open(str(src)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    options = RunOptions(style="hayao", precision=args.precision)
    video.stylize_frame(frames[0], options, registry=reg)  # load and warm up both paths alike
    loaded = reg.get(reg.style("hayao"), memory.resolve_device("auto"), args.precision)
    out = {}
    for temporal in (False, True):
        model_runs, pipe_runs, inside = [], [], []
        for _ in range(args.reps):  # alternated and the fastest of each kept: the CPU is shared with other work
            smoother = video.FrameSmoother() if temporal else None
            t0 = time.perf_counter()
            for f in frames:  # the model's own time: the same frames, already decoded, nothing encoded
                inference.run_whole(loaded.model, f, args.precision, smoother.norm_stats(f) if smoother else None)
            model_runs.append(time.perf_counter() - t0)
            dst = Path(tempfile.mkdtemp(prefix="vbench-pipe-")) / "out.mp4"
            stats = video.stylize_video(src, dst, registry=reg, style="hayao", max_side=0, precision=args.precision,
                                        temporal=temporal)
            pipe_runs.append(stats.seconds)
            inside.append(stats.model_seconds)
        out["temporal on" if temporal else "temporal off"] = {
            "frames": stats.frames, "runs": args.reps, "model_only_s": [round(t, 2) for t in model_runs],
            "pipeline_s": [round(t, 2) for t in pipe_runs], "model_inside_pipeline_s": [round(t, 2) for t in inside],
            "ratio_pipeline_to_model (fastest of each)": round(min(pipe_runs) / min(model_runs), 3)}
    return out


# --- fidelity -----------------------------------------------------------------------------------

def fidelity(args: argparse.Namespace) -> dict:
    """Per-frame PSNR of the shared clip's output (temporal off, decoded) against stylize() of each decoded input
    frame, next to the ceiling H.264 itself sets: those stylize() frames encoded with the same x264 settings."""
    from animegan.engine import stylize

    reg = registry()
    src = SHARED / "video" / "railway_pan_320x240_2s.mp4"
    tmp = Path(tempfile.mkdtemp(prefix="vbench-fid-"))
    with av.open(str(src)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    video.stylize_video(src, tmp / "out.mp4", registry=reg, style="hayao", max_side=0, precision=args.precision,
                        temporal=False)
    with av.open(str(tmp / "out.mp4")) as c:
        out = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    refs = [np.asarray(stylize(f, "hayao", registry=reg, max_side=0, precision=args.precision).image) for f in frames]
    with av.open(str(write_clip(tmp / "refs.mp4", refs, crf=video.CRF))) as c:
        coded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    ours = [imaging.psnr(a, b) for a, b in zip(out, refs)]
    ceiling = [imaging.psnr(a, b) for a, b in zip(coded, refs)]
    return {"frames": len(out), "precision": args.precision, "crf": video.CRF,
            "psnr_output_vs_stylize_db": {"min": round(min(ours), 2), "mean": round(float(np.mean(ours)), 2)},
            "psnr_h264_of_stylize_itself_db": {"min": round(min(ceiling), 2), "mean": round(float(np.mean(ceiling)), 2)},
            "mean_difference_db": round(float(np.mean(ours) - np.mean(ceiling)), 2)}


# --- fps ----------------------------------------------------------------------------------------

def fps(args: argparse.Namespace) -> dict:
    reg = registry()
    tmp = Path(tempfile.mkdtemp(prefix="vbench-fps-"))
    out = {}
    for w, h in ((320, 240), (640, 360)):
        frames, _ = still_camera_clip(w, h, args.fps_frames)
        clip = write_clip(tmp / f"c{w}.mp4", frames)
        for precision in ("fp32", "bf16"):
            video.stylize_frame(frames[0], RunOptions(style="hayao", precision=precision), registry=reg)  # load, warm
            stats = video.stylize_video(clip, tmp / "o.mp4", registry=reg, style="hayao", max_side=0,
                                        precision=precision)
            out[f"{w}x{h} {precision}"] = {"frames": stats.frames, "seconds": round(stats.seconds, 2),
                                           "fps": round(stats.processing_fps, 2), "precision_ran": stats.precision}
    base = out["320x240 fp32"]["fps"]
    for v in out.values():
        v["ratio_to_320x240_fp32"] = round(v["fps"] / base, 3)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["flicker", "rss", "pipeline", "fidelity", "fps", "all", "_child"])
    p.add_argument("src", nargs="?")
    p.add_argument("dst", nargs="?")
    p.add_argument("child_precision", nargs="?", default="fp32")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--margin", type=int, default=32)
    p.add_argument("--momenta", type=float, nargs="+", default=[video.DEFAULT_MOMENTUM])
    p.add_argument("--fps-frames", type=int, default=12)
    p.add_argument("--reps", type=int, default=3, help="pipeline: alternated runs of each, the fastest kept")
    args = p.parse_args()
    if args.what == "_child":
        args.precision = args.child_precision
        child(args)
        return
    jobs = {"flicker": flicker, "rss": rss, "pipeline": pipeline, "fidelity": fidelity, "fps": fps}
    for name in (jobs if args.what == "all" else [args.what]):
        print(name, json.dumps(jobs[name](args), indent=1), flush=True)


if __name__ == "__main__":
    main()
