"""The gates in front of the engine, piece by piece: which files a request may make the server read, what a
request body may be, which decoders run, the deadline, and the files left on disk. (End to end, against the
real app: test_public_link.py.)"""
from __future__ import annotations

import asyncio
import io
import json
import os
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from conftest import load_bench
from PIL import Image

from animegan import imaging, temp_files
from animegan.engine import ConversionTimeout, Deadline, stylize
from animegan.options import RunOptions
from animegan.request_guard import Limits, Listeners, RequestGuard
from animegan.upload_gate import REFUSED, PhotoRefused, UploadGate


def _png(side: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


# -- the upload gate ---------------------------------------------------------------------------------------------
@pytest.fixture
def gate(tmp_path: Path) -> tuple[UploadGate, Path, Path]:
    uploads, outside = tmp_path / "uploads", tmp_path / "outside"
    uploads.mkdir()
    outside.mkdir()
    (uploads / "abc").mkdir()
    (uploads / "abc" / "photo.png").write_bytes(_png())
    (outside / "secret.png").write_bytes(_png())
    return UploadGate.of([uploads], max_bytes=4096), uploads, outside


def test_gate_reads_an_upload_whatever_the_payload_claims(gate) -> None:
    g, uploads, _ = gate
    path = str(uploads / "abc" / "photo.png")
    for payload in (path, {"path": path}, {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "a.png"},
                    {"path": path, "meta": {"_type": "anything"}}):
        data, name = g.read(payload)
        assert data == (uploads / "abc" / "photo.png").read_bytes() and name.endswith(".png")


def test_gate_refuses_everything_else_with_one_message(gate, tmp_path: Path) -> None:
    g, uploads, outside = gate
    (uploads / "link.png").symlink_to(outside / "secret.png")
    (uploads / "dirlink").symlink_to(outside)
    os.mkfifo(uploads / "fifo")
    (uploads / "big.png").write_bytes(b"x" * 5000)
    refused = {
        "outside": str(outside / "secret.png"), "dotdot": f"{uploads}/abc/../../outside/secret.png",
        "symlink out": str(uploads / "link.png"), "folder symlink out": str(uploads / "dirlink" / "secret.png"),
        "the folder itself": str(uploads), "a subfolder": str(uploads / "abc"), "missing": str(uploads / "nope.png"),
        "fifo": str(uploads / "fifo"), "dev zero": "/dev/zero", "proc": "/proc/self/environ", "nul": "a\x00b",
        "empty": "",
    }
    messages = {}
    for name, path in refused.items():
        started = time.monotonic()
        with pytest.raises(PhotoRefused) as err:
            g.read({"path": path})
        assert time.monotonic() - started < 1, name  # a FIFO or a device never blocks the worker
        messages[name] = err.value.public
    assert set(messages.values()) == {REFUSED}, messages
    with pytest.raises(PhotoRefused) as err:
        g.read({"path": str(uploads / "big.png")})
    assert "larger than the" in err.value.public


@pytest.mark.parametrize("payload", ["data:image/png;base64,AAAA", "https://example.com/a.png",
                                     {"path": None, "url": "data:image/png;base64,AAAA"}, {"path": 5}, 5, [1], None])
def test_gate_refuses_links_inline_data_and_non_files(gate, payload) -> None:
    with pytest.raises(PhotoRefused) as err:
        gate[0].read(payload)
    assert "/" not in err.value.public.replace("n/a", "")  # nothing about the server's folders


# -- decoders -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_every_listed_format_still_decodes(fmt: str) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(buf, fmt)
    assert imaging.open_image(buf.getvalue()).size == (24, 20)


@pytest.mark.parametrize("fmt", ["ICO", "PPM", "TGA", "PCX", "EPS"])
def test_formats_outside_the_list_are_refused_before_decoding(fmt: str) -> None:
    buf = io.BytesIO()
    if fmt == "EPS":  # writing EPS needs no Ghostscript; reading it would start one
        buf.write(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nrealtime 60000 add "
                  b"{ dup realtime le { exit } if } loop pop showpage\n%%EOF\n")
    else:
        Image.new("RGB", (16, 16)).save(buf, fmt)
    started = time.monotonic()
    with pytest.raises(imaging.InvalidImageError, match="not a supported image"):
        imaging.open_image(buf.getvalue())
    assert time.monotonic() - started < 1


def test_jpeg_scans_are_counted_without_decoding() -> None:
    im = Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for progressive, scans in ((False, 1), (True, 10)):  # libjpeg's default progressive script has 10 scans
        buf = io.BytesIO()
        im.save(buf, "JPEG", progressive=progressive, quality=85)
        assert imaging.count_jpeg_scans(buf.getvalue()) == scans
        assert imaging.open_image(buf.getvalue()).size == (64, 64)


def test_a_jpeg_with_thousands_of_scans_is_refused_fast() -> None:
    bomb = load_bench("attack").many_scan_jpeg(10_000)
    assert imaging.count_jpeg_scans(bomb, stop_after=10**6) == 10_000
    started = time.monotonic()
    with pytest.raises(imaging.InvalidImageError, match="more than 100 progressive scans"):
        imaging.open_image(bomb)
    assert time.monotonic() - started < 1


# -- the deadline --------------------------------------------------------------------------------------------------
def test_the_deadline_covers_decoding_and_every_tile(registry) -> None:
    photo = np.random.default_rng(3).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    with pytest.raises(ConversionTimeout, match="after decoding the photo"):
        stylize(photo, "hayao", registry=registry, device="cpu", deadline=Deadline(time.monotonic() - 1, 5))
    seen = []
    at = time.monotonic() + 60

    def pass_the_deadline_in_the_first_tile(done: int, total: int) -> None:
        seen.append((done, total))
        time.sleep(max(0.0, at - time.monotonic()) + 0.01)
    options = RunOptions(device="cpu", tile=32, deadline=at, timeout_s=60)
    at = time.monotonic() + 2  # the run's deadline is what the options carry: make them agree
    options = options.replace(deadline=at)
    with pytest.raises(ConversionTimeout, match=r"after 1 of \d+ tiles: the limit is 60 s"):
        stylize(photo, registry=registry, options=options, on_tile=pass_the_deadline_in_the_first_tile)
    assert seen == [(1, seen[0][1])] and seen[0][1] > 1
    result = stylize(photo, "hayao", registry=registry, device="cpu", deadline=30)  # in time: converted
    assert result.image.size == (96, 96)


# -- the request guard (an ASGI app behind it that records what reached it) -----------------------------------------
class _App:
    auth = None
    auth_dependency = None
    cookie_id = "c1"
    tokens: ClassVar[dict] = {}

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _call(guard: RequestGuard, app: _App, path: str, body: bytes = b"", method: str = "POST",
          headers: list | None = None, chunks: int = 1, query: bytes = b"") -> int:
    size = len(body)
    parts = [body[i * size // chunks:(i + 1) * size // chunks] for i in range(chunks)]
    queue = [{"type": "http.request", "body": p, "more_body": i < chunks - 1} for i, p in enumerate(parts)]
    sent: list[dict] = []

    async def receive() -> dict:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(msg: dict) -> None:
        sent.append(msg)
    hdrs = list(headers or []) + ([(b"content-length", str(size).encode())] if chunks == 1 else [])
    scope = {"type": "http", "method": method, "path": path, "headers": hdrs, "app": app, "query_string": query}
    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"]


def test_guard_bounds_bodies_and_refuses_links() -> None:
    app = _App()
    guard = RequestGuard(app, Limits.for_upload_size(1 << 20), known_fn=lambda i: i in (0, 1))
    join = "/gradio_api/queue/join"
    ok = json.dumps({"data": [{"path": "/tmp/gradio/x/a.png"}, "hayao", 0, False], "fn_index": 1}).encode()
    assert _call(guard, app, join, ok) == 200 and app.bodies[-1] == ok  # the app sees the body unchanged
    assert _call(guard, app, join, ok, chunks=3) == 200 and app.bodies[-1] == ok
    big = b"{" + b" " * (70 << 10) + b"}"
    assert _call(guard, app, join, big) == 413
    assert _call(guard, app, join, big, chunks=7) == 413  # no length: counted while it streams
    for path in ("https://example.com/a.png", "data:image/png;base64,AAAA", "HTTP://x", "file:///etc/passwd"):
        body = json.dumps({"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}], "fn_index": 1}).encode()
        assert _call(guard, app, join, body) == 400, path
    assert _call(guard, app, join, json.dumps({"data": [], "fn_index": 7}).encode()) == 400
    mcp = json.dumps({"jsonrpc": "2.0", "method": "tools/call", "params": {"arguments": {"image": "https://x/y.png"}}})
    assert _call(guard, app, "/gradio_api/mcp/", mcp.encode()) == 400
    inline = {"jsonrpc": "2.0", "method": "tools/call", "params": {"arguments": {"image": "data:," + "A" * (900 << 10)}}}
    assert _call(guard, app, "/gradio_api/mcp/", json.dumps(inline).encode()) == 200  # base64 up to the upload size
    huge = {"jsonrpc": "2.0", "method": "tools/call", "params": {"arguments": {"image": "data:," + "A" * (2 << 20)}}}
    assert _call(guard, app, "/gradio_api/mcp/", json.dumps(huge).encode()) == 413
    assert _call(guard, app, "/gradio_api/upload", headers=[(b"content-length", str(3 << 20).encode())]) == 413


def test_guard_asks_for_the_login_on_routes_gradio_leaves_open() -> None:
    app = _App()
    app.auth, app.tokens = ("u", "p"), {"tok": "u"}
    guard = RequestGuard(app, Limits.for_upload_size(1 << 20))
    for path, method in (("/gradio_api/mcp/", "POST"), ("/gradio_api/mcp/schema", "GET"), ("/metrics", "GET"),
                         ("/gradio_api/heartbeat/abc", "GET"), ("/gradio_api/cancel", "POST"),
                         ("/gradio_api/reset", "POST"), ("/gradio_api/queue/join", "POST")):
        assert _call(guard, app, path, b"{}", method=method) == 401, path
        assert _call(guard, app, path, b"{}", method=method, headers=[(b"cookie", b"access-token-c1=tok")]) == 200
        assert _call(guard, app, path, b"{}", method=method, headers=[(b"cookie", b"access-token-c1=forged")]) == 401
    assert _call(guard, app, "/", method="GET") == 200  # pages: Gradio shows its login form itself
    assert _call(guard, app, "/gradio_api/startup-events", method="GET") == 200


def test_listeners_are_counted_per_session_and_event() -> None:
    app = _App()
    listeners = Listeners()
    guard = RequestGuard(app, Limits.for_upload_size(1 << 20), listeners)
    inside: list[tuple[bool, ...]] = []

    async def probe(scope, receive, send) -> None:
        inside.append((listeners.listening("session:s1"), listeners.listening("event:e9"),
                       listeners.listening("event:other")))
        await send({"type": "http.response.start", "status": 200, "headers": []})
    guard.app = probe
    _call(guard, app, "/gradio_api/queue/data", method="GET", query=b"session_hash=s1")
    assert inside == [(True, False, False)] and not listeners.listening("session:s1")
    _call(guard, app, "/gradio_api/call/stylize/e9", method="GET")
    assert inside[1] == (False, True, False) and not listeners.listening("event:e9")


# -- files left on disk -------------------------------------------------------------------------------------------
def test_orphans_of_dead_processes_go_and_nothing_else(tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above the default pid_max: no such process
    mine = [tmp_path / f"{temp_files.UPLOADS_PREFIX}{dead}-ab", tmp_path / f"{temp_files.RESULTS_PREFIX}{dead}-cd"]
    alive = tmp_path / f"{temp_files.RESULTS_PREFIX}{os.getppid()}-ef"
    others = [tmp_path / "gradio", tmp_path / "animegan-uploads-notapid", alive]
    for p in mine + others:
        p.mkdir()
        (p / "f").write_text("x")
    assert sorted(temp_files.remove_orphans(tmp_path)) == sorted(mine)
    assert all(p.exists() for p in others)


def test_partial_uploads_are_swept_once_stale(tmp_path: Path) -> None:
    stale, fresh, kept = tmp_path / "tmpabc", tmp_path / "tmpdef", tmp_path / "hash"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    kept.mkdir()
    (kept / "tmpzzz").write_bytes(b"complete uploads live in subfolders")
    old = time.time() - 120
    os.utime(stale, (old, old))
    assert temp_files.sweep_partial_uploads(tmp_path, stale_s=60) == 1
    assert not stale.exists() and fresh.exists() and (kept / "tmpzzz").exists()
