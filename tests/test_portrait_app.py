"""Portraits in the real app (a subprocess on 127.0.0.1): /stylize keeps its four-argument form and takes framing and
background after it; a real browser picks a portrait style, converts the example and sees the result."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from harness import REPO, chromium, client, running_app
from PIL import Image

PORTRAIT = "face_paint_512_v2"
ASTRONAUT = REPO / "animegan" / "examples" / "astronaut.jpg"


@pytest.fixture(scope="module")
def app_url(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("portrait-app")
    with running_app(tmp, "--weights", f"hayao={hayao_pt},{PORTRAIT}={hayao_pt}", "--offline", "--device", "cpu") as url:
        yield url


def test_four_argument_calls_still_work(app_url: str, tmp_path: Path) -> None:
    c = client(app_url, tmp_path)
    png, text = c.predict(handle_file(str(ASTRONAUT)), "hayao", 256, False, api_name="/stylize")
    assert Image.open(png).size == (256, 256) and text.startswith("Hayao style: 256x256 px")
    png, text = c.predict(handle_file(str(ASTRONAUT)), PORTRAIT, 512, False, api_name="/stylize")
    assert Image.open(png).size == (512, 512)  # the portrait default: her face, at the training size
    assert "Framing face: face box" in text, text


def test_framing_and_background_arguments(app_url: str, tmp_path: Path) -> None:
    c = client(app_url, tmp_path)
    png, text = c.predict(handle_file(str(ASTRONAUT)), PORTRAIT, 512, False, "paste", "hayao", api_name="/stylize")
    out = np.asarray(Image.open(png).convert("RGB"), np.float32)
    assert out.shape == (512, 512, 3) and "Framing paste: 1 face(s)" in text, text
    photo = np.asarray(Image.open(ASTRONAUT).convert("RGB"), np.float32)
    assert np.abs(out[400:, :100] - photo[400:, :100]).mean() > 5  # the background was stylised (Hayao)
    png, text = c.predict(handle_file(str(ASTRONAUT)), PORTRAIT, 512, False, "center", "keep", api_name="/stylize")
    assert "Framing center: the centre square 512x512" in text, text
    info = c.view_api(return_format="dict", print_info=False)["named_endpoints"]["/stylize"]
    names = [p["parameter_name"] for p in info["parameters"]]
    assert names == ["image", "style", "max_side", "keep_brightness", "framing", "background", "keep_color",
                     "side_by_side"]
    assert all(p["parameter_has_default"] for p in info["parameters"][4:])
    with pytest.raises(Exception, match="Unknown background .celeba_distill."):
        c.predict(handle_file(str(ASTRONAUT)), PORTRAIT, 512, False, "paste", "celeba_distill", api_name="/stylize")


@pytest.mark.browser
def test_browser_portrait_style_converts_the_example(hayao_pt: Path, tmp_path: Path) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    with chromium() as browser, running_app(tmp_path / "app", "--weights", f"{PORTRAIT}={hayao_pt}", "--offline",
                                            "--device", "cpu") as url:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        expect(page.locator("#convert")).to_be_visible(timeout=30_000)
        page.locator("#style label", has_text="Portraits · Face Paint v2").click()
        expect(page.locator("#framing")).to_be_visible(timeout=10_000)
        page.locator("#framing label", has_text="Face").first.click()
        page.locator("button", has_text="Astronaut · Face Paint v2 (portrait)").click()  # the portrait example
        expect(page.locator("#notice")).to_contain_text("Face Paint v2 style: 512x512 px", timeout=90_000)
        expect(page.locator("#notice")).to_contain_text("Framing face: face box")
        expect(page.locator("#result img").first).to_be_visible()
        expect(page.locator("#result-file a[href$='/astronaut_face_paint_512_v2.png']")).to_have_count(1)
        page.screenshot(path=str(tmp_path / "portrait.png"), full_page=True)
        browser.close()
