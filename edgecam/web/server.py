"""The preview HTTP server: aiohttp on one event loop in one thread.

An idle connection is a socket the loop watches, not a thread: 200 of them cost memory
only, and `/api/status` keeps answering. Connections without a request in progress are
closed after `idle_timeout` s and, beyond `max_idle`, least recently active first, so they
cannot run the process out of file descriptors. (Done here rather than by aiohttp's
keep-alive timer, which older aiohttp releases never start for a connection that sends
nothing.)

`/stream.mjpg` is a StreamResponse holding one of `hub.max_viewers` slots. A viewer still
taking an earlier frame skips the new one, so a write never waits; one that takes no whole
frame within `send_timeout` s is dropped. The JPEGs come from the hub, which encodes each
frame once on the pipeline's sink thread and wakes the loop; a snapshot that needs an encode
runs it on a worker thread, so the loop only ever moves bytes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import ipaddress
import json
import logging
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Awaitable, Callable, Dict, Optional, Set, Tuple

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ..errors import EdgecamError
from .hub import JpegHub
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import Metrics

log = logging.getLogger("edgecam.web")

PAGE = Path(__file__).with_name("index.html")
BOUNDARY = "edgecam-frame"
SERVER = f"edgecam Python/{sys.version.split()[0]}"
# Worker threads for the blocking part of a short request: a snapshot's JPEG encode (the
# hub encodes one frame at a time anyway).
SHORT_WORKERS = 1
# A stream with no new frame for this long (source ended or paused) gets the last one
# again: that is how a viewer that went away is noticed.
KEEPALIVE = 5.0
# A small send buffer: a stalled viewer is noticed after about a second of frames, and pins
# little memory (a few viewers on a 512 MB Pi).
STREAM_SNDBUF = 256 * 1024
# Requests still running when the server stops get this long before they are cancelled.
SHUTDOWN_GRACE = 1.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_listen(value: str, key: str = "service.web") -> Tuple[str, int]:
    """`HOST:PORT`, `[v6]:PORT`, `:PORT` or `PORT` -> (host, port); no host means 127.0.0.1."""
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or int(port) > 65535:
        raise EdgecamError(f"config {key} = {value!r}: use HOST:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080")
    return host or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    """True when `host` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_middleware(token: str):
    """Middleware answering 401 unless the request carries `token` (Authorization: Bearer
    or ?token=), compared in constant time."""
    expected = token.encode()

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        else:
            given = request.query.get("token", "")
        if not hmac.compare_digest(given.encode(), expected):
            return text_response(401, "token required: Authorization: Bearer TOKEN or ?token=TOKEN\n",
                                 {"WWW-Authenticate": 'Bearer realm="edgecam"'})
        return await handler(request)

    return require_token


def text_response(status: int, text: str, headers: Optional[Dict[str, str]] = None) -> web.Response:
    """A plain-text response (errors and refusals)."""
    return web.Response(status=status, body=text.encode(),
                        headers={"Content-Type": "text/plain; charset=utf-8", **(headers or {})})


async def _common_headers(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER
    response.headers.setdefault("Cache-Control", "no-store")


class _AccessLog(AbstractAccessLogger):
    """One debug line per request (path only: the query may hold the token)."""

    def log(self, request, response, time):  # noqa: A002 - aiohttp's signature
        self.logger.debug("preview %s: %s %s %s", request.remote, request.method, request.path,
                          response.status)


class _Idle:
    """When each connection was last active, and which are serving a request now.

    Keyed by asyncio transport, which both a request and aiohttp's per-connection handler
    show; the list of live connections is aiohttp's own (`web.Server.connections`).
    """

    def __init__(self, limit: int, timeout: float):
        self.limit, self.timeout = limit, timeout
        self._active: Dict[asyncio.BaseTransport, float] = {}
        self._busy: Set[asyncio.BaseTransport] = set()

    def start(self, transport: asyncio.BaseTransport) -> None:
        """A request began on `transport`."""
        self._busy.add(transport)

    def end(self, transport: asyncio.BaseTransport, now: float) -> None:
        """The request on `transport` ended; the connection is idle from `now`."""
        self._busy.discard(transport)
        self._active[transport] = now

    def enforce(self, connections, now: float, room: int = 0) -> None:
        """Close the idle `connections` (aiohttp handlers) older than `timeout`, and the
        least recently active beyond `limit - room`."""
        idle = []
        for handler in connections:
            transport = handler.transport
            if transport is not None and transport not in self._busy:
                idle.append((self._active.setdefault(transport, now), handler))
        # Forget the closed ones (and the busy ones: their request's end sets them again).
        live = {handler.transport for _, handler in idle}
        self._active = {t: since for t, since in self._active.items() if t in live}
        idle.sort(key=lambda pair: pair[0])
        excess = len(idle) - max(0, self.limit - room)
        for i, (since, handler) in enumerate(idle):
            if i < excess or now - since >= self.timeout:
                handler.force_close()


class PreviewServer:
    """Serves the preview endpoints from `hub`, `metrics` and `status()` (see module doc)."""

    def __init__(self, address: Tuple[str, int], hub: JpegHub, metrics: Metrics,
                 status: Callable[[], dict], token: Optional[str] = None, *,
                 max_idle: int = 256, idle_timeout: float = 10.0, send_timeout: float = 5.0):
        host, port = address
        if not is_loopback(host) and not token:
            raise EdgecamError(f"the preview server on {host}:{port} is reachable from other machines: "
                               "set a token ([service] web_token or env EDGECAM_WEB_TOKEN), "
                               "or bind it to 127.0.0.1")
        self.hub, self.metrics, self.status, self.token = hub, metrics, status, token
        self.send_timeout = send_timeout
        self.page = PAGE.read_bytes()
        self._idle = _Idle(max_idle, idle_timeout)
        self._sock = _listen(host, port)
        self.server_address = self._sock.getsockname()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopping: Optional[asyncio.Event] = None
        self._new_jpeg: Optional[asyncio.Event] = None
        self._runner: Optional[web.AppRunner] = None
        self._ready = threading.Event()
        self._failed: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        hub.add_listener(self._wake_threadsafe)

    @property
    def url(self) -> str:
        """http://host:port/ of the bound socket (the real port when 0 was asked)."""
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> "PreviewServer":
        """Start the event loop thread and wait until it accepts; returns self."""
        self._thread = threading.Thread(target=self._run, name="edgecam-web", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failed is not None:
            raise EdgecamError(f"the preview server did not start: {self._failed}")
        log.info("preview on %s", self.url)
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """End the streams, stop accepting, give requests in progress a moment, end the thread."""
        self.hub.close()
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop has already ended
                pass
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("preview server still busy after %.0f s; leaving it behind", timeout)
        self._sock.close()

    # -- the loop thread ---------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(
            SHORT_WORKERS, thread_name_prefix="edgecam-web-encode"))
        try:
            loop.run_until_complete(self._serve(loop))
        except BaseException as exc:  # noqa: B036 - reported to start(), or logged
            if not self._ready.is_set():
                self._failed = exc
            else:
                log.error("preview server failed: %s", exc)
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stopping, self._new_jpeg = asyncio.Event(), asyncio.Event()
        self._loop = loop
        app = web.Application(middlewares=[self._track_activity]
                              + ([token_middleware(self.token)] if self.token else []))
        app.on_response_prepare.append(_common_headers)
        for path, endpoint in (("/", self._page), ("/index.html", self._page),
                               ("/stream.mjpg", self._stream), ("/snapshot.jpg", self._snapshot),
                               ("/api/status", self._status), ("/metrics", self._metrics)):
            app.router.add_get(path, endpoint, allow_head=False)  # GET only, as before
        self._runner = web.AppRunner(app, handle_signals=False, access_log=log,
                                     access_log_class=_AccessLog, shutdown_timeout=SHUTDOWN_GRACE)
        await self._runner.setup()
        listener = await loop.create_server(self._accept, sock=self._sock, backlog=128)
        sweeper = loop.create_task(self._sweep())
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            sweeper.cancel()
            listener.close()
            await self._runner.cleanup()

    def _accept(self) -> asyncio.Protocol:
        # asyncio's protocol factory, called once per accepted connection: make room first
        # (the full pass only near the limit, so 200 idle connections cost a request nothing).
        server = self._runner.server
        connections = server.connections
        if len(connections) >= self._idle.limit:
            self._idle.enforce(connections, time.monotonic(), room=1)
        return server()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(0.5, self._idle.timeout / 4))
            self._idle.enforce(self._runner.server.connections, time.monotonic())

    @web.middleware
    async def _track_activity(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        self._idle.start(transport)
        try:
            return await handler(request)
        finally:
            self._idle.end(transport, time.monotonic())

    def _wake_threadsafe(self) -> None:
        # Called by the hub from the thread that encoded (or closed): hand over to the loop.
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # closed in between
            pass

    def _wake(self) -> None:
        # Wakes every stream waiting on the current event; later waits take a fresh one. A
        # stream takes the event in the same step as it finds no newer JPEG, so no wake-up
        # falls between the two (asyncio.wait_for starts the wait a step later before 3.12).
        self._new_jpeg.set()
        self._new_jpeg = asyncio.Event()

    # -- endpoints ---------------------------------------------------------------------------
    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.page, headers={"Content-Type": "text/html; charset=utf-8"})

    async def _status(self, _request: web.Request) -> web.Response:
        body = json.dumps(self.status(), separators=(",", ":")).encode()
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": METRICS_TYPE})

    async def _snapshot(self, _request: web.Request) -> web.Response:
        jpeg = await asyncio.get_running_loop().run_in_executor(None, self.hub.snapshot)
        if jpeg is None:
            return text_response(503, "no frame yet\n", {"Retry-After": "1"})
        return web.Response(body=jpeg, headers={"Content-Type": "image/jpeg"})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        hub = self.hub
        if not hub.join():
            return text_response(503, f"at most {hub.max_viewers} streams at a time\n", {"Retry-After": "5"})
        loop = asyncio.get_running_loop()
        transport = request.transport
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}"})
        try:
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
            await response.prepare(request)
            seq, sent, behind_since, high_water = 0, time.monotonic(), None, 0
            if hub.latest() is not None:
                await loop.run_in_executor(None, hub.snapshot)  # the newest frame at once
            while True:
                seq, jpeg = hub.newer_jpeg(seq)
                if seq < 0:  # the server stops: what a slow viewer has not taken is dropped
                    transport.abort()
                    break
                if jpeg is None:
                    new_jpeg = self._new_jpeg
                    try:
                        await asyncio.wait_for(new_jpeg.wait(), 1.0)
                        continue
                    except asyncio.TimeoutError:
                        if time.monotonic() - sent < KEEPALIVE:
                            continue
                    jpeg = await loop.run_in_executor(None, hub.snapshot)
                    if jpeg is None:
                        continue
                now = time.monotonic()
                if transport.get_write_buffer_size():
                    # Still sending an earlier frame: skip this one (it gets the newest once
                    # it catches up). One that takes no whole frame within send_timeout is
                    # dropped, so it holds a stream slot for a bounded time only.
                    behind_since = behind_since or now
                    if now - behind_since > self.send_timeout:
                        raise TimeoutError(f"took no frame in {self.send_timeout:g} s")
                    continue
                behind_since, sent = None, now
                part = (b"--" + BOUNDARY.encode() + b"\r\nContent-Type: image/jpeg\r\n"
                        + f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                if len(part) > high_water // 2:  # a frame never fills the buffer: write never waits
                    high_water = 2 * len(part)
                    transport.set_write_buffer_limits(high=high_water)
                await response.write(part)
        except (OSError, asyncio.TimeoutError) as exc:  # reset, or too slow: the viewer left
            log.debug("preview: stream to %s ended: %s", request.remote, exc or type(exc).__name__)
            transport.abort()  # unsent frames are dropped, not flushed
        finally:
            hub.leave()
        return response


def _listen(host: str, port: int) -> socket.socket:
    # Bound here, before the loop starts, so a busy port is an error of the constructor.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise EdgecamError(f"cannot serve the preview on {host}:{port}: {exc.strerror} "
                           "(pick another [service] web port)") from None
    sock.setblocking(False)
    return sock
