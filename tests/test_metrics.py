"""``--metrics``: ``/metrics`` on the app's own port, scraped before and after real conversions.

The counters must move by exactly what happened: successes per style and device, failures by the title the user
saw, the latency histogram's count, the tiles the engine reports for the same photo, and the requests a full
queue refused (counted client-side). Without ``--metrics`` there is no route and prometheus_client is not loaded.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

pytest.importorskip("prometheus_client")
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError
from harness import REPO, client, delta, fill_queue, running_app, scrape

from animegan import stylize

TILE = 128


def test_metrics_count_real_conversions_exactly(hayao_pt: Path, photos: dict[str, Path], small_photo: Path,
                                                registry, tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    im = Image.open(photos["kyoto_street_kimono"]).convert("RGB")
    im.thumbnail((448, 448))  # seconds of tiled work: long enough to fill the queue behind it
    im.save(big, quality=90)
    junk = tmp_path / "notes.png"
    junk.write_text("this is not a picture")
    # What the engine itself reports for the small photo in 128 px tiles: the server's counter must add exactly this.
    tiles_per_run = stylize(small_photo, "hayao", registry=registry, device="cpu", max_side=0, tile=TILE).stats.tiles
    assert tiles_per_run > 1

    with running_app(tmp_path / "app", "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu",
                     "--concurrency", "1", "--max-queue", "1", "--tile", str(TILE), "--metrics") as url:
        before = scrape(url)
        assert delta({}, before, "animegan_process_rss_bytes") > 50e6  # a real reading of a process with torch loaded
        c = client(url, tmp_path / "c")
        for _ in range(2):
            c.predict(handle_file(str(small_photo)), "hayao", 0, False, api_name="/stylize")
        with pytest.raises(AppError, match="not available offline"):
            c.predict(handle_file(str(small_photo)), "shinkai", 0, False, api_name="/stylize")
        with pytest.raises(AppError, match="can't be used"):
            c.predict(handle_file(str(junk)), "hayao", 0, False, api_name="/stylize")

        # Fill the queue (1 running + 1 waiting), then count the refusals the clients see.
        clients = [client(url, tmp_path / f"q{i}") for i in range(4)]
        blocker, waiting = fill_queue(url, clients, big, small_photo)
        during = scrape(url)
        assert delta({}, during, "animegan_queue_depth") == 1
        refused = 0
        for q in clients[2:]:
            with pytest.raises(QueueError, match="Queue is full"):
                q.predict(handle_file(str(small_photo)), "hayao", 0, False, api_name="/stylize")
            refused += 1
        blocker.result(timeout=120)
        waiting.result(timeout=120)
        after = scrape(url)

    big_tiles = stylize(big, "hayao", registry=registry, device="cpu", max_side=0, tile=TILE).stats.tiles
    assert delta(before, after, "animegan_conversions_total", style="hayao", device="cpu", outcome="ok") == 4
    assert delta(before, after, "animegan_conversions_total", style="shinkai", device="cpu",
                 outcome="style_unavailable") == 1
    assert delta(before, after, "animegan_conversions_total", style="hayao", device="cpu", outcome="unusable_photo") == 1
    assert delta(before, after, "animegan_conversion_seconds_count", style="hayao") == 5
    assert delta(before, after, "animegan_conversion_seconds_count", style="shinkai") == 1
    assert delta(before, after, "animegan_conversion_seconds_sum", style="hayao") > 0
    # The same small photo three times: one run, then two hits of the in-process result cache (no tiles, no run).
    assert delta(before, after, "animegan_tiles_total") == tiles_per_run + big_tiles
    assert delta(before, after, "animegan_cache_requests_total", backend="memory", result="hit") == 2
    assert delta(before, after, "animegan_cache_requests_total", backend="memory", result="miss") == 2
    assert delta(before, after, "animegan_oom_recoveries_total") == 0
    assert delta(before, after, "animegan_replica_conversions_total", replica="local") == 2
    assert delta(before, after, "animegan_queue_rejections_total") == refused == 2
    assert delta({}, after, "animegan_queue_depth") == 0


def test_no_metrics_route_and_no_prometheus_import_by_default(hayao_pt: Path, tmp_path: Path) -> None:
    with running_app(tmp_path / "app", "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu") as url:
        assert httpx.get(f"{url}metrics", timeout=10).status_code == 404
    probe = ("import sys, runpy; sys.argv = ['app.py']; runpy.run_path('app.py', run_name='not_main'); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in {'prometheus_client', 'ray', 'redis'}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
                         env={"ANIMEGAN_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
