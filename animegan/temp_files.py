"""Files the web app leaves on the server's disk, and how each is removed: at exit, at the next start, or by age.

* Each app process keeps uploads in a folder of its own (``animegan-uploads-PID-*`` in the system temp folder)
  unless ``GRADIO_TEMP_DIR`` is set, and results in ``animegan-results-PID-*``. Both go at exit, which SIGTERM
  (how Docker, systemd and Spaces stop a server) now reaches as cleanly as Ctrl-C.
* A process that died without exiting (SIGKILL, out of memory, power) leaves them behind: the next start removes
  the folders with our prefixes whose process is gone. Nothing without our prefixes is touched.
* An upload cut off mid-way leaves Gradio's partial ``tmp*`` file at the top of the upload folder (complete
  uploads are moved into a subfolder at once). A sweeper removes those that stopped growing.
* With ``--mcp``, Gradio's MCP server writes each base64 file argument to a file before uploading it to the app;
  those go to ``animegan-mcp-PID-*`` (see :mod:`animegan.gradio_internals`), which the same sweeper ages out.
* An input that can never be converted (not an image, not a video the app reads) is deleted at once, with every
  copy of the same bytes the MCP server made (:func:`discard_refused`).
"""
from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

UPLOADS_PREFIX = "animegan-uploads-"
RESULTS_PREFIX = "animegan-results-"
MCP_PREFIX = "animegan-mcp-"
_OURS = re.compile(rf"^(?:{UPLOADS_PREFIX}|{RESULTS_PREFIX}|{MCP_PREFIX})(\d+)-")
PARTIAL_STALE_S = 60.0    # an upload that wrote nothing for this long was abandoned
SWEEP_EVERY_S = 30.0


def private_dir(prefix: str) -> Path:
    """A new folder ``PREFIX-PID-xxxx`` in the system temp folder, removed at exit."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def use_private_upload_dir() -> Path | None:
    """Point Gradio at an upload folder of this process's own, unless the operator chose one.

    Must run before Gradio is imported (it reads ``GRADIO_TEMP_DIR`` at import). Returns the folder, or None
    when ``GRADIO_TEMP_DIR`` was already set (then it is the operator's folder, and not removed at exit).
    """
    if os.environ.get("GRADIO_TEMP_DIR"):
        return None
    path = private_dir(UPLOADS_PREFIX)
    os.environ["GRADIO_TEMP_DIR"] = str(path)
    return path


def remove_files(paths: list[str | Path]) -> int:
    """Delete these files (Gradio's record of this process's uploads) and the per-upload folders they leave empty."""
    removed = 0
    for p in map(Path, paths):
        try:
            p.unlink()
            removed += 1
        except OSError:
            continue
        try:
            p.parent.rmdir()  # Gradio keeps each upload in a folder named by its hash
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_orphans(folder: str | Path | None = None) -> list[Path]:
    """Remove our folders whose process is gone (a crash, a SIGKILL); return what was removed."""
    removed = []
    base = Path(folder or tempfile.gettempdir())
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _OURS.match(entry.name)
        if not m or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        log.info("removed %d folder(s) left by app processes that no longer run", len(removed))
    return removed


def sweep_partial_uploads(upload_dir: str | Path, stale_s: float = PARTIAL_STALE_S) -> int:
    """Remove abandoned partial uploads: ``tmp*`` files at the top of the upload folder, unchanged for ``stale_s``."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(upload_dir))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith("tmp"):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > stale_s:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed


def sweep_old_files(folder: str | Path, max_age_s: float) -> int:
    """Remove the files under ``folder`` not written for ``max_age_s`` seconds, then the folders left empty."""
    removed = 0
    too_old = time.time() - max_age_s
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            try:
                info = os.lstat(path)
                if max(info.st_mtime, info.st_ctime) < too_old:
                    os.unlink(path)
                    removed += 1
            except OSError:
                continue
        if root != str(folder):
            try:
                os.rmdir(root)  # only if empty
            except OSError:
                pass
    return removed


def discard_refused(path: str | Path, inside: str | Path, copies: str | Path | None = None) -> int:
    """Delete an input that can never be converted: ``path``, a regular file the upload gate let through, if it
    lies inside ``inside`` (the upload folder, so never an example photo), and every file with the same bytes in
    ``copies`` (the MCP server's folder, where the same input was written before it was uploaded). Returns how many
    files went. Anything outside ``inside`` is left alone and never read."""
    real = Path(os.path.realpath(path))
    folder = Path(os.path.realpath(inside))
    if not real.is_relative_to(folder) or real == folder or not real.is_file():
        return 0
    try:
        size, digest = real.stat().st_size, _sha256(real)
    except OSError:
        return 0
    doomed = [real]
    if copies is not None:
        for root, _, files in os.walk(copies):
            for name in files:
                other = Path(root) / name
                try:
                    if other.stat().st_size == size and _sha256(other) == digest:
                        doomed.append(other)
                except OSError:
                    continue
    return remove_files(doomed)


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


class ResultFolders:
    """Result folders (one per conversion), bounded by count and by age (the same age as Gradio's own cache)."""

    def __init__(self, keep: int, max_age_s: float) -> None:
        self.keep_at_most = keep
        self.max_age_s = max_age_s
        self._folders: deque[Path] = deque()
        self._lock = threading.Lock()

    def keep(self, folder: Path) -> None:
        """Keep ``folder``; the oldest go once there are too many or they are too old (the newest always stays)."""
        with self._lock:
            self._folders.append(folder)
            too_old = time.time() - self.max_age_s
            while len(self._folders) > self.keep_at_most or (
                    len(self._folders) > 1 and _mtime(self._folders[0]) < too_old):
                shutil.rmtree(self._folders.popleft(), ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class TempSweeper:
    """A daemon thread that, every ``every_s`` seconds, removes abandoned partial uploads
    (:func:`sweep_partial_uploads`) and the files in ``aged`` folders older than ``max_age_s``
    (:func:`sweep_old_files`)."""

    def __init__(self, upload_dir: str | Path, stale_s: float = PARTIAL_STALE_S, every_s: float = SWEEP_EVERY_S,
                 aged: list[Path] | None = None, max_age_s: float | None = None) -> None:
        self.upload_dir, self.stale_s, self.every_s = Path(upload_dir), stale_s, every_s
        self.aged, self.max_age_s = list(aged or []), max_age_s
        self.removed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="animegan-upload-sweeper", daemon=True)

    def start(self) -> TempSweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            n = sweep_partial_uploads(self.upload_dir, self.stale_s)
            if n:
                self.removed += n
                log.info("removed %d partial upload(s) abandoned mid-way", n)
            for folder in self.aged if self.max_age_s is not None else ():
                n = sweep_old_files(folder, self.max_age_s)
                if n:
                    self.removed += n
                    log.info("removed %d file(s) older than %g s from %s", n, self.max_age_s, folder.name)


def stop_cleanly_on_sigterm() -> None:
    """SIGTERM behaves like Ctrl-C: Gradio's shutdown runs (it deletes its cached files), then atexit handlers.

    Without this, SIGTERM ends Python at once and every upload and result stays on disk.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process the hard way
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
