"""Bounded load test: many gradio_client users against a real ``python app.py`` on 127.0.0.1.

Each user sends a few small real photos, one after another. Reported: successes, clean "queue full" refusals
(the only failure allowed), any other failure, p50/p95 latency against the single-user latency measured first in
the same run (the baseline), throughput, and the server's RSS (psutil on its pid, sampled every 50 ms) before,
at peak and after. Exit status 1 if anything but a queue-full refusal failed.

    python bench/load_test.py --users 32 --requests 3 --size 96
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by path (tests/test_hardening_load.py)

from app_process import percentile, running_app

from animegan.memory import PeakRSS

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
DEFAULT_WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"
PHOTOS = sorted((REPO / "animegan" / "examples").glob("*.jpg"))


@dataclass
class Report:
    users: int
    requests: int
    size: int
    ok: int = 0
    queue_full: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    baseline: float = 0.0           # median single-user latency, measured before the load
    wall: float = 0.0
    rss_before: int = 0
    rss_peak: int = 0
    rss_after: int = 0
    server_alive: bool = True

    def pct(self, q: float) -> float:
        return percentile(self.latencies, q)

    def summary(self) -> str:
        mib = 1 << 20
        lines = [
            (f"{self.users} users x {self.requests} requests of {self.size} px photos: {self.ok} ok, "
             f"{self.queue_full} refused with 'queue full', {len(self.failures)} other failures"),
            (f"latency: single user {self.baseline:.2f} s (baseline); under load p50 {self.pct(0.5):.2f} s "
             f"({self.pct(0.5) / self.baseline:.1f}x baseline), p95 {self.pct(0.95):.2f} s ({self.pct(0.95) / self.baseline:.1f}x)"),
            f"throughput: {self.ok / self.wall:.2f} photos/s over {self.wall:.1f} s",
            (f"server RSS: before {self.rss_before / mib:.0f} MiB, peak {self.rss_peak / mib:.0f} MiB "
             f"(+{(self.rss_peak - self.rss_before) / mib:.0f}), after {self.rss_after / mib:.0f} MiB; "
             f"server {'still running' if self.server_alive else 'DIED'}"),
        ]
        lines += [f"failure: {f}" for f in self.failures[:10]]
        return "\n".join(lines)


def _photos(folder: Path, size: int) -> list[Path]:
    out = []
    for src in PHOTOS:
        im = Image.open(src).convert("RGB")
        im.thumbnail((size, size), Image.LANCZOS)
        path = folder / f"{src.stem}-{size}.jpg"
        im.save(path, quality=90)
        out.append(path)
    return out


def run(users: int = 32, requests: int = 3, size: int = 96, weights: Path = DEFAULT_WEIGHTS,
        app_args: tuple[str, ...] = (), workdir: Path | None = None, startup_timeout: float = 300) -> Report:
    """Start the app, measure the single-user baseline, then ``users`` clients at once; stop the app."""
    from gradio_client import Client, handle_file
    from gradio_client.utils import QueueError

    work = Path(workdir or tempfile.mkdtemp(prefix="animegan-load-"))
    work.mkdir(parents=True, exist_ok=True)
    photos = _photos(work, size)
    env = {"ANIMEGAN_CACHE_DIR": str(work / "cache"), "GRADIO_TEMP_DIR": str(work / "gradio"),
           "ANIMEGAN_RESULT_CACHE_SIZE": "0"}  # every request really converts
    report = Report(users, requests, size)
    with running_app(["--offline", "--device", "cpu", "--weights", f"hayao={Path(weights).resolve()}", *app_args], work, env,
                     startup_timeout) as (server, url, _log):
        def new_client(i: int) -> Client:
            return Client(url, verbose=False, analytics_enabled=False, download_files=str(work / f"dl{i}"))

        single = new_client(-1)
        single.predict(handle_file(str(photos[0])), "hayao", 0, False, api_name="/stylize")  # warm-up: loads the model
        times = []
        for p in photos[:3]:
            t = time.perf_counter()
            single.predict(handle_file(str(p)), "hayao", 0, False, api_name="/stylize")
            times.append(time.perf_counter() - t)
        report.baseline = statistics.median(times)

        clients = [new_client(i) for i in range(users)]
        lock = threading.Lock()
        barrier = threading.Barrier(users)

        def user(i: int) -> None:
            barrier.wait()
            for r in range(requests):
                photo = photos[(i + r) % len(photos)]
                t = time.perf_counter()
                try:
                    clients[i].predict(handle_file(str(photo)), "hayao", 0, False, api_name="/stylize")
                except QueueError as exc:
                    with lock:
                        if "Queue is full" in str(exc):
                            report.queue_full += 1
                        else:
                            report.failures.append(f"user {i}: QueueError {exc}")
                    continue
                except Exception as exc:  # noqa: BLE001 (every other failure is counted and reported)
                    with lock:
                        report.failures.append(f"user {i}: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    report.ok += 1
                    report.latencies.append(time.perf_counter() - t)

        with PeakRSS(server.pid, interval=0.05) as rss:
            report.rss_before = rss.current()
            started = time.perf_counter()
            threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            report.wall = time.perf_counter() - started
            report.rss_after = rss.current()
        report.rss_peak = rss.peak
        report.server_alive = server.poll() is None
        return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=32)
    p.add_argument("--requests", type=int, default=3, help="requests per user, one after another")
    p.add_argument("--size", type=int, default=96, help="longer side of the photos sent, px")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="hayao weights (.pt or TF checkpoint prefix)")
    p.add_argument("app_args", nargs="*", help="extra app.py flags after --, e.g. -- --max-queue 8 --concurrency 2")
    a = p.parse_args(argv)
    report = run(a.users, a.requests, a.size, a.weights, tuple(a.app_args))
    print(report.summary())
    extra = f" -- {' '.join(a.app_args)}" if a.app_args else ""
    print(f"re-run: python bench/load_test.py --users {a.users} --requests {a.requests} --size {a.size}{extra}")
    return 1 if report.failures or not report.server_alive else 0


if __name__ == "__main__":
    sys.exit(main())
