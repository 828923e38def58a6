"""Every text the app shows or answers with: errors a user can act on, the notices under results, the panels, the
API descriptions. Nothing here holds state; each function gets what it words."""
from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import torch

from .. import imaging, memory, video
from ..engine import ConversionTimeout, OutOfMemory, RunStats
from ..framing import DetectorMissing
from ..imaging import InvalidImageError
from ..memory import DeviceError
from ..registry import Registry
from ..styles import GROUPS, StyleSpec, UnknownStyleError
from ..upload_gate import REFUSED
from ..weights import WeightsError, WeightsMissingError
from .inputs import MAX_SIDE_LIMIT
from .watch import ClientGone, Stopped

log = logging.getLogger("animegan.app")

# Error titles that end a request without a failed conversion: its user stopped it or left, or asked for a style
# whose weights are not here (the style's state is in the Styles panel, not a conversion that went wrong).
STOPPED_TITLE = "Stopped"  # its user pressed Stop
STOPPED_TITLES = (STOPPED_TITLE, "Client gone")
UNAVAILABLE_TITLES = ("Style unavailable",)
STOPPED_NOTICE = "**Stopped:** the conversion was stopped; nothing was kept."

# What each endpoint takes, for requests whose inputs Gradio itself cannot parse (:func:`bad_request`).
STYLIZE_TAKES = ("/stylize takes a photo file (uploaded first), a style id, a max side in pixels, true/false for keep "
                 "brightness, a framing, a background, a keep-colours strength from 0 to 1 and true/false for side by "
                 "side (eight values; gradio_client fills in the last four)")
VIDEO_TAKES = ("/stylize_video takes a video file (uploaded first), a style id, a max side in pixels, true/false for "
               "temporal smoothing, a framing, a keep-colours strength from 0 to 1 and true/false for side by side "
               "(seven values; gradio_client fills in the last three)")
WEBCAM_TAKES = ("This webcam frame can't be used: the webcam mirror takes a frame from the webcam (a JPEG, PNG or "
                "WebP image, as the Webcam mirror tab sends it), a style id, true/false for temporal smoothing and a "
                "keep-colours strength from 0 to 1.")


# -- errors -----------------------------------------------------------------------------------------
def page_error(exc: gr.Error) -> str:
    """A failure as the notice area shows it (a toast alone vanishes after a few seconds)."""
    return f"**{exc.title or 'Error'}:** {exc.message}"


def no_style() -> gr.Error:
    return gr.Error("Choose a style first.", title="No style chosen", print_exception=False)


def unknown_style(exc: UnknownStyleError) -> gr.Error:
    return gr.Error(str(exc), title="Unknown style", print_exception=False)


def file_refused(noun: str) -> gr.Error:
    """Gradio's own file check refused the request's file: the same answer as the upload gate's."""
    return gr.Error(REFUSED.replace("photo", noun), title=f"Unusable {noun}", print_exception=False)


def bad_request(takes: str) -> gr.Error:
    """A request whose inputs do not fit the endpoint, with what the endpoint takes."""
    return gr.Error(f"This request's inputs do not fit the endpoint: {takes}; see the API page.",
                    title="Bad request", print_exception=False)


