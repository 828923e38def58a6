"""A real browser (Debian's chromium through Playwright) drives the Video and Webcam tabs of the real app.

Video: upload the shared clip, convert, and a playable video with sound appears (the page's <video> element has
loaded the clip's duration; the file it plays has an audio stream). Webcam: chromium's fake camera streams into the
mirror, which answers with stylised frames and the achieved fps. The Video tab's screenshot goes to the test's tmp
folder (docs/video_tab.png is retaken with ``scripts/screenshots.py --only video --clip CLIP``).
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import pytest
from harness import chromium, running_app, scrape, stats

from animegan.ui import video_tab

av = pytest.importorskip("av")
pytest.importorskip("prometheus_client")  # the app runs with --metrics: the webcam test reads its counters
pytestmark = pytest.mark.browser

# A synthetic camera (a moving test pattern) that needs no permission prompt.
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="module")
def browser():
    with chromium(*FAKE_CAMERA) as b:
        yield b


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app's folder: its server log is there."""
    return tmp_path_factory.mktemp("video-browser") / "app"


@pytest.fixture(scope="module")
def app_url(hayao_pt: Path, app_dir: Path):
    temp = app_dir / "tmp"  # the app's private folders (results, with their preview segments) go here
    temp.mkdir(parents=True)
    with running_app(app_dir, "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu",
                     "--webcam-seconds", "30", "--metrics", env={"TMPDIR": str(temp)}) as url:
        yield url


