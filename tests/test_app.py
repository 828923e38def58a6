"""The Gradio app, end to end: ``python app.py`` in a subprocess on 127.0.0.1, driven through gradio_client.

What is shown here: a real photo converts through ``/stylize`` into a stylised PNG of the right size; at most the
configured number of conversions run at once (the handler's own in-flight gauge, read through ``/stats``); a full
queue refuses cleanly and the server keeps serving; a style without weights offline is reported, not crashed on.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError
from harness import all_at_once, assert_stylised, client, fill_queue, running_app, stats

from animegan.serving import cpu_cores


@pytest.fixture(scope="module")
def app_url(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app: Hayao from the stand-in weights, offline (Shinkai and Paprika have no weights), 2 at once.

    The result cache is off: these tests send one photo many times and need each request to run the model.
    """
    tmp = tmp_path_factory.mktemp("app")
    with running_app(tmp, "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu",
                     "--concurrency", "2", "--max-queue", "16", "--result-cache-size", "0") as url:
        yield url


def test_stylize_api_converts_a_real_photo(app_url: str, small_photo: Path, tmp_path: Path) -> None:
    png, text = client(app_url, tmp_path).predict(handle_file(str(small_photo)), "hayao", 0, False, api_name="/stylize")
    assert_stylised(Path(png), small_photo, Image.open(small_photo).size)
    assert text.startswith("Hayao style") and "downscaled" not in text


def test_downscaling_is_said_plainly(app_url: str, small_photo: Path, tmp_path: Path) -> None:
    png, text = client(app_url, tmp_path).predict(handle_file(str(small_photo)), "Hayao", 96, True, api_name="/stylize")
    w, h = Image.open(small_photo).size
    with Image.open(png) as out:
        assert max(out.size) == 96
    assert f"downscaled from {w}x{h}" in text and "0 for the native size" in text


def test_eight_clients_at_once_respect_the_concurrency_limit(app_url: str, small_photo: Path, tmp_path: Path) -> None:
    clients = [client(app_url, tmp_path / f"c{i}") for i in range(8)]
    before = stats(app_url)
    results = all_at_once(8, lambda i: clients[i].predict(handle_file(str(small_photo)), "hayao", 0, False,
                                                          api_name="/stylize"), timeout=120)
    failures = [r for r in results if not isinstance(r, tuple)]
    assert not failures, failures
    for png, _ in results:  # type: ignore[misc]
        assert_stylised(Path(png), small_photo, Image.open(small_photo).size)
    after = stats(app_url)
    assert after["concurrency_limit"] == 2
    assert after["succeeded"] - before["succeeded"] == 8
    assert after["running"] == 0
    # The gauge sits inside the handler: it saw at most the limit, and the limit was actually used.
    assert after["peak"] == 2, after
    assert after["torch_threads"] == max(1, cpu_cores() // 2)  # the app splits the cores between its 2 workers


def test_offline_style_without_weights_is_reported_not_crashed(app_url: str, small_photo: Path, tmp_path: Path) -> None:
    c = client(app_url, tmp_path)
    with pytest.raises(AppError) as err:
        c.predict(handle_file(str(small_photo)), "shinkai", 0, False, api_name="/stylize")
    message = str(err.value)
    assert "Shinkai" in message and "not available offline" in message and "shinkai.pt" in message
    assert "Traceback" not in message
    png, _ = c.predict(handle_file(str(small_photo)), "hayao", 0, False, api_name="/stylize")  # still serving
    assert Path(png).is_file()


def test_bad_inputs_give_readable_errors(app_url: str, tmp_path: Path) -> None:
    c = client(app_url, tmp_path)
    junk = tmp_path / "notes.png"
    junk.write_text("this is not a picture")
    with pytest.raises(AppError, match="can't be used: the file is not a supported image"):
        c.predict(handle_file(str(junk)), "hayao", 0, False, api_name="/stylize")
    with pytest.raises(AppError, match="unknown style 'cubism'; choose one of: hayao, shinkai, paprika"):
        c.predict(handle_file(str(junk)), "cubism", 0, False, api_name="/stylize")
    with pytest.raises(AppError, match="Max side must be 0"):
        c.predict(handle_file(str(junk)), "hayao", -5, False, api_name="/stylize")
    with pytest.raises(AppError, match="Max side can be at most 8192 px; use 0 for the photo's native size"):
        c.predict(handle_file(str(junk)), "hayao", 99999, False, api_name="/stylize")


def test_full_queue_refuses_cleanly_and_the_server_keeps_serving(
        hayao_pt: Path, photos: dict[str, Path], small_photo: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    im = Image.open(photos["kyoto_street_kimono"]).convert("RGB")
    im.thumbnail((640, 640))  # a few seconds of work: long enough to fill the queue behind it
    im.save(big, quality=90)
    with running_app(tmp_path / "tiny", "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu",
                     "--concurrency", "1", "--max-queue", "1") as url:
        clients = [client(url, tmp_path / f"c{i}") for i in range(4)]
        blocker, waiting = fill_queue(url, clients, big, small_photo)
        assert stats(url)["running"] == 1  # the first is still running: the queue is full
        refused = []
        for c in clients[2:]:
            with pytest.raises(QueueError, match="Queue is full") as err:
                c.predict(handle_file(str(small_photo)), "hayao", 0, False, api_name="/stylize")
            refused.append(err.value)
        assert len(refused) == 2
        assert stats(url)["queued"] == 1  # unqueued events (the memory panel's kind) still answer meanwhile
        assert Path(blocker.result(timeout=120)[0]).is_file()
        assert Path(waiting.result(timeout=120)[0]).is_file()
        png, _ = clients[2].predict(handle_file(str(small_photo)), "hayao", 0, False, api_name="/stylize")
        assert_stylised(Path(png), small_photo, Image.open(small_photo).size)
        final = stats(url)
        assert final["peak"] == 1 and final["succeeded"] == 3 and final["concurrency_limit"] == 1 and final["max_queue"] == 1


def test_the_queue_cannot_be_skipped_by_posting_directly(app_url: str, small_photo: Path) -> None:
    response = httpx.post(f"{app_url}gradio_api/run/stylize", json={"data": [None, "hayao", 0, False]}, timeout=10)
    assert response.status_code == 404 and "join the queue" in response.text


def test_preload_loads_every_style_before_the_first_visitor(hayao_pt: Path, tmp_path: Path) -> None:
    with running_app(tmp_path, "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu", "--preload") as url:
        log = "".join(p.read_text() for p in tmp_path.glob("server-*.log"))
        assert "preload: hayao ready (cpu" in log
        assert "preload: shinkai is unavailable" in log and "Shinkai-53.ckpt" in log  # the reason, and it still serves
        assert stats(url)["started"] == 0
