"""Videos: the shared clip end to end, and every bad input of the video issue, made here with PyAV.

Most clips are small (64-128 px, a few frames) so the model's share of the run time stays small.
"""
from __future__ import annotations

import fractions
import struct
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from animegan import imaging, video
from animegan.engine import ConversionTimeout, stylize
from animegan.options import RunOptions
from animegan.video import VideoError, VideoLimits

CLIP = "video/railway_pan_320x240_2s.mp4"


# --- clips made in the test ---------------------------------------------------------------------

def scene(photo: Path, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.open(photo).convert("RGB").resize((w, h), Image.LANCZOS))


def moving(photo: Path, w: int, h: int, n: int) -> list[np.ndarray]:
    """A still background with a bright square crossing it: frames that differ, from a real photo."""
    base = scene(photo, w, h)
    frames = []
    for i in range(n):
        f = base.copy()
        x = (i * 7) % max(1, w - 12)
        f[h // 3:h // 3 + 12, x:x + 12] = (250, 240, 40)
        frames.append(f)
    return frames


def write_clip(path: Path, frames: Iterable[np.ndarray], *, fps: int = 12, codec: str = "libx264",
               pix_fmt: str = "yuv420p", pts: list[int] | None = None, time_base: fractions.Fraction | None = None,
               rotation: int = 0, audio: str | None = None, audio_seconds: float = 0.0, fmt: str | None = None,
               options: dict | None = None, container_options: dict | None = None) -> Path:
    """Encode ``frames`` (RGB) with PyAV; ``audio``: an audio codec for a 440 Hz tone of ``audio_seconds``."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    out = av.open(str(path), "w", format=fmt, options=container_options or {})
    vs = out.add_stream(codec, rate=fps)
    vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
    if time_base is not None:
        vs.time_base = time_base
        vs.codec_context.time_base = time_base
    if options:
        vs.options = options
    if rotation:
        vs.set_display_rotation(rotation)
    aus = None
    if audio:
        aus = out.add_stream(audio, rate=44100)
        aus.layout = "mono"
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = pts[i] if pts is not None else i
        if time_base is not None:
            frame.time_base = time_base
        out.mux(vs.encode(frame))
    out.mux(vs.encode(None))
    if aus is not None:
        _write_tone(out, aus, audio_seconds)
    out.close()
    return path


def _write_tone(out: av.container.OutputContainer, stream: av.stream.Stream, seconds: float) -> None:
    total = int(44100 * seconds)
    t = np.arange(total) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    for start in range(0, total, 1024):
        chunk = tone[start:start + 1024][None, :]
        if fmt.startswith("s16"):
            frame = av.AudioFrame.from_ndarray((chunk * 32767).astype(np.int16), format="s16", layout="mono")
        else:
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = 44100
        frame.pts = start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def decoded(path: Path) -> tuple[list[np.ndarray], list[float]]:
    with av.open(str(path)) as c:
        frames, times = [], []
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.pts * f.time_base))
        return frames, times


def audio_samples(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(f.samples for f in c.decode(audio=0))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or "partial" in p.name)


@pytest.fixture()
def small(registry, tmp_path):
    """stylize_video at a small size with the test registry; fp32 so runs are comparable everywhere."""
    def run(source: Path, name: str = "out.mp4", **kw):
        kw.setdefault("max_side", 96)
        kw.setdefault("precision", "fp32")
        return video.stylize_video(source, tmp_path / name, registry=registry, style="hayao", **kw)
    return run


# --- the shared clip ----------------------------------------------------------------------------

@pytest.mark.slow
def test_shared_clip_keeps_frames_timing_size_and_sound(shared, registry, tmp_path):
    """Frames, fps, size and audio duration equal the input's; per-frame PSNR against stylize() of each frame (both
    in the CPU's default precision: bf16 where it is native, as users get it)."""
    src = shared / CLIP
    dest = tmp_path / "railway_hayao.mp4"
    stats = video.stylize_video(src, dest, registry=registry, style="hayao", max_side=0, temporal=False,
                                precision=None)
    assert (stats.frames, stats.audio_mode, stats.output_size) == (48, "copied", (320, 240))
    out_frames, out_times = decoded(dest)
    in_frames, in_times = decoded(src)
    assert len(out_frames) == len(in_frames) == 48
    assert out_times == pytest.approx(in_times, abs=1e-6)
    with av.open(str(dest)) as c, av.open(str(src)) as s:
        v, sv = c.streams.video[0], s.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (320, 240)
        assert v.average_rate == sv.average_rate == 24
        assert (v.codec_context.name, v.codec_context.pix_fmt) == ("h264", "yuv420p")
    assert abs(audio_samples(dest) - audio_samples(src)) <= 1024   # within one AAC frame
    data = dest.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")                 # +faststart: the index comes first
    psnrs = [imaging.psnr(o, np.asarray(stylize(i, "hayao", registry=registry, max_side=0, precision=None).image))
             for o, i in zip(out_frames[::6], in_frames[::6])]  # every 6th: bench/video_bench.py fidelity does all
    print(f"\nper-frame PSNR (every 6th frame), output (H.264 decoded) vs stylize() of the decoded input: "
          f"min {min(psnrs):.2f} dB, mean {np.mean(psnrs):.2f} dB")
    assert min(psnrs) > 30  # H.264 at crf 18 is the only difference


# --- recognising videos -------------------------------------------------------------------------

def test_is_video_probes_the_container_not_the_name(shared, photos, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video at all\n" * 50)
    disguised = tmp_path / "clip.jpg"
    disguised.write_bytes((shared / CLIP).read_bytes())
    assert video.is_video(shared / CLIP) and video.is_video(disguised)
    assert not video.is_video(fake)
    assert not video.is_video(photos["railway_crossing"])
    with pytest.raises(VideoError, match="not a video"):
        video.probe(fake)
    with pytest.raises(VideoError, match="still image"):
        video.probe(photos["railway_crossing"])


def test_probe_reads_the_header(shared):
    info = video.probe(shared / CLIP)
    assert (info.width, info.height, info.frames, info.fps, info.seconds) == (320, 240, 48, 24.0, 2.0)
    assert (info.rotation, info.video_codec, info.audio_streams) == (0, "h264", 1)


# --- bad input: each gets a clear error or a correct output, and nothing is left on disk ----------

def test_text_file_named_mp4(small, tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_text("hello\n" * 100)
    with pytest.raises(VideoError, match="not a video"):
        small(fake)
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_mp4_cut_in_half(shared, small, tmp_path):
    """Index at the end (the shared clip): cannot be opened. Index first (+faststart): the frames stop mid-way."""
    data = (shared / CLIP).read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="not a video"):
        small(tmp_path / "half.mp4")
    faststart = write_clip(tmp_path / "fs.mp4", moving(shared / "photos/railway_crossing.jpg", 96, 64, 24),
                           fmt="mp4", container_options={"movflags": "+faststart"})
    data = faststart.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    (tmp_path / "fs_half.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="damaged"):
        small(tmp_path / "fs_half.mp4")
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_audio_only(tmp_path, small):
    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("aac", rate=44100)
        s.layout = "mono"
        _write_tone(out, s, 1.0)
    assert not video.is_video(path)
    with pytest.raises(VideoError, match="sound .* but no pictures"):
        small(path)
    assert leftovers(tmp_path) == []


def test_one_frame_video(photos, small, registry, tmp_path):
    src = write_clip(tmp_path / "one.mp4", [scene(photos["railway_crossing"], 96, 64)])
    stats = small(src)
    frames, _ = decoded(tmp_path / "out.mp4")
    assert stats.frames == len(frames) == 1 and frames[0].shape == (64, 96, 3)
    # The style may be the third argument, as in stylize(photo, "hayao"); a framing videos cannot take is refused.
    again = video.stylize_video(src, tmp_path / "again.mp4", "hayao", registry=registry, max_side=32)
    assert again.style == "hayao" and again.output_size == (32, 20)
    with pytest.raises(video.VideoError, match="framing 'whole'.*or 'center'"):
        video.stylize_video(src, tmp_path / "face.mp4", "hayao", registry=registry, framing="face")
    assert not (tmp_path / "face.mp4").exists()


@pytest.mark.parametrize("rotation", [0, 90])
def test_center_framing_for_portrait_styles(photos, hayao_pt, tmp_path, rotation):
    """A portrait style with framing center: the centre square of every upright frame, at the training size
    (or max side); scene styles run whole frames; face framings are refused (a moving box would shake)."""
    from animegan import Registry

    reg = Registry(weights={"celeba_distill": hayao_pt, "hayao": hayao_pt}, cache_dir=tmp_path / "cache", offline=True)
    stored = scene(photos["kyoto_street_kimono"], 128, 64)
    upright = np.ascontiguousarray(np.rot90(stored, rotation // 90))
    src = write_clip(tmp_path / "wide.mp4", [stored] * 3, rotation=rotation)
    stats = video.stylize_video(src, tmp_path / "c.mp4", "celeba_distill", registry=reg, framing="center",
                                max_side=48, precision="fp32", temporal=False)
    assert stats.framing == "center" and stats.output_size == (48, 48) and stats.frames == 3
    assert any(n.kind == "framing" and "centre square" in n for n in stats.notices)
    got = decoded(tmp_path / "c.mp4")[0][0]
    h, w = upright.shape[:2]
    side = min(w, h)
    square = upright[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    small_square = np.asarray(Image.fromarray(np.ascontiguousarray(square)).resize((48, 48), Image.LANCZOS))
    want = np.asarray(stylize(small_square, "celeba_distill", registry=reg, framing="whole", max_side=0,
                              precision="fp32").image)
    shifted = np.asarray(stylize(np.ascontiguousarray(np.roll(small_square, 12, axis=1 - rotation // 90)),
                                 "celeba_distill", registry=reg, framing="whole", max_side=0, precision="fp32").image)
    assert imaging.psnr(got, want) > 30 > imaging.psnr(got, shifted), (imaging.psnr(got, want),
                                                                       imaging.psnr(got, shifted))
    if rotation:
        return
    native = video.stylize_video(src, tmp_path / "n.mp4", "celeba_distill", registry=reg, framing="center",
                                 max_side=0, precision="fp32", temporal=False)
    assert native.output_size == (256, 256)  # celeba_distill's training size, however small the frame
    scene_style = video.stylize_video(src, tmp_path / "s.mp4", "hayao", registry=reg, framing="center", max_side=0)
    assert scene_style.framing == "whole" and scene_style.output_size == (128, 64)
    for bad in ("face", "paste", "sideways"):
        with pytest.raises(VideoError, match="'whole'.*'center'"):
            video.stylize_video(src, tmp_path / "bad.mp4", "celeba_distill", registry=reg, framing=bad)
    assert not (tmp_path / "bad.mp4").exists()


def test_variable_frame_rate_keeps_every_timestamp(photos, small, tmp_path):
    pts = [0, 1, 2, 5, 6, 12, 13, 20]           # in 1/30 s: gaps of 1 to 7 ticks
    src = write_clip(tmp_path / "vfr.mp4", moving(photos["railway_crossing"], 96, 64, len(pts)),
                     pts=pts, time_base=fractions.Fraction(1, 30))
    _, in_times = decoded(src)
    small(src)
    _, out_times = decoded(tmp_path / "out.mp4")
    assert out_times == pytest.approx(in_times, abs=1e-4)
    assert np.diff(out_times) == pytest.approx(np.diff(pts) / 30, abs=1e-4)


@pytest.mark.parametrize("rotation", [90, -90])
def test_rotated_phone_clip_comes_out_upright(photos, registry, tmp_path, rotation):
    """A display matrix of +-90 degrees: the output is the upright picture (and has no rotation of its own)."""
    stored = scene(photos["kyoto_street_kimono"], 96, 64)          # stored sideways, 96x64
    upright = np.ascontiguousarray(np.rot90(stored, rotation // 90))  # what a player shows: 64x96
    src = write_clip(tmp_path / "phone.mp4", [stored] * 3, rotation=rotation)
    info = video.probe(src)
    assert (info.width, info.height, info.rotation % 360) == (64, 96, rotation % 360)
    video.stylize_video(src, tmp_path / "out.mp4", registry=registry, style="hayao", max_side=0, precision="fp32",
                        temporal=False)
    with av.open(str(tmp_path / "out.mp4")) as c:
        first = next(c.decode(video=0))
        assert (first.width, first.height, first.rotation or 0) == (64, 96, 0)
        got = first.to_ndarray(format="rgb24")
    want = np.asarray(stylize(upright, "hayao", registry=registry, max_side=0, precision="fp32").image)
    wrong = np.asarray(stylize(np.ascontiguousarray(np.rot90(upright, 2)), "hayao", registry=registry, max_side=0,
                               precision="fp32").image)
    assert imaging.psnr(got, want) > 28 > imaging.psnr(got, wrong)


def test_ten_bit_hevc(photos, small, tmp_path):
    src = write_clip(tmp_path / "hevc10.mp4", moving(photos["cars_bridge_forest"], 96, 64, 4), codec="libx265",
                     pix_fmt="yuv420p10le", options={"x265-params": "log-level=error"})
    with av.open(str(src)) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
        assert c.streams.video[0].format.name.startswith("yuv420p10")
    stats = small(src)
    frames, _ = decoded(tmp_path / "out.mp4")
    assert stats.frames == len(frames) == 4


def test_odd_sides_lose_their_last_row_and_column(photos, small, tmp_path):
    src = write_clip(tmp_path / "odd.mkv", moving(photos["railway_crossing"], 321, 241, 2), codec="libx264rgb",
                     pix_fmt="rgb24", fmt="matroska")
    assert (video.probe(src).width, video.probe(src).height) == (321, 241)
    stats = small(src, max_side=0)
    assert stats.output_size == (320, 240)
    assert any("even sides" in n for n in stats.notices)
    frames, _ = decoded(tmp_path / "out.mp4")
    assert frames[0].shape == (240, 320, 3)


def test_header_claiming_16000x16000(shared, tmp_path, small):
    """A container that claims 16000x16000 is refused from the header, before anything is decoded; an MP4
    whose sample entry and track header are patched to claim it decodes at its true size (the H.264 SPS wins)."""
    claim = tmp_path / "claim.mkv"
    with av.open(str(claim), "w", format="matroska") as out:
        s = out.add_stream("rawvideo", rate=1)
        s.width, s.height, s.pix_fmt = 16000, 16000, "gray"
        packet = av.Packet(b"\0" * 64)
        packet.stream, packet.pts, packet.dts = s, 0, 0
        out.mux(packet)
    with pytest.raises(VideoError, match="over the 50 megapixel limit per frame"):  # FFmpeg's pixel cap
        small(claim)
    data = bytearray((shared / CLIP).read_bytes())
    entry = data.find(b"avc1", data.find(b"stsd")) + 4 + 6 + 2 + 16     # width, height of the avc1 sample entry
    data[entry:entry + 4] = struct.pack(">HH", 16000, 16000)
    tkhd = data.find(b"tkhd", data.find(b"moov"))
    end = tkhd - 4 + struct.unpack(">I", data[tkhd - 4:tkhd])[0]
    data[end - 8:end] = struct.pack(">II", 16000 << 16, 16000 << 16)
    (tmp_path / "patched.mp4").write_bytes(bytes(data))
    assert (video.probe(tmp_path / "patched.mp4").width, video.probe(tmp_path / "patched.mp4").height) == (320, 240)
    assert leftovers(tmp_path) == []


def test_over_the_duration_and_frame_limits(shared, small, tmp_path):
    with pytest.raises(VideoError, match="2.0 s long; the limit is 1 s"):
        small(shared / CLIP, limits=VideoLimits(max_seconds=1))
    with pytest.raises(VideoError, match="48 frames; the limit is 10"):
        small(shared / CLIP, limits=VideoLimits(max_frames=10))
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_gif_animation_is_a_video_and_animated_webp_is_refused(photos, small, tmp_path):
    """stylize_video takes an animated GIF as a video; is_video() leaves GIFs to the photo path (first frame)."""
    gif = write_clip(tmp_path / "anim.gif", moving(photos["railway_crossing"], 96, 64, 5), codec="gif",
                     pix_fmt="rgb8", fps=10, fmt="gif")
    assert not video.is_video(gif)
    stats = small(gif)
    frames, times = decoded(tmp_path / "out.mp4")
    assert stats.frames == len(frames) == 5 and stats.audio_mode == "none"
    assert times == pytest.approx([0, 0.1, 0.2, 0.3, 0.4], abs=1e-3)
    webp = write_clip(tmp_path / "anim.webp", moving(photos["railway_crossing"], 96, 64, 3), codec="libwebp_anim",
                      fmt="webp")
    assert not video.is_video(webp)
    with pytest.raises(VideoError, match="animated WebP"):
        small(webp, name="webp.mp4")
    assert not (tmp_path / "webp.mp4").exists() and leftovers(tmp_path) == []


def test_large_frames_run_in_tiles_through_the_memory_plan(photos, small, tmp_path):
    """Frames over the memory budget run in tiles, as photos do; their statistics are smoothed all the same."""
    src = write_clip(tmp_path / "big.mp4", moving(photos["cars_bridge_forest"], 128, 96, 3))
    plain = small(src, "plain.mp4", max_side=0, tile=48, temporal=False)
    stats = small(src, max_side=0, tile=48)
    assert stats.plan.startswith("tiles of 48 px") and any(n.kind == "tiled" for n in stats.notices)
    assert stats.temporal and not plain.temporal
    frames, _ = decoded(tmp_path / "out.mp4")
    per_frame, _ = decoded(tmp_path / "plain.mp4")
    assert len(frames) == 3 and frames[0].shape == (96, 128, 3)
    # the first frame has nothing to smooth with (x264's look-ahead still lets later frames touch its coding)
    assert imaging.psnr(frames[0], per_frame[0]) > imaging.psnr(frames[2], per_frame[2]) > 30


# --- sound --------------------------------------------------------------------------------------

def test_audio_mp4_cannot_hold_is_reencoded_to_aac(photos, small, tmp_path):
    src = write_clip(tmp_path / "pcm.mov", moving(photos["railway_crossing"], 96, 64, 12), audio="pcm_s16le",
                     audio_seconds=1.0, fmt="mov")
    stats = small(src)
    assert (stats.audio_mode, stats.audio_kept) == ("aac", True)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
    assert abs(audio_samples(tmp_path / "out.mp4") - audio_samples(src)) <= 1024


# --- stopping -----------------------------------------------------------------------------------

def test_cancel_and_deadline_leave_nothing(shared, small, tmp_path):
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("stop pressed")

    with pytest.raises(KeyboardInterrupt):
        small(shared / CLIP, max_side=64, check=check)
    assert len(calls) == 3
    with pytest.raises(ConversionTimeout, match="stopped after"):
        small(shared / CLIP, max_side=64, deadline=0.5)
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


# --- temporal smoothing -------------------------------------------------------------------------

def test_smoothing_starts_as_the_plain_run_and_resets_at_a_cut(photos, registry):
    options = RunOptions(style="hayao", precision="fp32")
    a = scene(photos["railway_crossing"], 96, 64)
    b = a.copy()
    b[10:30, 20:50] = 255
    cut = scene(photos["kyoto_street_kimono"], 96, 64)
    plain = {k: video.stylize_frame(f, options, registry=registry) for k, f in (("a", a), ("b", b), ("cut", cut))}
    smoother = video.FrameSmoother()
    # the first frame, and the first after a cut, are the plain run (up to float rounding: the smoothing path
    # computes its moments apart from group_norm's)
    assert imaging.psnr(video.stylize_frame(a, options, smoother, registry), plain["a"]) > 50
    smoothed_b = video.stylize_frame(b, options, smoother, registry)
    assert not np.array_equal(smoothed_b, plain["b"])       # blended with frame a's statistics
    assert imaging.psnr(smoothed_b, plain["b"]) > 30
    assert imaging.psnr(video.stylize_frame(cut, options, smoother, registry), plain["cut"]) > 50  # a new scene
    assert smoother.cuts == 1
    smoother.reset()
    assert imaging.psnr(video.stylize_frame(b, options, smoother, registry), plain["b"]) > 50


# --- command line -------------------------------------------------------------------------------

def test_cli_converts_videos_and_photos_together(shared, hayao_pt, photos, tmp_path):
    clip = tmp_path / "clip.bin"   # no video extension: recognised by probing
    write_clip(clip, moving(photos["railway_crossing"], 128, 96, 6), fmt="mp4")
    r = subprocess.run([sys.executable, "-m", "animegan", str(clip), str(photos["railway_crossing"]), "--style", "hayao",
                        "--weights", str(hayao_pt), "--offline", "--out", str(tmp_path / "out"), "--max-side", "64",
                        "--temporal", "off", "--precision", "fp32"],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["clip_hayao.mp4", "railway_crossing_hayao.png"]
    frames, _ = decoded(tmp_path / "out" / "clip_hayao.mp4")
    assert len(frames) == 6 and frames[0].shape == (48, 64, 3)
    assert "clip_hayao.mp4" in r.stdout and "6 frames at" in r.stderr


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_smoothing_moments_equal_the_recorded_ones(dtype):
    """The fused kernel the smoothing takes each frame's moments from agrees with record mode's var_mean."""
    import torch

    from animegan.model import _frame_moments, _moments_fp32

    x = (torch.randn(1, 40, 24, 32) * 3 + 1).to(getattr(torch, dtype)).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        (m0, v0), (m1, v1) = _moments_fp32(x), _frame_moments(x)
    assert m1.dtype == v1.dtype == torch.float32
    assert torch.allclose(m0, m1, rtol=1e-5, atol=1e-6) and torch.allclose(v0, v1, rtol=1e-5)
