"""Conversions on Ray Serve replicas (``--backend ray``): the same engine, scaled past one process and one machine.

Each replica is a process with its own :class:`~animegan.registry.Registry` (models load once per replica),
the same memory budget, tiling and result cache settings as the app, and a torch thread count that matches the
CPUs Ray gives it. The app keeps its UI, queue and messages and calls :class:`RayBackend` where it would call a
:class:`~animegan.engine.LocalConverter`: photos, webcam frames and clips all run on the replicas.

* A photo: its file bytes go, PNG bytes come back.
* A clip: its file bytes go and the replica runs the whole pipeline (decode, model, encode, sound); the MP4's
  bytes come back, with the progress of every frame streamed on the way. (Sending batches of decoded frames
  instead would move raw pixels both ways and keep decoding and encoding in the app: slower, see
  ``bench/ray_clip_bench.py``.)
  With a preview (:class:`~animegan.preview.EncodedSink`, e.g. the Video tab's
  :class:`~animegan.preview.SegmentWriter`) the replica runs a segment writer of its own, cut as the app's, and
  each finished segment's bytes come back on the same stream, a few small ones a second (bounded:
  :data:`MAX_SEGMENT_BYTES`, :data:`MAX_SEGMENTS`; what is over is left out of the preview, never waited for).
* A webcam frame: its pixels and the stream's :class:`~animegan.temporal.FrameSmoother` go, the styled pixels
  and the updated smoother come back (the stream's state travels with it: any replica can take the next frame).

A replica that dies mid-request costs at most that request: the call is retried once (Serve routes it to a live
replica) and Serve restarts the dead one.

Optional: needs ``ray[serve]`` (``pip install -r requirements-extras.txt``); the default app never imports it.
"""
from __future__ import annotations

import io
import logging
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Joining a cluster that authenticates with a token: send it when this machine has one. Ray 2.60 does not infer
# that from the token file alone (it retries with "InvalidAuthToken"), and reads RAY_AUTH_MODE once, at import.
# Only before Ray's own import: once it is imported, the variable no longer reaches its driver, but would still reach
# the GCS of a local Ray started here, which would then demand a token that its driver never sends.
if "ray" not in sys.modules and (os.environ.get("RAY_AUTH_TOKEN") or (Path.home() / ".ray" / "auth_token").is_file()):
    os.environ.setdefault("RAY_AUTH_MODE", "token")

try:
    import ray
    from ray import serve
    from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("--backend ray needs Ray Serve: pip install 'ray[serve]' "
                      "(or pip install -r requirements-extras.txt)") from exc

import numpy as np
import torch
from PIL import Image

from . import imaging, memory
from .engine import ConversionTimeout, Deadline, FrameProgress, LocalConverter, StylizeResult
from .options import RunOptions
from .registry import Registry
from .serving import ServeConfig, cpu_cores, open_result_cache
from .temporal import DEFAULT_MOMENTUM, FrameSmoother

if TYPE_CHECKING:  # PyAV loads only with the first clip
    from .preview import PreviewSink

log = logging.getLogger(__name__)

APP_NAME = "animegan"
DEPLOYMENT_NAME = "Stylizer"
REQUEST_TIMEOUT_S = 600.0
REPLY_GRACE_S = 5.0  # past the deadline, the replica's own "timed out" reply may take this long to arrive
PASSED_ENV = ("ANIMEGAN_", "HF_HUB_OFFLINE")  # environment the replicas need to resolve weights like the app
PROGRESS_EVERY_S = 0.25  # a clip's progress is streamed back at most this often (and at its last frame)
MAX_SEGMENT_BYTES = 4 << 20  # a preview segment larger than this stays on the replica (1 s of 1080p: ~0.4 MB)
MAX_SEGMENTS = 1800  # preview segments one clip sends at most (the default frame limit: one frame each, at worst)


class ReplicaLost(RuntimeError):
    """The replica running this conversion died twice in a row; the message says to try again."""


