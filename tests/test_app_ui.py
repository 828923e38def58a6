"""The app's parts in-process: flags and environment, event wiring, texts, error mapping, and an app with no weights."""
from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
import torch

gr = pytest.importorskip("gradio")
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from animegan import Registry
from animegan.engine import RunStats
from animegan.imaging import InvalidImageError
from animegan.serving import ServeConfig, cpu_cores, load_config
from animegan.ui import build_demo
from animegan.ui.state import CONVERT_GROUP
from animegan.ui.texts import notice, user_error
from animegan.weights import WeightsMissingError


@pytest.fixture()
def offline_registry(tmp_path: Path) -> Registry:
    """No weights anywhere and downloads off: every style is unavailable."""
    (tmp_path / "empty").mkdir()
    return Registry(weights_dir=tmp_path / "empty", cache_dir=tmp_path / "cache", offline=True)


def test_flags_win_over_environment_and_environment_over_defaults(tmp_path: Path) -> None:
    env = {"ANIMEGAN_CONCURRENCY": "3", "ANIMEGAN_MAX_QUEUE": "5", "ANIMEGAN_WEIGHTS": "hayao=/a.pt,shinkai=/b.pt",
           "ANIMEGAN_OFFLINE": "1", "GRADIO_SERVER_NAME": "0.0.0.0", "ANIMEGAN_AUTH": "ann:secret"}
    c = load_config(["--concurrency", "1", "--weights", "paprika=/c.pt", "--weights", "hayao=/d.pt", "--port", "9000"], env)
    assert (c.concurrency, c.max_queue, c.port, c.host, c.offline, c.auth) == (1, 5, 9000, "0.0.0.0", True, ("ann", "secret"))
    assert c.weights == {"hayao": Path("/d.pt"), "shinkai": Path("/b.pt"), "paprika": Path("/c.pt")}
    d = load_config([], {})
    assert (d.host, d.port, d.share, d.offline, d.auth, d.max_queue) == ("127.0.0.1", 7860, False, None, None, 16)
    assert load_config(["--weights", "Hayao=/e.pt"], {}).weights == {"hayao": Path("/e.pt")}
    for bad in (["--weights", "hayao"], ["--weights", "cubism=/x.pt"], ["--auth", "nopassword"], ["--concurrency", "0"]):
        with pytest.raises(SystemExit):
            load_config(bad, {})


