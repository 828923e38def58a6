"""hubconf.py: the PyTorch port's torch.hub calls, unchanged but for the repository, give our engine's pictures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

from animegan import Registry, stylize
from animegan.model import Generator
from animegan.weights import WeightsMissingError


def hub(entry: str, **kwargs):
    return torch.hub.load(str(REPO), entry, source="local", **kwargs)


@pytest.fixture(scope="module")
def port_model(hayao_pt: Path) -> Generator:
    return hub("generator", pretrained=str(hayao_pt))


def test_generator_is_a_plain_module_with_the_files_weights(port_model: Generator, hayao_pt: Path) -> None:
    assert isinstance(port_model, torch.nn.Module) and not port_model.training
    assert port_model.flavour == "pytorch-port"  # a .pt of unknown origin computes as the port's files do
    state = torch.load(hayao_pt, map_location="cpu", weights_only=True)
    for name, tensor in port_model.state_dict().items():
        assert torch.equal(tensor, state[name].float()), name
    x = torch.rand(1, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        y = port_model(x)  # the port's call: one tensor in, one out, same size
    assert y.shape == x.shape and float(y.abs().max()) <= 1


@pytest.mark.parametrize("photo", ["kyoto_street_kimono", "cars_bridge_forest"])
def test_face2paint_equals_the_engines_center_framing(port_model: Generator, hayao_pt: Path, photos: dict,
                                                      photo: str) -> None:
    img = Image.open(photos[photo])
    paint = hub("face2paint", size=512)
    ours = np.asarray(paint(port_model, img, side_by_side=False))
    registry = Registry(weights={"face_paint_512_v2": hayao_pt}, offline=True)
    engine = np.asarray(stylize(photos[photo], "face_paint_512_v2", framing="center", precision="fp32",
                                registry=registry).image)
    assert ours.shape == engine.shape == (512, 512, 3)
    diff = np.abs(ours.astype(int) - engine.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.001, (diff.max(), (diff > 0).mean())


def test_face2paint_side_by_side_is_the_crop_then_the_result(port_model: Generator, photos: dict) -> None:
    img = Image.open(photos["railway_crossing"])
    paint = hub("face2paint", size=256)
    both = np.asarray(paint(port_model, img))  # the port's default: side by side
    alone = np.asarray(paint(port_model, img, side_by_side=False))
    assert both.shape == (256, 512, 3)
    assert np.array_equal(both[:, 256:], alone)
    w, h = img.size
    s = min(w, h)
    crop = np.asarray(img.convert("RGB").crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
                      .resize((256, 256), Image.LANCZOS))
    assert np.array_equal(both[:, :256], crop)


def test_a_style_id_loads_through_the_weights_folder(hayao_pt: Path, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "hayao.pt").symlink_to(hayao_pt)
    monkeypatch.setenv("ANIMEGAN_WEIGHTS_DIR", str(tmp_path))
    model = hub("generator", pretrained="hayao", progress=False)
    assert model.flavour == "tf1"  # a scene style computes as the upstream TF graph, not as the port's resize


def test_a_style_without_weights_says_how_to_get_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANIMEGAN_OFFLINE", "1")
    monkeypatch.setenv("ANIMEGAN_CACHE_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("ANIMEGAN_WEIGHTS_DIR", raising=False)
    with pytest.raises(WeightsMissingError, match="shinkai|Shinkai"):
        hub("generator", pretrained="shinkai")


def test_untrained_urls_and_unknown_names(tmp_path: Path) -> None:
    assert isinstance(hub("generator", pretrained=False), Generator)
    with pytest.raises(ValueError, match="URLs are not loaded"):
        hub("generator", pretrained="https://example.invalid/w.pt")
    with pytest.raises(FileNotFoundError, match="neither a style id"):
        hub("generator", pretrained=str(tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="unknown flavour"):
        hub("generator", pretrained=False, flavour="tf2")
