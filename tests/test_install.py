"""scripts/install.py: the torch build follows the machine (issue 14, item 1). The pip commands are checked here;
a real install into a fresh venv is a figure in the notes (it takes minutes and hundreds of MB)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "install.py"


@pytest.fixture(scope="module")
def install():
    spec = importlib.util.spec_from_file_location("install_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def index_of(command: list[str]) -> str | None:
    return command[command.index("--index-url") + 1] if "--index-url" in command else None


def test_linux_without_driver_takes_the_cpu_index(install) -> None:
    torch_step, reqs, package = install.plan(cuda=False, system="Linux", torch_spec="torch==2.13.0",
                                             torch_present=False, test=False, python="py")
    assert torch_step == ["py", "-m", "pip", "install", "torch==2.13.0", "--index-url", install.CPU_INDEX]
    assert reqs == ["py", "-m", "pip", "install", "-r", str(REPO / "requirements.txt")]
    assert package == ["py", "-m", "pip", "install", "-e", str(REPO), "--no-deps"]
    # torch comes first, so requirements.txt's torch>=2.4 is already satisfied by the CPU build
    assert install.TESTED_TORCH.startswith("torch==")


@pytest.mark.parametrize("system, cuda", [("Linux", True), ("Darwin", False), ("Windows", False)])
def test_default_index_where_it_already_fits(install, system: str, cuda: bool) -> None:
    commands = install.plan(cuda=cuda, system=system, torch_spec="torch", torch_present=False, test=True, python="py")
    assert index_of(commands[0]) is None and commands[0][-1] == "torch"
    assert commands[1][-1] == str(REPO / "requirements-test.txt")


def test_an_installed_torch_is_kept(install) -> None:
    commands = install.plan(cuda=False, system="Linux", torch_spec="torch", torch_present=True, test=False, python="py")
    assert len(commands) == 2 and all("torch" not in c for c in commands)


def test_driver_detection(install, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    assert not install.has_nvidia_driver(tmp_path / "no-proc", path=str(empty))
    proc = tmp_path / "version"
    proc.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06\n")
    assert install.has_nvidia_driver(proc, path=str(empty))
    smi = empty / "nvidia-smi"
    smi.write_text("#!/bin/sh\n")
    smi.chmod(0o755)
    assert install.has_nvidia_driver(tmp_path / "no-proc", path=str(empty))


def test_dry_run_on_this_machine(install) -> None:
    r = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--cpu", "--test"], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("install: ") and "CPU build of torch" in lines[0]
    commands = [ln[2:] for ln in lines if ln.startswith("+ ")]
    if install.installed_torch() is None:
        assert commands[0].endswith(f"install {install.TESTED_TORCH} --index-url {install.CPU_INDEX}")
    assert commands[-2].endswith("requirements-test.txt") and commands[-1].endswith("--no-deps")
