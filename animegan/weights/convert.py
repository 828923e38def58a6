"""Map TF1 AnimeGANv2 variables onto our :class:`~animegan.model.Generator` state dict, and check state dicts."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..model import Generator
from .tfbundle import CheckpointError, read_checkpoint

TF_SCOPE = "generator/G_MODEL/"
# Position of each plain conv (TF "Conv", "Conv_1", ...) inside our stages; block C's second conv
# comes after its four inverted residual blocks.
_CONV_SLOTS = {"A": [0, 1, 2], "B": [0, 1], "C": [0, 5], "D": [0, 1], "E": [0, 1, 2]}
# Inside an inverted residual block rN: TF sub-name -> our sub-module.
_IRB_PARTS = {
    "Conv/weights": "layers.0.1.weight", "LayerNorm/gamma": "layers.0.2.weight", "LayerNorm/beta": "layers.0.2.bias",
    "{r}/w": "layers.1.1.weight", "{r}/bias": "layers.1.1.bias", "1/gamma": "layers.1.2.weight", "1/beta": "layers.1.2.bias",
    "Conv_1/weights": "layers.2.weight", "2/gamma": "layers.3.weight", "2/beta": "layers.3.bias",
}


def _suffix_index(token: str) -> int:
    m = re.fullmatch(r"(?:Conv|LayerNorm)(?:_(\d+))?", token)
    if not m:
        raise CheckpointError(f"unexpected variable scope {token!r}")
    return int(m.group(1) or 0)


def tf_to_torch_name(tf_name: str) -> str:
    """``generator/G_MODEL/C/r2/Conv_1/weights`` -> ``block_c.2.layers.2.weight``."""
    if not tf_name.startswith(TF_SCOPE):
        raise CheckpointError(f"variable {tf_name!r} is not in the generator scope {TF_SCOPE!r}")
    parts = tf_name[len(TF_SCOPE):].split("/")
    if parts[0] == "out_layer" and parts[1:] == ["Conv", "weights"]:
        return "out_layer.0.weight"
    block = parts[0]
    if block not in _CONV_SLOTS:
        raise CheckpointError(f"unexpected generator block in {tf_name!r}")
    stage = f"block_{block.lower()}"
    if block == "C" and re.fullmatch(r"r\d", parts[1]):
        r = parts[1]
        rest = "/".join(parts[2:])
        for tf_part, ours in _IRB_PARTS.items():
            if rest == tf_part.format(r=r):
                return f"{stage}.{r[1:]}.{ours}"
        raise CheckpointError(f"unexpected variable {tf_name!r}")
    slot = _CONV_SLOTS[block][_suffix_index(parts[1])]
    leaf = {"weights": "1.weight", "gamma": "2.weight", "beta": "2.bias"}.get(parts[2])
    if leaf is None:
        raise CheckpointError(f"unexpected variable {tf_name!r}")
    return f"{stage}.{slot}.{leaf}"


def tf_to_torch_tensor(array: np.ndarray, is_depthwise: bool) -> torch.Tensor:
    """Kernels: conv HWIO -> OIHW, depthwise HWC1 -> C1HW; vectors unchanged."""
    t = torch.from_numpy(np.ascontiguousarray(array)).float()
    if t.ndim == 4:
        t = t.permute(2, 3, 0, 1) if is_depthwise else t.permute(3, 2, 0, 1)
    return t.contiguous()


def convert_tf_checkpoint(prefix: str | Path) -> dict[str, torch.Tensor]:
    """Read a TF1 AnimeGANv2 checkpoint and return a validated state dict for :class:`Generator`."""
    variables = read_checkpoint(prefix)
    state = {}
    for name, array in variables.items():
        is_depthwise = name.endswith("/w") and "/r" in name
        state[tf_to_torch_name(name)] = tf_to_torch_tensor(array, is_depthwise)
    check_state_dict(state, source=str(prefix))
    return state


@lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in Generator().state_dict().items()}


def check_state_dict(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse anything that is not exactly a float AnimeGANv2 generator with finite values."""
    expected = expected_shapes()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{source} is not an AnimeGANv2 generator: {len(missing)} tensors missing "
            f"({', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}), {len(extra)} unexpected "
            f"({', '.join(extra[:3])}{'...' if len(extra) > 3 else ''})"
        )
    for name, shape in expected.items():
        t = state[name]
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise CheckpointError(f"{source}: tensor {name} has shape {got}, expected {shape}")
        if not t.is_floating_point():
            raise CheckpointError(f"{source}: tensor {name} is {t.dtype}, expected floating point")
        if not torch.isfinite(t).all():
            raise CheckpointError(f"{source}: tensor {name} holds NaN or infinite values (corrupted file?)")
