"""Find a style's weights: explicit path -> weights dir -> verified cache -> download, verify, convert, cache.

The cache holds one converted ``.pt`` per style whose file name carries the
upstream source identity and the SHA-256 of its own bytes, so a truncated or
tampered cache file is detected before it is loaded, and replaced. Writers
take a file lock, so two processes fetching one style at once do not collide.
"""
from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock

from .. import settings
from ..styles import StyleSpec
from .convert import check_state_dict, convert_tf_checkpoint
from .download import Progress, download
from .errors import WeightsDownloadError, WeightsError, WeightsIntegrityError, WeightsMissingError, WeightsOrigin
from .folder import write_atomically
from .tfbundle import CheckpointError, data_path_for, index_path_for

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LoadedWeights:
    state_dict: StateDict
    source: str        # where they came from, for the UI and logs
    fingerprint: str   # SHA-256 over the tensors: identifies the exact weights (for result caches)


def fingerprint(state: StateDict) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu", torch.float32).contiguous()
        h.update(name.encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def load_pt(path: Path) -> StateDict:
    """Load a PyTorch state dict without executing pickled code, and check it is a whole generator."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises many kinds for truncated/tampered files; all mean the same here
        raise WeightsIntegrityError(
            f"{path} could not be read as plain tensors: the file is truncated, corrupted, or not a weights-only "
            f"state dict. Replace it. (PyTorch: {type(exc).__name__}: {_first_sentences(str(exc))})"
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsIntegrityError(f"{path} holds a {type(obj).__name__}, not a state dict")
    try:
        check_state_dict(obj, source=str(path))
    except CheckpointError as exc:
        raise WeightsIntegrityError(str(exc)) from exc
    return {k: v.float() for k, v in obj.items()}


def _first_sentences(text: str, limit: int = 300) -> str:
    """The start of a library's message, cut after a whole sentence (or word), never mid-word."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "no details")
    if len(line) <= limit:
        return line
    head = line[:limit]
    end = head.rfind(". ")
    return head[: end + 1] if end > 0 else head.rsplit(" ", 1)[0] + " ..."


def load_tf(prefix: Path) -> StateDict:
    try:
        return convert_tf_checkpoint(prefix)
    except CheckpointError as exc:
        raise WeightsIntegrityError(f"{exc}. Replace the files of checkpoint {prefix}.") from exc


def _load_path(path: Path) -> StateDict:
    """An explicit path: a ``.pt`` file or a TF checkpoint prefix (``X.ckpt`` with ``X.ckpt.index`` beside it)."""
    if path.is_file() and path.suffix != ".index":
        return load_pt(path)
    prefix = Path(str(path)[: -len(".index")]) if path.suffix == ".index" else path
    if index_path_for(prefix).is_file():
        if not data_path_for(prefix).is_file():
            raise WeightsMissingError(f"{index_path_for(prefix)} found but {data_path_for(prefix)} is missing")
        return load_tf(prefix)
    raise WeightsMissingError(f"no weights at {path}: expected a .pt file or a TF checkpoint prefix with .index and .data files")


def _find_in_dir(spec: StyleSpec, directory: Path) -> Path | None:
    upstream = directory / (spec.files[0].name if spec.is_pt_file else spec.checkpoint_prefix)
    candidates = [directory / f"{spec.id}.pt", upstream]
    for c in candidates:
        if c.is_file() or index_path_for(c).is_file():
            return c
    return None


def _source_tag(spec: StyleSpec) -> str:
    return hashlib.sha1("".join(f.git_sha1 for f in spec.files).encode()).hexdigest()[:12]


def _cached_files(spec: StyleSpec, cache: Path) -> list[Path]:
    return sorted(cache.glob(f"{spec.id}.{_source_tag(spec)}.*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)


def _load_cached(spec: StyleSpec, cache: Path) -> tuple[StateDict, Path] | None:
    """The newest intact cache file; corrupted ones are removed (they will be rebuilt)."""
    for path in _cached_files(spec, cache):
        want = path.name.split(".")[-2]
        got = hashlib.sha256(path.read_bytes()).hexdigest()[: len(want)]
        if got != want:
            path.unlink(missing_ok=True)
            continue
        try:
            return load_pt(path), path
        except WeightsIntegrityError:
            path.unlink(missing_ok=True)
    return None


def _write_cache(spec: StyleSpec, cache: Path, state: StateDict) -> Path:
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    final = cache / f"{spec.id}.{_source_tag(spec)}.{hashlib.sha256(data).hexdigest()[:16]}.pt"
    write_atomically(final, data)
    for stale in cache.glob(f"{spec.id}.*.pt"):
        if stale != final:
            stale.unlink(missing_ok=True)
    return final


def _offline_words(origin: WeightsOrigin) -> tuple[str, str]:
    """(why downloading is off, how to turn it back on), naming what the user actually set."""
    if origin.offline:
        return f"{origin.offline} was given", f"run without {origin.offline}"
    variables = settings.offline_variables()
    if variables:
        names = " and ".join(variables)
        return f"{names} {'is' if len(variables) == 1 else 'are'} set", f"unset {names}"
    return "offline=True was passed", "pass offline=False"


def missing_message(spec: StyleSpec, weights_dir: Path | None, cache: Path, origin: WeightsOrigin | None = None,
                    weights_dir_label: str | None = None) -> str:
    """Why a style cannot load offline and the ways out, with full paths (the web UI shortens them itself).

    ``weights_dir_label`` names where the folder came from (``--weights-dir``, the variable, or an argument).
    """
    origin = origin or WeightsOrigin()
    names = " and ".join(f.name for f in spec.files)
    if weights_dir is not None:
        label = origin.weights_dir or weights_dir_label or "weights_dir"
        where = f"{Path(weights_dir).expanduser().absolute()} (the {label} folder)"
    else:
        where = origin.local_folder()
    why, undo = _offline_words(origin)
    source = f"the upstream files {names}" if not spec.is_pt_file else f"the upstream file {names}"
    files = f"{spec.id}.pt" if names == f"{spec.id}.pt" else f"{spec.id}.pt, or {source}"
    return (
        f"weights for style '{spec.name}' are not available offline ({why}). Put {files} "
        f"(from {spec.files[0].url.rsplit('/', 1)[0]}), in {where}; or {undo} to download them once into "
        f"the weights cache ({Path(cache).expanduser().absolute()}). On a machine with network, "
        f"`python -m animegan download {spec.id} --to DIR` fills such a folder."
    )


def _weights_dir(weights_dir: Path | None) -> tuple[Path | None, str | None]:
    """The folder to search and where it came from: the argument, else the environment variable.

    An argument equal to the variable (the app reads the variable and passes the folder on) is named as the variable.
    """
    from_env = settings.weights_dir()
    if weights_dir is not None:
        return Path(weights_dir), settings.ENV_WEIGHTS_DIR if from_env == Path(weights_dir).expanduser() else None
    return from_env, settings.ENV_WEIGHTS_DIR if from_env is not None else None


def resolve_weights(spec: StyleSpec, *, weights: Path | None = None, weights_dir: Path | None = None,
                    cache: Path | None = None, offline: bool | None = None,
                    progress: Progress | None = None, origin: WeightsOrigin | None = None) -> LoadedWeights:
    """The one way to get a style's weights; see the module docstring for the order."""
    if weights is not None:
        state = _load_path(Path(weights).expanduser())
        return LoadedWeights(state, str(weights), fingerprint(state))
    weights_dir, dir_label = _weights_dir(weights_dir)
    if weights_dir is not None:
        found = _find_in_dir(spec, weights_dir)
        if found is not None:
            state = _load_path(found)
            return LoadedWeights(state, str(found), fingerprint(state))
    cache = Path(cache) if cache is not None else settings.cache_dir()
    offline = settings.offline() if offline is None else offline
    if offline and not cache.is_dir():
        raise WeightsMissingError(missing_message(spec, weights_dir, cache, origin, dir_label))
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"cannot create the weights cache {cache} ({exc}); set {settings.ENV_CACHE_DIR} to a writable folder") from exc
    with FileLock(str(cache / f"{spec.id}.lock")):
        hit = _load_cached(spec, cache)
        if hit is not None:
            return LoadedWeights(hit[0], str(hit[1]), fingerprint(hit[0]))
        if offline:
            raise WeightsMissingError(missing_message(spec, weights_dir, cache, origin, dir_label))
        try:
            state = _download_and_convert(spec, cache, progress)
        except WeightsDownloadError as exc:  # the way out without network, in the caller's words
            hint = without_network(origin)
            raise WeightsDownloadError(f"{exc}. Without network: {hint}", short=exc.short, hint=hint) from exc
        path = _write_cache(spec, cache, state)
        return LoadedWeights(state, str(path), fingerprint(state))


def without_network(origin: WeightsOrigin | None) -> str:
    """What a user whose download failed can do instead, naming the flag or argument they would use."""
    return (f"put the weights in {(origin or WeightsOrigin()).local_folder()}; "
            "`python -m animegan download --to DIR` fills such a folder on a machine with network.")


def download_url(spec: StyleSpec) -> str:
    """Where the style's first file is downloaded from now (the mirror, when one is set)."""
    base, first = settings.mirror(), spec.files[0]
    return f"{base.rstrip('/')}/{first.name}" if base else first.url


def _download_and_convert(spec: StyleSpec, cache: Path, progress: Progress | None) -> StateDict:
    base = settings.mirror()
    workdir = Path(tempfile.mkdtemp(prefix=f".{spec.id}-download-", dir=cache))
    try:
        for f in spec.files:
            url = f"{base.rstrip('/')}/{f.name}" if base else f.url
            download(url, workdir / f.name, f.size, f.git_sha1, progress=progress)
        if spec.is_pt_file:  # the port's state dict: loaded without running pickled code, every name and shape checked
            return load_pt(workdir / spec.files[0].name)
        return load_tf(workdir / spec.checkpoint_prefix)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def availability(spec: StyleSpec, *, weights: Path | None = None, weights_dir: Path | None = None,
                 cache: Path | None = None, offline: bool | None = None,
                 origin: WeightsOrigin | None = None, unreachable: str | None = None) -> tuple[bool, str]:
    """Whether a style can be loaded, and from where, without loading or downloading anything.

    ``unreachable``: why its download host did not answer a recent probe (:func:`~.download.probe`); a style
    that would be downloaded is then unavailable, with that reason."""
    if weights is not None:
        ok = Path(weights).is_file() or index_path_for(weights).is_file()
        return ok, f"weights file {weights}" if ok else f"the given weights path {weights} does not exist"
    weights_dir, dir_label = _weights_dir(weights_dir)
    if weights_dir is not None and (found := _find_in_dir(spec, weights_dir)) is not None:
        return True, f"local file {found}"
    cache = Path(cache) if cache is not None else settings.cache_dir()
    if cache.is_dir() and _cached_files(spec, cache):
        return True, f"cached in {cache}"
    if settings.offline() if offline is None else offline:
        return False, missing_message(spec, weights_dir, cache, origin, dir_label)
    if unreachable:
        return False, (f"its weights cannot be downloaded now: {unreachable}. Checked again every minute; or "
                       f"{without_network(origin)}")
    size = spec.download_bytes
    return True, f"downloaded on first use ({size / 1e6:.1f} MB)" if size else "downloaded on first use"
