"""Stylised results kept by content: the same photo, style, weights and settings skip inference.

The key is a hash of the *decoded* pixels (after EXIF orientation, mode handling and max-side downscaling),
so a renamed or re-uploaded file still hits, while the same file at another max side does not. The value is
the finished PNG, so a hit costs a hash and a byte copy, never the model or a PNG encode.

Backends share one small interface (:class:`ResultCache`): ``get``, ``put`` and ``stats``. The in-process
:class:`MemoryCache` is the default; a shared backend (e.g. Redis, for several replicas) only has to
implement the same three methods; the app picks one from its flags (``--cache-size``; a URL for a shared one).
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .memory import parse_bytes

DEFAULT_CACHE_SIZE = 256 << 20           # ~170 results at 1024 px, ~700 at 512 px
KEY_VERSION = "2"                        # bump when the meaning of a key's parts changes


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    entries: int
    bytes: int
    capacity: int           # bytes; -1 when the backend does not know (a shared server)
    backend: str


@runtime_checkable
class ResultCache(Protocol):
    """What the engine needs from a result cache. Implementations must be safe to call from many threads."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def stats(self) -> CacheStats: ...


class MemoryCache:
    """In-process LRU bounded by the total size of its values; thread-safe; counts hits and misses."""

    def __init__(self, capacity: int = DEFAULT_CACHE_SIZE) -> None:
        if capacity <= 0:
            raise ValueError(f"cache capacity must be positive, got {capacity} (use no cache to disable)")
        self.capacity = capacity
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: str, value: bytes) -> None:
        """Store ``value``; the least recently used entries go until it fits. Too large for the cache: not kept."""
        size = len(value)
        if size > self.capacity:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            while self._items and self._bytes + size > self.capacity:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)
            self._items[key] = value
            self._bytes += size

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._items), self._bytes, self.capacity, "memory")

    def __len__(self) -> int:
        return len(self._items)


def result_key(rgb: np.ndarray, alpha: np.ndarray | None, *, style: str, weights_fingerprint: str,
               settings: Mapping[str, object], framing: str = "whole", background: str = "keep") -> str:
    """Hex key from the decoded pixels, the style, the exact weights and every setting that changes the output.

    ``framing`` and ``background`` (portraits) are named, not left to ``settings``: the same photo framed by its
    face, its centre or pasted back is three different results.

    ``settings`` must hold everything else that changes a pixel (keep brightness, device type, precision,
    the run plan); values are serialised as JSON with sorted keys, so dict order does not matter.
    """
    h = hashlib.blake2b(digest_size=20, person=b"animegan-result")
    meta = {"v": KEY_VERSION, "style": style, "weights": weights_fingerprint, "shape": list(rgb.shape),
            "alpha": None if alpha is None else list(alpha.shape), "settings": dict(settings),
            "framing": framing, "background": background}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(rgb, dtype=np.uint8).data)
    if alpha is not None:
        h.update(np.ascontiguousarray(alpha, dtype=np.uint8).data)
    return h.hexdigest()


def cache_capacity(spec: str | int | None) -> int:
    """Bytes from a flag or env value ('256M', '1G', bytes); None or '' is the default, 0 disables the cache."""
    if spec is None or (isinstance(spec, str) and spec.strip() == ""):
        return DEFAULT_CACHE_SIZE
    if spec == 0 or (isinstance(spec, str) and spec.strip() == "0"):
        return 0
    try:
        size = parse_bytes(spec)
    except ValueError:
        size = None
    if not size or size < 0:
        raise ValueError(f"cache size {spec!r} is not a size like 256M (or 0 to disable the result cache)")
    return size


def open_cache(spec: str | int | None) -> ResultCache | None:
    """The in-process cache for a size (see :func:`cache_capacity`), or None when the size is 0."""
    capacity = cache_capacity(spec)
    return MemoryCache(capacity) if capacity else None
