"""torch.hub entry points that take the same arguments as bryandlee/animegan2-pytorch's.

A notebook written for that port changes only the repository string::

    model = torch.hub.load("<owner>/<this repo>", "generator", pretrained="face_paint_512_v2")
    face2paint = torch.hub.load("<owner>/<this repo>", "face2paint", size=512)
    picture = face2paint(model, Image.open("me.jpg"))          # input | result, like the port's

What changes under it: the scene styles (``hayao``, ``shinkai``, ``paprika``) come from the upstream TF
checkpoints and compute as the TF graph did (the port's ``paprika`` resizes with ``align_corners`` and drifts
from it); every download is pinned and verified; ``face2paint`` crops and runs exactly as the engine's
``center`` framing does, so its picture equals ``stylize(photo, style, framing="center")`` in fp32.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import framing, inference
from .model import FLAVOURS, Generator
from .registry import Registry
from .styles import StyleSpec, load_styles
from .weights.download import Progress

PORT_DEFAULT = "face_paint_512_v2"   # what the port's ``pretrained=True`` loads
PORT_FLAVOUR = "pytorch-port"        # how a .pt file of unknown origin computes: the port's files are what notebooks hold

Face2Paint = Callable[..., Image.Image]


def generator(pretrained: bool | str | os.PathLike = True, device: str | torch.device = "cpu", progress: bool = True,
              check_hash: bool = True, *, flavour: str | None = None) -> Generator:
    """The AnimeGANv2 generator as a plain ``torch.nn.Module`` (NCHW in [-1, 1] -> NCHW in [-1, 1]).

    ``pretrained``: True (the port's default, ``face_paint_512_v2``), a style id of this package, a local
    ``.pt`` state dict or TF checkpoint prefix, or False for untrained weights. URLs are refused: downloads
    come only from the pinned sources in ``animegan/styles``. ``check_hash`` is accepted for the port's
    callers; the pinned downloads are always verified (git blob SHA-1, then every tensor's name and shape).
    ``flavour``: how a local file's weights compute (``tf1`` or ``pytorch-port``); by default a TF checkpoint
    or a file named after a scene style computes as ``tf1``, any other ``.pt`` as the port does.
    """
    del check_hash  # verification is not optional here; the argument exists so the port's calls run unchanged
    if flavour is not None and flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}; one of: {', '.join(FLAVOURS)}")
    dev = torch.device(device)
    if pretrained is False or pretrained is None:
        return Generator(flavour or PORT_FLAVOUR).to(dev).eval()
    styles = {spec.id: spec for spec in load_styles()}
    wanted = PORT_DEFAULT if pretrained is True else os.fspath(pretrained)
    if "://" in wanted:
        raise ValueError(f"pretrained={wanted!r}: URLs are not loaded (only pinned, verified sources); pass a "
                         f"style id ({', '.join(styles)}) or a local file")
    if wanted.lower() in styles and not Path(wanted).exists():
        spec = styles[wanted.lower()]
        weights = Registry().weights_for(spec, progress=_bar(spec) if progress else None)
    else:
        path = Path(wanted).expanduser()
        if not (path.exists() or Path(f"{path}.index").is_file()):
            raise FileNotFoundError(f"pretrained={wanted!r} is neither a style id ({', '.join(styles)}) nor an "
                                    "existing .pt file or TF checkpoint prefix")
        spec = _carrier(path, styles)
        weights = Registry(weights={spec.id: path}, offline=True).weights_for(spec)
    model = Generator(flavour or spec.flavour)
    model.load_state_dict(weights.state_dict, strict=True)
    return model.to(dev).eval()


def _carrier(path: Path, styles: dict[str, StyleSpec]) -> StyleSpec:
    """The style whose flavour a local file computes with (see :func:`generator`'s ``flavour``)."""
    named = styles.get(path.stem.lower())
    if named is not None:
        return named
    tf_checkpoint = path.suffix in (".ckpt", ".index") or Path(f"{path}.index").is_file()
    return next(s for s in styles.values() if s.flavour == "tf1") if tf_checkpoint else styles[PORT_DEFAULT]


def _bar(spec: StyleSpec) -> Progress:
    from tqdm import tqdm

    bar = tqdm(desc=f"{spec.id} weights", unit="B", unit_scale=True, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total or None
        bar.n = done
        bar.refresh()

    return update


def face2paint(device: str | torch.device = "cpu", size: int = 512) -> Face2Paint:
    """A function ``f(model, img, size=size, side_by_side=True, device=device) -> PIL.Image`` like the port's.

    It takes the photo's centre square at ``size`` px (the engine's ``center`` framing: LANCZOS), runs the
    model on it in fp32, and returns the result, or with ``side_by_side`` the crop and the result next to each
    other (exactly twice as wide, crop on the left), as the port does by default.
    """
    def paint(model: torch.nn.Module, img: Image.Image, size: int = size, side_by_side: bool = True,
              device: str | torch.device = device) -> Image.Image:
        rgb = np.asarray(img.convert("RGB"))
        h, w = rgb.shape[:2]
        crop = framing.crop_square(rgb, framing.center_square(w, h), size)
        with torch.inference_mode():
            if isinstance(model, Generator):
                out = inference.run_whole(model, crop, "fp32")
            else:  # another generator module (the port's): its own device, our pixel conversion
                out = inference.to_pixels(model(inference.to_tensor(crop, torch.device(device))))
        return Image.fromarray(np.concatenate([crop, out], axis=1) if side_by_side else out)

    return paint


__all__ = ["PORT_DEFAULT", "face2paint", "generator"]
