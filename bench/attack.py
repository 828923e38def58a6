"""Replay the public-link attacks (issues 12 and 22) against the real app over raw HTTP and print what each got.

Each row is one hostile request as a script would send it (no gradio_client: hand-written JSON, multipart and
SSE), what the app must do now, and what it did. By default the script starts its own app on 127.0.0.1 (so it
also knows the server's side: its process for RSS, its upload folder, a planted "secret" image and a symlink to
it), runs every attack, stops the app with SIGTERM and checks what was left on disk:

    python bench/attack.py --weights hayao=PATH/hayao.pt
    python bench/attack.py --weights hayao=PATH/hayao.pt --only videos   # issue 22's hostile videos alone

``--url http://127.0.0.1:7860/`` attacks an app that is already running instead (rows that need the server's
side are skipped; pass ``--secret PATH`` to try reading a known server image). Exit status 0 when every row held.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import app_process
from app_process import running_app

REFUSED = "The photo did not reach the server; upload it again."  # the one answer for every path it will not read
MiB = 1 << 20


# -- Gradio's protocol by hand --------------------------------------------------------------------------
class Raw:
    """Gradio's HTTP API spoken by hand, as a hostile client would: upload, queue/join, queue/data (SSE)."""

    def __init__(self, url: str, cookies: dict[str, str] | None = None) -> None:
        self.url = url.rstrip("/") + "/"
        self.http = httpx.Client(base_url=self.url, timeout=60, cookies=cookies)
        self._config: dict | None = None

    def config(self) -> dict:
        if self._config is None:
            self._config = self.http.get("config").json()
        return self._config

    def fn_index(self, api_name: str) -> int:
        for dep in self.config()["dependencies"]:
            if dep.get("api_name") == api_name:
                return dep["id"]
        raise KeyError(api_name)

    def upload(self, data: bytes, name: str) -> str:
        r = self.http.post("gradio_api/upload", files={"files": (name, data)})
        r.raise_for_status()
        return r.json()[0]

    def join(self, fn_index: int, data: list[Any], session: str | None = None,
             body: bytes | None = None) -> tuple[int, Any, str]:
        session = session or (json.loads(body)["session_hash"] if body is not None else uuid.uuid4().hex)
        payload = body if body is not None else json.dumps(
            {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None},
            allow_nan=True).encode()
        r = self.http.post("gradio_api/queue/join", content=payload, headers={"content-type": "application/json"})
        try:
            answer = r.json()
        except ValueError:
            answer = r.text[:200]
        return r.status_code, answer, session

    def listen(self, session: str, timeout: float = 120) -> dict | None:
        """The first process_completed message of the session's result stream (None when none came in time)."""
        deadline = time.monotonic() + timeout
        with self.http.stream("GET", "gradio_api/queue/data", params={"session_hash": session},
                              timeout=httpx.Timeout(timeout, read=timeout)) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("msg") == "process_completed":
                        return msg
                if time.monotonic() > deadline:
                    return None
        return None

    def call_route(self, api_name: str, data: Any, timeout: float = 120) -> tuple[int, Any]:
        """The named route, as curl users call it: POST ``call/NAME`` then read ``call/NAME/EVENT`` (SSE). Returns
        (HTTP status of the POST, ``{"event": "complete"|"error", "data": ...}`` or the POST's own answer)."""
        r = self.http.post(f"gradio_api/call/{api_name}", json={"data": data})
        if r.status_code != 200:
            try:
                return r.status_code, r.json()
            except ValueError:
                return r.status_code, r.text[:200]
        event_id, kind = r.json()["event_id"], None
        with self.http.stream("GET", f"gradio_api/call/{api_name}/{event_id}",
                              timeout=httpx.Timeout(timeout, read=timeout)) as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind in ("complete", "error"):
                    return r.status_code, {"event": kind, "data": json.loads(line[5:])}
        return r.status_code, None

    def call(self, fn_index: int, data: list[Any], timeout: float = 120) -> tuple[int, Any]:
        """join + listen: (HTTP status of the join, the completion message or the join's error body)."""
        status, answer, session = self.join(fn_index, data)
        if status != 200:
            return status, answer
        return status, self.listen(session, timeout)


def error_text(msg: Any) -> str | None:
    """The user-facing error of a completion message; 'null' when the app answered without one."""
    if not isinstance(msg, dict):
        return str(msg)
    out = msg.get("output") or {}
    if msg.get("success"):
        return None
    return "null" if out.get("error") is None else str(out["error"])


def stylize_data(photo: Any, style: Any = "hayao", side: Any = 0, keep: Any = False, framing: Any = "face",
                 background: Any = "keep", keep_color: Any = 0, side_by_side: Any = False) -> list[Any]:
    """/stylize's eight inputs as raw HTTP sends them (Gradio's protocol wants every input; its client fills defaults)."""
    return [photo, style, side, keep, framing, background, keep_color, side_by_side]


def batch_data(photos: Any, style: Any = "hayao", side: Any = 0, keep: Any = False, framing: Any = "face",
               background: Any = "keep", keep_color: Any = 0, side_by_side: Any = False) -> list[Any]:
    """/stylize_batch's eight inputs as raw HTTP sends them: a list of photo files, then /stylize's settings."""
    return [photos, style, side, keep, framing, background, keep_color, side_by_side]


def video_data(clip: Any, style: Any = "hayao", side: Any = 0, temporal: Any = True, framing: Any = "whole",
               keep_color: Any = 0, side_by_side: Any = False) -> list[Any]:
    """/stylize_video's raw inputs, in order (Gradio's raw protocol wants every one; gradio_client fills defaults)."""
    return [clip, style, side, temporal, framing, keep_color, side_by_side]


def mirror_data(frame: Any, style: Any = "hayao", temporal: Any = True, session: Any = None,
                keep_color: Any = 0) -> list[Any]:
    """The webcam mirror stream's raw inputs, in order."""
    return [frame, style, temporal, session, keep_color]