def test_cpu_defaults_split_the_cores_between_workers() -> None:
    c = ServeConfig(device="cpu")
    assert c.workers() >= 1 and c.threads() == max(1, cpu_cores() // c.workers())
    assert ServeConfig(device="cpu", concurrency=1).threads() == cpu_cores()
    assert ServeConfig(device="cpu", concurrency=2, torch_threads=3).threads() == 3


def test_events_are_wired_for_the_queue(registry: Registry) -> None:
    demo = build_demo(ServeConfig(device="cpu", concurrency=3), registry)
    fns = {f.api_name: f for f in demo.fns.values()}
    stylize = fns["stylize"]
    assert stylize.queue and stylize.concurrency_id == CONVERT_GROUP and stylize.concurrency_limit == 3
    assert [c.label for c in stylize.inputs] == ["Photo", "Style", "Max side (px)", "Keep brightness",
                                                  "Framing", "Background (paste)", "Keep colours",
                                                  "Side by side"]  # new inputs after the four
    example = fns["example"]  # an example click runs the page's Convert, in the same group, never cached by Gradio
    assert example.queue and example.concurrency_id == CONVERT_GROUP and example.concurrency_limit == 3
    assert example.fn == demo.animegan_photo.convert_page and not any(getattr(f, "cache_examples", None) for f in fns.values())
    panel = fns["panels"]
    assert panel.queue is False and panel.concurrency_limit is None  # never waits behind conversions, never queued
    assert fns["stats"].queue is False and fns["stats"].api_visibility == "undocumented"
    style = next(b for b in demo.blocks.values() if isinstance(b, gr.Radio))
    assert [v for _, v in style.choices] == ["hayao", "shinkai", "paprika", "face_paint_512_v2", "face_paint_512_v1",
                                             "celeba_distill"]  # scenes, then portraits
    assert style.choices[0][0].startswith("Scenes · Hayao: Miyazaki") and "(unavailable" in style.choices[1][0]
    assert style.value == "hayao"


def test_memory_panel_without_gpu_says_so_and_shows_ram(registry: Registry) -> None:
    demo = build_demo(ServeConfig(device="cpu"), registry)
    text = demo.animegan.memory_panel()
    assert "Process RSS" in text and "system RAM available" in text and "Loaded styles" in text
    if not torch.cuda.is_available():
        assert "No GPU readings" in text and "CPU" in text


def test_errors_become_readable_messages(caplog: pytest.LogCaptureFixture) -> None:
    spec = Registry().style("hayao")
    assert "can't be used: the file is empty" in user_error(InvalidImageError("the file is empty"), spec, 0).message
    missing = user_error(WeightsMissingError("put hayao.pt in /srv/models (from https://example.org/a/b)"), spec, 0).message
    assert missing.startswith("The Hayao style is unavailable") and "put hayao.pt in models" in missing
    assert "/srv" not in missing and "https://example.org/a/b" in missing  # server folders hidden, URLs kept
    oom = user_error(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"), spec, 0)
    assert "Ran out of memory" in oom.message and "smaller 'Max side'" in oom.message
    with caplog.at_level(logging.ERROR, logger="animegan.app"):
        generic = user_error(KeyError("internal detail"), spec, 512).message
    assert "internal detail" not in generic and "reference" in generic
    assert caplog.records and caplog.records[-1].exc_info  # the traceback is logged, not shown


def test_notice_says_when_the_photo_was_downscaled() -> None:
    stats = RunStats(style="hayao", device="cpu", precision="fp32", original_size=(2000, 1000), input_size=(1024, 512),
                     output_size=(1024, 512), downscaled=True, seconds=1.5, peak_memory=3 << 20,
                     peak_memory_kind="process peak RSS", weights_source="x")
    text = notice(stats, "Hayao")
    assert text.startswith("Hayao style: 1024x512 px in 1.50 s on cpu")
    assert "downscaled from 2000x1000 to 1024x512" in text and "0 for the native size" in text


def test_app_without_any_weights_offline_starts_and_explains(offline_registry: Registry, photos: dict[str, Path]) -> None:
    demo = build_demo(ServeConfig(device="cpu", offline=True), offline_registry)
    assert all(not ok for ok, _ in offline_registry.availability().values())
    texts = " ".join(str(getattr(b, "value", "")) for b in demo.blocks.values() if isinstance(b, gr.Markdown))
    assert "Unavailable styles:** Hayao, Shinkai, Paprika" in texts and "Put hayao.pt" in texts
    demo.queue(max_size=4)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False)
        with pytest.raises(AppError, match="The Hayao style is unavailable: weights for style 'Hayao' are not available offline"):
            client.predict(handle_file(str(photos["railway_crossing"])), "hayao", 64, False, api_name="/stylize")
        stats = client.predict(api_name="/stats")
        # a style that is not here is not a conversion that went wrong (issue 23, item 8)
        assert (stats["unavailable"], stats["failed"], stats["running"]) == (1, 0, 0)
        panel = demo.animegan.memory_panel()
        assert "0 failed; 1 asked for an unavailable style" in panel
        # served on 127.0.0.1: the page names the cache folder in full, not its last component (item 9)
        cache = str(offline_registry.cache_dir.absolute()) if offline_registry.cache_dir else ""
        assert cache and f"the weights cache ({cache})" in demo.animegan.styles_panel()
    finally:
        demo.close()


def test_public_app_shortens_server_folders_and_local_app_does_not(offline_registry: Registry) -> None:
    cache = offline_registry.cache_dir.absolute()
    for config, shown in [(ServeConfig(device="cpu", offline=True), f"the weights cache ({cache})"),
                          (ServeConfig(device="cpu", offline=True, host="0.0.0.0"), "the weights cache (cache)"),
                          (ServeConfig(device="cpu", offline=True, share=True), "the weights cache (cache)")]:
        panel = build_demo(config, offline_registry).animegan.styles_panel()
        assert shown in panel, (config.host, config.share, panel)
        if config.share or config.host != "127.0.0.1":
            assert str(cache) not in panel
