"""The result cache: LRU by bytes, keys from decoded pixels and settings, and stylize() skipping the model on a hit."""
from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animegan import stylize
from animegan.engine import default_precision
from animegan.result_cache import MemoryCache, ResultCache, cache_capacity, open_cache, result_key


# --- the in-process backend ----------------------------------------------------------------------
def test_lru_evicts_least_recently_used_by_bytes() -> None:
    cache = MemoryCache(capacity=10)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"          # a is now the most recently used
    cache.put("c", b"1234")                    # 12 bytes > 10: b (least recent) goes
    assert cache.get("b") is None and cache.get("a") == b"1234" and cache.get("c") == b"1234"
    s = cache.stats()
    assert (s.hits, s.misses, s.entries, s.bytes, s.capacity) == (3, 1, 2, 8, 10)


def test_replacing_a_key_counts_its_bytes_once_and_oversized_values_are_not_kept() -> None:
    cache = MemoryCache(capacity=10)
    cache.put("a", b"12345678")
    cache.put("a", b"12")
    assert cache.stats().bytes == 2 and cache.get("a") == b"12"
    cache.put("big", b"x" * 11)
    assert cache.get("big") is None and cache.get("a") == b"12"


def test_concurrent_puts_never_exceed_the_capacity() -> None:
    cache = MemoryCache(capacity=1000)
    sizes = np.random.default_rng(0).integers(1, 120, size=400)

    def writer(offset: int) -> None:
        for i, n in enumerate(sizes[offset::4]):
            cache.put(f"{offset}-{i}", b"x" * int(n))
            cache.get(f"{offset}-{i - 1}")

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = cache.stats()
    assert 0 < s.bytes <= 1000
    assert s.bytes == sum(len(cache.get(k) or b"") for k in list(cache._items))  # the books match the contents


def test_memory_cache_is_a_result_cache_backend() -> None:
    assert isinstance(MemoryCache(1), ResultCache)


def test_sizes_from_flags() -> None:
    assert cache_capacity(None) == cache_capacity("") == 256 << 20
    assert cache_capacity("64M") == 64 << 20 and cache_capacity(1000) == 1000
    assert cache_capacity("0") == 0 and open_cache("0") is None
    assert isinstance(open_cache("1M"), MemoryCache)
    for bad in ("lots", "-5M"):
        with pytest.raises(ValueError, match="256M"):
            cache_capacity(bad)


# --- keys -----------------------------------------------------------------------------------------
def test_key_depends_on_pixels_style_weights_and_settings_not_on_their_order() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, size=(16, 24, 3), dtype=np.uint8)
    base = {"style": "hayao", "weights_fingerprint": "w1", "settings": {"keep_brightness": False, "device": "cpu"}}
    key = result_key(rgb, None, **base)
    assert key == result_key(rgb.copy(), None, style="hayao", weights_fingerprint="w1",
                             settings={"device": "cpu", "keep_brightness": False})
    changed = rgb.copy()
    changed[3, 4, 1] ^= 1
    others = [
        result_key(changed, None, **base),
        result_key(rgb, np.full((16, 24), 255, np.uint8), **base),
        result_key(rgb.reshape(24, 16, 3), None, **base),
        result_key(rgb, None, **{**base, "style": "shinkai"}),
        result_key(rgb, None, **{**base, "weights_fingerprint": "w2"}),
        result_key(rgb, None, **{**base, "settings": {"keep_brightness": True, "device": "cpu"}}),
    ]
    assert len({key, *others}) == 1 + len(others)


# --- through the engine ---------------------------------------------------------------------------
class ForwardCounter:
    """Counts real generator passes with a forward hook on the shared model."""

    def __init__(self, model) -> None:
        self.calls = 0
        self._handle = model.register_forward_hook(self._hook)

    def _hook(self, *_: object) -> None:
        self.calls += 1

    def close(self) -> None:
        self._handle.remove()


