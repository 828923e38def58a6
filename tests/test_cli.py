"""``python -m animegan`` as a user runs it: a real subprocess, real files, exit codes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str | Path, cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANIMEGAN_", "HF_HUB_"))}
    env.update(ANIMEGAN_CACHE_DIR=str(cache), ANIMEGAN_OFFLINE="1", PYTHONPATH=str(REPO))  # never the network
    return subprocess.run([sys.executable, "-m", "animegan", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)


def small_copy(photo: Path, target: Path, size: tuple[int, int]) -> Path:
    with Image.open(photo) as im:
        im.convert("RGB").resize(size, Image.LANCZOS).save(target)
    return target


def test_photos_folder_and_a_bad_file(photos: dict[str, Path], hayao_pt: Path, tmp_path: Path) -> None:
    folder = tmp_path / "album"
    (folder / "nested").mkdir(parents=True)
    small_copy(photos["kyoto_street_kimono"], folder / "kyoto.png", (60, 90))
    small_copy(photos["cars_bridge_forest"], folder / "nested" / "cars.jpg", (90, 60))
    (folder / "notes.txt").write_text("not a photo, and not picked up from a folder")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    out = tmp_path / "out"
    r = run_cli(photos["railway_crossing"], bad, folder, "--style", "hayao", "--weights", hayao_pt, "--out", out,
                "--max-side", "96", cwd=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 1, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["cars_hayao.png", "kyoto_hayao.png", "railway_crossing_hayao.png"]
    assert "broken.jpg" in r.stderr and "skipped" in r.stderr
    assert "1 of 4 photos failed" in r.stderr
    with Image.open(out / "railway_crossing_hayao.png") as im:
        assert max(im.size) == 96 and im.mode == "RGB"
    with Image.open(out / "kyoto_hayao.png") as im:
        assert im.size == (60, 90)  # already within --max-side


def test_all_good_native_size_from_weights_dir(photos: dict[str, Path], hayao_pt: Path, tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    os.symlink(hayao_pt, weights / "hayao.pt")
    photo = small_copy(photos["railway_crossing"], tmp_path / "crossing.png", (130, 86))  # not multiples of 4
    r = run_cli(photo, "--style", "Hayao", "--weights-dir", weights, "--out", "results", "--max-side", "0",
                cwd=tmp_path, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "results" / "crossing_hayao.png") as im:
        assert im.size == (130, 86)
        styled = np.asarray(im.convert("RGB"))
    with Image.open(photo) as im:
        assert not np.array_equal(styled, np.asarray(im))


# Error exits run in-process (``main(argv)`` is what ``python -m animegan`` calls): each subprocess costs a torch import.

def test_missing_weights_offline(photos: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from animegan.__main__ import main

    for name in ("ANIMEGAN_WEIGHTS_DIR", "ANIMEGAN_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANIMEGAN_CACHE_DIR", str(tmp_path / "empty-cache"))
    code = main([str(photos["railway_crossing"]), "--style", "shinkai", "--offline", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: weights for style 'Shinkai' are not available offline")
    assert "Shinkai-53.ckpt.index" in err and "ANIMEGAN_OFFLINE" in err and str(tmp_path / "empty-cache") in err
    assert not (tmp_path / "out").exists()


def test_unknown_style(photos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from animegan.__main__ import main

    assert main([str(photos["railway_crossing"]), "--style", "ghibli", "--out", str(tmp_path)]) == 2
    assert "choose one of: hayao, shinkai, paprika" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--device", "tpu"], ["--weights", "a.pt", "--weights-dir", "w"], []])
def test_unusable_arguments(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from animegan.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(args if not args else ["photo.jpg", *args])
    assert info.value.code == 2
    assert "usage: python -m animegan" in capsys.readouterr().err


def test_folder_without_photos(hayao_pt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from animegan.__main__ import main

    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--weights", str(hayao_pt), "--out", str(tmp_path / "out")]) == 2
    assert "no images found" in capsys.readouterr().err


def test_same_stem_in_two_folders_keeps_both(photos: dict[str, Path], hayao_pt: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from animegan.__main__ import main

    for folder, name in (("2023", "IMG_0001.jpg"), ("2024", "IMG_0001.jpg"), ("2024", "IMG_0001.png")):
        (tmp_path / "in" / folder).mkdir(parents=True, exist_ok=True)
        small_copy(photos["railway_crossing"], tmp_path / "in" / folder / name, (24, 16))
    out = tmp_path / "out"
    code = main([str(tmp_path / "in"), "--weights", str(hayao_pt), "--device", "cpu", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["IMG_0001_hayao.png", "IMG_0001_hayao_2.png", "IMG_0001_hayao_3.png"]
