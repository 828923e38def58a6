"""Temporal state of a stream of frames (a video, a webcam session): layer statistics smoothed across frames.

AnimeGANv2 normalises each layer over the whole frame, so a still background changes tone when something moves.
:class:`FrameSmoother` keeps a running average of every layer's (mean, var) across frames and blends each frame's
own into it in the same forward pass (``NormStats`` "smooth"), and starts again at a scene cut (a large change of a
tiny greyscale copy of the frame). It needs no video library: the webcam and the Ray replicas use it too.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch
from PIL import Image

from .model import NormStats

DEFAULT_MOMENTUM = 0.9            # weight of the running statistics against a frame's own (bench/video_bench.py flicker)
CUT_THRESHOLD = 24.0              # mean |change| (0-255) of a 32x32 grey copy between frames that starts a new scene
THUMB_SIDE = 32


class FrameSmoother:
    """Temporal state of one stream of frames (a video, a webcam session): layer statistics across frames.

    ``momentum``: weight of the running (mean, var) of every layer norm against the frame's own (0: plain
    per-frame runs). The average starts again at a scene cut, and when the frame size or the model changes.
    """

    def __init__(self, momentum: float = DEFAULT_MOMENTUM, cut_threshold: float = CUT_THRESHOLD) -> None:
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), not {momentum}")
        self.momentum = momentum
        self.cut_threshold = cut_threshold
        self.cuts = 0
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the running statistics: the next frame runs as if it were the first."""
        self._values: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._thumb: np.ndarray | None = None
        self._key: tuple | None = None

    def norm_stats(self, rgb: np.ndarray, key: tuple = ()) -> NormStats:
        """The statistics one frame's forward pass smooths into (starting again at a cut or a new key)."""
        with self._lock:
            return NormStats(mode="smooth", values=self._running(rgb, key), momentum=self.momentum)

    def _running(self, rgb: np.ndarray, key: tuple) -> list[tuple[torch.Tensor, torch.Tensor]]:
        thumb = thumbnail(rgb)
        key = (rgb.shape, *key)
        if self._key != key:
            self.reset()
            self._key = key
        elif self._thumb is not None and float(np.abs(thumb - self._thumb).mean()) > self.cut_threshold:
            self._values = []
            self.cuts += 1
        self._thumb = thumb
        return self._values

    def place(self, device: torch.device) -> None:
        """Keep the running statistics on ``device`` (a state that crossed processes arrives on the CPU)."""
        with self._lock:
            if self._values and self._values[0][0].device != device:
                self._values = [(m.to(device), v.to(device)) for m, v in self._values]

    def adopt(self, other: FrameSmoother) -> None:
        """Take ``other``'s state: what a model server returns after running this stream's frames."""
        state = other.__getstate__()
        with self._lock:
            self.__dict__.update(state)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (to and from Ray replicas): without the lock, the statistics on the CPU."""
        with self._lock:
            state = {k: v for k, v in self.__dict__.items() if k != "_lock"}
            state["_values"] = [(m.cpu(), v.cpu()) for m, v in self._values]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A 32x32 grey copy (float32, 0-255): what scene cuts are detected on, for well under a millisecond."""
    return np.asarray(Image.fromarray(rgb).convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.BILINEAR),
                      dtype=np.float32)


