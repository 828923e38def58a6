"""What every caller of the engine says about one conversion: one frozen :class:`RunOptions`, built once.

The app, the CLI and a Ray replica each build their options from their own settings and hand them to a
:class:`~animegan.engine.Converter`; nothing re-packs the same keywords along the way. Typed signals go back
up: :class:`Notice` (what happened, by kind) in the result's stats, and the engine's exceptions.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Literal, Self

from .imaging import DEFAULT_MAX_PIXELS

NoticeKind = Literal["downscaled", "tiled", "out_of_memory", "cpu_fallback", "precision", "framing", "other"]


class Notice(str):
    """A line for the user, with its kind: callers choose by kind (the UI words downscaling itself), never by text.

    A ``str`` subclass, so printing, joining and ``in`` keep working where a notice is just text.
    """

    kind: NoticeKind

    def __new__(cls, kind: NoticeKind, text: str) -> Self:
        self = super().__new__(cls, text)
        self.kind = kind
        return self

    def __reduce__(self) -> tuple:  # pickled across processes (Ray replicas) with its kind
        return Notice, (self.kind, str(self))


def downscaled_notice(before: tuple[int, int], after: tuple[int, int], max_side: int, what: str = "") -> Notice:
    """The one wording of "the input was made smaller by max side" (photos, framed photos, a clip's frames);
    ``what`` names the thing when it is not the photo ("frames ")."""
    return Notice("downscaled", f"{what}downscaled from {before[0]}x{before[1]} to {after[0]}x{after[1]} "
                                f"(max side {max_side}); set max side 0 for native size")


def side_by_side_notice(size: tuple[int, int]) -> Notice:
    """The one wording of "the input was put beside the result" (photos and videos); ``size``: each half's."""
    return Notice("other", f"side by side: the input (left) and the result (right), {size[0]}x{size[1]} each, "
                           f"in one picture {2 * size[0]}x{size[1]}")


@dataclass(frozen=True)
class RunOptions:
    """One conversion's settings. ``None`` means "the default for this style and device"."""

    style: str = "hayao"
    device: str = "auto"
    precision: str | None = None          # None: fp16 on CUDA, fp32 on the CPU
    max_side: int | None = None           # None: the style's recommended size; 0: native size
    keep_brightness: bool = False
    keep_color: float = 0.0               # 0: off; 1: the photo's colours under the style's lines and tones
    max_pixels: int = DEFAULT_MAX_PIXELS
    memory_budget: int | str | None = None  # bytes or "2G"; None: memory.default_budget (one user)
    tile: int | None = None               # None: from the budget; 0: whole image; N: N px tiles
    deadline: float | None = None         # time.monotonic() the run must not pass; None: no limit
    timeout_s: float | None = None        # the limit the deadline came from, for messages
    framing: str | None = None            # portraits: face (None: the default), center, whole, paste; scenes: ignored
    background: str = "keep"              # paste: keep the photo around the faces, or a scene style's id
    side_by_side: bool = False            # the input (as the model saw it) left of the result, twice as wide

    def __post_init__(self) -> None:
        check_keep_color(self.keep_color)

    def replace(self, **changes: object) -> RunOptions:
        return dataclasses.replace(self, **changes)

    def with_timeout(self, seconds: float | None) -> RunOptions:
        """A deadline ``seconds`` from now (None or 0: none)."""
        if not seconds:
            return self.replace(deadline=None, timeout_s=None)
        return self.replace(deadline=time.monotonic() + seconds, timeout_s=seconds)

    def photo_side(self, style_side: int) -> int:
        """The max side a photo runs at (the one rule: engine, framing, ZeroGPU's estimate): ``max_side``, or the
        style's recommended size when it is None; 0 is the native size. Raises for a negative side."""
        limit = style_side if self.max_side is None else self.max_side
        if limit < 0:
            raise ValueError(f"max side must be 0 (native size) or a positive number of pixels, not {limit}")
        return limit

    def seconds_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def portable(self) -> tuple[RunOptions, float | None]:
        """The options without the monotonic deadline, and the seconds left: for another process or machine,
        whose monotonic clock is not comparable (see :meth:`rebased`)."""
        return self.replace(deadline=None), self.seconds_left()

    def rebased(self, seconds_left: float | None) -> RunOptions:
        if seconds_left is None:
            return self.replace(deadline=None)
        return self.replace(deadline=time.monotonic() + max(seconds_left, 0.001))


def check_keep_color(value: object) -> float:
    """The one rule for a keep-colour strength (every caller: library, CLI, app, replicas): a number from 0 to 1."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if isinstance(value, (str, bytes)) or not math.isfinite(number) or not 0.0 <= number <= 1.0:
        shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:20] + "..."
        raise ValueError(f"keep colour must be a number from 0 (off) to 1 (the photo's colours), not {shown}")
    return number