def test_upload_a_clip_convert_and_play_it_with_sound(browser, app_url: str, shared: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    clip = shared / "video" / "railway_pan_320x240_2s.mp4"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(app_url)
    expect(page.locator("#convert")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Video", exact=True).click()
    page.locator("#video input[type=file]").set_input_files(str(clip))
    expect(page.locator("#video video")).to_have_count(1, timeout=10_000)  # the upload is shown
    side = page.locator("#video-max-side input[type=number]")
    side.fill("128")
    side.press("Enter")
    page.locator("#convert-video").click()
    # Frame progress in the progress bar while it runs (the tracker shows "n/48 frames").
    expect(page.locator("#video-result")).to_contain_text(re.compile(r"\d+/48 frames"), timeout=60_000)
    expect(page.locator("#video-notice")).to_contain_text("Hayao style: 48 frames at 128x96 px", timeout=120_000)
    video = page.locator("#video-result video")
    expect(video).to_have_count(1)
    page.wait_for_function("() => document.querySelector('#video-result video').readyState >= 2", timeout=15_000)
    state = video.evaluate("v => ({duration: v.duration, ready: v.readyState, width: v.videoWidth, src: v.currentSrc})")
    assert abs(state["duration"] - 2.0) < 0.1 and state["ready"] >= 2 and state["width"] == 128, state
    print(f"page video: duration {state['duration']:.3f} s, readyState {state['ready']}, width {state['width']}")
    # The file the page plays has the sound: fetched as the browser did, read with PyAV.
    served = httpx.get(state["src"], timeout=30)
    assert served.status_code == 200
    with av.open(io.BytesIO(served.content)) as c:
        assert [s.type for s in c.streams].count("audio") == 1
        assert c.streams.video[0].codec_context.name == "h264"
    # It plays: time advances (muted, as browsers allow autoplay without a gesture only then).
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('#video-result video').currentTime > 0.3", timeout=10_000)
    assert page.locator("#video-result").get_by_role("button", name=re.compile("download", re.IGNORECASE)).count() >= 1 or \
        page.locator("#video-result a[download]").count() >= 1
    # the memory panel's "Last run" is this video (issue 23, item 8)
    expect(page.locator("#memory-panel")).to_contain_text("Last run: Hayao 128x96 video, 48 frames on cpu",
                                                          timeout=5_000)
    video.evaluate("v => { v.pause(); v.currentTime = 1.0; }")
    page.mouse.move(0, 0)
    page.wait_for_timeout(500)
    page.screenshot(path=str(tmp_path / "video_tab.png"), full_page=True)
    page.close()


def test_stop_ends_a_running_conversion(browser, app_url: str, app_dir: Path, shared: Path, tmp_path: Path) -> None:
    """Stop says so where the result would be, counts as stopped (not failed) and is logged as a Stop; the run's
    folder, with the preview segments already played, is gone."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(app_url)
    expect(page.locator("#convert")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Video", exact=True).click()
    page.locator("#video input[type=file]").set_input_files(str(shared / "video" / "railway_pan_320x240_2s.mp4"))
    expect(page.locator("#video video")).to_have_count(1, timeout=10_000)
    before = stats(app_url)
    results = list((app_dir / "tmp").glob("animegan-results-*"))
    assert len(results) == 1, results
    kept = {p.name for p in results[0].iterdir()}  # the earlier tests' results
    page.locator("#convert-video").click()  # native size: long enough to stop part-way
    expect(page.locator("#video-result")).to_contain_text(re.compile(r"\d+/48 frames"), timeout=60_000)
    expect(page.locator("#video-preview video")).to_have_count(1, timeout=60_000)  # a preview segment went out
    assert list(results[0].glob(f"*/{video_tab.PREVIEW_FOLDER}/*.ts")), "no preview segment on disk while it runs"
    page.locator("#stop-video").click()
    expect(page.locator("#video-notice")).to_contain_text("Stopped: the conversion was stopped; nothing was kept.",
                                                          timeout=5_000)
    for _ in range(300):  # the worker thread stops at the next frame (30 s at most)
        if stats(app_url)["running"] == 0:
            break
        page.wait_for_timeout(100)
    after = stats(app_url)
    assert after["running"] == 0 and after["stopped"] == before["stopped"] + 1, (before, after)
    assert {p.name for p in results[0].iterdir()} == kept  # nothing of the stopped run, its segments included
    assert (after["failed"], after["succeeded"]) == (before["failed"], before["succeeded"])
    expect(page.locator("#memory-panel")).to_contain_text(f"{after['stopped']} stopped, {after['failed']} failed",
                                                          timeout=5_000)
    expect(page.locator("#video-result")).not_to_contain_text("Error")  # no bare badge where the video would be
    page.screenshot(path=str(tmp_path / "stop.png"), full_page=True)
    log = "".join(p.read_text(errors="replace") for p in app_dir.glob("server-*.log"))
    assert "stopped by its user with Stop" in log and "no client has listened" not in log, log[-2000:]
    page.close()


def test_the_webcam_mirror_streams_stylised_frames(browser, app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"])
    page = context.new_page()
    sent: list[float] = []  # frames the page posts to the stream route
    page.on("request", lambda r: sent.append(1) if r.method == "POST" and "/gradio_api/stream/" in r.url else None)
    page.goto(app_url)
    expect(page.locator("#convert")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Webcam mirror").first.click()
    page.locator("#webcam").get_by_text("Click to Access Webcam").click()
    start = page.locator("#webcam .capture-button")
    # what the button shows: not Gradio's "Record" (nothing is recorded) but what it does (issue 23, item 9)
    shown = start.evaluate("b => { const t = b.querySelector('.icon-with-text'); return [getComputedStyle(t).fontSize, "
                           "getComputedStyle(t, '::after').content]; }")
    assert shown == ["0px", '"Start the mirror"'], shown
    start.click()
    result = page.locator("#webcam-result img")
    expect(result).to_have_count(1, timeout=60_000)
    assert (result.get_attribute("src") or "").startswith("data:image/jpeg;base64,")
    fps = page.locator("#webcam-fps")
    expect(fps).to_contain_text(re.compile(r"\d+\.\d fps at \d+x\d+ px \(smoothed\)"), timeout=30_000)
    first = result.get_attribute("src")
    page.wait_for_timeout(2000)
    assert result.get_attribute("src") != first  # a live stream, not one frame
    rate = float(re.search(r"(\d+\.\d) fps", fps.inner_text()).group(1))
    assert 0 < rate <= 8.5, rate  # never more than the page sends (--webcam-fps 8)
    page.screenshot(path=str(tmp_path / "webcam_mirror.png"))
    # Frames are dropped, not queued: the server stylised fewer than the page sent, and once the stream stops no
    # backlog keeps the model busy.
    page.locator("#webcam").get_by_text("Stop").first.click()
    page.wait_for_timeout(1500)
    served = scrape(app_url)[("animegan_webcam_frames_total", (("outcome", "ok"),))]
    page.wait_for_timeout(2000)
    assert scrape(app_url)[("animegan_webcam_frames_total", (("outcome", "ok"),))] == served
    assert 0 < served < len(sent), (served, len(sent))
    print(f"webcam mirror: {len(sent)} frames sent, {served:g} stylised, {rate} fps shown")
    context.close()


def _ten_second_clip(path: Path, fps: int = 12, size: tuple[int, int] = (160, 90)) -> Path:
    """A 10 s H.264 clip (a bar sweeping over a gradient, so that every frame differs) with a 10 s AAC tone."""
    from fractions import Fraction

    import numpy as np

    w, h = size
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = out.add_stream("aac", rate=44100)
        a.layout = "mono"
        base = np.zeros((h, w, 3), np.uint8)
        base[..., 0] = np.linspace(30, 220, w, dtype=np.uint8)[None, :]
        base[..., 2] = np.linspace(200, 40, h, dtype=np.uint8)[:, None]
        for i in range(10 * fps):
            rgb = base.copy()
            x = (i * 3) % (w - 8)
            rgb[:, x:x + 8] = (250, 240, 60)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode())
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(10 * 44100) / 44100)).astype(np.float32)[None, :]
        for start in range(0, tone.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 44100, start, Fraction(1, 44100)
            out.mux(a.encode(chunk))
        out.mux(a.encode())
    return path


def test_the_result_plays_while_it_converts_and_the_whole_mp4_downloads(browser, app_url: str,
                                                                        tmp_path: Path) -> None:
    """Issue 27: a 10 s clip's result starts playing in the page long before the conversion ends (N s after Convert,
    printed with the total), and the finished MP4 behind the result's download link has every frame and the sound."""
    import time

    from playwright.sync_api import expect

    fps, seconds = 8, 10  # 80 frames: a slow CPU converts them in about a minute
    clip = _ten_second_clip(tmp_path / "ten_seconds.mp4", fps)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(app_url)
    expect(page.locator("#convert")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Video", exact=True).click()
    page.locator("#video input[type=file]").set_input_files(str(clip))
    expect(page.locator("#video video")).to_have_count(1, timeout=10_000)
    page.locator("#convert-video").click()
    clicked = time.monotonic()
    # First moving frames: the preview's <video> plays by itself (autoplay) and its time advances.
    playing = ("() => { const v = document.querySelector('#video-preview video');"
               " return v !== null && !v.paused && v.readyState >= 2 && v.currentTime > 0.1; }")
    page.wait_for_function(playing, timeout=120_000, polling=50)
    first = time.monotonic() - clicked
    preview = page.locator("#video-preview video")
    t1, w1 = preview.evaluate("v => v.currentTime"), time.monotonic()
    page.wait_for_timeout(1000)
    t2, w2 = preview.evaluate("v => v.currentTime"), time.monotonic()
    assert t2 > t1, (t1, t2)
    rate = (t2 - t1) / (w2 - w1)  # 1.0: the clip's own speed (less where the run falls behind and the player waits)
    notice = page.locator("#video-notice")
    expect(notice).not_to_contain_text("frames at")  # the run is still going: the preview came first
    expect(notice).to_contain_text(f"Hayao style: {fps * seconds} frames at 160x90 px", timeout=300_000)
    total = time.monotonic() - clicked
    print(f"preview: first moving frames {first:.1f} s after Convert, playing at {rate:.2f}x; "
          f"whole conversion {total:.1f} s")
    assert first < 0.5 * total, (first, total)
    # The finished MP4, fetched through the result's download link, as a user's download would be.
    link = page.locator("#video-result a[download]").first
    expect(link).to_have_count(1, timeout=10_000)
    served = httpx.get(link.get_attribute("href"), timeout=30)
    assert served.status_code == 200
    with av.open(io.BytesIO(served.content)) as c:
        assert [s.type for s in c.streams].count("audio") == 1
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(io.BytesIO(served.content)) as c:
        sound = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].rate
    assert frames == fps * seconds, frames
    assert abs(sound - seconds) < 0.1, sound
    page.screenshot(path=str(tmp_path / "video_preview.png"), full_page=True)
    page.close()