@serve.deployment(name=DEPLOYMENT_NAME, max_ongoing_requests=1, health_check_period_s=2, health_check_timeout_s=30)
class Stylizer:
    """One replica: its own registry and result cache; one conversion at a time on its share of the machine."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        if settings.get("threads"):
            torch.set_num_threads(settings["threads"])
        self.registry = Registry(weights_dir=settings["weights_dir"], weights=settings["weights"],
                                 offline=settings["offline"])
        self.cache = open_result_cache(settings.get("cache"), settings.get("cache_size", 0))
        self.converter = LocalConverter(self.registry, self.cache)
        self.conversions = 0
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        self._lock = threading.Lock()

    def stylize(self, photo: bytes, options: RunOptions, time_left: float | None = None) -> tuple[StylizeResult, dict]:
        # The deadline travels as seconds left: monotonic clocks of two machines are not comparable. The device
        # is the replica's own (the app may have none).
        result = self.converter(photo, self._options(options, time_left))
        if result.png is None:  # send PNG bytes, not raw pixels: smaller across machines
            result.png = imaging.encode_png(result.image)
        result.image = None  # type: ignore[assignment]  # the app decodes the PNG when it needs pixels
        result.stats.replica = self.replica_id
        with self._lock:
            self.conversions += 0 if result.stats.cached else 1
        return result, self.stats()

    def _options(self, options: RunOptions, time_left: float | None) -> RunOptions:
        """A request's options as this replica runs them: the deadline rebased, the device (and a cluster's fixed
        precision) its own."""
        options = options.rebased(time_left).replace(device=self.settings["device"])
        if self.settings.get("precision") not in (None, "auto"):
            options = options.replace(precision=self.settings["precision"])
        return options

    def frames(self, frames: list[np.ndarray], options: RunOptions, time_left: float | None,
               smoother: FrameSmoother | None) -> tuple[list[np.ndarray], FrameSmoother | None, dict]:
        """A batch of one stream's frames, in order, through this replica's converter (its frame plans kept);
        the stream's smoother comes back updated."""
        options = self._options(options, time_left)
        out = [self.converter.frame(rgb, options, smoother) for rgb in frames]
        with self._lock:
            self.conversions += len(frames)
        return out, smoother, self.stats()

    def clip(self, data: bytes, options: RunOptions, time_left: float | None, temporal: bool, limits: Any,
             momentum: float, preview: dict[str, Any] | None = None) -> Iterator[tuple]:
        """A whole clip: its bytes in, ("frame", done, expected) while it runs, then ("done", MP4 bytes, stats,
        replica stats). Runs in a thread of its own; a caller that stops listening (a closed stream, a
        cancelled request) stops it at the next frame.

        ``preview``: a :class:`~animegan.preview.SegmentWriter`'s settings. The replica then writes the preview's
        segments into a folder of the clip's temporary one (gone before "done" goes out, and on any failure) and sends
        each one as ("segment", index, start, duration, frames, MPEG-TS bytes), in order and before "done"."""
        options = self._options(options, time_left)
        events: queue.Queue = queue.Queue()
        stopped = threading.Event()
        last = [0.0]
        sent = [0, 0]  # preview segments sent, left out

        def on_frame(done: int, expected: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S or done >= expected:
                last[0] = now
                events.put(("frame", done, expected))

        def check() -> None:
            if stopped.is_set():
                raise ConversionTimeout("stopped: the app stopped waiting for this clip")

        def on_segment(segment: Any) -> None:  # in the writer's thread: the file's bytes go, the file goes
            size = segment.path.stat().st_size
            if size <= MAX_SEGMENT_BYTES and sent[0] < MAX_SEGMENTS:
                data = segment.path.read_bytes()
                sent[0] += 1
                events.put(("segment", segment.index, segment.start, segment.duration, segment.frames, data))
            else:
                sent[1] += 1
                log.debug("preview segment %d (%d bytes) left out: at most %d segments of %d bytes",
                          segment.index, size, MAX_SEGMENTS, MAX_SEGMENT_BYTES)
            segment.path.unlink(missing_ok=True)

        with tempfile.TemporaryDirectory(prefix="animegan-clip-") as folder:
            source, dest = Path(folder) / "in", Path(folder) / "out.mp4"
            source.write_bytes(data)
            del data
            writer = None
            if preview is not None:
                from .preview import SegmentWriter  # PyAV: loaded by the first clip

                writer = SegmentWriter(Path(folder) / "preview", on_segment=on_segment, **preview)

            def run() -> None:
                try:
                    stats = self.converter.clip(source, dest, options, temporal=temporal, limits=limits,
                                                on_frame=on_frame, check=check, momentum=momentum, preview=writer)
                    if writer is not None:
                        writer.close()  # its last segment goes out before the result
                    events.put(("done", stats))
                except BaseException as exc:  # noqa: BLE001 - handed to the request's thread, raised there
                    if writer is not None:
                        writer.abandon()
                    events.put(("error", exc))

            worker = threading.Thread(target=run, name="clip", daemon=True)
            worker.start()
            try:
                while True:
                    event = events.get()
                    if event[0] in ("frame", "segment"):
                        yield event
                    elif event[0] == "error":
                        raise event[1]
                    else:
                        stats = event[1]
                        with self._lock:
                            self.conversions += stats.frames
                        done = ("done", dest.read_bytes(), stats, self.stats())
                        break
            finally:
                stopped.set()
                worker.join()
                if writer is not None:  # its thread ends before the folder goes
                    writer.abandon()
                    if sent[1]:
                        log.info("the clip's preview left out %d segment(s) (%d sent)", sent[1], sent[0])
        yield done  # the clip's folder is gone by the time the app has the result

    def stats(self) -> dict[str, Any]:
        """Where this replica runs and what it holds: read by the app's /stats and the tests."""
        return {"replica": self.replica_id, "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                "device": str(memory.resolve_device(self.settings["device"])), "torch_threads": torch.get_num_threads(),
                "loaded": [f"{m.spec.id} ({m.key.device}, {m.key.precision})" for m in self.registry.loaded()],
                "rss": memory.process_rss(), "conversions": self.conversions}


def build_app(args: dict[str, Any]) -> Any:
    """Application builder for a Serve config file (``import_path: animegan.ray_backend:build_app``)."""
    return Stylizer.bind(args["settings"])


def replica_settings(config: ServeConfig, threads: int | None) -> dict[str, Any]:
    """What a replica needs to build its engine; each request's own settings travel as RunOptions."""
    return {"device": config.device, "precision": config.precision, "weights_dir": config.weights_dir,
            "weights": dict(config.weights),
            "offline": config.offline, "threads": threads, "cache": config.result_cache,
            "cache_size": config.result_cache_size}


class RayBackend:
    """Connects to (or starts) Ray, deploys ``config.replicas`` replicas, and converts through their handle."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.replicas_seen: dict[str, dict] = {}
        self._lock = threading.Lock()
        env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV)}
        if config.ray_address:
            ray.init(address=config.ray_address, runtime_env={"env_vars": env}, log_to_driver=False)
            cpus = config.torch_threads or 1
        else:  # a local Ray on this machine: split its cores between the replicas
            # address="local": always a new instance, never the cluster that RAY_ADDRESS or a `ray start` on this
            # machine (/tmp/ray/ray_current_cluster) points at, which a bare ray.init() would join
            ray.init(address="local", num_cpus=cpu_cores(), runtime_env={"env_vars": env}, include_dashboard=False,
                     log_to_driver=False)
            cpus = config.torch_threads or max(1, cpu_cores() // config.replicas)
            _stop_ray_on_sigterm()
        gpu = config.device_type == "cuda"
        options = {"num_cpus": 1 if gpu else cpus, "num_gpus": round(1 / config.replicas, 3) if gpu else 0}
        if config.ray_address:  # a cluster where `serve run serve.yaml` already deployed the app: use it as is
            try:
                self.handle = serve.get_app_handle(APP_NAME)
                log.info("Ray Serve: using the deployed application %r", APP_NAME)
                return
            except Exception as exc:  # noqa: BLE001 - Serve says "no such application" in several ways; deploy it below
                log.info("Ray Serve: no deployed application %r (%s): deploying it", APP_NAME, exc)
        serve.start(proxy_location="Disabled")
        app = Stylizer.options(num_replicas=config.replicas, ray_actor_options=options).bind(
            replica_settings(config, None if gpu else cpus))
        self.handle = serve.run(app, name=APP_NAME, route_prefix=None)
        log.info("Ray Serve: %d replica(s) of %s, %s each", config.replicas, DEPLOYMENT_NAME, options)

    def __call__(self, source: imaging.ImageSource, options: RunOptions, on_tile: Any = None,
                 progress: Any = None) -> StylizeResult:
        """A photo (the :class:`~animegan.engine.Converter` call). Progress callbacks, registry and cache belong to
        the replica; the deadline goes to the replica (which stops between tiles) and bounds the wait here too."""
        photo = source if isinstance(source, bytes) else Path(str(source)).read_bytes()
        result, info = self._remote("stylize", "photo", options, lambda portable, left: (photo, portable, left))
        self._seen(info)
        result.image = Image.open(io.BytesIO(result.png))  # decoded lazily, as for a cache hit
        return result

    def frame(self, rgb: np.ndarray, options: RunOptions, smoother: FrameSmoother | None = None) -> np.ndarray:
        """One webcam frame on a replica; the stream's smoother travels with it and is updated here from the
        replica's copy (so the next frame may go to any replica)."""
        out, state, info = self._remote("frames", "frame", options,
                                        lambda portable, left: ([rgb], portable, left, smoother))
        self._seen(info)
        if smoother is not None and state is not None:
            smoother.adopt(state)
        return out[0]

    def clip(self, source: str | os.PathLike, dest: str | os.PathLike, options: RunOptions, *,
             temporal: bool = True, limits: Any = None, on_frame: FrameProgress | None = None,
             check: Callable[[], None] | None = None, momentum: float = DEFAULT_MOMENTUM,
             preview: PreviewSink | None = None) -> Any:
        """A whole clip on a replica: the file's bytes go, the MP4's come back (written beside ``dest``, then
        renamed: nothing is left there unless the whole video arrived). ``on_frame`` follows the replica's frames;
        what ``check()`` raises stops the wait and the replica's run.

        ``preview``: the frames are finished on the replica, so only an :class:`~animegan.preview.EncodedSink` (a
        :class:`~animegan.preview.SegmentWriter`) previews: the replica encodes the segments as it would, and each
        one goes to ``preview.add_encoded`` as it arrives. A plain ``(rgb, seconds)`` callable is not called here
        (sending raw frames back would cost more than the preview is worth). If the replica dies and the clip runs
        again, the rerun's segments that start before the end of those shown are left out."""
        from .preview import EncodedSink  # PyAV: loaded by the first clip, not by photos

        data = Path(source).read_bytes()
        deadline = Deadline.of(options)
        sink = preview if isinstance(preview, EncodedSink) else None
        if preview is not None and sink is None:
            log.debug("--backend ray previews through a SegmentWriter (preview.EncodedSink) only; %r is not called",
                      preview)
        extra = {} if sink is None else {"preview": sink.settings()}  # an app without a preview asks as before
        for attempt in (1, 2):
            portable, left = options.portable()
            if left is not None and left <= 0:
                deadline.check("before a model server took the clip")
            stream = self.handle.options(stream=True).clip.remote(data, portable, left, temporal, limits, momentum,
                                                                  **extra)
            try:
                for event in stream:
                    if event[0] == "frame":
                        if on_frame is not None:
                            on_frame(event[1], event[2])
                        if check is not None:
                            check()
                        deadline.check(f"after {event[1]} of {event[2]} frames")
                    elif event[0] == "segment":
                        _, _, start, duration, frames, segment = event
                        try:
                            if sink is not None:
                                sink.add_encoded(segment, start, duration, frames)
                        except Exception as exc:  # noqa: BLE001 - the preview fails alone; the clip goes on
                            log.warning("the preview stopped: %s", exc)
                            sink = None
                    else:
                        _, mp4, stats, info = event
                        break
                else:
                    raise ReplicaLost("the model server ended the clip without a result; please try again")
                break
            except RayTaskError as exc:
                raise (exc.cause if isinstance(exc.cause, BaseException) else exc) from None
            except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
                if attempt == 2:
                    raise ReplicaLost("the model server restarted while converting this clip; please try again") from exc
                log.warning("replica lost mid-clip (%s); retrying once on another replica", type(exc).__name__)
            finally:
                stream.cancel()  # a stopped wait stops the replica's run too (a finished stream ignores it)
        self._seen(info)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.partial.mp4")
        try:
            tmp.write_bytes(mp4)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return stats

    def _remote(self, method: str, what: str, options: RunOptions,
                args: Callable[[RunOptions, float | None], tuple]) -> Any:
        """One request to a replica's ``method``, its deadline sent as seconds left and bounding the wait; retried
        once when the replica dies; the engine's own errors re-raised as they are."""
        deadline = Deadline.of(options)
        for attempt in (1, 2):
            portable, left = options.portable()
            if left is not None and left <= 0:
                deadline.check(f"before a model server took the {what}")
            try:
                return getattr(self.handle, method).remote(*args(portable, left)).result(
                    timeout_s=REQUEST_TIMEOUT_S if left is None else left + REPLY_GRACE_S)
            except (GetTimeoutError, TimeoutError):
                raise ConversionTimeout(f"stopped waiting for the model server: the limit is "
                                        f"{options.timeout_s or REQUEST_TIMEOUT_S:g} s per conversion") from None
            except RayTaskError as exc:  # the engine's own error (bad photo, missing weights): re-raise it as is
                raise (exc.cause if isinstance(exc.cause, BaseException) else exc) from None
            except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
                if attempt == 2:
                    raise ReplicaLost(f"the model server restarted while converting this {what}; "
                                      "please try again") from exc
                log.warning("replica lost mid-request (%s); retrying once on another replica", type(exc).__name__)
        raise AssertionError("unreachable")

    def _seen(self, info: dict) -> None:
        with self._lock:
            self.replicas_seen[info["replica"]] = info

    def replicas(self) -> list[dict]:
        """The last stats each replica reported (pid, device, loaded styles, RSS, conversions)."""
        with self._lock:
            return list(self.replicas_seen.values())


def _stop_ray_on_sigterm() -> None:
    """``kill``/``terminate`` of the app must also stop the local Ray it started (not leave raylets behind)."""
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: Any) -> None:
        # ray.shutdown() stops the raylet and GCS it started; the replicas exit with them. (serve.shutdown()
        # first would drain gracefully, but it can hang inside a signal handler.)
        ray.shutdown()
        if callable(previous):
            previous(signum, frame)
        os._exit(0)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
