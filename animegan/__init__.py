"""animegan: photos -> anime art with a faithful PyTorch port of the AnimeGANv2 generator."""
import os as _os

# PyTorch's oneDNN glue (ideep) keeps a per-thread cache of conv computations, keyed by input shape, of up to
# LRU_CACHE_CAPACITY (1024) entries; oneDNN keeps its own primitive cache. Photos come in every size, so both
# grow with each new size: RSS rose 6.5% over 200 varied-size conversions after warm-up, and 0.1% with these
# two small caches, at no measurable speed cost for a repeated size (bench/memory_bench.py soak). Read lazily,
# at the first convolution, so setting them here works even when torch was imported first.
_os.environ.setdefault("LRU_CACHE_CAPACITY", "1")
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
from .engine import RunStats, StylizeResult, stylize
from .imaging import InvalidImageError
from .memory import tune_cpu_allocator as _tune_cpu_allocator
from .registry import Registry, default_registry
from .styles import StyleSpec, UnknownStyleError, get_style, load_styles
from .weights import WeightsError, WeightsMissingError

__all__ = [
    "InvalidImageError", "Registry", "RunStats", "StyleSpec", "StylizeResult", "UnknownStyleError", "WeightsError",
    "WeightsMissingError", "default_registry", "get_style", "load_styles", "stylize",
]
__version__ = "0.1.0"

# Before any worker thread exists: threads that already have a malloc arena would keep it (memory.py).
_tune_cpu_allocator()
