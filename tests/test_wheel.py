"""A wheel install (not ``-e``) has everything a user needs: the styles, the example photos, a working CLI.

The wheel is built with ``pip wheel . --no-deps`` and installed into a fresh virtual environment that sees this
machine's packages (torch and the rest) but not the repository: the CLI runs from another folder.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv's python, with the animegan wheel installed in it."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(tmp / "dist")],
                   check=True, timeout=600)
    [wheel] = (tmp / "dist").glob("animegan-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(tmp / "venv")], check=True, timeout=300)
    python = tmp / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300)
    return python


def test_the_installed_package_is_the_wheel_with_its_styles_and_examples(installed: Path, tmp_path: Path) -> None:
    out = subprocess.run([str(installed), "-c", "import animegan, animegan.ui as ui; print(animegan.__file__); "
                          "print(','.join(s.id for s in animegan.load_styles())); "
                          "print(len(list(ui.EXAMPLES_DIR.glob('*.jpg'))))"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300, check=True).stdout.split()
    assert Path(out[0]).is_relative_to(installed.parents[1]), out  # not the repository's copy
    assert out[1] == "hayao,shinkai,paprika,face_paint_512_v2,face_paint_512_v1,celeba_distill"
    assert int(out[2]) == 4


def test_the_cli_from_another_folder_converts_a_photo(installed: Path, hayao_pt: Path, photos: dict[str, Path],
                                                       tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([str(installed), "-m", "animegan", str(photos["railway_crossing"]), "--style", "hayao",
                          "--weights", str(hayao_pt), "--max-side", "128", "--out", "out", "--offline"],
                         cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    [png] = (elsewhere / "out").glob("*.png")
    assert max(Image.open(png).size) == 128
    unknown = subprocess.run([str(installed), "-m", "animegan", str(photos["railway_crossing"]), "--style", "cubism"],
                             cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert unknown.returncode == 2 and "choose one of: hayao, shinkai, paprika" in unknown.stderr