# -- what the script knows about a server it started --------------------------------------------------
@dataclass
class Server:
    url: str
    pid: int | None = None
    upload_dir: Path | None = None
    secret: Path | None = None       # an image on the server, outside every allowed folder
    folder: Path | None = None       # a folder on the server
    log: Path | None = None

    def rss(self) -> int | None:
        if self.pid is None:
            return None
        import psutil

        return psutil.Process(self.pid).memory_info().rss


@dataclass
class Row:
    item: str
    attack: str
    expected: str
    observed: str
    held: bool
    extra: dict = field(default_factory=dict)


def mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / MiB:.0f} MiB"


@contextmanager
def peak_rss(server: Server) -> Iterator[dict]:
    """RSS of the server before, at its highest during, and after the block (sampled every 20 ms)."""
    out: dict[str, int | None] = {"before": server.rss(), "peak": None, "after": None}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = server.rss()
            if rss is not None:
                out["peak"] = max(out["peak"] or 0, rss)
            stop.wait(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join()
        out["after"] = server.rss()


# -- the photos an attacker sends ------------------------------------------------------------------------
def small_jpeg(side: int = 96) -> bytes:
    rng = np.random.default_rng(1)
    im = Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def huge_flat_png(w: int = 7000, h: int = 7000) -> bytes:
    """49 MP that compress to a few hundred KB: a cheap upload that costs the server 147 MB per decode."""
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (120, 160, 200)).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def postscript_loop(seconds: int = 40) -> bytes:
    """An EPS whose PostScript busy-loops: Pillow's EPS plugin would hand it to Ghostscript."""
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n"
            + f"realtime {seconds * 1000} add {{ dup realtime le {{ exit }} if }} loop pop\n".encode()
            + b"showpage\n%%EOF\n")


def many_scan_jpeg(scans: int = 10_000) -> bytes:
    """A progressive JPEG whose smallest scan is repeated ``scans`` times: each is one more pass to decode."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buf, "JPEG", progressive=True, quality=80)
    data = buf.getvalue()
    starts, pos = [], data.find(b"\xff\xda")
    while pos >= 0:
        starts.append(pos)
        pos = data.find(b"\xff\xda", pos + 2)
    eoi = data.rfind(b"\xff\xd9")
    bounds = list(zip(starts, starts[1:] + [eoi]))
    a, b = min(bounds, key=lambda ab: ab[1] - ab[0])
    return data[:eoi] + data[a:b] * (scans - len(starts)) + data[eoi:]


def lying_ico(inner_side: int = 12000) -> bytes:
    """An ICO whose directory says 16x16 but whose entry is a 12000x12000 PNG (decoded inside Image.open)."""
    buf = io.BytesIO()
    Image.new("RGB", (inner_side, inner_side), (0, 0, 0)).save(buf, "PNG", compress_level=9)
    png = buf.getvalue()
    header = (b"\x00\x00\x01\x00\x01\x00" + bytes([16, 16, 0, 0]) + (1).to_bytes(2, "little")
              + (32).to_bytes(2, "little") + len(png).to_bytes(4, "little") + (22).to_bytes(4, "little"))
    return header + png


# -- the attacks, numbered as in the issue -----------------------------------------------------------------
# -- the videos an attacker sends (issue 22): built here with PyAV, nothing committed ---------------------
def clip_bytes(frames: int = 12, size: tuple[int, int] = (64, 48), fps: int = 12, fmt: str = "mp4",
               codec: str = "libx264") -> bytes:
    """A small real clip (moving noise), no sound."""
    import av

    rng = np.random.default_rng(5)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode())
    return buf.getvalue()


def hls_playlist(entries: Sequence[str], live: bool = False, seconds: float = 1.2) -> bytes:
    """An HLS media playlist naming ``entries`` (paths, file: URLs); ``live``: no end, each entry an hour long."""
    lines = ["#EXTM3U", f"#EXT-X-TARGETDURATION:{3600 if live else 4}"]
    for entry in entries:
        lines += [f"#EXTINF:{3600 if live else seconds},", entry]
    if not live:
        lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


def hls_master_self(name: str) -> bytes:
    """An HLS master playlist whose one variant is itself."""
    return f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n{name}\n".encode()


def ffconcat_self(name: str) -> bytes:
    """An ffconcat list whose one entry is itself."""
    return f"ffconcat version 1.0\nfile {name}\n".encode()


def _png(width: int, height: int) -> bytes:
    """A flat 16-bit RGBA PNG: a few hundred kB that decode to width x height x 8 bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = b"\0" * (1 + width * 8)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def png_frame_mov(side: int, at: int = 0, frames: int = 4) -> bytes:
    """A MOV of 64x64 PNG frames (so its header says 64x64) whose frame ``at`` is a side x side PNG."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mov") as out:
        v = out.add_stream("png", rate=12)
        v.width, v.height, v.pix_fmt = 64, 64, "rgb24"
        packets = []
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), "rgb24")
            frame.pts = i
            packets += v.encode(frame)
        packets += v.encode()
        for i, packet in enumerate(packets):
            if i == at:
                big = av.Packet(_png(side, side))
                big.pts, big.dts, big.time_base, big.is_keyframe = packet.pts, packet.dts, packet.time_base, True
                big.stream = v
                packet = big
            out.mux(packet)
    return buf.getvalue()


def huge_frame_stream(side: int, fmt: str = "vob", late_table: bool = False) -> bytes:
    """One side x side H.264 frame in an MPEG-PS (``vob``) or MPEG-TS (``mpegts``): readers whose streams FFmpeg
    finds only while probing, where no decoder option (the pixel cap) can reach the decoders its probe opens. A TS
    names its streams in its header unless its program table comes after the first 5 MB (FFmpeg's probe size):
    ``late_table`` puts that many null packets first."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = side, side, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((side, side, 3), np.uint8), "rgb24")
        for packet in [*v.encode(frame), *v.encode()]:
            out.mux(packet)
    null_packets = b"\x47\x1f\xff\x10" + b"\xff" * 184  # PID 0x1FFF: padding every reader skips
    return (null_packets * 30_000 if late_table else b"") + buf.getvalue()  # 5.6 MB


def _mp2_packets(out: Any, count: int, streams: int = 1, frames: int = 0) -> None:
    """``count`` packets of 8 kb/s MP2 noise (one encoded packet repeated) on each of ``streams`` audio streams
    of ``out``, after ``frames`` 64x48 H.264 frames at 12 fps."""
    import av

    first = out.add_stream("mp2", rate=16000, layout="mono")
    first.bit_rate = 8000
    sound = [first, *(out.add_stream_from_template(first) for _ in range(streams - 1))]
    video = None
    if frames:
        video = out.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
    noise = av.AudioFrame.from_ndarray((np.random.default_rng(2).integers(-3000, 3000, (1, 1152))).astype(np.int16),
                                       format="s16", layout="mono")
    noise.sample_rate, noise.pts = 16000, 0
    encoded = list(first.encode(noise)) + list(first.encode())
    payload = bytes(encoded[0])
    rng = np.random.default_rng(9)
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "rgb24")
        frame.pts = i
        out.mux(video.encode(frame))
    if video is not None:
        out.mux(video.encode())
    for k in range(count):
        for stream in sound:
            packet = av.Packet(payload)
            packet.pts = packet.dts = k * 1152
            packet.time_base, packet.stream = Fraction(1, 16000), stream
            out.mux(packet)


