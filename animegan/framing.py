"""Framing a portrait: find faces on a small copy of the photo, choose the square a portrait style sees, paste back.

Portrait weights were trained on face squares of one size (``StyleSpec.train_size``: 512 or 256 px), so what they
are shown matters more than for scene styles. The modes (:data:`FRAMINGS`):

* ``face`` (portrait styles' default): the largest detected face, in a square :data:`MARGIN` times the detector's
  box side, centred on the box, eyes levelled when both are found; resized to the training size. No face: ``center``,
  with a notice saying so.
* ``center``: the centre square (the best-known AnimeGANv2 demo's framing), resized to the training size.
* ``whole``: the whole photo at its own size (max side applies), as scene styles run.
* ``paste``: every face's square is stylised at the training size and blended back into the full photo through a
  feathered round mask; the rest is kept as it is or stylised by a scene style (``background``).

The detector is OpenCV's Haar cascade (``cv2.data`` of opencv-python(-headless) 4.x ships the model files; 5.x ships
none), chosen over MTCNN by ``bench/detectors.py``; it is imported only when a portrait is framed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

FRAMINGS = ("face", "center", "whole", "paste")
DEFAULT_FRAMING = "face"
KEEP = "keep"            # paste's background: the photo as it is (else a scene style's id)
DETECT_SIDE = 1024       # faces are looked for on a copy whose longer side is at most this (fast on a 24 MP photo)
MIN_FACE = 24            # px on that copy: the Haar cascade's window; smaller faces are not found
# The square around a face is MARGIN x the detector's box side. A Haar box spans brows to mouth, about two
# eye distances wide, so the square is about four eye distances: the framing of FFHQ-style aligned crops,
# the faces the portrait weights were trained on (the port's own demo expands its aligned box by 1.3x).
MARGIN = 2.0
FEATHER = 0.2            # paste: the mask ramps from 1 to 0 over this fraction of the square's half side
MAX_TILT_DEG = 30.0      # eye pairs tilted more than this are taken as a detector mistake: no levelling
EXTRA = "portraits"      # the pip extra that brings the detector
# alt2 rather than "default": as many faces found on our photos, and no false positive at any setting tried
# (default: 3-15 once the copy is upscaled or fewer neighbours are asked for); see bench/detectors.py.
FACE_CASCADE = "haarcascade_frontalface_alt2.xml"
FRAMING_VERSION = 2  # bump when squares are cut or pasted differently (2: paste levels the eyes too)


class DetectorMissing(RuntimeError):
    """OpenCV is not installed: face framing cannot run (the message says how to install it)."""


@dataclass(frozen=True)
class Box:
    """Pixel rectangle [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1

    def __str__(self) -> str:
        return f"{self.width}x{self.height} at ({self.x0}, {self.y0})"


@dataclass(frozen=True)
class Face:
    box: Box
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None  # (left, right) in photo px, when found

    @property
    def tilt(self) -> float:
        """Degrees the eye line is turned (positive: the right eye is lower); 0 without eyes."""
        if self.eyes is None:
            return 0.0
        (lx, ly), (rx, ry) = self.eyes
        return math.degrees(math.atan2(ry - ly, rx - lx))


@dataclass(frozen=True)
class Framing:
    """What a framing decided: the squares to stylise (photo px), the faces found, each square's tilt to undo
    (0: no eyes found, or level), and why."""

    mode: str
    squares: tuple[Box, ...]
    faces: tuple[Face, ...]
    tilts: tuple[float, ...]
    notice: str


def is_framing(value: str) -> bool:
    """Whether a photo accepts this (stripped, lower-case) framing: a mode, or "auto" / "" for the style's default
    (the one check: the engine's and the page's)."""
    return value in ("", "auto") or value in FRAMINGS


def mode_for(is_portrait: bool, framing: str | None) -> str:
    """The framing a run uses: portrait styles default to ``face``; scene styles always run ``whole``."""
    value = (framing or "").strip().lower()
    if not is_framing(value):
        raise ValueError(f"unknown framing {framing!r}; choose one of: {', '.join(FRAMINGS)}")
    if not is_portrait:
        return "whole"
    return DEFAULT_FRAMING if value in ("", "auto") else value


# -- detection --------------------------------------------------------------------------------------------
def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise DetectorMissing(
            "face framing needs OpenCV's face detector: pip install 'animegan[portraits]' (or opencv-python-headless<5); "
            "framing 'center' or 'whole' runs without it") from exc
    if not hasattr(cv2, "data") or not hasattr(cv2.data, "haarcascades"):
        raise DetectorMissing(f"this OpenCV ({cv2.__version__}) ships no Haar cascades (5.x dropped them): "
                              "pip install 'opencv-python-headless<5'")
    return cv2


@lru_cache(maxsize=4)
def _cascade(name: str) -> Any:
    cv2 = _cv2()
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if cascade.empty():
        raise DetectorMissing(f"OpenCV could not load its cascade {name}; reinstall opencv-python-headless<5")
    return cascade


def detector_name() -> str:
    """What found the faces and how squares are cut and pasted, with versions (part of the result cache key)."""
    return f"opencv-haar-{_cv2().__version__}/framing-{FRAMING_VERSION}"


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """Frontal faces, largest first, in the photo's pixels; found on a copy at most :data:`DETECT_SIDE` px long."""
    cv2 = _cv2()
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(h, w))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    if min(sw, sh) < MIN_FACE:
        return []  # a 1x1 or a 10000x8 photo: nothing a face could fit in
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)
    if (sw, sh) != (w, h):
        grey = cv2.resize(grey, (sw, sh), interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    found = _cascade(FACE_CASCADE).detectMultiScale(
        grey, scaleFactor=1.1, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE))
    faces = []
    for x, y, bw, bh in (found if len(found) else []):
        eyes = _eyes(grey, int(x), int(y), int(bw), int(bh))
        box = Box(*(round(v / scale) for v in (x, y, x + bw, y + bh)))
        faces.append(Face(box, None if eyes is None else tuple((float(ex / scale), float(ey / scale)) for ex, ey in eyes)))
    return sorted(faces, key=lambda f: f.box.width * f.box.height, reverse=True)


