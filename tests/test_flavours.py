"""A style's flavour decides how its weights compute, and ``python -m animegan`` follows it.

``shared/reference/portrait/`` is the popular PyTorch port's computation (GroupNorm eps 1e-5, align_corners
resizes to recorded sizes, any size as it is) on the stand-in weights; ``shared/reference/`` is the upstream TF
graph's. A test style of flavour ``pytorch-port`` must reach the first at native size (odd sides included), the
TF1 flavour the second, and each must miss the other's (so the comparison can tell them apart).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animegan.__main__ import main
from animegan.imaging import psnr
from animegan.model import FLAVOURS, Generator

PORT_STYLE = """
id = "port_test"
name = "Port test"
description = "The stand-in weights, computed as the PyTorch port computes."
order = 90
max_side = 512
flavour = "{flavour}"
licence = "test only"

[checkpoint]
base_url = "http://127.0.0.1:9/unused"

[[checkpoint.files]]
name = "port_test.pt"
git_sha1 = "0000000000000000000000000000000000000000"
"""


def _cli(inputs: list[Path], flavour: str, hayao_pt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    styles = tmp_path / f"styles-{flavour}"
    styles.mkdir()
    (styles / "port_test.toml").write_text(PORT_STYLE.format(flavour=flavour))
    monkeypatch.setenv("ANIMEGAN_STYLES_DIR", str(styles))
    out = tmp_path / f"out-{flavour}"
    assert main([*map(str, inputs), "--style", "port_test", "--weights", str(hayao_pt), "--max-side", "0",
                 "--out", str(out), "--offline", "--device", "cpu", "--precision", "fp32"]) == 0
    return out


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("name", ["kyoto_street_kimono_512", "railway_crossing_333x222"])
def test_pytorch_port_flavour_matches_the_ports_computation(name: str, shared: Path, hayao_pt: Path,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = shared / "reference" / "portrait"
    photo = ref / f"{name}_input.png"
    oracle = _rgb(ref / f"{name}_oracle.png")
    port = _rgb(_cli([photo], "pytorch-port", hayao_pt, tmp_path, monkeypatch) / f"{photo.stem}_port_test.png")
    assert port.shape == oracle.shape  # any size runs as it is: 333x222 stays 333x222
    assert psnr(port, oracle) >= 60, psnr(port, oracle)
    tf1 = _rgb(_cli([photo], "tf1", hayao_pt, tmp_path, monkeypatch) / f"{photo.stem}_port_test.png")
    assert psnr(tf1, oracle) < 40, "the TF1 flavour must not pass for the port's computation"


def test_tf1_flavour_still_matches_upstream_tf(shared: Path, hayao_pt: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    photo = shared / "reference" / "railway_crossing_input_768x512.png"
    oracle = _rgb(shared / "reference" / "railway_crossing_oracle_768x512.png")
    tf1 = _rgb(_cli([photo], "tf1", hayao_pt, tmp_path, monkeypatch) / f"{photo.stem}_port_test.png")
    assert psnr(tf1, oracle) >= 60
    port = _rgb(_cli([photo], "pytorch-port", hayao_pt, tmp_path, monkeypatch) / f"{photo.stem}_port_test.png")
    assert psnr(port, oracle) < 40


def test_the_flavour_reaches_only_the_models_constructor() -> None:
    for flavour, spec in FLAVOURS.items():
        model = Generator(flavour)
        assert {m.eps for m in model.modules() if hasattr(m, "eps")} == {spec.eps}
        assert model.spec.resize == spec.resize
    with pytest.raises(ValueError, match="unknown flavour"):
        Generator("tf2")
