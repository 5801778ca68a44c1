"""The preview server over real HTTP, fed by the real pipeline and model on a looping video:
token auth, /metrics as Prometheus text, /api/status, one JPEG encode for all viewers and
the fps cap, the stream cap, stalled viewers dropped, 200 idle connections."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import COCO_LABELS, IMAGES, SSD_MODEL
from edgecam import __version__
from edgecam import config as cfg
from edgecam.annotate import Annotator
from edgecam.detector import Detector
from edgecam.errors import EdgecamError
from edgecam.pipeline import Pipeline
from edgecam.sources import VideoSource
from edgecam.web import WebSink, web_sink_from_config
from edgecam.web.server import SHORT_WORKERS, parse_listen
from media import pan_frames, write_video
from waiting import wait_until

TOKEN = "s3cret-token"
MAX_FPS = 8.0
MAX_STREAMS = 2


def get(url, token=TOKEN, header=False, timeout=5.0):
    """(status, headers, body) of a GET; the token goes in the query or the header."""
    headers = {}
    if token and header:
        headers["Authorization"] = f"Bearer {token}"
    elif token:
        url += ("&" if "?" in url else "?") + f"token={token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


class Viewer(threading.Thread):
    """A raw-socket MJPEG client that parses parts and keeps every JPEG it receives."""

    def __init__(self, base, path="/stream.mjpg?token=" + TOKEN):
        super().__init__(daemon=True)
        host, port = base.split("//")[1].rstrip("/").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        self.file = self.sock.makefile("rb")
        self.status_line = self.file.readline().decode()
        self.headers = {}
        while True:
            line = self.file.readline().decode().strip()
            if not line:
                break
            k, _, v = line.partition(":")
            self.headers[k.lower()] = v.strip()
        self.jpegs = []
        self.stop = threading.Event()

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    def run(self):
        try:
            while not self.stop.is_set():
                boundary = self.file.readline()
                if not boundary:
                    return
                if not boundary.strip():
                    continue
                length = None
                while True:
                    line = self.file.readline().decode().strip()
                    if not line:
                        break
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":")[1])
                self.jpegs.append(self.file.read(length))
        except OSError:
            return

    def close(self):
        self.stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 2 s panning video over people and kites, 15 fps."""
    image = cv2.imread(str(IMAGES / "kite_and_cold.jpg"))
    return write_video(tmp_path_factory.mktemp("web") / "kites.mp4", pan_frames(image, 30), fps=15)


@pytest.fixture(scope="module")
def live(clip):
    """WebSink fed by the real pipeline on the looping clip (paced like a camera)."""
    detector = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=1)
    pipeline = None
    annotate = Annotator(lambda: pipeline.stats.fps.rate() if pipeline else 0.0)
    sink = WebSink("127.0.0.1:0", annotate, token=TOKEN, max_fps=MAX_FPS, max_streams=MAX_STREAMS,
                   stats=lambda: pipeline.stats if pipeline else None,
                   idle_timeout=2.0, send_timeout=1.0)
    pipeline = Pipeline(VideoSource(clip, loop=True, realtime=True), [detector], [sink], drop=True).start()
    assert wait_until(lambda: pipeline.stats.processed >= 3, 30), "pipeline produced no frames"
    yield sink, pipeline
    pipeline.stop()
    pipeline.wait(10)
    pipeline.close_sinks()
    assert pipeline.error is None


def no_viewers(sink):
    assert wait_until(lambda: sink.hub.viewers == 0, 10), "a previous viewer never left"


@pytest.mark.parametrize("path", ["/", "/api/status", "/metrics", "/snapshot.jpg", "/stream.mjpg"])
def test_token_refused_without_accepted_with(live, path):
    sink, _ = live
    status, headers, _ = get(sink.url.rstrip("/") + path, token=None)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert get(sink.url.rstrip("/") + path, token="wrong")[0] == 401
    if path != "/stream.mjpg":  # endless: the Viewer tests cover it with a token
        assert get(sink.url.rstrip("/") + path, header=True)[0] == 200
        assert get(sink.url.rstrip("/") + path)[0] == 200


