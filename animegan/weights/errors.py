"""Weight errors: each message says what is wrong and what the user can do about it."""
from __future__ import annotations


class WeightsError(RuntimeError):
    """Base class: the weights of a style could not be made available."""


class WeightsMissingError(WeightsError):
    """No local weights and downloading is off (or impossible)."""


class WeightsDownloadError(WeightsError):
    """The download failed: network, HTTP error, or a short read."""


class WeightsIntegrityError(WeightsError):
    """A file is corrupted, tampered with or of the wrong kind; nothing was loaded or cached from it."""
