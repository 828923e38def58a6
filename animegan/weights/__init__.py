"""Weights: resolve -> download -> verify -> read TF bundle -> convert -> cache."""
from .errors import WeightsDownloadError, WeightsError, WeightsIntegrityError, WeightsMissingError, WeightsOrigin
from .store import LoadedWeights, availability, load_pt, resolve_weights

__all__ = [
    "LoadedWeights", "WeightsDownloadError", "WeightsError", "WeightsIntegrityError", "WeightsMissingError",
    "WeightsOrigin", "availability", "load_pt", "resolve_weights",
]
