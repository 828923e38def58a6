"""App throughput under concurrent users, result-cache hit latency and first-request latency, through the real app.

Starts ``python app.py`` on 127.0.0.1 once per serving setup (``--concurrency C --torch-threads T``) and drives
``/stylize`` with N concurrent ``gradio_client`` users, each sending distinct photos (square crops of the test
photos, so nothing is answered from the result cache, which is also turned off for this part). Setups run in
alternating rounds so that machine drift hits them alike. Reported per setup: images/s (requests / wall time of
the timed part) and p50/p95 latency per request, plus the ratio to the first setup (the baseline).

Then, with the cache on (default settings), one user: the first conversion after start (cold: oneDNN primitives
and allocator warm-up) against the median of later conversions of new photos (steady state), and the latency of
repeats of one photo (result-cache hits), all end to end through gradio_client (upload, queue, download).
Not a test: figures to re-measure.

    python bench/bench_throughput.py --users 4 --setups 1x2 2x1 --rounds 2
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from gradio_client import Client, handle_file
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_process import percentile, running_app

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
DEFAULT_WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"
PHOTOS = SHARED / "photos"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=4, help="concurrent gradio_client users (default 4)")
    p.add_argument("--requests", type=int, default=3, help="timed requests per user and round (default 3)")
    p.add_argument("--setups", nargs="+", default=["1x2", "2x1"],
                   help="WORKERSxTHREADS per app; the first is the baseline (default: 1x2 2x1)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds over the setups (default 2)")
    p.add_argument("--side", type=int, default=512, help="photo side in px (default 512)")
    p.add_argument("--hits", type=int, default=10, help="result-cache hits to time (default 10; 0 skips that part)")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help=f"Hayao weights (default {DEFAULT_WEIGHTS})")
    return p.parse_args()


def photo_set(folder: Path, side: int, count: int) -> list[Path]:
    """``count`` distinct side x side PNGs cut from the test photos at shifting offsets."""
    sources = sorted(PHOTOS.glob("*.jpg"))
    out = []
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = min(w, h) * 3 // 4
            step = i // len(sources)
            x0 = (w - s) * ((step * 37) % 100) // 100
            y0 = (h - s) * ((step * 61) % 100) // 100
            path = folder / f"photo{i:03d}.png"
            im.resize((side, side), Image.LANCZOS, box=(x0, y0, x0 + s, y0 + s)).save(path)
            out.append(path)
    return out


@contextmanager
def app(tmp: Path, weights: Path, *args: str) -> Iterator[str]:
    """This bench's app (Hayao only, a queue deep enough for every user) with ``args``; yields its URL.

    Each app gets its own upload and cache folders under ``tmp``, so no run sees another's files.
    """
    env = {"GRADIO_TEMP_DIR": str(tmp / "gradio"), "ANIMEGAN_CACHE_DIR": str(tmp / "cache")}
    with running_app(["--offline", "--weights", f"hayao={weights.resolve()}", "--max-queue", "64", *args], tmp, env) as running:
        yield running.url


def convert(c: Client, photo: Path, side: int) -> tuple[float, str]:
    t = time.perf_counter()
    _png, note = c.predict(handle_file(str(photo)), "hayao", side, False, api_name="/stylize")
    return time.perf_counter() - t, note


def http_convert(http: httpx.Client, url: str, photo: Path, side: int) -> tuple[float, str]:
    """The same request over Gradio's documented HTTP queue API (upload, POST /call, read the SSE, download).

    gradio_client adds a fixed overhead of its own per call (about 0.2-0.3 s here, also with a function that
    does nothing); this shows what the app itself takes.
    """
    import json

    base = url.rstrip("/") + "/gradio_api"
    t = time.perf_counter()
    with photo.open("rb") as f:
        uploaded = http.post(f"{base}/upload", files={"files": f}).json()[0]
    payload = {"data": [{"path": uploaded, "meta": {"_type": "gradio.FileData"}}, "hayao", side, False]}
    event = http.post(f"{base}/call/stylize", json=payload).json()["event_id"]
    kind, data = "", None
    with http.stream("GET", f"{base}/call/stylize/{event}") as r:
        for line in r.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind == "complete":
                data = json.loads(line[5:])
    if data is None:
        raise SystemExit(f"the HTTP API call did not complete (last event {kind!r})")
    http.get(data[0]["url"]).raise_for_status()
    return time.perf_counter() - t, data[1]


def load_run(url: str, tmp: Path, photos: list[Path], users: int, per_user: int, side: int) -> tuple[float, list[float]]:
    """``users`` threads, each with its own client, each converting ``per_user`` distinct photos back to back."""
    clients = [Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp / f"dl{u}")) for u in range(users)]
    warm = [threading.Thread(target=convert, args=(c, photos[-1 - i], side)) for i, c in enumerate(clients)]
    for t in warm:  # one untimed conversion per user: every worker has run once
        t.start()
    for t in warm:
        t.join()
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(users + 1)

    def user(u: int) -> None:
        barrier.wait()
        for r in range(per_user):
            dt, _ = convert(clients[u], photos[u * per_user + r], side)
            with lock:
                latencies.append(dt)

    threads = [threading.Thread(target=user, args=(u,)) for u in range(users)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    for c in clients:
        c.close()
    return users * per_user / wall, latencies


def main() -> None:
    args = parse_args()
    command = shlex.join(["python", "bench/bench_throughput.py", "--users", str(args.users), "--requests", str(args.requests),
                          "--setups", *args.setups, "--rounds", str(args.rounds), "--side", str(args.side),
                          "--hits", str(args.hits)])
    print(f"command : {command}")
    print(f"machine : {os.cpu_count()} logical CPUs; photos {args.side}x{args.side}; weights {args.weights.name}")
    setups = [tuple(int(v) for v in s.lower().split("x")) for s in args.setups]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "photos").mkdir()
        photos = photo_set(tmp / "photos", args.side, args.users * args.requests + args.users + 8)
        results: dict[str, list[tuple[float, list[float]]]] = {s: [] for s in args.setups}
        for rnd in range(args.rounds):
            order = args.setups if rnd % 2 == 0 else list(reversed(args.setups))
            for name in order:
                workers, threads = setups[args.setups.index(name)]
                with app(tmp / f"app-{name}-{rnd}", args.weights, "--concurrency", str(workers),
                         "--torch-threads", str(threads), "--result-cache-size", "0") as url:
                    ips, lat = load_run(url, tmp / f"run-{name}-{rnd}", photos, args.users, args.requests, args.side)
                results[name].append((ips, lat))
                print(f"  round {rnd + 1} {name:>5}: {ips:.3f} images/s, p50 {percentile(lat, .5):.2f} s, "
                      f"p95 {percentile(lat, .95):.2f} s", flush=True)
        print()
        print(f"throughput, {args.users} concurrent users, {args.requests} photos each per round, {args.rounds} rounds "
              f"(median over rounds; latency percentiles over every request)")
        header = f"{'workers x threads':>17} | {'images/s':>8} | {'vs ' + args.setups[0]:>8} | {'p50 s':>6} | {'p95 s':>6} | {'max s':>6}"
        print(header)
        print("-" * len(header))
        base = statistics.median(r[0] for r in results[args.setups[0]])
        for name in args.setups:
            ips = statistics.median(r[0] for r in results[name])
            lat = [x for r in results[name] for x in r[1]]
            print(f"{name:>17} | {ips:>8.3f} | {ips / base:>7.2f}x | {percentile(lat, .5):>6.2f} | "
                  f"{percentile(lat, .95):>6.2f} | {max(lat):>6.2f}")

        if args.hits:
            print()
            with app(tmp / "app-cache", args.weights) as url:  # the default setup, result cache on
                c = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp / "dl-cache"))
                cold, _ = convert(c, photos[0], args.side)
                steady = [convert(c, p, args.side)[0] for p in photos[1:5]]
                hits: dict[str, list[float]] = {"gradio_client": [], "HTTP queue API": []}
                with httpx.Client(timeout=60) as http:
                    for _ in range(args.hits):
                        for name, call in (("gradio_client", lambda: convert(c, photos[0], args.side)),
                                           ("HTTP queue API", lambda: http_convert(http, url, photos[0], args.side))):
                            dt, note = call()
                            if "result cache" not in note:
                                raise SystemExit(f"expected a cache hit, got: {note}")
                            hits[name].append(dt)
                c.close()
            med = statistics.median(steady)
            print(f"default setup, one user, end to end through gradio_client ({args.side}x{args.side}):")
            print(f"  first conversion after start {cold:.2f} s; steady state median {med:.2f} s "
                  f"(of {len(steady)} new photos); first - steady = {cold - med:+.2f} s")
            for name, values in hits.items():
                print(f"  result-cache hit via {name:<14}: median {1000 * statistics.median(values):.0f} ms, p95 "
                      f"{1000 * percentile(values, .95):.0f} ms, max {1000 * max(values):.0f} ms over {len(values)} "
                      f"repeats (upload + queue + download; a miss of the same size: {med:.2f} s)")
    print()
    print(f"re-run  : {command}")


if __name__ == "__main__":
    main()
