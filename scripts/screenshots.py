"""Retake the screenshots in README.md and docs/ from the real app in a real browser; run it whenever the UI changes.

    python scripts/screenshots.py --weights hayao=PATH/hayao.pt          # both pictures, into docs/
    python scripts/screenshots.py --only first-run --out /tmp/shots      # no weights needed
    python scripts/screenshots.py --only video --clip CLIP.mp4 --weights hayao=PATH/hayao.pt

* ``screenshot.png``: a conversion of the astronaut example photo (the first style given with ``--weights``, or
  with weights already in the cache), with the slider, the PNG download and the memory panel.
* ``video_tab.png`` (with ``--clip PATH``): the Video tab after converting that clip at max side 128.
* ``first-run.png``: what a new user meets with no weights and no network: every style as it really is, then
  a Convert whose download fails, the error still readable on the page ``--wait`` seconds later.

Needs Debian's chromium (``apt install chromium``) and Playwright for Python; never downloads a browser.
The app runs from this checkout on 127.0.0.1 with its cache and uploads in a temporary folder.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "animegan" / "examples" / "astronaut.jpg"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
# A port nothing listens on: downloads are allowed but fail at once, as on a machine without network.
UNREACHABLE_MIRROR = "http://127.0.0.1:9/"
SHOTS = ("conversion", "first-run", "video")


def _launcher():
    spec = importlib.util.spec_from_file_location("animegan_bench_app_process", REPO / "bench" / "app_process.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@contextmanager
def _app(tmp: Path, args: list[str], env: dict[str, str]) -> Iterator[str]:
    full_env = {"ANIMEGAN_CACHE_DIR": str(tmp / "cache"), "GRADIO_TEMP_DIR": str(tmp / "gradio"), **env}
    with _launcher().running_app(["--device", "cpu", *args], tmp, env=full_env, startup_timeout=180) as app:
        yield app.url


def conversion(browser, out: Path, weights: list[str], tmp: Path) -> Path:
    """The page after converting the astronaut photo with the first runnable style."""
    from playwright.sync_api import expect

    args = [a for w in weights for a in ("--weights", w)]
    style = weights[0].split("=", 1)[0] if weights else None
    with _app(tmp / "conversion", args, {"ANIMEGAN_OFFLINE": "1"}) as url:
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        expect(page.locator("#convert")).to_be_visible(timeout=60_000)
        page.locator("#photo input[type=file]").set_input_files(str(PHOTO))
        if style:
            page.locator(f"#style input[value='{style}']").check()
        page.locator("#convert").click()
        expect(page.locator("#result img")).to_have_count(2, timeout=180_000)
        expect(page.locator("#notice")).to_contain_text("style:", timeout=10_000)
        page.mouse.move(0, 0)
        page.wait_for_timeout(500)  # the slider and the memory panel settle
        path = out / "screenshot.png"
        page.screenshot(path=str(path), full_page=True)
        page.close()
    return path


def video_tab(browser, out: Path, weights: list[str], clip: Path, tmp: Path) -> Path:
    """The Video tab after converting ``clip`` at max side 128, paused at 1 s."""
    from playwright.sync_api import expect

    args = [a for w in weights for a in ("--weights", w)]
    with _app(tmp / "video", args, {"ANIMEGAN_OFFLINE": "1"}) as url:
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        expect(page.locator("#convert")).to_be_visible(timeout=60_000)
        page.get_by_role("tab", name="Video", exact=True).click()
        page.locator("#video input[type=file]").set_input_files(str(clip))
        expect(page.locator("#video video")).to_have_count(1, timeout=30_000)
        side = page.locator("#video-max-side input[type=number]")
        side.fill("128")
        side.press("Enter")
        page.locator("#convert-video").click()
        expect(page.locator("#video-notice")).to_contain_text("frames at", timeout=300_000)
        page.wait_for_function("() => document.querySelector('#video-result video').readyState >= 2", timeout=30_000)
        page.locator("#video-result video").evaluate("v => { v.pause(); v.currentTime = 1.0; }")
        page.mouse.move(0, 0)
        page.wait_for_timeout(500)
        path = out / "video_tab.png"
        page.screenshot(path=str(path), full_page=True)
        page.close()
    return path


def first_run(browser, out: Path, wait_s: float, tmp: Path) -> Path:
    """The first page with no weights and no network, after a Convert whose download failed ``wait_s`` ago."""
    from playwright.sync_api import expect

    env = {"ANIMEGAN_OFFLINE": "0", "HF_HUB_OFFLINE": "0", "ANIMEGAN_WEIGHTS_MIRROR": UNREACHABLE_MIRROR}
    with _app(tmp / "first-run", [], env) as url:
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        expect(page.locator("#convert")).to_be_visible(timeout=60_000)
        page.locator("#photo input[type=file]").set_input_files(str(PHOTO))
        page.locator("#convert").click()
        expect(page.locator("#notice")).to_contain_text("could not download", timeout=120_000)
        expect(page.locator("#styles-panel")).to_contain_text("the last attempt failed", timeout=15_000)
        page.wait_for_timeout(int(wait_s * 1000))
        page.mouse.move(0, 0)
        path = out / "first-run.png"
        page.screenshot(path=str(path), full_page=True)
        page.close()
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "docs", help="folder for the PNGs (default: docs/)")
    p.add_argument("--weights", action="append", default=[], metavar="STYLE=PATH",
                   help="weights for the conversion picture (repeatable); else the cache must hold them")
    p.add_argument("--only", choices=SHOTS, action="append", help="take only this picture (repeatable)")
    p.add_argument("--wait", type=float, default=30.0, help="seconds between the failed download and the "
                   "first-run picture (default 30: the error must outlast any toast)")
    p.add_argument("--clip", type=Path, help="a short video for the Video tab picture (skipped without it)")
    p.add_argument("--chromium", default=os.environ.get("ANIMEGAN_CHROMIUM", "/usr/bin/chromium"))
    args = p.parse_args(argv)
    if not Path(args.chromium).exists():
        p.error(f"no chromium at {args.chromium}: apt install chromium, or pass --chromium")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    wanted = args.only or list(SHOTS)
    with tempfile.TemporaryDirectory(prefix="animegan-shots-") as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            if "first-run" in wanted:
                print(first_run(browser, args.out, args.wait, Path(tmp)))
            if "conversion" in wanted:
                print(conversion(browser, args.out, args.weights, Path(tmp)))
            if "video" in wanted and args.clip:
                print(video_tab(browser, args.out, args.weights, args.clip, Path(tmp)))
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
