"""Weight errors: each message says what is wrong and what the user can do about it."""
from __future__ import annotations

from dataclasses import dataclass


class WeightsError(RuntimeError):
    """Base class: the weights of a style could not be made available."""


class WeightsMissingError(WeightsError):
    """No local weights and downloading is off (or impossible)."""


class WeightsDownloadError(WeightsError):
    """The download failed: network, HTTP error, or a short read.

    ``short``: the cause in a few words, for a list of styles that share it; ``hint``: what to do instead, when the
    message ends with one (a list says it once)."""

    def __init__(self, message: str, *, short: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.short = short or message
        self.hint = hint


class WeightsIntegrityError(WeightsError):
    """A file is corrupted, tampered with or of the wrong kind; nothing was loaded or cached from it."""


@dataclass(frozen=True)
class WeightsOrigin:
    """How the user set offline mode and the weights folder, so a message names what they typed.

    Each field is the flag the user passed (``"--offline"``, ``"--weights-dir"``), or None when the value came
    from the environment or a Python argument; the message then names the variable that is set, or the argument.
    ``command_line``: the user runs a command (the CLI, the app), so a way out is a flag; else a Python caller,
    whose way out is an argument.
    """

    offline: str | None = None
    weights_dir: str | None = None
    command_line: bool = False

    @classmethod
    def from_flags(cls, offline: bool, weights_dir: bool) -> WeightsOrigin:
        """For a command line whose ``--offline`` / ``--weights-dir`` flags were (or were not) given."""
        return cls("--offline" if offline else None, "--weights-dir" if weights_dir else None, command_line=True)

    def local_folder(self) -> str:
        """Where this user can point the package at weights files of their own, in their words."""
        if self.command_line:
            return "a folder named by --weights-dir or ANIMEGAN_WEIGHTS_DIR"
        return ("a folder named by Registry(weights_dir=...) or ANIMEGAN_WEIGHTS_DIR (or pass the file itself: "
                "weights=PATH)")
