"""Keep colours in the app: the /stylize and /stylize_video input (gradio_client and raw HTTP), the webcam mirror,
and the sliders in a real browser (Debian's chromium through Playwright)."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import REPO, load_bench
from gradio_client import handle_file
from harness import chromium, client, running_app
from PIL import Image

from animegan import imaging

BENCH = load_bench("keep_color")
VIDEO_BENCH = load_bench("video_bench")
attack = load_bench("attack")
ASTRONAUT = REPO / "animegan" / "examples" / "astronaut.jpg"
COLOUR_REFUSED = "Keep colours must be a number from 0"


@pytest.fixture(scope="module")
def app_url(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("keep-color-app")
    with running_app(tmp / "app", "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu",
                     "--precision", "fp32", env={"ANIMEGAN_KEEP_COLOR": "0.5"}) as url:
        yield url


def rgb(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_stylize_takes_keep_color_last_and_old_calls_still_work(app_url: str, small_photo: Path, tmp_path: Path) -> None:
    c = client(app_url, tmp_path)
    photo = rgb(small_photo)
    plain, _ = c.predict(handle_file(str(small_photo)), "hayao", 0, False, "face", "keep", 0, api_name="/stylize")
    kept, _ = c.predict(handle_file(str(small_photo)), "hayao", 0, False, "face", "keep", 1.0, api_name="/stylize")
    assert BENCH.chroma_mae(rgb(kept), photo) < 0.45 * BENCH.chroma_mae(rgb(plain), photo)
    assert BENCH.detail_correlation(rgb(kept), rgb(plain)) > 0.98
    by_name, _ = c.predict(handle_file(str(small_photo)), "hayao", 0, False, keep_color=1.0, api_name="/stylize")
    assert np.array_equal(rgb(by_name), rgb(kept))
    # Today's 4 values: gradio_client fills in the sliders' start (ANIMEGAN_KEEP_COLOR=0.5 here; 0 unless set).
    default, _ = c.predict(handle_file(str(small_photo)), "hayao", 0, False, api_name="/stylize")
    half, _ = c.predict(handle_file(str(small_photo)), "hayao", 0, False, keep_color=0.5, api_name="/stylize")
    assert np.array_equal(rgb(default), rgb(half))
    assert BENCH.chroma_mae(rgb(kept), photo) < BENCH.chroma_mae(rgb(half), photo) < BENCH.chroma_mae(rgb(plain), photo)


def test_the_app_flag_is_checked() -> None:
    from animegan.serving import load_config

    assert load_config(["--keep-color", "0.3"], {}).keep_color == 0.3
    assert load_config([], {"ANIMEGAN_KEEP_COLOR": "1"}).keep_color == 1.0
    assert load_config([], {}).keep_color == 0.0
    for bad in ("nan", "inf", "1.2", "-0.1"):
        with pytest.raises(SystemExit):
            load_config(["--keep-color", bad], {})


def test_raw_requests_count_every_value_and_bad_strengths_are_named(app_url: str, small_photo: Path,
                                                                           tmp_path: Path) -> None:
    raw = attack.Raw(app_url)
    photo = {"path": raw.upload(small_photo.read_bytes(), "photo.jpg"), "meta": {"_type": "gradio.FileData"}}
    fn = raw.fn_index("stylize")
    status, msg = raw.call(fn, attack.stylize_data(photo)[:6])  # a client of before: six values
    assert status == 200 and not msg["success"] and "eight values" in attack.error_text(msg), msg
    for bad in (float("nan"), float("inf"), -0.5, 2, "lots", [1]):
        status, msg = raw.call(fn, attack.stylize_data(photo, keep_color=bad))
        assert status == 200 and not msg["success"] and COLOUR_REFUSED in attack.error_text(msg), (bad, msg)
    status, msg = raw.call(fn, attack.stylize_data(photo, keep_color="0.5"))  # a number as text, as for max side
    assert status == 200 and msg["success"], msg
    clip = VIDEO_BENCH.write_clip(tmp_path / "clip.mp4", VIDEO_BENCH.still_camera_clip(64, 48, 3)[0], fps=12)
    upload = {"path": raw.upload(clip.read_bytes(), "clip.mp4"), "meta": {"_type": "gradio.FileData"}}
    video_fn = raw.fn_index("stylize_video")
    status, msg = raw.call(video_fn, attack.video_data(upload, "hayao", 64)[:5])
    assert status == 200 and not msg["success"] and "seven values" in attack.error_text(msg), msg
    status, msg = raw.call(video_fn, attack.video_data(upload, "hayao", 64, keep_color=float("nan")))
    assert status == 200 and not msg["success"] and COLOUR_REFUSED in attack.error_text(msg), msg


def test_stylize_video_takes_keep_color(app_url: str, tmp_path: Path) -> None:
    frames, _ = VIDEO_BENCH.still_camera_clip(96, 64, 4)
    clip = VIDEO_BENCH.write_clip(tmp_path / "walk.mp4", frames, fps=12)
    c = client(app_url, tmp_path)
    outs = {}
    for s in (0.0, 1.0):
        path, _ = c.predict(handle_file(str(clip)), "hayao", 0, True, "whole", s, api_name="/stylize_video")
        av = pytest.importorskip("av")
        with av.open(path) as container:
            outs[s] = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(clip)) as container:
        inputs = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    for src, plain, kept in zip(inputs, outs[0.0], outs[1.0], strict=True):
        assert BENCH.chroma_mae(kept, src) < 0.6 * BENCH.chroma_mae(plain, src)


def test_the_webcam_mirror_takes_keep_color(registry, photos: dict[str, Path]) -> None:
    from animegan.serving import ServeConfig
    from animegan.ui import build_demo

    videos = build_demo(ServeConfig(device="cpu", offline=True, precision="fp32"), registry).animegan_webcam
    photo = np.asarray(Image.open(photos["kyoto_street_kimono"]).convert("RGB").resize((256, 174), Image.LANCZOS))
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "PNG")
    frame = {"url": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}
    outs = {}
    for s in (0.0, 1.0):
        out, _, session = videos.mirror(frame, "hayao", True, None, s)
        outs[s] = np.asarray(Image.open(io.BytesIO(base64.b64decode(out["url"].split(",", 1)[1]))).convert("RGB"))
    assert session.smoother is not None
    assert BENCH.chroma_mae(outs[1.0], photo) < 0.6 * BENCH.chroma_mae(outs[0.0], photo)
    import gradio as gr
    with pytest.raises(gr.Error, match=COLOUR_REFUSED):
        videos.mirror(frame, "hayao", True, None, float("nan"))


@pytest.mark.browser
def test_the_keep_colours_sliders_in_a_browser(app_url: str, tmp_path: Path) -> None:
    """Photo tab: Keep colours at 1 gives the photo's colours (the downloaded PNG is measured); the Video and Webcam
    tabs have the slider too; all three start where ANIMEGAN_KEEP_COLOR says."""
    from playwright.sync_api import expect

    photo = imaging.load_photo(ASTRONAUT, max_side=256).rgb
    with chromium("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream") as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(app_url)
        expect(page.locator("#convert")).to_be_visible(timeout=30_000)
        expect(page.locator("#keep-color")).to_contain_text("Keep colours")
        box, track = page.locator("#keep-color input[type=number]"), page.locator("#keep-color input[type=range]")
        expect(box).to_have_value("0.5")
        side = page.locator("#max-side input[type=number]")
        side.fill("256")
        side.press("Enter")
        page.locator("#photo input[type=file]").set_input_files(str(ASTRONAUT))
        results = {}
        for value in ("0", "1"):
            box.fill(value)
            box.press("Enter")
            box.blur()
            expect(track).to_have_value(value)
            page.locator("#convert").click()
            link = page.locator("#result-file a[href$='/astronaut_hayao.png']")
            expect(link).to_have_count(1, timeout=60_000)
            href = link.get_attribute("href")
            expect(page.locator("#notice")).to_contain_text("Hayao style: 256x256 px", timeout=60_000)
            if value == "1":  # the second result replaces the first: wait for the new file
                page.wait_for_function("h => !document.querySelector(`#result-file a[href='${h}']`)",
                                       arg=results["0"][1], timeout=60_000)
                href = link.get_attribute("href")
            png = httpx.get(href if href.startswith("http") else app_url.rstrip("/") + href, timeout=30).content
            results[value] = (np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), href)
        plain, kept = results["0"][0], results["1"][0]
        assert BENCH.chroma_mae(kept, photo) < 0.45 * BENCH.chroma_mae(plain, photo)
        page.screenshot(path=str(tmp_path / "keep_colours.png"), full_page=True)
        for tab, slider in (("Video", "#video-keep-color"), ("Webcam mirror", "#webcam-keep-color")):
            page.get_by_role("tab", name=tab, exact=True).click()
            expect(page.locator(slider)).to_contain_text("Keep colours")
            expect(page.locator(f"{slider} input[type=number]")).to_have_value("0.5")
        page.close()
