"""``--backend ray`` runs clips and webcam frames on the replicas, as it runs photos.

A real local Ray with one replica (``--replicas 1``), started in this process through :class:`RayBackend` as the
app starts it. Shown: during a clip the app process itself spends little CPU next to the replica (decoding, the
model and encoding all happen there; the app only sends the file's bytes and writes the MP4's), the MP4 that comes
back has every frame, the preview's segments come back while the replica works, and webcam frames run on the
replica with the stream's smoothing state carried both ways.
"""
from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import psutil
import pytest

# first: it tells Ray to send this machine's auth token (read once, when Ray is imported)
ray_backend = pytest.importorskip("animegan.ray_backend")
from conftest import torch_threads
from test_video import moving, write_clip

from animegan import preview
from animegan.engine import LocalConverter
from animegan.options import RunOptions
from animegan.serving import ServeConfig
from animegan.temporal import FrameSmoother

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend(hayao_pt: Path, one_ray_at_a_time: None) -> Iterator:
    import ray
    from ray import serve

    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    config = ServeConfig(backend="ray", replicas=1, device="cpu", precision="fp32", offline=True,
                         weights={"hayao": hayao_pt}, torch_threads=1, result_cache_size=0)
    backend = ray_backend.RayBackend(config)
    try:
        yield backend
    finally:
        serve.shutdown()
        ray.shutdown()


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def test_a_clip_runs_on_the_replica(backend, photos, tmp_path: Path) -> None:
    options = RunOptions(style="hayao", max_side=0)
    warm = moving(photos["cars_bridge_forest"], 64, 48, 1)[0]
    backend.frame(warm, options)  # loads the model on the replica and tells us its process
    (replica,) = backend.replicas()
    assert replica["pid"] != os.getpid()
    worker = psutil.Process(replica["pid"])

    n = 36
    clip = write_clip(tmp_path / "in.mp4", moving(photos["cars_bridge_forest"], 256, 192, n))
    progress: list[tuple[int, int]] = []
    me = psutil.Process()
    app_before, replica_before, start = _cpu(me), _cpu(worker), time.perf_counter()
    stats = backend.clip(clip, tmp_path / "out.mp4", options, on_frame=lambda d, e: progress.append((d, e)))
    app_cpu, replica_cpu = _cpu(me) - app_before, _cpu(worker) - replica_before
    wall = time.perf_counter() - start
    print(f"clip of {n} frames 256x192: wall {wall:.2f} s, app CPU {app_cpu:.2f} s, replica CPU {replica_cpu:.2f} s")

    with av.open(str(tmp_path / "out.mp4")) as out:
        assert sum(1 for _ in out.decode(video=0)) == n == stats.frames
    assert stats.device == "cpu" and stats.style == "hayao" and stats.output_size == (256, 192)
    assert progress and progress[-1] == (n, n), progress  # the replica's frames, streamed back
    assert backend.replicas()[0]["conversions"] >= replica["conversions"] + n
    assert replica_cpu > 1.0, "the model did not run in the replica's process"
    assert app_cpu < replica_cpu / 4, f"the app process worked too: {app_cpu:.2f} s against {replica_cpu:.2f} s"
    assert not list(tmp_path.glob(".*partial*"))


def test_a_clips_preview_segments_come_back_from_the_replica_while_it_runs(backend, photos, tmp_path: Path) -> None:
    """A SegmentWriter as the clip's preview (as the Video tab passes it): the replica cuts the segments with its
    settings and sends them as they are made; here they arrive before the last frame's progress, land in the
    writer's folder, play in a row (PyAV) for the clip's length, and the replica's preview folder is gone after."""
    options = RunOptions(style="hayao", max_side=0)
    n, fps = 36, 12
    clip = write_clip(tmp_path / "in.mp4", moving(photos["cars_bridge_forest"], 192, 144, n), fps=fps)
    events: list[tuple] = []
    replica_folders: list[Path] = []

    def on_segment(segment: preview.Segment) -> None:
        events.append(("segment", segment.index))
        if not replica_folders:  # the replica's own folder (same machine), there while it runs
            replica_folders.extend(Path(tempfile.gettempdir()).glob("animegan-clip-*/preview"))

    writer = preview.SegmentWriter(tmp_path / "preview", fps, on_segment, segment_s=0.5)
    stats = backend.clip(clip, tmp_path / "out.mp4", options, on_frame=lambda d, e: events.append(("frame", d)),
                         preview=writer)
    writer.close()
    got = writer.segments

    assert stats.frames == n and writer.error is None and writer.offered == 0  # no frame crossed, only segments
    assert len(got) >= 4 and [s.index for s in got] == list(range(len(got)))
    assert events.index(("segment", 0)) < events.index(("frame", n)), events  # streamed, not sent at the end
    decoded: list[float] = []
    for segment in got:
        assert segment.path.parent == tmp_path / "preview"
        with av.open(str(segment.path)) as c:
            times = [float(f.time) - preview.CLOCK_START_S for f in c.decode(video=0)]
        assert len(times) == segment.frames > 0
        assert times[0] == pytest.approx(segment.start, abs=1e-4)
        eps = 1e-4  # the 90 kHz clock: a frame's time is within a tick of the segment's start
        assert all(segment.start - eps <= t < segment.start + segment.duration - eps for t in times), times
        decoded += times
    for a, b in itertools.pairwise(got):
        assert a.start + a.duration == pytest.approx(b.start, abs=1e-6)  # no gap, no overlap
    assert decoded == sorted(decoded) and len(decoded) <= n
    assert len(decoded) >= n - 4  # the replica's writer keeps up with the model (a full queue drops a frame)
    assert got[0].start == 0 and got[-1].start + got[-1].duration == pytest.approx(n / fps, abs=1e-3)
    assert sorted(p.name for p in (tmp_path / "preview").iterdir()) == sorted(s.path.name for s in got)
    assert replica_folders, "the replica's preview folder was not found while it ran"
    assert not any(folder.exists() for folder in replica_folders)  # gone with the clip's, before the result came


def test_webcam_frames_run_on_the_replica_with_their_stream_state(backend, registry, photos) -> None:
    options = RunOptions(style="hayao", max_side=0, precision="fp32")
    frames = moving(photos["cars_bridge_forest"], 128, 96, 4)
    before = backend.replicas()[0]["conversions"] if backend.replicas() else 0
    remote_state, local_state = FrameSmoother(), FrameSmoother()
    local = LocalConverter(registry)
    for rgb in frames:
        remote = backend.frame(rgb, options, remote_state)
        with torch_threads(1):  # as the replica runs: another thread count may only change float rounding
            here = local.frame(rgb, options.replace(device="cpu"), local_state)
        assert remote.shape == rgb.shape
        assert np.abs(remote.astype(int) - here).max() <= 2, "the replica must run the same smoothed stream"
    (replica,) = backend.replicas()
    assert replica["pid"] != os.getpid() and replica["conversions"] == before + len(frames)
    assert len(remote_state._values) == len(local_state._values) > 0  # the state came back from the replica
