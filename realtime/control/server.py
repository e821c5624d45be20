"""The local web panel and its HTTP API (Starlette on uvicorn, on its own thread).

Security (the token, Host and Origin checks) is :mod:`realtime.control.security`; uploads are capped and
stored under generated names (:mod:`realtime.control.gallery`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from realtime.clock import now_s, wall_s
from realtime.control.gallery import MAX_UPLOAD_BYTES
from realtime.control.live import LiveController, PreviewSlot, encode_jpeg
from realtime.control.recording import Recorder
from realtime.control.security import COOKIE, Guard, allowed_hosts, new_token
from realtime.errors import SwapcamError
from realtime.priority import as_helper
from realtime.stats import Stats

log = logging.getLogger(__name__)

DEFAULT_PORT = 8750
MULTIPART_SLACK = 64 * 1024  # multipart headers around a photo of the maximum size
PREVIEW_FPS = 15.0  # the page's default; ?fps= asks for up to 30
PREVIEW_WIDTH = 640
EVENTS_PER_S = 4.0
STATIC_FILES = {"panel.css": "text/css", "panel.js": "text/javascript", "index.html": "text/html"}


class ErrorLog(logging.Handler):
    """Keeps the last coded warnings and errors of the run (E21 frame failures, E22 signal loss...)."""

    def __init__(self, keep: int = 20) -> None:
        super().__init__(logging.WARNING)
        self.lines: deque[tuple[float, str]] = deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        """Keep a record's one-line message."""
        self.lines.append((record.created, record.getMessage().splitlines()[0]))

    def add(self, line: str) -> None:
        """Keep an error line a request produced."""
        self.lines.append((wall_s(), line))


@dataclass
class PanelContext:
    """What the panel reads and steers."""

    controller: LiveController
    preview: PreviewSlot
    stats: Stats
    recorder: Recorder | None
    source_name: str
    outputs: Callable[[], list[str]]
    errors: ErrorLog = field(default_factory=ErrorLog)
    stopping: threading.Event = field(default_factory=threading.Event)


def error_response(exc: SwapcamError, status: int = 400) -> JSONResponse:
    """The coded one-liner the CLI would print, as JSON."""
    return JSONResponse({"error": exc.message(), "code": exc.code}, status_code=status)


def status(ctx: PanelContext) -> dict[str, Any]:
    """Live figures and state (``GET /api/status`` and the event stream)."""
    recent = ctx.stats.recent()
    options = ctx.controller.options
    face = None
    if options.face is not None:
        try:
            entry = ctx.controller.gallery.get(options.face)
            face = {"id": entry.id, "name": entry.name}
        except SwapcamError:
            face = {"id": options.face, "name": "(deleted)"}
    lat = recent["latency_ms"]
    return {
        "fps": recent["fps"],
        "latency_ms": {key: lat[key] for key in ("p50", "p95", "p99")},
        "drops": recent["drops"],
        "frames": recent["frames"],
        "stages_ms": recent["stages_ms"],
        "errors": recent["errors"],
        "face": face,
        "swap": options.swap,
        "source": ctx.source_name,
        "outputs": ctx.outputs(),
        "recording": None if ctx.recorder is None else ctx.recorder.status(),
        "messages": [line for _, line in list(ctx.errors.lines)[-5:]],
    }


# ------------------------------------------------------------------ routes


