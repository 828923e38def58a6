"""The one gate between the network and the engine: which files a web request may make the server read.

A request names a photo by a path in its JSON (Gradio's file payload). Whatever else the payload says (a
``meta`` type, a URL, a data URL), the server reads only a regular file that, with every symlink resolved, lies
inside one of the allowed folders (Gradio's upload folder, our example photos), and only up to the upload size
limit. Every refusal has the same text, so a request learns nothing about the server's files from it.
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REFUSED = "The photo did not reach the server; upload it again."


class PhotoRefused(ValueError):
    """The request named a photo the server will not read (outside the allowed folders, not a file, too big...)."""

    def __init__(self, reason: str, public: str = REFUSED) -> None:
        super().__init__(reason)
        self.reason = reason    # for the server log only: it may name server paths
        self.public = public    # what the user is told


@dataclass(frozen=True)
class UploadGate:
    """Allowed folders and the size limit; ``read()`` returns the photo's bytes and a display name."""

    roots: tuple[Path, ...]
    max_bytes: int

    @classmethod
    def of(cls, roots: Iterable[str | Path], max_bytes: int) -> UploadGate:
        return cls(tuple(Path(os.path.realpath(r)) for r in roots), int(max_bytes))

    def read(self, payload: Any) -> tuple[bytes, str]:
        path, name = _payload_path(payload)
        return self.read_path(path), name

    def checked_path(self, payload: Any, noun: str = "video") -> tuple[Path, str]:
        """The same checks as :meth:`read` without reading: for a file the engine streams (a video), the real path
        (symlinks resolved) and a display name. Refusals speak of ``noun``."""
        try:
            path, name = _payload_path(payload)
            fd, real = self._open(path)
            os.close(fd)
        except PhotoRefused as exc:
            raise PhotoRefused(exc.reason, exc.public.replace("photo", noun)) from None
        return real, name

    def read_path(self, path: str) -> bytes:
        fd, real = self._open(path)
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(self.max_bytes + 1)
            if len(data) > self.max_bytes:  # grew while being read
                raise PhotoRefused(f"{real} grew past the limit while read",
                                   public=f"The photo is larger than the {_mb(self.max_bytes)} upload limit.")
            return data
        finally:
            os.close(fd)

    def _open(self, path: str) -> tuple[int, Path]:
        """An open descriptor on a regular file inside the allowed folders, within the size limit, and its path."""
        if not path or "\x00" in path:
            raise PhotoRefused(f"unusable path {path!r}")
        real = Path(os.path.realpath(path))
        if not any(real.is_relative_to(root) and real != root for root in self.roots):
            raise PhotoRefused(f"{path!r} resolves to {real}, outside {', '.join(map(str, self.roots))}")
        # O_NOFOLLOW: the final component may not have become a symlink since realpath; O_NONBLOCK: a FIFO
        # must not block the worker (it is refused right after by the regular-file check).
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(real, flags)
        except OSError as exc:
            raise PhotoRefused(f"{real}: {errno.errorcode.get(exc.errno, exc.errno)}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise PhotoRefused(f"{real} is not a regular file (mode {oct(info.st_mode)})")
            if info.st_size > self.max_bytes:
                raise PhotoRefused(f"{real} has {info.st_size} bytes, over the {self.max_bytes} limit",
                                   public=f"The photo is larger than the {_mb(self.max_bytes)} upload limit.")
        except BaseException:
            os.close(fd)
            raise
        return fd, real


def display_name(payload: Any) -> str:
    """The file name a payload gives (its ``orig_name``, else its path's last part), to name it in a message; read
    from the payload alone, so it works for one the gate refuses. "" when there is none. Not sanitised here."""
    try:
        _, name = _payload_path(payload)
    except PhotoRefused:
        return ""
    return Path(name).name


def _payload_path(payload: Any) -> tuple[str, str]:
    """Gradio's file payload (dict or FileData) or a plain path string -> (path, display name)."""
    if hasattr(payload, "model_dump"):
        payload = payload.model_dump()
    if isinstance(payload, dict):
        path, orig = payload.get("path"), payload.get("orig_name")
        if not isinstance(path, str):
            url = payload.get("url")
            kind = "a data: URL" if isinstance(url, str) and url.startswith("data:") else f"path {path!r}"
            raise PhotoRefused(f"payload without a usable path ({kind})")
        return _checked_text(path), orig if isinstance(orig, str) else path
    if isinstance(payload, str):
        return _checked_text(payload), payload
    raise PhotoRefused(f"a {type(payload).__name__} where a photo file was expected",
                       public=f"Expected a photo file, got {_json_kind(payload)}.")


def _checked_text(path: str) -> str:
    if path.startswith(("data:", "http://", "https://", "ftp://", "file:")):
        raise PhotoRefused(f"inline or remote photo {path[:40]!r}...",
                           public="Upload the photo as a file: links and inline data are not accepted.")
    return path


def _json_kind(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", list: "a list"}.get(type(value), "something else")


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB" if n >= 1 << 20 else f"{n} bytes"
