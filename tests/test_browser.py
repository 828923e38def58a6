"""A real browser (Debian's chromium through Playwright) drives the real app: upload, style, Convert, result, memory panel.

Screenshots go to each test's tmp folder; the README's pictures are retaken with ``scripts/screenshots.py``
(tested here too, writing into tmp).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import CHROMIUM, REPO, chromium, running_app

pytestmark = pytest.mark.browser

PHOTO = REPO / "animegan" / "examples" / "astronaut.jpg"


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def test_upload_convert_and_see_the_result(browser, hayao_pt: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with running_app(tmp_path / "app", "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu") as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        expect(page.locator("#convert")).to_be_visible(timeout=30_000)
        # Offline without their weights, Shinkai and Paprika are listed as unavailable, with the reason.
        expect(page.locator("#unavailable")).to_contain_text("Shinkai, Paprika")
        expect(page.locator("#styles-panel")).to_contain_text("Put shinkai.pt")
        # The memory panel is live: a reading now, and a new timestamp a moment later (gr.Timer, unqueued).
        panel = page.locator("#memory-panel")
        expect(panel).to_contain_text("Process RSS")
        first = re.search(r"at (\d\d:\d\d:\d\d)", panel.inner_text()).group(1)
        expect(panel).not_to_contain_text(f"at {first}", timeout=5_000)

        # What is typed in the max-side box is clamped by the browser; box, slider and the line under it agree.
        box, track = page.locator("#max-side input[type=number]"), page.locator("#max-side input[type=range]")
        for typed, shown, line in [("-5", "0", "values below 0 become 0"), ("99999", "8192", "largest max side"),
                                   ("100", "100", "larger than 100 px are downscaled")]:
            box.fill(typed)
            box.press("Enter")
            box.blur()
            expect(page.locator("#max-side")).to_contain_text(line, timeout=5_000)
            expect(box).to_have_value(shown)
            expect(track).to_have_value(shown)
        box.fill("512")
        box.press("Enter")
        box.blur()

        page.locator("#photo input[type=file]").set_input_files(str(PHOTO))
        page.locator("#style label", has_text="Hayao").click()
        page.locator("#convert").click()
        expect(page.locator("#notice")).to_contain_text("Hayao style: 512x512 px", timeout=60_000)
        expect(page.locator("#result img")).to_have_count(2)  # the before/after slider
        expect(page.locator("#result-file a[href$='/astronaut_hayao.png']")).to_have_count(1)  # the PNG download
        expect(panel).to_contain_text("Last run: Hayao 512x512", timeout=5_000)
        expect(panel).to_contain_text("Loaded styles: Hayao (cpu")
        page.mouse.move(0, 0)
        page.wait_for_timeout(300)  # let the slider settle before the picture is taken
        page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)

        # An example fills the inputs and runs the page's Convert (same concurrency group).
        page.locator("button", has_text="Chelsea · Hayao").click()
        expect(page.locator("#notice")).to_contain_text("Hayao style: 451x300 px", timeout=60_000)
        expect(page.locator("#result-file a[href$='/chelsea_hayao.png']")).to_have_count(1)
        page.close()


def test_a_failed_download_stays_readable_and_marks_the_style(browser, tmp_path: Path) -> None:
    """No weights and no network (downloads allowed, the weights server refuses connections): the error stays in
    the notice area once the toast has gone, and the style's label and the Styles panel say it is unavailable, and why."""
    from playwright.sync_api import expect

    env = {"ANIMEGAN_OFFLINE": "0", "HF_HUB_OFFLINE": "0", "ANIMEGAN_WEIGHTS_MIRROR": "http://127.0.0.1:9/"}
    with running_app(tmp_path / "app", "--device", "cpu", env=env) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        expect(page.locator("#convert")).to_be_visible(timeout=30_000)
        page.locator("#photo input[type=file]").set_input_files(str(PHOTO))
        page.locator("#style label", has_text="Hayao").click()
        page.locator("#convert").click()
        notice = page.locator("#notice")
        expect(notice).to_contain_text("could not download", timeout=60_000)
        expect(page.locator("#style")).to_contain_text("Hayao: Miyazaki", timeout=10_000)
        expect(page.locator("#style label", has_text="Hayao")).to_contain_text("unavailable", timeout=10_000)
        expect(page.locator("#styles-panel")).to_contain_text("Hayao: unavailable")
        toast = page.locator(".toast-body")
        expect(toast.first).to_be_visible(timeout=10_000)   # Gradio's toast says it too ...
        expect(toast).to_have_count(0, timeout=40_000)      # ... and goes after its few seconds
        expect(notice).to_contain_text("could not download")  # still there: not only a vanishing toast
        expect(notice).to_contain_text("Style unavailable")
        page.screenshot(path=str(tmp_path / "failed-download.png"), full_page=True)
        page.close()


def test_with_no_network_the_first_page_says_so_and_an_example_explains(browser, tmp_path: Path) -> None:
    """No weights, downloads allowed, and a weights host that refuses connections (issue 23, items 2 and 3): before
    any click, the Styles panel and the style choices say that the weights cannot be downloaded now; an example
    clicked then shows the same readable notice as Convert, not bare "Error" badges."""
    from playwright.sync_api import expect

    env = {"ANIMEGAN_OFFLINE": "0", "HF_HUB_OFFLINE": "0", "ANIMEGAN_WEIGHTS_MIRROR": "http://127.0.0.1:9/"}
    with running_app(tmp_path / "app", "--device", "cpu", env=env) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(app)
        expect(page.locator("#convert")).to_be_visible(timeout=30_000)
        panel = page.locator("#styles-panel")
        expect(panel).to_contain_text("Hayao: unavailable, its weights cannot be downloaded now: 127.0.0.1:9 cannot "
                                      "be reached", timeout=15_000)
        expect(panel).to_contain_text("Paprika: unavailable, its weights cannot be downloaded now")
        expect(panel).not_to_contain_text("downloaded on first use")
        expect(page.locator("#style label", has_text="Hayao")).to_contain_text("unavailable", timeout=10_000)
        page.screenshot(path=str(tmp_path / "first-page-no-network.png"), full_page=True)

        page.locator("button", has_text="Astronaut · Hayao").click()
        notice = page.locator("#notice")
        expect(notice).to_contain_text("Style unavailable", timeout=60_000)
        expect(notice).to_contain_text("could not download")
        expect(page.locator("#result")).not_to_contain_text("Error")  # no bare error badges
        expect(page.locator("#result-file")).not_to_contain_text("Error")
        # the example's inputs did not bring back the first labels: the choice still says it is unavailable
        expect(page.locator("#style label", has_text="Hayao")).to_contain_text("unavailable", timeout=5_000)
        page.screenshot(path=str(tmp_path / "example-no-weights.png"), full_page=True)
        log = next((tmp_path / "app").glob("server-*.log")).read_text(errors="replace")
        assert "Traceback" not in log and "AttributeError" not in log, log[-3000:]
        page.close()


def test_the_screenshot_script_takes_the_first_run_picture(tmp_path: Path) -> None:
    """``scripts/screenshots.py`` (how docs/ pictures are retaken) drives the real app to the failed-download page."""
    import subprocess
    import sys

    from PIL import Image

    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (set ANIMEGAN_CHROMIUM)")
    pytest.importorskip("playwright.sync_api")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "screenshots.py"), "--only", "first-run",
                           "--wait", "1", "--out", str(tmp_path), "--chromium", str(CHROMIUM)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(tmp_path / "first-run.png")
    with Image.open(tmp_path / "first-run.png") as shot:
        assert shot.width == 1280 and shot.height > 900  # the full page, below the fold too