def user_error(exc: BaseException, spec: StyleSpec, max_side: int,
               shown: Callable[[str], str] | None = None) -> gr.Error:
    """Every failure becomes a readable message; only unexpected ones are logged with their traceback.
    ``shown``: how a message that may hold server paths is put on the page (``StylizeApp.page_text``; None:
    :func:`public_text`)."""
    shown = shown or public_text
    if isinstance(exc, InvalidImageError):
        return gr.Error(f"This photo can't be used: {str(exc).rstrip('.')}.", title="Unusable photo", print_exception=False)
    if isinstance(exc, Stopped):
        log.info("conversion stopped by its user with Stop (style %s)", spec.id)
        return gr.Error("Stopped: the conversion was stopped; nothing was kept.", title=STOPPED_TITLE,
                        print_exception=False)
    if isinstance(exc, ClientGone):
        log.info("conversion stopped (style %s): %s", spec.id, exc)
        return gr.Error(f"Stopped: {exc}.", title="Client gone", print_exception=False)
    if isinstance(exc, ConversionTimeout):
        log.warning("conversion timed out (style %s, max side %s): %s", spec.id, max_side or "native", exc)
        return gr.Error(f"This conversion took too long and was {exc}. Try a smaller 'Max side' "
                        f"({'for example 1024' if max_side == 0 or max_side > 1024 else 'or a smaller photo'}).",
                        title="Too slow", print_exception=False)
    if isinstance(exc, WeightsMissingError):
        return gr.Error(f"The {spec.name} style is unavailable: {shown(str(exc))}", title="Style unavailable",
                        print_exception=False)
    if isinstance(exc, WeightsError):
        return gr.Error(f"The {spec.name} style could not be loaded: {shown(str(exc))}", title="Style unavailable",
                        print_exception=False)
    if isinstance(exc, OutOfMemory) or memory.is_out_of_memory(exc):
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        log.warning("out of memory (style %s, max side %s): %s", spec.id, max_side or "native", exc)
        hint = "a smaller 'Max side' (for example 1024 or 768)" if max_side == 0 or max_side > 768 else \
            "a smaller 'Max side' or a smaller photo"
        return gr.Error(f"Ran out of memory while stylizing at {'native size' if max_side == 0 else f'max side {max_side}'}. "
                        f"Try again with {hint}; other conversions running at the same time also use memory.",
                        title="Out of memory", print_exception=False)
    if isinstance(exc, DetectorMissing):
        return gr.Error(f"Face framing is unavailable on this server: {exc}", title="Server setup", print_exception=False)
    if isinstance(exc, ValueError) and str(exc).startswith(("unknown background", "unknown framing")):
        return gr.Error(f"{str(exc)[:1].upper()}{str(exc)[1:]}.", title="Bad request", print_exception=False)
    if isinstance(exc, DeviceError):
        return gr.Error(f"The server's device setting is unusable: {exc}", title="Server setup", print_exception=False)
    ref = uuid.uuid4().hex[:8]
    log.error("conversion failed (ref %s, style %s, max side %s)", ref, spec.id, max_side, exc_info=exc)
    return gr.Error(f"Something went wrong while converting this photo (reference {ref}; the details are in the "
                    "server log). Try again, or try another photo or a smaller 'Max side'.",
                    title="Conversion failed", print_exception=False)


def video_error(exc: Exception, spec: StyleSpec, side: int | None) -> gr.Error:
    """The photo's mapping (:func:`user_error`) where it fits a video too; a video's own words where it does not."""
    if isinstance(exc, ConversionTimeout):
        log.warning("video conversion timed out (style %s, max side %s): %s", spec.id, side, exc)
        return gr.Error(f"This video took too long and was {exc}. Try a smaller 'Max side' (for example 480) or a "
                        "shorter clip.", title="Too slow", print_exception=False)
    if isinstance(exc, OutOfMemory) or memory.is_out_of_memory(exc):
        log.warning("out of memory in a video (style %s, max side %s): %s", spec.id, side, exc)
        return gr.Error("Ran out of memory while stylizing this video. Try a smaller 'Max side' (for example 480); "
                        "other conversions running at the same time also use memory.", title="Out of memory",
                        print_exception=False)
    if isinstance(exc, (ClientGone, WeightsError, DeviceError)):
        return user_error(exc, spec, side or 0)
    ref = uuid.uuid4().hex[:8]
    log.error("video conversion failed (ref %s, style %s, max side %s)", ref, spec.id, side, exc_info=exc)
    return gr.Error(f"Something went wrong while converting this video (reference {ref}; the details are in the "
                    "server log). Try again, or try another clip or a smaller 'Max side'.",
                    title="Conversion failed", print_exception=False)


