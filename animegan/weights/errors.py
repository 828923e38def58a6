"""Weight errors: each message says what is wrong and what the user can do about it."""
from __future__ import annotations

from dataclasses import dataclass


class WeightsError(RuntimeError):
    """Base class: the weights of a style could not be made available."""


class WeightsMissingError(WeightsError):
    """No local weights and downloading is off (or impossible)."""


class WeightsDownloadError(WeightsError):
    """The download failed: network, HTTP error, or a short read."""


class WeightsIntegrityError(WeightsError):
    """A file is corrupted, tampered with or of the wrong kind; nothing was loaded or cached from it."""


@dataclass(frozen=True)
class WeightsOrigin:
    """How the user set offline mode and the weights folder, so a message names what they typed.

    Each field is the flag the user passed (``"--offline"``, ``"--weights-dir"``), or None when the value came
    from the environment or a Python argument; the message then names the variable that is set, or the argument.
    """

    offline: str | None = None
    weights_dir: str | None = None

    @classmethod
    def from_flags(cls, offline: bool, weights_dir: bool) -> WeightsOrigin:
        """For a command line whose ``--offline`` / ``--weights-dir`` flags were (or were not) given."""
        return cls("--offline" if offline else None, "--weights-dir" if weights_dir else None)
