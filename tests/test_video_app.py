"""The Video tab's API (``/stylize_video``) and the webcam mirror, against a real ``python app.py`` on 127.0.0.1.

The good path uses the shared test clip (48 frames, 320x240, 24 fps, AAC sound) at a max side of 128 so that a
conversion takes seconds. The hostile requests are spoken over raw HTTP (``bench/attack.py``'s client): a text
file named .mp4, a clip over ``--max-video-seconds``, server paths and links instead of uploads, a client that
leaves and one that presses Stop. Each gets a clear answer, leaves nothing on the server's disk, and the server
serves the next request. The webcam mirror's handler is called directly with frames as the page sends them.
"""
from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import load_bench
from PIL import Image

av = pytest.importorskip("av")
pytest.importorskip("gradio_client")
pytest.importorskip("prometheus_client")
from gradio_client import handle_file
from harness import client, delta, running_app, scrape, stats

attack = load_bench("attack")
SIDE = 128              # every conversion here: the tests are about the app, not speed
MAX_SECONDS = 2.5       # the shared clip (2 s) passes, a 3 s clip does not
GRACE_S = 1.0           # ANIMEGAN_CLIENT_GRACE: a job nobody listens to stops after this long


def _clip(path: Path, seconds: float, fps: int = 12, size: tuple[int, int] = (64, 48), audio: bool = True) -> Path:
    """A small real H.264 clip (moving noise), with an AAC tone when ``audio``."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        a = out.add_stream("aac", rate=44100) if audio else None
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode())
        if a is not None:
            _tone(out, a, seconds)
    return path


def _tone(out: Any, stream: Any, seconds: float) -> None:
    """A 440 Hz AAC tone of ``seconds`` into ``stream``, in 1024-sample frames with their own timestamps."""
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(round(seconds * 44100)) / 44100)).astype(np.float32)[None, :]
    for start in range(0, tone.shape[1], 1024):
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp",
                                           layout="mono")
        chunk.sample_rate, chunk.pts, chunk.time_base = 44100, start, Fraction(1, 44100)
        out.mux(stream.encode(chunk))
    out.mux(stream.encode())


def _read_clip(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(v)]
    with av.open(str(path)) as c:
        audio = [s for s in c.streams if s.type == "audio"]
        audio_seconds = 0.0
        if audio:
            samples = sum(f.samples for f in c.decode(audio[0]))
            audio_seconds = samples / audio[0].codec_context.sample_rate
        return {"frames": frames, "codec": v.codec_context.name, "size": (v.codec_context.width, v.codec_context.height),
                "audio": len(audio), "audio_seconds": audio_seconds, "container": c.format.name}


def _results(tmpdir: Path) -> list[Path]:
    """Every file in the app's private results folder(s) (animegan-results-PID-*, in the server's TMPDIR)."""
    return [p for d in tmpdir.glob("animegan-results-*") for p in d.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def app(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("videoapp")
    tmpdir = tmp / "tmpdir"
    tmpdir.mkdir()
    args = ["--weights", f"hayao={hayao_pt}", "--weights", f"celeba_distill={hayao_pt}", "--offline", "--device", "cpu", "--max-video-seconds", str(MAX_SECONDS),
            "--metrics", "--mcp", "--max-queue", "8"]
    env = {"TMPDIR": str(tmpdir), "ANIMEGAN_CLIENT_GRACE": str(GRACE_S)}
    with running_app(tmp / "app", *args, env=env) as url:
        yield {"url": url, "tmp": tmp, "tmpdir": tmpdir, "uploads": tmp / "app" / "gradio"}


def test_stylize_video_keeps_frames_size_and_sound(app: dict, shared: Path, tmp_path: Path) -> None:
    clip = shared / "video" / "railway_pan_320x240_2s.mp4"
    source = _read_clip(clip)
    before = scrape(app["url"])
    path, notice = client(app["url"], tmp_path).predict(handle_file(str(clip)), "hayao", SIDE, True,
                                                        api_name="/stylize_video")
    out = _read_clip(Path(path))
    assert Path(path).name == "railway_pan_320x240_2s_hayao.mp4"
    assert out["container"].startswith("mov") and out["codec"] == "h264"
    assert len(out["frames"]) == len(source["frames"]) == 48
    assert out["size"] == (128, 96)
    assert out["audio"] == 1 and abs(out["audio_seconds"] - source["audio_seconds"]) < 1024 / 44100
    # Stylised, not copied: far from the input frames at the same size.
    small = np.asarray(Image.fromarray(source["frames"][10]).resize((128, 96), Image.LANCZOS), np.float32)
    assert float(np.abs(out["frames"][10].astype(np.float32) - small).mean()) > 12
    assert notice.startswith("Hayao style: 48 frames at 128x96 px") and "sound" in notice
    after = scrape(app["url"])
    assert delta(before, after, "animegan_video_conversions_total", style="hayao", outcome="ok", audio="copied") == 1 \
        or delta(before, after, "animegan_video_conversions_total", style="hayao", outcome="ok", audio="aac") == 1
    assert delta(before, after, "animegan_video_frames_total") == 48
    assert len(_results(app["tmpdir"])) >= 1  # the result lives in the app's private results folder


def test_portrait_styles_take_the_centre_square(app: dict, shared: Path, tmp_path: Path) -> None:
    """The fifth input, framing: center gives a portrait style the centre square of every frame; face framings
    are refused with a message (a face box found anew in every frame would shake the picture)."""
    clip = shared / "video" / "railway_pan_320x240_2s.mp4"
    path, notice = client(app["url"], tmp_path).predict(handle_file(str(clip)), "celeba_distill", 64, True, "center",
                                                        api_name="/stylize_video")
    out = _read_clip(Path(path))
    assert out["size"] == (64, 64) and len(out["frames"]) == 48 and out["audio"] == 1
    assert "centre square of every frame, at 64x64" in notice and "Downscaled" not in notice, notice
    raw = attack.Raw(app["url"])
    upload = raw.upload(_clip(tmp_path / "face.mp4", seconds=0.5).read_bytes(), "face.mp4")
    error = _refused(raw, attack.video_data(_file(upload), "celeba_distill", SIDE, True, "face", 0), app["tmpdir"])
    assert error.startswith("Video framing must be whole or center, not 'face'"), error
    assert Path(upload).exists()  # a bad setting, not a bad video: the upload may be converted again
    status, msg = raw.call(raw.fn_index("stylize_video"), [_file(upload), "celeba_distill", SIDE, True])
    assert status == 200 and not msg["success"] and "seven values" in attack.error_text(msg), msg


def _refused(raw, data: list, tmpdir: Path, handler: bool = True) -> str:
    """Call /stylize_video with ``data`` over raw HTTP; the error text (the call must fail). ``handler``: whether
    the request reaches our handler (Gradio's own file check refuses a server path before it)."""
    results_before = set(_results(tmpdir))
    running_before = stats(raw.url)["started"]
    status, msg = raw.call(raw.fn_index("stylize_video"), data, timeout=60)
    assert status == 200 and msg is not None and not msg["success"], msg
    assert set(_results(tmpdir)) == results_before  # no result, partial or whole, stayed behind
    assert stats(raw.url)["started"] == running_before + handler and stats(raw.url)["running"] == 0
    return attack.error_text(msg)


def _file(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def test_hostile_requests_get_clear_answers_and_leave_nothing(app: dict, shared: Path, tmp_path: Path) -> None:
    raw = attack.Raw(app["url"])
    before = scrape(app["url"])
    # A text file named .mp4: refused by probing the container, and the upload itself is deleted.
    text = raw.upload(b"shopping list: eggs, milk\n" * 40, "holiday.mp4")
    assert Path(text).exists()
    error = _refused(raw, attack.video_data(_file(text), "hayao", SIDE, True, "whole", 0), app["tmpdir"])
    assert error.startswith("This video can't be used:"), error
    assert not Path(text).exists()
    # A clip over --max-video-seconds: refused from its header, before any frame is decoded.
    long_clip = raw.upload(_clip(tmp_path / "long.mp4", seconds=3.0).read_bytes(), "long.mp4")
    error = _refused(raw, attack.video_data(_file(long_clip), "hayao", SIDE, True, "whole", 0), app["tmpdir"])
    assert "2.5 s" in error and "This video can't be used" in error, error
    assert not Path(long_clip).exists()
    # Server files and links instead of uploads: the upload gate (and the request guard for links).
    for path in ("/etc/passwd", str(shared / "video" / "railway_pan_320x240_2s.mp4"), "../../../etc/hostname"):
        error = _refused(raw, attack.video_data(_file(path), "hayao", SIDE, True, "whole", 0), app["tmpdir"],
                         handler=False)
        assert error == "The video did not reach the server; upload it again.", error
    status, answer = raw.call(raw.fn_index("stylize_video"),
                              attack.video_data(_file("https://example.com/a.mp4"), "hayao", SIDE, True, "whole", 0))
    assert status == 400 and "Upload the photo as a file" in json.dumps(answer)
    error = _refused(raw, attack.video_data(None, "hayao", SIDE, True, "whole", 0), app["tmpdir"])
    assert error.startswith("Add a video first"), error
    after = scrape(app["url"])
    assert delta(before, after, "animegan_video_conversions_total", style="unknown", outcome="unusable_video",
                 audio="none") == 3  # refused before the handler: the style is not looked at
    assert delta(before, after, "animegan_video_conversions_total", style="hayao", outcome="unusable_video",
                 audio="none") == 2
    assert delta(before, after, "animegan_video_conversions_total", style="hayao", outcome="no_video",
                 audio="none") == 1
    assert delta(before, after, "animegan_video_frames_total") == 0  # no frame of any of them was stylised
    # The server serves the next request: the short clip through the same raw route.
    good = raw.upload(_clip(tmp_path / "short.mp4", seconds=1.0).read_bytes(), "short.mp4")
    status, msg = raw.call(raw.fn_index("stylize_video"), attack.video_data(_file(good), "hayao", SIDE, False, "whole", 0))
    assert status == 200 and msg["success"], msg
    path, notice = msg["output"]["data"]
    assert path["path"].endswith("short_hayao.mp4") and notice.startswith("Hayao style: 12 frames at 64x48 px")


# -- the bad-input list, through the app ---------------------------------------------------------------
def _moving(n: int, w: int, h: int) -> list[np.ndarray]:
    base = np.random.default_rng(3).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return [np.roll(base, 3 * i, axis=1) for i in range(n)]


def _encode(path: Path, frames: list[np.ndarray], codec: str = "libx264", pix_fmt: str = "yuv420p",
            pts: list[int] | None = None, rotation: int | None = None) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=12)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, "rgb24")
            frame.pts = pts[i] if pts is not None else i
            if pts is not None:
                frame.time_base = Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        _tone(out, out.add_stream("aac", rate=44100), 1.0)
    return path