def test_page_and_unknown_path(live):
    sink, _ = live
    status, headers, body = get(sink.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'id="stream"' in body and b"/stream.mjpg" in body and b"/api/status" in body
    assert get(sink.url + "nope")[0] == 404


def test_server_header_names_edgecam_and_its_version_only(live):
    sink, _ = live
    served = [get(sink.url)[1], get(sink.url + "nope")[1], get(sink.url, token=None)[1]]
    with socket.create_connection(sink.server.server_address[:2], timeout=5) as sock:
        sock.sendall(f"GET /stream.mjpg?token={TOKEN} HTTP/1.0\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
    stream = [line for line in head.split(b"\r\n") if line.lower().startswith(b"server:")]
    assert stream == [f"Server: edgecam/{__version__}".encode()]
    assert [h["Server"] for h in served] == [f"edgecam/{__version__}"] * 3


def scrape(url) -> dict:
    """The metric families of one GET /metrics, by name (asserts the exposition format)."""
    status, headers, body = get(url + "metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def sample(families, fam, suffix="", **labels):
    """The value of one sample of a scraped family."""
    return next(s.value for s in families[fam].samples
                if s.name == fam + suffix and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_parse_as_prometheus_text(live):
    sink, pipeline = live
    # The web sink observes a result after the pipeline counted it processed (and drops
    # results when it falls behind), so wait for what the scrape shows, not for the pipeline.
    scraped = []

    def five_inferences_observed():
        scraped.append(scrape(sink.url))
        return sample(scraped[-1], "edgecam_inference_seconds", "_count") >= 5
    assert wait_until(five_inferences_observed, 60), "the histogram never saw 5 inferences"
    families = scraped[-1]
    for name, kind in [("edgecam_frames_processed", "counter"), ("edgecam_frames_dropped", "counter"),
                       ("edgecam_frames_captured", "counter"), ("edgecam_sink_dropped", "counter"),
                       ("edgecam_inference_seconds", "histogram"), ("edgecam_detections", "counter"),
                       ("edgecam_web_viewers", "gauge"), ("edgecam_web_jpeg_encoded", "counter"),
                       ("edgecam_fps", "gauge")]:
        assert families[name].type == kind, name
    value = lambda fam, suffix="", **labels: sample(families, fam, suffix, **labels)  # noqa: E731
    count = value("edgecam_inference_seconds", "_count")
    # What holds in every scrape, however the threads interleave: nothing is observed
    # before it is processed, nor processed before it is captured.
    for each in scraped:
        assert (sample(each, "edgecam_inference_seconds", "_count")
                <= sample(each, "edgecam_frames_processed", "_total")
                <= sample(each, "edgecam_frames_captured", "_total"))
    assert count >= 5
    buckets = [s for s in families["edgecam_inference_seconds"].samples if s.name.endswith("_bucket")]
    assert [s.value for s in buckets] == sorted(s.value for s in buckets)
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == count
    assert value("edgecam_detections", "_total", label="person") >= 1  # kite_and_cold: >= 3 people
    assert value("edgecam_sink_dropped", "_total", sink="web") >= 0
    assert not any(n.startswith("edgecam_mqtt") for n in families)  # MQTT not configured


class FramesDuringScrape:
    """Pipeline counters that move on between any two reads of a scrape: right after each
    read of a frame counter one more frame is captured, processed and handled by the web
    sink (the worst interleaving of the pipeline's threads with a scrape)."""

    def __init__(self, metrics, result):
        self.metrics, self.result = metrics, result
        self._captured = self._processed = 5
        self.skipped = self.dropped = 0
        self.sink_dropped = {}
        self.moved_on = 0

    def _one_more_frame(self):
        self.moved_on += 1
        self._captured += 1
        self._processed += 1
        self.metrics.observe(self.result)

    @property
    def captured(self):
        value = self._captured
        self._one_more_frame()
        return value

    @property
    def processed(self):
        value = self._processed
        self._one_more_frame()
        return value


def test_a_scrape_never_counts_more_than_went_through_the_stage_before():
    from edgecam.datatypes import Frame, FrameResult
    from edgecam.web.metrics import Metrics
    image = cv2.imread(str(IMAGES / "pets.jpg"))
    result = FrameResult(Frame(0, time.time(), time.monotonic(), image), (), inference_ms=20.0)
    stats = None
    metrics = Metrics(lambda: stats)
    stats = FramesDuringScrape(metrics, result)
    for _ in range(5):
        metrics.observe(result)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    count = sample(families, "edgecam_inference_seconds", "_count")
    processed = sample(families, "edgecam_frames_processed", "_total")
    captured = sample(families, "edgecam_frames_captured", "_total")
    assert stats.moved_on == 2, "the pipeline moved on during the scrape"
    assert count <= processed <= captured, (count, processed, captured)


def test_status_reports_frames_detections_and_no_mqtt(live):
    sink, _ = live
    status, headers, body = get(sink.url + "api/status")
    s = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert s["frame"]["width"] == 640 and s["frame"]["height"] == 480
    assert s["processed"] >= 1 and s["inference_ms"] > 0
    assert {"person", "kite"} & {d["label"] for d in s["detections"]}
    assert s["max_streams"] == MAX_STREAMS and s["stream_fps"] == MAX_FPS
    assert s["mqtt"] is None


def test_snapshot_is_the_annotated_frame(live):
    sink, _ = live
    status, headers, body = get(sink.url + "snapshot.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (480, 640, 3)
    # The fps / inference overlay is drawn bottom-left: a black box with white text.
    corner = image[-14:-2, 2:60]
    assert corner.min() < 40 and corner.max() > 200


def test_one_encode_per_frame_for_all_viewers_capped_at_fps(live):
    sink, pipeline = live
    no_viewers(sink)
    encoded0, processed0, t0 = sink.hub.encoded, pipeline.stats.processed, time.monotonic()
    viewers = [Viewer(sink.url) for _ in range(MAX_STREAMS)]
    try:
        assert [v.status for v in viewers] == [200] * MAX_STREAMS
        assert viewers[0].headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
        for v in viewers:
            v.start()
        refused = Viewer(sink.url)  # one more than web_max_streams
        assert refused.status == 503
        refused.close()
        assert wait_until(lambda: all(len(v.jpegs) >= 8 for v in viewers), 20)
    finally:
        for v in viewers:
            v.close()
    elapsed = time.monotonic() - t0
    encoded, processed = sink.hub.encoded - encoded0, pipeline.stats.processed - processed0
    # Every viewer got real JPEGs of the same frames: the ones the hub encoded once.
    for v in viewers:
        assert all(j[:2] == b"\xff\xd8" and j[-2:] == b"\xff\xd9" for j in v.jpegs)
    seen = [{hashlib.sha1(j).hexdigest() for j in v.jpegs} for v in viewers]
    assert len(seen[0] & seen[1]) >= 4
    assert len(seen[0] | seen[1]) <= encoded + 1  # +1: the JPEG that existed when they joined
    # At most once per processed frame, and no faster than web_fps (the clip runs at 15).
    assert encoded <= processed + 1
    assert encoded <= MAX_FPS * elapsed + 2
    if processed > MAX_FPS * elapsed + 4:  # inference outran the cap (not on a very busy machine)
        assert encoded < processed  # the frames over the cap were never encoded


def test_nothing_encoded_without_viewers(live):
    sink, pipeline = live
    no_viewers(sink)
    time.sleep(0.3)  # let a frame in flight on the sink thread finish
    encoded0, processed0 = sink.hub.encoded, pipeline.stats.processed
    assert wait_until(lambda: pipeline.stats.processed >= processed0 + 10, 10)
    assert sink.hub.encoded == encoded0
    assert get(sink.url + "snapshot.jpg")[0] == 200  # a snapshot encodes on request
    assert sink.hub.encoded == encoded0 + 1


def test_stalled_viewer_is_dropped(live):
    sink, _ = live
    no_viewers(sink)
    host, port = sink.server.server_address[:2]
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
    stalled.connect((host, port))
    stalled.sendall(f"GET /stream.mjpg?token={TOKEN} HTTP/1.0\r\n\r\n".encode())
    try:
        assert wait_until(lambda: sink.hub.viewers == 1, 5)
        assert wait_until(lambda: sink.hub.viewers == 0, 30), "a viewer that never reads was not dropped"
        ok = Viewer(sink.url)  # its slot is free again
        assert ok.status == 200
        ok.close()
    finally:
        stalled.close()


def test_200_idle_connections_neither_exhaust_nor_block_status(live):
    sink, _ = live
    no_viewers(sink)
    host, port = sink.server.server_address[:2]
    threads0 = threading.active_count()
    idle = [socket.create_connection((host, port), timeout=5) for _ in range(200)]
    try:
        time.sleep(0.3)
        status, _, body = get(sink.url + "api/status", timeout=5)
        assert status == 200 and b'"processed"' in body
        assert get(sink.url + "metrics", timeout=5)[0] == 200
        # Idle connections hold no thread: at most the fixed pool was started.
        assert threading.active_count() - threads0 <= MAX_STREAMS + SHORT_WORKERS
        # ... and they are closed by the server after idle_timeout (2 s here).
        for s in idle[:5]:
            s.settimeout(10)
            assert s.recv(1) == b""
    finally:
        for s in idle:
            s.close()


def test_idle_connections_beyond_max_idle_evict_the_oldest():
    sink = WebSink("127.0.0.1:0", Annotator(), max_idle=50, idle_timeout=60)
    try:
        host, port = sink.server.server_address[:2]
        idle = [socket.create_connection((host, port), timeout=5) for _ in range(200)]
        status, _, body = get(sink.url + "api/status", token=None)
        assert status == 200 and b'"frame":null' in body  # no pipeline: no frame yet
        assert get(sink.url + "snapshot.jpg", token=None)[0] == 503
        idle[0].settimeout(5)
        assert idle[0].recv(1) == b""  # the oldest was closed to make room
        for s in idle:
            s.close()
    finally:
        sink.close()


def test_token_required_beyond_loopback():
    with pytest.raises(EdgecamError, match="token"):
        WebSink("0.0.0.0:0", Annotator())
    sink = WebSink("0.0.0.0:0", Annotator(), token="t")
    try:
        port = sink.server.server_address[1]
        assert get(f"http://127.0.0.1:{port}/api/status", token=None)[0] == 401
        assert get(f"http://127.0.0.1:{port}/api/status", token="t")[0] == 200
    finally:
        sink.close()


def test_listen_address_parsing_and_busy_port():
    assert parse_listen("8080") == ("127.0.0.1", 8080)
    assert parse_listen(":8080") == ("127.0.0.1", 8080)
    assert parse_listen("0.0.0.0:81") == ("0.0.0.0", 81)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    assert parse_listen("my-pi.local:8080") == ("my-pi.local", 8080)
    for bad in ("localhost:http", "host:", "1.2.3.4:70000", "999.1.1.1:80", "[::g]:80", "a_b:80"):
        with pytest.raises(EdgecamError, match="service.web"):
            parse_listen(bad)
    sink = WebSink("127.0.0.1:0", Annotator())
    try:
        with pytest.raises(EdgecamError, match="cannot serve the preview"):
            WebSink(f"127.0.0.1:{sink.server.server_address[1]}", Annotator())
    finally:
        sink.close()


def test_config_and_env_token(tmp_path):
    config = cfg.resolve(None, {"service": {"web": "127.0.0.1:0", "web_fps": 2, "web_max_streams": 1}}, env={})
    sink = web_sink_from_config(config.service, Annotator(), env={"EDGECAM_WEB_TOKEN": "from-env"})
    try:
        assert get(sink.url + "api/status", token=None)[0] == 401
        status, _, body = get(sink.url + "api/status", token="from-env")
        assert status == 200 and b'"max_streams":1' in body and b'"stream_fps":2.0' in body
    finally:
        sink.close()
    with pytest.raises(EdgecamError, match="web_max_streams"):
        cfg.resolve(None, {"service": {"web_max_streams": 0}}, env={})
