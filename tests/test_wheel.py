"""A wheel install (not ``-e``) has everything a user needs: the styles, the example photos, a working CLI.

The wheel is built with ``pip wheel . --no-deps`` and installed into a fresh virtual environment that sees the
packages of the Python running the tests (torch and the rest) but not the repository: the CLI runs from another folder.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# The nested venv's runs: without a PYTHONPATH that would put the repository (not the wheel) on its path.
OUTSIDE = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv's python, with the animegan wheel installed in it."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(tmp / "dist")],
                   check=True, timeout=600)
    [wheel] = (tmp / "dist").glob("animegan-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True, timeout=300)
    python = tmp / "venv" / "bin" / "python"
    see_our_packages(python)
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300,
                   env=OUTSIDE)
    return python


def see_our_packages(python: Path) -> None:
    """Let the new venv import this interpreter's packages, after its own.

    ``venv --system-site-packages`` would not do: run from inside a venv, it shows the base interpreter's packages,
    not the venv's. A .pth file in the new venv's site-packages appends this interpreter's site-packages folders
    (plain paths, so the editable install's hook of the repository is not among them)."""
    ours = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True, timeout=60, env=OUTSIDE).stdout.strip()
    assert Path(purelib) != Path(sysconfig.get_path("purelib")), "the nested venv must have its own site-packages"
    (Path(purelib) / "tests_outer_packages.pth").write_text("\n".join(ours) + "\n")


def test_the_installed_package_is_the_wheel_with_its_styles_and_examples(installed: Path, tmp_path: Path) -> None:
    out = subprocess.run([str(installed), "-c", ("import animegan, animegan.ui as ui; print(animegan.__file__); "
                          "print(','.join(s.id for s in animegan.load_styles())); "
                          "print(len(list(ui.EXAMPLES_DIR.glob('*.jpg'))))")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300, check=True, env=OUTSIDE).stdout.split()
    assert Path(out[0]).is_relative_to(installed.parents[1]), out  # not the repository's copy
    assert out[1] == "hayao,shinkai,paprika,face_paint_512_v2,face_paint_512_v1,celeba_distill"
    assert int(out[2]) == 4


def test_the_cli_from_another_folder_converts_a_photo(installed: Path, hayao_pt: Path, photos: dict[str, Path],
                                                       tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([str(installed), "-m", "animegan", str(photos["railway_crossing"]), "--style", "hayao",
                          "--weights", str(hayao_pt), "--max-side", "128", "--out", "out", "--offline"],
                         cwd=elsewhere, capture_output=True, text=True, timeout=300, env=OUTSIDE, check=False)
    assert run.returncode == 0, run.stderr
    [png] = (elsewhere / "out").glob("*.png")
    assert max(Image.open(png).size) == 128
    unknown = subprocess.run([str(installed), "-m", "animegan", str(photos["railway_crossing"]), "--style", "cubism"],
                             cwd=elsewhere, capture_output=True, text=True, timeout=300, env=OUTSIDE, check=False)
    assert unknown.returncode == 2 and "choose one of: hayao, shinkai, paprika" in unknown.stderr
