"""What people actually upload converts: the container allow-list (``video.CONTAINERS``) refuses nothing real.

A clip matrix made here with PyAV (nothing binary committed), as phones, cameras, browsers' recorders and editors
write them: MP4 H.264/AAC, MOV H.264 with rotation, MOV HEVC with 24-bit PCM, WebM VP8 and VP9 with Opus, MKV with
16- and 24-bit PCM, AVI MJPEG with PCM (WAV-in-AVI), MPEG-TS, MPEG-PS, GIF. Each is stylised by the engine: every
frame comes out, upright, and its sound is kept (copied, or re-encoded to AAC for codecs MP4 cannot hold).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

av = pytest.importorskip("av")
from animegan import video

FPS = 12
FRAMES = 8
RATE = 48000

# name -> (container, file name, video codec, pixel format, audio codec or None, audio sample format, extra)
MATRIX: dict[str, tuple[str, str, str, str, str | None, str, dict[str, Any]]] = {
    "mp4_h264_aac": ("mp4", "phone.mp4", "libx264", "yuv420p", "aac", "fltp", {}),
    "mov_h264_rotated": ("mov", "iphone.mov", "libx264", "yuv420p", "aac", "fltp", {"rotation": 90}),
    "mov_hevc_pcm24": ("mov", "camera.mov", "libx265", "yuv420p", "pcm_s24le", "s32", {}),
    "webm_vp8_opus": ("webm", "recorder.webm", "libvpx", "yuv420p", "libopus", "s16", {}),
    "webm_vp9_opus": ("webm", "chrome.webm", "libvpx-vp9", "yuv420p", "libopus", "s16", {}),
    "mkv_h264_pcm16": ("matroska", "edit16.mkv", "libx264", "yuv420p", "pcm_s16le", "s16", {}),
    "mkv_h264_pcm24": ("matroska", "edit24.mkv", "libx264", "yuv420p", "pcm_s24le", "s32", {}),
    "mkv_h264_pcm16_mono": ("matroska", "mono.mkv", "libx264", "yuv420p", "pcm_s16le", "s16", {"layout": "mono"}),
    "avi_mjpeg_pcm16": ("avi", "camera.avi", "mjpeg", "yuvj420p", "pcm_s16le", "s16", {}),
    "mpegts_h264_aac": ("mpegts", "broadcast.ts", "libx264", "yuv420p", "aac", "fltp", {}),
    "mpegps_mpeg2_mp2": ("vob", "dvd.vob", "mpeg2video", "yuv420p", "mp2", "s16", {}),
    "gif": ("gif", "anim.gif", "gif", "rgb8", None, "", {}),
}


def _write(path: Path, fmt: str, vcodec: str, pix_fmt: str, acodec: str | None, sample_fmt: str,
           rotation: int | None = None, layout: str = "stereo") -> Path:
    """FRAMES frames of a moving pattern at FPS, and (``acodec``) one second of a tone."""
    rng = np.random.default_rng(11)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream(vcodec, rate=FPS)
        v.width, v.height, v.pix_fmt = 64, 48, pix_fmt
        if vcodec == "libvpx-vp9":
            v.options = {"deadline": "realtime", "cpu-used": "8"}
        if vcodec == "libx265":
            v.options = {"x265-params": "log-level=error"}
        if rotation is not None:
            v.set_display_rotation(rotation)
        a = out.add_stream(acodec, rate=RATE, layout=layout) if acodec else None
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 4 * i, axis=1), "rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode())
        if a is not None:
            channels = 1 if layout == "mono" else 2
            n = round(RATE * FRAMES / FPS)
            tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / RATE)
            for start in range(0, n, 960):
                chunk = np.tile(tone[start:start + 960], (channels, 1))
                if sample_fmt == "fltp":
                    data = chunk.astype(np.float32)
                else:  # packed integers, channels interleaved
                    scale = 32767 if sample_fmt == "s16" else 2**31 - 1
                    data = (chunk.T.reshape(1, -1) * scale).astype(np.int16 if sample_fmt == "s16" else np.int32)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=sample_fmt, layout=layout)
                frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
                out.mux(a.encode(frame))
            out.mux(a.encode())
    return path


def _read(path: Path) -> tuple[int, tuple[int, int], float, str]:
    """(frames, size of the first, seconds of the first audio stream (0: none), that stream's codec)."""
    with av.open(str(path)) as c:
        frames = [f for f in c.decode(video=0)]
        size = (frames[0].width, frames[0].height)
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return len(frames), size, 0.0, ""
        stream = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(stream))
        return len(frames), size, samples / stream.codec_context.sample_rate, stream.codec_context.name


@pytest.mark.parametrize("name", list(MATRIX))
def test_every_common_kind_of_clip_converts(name: str, registry, tmp_path: Path) -> None:
    fmt, filename, vcodec, pix_fmt, acodec, sample_fmt, extra = MATRIX[name]
    source = _write(tmp_path / filename, fmt, vcodec, pix_fmt, acodec, sample_fmt, **extra)
    assert video.container_format(source.read_bytes()[:video.SNIFF_BYTES]) in video.CONTAINERS
    frames, _, sound_s, _ = _read(source)
    stats = video.stylize_video(source, tmp_path / "out.mp4", "hayao", registry=registry, max_side=64,
                                precision="fp32")
    out_frames, size, out_sound_s, out_codec = _read(tmp_path / "out.mp4")
    assert stats.frames == out_frames == frames == FRAMES
    assert size == ((48, 64) if extra.get("rotation") else (64, 48))  # upright
    if acodec is None:
        assert stats.audio_mode == "none" and out_sound_s == 0
        return
    assert stats.audio_mode == ("copied" if acodec in ("aac", "libopus") else "aac"), stats.audio_mode
    assert out_codec in ("aac", "opus")
    assert abs(out_sound_s - sound_s) < 0.05, (sound_s, out_sound_s)  # every sample kept (AAC adds a frame)
