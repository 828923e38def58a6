"""``--cache redis://``: a real ``redis-server`` on 127.0.0.1 at a free port, shared by two app processes.

Shown: a conversion done by one app is a pixel-identical hit on another; Redis bounds the cache itself
(``maxmemory`` + ``allkeys-lru`` evicts old results); Redis killed mid-run never fails a conversion (it is
counted as a cache error and the request runs without the cache); a non-PNG value planted in Redis is not used.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

redis = pytest.importorskip("redis")
from gradio_client import handle_file
from harness import client, free_port, running_app

from animegan import imaging, stylize
from animegan.redis_cache import KEY_PREFIX, RedisCache

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)")


@contextmanager
def redis_server(tmp: Path, *args: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                             "no", "--dir", str(tmp), *args], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.kill()
        proc.wait()


def test_a_conversion_on_one_app_is_a_hit_on_another(hayao_pt: Path, small_photo: Path, tmp_path: Path) -> None:  
    common = ("--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu")
    with redis_server(tmp_path) as url, running_app(tmp_path / "a", *common, "--result-cache", url) as a, \
            running_app(tmp_path / "b", *common, "--result-cache", url) as b:
        png_a, text_a = client(a, tmp_path / "ca").predict(handle_file(str(small_photo)), "hayao", 0, False,
                                                          api_name="/stylize")
        assert "from the cache" not in text_a
        assert len(redis.Redis.from_url(url).keys(KEY_PREFIX + "*")) == 1
        png_b, text_b = client(b, tmp_path / "cb").predict(handle_file(str(small_photo)), "hayao", 0, False,
                                                          api_name="/stylize")
        assert "from the cache, converted earlier" in text_b, text_b
    assert np.array_equal(np.asarray(Image.open(png_a)), np.asarray(Image.open(png_b)))


def test_redis_evicts_under_a_small_maxmemory(registry, small_photo: Path, tmp_path: Path) -> None:  
    with redis_server(tmp_path, "--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru") as url:
        cache = RedisCache(url)
        value = imaging.encode_png(stylize(small_photo, "hayao", registry=registry, device="cpu", max_side=0).image)
        for i in range(40):  # far more than 3 MB of results
            cache.put(f"k{i}", value + bytes(100_000))
        client_ = redis.Redis.from_url(url)
        kept = len(client_.keys(KEY_PREFIX + "*"))
        assert 0 < kept < 40 and int(client_.info("stats")["evicted_keys"]) > 0
        assert cache.errors == 0  # eviction is Redis doing its job, not a failure


def test_redis_killed_mid_run_never_fails_a_conversion(registry, small_photo: Path, tmp_path: Path) -> None:  
    with redis_server(tmp_path) as url:
        cache = RedisCache(url)
        first = stylize(small_photo, "hayao", registry=registry, device="cpu", max_side=160, cache=cache)
        assert not first.stats.cached and cache.stats().misses == 1
        assert stylize(small_photo, "hayao", registry=registry, device="cpu", max_side=160, cache=cache).stats.cached
    # the server is gone (killed by the context manager): conversions still work, without the cache
    start = time.monotonic()
    again = stylize(small_photo, "hayao", registry=registry, device="cpu", max_side=160, cache=cache)
    assert not again.stats.cached and cache.errors >= 1
    assert np.array_equal(np.asarray(again.image), np.asarray(first.image))
    assert time.monotonic() - start < 30


def test_a_planted_non_png_value_is_never_used(registry, small_photo: Path, tmp_path: Path) -> None:  
    with redis_server(tmp_path) as url:
        cache = RedisCache(url)
        stylize(small_photo, "hayao", registry=registry, device="cpu", max_side=128, cache=cache)
        client_ = redis.Redis.from_url(url)
        (key,) = client_.keys(KEY_PREFIX + "*")
        client_.set(key, b"\x80\x04\x95 a pickle, not a PNG")
        result = stylize(small_photo, "hayao", registry=registry, device="cpu", max_side=128, cache=cache)
        assert not result.stats.cached and cache.errors == 1
