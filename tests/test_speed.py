"""The fast paths of the generator compute exactly what the plain ones do (speed must not cost fidelity)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from animegan.model import upsample2x_tf1, upsample2x_tf1_padded


def slow_upsample2x_tf1(x: torch.Tensor) -> torch.Tensor:
    """The former implementation, from slices: odd pixels average a pixel and its (clamped) right/lower neighbour."""
    n, c, h, w = x.shape
    right = torch.cat([x[..., 1:], x[..., -1:]], dim=3)
    x = torch.stack([x, x + (right - x) * 0.5], dim=4).reshape(n, c, h, 2 * w)
    below = torch.cat([x[:, :, 1:], x[:, :, -1:]], dim=2)
    return torch.stack([x, x + (below - x) * 0.5], dim=3).reshape(n, c, 2 * h, 2 * w)


@pytest.mark.parametrize("shape", [(1, 3, 2, 2), (1, 8, 5, 7), (2, 4, 16, 12), (1, 64, 33, 20)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_upsample_matches_the_sliced_one(shape: tuple[int, ...], channels_last: bool) -> None:
    x = torch.from_numpy(np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(upsample2x_tf1(x), slow_upsample2x_tf1(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 3, 2, 2), (1, 8, 5, 7), (1, 32, 16, 24)])
def test_padded_upsample_equals_upsample_then_reflect_pad(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    expected = F.pad(upsample2x_tf1(x), (1, 1, 1, 1), mode="reflect")
    assert torch.equal(upsample2x_tf1_padded(x), expected)
