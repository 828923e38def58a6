"""Hostile, broken and awkward inputs through the engine, the CLI and the app API (a real ``python app.py``).

The corpus is generated here from a real photo (nothing is committed): empty and cut-off files, text named .png,
decompression bombs (a header claiming 50000x50000, and a real 50.4 MP PNG of a few KB), 1x1 and 10000x8 images,
an animated GIF, CMYK JPEG, 16-bit PNGs, palette PNG with transparency, grey+alpha, an EXIF-rotated photo, WebP
with alpha and a huge real photo. Every one gives either a correct result (size, orientation, alpha) or an error
naming the problem; each process survives, stays within its memory bound and serves the next request.
"""
from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image, ImageOps

from animegan import imaging, stylize
from animegan.memory import PeakRSS

MAX_SIDE = 128          # every conversion here runs at this max side: the corpus is about inputs, not speed
BUDGET = "512M"         # the memory budget given to the CLI and the app
RSS_BOUND = 1536 << 20  # peak RSS of the CLI / app process over the whole corpus (bombs must not be decoded)


@dataclass(frozen=True)
class Case:
    path: Path
    error: str | None = None               # regex the error must match; None: a result is expected
    size: tuple[int, int] | None = None    # displayed (EXIF-applied) size before max side
    alpha: bool = False
    same_as: Image.Image | None = None     # the image whose conversion must give identical pixels


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(rows, 9)) + \
        _png_chunk(b"IEND", b"")


def _save(image: Image.Image, path: Path, **kw) -> Path:
    image.save(path, **kw)
    return path


