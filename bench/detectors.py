"""Which face detector frames portraits: OpenCV Haar cascades vs MTCNN, on the photos we have.

    ANIMEGAN_SHARED=../shared flock -x /tmp/animegan-cpu.lock python bench/detectors.py [--runs 3]

Ground truth was measured by eye (boxes from forehead to chin, cheek to cheek, in photo pixels): the astronaut
example (one face), a two-face photo composed from it (the crop and its mirror image side by side), the kyoto
street photo (two women walking towards the camera; a third seen in profile counts neither way), the railway
photo (two faces of 11 and 16 px: too small to ask for, counted neither way), and photos without faces (cars,
the cat, coffee, rocket). A detection is a hit when each box's centre lies inside the other; one that matches no
face is a false positive. Every detector sees the same copy (longer side at most framing.DETECT_SIDE). Times are
the median of ``--runs`` runs per photo after one warm-up, on this machine's CPU (torch threads as set).

MTCNN is facenet-pytorch's (its wheel ships the weights). The package pins torch<2.3, Pillow<10.3 and torchvision
<0.18, so it is installed with --no-deps for this comparison only, and torchvision's batched_nms (the one
torchvision function its detector calls) is given to it by a pure-torch stand-in below.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan import framing

Box = tuple[int, int, int, int]
EXAMPLES = REPO / "animegan" / "examples"
ASTRONAUT_FACE: Box = (182, 76, 268, 178)  # by eye on astronaut.jpg (512x512)
TWO_FACE_CROP: Box = (97, 0, 353, 256)     # the square of astronaut.jpg used twice in the composed photo


def two_faces() -> tuple[np.ndarray, list[Box]]:
    """A 512x256 photo with two real faces: the astronaut's head square and its mirror image, side by side."""
    photo = Image.open(EXAMPLES / "astronaut.jpg").convert("RGB").crop(TWO_FACE_CROP)
    out = Image.new("RGB", (512, 256))
    out.paste(photo, (0, 0))
    out.paste(ImageOps.mirror(photo), (256, 0))
    x0, y0, x1, y1 = ASTRONAUT_FACE
    dx = TWO_FACE_CROP[0]
    left = (x0 - dx, y0, x1 - dx, y1)
    right = (512 - (x1 - dx), y0, 512 - (x0 - dx), y1)
    return np.asarray(out), [left, right]


def cases(shared: Path) -> list[tuple[str, np.ndarray, list[Box], list[Box]]]:
    """(name, RGB pixels, faces that must be found, faces that count neither way)."""
    def rgb(path: Path) -> np.ndarray:
        return np.asarray(Image.open(path).convert("RGB"))
    photos = shared / "photos"
    two, boxes = two_faces()
    return [
        ("astronaut (1 face)", rgb(EXAMPLES / "astronaut.jpg"), [ASTRONAUT_FACE], []),
        ("two astronauts (2)", two, boxes, []),
        ("kyoto street (2)", rgb(photos / "kyoto_street_kimono.jpg"), [(510, 414, 535, 440), (449, 407, 468, 432)],
         [(330, 395, 348, 420)]),
        ("railway (0 + 2 tiny)", rgb(photos / "railway_crossing.jpg"), [], [(107, 447, 124, 462), (38, 466, 49, 477)]),
        ("cars bridge (0)", rgb(photos / "cars_bridge_forest.jpg"), [], []),
        ("chelsea, a cat (0)", rgb(EXAMPLES / "chelsea.jpg"), [], []),
        ("coffee (0)", rgb(EXAMPLES / "coffee.jpg"), [], []),
        ("rocket (0)", rgb(EXAMPLES / "rocket.jpg"), [], []),
    ]


def matches(a: Box, b: Box) -> bool:
    """Each box's centre inside the other: the same face, whatever each detector's idea of a face box."""
    def inside(p: tuple[float, float], r: Box) -> bool:
        return r[0] <= p[0] <= r[2] and r[1] <= p[1] <= r[3]
    return inside(((a[0] + a[2]) / 2, (a[1] + a[3]) / 2), b) and inside(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), a)


def score(found: list[Box], must: list[Box], either: list[Box]) -> tuple[int, int, int]:
    hits = sum(any(matches(f, m) for f in found) for m in must)
    false = sum(not any(matches(f, t) for t in must + either) for f in found)
    return hits, len(must) - hits, false


# -- detectors ---------------------------------------------------------------------------------------------
def haar(cascade: str) -> Callable[[np.ndarray], list[Box]]:
    """framing's own pipeline (downscaled copy, equalised grey), with the given frontal cascade."""
    def detect(rgb: np.ndarray) -> list[Box]:
        cv2 = framing._cv2()
        h, w = rgb.shape[:2]
        scale = min(1.0, framing.DETECT_SIDE / max(h, w))
        if min(h, w) * scale < framing.MIN_FACE:  # the same guard as framing's: nothing a face could fit in
            return []
        grey = cv2.equalizeHist(cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (round(w * scale), round(h * scale)),
                                           interpolation=cv2.INTER_AREA))
        found = framing._cascade(cascade).detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                                           minSize=(framing.MIN_FACE, framing.MIN_FACE))
        return [tuple(round(v / scale) for v in (x, y, x + bw, y + bh)) for x, y, bw, bh in (found if len(found) else [])]
    return detect


