"""Is anyone still waiting for this conversion? Checked before a run, between tiles or frames, and before encoding.

Gradio marks a queued job dead when its result stream closes; a job joined by a client that never opened its result
stream, or whose stream closed, is also abandoned after ``CLIENT_GRACE_S``. The request guard counts open streams
(:class:`~animegan.request_guard.Listeners`). Without a request (a direct call), nothing is watched.
"""
from __future__ import annotations

import threading
import time

import gradio as gr

from .. import flags, gradio_internals
from ..request_guard import Listeners

# A queued job whose client has not listened for its result for this long was abandoned (env: tests use 1 s).
CLIENT_GRACE_S = flags.env_value("client_grace") or 5.0


class ClientGone(RuntimeError):
    """Nobody waits for this conversion any more (the page was closed, the API client went away)."""


class Stopped(ClientGone):
    """Its user pressed Stop (Gradio cancelled the job; the worker learns it at its next check)."""


class ClientWatch:
    """Raises :class:`ClientGone` at a check once nobody waits for the job ``request`` runs in."""

    def __init__(self, demo: gr.Blocks | None, listeners: Listeners, request: gr.Request | None) -> None:
        self.demo = demo
        self.listeners = listeners
        self.event = gradio_internals.queue_event(demo, request)

    def check(self) -> None:
        event = self.event
        if event is None:
            return
        if not gradio_internals.event_alive(event):
            raise ClientGone("its client disconnected")
        if self.listeners.listening(*gradio_internals.event_keys(event)):
            return
        waited = gradio_internals.event_waited(event)
        if waited > CLIENT_GRACE_S:
            raise ClientGone(f"no client has listened for its result for {waited:.0f} s")


class StopPresses:
    """When each page last pressed a Stop button, by session and button (``what``: "video", "batch"): the job of
    that page and button that joined the queue before the press is stopped at its next check. Why not Gradio's ``cancels``: a cancelled event's "Error" badge reaches
    the page after (or before) whatever clears it, in no fixed order; a job that ends by itself ends cleanly."""

    KEEP_S = 3600.0  # a press older than the longest run matters to nobody

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pressed: dict[tuple[str, str], float] = {}

    def press(self, session: str | None, what: str) -> None:
        if not session:
            return
        now = time.monotonic()
        with self._lock:
            self._pressed[(session, what)] = now
            if len(self._pressed) > 1024:  # forget old presses (pages long gone)
                self._pressed = {k: t for k, t in self._pressed.items() if now - t < self.KEEP_S}

    def since(self, session: str | None, what: str, joined: float) -> bool:
        """Whether ``session`` pressed the Stop of ``what`` after ``joined`` (a ``time.monotonic()``)."""
        with self._lock:
            pressed = self._pressed.get((session or "", what))
        return pressed is not None and pressed >= joined


class StopWatch(ClientWatch):
    """:class:`ClientWatch`, plus Stop: its page's Stop button (:class:`StopPresses`) or a client's cancel of the
    job (``/gradio_api/cancel``, which Gradio does by dropping it from the queue) raises :class:`Stopped`."""

    def __init__(self, demo: gr.Blocks | None, listeners: Listeners, request: gr.Request | None,
                 presses: StopPresses, what: str) -> None:
        super().__init__(demo, listeners, request)
        self.presses, self.what = presses, what
        self.session = getattr(request, "session_hash", None)
        self.joined = time.monotonic() - (gradio_internals.event_waited(self.event) if self.event is not None else 0.0)

    def stopped(self) -> bool:
        """Whether its Stop was pressed (or the job cancelled) since the job joined the queue."""
        return self.presses.since(self.session, self.what, self.joined) or (
            self.event is not None and gradio_internals.was_cancelled(self.demo, self.event))

    def check(self) -> None:
        # Stop first: a cancelled job's client also stops listening, which would read as a client that left.
        if self.stopped():
            raise Stopped("the conversion was stopped")
        super().check()
