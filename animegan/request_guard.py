"""An ASGI middleware in front of Gradio: what a request may be before Gradio parses it.

* **Body limits.** Gradio parses a JSON body whole and keeps each input's value in per-session state, so a
  request body is refused (413) past a limit: small for the JSON routes (photos never travel inline there),
  sized from the upload limit for the MCP route (its clients send images as base64) and for the webcam stream
  route (``/stream/EVENT``: the page sends each webcam frame there as a JPEG data URL), and the upload limit
  itself (plus multipart framing) for the upload route, whose files Gradio also bounds while streaming.
* **No server-side fetches.** A file payload whose ``path`` is a URL makes Gradio download it before our
  handler runs, unbounded; a ``data:`` path is inline data. Both are refused before Gradio sees them; so is a
  URL argument to an MCP tool.
* **Login everywhere.** With ``--auth``, Gradio leaves some routes open (MCP discovery, heartbeat, cancel,
  reset, our /metrics). Every API route then needs the login cookie, except the few the login page itself uses.
* **No waiting streams.** Gradio's queue has one ``max_size`` for the waiting events of every concurrency group,
  so webcam streams waiting for a slot took the places of photos and videos. A join for a limited event (the
  webcam stream) is refused (503, with a message that names it) when all its slots are in use; joins for it
  pass one at a time, so two cannot both take the last slot.
* **Who is listening.** Open result streams (``/queue/data`` per session, ``/call/NAME/EVENT`` per event) are
  counted, so a conversion can tell that its client has gone and stop (see ``ui``).

The middleware imports nothing from Gradio: it reads the login state Gradio keeps on its app object.
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

API = "/gradio_api"
JSON_BODY_LIMIT = 64 << 10        # bytes: the largest request the page or an API client sends is about 2 KB
MULTIPART_SLACK = 64 << 10        # boundaries and part headers around an uploaded file
PUBLIC_WITH_AUTH = ("/startup-events",)  # API routes the login page itself calls
LINK_REFUSED = "Upload the photo as a file: links and inline data are not accepted."


@dataclass(frozen=True)
class Limits:
    json: int                 # queue/join, run, call and every other non-upload route
    mcp: int                  # the MCP server: base64 images inline
    upload: int               # the upload route's whole multipart body
    stream: int = JSON_BODY_LIMIT  # a webcam frame sent to a streaming event (base64 inline)

    @classmethod
    def for_upload_size(cls, max_file_size: int) -> Limits:
        inline = -(-max_file_size * 4 // 3) + JSON_BODY_LIMIT  # a file of the upload limit, base64-encoded
        return cls(json=JSON_BODY_LIMIT, mcp=inline, upload=max_file_size + MULTIPART_SLACK, stream=inline)


@dataclass(frozen=True)
class Slots:
    """Events that run in a few slots and must never wait in the queue: ``fns`` (their fn_index values),
    ``in_use()`` (running or waiting now), ``limit`` and the refusal's text."""
    fns: frozenset[int]
    in_use: Callable[[], int]
    limit: int
    busy: str