@pytest.fixture()
def small_jpeg(photos: dict[str, Path], tmp_path: Path) -> Path:
    with Image.open(photos["railway_crossing"]) as im:
        im.convert("RGB").resize((160, 108)).save(tmp_path / "photo.jpg", quality=90)
    return tmp_path / "photo.jpg"


def test_hit_returns_identical_pixels_without_running_the_model(registry, small_jpeg: Path, tmp_path: Path) -> None:
    cache = MemoryCache(16 << 20)
    counter = ForwardCounter(registry.get("hayao", "cpu", default_precision(torch.device("cpu"))).model)  # what stylize() runs
    try:
        first = stylize(small_jpeg, "hayao", registry=registry, max_side=0, cache=cache)
        assert counter.calls == 1 and not first.stats.cached and first.png is not None
        renamed = tmp_path / "another name.jpg"          # same content, another file: the key is the pixels
        renamed.write_bytes(small_jpeg.read_bytes())
        second = stylize(renamed, "hayao", registry=registry, max_side=0, cache=cache)
        assert counter.calls == 1, "a cache hit must not run the model"
        assert second.stats.cached and second.png == first.png
        assert np.array_equal(np.asarray(second.image.convert("RGB")), np.asarray(first.image))
        assert second.stats.output_size == first.stats.output_size == (160, 108)
        assert cache.stats().hits == 1 and cache.stats().misses == 1

        uncached = stylize(small_jpeg, "hayao", registry=registry, max_side=0)  # no cache: the model runs
        assert counter.calls == 2 and np.array_equal(np.asarray(uncached.image), np.asarray(first.image))
    finally:
        counter.close()


def test_settings_that_change_the_output_miss(registry, small_jpeg: Path) -> None:
    cache = MemoryCache(16 << 20)
    counter = ForwardCounter(registry.get("hayao", "cpu", default_precision(torch.device("cpu"))).model)  # what stylize() runs
    try:
        stylize(small_jpeg, "hayao", registry=registry, max_side=0, cache=cache)
        bright = stylize(small_jpeg, "hayao", registry=registry, max_side=0, keep_brightness=True, cache=cache)
        smaller = stylize(small_jpeg, "hayao", registry=registry, max_side=80, cache=cache)
        tiled = stylize(small_jpeg, "hayao", registry=registry, max_side=0, tile=64, cache=cache)
        # three whole runs through forward(); the tiled one runs layer by layer (no forward call), but ran: tiles > 1
        assert counter.calls >= 3 and tiled.stats.tiles > 1 and not any(r.stats.cached for r in (bright, smaller, tiled))
        again = stylize(small_jpeg, "hayao", registry=registry, max_side=80, cache=cache)
        assert again.stats.cached and again.png == smaller.png
    finally:
        counter.close()


def test_png_bytes_of_a_miss_decode_to_the_returned_image(registry, small_jpeg: Path) -> None:
    result = stylize(small_jpeg, "hayao", registry=registry, max_side=0, cache=MemoryCache(16 << 20))
    with Image.open(io.BytesIO(result.png)) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(result.image))


# --- through the app ------------------------------------------------------------------------------
def test_app_answers_a_repeat_from_the_cache(hayao_pt: Path, photos: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("gradio_client")
    from gradio_client import handle_file
    from test_app import client, running_app, stats

    photo = tmp_path / "photo.png"
    with Image.open(photos["kyoto_street_kimono"]) as im:
        im.convert("RGB").resize((200, 150)).save(photo)
    with running_app(tmp_path / "app", "--weights", f"hayao={hayao_pt}", "--offline", "--result-cache-size", "32M") as url:
        c = client(url, tmp_path)
        png1, note1 = c.predict(handle_file(str(photo)), "hayao", 0, False, api_name="/stylize")
        png2, note2 = c.predict(handle_file(str(photo)), "hayao", 0, False, api_name="/stylize")
        s = stats(url)
    assert "from the cache" not in note1 and "from the cache, converted earlier" in note2
    assert Path(png1).read_bytes() == Path(png2).read_bytes()
    assert s["result_cache"]["hits"] == 1 and s["result_cache"]["misses"] == 1 and s["succeeded"] == 2
