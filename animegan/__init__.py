"""animegan: photos -> anime art with a faithful PyTorch port of the AnimeGANv2 generator."""
import os as _os

# oneDNN caches compiled conv primitives per input shape (1024 by default); photos come in every size, so an
# unbounded-looking RSS growth follows. A small cache keeps what repeated sizes need (bench/memory_bench.py soak).
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
from .engine import RunStats, StylizeResult, stylize
from .imaging import InvalidImageError
from .registry import Registry, default_registry
from .styles import StyleSpec, UnknownStyleError, get_style, load_styles
from .weights import WeightsError, WeightsMissingError

__all__ = [
    "InvalidImageError", "Registry", "RunStats", "StyleSpec", "StylizeResult", "UnknownStyleError", "WeightsError",
    "WeightsMissingError", "default_registry", "get_style", "load_styles", "stylize",
]
__version__ = "0.1.0"
