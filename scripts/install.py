"""Install the app into this Python, with the torch build that fits this machine: ``python scripts/install.py``.

Why: pip's default Linux torch wheel is a CUDA build (about 5 GB with its NVIDIA libraries), useless on a
machine without an NVIDIA GPU. Here, on Linux with no NVIDIA driver, torch comes from PyTorch's CPU index
(about 200 MB); with a driver (or on macOS and Windows, where pip's default wheel already fits) from the
default index. Then requirements.txt and the package itself. A torch that is already installed is kept.
By default torch is the version CI tests and the figures in docs/ were measured with (TESTED_TORCH);
``--torch torch`` takes the newest instead.

    python scripts/install.py              # decide from this machine
    python scripts/install.py --cpu        # force the CPU build (--cuda: pip's default wheel)
    python scripts/install.py --torch torch --test   # the newest torch; add the test dependencies
    python scripts/install.py --dry-run    # print the pip commands only

Where PyTorch's CPU index cannot be reached (no route to it, a proxy that blocks it), it says so in one line and
takes torch from the default index instead (pip's own retries would print dozens of warnings and then fail).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import platform
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
NVIDIA_PROC = Path("/proc/driver/nvidia/version")
TESTED_TORCH = "torch==2.13.0"  # as in .ci/run: the version the tests and the figures in docs/ ran with
PROBE_SECONDS = 5.0  # long enough for a slow link to answer, short enough not to stall an install that cannot use it


def has_nvidia_driver(proc: Path = NVIDIA_PROC, path: str | None = None) -> bool:
    """A loaded NVIDIA kernel driver, or nvidia-smi on PATH (WSL has no /proc entry but ships nvidia-smi)."""
    return proc.exists() or shutil.which("nvidia-smi", path=path) is not None


def installed_torch() -> str | None:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def index_reachable(url: str, timeout: float = PROBE_SECONDS) -> bool:
    """Whether the package index at ``url`` serves torch's page (PEP 503: ``URL/torch/``) within ``timeout`` seconds.

    Asked once before pip runs, so that an index this machine cannot reach costs seconds, not pip's retries.
    Only the status line and headers are read."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout) as r:
            return r.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wants_cpu_index(*, cuda: bool, system: str) -> bool:
    """Only Linux without CUDA needs PyTorch's CPU index: elsewhere pip's default wheel already fits."""
    return system == "Linux" and not cuda


def plan(*, cuda: bool, system: str, torch_spec: str, torch_present: bool, test: bool,
         python: str = sys.executable, cpu_index: str | None = CPU_INDEX) -> list[list[str]]:
    """The pip commands, in order. ``cpu_index=None``: PyTorch's CPU index cannot be reached, take the default one."""
    pip = [python, "-m", "pip", "install"]
    commands = []
    if not torch_present:
        cpu_index = ["--index-url", cpu_index] if cpu_index and wants_cpu_index(cuda=cuda, system=system) else []
        commands.append([*pip, torch_spec, *cpu_index])
    commands.append([*pip, "-r", str(REPO / ("requirements-test.txt" if test else "requirements.txt"))])
    commands.append([*pip, "-e", str(REPO), "--no-deps"])
    return commands


def torch_build(python: str = sys.executable) -> str:
    """What got installed, from the interpreter itself: version and CUDA (or CPU) build."""
    probe = "import torch; print(torch.__version__, torch.version.cuda or 'cpu')"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else f"not importable ({out.stderr.strip().splitlines()[-1:]})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/install.py", description=__doc__.split("\n\n")[0])
    force = p.add_mutually_exclusive_group()
    force.add_argument("--cpu", action="store_true", help="install the CPU build of torch whatever the machine has")
    force.add_argument("--cuda", action="store_true", help="install pip's default torch wheel (a CUDA build on Linux)")
    p.add_argument("--torch", default=TESTED_TORCH, metavar="SPEC",
                   help=f"torch requirement (default {TESTED_TORCH}, the tested version; 'torch' for the newest)")
    p.add_argument("--test", action="store_true", help="also install the test dependencies (requirements-test.txt)")
    p.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    p.add_argument("--torch-index", default=CPU_INDEX, metavar="URL",
                   help=f"where the CPU build of torch comes from on Linux (default {CPU_INDEX})")
    args = p.parse_args(argv)
    driver = has_nvidia_driver()
    cuda = args.cuda or (driver and not args.cpu)
    present = installed_torch()
    system = platform.system()
    print(f"install: {system}, NVIDIA driver {'found' if driver else 'not found'}: "
          f"{'CUDA' if cuda else 'CPU'} build of torch" + (f" (torch {present} is installed: kept)" if present else ""))
    if system == "Windows" and cuda and not present:
        print("install: on Windows pip's default torch is the CPU build; for CUDA, install torch first as "
              "https://pytorch.org/get-started/locally/ says, then run this again")
    cpu_index = args.torch_index
    if not present and wants_cpu_index(cuda=cuda, system=system) and not index_reachable(cpu_index):
        print(f"install: {cpu_index} cannot be reached from here (asked for {PROBE_SECONDS:g} s at most): torch comes from the default "
              "index instead, where Linux wheels are CUDA builds (about 5 GB) unless it serves a CPU one. For the "
              "CPU build, make that host reachable (HTTPS_PROXY for a proxy) and run this again, or pass "
              "--torch-index with a mirror of it.", flush=True)
        cpu_index = None
    commands = plan(cuda=cuda, system=system, torch_spec=args.torch, torch_present=present is not None, test=args.test,
                    cpu_index=cpu_index)
    for command in commands:
        print("+", shlex.join(command), flush=True)
        if not args.dry_run and subprocess.run(command, check=False).returncode != 0:
            print(f"install: failed: {shlex.join(command)}", file=sys.stderr)
            return 1
    if args.dry_run:
        return 0
    build = torch_build()
    print(f"install: done; torch {build}. Start the app with: python app.py")
    if not cuda and system == "Linux" and not build.endswith(" cpu"):
        print("install: warning: a CUDA build of torch is installed on a machine without an NVIDIA driver; "
              "'pip uninstall torch' and run this again (or pass --torch with a version your index has as a CPU build)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