def bad_inputs(folder: Path, clip: Path) -> dict[str, tuple[Path, int]]:
    """The issue's bad inputs, made here (nothing committed): name -> (file, max side to ask for)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = clip.read_bytes()
    (folder / "half.mp4").write_bytes(data[: len(data) // 2])
    (folder / "bomb.y4m").write_bytes(b"YUV4MPEG2 W16000 H16000 F24:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 4096)
    pictures = [Image.fromarray(f) for f in _moving(5, 64, 48)]
    pictures[0].save(folder / "anim.gif", save_all=True, append_images=pictures[1:], duration=100, loop=0)
    pictures[0].save(folder / "anim.webp", save_all=True, append_images=pictures[1:], duration=100, loop=0)
    return {
        "cut_in_half": (folder / "half.mp4", SIDE),
        "audio_only": (_audio_only(folder / "tone.m4a"), SIDE),
        "one_frame": (_encode(folder / "one.mp4", _moving(1, 64, 48)), SIDE),
        "variable_frame_rate": (_encode(folder / "vfr.mp4", _moving(8, 64, 48),
                                        pts=[0, 40, 70, 150, 160, 300, 330, 500]), SIDE),
        "rotated_phone_clip": (_encode(folder / "phone.mp4", _moving(6, 64, 48), rotation=90), SIDE),
        "hevc_10_bit": (_encode(folder / "hevc10.mp4", _moving(6, 64, 48), "libx265", "yuv420p10le"), SIDE),
        "odd_sides": (_encode(folder / "odd.mkv", _moving(6, 321, 241), pix_fmt="yuv444p"), 0),
        "header_16000x16000": (folder / "bomb.y4m", SIDE),
        "gif_animation": (folder / "anim.gif", SIDE),
        "webp_animation": (folder / "anim.webp", SIDE),
    }


def _timestamps(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def test_the_bad_input_list_through_the_app(app: dict, shared: Path, tmp_path: Path) -> None:
    """Each gets a clear error or a correct output, nothing is left on disk, and the server keeps serving."""
    raw = attack.Raw(app["url"])
    cases = bad_inputs(tmp_path / "corpus", shared / "video" / "railway_pan_320x240_2s.mp4")
    outcomes: dict[str, str] = {}
    for name, (path, side) in cases.items():
        upload = raw.upload(path.read_bytes(), path.name)
        results_before = set(_results(app["tmpdir"]))
        status, msg = raw.call(raw.fn_index("stylize_video"), attack.video_data(_file(upload), "hayao", side, True, "whole", 0),
                               timeout=120)
        assert status == 200 and msg is not None, (name, status, msg)
        if not msg["success"]:
            error = attack.error_text(msg)
            assert error.startswith("This video can't be used: "), (name, error)
            assert set(_results(app["tmpdir"])) == results_before, name  # nothing written, nothing left
            assert not Path(upload).exists(), name  # the unusable upload is gone too
            outcomes[name] = error
            continue
        result = Path(msg["output"]["data"][0]["path"])
        out = _read_clip(result)
        source_frames = None
        with av.open(str(path)) as c:
            source_frames = sum(1 for _ in c.decode(video=0))
        assert len(out["frames"]) == source_frames, name
        assert out["codec"] == "h264" and all(side % 2 == 0 for side in out["size"]), (name, out["size"])
        if name == "variable_frame_rate":  # the input's own timestamps, not a constant rate
            assert np.allclose(_timestamps(result), _timestamps(path), atol=0.002), (_timestamps(result), name)
        outcomes[name] = f"ok: {len(out['frames'])} frames {out['size'][0]}x{out['size'][1]}"
    print("\n".join(f"{k}: {v}" for k, v in outcomes.items()))
    # What each must give (the engine's choices where the issue leaves one).
    for name in ("cut_in_half", "audio_only", "header_16000x16000"):
        assert not outcomes[name].startswith("ok"), (name, outcomes[name])
    assert "16000x16000" in outcomes["header_16000x16000"] or "megapixel" in outcomes["header_16000x16000"]
    for name in ("one_frame", "variable_frame_rate", "rotated_phone_clip", "hevc_10_bit", "odd_sides"):
        assert outcomes[name].startswith("ok"), (name, outcomes[name])
    assert outcomes["one_frame"] == "ok: 1 frames 64x48"
    assert outcomes["rotated_phone_clip"] == "ok: 6 frames 48x64"  # upright
    assert outcomes["odd_sides"] == "ok: 6 frames 320x240"  # cropped to even sides (yuv420p)
    assert outcomes["gif_animation"] == "ok: 5 frames 64x48"  # an animated GIF is a video
    assert "animated WebP cannot be read as a video" in outcomes["webp_animation"]  # refused, saying so
    assert "no pictures" in outcomes["audio_only"]
    # The server serves the next request.
    good = raw.upload(_clip(tmp_path / "after.mp4", seconds=1.0).read_bytes(), "after.mp4")
    status, msg = raw.call(raw.fn_index("stylize_video"), attack.video_data(_file(good), "hayao", SIDE, True, "whole", 0))
    assert status == 200 and msg["success"], msg


def test_a_client_that_leaves_or_presses_stop_stops_the_work(app: dict, shared: Path) -> None:
    raw = attack.Raw(app["url"])
    clip = raw.upload((shared / "video" / "railway_pan_320x240_2s.mp4").read_bytes(), "railway.mp4")
    fn = raw.fn_index("stylize_video")
    before = stats(app["url"])
    # Leaves: joins the queue and never listens for the result.
    status, _, _ = raw.join(fn, attack.video_data(_file(clip), "hayao", 0, True, "whole", 0))
    assert status == 200
    _wait(lambda: stats(app["url"])["stopped"] > before["stopped"], 60, "the abandoned conversion never stopped")
    # Presses Stop: listens, then cancels the running job as the page's Stop button does.
    status, answer, session = raw.join(fn, attack.video_data(_file(clip), "hayao", 0, True, "whole", 0))
    listener = threading.Thread(target=raw.listen, args=(session, 60), daemon=True)
    listener.start()
    _wait(lambda: stats(app["url"])["running"] == 1, 30, "the conversion never started")
    time.sleep(0.5)
    r = httpx.post(f"{app['url']}gradio_api/cancel", json={"session_hash": session, "fn_index": fn,
                                                           "event_id": answer["event_id"]}, timeout=10)
    assert r.status_code == 200
    _wait(lambda: stats(app["url"])["running"] == 0, 30, "the stopped conversion ran on")
    after = stats(app["url"])  # stopped, not failed: neither conversion went wrong (issue 23, item 7)
    assert after["stopped"] == before["stopped"] + 2, (before, after)
    assert (after["failed"], after["succeeded"]) == (before["failed"], before["succeeded"])
    # Neither left a partial MP4 behind (only finished results are in the results folder).
    assert all(p.name != "railway_hayao.mp4" for p in _results(app["tmpdir"]))


def _wait(condition, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def test_the_mcp_tool_describes_and_converts_a_clip(app: dict, shared: Path) -> None:
    import asyncio

    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    clip = (shared / "video" / "railway_pan_320x240_2s.mp4").read_bytes()

    async def session_work() -> tuple[list, Any]:
        async with streamable_http_client(f"{app['url']}gradio_api/mcp/") as (read, write, _), \
                ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            # Assistants send files inline: Gradio stores the data URL as an upload, then our gate reads it.
            result = await session.call_tool("stylize_video", {
                "video_file": "data:video/mp4;base64," + base64.b64encode(clip).decode(), "style": "hayao",
                "max_side": 64, "temporal": True})
            return tools, result

    tools, result = asyncio.run(session_work())
    assert not result.isError, result.content
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert "_hayao.mp4" in text and "Hayao style: 48 frames at 64x48 px" in text, text
    tool = next(t for t in tools if t.name == "stylize_video")
    props = tool.inputSchema["properties"]
    assert set(props) == {"video_file", "style", "max_side", "temporal", "framing", "keep_color", "side_by_side"}
    assert "twice as wide" in props["side_by_side"]["description"]
    assert "own colours" in props["keep_color"]["description"]
    assert "center" in props["framing"]["description"] and "celeba_distill" in props["framing"]["description"]
    assert "2.5 s" in props["video_file"]["description"] and "hayao" in props["style"]["description"]
    assert "sound" in tool.description


# -- the webcam mirror, called directly ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mirror(registry, tmp_path_factory: pytest.TempPathFactory):
    from animegan.serving import ServeConfig
    from animegan.ui import build_demo

    config = ServeConfig(device="cpu", offline=True, max_pixels=400_000, max_file_size="1mb")
    return build_demo(config, registry).animegan_webcam


def _frame(rgb: np.ndarray) -> dict:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return {"url": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()}


def _decoded(value: dict) -> np.ndarray:
    prefix = "data:image/jpeg;base64,"
    assert value["url"].startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(value["url"][len(prefix):]))).convert("RGB"))


def test_webcam_frames_in_stylised_frames_out_with_fps(mirror, photos: dict[str, Path]) -> None:
    photo = np.asarray(Image.open(photos["railway_crossing"]).convert("RGB").resize((320, 240), Image.LANCZOS))
    session = None
    for i in range(4):
        shifted = np.roll(photo, 4 * i, axis=1)  # a slow pan, as a webcam would send
        out, fps, session = mirror.mirror(_frame(shifted), "hayao", True, session)
        styled = _decoded(out)
        assert styled.shape == (192, 256, 3)  # the webcam side (256) keeps the aspect
        small = np.asarray(Image.fromarray(shifted).resize((256, 192), Image.LANCZOS), np.float32)
        assert float(np.abs(styled.astype(np.float32) - small).mean()) > 12  # stylised, not echoed
    assert session.smoother is not None and len(session.served) == 4
    assert fps.endswith("fps at 256x192 px (smoothed)") and float(fps.split()[0]) > 0
    # Another style or setting starts a new session state; per-frame mode has no smoother.
    _, fps, plain = mirror.mirror(_frame(photo), "hayao", False, session)
    assert plain is not session and plain.smoother is None and fps == "measuring fps at 256x192 px (per frame)"


def test_webcam_frames_pass_the_photo_gates(mirror) -> None:
    import gradio as gr

    big = np.zeros((700, 700, 3), np.uint8)  # 490 000 px, over this app's 400 000
    with pytest.raises(gr.Error, match="can't be used.*700x700"):
        mirror.mirror(_frame(big), "hayao", True, None)
    huge = {"url": "data:image/jpeg;base64," + "A" * (2 << 20)}  # over the 1 MB upload limit
    with pytest.raises(gr.Error, match="larger than the 1 MB upload limit"):
        mirror.mirror(huge, "hayao", True, None)
    with pytest.raises(gr.Error, match="not a JPEG, PNG or WebP"):
        mirror.mirror({"url": "data:text/html;base64,PGgxPg=="}, "hayao", True, None)
    with pytest.raises(gr.Error, match="did not reach the server"):
        mirror.mirror({"path": "/etc/passwd"}, "hayao", True, None)
    assert mirror.mirror(None, "hayao", True, None) == (None, "", None)


def test_the_timeout_applies_to_the_whole_clip_and_leaves_nothing(registry, shared: Path) -> None:
    """In process, with a 0.5 s --timeout: the native-size clip (48 frames) stops part-way with the app's message."""
    import shutil

    import gradio as gr

    from animegan.serving import ServeConfig
    from animegan.ui import build_demo, gradio_upload_folder

    videos = build_demo(ServeConfig(device="cpu", offline=True, timeout=0.5), registry).animegan_video
    folder = Path(gradio_upload_folder()) / f"videoapp-test-{time.monotonic_ns()}"
    folder.mkdir(parents=True)
    try:
        clip = folder / "railway.mp4"
        shutil.copyfile(shared / "video" / "railway_pan_320x240_2s.mp4", clip)
        started = time.monotonic()
        with pytest.raises(gr.Error, match=r"took too long.*0\.5 s.*shorter clip") as err:
            videos.stylize_video({"path": str(clip)}, "hayao", 0, True)
        assert err.value.title == "Too slow"
        assert time.monotonic() - started < 20  # it stopped between frames, not after all 48
        assert not [p for p in videos.app.results_dir.rglob("*") if p.is_file()]  # the partial MP4 was deleted
        assert clip.exists()  # a clip that was too slow is not unusable: the user may try a smaller size
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_video_and_webcam_settings_come_from_flags_then_environment() -> None:
    from animegan.serving import DEFAULT_WEBCAM_FPS, DEFAULT_WEBCAM_SIDE, load_config

    default = load_config([], {})
    assert (default.webcam_side, default.webcam_fps, default.webcam_streams) == (DEFAULT_WEBCAM_SIDE, DEFAULT_WEBCAM_FPS, 1)
    limits = default.video_limits()
    assert (limits.max_seconds, limits.max_frames, limits.max_pixels) == (30.0, 1800, default.max_pixels)
    env = {"ANIMEGAN_MAX_VIDEO_SECONDS": "12.5", "ANIMEGAN_MAX_VIDEO_FRAMES": "300", "ANIMEGAN_WEBCAM_SIDE": "320",
           "ANIMEGAN_WEBCAM_STREAMS": "0"}
    config = load_config(["--max-video-frames", "200", "--webcam-fps", "4"], env)
    assert (config.max_video_seconds, config.max_video_frames) == (12.5, 200)  # the flag wins over the variable
    assert (config.webcam_side, config.webcam_fps, config.webcam_streams) == (320, 4.0, 0)
    assert config.video_limits().max_seconds == 12.5
    for bad in (["--max-video-seconds", "0"], ["--webcam-side", "-1"], ["--webcam-streams", "-1"]):
        with pytest.raises(SystemExit):
            load_config(bad, {})


