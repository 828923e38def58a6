"""Pixels in and out: decode under limits, EXIF orientation, colour modes and alpha, resizing, PNG."""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000  # checked from the header, before any pixel is decoded
# The only decoders ever used. Pillow knows 40+ formats; some run external programs (EPS/PS start Ghostscript)
# or decode whole embedded images while opening (ICO/CUR). A photo app needs these six.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
FORMATS_TEXT = "PNG, JPEG, WebP, GIF, BMP or TIFF"
# A progressive JPEG is decoded once per scan: libjpeg's default progressive script has 10 scans, mozjpeg's
# optimised ones about 10-20. Thousands of tiny scans make a small file take minutes to decode.
MAX_JPEG_SCANS = 100
# Pillow's own bomb guard stays on as a second line: Image.open() raises above this many pixels (and warns above
# half of it) before decoding anything. Ours (``max_pixels``) is the one users see; see set_pillow_guard().
Image.MAX_IMAGE_PIXELS = 2 * DEFAULT_MAX_PIXELS

ImageSource = str | Path | bytes | Image.Image | np.ndarray

log = logging.getLogger(__name__)


class InvalidImageError(ValueError):
    """The input is not a usable image; the message says why."""


@dataclass(frozen=True)
class Photo:
    """A decoded photo ready for the model: RGB uint8 HxWx3, alpha kept apart."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    original_size: tuple[int, int]  # (width, height) after EXIF orientation
    downscaled: bool

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def pixels(self) -> np.ndarray:
        """HxWx3 RGB, or HxWx4 RGBA when the photo has alpha."""
        return self.rgb if self.alpha is None else np.dstack([self.rgb, self.alpha])


def open_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``source`` fully, refusing empty, broken, non-image and oversized inputs with a clear message."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        try:
            image = Image.fromarray(source)
        except TypeError as exc:
            raise InvalidImageError(f"array of shape {source.shape} and dtype {source.dtype} is not an image") from exc
    else:
        data = source if isinstance(source, bytes) else _read(Path(source))
        if not data:
            raise InvalidImageError("the file is empty")
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except UnidentifiedImageError as exc:
            raise InvalidImageError(f"the file is not a supported image ({FORMATS_TEXT})") from exc
        except Image.DecompressionBombError as exc:  # the header claims far more pixels than we allow
            raise InvalidImageError(f"the image is too large to decode safely ({exc}); the limit is "
                                    f"{max_pixels / 1e6:.0f} MP. Downscale it first.") from exc
        except MemoryError:
            raise
        except Exception as exc:  # a damaged header makes plugins raise OSError, SyntaxError, struct.error...
            raise InvalidImageError(f"the image data is truncated or corrupted ({type(exc).__name__}: {exc})") from exc
        if image.format == "JPEG" or image.format == "MPO":
            _check_jpeg_scans(data)
    w, h = image.size
    if w < 1 or h < 1:
        raise InvalidImageError(f"the image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise InvalidImageError(
            f"the image is {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is {max_pixels / 1e6:.0f} MP. Downscale it first."
        )
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"the image is too large to decode safely ({exc})") from exc
    except MemoryError:
        raise
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, EOFError... on bad data
        raise InvalidImageError(f"the image data is truncated or corrupted ({exc})") from exc
    return image


def count_jpeg_scans(data: bytes, stop_after: int = MAX_JPEG_SCANS + 1) -> int:
    """Start-of-scan markers in a JPEG's first image, found by walking its segments (no decoding).

    Entropy-coded data is skipped by searching for the next marker: inside it, 0xFF is followed by 0x00
    (stuffing) or a restart marker (0xD0-0xD7), never by anything else.
    """
    n, pos, end = 0, 2, len(data)
    while pos + 4 <= end and n < stop_after:
        if data[pos] != 0xFF:
            pos = data.find(b"\xff", pos)
            if pos < 0:
                break
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        pos += 2 + length
        if marker == 0xDA:  # start of scan: skip its entropy-coded data up to the next real marker
            n += 1
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= end:
                    return n
                nxt = data[pos + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    pos += 1 if nxt == 0xFF else 2
                    continue
                break
    return n


def _check_jpeg_scans(data: bytes) -> None:
    scans = count_jpeg_scans(data)
    if scans > MAX_JPEG_SCANS:
        raise InvalidImageError(f"the JPEG has more than {MAX_JPEG_SCANS} progressive scans, far more than any "
                                "camera or editor writes; it would take minutes to decode. Save it again as a normal JPEG")


def set_pillow_guard(max_pixels: int) -> None:
    """Keep Pillow's process-wide bomb guard at twice the largest ``max_pixels`` a caller allows.

    Pillow refuses above ``Image.MAX_IMAGE_PIXELS`` before our own, clearer check runs, so an app or CLI
    configured above the default limit must raise it; it is never lowered below the default's guard.
    """
    Image.MAX_IMAGE_PIXELS = max(2 * DEFAULT_MAX_PIXELS, 2 * int(max_pixels))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidImageError(f"no such file: {path}") from exc
    except IsADirectoryError as exc:
        raise InvalidImageError(f"{path} is a folder, not an image") from exc


def _to_rgb_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Any Pillow mode -> (RGB, optional L alpha); 16/32-bit and float greys are scaled to 8 bits."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = 65535.0 if mode.startswith("I") and arr.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8), "L")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode == "La":  # premultiplied grey: Pillow converts it only to LA
        image = image.convert("LA")
    mode = image.mode
    if mode in ("RGBA", "LA", "RGBa", "La"):
        image = image.convert("RGBA") if mode != "RGBA" else image
        return image.convert("RGB"), image.getchannel("A")
    if mode != "RGB":
        image = image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return image, None


def fit_within(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    w, h = size
    if not max_side or max(w, h) <= max_side:
        return w, h
    scale = max_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def load_photo(source: ImageSource, max_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode, apply EXIF orientation, split alpha, and downscale (LANCZOS, aspect kept) to ``max_side``."""
    image = open_image(source, max_pixels)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception as exc:  # noqa: BLE001 - a malformed EXIF block must not cost the user the photo
        log.info("EXIF orientation left as stored (%s: %s)", type(exc).__name__, exc)
    # Animated GIF/WebP/APNG: open_image() decoded the first frame, which is the one used. (Asking for
    # n_frames would walk every frame of the file: a cheap way for a hostile GIF to burn CPU.)
    rgb, alpha = _to_rgb_alpha(image)
    original = rgb.size
    target = fit_within(original, max_side)
    if target != original:
        rgb = rgb.resize(target, Image.LANCZOS)
        alpha = alpha.resize(target, Image.LANCZOS) if alpha is not None else None
    return Photo(
        rgb=np.asarray(rgb, dtype=np.uint8).copy(),
        alpha=np.asarray(alpha, dtype=np.uint8).copy() if alpha is not None else None,
        original_size=original,
        downscaled=target != original,
    )


