"""Fidelity to upstream TensorFlow: our output vs the TF oracle in shared/reference (and the align_corners port's).

    python bench/fidelity.py

Prints PSNR, max and mean absolute difference (0-255 scale) for our fp32 CPU path (what stylize() runs)
and for the popular port's align_corners=True upsampling on the same weights. tests/test_model.py asserts
the thresholds; this prints the figures quoted in docs/fidelity.md.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animegan.imaging import psnr
from animegan.inference import run_whole, to_pixels, to_tensor
from animegan.registry import Registry

SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))


def report(name: str, out: np.ndarray, oracle: np.ndarray) -> None:
    diff = out.astype(np.float64) - oracle.astype(np.float64)
    exact = float(np.mean(diff == 0)) * 100
    print(f"{name:<34} PSNR {psnr(out, oracle):6.2f} dB   max |diff| {np.abs(diff).max():5.0f}   mean |diff| {np.abs(diff).mean():.4f}   "
          f"identical values {exact:.2f}%")


def main() -> None:
    ref = SHARED / "reference"
    photo = np.asarray(Image.open(ref / "railway_crossing_input_768x512.png").convert("RGB"))
    oracle = np.asarray(Image.open(ref / "railway_crossing_oracle_768x512.png").convert("RGB"))
    with tempfile.TemporaryDirectory() as cache:
        registry = Registry(weights={"hayao": SHARED / "weights" / "hayao-int8-dequant.pt"}, cache_dir=Path(cache), offline=True)
        model = registry.get("hayao", "cpu", "fp32").model
    print(f"railway_crossing 768x512, stand-in Hayao weights, torch {torch.__version__} CPU fp32")
    report("ours (TF1 resize) vs TF oracle", run_whole(model, photo, "fp32"), oracle)
    with torch.inference_mode():
        port = to_pixels(model(to_tensor(photo, torch.device("cpu")), resize="align_corners"))
    report("align_corners=True vs TF oracle", port, oracle)


if __name__ == "__main__":
    main()
