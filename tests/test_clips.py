"""Event clips, for real: `edgecam run` with the real model on a video of known events,
clips encoded by x264 through PyAV, checked by decoding them back with PyAV.

Each event yields a clip from pre_roll before its first sighting to post_roll after its last
(within one frame interval), whose frames are the source's (PSNR >= 30 dB, matched through
the sidecar's frame numbers); overlapping events share a clip; the budget deletes the oldest
clips; a SIGKILL mid-clip leaves only a `.part` that nothing lists and the next start deletes.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import scenes as tv
from conftest import COCO_LABELS, SSD_MODEL

from edgecam.clips.encoder import FrameEncoder
from edgecam.clips.packets import PacketRing
from edgecam.clips.store import list_clips, prune
from edgecam.clips.writer import ClipWriter

FPS = 10.0
PRE, POST = 1.0, 1.0


def known_events_frames(size=(640, 480)):
    """A cat walks right; 4 s of nothing; the mirrored cat walks left; 3 s of nothing; two
    cats cross (two overlapping events, one clip); then nothing. Three clips, four events."""
    w, h = size
    bg = tv.background(w, h)
    cat = tv.crop("cat_720p.jpg", tv.CAT_BOX, 220 / (tv.CAT_BOX[2] - tv.CAT_BOX[0]))
    mirrored = cat[:, ::-1].copy()
    frames = [bg.copy() for _ in range(20)]
    for obj, forward in ((cat, True), (mirrored, False)):
        for i in range(25):
            f = bg.copy()
            x = int(i * (w - obj.shape[1]) / 24)
            tv.paste(f, obj, x if forward else w - obj.shape[1] - x, h - obj.shape[0] - 10)
            frames.append(f)
        frames += [bg.copy() for _ in range(40)]
    frames += tv.crossing_frames(moving=30, still_after=30, size=size)
    return frames



def run_with_clips(tmp: Path, video: Path, folder: Path, extra: str = ""):
    """`edgecam run --track --watch cat --clips FOLDER --json` over `video`, live-paced, with
    PRE/POST rolls (and `extra` [clips] lines); (its end events, its stderr)."""
    config = tmp / "clips.toml"
    config.write_text(f"[clips]\npre_roll = {PRE}\npost_roll = {POST}\n{extra}")
    env = dict(os.environ, EDGECAM_HOME=str(tmp / "home"), STATE_DIRECTORY=str(tmp / "state"))
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.run(
        [sys.executable, "-m", "edgecam", "run", "--config", str(config), "--model", str(SSD_MODEL),
         "--labels", str(COCO_LABELS), "--source", str(video), "--realtime", "--no-drop",
         "--threads", "1", "--track", "--watch", "cat", "--clips", str(folder), "--json"],
        env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return [e for e in lines if e.get("type") == "event" and e["event"] == "end"], proc.stderr

@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One run over the known-events video; (source frames, end events, clips folder, stderr)."""
    tmp = tmp_path_factory.mktemp("clips")
    frames = known_events_frames()
    video = tv.write_video(tmp / "known.avi", frames, FPS)
    cap = cv2.VideoCapture(str(video))
    decoded = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        decoded.append(img)
    folder = tmp / "clips"
    ends, stderr = run_with_clips(tmp, video, folder)
    return decoded, ends, folder, stderr


def decode(path: Path):
    """(frame times in s, BGR frames) of a clip, decoded by PyAV."""
    with av.open(str(path)) as c:
        frames = [(float(f.time), f.to_ndarray(format="bgr24")) for f in c.decode(video=0)]
        duration = c.duration / 1e6
    return [t for t, _ in frames], [img for _, img in frames], duration


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def test_each_event_has_a_clip_overlapping_ones_share_it(recorded):
    _, ends, folder, _ = recorded
    assert len(ends) == 4, [(e["label"], e["first_seen"]) for e in ends]
    names = [e["clip"] for e in ends]
    assert len(set(names)) == 3  # the two crossing cats share one
    assert names[-1] == names[-2]
    listed = {c.name + ".mp4" for c in list_clips(folder)}
    assert listed == set(names)
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]


