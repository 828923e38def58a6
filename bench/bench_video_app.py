"""What the app adds to a video conversion, and the webcam mirror's speed, against the engine measured in the same run.

Video: the shared clip through ``/stylize_video`` of a real ``python app.py`` (gradio_client: upload, queue,
download) against ``video.stylize_video`` called in this process on the same clip and settings (the baseline).
Both run ``--rounds`` times, alternating, at each max side; the medians and their ratio are printed.
Webcam: the mirror's handler (data URL in, gates, decode, smoother, JPEG data URL out) against
``video.stylize_frame`` on the same frames (the baseline), per frame at ``--webcam-side``, as frames per second.
Not a test: figures to re-measure.

    python bench/bench_video_app.py --sides 128 320 --rounds 3
"""
from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app_process import running_app

from animegan import Registry, video
from animegan.options import RunOptions
from animegan.serving import ServeConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
CLIP = SHARED / "video" / "railway_pan_320x240_2s.mp4"
WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"


def webcam(side: int, frames: int, rounds: int, registry: Registry) -> tuple[float, float]:
    """(handler fps, stylize_frame fps) over the same panned frames."""
    from animegan.ui import build_demo

    videos = build_demo(ServeConfig(device="cpu", offline=True, webcam_side=side), registry).animegan_webcam
    photo = Image.open(SHARED / "photos" / "railway_crossing.jpg").convert("RGB").resize((640, 480), Image.LANCZOS)
    rgb = np.asarray(photo)
    payloads, smalls = [], []
    for i in range(frames):
        shifted = np.roll(rgb, 4 * i, axis=1)
        buf = io.BytesIO()
        Image.fromarray(shifted).save(buf, "JPEG", quality=92)  # what chromium sends (toDataURL image/jpeg)
        payloads.append({"url": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()})
        smalls.append(np.asarray(Image.fromarray(shifted).resize((side, side * 3 // 4), Image.LANCZOS)))
    options = RunOptions(style="hayao", device="cpu", max_side=side)
    video.stylize_frame(smalls[0], options, video.FrameSmoother(), registry=registry)  # warm
    videos.mirror(payloads[0], "hayao", True, None)
    engine_fps, handler_fps = [], []
    for _ in range(rounds):  # alternating, so that machine drift hits both alike
        smoother = video.FrameSmoother()
        start = time.perf_counter()
        for small in smalls:
            video.stylize_frame(small, options, smoother, registry=registry)
        engine_fps.append(frames / (time.perf_counter() - start))
        session = None
        start = time.perf_counter()
        for payload in payloads:
            _, _, session = videos.mirror(payload, "hayao", True, session)
        handler_fps.append(frames / (time.perf_counter() - start))
    handler, engine = statistics.median(handler_fps), statistics.median(engine_fps)
    return handler, engine


def video_part(args: argparse.Namespace, registry: Registry, tmp: Path) -> None:
    with running_app(["--weights", f"hayao={WEIGHTS}", "--offline", "--device", "cpu"], tmp,
                     env={"ANIMEGAN_CACHE_DIR": str(tmp / "cache")}) as app:
        client = Client(app.url, verbose=False, analytics_enabled=False, download_files=str(tmp / "downloads"))
        client.predict(handle_file(str(CLIP)), "hayao", 64, True, api_name="/stylize_video")  # warm the server
        video.stylize_video(CLIP, tmp / "warm.mp4", RunOptions(style="hayao", device="cpu", max_side=64),
                            registry=registry)
        print(f"clip: {CLIP.name}; {os.cpu_count()} cores; rounds {args.rounds}")
        print(f"{'max side':>8} {'engine s':>9} {'app s':>7} {'app/engine':>10} {'engine fps':>10} {'app fps':>8}")
        for side in args.sides:
            engine_s, app_s = [], []
            frames = 0
            for _ in range(args.rounds):
                start = time.perf_counter()
                stats = video.stylize_video(CLIP, tmp / f"direct_{side}.mp4",
                                            RunOptions(style="hayao", device="cpu", max_side=side), registry=registry)
                engine_s.append(time.perf_counter() - start)
                frames = stats.frames
                start = time.perf_counter()
                client.predict(handle_file(str(CLIP)), "hayao", side, True, api_name="/stylize_video")
                app_s.append(time.perf_counter() - start)
            e, a = statistics.median(engine_s), statistics.median(app_s)
            print(f"{side:>8} {e:>9.2f} {a:>7.2f} {a / e:>10.2f} {frames / e:>10.1f} {frames / a:>8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sides", type=int, nargs="+", default=[128, 320])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--webcam-side", type=int, default=256)
    ap.add_argument("--webcam-frames", type=int, default=24)
    ap.add_argument("--webcam-only", action="store_true", help="skip the video part")
    args = ap.parse_args()
    registry = Registry(weights={"hayao": WEIGHTS}, offline=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-app-"))
    if not args.webcam_only:
        video_part(args, registry, tmp)
    handler, engine = webcam(args.webcam_side, args.webcam_frames, args.rounds, registry)
    print(f"webcam at {args.webcam_side} px (median of {args.rounds} alternating rounds of {args.webcam_frames} "
          f"frames): handler {handler:.1f} fps, stylize_frame {engine:.1f} fps "
          f"(handler/engine time {engine / handler:.2f}x)")

if __name__ == "__main__":
    main()
