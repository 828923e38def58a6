"""What the app's tests share: one app launcher (the benches' own, ``bench/app_process.py``), a client, the
``/stats`` gauge, ``/metrics`` scraped, n clients released at once, and a full queue."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from conftest import REPO, all_at_once, load_bench
from gradio_client import Client, handle_file
from gradio_client.client import Job
from PIL import Image

APP = load_bench("app_process")
STARTUP_TIMEOUT_S = 120
free_port = APP.free_port


def wait_until(cond: Callable[[], bool], timeout: float = 5.0, step: float = 0.01) -> bool:
    """Poll ``cond`` every ``step`` seconds until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True
__all__ = [
    "REPO",
    "all_at_once",
    "assert_stylised",
    "client",
    "delta",
    "fill_queue",
    "free_port",
    "running_app",
    "scrape",
    "stats",
    "wait_until",
]


@contextmanager
def running_app(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``python app.py --port P ARGS`` run from ``tmp``, with its weights cache in ``tmp/cache`` and its uploads in
    ``tmp/gradio``; yields the URL once the app answers, and stops it afterwards."""
    full_env = {"ANIMEGAN_CACHE_DIR": str(tmp / "cache"), "GRADIO_TEMP_DIR": str(tmp / "gradio"),
                "PYTHONUNBUFFERED": "1", **(env or {})}
    with APP.running_app(list(args), tmp, env=full_env, startup_timeout=STARTUP_TIMEOUT_S) as app:
        yield app.url


def client(url: str, tmp: Path) -> Client:
    return Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp / "downloads"))


def stats(url: str) -> dict:
    """The handler's in-flight gauge through the unqueued route, as the browser calls ``queue=False`` events.

    (gradio_client sends every call through the queue, so it could not read this while the queue is full.)
    """
    response = httpx.post(f"{url}gradio_api/run/stats", json={"data": []}, timeout=10)
    response.raise_for_status()
    return response.json()["data"][0]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(f"{url}metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def assert_stylised(png: Path, photo: Path, size: tuple[int, int]) -> None:
    with Image.open(png) as out:
        assert out.format == "PNG"
        assert out.size == size
        result = np.asarray(out.convert("RGB"), dtype=np.float32)
    source = np.asarray(Image.open(photo).convert("RGB").resize(size, Image.LANCZOS), dtype=np.float32)
    mad = float(np.abs(result - source).mean())
    assert mad > 12, f"result is too close to the photo (mean abs diff {mad:.1f}): not stylised"
    assert result.std() > 10, "result is flat"


def fill_queue(url: str, clients: list[Client], big: Path, small: Path) -> tuple[Job, Job]:
    """On a server with concurrency 1 and max queue 1: one slow conversion running, one request waiting."""
    blocker = clients[0].submit(handle_file(str(big)), "hayao", 0, False, api_name="/stylize")
    deadline = time.monotonic() + 30
    while stats(url)["running"] < 1:
        assert time.monotonic() < deadline, "the first conversion never started"
        time.sleep(0.05)
    waiting = clients[1].submit(handle_file(str(small)), "hayao", 0, False, api_name="/stylize")
    while stats(url)["queued"] < 1:  # it takes the one place in the queue
        assert time.monotonic() < deadline, "the second request never queued"
        time.sleep(0.05)
    return blocker, waiting


CHROMIUM = Path(os.environ.get("ANIMEGAN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@contextmanager
def chromium(*extra_args: str) -> Iterator:
    """Debian's chromium under Playwright (never a downloaded browser); the test skips without either."""
    import pytest

    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (set ANIMEGAN_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()
