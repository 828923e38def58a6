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
    fd, tmp = tempfile.mkstemp(prefix=f".{style_id}.", suffix=".pt.part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a weights folder is read by other users (Docker, services)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target, True
