"""What the page and the API send, read into the values a conversion runs with (or a ``gr.Error`` that says why not).

Inputs arrive unprocessed (``preprocess=False``): a slider's number, a checkbox's bool, or whatever a raw HTTP
request puts there. Every tab reads its inputs here, so each rule has one wording.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import gradio as gr

from .. import flags
from ..clips import is_video_framing
from ..framing import FRAMINGS, KEEP, is_framing
from ..options import check_keep_color

# The slider's end and the largest max side a request may ask for (0 = native size goes beyond it): a 50 MP
# photo's longer side is at most about 8700 px at 4:3, so larger values only ever meant "native".
MAX_SIDE_LIMIT = 8192


def safe_stem(name: str | Path) -> str:
    """A file name's stem, safe to name a result after (60 characters of letters, digits, - and _)."""
    stem = Path(str(name)).stem[:60] or "photo"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)


def max_side(value: Any) -> int:
    """The Max side input: pixels of the longer side, 0 (or nothing) for the native size."""
    if value is None or value == "":
        return 0
    try:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        side = round(number)
    except (TypeError, ValueError, OverflowError):
        shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:20] + "..."
        raise gr.Error(f"Max side must be a number of pixels (0 for native size), got {shown}.",
                       title="Bad max side", print_exception=False) from None
    if side < 0:
        raise gr.Error("Max side must be 0 (native size) or a positive number of pixels.", title="Bad max side",
                       print_exception=False)
    if side > MAX_SIDE_LIMIT:
        raise gr.Error(f"Max side can be at most {MAX_SIDE_LIMIT} px; use 0 for the photo's native size.",
                       title="Bad max side", print_exception=False)
    return side


def video_side(value: Any) -> int | None:
    """None or empty: the engine's default for videos (720 px); otherwise the photos' rule (0 = native)."""
    if value is None or value == "":
        return None
    return max_side(value)


def keep_color_value(value: Any) -> float:
    """The Keep colours input (a slider's number, or what a raw request sends): None or empty is off."""
    if value is None or value == "":
        return 0.0
    try:
        return check_keep_color(float(value) if isinstance(value, str) else value)
    except ValueError:
        raise gr.Error("Keep colours must be a number from 0 (the style's colours) to 1 (the photo's own colours).",
                       title="Bad keep colours", print_exception=False) from None


def framing(value: Any) -> str | None:
    """The photo's framing choice (None or "": the style's default); a scene style ignores it."""
    text = str(value or "").strip().lower()
    if not is_framing(text):
        raise gr.Error(f"Framing must be one of {', '.join(FRAMINGS)}, not {text[:24]!r}.", title="Bad framing",
                       print_exception=False)
    return text or None


def video_framing(value: Any) -> str:
    """The Video tab's framing: whole (default) or center (portrait styles; scene styles run whole frames)."""
    text = str(value or "whole").strip().lower()
    if not is_video_framing(text):
        raise gr.Error(f"Video framing must be whole or center, not {text[:24]!r}: a face found anew in every "
                       "frame would shake the picture.", title="Bad framing", print_exception=False)
    return text


def background(value: Any) -> str:
    """The paste framing's background: keep (default) or a scene style id (checked by the engine)."""
    return str(value or KEEP).strip().lower()


def on_off(value: Any, name: str, default: bool = False) -> bool:
    """The one reading of an on/off input (keep brightness, temporal smoothing, side by side): a checkbox's bool;
    from a raw request also None or "" (the default, as an older client's missing value), 0 or 1, or a
    ``flags.TRUE`` / ``flags.FALSE`` spelling. Anything else is refused by name, not guessed: a mistyped request
    should not silently get another result than it asked for."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # junk falls through to the message
            return bool(flags.truthy(value))
    shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:20] + "..."
    raise gr.Error(f"{name} must be true or false, not {shown}.", title=f"Bad {name.lower()}",
                   print_exception=False)


def flag(value: Any) -> bool:
    """The Keep brightness checkbox (off unless it says on)."""
    return on_off(value, "Keep brightness")


def temporal(value: Any) -> bool:
    """The temporal smoothing input of the Video and Webcam tabs: on unless it says off (None is on)."""
    return on_off(value, "Temporal smoothing", default=True)


def side_by_side(value: Any) -> bool:
    """The Side by side checkbox (photos and videos): off unless it says on."""
    return on_off(value, "Side by side")
