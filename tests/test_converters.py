"""The Converter seam for photos, stream frames and clips: the local converter's frame plans (the photo's route and
out-of-memory recovery, kept per converter and bounded), and ZeroGPU: every call inside ``spaces.GPU``, with a
duration computed from the input.

ZeroGPU is stood in for by a ``spaces`` module in ``sys.modules`` (with ``SPACES_ZERO_GPU=1``) whose ``GPU`` does
what the real one does to a call's data: the arguments and the result cross by pickling (a forked process), and
the duration callable is asked with the call's own arguments before the run.
"""
from __future__ import annotations

import pickle
import sys
import time
import types
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from test_video import moving, write_clip

from animegan import engine, inference, zerogpu
from animegan.engine import LocalConverter
from animegan.options import RunOptions
from animegan.temporal import FrameSmoother

FAST = {"style": "hayao", "device": "cpu", "precision": "fp32"}


class StandInSpaces(types.ModuleType):
    """``spaces`` as a ZeroGPU Space has it, reduced to what a converter meets: ``GPU(fn, duration=callable)``."""

    def __init__(self) -> None:
        super().__init__("spaces")
        self.calls: list[tuple[str, int]] = []  # (function, duration asked)
        self.inside = False
        self.gpu_seconds = 0.0

    def GPU(self, fn, *, duration=60):  # the real name
        def run(*args, **kwargs):
            asked = duration(*args, **kwargs) if callable(duration) else duration
            self.calls.append((fn.__name__, asked))
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))  # into the forked process
            self.inside, start = True, time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            finally:
                self.inside = False
                self.gpu_seconds += time.perf_counter() - start
            return pickle.loads(pickle.dumps(result))  # and back
        return run


@pytest.fixture()
def spaces(monkeypatch: pytest.MonkeyPatch) -> StandInSpaces:
    module = StandInSpaces()
    monkeypatch.setitem(sys.modules, "spaces", module)
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    return module


@pytest.fixture()
def forward_log(monkeypatch: pytest.MonkeyPatch, spaces: StandInSpaces) -> dict[str, float]:
    """Seconds the model's forward passes took, inside and outside spaces.GPU."""
    real = inference.forward
    spent = {"inside": 0.0, "outside": 0.0}

    def forward(model, x, precision="fp32", stats=None):
        start = time.perf_counter()
        try:
            return real(model, x, precision, stats)
        finally:
            spent["inside" if spaces.inside else "outside"] += time.perf_counter() - start

    monkeypatch.setattr(inference, "forward", forward)
    return spent


def expected(conv: zerogpu.ZeroGPUConverter, per_mp: float, pixels: int, frames: int) -> int:
    wanted = zerogpu.START_S + zerogpu.MARGIN * frames * per_mp * pixels / 1e6
    return int(min(conv.max_duration, max(zerogpu.MIN_DURATION_S, round(wanted))))


def test_zerogpu_runs_photos_frames_and_clips_inside_spaces_gpu(registry, spaces, forward_log, photos, tmp_path):
    conv = zerogpu.wrap(LocalConverter(registry), max_duration=300)
    assert isinstance(conv, zerogpu.ZeroGPUConverter)
    slow = 100.0  # seconds per megapixel, as if measured on a slow share: durations well above the minimum

    conv.seconds_per_mp = slow
    photo = Image.open(photos["railway_crossing"]).convert("RGB")
    photo.thumbnail((256, 256))
    result = conv(np.asarray(photo), RunOptions(max_side=0, **FAST))
    assert result.image.size == photo.size
    assert spaces.calls[-1] == ("_photo_on_gpu", expected(conv, slow, photo.size[0] * photo.size[1], 1))
    assert conv.seconds_per_mp != slow  # the run was measured: later durations use this machine's speed

    smoother = FrameSmoother()
    frames = moving(photos["cars_bridge_forest"], 96, 64, 3)
    for i, rgb in enumerate(frames):
        per_mp = conv.seconds_per_mp
        out = conv.frame(rgb, RunOptions(**FAST), smoother)
        assert out.shape == rgb.shape
        assert spaces.calls[-1] == ("_frame_on_gpu", expected(conv, per_mp, 96 * 64, 1))
        assert smoother._values and smoother._thumb is not None, f"frame {i}: the stream's state came back"

    for n in (12, 36):  # a longer clip asks for more
        clip = write_clip(tmp_path / f"in{n}.mp4", moving(photos["cars_bridge_forest"], 128, 96, n))
        conv.seconds_per_mp = slow
        stats = conv.clip(clip, tmp_path / f"out{n}.mp4", RunOptions(max_side=0, **FAST))
        with av.open(str(tmp_path / f"out{n}.mp4")) as out:
            assert sum(1 for _ in out.decode(video=0)) == n == stats.frames
        assert spaces.calls[-1] == ("_clip_on_gpu", expected(conv, slow, 128 * 96, n))
    assert spaces.calls[-1][1] > spaces.calls[-2][1] > spaces.calls[0][1]

    conv.seconds_per_mp = 1e4  # a clip that would need more than ZeroGPU gives: the bound
    conv.clip(clip, tmp_path / "capped.mp4", RunOptions(max_side=0, **FAST))
    assert spaces.calls[-1] == ("_clip_on_gpu", 300)

    assert [name for name, _ in spaces.calls].count("_clip_on_gpu") == 3
    assert forward_log["outside"] == 0.0, "the model ran outside spaces.GPU"
    assert 0 < forward_log["inside"] <= spaces.gpu_seconds


