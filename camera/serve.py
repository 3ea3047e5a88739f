"""A browser view for headless devices: an MJPEG stream of the live overlay and a small page with stats.

GET /            the page (the stream and the stats, refreshed every half second)
GET /stream.mjpg multipart/x-mixed-replace JPEG stream
GET /snapshot.jpg the newest frame
GET /stats.json  the loop's live statistics: FPS over the last 2 s (0 while no frame comes), the source's state,
                 reconnects, drops, the sinks' states, uptime
GET /healthz     200 while frames flow, 503 after --health-timeout seconds without one (for a watchdog)
Binds 127.0.0.1 unless a host is given (an IPv6 host in brackets: [::1]:8080); a wildcard host (0.0.0.0, ::)
is said to expose the view to the network. Frames are encoded only while someone is watching, and a new viewer
(a stream that starts, a snapshot) gets the newest frame, encoded then, never an old one.
"""

from __future__ import annotations

import json
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from edgeseg.errors import SourceError

BOUNDARY = "edgesegframe"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>edgeseg</title>
<style>body{font-family:sans-serif;background:#111;color:#eee;margin:1em}img{max-width:100%;border:1px solid #444}
table{border-collapse:collapse;margin-top:.5em}td{padding:2px 10px;border-bottom:1px solid #333}</style></head>
<body><h3>edgeseg &mdash; <span id="model">MODEL</span></h3>
<img id="stream" src="/stream.mjpg" alt="live overlay">
<table id="stats"><tbody></tbody></table>
<script>
async function refresh() {
  try {
    const s = await (await fetch('/stats.json', {cache: 'no-store'})).json();
    const rows = [['frames', s.frames], ['FPS', (s.fps || 0).toFixed(1)], ['dropped', s.dropped],
                  ['invoke p50 ms', s.invoke_p50_ms == null ? '-' : s.invoke_p50_ms.toFixed(2)],
                  ['frame age p50 ms', s.age_p50_ms == null ? '-' : s.age_p50_ms.toFixed(1)],
                  ['source', s.source_state || '-'], ['reconnects', s.reconnects || 0]];
    if (s.mqtt) rows.push(['MQTT', s.mqtt]);
    if (s.events != null) rows.push(['events', s.events]);
    document.querySelector('#stats tbody').innerHTML =
      rows.map(r => `<tr><td>${r[0]}</td><td id="stat-${r[0].split(' ')[0]}">${r[1]}</td></tr>`).join('');
  } catch (e) {}
}
setInterval(refresh, 500); refresh();
</script></body></html>
"""


def parse_serve(text: str) -> tuple[str, int]:
    """'8080' -> ('127.0.0.1', 8080); 'HOST:PORT' -> (HOST, PORT)."""
    host, _, port = text.rpartition(":")
    try:
        p = int(port)
        if not 0 <= p <= 65535:
            raise ValueError
    except ValueError:
        raise SourceError(f"--serve: expected [HOST:]PORT, got {text!r}") from None
    return (host.strip("[]") or "127.0.0.1"), p


# Idle or slow clients: a socket that sends or takes nothing for this long is closed (an idle connection used to
# hold its thread forever: sixty of them held 72 threads). A request must arrive whole within REQUEST_DEADLINE_S
# (sixteen sockets that trickled a byte every few seconds used to hold every slot). At most MAX_CONNECTIONS
# streams at once and MAX_PENDING connections in all; more get 503.
CLIENT_TIMEOUT_S = 10.0
REQUEST_DEADLINE_S = 5.0
MAX_CONNECTIONS = 16
MAX_PENDING = 64
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def unspecified(host: str) -> bool:
    """Whether binding `host` listens on every interface."""
    import ipaddress

    if host in WILDCARD_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        pass
    try:
        return socket.inet_aton(host) == bytes(4)  # "0", "0.0": inet_aton's shorthands for 0.0.0.0
    except OSError:
        return False


class StreamHandler(BaseHTTPRequestHandler):
    """One request; `self.server.frames` is the FrameServer that holds the newest frame and the stats."""

    timeout = CLIENT_TIMEOUT_S  # socket timeout for reading the request and for every write

    def setup(self):
        """Start the request's deadline: a client that has not sent a whole request by then is cut off."""
        super().setup()
        self._deadline = threading.Timer(REQUEST_DEADLINE_S, self._cut)
        self._deadline.daemon = True
        self._deadline.start()

    def _cut(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def finish(self):
        """Stop the deadline with the connection."""
        self._deadline.cancel()
        super().finish()

    def log_message(self, *args):  # keep the terminal for the loop's own output
        """Say nothing per request: the terminal belongs to the loop."""
        pass

    def _send(self, body: bytes, ctype: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        """Serve the page, /stream.mjpg, /snapshot.jpg or /stats.json."""
        self._deadline.cancel()  # the request is in; a stream may now run as long as it is read
        fs = self.server.frames
        path = self.path.split("?")[0]
        try:
            if path in ("/", "/index.html"):
                self._send(fs.page, "text/html; charset=utf-8")
            elif path == "/stats.json":
                body = json.dumps({**fs.current_stats(), "client_errors": fs.client_errors}).encode()
                self._send(body, "application/json")
            elif path == "/healthz":
                ok = fs.healthy()
                body = json.dumps({"healthy": ok, "since_frame_s": fs.current_stats().get("since_frame_s")}).encode()
                self._send(body, "application/json", HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE)
            elif path == "/snapshot.jpg":
                with fs.cond:
                    fs.cond.wait_for(lambda: fs.latest is not None or fs.closed, timeout=5)
                jpeg = fs.newest_jpeg()
                if jpeg is None:
                    self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet")
                else:
                    self._send(jpeg, "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream(fs)
            else:
                self.send_error(HTTPStatus.NOT_FOUND)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _stream(self, fs: FrameServer) -> None:
        if not fs.streams.acquire(blocking=False):
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "too many viewers")
            return
        try:
            self._stream_frames(fs)
        finally:
            fs.streams.release()

    def _stream_frames(self, fs: FrameServer) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with fs.cond:
            fs.viewers += 1
        first = fs.newest_jpeg()  # the newest frame, encoded now: not the one encoded when someone last watched
        seen = fs.jpeg_seq
        try:
            if first is not None:
                self._part(first)
            while True:
                with fs.cond:
                    fs.cond.wait_for(lambda seen=seen: fs.jpeg_seq != seen or fs.closed, timeout=1.0)
                    if fs.closed:
                        return
                    if fs.jpeg_seq == seen or fs.jpeg is None:
                        continue
                    jpeg, seen = fs.jpeg, fs.jpeg_seq
                self._part(jpeg)
        finally:
            with fs.cond:
                fs.viewers -= 1

    def _part(self, jpeg: bytes) -> None:
        self.wfile.write(
            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n"
        )


class StreamServer(ThreadingHTTPServer):
    """A thread per connection, at most MAX_PENDING of them; the rest are answered 503 and closed. An IPv6
    address gets an IPv6 socket."""

    daemon_threads = True

    def __init__(self, address, frames: FrameServer, max_connections: int = MAX_PENDING):
        self.frames = frames
        self.slots = threading.BoundedSemaphore(max_connections)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, StreamHandler)

    def process_request(self, request, client_address):
        """Serve on a new thread while a slot is free; else answer 503 and close."""
        if not self.slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        """A connection that failed (a client gone mid-reply, a TLS hello on the HTTP port, a request cut short)
        is counted, not printed: any client on the network could otherwise fill the terminal with tracebacks."""
        self.frames.client_errors += 1

    def process_request_thread(self, request, client_address):
        """Serve one connection, then free its slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class FrameServer:
    """The browser view's state (newest JPEG, stats, viewers) and its HTTP server thread.

    Args:
        host: the address to listen on.
        port: the port (0: any free one).
        title: the page's title (the model's name).
        quality: JPEG quality.
        max_connections: streams served at once; more get 503.
        max_pending: connections handled at once, streams and short requests together; more get 503.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        title: str = "",
        quality: int = 80,
        max_connections: int = MAX_CONNECTIONS,
        max_pending: int = MAX_PENDING,
        stats_fn=None,
        healthy_fn=None,
    ):
        self.cond = threading.Condition()
        self.jpeg: bytes | None = None
        self.jpeg_seq = -1  # which published frame self.jpeg is
        self.latest: np.ndarray | None = None  # the newest published frame, encoded or not
        self.seq = 0
        self.streams = threading.BoundedSemaphore(max_connections)
        self.stats: dict = {}
        # the loop's live statistics and health, read at each request: given here, so that no request ever sees
        # the server without them (a client polling from the first moment got {} and no "fps")
        self.stats_fn, self.healthy_fn = stats_fn, healthy_fn
        self.client_errors = 0  # connections that ended in an error (StreamServer.handle_error)
        self.viewers = 0
        self.closed = False
        self.quality = quality
        self.page = PAGE.replace("MODEL", title.replace("<", "&lt;")).encode()
        try:
            self.httpd = StreamServer((host, port), self, max_pending)
        except OSError as e:
            raise SourceError(f"--serve {host}:{port}: cannot listen ({e.strerror})") from None
        self.host, self.port = host, self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="edgeseg-serve", daemon=True)
        self.thread.start()

    @property
    def exposed(self) -> bool:
        """Listening on every interface: anyone who can reach this machine can watch. Every spelling of the
        unspecified address counts: 0.0.0.0, ::, and the shorthands the socket layer also takes (0, 0.0)."""
        return unspecified(self.host)

    @property
    def url(self) -> str:
        """The address to open in a browser (for a wildcard host, this machine's name)."""
        host = socket.gethostname() if self.exposed else self.host
        host = "localhost" if host == "127.0.0.1" else host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def describe(self) -> str:
        """Where the view is served, and a word when that is the whole network."""
        if not self.exposed:
            return f"serving the live view at {self.url}"
        return (
            f"serving the live view at {self.url} on every interface ({self.host or '0.0.0.0'}): anyone who can "
            "reach this machine can watch; --serve 127.0.0.1:PORT keeps it to this machine"
        )

    def current_stats(self) -> dict:
        """The live statistics, else the last published ones."""
        if self.stats_fn is not None:
            return self.stats_fn()
        with self.cond:
            return dict(self.stats)

    def healthy(self) -> bool:
        """The health check's answer (True when there is none and a frame has come)."""
        return self.healthy_fn() if self.healthy_fn is not None else self.latest is not None

    def publish(self, image: np.ndarray, stats: dict | None = None) -> None:
        """Offer a new frame (encoded only while someone watches a stream) and the current stats."""
        with self.cond:
            if stats is not None:
                self.stats = stats
            self.latest, self.seq = image, self.seq + 1
            watching = self.viewers > 0
            self.cond.notify_all()
        if watching:
            self.newest_jpeg()

    def newest_jpeg(self) -> bytes | None:
        """The newest published frame as JPEG, encoded now if it has not been (None before the first frame)."""
        with self.cond:
            image, seq = self.latest, self.seq
            if image is None or self.jpeg_seq == seq:
                return self.jpeg
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return self.jpeg
        with self.cond:
            if seq > self.jpeg_seq:
                self.jpeg, self.jpeg_seq = buf.tobytes(), seq
                self.cond.notify_all()
            return self.jpeg

    def close(self) -> None:
        """Stop serving and wake every waiting stream."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(2)
