"""``--backend ray``: ``python app.py`` starts a local Ray, deploys 2 Serve replicas and converts through them.

One app (and one Ray) is shared by the module, since Ray takes ~20 s to start. Shown here: concurrent users are
spread over both replicas (each its own process, 1 torch thread, its own loaded model), results match the local
engine, engine errors reach the user with the same messages, and killing the replica process that is running a
conversion costs nothing: the request is retried on the other replica and Serve restarts the dead one.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import torch
from PIL import Image

pytest.importorskip("ray.serve")
pytest.importorskip("prometheus_client")
from conftest import torch_threads
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from harness import all_at_once, assert_stylised, client, delta, running_app, scrape, stats

from animegan import stylize
from animegan.precision import resolve

AUTO_CPU = resolve("auto", torch.device("cpu")).precision  # what the replicas load: bf16 on a CPU with native bf16

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_app(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory, one_ray_at_a_time: None) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("ray-app")
    with running_app(tmp, "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu", "--backend", "ray",
                     "--replicas", "2", "--metrics", env={"RAY_DISABLE_USAGE_STATS": "1"}) as url:
        deadline = time.monotonic() + 120  # the port opens after Serve reported the replicas healthy
        while True:
            try:
                stats(url)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the app did not answer"
                time.sleep(0.5)
        yield url


def test_users_are_spread_over_both_replicas_with_the_local_engine_results(
        ray_app: str, small_photo: Path, registry, tmp_path: Path) -> None:  
    before = scrape(ray_app)
    sides = [192 - 8 * i for i in range(8)]  # distinct sizes: no result-cache hits, every request runs the model
    clients = [client(ray_app, tmp_path / f"c{i}") for i in range(8)]
    results = all_at_once(8, lambda i: clients[i].predict(handle_file(str(small_photo)), "hayao", sides[i], False,
                                                          api_name="/stylize"), timeout=300)
    assert all(isinstance(r, tuple) for r in results), results
    after = scrape(ray_app)
    assert delta(before, after, "animegan_conversions_total", style="hayao", device="cpu", outcome="ok") == 8
    replicas = stats(ray_app)["replicas"]
    assert len({r["pid"] for r in replicas}) == 2 and os.getpid() not in {r["pid"] for r in replicas}
    for r in replicas:
        assert r["device"] == "cpu" and r["torch_threads"] == 1 and r["loaded"] == [f"hayao (cpu, {AUTO_CPU})"]
        assert r["rss"] > 100e6
        assert delta(before, after, "animegan_replica_conversions_total", replica=r["replica"]) >= 1, (r, after)
    assert sum(delta(before, after, "animegan_replica_conversions_total", replica=r["replica"]) for r in replicas) == 8

    png, text = results[0]  # type: ignore[misc]
    with torch_threads(1):  # as the replicas run: in bf16 another thread count rounds differently (up to 3 of 255)
        local = stylize(small_photo, "hayao", registry=registry, device="cpu", max_side=sides[0]).image
    with Image.open(png) as out:
        assert out.size == local.size
        diff = np.abs(np.asarray(out.convert("RGB"), np.int16) - np.asarray(local.convert("RGB"), np.int16))
    assert diff.max() <= 2, "a replica must run the same engine (only thread-count rounding may differ)"
    assert text.startswith("Hayao style") and f"on cpu in {AUTO_CPU}" in text


def test_keep_color_reaches_the_replicas(ray_app: str, small_photo: Path, registry, tmp_path: Path) -> None:
    """keep_color travels in the RunOptions a replica gets: its result is the local engine's with the same strength."""
    png, _ = client(ray_app, tmp_path).predict(handle_file(str(small_photo)), "hayao", 160, False, "face", "keep", 1.0,
                                               api_name="/stylize")
    with torch_threads(1):
        plain = stylize(small_photo, "hayao", registry=registry, device="cpu", max_side=160).image
        local = stylize(small_photo, "hayao", registry=registry, device="cpu", max_side=160, keep_color=1.0).image
    with Image.open(png) as out:
        remote = np.asarray(out.convert("RGB"), np.int16)
    assert np.abs(remote - np.asarray(local.convert("RGB"), np.int16)).max() <= 2
    assert np.abs(remote - np.asarray(plain.convert("RGB"), np.int16)).max() > 10


