"""A conversion on one app is a cache hit on another: Ray Serve replicas + Redis + /metrics, as run from outside.

Starts a real ``redis-server`` on 127.0.0.1 at a free port, then exactly these two apps:

    python app.py --backend ray --replicas 2 --cache redis://127.0.0.1:PORT/0 --metrics      # app 1
    python app.py --backend local --cache redis://127.0.0.1:PORT/0 --port OTHER              # app 2

and sends one photo through ``/stylize`` with gradio_client: to app 1 (a miss: a replica converts it and
stores the PNG in Redis), to app 2 (a hit: no model runs), and to app 1 again (a hit). It prints the
latencies, whether the two PNGs are pixel-identical, and app 1's ``/metrics`` counters before and after.

    python bench/shared_cache_check.py [--weights hayao=PATH] [--photo PHOTO.jpg] [--side 512]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_process import free_port, running_app

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
COUNTERS = ("animegan_conversions_total", "animegan_cache_requests_total", "animegan_replica_conversions_total")


def start_redis(tmp: Path) -> tuple[subprocess.Popen, str]:
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp), "--maxmemory", "256mb",
                             "--maxmemory-policy", "allkeys-lru"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True,
                         check=False).stdout.strip() != "PONG":
        if time.monotonic() > deadline:
            raise SystemExit("redis-server did not start")
        time.sleep(0.1)
    return proc, f"redis://127.0.0.1:{port}/0"


def counters(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}metrics", timeout=10).text
    return {m.group(1): float(m.group(2)) for m in re.finditer(rf"^((?:{'|'.join(COUNTERS)})\{{[^}}]*\}}) ([0-9.e+]+)$",
                                                               text, re.MULTILINE)}


def convert(url: str, photo: Path) -> tuple[np.ndarray, str, float]:
    client = Client(url, verbose=False, analytics_enabled=False)
    t = time.perf_counter()
    png, text = client.predict(handle_file(str(photo)), "hayao", 0, False, api_name="/stylize")
    seconds = time.perf_counter() - t
    return np.asarray(Image.open(png).convert("RGB")), text, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=f"hayao={SHARED / 'weights' / 'hayao-int8-dequant.pt'}", help="STYLE=PATH, as for app.py")
    p.add_argument("--photo", type=Path, default=SHARED / "photos" / "kyoto_street_kimono.jpg")
    p.add_argument("--side", type=int, default=512, help="the photo is cut to a side x side square")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shared-cache-check-"))
    photo = tmp / "photo.jpg"
    im = Image.open(a.photo).convert("RGB")
    s = min(im.size)
    im.crop((0, 0, s, s)).resize((a.side, a.side), Image.LANCZOS).save(photo, quality=92)
    common = ["--weights", a.weights, "--offline", "--device", "cpu"]
    with ExitStack() as stack:  # stops app 2, app 1, then redis
        redis_proc, redis_url = start_redis(tmp)
        stack.callback(redis_proc.wait, timeout=60)
        stack.callback(redis_proc.terminate)
        app1 = stack.enter_context(running_app(["--metrics", *common, "--backend", "ray", "--replicas", "2",
                                                "--result-cache", redis_url], tmp)).url
        app2 = stack.enter_context(running_app([*common, "--backend", "local", "--result-cache", redis_url], tmp)).url
        print(f"redis {redis_url}; app 1 {app1} (--backend ray --replicas 2 --metrics); app 2 {app2} (--backend local)")
        before = counters(app1)
        first, text1, t1 = convert(app1, photo)
        mid = counters(app1)
        second, text2, t2 = convert(app2, photo)
        again, text3, t3 = convert(app1, photo)
        after = counters(app1)
    hit = "from the result cache"
    print(f"{a.side}x{a.side} photo, same run:")
    print("| request | result | latency |")
    print("| --- | --- | --- |")
    print(f"| app 1 (ray), first | {'hit' if hit in text1 else 'converted by a replica'} | {t1 * 1000:.0f} ms |")
    print(f"| app 2 (local) | {'hit' if hit in text2 else 'converted'} | {t2 * 1000:.0f} ms |")
    print(f"| app 1 (ray), again | {'hit' if hit in text3 else 'converted'} | {t3 * 1000:.0f} ms |")
    print(f"app 2's PNG pixel-identical to app 1's: {np.array_equal(first, second)}; app 1 again: {np.array_equal(first, again)}")
    print("app 1 /metrics (counters that moved):")
    for key in sorted(set(before) | set(mid) | set(after)):
        b, m, z = before.get(key, 0), mid.get(key, 0), after.get(key, 0)
        if z != b:
            print(f"  {key}: {b:g} -> {m:g} after its conversion -> {z:g} after its hit")
    print("re-run: python bench/shared_cache_check.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
