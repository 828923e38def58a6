"""animegan: photos -> anime art with a faithful PyTorch port of the AnimeGANv2 generator."""
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