def ours(rgb: np.ndarray) -> list[Box]:
    return [f.box.as_tuple() for f in framing.detect_faces(rgb)]


def _torchvision_stand_in() -> None:
    """facenet-pytorch imports torchvision for batched_nms (and to_tensor, used only by its face extraction)."""
    import torch

    def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
        order = scores.argsort(descending=True)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = []
        while order.numel():
            i = order[0]
            keep.append(i)
            rest = order[1:]
            xx0 = torch.maximum(boxes[i, 0], boxes[rest, 0])
            yy0 = torch.maximum(boxes[i, 1], boxes[rest, 1])
            xx1 = torch.minimum(boxes[i, 2], boxes[rest, 2])
            yy1 = torch.minimum(boxes[i, 3], boxes[rest, 3])
            inter = (xx1 - xx0).clamp(min=0) * (yy1 - yy0).clamp(min=0)
            order = rest[inter / (area[i] + area[rest] - inter) <= threshold]
        return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long)

    def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, threshold: float) -> torch.Tensor:
        if boxes.numel() == 0:
            return torch.zeros(0, dtype=torch.long, device=boxes.device)
        offsets = idxs.to(boxes) * (boxes.max() + 1)  # boxes of different images never overlap
        return nms(boxes + offsets[:, None], scores, threshold)

    tv = types.ModuleType("torchvision")
    ops, boxes_mod = types.ModuleType("torchvision.ops"), types.ModuleType("torchvision.ops.boxes")
    transforms, functional = types.ModuleType("torchvision.transforms"), types.ModuleType("torchvision.transforms.functional")
    boxes_mod.batched_nms = batched_nms
    functional.to_tensor = lambda pic: torch.from_numpy(np.asarray(pic)).permute(2, 0, 1).float() / 255
    tv.ops, ops.boxes, tv.transforms, transforms.functional = ops, boxes_mod, transforms, functional
    sys.modules.update({"torchvision": tv, "torchvision.ops": ops, "torchvision.ops.boxes": boxes_mod,
                        "torchvision.transforms": transforms, "torchvision.transforms.functional": functional})


def mtcnn() -> Callable[[np.ndarray], list[Box]] | None:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        _torchvision_stand_in()
    try:
        from facenet_pytorch.models.mtcnn import MTCNN
    except ImportError as exc:
        print(f"(MTCNN skipped: {exc}; pip install --no-deps facenet-pytorch)")
        return None
    model = MTCNN(keep_all=True, device="cpu", min_face_size=framing.MIN_FACE)

    def detect(rgb: np.ndarray) -> list[Box]:
        h, w = rgb.shape[:2]
        scale = min(1.0, framing.DETECT_SIDE / max(h, w))
        if min(h, w) * scale < framing.MIN_FACE:  # the same guard (without it, a 1024x1 copy raises in detect_face)
            return []
        small = np.asarray(Image.fromarray(rgb).resize((round(w * scale), round(h * scale)), Image.LANCZOS))
        boxes, probs = model.detect(small)
        if boxes is None:
            return []
        return [tuple(round(float(v) / scale) for v in b) for b, p in zip(boxes, probs) if p >= 0.9]
    return detect


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", type=Path, default=Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared")))
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    detectors: dict[str, Callable[[np.ndarray], list[Box]]] = {
        "haar alt2 + eyes (framing.py)": ours,
        "haar frontal default": haar("haarcascade_frontalface_default.xml"),
    }
    m = mtcnn()
    if m is not None:
        detectors["mtcnn (facenet-pytorch)"] = m
    rows = cases(args.shared)
    print(f"{'detector':36} {'photo':22} {'found':>5} {'hits':>4} {'miss':>4} {'false':>5} {'ms':>8}")
    totals = {}
    for name, detect in detectors.items():
        hits = misses = false = 0
        times = []
        for label, rgb, must, either in rows:
            detect(rgb)  # warm-up (cascade load, MTCNN first call)
            runs = []
            for _ in range(args.runs):
                start = time.perf_counter()
                found = detect(rgb)
                runs.append((time.perf_counter() - start) * 1e3)
            h, mi, f = score(found, must, either)
            hits, misses, false = hits + h, misses + mi, false + f
            ms = statistics.median(runs)
            times.append(ms)
            print(f"{name:36} {label:22} {len(found):5d} {h:4d} {mi:4d} {f:5d} {ms:8.1f}")
        totals[name] = (hits, misses, false, statistics.mean(times))
    print()
    base = totals["haar alt2 + eyes (framing.py)"][3]
    print(f"{'detector':36} {'hits':>4} {'miss':>4} {'false':>5} {'ms/photo':>9} {'time vs ours':>12}")
    for name, (h, mi, f, ms) in totals.items():
        print(f"{name:36} {h:4d} {mi:4d} {f:5d} {ms:9.1f} {ms / base:11.2f}x")
    print()
    for name, detect in detectors.items():  # degenerate photos: an answer (no face), not an exception
        for shape in ((1, 1, 3), (8, 10000, 3), (10000, 8, 3)):
            try:
                outcome = f"{len(detect(np.zeros(shape, np.uint8)))} faces"
            except Exception as exc:  # noqa: BLE001 - reported, that is the point
                outcome = f"raised {type(exc).__name__}: {str(exc)[:60]}"
            print(f"{name:36} {shape[1]}x{shape[0]} photo: {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
