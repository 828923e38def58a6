"""``python -m animegan`` as a user runs it: a real subprocess, real files, exit codes."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animegan.memory import fmt_bytes

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str | Path, cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANIMEGAN_", "HF_HUB_"))}
    env.update(ANIMEGAN_CACHE_DIR=str(cache), ANIMEGAN_OFFLINE="1", PYTHONPATH=str(REPO))  # never the network
    return subprocess.run([sys.executable, "-m", "animegan", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180, check=False)


def assert_written_lines(stdout: str, out: Path) -> None:
    """Stdout is a pipe here, not a terminal: still one line per written file (path, size, seconds) and nothing else."""
    lines = stdout.splitlines()
    files = sorted(out.iterdir())
    assert len(lines) == len(files), stdout
    for line in lines:
        m = re.fullmatch(r"(.+)  (\d+(?:\.\d+)? (?:B|KB|MB))  (\d+\.\d\d) s", line)
        assert m, line
        path = Path(m.group(1))
        assert path.resolve() in [f.resolve() for f in files]
        assert m.group(2) == fmt_bytes(path.stat().st_size) and 0 < float(m.group(3)) < 120


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
    assert_written_lines(r.stdout, out)
    assert "broken.jpg" in r.stderr and "skipped" in r.stderr
    assert "1 of 4 photos failed" in r.stderr
    assert "railway_crossing.jpg: downscaled from 1024x682 to 96x64" in r.stderr  # notices: stderr, like errors
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
    assert "Shinkai-53.ckpt.index" in err and str(tmp_path / "empty-cache") in err
    # what the user typed (--offline), not the variables they did not set
    assert "(--offline was given)" in err and "run without --offline" in err and "ANIMEGAN_OFFLINE" not in err
    assert not (tmp_path / "out").exists()


def test_missing_weights_names_the_full_weights_dir(photos: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A local user gets the full path of a relative --weights-dir, and the variable that made it offline."""
    from animegan.__main__ import main

    monkeypatch.delenv("ANIMEGAN_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("ANIMEGAN_OFFLINE", "1")
    monkeypatch.setenv("ANIMEGAN_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").mkdir()
    assert main([str(photos["railway_crossing"]), "--style", "paprika", "--weights-dir", "w"]) == 2
    err = capsys.readouterr().err
    assert f"in {tmp_path / 'w'} (the --weights-dir folder)" in err
    assert "(ANIMEGAN_OFFLINE is set)" in err and "unset ANIMEGAN_OFFLINE to download" in err
    assert "HF_HUB_OFFLINE" not in err and "--offline" not in err


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


def test_quiet_prints_nothing_on_success(photos: dict[str, Path], hayao_pt: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from animegan.__main__ import main

    photo = small_copy(photos["railway_crossing"], tmp_path / "a.png", (24, 16))
    assert main([str(photo), "--weights", str(hayao_pt), "--device", "cpu", "--out", str(tmp_path / "out"), "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "out" / "a_hayao.png").is_file()
    assert main([str(photo), "--weights", str(hayao_pt), "--device", "cpu", "--out", str(tmp_path / "out2")]) == 0
    assert_written_lines(capsys.readouterr().out, tmp_path / "out2")


def test_result_name_is_the_documented_rule() -> None:
    from animegan.imaging import result_name

    assert result_name("astronaut", "hayao") == "astronaut_hayao.png"
    assert result_name("IMG_0001", "shinkai", "png", n=3) == "IMG_0001_shinkai_3.png"
    assert result_name("a.b", "paprika", ".png", n=1) == "a.b_paprika.png"
    assert "`<stem>_<style>.png`" in (REPO / "README.md").read_text()


def test_a_photo_named_download(photos: dict[str, Path], hayao_pt: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """'download' is the weights command; ./download is the photo. Asking for the command says so when the file exists."""
    from animegan.__main__ import main

    monkeypatch.chdir(tmp_path)
    small_copy(photos["railway_crossing"], tmp_path / "x.png", (24, 16)).rename(tmp_path / "download")
    assert main(["./download", "--weights", str(hayao_pt), "--device", "cpu", "--out", "out"]) == 0
    assert (tmp_path / "out" / "download_hayao.png").is_file()
    capsys.readouterr()
    assert main(["download", "ghibli"]) == 2  # the command (an unknown style: nothing is fetched)
    err = capsys.readouterr().err
    assert "to convert the file named download, write ./download" in err and "unknown style 'ghibli'" in err
