"""Resolving weights end to end: a real HTTP server on 127.0.0.1, real files, real cache, real processes."""
from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from animegan import settings
from animegan.styles import SourceFile, StyleSpec, get_style
from animegan.weights import (
    WeightsDownloadError,
    WeightsIntegrityError,
    WeightsMissingError,
    availability,
    load_pt,
    resolve_weights,
)
from animegan.weights.download import git_blob_sha1, git_blob_sha1_of_file

INDEX = "Hayao-64.ckpt.index"
DATA = "Hayao-64.ckpt.data-00000-of-00001"


class FileServer:
    """Serves ``files`` ({url path: bytes}) on a random loopback port; per-path faults; counts every request."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.short: set[str] = set()  # paths whose body stops halfway although Content-Length promises everything
        self.chunked = False  # Transfer-Encoding: chunked instead of Content-Length (as some mirrors and proxies send)
        self.delay = 0.0     # seconds to wait before answering (to make races overlap)
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                time.sleep(server.delay)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if server.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(body) // 2 if self.path in server.short else len(body), 1 << 16):
                        part = body[i:i + (1 << 16)]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    if self.path not in server.short:
                        self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in server.short else body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


def dead_url() -> str:
    """A loopback URL nobody listens on: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def clean_env(clean_weights_env: None) -> None:
    """CI exports ANIMEGAN_OFFLINE=1; these tests decide for themselves."""


@pytest.fixture(scope="module")
def stand_in(hayao_ckpt: Path) -> dict[str, bytes]:
    """The genuine TF stand-in checkpoint's bytes under the upstream file names."""
    return {
        INDEX: Path(f"{hayao_ckpt}.index").read_bytes(),
        DATA: Path(f"{hayao_ckpt}.data-00000-of-00001").read_bytes(),
    }


@pytest.fixture(scope="module")
def expected(hayao_pt: Path) -> dict[str, torch.Tensor]:
    return torch.load(hayao_pt, weights_only=True)


@pytest.fixture
def server(stand_in: dict[str, bytes]) -> Iterator[FileServer]:
    srv = FileServer({f"/upstream/{name}": body for name, body in stand_in.items()})
    yield srv
    srv.stop()