def many_audio_mkv(streams: int, frames: int = 5) -> bytes:
    """An MKV with ``frames`` 64x48 video frames and ``streams`` MP2 audio streams as long."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        _mp2_packets(out, round(frames / 12 * 16000 / 1152) + 1, streams=streams, frames=frames)
    return buf.getvalue()


def sound_tail(seconds: float, frames: int = 5, fmt: str = "mp4") -> bytes:
    """``frames`` video frames, then ``seconds`` of 8 kb/s MP2 noise: sound long after the last picture (in an MP4
    the video track's own duration is the frames', so the header passes a duration limit)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        _mp2_packets(out, round(seconds * 16000 / 1152), frames=frames)
    return buf.getvalue()


def raw_h264(frames: int) -> bytes:
    """An H.264 elementary stream: no container, so no frame count and no duration."""
    return clip_bytes(frames, fmt="h264")


def mkv_claiming(frames: int, seconds: float = 1.0) -> bytes:
    """A real MKV of ``frames`` frames at 12 fps whose segment header says it lasts ``seconds``."""
    import struct

    data = bytearray(clip_bytes(frames, fmt="matroska"))
    at = data.find(b"\x44\x89\x88")  # Duration, an 8-byte float in milliseconds
    data[at + 3:at + 11] = struct.pack(">d", seconds * 1000)
    return bytes(data)


def a1_server_files(raw: Raw, server: Server) -> list[Row]:
    rows = []
    fn = raw.fn_index("stylize")
    upload_dir = server.upload_dir
    targets: list[tuple[str, Any]] = []
    if server.secret:
        s = str(server.secret)
        targets += [("server image, no meta", {"path": s}),
                    ("server image, meta gradio.FileData", {"path": s, "meta": {"_type": "gradio.FileData"}}),
                    ("server image, meta of another type", {"path": s, "meta": {"_type": "gradio.ImageData"}}),
                    ("server image as a bare string", s)]
        if upload_dir:
            targets.append(("'..' out of the upload folder", {"path": f"{upload_dir}/../../{s.lstrip('/')}"}))
            link = upload_dir / "innocent.png"
            if link.is_symlink():
                targets.append(("symlink in the upload folder to a server image", {"path": str(link)}))
    targets += [("/dev/zero", {"path": "/dev/zero"}), ("/dev/urandom", {"path": "/dev/urandom"}),
                ("/proc/self/environ", {"path": "/proc/self/environ"}),
                ("a missing file", {"path": "/nonexistent/photo.png"})]
    if server.folder:
        targets.append(("a folder", {"path": str(server.folder)}))
    if upload_dir and (upload_dir / "fifo").exists():
        targets.append(("a FIFO in the upload folder", {"path": str(upload_dir / "fifo")}))
    for name, payload in targets:
        with peak_rss(server) as rss:
            t = time.monotonic()
            status, msg = raw.call(fn, stylize_data(payload))
            took = time.monotonic() - t
        text = error_text(msg)
        held = status != 200 or (text is not None and (REFUSED in text or "upload" in text.lower()))
        grew = (rss["peak"] or 0) - (rss["before"] or 0) if rss["before"] else None
        rows.append(Row("1", f"/stylize with {name}", "refused, same message for every path",
                        f"HTTP {status}: {text or 'converted'} ({took:.1f} s, RSS +{mib(grew)})", held,
                        {"message": text, "rss_growth": grew}))
    # The same files as one entry of a batch: refused when the batch joins (its validator reads the files), or
    # named in its notice, never read.
    batch_fn = raw.fn_index("stylize_batch")
    for name, payload in targets:
        status, msg = raw.call(batch_fn, batch_data([payload]))
        text = error_text(msg) if status == 200 else json.dumps(msg)[:160]
        held = status != 200 or (text is not None and (REFUSED in text or "upload" in text.lower()))
        rows.append(Row("1", f"/stylize_batch with {name}", "refused, nothing read", f"HTTP {status}: {text}", held))
    messages = {r.extra["message"] for r in rows if r.extra.get("message") and "bare string" not in r.attack}
    rows.append(Row("1", "path oracle: messages for file / folder / missing / device", "one message for all",
                    f"{len(messages)} distinct message(s)", len(messages) == 1))
    return rows


