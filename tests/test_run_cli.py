"""`edgecam run` end to end: the real CLI, model and photos; the --json contract; bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import pytest

from conftest import (CLASSIFIER_025, COCO_LABELS, EDGETPU_MODEL, IMAGENET_LABELS, IMAGES,
                      SSD_MODEL)
from broken_picamera2 import broken_picamera2_env
from media import frame_count, pan_frames, write_video

MODEL_ARGS = ["--model", str(SSD_MODEL), "--labels", str(COCO_LABELS)]


def run(cmd, env, *args, timeout=120):
    return subprocess.run([*cmd, "run", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def json_lines(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def frame_lines(stdout):
    """The frame lines of --json output (per-label event lines come between them)."""
    return [line for line in json_lines(stdout) if line["type"] == "frame"]


@pytest.fixture(scope="module")
def pan_video(tmp_path_factory):
    image = cv2.imread(str(IMAGES / "kite_and_cold.jpg"))
    return write_video(tmp_path_factory.mktemp("video") / "pan.mp4", pan_frames(image, 24))


def test_every_shared_image_yields_its_labels_as_json(edgecam_cmd, cli_env):
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(IMAGES), "--json")
    assert out.returncode == 0, out.stderr
    frames = frame_lines(out.stdout)
    assert [f["seq"] for f in frames] == list(range(5))
    by_file = {Path(f["source"]).name: [d["label"] for d in f["detections"]] for f in frames}
    expected = {"grace_hopper.bmp": {"person": 1, "tie": 1}, "kite_and_cold.jpg": {"person": 3, "kite": 3},
                "cat_720p.jpg": {"cat": 1}, "pets.jpg": {"dog": 2}, "traffic.bmp": {"car": 2}}
    for name, wanted in expected.items():
        for label, n in wanted.items():
            assert by_file[name].count(label) >= n, (name, by_file[name])
    first = frames[0]
    assert set(first) == {"type", "seq", "ts", "source", "width", "height", "inference_ms", "detections"}
    assert first["type"] == "frame" and (first["width"], first["height"]) == (1280, 720)
    cat = first["detections"][0]
    assert set(cat) == {"label", "class_id", "score", "box"} and cat["class_id"] == 16
    x1, y1, x2, y2 = cat["box"]
    assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1


def test_video_file_is_processed_frame_by_frame_in_order(edgecam_cmd, cli_env, pan_video):
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(pan_video), "--json")
    assert out.returncode == 0, out.stderr
    frames = frame_lines(out.stdout)
    assert [f["seq"] for f in frames] == list(range(24))
    assert all((f["width"], f["height"]) == (640, 480) for f in frames)
    assert sum(d["label"] == "person" for f in frames for d in f["detections"]) > 10


def test_workers_keep_frame_order(edgecam_cmd, cli_env, pan_video):
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(pan_video), "--json",
              "--workers", "2", "--threads", "1")
    assert out.returncode == 0, out.stderr
    assert [f["seq"] for f in frame_lines(out.stdout)] == list(range(24))


def test_loop_and_max_frames(edgecam_cmd, cli_env):
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(IMAGES / "pets.jpg"), "--loop",
              "--max-frames", "7", "--json")
    assert out.returncode == 0, out.stderr
    frames = frame_lines(out.stdout)
    assert len(frames) == 7
    assert all([d["label"] for d in f["detections"]] == ["dog", "dog"] for f in frames)


def test_duration_stops_a_looping_source(edgecam_cmd, cli_env):
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(IMAGES / "traffic.bmp"), "--loop",
              "--duration", "1.5")
    assert out.returncode == 0, out.stderr
    assert "processed" in out.stdout.splitlines()[-1]


def test_unreadable_image_in_a_folder_is_skipped(edgecam_cmd, cli_env, tmp_path):
    shutil.copy(IMAGES / "pets.jpg", tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg at all")
    shutil.copy(IMAGES / "traffic.bmp", tmp_path / "c.bmp")
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    assert [Path(f["source"]).name for f in frame_lines(out.stdout)] == ["a.jpg", "c.bmp"]
    assert "skipping unreadable image" in out.stderr and "b.jpg" in out.stderr


def test_annotated_video_jpegs_and_snapshots(edgecam_cmd, cli_env, pan_video, tmp_path):
    video = tmp_path / "out.mp4"
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(pan_video), "--output", str(video))
    assert out.returncode == 0, out.stderr
    assert frame_count(video) == 24
    jpegs, snaps = tmp_path / "jpegs", tmp_path / "snaps"
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(IMAGES), "--output", f"{jpegs}/",
              "--snapshot-dir", str(snaps), "--watch", "dog")
    assert out.returncode == 0, out.stderr
    written = sorted(p.name for p in jpegs.iterdir())
    assert written == [f"{i:06d}.jpg" for i in range(5)]
    original = cv2.imread(str(IMAGES / "pets.jpg"))
    annotated = cv2.imread(str(jpegs / "000003.jpg"))
    assert annotated.shape == original.shape
    # JPEG noise alone never moves a pixel this far; drawn boxes and labels do.
    assert (cv2.absdiff(annotated, original).max(axis=2) > 80).mean() > 0.01
    shots = list(snaps.iterdir())
    assert len(shots) == 1 and "dog" in shots[0].name


def test_an_annotated_video_keeps_the_source_videos_frame_rate(edgecam_cmd, cli_env, tmp_path):
    # [source] fps (30 by default) is what a camera is asked for; a file has its own rate.
    clip = write_video(tmp_path / "ten.mp4", pan_frames(cv2.imread(str(IMAGES / "pets.jpg")), 12),
                       fps=10)
    video = tmp_path / "annotated.mp4"
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(clip), "--output", str(video))
    assert out.returncode == 0, out.stderr
    written = cv2.VideoCapture(str(video))
    try:
        assert written.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    finally:
        written.release()
    assert frame_count(video) == 12


def test_version_names_the_runtime(edgecam_cmd, cli_env):
    out = subprocess.run([*edgecam_cmd, "--version"], env=cli_env, capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.startswith("edgecam ") and "ai-edge-litert" in out.stdout


def truncated_jpeg(path):
    """The first third of a shared photo's bytes, as a file still being written has them."""
    data = (IMAGES / "kite_and_cold.jpg").read_bytes()
    path.write_bytes(data[:len(data) // 3])
    return path


def _bad(tmp_path):
    not_tflite = tmp_path / "model.tflite"
    not_tflite.write_bytes(b"this is not a flatbuffer" * 10)
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[detect]\nthreshold = 1.5\n")
    not_an_image = tmp_path / "bad.jpg"
    not_an_image.write_bytes(b"not a jpeg at all")
    three_labels = tmp_path / "three_labels.txt"
    three_labels.write_text("person\nbicycle\ncar\n")
    return {
        "missing model": (["--model", str(tmp_path / "none.tflite"), "--labels", str(COCO_LABELS)], "model not found"),
        "model is a directory": (["--model", str(SSD_MODEL.parent), "--labels", str(COCO_LABELS)],
                                 f"model {SSD_MODEL.parent} is a directory, not a model file: "
                                 f"give one of its .tflite files with --model ({CLASSIFIER_025.name}, "),
        "not tflite": (["--model", str(not_tflite), "--labels", str(COCO_LABELS)], "not a TFLite model"),
        "classifier": (["--model", str(CLASSIFIER_025), "--labels", str(COCO_LABELS)], "not an SSD detection model"),
        "edge tpu model": (["--model", str(EDGETPU_MODEL), "--labels", str(COCO_LABELS)], "--delegate edgetpu"),
        "missing labels": (["--model", str(SSD_MODEL), "--labels", str(tmp_path / "none.txt")], "label file not found"),
        "too few labels": (["--model", str(SSD_MODEL), "--labels", str(three_labels)],
                           f"label file {three_labels} has 3 labels (ids up to 2) but the model "
                           "has 90 classes"),
        "mismatched labels": (["--model", str(SSD_MODEL), "--labels", str(IMAGENET_LABELS)], "90 classes"),
        "bad source": ([*MODEL_ARGS, "--source", str(tmp_path / "none.mp4")], "source not found"),
        "truncated image": ([*MODEL_ARGS, "--source", str(truncated_jpeg(tmp_path / "cut.jpg"))],
                            f"cannot read image {tmp_path / 'cut.jpg'}: it is truncated"),
        "unreadable image": ([*MODEL_ARGS, "--source", str(not_an_image)], "cannot read image"),
        "no picamera2": ([*MODEL_ARGS, "--source", "picamera"], "python3-picamera2"),
        "bad camera": ([*MODEL_ARGS, "--source", "/dev/video99"], "/dev/video99"),
        "bad camera index": ([*MODEL_ARGS, "--source", "97"], "camera 97 does not exist (no /dev/video97)"),
        "bad config": ([*MODEL_ARGS, "--config", str(bad_toml)], "[detect] threshold"),
        "bad option value": ([*MODEL_ARGS, "--threshold", "7"], "[detect] threshold"),
        "bad unknown class": ([*MODEL_ARGS, "--classes", "unicorn"], "unicorn"),
        "unknown video container": ([*MODEL_ARGS, "--output", str(tmp_path / "out.xyz")],
                                    f"cannot write video {tmp_path / 'out.xyz'}: use a .mp4"),
        "invalid web address": ([*MODEL_ARGS, "--web", "999.1.1.1:80"],
                                "'999.1.1.1:80': 999.1.1.1 is not a valid IP address or host name"),
    }


@pytest.mark.parametrize("case", list(_bad(Path("/tmp"))))
def test_bad_input_is_one_line_without_traceback(edgecam_cmd, cli_env, tmp_path, case):
    args, message = _bad(tmp_path)[case]
    out = run(edgecam_cmd, cli_env, *args, "--source", str(IMAGES)) if "--source" not in args \
        else run(edgecam_cmd, cli_env, *args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("edgecam: error: ") and message in lines[0]
    assert out.stdout == ""


def test_tracks_still_open_at_the_end_get_their_end_event(edgecam_cmd, cli_env):
    # An image has no rate: its frames carry the wall clock, and 6 of them pass in less than
    # the 0.4 s a track must be seen before it starts.
    cli_env = {**cli_env, "EDGECAM_TRACK__MIN_AGE": "0"}
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(IMAGES / "cat_720p.jpg"), "--loop",
              "--max-frames", "6", "--track", "--watch", "cat", "--json",
              "--no-require-motion")  # a still photo: the cat never moves
    assert out.returncode == 0, out.stderr
    lines = json_lines(out.stdout)
    frames = [x for x in lines if x["type"] == "frame"]
    events = [x for x in lines if x["type"] == "event"]
    assert [f["seq"] for f in frames] == list(range(6))
    assert [e["event"] for e in events] == ["start", "end"]
    assert events[0]["id"] == events[1]["id"] and events[1]["reason"] == "shutdown"
    assert lines[-1] == events[1], "the end event comes after the last frame"


def test_default_model_missing_then_fetched_from_a_folder(edgecam_cmd, cli_env):
    out = run(edgecam_cmd, cli_env, "--source", str(IMAGES / "pets.jpg"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert "edgecam models fetch ssd_mobilenet_v1_coco" in out.stderr
    fetched = subprocess.run([*edgecam_cmd, "models", "fetch", "ssd_mobilenet_v1_coco", "--from",
                              str(SSD_MODEL.parent)], env=cli_env, capture_output=True, text=True)
    assert fetched.returncode == 0, fetched.stderr
    out = run(edgecam_cmd, cli_env, "--source", str(IMAGES / "pets.jpg"), "--json")
    assert out.returncode == 0, out.stderr
    assert [d["label"] for d in frame_lines(out.stdout)[0]["detections"]] == ["dog", "dog"]


@pytest.mark.skipif(Path("/dev/video0").exists(), reason="this machine has a camera")
def test_auto_source_without_any_camera_lists_the_choices(edgecam_cmd, cli_env):
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS)
    assert out.returncode == 2
    line = out.stderr.strip()
    assert line.startswith("edgecam: error: no camera found") and "rtsp://" in line and "\n" not in line


@pytest.mark.parametrize("args,message", [
    (["--threads", "abc"], "'--threads'"),
    (["--bogus"], "--bogus"),
    (["--mqtt", "broker:x"], "--mqtt 'broker:x'"),
])
def test_bad_options_are_one_line_too(edgecam_cmd, cli_env, args, message):
    out = run(edgecam_cmd, cli_env, *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgecam: error: ") and message in lines[0]


def test_worker_count_auto_is_throughput_for_files_and_latency_for_cameras():
    import dataclasses
    from edgecam.app import AUTO_WORKERS_MAX, worker_count
    from edgecam.config import Config

    def config(uri="clip.mp4", **sections):
        c = Config()
        c = dataclasses.replace(c, source=dataclasses.replace(c.source, uri=uri))
        for name, values in sections.items():
            c = dataclasses.replace(c, **{name: dataclasses.replace(getattr(c, name), **values)})
        return c

    assert worker_count(config(), cores=2) == 2
    assert worker_count(config(), cores=64) == AUTO_WORKERS_MAX
    assert worker_count(config(model={"threads": 2}), cores=4) == 2
    assert worker_count(config("picamera"), cores=4) == 1
    assert worker_count(config("rtsp://cam/s"), cores=4) == 1
    assert worker_count(config(source={"uri": "clip.mp4", "realtime": True}), cores=4) == 1
    assert worker_count(config(model={"delegate": "edgetpu"}), cores=4) == 1
    assert worker_count(config(motion={"enabled": True}), cores=4) == 1
    assert worker_count(config(pipeline={"workers": 3}), cores=1) == 3


def test_a_video_file_runs_in_throughput_mode_by_default_and_keeps_order(edgecam_cmd, cli_env, pan_video):
    import os
    from edgecam.app import AUTO_WORKERS_MAX
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(pan_video), "--json")
    assert out.returncode == 0, out.stderr
    workers = max(1, min(AUTO_WORKERS_MAX, os.cpu_count()))
    assert f"{workers} worker(s) x 1 thread(s)" in out.stderr
    assert [f["seq"] for f in frame_lines(out.stdout)] == list(range(24))
    paced = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(pan_video), "--realtime",
                "--max-frames", "3", "--json")
    assert paced.returncode == 0, paced.stderr
    assert "1 worker(s) x" in paced.stderr


@pytest.mark.parametrize("source", ["picamera", "auto"])
def test_a_broken_picamera2_shows_its_import_error_and_the_fix(edgecam_cmd, cli_env, tmp_path, source):
    out = run(edgecam_cmd, broken_picamera2_env(tmp_path, cli_env), *MODEL_ARGS, "--source", source)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    line = lines[0]
    assert line.startswith("edgecam: error: picamera2 ")
    assert "numpy.core.multiarray failed to import" in line and "numpy<2" in line
    assert "not installed" not in line and "no camera found" not in line


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


@pytest.fixture
def private_photos():
    """A directory edgecam's run may not read, with photos inside: 0700 and root's, with the
    run dropped to nobody when the tests run as root; mode 000 otherwise. It sits in a
    fresh world-searchable directory, as tmp_path's parents are root's 0700 directories."""
    root = os.geteuid() == 0
    if root and not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux) to drop root privileges")
    base = Path(tempfile.mkdtemp(prefix="edgecam-private-"))
    base.chmod(0o755)
    private = base / "private"
    (private / "photos").mkdir(parents=True)
    for folder in (private, private / "photos"):
        shutil.copy(IMAGES / "pets.jpg", folder / "pets.jpg")
    private.chmod(0o700 if root else 0)
    yield private, (AS_NOBODY if root else [])
    private.chmod(0o700)
    shutil.rmtree(base)


@pytest.mark.parametrize("where", ["photos", "pets.jpg", "."])
@pytest.mark.parametrize("under_systemd", [False, True])
def test_an_unreadable_source_is_one_line_naming_the_likely_cause(edgecam_cmd, cli_env, private_photos,
                                                                  where, under_systemd):
    private, prefix = private_photos
    env = dict(cli_env, INVOCATION_ID="0123456789abcdef") if under_systemd else cli_env
    source = private / where if where != "." else private
    out = subprocess.run([*prefix, *edgecam_cmd, "run", *MODEL_ARGS, "--source", str(source)],
                         env=env, capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"edgecam: error: cannot read source {source}: permission denied")
    # systemd's ProtectHome= is the likely cause only for a service.
    assert ("ProtectHome" in lines[0]) == under_systemd


def test_a_truncated_jpeg_in_a_folder_is_skipped_once_without_the_decoders_noise(
        edgecam_cmd, cli_env, tmp_path):
    shutil.copy(IMAGES / "pets.jpg", tmp_path / "a.jpg")
    truncated = truncated_jpeg(tmp_path / "b.jpg")
    shutil.copy(IMAGES / "traffic.bmp", tmp_path / "c.bmp")
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(tmp_path), "--loop",
              "--max-frames", "4", "--json")
    assert out.returncode == 0, out.stderr
    assert [os.path.basename(f["source"]) for f in json_lines(out.stdout)] == ["a.jpg", "c.bmp"] * 2
    lines = out.stderr.splitlines()
    assert [line for line in lines if "edgecam.sources" in line] == [
        line for line in lines if line.endswith(f"WARNING edgecam.sources: skipping truncated image {truncated}")]
    assert sum("skipping" in line for line in lines) == 1, out.stderr
    assert "JPEG" not in out.stderr, out.stderr  # libjpeg's "Premature end of JPEG file"