class Listeners:
    """Result streams open right now, by session hash or event id: is anyone still waiting for a result?"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def opened(self, key: str) -> None:
        with self._lock:
            self._open[key] = self._open.get(key, 0) + 1

    def closed(self, key: str) -> None:
        with self._lock:
            left = self._open.get(key, 0) - 1
            if left > 0:
                self._open[key] = left
            else:
                self._open.pop(key, None)

    def listening(self, *keys: str) -> bool:
        with self._lock:
            return any(self._open.get(k) for k in keys if k)


class RequestGuard:
    """The middleware. ``limits`` from ``--max-file-size``; ``listeners`` shared with the UI; ``on_refusal`` counts."""

    def __init__(self, app: Callable, limits: Limits, listeners: Listeners | None = None,
                 on_refusal: Callable[[str], None] | None = None, known_fn: Callable[[int], bool] | None = None,
                 slots: Slots | None = None) -> None:
        self.app = app
        self.slots = slots
        self._slots_lock = asyncio.Lock()
        self.limits = limits
        self.known_fn = known_fn  # fn_index -> exists? (Gradio answers an unknown one with a bare 500)
        self.listeners = listeners or Listeners()
        self.on_refusal = on_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = _route(path)
        method = scope.get("method", "GET")
        if _needs_login(path, route) and not _logged_in(scope):
            await self._refuse(send, 401, "login_required", {"detail": "Not authenticated"})
            return
        if method == "GET":
            key = _stream_key(route, scope)
            if key is None:
                await self.app(scope, receive, send)
                return
            self.listeners.opened(key)
            try:
                await self.app(scope, receive, send)
            finally:
                self.listeners.closed(key)
            return
        if route == "/upload":
            await self._upload(scope, receive, send)
            return
        limit = self.limits.mcp if route.startswith("/mcp") else \
            self.limits.stream if route.startswith("/stream/") else self.limits.json
        body = await _read_body(scope, receive, limit)
        if body is None:
            await self._refuse(send, 413, "body_too_large",
                               {"detail": f"Request body over {limit} bytes. Upload photos through the upload route."})
            return
        problem = _inspect(body, route.startswith("/mcp"), self.known_fn) if body else None
        if problem:
            text = "No such endpoint: see the API page for the app's endpoints." if problem == "unknown_endpoint" \
                else LINK_REFUSED
            await self._refuse(send, 400, problem, {"detail": text})
            return
        if self.slots is not None and route == "/queue/join" and _fn_index(body) in self.slots.fns:
            async with self._slots_lock:  # the count sees every join admitted before this one
                if self.slots.in_use() >= self.slots.limit:
                    await self._refuse(send, 503, "stream_busy", {"detail": self.slots.busy})
                    return
                await self.app(scope, _replay(body, receive), send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _content_length(scope)
        if declared is not None and declared > self.limits.upload:
            await self._refuse(send, 413, "upload_too_large",
                               {"detail": f"File size exceeded maximum allowed size of "
                                          f"{self.limits.upload - MULTIPART_SLACK} bytes."})
            return
        await self.app(scope, receive, send)  # Gradio's parser bounds each file while it streams

    async def _refuse(self, send: Send, status: int, reason: str, payload: dict) -> None:
        if self.on_refusal is not None:
            self.on_refusal(reason)
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _route(path: str) -> str:
    """'/x/gradio_api/queue/join' -> '/queue/join'; paths outside the API come back as they are."""
    at = path.find(API + "/")
    return path[at + len(API):] if at >= 0 else path


def _needs_login(path: str, route: str) -> bool:
    if route == path:  # not an API route: only our /metrics (pages and assets are Gradio's to guard)
        return path.rstrip("/").endswith("/metrics")
    return not route.startswith(PUBLIC_WITH_AUTH)


def _logged_in(scope: Scope) -> bool:
    """Gradio's own rule (its /user route): no login configured, or a cookie holding a token it issued."""
    app = scope.get("app")
    auth, dependency = getattr(app, "auth", None), getattr(app, "auth_dependency", None)
    if auth is None and dependency is None:
        return True
    if dependency is not None:  # a custom auth function: Gradio checks it on the routes it guards
        return True
    cookie_id = getattr(app, "cookie_id", "")
    tokens = getattr(app, "tokens", {}) or {}
    jar = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:
                return False
    for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        morsel = jar.get(name)
        if morsel is not None and morsel.value in tokens:
            return True
    return False


def _stream_key(route: str, scope: Scope) -> str | None:
    if route.rstrip("/") == "/queue/data":
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash")
        return f"session:{values[0]}" if values else None
    parts = route.strip("/").split("/")
    if parts[0] == "call" and len(parts) >= 3:  # /call/NAME/EVENT or /call/v2/NAME/EVENT
        return f"event:{parts[-1]}"
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` (by its declared length or while it streams)."""
    declared = _content_length(scope)
    if declared is not None and declared > limit:
        return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # afterwards: the real channel (a disconnect, for streaming responses)
    return again


def _fn_index(body: bytes) -> int | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    fn = data.get("fn_index") if isinstance(data, dict) else None
    return fn if isinstance(fn, int) and not isinstance(fn, bool) else None


def _inspect(body: bytes, mcp: bool, known_fn: Callable[[int], bool] | None) -> str | None:
    """A reason to refuse the body: a file named by URL or carried inline, or an endpoint that does not exist."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: Gradio answers that itself
    if not mcp and known_fn is not None and isinstance(data, dict) and "fn_index" in data:
        fn = data["fn_index"]
        if fn is not None and (not isinstance(fn, int) or isinstance(fn, bool) or not known_fn(fn)):
            return "unknown_endpoint"
    found: list[str] = []

    def walk(node: Any, depth: int = 0) -> None:
        if found or depth > 64:
            return
        if isinstance(node, dict):
            path = node.get("path")
            if isinstance(path, str) and path.lower().startswith(("http://", "https://", "data:", "ftp://", "file:")):
                found.append("file_by_link")
                return
            for value in node.values():
                walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node:
                walk(value, depth + 1)
        elif mcp and isinstance(node, str) and node.lower().startswith(("http://", "https://")):
            found.append("mcp_link")

    try:
        walk(data.get("params", {}).get("arguments") if mcp and isinstance(data, dict) else data)
    except AttributeError:
        return None
    return found[0] if found else None