FILE_COMPONENTS = {"image", "imageslider", "file", "video", "audio", "gallery", "model3d", "uploadbutton"}


def a2_unqueued_decode(raw: Raw, server: Server, parallel: int = 16) -> list[Row]:
    """Every event outside the queue, called with 49 MP photos at once: none may decode a photo."""
    png = huge_flat_png()
    path = raw.upload(png, "big.png")
    unqueued = [d for d in raw.config()["dependencies"] if d.get("queue") is False]
    rows = []
    with peak_rss(server) as rss:
        def hit(dep: dict) -> int:
            data = [{"path": path, "meta": {"_type": "gradio.FileData"}}] * len(dep.get("inputs", []))
            r = httpx.post(f"{raw.url}gradio_api/run/predict", json={"data": data, "fn_index": dep["id"],
                           "session_hash": uuid.uuid4().hex}, timeout=60, cookies=raw.http.cookies)
            return r.status_code
        threads_out: list[int] = []
        ts = [threading.Thread(target=lambda d=d: threads_out.append(hit(d)))
              for d in unqueued for _ in range(max(1, parallel // max(1, len(unqueued))))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    grew = (rss["peak"] or 0) - (rss["before"] or 0) if rss["before"] else None
    kinds = {c["id"]: c.get("type") for c in raw.config()["components"]}
    photo_inputs = [d["api_name"] or str(d["id"]) for d in unqueued
                    if any(kinds.get(i) in FILE_COMPONENTS for i in d.get("inputs", []))
                    and d.get("api_name") not in ("load_example_input",)]
    rows.append(Row("2", f"{len(ts)} parallel unqueued calls with a 49 MP photo "
                    f"({', '.join(d['api_name'] or str(d['id']) for d in unqueued)})",
                    "no unqueued event takes a photo; RSS flat",
                    f"photo-taking unqueued events: {photo_inputs or 'none'}; RSS {mib(rss['before'])} -> peak "
                    f"{mib(rss['peak'])} (+{mib(grew)})", not photo_inputs and (grew is None or grew < 300 * MiB),
                    {"rss": rss}))
    return rows


def a3_decoders(raw: Raw, server: Server, timeout_s: float) -> list[Row]:
    fn = raw.fn_index("stylize")
    rows = []
    for name, data, fname in (("EPS with a 40 s PostScript loop", postscript_loop(), "loop.eps"),
                              ("progressive JPEG with 10,000 scans", many_scan_jpeg(), "scans.jpg"),
                              ("ICO whose header hides a 12000x12000 PNG", lying_ico(), "lie.ico")):
        path = raw.upload(data, fname)
        with peak_rss(server) as rss:
            t = time.monotonic()
            _status, msg = raw.call(fn, stylize_data({"path": path, "meta": {"_type": "gradio.FileData"}}))
            took = time.monotonic() - t
        text = error_text(msg)
        grew = (rss["peak"] or 0) - (rss["before"] or 0) if rss["before"] else None
        rows.append(Row("3", f"{name} ({len(data) / MiB:.2f} MB)", f"refused within {timeout_s:g} s, no decoder ran",
                        f"{text} ({took:.1f} s, RSS +{mib(grew)})",
                        text not in (None, "null") and took < timeout_s and (grew is None or grew < 200 * MiB)))
    return rows


def a4_bodies(raw: Raw, server: Server) -> list[Row]:
    fn = raw.fn_index("stylize")
    rows = []
    import base64

    data_url = "data:image/png;base64," + base64.b64encode(os.urandom(36 * MiB)).decode()
    status, _answer, _ = raw.join(fn, stylize_data({"path": None, "url": data_url}))
    rows.append(Row("4", "36 MiB data: URL inside the queue/join JSON", "413 before Gradio parses it",
                    f"HTTP {status}", status == 413))
    small_url = "data:image/jpeg;base64," + base64.b64encode(small_jpeg(32)).decode()
    status, msg = raw.call(fn, stylize_data({"path": None, "url": small_url}))
    rows.append(Row("4", "small data: URL as the photo", "refused with a message",
                    f"HTTP {status}: {error_text(msg) if status == 200 else msg}",
                    status == 400 or (status == 200 and error_text(msg) not in (None, "null"))))
    status, _answer, _ = raw.join(fn, stylize_data({"path": data_url[:60]}))
    rows.append(Row("4", "data: URL as the payload's path", "400 before Gradio parses it", f"HTTP {status}", status == 400))
    status, _answer, _ = raw.join(fn, stylize_data({"path": "https://example.com/big.jpg",
                                                   "meta": {"_type": "gradio.FileData"}}))
    rows.append(Row("4", "a URL as the path (Gradio would download it)", "400, nothing fetched", f"HTTP {status}",
                    status == 400))
    sizes = (200, 400)
    with peak_rss(server) as rss:
        statuses = [_send_declared_body(raw.url, n * MiB) for n in sizes for _ in range(3)]
    rows.append(Row("4", f"6 bodies declaring {'/'.join(map(str, sizes))} MiB", "413 at once, RSS flat",
                    f"HTTP {sorted(set(statuses))}, RSS {mib(rss['before'])} -> peak {mib(rss['peak'])}, "
                    f"after {mib(rss['after'])}",
                    set(statuses) == {413} and (rss["before"] is None or (rss["peak"] or 0) - rss["before"] < 100 * MiB)))
    with peak_rss(server) as rss:
        status = _send_chunked_body(raw.url, 64 * MiB)
    rows.append(Row("4", "64 MiB chunked body without a length", "413 after the limit, RSS flat",
                    f"HTTP {status}, RSS +{mib((rss['peak'] or 0) - (rss['before'] or 0) if rss['before'] else None)}",
                    status == 413))
    return rows


def _send_declared_body(url: str, size: int) -> int | None:
    """Send headers claiming ``size`` bytes and 1 MiB of them; the answer's status (None: no answer)."""
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(f"POST /gradio_api/queue/join HTTP/1.1\r\nHost: {u.hostname}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {size}\r\n\r\n".encode())
        try:
            s.sendall(b"{" + b" " * MiB)
        except OSError:
            pass
        return _status(s)


def _send_chunked_body(url: str, size: int) -> int | None:
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(f"POST /gradio_api/queue/join HTTP/1.1\r\nHost: {u.hostname}\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b" " * MiB
        try:
            for _ in range(size // MiB):
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except OSError:
            pass
        return _status(s)


def _status(s: socket.socket) -> int | None:
    try:
        head = s.recv(64).decode("latin-1")
        return int(head.split()[1])
    except (OSError, ValueError, IndexError):
        return None


def a5_partial_uploads(raw: Raw, server: Server, wait_s: float) -> list[Row]:
    if server.upload_dir is None:
        return [Row("5", "aborted uploads", "removed", "skipped: the server's upload folder is unknown", True)]
    u = urlparse(raw.url)
    before = {p.name for p in server.upload_dir.glob("tmp*")}
    for _ in range(5):
        with socket.create_connection((u.hostname, u.port), timeout=10) as s:
            boundary = "xyz"
            head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"p.jpg\"\r\n"
                    "Content-Type: image/jpeg\r\n\r\n").encode()
            s.sendall(f"POST /gradio_api/upload HTTP/1.1\r\nHost: {u.hostname}\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {2 * MiB}\r\n\r\n"
                      .encode() + head + os.urandom(MiB))
            time.sleep(0.3)
    time.sleep(1)
    left = [p for p in server.upload_dir.glob("tmp*") if p.name not in before]
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(p.exists() for p in left):
        time.sleep(1)
    remaining = [p for p in left if p.exists()]
    return [Row("5", "5 uploads cut off half-way", f"partial files removed within {wait_s:.0f} s",
                f"{len(left)} partial file(s) appeared, {len(remaining)} left", not remaining)]


def a6_metrics(raw: Raw, server: Server, requests: int = 40) -> list[Row]:
    r = raw.http.get("metrics")
    if r.status_code == 404:
        return [Row("6", "/metrics label cardinality", "labels from a closed set", "skipped: /metrics is off", True)]
    before = len(r.content)
    fn = raw.fn_index("stylize")
    path = raw.upload(small_jpeg(32), "s.jpg")
    for i in range(requests):
        raw.call(fn, stylize_data({"path": path, "meta": {"_type": "gradio.FileData"}}, style=f"{i:04d}" + "x" * 2044))
    after = len(raw.http.get("metrics").content)
    return [Row("6", f"{requests} requests with unique 2 KB style ids", "/metrics does not grow with them",
                f"{before / 1024:.1f} kB -> {after / 1024:.1f} kB", after < before + 4096)]


def a7_abandoned(raw: Raw, server: Server, jobs: int = 3) -> list[Row]:
    """Jobs joined by a client that never listens for the result: they must not all run to the end."""
    fn = raw.fn_index("stylize")
    photo = Image.fromarray(np.random.default_rng(3).integers(0, 255, (1400, 1400, 3), dtype=np.uint8))
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90)
    path = raw.upload(buf.getvalue(), "slow.jpg")
    before = _stats(raw)
    for _ in range(jobs):
        raw.join(fn, stylize_data({"path": path, "meta": {"_type": "gradio.FileData"}}, side=0))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = _stats(raw)
        if now["started"] - before["started"] >= 1 and now["running"] == 0 and (now.get("queued") or 0) == 0:
            break
        time.sleep(1)
    now = _stats(raw)
    done = now["succeeded"] - before["succeeded"]
    return [Row("7", f"{jobs} jobs joined, result stream never opened", "stopped, not run to the end",
                f"{now['started'] - before['started']} started, {done} ran to the end", done == 0)]


def _stats(raw: Raw) -> dict:
    r = raw.http.post("gradio_api/run/stats", json={"data": []})
    r.raise_for_status()
    return r.json()["data"][0]


def a8_messages(raw: Raw, server: Server) -> list[Row]:
    fn = raw.fn_index("stylize")
    path = raw.upload(small_jpeg(32), "s.jpg")
    photo = {"path": path, "meta": {"_type": "gradio.FileData"}}
    rows = []
    # /stylize's inputs around a max side that JSON cannot carry, written into the raw body by hand
    data = stylize_data(photo)
    head, tail = json.dumps(data[:2])[:-1] + ", ", ", " + json.dumps(data[3:])[1:]
    cases: list[tuple[str, bytes | None, list[Any] | None]] = [
        ("max side 10**400", _join_body(fn, head + "1" + "0" * 400 + tail), None),
        ("max side Infinity", _join_body(fn, head + "Infinity" + tail), None),
        ("max side NaN", _join_body(fn, head + "NaN" + tail), None),
        ("a missing argument", None, [photo, "hayao", 256]),
        ("a number as the photo", None, stylize_data(5, side=256)),
        ("a list as the photo", None, stylize_data([1, 2], side=256)),
    ]
    for name, body, data in cases:
        status, answer, session = raw.join(fn, data or [], body=body)
        msg = raw.listen(session, 60) if status == 200 else answer
        text = error_text(msg) if status == 200 else json.dumps(answer)[:120]
        rows.append(Row("8", name, "a message, never {\"error\": null}", f"HTTP {status}: {text}",
                        text not in (None, "null")))
    status, answer, _ = raw.join(987654, stylize_data(photo))
    rows.append(Row("8", "an unknown fn_index", "400 with a message, no 500", f"HTTP {status}: {answer}",
                    status == 400))
    # /stylize_batch (the named route curl users call): a batch far over --max-batch, and a photo where the list goes
    for name, data, expect in [("a batch of 200 photos", batch_data([photo] * 200), "at most"),
                               ("a photo where the batch's list goes", batch_data(photo), "takes a list of photo")]:
        status, answer = raw.call_route("stylize_batch", data)
        text = json.dumps(answer)[:160]
        rows.append(Row("8", f"/stylize_batch: {name}", "refused before any work, with a message",
                        f"HTTP {status}: {text}", status in (400, 422) and expect in text))
    return rows


def _join_body(fn: int, data_json: str) -> bytes:
    return ('{"data": ' + data_json + f', "fn_index": {fn}, "session_hash": "{uuid.uuid4().hex}"' + "}").encode()


def a9_auth(raw: Raw, server: Server, user: str, password: str) -> list[Row]:
    """Anonymous requests to every route Gradio leaves open, then the same with the login cookie."""
    anon = httpx.Client(base_url=raw.url, timeout=30)
    routes: list[tuple[str, str, dict | None]] = [
        ("POST", "gradio_api/mcp/", {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}),
        ("POST", "gradio_api/mcp/", {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        ("GET", "gradio_api/mcp/schema", None),
        ("GET", "metrics", None),
        ("GET", f"gradio_api/heartbeat/{uuid.uuid4().hex}", None),
        ("POST", "gradio_api/cancel", {"session_hash": "x", "fn_index": 0, "event_id": "y"}),
        ("POST", "gradio_api/reset", {"session_hash": "x", "fn_index": 0, "event_id": "y"}),
    ]
    rows = []
    for method, route, body in routes:
        r = anon.request(method, route, json=body, headers={"accept": "application/json, text/event-stream"})
        rows.append(Row("9", f"anonymous {method} /{route.split('/')[0] if route == 'metrics' else route}",
                        "401", f"HTTP {r.status_code}", r.status_code == 401))
    logged = httpx.Client(base_url=raw.url, timeout=30)
    r = logged.post("login", data={"username": user, "password": password})
    ok = logged.get("gradio_api/mcp/schema")
    rows.append(Row("9", "the same MCP schema with the login cookie", "200", f"login HTTP {r.status_code}, "
                    f"schema HTTP {ok.status_code}", ok.status_code == 200))
    return rows


# -- issue 22: MCP inputs and the webcam stream (items 10, 11 and the webcam points) -------------------------------
def _mcp_call(raw: Raw, tool: str, arguments: dict) -> dict | None:
    """One MCP tools/call over streamable HTTP, by hand; the JSON-RPC result (None: no MCP server)."""
    r = raw.http.post("gradio_api/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                                "params": {"name": tool, "arguments": arguments}},
                      headers={"accept": "application/json, text/event-stream"}, timeout=120)
    if r.status_code != 200:
        return None
    for line in r.text.splitlines():
        if line.startswith("data:"):
            return json.loads(line[5:]).get("result")
    return None


def a11_mcp_and_webcam(raw: Raw, server: Server) -> list[Row]:
    """A refused MCP input leaves no file; the webcam's refusals name it; streams beyond the limit never queue."""
    import base64
    import hashlib

    rows = []
    junk = os.urandom(4000)
    result = _mcp_call(raw, "stylize", {"image": "data:image/png;base64," + base64.b64encode(junk).decode(),
                                        "style": "hayao", "max_side": 0, "keep_brightness": False})
    if result is not None and server.upload_dir:
        digest = hashlib.sha256(junk).hexdigest()
        left = [p for p in server.upload_dir.parent.rglob("*")
                if p.is_file() and not p.is_symlink() and p.stat().st_size == len(junk)
                and hashlib.sha256(p.read_bytes()).hexdigest() == digest]
        rows.append(Row("10", "MCP stylize with 4 KB of noise as a base64 PNG", "refused, no copy left on disk",
                        f"error {result.get('isError')}, {len(left)} file(s) with its bytes left",
                        bool(result.get("isError")) and not left))
    fn = next((d["id"] for d in raw.config()["dependencies"] if d.get("api_name") == "mirror"), None)
    if fn is None:
        return rows
    status, msg = raw.call(fn, mirror_data(5), timeout=30)
    text = error_text(msg) or ""
    rows.append(Row("w", "webcam stream with a number as the frame", "a message naming the webcam",
                    f"HTTP {status}: {text[:90]}", "webcam" in text and "/stylize" not in text))
    frame = {"url": "data:image/jpeg;base64," + base64.b64encode(small_jpeg(64)).decode(),
             "meta": {"_type": "gradio.FileData"}}
    deadline = time.monotonic() + 10  # the stream above frees its slot a moment after its answer
    while (joined := raw.join(fn, mirror_data(frame)))[0] == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
    status, first, _ = joined
    extra = [raw.join(fn, mirror_data(frame))[:2] for _ in range(3)]
    queued = _stats(raw)["queued"]
    if status == 200:
        raw.http.post(f"gradio_api/stream/{first['event_id']}/close")
    rows.append(Row("w", "3 webcam streams beyond --webcam-streams 1", "refused at once, none waits in the queue",
                    f"HTTP {[s for s, _ in extra]}, {queued} waiting",
                    status == 200 and queued == 0 and all(s == 503 and "webcam" in str(a) for s, a in extra)))
    return rows


def _fds(server: Server) -> int | None:
    return None if server.pid is None else len(os.listdir(f"/proc/{server.pid}/fd"))


def _video_row(raw: Raw, server: Server, item: str, attack: str, data: bytes, name: str, limit_s: float,
               rss_mib: int = 100, bounded: Callable[[Path], str | None] | None = None,
               untouched: Path | None = None, by_limit: bool = False) -> Row:
    """Upload ``data`` as ``name``, convert it over raw HTTP: held when refused (or, with ``bounded``, converted to a
    result ``bounded`` finds nothing wrong with) within ``limit_s``, RSS growth under ``rss_mib``, open files back to
    where they were, and the server file ``untouched`` not read (its access time, set to 0 before, stays: Linux's
    relatime updates an access time older than the file's change). ``by_limit``: the refusal must come from a
    limit, not from ``--timeout`` stopping the work."""
    upload = raw.upload(data, name)
    if untouched is not None:
        os.utime(untouched, (0, untouched.stat().st_mtime))
    fds = _fds(server)
    with peak_rss(server) as rss:
        t = time.monotonic()
        _, msg = raw.call(raw.fn_index("stylize_video"),
                          video_data({"path": upload, "meta": {"_type": "gradio.FileData"}}, "hayao", 64),
                          timeout=limit_s + 30)
        took = time.monotonic() - t
    grew = (rss["peak"] or 0) - (rss["before"] or 0) if rss["before"] else None
    fds_after = _fds(server)
    if msg is None:
        outcome, ok = f"no answer in {limit_s + 30:g} s", False
    elif msg.get("success"):
        result = Path(msg["output"]["data"][0]["path"])
        problem = bounded(result) if bounded else "converted"
        outcome, ok = (problem or "converted, bounded"), problem is None
        outcome += f" ({result.stat().st_size / MiB:.1f} MB result)" if result.exists() else ""
    else:
        outcome = str(error_text(msg))
        ok = not (by_limit and "took too long" in outcome)
        outcome = outcome[:110]
    ok = ok and took < limit_s and (grew is None or grew < rss_mib * MiB) and (fds is None or fds_after <= fds + 2)
    if untouched is not None:
        read = untouched.stat().st_atime != 0
        outcome += "; the server clip was READ" if read else "; the server clip was not read"
        ok = ok and not read
    must = "converted, bounded" if bounded else "refused" + (" by a limit, not --timeout" if by_limit else "")
    return Row(item, f"{attack} ({len(data) / MiB:.2f} MB)", f"{must} in < {limit_s:g} s, RSS < +{rss_mib} MiB",
               f"{outcome} ({took:.1f} s, RSS +{mib(grew)}, fds {fds}->{fds_after})", ok)


def _sound_bounded(result: Path) -> str | None:
    import av

    with av.open(str(result)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(str(result)) as c:
        seconds = c.duration / 1e6 if c.duration else 0.0
    return None if frames == 5 and seconds < 2.0 else f"{frames} frames, {seconds:.0f} s long"


def a10_videos(raw: Raw, server: Server, timeout_s: float, unbounded: bool = True) -> list[Row]:
    """Issue 22's hostile videos. ``unbounded``: also the two that grow without end on an unfixed server (a
    self-naming HLS master playlist: RSS; a self-naming ffconcat list: file descriptors)."""
    secret = server.folder / "private.mp4" if server.folder else None
    if secret is not None and not secret.exists():
        secret.write_bytes(clip_bytes(12, (96, 64)))
    limit = timeout_s + 5
    rows = []
    if secret is not None:
        entries = {"absolute path": str(secret), "file: URL": f"file:{secret}",
                   "relative path": os.path.relpath(secret, Path(raw.upload(b"#", "where.txt")).parent)}
        for what, entry in entries.items():
            for name in ("x.m3u8", "x.m3u", "x.mp4"):
                rows.append(_video_row(raw, server, "1", f"HLS playlist {name} naming a server clip by {what}",
                                       hls_playlist([entry]), name, limit, untouched=secret))
    if unbounded:
        rows.append(_video_row(raw, server, "3", "HLS master playlist naming itself", hls_master_self("self.m3u8"),
                               "self.m3u8", limit))
        rows.append(_video_row(raw, server, "4", "ffconcat list naming itself", ffconcat_self("self.mp4"), "self.mp4",
                               limit))
    rows.append(_video_row(raw, server, "1", "DASH manifest naming a server clip",
                           f'<?xml version="1.0"?><MPD><Period><AdaptationSet><Representation><BaseURL>{secret}'
                           '</BaseURL></Representation></AdaptationSet></Period></MPD>'.encode(), "m.mpd", limit,
                           untouched=secret))
    rows.append(_video_row(raw, server, "1", "SDP file (RTP over UDP)",
                           b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nm=video 5004 RTP/AVP 96\n",
                           "a.sdp", limit))
    for at in (0, 2):
        rows.append(_video_row(raw, server, "5", f"MOV saying 64x64, frame {at + 1} a 13000x13000 16-bit PNG",
                               png_frame_mov(13000, at), f"lie{at}.mov", limit))
    rows.append(_video_row(raw, server, "6", "MKV with 990 audio streams", many_audio_mkv(990), "many.mkv", limit))
    rows.append(_video_row(raw, server, "8", "raw .h264 stream of 224 frames, --max-video-frames 6", raw_h264(224),
                           "s.h264", limit, by_limit=True))
    rows.append(_video_row(raw, server, "8", "MKV of 224 frames whose header says 0.4 s, --max-video-frames 6",
                           mkv_claiming(224, 0.4), "short.mkv", limit, by_limit=True))
    rows.append(_video_row(raw, server, "9", "MP4: 5 frames, then 5.2 h of 8 kb/s MP2", sound_tail(5.2 * 3600),
                           "tail.mp4", limit, bounded=_sound_bounded))
    # Last: on an unfixed server this one holds its worker for good.
    segment = raw.upload(clip_bytes(12), "segment.mp4")
    rows.append(_video_row(raw, server, "2", "live HLS playlist (no end, EXTINF:3600) of the user's own segment",
                           hls_playlist([segment], live=True), "live.m3u8", limit))
    return rows


# -- running it ------------------------------------------------------------------------------------------
def print_table(rows: Sequence[Row]) -> None:
    print("| # | attack | must | observed | held |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r.item} | {r.attack} | {r.expected} | {r.observed.replace('|', '/')} | {'yes' if r.held else 'NO'} |")
    print(f"\n{sum(r.held for r in rows)} of {len(rows)} held")


def run_all(raw: Raw, server: Server, timeout_s: float, sweep_wait_s: float,
            auth: tuple[str, str] | None = None, unbounded: bool = True, only: str | None = None) -> list[Row]:
    rows: list[Row] = []
    steps: list[Callable[[], list[Row]]] = [
        lambda: a1_server_files(raw, server), lambda: a2_unqueued_decode(raw, server),
        lambda: a3_decoders(raw, server, timeout_s), lambda: a4_bodies(raw, server),
        lambda: a5_partial_uploads(raw, server, sweep_wait_s), lambda: a6_metrics(raw, server),
        lambda: a7_abandoned(raw, server), lambda: a8_messages(raw, server),
        lambda: a11_mcp_and_webcam(raw, server),
        lambda: a10_videos(raw, server, timeout_s, unbounded)]  # last: an unfixed server's live playlist holds a worker
    if auth:
        steps.append(lambda: a9_auth(raw, server, *auth))
    if only == "videos":
        steps = [lambda: a10_videos(raw, server, timeout_s, unbounded)]
    for step in steps:
        try:
            got = step()
        except Exception as exc:  # noqa: BLE001 - a step that breaks is a row that did not hold, not the end
            got = [Row("?", f"step {step.__name__}", "completes", f"raised {type(exc).__name__}: {exc}", False)]
        for row in got:
            print(f"[{row.item}] {'held' if row.held else 'FAILED'}: {row.attack}: {row.observed}", flush=True)
        rows += got
    return rows


def plant(tmp: Path, upload_dir: Path) -> tuple[Path, Path]:
    """A 'secret' server image outside every allowed folder, a symlink to it and a FIFO inside the upload folder."""
    secret = tmp / "secret" / "private.png"
    secret.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(secret)
    upload_dir.mkdir(parents=True, exist_ok=True)
    link = upload_dir / "innocent.png"
    if not link.exists():
        link.symlink_to(secret)
    if not (upload_dir / "fifo").exists():
        os.mkfifo(upload_dir / "fifo")
    return secret, secret.parent


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", help="STYLE=PATH for the app this script starts")
    p.add_argument("--url", help="attack an app that is already running instead")
    p.add_argument("--secret", type=Path, help="with --url: an image on the server outside its upload folder")
    p.add_argument("--timeout", type=float, default=5.0, help="the app's --timeout (default 5)")
    p.add_argument("--only", choices=["videos"], help="run only the hostile videos (issue 22)")
    p.add_argument("--skip-unbounded", action="store_true",
                   help="leave out the videos that grow without end on an unfixed server (to replay an old commit)")
    a = p.parse_args(argv)
    if a.url:
        server = Server(a.url, secret=a.secret)
        rows = run_all(Raw(a.url), server, a.timeout, sweep_wait_s=0, unbounded=not a.skip_unbounded, only=a.only)
        print_table(rows)
        return 0 if all(r.held for r in rows) else 1
    if not a.weights:
        p.error("--weights STYLE=PATH (or --url)")
    style, _, path = a.weights.partition("=")
    weights = f"{style}={Path(path).resolve()}"
    user, password = "attack", uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="animegan-attack-") as t:
        tmp = Path(t)
        upload_dir = tmp / "uploads"
        secret, folder = plant(tmp, upload_dir)
        env = {"GRADIO_TEMP_DIR": str(upload_dir), "TMPDIR": str(tmp)}
        common = ["--weights", weights, "--offline", "--device", "cpu", "--timeout", str(a.timeout),
                  "--temp-max-age", "4", "--result-cache-size", "0", "--max-queue", "64", "--max-video-frames", "6"]
        with running_app([*common, "--metrics", "--mcp"], tmp / "open", env=env) as app:
            server = Server(app.url, app.proc.pid, upload_dir, secret, folder, app.log)
            rows = run_all(Raw(app.url), server, a.timeout, sweep_wait_s=15, unbounded=not a.skip_unbounded,
                           only=a.only)
            rows += sigterm_rows(app.proc, upload_dir, tmp)
        if a.only is None:
            with running_app([*common, "--metrics", "--mcp", "--auth", f"{user}:{password}"], tmp / "auth",
                             env={**env, "GRADIO_TEMP_DIR": str(tmp / "uploads-auth")}) as app:
                rows += a9_auth(Raw(app.url), Server(app.url, app.proc.pid), user, password)
    print_table(rows)
    return 0 if all(r.held for r in rows) else 1


def sigterm_rows(proc: Any, upload_dir: Path, tmp: Path) -> list[Row]:
    """SIGTERM the app: uploads and results must be gone from disk afterwards."""
    # Not uploads: the planted symlink, and Gradio's copies of the app's own example photos (kept on purpose).
    ours = {"innocent.png"} | {p.name for p in (app_process.REPO / "animegan" / "examples").glob("*")}
    files_before = [p for p in upload_dir.rglob("*") if p.is_file() and p.name not in ours]
    results = list(tmp.glob("animegan-results-*")) + list(tmp.glob("animegan-mcp-*"))  # + MCP inputs (issue 22)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except Exception:  # noqa: BLE001
        proc.kill()
    left = [p for p in upload_dir.rglob("*") if p.is_file() and p.name not in ours and p.exists()]
    results_left = [p for p in results if p.exists()]
    return [Row("5", f"SIGTERM with {len(files_before)} upload(s) and {len(results)} results or MCP folder(s) on disk",
                "all removed", f"{len(left)} upload(s) and {len(results_left)} results or MCP folder(s) left "
                f"{[p.name for p in left][:6]}, exit code {proc.returncode}", not left and not results_left)]


if __name__ == "__main__":
    sys.exit(main())
