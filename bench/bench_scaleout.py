"""Scale-out: 8 concurrent gradio_client users on 512x512 photos, Ray Serve replicas vs the local backend.

Starts ``python app.py`` twice in the same run (the default local backend as the baseline, then ``--backend ray
--replicas N`` with one torch thread per replica), sends every user's photos through ``/stylize``, and prints
throughput, p50/p95 latency, the ratio against the baseline, failures, and the conversions each replica did (from
``/metrics``). Distinct photo crops per request keep the result cache out of the measurement.

    python bench/bench_scaleout.py --weights hayao=PATH/hayao.pt --photo PHOTO.jpg [--users 8] [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from gradio_client import Client, handle_file
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_process import percentile, running_app


def crops(photo: Path, n: int, tmp: Path) -> list[Path]:
    """n distinct 512x512 crops (one per request), so that no request is a result-cache hit."""
    im = Image.open(photo).convert("RGB")
    scale = 640 / min(im.size)
    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    out = []
    for i in range(n):
        x, y = (i * 7) % (im.width - 512), (i * 5) % (im.height - 512)
        path = tmp / f"crop{i}.jpg"
        im.crop((x, y, x + 512, y + 512)).save(path, quality=92)
        out.append(path)
    return out


def run(url: str, photos: list[Path], users: int) -> dict:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(users)

    def user(i: int) -> None:
        c = Client(url, verbose=False, analytics_enabled=False)
        barrier.wait()
        for photo in photos[i::users]:
            t = time.perf_counter()
            try:
                c.predict(handle_file(str(photo)), "hayao", 0, False, api_name="/stylize")
                with lock:
                    latencies.append(time.perf_counter() - t)
            except Exception as exc:  # noqa: BLE001 (counted and printed)
                with lock:
                    failures.append(repr(exc))

    start_t = time.perf_counter()
    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start_t
    replicas = dict(re.findall(r'animegan_replica_conversions_total\{replica="([^"]+)"\} ([0-9.]+)',
                               httpx.get(f"{url}metrics", timeout=10).text))
    return {"ok": len(latencies), "failed": len(failures), "wall": wall, "throughput": len(latencies) / wall,
            "p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95),
            "replicas": {k: int(float(v)) for k, v in replicas.items()}, "errors": failures[:3]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="STYLE=PATH, as for app.py")
    p.add_argument("--photo", type=Path, required=True)
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2, help="photos per user")
    p.add_argument("--replicas", type=int, default=2)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    *photos, warm_photo = crops(a.photo, a.users * a.rounds + 1, tmp)  # the warm-up's photo is not timed later
    style, _, path = a.weights.partition("=")
    weights = f"{style}={Path(path).resolve()}"  # the apps run in a temp folder: a relative path would not resolve
    common = ["--weights", weights, "--offline", "--device", "cpu", "--max-queue", str(4 * a.users)]
    setups = {"local (default)": common,
              f"ray, {a.replicas} replicas x 1 thread": [*common, "--backend", "ray", "--replicas", str(a.replicas),
                                                        "--torch-threads", "1"]}
    results = {}
    for name, args in setups.items():
        with running_app(["--metrics", *args], tmp) as (_proc, url, _log):  # /metrics: conversions per replica
            run(url, [warm_photo], 1)  # warm-up: load the model (one replica)
            results[name] = run(url, photos, a.users)
    base = next(iter(results.values()))
    print(f"{a.users} users x {a.rounds} photos of 512x512, {os.cpu_count()} CPUs, torch CPU")
    print("| backend | ok / failed | photos/s | ratio vs local | p50 s | p95 s | conversions per replica |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['ok']} / {r['failed']} | {r['throughput']:.2f} | {r['throughput'] / base['throughput'] if base['throughput'] else float('nan'):.2f} "
              f"| {r['p50']:.1f} | {r['p95']:.1f} | {', '.join(f'{v}' for v in r['replicas'].values())} |")
        for e in r["errors"]:
            print("  error:", e)
    print("re-run: python bench/bench_scaleout.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
