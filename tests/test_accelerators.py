"""The IMX500 (AI Camera) and Hailo backends against stand-ins for the hardware only.

The stand-ins in tests/standins/ play picamera2's Picamera2, IMX500 and Hailo classes, with
the tensors the real CPU SSD model computes on the shared photos; edgecam's own code runs
unchanged. Each result is compared with the CPU backend's on the same photo.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import cv2
import numpy as np
import pytest

from conftest import COCO_LABELS, COCO_LABELS_90, IMAGES, ROOT, SSD_MODEL
from edgecam import backends as registry
from edgecam.datatypes import Frame
from edgecam.detector import DetectOptions, Detector
from edgecam.errors import EdgecamError
from edgecam.sources import PicameraCapture, SourceSpec

STANDINS = ROOT / "tests" / "standins"
# Photos whose detections are well clear of the 0.5 threshold (shared/README.md).
PHOTOS = ("pets.jpg", "cat_720p.jpg", "grace_hopper.bmp", "traffic.bmp")
LAYOUTS = [("yx", False), ("yx", True), ("xy", False), ("xy", True)]


def picamera2_labels():
    """The COCO list as picamera2's examples ship it: 90 ids, `-` in the gaps."""
    return ["-" if n.strip() == "n/a" else n.strip()
            for n in COCO_LABELS_90.read_text().splitlines()]


def intrinsics(order="yx", normalized=False, **extra):
    cpu = {"bbox_order": order, **({"bbox_normalization": True} if normalized else {})}
    return {"task": "object detection", "inference_rate": 30.0, "cpu": cpu,
            "classes": {"labels": picamera2_labels()}, **extra}


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """describe(**hardware) -> env for subprocesses; also puts the stand-in picamera2 on
    this process's path, freshly imported (a new camera, firmware not yet uploaded)."""
    monkeypatch.syspath_prepend(str(STANDINS))

    def forget_picamera2():
        for name in [m for m in sys.modules if m == "picamera2" or m.startswith("picamera2.")]:
            del sys.modules[name]

    def describe(**hardware):
        forget_picamera2()
        path = tmp_path / f"hardware-{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(hardware))
        monkeypatch.setenv("EDGECAM_STANDIN_HARDWARE", str(path))
        return {"EDGECAM_STANDIN_HARDWARE": str(path),
                "PYTHONPATH": os.pathsep.join([str(STANDINS), str(ROOT)])}
    yield describe
    forget_picamera2()  # later tests must not find a picamera2 on this machine


@pytest.fixture(scope="module")
def cpu():
    return Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=2)


@pytest.fixture
def network(tmp_path):
    path = tmp_path / "imx500_network_ssd_mobilenetv2_fpnlite_320x320_pp.rpk"
    path.write_bytes(b"9464")  # only opened by the device, which is stood in for
    return path


# Preprocessing moves scores by about ±0.02 (shared/README.md): a detection this close to the
# 0.5 threshold may be on either side of it in two paths that resize differently.
BAND = 0.05


def _as_tuples(detections):
    out = []
    for d in detections:
        if isinstance(d, dict):
            out.append((d["label"], d["score"], d["box"]))
        else:
            out.append((d.label, d.score, d.bbox.as_list(6)))
    return out


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def assert_same(found, expected, tolerance=0.02, threshold=0.5):
    """Same labels, each box within `tolerance` of its counterpart (matched by label and IoU);
    a detection within BAND of the threshold need not have one."""
    found, expected = _as_tuples(found), _as_tuples(expected)
    assert found, "nothing detected"
    for ours, theirs in ((found, expected), (expected, found)):
        left = list(theirs)
        for label, score, box in ours:
            candidates = [t for t in left if t[0] == label]
            if not candidates:
                assert score < threshold + BAND, (label, score, box, found, expected)
                continue
            best = max(candidates, key=lambda t: _iou(t[2], box))
            left.remove(best)
            assert all(abs(a - b) <= tolerance for a, b in zip(box, best[2])), (box, best, found, expected)
        assert all(t[1] < threshold + BAND for t in left), (left, found, expected)


def capture_once(backend, size=(1280, 720)):
    cam = PicameraCapture(SourceSpec(uri="picamera", width=size[0], height=size[1], fps=30),
                          sensor=backend)
    try:
        main, _lores, detected = cam.read()
    finally:
        cam.release()
    return cam, Frame(0, time.time(), time.monotonic(), main, "picamera", None, detected)


def imx500_detections(backend, frame):
    prepared = backend.prepare(frame)
    assert prepared is not None
    return backend.postprocess(backend.invoke(prepared[0]), prepared[1])


