"""Style specs: ``styles/*.toml`` -> frozen :class:`StyleSpec`, the one description of a checkpoint."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import settings


@dataclass(frozen=True)
class SourceFile:
    name: str
    url: str
    size: int
    git_sha1: str


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

    @property
    def label(self) -> str:
        return f"{self.name}: {self.description}"


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
            SourceFile(name=f["name"], url=f.get("url", f"{base}/{f['name']}"), size=int(f["size"]), git_sha1=f["git_sha1"].lower())
            for f in ckpt["files"]
        )
        return StyleSpec(
            id=raw["id"], name=raw["name"], description=raw["description"], order=int(raw.get("order", 100)),
            max_side=int(raw.get("max_side", 1024)), licence=raw["licence"], homepage=raw.get("homepage", ""),
            checkpoint_prefix=ckpt["prefix"], files=files,
        )
    except KeyError as exc:
        raise ValueError(f"style file {path} lacks the field {exc.args[0]!r}") from exc


@lru_cache(maxsize=8)
def _load_dir(directory: Path) -> tuple[StyleSpec, ...]:
    specs = [parse_style(p) for p in sorted(directory.glob("*.toml"))]
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate style ids in {directory}: {ids}")
    return tuple(sorted(specs, key=lambda s: (s.order, s.id)))


def load_styles(directory: Path | None = None) -> tuple[StyleSpec, ...]:
    """All styles, in display order (Hayao and Shinkai first)."""
    return _load_dir((directory or settings.styles_dir()).resolve())


def get_style(style: str | StyleSpec, directory: Path | None = None) -> StyleSpec:
    if isinstance(style, StyleSpec):
        return style
    wanted = style.strip().lower()
    for spec in load_styles(directory):
        if wanted in (spec.id, spec.name.lower()):
            return spec
    known = ", ".join(s.id for s in load_styles(directory))
    raise UnknownStyleError(f"unknown style {style!r}; choose one of: {known}")