def test_clip_spans_pre_roll_event_post_roll_within_one_frame(recorded):
    _, ends, folder, _ = recorded
    for clip in sorted({e["clip"] for e in ends}):
        events = [e for e in ends if e["clip"] == clip]
        side = json.loads((folder / clip).with_suffix(".json").read_text())
        times, _, duration = decode(folder / clip)
        interval = max(b["t"] - a["t"] for a, b in zip(side["frames"], side["frames"][1:]))
        first_seen = min(e["first_seen"] for e in events)
        last_seen = max(e["last_seen"] for e in events)
        expected = (last_seen - first_seen) + PRE + POST
        assert abs(duration - expected) <= interval + 1e-3, (clip, duration, expected, interval)
        # The first frame shown is pre_roll before the first sighting: the clip starts there
        # (an edit list skips the pre-roll keyframe's earlier frames).
        assert side["start"] == pytest.approx(first_seen - PRE, abs=1e-3)
        assert 0.0 <= times[0] <= interval
        assert len(times) == len(side["frames"])
        assert events[-1]["clip_seconds"] == pytest.approx(expected, abs=0.02)


def test_clip_frames_are_the_source_frames(recorded):
    decoded, ends, folder, _ = recorded
    for clip in sorted({e["clip"] for e in ends}):
        side = json.loads((folder / clip).with_suffix(".json").read_text())
        _, images, _ = decode(folder / clip)
        worst = min(psnr(img, decoded[f["seq"]]) for img, f in zip(images, side["frames"]))
        assert worst >= 30.0, (clip, worst)
        # Another frame of the source is far off: the match is not by chance.
        assert psnr(images[len(images) // 2], decoded[side["frames"][0]["seq"] + 15]) < worst


def test_sidecar_has_the_tracked_boxes(recorded):
    _, ends, folder, _ = recorded
    for end in ends:
        side = json.loads((folder / end["clip"]).with_suffix(".json").read_text())
        mine = [b for f in side["frames"] for b in f["boxes"] if b["id"] == end["id"]]
        assert len(mine) >= 10
        # Boxed from the first sighting, not only from the start (min_age, 0.4 s, later).
        boxed = [f["t"] for f in side["frames"] if any(b["id"] == end["id"] for b in f["boxes"])]
        assert boxed[0] == pytest.approx(end["first_seen"] - side["start"], abs=1e-3), (boxed[:3], end)
        assert all(b["label"] == end["label"] for b in mine)
        assert mine[-1]["box"] == pytest.approx(end["box"], abs=1e-3)
        assert any(e["id"] == end["id"] and e["label"] == "cat" for e in side["events"])
        # The snapshot thumbnail of the clip.
        assert cv2.imread(str((folder / end["clip"]).with_suffix(".jpg"))) is not None


# -- parts, on real encoded packets --------------------------------------------------------

def encoded(n: int, fps: float = 10.0, size=(320, 240), keyframe_interval: float = 1.0, t0=1000.0):
    enc = FrameEncoder(*size, fps, keyframe_interval=keyframe_interval)
    bg = tv.background(*size)
    out = []
    for i in range(n):
        f = bg.copy()
        cv2.putText(f, str(i), (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        out += enc.encode(f, t0 + i / fps, i)
    return out


def test_ring_keeps_seconds_and_starts_on_a_keyframe():
    packets = encoded(60)
    assert [p.seq for p in packets] == list(range(60))
    assert [p.seq for p in packets if p.key] == [0, 10, 20, 30, 40, 50]
    ring = PacketRing(seconds=2.5, max_bytes=10 ** 9)
    for p in packets:
        ring.add(p)
    held = ring.since(float("-inf"))
    assert held[0].key and held[0].seq == 40  # 5.9 - 2.5 = 3.4: back to the keyframe at 4.0
    assert ring.since(1000 + 5.35)[0].seq == 50
    ring = PacketRing(seconds=100, max_bytes=sum(len(p.data) for p in packets[-15:]))
    for p in packets:
        ring.add(p)
    assert ring.nbytes <= ring.max_bytes and ring.since(float("-inf"))[0].key


def write_clip(folder: Path, name: str, start: float, packets) -> Path:
    w = ClipWriter(folder, name, start, 320, 240)
    for p in packets:
        w.add(p)
    return w.close([{"id": name[-4:], "label": "cat"}])


def test_budget_deletes_the_oldest_first(tmp_path):
    names = [f"2026120{i}T120000Z-cat-abc{i}" for i in range(1, 6)]
    for i, name in enumerate(names):
        start = 1000.0 + i * 86400
        write_clip(tmp_path, name, start, encoded(30, t0=start))
    sizes = {c.name: c.size for c in list_clips(tmp_path)}
    budget_mb = (sizes[names[3]] + sizes[names[4]] + 10) / 2 ** 20
    deleted = prune(tmp_path, budget_mb, 0, now=1000.0 + 5 * 86400)
    assert deleted == names[:3]
    left = list_clips(tmp_path)
    assert [c.name for c in left] == [names[4], names[3]]  # newest first
    assert sum(c.size for c in left) <= budget_mb * 2 ** 20
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}{s}" for n in names[3:] for s in (".mp4", ".json"))
    # max_days: the clip started 1.5 days before now goes, the newer one stays.
    assert prune(tmp_path, 0, 1.0, now=1000.0 + 4.5 * 86400) == [names[3]]


def test_clips_command_lists_and_prunes(tmp_path, edgecam_cmd, cli_env):
    names = [f"2026120{i}T120000Z-cat-abc{i}" for i in range(1, 4)]
    for i, name in enumerate(names):
        write_clip(tmp_path, name, 1000.0 + i * 60, encoded(20, t0=1000.0 + i * 60))
    (tmp_path / "20261204T120000Z-cat-gone.mp4.part").write_bytes(b"x" * 100)
    old = time.time() - 3600
    os.utime(tmp_path / "20261204T120000Z-cat-gone.mp4.part", (old, old))
    (tmp_path / "20261205T120000Z-cat-busy.mp4.part").write_bytes(b"x" * 100)  # being written
    listed = subprocess.run([*edgecam_cmd, "clips", "list", "--dir", str(tmp_path), "--json"],
                            env=cli_env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["name"] for r in rows] == names[::-1]
    assert all(r["seconds"] == pytest.approx(2.0, abs=0.01) and r["labels"] == ["cat"] for r in rows)
    one = rows[0]["bytes"]
    pruned = subprocess.run([*edgecam_cmd, "clips", "prune", "--dir", str(tmp_path), "--max-mb",
                             str((one + 10) / 2 ** 20), "--max-days", "0"],
                            env=cli_env, capture_output=True, text=True, timeout=60)
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.splitlines() == [f"deleted {names[0]}.mp4", f"deleted {names[1]}.mp4",
                                          "2 clip(s) and 1 partial file(s) deleted"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{names[2]}.json", f"{names[2]}.mp4", "20261205T120000Z-cat-busy.mp4.part"]


def test_writer_output_is_invisible_until_complete(tmp_path):
    packets = encoded(20)
    w = ClipWriter(tmp_path, "20261201T120000Z-cat-abc", 1000.0, 320, 240)
    for p in packets:
        w.add(p)
    assert list_clips(tmp_path) == [] and w.part.exists() and not w.path.exists()
    w.close([])
    assert [c.name for c in list_clips(tmp_path)] == ["20261201T120000Z-cat-abc"]
    times, _, duration = decode(w.path)
    assert len(times) == 20 and duration == pytest.approx(2.0, abs=0.01)


# -- the process: crash, bad config ------------------------------------------------------

def test_sigkill_mid_clip_leaves_no_served_file_and_next_start_cleans(tmp_path, edgecam_cmd, cli_env):
    frames = tv.cat_frames(still_before=5, moving=40, still_after=5)
    video = tv.write_video(tmp_path / "cat.avi", frames, FPS)
    folder = tmp_path / "clips"
    config = tmp_path / "c.toml"
    config.write_text("[clips]\npre_roll = 0.5\npost_roll = 60\n")  # the clip stays open
    cmd = [*edgecam_cmd, "run", "--config", str(config), "--model", str(SSD_MODEL),
           "--labels", str(COCO_LABELS), "--source", str(video), "--loop", "--realtime",
           "--threads", "1", "--track", "--watch", "cat", "--clips", str(folder)]
    proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        parts = []
        while time.monotonic() < deadline and not parts:
            time.sleep(0.2)
            parts = [p for p in folder.glob("*.part") if p.stat().st_size > 0] if folder.exists() else []
        assert parts, "no clip was being written"
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stderr.close()
    assert list_clips(folder) == []
    assert not list(folder.glob("*.mp4"))
    assert list(folder.glob("*.mp4.part"))
    again = subprocess.run([*cmd[:-2], "--no-loop", "--max-frames", "3", "--clips", str(folder)],
                           env=cli_env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr[-1500:]
    assert not list(folder.glob("*.part"))
    assert "partial clip" in again.stderr


def test_clips_without_tracking_is_one_line(tmp_path, edgecam_cmd, cli_env):
    tv.write_video(tmp_path / "x.avi", tv.static_frames(3), FPS)
    proc = subprocess.run([*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--source",
                           str(tmp_path / "x.avi"), "--clips", str(tmp_path / "c")],
                          env=cli_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "edgecam: error: [clips] needs tracking: set [track] enabled = true (or give --track)"]


def test_clips_without_tracking_is_refused_by_check_run_and_doctor(tmp_path, edgecam_cmd, cli_env):
    config = tmp_path / "c.toml"
    config.write_text(f'[clips]\nenabled = true\ndir = "{tmp_path / "c"}"\n')
    checked = subprocess.run([*edgecam_cmd, "config", "check", str(config)], env=cli_env,
                             capture_output=True, text=True, timeout=60)
    line = "edgecam: error: [clips] needs tracking: set [track] enabled = true (or give --track)"
    assert checked.returncode == 2 and checked.stdout == "", checked.stdout + checked.stderr
    assert checked.stderr.strip().splitlines() == [line]
    ran = subprocess.run([*edgecam_cmd, "run", "--config", str(config), "--model", str(SSD_MODEL),
                          "--source", str(tmp_path / "none.avi")],
                         env=cli_env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 2 and ran.stderr.strip().splitlines() == [line]
    doctor = subprocess.run([*edgecam_cmd, "doctor", "--config", str(config)], env=cli_env,
                            capture_output=True, text=True, timeout=120)
    rows = [row for row in doctor.stdout.splitlines() if row.split()[1:2] == ["config"]]
    assert doctor.returncode == 1 and len(rows) == 1, doctor.stdout + doctor.stderr
    assert rows[0].startswith("FAIL") and "[clips] needs tracking" in rows[0], doctor.stdout
    # With tracking on, the same file is valid.
    config.write_text(config.read_text() + "[track]\nenabled = true\n")
    fixed = subprocess.run([*edgecam_cmd, "config", "check", str(config)], env=cli_env,
                           capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 0 and fixed.stdout.strip() == f"{config}: ok", fixed.stderr


def test_bad_clips_setting_is_one_line(tmp_path, edgecam_cmd, cli_env):
    config = tmp_path / "c.toml"
    config.write_text("[clips]\npre_roll = -1\n")
    proc = subprocess.run([*edgecam_cmd, "config", "check", str(config)], env=cli_env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "edgecam: error: config [clips] pre_roll = -1.0: must be between 0.0 and 30.0"


def test_probe_clips_measures_each_encoder(edgecam_cmd, cli_env):
    env = dict(cli_env, EDGECAM_SOURCE__WIDTH="320", EDGECAM_SOURCE__HEIGHT="240",
               EDGECAM_SOURCE__FPS="10")
    proc = subprocess.run([*edgecam_cmd, "probe", "--clips", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {(r["encoder"], r["preset"]): r for r in json.loads(proc.stdout)}
    for preset in ("ultrafast", "veryfast"):
        r = rows[("libx264", preset)]
        assert (r["width"], r["height"], r["fps"]) == (320, 240, 10.0)
        assert 0 < r["cpu_per_video_s"] < 5 and r["kbit_s"] > 10
    v4l2 = rows[("h264_v4l2m2m", None)]
    if not os.path.exists("/dev/video11"):
        assert v4l2["cpu_per_video_s"] is None and "Pi 5 has no hardware" in v4l2["note"]


def test_a_disk_that_refuses_writes_is_logged_once_and_detection_goes_on(tmp_path, edgecam_cmd, cli_env):
    # The kernel refuses every write past 64 kB to this process's files (RLIMIT_FSIZE, with
    # SIGXFSZ ignored: write() fails with EFBIG), as a full card would: no clip fits.
    import resource

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    frames = []
    for _ in range(2):
        frames += tv.cat_frames(still_before=5, moving=25, still_after=15)
    video = tv.write_video(tmp_path / "cats.avi", frames, FPS)
    config = tmp_path / "c.toml"
    config.write_text("[clips]\npre_roll = 0.5\npost_roll = 0.5\nbitrate = 4000\n")
    folder = tmp_path / "clips"
    proc = subprocess.run(
        [*edgecam_cmd, "run", "--config", str(config), "--model", str(SSD_MODEL),
         "--labels", str(COCO_LABELS), "--source", str(video), "--realtime", "--no-drop",
         "--threads", "1", "--track", "--watch", "cat", "--clips", str(folder), "--json"],
        env=cli_env, capture_output=True, text=True, timeout=180, preexec_fn=limited)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    ends = [e for e in lines if e.get("type") == "event" and e["event"] == "end"]
    assert len(ends) == 2 and all(e["clip"] for e in ends)  # events and their plan go on
    assert sum(1 for line in lines if line.get("type") == "frame") == len(frames)
    refused = [line for line in proc.stderr.splitlines() if "clips: cannot write" in line]
    assert len(refused) == 1, proc.stderr[-2000:]
    assert "File too large" in refused[0] and "detection goes on" in refused[0]
    assert not list(folder.glob("*.mp4")) and not list(folder.glob("*.part"))


def test_doctor_says_a_pi5_encodes_clips_in_software(tmp_path):
    from edgecam import config as cfg
    from edgecam.doctor import FAIL, OK, SKIP, check_clips
    on = cfg.from_mapping({"clips": {"enabled": True, "dir": str(tmp_path / "clips")}})
    assert [r.status for r in check_clips(cfg.Config(), tmp_path)] == [SKIP]
    pi5 = tmp_path / "pi5"  # a root without /dev/video11, as on a Pi 5
    (pi5 / "dev").mkdir(parents=True)
    rows = check_clips(on, pi5)
    assert [(r.name, r.status) for r in rows] == [("clips encoder", OK), ("clips folder", OK)]
    assert "a Pi 5 has none" in rows[0].detail and "encoded in software" in rows[0].detail
    pi4 = tmp_path / "pi4"
    (pi4 / "dev").mkdir(parents=True)
    (pi4 / "dev" / "video11").write_text("")
    assert "hardware H.264 encoder" in check_clips(on, pi4)[0].detail
    asked = cfg.from_mapping({"clips": {"enabled": True, "encoder": "h264_v4l2m2m"}})
    assert check_clips(asked, pi5)[0].status == FAIL


def test_service_clips_go_to_its_state_directory(monkeypatch, tmp_path):
    from edgecam import config as cfg
    from edgecam.app import clips_folder
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/edgecam")  # what systemd sets for the unit
    assert clips_folder(cfg.from_mapping({"clips": {"enabled": True}})) == Path("/var/lib/edgecam/clips")
    assert clips_folder(cfg.from_mapping({"clips": {"enabled": True, "dir": str(tmp_path)}})) == tmp_path


def test_a_clips_folder_that_cannot_be_written_is_one_line(tmp_path, edgecam_cmd, cli_env):
    (tmp_path / "a-file").write_text("in the way")
    tv.write_video(tmp_path / "x.avi", tv.static_frames(3), FPS)
    proc = subprocess.run([*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--source",
                           str(tmp_path / "x.avi"), "--track", "--clips", str(tmp_path / "a-file" / "clips")],
                          env=cli_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"edgecam: error: [clips] dir {tmp_path / 'a-file' / 'clips'} "
                                                   "cannot be written (Not a directory)")


def test_clip_index_reads_a_sidecar_once(tmp_path):
    from edgecam.clips.store import ClipIndex
    names = [f"2026120{i}T120000Z-cat-abc{i}" for i in range(1, 3)]
    for i, name in enumerate(names):
        write_clip(tmp_path, name, 1000.0 + i * 60, encoded(10, t0=1000.0 + i * 60))
    index = ClipIndex(tmp_path)
    assert index.clips() == list_clips(tmp_path)
    # A sidecar rewritten behind the index's back is not read again while its clip is unchanged
    # (the page polls every few seconds; each sidecar holds every frame's boxes)...
    side = tmp_path / f"{names[0]}.json"
    side.write_text(side.read_text().replace('"cat"', '"dog"'))
    assert [c.labels for c in index.clips()] == [("cat",), ("cat",)]
    # ...a new or deleted clip is seen at once.
    write_clip(tmp_path, "20261203T120000Z-cat-new", 2000.0, encoded(10, t0=2000.0))
    (tmp_path / f"{names[1]}.mp4").unlink()
    assert [c.name for c in index.clips()] == ["20261203T120000Z-cat-new", names[0]]


def test_an_event_longer_than_max_seconds_goes_on_in_consecutive_clips(tmp_path):
    """A cat walking 6 s with max_seconds = 2: the event's span (pre + 6 s + post) is cut into
    clips of at most 2 s that follow each other frame for frame, none lost or shown twice,
    and the end event names the last of them."""
    w, h = 640, 480
    bg = tv.background(w, h)
    cat = tv.crop("cat_720p.jpg", tv.CAT_BOX, 220 / (tv.CAT_BOX[2] - tv.CAT_BOX[0]))
    frames = [bg.copy() for _ in range(20)]
    for i in range(60):
        f = bg.copy()
        tv.paste(f, cat, int(i * (w - cat.shape[1]) / 59), h - cat.shape[0] - 10)
        frames.append(f)
    frames += [bg.copy() for _ in range(40)]
    video = tv.write_video(tmp_path / "long.avi", frames, FPS)
    folder = tmp_path / "clips"
    ends, _ = run_with_clips(tmp_path, video, folder, "max_seconds = 2.0\n")
    assert len(ends) == 1, ends
    end = ends[0]
    clips = sorted(list_clips(folder), key=lambda c: c.name)
    sides = [json.loads((folder / f"{c.name}.json").read_text()) for c in clips]
    sides.sort(key=lambda s: s["start"])
    span = (end["last_seen"] - end["first_seen"]) + PRE + POST
    assert len(sides) == math.ceil(span / 2.0 - 1e-6) >= 3, [s["start"] for s in sides]
    interval = 1.0 / FPS
    for side, clip in zip(sides, sorted(clips, key=lambda c: c.name)):
        times, _, duration = decode(folder / f"{clip.name}.mp4")
        assert duration <= 2.0 + interval + 1e-3, (clip.name, duration)
    seqs = [f["seq"] for s in sides for f in s["frames"]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "frames lost or repeated at a split"
    at = lambda side, frame: side["start"] + frame["t"]  # noqa: E731 (a frame's time in the source)
    for before, after in zip(sides, sides[1:]):
        gap = at(after, after["frames"][0]) - at(before, before["frames"][-1])
        assert gap == pytest.approx(interval, abs=1e-3)
    assert sides[0]["start"] == pytest.approx(end["first_seen"] - PRE, abs=1e-3)
    last = at(sides[-1], sides[-1]["frames"][-1])
    assert last == pytest.approx(end["last_seen"] + POST, abs=interval + 1e-3)
    # The object coasted unseen through the last split (its track ends max_lost after it was
    # last seen): its end event names the last part that holds it, with that part's length.
    assert end["clip"] == f"{clips[-1].name}.mp4"
    assert end["clip_seconds"] == pytest.approx(at(sides[-1], sides[-1]["frames"][-1]) - sides[-1]["start"], abs=interval + 1e-3)
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]
