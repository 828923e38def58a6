"""``python -m animegan download``: a real subprocess fetching from a mirror on 127.0.0.1, real files, exit codes."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_weights_store import FileServer

from animegan.styles import get_style
from animegan.weights import load_pt, resolve_weights
from animegan.weights.download import git_blob_sha1

REPO = Path(__file__).resolve().parents[1]
STYLES = ("hayao", "shinkai", "paprika", "face_paint_512_v2", "face_paint_512_v1", "celeba_distill")
TF_UPSTREAM = {"hayao": "Hayao-64.ckpt", "shinkai": "Shinkai-53.ckpt", "paprika": "Paprika-54.ckpt"}
PT_UPSTREAM = {s: f"{s}.pt" for s in STYLES[3:]}  # the portrait styles: one state dict each, size unknown
UPSTREAM = {**TF_UPSTREAM, **PT_UPSTREAM}


@pytest.fixture(scope="module")
def stand_in(hayao_ckpt: Path, hayao_pt: Path) -> dict[str, bytes]:
    return {"index": Path(f"{hayao_ckpt}.index").read_bytes(),
            "data": Path(f"{hayao_ckpt}.data-00000-of-00001").read_bytes(), "pt": hayao_pt.read_bytes()}


@pytest.fixture(scope="module")
def styles_dir(stand_in: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real style files with the stand-in's sizes and git SHA-1s (scripts/standin_mirror.py, as in a demo)."""
    spec = importlib.util.spec_from_file_location("standin_mirror", REPO / "scripts" / "standin_mirror.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = tmp_path_factory.mktemp("styles")
    assert sorted(module.write_styles(stand_in, folder)) == sorted(UPSTREAM.values())
    for toml in folder.glob("*.toml"):
        assert git_blob_sha1(stand_in["pt" if toml.stem in PT_UPSTREAM else "data"]) in toml.read_text()
    return folder


@pytest.fixture
def mirror(stand_in: dict[str, bytes]) -> Iterator[FileServer]:
    """Serves the stand-in under every style's upstream file names."""
    srv = FileServer({**{f"/m/{prefix}.{suffix}": stand_in[kind] for prefix in TF_UPSTREAM.values()
                         for kind, suffix in (("index", "index"), ("data", "data-00000-of-00001"))},
                      **{f"/m/{name}": stand_in["pt"] for name in PT_UPSTREAM.values()}})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def expected(hayao_pt: Path) -> dict[str, torch.Tensor]:
    return torch.load(hayao_pt, weights_only=True)


def run_download(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANIMEGAN_", "HF_HUB_"))}
    return subprocess.run([sys.executable, "-m", "animegan", "download", *map(str, args)], cwd=cwd,
                          env={**base, "PYTHONPATH": str(REPO), **env}, capture_output=True, text=True, timeout=300, check=False)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_all_styles_into_a_folder_then_again_from_the_cache(mirror: FileServer, styles_dir: Path, expected,
                                                             tmp_path: Path) -> None:
    env = {"ANIMEGAN_STYLES_DIR": str(styles_dir), "ANIMEGAN_WEIGHTS_MIRROR": f"{mirror.base}/m",
           "ANIMEGAN_CACHE_DIR": str(tmp_path / "cache")}
    r = run_download("--to", "weights", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # not a terminal: no progress bars, no warnings
    folder = tmp_path / "weights"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s}.pt" for s in STYLES)
    lines = r.stdout.splitlines()
    assert len(lines) == len(STYLES), r.stdout
    for style, line in zip(STYLES, lines):  # display order; path, size, seconds, where the weights came from
        m = re.fullmatch(rf"{style}: (\S+)  (\S+ MB)  (\d+\.\d\d) s, from (\S+)", line)
        assert m, line
        assert Path(m.group(1)) == folder / f"{style}.pt"
        assert Path(m.group(4)).parent == tmp_path / "cache"  # downloaded, verified, converted, cached
    assert sorted(mirror.requests) == sorted([f"/m/{p}.{s}" for p in TF_UPSTREAM.values()
                                              for s in ("index", "data-00000-of-00001")]
                                             + [f"/m/{name}" for name in PT_UPSTREAM.values()])
    for style in STYLES:  # what --weights-dir takes, offline, on another machine
        spec = get_style(style, styles_dir)
        got = resolve_weights(spec, weights_dir=folder, cache=tmp_path / "elsewhere", offline=True)
        assert got.source == str(folder / f"{style}.pt") and same(got.state_dict, expected)
    # Again, offline: everything from the cache, the folder's files left alone.
    env["ANIMEGAN_OFFLINE"] = "1"
    again = run_download("--to", folder, "--quiet", cwd=tmp_path, env=env)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    verbose = run_download("hayao", "--to", folder, cwd=tmp_path, env=env)
    assert verbose.returncode == 0 and verbose.stdout.count("(unchanged)") == 1, verbose.stdout
    assert len(mirror.requests) == 9  # no request after the first run


def test_a_failing_style_is_reported_and_the_others_are_written(mirror: FileServer, styles_dir: Path,
                                                                tmp_path: Path) -> None:
    del mirror.files["/m/Paprika-54.ckpt.data-00000-of-00001"]
    env = {"ANIMEGAN_STYLES_DIR": str(styles_dir), "ANIMEGAN_WEIGHTS_MIRROR": f"{mirror.base}/m",
           "ANIMEGAN_CACHE_DIR": str(tmp_path / "cache")}
    r = run_download("paprika", "Hayao", "--to", tmp_path / "w", cwd=tmp_path, env=env)
    assert r.returncode == 1
    assert "error: paprika: " in r.stderr and "HTTP 404" in r.stderr and "1 of 2 styles are not ready" in r.stderr
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["hayao.pt"]
    assert r.stdout.startswith("hayao: ")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith("paprika.") and p.suffix == ".pt"]


def test_from_a_local_weights_dir_offline(stand_in: dict[str, bytes], expected, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Upstream TF files in a folder become hayao.pt in another, without network; a missing style says what to do."""
    from animegan.__main__ import main

    for name in ("ANIMEGAN_OFFLINE", "HF_HUB_OFFLINE", "ANIMEGAN_WEIGHTS_DIR", "ANIMEGAN_WEIGHTS_MIRROR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANIMEGAN_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "tf"
    src.mkdir()
    (src / "Hayao-64.ckpt.index").write_bytes(stand_in["index"])
    (src / "Hayao-64.ckpt.data-00000-of-00001").write_bytes(stand_in["data"])
    code = main(["download", "hayao", "shinkai", "--weights-dir", str(src), "--offline", "--to", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.startswith(f"hayao: {tmp_path / 'out' / 'hayao.pt'}  ") and out.rstrip().endswith(f"from {src / 'Hayao-64.ckpt'}")
    assert "error: shinkai: weights for style 'Shinkai' are not available offline (--offline was given)" in err
    assert f"{src} (the --weights-dir folder)" in err
    assert same(load_pt(tmp_path / "out" / "hayao.pt"), expected)
    assert not (tmp_path / "out" / "shinkai.pt").exists()


def test_unknown_style_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from animegan.__main__ import main

    assert main(["download", "hayao", "ghibli", "--to", str(tmp_path / "w")]) == 2
    assert "choose one of: hayao, shinkai, paprika" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
    with pytest.raises(SystemExit) as info:
        main(["download", "--bogus"])
    assert info.value.code == 2
