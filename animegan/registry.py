"""The one place shared state lives: lazily loaded, thread-safe, load-once models.

A model is keyed by (style, device, precision). The first caller of a key loads
it while later callers of the same key wait on that key's lock (callers of
other keys are not blocked); everyone then shares the one instance, which is
only ever used in eval mode under ``inference_mode``, so sharing is safe.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from .memory import resolve_device
from .model import Generator, LayerNorm
from .precision import DTYPES, Precision, default_precision
from .styles import StyleSpec, get_style, load_styles
from .weights import LoadedWeights, WeightsError, WeightsOrigin, availability, resolve_weights
from .weights.download import PROBE_TIMEOUT_S, Progress, probe
from .weights.store import download_url

WeightsArg = str | os.PathLike | Mapping[str, str | os.PathLike] | None  # a library call's ``weights=``
RECHECK_DOWNLOADS_S = 60.0  # how old a download-host probe may be before the app asks again

log = logging.getLogger(__name__)

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
                 offline: bool | None = None, origin: WeightsOrigin | None = None) -> None:
        self.styles_dir = styles_dir
        self.weights_dir = weights_dir
        self.weights = {k.lower(): Path(v) for k, v in (weights or {}).items()}  # style id -> explicit file
        self.cache_dir = cache_dir
        self.offline = offline
        self.origin = origin  # how --offline / --weights-dir were set: messages name what the user typed
        self._lock = threading.Lock()
        self._key_locks: dict[object, threading.Lock] = {}
        self._models: dict[ModelKey, LoadedModel] = {}
        self._weights: dict[str, LoadedWeights] = {}
        self._failures: dict[str, str] = {}  # style id -> why its last load failed, until one succeeds
        self.loads = 0  # weight resolutions performed: lets tests prove "exactly once"
        # Download hosts: style id -> why its host did not answer the last probe (absent: it answered, or unasked)
        self._unreachable: dict[str, str] = {}
        self._checked_at: float | None = None   # time.monotonic() of the last finished probe
        self._checking: threading.Thread | None = None
        self.checks = 0  # finished probes: a cached availability older than the last one is stale

    # -- styles -------------------------------------------------------------------------------
    def styles(self) -> tuple[StyleSpec, ...]:
        return load_styles(self.styles_dir)

    def style(self, style: str | StyleSpec) -> StyleSpec:
        return get_style(style, self.styles_dir)

    def availability(self) -> dict[str, tuple[bool, str]]:
        """Per style id: can it be loaded, and from where (or why not). Nothing is loaded.

        A style whose weights failed to load (a download without network, a rejected file) stays unavailable,
        with the reason, until an attempt succeeds: every conversion of that style tries again.
        """
        out = {}
        for s in self.styles():
            if self._weights.get(s.id):
                out[s.id] = (True, "loaded")
            elif s.id in self._failures:
                out[s.id] = (False, (f"the last attempt failed ({self._failures[s.id]}); tried again on the next "
                                     "conversion"))
            else:
                out[s.id] = availability(s, weights=self.weights.get(s.id), weights_dir=self.weights_dir,
                                         cache=self.cache_dir, offline=self.offline, origin=self.origin,
                                         unreachable=self._unreachable.get(s.id))
        return out

    def check_downloads(self, timeout: float = PROBE_TIMEOUT_S) -> dict[str, str]:
        """Ask each download host once (a HEAD request, ``timeout`` s at most) whether it answers, for the styles
        that would be downloaded; :meth:`availability` then reports the styles whose host did not as unavailable.
        Returns style id -> why its host did not answer. Offline, nothing is asked."""
        would = [s for s in self.styles() if availability(
            s, weights=self.weights.get(s.id), weights_dir=self.weights_dir, cache=self.cache_dir,
            offline=self.offline)[1].startswith("downloaded on first use")]
        by_host: dict[str, list[StyleSpec]] = {}
        for s in would:
            url = download_url(s)
            by_host.setdefault(url.split("/")[2] if "://" in url else url, []).append(s)
        unreachable = {}
        for specs in by_host.values():
            why = probe(download_url(specs[0]), timeout)
            if why is not None:
                unreachable.update({s.id: why for s in specs})
        with self._lock:
            self._unreachable, self._checked_at = unreachable, time.monotonic()
            self.checks += 1
        if unreachable:
            log.warning("weights downloads are not possible now: %s", "; ".join(sorted(set(unreachable.values()))))
        return unreachable

    def check_downloads_in_background(self, max_age: float = RECHECK_DOWNLOADS_S) -> None:
        """:meth:`check_downloads` in a thread, unless one runs or the last finished less than ``max_age`` s ago."""
        with self._lock:
            running = self._checking is not None and self._checking.is_alive()
            fresh = self._checked_at is not None and time.monotonic() - self._checked_at < max_age
            if running or fresh:
                return
            self._checking = threading.Thread(target=self.check_downloads, name="weights-host-check", daemon=True)
            self._checking.start()

    # -- models -------------------------------------------------------------------------------
    def _key_lock(self, key: object) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _state(self, spec: StyleSpec, progress: Progress | None) -> LoadedWeights:
        with self._key_lock(("weights", spec.id)):
            if spec.id not in self._weights:
                self.loads += 1
                try:
                    self._weights[spec.id] = resolve_weights(
                        spec, weights=self.weights.get(spec.id), weights_dir=self.weights_dir,
                        cache=self.cache_dir, offline=self.offline, progress=progress, origin=self.origin)
                except WeightsError as exc:
                    self._failures[spec.id] = str(exc)
                    log.warning("the %s style is unavailable: %s", spec.name, exc)
                    raise
                if self._failures.pop(spec.id, None) is not None:
                    log.info("the %s style loaded after an earlier failure", spec.name)
            return self._weights[spec.id]

    def weights_for(self, style: str | StyleSpec, progress: Progress | None = None) -> LoadedWeights:
        """A style's verified, converted weights (downloaded and cached if needed), without building a model."""
        return self._state(self.style(style), progress)

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
                model = Generator(spec.flavour)  # how these weights compute: the style file says
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

    def preload(self, styles: Iterable[str | StyleSpec] | None = None, device: str | torch.device = "auto",
                precision: Precision | None = None) -> dict[str, LoadedModel | WeightsError]:
        """Load styles' models now (all styles by default), so no first visitor waits for a download.

        Returns, per style id, the model or the weights error that stopped it (the other styles still load);
        an unknown style name raises :class:`UnknownStyleError` before anything loads (a configuration mistake).
        ``device`` and ``precision`` must be what ``stylize()`` will ask for: ``auto`` and None pick the same defaults.
        """
        specs = [self.style(s) for s in styles] if styles is not None else list(self.styles())
        dev = resolve_device(device)
        outcome: dict[str, LoadedModel | WeightsError] = {}
        for spec in dict.fromkeys(specs):
            try:
                outcome[spec.id] = self.get(spec, dev, precision or default_precision(dev))
            except WeightsError as exc:
                outcome[spec.id] = exc
        return outcome

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


def registry_for(weights: WeightsArg, style: str | StyleSpec, registry: Registry | None) -> Registry | None:
    """The registry a library call with ``weights=`` runs on: a path (the weights of ``style``) or a mapping of
    style id to path. Registries are kept for the last few such choices, so repeated calls load a model once."""
    if weights is None:
        return registry
    if registry is not None:
        raise TypeError("pass weights= or registry=, not both (a registry takes its files as Registry(weights={...}))")
    pairs = weights.items() if isinstance(weights, Mapping) else [(style, weights)]
    key = tuple(sorted((get_style(s).id, str(Path(p).expanduser().absolute())) for s, p in pairs))
    return _weights_registry(key)


@functools.lru_cache(maxsize=4)
def _weights_registry(key: tuple[tuple[str, str], ...]) -> Registry:
    return Registry(weights=dict(key))


def default_registry() -> Registry:
    """The process-wide registry used when a caller passes none (configured from the environment)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default