def test_zerogpu_is_left_out_elsewhere(registry, monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    local = LocalConverter(registry)
    assert zerogpu.wrap(local) is local


def test_zerogpu_duration_follows_the_time_left(registry, spaces):
    conv = zerogpu.ZeroGPUConverter(LocalConverter(registry), max_duration=120)
    conv.seconds_per_mp = 100.0
    assert conv.duration(1_000_000, 10) == 120               # bounded by max_duration
    assert conv.duration(1_000_000, 10, left=45.0) == 45      # and by the request's own deadline
    assert conv.duration(10_000, 1) == zerogpu.MIN_DURATION_S  # never less than the minimum


class _OOMAbove:
    """inference.forward that runs out of memory for inputs above ``limit`` pixels a side."""

    def __init__(self, limit: int) -> None:
        self.limit, self.real, self.sizes = limit, inference.forward, []

    def __call__(self, model, x, precision="fp32", stats=None):
        self.sizes.append(tuple(x.shape[-2:]))
        if max(x.shape[-2:]) > self.limit:
            raise torch.OutOfMemoryError(f"injected: {tuple(x.shape)} above {self.limit}")
        return self.real(model, x, precision, stats)


def test_frames_take_the_photo_recovery_and_it_sticks(registry, photos, monkeypatch):
    """A webcam stream that runs out of memory continues in smaller tiles (the photo's recovery), and the next
    frames start there instead of failing again."""
    fake = _OOMAbove(limit=240)
    monkeypatch.setattr(inference, "forward", fake)
    conv = LocalConverter(registry)
    smoother = FrameSmoother()
    frames = moving(photos["kyoto_street_kimono"], 320, 216, 3)
    options = RunOptions(**FAST)
    first = conv.frame(frames[0], options, smoother)
    assert first.shape == frames[0].shape
    oversize = sum(1 for s in fake.sizes if max(s) > 240)
    assert oversize >= 1
    for rgb in frames[1:]:
        assert conv.frame(rgb, options, smoother).shape == rgb.shape
    assert sum(1 for s in fake.sizes if max(s) > 240) == oversize, "later frames started in the smaller tiles"
    run = conv._frame_run(options, 320, 216)
    assert run.plan.tiled and any(n.kind == "out_of_memory" for n in run.notices)


def test_frame_plans_are_per_converter_and_bounded(registry, photos):
    conv = LocalConverter(registry)
    base = np.asarray(Image.open(photos["railway_crossing"]).convert("RGB"))
    for side in range(32, 32 + 4 * (engine.FRAME_RUNS + 4), 4):
        conv.frame(np.ascontiguousarray(base[:side, :side]), RunOptions(**FAST))
    assert len(conv._runs) == engine.FRAME_RUNS
    assert not LocalConverter(registry)._runs  # another converter starts with none: no state shared by modules


def test_a_clip_and_a_photo_share_the_precision_rule(registry, photos, tmp_path: Path):
    clip = write_clip(tmp_path / "in.mp4", moving(photos["cars_bridge_forest"], 64, 48, 4))
    conv = LocalConverter(registry)
    stats = conv.clip(clip, tmp_path / "out.mp4", RunOptions(style="hayao", device="cpu"))
    photo = conv(str(photos["railway_crossing"]), RunOptions(style="hayao", device="cpu", max_side=64))
    assert stats.precision == photo.stats.precision and stats.device == photo.stats.device == "cpu"
    assert stats.style == "hayao" and stats.frames == 4


def test_the_pages_photos_clips_and_webcam_frames_all_run_inside_spaces_gpu(spaces: StandInSpaces,
                                                                             forward_log: dict[str, float],
                                                                             hayao_pt: Path, photos: dict) -> None:
    """The app's three tabs call one converter: on ZeroGPU each of their model runs is a spaces.GPU call."""
    import base64
    import io
    import shutil

    from animegan import Registry
    from animegan.serving import ServeConfig
    from animegan.ui import build_demo, gradio_upload_folder

    registry = Registry(weights={"hayao": hayao_pt}, offline=True)
    demo = build_demo(ServeConfig(device="cpu", offline=True, precision="fp32"), registry)
    assert isinstance(demo.animegan.converter, zerogpu.ZeroGPUConverter)
    folder = Path(gradio_upload_folder()) / f"zerogpu-app-{time.monotonic_ns()}"
    folder.mkdir(parents=True)
    try:
        photo = folder / "photo.jpg"
        shutil.copyfile(photos["railway_crossing"], photo)
        demo.animegan_photo.stylize({"path": str(photo)}, "hayao", 96, False, "whole", "keep", 0)
        clip = write_clip(folder / "clip.mp4", moving(photos["railway_crossing"], 64, 48, 6))
        demo.animegan_video.stylize_video({"path": str(clip)}, "hayao", 64, True, "whole", 0)
        buf = io.BytesIO()
        Image.fromarray(moving(photos["railway_crossing"], 64, 48, 1)[0]).save(buf, "JPEG")
        frame = {"url": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()}
        out, _, session = demo.animegan_webcam.mirror(frame, "hayao", True, None)
        assert out is not None and session is not None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ran = [name for name, _ in spaces.calls]
    assert ran == ["_photo_on_gpu", "_clip_on_gpu", "_frame_on_gpu"], ran
    assert all(seconds > 0 for _, seconds in spaces.calls)
    assert forward_log["outside"] == 0 and forward_log["inside"] > 0, forward_log