def test_a_looping_folder_logs_a_summary_not_a_line_per_frame(edgecam_cmd, cli_env, tmp_path):
    # What the service does with a folder source and loop = true: it runs for ever.
    for name, photo in (("a.jpg", "pets.jpg"), ("c.bmp", "traffic.bmp")):
        shutil.copy(IMAGES / photo, tmp_path / name)
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg at all")
    out = run(edgecam_cmd, cli_env, *MODEL_ARGS, "--source", str(tmp_path), "--loop", "--max-frames", "12")
    assert out.returncode == 0, out.stderr
    summary = out.stdout.splitlines()[-1]
    processed = int(summary.split()[1])
    assert summary.startswith("processed ") and processed >= 10, summary
    lines = out.stdout.splitlines() + out.stderr.splitlines()
    assert sum("skipping unreadable image" in line for line in lines) == 1, "once, not every pass"
    assert len(lines) <= 3, f"{len(lines)} lines for {processed} frames:\n" + "\n".join(lines)


def test_under_journald_a_file_source_prints_no_line_per_frame(edgecam_cmd, cli_env, tmp_path):
    journal = tmp_path / "journal"
    with open(journal, "w") as stream:  # stdout and stderr both go to journald, as in the unit
        st = os.fstat(stream.fileno())
        env = dict(cli_env, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        done = subprocess.run([*edgecam_cmd, "run", *MODEL_ARGS, "--source", str(IMAGES)], env=env,
                              stdout=stream, stderr=stream, timeout=120)
    text = journal.read_text()
    assert done.returncode == 0, text
    assert "processed 5 frame(s)" in text
    assert not [line for line in text.splitlines() if line.startswith("frame ")], text
