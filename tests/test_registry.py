"""Styles and the load-once registry."""
from __future__ import annotations

import gc
import re
import tomllib
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import all_at_once

import animegan.styles
from animegan import Registry, UnknownStyleError, get_style, load_styles, settings
from animegan.weights.download import git_blob_sha1

SCENE_IDS = ["hayao", "shinkai", "paprika"]
PORTRAIT_IDS = ["face_paint_512_v2", "face_paint_512_v1", "celeba_distill"]  # tested in test_portrait_weights.py
STYLE_IDS = SCENE_IDS + PORTRAIT_IDS


def scene_styles():
    return [s for s in load_styles() if not s.is_portrait]
UPSTREAM_BASE = "https://github.com/TachibanaYoshino/AnimeGANv2/raw/master/checkpoint"


@pytest.fixture(scope="module")
def upstream_table(shared: Path) -> dict[str, tuple[int, str]]:
    """{file name: (size, git blob SHA-1)} from the 'Expected file sizes and checksums' table of shared/weights/README.md."""
    text = (shared / "weights" / "README.md").read_text()
    rows = re.findall(r"^\| ((?:Hayao-64|Shinkai-53|Paprika-54)\.ckpt\.\S+) \| ([\d,]+) \| ([0-9a-f]{40}) \|", text, re.MULTILINE)
    assert len(rows) == 6, "the README table changed shape"
    return {name: (int(size.replace(",", "")), sha1) for name, size, sha1 in rows}


@pytest.fixture
def fresh(hayao_pt: Path, tmp_path: Path) -> Registry:
    return Registry(weights={"hayao": hayao_pt}, cache_dir=tmp_path / "cache", offline=True)


# --- styles ----------------------------------------------------------------------------------------

PACKAGED_STYLES = Path(animegan.styles.__file__).parent


def test_styles_in_display_order() -> None:
    assert [s.id for s in load_styles()] == STYLE_IDS
    assert [s.name for s in scene_styles()] == ["Hayao", "Shinkai", "Paprika"]


def test_every_style_file_has_every_field() -> None:
    files = sorted(PACKAGED_STYLES.glob("*.toml"))
    assert [p.stem for p in files] == sorted(STYLE_IDS)
    for path in [f for f in files if f.stem in SCENE_IDS]:
        raw = tomllib.loads(path.read_text())
        for key, kind in [("id", str), ("name", str), ("description", str), ("order", int), ("max_side", int),
                          ("licence", str), ("homepage", str)]:
            assert isinstance(raw.get(key), kind) and raw[key] != "", (path.name, key)
        assert raw["id"] == path.stem
        assert "non-commercial" in raw["licence"]
        ckpt = raw["checkpoint"]
        assert ckpt["prefix"].endswith(".ckpt") and ckpt["base_url"].startswith(UPSTREAM_BASE)
        assert [f["name"] for f in ckpt["files"]] == [f"{ckpt['prefix']}.index", f"{ckpt['prefix']}.data-00000-of-00001"]
        for f in ckpt["files"]:
            assert isinstance(f["size"], int) and re.fullmatch(r"[0-9a-f]{40}", f["git_sha1"]), (path.name, f)


def test_style_files_match_the_upstream_table(upstream_table: dict[str, tuple[int, str]]) -> None:
    seen = {}
    for spec in scene_styles():
        for f in spec.files:
            seen[f.name] = (f.size, f.git_sha1)
            folder = {"hayao": "Hayao", "shinkai": "Shinkai", "paprika": "Paprika"}[spec.id]
            assert f.url == f"{UPSTREAM_BASE}/generator_{folder}_weight/{f.name}"
    assert seen == upstream_table
    assert [s.checkpoint_prefix for s in scene_styles()] == ["Hayao-64.ckpt", "Shinkai-53.ckpt", "Paprika-54.ckpt"]


def test_index_hashes_match_the_real_upstream_index_files(shared: Path) -> None:
    for spec in scene_styles():
        index = next(f for f in spec.files if f.name.endswith(".index"))
        data = (shared / "weights" / "tf-index" / index.name).read_bytes()
        assert len(data) == index.size
        assert git_blob_sha1(data) == index.git_sha1, index.name


def test_get_style_by_id_or_name() -> None:
    assert get_style("Shinkai").id == "shinkai"
    assert get_style("  PAPRIKA ").id == "paprika"
    assert get_style(get_style("hayao")) is get_style("hayao")


def test_unknown_style_lists_the_styles(fresh: Registry) -> None:
    with pytest.raises(UnknownStyleError) as info:
        fresh.get("ghibli")
    assert str(info.value) == "unknown style 'ghibli'; choose one of: hayao, shinkai, paprika, face_paint_512_v2, face_paint_512_v1, celeba_distill"
    assert fresh.loads == 0


def test_styles_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (PACKAGED_STYLES / "hayao.toml").read_text().replace('id = "hayao"', 'id = "mine"')
    (tmp_path / "mine.toml").write_text(text.replace("order = 1", "order = 50"))
    (tmp_path / "paprika.toml").write_text((PACKAGED_STYLES / "paprika.toml").read_text().replace(
        'name = "Paprika"', 'name = "Paprika (mine)"'))
    monkeypatch.setenv(settings.ENV_STYLES_DIR, str(tmp_path))
    # The folder adds styles and overrides packaged ones by id; the packaged ones stay.
    assert [s.id for s in load_styles()] == ["hayao", "shinkai", "paprika", "mine", *PORTRAIT_IDS]
    assert get_style("paprika").name == "Paprika (mine)"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "broken.toml").write_text('id = "broken"\n')
    with pytest.raises(ValueError, match=r"broken\.toml lacks the field 'checkpoint'"):
        load_styles(broken)