def spec_for(base: str, files: dict[str, bytes], **override: str) -> StyleSpec:
    """The real hayao spec, with URLs on ``base`` and size/hash taken from ``files`` (``override``: name -> git sha1)."""
    real = get_style("hayao")
    return dataclasses.replace(real, files=tuple(
        SourceFile(name=f.name, url=f"{base}/{f.name}", size=len(files[f.name]),
                   git_sha1=override.get(f.name, git_blob_sha1(files[f.name])))
        for f in real.files
    ))


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def cache_pts(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.pt"))


def leftovers(cache: Path) -> set[str]:
    """Everything in the cache folder except the lock file."""
    return {p.name for p in cache.iterdir() if p.name != "hayao.lock"} if cache.exists() else set()


def test_git_blob_sha1_agrees_with_git(tmp_path: Path) -> None:
    sample = tmp_path / "sample.bin"
    sample.write_bytes(b"AnimeGANv2\x00\xff" * 1000)
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    want = subprocess.run(["git", "hash-object", str(sample)], capture_output=True, text=True, check=True).stdout.strip()
    assert git_blob_sha1(sample.read_bytes()) == want
    assert git_blob_sha1_of_file(sample) == want


# --- download ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def first_download(stand_in, tmp_path_factory: pytest.TempPathFactory):
    """One real first download + conversion, shared by the tests that need a populated cache (conversions cost ~2 s)."""
    srv = FileServer({f"/upstream/{name}": body for name, body in stand_in.items()})
    try:
        spec = spec_for(f"{srv.base}/upstream", stand_in)
        cache = tmp_path_factory.mktemp("first-download") / "cache"
        calls: list[tuple[int, int]] = []
        with pytest.MonkeyPatch.context() as mp:
            for name in (settings.ENV_OFFLINE, settings.ENV_HF_OFFLINE, settings.ENV_MIRROR, settings.ENV_WEIGHTS_DIR):
                mp.delenv(name, raising=False)
            got = resolve_weights(spec, cache=cache, offline=False, progress=lambda done, total: calls.append((done, total)))
        return {"spec": spec, "cache": cache, "got": got, "calls": calls, "requests": list(srv.requests)}
    finally:
        srv.stop()


def populated_cache(first_download, folder: Path) -> Path:
    """A private copy of the cache the first download left."""
    shutil.copytree(first_download["cache"], folder)
    [cached] = cache_pts(folder)
    return cached


def test_download_converts_and_caches(first_download, stand_in, expected) -> None:
    got, cache = first_download["got"], first_download["cache"]
    assert same_tensors(got.state_dict, expected)
    assert sorted(first_download["requests"]) == sorted(f"/upstream/{n}" for n in (INDEX, DATA))
    calls = first_download["calls"]
    assert (len(stand_in[INDEX]), len(stand_in[INDEX])) in calls and (len(stand_in[DATA]), len(stand_in[DATA])) in calls
    [cached] = cache_pts(cache)
    assert got.source == str(cached)
    assert leftovers(cache) == {cached.name}  # no temp files or download folders left behind
    # The file name carries the SHA-256 of the file's own bytes.
    assert hashlib.sha256(cached.read_bytes()).hexdigest().startswith(cached.name.split(".")[-2])
    assert same_tensors(load_pt(cached), expected)


def test_second_call_uses_the_cache_without_network(first_download, stand_in, expected, tmp_path: Path) -> None:
    cached = populated_cache(first_download, tmp_path / "cache")
    spec = dataclasses.replace(first_download["spec"], files=tuple(
        dataclasses.replace(f, url=f"{dead_url()}/{f.name}") for f in first_download["spec"].files))
    again = resolve_weights(spec, cache=tmp_path / "cache", offline=False)  # any network use would be refused
    assert same_tensors(again.state_dict, expected)
    assert again.source == str(cached) and again.fingerprint == first_download["got"].fingerprint


def test_wrong_hash_is_rejected_and_nothing_cached(server: FileServer, stand_in, tmp_path: Path) -> None:
    wrong = "0123456789abcdef0123456789abcdef01234567"
    spec = spec_for(f"{server.base}/upstream", stand_in, **{DATA: wrong})
    cache = tmp_path / "cache"
    with pytest.raises(WeightsIntegrityError) as info:
        resolve_weights(spec, cache=cache, offline=False)
    message = str(info.value)
    assert DATA in message and wrong in message and git_blob_sha1(stand_in[DATA]) in message
    assert "nothing was cached" in message
    assert leftovers(cache) == set()


def test_truncated_body_is_an_error_and_nothing_cached(server: FileServer, stand_in, tmp_path: Path) -> None:
    server.short.add(f"/upstream/{DATA}")
    spec = spec_for(f"{server.base}/upstream", stand_in)
    cache = tmp_path / "cache"
    size = len(stand_in[DATA])
    with pytest.raises(WeightsDownloadError, match=rf"{DATA}.*ended after {size // 2} of {size} bytes"):
        resolve_weights(spec, cache=cache, offline=False)
    assert leftovers(cache) == set()


def test_truncated_chunked_body_is_a_download_error(server: FileServer, stand_in, tmp_path: Path) -> None:
    """A chunked response cut off mid-stream: http.client raises IncompleteRead, which must surface as our error."""
    server.chunked = True
    server.short.add(f"/upstream/{INDEX}")
    spec = spec_for(f"{server.base}/upstream", stand_in)
    with pytest.raises(WeightsDownloadError, match=INDEX):
        resolve_weights(spec, cache=tmp_path / "cache", offline=False)
    assert leftovers(tmp_path / "cache") == set()


def test_shorter_file_than_expected(server: FileServer, stand_in, tmp_path: Path) -> None:
    """The server honestly serves a smaller file (say, an HTML error page or an LFS pointer)."""
    server.files[f"/upstream/{INDEX}"] = stand_in[INDEX][:1000]
    spec = spec_for(f"{server.base}/upstream", stand_in)
    cache = tmp_path / "cache"
    with pytest.raises(WeightsDownloadError, match="ended after 1000 of"):
        resolve_weights(spec, cache=cache, offline=False)
    assert leftovers(cache) == set()


def test_longer_file_than_expected(server: FileServer, stand_in, tmp_path: Path) -> None:
    server.files[f"/upstream/{INDEX}"] = stand_in[INDEX] + b"<html>surprise</html>"
    spec = spec_for(f"{server.base}/upstream", stand_in)
    cache = tmp_path / "cache"
    with pytest.raises(WeightsIntegrityError, match="more than the expected"):
        resolve_weights(spec, cache=cache, offline=False)
    assert leftovers(cache) == set()


def test_connection_refused(stand_in, tmp_path: Path) -> None:
    spec = spec_for(dead_url(), stand_in)
    with pytest.raises(WeightsDownloadError, match="could not download"):
        resolve_weights(spec, cache=tmp_path / "cache", offline=False)
    assert leftovers(tmp_path / "cache") == set()


def test_http_404(server: FileServer, stand_in, tmp_path: Path) -> None:
    spec = spec_for(f"{server.base}/moved-away", stand_in)
    with pytest.raises(WeightsDownloadError, match="HTTP 404"):
        resolve_weights(spec, cache=tmp_path / "cache", offline=False)
    assert server.requests == [f"/moved-away/{INDEX}"]
    assert leftovers(tmp_path / "cache") == set()


# --- offline -------------------------------------------------------------------------------------

@pytest.mark.parametrize("cache_exists", [False, True])
def test_offline_with_empty_cache_names_files_and_folder(tmp_path: Path, cache_exists: bool) -> None:
    cache = tmp_path / "cache"
    if cache_exists:
        cache.mkdir()
    spec = get_style("hayao")
    with pytest.raises(WeightsMissingError) as info:
        resolve_weights(spec, cache=cache, offline=True)
    message = str(info.value)
    assert INDEX in message and DATA in message and "hayao.pt" in message
    assert str(cache) in message and settings.ENV_WEIGHTS_DIR in message
    with pytest.raises(WeightsMissingError, match=str(tmp_path / "mine")):
        resolve_weights(spec, cache=cache, weights_dir=tmp_path / "mine", offline=True)


@pytest.mark.parametrize("variable", [settings.ENV_HF_OFFLINE, settings.ENV_OFFLINE])
def test_offline_environment_is_honoured(server: FileServer, stand_in, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         variable: str) -> None:
    monkeypatch.setenv(variable, "1")
    spec = spec_for(f"{server.base}/upstream", stand_in)
    with pytest.raises(WeightsMissingError):
        resolve_weights(spec, cache=tmp_path / "cache")
    assert server.requests == []
    monkeypatch.setenv(variable, "0")
    del server.files[f"/upstream/{INDEX}"]  # online now: the request is made (and answered 404, to stay fast)
    with pytest.raises(WeightsDownloadError, match="HTTP 404"):
        resolve_weights(spec, cache=tmp_path / "cache")
    assert server.requests == [f"/upstream/{INDEX}"]


def test_cache_dir_from_environment(first_download, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = populated_cache(first_download, tmp_path / "env-cache")
    monkeypatch.setenv(settings.ENV_CACHE_DIR, str(tmp_path / "env-cache"))
    assert resolve_weights(first_download["spec"], offline=True).source == str(cached)
    monkeypatch.setenv(settings.ENV_CACHE_DIR, str(tmp_path / "elsewhere"))
    with pytest.raises(WeightsMissingError, match=str(tmp_path / "elsewhere")):
        resolve_weights(first_download["spec"], offline=True)


def test_mirror_environment(server: FileServer, stand_in, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both files are asked of the mirror, by upstream name (the data file is missing there, to stop before converting)."""
    server.files = {f"/mirror/{INDEX}": stand_in[INDEX]}
    monkeypatch.setenv(settings.ENV_MIRROR, f"{server.base}/mirror/")
    spec = spec_for(dead_url(), stand_in)  # the spec's own URLs would be refused
    with pytest.raises(WeightsDownloadError, match=rf"{server.base}/mirror/{DATA}: server answered HTTP 404"):
        resolve_weights(spec, cache=tmp_path / "cache", offline=False)
    assert server.requests == [f"/mirror/{INDEX}", f"/mirror/{DATA}"]
    assert leftovers(tmp_path / "cache") == set()


# --- the cache -----------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_corrupted_cache_is_detected_and_removed(first_download, tmp_path: Path, damage: str) -> None:
    cached = populated_cache(first_download, tmp_path / "cache")
    data = cached.read_bytes()
    if damage == "flip":
        data = data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0x01]) + data[len(data) // 2 + 1:]
    cached.write_bytes({"flip": data, "truncate": data[:-100], "empty": b""}[damage])
    with pytest.raises(WeightsMissingError):  # offline: the damaged file is not loaded, and nothing else is there
        resolve_weights(first_download["spec"], cache=tmp_path / "cache", offline=True)
    assert not cached.exists()


def test_corrupted_cache_is_rebuilt_from_download(first_download, server: FileServer, stand_in, expected, tmp_path: Path) -> None:
    cached = populated_cache(first_download, tmp_path / "cache")
    data = bytearray(cached.read_bytes())
    data[len(data) // 3] ^= 0x80
    cached.write_bytes(bytes(data))
    spec = spec_for(f"{server.base}/upstream", stand_in)
    got = resolve_weights(spec, cache=tmp_path / "cache", offline=False)
    assert same_tensors(got.state_dict, expected)
    assert len(server.requests) == 2  # downloaded again
    [rebuilt] = cache_pts(tmp_path / "cache")
    assert got.source == str(rebuilt)
    assert hashlib.sha256(rebuilt.read_bytes()).hexdigest().startswith(rebuilt.name.split(".")[-2])


class _Payload:
    """Pickles to a call that creates a file: what a tampered checkpoint could do on a plain ``torch.load``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _malicious_pt(path: Path, marker: Path, expected: dict[str, torch.Tensor]) -> Path:
    state = dict(expected)
    state["block_a.0.1.weight"] = _Payload(marker)  # type: ignore[assignment]
    torch.save(state, path)
    return path


def test_payload_is_live_without_weights_only(tmp_path: Path, expected) -> None:
    """Control: the file used below really runs code when loaded unsafely."""
    marker = tmp_path / "pwned-control"
    path = _malicious_pt(tmp_path / "evil.pt", marker, expected)
    torch.load(path, weights_only=False)
    assert marker.is_dir()


def test_tampered_pt_is_refused_without_running_code(tmp_path: Path, expected) -> None:
    marker = tmp_path / "pwned"
    spec = get_style("hayao")
    path = _malicious_pt(tmp_path / "evil.pt", marker, expected)
    with pytest.raises(WeightsIntegrityError, match="not a weights-only state dict"):
        resolve_weights(spec, weights=path, offline=True, cache=tmp_path / "cache")
    # The same file dropped into a weights folder, and into the cache under a self-consistent name.
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copyfile(path, folder / "hayao.pt")
    with pytest.raises(WeightsIntegrityError):
        resolve_weights(spec, weights_dir=folder, offline=True, cache=tmp_path / "cache")
    cache = tmp_path / "cache2"
    cache.mkdir()
    tag = hashlib.sha1("".join(f.git_sha1 for f in spec.files).encode()).hexdigest()[:12]
    planted = cache / f"hayao.{tag}.{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}.pt"
    shutil.copyfile(path, planted)
    with pytest.raises(WeightsMissingError):
        resolve_weights(spec, cache=cache, offline=True)
    assert not planted.exists()
    assert not marker.exists()


def test_wrapped_state_dict_and_garbage(tmp_path: Path, expected) -> None:
    torch.save({"state_dict": expected, "epoch": 3}, tmp_path / "wrapped.pt")
    assert same_tensors(load_pt(tmp_path / "wrapped.pt"), expected)
    (tmp_path / "garbage.pt").write_bytes(b"\x00" * 1000)
    with pytest.raises(WeightsIntegrityError, match="garbage.pt"):
        load_pt(tmp_path / "garbage.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(WeightsIntegrityError, match="not a state dict"):
        load_pt(tmp_path / "list.pt")


# --- weights folder and explicit paths -----------------------------------------------------------

def test_weights_dir_finds_style_pt(hayao_pt: Path, expected, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copyfile(hayao_pt, folder / "hayao.pt")
    spec = spec_for(dead_url(), {INDEX: b"", DATA: b""})  # the network would fail: the folder must win
    got = resolve_weights(spec, weights_dir=folder, cache=tmp_path / "cache", offline=False)
    assert got.source == str(folder / "hayao.pt") and same_tensors(got.state_dict, expected)
    monkeypatch.setenv(settings.ENV_WEIGHTS_DIR, str(folder))
    assert resolve_weights(spec, cache=tmp_path / "cache", offline=False).source == str(folder / "hayao.pt")
    assert not (tmp_path / "cache").exists()


def test_weights_dir_finds_upstream_tf_files(stand_in, expected, tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    for name, body in stand_in.items():
        (folder / name).write_bytes(body)
    got = resolve_weights(get_style("hayao"), weights_dir=folder, cache=tmp_path / "cache", offline=True)
    assert got.source == str(folder / "Hayao-64.ckpt") and same_tensors(got.state_dict, expected)
    (folder / DATA).unlink()
    with pytest.raises(WeightsMissingError, match=DATA):
        resolve_weights(get_style("hayao"), weights_dir=folder, cache=tmp_path / "cache", offline=True)


@pytest.mark.parametrize("how", ["weights_dir", "index_path", "prefix"])
def test_corrupted_local_tf_checkpoint_names_the_files(stand_in, tmp_path: Path, how: str) -> None:
    """Also shows that an explicit ``X.ckpt`` or ``X.ckpt.index`` is read as a TF checkpoint (damaged first tensor: fast)."""
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / INDEX).write_bytes(stand_in[INDEX])
    data = bytearray(stand_in[DATA])
    data[10] ^= 0xFF
    (folder / DATA).write_bytes(bytes(data))
    where = {"weights_dir": {"weights_dir": folder}, "index_path": {"weights": folder / INDEX},
             "prefix": {"weights": folder / "Hayao-64.ckpt"}}[how]
    with pytest.raises(WeightsIntegrityError, match="generator/G_MODEL/A/Conv/weights.*Replace the files"):
        resolve_weights(get_style("hayao"), cache=tmp_path / "cache", offline=True, **where)
    with pytest.raises(WeightsMissingError, match="no weights at"):
        resolve_weights(get_style("hayao"), weights=tmp_path / "nothing.pt", offline=True, cache=tmp_path)


def test_availability(first_download, server: FileServer, stand_in, hayao_pt: Path, tmp_path: Path) -> None:
    spec = spec_for(f"{server.base}/upstream", stand_in)
    cache = tmp_path / "cache"
    ok, why = availability(spec, cache=cache, offline=True)
    assert not ok and INDEX in why and str(cache) in why
    ok, why = availability(spec, cache=cache, offline=False)
    assert ok and "downloaded on first use" in why
    ok, why = availability(spec, weights=tmp_path / "missing.pt", cache=cache, offline=True)
    assert not ok and "missing.pt" in why
    assert availability(spec, weights=hayao_pt, cache=cache, offline=True)[0]
    folder = tmp_path / "weights"
    folder.mkdir()
    os.symlink(hayao_pt, folder / "hayao.pt")
    ok, why = availability(spec, weights_dir=folder, cache=cache, offline=True)
    assert ok and str(folder / "hayao.pt") in why
    populated_cache(first_download, cache)
    ok, why = availability(spec, cache=cache, offline=True)
    assert ok and "cached" in why
    assert server.requests == []  # availability itself never downloads


# --- two processes, one first download -----------------------------------------------------------

def _first_download(spec: StyleSpec, cache: str, barrier, results) -> None:
    barrier.wait(timeout=60)
    try:
        got = resolve_weights(spec, cache=Path(cache), offline=False)
        results.put(("ok", got.fingerprint, got.source))
    except Exception as exc:  # noqa: BLE001 - any error is reported to the parent, which fails the test
        results.put(("error", repr(exc), ""))


def test_two_processes_download_once(server: FileServer, stand_in, expected, tmp_path: Path) -> None:
    server.delay = 0.05  # the first download stays in flight while the other process reaches the lock
    spec = spec_for(f"{server.base}/upstream", stand_in)
    cache = tmp_path / "cache"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_first_download, args=(spec, str(cache), barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert [o[0] for o in outcomes] == ["ok", "ok"], outcomes
    assert outcomes[0][1] == outcomes[1][1] and outcomes[0][2] == outcomes[1][2]
    [cached] = cache_pts(cache)
    assert leftovers(cache) == {cached.name}
    assert same_tensors(load_pt(cached), expected)
    assert len(server.requests) == 2  # one process downloaded; the other waited on the lock and read the cache


# --- messages name what the user set (issue 14, items 4 and 7) -------------------------------------

def test_offline_message_names_the_flag_not_the_variables(tmp_path: Path) -> None:
    from animegan.weights import WeightsOrigin

    spec = get_style("shinkai")
    origin = WeightsOrigin.from_flags(offline=True, weights_dir=True)
    with pytest.raises(WeightsMissingError) as info:
        resolve_weights(spec, weights_dir=Path("w"), cache=tmp_path / "cache", offline=True, origin=origin)
    message = str(info.value)
    assert "(--offline was given)" in message and "run without --offline" in message
    assert f"in {Path('w').absolute()} (the --weights-dir folder)" in message  # the full path, not "in w"
    assert settings.ENV_OFFLINE not in message and settings.ENV_HF_OFFLINE not in message
    assert settings.ENV_WEIGHTS_DIR not in message
    assert f"the weights cache ({tmp_path / 'cache'})." in message
    assert "python -m animegan download shinkai --to DIR" in message


@pytest.mark.parametrize("variables", [[settings.ENV_OFFLINE], [settings.ENV_HF_OFFLINE],
                                       [settings.ENV_OFFLINE, settings.ENV_HF_OFFLINE]])
def test_offline_message_names_the_variables_that_are_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          variables: list[str]) -> None:
    for name in variables:
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv(settings.ENV_WEIGHTS_DIR, str(tmp_path / "from-env"))
    spec = get_style("paprika")
    ok, why = availability(spec, cache=tmp_path / "cache")  # offline=None: decided by the environment
    assert not ok
    assert f"unset {' and '.join(variables)} to download" in why
    assert "--offline" not in why
    for name in {settings.ENV_OFFLINE, settings.ENV_HF_OFFLINE} - set(variables):
        assert name not in why
    assert f"{tmp_path / 'from-env'} (the {settings.ENV_WEIGHTS_DIR} folder)" in why
    with pytest.raises(WeightsMissingError) as info:  # the app passes on what it read from the variables
        resolve_weights(spec, weights_dir=tmp_path / "from-env", cache=tmp_path / "cache", offline=True)
    assert str(info.value) == why


def test_offline_message_for_python_callers(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissingError) as info:
        resolve_weights(get_style("hayao"), weights_dir=tmp_path / "mine", cache=tmp_path / "cache", offline=True)
    message = str(info.value)
    assert "(offline=True was passed)" in message and "pass offline=False" in message
    assert f"{tmp_path / 'mine'} (the weights_dir folder)" in message


def test_rejected_file_keeps_our_sentence_whole_then_pytorchs(tmp_path: Path, expected) -> None:
    """Item 7: the message was cut mid-sentence ("... Re-running `torch.); the file is ...")."""
    path = _malicious_pt(tmp_path / "evil.pt", tmp_path / "pwned", expected)
    with pytest.raises(WeightsIntegrityError) as info:
        load_pt(path)
    message = str(info.value)
    ours = (f"{path} could not be read as plain tensors: the file is truncated, corrupted, or not a weights-only "
            "state dict. Replace it. (PyTorch: UnpicklingError: ")
    assert message.startswith(ours) and message.endswith(")")
    theirs = message[len(ours):-1]
    assert "Weights only load failed" in theirs
    assert theirs.endswith((".", "...")) and " ." not in theirs and not theirs.endswith("`torch.")
    assert len(message) < len(ours) + 320


def test_long_library_text_is_cut_after_a_sentence_or_word() -> None:
    from animegan.weights.store import _first_sentences

    assert _first_sentences("short one.\nsecond line") == "short one."
    assert _first_sentences("A" * 10 + ". " + "b " * 200) == "A" * 10 + "."
    cut = _first_sentences("word " * 100)
    assert cut.endswith("word ...") and len(cut) <= 304
    assert _first_sentences("\n\n") == "no details"


# --- a weights folder for offline machines (download --to) ------------------------------------------

def test_written_weights_file_is_what_the_folder_loader_takes(expected, tmp_path: Path) -> None:
    from animegan.weights.folder import write_weights_file

    folder = tmp_path / "weights"
    path, changed = write_weights_file(expected, folder, "hayao")
    assert changed and path == folder / "hayao.pt" and os.stat(path).st_mode & 0o777 == 0o644
    got = resolve_weights(get_style("hayao"), weights_dir=folder, cache=tmp_path / "cache", offline=True)
    assert got.source == str(path) and same_tensors(got.state_dict, expected)
    mtime = path.stat().st_mtime_ns
    assert write_weights_file(expected, folder, "hayao") == (path, False)  # identical: left alone
    assert path.stat().st_mtime_ns == mtime
    path.write_bytes(path.read_bytes()[:1000])  # damaged: replaced
    assert write_weights_file(expected, folder, "hayao") == (path, True)
    assert same_tensors(load_pt(path), expected)
    assert sorted(p.name for p in folder.iterdir()) == ["hayao.pt"]  # no temporary files left
