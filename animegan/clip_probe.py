"""FFmpeg's first look at a clip that names its streams only once read, done in a child process under a memory cap.

Why: the pixel cap (the decoders' ``max_pixels``) can be handed to the decoders FFmpeg's probe opens only for the
streams a container declares in its header; PyAV passes nothing for the others. An MPEG-PS (VOB, MPG) declares
none, and an MPEG-TS whose program table comes after its first megabytes neither, so FFmpeg's probe would decode
their first frames at whatever size they claim, in this process, before any check of ours (a 16 KB .mpg holding
one 8192x8192 H.264 frame took 150 MiB). The same probe runs first in a child limited to
:func:`probe_budget` bytes of address space; this process opens the file itself only when the child's probe fitted
and its streams' sizes are within the cap, so its own probe (the same decoding of the same bytes) fits too.

Run as a script (``python -I clip_probe.py PATH FORMAT OPTIONS_JSON BUDGET TIMEOUT``) it is the child: it imports
only PyAV and the standard library.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path

LAZY_FORMATS = frozenset({"mpeg", "mpegts"})  # FFmpeg readers whose streams may appear only while probing
BASE_BUDGET = 192 << 20   # the probe's own buffers (it reads up to 5 MB) and the decoders' tables
BYTES_PER_PIXEL = 6       # a few frames at the pixel cap: four 8-bit 4:2:0 ones, or two at 16 bits
SPAWN_SLACK_S = 5.0       # the child's start (about 0.1 s) and PyAV's import, beyond the probe's own timeout
EXIT_REFUSED, EXIT_MEMORY = 2, 3
_CACHE_SIZE = 64
# FFmpeg's words when a frame or a table could not be allocated (decode.c's get_buffer, ENOMEM's text)
_ALLOCATION_FAILED = re.compile(r"get_buffer\(\) failed|cannot allocate|out of memory", re.IGNORECASE)


class ProbeRefused(ValueError):
    """The child's probe failed, ran out of its memory, or took too long: the reason, for the user."""


def probe_budget(cap_pixels: int) -> int:
    """Bytes of address space the probe may add: what legitimate frames at the cap need, and no more."""
    return BASE_BUDGET + BYTES_PER_PIXEL * cap_pixels


_cache: OrderedDict[tuple, list[tuple[str, int, int]]] = OrderedDict()
_cache_lock = threading.Lock()


def streams(path: str | os.PathLike, fmt: str, options: dict[str, str], cap_pixels: int, timeout: float,
            budget: int | None = None) -> list[tuple[str, int, int]]:
    """The streams (kind, width, height) FFmpeg's probe of ``path`` finds, probed in a child under ``budget``
    bytes (None: :func:`probe_budget`); raises :class:`ProbeRefused`. Remembered per file and settings, so the
    several opens of one conversion pay once."""
    budget = probe_budget(cap_pixels) if budget is None else budget
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, fmt, json.dumps(options, sort_keys=True), budget)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    found = _run_child(Path(path), fmt, options, budget, timeout)
    with _cache_lock:
        _cache[key] = found
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return found


def _run_child(path: Path, fmt: str, options: dict[str, str], budget: int, timeout: float) -> list[tuple[str, int, int]]:
    command = [sys.executable, "-I", str(Path(__file__).resolve()), str(path), fmt, json.dumps(options), str(budget),
               f"{timeout:.3f}"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout + SPAWN_SLACK_S, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ProbeRefused(f"reading the video's first frames took more than {timeout:.0f} s") from None
    if done.returncode == 0:
        try:
            return [(kind, int(w), int(h)) for kind, w, h in json.loads(done.stdout)["streams"]]
        except (ValueError, KeyError, TypeError):
            pass  # falls through to the generic refusal below
    if done.returncode == EXIT_REFUSED:
        reason = done.stdout.decode(errors="replace").strip()[:300] or "unknown error"
        raise ProbeRefused(f"not a video this app can read ({reason}); the file is damaged or truncated")
    if done.returncode in (EXIT_MEMORY, -9) or b"MemoryError" in done.stderr:
        raise ProbeRefused(f"reading its first frames needs more than {budget >> 20} MiB: its pictures are "
                           "larger than the per-frame pixel limit allows (whatever its header says)")
    raise ProbeRefused(f"FFmpeg could not read the video's first frames (exit {done.returncode}); the file is "
                       "damaged")


def _child(argv: list[str]) -> int:
    """The child: cap its own address space where the OS can (Linux), let FFmpeg probe the file as the app would,
    and refuse a probe whose peak grew past the budget where it cannot (the cap, not the check, is what protects)."""
    import av
    import av.logging

    path, fmt, options, budget, timeout = argv[0], argv[1], json.loads(argv[2]), int(argv[3]), float(argv[4])
    before = _peak_bytes()
    _limit_address_space(budget)
    av.logging.set_level(av.logging.ERROR)
    try:
        # FFmpeg's probe shrugs off a frame it could not allocate (it logs and goes on): under the cap that would
        # hide a frame this process, without the cap, would decode. So a logged allocation failure refuses too.
        with av.logging.Capture() as logged, av.open(path, format=fmt, options=options, metadata_errors="ignore",
                                                     timeout=(timeout, timeout)) as c:
            found = [(s.type, s.codec_context.width if s.type == "video" else 0,
                      s.codec_context.height if s.type == "video" else 0) for s in c.streams]
    except (MemoryError, av.error.MemoryError):
        return EXIT_MEMORY
    except av.error.FFmpegError as exc:
        print(getattr(exc, "strerror", None) or exc)
        return EXIT_REFUSED
    if any(_ALLOCATION_FAILED.search(message) for _level, _name, message in logged):
        return EXIT_MEMORY
    if before is not None and (_peak_bytes() or 0) - before > budget:
        return EXIT_MEMORY
    print(json.dumps({"streams": found}))
    return 0


def _limit_address_space(budget: int) -> None:
    try:
        import resource

        with open("/proc/self/status", encoding="ascii") as f:  # mapped so far: Python and PyAV's FFmpeg libraries
            used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (used + budget, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (ImportError, OSError, ValueError, StopIteration):
        pass  # not Linux: the peak check in _child still refuses the file


def _peak_bytes() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
