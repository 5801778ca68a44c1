"""The preview's events list and clip player in real headless Chromium, served by a real
`edgecam run --web --clips` (real model, a looping video of a cat walking by): the list shows
the run's clips newest first with label, time, length and snapshot; a clip plays in the
<video> (readyState >= 2, currentTime advances) and the canvas draws the sidecar's box."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request

import pytest

import scenes
from browser import chromium
from conftest import COCO_LABELS, SSD_MODEL
from mqtt_fixtures import free_port
import waiting

TOKEN = "clips-browser-token"


def wait_until(predicate, timeout=30.0, step=0.2):
    """Polls until the page or server answers: a request that fails counts as not yet."""
    return waiting.wait_until(predicate, timeout, step, ignoring=(Exception,))


def api_clips(base):
    with urllib.request.urlopen(f"{base}api/clips?token={TOKEN}", timeout=5) as r:
        return json.loads(r.read())["clips"]


@pytest.fixture
def service(tmp_path, edgecam_cmd, cli_env):
    """`edgecam run --web --clips` on a looping cat video; yields (base URL, end events so far)."""
    frames = scenes.cat_frames(still_before=10, moving=30, still_after=25)
    video = scenes.write_video(tmp_path / "cat.avi", frames, 10.0)
    config = tmp_path / "c.toml"
    config.write_text("[clips]\npre_roll = 0.5\npost_roll = 0.5\n")
    port = free_port()
    proc = subprocess.Popen(
        [*edgecam_cmd, "run", "--config", str(config), "--model", str(SSD_MODEL),
         "--labels", str(COCO_LABELS), "--source", str(video), "--loop", "--realtime",
         "--threads", "1", "--track", "--watch", "cat", "--clips", str(tmp_path / "clips"),
         "--web", f"127.0.0.1:{port}", "--json"],
        env=dict(cli_env, EDGECAM_WEB_TOKEN=TOKEN), stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)
    ends = []

    def read():
        for line in proc.stdout:
            ev = json.loads(line)
            if ev.get("type") == "event" and ev["event"] == "end":
                ends.append(ev)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}/"
    try:
        assert wait_until(lambda: len(api_clips(base)) >= 2, 90), "no two clips within 90 s"
        yield base, ends
    finally:
        proc.terminate()
        proc.wait(20)


def test_events_list_and_player(service, tmp_path):
    base, ends = service
    clips = api_clips(base)
    assert [c["start"] for c in clips] == sorted((c["start"] for c in clips), reverse=True)
    ended = {e["clip"] for e in ends}
    assert {c["clip"] for c in clips} <= ended  # every listed clip is an event of this run
    driver = chromium(tmp_path / "profile")
    try:
        driver.get(f"{base}?token={TOKEN}")
        items = wait_until(lambda: driver.execute_script(
            "const li = document.querySelectorAll('#event-list li');"
            "return li.length >= 2 && [...li].every(x => x.querySelector('img').naturalWidth > 0)"
            " ? [...li].map(x => [x.dataset.clip, x.querySelector('.label').textContent,"
            " x.querySelector('.muted').textContent]) : null"), 20)
        assert items, "the events list did not show the clips with their thumbnails"
        listed = api_clips(base)
        shown = [clip for clip, _, _ in items]
        assert shown == [c["clip"] for c in listed][:len(shown)]  # newest first, as the API
        assert all(label == "cat" for _, label, _ in items)
        assert all(when.endswith(" s") for _, _, when in items)

        driver.execute_script("document.querySelector('#event-list li').click()")
        ready = wait_until(lambda: driver.execute_script(
            "const v = document.getElementById('clip'); return v.readyState >= 2 && !v.error"), 15)
        assert ready, driver.execute_script("const v = document.getElementById('clip');"
                                            "return [v.readyState, v.error && v.error.code]")
        t1 = driver.execute_script("return document.getElementById('clip').currentTime")
        assert wait_until(lambda: driver.execute_script(
            "return document.getElementById('clip').currentTime") > t1 + 0.3, 10)
        # The canvas draws the sidecar's box: its pixels along the box's left edge are set.
        drawn = wait_until(lambda: driver.execute_script("""
            const c = document.getElementById('boxes'), b = window.drawnBoxes;
            if (!b.length || !c.width) return null;
            const [x1, y1, x2, y2] = b[0].box, ctx = c.getContext('2d');
            const x = Math.round(x1 * c.width), ym = Math.round((y1 + y2) / 2 * c.height);
            const edge = ctx.getImageData(Math.max(0, x - 2), ym, 5, 1).data;
            const inside = ctx.getImageData(Math.round((x1 + x2) / 2 * c.width), ym, 1, 1).data;
            let lit = 0;
            for (let i = 3; i < edge.length; i += 4) lit = Math.max(lit, edge[i]);
            return [b[0].label, lit, inside[3]];"""), 15, 0.05)
        assert drawn is not None, "no box was drawn over the clip"
        label, edge_alpha, inside_alpha = drawn
        assert label == "cat" and edge_alpha > 200 and inside_alpha == 0
    finally:
        driver.quit()


def test_clip_files_follow_the_token_rule(service):
    base, _ = service
    clip = api_clips(base)[0]
    for path in (f"clips/{clip['clip']}", f"clips/{clip['name']}.json", "api/clips"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}{path}", timeout=5)
        assert refused.value.code == 401
    req = urllib.request.Request(f"{base}clips/{clip['clip']}?token={TOKEN}",
                                 headers={"Range": "bytes=0-99"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 206 and len(r.read()) == 100
        assert r.headers["Content-Range"].endswith(f"/{clip['bytes'] - _side_bytes(base, clip)}")
    for bad in ("../c.toml", "x.mp4", f"{clip['name']}.mp4.part", "%2e%2e/c.toml"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}clips/{bad}?token={TOKEN}", timeout=5)
        assert missing.value.code == 404


def _side_bytes(base, clip):
    total = 0
    for suffix in (".json", ".jpg"):
        with urllib.request.urlopen(f"{base}clips/{clip['name']}{suffix}?token={TOKEN}", timeout=5) as r:
            total += len(r.read())
    return total