@pytest.mark.parametrize("order,normalized", LAYOUTS)
def test_imx500_detections_match_the_cpu_on_the_main_stream(standin, network, cpu, order, normalized):
    from edgecam.backends.imx500 import Imx500Backend
    compared = 0
    for photo in PHOTOS:
        standin(scene=str(IMAGES / photo),
                imx500={"intrinsics": intrinsics(order, normalized), "input_size": [320, 320]})
        backend = Imx500Backend.load(str(network), None, DetectOptions(threshold=0.5))
        cam, frame = capture_once(backend)
        assert cam.cam.config["controls"]["FrameRate"] == 30.0
        assert cam.cam.config["lores"] is None, "no CPU inference: no low-resolution stream"
        found = imx500_detections(backend, frame)
        expected = cpu.detect(frame).detections
        assert found, photo
        assert_same(found, expected)
        assert frame.detected.dnn_ms > 0 and frame.detected.dsp_ms == 1.2
        compared += len(found)
    assert compared >= 6


def test_imx500_scaler_crop_maps_into_the_cropped_main_stream(standin, network):
    """A 16:9 main stream crops the 4:3 sensor: boxes land where the crop puts them."""
    from edgecam.backends.imx500 import Imx500Backend
    crop = (0, 379, 4056, 2282)
    standin(scene=str(IMAGES / "pets.jpg"),
            imx500={"intrinsics": intrinsics(), "scaler_crop": list(crop), "raw_size": [2028, 1520]})
    backend = Imx500Backend.load(str(network), None, DetectOptions(threshold=0.5))
    _cam, frame = capture_once(backend)
    found = imx500_detections(backend, frame)
    from standin_hardware import ssd, scene
    boxes, classes, scores, _n, _ms = ssd().run(cv2.cvtColor(scene(str(IMAGES / "pets.jpg")),
                                                             cv2.COLOR_BGR2RGB))
    expected = sorted(((float(s), b) for b, s in zip(boxes, scores) if s >= 0.5), reverse=True)
    assert len(found) == len(expected) == 2
    for d, (score, (y0, x0, y1, x1)) in zip(found, expected):
        # Sensor fractions -> full-sensor pixels -> inside the crop -> fractions of the main frame.
        ey0 = min(max((y0 * 3040 - crop[1]) / crop[3], 0), 1)
        ey1 = min(max((y1 * 3040 - crop[1]) / crop[3], 0), 1)
        assert d.score == pytest.approx(score)
        assert d.bbox.x1 == pytest.approx(x0, abs=0.002) and d.bbox.x2 == pytest.approx(x1, abs=0.002)
        assert d.bbox.y1 == pytest.approx(ey0, abs=0.002) and d.bbox.y2 == pytest.approx(ey1, abs=0.002)


def test_imx500_labels_from_a_file_win_and_dash_labels_close_up(standin, network):
    from edgecam.backends.imx500 import Imx500Backend, dense_or_indexed
    standin(scene=str(IMAGES / "pets.jpg"), imx500={"intrinsics": intrinsics()})
    with_file = Imx500Backend.load(str(network), str(COCO_LABELS), DetectOptions())
    assert with_file.labels[17] == "dog" and with_file.labels[0] == "person"
    labels = picamera2_labels()
    assert dense_or_indexed(labels, False)[17] == "dog" and 11 not in dense_or_indexed(labels, False)
    assert dense_or_indexed(labels, True)[11] == "stop sign"


def test_imx500_frames_without_outputs_are_no_information(standin, network, cpu):
    from edgecam.backends.imx500 import Imx500Backend
    from edgecam.pipeline import Pipeline
    standin(scene=str(IMAGES / "pets.jpg"),
            imx500={"intrinsics": intrinsics(), "frames_without_outputs": 3})
    backend = Imx500Backend.load(str(network), None, DetectOptions(threshold=0.5))
    frames = []
    cam = PicameraCapture(SourceSpec(uri="picamera", width=640, height=480), sensor=backend)
    for seq in range(5):
        main, _lores, detected = cam.read()
        frames.append(Frame(seq, time.time(), time.monotonic(), main, "picamera", None, detected))
    cam.release()
    assert [f.detected is None for f in frames] == [True, True, True, False, False]

    class Frames:
        live, name = False, "picamera"

        def frames(self):
            yield from frames

        def close(self):
            pass

    class Collect:
        name, results = "collect", []

        def handle(self, result):
            self.results.append(result)

        def close(self):
            pass

    sink = Collect()
    pipeline = Pipeline(Frames(), [backend], [sink], drop=False).start()
    assert pipeline.wait(30)
    # Not "nothing there": the first three frames reach no sink and count as skipped.
    assert [r.frame.seq for r in sink.results] == [3, 4]
    assert pipeline.stats.skipped == 3 and pipeline.stats.processed == 2
    assert [d.label for d in sink.results[0].detections] == ["dog", "dog"]
    assert sink.results[0].timings["sensor_dnn"] > 0 and sink.results[0].timings["sensor_dsp"] == 1.2


