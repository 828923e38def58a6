"""The places where the app reads or changes Gradio's internals, each with its reason. Checked against Gradio 6.31.

Gradio has no public API for any of these. ``requirements.txt`` allows any Gradio 6, so each function degrades
to "do nothing" (with one warning in the log) when the attribute it needs is gone, and the tests named below
fail on an upgrade that changes them:

* :func:`redirect_mcp_inputs`: where the MCP server writes base64 file arguments
  (``tests/test_temp_lifecycle.py::test_mcp_inputs_and_result_copies_expire_and_go_at_sigterm``).
* :func:`recorded_files`: every file Gradio recorded for a demo, which the app deletes at exit (same test).
* :func:`group_in_use`: how many events of one concurrency group run or wait
  (``tests/test_temp_lifecycle.py::test_waiting_webcam_streams_leave_the_photo_queue_alone``).
* :func:`upload_folder`: where Gradio keeps uploads, the folder the upload gate allows (every test that uploads).
* :func:`waiting_count`: how many events wait in the queue (``/stats``: ``tests/test_app.py``).
* :func:`queue_event`, :func:`was_cancelled`, :func:`event_alive`, :func:`event_keys`, :func:`event_waited`: the
  queue's record of the job a request runs in, for the client watch and the Stop button
  (``tests/test_public_link.py::test_7_work_nobody_waits_for_stops``,
  ``tests/test_video_app.py::test_a_client_that_leaves_or_presses_stop_stops_the_work``,
  ``tests/test_video_browser.py::test_stop_ends_a_running_conversion``).
* :func:`event_indices`, :func:`has_event`: the demo's events by API name and by index, for the request guard
  (``tests/test_temp_lifecycle.py`` for the webcam slots, ``tests/test_gates.py``).
* :func:`answer_input_errors`, :func:`is_refused_path`: our messages for requests that Gradio refuses before a
  handler runs (``tests/test_public_link.py::test_8_every_failure_a_user_can_cause_has_a_message``, ``tests/test_temp_lifecycle.py``'s webcam
  refusals).
* :func:`after_example_loads`: the event that fills an example's inputs (``tests/test_app_ui.py``,
  ``tests/test_browser.py``).
* :func:`stream_segments`: the Video tab's preview plays the engine's own MPEG-TS segments through a streaming
  ``gr.Video`` (``tests/test_video_browser.py::test_the_result_plays_while_it_converts_and_the_whole_mp4_downloads``).
* :data:`WEBCAM_BUTTON_CSS`: the webcam mirror's start button, reached through Gradio's page markup
  (``tests/test_video_browser.py``).
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GRADIO_CHECKED = "6.31"  # the Gradio version these functions were written against (read in its sources)
_warned: set[str] = set()


def _missing(what: str) -> None:
    import gradio

    if what in _warned:
        return
    _warned.add(what)
    log.warning("Gradio %s has no %s (checked against %s): %s", gradio.__version__, what, GRADIO_CHECKED,
                "the app's handling of it is off")


def redirect_mcp_inputs(folder: str | Path) -> bool:
    """Make the MCP server write base64 file arguments into ``folder`` (a folder of this process's own).

    Gradio 6.31's MCP server saves each ``data:`` argument with ``processing_utils.save_base64_to_cache`` under
    ``gradio.mcp.DEFAULT_TEMP_DIR`` (``GRADIO_TEMP_DIR``, read when ``gradio.mcp`` is imported), records the file
    nowhere, then uploads that copy to the app through its own ``gradio_client``. The upload is tracked like any
    other; the copy never is: no ``delete_cache`` age reaches it and nothing removes it at exit. The constant is
    read at each call, so pointing it at our folder gives those copies our life cycle
    (:class:`animegan.temp_files.TempSweeper`, removal at exit and at the next start).
    """
    try:
        import gradio.mcp as gradio_mcp
    except ImportError:  # Gradio's MCP extra is not installed: no MCP server, nothing to redirect
        return False
    if not hasattr(gradio_mcp, "DEFAULT_TEMP_DIR"):
        _missing("gradio.mcp.DEFAULT_TEMP_DIR")
        return False
    gradio_mcp.DEFAULT_TEMP_DIR = str(folder)
    return True


def recorded_files(demo: Any) -> list[str]:
    """Every file Gradio recorded for ``demo``: uploads (``upload_file_set``) and its copies of results and inputs
    (each block's ``temp_files``, gathered in ``temp_file_sets``), except those it keeps on purpose
    (``keep_in_cache``: Gradio's copies of our example photos).

    Gradio deletes these itself at shutdown, at the end of its lifespan, which uvicorn reaches only once its
    connections have closed; Gradio waits 5 s for that (``http_server.Server.close``) before the process goes on
    to exit. After any MCP call it did not get there (most likely held by the MCP server's own loopback
    ``gradio_client``), and SIGTERM left every copy behind. The app deletes them at exit itself.
    """
    sets = getattr(demo, "temp_file_sets", None)
    if sets is None:
        _missing("Blocks.temp_file_sets")
        sets = [getattr(demo, "upload_file_set", set())]
    keep: set[str] = set()
    for block in list(getattr(demo, "blocks", {}).values()):
        keep.update(getattr(block, "keep_in_cache", ()) or ())
    return sorted({str(f) for files in list(sets) for f in list(files)} - keep)


def group_in_use(demo: Any, concurrency_id: str) -> int:
    """Events of one concurrency group that run or wait in ``demo``'s queue right now.

    Gradio 6.31 keeps one ``EventQueue`` per concurrency id (``Queue.event_queue_per_concurrency_id``): its
    ``queue`` holds the waiting events, ``current_concurrency`` counts the running ones. Both change together on
    the event loop (an event leaves ``queue`` as the count goes up), so their sum is exact there. Gradio's
    ``max_size`` counts the waiting events of every group together, which is why the app needs this count.
    """
    queue = getattr(demo, "_queue", None)
    groups = getattr(queue, "event_queue_per_concurrency_id", None)
    if groups is None:
        _missing("Queue.event_queue_per_concurrency_id")
        return 0
    group = groups.get(concurrency_id)
    if group is None:  # nobody has joined this group yet
        return 0
    return len(group.queue) + int(group.current_concurrency)


def upload_folder() -> str:
    """Where Gradio keeps uploads: ``GRADIO_TEMP_DIR``, read the way Gradio reads it.

    Gradio 6.31 reads it in ``gradio.utils.get_upload_folder`` (the environment variable, else
    ``<tempdir>/gradio``); calling that function keeps the two readings the same.
    """
    from gradio.utils import get_upload_folder

    return get_upload_folder()


def waiting_count(demo: Any) -> int | None:
    """Events waiting (not running) in ``demo``'s queue; None before ``demo.queue()``.

    Gradio 6.31 keeps its queue in ``Blocks._queue``; ``len()`` of it counts the waiting events of every group.
    """
    queue = getattr(demo, "_queue", None)
    return len(queue) if queue is not None else None


def _active_jobs(demo: Any) -> list[Any] | None:
    """``Queue.active_jobs`` in Gradio 6.31: one slot per worker, None or the list of events it runs."""
    queue = getattr(demo, "_queue", None)
    if queue is None:
        return None
    return list(getattr(queue, "active_jobs", []) or [])


def queue_event(demo: Any, request: Any) -> Any:
    """The queue's record of the job that ``request`` (a ``gr.Request``) runs in; None outside the queue.

    Gradio has no public way to go from a handler to its job. In 6.31 ``gr.Request.request`` is the HTTP request
    the job was joined with, and each ``queueing.Event`` among ``Queue.active_jobs`` keeps that same object in
    ``Event.request``: the one whose request is ours is our job.
    """
    raw = getattr(request, "request", None) if request is not None else None
    jobs = _active_jobs(demo)
    if raw is None or jobs is None:
        return None
    for job in jobs:
        for event in job or []:
            if getattr(event, "request", None) is raw:
                return event
    return None


def was_cancelled(demo: Any, event: Any) -> bool:
    """Whether ``event``'s job was cancelled (the page's Stop button, or ``/gradio_api/cancel``).

    Gradio 6.31 cancels a running job by removing it from ``Queue.active_jobs`` and cancelling its asyncio task;
    the worker thread of a synchronous handler runs on, so the handler learns it only by looking there.
    """
    jobs = _active_jobs(demo)
    if event is None or jobs is None:
        return False
    return not any(job is not None and event in job for job in jobs)


def event_alive(event: Any) -> bool:
    """Whether the client still reads the job's result stream (6.31: ``Event.alive``, cleared when it closes)."""
    return bool(getattr(event, "alive", True))


def event_keys(event: Any) -> tuple[str, str]:
    """The keys under which the request guard counts the job's open result streams: its session
    (``Event.session_hash``) and its own id (``Event._id``, which 6.31 sends to the client as ``event_id``)."""
    return f"session:{event.session_hash}", f"event:{event._id}"


def event_waited(event: Any) -> float:
    """Seconds since the job joined the queue (6.31: ``Event.enqueue_time``, from ``time.monotonic``)."""
    import time

    return time.monotonic() - event.enqueue_time


def event_indices(demo: Any, api_name: str) -> frozenset[int]:
    """The indices (``fn_index`` in a request) of ``demo``'s events named ``api_name``.

    Gradio 6.31 keeps the events in ``Blocks.fns``, a dict from index to ``BlockFunction`` (``.api_name``).
    """
    fns = getattr(demo, "fns", None)
    if fns is None:
        _missing("Blocks.fns")
        return frozenset()
    return frozenset(i for i, fn in fns.items() if fn.api_name == api_name)


def has_event(demo: Any, fn_index: Any) -> bool:
    """Whether ``fn_index`` names one of ``demo``'s events (``Blocks.fns`` in 6.31, see :func:`event_indices`)."""
    return fn_index in getattr(demo, "fns", {})


def answer_input_errors(demo: Any, answer: Callable[[str | None, str, Exception], Exception]) -> bool:
    """Let ``answer(api_name, name, exc)`` say what a request that Gradio cannot parse gets.

    Such a request (a missing argument, a number where a file goes, a path outside Gradio's allowed folders)
    fails in ``Blocks.preprocess_data`` (6.31: ``async (block_fn, inputs, state, explicit_call)``), before any
    handler runs, and Gradio answers ``{"error": null}`` (``show_error=False`` hides its own text, which may name
    server paths). Gradio offers no hook there, so the method is wrapped on this demo; ``gr.Error`` passes as it is.
    An event's validator runs the same preprocessing when the request joins the queue (6.31:
    ``queueing.create_validator_fn``), as a function with no API name and the validator's own ``__name__``, so
    ``answer`` gets that name (``tests/test_batch.py::test_hostile_bodies_get_readable_answers``).
    """
    import gradio as gr

    original: Callable[..., Awaitable[Any]] | None = getattr(demo, "preprocess_data", None)
    if original is None:
        _missing("Blocks.preprocess_data")
        return False

    async def preprocess_data(block_fn: Any, inputs: list[Any], state: Any, explicit_call: bool = False) -> Any:
        try:
            return await original(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001 - anything Gradio raised about the request's inputs
            raise answer(getattr(block_fn, "api_name", None), getattr(block_fn, "name", ""), exc) from None

    demo.preprocess_data = preprocess_data
    return True


def is_refused_path(exc: BaseException) -> bool:
    """Whether Gradio's own file check refused a path in the request (6.31: ``gradio.exceptions.InvalidPathError``,
    raised while it moves a file argument into its cache)."""
    from gradio.exceptions import InvalidPathError

    return isinstance(exc, InvalidPathError)


def stream_segments(video: Any, read: Callable[[Any], tuple[bytes, float] | None]) -> bool:
    """Make the streaming output ``video`` (a ``gr.Video(streaming=True)``) play MPEG-TS segments as they are.

    What its event yields is handed to ``read`` (in a worker thread), which answers (the segment's bytes, how long
    it plays) or None (nothing to add). Gradio 6.31's ``Video.stream_output`` takes a file per chunk and runs the
    ``ffprobe`` and ``ffmpeg`` programs on each (its length, its sound re-encoded, a remux); this app neither needs
    nor installs them (PyAV's wheels carry FFmpeg as libraries), and its segments are already what the page's
    hls.js plays (H.264 in MPEG-TS, timestamps running on). So the instance's four ``StreamingOutput`` methods are
    replaced: each chunk goes into Gradio's playlist as it is, nothing is held back at the end, and the whole
    stream is not offered as one file (``playlist-file``; the finished MP4 is the download). Instance attributes,
    not a subclass: Gradio writes a ``.pyi`` stub beside the source file of every ``Component`` subclass.

    Gradio keeps every run's segments in memory (``Blocks.pending_streams[session][run]``) until the page's session
    ends; when a run's first segment goes out, the same page's earlier, ended runs of this output are dropped, so
    one page holds one run's preview (a page converting clip after clip does not grow the server's memory).
    (``tests/test_video_browser.py::test_the_result_plays_while_it_converts_and_the_whole_mp4_downloads``.)
    """
    import anyio
    import gradio as gr

    names = ("stream_output", "flush_stream_output", "end_stream_output", "combine_stream")
    if not getattr(video, "streaming", False) or not all(callable(getattr(video, n, None)) for n in names):
        _missing("streaming gr.Video with StreamingOutput's methods")
        return False

    async def stream_output(value: Any, output_id: str, first_chunk: bool) -> tuple[dict | None, dict]:
        playlist = {"path": output_id, "is_stream": True, "orig_name": "preview.ts", "meta": {"_type": "gradio.FileData"}}
        if first_chunk:
            _forget_earlier_runs(output_id, video._id)
        chunk = await anyio.to_thread.run_sync(read, value)
        if chunk is None:
            return None, playlist
        data, seconds = chunk
        return {"data": data, "duration": seconds, "extension": ".ts"}, playlist

    async def flush_stream_output(output_id: str) -> None:
        return None

    def end_stream_output(output_id: str) -> None:
        return None

    async def combine_stream(stream: list[bytes], desired_output_format: str | None = None,
                             only_file: bool = False) -> Any:
        raise gr.Error("The preview is not a download; the finished MP4 is, once the conversion ends.",
                       title="Preview", print_exception=False)

    video.stream_output, video.flush_stream_output = stream_output, flush_stream_output
    video.end_stream_output, video.combine_stream = end_stream_output, combine_stream
    return True


def _forget_earlier_runs(output_id: str, block_id: int) -> None:
    """Drop the ended runs of one page's streaming output ``block_id`` (Gradio 6.31: ``pending_streams``, keyed by
    session and run; ``output_id`` is ``session/run/block/playlist.m3u8``; the event's Blocks in ``LocalContext``)."""
    from gradio.context import LocalContext

    pending = getattr(LocalContext.blocks.get(None), "pending_streams", None)
    session, _, rest = output_id.partition("/")
    if not isinstance(pending, dict):
        _missing("Blocks.pending_streams")
        return
    runs = pending.get(session)
    if not isinstance(runs, dict):  # the page's first stream
        return
    current = rest.partition("/")[0]
    for run in [r for r, streams in runs.items()
                if r != current and block_id in streams and all(getattr(s, "ended", False) for s in streams.values())]:
        del runs[run]


def after_example_loads(examples: Any) -> Any:
    """The event that fills the inputs when an example is clicked, to chain the conversion after it with ``.then``.

    ``gr.Examples`` documents no such event; Gradio 6.31 keeps it in ``Examples.load_input_event`` (set in
    ``helpers.py`` whether or not examples are cached).
    """
    return examples.load_input_event


# The webcam mirror records nothing, so its start button says what it does. Gradio 6.31's Image webcam has no
# option to rename "Record": the rule reaches the button through the page markup of that version (the
# ``capture-button`` wrapper and the icon's ``title="start recording"``).
WEBCAM_BUTTON_CSS = """\
#webcam .capture-button .icon-with-text:has([title="start recording"]) {font-size: 0}
#webcam .capture-button .icon-with-text:has([title="start recording"])::after {
  content: "Start the mirror"; font-size: var(--text-md);
}
"""
