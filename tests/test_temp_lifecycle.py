"""Issue 22, items 10 and 11 and the webcam points: what MCP calls, results and webcam streams leave behind.

Against a real ``python app.py`` on 127.0.0.1 with an operator's ``GRADIO_TEMP_DIR`` (the case where the app may
delete only what it made): MCP base64 inputs, their uploads and Gradio's copies of results go after
``--temp-max-age`` and at SIGTERM, refused inputs at once; the webcam's refusals name the webcam, and webcam
streams beyond ``--webcam-streams`` are turned away instead of filling the photo queue.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import REPO, SHARED, load_bench
from harness import stats, wait_until
from PIL import Image

from animegan import temp_files

pytest.importorskip("mcp")
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

attack = load_bench("attack")
MAX_AGE_S = 6
EXAMPLES = {p.name for p in (REPO / "animegan" / "examples").glob("*")}  # Gradio's copies of them stay on purpose


def _files(tmp: Path) -> dict[Path, str]:
    """Every file the app may have written under ``tmp`` (its system temp folder, holding GRADIO_TEMP_DIR too), by
    SHA-256, except Gradio's copies of the example photos and the app's working folder (its log)."""
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp.rglob("*")
            if p.is_file() and p.name not in EXAMPLES and "app" not in p.relative_to(tmp).parts[:1]}


def _jpeg(seed: int) -> bytes:
    """A small real photo, made different per call (a conversion's files are named by their content)."""
    im = Image.open(SHARED / "photos" / "railway_crossing.jpg").convert("RGB")
    im.thumbnail((96, 96))
    im.putpixel((0, 0), (seed % 256, 7, 7))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    return buf.getvalue()


async def _mcp(url: str, tool: str, arguments: dict) -> tuple[bool, str]:
    """One MCP tool call as an assistant makes it: (is_error, the text items)."""
    async with streamable_http_client(f"{url}gradio_api/mcp/") as (read, write, _), ClientSession(read, write) as s:
        await s.initialize()
        result = await s.call_tool(tool, arguments)
    return result.isError, " ".join(c.text for c in result.content if c.type == "text")


def _mcp_photo(url: str, data: bytes, mime: str = "image/jpeg") -> tuple[bool, str]:
    return asyncio.run(_mcp(url, "stylize", {"image": f"data:{mime};base64," + base64.b64encode(data).decode(),
                                             "style": "hayao", "max_side": 0, "keep_brightness": False}))


def _raw_stylize(raw, data: bytes, name: str) -> dict:
    path = raw.upload(data, name)
    status, msg = raw.call(raw.fn_index("stylize"), attack.stylize_data({"path": path, "meta": {"_type": "gradio.FileData"}}))
    assert status == 200 and msg["success"], msg
    return msg


@pytest.fixture(scope="module")
def mcp_app(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """The app with --mcp and a 6 s max age, its uploads in an operator's folder; yields (url, process, tmp)."""
    tmp = tmp_path_factory.mktemp("lifecycle")
    args = ["--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu", "--mcp", "--temp-max-age", str(MAX_AGE_S),
            "--result-cache-size", "0"]
    with attack.running_app(args, tmp / "app", env={"GRADIO_TEMP_DIR": str(tmp / "uploads"), "TMPDIR": str(tmp)}) as app:
        yield app.url, app.proc, tmp


def test_refused_mcp_inputs_are_removed_at_once(mcp_app) -> None:
    url, _, tmp = mcp_app
    not_a_photo, not_a_video = os.urandom(5000), os.urandom(300_000)
    started = time.monotonic()
    error, text = _mcp_photo(url, not_a_photo, "image/png")
    assert error and "not a supported image" in text, text
    error, text = asyncio.run(_mcp(url, "stylize_video", {
        "video_file": "data:video/mp4;base64," + base64.b64encode(not_a_video).decode(), "style": "hayao",
        "max_side": 0, "temporal": False}))
    assert error and "can't be used" in text, text
    left = _files(tmp)
    # Younger than the max age: only the refusal can have removed them.
    assert time.monotonic() - started < MAX_AGE_S / 2
    digests = {hashlib.sha256(b).hexdigest() for b in (not_a_photo, not_a_video)}
    assert not [p for p, d in left.items() if d in digests], sorted(left)
    # Control: an accepted MCP input is on disk right after its call (its copy and its upload).
    photo = _jpeg(1)
    error, text = _mcp_photo(url, photo)
    assert not error, text
    copies = [p for p, d in _files(tmp).items() if d == hashlib.sha256(photo).hexdigest()]
    assert len(copies) == 2 and any(p.parent.parent.name.startswith(temp_files.MCP_PREFIX) for p in copies), copies


def test_mcp_inputs_and_result_copies_expire_after_the_max_age(mcp_app) -> None:
    url, _, tmp = mcp_app
    error, text = _mcp_photo(url, _jpeg(2))
    assert not error and "Hayao style" in text, text  # without a progress token: one text item (see test_mcp.py)
    _raw_stylize(attack.Raw(url), _jpeg(3), "plain.jpg")
    made = _files(tmp)
    kinds = {p.parent.parent.name.split("-")[1] if p.parent.parent.name.startswith("animegan-") else "gradio"
             for p in made}
    assert kinds == {"mcp", "results", "gradio"}, sorted(made)  # the MCP copy, our results, Gradio's uploads+copies
    assert any(p.name == "plain_hayao.png" and "uploads" in p.parts for p in made)  # Gradio's copy of the result
    assert wait_until(lambda: not (set(_files(tmp)) & set(made) - {p for p in made if "animegan-results" in str(p)}),
                       MAX_AGE_S + 20, step=0.25), sorted(set(_files(tmp)) & set(made))


def test_the_attack_replay_rows_hold(mcp_app) -> None:
    """bench/attack.py's rows for issue 22 (raw JSON-RPC for MCP, raw joins for the webcam) hold on this app."""
    url, _, tmp = mcp_app
    rows = attack.a11_mcp_and_webcam(attack.Raw(url), attack.Server(url, upload_dir=tmp / "uploads"))
    assert len(rows) == 3 and all(r.held for r in rows), [(r.attack, r.observed) for r in rows]


def test_sigterm_after_mcp_calls_leaves_no_file(mcp_app) -> None:
    url, proc, tmp = mcp_app
    error, text = _mcp_photo(url, _jpeg(4))
    assert not error, text
    _raw_stylize(attack.Raw(url), _jpeg(5), "plain.jpg")
    before = _files(tmp)
    assert any("plain_hayao" in p.name and "uploads" in p.parts for p in before)
    assert any(temp_files.MCP_PREFIX in str(p) for p in before)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not _files(tmp), sorted(_files(tmp))
    assert not list(tmp.glob("animegan-*"))


# -- the webcam ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def webcam_app(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[attack.Raw]:
    """One webcam stream at a time for 30 s, one conversion at a time and a queue of one place."""
    tmp = tmp_path_factory.mktemp("webcam")
    args = ["--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu", "--webcam-streams", "1",
            "--webcam-seconds", "30", "--concurrency", "1", "--max-queue", "1", "--metrics"]
    with attack.running_app(args, tmp / "app", env={"GRADIO_TEMP_DIR": str(tmp / "uploads"), "TMPDIR": str(tmp)}) as app:
        yield attack.Raw(app.url)


def _frame() -> dict:
    return {"url": "data:image/jpeg;base64," + base64.b64encode(_jpeg(9)).decode(), "meta": {"_type": "gradio.FileData"}}


def test_webcam_refusals_name_the_webcam(webcam_app) -> None:
    raw = webcam_app
    fn = raw.fn_index("mirror")
    for frame in (5, [1, 2], "not a frame"):
        deadline = time.monotonic() + 10  # the stream before frees its one slot a moment after its answer (503 busy)
        while (answer := raw.call(fn, attack.mirror_data(frame), timeout=30))[0] == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        status, msg = answer
        text = attack.error_text(msg)
        assert status == 200 and text and "webcam" in text and "/stylize" not in text, (frame, text)
    counted = [line for line in raw.http.get("metrics").text.splitlines()
               if line.startswith("animegan_webcam_frames_total") and 'outcome="unusable_frame"' in line]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) == 3, counted


def test_waiting_webcam_streams_leave_the_photo_queue_alone(webcam_app) -> None:
    raw = webcam_app
    fn = raw.fn_index("mirror")
    first = _join_when_free(raw, fn)  # a stream of the test above frees its slot a moment after its answer
    try:
        for _ in range(3):  # beyond --webcam-streams: turned away, not queued
            status, answer, _ = raw.join(fn, attack.mirror_data(_frame()))
            assert status == 503 and "webcam mirror is busy" in answer["detail"], answer
        assert stats(raw.url)["queued"] == 0
        # The photo queue (one place) is free: a conversion runs while the stream holds its slot.
        msg = _raw_stylize(raw, _jpeg(10), "photo.jpg")
        assert msg["output"]["data"][1].startswith("Hayao style")
    finally:
        _close(raw, first["event_id"])
    # Control: once the stream ends, the next one is let in.
    _close(raw, _join_when_free(raw, fn)["event_id"])


def _join_when_free(raw, fn: int, timeout: float = 20) -> dict:
    """Start a webcam stream as soon as its slot is free (503 until then); its join answer."""
    deadline = time.monotonic() + timeout
    while True:
        status, answer, _ = raw.join(fn, attack.mirror_data(_frame()))
        if status == 200:
            return answer
        assert status == 503 and time.monotonic() < deadline, (status, answer)
        time.sleep(0.2)


def _close(raw, event_id: str) -> None:
    """What the page sends when the webcam stops: the stream's event ends and frees its slot."""
    assert httpx.post(f"{raw.url}gradio_api/stream/{event_id}/close", timeout=10).status_code == 200


# -- the parts, without a server ----------------------------------------------------------------------------
def test_refused_inputs_take_their_mcp_copies_and_nothing_outside(tmp_path: Path) -> None:
    uploads, mcp, outside = tmp_path / "uploads", tmp_path / "mcp", tmp_path / "secret"
    for folder in (uploads / "h1", mcp / "h2", outside):
        folder.mkdir(parents=True)
    (uploads / "h1" / "x.png").write_bytes(b"bad bytes")
    (mcp / "h2" / "file.png").write_bytes(b"bad bytes")
    (mcp / "h2" / "other.png").write_bytes(b"good bytes")
    (outside / "x.png").write_bytes(b"bad bytes")
    (uploads / "link.png").symlink_to(outside / "x.png")
    assert temp_files.discard_refused(uploads / "link.png", uploads, mcp) == 0  # resolves outside: not touched
    assert temp_files.discard_refused(uploads / "h1" / "x.png", uploads, mcp) == 2
    assert not (uploads / "h1").exists() and not (mcp / "h2" / "file.png").exists()
    assert (mcp / "h2" / "other.png").exists() and (outside / "x.png").exists()


def test_files_unchanged_for_the_max_age_are_swept_with_their_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old, new = tmp_path / "a" / "file.jpg", tmp_path / "b" / "file.jpg"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    past = time.time() - 100
    os.utime(old, (past, past))  # a file handed out again is touched (ctime): the sweep reads the later time
    assert temp_files.sweep_old_files(tmp_path, 50) == 0
    assert old.exists() and new.exists()
    assert temp_files.sweep_old_files(tmp_path, 0) == 2
    assert tmp_path.exists() and not list(tmp_path.iterdir())


def test_orphaned_mcp_folders_go_at_the_next_start(tmp_path: Path) -> None:
    dead = 2**22 + 54321  # above the default pid_max: no such process
    orphan, alive = tmp_path / f"{temp_files.MCP_PREFIX}{dead}-ab", tmp_path / f"{temp_files.MCP_PREFIX}{os.getppid()}-cd"
    for folder in (orphan, alive):
        folder.mkdir()
        (folder / "file.jpg").write_bytes(b"x")
    assert temp_files.remove_orphans(tmp_path) == [orphan]
    assert alive.exists()
