"""Portrait styles' weights: one ``.pt`` file whose size is not known, downloaded bounded and verified by git SHA-1
and by every tensor's name and shape (a real HTTP server on 127.0.0.1 serves the stand-in weights' bytes)."""
from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_weights_store import FileServer

from animegan.styles import SourceFile, StyleSpec, get_style, load_styles
from animegan.weights import WeightsIntegrityError, resolve_weights
from animegan.weights.download import MAX_UNSIZED_DOWNLOAD, git_blob_sha1

NAME = "face_paint_512_v2.pt"


@pytest.fixture(autouse=True)
def clean_env(clean_weights_env: None) -> None:
    """CI exports ANIMEGAN_OFFLINE=1; these tests decide for themselves."""


@pytest.fixture(scope="module")
def pt_bytes(hayao_pt: Path) -> bytes:
    return hayao_pt.read_bytes()


@pytest.fixture
def server(pt_bytes: bytes) -> Iterator[FileServer]:
    srv = FileServer({f"/w/{NAME}": pt_bytes})
    yield srv
    srv.stop()


def portrait_spec(base: str, sha1: str) -> StyleSpec:
    real = get_style("face_paint_512_v2")
    assert real.files[0].size is None  # the real style does not claim a size it does not know
    return dataclasses.replace(real, files=(SourceFile(name=NAME, url=f"{base}/w/{NAME}", size=None, git_sha1=sha1),))


def test_portrait_styles_are_pt_files_of_the_port_flavour() -> None:
    portraits = {s.id: s for s in load_styles() if s.is_portrait}
    assert set(portraits) == {"face_paint_512_v2", "face_paint_512_v1", "celeba_distill"}
    assert {s.id: s.train_size for s in portraits.values()} == {"face_paint_512_v2": 512, "face_paint_512_v1": 512,
                                                                "celeba_distill": 256}
    for s in portraits.values():
        assert s.flavour == "pytorch-port" and s.is_pt_file and s.download_bytes is None
        assert "personal and research use" in s.licence
    assert [s.group for s in load_styles()][:3] == ["scenes"] * 3  # scenes first, then portraits


@pytest.mark.parametrize("chunked", [False, True])
def test_unsized_download_is_verified_loaded_and_cached(server: FileServer, pt_bytes: bytes, hayao_pt: Path,
                                                        tmp_path: Path, chunked: bool) -> None:
    server.chunked = chunked  # no Content-Length at all: the bound and the hash still hold
    spec = portrait_spec(server.base, git_blob_sha1(pt_bytes))
    got = resolve_weights(spec, cache=tmp_path, offline=False, progress=lambda done, total: None)
    expected = torch.load(hayao_pt, weights_only=True)
    assert got.state_dict.keys() == expected.keys()
    assert all(torch.equal(got.state_dict[k], expected[k]) for k in expected)
    assert len(server.requests) == 1
    again = resolve_weights(spec, cache=tmp_path, offline=True)  # from the cache, no network
    assert again.fingerprint == got.fingerprint and len(server.requests) == 1


def test_wrong_sha1_is_rejected_and_nothing_cached(server: FileServer, tmp_path: Path) -> None:
    spec = portrait_spec(server.base, "0" * 40)
    with pytest.raises(WeightsIntegrityError, match="does not match the expected git SHA-1"):
        resolve_weights(spec, cache=tmp_path, offline=False, progress=lambda done, total: None)
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.part"))


def test_a_file_past_the_bound_is_refused_while_streaming(tmp_path: Path) -> None:
    huge = b"\0" * (MAX_UNSIZED_DOWNLOAD + (1 << 20))
    srv = FileServer({f"/w/{NAME}": huge})
    srv.chunked = True
    try:
        spec = portrait_spec(srv.base, git_blob_sha1(huge))  # even the right hash does not let it through
        with pytest.raises(WeightsIntegrityError, match="more than 16 MiB"):
            resolve_weights(spec, cache=tmp_path, offline=False, progress=lambda done, total: None)
    finally:
        srv.stop()
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.part"))


def test_right_hash_but_a_wrong_tensor_shape_is_refused(hayao_pt: Path, tmp_path: Path) -> None:
    state = torch.load(hayao_pt, weights_only=True)
    state["out_layer.0.weight"] = torch.zeros(3, 32, 3, 3)  # the file's hash is right; its contents are not a generator
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    srv = FileServer({f"/w/{NAME}": data})
    try:
        with pytest.raises(WeightsIntegrityError, match="out_layer.0.weight has shape"):
            resolve_weights(portrait_spec(srv.base, git_blob_sha1(data)), cache=tmp_path, offline=False,
                            progress=lambda done, total: None)
    finally:
        srv.stop()
    assert not list(tmp_path.rglob("*.pt"))


def test_weights_dir_takes_the_upstream_file_name(hayao_pt: Path, tmp_path: Path) -> None:
    (tmp_path / NAME).symlink_to(hayao_pt)
    got = resolve_weights(get_style("face_paint_512_v2"), weights_dir=tmp_path, cache=tmp_path / "cache", offline=True)
    assert got.source.endswith(NAME)