def test_no_webcam_mirror_with_zero_streams(registry) -> None:
    from animegan.serving import ServeConfig
    from animegan.ui import build_demo

    def ids(config: ServeConfig) -> set[str]:
        return {getattr(b, "elem_id", None) for b in build_demo(config, registry).blocks.values()}

    assert {"webcam", "webcam-result", "video", "video-result"} <= ids(ServeConfig(device="cpu", offline=True))
    without = ids(ServeConfig(device="cpu", offline=True, webcam_streams=0))
    assert "video" in without and "webcam" not in without and "webcam-result" not in without


def test_the_guard_takes_webcam_frames_on_the_stream_route_only() -> None:
    """A webcam frame travels inline (a JPEG data URL) to /stream/EVENT: bounded like an upload there, while every
    other JSON route keeps its 64 KiB limit."""
    gates = pytest.importorskip("test_gates")
    from animegan.request_guard import Limits, RequestGuard

    app = gates._App()
    guard = RequestGuard(app, Limits.for_upload_size(1 << 20))
    frame = json.dumps({"data": [{"url": "data:image/jpeg;base64," + "A" * (200 << 10)}], "fn_index": 5}).encode()
    assert gates._call(guard, app, "/gradio_api/stream/abc123", frame) == 200
    assert gates._call(guard, app, "/gradio_api/queue/join", frame) == 413
    huge = json.dumps({"data": [{"url": "data:image/jpeg;base64," + "A" * (2 << 20)}]}).encode()
    assert gates._call(guard, app, "/gradio_api/stream/abc123", huge) == 413
    link = json.dumps({"data": [{"path": "https://example.com/a.jpg"}]}).encode()
    assert gates._call(guard, app, "/gradio_api/stream/abc123", link) == 400  # links stay refused there too