# --- the registry ----------------------------------------------------------------------------------

def test_sixteen_threads_one_load(fresh: Registry) -> None:
    got = all_at_once(16, lambda i: fresh.get("Hayao" if i % 2 else "hayao", "cpu", "fp32"), timeout=60)
    assert not [g for g in got if isinstance(g, BaseException)], got
    assert fresh.loads == 1
    assert all(g is got[0] for g in got)
    assert len(fresh.loaded()) == 1


def test_loaded_reports_parameter_bytes(fresh: Registry, hayao_pt: Path) -> None:
    assert fresh.loaded() == []
    m = fresh.get("hayao")
    [info] = fresh.loaded()
    assert info is m
    assert info.param_bytes == 2_143_552 * 4
    assert info.weights_source == str(hayao_pt)
    assert len(info.weights_fingerprint) == 64 and info.load_seconds > 0
    assert not info.model.training and not any(p.requires_grad for p in info.model.parameters())


def test_unload_frees_the_model(fresh: Registry) -> None:
    first = fresh.get("hayao")
    ref = weakref.ref(first.model)
    del first
    assert fresh.unload("hayao") == 1
    assert fresh.loaded() == []
    gc.collect()
    assert ref() is None, "the registry still holds the unloaded model"
    second = fresh.get("hayao")
    assert fresh.loads == 2 and second.model is not None
    assert fresh.unload() == 1 and fresh.unload() == 0


def test_other_styles_and_availability(hayao_pt: Path, tmp_path: Path) -> None:
    reg = Registry(weights={"shinkai": hayao_pt}, cache_dir=tmp_path / "cache", offline=True)
    avail = reg.availability()
    assert list(avail) == STYLE_IDS
    assert avail["shinkai"][0] and not avail["hayao"][0] and not avail["paprika"][0]
    assert "Paprika-54.ckpt.index" in avail["paprika"][1]
    assert reg.get("shinkai").spec.id == "shinkai"  # Hayao values under another style's name
    assert reg.availability()["shinkai"] == (True, "loaded")
    assert reg.loads == 1


# --- preload (the app's --preload) -------------------------------------------------------------------

def test_preload_loads_what_stylize_uses_and_reports_each_failure(fresh: Registry) -> None:
    from animegan import stylize
    from animegan.engine import default_precision
    from animegan.weights import WeightsMissingError

    auto = default_precision(torch.device("cpu"))  # what stylize() runs on this CPU (bf16 where it is native)
    outcome = fresh.preload(device="cpu")
    assert list(outcome) == STYLE_IDS
    assert outcome["hayao"].key.device == "cpu" and outcome["hayao"].key.precision == auto
    for sid in ("shinkai", "paprika"):  # offline, no files: the reason, not an exception, and the others still load
        assert isinstance(outcome[sid], WeightsMissingError) and sid in str(outcome[sid])
    assert fresh.loads == len(STYLE_IDS) and len(fresh.loaded()) == 1
    assert fresh.get("hayao", "cpu", auto) is outcome["hayao"]
    stylize(np.zeros((8, 8, 3), np.uint8), "hayao", registry=fresh, device="cpu")  # the preloaded model serves it
    assert fresh.loads == len(STYLE_IDS) and len(fresh.loaded()) == 1


def test_preload_some_styles_by_name_and_refuse_unknown(fresh: Registry) -> None:
    assert list(fresh.preload(["Hayao", "hayao"], device="cpu")) == ["hayao"]  # names accepted, duplicates once
    with pytest.raises(UnknownStyleError, match="ghibli"):
        fresh.preload(["hayao", "ghibli"], device="cpu")
    assert fresh.loads == 1


def test_a_failed_load_marks_the_style_unavailable_until_one_succeeds(hayao_pt: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    import socket

    from animegan.weights import WeightsDownloadError

    with socket.socket() as s:  # a loopback port nobody listens on: the download is refused at once
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv(settings.ENV_MIRROR, dead)
    for name in (settings.ENV_WEIGHTS_DIR, settings.ENV_OFFLINE, settings.ENV_HF_OFFLINE):
        monkeypatch.delenv(name, raising=False)
    reg = Registry(cache_dir=tmp_path / "cache", offline=False)
    assert reg.availability()["shinkai"] == (True, "downloaded on first use (8.6 MB)")
    with pytest.raises(WeightsDownloadError):
        reg.get("shinkai")
    ok, why = reg.availability()["shinkai"]
    assert not ok and why.startswith(f"the last attempt failed ({dead}/Shinkai-53.ckpt.index: could not download")
    assert reg.availability()["hayao"][0]  # the other styles are untouched
    assert any("the Shinkai style is unavailable" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    folder = tmp_path / "weights"  # the user fixes it: the next try succeeds and the failure is forgotten
    folder.mkdir()
    (folder / "shinkai.pt").symlink_to(hayao_pt)
    reg.weights_dir = folder
    assert reg.get("shinkai").spec.id == "shinkai"
    assert reg.availability()["shinkai"] == (True, "loaded")
    reg.unload("shinkai")
    assert reg.availability()["shinkai"] == (True, f"local file {folder / 'shinkai.pt'}")