# -- notices ----------------------------------------------------------------------------------------
def notice(stats: RunStats, style_name: str | None = None) -> str:
    """The plain-text line shown under the result (and returned by the API): size, time, memory, downscaling."""
    w, h = stats.output_size
    parts = [(f"{style_name or stats.style.title()} style: {w}x{h} px in {stats.seconds:.2f} s on {stats.device} "
              f"in {stats.precision} (peak memory {memory.fmt_bytes(stats.peak_memory)}, {stats.peak_memory_kind}).")]
    if stats.cached:
        parts = [(f"{style_name or stats.style.title()} style: {w}x{h} px from the cache, converted earlier "
                  f"(the same photo, style and settings; answered in {memory.fmt_seconds(stats.seconds)}).")]
    if stats.downscaled:
        ow, oh = stats.original_size
        parts.append(f"Your photo was downscaled from {ow}x{oh} to {stats.input_size[0]}x{stats.input_size[1]} "
                     "by 'Max side'; set it to 0 for the native size.")
    parts += [n[:1].upper() + n[1:] + ("" if n.endswith(".") else ".")
              for n in stats.notices if getattr(n, "kind", "") != "downscaled"]
    return " ".join(parts)


def video_notice(stats: video.VideoStats, style_name: str, info: video.VideoInfo) -> str:
    """The line under the result (and the API's second output): frames, sizes, time, speed, sound."""
    w, h = stats.output_size
    speed = stats.processing_fps
    sound = {"copied": "sound copied as it was", "aac": "sound re-encoded to AAC", "none": "no sound in the input"}
    parts = [(f"{style_name} style: {stats.frames} frames at {w}x{h} px, {stats.fps_in:g} fps, "
             f"in {memory.fmt_seconds(stats.seconds)} ({speed:.1f} frames/s{_where(stats)}); "
             f"{sound.get(stats.audio_mode, 'sound: ' + stats.audio_mode)}; "
             f"{'temporal smoothing on' if stats.temporal else 'per-frame (no smoothing)'}.")]
    iw, ih = stats.input_size
    if (iw, ih) != stats.frame_size and stats.framing == "whole":
        parts.append(f"Downscaled from {iw}x{ih} by 'Max side'; set it to 0 for the native size.")
    parts += [n[:1].upper() + n[1:] + ("" if n.endswith(".") else ".")
              for n in stats.notices if getattr(n, "kind", "") != "downscaled"]
    return " ".join(parts)


def _where(stats: video.VideoStats) -> str:
    device, precision = getattr(stats, "device", ""), getattr(stats, "precision", "")
    return (f" on {device}" if device else "") + (f" in {precision}" if precision else "")


def side_info(value: Any) -> str:
    """The max-side box's line for its current value: the browser clamps a typed -5 to 0 and 99999 to the
    limit without a word, so the line says where the value ended up and what it does."""
    try:
        side = int(float(value))
    except (TypeError, ValueError, OverflowError):
        side = -1
    if side <= 0:
        return ("0 = native size: the photo's own size, the slowest setting (values below 0 become 0; "
                "large photos run in tiles).")
    if side >= MAX_SIDE_LIMIT:
        return f"{MAX_SIDE_LIMIT} px is the largest max side (larger values become {MAX_SIDE_LIMIT}; 0 = native size)."
    return f"Longer side of the result: photos larger than {side} px are downscaled. 0 = native size."


