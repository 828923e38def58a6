"""The places where the app reads or changes Gradio's internals, each with its reason. Checked against Gradio 6.31.

Gradio has no public API for any of these. ``requirements.txt`` allows any Gradio 6, so each function degrades
to "do nothing" (with one warning in the log) when the attribute it needs is gone, and the tests named below
fail on an upgrade that changes them:

* :func:`redirect_mcp_inputs`: where the MCP server writes base64 file arguments
  (``tests/test_temp_lifecycle.py::test_mcp_inputs_and_result_copies_expire_and_go_at_sigterm``).
* :func:`recorded_files`: every file Gradio recorded for a demo, which the app deletes at exit (same test).
* :func:`group_in_use`: how many events of one concurrency group run or wait
  (``tests/test_temp_lifecycle.py::test_waiting_webcam_streams_leave_the_photo_queue_alone``).
"""
from __future__ import annotations

import logging
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
