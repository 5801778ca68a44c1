"""The preview page in headless Chromium, served by a real `edgecam run --web` (real model,
looping video with a person, real mosquitto): the page loads, the stream changes, the person
box is drawn where the detector put it, the stats update and show MQTT connected.
Screenshot kept as artifacts/web_preview.png."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request

import cv2
import numpy as np
import pytest

from browser import box_edge_fraction, chromium, counter_clip
from conftest import COCO_LABELS, IMAGES, ROOT, SSD_MODEL
from mqtt_fixtures import free_port
import waiting

TOKEN = "browser-test-token"
ARTIFACTS = ROOT / "artifacts"


def wait_until(predicate, timeout=20.0, step=0.1):
    """Polls until the page or server answers: a request that fails counts as not yet."""
    return waiting.wait_until(predicate, timeout, step, ignoring=(Exception,))


def status(base):
    with urllib.request.urlopen(f"{base}api/status?token={TOKEN}", timeout=5) as r:
        return json.loads(r.read())


@pytest.fixture
def service(tmp_path, edgecam_cmd, cli_env, mqtt_broker):
    """`edgecam run` on a looping Grace Hopper clip with --web and --mqtt; yields (base URL, still frame)."""
    still = counter_clip(tmp_path / "hopper.mp4", cv2.imread(str(IMAGES / "grace_hopper.bmp")))
    port = free_port()
    env = dict(cli_env, EDGECAM_WEB_TOKEN=TOKEN)
    proc = subprocess.Popen(
        [*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
         "--source", str(tmp_path / "hopper.mp4"), "--loop", "--realtime", "--threads", "1",
         "--web", f"127.0.0.1:{port}", "--mqtt", f"{mqtt_broker.host}:{mqtt_broker.port}",
         "--device-id", "webcam", "--watch", "person"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/"
    try:
        up = wait_until(lambda: status(base)["processed"] > 0 and status(base)["mqtt"]["connected"], 30)
        if not up:
            proc.kill()
            pytest.fail(f"edgecam run --web did not come up: {proc.stderr.read().decode()[-2000:]}")
        yield base, still
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path / "profile")
    yield driver
    driver.quit()


def element_image(element) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(element.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)


def test_preview_page_in_headless_chromium(service, browser):
    base, still = service
    browser.get(base)  # no token: refused
    assert "token required" in browser.find_element("tag name", "body").text
    browser.get(f"{base}?token={TOKEN}")
    text = lambda i: browser.find_element("id", i).text  # noqa: E731
    assert wait_until(lambda: text("state") == "live"), f"page never went live: {text('state')!r}"
    stream = browser.find_element("id", "stream")
    assert wait_until(lambda: browser.execute_script("return arguments[0].naturalWidth", stream) == 640)

    # The stream is live: two screenshots of the image differ (frame counter, overlay).
    first = element_image(stream)
    time.sleep(1.0)
    second = element_image(stream)
    assert first.shape == second.shape and first.shape[1] >= 600
    assert np.abs(first.astype(int) - second.astype(int)).max() > 60

    # The person box is drawn where the detector found the person: its colour along the
    # box's left edge in the browser's pixels, absent there in the raw frame.
    person = max((d for d in status(base)["detections"] if d["label"] == "person"),
                 key=lambda d: d["score"])
    shown = box_edge_fraction(second, person["box"])
    raw = box_edge_fraction(cv2.resize(still, (second.shape[1], second.shape[0])), person["box"])
    print(f"person box edge: {shown:.2f} of rows in the browser, {raw:.2f} in the raw frame")
    assert shown > 0.6 and raw < 0.2, (shown, raw)

    # The stats text updates from /api/status.
    frame1, updated1 = text("frame"), text("updated")
    assert wait_until(lambda: text("frame") != frame1 and text("updated") != updated1, 10)
    assert float(text("fps")) > 0
    assert float(text("inference").split()[0]) > 0 and text("percentiles").endswith(" ms")
    assert "person" in text("detections")
    assert text("mqtt") == "MQTT connected"
    assert text("spool").isdigit()
    assert text("viewers").startswith("1 of ")

    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "web_preview.png"))
    assert (ARTIFACTS / "web_preview.png").stat().st_size > 10_000