def _run(env, *args, timeout=180):
    full = dict(os.environ, **env)
    full.pop("NOTIFY_SOCKET", None)
    return subprocess.run([sys.executable, "-m", "edgecam", "run", *args], env=full,
                          capture_output=True, text=True, timeout=timeout)


def test_imx500_run_json_matches_the_cpu_run(standin, network, cli_env, tmp_path):
    env = standin(scene=str(IMAGES / "pets.jpg"),
                  imx500={"intrinsics": intrinsics("xy", True), "frames_without_outputs": 2})
    env = {**cli_env, **env}
    result = _run(env, "--detector", "imx500", "--model", str(network), "--source", "picamera",
                  "--width", "640", "--height", "480", "--json", "--max-frames", "2")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(ln) for ln in result.stdout.splitlines()]
    seqs = [ln["seq"] for ln in lines]
    # Frames 0 and 1 carry no outputs; a live camera may drop any later one under load.
    assert len(seqs) == 2 and 2 <= seqs[0] < seqs[1], "frames without outputs are not reported"
    assert "detector imx500" in result.stderr
    # The CPU backend on the frame the camera delivered (the same main stream).
    frame = cv2.resize(cv2.imread(str(IMAGES / "pets.jpg")), (640, 480), interpolation=cv2.INTER_AREA)
    still = tmp_path / "main.png"
    cv2.imwrite(str(still), frame)
    cpu = _run(cli_env, "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
               "--source", str(still), "--json")
    assert cpu.returncode == 0, cpu.stderr
    expected = json.loads(cpu.stdout.splitlines()[0])["detections"]
    for line in lines:
        assert_same(line["detections"], expected)
        assert set(line) == {"type", "seq", "ts", "source", "width", "height", "inference_ms",
                             "detections"}


def _notify_messages(sock, proc, limit=120.0):
    """(arrival time, text) of every sd_notify datagram until the process has exited."""
    messages = []
    sock.settimeout(1.0)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            messages.append((time.monotonic(), sock.recv(4096).decode()))
        except socket.timeout:
            if proc.poll() is not None:
                break
    return messages


def _extensions_before_ready(messages):
    """The EXTEND_TIMEOUT_USEC messages, checked to come before READY=1 and in time."""
    ready_at = next(t for t, m in messages if m.startswith("READY=1"))
    extends = [(t, m) for t, m in messages if "EXTEND_TIMEOUT_USEC=30000000" in m]
    assert len(extends) >= 2 and all(t < ready_at for t, _ in extends), messages
    times = [t for t, _ in extends] + [ready_at]
    assert max(b - a for a, b in zip(times, times[1:])) < 15, "each extension (30 s) is renewed in time"
    return extends


@pytest.fixture
def notify_listener():
    name = f"edgecam-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    yield sock, "@" + name
    sock.close()


