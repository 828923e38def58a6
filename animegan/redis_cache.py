"""A result cache in Redis (``--cache redis://HOST:PORT/DB``): one conversion is a hit for every app and replica.

The same :class:`~animegan.result_cache.ResultCache` interface as the in-process LRU (``get``/``put``/``stats``),
with the same keys (decoded pixels + style + weights fingerprint + every output-changing setting, see
:func:`~animegan.result_cache.result_key`). Values are PNG bytes and nothing else: nothing read from Redis is
unpickled or executed, and a value is only returned after it decodes as a PNG under the upload limits.

Bounded by Redis itself (``maxmemory`` with ``maxmemory-policy allkeys-lru``) and by a TTL on every entry. Redis
down, slow or full never fails a conversion: short socket timeouts, a warning, an error count, and after a failure
Redis is left alone for a few seconds (the requests run without the cache meanwhile).

Optional: needs ``redis`` (``pip install -r requirements-extras.txt``); the default app never imports it.
"""
from __future__ import annotations

import logging
import threading
import time

try:
    import redis
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("--cache redis://... needs the Redis client: pip install redis "
                      "(or pip install -r requirements-extras.txt)") from exc

from . import flags, imaging
from .result_cache import CacheStats

log = logging.getLogger(__name__)

ENV_TTL = flags.FLAGS["result_cache_ttl"].env  # seconds an entry lives (default: a week)
DEFAULT_TTL_S = 7 * 24 * 3600
TIMEOUT_S = 0.25                   # connect and read: a slow Redis costs a request at most this, twice
BACKOFF_S = 5.0                    # after a failure, skip Redis this long instead of waiting on it every request
KEY_PREFIX = "animegan:result:"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RedisCache:
    """Thread-safe (redis-py's pool); counts hits, misses and errors (lookups that ran without the cache)."""

    def __init__(self, url: str, ttl: int | None = None, timeout: float = TIMEOUT_S,
                 max_pixels: int = imaging.DEFAULT_MAX_PIXELS) -> None:
        self.url = url
        self.ttl = ttl or flags.env_value("result_cache_ttl") or DEFAULT_TTL_S
        self.max_pixels = max_pixels
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           retry_on_timeout=False, health_check_interval=0)
        self.hits = self.misses = self.errors = 0
        self._skip_until = 0.0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        if self._skipping():
            return None
        try:
            value = self.client.get(KEY_PREFIX + key)
        except redis.RedisError as exc:
            self._failed("get", exc)
            return None
        if value is not None and not self._valid(value):
            log.warning("result cache: entry %s in Redis is not a usable PNG; ignored and deleted", key[:12])
            self._count("errors")
            self._delete(key)
            value = None
        self._count("hits" if value is not None else "misses")
        return value

    def put(self, key: str, value: bytes) -> None:
        if self._skipping():
            return
        try:
            self.client.set(KEY_PREFIX + key, value, ex=self.ttl)
        except redis.RedisError as exc:  # includes OOM when maxmemory is reached under a noeviction policy
            self._failed("put", exc)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.hits, self.misses, -1, -1, -1, "redis")

    def error_counts(self) -> dict[str, int]:
        """For the metrics: failures so far, by backend."""
        return {"redis": self.errors}

    # -- internals --------------------------------------------------------------------------------
    def _valid(self, value: bytes) -> bool:
        if not value.startswith(PNG_SIGNATURE):
            return False
        try:
            imaging.open_image(value, max_pixels=self.max_pixels)
        except imaging.InvalidImageError:
            return False
        return True

    def _delete(self, key: str) -> None:
        try:
            self.client.delete(KEY_PREFIX + key)
        except redis.RedisError:
            pass

    def _skipping(self) -> bool:
        if time.monotonic() < self._skip_until:
            self._count("errors")
            return True
        return False

    def _failed(self, op: str, exc: Exception) -> None:
        self._count("errors")
        self._skip_until = time.monotonic() + BACKOFF_S
        log.warning("result cache: Redis %s failed (%s: %s); serving without the cache for %.0f s",
                    op, type(exc).__name__, exc, BACKOFF_S)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