# -- API descriptions -------------------------------------------------------------------------------
def stylize_doc(styles: tuple[StyleSpec, ...]) -> str:
    """The /stylize API's description (the API page and the MCP tool read it), written from the style files."""
    ids = ", ".join(f'"{s.id}" ({s.name})' for s in styles)
    portraits = ", ".join(s.id for s in styles if s.is_portrait) or "none here"
    scenes = ", ".join(s.id for s in styles if not s.is_portrait)
    return f"""Turn a photo into anime art in one AnimeGANv2 style; the result has the photo's size (up to max_side).

    Args:
        image: the photo to convert ({imaging.FORMATS_TEXT}), uploaded as a file; transparency and EXIF orientation are kept.
        style: style id, one of {ids}.
        max_side: longest side of the result in pixels; larger photos are downscaled first. 0 keeps the native size.
        keep_brightness: true to match the photo's overall brightness (upstream's optional post-step).
        framing: "face" (default), "center", "whole" or "paste"; portrait styles ({portraits}) only, scene styles ignore it. face: the largest face in a square at the style's training size; center: the centre square; whole: the whole photo; paste: every face stylised and pasted back into the whole photo.
        background: with framing "paste": "keep" (default) keeps the rest of the photo as it is; a scene style id ({scenes}) stylises it.
        keep_color: 0 (default) to 1: how far the result takes the photo's own colours under the style's lines and tones; 1 gives the photo's colours.
        side_by_side: true for one PNG with the photo as the model saw it (upright, resized, framed) on the left and the result on the right, exactly twice as wide; false (default) for the result alone.

    Returns:
        the stylized picture as a PNG file, and a one-line notice (size, time, device, memory, downscaling).
    """


def stylize_video_doc(styles: tuple[StyleSpec, ...], limits: video.VideoLimits) -> str:
    """The /stylize_video API's description (the API page and the MCP tool read it), written from the styles."""
    ids = ", ".join(f'"{s.id}" ({s.name})' for s in styles)
    portraits = ", ".join(s.id for s in styles if s.is_portrait) or "none here"
    return f"""Turn a video clip into anime art in one AnimeGANv2 style, frame by frame, keeping its sound.

    Args:
        video_file: the clip (MP4, MOV, WebM, MKV...: anything FFmpeg reads), uploaded as a file; at most {limits.max_seconds:g} s and {limits.max_frames} frames.
        style: style id, one of {ids}.
        max_side: longest side of the result in pixels (default {video.VIDEO_DEFAULT_MAX_SIDE}); larger clips are downscaled first. 0 keeps the native size.
        temporal: true (default) to smooth the tones across frames (no flicker); false for independent frames.
        framing: "whole" (default): the whole frame; "center": portrait styles ({portraits}) only, the centre square of every frame at the style's training size (scene styles ignore it).
        keep_color: 0 (default) to 1: how far the result takes the clip's own colours under the style's lines and tones, frame by frame.
        side_by_side: true for every frame's input on the left and its result on the right, exactly twice as wide, with the sound; false (default) for the result alone.

    Returns:
        the stylized clip as an MP4 file (H.264, the input's frames, timing and sound), and a one-line notice.
    """


# -- the page's panels and labels -------------------------------------------------------------------
def licence_lines(styles: tuple[StyleSpec, ...]) -> str:
    """The footer's licence text: each distinct licence of the styles, once."""
    return " ".join(dict.fromkeys(s.licence for s in styles))


def style_label(spec: StyleSpec, ok: bool) -> str:
    """The choice's text, headed by its group (Scenes, Portraits)."""
    return (f"{GROUPS.get(spec.group, spec.group)} · {spec.name}: {spec.description}"
            + ("" if ok else " (unavailable, see Styles below)"))


def style_choices(styles: tuple[StyleSpec, ...], availability: dict[str, tuple[bool, str]]) -> list[tuple[str, str]]:
    """The style radio's choices: (label, style id), each label saying whether the style can run."""
    return [(style_label(s, availability.get(s.id, (False, ""))[0]), s.id) for s in styles]


def styles_markdown(styles: tuple[StyleSpec, ...], availability: dict[str, tuple[bool, str]],
                    shown: Callable[[str], str] | None = None) -> str:
    shown = shown or public_text
    lines = ["**Styles**"]
    for spec in styles:
        ok, why = availability.get(spec.id, (False, "unknown"))
        lines.append(f"- {spec.name}: {'available' if ok else 'unavailable'}, {shown(why)}")
    return "\n".join(lines)


