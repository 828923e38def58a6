"""Style specs: the ``*.toml`` files beside this module -> frozen :class:`StyleSpec`, the one description of a
checkpoint. They are package data (read through ``importlib.resources``), so a wheel install has them;
``ANIMEGAN_STYLES_DIR`` (or a registry's ``styles_dir``) adds styles or overrides them by id.
Everything user-facing about a style (ids in help texts and API descriptions, download sizes, licence lines)
is generated from these specs.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .. import settings
from ..model import FLAVOURS


@dataclass(frozen=True)
class SourceFile:
    name: str
    url: str
    size: int | None   # bytes when known; None: verified by SHA-1 and tensor shapes, bounded (weights.download.MAX_UNSIZED_DOWNLOAD)
    git_sha1: str


GROUPS = {"scenes": "Scenes", "portraits": "Portraits"}  # style group id -> heading, in display order


@dataclass(frozen=True)
class StyleSpec:
    id: str
    name: str
    description: str
    order: int
    max_side: int
    licence: str
    homepage: str
    checkpoint_prefix: str  # e.g. "Hayao-64.ckpt"
    files: tuple[SourceFile, ...]
    flavour: str = "tf1"    # how the weights compute (model.FLAVOURS): the upstream TF graph, or the PyTorch port
    group: str = "scenes"   # GROUPS: scene styles convert whole photos; portrait styles frame a face first
    train_size: int | None = None  # portraits: the side of the face squares it was trained on (framing resizes to it)

    @property
    def is_portrait(self) -> bool:
        return self.group == "portraits"

    @property
    def is_pt_file(self) -> bool:
        """One PyTorch state dict (the port's releases), rather than a TF1 checkpoint pair."""
        return len(self.files) == 1 and self.files[0].name.endswith(".pt")

    @property
    def download_bytes(self) -> int | None:
        """Bytes a download fetches, when every file's size is known."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)


class UnknownStyleError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


def parse_style(path: Path) -> StyleSpec:
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    try:
        ckpt = raw["checkpoint"]
        base = ckpt["base_url"].rstrip("/")
        files = tuple(
            SourceFile(name=f["name"], url=f.get("url", f"{base}/{f['name']}"),
                       size=int(f["size"]) if "size" in f else None, git_sha1=f["git_sha1"].lower())
            for f in ckpt["files"]
        )
        flavour = raw.get("flavour", "tf1")
        if flavour not in FLAVOURS:
            raise ValueError(f"style file {path}: flavour {flavour!r} is not one of {', '.join(FLAVOURS)}")
        group = raw.get("group", "scenes")
        if group not in GROUPS:
            raise ValueError(f"style file {path}: group {group!r} is not one of {', '.join(GROUPS)}")
        train_size = int(raw["train_size"]) if "train_size" in raw else None
        if group == "portraits" and not train_size:
            raise ValueError(f"style file {path}: a portrait style needs train_size (the side of its face squares)")
        return StyleSpec(
            id=raw["id"], name=raw["name"], description=raw["description"], order=int(raw.get("order", 100)),
            max_side=int(raw.get("max_side", 1024)), licence=raw["licence"], homepage=raw.get("homepage", ""),
            checkpoint_prefix=ckpt.get("prefix", ""), files=files, flavour=flavour, group=group,
            train_size=train_size,
        )
    except KeyError as exc:
        raise ValueError(f"style file {path} lacks the field {exc.args[0]!r}") from exc


def _parse_all(paths: list[Path], where: str) -> dict[str, StyleSpec]:
    specs = [parse_style(p) for p in sorted(paths)]
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate style ids in {where}: {ids}")
    return {s.id: s for s in specs}


@lru_cache(maxsize=8)
def _load(directory: Path | None) -> tuple[StyleSpec, ...]:
    with resources.as_file(resources.files(__name__)) as packaged:
        specs = _parse_all(list(Path(packaged).glob("*.toml")), "the packaged styles")
    if directory is not None:
        specs.update(_parse_all(list(directory.glob("*.toml")), str(directory)))  # adds, or overrides by id
    groups = list(GROUPS)
    return tuple(sorted(specs.values(), key=lambda s: (groups.index(s.group), s.order, s.id)))


def load_styles(directory: Path | None = None) -> tuple[StyleSpec, ...]:
    """All styles, in display order (scenes, Hayao and Shinkai first; then portraits): the packaged ones, plus or overridden by those in
    ``directory`` (default: ``ANIMEGAN_STYLES_DIR`` when set)."""
    extra = directory or settings.styles_dir()
    return _load(extra.resolve() if extra is not None else None)


def style_ids(directory: Path | None = None) -> str:
    """'hayao, shinkai, paprika': for help texts and API descriptions."""
    return ", ".join(s.id for s in load_styles(directory))


def get_style(style: str | StyleSpec, directory: Path | None = None) -> StyleSpec:
    if isinstance(style, StyleSpec):
        return style
    wanted = style.strip().lower()
    for spec in load_styles(directory):
        if wanted in (spec.id, spec.name.lower()):
            return spec
    known = ", ".join(s.id for s in load_styles(directory))
    raise UnknownStyleError(f"unknown style {style!r}; choose one of: {known}")