def _eyes(grey: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Both eye centres in the face's upper part, one each side of its middle; None unless exactly that is clear."""
    top = grey[y:y + int(h * 0.6), x:x + w]
    min_eye = max(6, w // 8)
    eyes = _cascade("haarcascade_eye.xml").detectMultiScale(top, scaleFactor=1.1, minNeighbors=6,
                                                             minSize=(min_eye, min_eye), maxSize=(w // 2, w // 2))
    centres = [(x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in (eyes if len(eyes) else [])]
    left = [c for c in centres if c[0] < x + w / 2]
    right = [c for c in centres if c[0] >= x + w / 2]
    if len(left) != 1 or len(right) != 1:
        return None
    (lx, ly), (rx, ry) = left[0], right[0]
    if abs(math.degrees(math.atan2(ry - ly, rx - lx))) > MAX_TILT_DEG:
        return None
    return left[0], right[0]


# -- squares ----------------------------------------------------------------------------------------------
def _square(cx: float, cy: float, side: float, width: int, height: int) -> Box:
    """A square of ``side`` centred at (cx, cy), made to fit the photo: shrunk to its shorter side, moved inside."""
    side = max(1, min(round(side), width, height))
    x0 = min(max(round(cx - side / 2), 0), width - side)
    y0 = min(max(round(cy - side / 2), 0), height - side)
    return Box(x0, y0, x0 + side, y0 + side)


def center_square(width: int, height: int) -> Box:
    return _square(width / 2, height / 2, min(width, height), width, height)


def face_square(face: Face, width: int, height: int) -> Box:
    cx, cy = face.box.center
    return _square(cx, cy, MARGIN * max(face.box.width, face.box.height), width, height)


def frame(rgb: np.ndarray, mode: str) -> Framing:
    """Decide the squares for ``mode`` (``face``, ``center`` or ``paste``) and the notice that says what was used."""
    h, w = rgb.shape[:2]
    if mode == "center":
        sq = center_square(w, h)
        return Framing(mode, (sq,), (), (0.0,), f"framing center: the centre square {sq}")
    faces = tuple(detect_faces(rgb))
    if mode == "paste":
        squares = tuple(face_square(f, w, h) for f in faces)
        if not faces:
            return Framing(mode, (), (), (), "framing paste: no face found, so no face was stylised")
        boxes = "; ".join(str(f.box) for f in faces)
        tilts = tuple(level_tilt(f) for f in faces)
        levelled = sum(1 for t in tilts if t)
        level = f"; eyes levelled for {levelled} of them" if levelled else ""
        return Framing(mode, squares, faces, tilts, f"framing paste: {len(faces)} face(s) stylised and pasted back "
                                                      f"(face boxes {boxes}){level}")
    if not faces:
        sq = center_square(w, h)
        return Framing("center", (sq,), (), (0.0,), f"framing face: no face found; fell back to the centre square {sq}")
    face = faces[0]
    sq = face_square(face, w, h)
    tilt = level_tilt(face)
    level = f", eyes levelled by {-tilt:+.1f} deg" if tilt else ""
    more = f" (the largest of {len(faces)})" if len(faces) > 1 else ""
    return Framing(mode, (sq,), (face,), (tilt,), f"framing face: face box {face.box}{more}, square {sq}{level}")


def level_tilt(face: Face) -> float:
    """The tilt a face's square is turned by before the style sees it: the eye line's, when both eyes were
    found and it is at least 1 degree (the training faces are upright); else 0."""
    return face.tilt if face.eyes is not None and abs(face.tilt) >= 1 else 0.0


# -- pixels ------------------------------------------------------------------------------------------------
def crop_square(pixels: np.ndarray, square: Box, size: int, tilt: float = 0.0) -> np.ndarray:
    """The square resized to ``size`` x ``size`` (LANCZOS), turned by ``-tilt`` degrees about its centre first.

    ``pixels``: HxWx3 or HxWx4 uint8. A turned crop samples around the square, mirrored at the photo's edges.
    """
    if not tilt:
        region = Image.fromarray(np.ascontiguousarray(pixels[square.y0:square.y1, square.x0:square.x1]))
        return np.asarray(region.resize((size, size), Image.LANCZOS))
    cv2 = _cv2()
    # OpenCV puts pixel i's centre at i (PIL at i + 0.5): the square's centre is (x0 + x1 - 1) / 2 there, and it
    # goes to the output's centre (size - 1) / 2, so that a turn of 0 gives the same pixels as the resize above.
    cx, cy = (square.x0 + square.x1 - 1) / 2, (square.y0 + square.y1 - 1) / 2
    factor = size / square.width
    source = pixels
    if factor < 0.8:  # warpAffine does not area-average: downscale with LANCZOS first, so nothing aliases
        pre = min(1.0, 1.25 * factor)
        h, w = pixels.shape[:2]
        image = Image.fromarray(np.ascontiguousarray(pixels))
        source = np.asarray(image.resize((max(1, round(w * pre)), max(1, round(h * pre))), Image.LANCZOS))
        cx, cy, factor = (cx + 0.5) * pre - 0.5, (cy + 0.5) * pre - 0.5, factor / pre
    matrix = cv2.getRotationMatrix2D((cx, cy), tilt, factor)  # positive: turns the picture counter-clockwise
    matrix[:, 2] += ((size - 1) / 2 - cx, (size - 1) / 2 - cy)
    return cv2.warpAffine(np.ascontiguousarray(source), matrix, (size, size), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT_101)


def unturn(styled: np.ndarray, tilt: float, side: int) -> np.ndarray:
    """A levelled square's stylised pixels back at the photo's angle and the square's ``side``: the inverse of
    :func:`crop_square`'s turn. Only the inscribed circle is pasted, and a circle turned is the same circle, so the
    corners (sampled from a mirror of the square) never reach the photo."""
    rgb = np.ascontiguousarray(styled[..., :3])
    if tilt:  # turned at the style's size, where the square is usually sampled finer than in the photo
        cv2 = _cv2()
        h, w = rgb.shape[:2]
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -tilt, 1.0)
        rgb = cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    if rgb.shape[:2] != (side, side):
        rgb = np.asarray(Image.fromarray(rgb).resize((side, side), Image.LANCZOS))
    return rgb


def feather_mask(side: int) -> np.ndarray:
    """A round mask inscribed in a ``side`` square: 1 in the middle, a smooth ramp to exactly 0 at the circle,
    0 in the corners (so pasting changes nothing outside the circle)."""
    r = side / 2
    coords = (np.arange(side, dtype=np.float32) + 0.5 - r) / r
    d = np.sqrt(coords[None, :] ** 2 + coords[:, None] ** 2)
    t = np.clip((1 - d) / FEATHER, 0, 1)
    return t * t * (3 - 2 * t)  # smoothstep


def paste(canvas: np.ndarray, styled: np.ndarray, square: Box) -> None:
    """Blend ``styled`` (the square's stylised pixels, any size) into ``canvas`` (HxWx3 uint8) in place."""
    side = square.width
    if styled.shape[:2] != (side, side):
        styled = np.asarray(Image.fromarray(np.ascontiguousarray(styled[..., :3])).resize((side, side), Image.LANCZOS))
    region = canvas[square.y0:square.y1, square.x0:square.x1]
    mask = feather_mask(side)[..., None]
    inside = mask[..., 0] > 0  # where the mask is 0, the photo's pixels stay exactly as they are
    mixed = region.astype(np.float32) + mask * (styled[..., :3].astype(np.float32) - region.astype(np.float32))
    region[inside] = np.clip(np.rint(mixed[inside]), 0, 255).astype(np.uint8)
