"""TF variable names and tensors -> our Generator state dict, and the state-dict gate every weight source passes."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from animegan.model import Generator
from animegan.weights.convert import check_state_dict, convert_tf_checkpoint, tf_to_torch_name
from animegan.weights.tfbundle import CheckpointError, read_index

UPSTREAM = ("Hayao-64", "Shinkai-53", "Paprika-54")
G = "generator/G_MODEL/"


@pytest.fixture(scope="module")
def reference_state(hayao_pt: Path) -> dict[str, torch.Tensor]:
    return torch.load(hayao_pt, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def generator_shapes() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in Generator().state_dict().items()}


def test_generator_has_upstream_size(generator_shapes: dict[str, tuple[int, ...]]) -> None:
    assert len(generator_shapes) == 77
    assert sum(int(np.prod(s)) for s in generator_shapes.values()) == 2_143_552


def test_tf_checkpoint_converts_to_the_reference_pt(hayao_ckpt: Path, reference_state: dict[str, torch.Tensor]) -> None:
    """The stand-in .pt was made from the same TF values with bryandlee's convert_keys(): ours must agree bit for bit."""
    state = convert_tf_checkpoint(hayao_ckpt)
    assert set(state) == set(reference_state)
    for name, tensor in reference_state.items():
        assert state[name].dtype == torch.float32
        assert torch.equal(state[name], tensor), name
    Generator().load_state_dict(state, strict=True)


def _torch_shape(tf_name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """HWIO conv kernels -> OIHW; depthwise HWC1 kernels (upstream's ``rN/rN/w``) -> C1HW; vectors unchanged."""
    if len(shape) != 4:
        return shape
    h, w, a, b = shape
    return (a, b, h, w) if re.search(r"/r\d/r\d/w$", tf_name) else (b, a, h, w)


@pytest.mark.parametrize("stem", UPSTREAM)
def test_every_upstream_name_maps_one_to_one(shared: Path, stem: str, generator_shapes: dict[str, tuple[int, ...]]) -> None:
    entries = read_index(shared / "weights" / "tf-index" / f"{stem}.ckpt.index")
    mapped = {tf_to_torch_name(name): name for name in entries}
    assert len(mapped) == len(entries) == 77  # injective
    assert set(mapped) == set(generator_shapes)  # onto
    for ours, tf_name in mapped.items():
        assert _torch_shape(tf_name, entries[tf_name].shape) == generator_shapes[ours], (tf_name, ours)


@pytest.mark.parametrize("tf_name, ours", [
    # The layout of bryandlee/animegan2-pytorch (whose convert_keys() produced the stand-in .pt).
    (G + "A/Conv/weights", "block_a.0.1.weight"),
    (G + "A/LayerNorm_2/beta", "block_a.2.2.bias"),
    (G + "B/Conv_1/weights", "block_b.1.1.weight"),
    (G + "C/Conv/weights", "block_c.0.1.weight"),
    (G + "C/r1/Conv/weights", "block_c.1.layers.0.1.weight"),
    (G + "C/r2/LayerNorm/gamma", "block_c.2.layers.0.2.weight"),
    (G + "C/r3/r3/w", "block_c.3.layers.1.1.weight"),
    (G + "C/r3/r3/bias", "block_c.3.layers.1.1.bias"),
    (G + "C/r4/1/beta", "block_c.4.layers.1.2.bias"),
    (G + "C/r4/Conv_1/weights", "block_c.4.layers.2.weight"),
    (G + "C/r4/2/gamma", "block_c.4.layers.3.weight"),
    (G + "C/Conv_1/weights", "block_c.5.1.weight"),
    (G + "C/LayerNorm_1/gamma", "block_c.5.2.weight"),
    (G + "D/Conv_1/weights", "block_d.1.1.weight"),
    (G + "E/Conv_2/weights", "block_e.2.1.weight"),
    (G + "E/LayerNorm/gamma", "block_e.0.2.weight"),
    (G + "out_layer/Conv/weights", "out_layer.0.weight"),
])
def test_known_name_pairs(tf_name: str, ours: str) -> None:
    assert tf_to_torch_name(tf_name) == ours


@pytest.mark.parametrize("bad", [
    "discriminator/Conv/weights", G + "F/Conv/weights", G + "A/Dense/weights", G + "C/r1/Conv_7/bias", G + "A/Conv/kernel",
])
def test_foreign_names_are_refused(bad: str) -> None:
    with pytest.raises(CheckpointError):
        tf_to_torch_name(bad)


# --- check_state_dict ------------------------------------------------------------------------------

def test_check_accepts_the_reference(reference_state: dict[str, torch.Tensor]) -> None:
    check_state_dict(dict(reference_state), source="ref")


def test_check_refuses_missing(reference_state: dict[str, torch.Tensor]) -> None:
    state = dict(reference_state)
    del state["block_c.3.layers.1.1.bias"]
    with pytest.raises(CheckpointError, match=r"1 tensors missing \(block_c\.3\.layers\.1\.1\.bias\)"):
        check_state_dict(state, source="x.pt")


def test_check_refuses_extra(reference_state: dict[str, torch.Tensor]) -> None:
    state = dict(reference_state, **{"block_f.0.weight": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"1 unexpected \(block_f\.0\.weight\)"):
        check_state_dict(state, source="x.pt")


def test_check_refuses_wrong_shape(reference_state: dict[str, torch.Tensor]) -> None:
    state = dict(reference_state)
    state["block_b.0.1.weight"] = state["block_b.0.1.weight"].permute(1, 0, 2, 3)  # an unpermuted HWIO mix-up
    with pytest.raises(CheckpointError, match=r"block_b\.0\.1\.weight has shape \(64, 128, 3, 3\), expected \(128, 64, 3, 3\)"):
        check_state_dict(state, source="x.pt")


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), float("-inf")])
def test_check_refuses_non_finite(reference_state: dict[str, torch.Tensor], bad_value: float) -> None:
    state = dict(reference_state)
    t = state["block_d.0.1.weight"].clone()
    t[5, 7, 1, 2] = bad_value
    state["block_d.0.1.weight"] = t
    with pytest.raises(CheckpointError, match=r"block_d\.0\.1\.weight holds NaN or infinite"):
        check_state_dict(state, source="x.pt")


def test_check_refuses_integers_and_non_tensors(reference_state: dict[str, torch.Tensor]) -> None:
    state = dict(reference_state)
    state["out_layer.0.weight"] = state["out_layer.0.weight"].to(torch.int32)
    with pytest.raises(CheckpointError, match="expected floating point"):
        check_state_dict(state, source="x.pt")
    state["out_layer.0.weight"] = [[0.0]]
    with pytest.raises(CheckpointError, match="out_layer.0.weight"):
        check_state_dict(state, source="x.pt")