def build_corpus(folder: Path, photo_path: Path) -> dict[str, Case]:
    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.open(photo_path).convert("RGB")
    small = photo.resize((160, 120), Image.LANCZOS)
    rng = np.random.default_rng(3)
    cases: dict[str, Case] = {}

    (folder / "empty.png").write_bytes(b"")
    cases["empty"] = Case(folder / "empty.png", error="the file is empty")
    jpeg = io.BytesIO()
    small.save(jpeg, "JPEG", quality=90)
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) * 6 // 10])
    cases["truncated_jpeg"] = Case(folder / "truncated.jpg", error="truncated or corrupted")
    png = io.BytesIO()
    small.save(png, "PNG")
    (folder / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) * 6 // 10])
    cases["truncated_png"] = Case(folder / "truncated.png", error="truncated or corrupted")
    (folder / "notes.png").write_text("shopping list: eggs, milk\n" * 20)
    cases["text_as_png"] = Case(folder / "notes.png", error="not a supported image")
    # A 50000x50000 header over a few bytes of data: Pillow's guard refuses it before any allocation.
    (folder / "bomb.png").write_bytes(_raw_png(50000, 50000, 8, 0, b"\x00" * 64))
    cases["bomb_header"] = Case(folder / "bomb.png", error="too large to decode safely.*50000|2500000000")
    # A genuine 50.4 MP image of a few KB: decodable, so our own header check must refuse it before decoding.
    side = 7100
    _save(Image.new("1", (side, side)), folder / "real_bomb.png", optimize=True)
    cases["bomb_real"] = Case(folder / "real_bomb.png", error=f"{side}x{side} = 50.4 megapixels; the limit is 50 MP")

    one = Image.new("RGB", (1, 1), (200, 40, 40))
    cases["one_pixel"] = Case(_save(one, folder / "one_pixel.png"), size=(1, 1), same_as=one)
    strip = Image.fromarray(rng.integers(0, 256, (8, 10000, 3), dtype=np.uint8))
    cases["strip_10000x8"] = Case(_save(strip, folder / "strip.png"), size=(10000, 8))
    tall = small.resize((8, 3000))
    cases["strip_8x3000"] = Case(_save(tall, folder / "tall.png"), size=(8, 3000))

    frames = [small.point(lambda v, k=k: (v + 80 * k) % 256).convert("P", palette=Image.ADAPTIVE) for k in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    cases["animated_gif"] = Case(folder / "animated.gif", size=(160, 120), same_as=frames[0].convert("RGB"))
    cmyk = small.convert("CMYK")
    cases["cmyk_jpeg"] = Case(_save(cmyk, folder / "cmyk.jpg", quality=95), size=(160, 120),
                              same_as=Image.open(folder / "cmyk.jpg").convert("RGB"))
    grey16 = (np.asarray(small.convert("L"), dtype=np.uint16) * 257)
    cases["grey_16bit_png"] = Case(_save(Image.fromarray(grey16), folder / "grey16.png"), size=(160, 120),
                                   same_as=small.convert("L").convert("RGB"))
    rgb16 = np.asarray(small, dtype=">u2") * 257
    rows = b"".join(b"\x00" + rgb16[y].tobytes() for y in range(rgb16.shape[0]))
    (folder / "rgb16.png").write_bytes(_raw_png(160, 120, 16, 2, rows))
    cases["rgb_16bit_png"] = Case(folder / "rgb16.png", size=(160, 120), same_as=small)
    pal = small.convert("P", palette=Image.ADAPTIVE, colors=64)
    pal.info["transparency"] = 0
    cases["palette_transparent"] = Case(_save(pal, folder / "palette.png", transparency=0), size=(160, 120), alpha=True)
    la = small.convert("L")
    la.putalpha(Image.linear_gradient("L").resize((160, 120)))
    cases["grey_alpha"] = Case(_save(la, folder / "grey_alpha.png"), size=(160, 120), alpha=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise (a phone held upright)
    _save(small, folder / "rotated.jpg", quality=95, exif=exif)
    cases["exif_rotated"] = Case(folder / "rotated.jpg", size=(120, 160),
                                 same_as=ImageOps.exif_transpose(Image.open(folder / "rotated.jpg")).convert("RGB"))
    webp = small.convert("RGBA")
    webp.putalpha(Image.radial_gradient("L").resize((160, 120)))
    cases["webp_alpha"] = Case(_save(webp, folder / "photo.webp", lossless=True), size=(160, 120), alpha=True, same_as=webp)
    huge = photo.resize((6000, 4000), Image.BICUBIC)
    cases["huge_photo"] = Case(_save(huge, folder / "huge.jpg", quality=85), size=(6000, 4000))
    return cases


def expected_size(case: Case) -> tuple[int, int]:
    assert case.size is not None
    return imaging.fit_within(case.size, MAX_SIDE)


@pytest.fixture(scope="module")
def corpus(photos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return build_corpus(tmp_path_factory.mktemp("corpus"), photos["railway_crossing"])


def check_result(case: Case, image: Image.Image, reference: Image.Image | None = None) -> None:
    assert image.size == expected_size(case)
    assert (image.mode == "RGBA") == case.alpha
    if case.alpha:  # the alpha is the source's, resized like the colours
        src = imaging.load_photo(case.path, max_side=MAX_SIDE)
        assert np.array_equal(np.asarray(image.getchannel("A")), src.alpha)
    if reference is not None:
        assert np.array_equal(np.asarray(image), np.asarray(reference)), "not the same pixels as the reference input"


# --- the engine ------------------------------------------------------------------------------------

def test_engine_answers_every_input(corpus: dict[str, Case], registry) -> None:
    outcomes = {}
    for name, case in corpus.items():
        try:
            result = stylize(case.path, "hayao", registry=registry, device="cpu", max_side=MAX_SIDE, memory_budget=BUDGET)
        except imaging.InvalidImageError as exc:
            outcomes[name] = str(exc)
            assert case.error and re.search(case.error, str(exc)), (name, str(exc))
            continue
        assert case.error is None, f"{name}: expected an error matching {case.error!r}, got a result"
        reference = None
        if case.same_as is not None:
            reference = stylize(case.same_as, "hayao", registry=registry, device="cpu", max_side=MAX_SIDE).image
        check_result(case, result.image, reference)
        outcomes[name] = result.image.size
    assert set(outcomes) == set(corpus)
    assert stylize(corpus["one_pixel"].path, "hayao", registry=registry, device="cpu").image.size == (1, 1)  # still fine


def test_engine_strip_at_native_size(corpus: dict[str, Case], registry) -> None:
    result = stylize(corpus["strip_10000x8"].path, "hayao", registry=registry, device="cpu", max_side=0)
    assert result.image.size == (10000, 8) and np.asarray(result.image).std() > 5


# --- the CLI ---------------------------------------------------------------------------------------

def test_cli_reports_bad_files_and_converts_the_rest(corpus: dict[str, Case], hayao_pt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    files = [str(c.path) for c in corpus.values()]
    proc = subprocess.Popen([sys.executable, "-m", "animegan", *files, "--weights", str(hayao_pt), "--offline",
                             "--device", "cpu", "--max-side", str(MAX_SIDE), "--memory-budget", BUDGET, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakRSS(proc.pid, interval=0.02) as rss:
        _stdout, stderr = proc.communicate(timeout=300)
    bad = [n for n, c in corpus.items() if c.error]
    assert proc.returncode == 1, stderr
    assert f"{len(bad)} of {len(corpus)} photos failed" in stderr
    assert "Traceback" not in stderr
    for name, case in corpus.items():
        if case.error:
            line = next(ln for ln in stderr.splitlines() if ln.startswith(f"skipped {case.path}: "))
            assert re.search(case.error, line), (name, line)
        else:
            with Image.open(out / f"{case.path.stem}_hayao.png") as image:
                image.load()
                check_result(case, image)
    assert 0 < rss.peak < RSS_BOUND, f"CLI peak RSS {rss.peak / 2**20:.0f} MiB"


# --- the app API -----------------------------------------------------------------------------------

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from harness import client, running_app, stats


@pytest.fixture(scope="module")
def hardened_app(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("hardened-app")
    with running_app(tmp, "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu", "--concurrency", "1",
                     "--memory-budget", BUDGET) as url:
        yield url, tmp


def _server_pid(tmp: Path) -> int:
    """The pid of the ``app.py`` serving from ``tmp`` (running_app starts it with ``cwd=tmp``)."""
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if proc.info["cwd"] == str(tmp) and any(a.endswith("app.py") for a in proc.info["cmdline"] or []):
                return proc.pid
        except psutil.Error:
            continue
    raise AssertionError("app process not found")


def test_app_answers_every_input_and_keeps_serving(corpus: dict[str, Case], hardened_app, tmp_path: Path) -> None:
    url, tmp = hardened_app
    pid = _server_pid(tmp)
    c = client(url, tmp_path)
    with PeakRSS(pid, interval=0.02) as rss:
        for name, case in corpus.items():
            if case.error:
                with pytest.raises(AppError) as err:
                    c.predict(handle_file(str(case.path)), "hayao", MAX_SIDE, False, api_name="/stylize")
                message = str(err.value)
                assert "can't be used" in message and re.search(case.error, message), (name, message)
                assert "Traceback" not in message
            else:
                png, text = c.predict(handle_file(str(case.path)), "hayao", MAX_SIDE, False, api_name="/stylize")
                with Image.open(png) as image:
                    image.load()
                    check_result(case, image)
            assert psutil.pid_exists(pid)
    assert rss.peak < RSS_BOUND, f"app peak RSS {rss.peak / 2**20:.0f} MiB"
    after = stats(url)
    assert after["running"] == 0 and after["failed"] == sum(1 for c_ in corpus.values() if c_.error)
    # and the next ordinary request is served normally
    png, text = c.predict(handle_file(str(corpus["exif_rotated"].path)), "hayao", 0, False, api_name="/stylize")
    assert Image.open(png).size == (120, 160) and text.startswith("Hayao style")
