"""Many photos at once: the batch size rule, result names that never overwrite each other, and the results' ZIP.

The web app's many-photos batch and the command line name results by one rule (``imaging.result_name``:
``<stem>_<style>.png``, then ``_2``, ``_3``... for a stem seen before, compared without case so that a ZIP
unpacked on Windows or macOS keeps every file). The ZIP is written next to its final name and renamed into place
only when the batch has finished, so a stopped or failed batch leaves no ZIP behind.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

from .imaging import result_name

DEFAULT_MAX_BATCH = 10  # photos one batch may hold (--max-batch, at most --max-queue); each has a photo's limits


class BatchTooLarge(ValueError):
    """A batch with more photos than the server takes at once (or any, where batches are off)."""


def check_count(count: int, limit: int) -> None:
    """Refuse a batch of ``count`` photos over ``limit`` (0: batches are off), before any work."""
    if limit < 1:
        raise BatchTooLarge("This server converts one photo at a time: use the single photo instead.")
    if count > limit:
        raise BatchTooLarge(f"A batch holds at most {limit} photos on this server (--max-batch); this one has "
                            f"{count}. Send them in several batches.")


class ResultNames:
    """Unique result names for files converted together (a folder on the command line, a batch's ZIP)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def free(self, stem: str, style: str, ext: str = "png", side_by_side: bool = False) -> str:
        """``<stem>_<style>.<ext>``, or the first of ``_2``, ``_3``... not taken yet (case ignored)."""
        n = 1
        name = result_name(stem, style, ext, side_by_side=side_by_side)
        while name.casefold() in self._taken:
            n += 1
            name = result_name(stem, style, ext, n=n, side_by_side=side_by_side)
        return name

    def take(self, name: str) -> str:
        """Mark ``name`` as used (once its file is written: a file that failed leaves its name free)."""
        self._taken.add(name.casefold())
        return name


class ResultZip:
    """A ZIP of result files under ``path``, visible there only after :meth:`finish` (``abort`` removes it).

    PNG data is already compressed, so entries are stored as they are: the ZIP costs no CPU time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._part = path.with_name(path.name + ".part")
        self._zip = zipfile.ZipFile(self._part, "w", compression=zipfile.ZIP_STORED)
        self.entries: list[str] = []

    def add(self, name: str, data: bytes) -> None:
        self._zip.writestr(name, data)
        self.entries.append(name)

    def finish(self) -> Path:
        self._zip.close()
        os.replace(self._part, self.path)
        return self.path

    def abort(self) -> None:
        self._zip.close()
        self._part.unlink(missing_ok=True)