def build_app(ctx: PanelContext, *, token: str, hosts: frozenset[str] | None) -> ASGIApp:
    """The panel's ASGI app, wrapped in :class:`Guard`."""

    async def page(request: Request) -> Response:
        if "token" in request.query_params:
            # Drop the token from the address bar once the cookie carries it.
            response: Response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
            return response
        return _static("index.html")

    async def static(request: Request) -> Response:
        return _static(request.path_params["name"])

    async def get_status(request: Request) -> Response:
        return JSONResponse(status(ctx))

    async def get_settings(request: Request) -> Response:
        return JSONResponse(ctx.controller.options.to_json())

    async def patch_settings(request: Request) -> Response:
        try:
            changes = json.loads(await _body(request, 64 * 1024))
        except (ValueError, _TooLarge):
            return JSONResponse({"error": "E01 invalid option value: the body is not a JSON object — "
                                          'send e.g. {"swap": false}', "code": "E01"}, status_code=400)
        return await _call(ctx, lambda: ctx.controller.change(changes).to_json())

    async def list_faces(request: Request) -> Response:
        live = ctx.controller.options.face
        return JSONResponse([{"id": f.id, "name": f.name, "live": f.id == live}
                             for f in ctx.controller.gallery.list()])

    async def add_face(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_UPLOAD_BYTES + MULTIPART_SLACK:
            return _too_large()
        try:
            body = await _body(request, MAX_UPLOAD_BYTES + MULTIPART_SLACK)
        except _TooLarge:
            return _too_large()
        data, name = body, request.headers.get("x-filename", "photo")
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await _replayed(request, body).form(max_files=1, max_fields=4)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                return JSONResponse({"error": "E03 face photo cannot be read: no multipart field 'file' — "
                                              "send the photo as the field 'file' or as the raw body",
                                     "code": "E03"}, status_code=400)
            data, name = await upload.read(), upload.filename or "photo"
        response = await _call(ctx, lambda: _added(ctx.controller.add_face(data, name)))
        if response.status_code == 200:
            response.status_code = 201
        return response

    async def delete_face(request: Request) -> Response:
        face_id = request.path_params["face_id"]
        def remove() -> dict[str, str]:
            ctx.controller.remove_face(face_id)
            return {"deleted": face_id}

        return await _call(ctx, remove)

    async def thumbnail(request: Request) -> Response:
        face_id = request.path_params["face_id"]
        try:
            data = await run_in_threadpool(as_helper, ctx.controller.gallery.thumbnail, face_id)
        except SwapcamError as exc:
            return error_response(exc, 404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    async def recording(request: Request) -> Response:
        recorder = ctx.recorder
        if recorder is None:
            return JSONResponse({"error": "recording is not available in this run"}, status_code=404)
        if request.method == "GET":
            return JSONResponse(recorder.status())
        try:
            body = json.loads(await _body(request, 64 * 1024) or b"{}")
            action = body.get("action")
        except (ValueError, AttributeError, _TooLarge):
            action = None
        if action == "start":
            return await _call(ctx, lambda: recorder.start(body.get("path")))
        if action == "stop":
            return await _call(ctx, recorder.stop)
        return JSONResponse({"error": 'E01 invalid option value: action — send {"action": "start"} or '
                                      '{"action": "stop"}', "code": "E01"}, status_code=400)

    async def preview(request: Request) -> Response:
        which = request.query_params.get("which", "output")
        try:
            width = min(1920, max(64, int(request.query_params.get("width", PREVIEW_WIDTH))))
        except ValueError:
            width = PREVIEW_WIDTH
        try:
            fps = min(30.0, max(1.0, float(request.query_params.get("fps", PREVIEW_FPS))))
        except ValueError:
            fps = PREVIEW_FPS
        return StreamingResponse(_mjpeg(ctx, which, width, fps), media_type="multipart/x-mixed-replace; boundary=frame",
                                 headers={"Cache-Control": "no-store"})

    async def events(request: Request) -> Response:
        return StreamingResponse(_events(ctx), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", page),
        Route("/static/{name}", static),
        Route("/api/status", get_status),
        Route("/api/settings", get_settings, methods=["GET"]),
        Route("/api/settings", patch_settings, methods=["PATCH"]),
        Route("/api/faces", list_faces, methods=["GET"]),
        Route("/api/faces", add_face, methods=["POST"]),
        Route("/api/faces/{face_id}", delete_face, methods=["DELETE"]),
        Route("/api/faces/{face_id}/thumb", thumbnail),
        Route("/api/recording", recording, methods=["GET", "POST"]),
        Route("/api/preview.mjpg", preview),
        Route("/api/events", events),
    ]
    return Guard(Starlette(routes=routes), token=token, hosts=hosts)


def _added(result: tuple[Any, bool]) -> dict[str, Any]:
    face, new = result
    return {"id": face.id, "name": face.name, "new": new}


def _static(name: str) -> Response:
    media = STATIC_FILES.get(name)
    if media is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    data = resources.files("realtime.control").joinpath("static", name).read_bytes()
    return Response(data, media_type=media, headers={"Cache-Control": "no-cache"})


def _too_large() -> Response:
    return JSONResponse({"error": f"E03 face photo cannot be read: upload over {MAX_UPLOAD_BYTES // 2**20} MB — "
                                  "use a smaller photo", "code": "E03"}, status_code=413)


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes however it is sent (chunked too)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _replayed(request: Request, body: bytes) -> Request:
    """A request whose body is ``body`` (already read and size-checked), for the form parser."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


async def _call(ctx: PanelContext, work: Callable[[], Any]) -> JSONResponse:
    """Run a (possibly slow) controller call off the event loop; a coded error becomes 400 (E24 404)."""
    try:
        result = await run_in_threadpool(as_helper, work)
    except SwapcamError as exc:
        ctx.errors.add(exc.message())
        return error_response(exc)
    return JSONResponse(result)


async def _mjpeg(ctx: PanelContext, which: str, width: int, fps: float) -> AsyncIterator[bytes]:
    slot = ctx.preview
    wants_input = which == "input"
    slot.streams += 1
    if wants_input:
        slot.input_watchers += 1
    last: object = None
    due = now_s()
    try:
        while not ctx.stopping.is_set():
            image = slot.input if wants_input else (slot.output.image if slot.output is not None else None)
            if image is None or image is last:
                await asyncio.sleep(0.005)  # no new frame yet: look again soon, not a whole interval later
                continue
            last = image
            due += 1.0 / fps
            jpeg = await run_in_threadpool(as_helper, encode_jpeg, image, width)
            yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(jpeg)).encode()
                   + b"\r\n\r\n" + jpeg + b"\r\n")
            due = max(due, now_s() - 1.0 / fps)  # after a stall, do not burst to catch up
            await asyncio.sleep(max(0.0, due - now_s()))
    finally:
        slot.streams -= 1
        if wants_input:
            slot.input_watchers -= 1


async def _events(ctx: PanelContext) -> AsyncIterator[bytes]:
    while not ctx.stopping.is_set():
        yield f"data: {json.dumps(status(ctx))}\n\n".encode()
        await asyncio.sleep(1.0 / EVENTS_PER_S)


# ------------------------------------------------------------------ the server thread


class PanelServer:
    """uvicorn serving the panel on its own named thread; ``start`` raises E25 if the port is taken."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.host = host
        self.token = new_token()
        self.ctx: PanelContext | None = None
        self._socket = _listen(host, port)
        self.port = int(self._socket.getsockname()[1])
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address to open (with the token)."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/?token={self.token}"

    def start(self, ctx: PanelContext, *, token: str | None = None, timeout: float = 10.0) -> None:
        """Serve ``ctx`` on a thread (with ``token``, else a random one); returns once it accepts connections."""
        import uvicorn

        self.ctx = ctx
        self.token = token or self.token
        app = build_app(ctx, token=self.token, hosts=allowed_hosts(self.host, self.port))
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=as_helper, args=(self._server.run,),
                                        kwargs={"sockets": [self._socket]}, name="swapcam-panel", daemon=True)
        self._thread.start()
        deadline = now_s() + timeout
        while not self._server.started and self._thread.is_alive() and now_s() < deadline:
            time.sleep(0.01)

    def stop(self, timeout: float = 3.0) -> None:
        """End the streams, stop the server and join its thread."""
        if self.ctx is not None:
            self.ctx.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.close()

    def close(self) -> None:
        """Close the listening socket."""
        self._socket.close()


def _listen(host: str, port: int) -> socket.socket:
    from realtime.errors import OutputError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise OutputError("E25", f"{host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock
