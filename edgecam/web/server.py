"""The preview HTTP server: stdlib http.server with a bounded number of threads.

http.server's ThreadingHTTPServer starts one thread per connection, and that thread blocks
reading the request: 200 idle connections are 200 threads, 5000 are an out-of-threads
crash. Here one reception thread accepts connections and watches them with a selector; a
connection costs a thread only once its request bytes arrive, and then it is served by a
fixed pool (`max_streams` long-lived streams + a few workers for short requests). Idle
connections are closed after `idle_timeout` s and, past `max_idle`, oldest first, so they
can neither exhaust the server nor keep `/api/status` from answering. Every response
closes its connection (HTTP/1.0), so no worker waits on a keep-alive socket.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hmac
import ipaddress
import json
import logging
import re
import selectors
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Callable, Optional, Tuple, cast
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from ..errors import EdgecamError
from ..clips.store import ClipIndex
from .clipfiles import byte_range, clip_file, clips_document
from .hub import JpegHub
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import Metrics

log = logging.getLogger("edgecam.web")

PAGE = Path(__file__).with_name("index.html")
BOUNDARY = "edgecam-frame"
SHORT_WORKERS = 4
KEEPALIVE = 5.0
STREAM_SNDBUF = 256 * 1024


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
    if host and not is_valid_host(host):
        raise EdgecamError(
            f"config {key} = {value!r}: {host} is not a valid IP address or host "
            "name: use HOST:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080"
        )
    return host or "127.0.0.1", int(port)


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def is_valid_host(host: str) -> bool:
    """True for an IPv4 or IPv6 address or a host name (RFC 1123 labels). A name of digits and
    dots must be an IPv4 address: 999.1.1.1 is a mistyped address, not a name to look up."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def is_loopback(host: str) -> bool:
    """True when `host` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PreviewServer(HTTPServer):
    """Serves the preview endpoints from `hub`, `metrics` and `status()` (see module doc)."""

    protocol_version = "HTTP/1.0"
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self,
        address: Tuple[str, int],
        hub: JpegHub,
        metrics: Metrics,
        status: Callable[[], dict],
        token: Optional[str] = None,
        *,
        max_idle: int = 256,
        idle_timeout: float = 10.0,
        request_timeout: float = 5.0,
        send_timeout: float = 5.0,
        clips: Optional[Path] = None,
    ):
        host, port = address
        if not is_loopback(host) and not token:
            raise EdgecamError(
                f"the preview server on {host}:{port} is reachable from other machines: "
                "set a token ([service] web_token or env EDGECAM_WEB_TOKEN), "
                "or bind it to 127.0.0.1"
            )
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.hub, self.metrics, self.status, self.token = hub, metrics, status, token
        self.clips = clips  # the clips folder ([clips] on), or None
        self.clip_index = ClipIndex(clips) if clips is not None else None
        self.max_idle, self.idle_timeout = max_idle, idle_timeout
        self.request_timeout, self.send_timeout = request_timeout, send_timeout
        self.page = PAGE.read_bytes()
        try:
            super().__init__((host, port), PreviewHandler)
        except OSError as exc:
            raise EdgecamError(
                f"cannot serve the preview on {host}:{port}: {exc.strerror} (pick another [service] web port)"
            ) from None
        self.socket.setblocking(False)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            hub.max_viewers + SHORT_WORKERS, thread_name_prefix="edgecam-web"
        )
        self._busy = 0  # connections handed to the pool, not yet finished
        self._busy_lock = threading.Lock()
        self._streams: "set[socket.socket]" = set()  # guarded by _busy_lock
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        """http://host:port/ of the bound socket (the real port when 0 was asked)."""
        host, port = str(self.server_address[0]), self.server_address[1]  # an IP socket's: str
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> "PreviewServer":
        """Start the reception thread; returns self."""
        self._thread = threading.Thread(target=self._reception, name="edgecam-web-accept", daemon=True)
        self._thread.start()
        log.info("preview on %s", self.url)
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Stop accepting, end the streams, wait (bounded) for requests in progress."""
        self._stop.set()
        self.hub.close()
        with self._busy_lock:
            streams = list(self._streams)
        for conn in streams:  # a stalled viewer's send returns now, not after send_timeout
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False)  # queued requests still run (fast now) and close
        deadline = time.monotonic() + timeout
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._busy:
            self._pool.shutdown(wait=True)  # the idle workers exit at once: none outlives stop()
        self.server_close()
        self._wake_r.close()
        self._wake_w.close()

    # -- reception --------------------------------------------------------------------------
    def _reception(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.socket, selectors.EVENT_READ, "listen")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        idle: "collections.OrderedDict[socket.socket, Tuple[object, float]]" = collections.OrderedDict()
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.5):
                    if key.data == "listen":
                        self._accept(sel, idle)
                    elif key.data == "conn":
                        conn = cast(socket.socket, key.fileobj)
                        sel.unregister(conn)
                        addr, _since = idle.pop(conn)
                        self._dispatch(conn, addr)
                now = time.monotonic()
                while idle:
                    conn, (_addr, since) = next(iter(idle.items()))
                    if now - since < self.idle_timeout:
                        break
                    self._drop_idle(sel, idle, conn)
        finally:
            for conn in list(idle):
                self._drop_idle(sel, idle, conn)
            sel.close()

    def _accept(self, sel, idle) -> None:
        for _ in range(64):  # drain the backlog, but let the loop expire idle ones too
            try:
                conn, addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: keep serving the others
                log.warning("preview: accept failed: %s", exc)
                return
            while len(idle) >= self.max_idle:
                self._drop_idle(sel, idle, next(iter(idle)))
            conn.setblocking(False)
            idle[conn] = (addr, time.monotonic())
            sel.register(conn, selectors.EVENT_READ, "conn")

    @staticmethod
    def _drop_idle(sel, idle, conn) -> None:
        idle.pop(conn, None)
        try:
            sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()

    def _dispatch(self, conn: socket.socket, addr) -> None:
        with self._busy_lock:
            # Queued work is bounded too: past this, the client is slower than a retry.
            if self._busy >= 8 * (self.hub.max_viewers + SHORT_WORKERS):
                conn.close()
                return
            self._busy += 1
        try:
            self._pool.submit(self._serve, conn, addr)
        except RuntimeError:  # pool shut down while stopping
            self._done(conn)

    def _serve(self, conn: socket.socket, addr) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(self.request_timeout)
            self.finish_request(conn, addr)
        except Exception as exc:  # a bad client must never take a worker down
            log.debug("preview: request from %s failed: %s", addr, exc)
        finally:
            self._done(conn)

    def _done(self, conn: socket.socket) -> None:
        self.shutdown_request(conn)
        with self._busy_lock:
            self._busy -= 1


class PreviewHandler(BaseHTTPRequestHandler):
    """One request: token check, then the page, stream, snapshot, status or metrics."""

    server: PreviewServer
    server_version = f"edgecam/{__version__}"

    def version_string(self) -> str:
        """The `Server:` header: edgecam and its version only. http.server would add the
        Python version, which tells a scanner more than a viewer needs."""
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        log.debug("preview %s: " + format, self.client_address[0], *args)  # noqa: G003 - its format

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        if not self._authorised(url.query):
            self._send(
                401,
                b"token required: Authorization: Bearer TOKEN or ?token=TOKEN\n",
                "text/plain; charset=utf-8",
                {"WWW-Authenticate": 'Bearer realm="edgecam"'},
            )
            return
        route = {
            "/": self._page,
            "/index.html": self._page,
            "/stream.mjpg": self._stream,
            "/snapshot.jpg": self._snapshot,
            "/api/status": self._status,
            "/metrics": self._metrics,
            "/api/clips": self._clips,
        }.get(url.path)
        if route is None and url.path.startswith("/clips/"):
            route = lambda: self._clip(url.path[len("/clips/") :])  # noqa: E731
        if route is None:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")
            return
        route()

    def _authorised(self, query: str) -> bool:
        token = self.server.token
        if not token:
            return True
        given = ""
        header = self.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        else:
            given = (parse_qs(query).get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), token.encode())

    def _send(self, code: int, body: bytes, ctype: str, headers: Optional[dict] = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _page(self) -> None:
        self._send(200, self.server.page, "text/html; charset=utf-8")

    def _status(self) -> None:
        body = json.dumps(self.server.status(), separators=(",", ":")).encode()
        self._send(200, body, "application/json")

    def _clips(self) -> None:
        index = self.server.clip_index
        body = {"v": 1, "clips": []} if index is None else clips_document(index)
        self._send(200, json.dumps(body, separators=(",", ":")).encode(), "application/json")

    def _clip(self, filename: str) -> None:
        folder = self.server.clips
        found = clip_file(folder, filename) if folder is not None else None
        if found is None:
            self._send(404, b"no such clip\n", "text/plain; charset=utf-8")
            return
        path, ctype = found
        try:
            data = path.read_bytes()  # clips are small (max_seconds at a capped bit rate)
        except OSError:
            self._send(404, b"no such clip\n", "text/plain; charset=utf-8")
            return
        wanted = byte_range(self.headers.get("Range"), len(data))
        if wanted is None:
            self._send(200, data, ctype, {"Accept-Ranges": "bytes"})
            return
        first, last = wanted
        if first >= len(data):
            self._send(416, b"", ctype, {"Content-Range": f"bytes */{len(data)}"})
            return
        self._send(
            206,
            data[first : last + 1],
            ctype,
            {"Accept-Ranges": "bytes", "Content-Range": f"bytes {first}-{last}/{len(data)}"},
        )

    def _metrics(self) -> None:
        self._send(200, self.server.metrics.render(), METRICS_TYPE)

    def _snapshot(self) -> None:
        jpeg = self.server.hub.snapshot()
        if jpeg is None:
            self._send(503, b"no frame yet\n", "text/plain; charset=utf-8", {"Retry-After": "1"})
            return
        self._send(200, jpeg, "image/jpeg")

    def _stream(self) -> None:
        hub = self.server.hub
        if not hub.join():
            self._send(
                503,
                f"at most {hub.max_viewers} streams at a time\n".encode(),
                "text/plain; charset=utf-8",
                {"Retry-After": "5"},
            )
            return
        server = self.server
        with server._busy_lock:
            server._streams.add(self.connection)
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            # A viewer that cannot take a frame within send_timeout is dropped, so it holds
            # a worker and a stream slot for a bounded time only.
            self.connection.settimeout(self.server.send_timeout)
            # A small send buffer: a stalled viewer is noticed after about a second of
            # frames, and pins little memory (a few viewers on a 512 MB Pi).
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
            seq, sent = 0, time.monotonic()
            if hub.latest() is not None:
                hub.snapshot()  # the newest frame at once, even if the source has ended
            while True:
                seq, jpeg = hub.next_jpeg(seq, timeout=1.0)
                if seq < 0:
                    return
                if jpeg is None:
                    if time.monotonic() - sent < KEEPALIVE:
                        continue
                    # No new frame for a while (source ended or paused): send the last one
                    # again, which is how a viewer that went away is noticed.
                    jpeg = hub.snapshot()
                    if jpeg is None:
                        continue
                sent = time.monotonic()
                self.wfile.write(
                    b"--"
                    + BOUNDARY.encode()
                    + b"\r\nContent-Type: image/jpeg\r\n"
                    + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
        except (OSError, ValueError) as exc:  # timeout, reset, closed file: the viewer left
            log.debug("preview: stream to %s ended: %s", self.client_address[0], exc)
        finally:
            with server._busy_lock:
                server._streams.discard(self.connection)
            hub.leave()
