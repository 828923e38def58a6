"""The preview of a clip as it converts (issue 27): :class:`animegan.preview.SegmentWriter` and the clip pipeline's
hook. Real frames (the shared clip, decoded with PyAV), segments read back with PyAV."""
from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from animegan import preview


@pytest.fixture(scope="module")
def clip_frames(shared: Path) -> tuple[list[np.ndarray], list[float], float]:
    """The shared 2 s clip's frames (RGB), their times in seconds and its frame rate."""
    with av.open(str(shared / "video" / "railway_pan_320x240_2s.mp4")) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate)
        frames, times = [], []
        for f in c.decode(stream):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.time))
    return frames, times, fps


def _read(segment: preview.Segment) -> tuple[list[float], list[np.ndarray], str]:
    with av.open(str(segment.path)) as c:
        assert [s.type for s in c.streams] == ["video"]  # the preview is silent: the MP4 has the sound
        name = c.streams.video[0].codec_context.name
        decoded = list(c.decode(video=0))
    return [float(f.time) - preview.CLOCK_START_S for f in decoded], [f.to_ndarray(format="rgb24") for f in decoded], name


def test_segments_play_every_frame_in_a_row_on_the_clips_clock(clip_frames, tmp_path: Path) -> None:
    frames, times, fps = clip_frames
    got: list[preview.Segment] = []
    writer = preview.SegmentWriter(tmp_path, fps, got.append, segment_s=0.5, queue_frames=len(frames))
    for rgb, t in zip(frames, times):
        writer(rgb, t + 3.0)  # any origin: the first frame offered is 0
    writer.close()
    assert writer.error is None and writer.dropped == 0 and writer.written == len(frames)
    assert got == writer.segments and [s.index for s in got] == list(range(len(got)))
    assert len(got) >= 3  # 2 s in 0.5 s segments
    origin = times[0]
    decoded_times: list[float] = []
    for n, segment in enumerate(got):
        seg_times, pixels, codec = _read(segment)
        assert codec == "h264" and len(seg_times) == segment.frames
        assert seg_times[0] == pytest.approx(segment.start, abs=1e-4)  # each segment starts where it says
        if n + 1 < len(got):  # ... and plays until the next one starts: no gap, no overlap
            assert segment.start + segment.duration == pytest.approx(got[n + 1].start, abs=1e-6)
        assert all(segment.start <= t < segment.start + segment.duration for t in seg_times)
        for out, t in zip(pixels, seg_times):  # the picture is the frame of that time (lossy, close)
            source = frames[min(range(len(times)), key=lambda i: abs(times[i] - origin - t))]
            assert np.abs(out.astype(np.int16) - source).mean() < 6
        decoded_times += seg_times
    expected = [t - origin for t in times]
    assert decoded_times == pytest.approx(expected, abs=1e-4)  # every frame, at its own time
    assert got[-1].start + got[-1].duration == pytest.approx(expected[-1] + 1 / fps, abs=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(s.path.name for s in got)  # no partial file left


def test_a_full_queue_drops_frames_and_never_blocks_the_caller(clip_frames, tmp_path: Path) -> None:
    """Fed much faster than x264 can encode (large frames, back to back): each offer returns at once, the frames
    that find the queue full are dropped, and what was written still plays in order."""
    frames, _, fps = clip_frames
    big = [np.ascontiguousarray(np.tile(f, (3, 3, 1))) for f in frames[:8]]  # 960x720
    got: list[preview.Segment] = []
    writer = preview.SegmentWriter(tmp_path, fps, got.append, queue_frames=2)
    slowest = 0.0
    started = time.perf_counter()
    for i in range(300):
        t0 = time.perf_counter()
        writer(big[i % len(big)], i / fps)
        slowest = max(slowest, time.perf_counter() - t0)
        time.sleep(0.002)  # a model far faster than any: 500 frames a second
    feeding = time.perf_counter() - started
    writer.close()
    print(f"300 offers in {feeding * 1000:.1f} ms (slowest {slowest * 1000:.2f} ms); {writer.dropped} dropped, "
          f"{writer.written} encoded in {len(got)} segments")
    assert writer.error is None
    assert slowest < 0.05 and writer.dropped > 0 and len(got) >= 2
    assert writer.written + writer.dropped == writer.offered == 300
    decoded = [t for s in got for t in _read(s)[0]]
    assert len(decoded) == writer.written and decoded == sorted(decoded)
    for a, b in itertools.pairwise(got):
        assert a.start + a.duration == pytest.approx(b.start)


def test_a_slow_run_still_sends_a_segment_every_few_seconds(clip_frames, tmp_path: Path) -> None:
    """Frames slower than the clip's rate: a segment closes after ``wait_s`` with what it has (fewer frames than
    ``segment_s`` would hold), so the page has something to play while the model works."""
    frames, times, fps = clip_frames
    got: list[preview.Segment] = []
    writer = preview.SegmentWriter(tmp_path, fps, got.append, segment_s=1.0, wait_s=0.3)
    for rgb, t in zip(frames[:4], times[:4]):
        writer(rgb, t)
        time.sleep(0.2)
    time.sleep(0.4)
    arrived = len(got)  # before close: the waiting closed them
    writer.close()
    assert arrived >= 1 and all(s.frames < fps for s in got)
    assert sum(s.frames for s in got) == 4


def test_abandon_hands_over_nothing_more_and_leaves_no_partial_file(clip_frames, tmp_path: Path) -> None:
    frames, times, fps = clip_frames
    got: list[preview.Segment] = []
    writer = preview.SegmentWriter(tmp_path, fps, got.append, segment_s=10.0, wait_s=10.0)
    for rgb, t in zip(frames[:5], times[:5]):
        writer(rgb, t)
    time.sleep(0.3)
    writer.abandon()
    assert got == [] and list(tmp_path.iterdir()) == []
    assert writer.offer(frames[5], times[5]) is False  # after it stopped, frames are dropped


def test_segments_encoded_elsewhere_are_taken_in_order_under_the_writers_own_names(clip_frames,
                                                                                   tmp_path: Path) -> None:
    """add_encoded, as --backend ray uses it: a writer cut with another's settings (a replica's) makes segments;
    their bytes, added to the app's writer, land in its folder under its names, unchanged and playable, handed to
    on_segment in order; a re-sent start (a rerun) and anything after abandon are refused, nothing written."""
    frames, times, fps = clip_frames
    shown: list[preview.Segment] = []
    near = preview.SegmentWriter(tmp_path / "app", fps, shown.append, segment_s=0.5, wait_s=5.0, queue_frames=3)
    assert isinstance(near, preview.EncodedSink)
    settings = near.settings()
    assert settings == {"fps": pytest.approx(fps), "segment_s": 0.5, "wait_s": 5.0, "queue_frames": 3}
    made: list[preview.Segment] = []
    far = preview.SegmentWriter(tmp_path / "replica", on_segment=made.append, **{**settings, "queue_frames": len(frames)})
    for rgb, t in zip(frames, times):
        far(rgb, t)
    far.close()
    assert far.error is None and far.dropped == 0 and len(made) >= 3

    for segment in made:
        assert near.add_encoded(segment.path.read_bytes(), segment.start, segment.duration, segment.frames)
    assert not near.add_encoded(made[0].path.read_bytes(), made[0].start, made[0].duration, made[0].frames)
    assert shown == near.segments and [s.index for s in shown] == list(range(len(made)))
    assert [(s.start, s.duration, s.frames) for s in shown] == [(s.start, s.duration, s.frames) for s in made]
    assert [s.path.parent for s in shown] == [tmp_path / "app"] * len(made)
    assert [s.path.read_bytes() for s in shown] == [s.path.read_bytes() for s in made]
    decoded: list[float] = []
    for segment in shown:
        seg_times, _, codec = _read(segment)
        assert codec == "h264" and len(seg_times) == segment.frames
        decoded += seg_times
    assert decoded == pytest.approx([t - times[0] for t in times], abs=1e-4)

    near.close()  # fed no frames: nothing more
    assert near.segments == shown
    assert sorted(p.name for p in (tmp_path / "app").iterdir()) == sorted(s.path.name for s in shown)  # no partial
    later = preview.SegmentWriter(tmp_path / "later", fps, shown.append)
    later.abandon()
    assert not later.add_encoded(made[-1].path.read_bytes(), 99.0, 0.5, 6)
    assert list((tmp_path / "later").iterdir()) == [] and len(shown) == len(made)


def test_the_clip_pipeline_hands_each_written_frame_and_its_time_to_the_preview(registry, shared: Path,
                                                                               tmp_path: Path) -> None:
    """stylize_video's ``preview``: every frame of the result, as written, with the time it has in the MP4."""
    from animegan.video import stylize_video

    seen: list[tuple[np.ndarray, float]] = []
    dest = tmp_path / "out.mp4"
    stats = stylize_video(shared / "video" / "railway_pan_320x240_2s.mp4", dest, "hayao", registry=registry,
                          max_side=64, device="cpu", preview=lambda rgb, t: seen.append((rgb, t)))
    with av.open(str(dest)) as c:
        written = [(f.to_ndarray(format="rgb24"), float(f.time)) for f in c.decode(video=0)]
    assert len(seen) == len(written) == stats.frames
    assert [t for _, t in seen] == pytest.approx([t for _, t in written], abs=1e-3)
    assert all(rgb.shape == (48, 64, 3) for rgb, _ in seen)
    assert np.abs(seen[10][0].astype(np.int16) - written[10][0]).mean() < 4  # the same picture (before x264)


def test_a_streaming_video_plays_the_segments_as_they_are_and_a_page_keeps_one_run(clip_frames,
                                                                                  tmp_path: Path) -> None:
    """gradio_internals.stream_segments on a real Gradio server (no ffmpeg program): the playlist lists each segment
    with its length and serves its bytes unchanged, and a page's second run drops the first one's from memory."""
    import gradio as gr
    import httpx
    from gradio_client import Client
    from harness import free_port

    from animegan import gradio_internals

    frames, times, fps = clip_frames

    def run(n: str):  # a generator like the Video tab's Convert: segments as they are made
        got: list[preview.Segment] = []
        writer = preview.SegmentWriter(tmp_path / f"run{n}", fps, got.append, segment_s=0.5,
                                       queue_frames=len(frames))
        for rgb, t in zip(frames, times):
            writer(rgb, t)
        writer.close()
        yield from got

    with gr.Blocks() as demo:
        n = gr.Textbox()
        live = gr.Video(streaming=True, autoplay=True, interactive=False)
        assert gradio_internals.stream_segments(live, lambda v: (v.path.read_bytes(), v.duration)
                                                if isinstance(v, preview.Segment) else None)
        gr.Button().click(run, inputs=[n], outputs=[live], api_name="run")
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
    try:
        client = Client(demo.local_url, verbose=False, download_files=False)
        first = client.predict("1", api_name="/run")
        assert first["is_stream"] and first["url"].endswith("/playlist.m3u8"), first
        sessions = [s for s, runs in demo.pending_streams.items() if runs]
        assert len(sessions) == 1 and len(demo.pending_streams[sessions[0]]) == 1
        text = httpx.get(first["url"], timeout=10).text
        written = sorted((tmp_path / "run1").glob("*.ts"))
        lengths = [float(line.split(":")[1].rstrip(",")) for line in text.splitlines() if line.startswith("#EXTINF:")]
        assert len(written) >= 3 and len(lengths) == len(written) and "#EXT-X-ENDLIST" in text
        assert sum(lengths) == pytest.approx(times[-1] - times[0] + 1 / fps, abs=1e-3)
        names = [line for line in text.splitlines() if line.endswith(".ts")]
        base = first["url"].rsplit("/", 1)[0]
        assert [httpx.get(f"{base}/{name}", timeout=10).content for name in names] == [p.read_bytes() for p in written]
        client.predict("2", api_name="/run")
        runs = demo.pending_streams[sessions[0]]
        assert len(runs) == 1  # the first run's segments are gone from memory
        (stream,) = next(iter(runs.values())).values()
        assert [s["data"] for s in stream.segments] == [p.read_bytes() for p in sorted((tmp_path / "run2").glob("*.ts"))]
    finally:
        demo.close()