def test_side_by_side_reaches_the_replicas(ray_app: str, small_photo: Path, registry, tmp_path: Path) -> None:
    """side_by_side travels in the RunOptions too: the replica composes, the input beside its result."""
    png, text = client(ray_app, tmp_path).predict(handle_file(str(small_photo)), "hayao", 152, False,
                                                  side_by_side=True, api_name="/stylize")
    with torch_threads(1):
        local = np.asarray(stylize(small_photo, "hayao", registry=registry, device="cpu", max_side=152,
                                   side_by_side=True).image, np.int16)
    with Image.open(png) as out:
        remote = np.asarray(out.convert("RGB"), np.int16)
    assert Path(png).name == "railway_hayao_side_by_side.png" and remote.shape == local.shape
    w = remote.shape[1] // 2
    assert np.array_equal(remote[:, :w], local[:, :w])  # the photo itself: no rounding to differ
    assert np.abs(remote[:, w:] - local[:, w:]).max() <= 2 and "Side by side" in text


def test_engine_errors_read_the_same_through_the_replicas(ray_app: str, small_photo: Path, tmp_path: Path) -> None:  
    c = client(ray_app, tmp_path)
    with pytest.raises(AppError) as err:
        c.predict(handle_file(str(small_photo)), "shinkai", 0, False, api_name="/stylize")
    assert "Shinkai" in str(err.value) and "not available offline" in str(err.value)
    junk = tmp_path / "notes.png"
    junk.write_text("this is not a picture")
    with pytest.raises(AppError, match="can't be used: the file is not a supported image"):
        c.predict(handle_file(str(junk)), "hayao", 0, False, api_name="/stylize")


def _busy(pids: list[int], window: float = 2.0) -> tuple[int, float, float]:
    """The replica process using the CPU (the one converting), the CPU seconds it used in ``window``, and the
    most any other replica used (the machine may be shared with other tests: compare, don't expect a share)."""
    procs = [psutil.Process(p) for p in pids]
    start = [sum(p.cpu_times()[:2]) for p in procs]
    time.sleep(window)
    used = [sum(p.cpu_times()[:2]) - s for p, s in zip(procs, start)]
    i = int(np.argmax(used))
    return pids[i], used[i], max(u for j, u in enumerate(used) if j != i)


def test_killing_the_busy_replica_costs_no_request(ray_app: str, photos: dict[str, Path], small_photo: Path,
                                                   tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    im = Image.open(photos["kyoto_street_kimono"]).convert("RGB")
    im.thumbnail((768, 768))  # ~10 s on one thread: time to find and kill its replica
    im.save(big, quality=90)
    pids = [r["pid"] for r in stats(ray_app)["replicas"]]
    assert len(pids) == 2, "run after the spread test, which makes both replicas report"
    c = client(ray_app, tmp_path / "c")
    job = c.submit(handle_file(str(big)), "hayao", 0, False, api_name="/stylize")
    deadline = time.monotonic() + 60
    while stats(ray_app)["running"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.0)
    victim, cpu, idle = _busy(pids)
    assert cpu > 0.15 and cpu > 3 * idle, f"no replica was clearly converting (cpu {cpu:.2f} s, other {idle:.2f} s)"
    os.kill(victim, signal.SIGKILL)

    png, _text = job.result(timeout=300)  # retried once on the live replica: the user sees a result, not an error
    assert_stylised(Path(png), big, Image.open(big).size)
    png, _ = c.predict(handle_file(str(small_photo)), "hayao", 0, False, api_name="/stylize")  # still serving
    assert Path(png).is_file()
    deadline = time.monotonic() + 120  # Serve replaces the dead replica: a new process reports in
    side = 64
    while True:
        live = [r["pid"] for r in stats(ray_app)["replicas"] if psutil.pid_exists(r["pid"])]
        if len(set(live) - {victim}) >= 2:
            break
        assert time.monotonic() < deadline, f"the killed replica was not replaced: {stats(ray_app)['replicas']}"
        c.predict(handle_file(str(small_photo)), "hayao", side, False, api_name="/stylize")
        side += 8
    assert victim not in live
