"""Download one file, verifying size and git blob SHA-1 while streaming; publish it only when intact.

A file whose size is not known (the portrait styles' ``.pt`` files) is bounded instead, and hashed once complete.

Like ``torch.hub.download_url_to_file``: stream into a temporary file beside the
target and rename it into place only after the checks pass, so a reader never
sees a half-written or unverified file.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from .. import settings
from .errors import WeightsDownloadError, WeightsIntegrityError

Progress = Callable[[int, int], None]  # (bytes so far, total bytes; 0 when the size is not known)
MAX_UNSIZED_DOWNLOAD = 16 << 20  # a generator's weights are about 8.6 MB: refuse a file of unknown size past this
PROBE_TIMEOUT_S = 3.0  # a host that has not answered by then would not serve an 8.6 MB download in useful time


def probe(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Whether ``url`` could be downloaded now: None when its server answers a HEAD request with success, else why
    not, in a few words. Nothing is downloaded: the app asks this in the background to say so before a conversion."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "animegan-weights/1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        return f"{urllib.parse.urlsplit(url).netloc} answered HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        return f"{urllib.parse.urlsplit(url).netloc or url} cannot be reached ({getattr(exc, 'reason', exc)})"


def git_blob_sha1(data: bytes) -> str:
    """What ``git hash-object`` prints: the identity under which upstream commits the file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def git_blob_sha1_of_file(path: Path) -> str:
    size = path.stat().st_size
    h = hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as fh:
        while chunk := fh.read(settings.DOWNLOAD_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, size: int | None, git_sha1: str, *, progress: Progress | None = None,
             timeout: float = settings.DOWNLOAD_TIMEOUT_S, max_bytes: int = MAX_UNSIZED_DOWNLOAD) -> Path:
    """Fetch ``url`` to ``dest``; raise and leave nothing behind unless size and hash match.

    ``size`` None (a file whose size is not known in advance): the stream is refused past ``max_bytes``, and the
    git blob SHA-1 (whose header needs the size) is taken over the finished temporary file instead of on the fly.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha1(b"blob %d\0" % size) if size is not None else None
    limit = size if size is not None else max_bytes
    written = 0
    bar = tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, disable=None, leave=False) if progress is None else None
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "animegan-weights/1"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            while chunk := response.read(settings.DOWNLOAD_CHUNK):
                written += len(chunk)
                if written > limit:
                    if size is None:
                        raise WeightsIntegrityError(
                            f"{url} sent more than {max_bytes >> 20} MiB, far more than a generator's weights "
                            "(about 8.6 MB): not the file we expect; the download was stopped and nothing was cached")
                    raise WeightsIntegrityError(f"{url} sent more than the expected {size} bytes: not the file we expect")
                if digest is not None:
                    digest.update(chunk)
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
                else:
                    progress(written, size or 0)  # total 0: not known
        if size is not None and written != size:
            raise WeightsDownloadError(f"{url}: download ended after {written} of {size} bytes (connection dropped?); try again")
        got = digest.hexdigest() if digest is not None else git_blob_sha1_of_file(tmp)
        if got != git_sha1:
            raise WeightsIntegrityError(
                f"{url}: content does not match the expected git SHA-1 {git_sha1} (got {got}); "
                "the file was rejected and nothing was cached"
            )
        os.replace(tmp, dest)
        return dest
    except urllib.error.HTTPError as exc:
        raise WeightsDownloadError(f"{url}: server answered HTTP {exc.code} {exc.reason}",
                                   short=f"{url.rsplit('/', 1)[-1]}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # HTTPException: e.g. a cut chunked body
        reason = getattr(exc, "reason", exc)
        raise WeightsDownloadError(f"{url}: could not download ({reason}); check the network",
                                   short=f"could not reach {urllib.parse.urlsplit(url).netloc} ({reason})") from exc
    finally:
        if bar is not None:
            bar.close()
        tmp.unlink(missing_ok=True)
