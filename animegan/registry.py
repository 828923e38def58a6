"""The one place shared state lives: lazily loaded, thread-safe, load-once models.

A model is keyed by (style, device, precision). The first caller of a key loads
it while later callers of the same key wait on that key's lock (callers of
other keys are not blocked); everyone then shares the one instance, which is
only ever used in eval mode under ``inference_mode``, so sharing is safe.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .model import Generator, LayerNorm
from .precision import DTYPES, Precision
from .styles import StyleSpec, get_style, load_styles
from .weights import LoadedWeights, availability, resolve_weights
from .weights.download import Progress


@dataclass(frozen=True)
class ModelKey:
    style: str
    device: str
    precision: Precision


@dataclass(frozen=True)
class LoadedModel:
    key: ModelKey
    spec: StyleSpec
    model: Generator
    weights_source: str
    weights_fingerprint: str
    param_bytes: int
    load_seconds: float


class Registry:
    """Styles and their models. Pass one to every caller that should share models (the app, the CLI)."""

    def __init__(self, *, styles_dir: Path | None = None, weights_dir: Path | None = None,
                 weights: dict[str, Path] | None = None, cache_dir: Path | None = None,
                 offline: bool | None = None) -> None:
        self.styles_dir = styles_dir
        self.weights_dir = weights_dir
        self.weights = {k.lower(): Path(v) for k, v in (weights or {}).items()}  # style id -> explicit file
        self.cache_dir = cache_dir
        self.offline = offline
        self._lock = threading.Lock()
        self._key_locks: dict[object, threading.Lock] = {}
        self._models: dict[ModelKey, LoadedModel] = {}
        self._weights: dict[str, LoadedWeights] = {}
        self.loads = 0  # weight resolutions performed: lets tests prove "exactly once"

    # -- styles -------------------------------------------------------------------------------
    def styles(self) -> tuple[StyleSpec, ...]:
        return load_styles(self.styles_dir)

    def style(self, style: str | StyleSpec) -> StyleSpec:
        return get_style(style, self.styles_dir)

    def availability(self) -> dict[str, tuple[bool, str]]:
        """Per style id: can it be loaded, and from where (or why not). Nothing is loaded."""
        return {
            s.id: (True, "loaded") if self._weights.get(s.id) else availability(
                s, weights=self.weights.get(s.id), weights_dir=self.weights_dir, cache=self.cache_dir, offline=self.offline)
            for s in self.styles()
        }

    # -- models -------------------------------------------------------------------------------
    def _key_lock(self, key: object) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _state(self, spec: StyleSpec, progress: Progress | None) -> LoadedWeights:
        with self._key_lock(("weights", spec.id)):
            if spec.id not in self._weights:
                self.loads += 1
                self._weights[spec.id] = resolve_weights(
                    spec, weights=self.weights.get(spec.id), weights_dir=self.weights_dir,
                    cache=self.cache_dir, offline=self.offline, progress=progress)
            return self._weights[spec.id]

    def get(self, style: str | StyleSpec, device: str | torch.device = "cpu", precision: Precision = "fp32",
            progress: Progress | None = None) -> LoadedModel:
        spec = self.style(style)
        key = ModelKey(spec.id, str(torch.device(device)), precision)
        hit = self._models.get(key)
        if hit is not None:
            return hit
        with self._key_lock(key):
            if key not in self._models:
                start = time.perf_counter()
                weights = self._state(spec, progress)
                model = Generator()
                model.load_state_dict(weights.state_dict, strict=True)
                model.requires_grad_(False).eval()
                if precision not in DTYPES:
                    raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(DTYPES)}")
                # The whole model in the run's dtype (not autocast): activations stay bf16/fp16 from layer to
                # layer with no casts between them; layer norms still accumulate their statistics in fp32.
                model = model.to(device=key.device, dtype=DTYPES[precision])
                for norm in model.modules():  # gamma/beta stay fp32: the norms compute in fp32 and round once
                    if isinstance(norm, LayerNorm):
                        norm.float()
                if torch.device(key.device).type == "cpu":
                    model = model.to(memory_format=torch.channels_last)
                nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
                self._models[key] = LoadedModel(key, spec, model, weights.source, weights.fingerprint, nbytes,
                                                time.perf_counter() - start)
            return self._models[key]

    def unload(self, style: str | None = None) -> int:
        """Drop a style's models and weights (all styles if None); returns how many models were freed."""
        wanted = self.style(style).id if style else None
        with self._lock:
            keys = [k for k in self._models if wanted in (None, k.style)]
            sids = [s for s in self._weights if wanted in (None, s)]
        for k in keys:  # under each key's lock, so a load in progress finishes before it is dropped
            with self._key_lock(k):
                self._models.pop(k, None)
        for sid in sids:
            with self._key_lock(("weights", sid)):
                self._weights.pop(sid, None)
        if keys and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        return len(keys)

    def loaded(self) -> list[LoadedModel]:
        return list(self._models.values())


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry used when a caller passes none (configured from the environment)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default