_SERVER_PATH = re.compile(r"(?<![\w:/.])/[^\s,;()'\"]+")


def public_text(text: str) -> str:
    """Server paths -> their last component: a public page need not show the server's folders (the log keeps them)."""
    def name(m: re.Match) -> str:
        path = m.group(0)
        tail = path[len(path.rstrip(".")):]
        return (Path(path.rstrip(".")).name or path) + tail
    return _SERVER_PATH.sub(name, text)


def memory_markdown(registry: Registry, gauge: dict[str, int], workers: int, last_run: Any,
                    zero_gpu: bool) -> str:
    """The live memory panel: GPU and process memory, the conversions so far, the last run, the loaded styles.
    ``last_run``: the app's ``LastRun`` or None; ``zero_gpu``: GPU readings come from inside the GPU function."""
    report = memory.memory_report()
    lines = [f"**Memory** (at {time.strftime('%H:%M:%S')})"]
    gpus = [] if zero_gpu else report.gpus
    if zero_gpu:  # this process holds no GPU between runs: the last run's own peak (below) is the reading there
        lines.append("- ZeroGPU: a GPU is attached only while a conversion runs; see the last run's peak below")
    if gpus:
        for g in gpus:
            mine = f", this process {memory.fmt_bytes(g.process_used)}" if g.process_used is not None else ""
            util = f", {g.utilization}% busy" if g.utilization is not None else ""
            lines.append(f"- GPU {g.index} {g.name}: {memory.fmt_bytes(g.used)} / {memory.fmt_bytes(g.total)} used{mine}{util}")
    elif not zero_gpu:
        lines.append(f"- No GPU readings: {report.nvml_status or 'no NVIDIA GPU'}. Conversions run on the CPU."
                     if not torch.cuda.is_available() else f"- NVML unavailable ({report.nvml_status})")
    if report.torch_cuda:
        t = report.torch_cuda
        lines.append(f"- torch CUDA: allocated {memory.fmt_bytes(t['allocated'])}, reserved {memory.fmt_bytes(t['reserved'])},"
                     f" peak {memory.fmt_bytes(t['peak'])}")
    lines.append(f"- Process RSS {memory.fmt_bytes(report.rss)}; system RAM available {memory.fmt_bytes(report.ram_available)}"
                 f" of {memory.fmt_bytes(report.ram_total)}")
    g = gauge
    lines.append(f"- Conversions: {g['running']} running (limit {workers}), {g['succeeded']} done, "
                 f"{g['stopped']} stopped, {g['failed']} failed"
                 + (f"; {g['unavailable']} asked for an unavailable style" if g["unavailable"] else ""))
    if last_run:
        s = last_run.stats
        what = f"- Last run: {_style_name(registry, s.style)} {s.output_size[0]}x{s.output_size[1]}"
        if hasattr(s, "frames"):  # a video (video.VideoStats)
            lines.append(f"{what} video, {s.frames} frames on {s.device} in {memory.fmt_seconds(s.seconds)} "
                         f"({s.processing_fps:.1f} frames/s)")
        elif s.cached:  # the model did not run: no device time or peak to report
            lines.append(f"{what} from the cache, converted earlier (answered in {memory.fmt_seconds(s.seconds)})")
        else:
            lines.append(f"{what} on {s.device} in {memory.fmt_seconds(s.seconds)}, "
                         f"peak {memory.fmt_bytes(s.peak_memory)} ({s.peak_memory_kind})")
    loaded = registry.loaded()
    if loaded:
        lines.append("- Loaded styles: " + ", ".join(
            f"{m.spec.name} ({m.key.device}, {m.key.precision}, {memory.fmt_bytes(m.param_bytes)})" for m in loaded))
    else:
        lines.append("- Loaded styles: none yet (a style loads on its first conversion)")
    return "\n".join(lines)


def _style_name(registry: Registry, style_id: str) -> str:
    try:
        return registry.style(style_id).name
    except UnknownStyleError:
        return style_id
