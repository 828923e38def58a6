"""Weights integrity cases not covered by test_weights_store.py: wrong-size local files and a cache write cut short.

(Corrupted, truncated and over-long downloads, damaged cache files, tampered pickles and the two-process first
download are in test_weights_store.py.) Each damaged file is refused with a message naming it, never half-loaded.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from animegan.styles import get_style
from animegan.weights import WeightsIntegrityError, WeightsMissingError
from animegan.weights.store import load_pt, resolve_weights

SPEC = get_style("hayao")
INDEX, DATA = (f.name for f in sorted(SPEC.files, key=lambda f: not f.name.endswith(".index")))


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_cut_off_local_pt_is_refused_and_named(hayao_pt: Path, tmp_path: Path, keep: float) -> None:
    data = hayao_pt.read_bytes()
    folder = tmp_path / "weights"
    folder.mkdir()
    short = folder / "hayao.pt"
    short.write_bytes(data[: int(len(data) * keep)])
    for where in ({"weights": short}, {"weights_dir": folder}):
        with pytest.raises(WeightsIntegrityError, match=rf"{short}.*truncated, corrupted.*Replace it"):
            resolve_weights(SPEC, cache=tmp_path / "cache", offline=True, **where)
    assert not (tmp_path / "cache").exists()  # nothing was cached from it


def test_pt_with_a_wrong_sized_tensor_is_refused(hayao_pt: Path, tmp_path: Path) -> None:
    state = torch.load(hayao_pt, weights_only=True)
    name = next(k for k, v in state.items() if v.ndim == 4)
    state[name] = state[name][:, :-1]  # one input channel fewer: another network's weights
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(WeightsIntegrityError, match=name):
        load_pt(tmp_path / "other.pt")


def test_tf_data_file_of_the_wrong_size(hayao_ckpt: Path, hayao_pt: Path, tmp_path: Path) -> None:
    """Shorter: refused, naming the checkpoint. Longer: the bytes past the last tensor are never read, and every
    tensor still passes its CRC32C, so the weights are exactly right (a local file's size is not pinned: the weights
    folder may hold any fine-tuned checkpoint under the upstream names)."""
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copyfile(f"{hayao_ckpt}.index", folder / INDEX)
    data = Path(f"{hayao_ckpt}.data-00000-of-00001").read_bytes()
    (folder / DATA).write_bytes(data[: len(data) - 4096])
    with pytest.raises(WeightsIntegrityError, match=r"Hayao-64\.ckpt"):
        resolve_weights(SPEC, weights_dir=folder, cache=tmp_path / "cache", offline=True)
    (folder / DATA).write_bytes(data + b"\x00" * 4096)
    got = resolve_weights(SPEC, weights_dir=folder, cache=tmp_path / "cache", offline=True)
    want = load_pt(hayao_pt)
    assert set(got.state_dict) == set(want)
    assert all(torch.allclose(got.state_dict[k], want[k], atol=1e-6) for k in want)


def test_a_cache_write_cut_short_is_never_loaded(tmp_path: Path, hayao_pt: Path) -> None:
    """A crash during the cache write leaves only the temp file (the rename is the commit): it is not a cache hit."""
    cache = tmp_path / "cache"
    cache.mkdir()
    data = hayao_pt.read_bytes()
    (cache / ".hayao.abc123.tmp").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsMissingError):
        resolve_weights(SPEC, cache=cache, offline=True)
