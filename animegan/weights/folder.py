"""Fill a weights folder: ``<style>.pt`` files that ``--weights-dir`` accepts, for offline machines and Docker builds.

Each file is the converted, verified state dict, written to a temporary file beside the target and renamed
into place, so a reader (another process, a half-finished ``docker build``) never sees a partial file.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import torch

StateDict = dict[str, torch.Tensor]


def write_atomically(target: Path, data: bytes, mode: int | None = None) -> None:
    """Write to a temp file beside ``target``, fsync, rename: a reader never sees a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def weights_file(folder: Path, style_id: str) -> Path:
    """The file name the weights-folder loader looks for first."""
    return Path(folder) / f"{style_id}.pt"


def write_weights_file(state: StateDict, folder: Path, style_id: str) -> tuple[Path, bool]:
    """Write ``<folder>/<style>.pt`` atomically; returns (path, changed). An identical file is left alone."""
    buf = io.BytesIO()
    torch.save({k: v.detach().to("cpu").contiguous() for k, v in state.items()}, buf)
    data = buf.getvalue()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = weights_file(folder, style_id)
    try:
        if target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data:
            return target, False
    except OSError:
        pass  # unreadable: replace it
    # mkstemp makes it private; a weights folder is read by other users (Docker, services)
    write_atomically(target, data, mode=0o644)
    return target, True