def test_firmware_upload_extends_start_up_and_shows_progress(standin, network, cli_env, notify_listener):
    """A 7 s upload: systemd hears EXTEND_TIMEOUT_USEC (well inside each extension) until
    the first frame, then READY=1; the log shows the upload's progress."""
    sock, address = notify_listener
    env = {**cli_env, **standin(scene=str(IMAGES / "pets.jpg"),
                                imx500={"intrinsics": intrinsics(), "upload_s": 7.0})}
    env.update(NOTIFY_SOCKET=address, WATCHDOG_USEC="20000000")
    proc = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--detector", "imx500",
                             "--model", str(network), "--source", "picamera", "--width", "640",
                             "--height", "480", "--max-frames", "3"],
                            env=dict(os.environ, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    messages = _notify_messages(sock, proc)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    extends = _extensions_before_ready(messages)
    assert "uploading" in extends[0][1]
    assert "imx500: uploading network firmware" in err and "network firmware uploaded in" in err


@pytest.mark.parametrize("hardware,args,package", [
    ({"scene": str(IMAGES / "pets.jpg"), "imx500": {"intrinsics": None}},
     ["--detector", "imx500", "--model", "/nonexistent/net.rpk"], "imx500-all"),
    ({"scene": str(IMAGES / "pets.jpg"), "imx500": {"intrinsics": None}},
     ["--detector", "imx500"], "imx500-all"),
    ({"hailo": {"hailort": False}}, ["--detector", "hailo"], "hailo-all"),
    ({"hailo": {"hailort": True, "architecture": "HAILO10H"}},
     ["--detector", "hailo", "--labels", str(COCO_LABELS)], "hailo-h10-all"),
])
def test_missing_packages_or_files_are_one_line_and_no_cpu_fallback(standin, cli_env, hardware, args, package):
    env = {**cli_env, **standin(**hardware)}
    result = _run(env, *args, "--source", "picamera", "--json", "--max-frames", "1", timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("edgecam: error:")]
    assert len(errors) == 1 and package in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_imx500_without_picamera2_names_the_package(cli_env):
    result = _run(cli_env, "--detector", "imx500", "--source", "picamera", timeout=60)
    assert result.returncode == 2 and "imx500-all" in result.stderr
    assert "Traceback" not in result.stderr


def test_imx500_needs_the_pi_camera(standin, network, cli_env):
    env = {**cli_env, **standin(scene=str(IMAGES / "pets.jpg"), imx500={"intrinsics": intrinsics()})}
    result = _run(env, "--detector", "imx500", "--model", str(network),
                  "--source", str(IMAGES / "pets.jpg"), timeout=60)
    assert result.returncode == 2 and "--source picamera" in result.stderr


def test_imx500_network_without_sensor_postprocessing_is_refused(standin, network):
    from edgecam.backends.imx500 import Imx500Backend
    standin(scene=str(IMAGES / "pets.jpg"),
            imx500={"intrinsics": intrinsics(cpu={"post_processing": "nanodet"})})
    with pytest.raises(EdgecamError, match="nanodet"):
        Imx500Backend.load(str(network), None)


# --- Hailo ----------------------------------------------------------------------------------

@pytest.fixture
def hef(tmp_path):
    path = tmp_path / "yolov8s_h8l.hef"
    path.write_bytes(b"HEF")
    return path


@pytest.mark.parametrize("photo", PHOTOS)
def test_hailo_on_a_file_matches_the_cpu(standin, hef, cli_env, photo):
    env = {**cli_env, **standin(hailo={"hailort": True, "architecture": "HAILO8L",
                                       "input_shape": [640, 640, 3]})}
    source = str(IMAGES / photo)
    hailo = _run(env, "--detector", "hailo", "--model", str(hef), "--labels", str(COCO_LABELS),
                 "--source", source, "--json")
    assert hailo.returncode == 0, hailo.stderr
    cpu = _run(cli_env, "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS), "--source",
               source, "--json")
    got = json.loads(hailo.stdout.splitlines()[0])["detections"]
    expected = json.loads(cpu.stdout.splitlines()[0])["detections"]
    assert_same(got, expected)
    coco80 = [n for n in COCO_LABELS_90.read_text().splitlines() if n != "n/a"]
    assert all(coco80[d["class_id"]] == d["label"] for d in got), "YOLO's 80-class ids"


def test_hailo_takes_the_pi_cameras_lores_stream_as_is(standin, hef, cpu):
    from edgecam.backends.hailo import HailoBackend
    standin(camera="imx708", scene=str(IMAGES / "pets.jpg"),
            hailo={"hailort": True, "architecture": "HAILO8", "input_shape": [640, 640, 3]})
    backend = HailoBackend.load(str(hef), str(COCO_LABELS), DetectOptions(threshold=0.5))
    assert backend.input_size == (640, 640)
    cam = PicameraCapture(SourceSpec(uri="picamera", width=1280, height=720,
                                     model_input_size=backend.input_size))
    main, lores, *_ = cam.read()
    cam.release()
    assert cam.cam.config["lores"] == {"size": (640, 640), "format": "YUV420"}
    frame = Frame(0, time.time(), time.monotonic(), main, "picamera", lores)
    tensor, transform = backend.prepare(frame)
    found = backend.postprocess(backend.invoke(tensor), transform)
    assert (backend.device.runs[-1] == cv2.cvtColor(lores, cv2.COLOR_BGR2RGB)).all()
    assert_same(found, cpu.detect(frame).detections)


def test_hailo_default_model_follows_the_architecture(standin):
    from edgecam.backends.hailo import HailoBackend
    standin(hailo={"hailort": True, "architecture": "HAILO10H"})
    with pytest.raises(EdgecamError, match="yolov8m_h10.hef.*hailo-h10-all"):
        HailoBackend.load(None, str(COCO_LABELS))
    standin(hailo={"hailort": True, "architecture": None})
    with pytest.raises(EdgecamError, match="no Hailo accelerator found"):
        HailoBackend.load(None, str(COCO_LABELS))


def test_probe_reports_the_sensor_times_beside_the_cpu_time(standin, network):
    from edgecam.backends.imx500 import Imx500Backend
    from edgecam.probe.sensor import probe_imx500
    standin(scene=str(IMAGES / "grace_hopper.bmp"),
            imx500={"intrinsics": intrinsics(), "frames_without_outputs": 2})
    backend = Imx500Backend.load(str(network), None, DetectOptions())
    report = probe_imx500(backend, runs=5, spec=SourceSpec(uri="picamera", width=640, height=480))
    assert report["frames"] == 7 and report["frames_without_outputs"] == 2
    # The stand-in reports its CPU SSD's invoke time as the DNN time, 1.2 ms as the DSP's.
    assert report["sensor_dnn"]["p50_ms"] > 1 and report["sensor_dsp"]["p50_ms"] == 1.2
    assert report["cpu_per_frame"]["p50_ms"] > 0


def test_probe_command_for_the_imx500(standin, network, cli_env):
    env = dict(os.environ, **cli_env, **standin(scene=str(IMAGES / "pets.jpg"),
                                                 imx500={"intrinsics": intrinsics()}))
    result = subprocess.run([sys.executable, "-m", "edgecam", "probe", "--detector", "imx500",
                             "--model", str(network), "--runs", "3", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames"] == 3 and report["sensor_dsp"]["p50_ms"] == 1.2
    assert report["sensor_dnn"]["p50_ms"] > 0 and report["cpu_per_frame"]["p50_ms"] > 0
    text = subprocess.run([sys.executable, "-m", "edgecam", "probe", "--detector", "imx500",
                           "--model", str(network), "--runs", "3"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert "sensor DNN" in text.stdout and "CPU per frame" in text.stdout


def test_hailo_on_a_network_stream(standin, hef, cli_env):
    """A stream's frames are resized on the CPU for the accelerator, like a file's."""
    from mjpeg_server import MjpegCamera, free_port
    photo = cv2.imread(str(IMAGES / "pets.jpg"))
    camera = MjpegCamera(photo, free_port()).start()
    try:
        env = {**cli_env, **standin(hailo={"hailort": True, "architecture": "HAILO8L"})}
        result = _run(env, "--detector", "hailo", "--model", str(hef), "--labels", str(COCO_LABELS),
                      "--source", camera.url, "--json", "--max-frames", "2")
    finally:
        camera.stop()
    assert result.returncode == 0, result.stderr
    # The CPU backend on the same (JPEG-decoded) frame.
    still = cv2.imdecode(np.frombuffer(camera.jpeg, np.uint8), cv2.IMREAD_COLOR)
    cpu = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=2)
    expected = cpu.detect(Frame(0, 0.0, 0.0, still)).detections
    for line in result.stdout.splitlines():
        assert_same(json.loads(line)["detections"], expected)


def test_imx500_missing_camera_is_one_line(standin, network, cli_env):
    env = {**cli_env, **standin(camera="imx708", scene=str(IMAGES / "pets.jpg"))}
    result = _run(env, "--detector", "imx500", "--model", str(network), "--source", "picamera",
                  timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert "cannot open the IMX500 AI Camera (IMX500: Requested camera dev-node not found)" in result.stderr
    assert "imx500-all" in result.stderr and "Traceback" not in result.stderr


def test_watchdog_is_fed_while_the_camera_is_busy_starting(notify_listener):
    """After READY, a re-upload (no frames for a while) keeps WATCHDOG=1 coming; once it is
    over and frames still do not come, the pings stop, so a dead camera is restarted."""
    import threading
    from edgecam.app import supervise
    from edgecam.pipeline import Pipeline
    from edgecam.sources import Source
    sock, address = notify_listener
    busy = threading.Event()

    class OneFrameThenSilence(Source):
        live, name = True, "camera"

        def frames(self):
            yield self._frame(cv2.imread(str(IMAGES / "pets.jpg")))
            busy.set()  # the camera now re-uploads its firmware: no frames meanwhile
            self._closed.wait()

    detector = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=1)
    pipeline = Pipeline(OneFrameThenSilence(), [detector], [], drop=True)
    stop = threading.Event()
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}  # pings every 0.25 s at most
    runner = threading.Thread(target=supervise, args=(pipeline, stop, None, env,
                                                      lambda: "uploading" if busy.is_set() else None))
    runner.start()
    try:
        received, deadline = [], time.monotonic() + 30
        sock.settimeout(0.5)
        while time.monotonic() < deadline and not any(m.startswith("READY=1") for _, m in received):
            try:
                received.append((time.monotonic(), sock.recv(4096).decode()))
            except socket.timeout:
                pass
        assert busy.wait(10)

        def pings(seconds):
            out, end = 0, time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    out += sock.recv(4096).decode() == "WATCHDOG=1"
                except socket.timeout:
                    pass
            return out
        assert pings(2.0) >= 4, "fed while busy, though no frame is processed"
        busy.clear()
        pings(0.6)  # one in flight may still arrive
        assert pings(1.5) == 0, "no frames and nothing starting: the watchdog must starve"
    finally:
        stop.set()
        runner.join(30)


def test_the_stand_in_leaves_no_picamera2_behind():
    """Runs after the tests above (same file): this machine has no picamera2 again."""
    from edgecam.sources import picamera_available
    assert "picamera2" not in sys.modules and not picamera_available()


# --- the AI Camera under a user outside the sudo group (the service's) ---------------------------
# /sys/kernel/debug, where picamera2 reads the firmware upload progress, is root:sudo 0750 on
# Raspberry Pi OS. The stood-in debugfs is really unreadable: its folder belongs to nobody with
# mode 0750, and edgecam runs as root with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped
# (setpriv), so the kernel checks permissions for it as for any other user.
NO_FILE_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
                    "--inh-caps", "-dac_override,-dac_read_search", "--"]
OLD_PICAMERA2, NEW_PICAMERA2 = "0.3.34", "0.3.35"


def _unprivileged(cmd):
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's file-permission override")
    return [*NO_FILE_OVERRIDE, *cmd]


@pytest.fixture
def debugfs(tmp_path):
    """debugfs(readable[, folder]) -> a stood-in /sys/kernel/debug with the AI Camera's
    progress files."""
    made = []

    def make(readable: bool, folder=None):
        folder = folder or tmp_path / f"debug-{len(made)}"
        (folder / "imx500-fw:10-001a").mkdir(parents=True)
        (folder / "rp2040-spi:10-0040").mkdir()
        (folder / "imx500-fw:10-001a" / "fw_progress").write_text("0 0 0\n")
        (folder / "rp2040-spi:10-0040" / "transfer_progress").write_text("0\n")
        if not readable:
            if os.geteuid() == 0:
                os.chown(folder, 65534, 65534)
            folder.chmod(0o750 if os.geteuid() == 0 else 0)
        made.append(folder)
        return folder
    yield make
    for folder in made:
        folder.chmod(0o755)


def test_old_picamera2_that_cannot_read_the_upload_progress_is_one_line(standin, network, cli_env,
                                                                         debugfs):
    env = {**cli_env, **standin(scene=str(IMAGES / "pets.jpg"), picamera2=OLD_PICAMERA2,
                                imx500={"intrinsics": intrinsics(),
                                        "debugfs": str(debugfs(readable=False))})}
    result = subprocess.run(_unprivileged([sys.executable, "-m", "edgecam", "run", "--detector",
                                           "imx500", "--model", str(network), "--source",
                                           "picamera", "--max-frames", "1"]),
                            env=dict(os.environ, **env), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert "cannot read the firmware upload progress" in line and "fw_progress" in line
    assert "sudo group" in line and "0.3.35" in line and "python3-picamera2" in line
    assert "ribbon" not in line and "Traceback" not in result.stderr


def test_old_picamera2_reading_the_upload_progress_still_runs(standin, network, cli_env, debugfs):
    env = {**cli_env, **standin(scene=str(IMAGES / "pets.jpg"), picamera2=OLD_PICAMERA2,
                                imx500={"intrinsics": intrinsics(), "upload_s": 1.0,
                                        "debugfs": str(debugfs(readable=True))})}
    result = subprocess.run(_unprivileged([sys.executable, "-m", "edgecam", "run", "--detector",
                                           "imx500", "--model", str(network), "--source",
                                           "picamera", "--json", "--max-frames", "1"]),
                            env=dict(os.environ, **env), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "network firmware uploaded in" in result.stderr
    assert [d["label"] for d in json.loads(result.stdout)["detections"]] == ["dog", "dog"]


def test_new_picamera2_without_upload_progress_waits_for_outputs_and_extends_start_up(
        standin, network, cli_env, notify_listener, debugfs):
    """picamera2 0.3.35+ uploads without progress: one warning, then `loading` until the first
    frame with outputs, so systemd hears EXTEND_TIMEOUT_USEC all through the 7 s upload."""
    sock, address = notify_listener
    env = {**cli_env, **standin(scene=str(IMAGES / "pets.jpg"), picamera2=NEW_PICAMERA2,
                                imx500={"intrinsics": intrinsics(), "upload_s": 7.0,
                                        "debugfs": str(debugfs(readable=False))})}
    env.update(NOTIFY_SOCKET=address, WATCHDOG_USEC="20000000")
    proc = subprocess.Popen(_unprivileged([sys.executable, "-m", "edgecam", "run", "--detector",
                                           "imx500", "--model", str(network), "--source",
                                           "picamera", "--width", "640", "--height", "480",
                                           "--json", "--max-frames", "3"]),
                            env=dict(os.environ, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    messages = _notify_messages(sock, proc)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert err.count("firmware upload progress is not readable for user") == 1, err
    extends = _extensions_before_ready(messages)
    assert "progress not readable" in extends[0][1]
    assert "imx500: the network runs" in err
    assert all(json.loads(ln)["detections"] for ln in out.splitlines())


def test_waiting_without_upload_progress_is_bounded(standin, network):
    """No progress (here: debugfs not mounted) and no outputs: `loading` ends after
    BLIND_UPLOAD_S, so the watchdog is no longer fed for a camera that never delivers."""
    from edgecam.backends import imx500
    standin(scene=str(IMAGES / "pets.jpg"), picamera2=NEW_PICAMERA2,
            imx500={"intrinsics": intrinsics(), "upload_s": 3600.0, "debugfs": "/nonexistent"})
    loaded = imx500.Imx500Backend.load(str(network), None, DetectOptions(threshold=0.5))
    assert not imx500.progress_readable(loaded.device)
    now = [0.0]
    backend = imx500.Imx500Backend(loaded.device, loaded.intrinsics, loaded.labels, loaded.options,
                                   loaded.network_file, clock=lambda: now[0])
    cam = PicameraCapture(SourceSpec(uri="picamera", width=640, height=480), sensor=backend)
    try:
        assert "progress not readable" in backend.loading
        for now[0] in (1.0, imx500.BLIND_UPLOAD_S - 1):
            assert cam.read()[2] is None and backend.loading
        now[0] = imx500.BLIND_UPLOAD_S
        assert cam.read()[2] is None and backend.loading is None
    finally:
        cam.release()


def test_old_picamera2_without_debugfs_names_it(standin, network):
    from edgecam.backends.imx500 import Imx500Backend
    standin(scene=str(IMAGES / "pets.jpg"), picamera2=OLD_PICAMERA2,
            imx500={"intrinsics": intrinsics(), "debugfs": "/nonexistent"})
    with pytest.raises(EdgecamError) as raised:
        Imx500Backend.load(str(network), None)
    assert "is not mounted" in str(raised.value) and "0.3.35" in str(raised.value)
    assert "ribbon" not in str(raised.value)


@pytest.mark.parametrize("release,readable,expected", [
    (OLD_PICAMERA2, False, "warn"), (NEW_PICAMERA2, False, "ok"), (OLD_PICAMERA2, True, None)])
def test_doctor_warns_when_picamera2_cannot_go_on_without_the_progress(
        standin, cli_env, tmp_path, debugfs, release, readable, expected):
    root = tmp_path / "root"
    debugfs(readable, root / "sys/kernel/debug")
    env = {**cli_env, **standin(picamera2=release, imx500={"intrinsics": intrinsics()})}
    code = ("import json, sys; from pathlib import Path; "
            "from edgecam.doctor.accelerators import check_imx500_progress, imx500_progress_fix; "
            "print(json.dumps([r.__dict__ for r in check_imx500_progress(Path(sys.argv[1]), "
            "imx500_progress_fix)]))")
    result = subprocess.run(_unprivileged([sys.executable, "-c", code, str(root)]),
                            env=dict(os.environ, **env), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["status"] for r in rows] == ([expected] if expected else [])
    if expected == "warn":
        assert "0.3.35" in rows[0]["fix"] and "python3-picamera2" in rows[0]["fix"]


def test_new_picamera2_without_sudo_installed_names_it(standin, network):
    """picamera2 0.3.35+ falls back to `sudo -n` and catches only CalledProcessError: with no
    sudo at all, IMX500() raises FileNotFoundError for "sudo" (here: debugfs not mounted)."""
    from edgecam.backends.imx500 import Imx500Backend
    standin(scene=str(IMAGES / "pets.jpg"), picamera2=NEW_PICAMERA2,
            imx500={"intrinsics": intrinsics(), "debugfs": "/nonexistent", "sudo": False})
    with pytest.raises(EdgecamError) as raised:
        Imx500Backend.load(str(network), None)
    assert "`sudo -n`, is not installed" in str(raised.value)
    assert "`apt install sudo`" in str(raised.value) and "ribbon" not in str(raised.value)


def test_a_run_releases_the_hailo_device_once_whether_it_ends_or_fails_to_start(standin, hef, tmp_path):
    """picamera2's Hailo.close() releases the shared VDevice (and a second close fails): a run
    closes its backend exactly once, after the frames, and also when its setup fails."""
    import io
    from edgecam.app import run
    from edgecam.config import from_mapping
    standin(hailo={"hailort": True, "architecture": "HAILO8L", "input_shape": [640, 640, 3]})
    from picamera2.devices import Hailo
    model = {"detector": "hailo", "path": str(hef), "labels": str(COCO_LABELS)}
    out = io.StringIO()
    summary = run(from_mapping({"model": model, "source": {"uri": str(IMAGES / "pets.jpg")}}),
                  json_output=True, stdout=out)
    assert summary["processed"] == 1 and json.loads(out.getvalue().splitlines()[0])["detections"]
    assert (Hailo.TARGET, Hailo.TARGET_REF_COUNT) == (None, 0), "released once after the run"
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    failing_setups = [
        {"source": {"uri": str(tmp_path / "missing.mp4")}},  # open_source fails
        {"source": {"uri": str(IMAGES / "pets.jpg")}, "mqtt": {"host": "127.0.0.1"},
         "service": {"state_dir": str(not_a_dir / "state")}},  # mqtt_side fails
    ]
    for setup in failing_setups:
        with pytest.raises(EdgecamError):
            run(from_mapping({"model": model, **setup}), json_output=True, stdout=io.StringIO())
        assert (Hailo.TARGET, Hailo.TARGET_REF_COUNT) == (None, 0), setup


def test_imx500_decodes_no_candidate_below_the_lowest_threshold_of_the_run(standin, network):
    """Candidates no threshold of the run would keep are dropped on the capture thread before
    convert_inference_coords; what a frame yields is unchanged."""
    from edgecam.app import lowest_threshold
    from edgecam.backends.imx500 import Imx500Backend
    from edgecam.config import from_mapping
    results = {}
    for floor in (0.5, 0.0):
        standin(scene=str(IMAGES / "pets.jpg"),
                imx500={"intrinsics": intrinsics(), "input_size": [320, 320]})
        backend = Imx500Backend.load(str(network), None, DetectOptions(threshold=0.5),
                                     score_floor=None if floor == 0.5 else floor)
        converted = []
        convert = backend.device.convert_inference_coords
        backend.device.convert_inference_coords = lambda *a, **k: converted.append(a) or convert(*a, **k)
        _cam, frame = capture_once(backend)
        results[floor] = (len(converted), frame.detected.candidates, imx500_detections(backend, frame))
    (above, kept, found), (every, all_candidates, found_all) = results[0.5], results[0.0]
    assert every > above == len(kept) > 0, "candidates below 0.5 reach the sensor's outputs"
    assert all(c.score >= 0.5 for c in kept)
    assert kept == tuple(c for c in all_candidates if c.score >= 0.5)
    assert found == found_all
    # set/threshold over MQTT may lower the threshold to its minimum at run time.
    assert lowest_threshold(from_mapping({"detect": {"threshold": 0.6}})) == 0.6
    assert lowest_threshold(from_mapping({"detect": {"threshold": 0.6},
                                          "mqtt": {"host": "127.0.0.1"}})) == 0.0


# --- the registry's loaders (edgecam.backends) ----------------------------------------------

def test_the_hailo_loader_gives_a_backend_without_a_sensor(standin, hef):
    standin(scene=str(IMAGES / "pets.jpg"),
            hailo={"hailort": True, "architecture": "HAILO8L", "input_shape": [640, 640, 3]})
    request = registry.LoadRequest(str(hef), None, fallback_labels=str(COCO_LABELS))
    [hailo] = registry.load("hailo", request)
    try:
        assert isinstance(hailo, registry.Backend)
        assert hailo.sensor is None and hailo.labels[0] == "person", "the fallback labels"
        assert "HAILO8L" in hailo.describe()
    finally:
        hailo.close()


def test_the_imx500_loader_gives_a_backend_that_is_its_own_sensor(standin, network):
    standin(scene=str(IMAGES / "pets.jpg"),
            imx500={"intrinsics": intrinsics(), "input_size": [320, 320]})
    request = registry.LoadRequest(str(network), None, DetectOptions(threshold=0.5),
                                   score_floor=0.2, fallback_labels=str(COCO_LABELS))
    [imx500] = registry.load("imx500", request)
    assert isinstance(imx500, registry.Backend)
    assert imx500.sensor is imx500 and imx500.score_floor == 0.2
    assert imx500.sensor.controls() == {"FrameRate": 30.0}
    assert "IMX500" in imx500.describe()
