"""What a new user meets first (issue 23): the weights host probed before any conversion, ``weights=`` in the
Python API with errors in Python's words, one message per error on the command line, compact ``download`` lines,
and a run's own memory peak. Network only to 127.0.0.1: a local HTTP server, or a port nobody listens on."""
from __future__ import annotations

import contextlib
import http.server
import mmap
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import free_port

from animegan import Registry, WeightsError, settings, stylize
from animegan.__main__ import main
from animegan.memory import PeakRSS
from animegan.weights.download import probe


@contextlib.contextmanager
def weights_host() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A mirror on 127.0.0.1 that answers HEAD for every file (and serves nothing), with the requests it saw."""
    seen: list[tuple[str, str]] = []

    class Host(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            seen.append(("HEAD", self.path))
            self.send_response(200 if self.path.endswith((".index", ".pt")) else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # bound, then released: nobody listens there


@pytest.fixture
def downloads_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (settings.ENV_WEIGHTS_DIR, settings.ENV_OFFLINE, settings.ENV_HF_OFFLINE):
        monkeypatch.delenv(name, raising=False)


def test_probe_says_whether_a_url_answers() -> None:
    with weights_host() as (url, seen):
        assert probe(f"{url}/Hayao-64.ckpt.index") is None
        assert probe(f"{url}/missing.bin") == f"{url[7:]} answered HTTP 404 Not Found"
    assert seen == [("HEAD", "/Hayao-64.ckpt.index"), ("HEAD", "/missing.bin")]  # nothing downloaded
    dead = dead_url()
    start = time.monotonic()
    why = probe(f"{dead}/Hayao-64.ckpt.index", timeout=2)
    assert why.startswith(f"{dead[7:]} cannot be reached") and "refused" in why
    assert time.monotonic() - start < 2


def test_an_unreachable_host_marks_every_style_it_serves(downloads_on, monkeypatch, tmp_path: Path,
                                                         hayao_pt: Path) -> None:
    dead = dead_url()
    monkeypatch.setenv(settings.ENV_MIRROR, dead)
    reg = Registry(cache_dir=tmp_path / "cache", weights={"hayao": hayao_pt}, offline=False)
    assert reg.availability()["shinkai"] == (True, "downloaded on first use (8.6 MB)")  # before the probe
    unreachable = reg.check_downloads(timeout=2)
    assert set(unreachable) == {"shinkai", "paprika", "face_paint_512_v2", "face_paint_512_v1", "celeba_distill"}
    avail = reg.availability()
    assert avail["hayao"] == (True, f"weights file {hayao_pt}")  # a local file needs no host
    ok, why = avail["shinkai"]
    assert not ok and why.startswith(f"its weights cannot be downloaded now: {dead[7:]} cannot be reached")
    assert "Registry(weights_dir=...)" in why and "--weights-dir" not in why  # a Python caller's words
    with weights_host() as (url, seen):  # the host answers again: the next probe clears it
        monkeypatch.setenv(settings.ENV_MIRROR, url)
        assert reg.check_downloads(timeout=2) == {}
    assert len(seen) == 1  # one request for the one host, not one per style
    assert reg.availability()["shinkai"] == (True, "downloaded on first use (8.6 MB)")


def test_offline_asks_no_host(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(settings.ENV_MIRROR, dead_url())
    assert Registry(cache_dir=tmp_path / "cache", offline=True).check_downloads(timeout=2) == {}


def test_background_probe_runs_once_a_minute_at_most(downloads_on, monkeypatch, tmp_path: Path) -> None:
    with weights_host() as (url, seen):
        monkeypatch.setenv(settings.ENV_MIRROR, url)
        reg = Registry(cache_dir=tmp_path / "cache", offline=False)
        for _ in range(3):
            reg.check_downloads_in_background()
            reg._checking.join(5)
        assert reg.checks == 1 and len(seen) == 1


def test_stylize_takes_a_weights_file_or_a_mapping(hayao_pt: Path, photos: dict[str, Path], downloads_on,
                                                   monkeypatch) -> None:
    monkeypatch.setenv(settings.ENV_OFFLINE, "1")  # nothing else may be fetched
    photo = photos["railway_crossing"]
    one = stylize(photo, "hayao", weights=hayao_pt, max_side=64, device="cpu")
    two = stylize(photo, "hayao", weights={"Hayao": str(hayao_pt)}, max_side=64, device="cpu")
    assert one.stats.weights_source == two.stats.weights_source == str(hayao_pt)
    assert one.image.tobytes() == two.image.tobytes()
    with pytest.raises(TypeError, match="not both"):
        stylize(photo, "hayao", weights=hayao_pt, registry=Registry())
    with pytest.raises(WeightsError) as missing:  # the given file is used for its style only; errors speak Python
        stylize(photo, "shinkai", weights={"hayao": hayao_pt}, max_side=64, device="cpu")
    assert "--weights-dir" not in str(missing.value) and "weights=PATH" in str(missing.value)


def test_stylize_video_takes_weights_too(hayao_pt: Path, shared: Path, tmp_path: Path) -> None:
    from animegan.video import stylize_video

    clip = shared / "video" / "railway_pan_320x240_2s.mp4"
    if not clip.exists():
        pytest.skip("no shared clip")
    stats = stylize_video(clip, tmp_path / "out.mp4", "hayao", weights=hayao_pt, max_side=64, device="cpu")
    assert stats.frames > 0 and (tmp_path / "out.mp4").stat().st_size > 0


def test_cli_says_a_weights_error_once(photos: dict[str, Path], tmp_path: Path) -> None:
    """In a process of its own: under pytest the log's own handlers would hide a duplicate log line."""
    env = {k: v for k, v in os.environ.items() if k not in (settings.ENV_WEIGHTS_DIR, settings.ENV_OFFLINE)}
    run = subprocess.run([sys.executable, "-m", "animegan", str(photos["railway_crossing"]), "--style", "shinkai",
                          "--offline", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, check=False,
                         env={**env, settings.ENV_CACHE_DIR: str(tmp_path / "cache")})
    assert run.returncode == 2 and run.stdout == ""
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    err = run.stderr
    assert len(lines) == 1 and lines[0].startswith("error: weights for style 'Shinkai' are not available offline"), err
    assert "--weights-dir" in lines[0] and "weights=PATH" not in lines[0]  # a command line's words


def test_download_without_network_prints_one_short_line_per_style(downloads_on, monkeypatch, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    dead = dead_url()
    monkeypatch.setenv(settings.ENV_MIRROR, dead)
    monkeypatch.setenv(settings.ENV_CACHE_DIR, str(tmp_path / "cache"))
    assert main(["download", "hayao", "shinkai", "paprika"]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()  # (the same holds in a process of its own: the registry's log line is off there too)
    assert out == "" and len(lines) == 5, err
    for style, line in zip(("hayao", "shinkai", "paprika"), lines, strict=False):
        assert line.startswith(f"error: {style}: could not reach {dead[7:]} (") and len(line) < 100, line
    assert lines[3].startswith("check the network; without it, put the weights in a folder named by --weights-dir")
    assert lines[4] == "3 of 3 styles are not ready"


def test_peak_rss_added_is_the_blocks_own() -> None:
    held = mmap.mmap(-1, 256 << 20)  # the process already holds 256 MiB...
    held.write(b"x" * (256 << 20))
    with PeakRSS() as small:
        _ = bytes(1 << 20)
    with PeakRSS() as big:
        block = mmap.mmap(-1, 128 << 20)  # ...and this block adds 128 MiB, touched
        block.write(b"y" * (128 << 20))
        block.close()
    held.close()
    assert small.added < 64 << 20 < small.peak, (small.added, small.peak)  # not the process's whole RSS
    assert big.added >= 100 << 20, big.added


def test_a_runs_notice_reports_its_own_peak(registry, photos: dict[str, Path]) -> None:
    import psutil

    stats = stylize(photos["railway_crossing"], "hayao", registry=registry, device="cpu", max_side=96).stats
    assert stats.peak_memory_kind.startswith("RAM the run added, process peak")
    assert 0 <= stats.peak_memory < psutil.Process().memory_info().rss  # never the process's whole RSS
