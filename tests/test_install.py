"""scripts/install.py: the torch build follows the machine (issue 14, item 1). The pip commands are checked here;
a real install into a fresh venv is a figure in the notes (it takes minutes and hundreds of MB)."""
from __future__ import annotations

import contextlib
import http.server
import importlib.util
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import free_port

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
    if install.installed_torch() is None:  # the CPU index, or the default one where it cannot be reached
        assert f"install {install.TESTED_TORCH}" in commands[0]
    assert commands[-2].endswith("requirements-test.txt") and commands[-1].endswith("--no-deps")


@contextlib.contextmanager
def index_server() -> Iterator[tuple[str, list[str]]]:
    """A PEP 503 index on 127.0.0.1 that serves torch's page (and nothing else), with the paths it was asked for."""
    asked: list[str] = []

    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = b"<html><body><a href='torch-2.13.0-cp311-none-any.whl'>torch</a></body></html>"
            self.send_response(200 if self.path == "/simple/torch/" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple", asked
    finally:
        server.shutdown()
        server.server_close()


def test_the_probe_asks_the_index_for_torch(install) -> None:
    with index_server() as (url, asked):
        assert install.index_reachable(url)
        assert not install.index_reachable(url + "/elsewhere")  # answers, but has no torch page
    assert asked == ["/simple/torch/", "/simple/elsewhere/torch/"]


def test_an_unreachable_index_fails_fast(install) -> None:
    start = time.monotonic()
    assert not install.index_reachable(f"http://127.0.0.1:{free_port()}/simple")
    assert not install.index_reachable("not a url")
    assert time.monotonic() - start < install.PROBE_SECONDS


def run_main(install, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, index: str) -> list[str]:
    """install.py --cpu --dry-run as on a Linux machine with no torch yet; its printed lines."""
    monkeypatch.setattr(install, "installed_torch", lambda: None)
    monkeypatch.setattr(install.platform, "system", lambda: "Linux")
    assert install.main(["--cpu", "--dry-run", "--torch-index", index]) == 0
    return capsys.readouterr().out.splitlines()


def test_unreachable_cpu_index_falls_back_to_the_default_one_in_one_line(install, monkeypatch, capsys) -> None:
    index = f"http://127.0.0.1:{free_port()}/simple"
    lines = run_main(install, monkeypatch, capsys, index)
    said = [ln for ln in lines if "cannot be reached" in ln]
    assert len(said) == 1 and index in said[0] and "--torch-index" in said[0] and "run this again" in said[0]
    torch_step = next(ln for ln in lines if ln.startswith("+ ") and install.TESTED_TORCH in ln)
    assert "--index-url" not in torch_step  # the default index


def test_reachable_cpu_index_is_used(install, monkeypatch, capsys) -> None:
    with index_server() as (index, asked):
        lines = run_main(install, monkeypatch, capsys, index)
    assert asked == ["/simple/torch/"]
    assert not any("cannot be reached" in ln for ln in lines)
    assert any(ln.startswith("+ ") and ln.endswith(f"{install.TESTED_TORCH} --index-url {index}") for ln in lines)


def test_plan_without_a_cpu_index_takes_the_default_one(install) -> None:
    torch_step, *_ = install.plan(cuda=False, system="Linux", torch_spec="torch==2.13.0", torch_present=False,
                                  test=False, python="py", cpu_index=None)
    assert torch_step == ["py", "-m", "pip", "install", "torch==2.13.0"]