def keep_brightness(styled: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """Upstream's optional post-step: scale the result so its mean luma matches the photo's."""
    weights = np.array([0.299, 0.587, 0.114])
    src = float((photo.reshape(-1, 3).mean(0) * weights).sum())
    dst = float((styled.reshape(-1, 3).mean(0) * weights).sum())
    if dst <= 0:
        return styled
    return np.clip(styled.astype(np.float32) * (src / dst) + 0.5, 0, 255).astype(np.uint8)


# BT.601 luma, the weights keep_brightness and JPEG's YCbCr use.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Bump when keep_color's rule changes (part of the result cache key).
KEEP_COLOR_VERSION = 1
# keep_color scales the photo's chroma by (styled luma / photo luma) within these bounds: wider lets a near-black
# photo pixel lend its noise-level chroma to a pixel the style brightened.
CHROMA_SCALE = (0.25, 2.0)


def keep_color(styled: np.ndarray, photo: np.ndarray, strength: float) -> np.ndarray:
    """The photo's colours under the style's lines and tones: luma stays the style's, chroma moves to the photo's.

    The photo's chroma (RGB minus luma, i.e. Cb/Cr) is scaled by the ratio of the style's luma to the photo's, so a
    pixel keeps the photo's hue and saturation at the brightness the style chose: where the style darkens (shadows,
    lines) the colour does not become garish, where it brightens (an anime sky) the colour does not wash out. The
    result is blended with the style's own chroma by ``strength`` (0: the styled image itself, 1: the photo's
    colours), then the chroma is shrunk, never the luma moved, where it would leave the RGB cube, so hues do not
    turn (clipping one channel turns skin orange). Pixel by pixel, no image statistics: a video's colours follow
    its frames and add no flicker. Same-size HxWx3 uint8 in and out.
    """
    if not strength > 0:  # 0 (and NaN) is off: the styled pixels themselves, untouched
        return styled
    if styled.shape != photo.shape:
        raise ValueError(f"keep_color needs the photo at the result's size: {photo.shape} vs {styled.shape}")
    strength = min(float(strength), 1.0)
    out = styled.astype(np.float32)
    src = photo.astype(np.float32)
    y_out = out @ LUMA
    y_src = src @ LUMA
    scale = np.clip((y_out + 1.0) / (y_src + 1.0), *CHROMA_SCALE)
    src -= y_src[..., None]                      # the photo's chroma (R-Y, G-Y, B-Y: Cb/Cr in another basis)
    src *= scale[..., None]
    out -= y_out[..., None]                      # the style's chroma
    out += strength * (src - out)
    out += y_out[..., None]
    # Out of the RGB cube (rare: bright, saturated pixels): shrink that pixel's chroma until it fits.
    r, g, b = out[..., 0], out[..., 1], out[..., 2]  # per channel: numpy's min over a last axis of 3 is slow
    bad = (np.minimum(np.minimum(r, g), b) < 0) | (np.maximum(np.maximum(r, g), b) > 255)
    if bad.any():
        y = y_out[bad][:, None]
        chroma = out[bad] - y
        room = np.where(chroma > 0, 255.0 - y, y)
        with np.errstate(divide="ignore", invalid="ignore"):
            fit = np.where(np.abs(chroma) > 1e-3, room / np.abs(chroma), np.inf)
        out[bad] = y + chroma * np.minimum(fit.min(axis=1), 1.0)[:, None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def match_photo(styled: np.ndarray, photo: np.ndarray, *, brightness: bool = False, color: float = 0.0) -> np.ndarray:
    """The post-steps every path (photos, portrait parts, video frames, webcam) applies to a styled image, in one
    order: keep brightness first (one gain on the whole image), then keep colour (the photo's chroma at the luma
    that results), so the two switches combine: the photo's mean brightness, and its colours at that brightness."""
    if brightness:
        styled = keep_brightness(styled, photo)
    return keep_color(styled, photo, color)


def to_image(rgb: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    image = Image.fromarray(rgb, "RGB")
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha, "L"))
    return image


def encode_png(image: Image.Image, compress_level: int = 3) -> bytes:
    """Every result is encoded once per request. zlib level 3 instead of Pillow's 6: a 1024x694 result took 63 ms
    instead of 161 ms, for a file 6% larger (level 1: 47 ms, 10% larger)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two 8-bit images in dB (inf when equal): how fidelity is judged everywhere."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * float(np.log10(255.0**2 / mse))


def side_by_side(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The input (left) beside the result (right) in one picture, as people share them: no border, exactly twice the
    result's width and its height, so either half can be cut back out (:func:`halves`); the right half is ``after``
    bit for bit. The one composition of photos and video frames.

    ``before`` is the input as the model saw it; one of another size is resized to the result's (LANCZOS). Channels
    follow the result's: an RGBA result gets an opaque alpha on the left when the input has none.
    """
    h, w = after.shape[:2]
    if before.shape[:2] != (h, w):
        before = np.asarray(Image.fromarray(before).resize((w, h), Image.LANCZOS))
    channels = after.shape[2]
    if before.shape[2] > channels:
        before = before[..., :channels]
    elif before.shape[2] < channels:
        before = np.dstack([before, np.full((h, w, channels - before.shape[2]), 255, np.uint8)])
    return np.concatenate([before, after], axis=1)


def halves(image: Image.Image) -> tuple[Image.Image, Image.Image]:
    """A side-by-side picture cut back into (input, result)."""
    w, h = image.size
    return image.crop((0, 0, w // 2, h)), image.crop((w // 2, 0, w, h))


SIDE_BY_SIDE_SUFFIX = "side_by_side"


def result_name(stem: str, style: str, ext: str = "png", n: int = 1, side_by_side: bool = False) -> str:
    """The one naming rule for results (CLI and web UI): ``<stem>_<style>.png``, ``_2``, ``_3``... for repeats;
    ``<stem>_<style>_side_by_side.png`` for the input beside the result."""
    layout = f"_{SIDE_BY_SIDE_SUFFIX}" if side_by_side else ""
    return f"{stem}_{style}{layout}{'' if n <= 1 else f'_{n}'}.{ext.lstrip('.')}"
