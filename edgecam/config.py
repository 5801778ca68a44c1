"""Typed configuration: TOML file < environment < command line, validated with errors naming the key."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, cast

from . import backends
from .errors import EdgecamError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Raspberry Pi OS Bullseye/Bookworm pythons
    import tomli as tomllib

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = "/etc/edgecam/config.toml"
CONFIG_FILE_NAME = "config.toml"


def _between(lo, hi):
    def check(v):
        return lo <= v <= hi or f"must be between {lo} and {hi}"

    return check


def _one_of(*choices):
    def check(v):
        return v in choices or f"must be one of {', '.join(map(str, choices))}"

    check.choices = choices  # type: ignore[attr-defined]  # the command line offers them
    return check


def _positive(v):
    return v > 0 or "must be > 0"


def _non_negative(v):
    return v >= 0 or "must be >= 0"


def _opt(kind, check=None, help="", parse=None, cli=None):  # noqa: A002 - mirrors click's naming
    """A key's metadata: its type, check, help and parser; `cli` names its `edgecam run`
    option (`--cli`), generated from this metadata by edgecam.cli.run."""
    return {"kind": kind, "check": check, "help": help, "parse": parse, "cli": cli}


def _snapshot_interval():
    """[output] and [mqtt] snapshot_interval: one definition for the two keys."""
    return field(
        default=5.0, metadata=_opt(float, _non_negative, "at most one snapshot per this many seconds")
    )


def _parse_label_overrides(where, value):
    """[track.labels.<label>] tables of tracker options -> ((label, {key: value}), ...)."""
    allowed = {
        "min_hits": (int, _between(1, 1000)),
        "max_missed": (int, _between(0, 100000)),
        "min_age": (float, _between(0.0, 3600.0)),
        "max_lost": (float, _between(0.0, 86400.0)),
        "iou": (float, _between(0.0, 1.0)),
        "max_distance": (float, _between(0.0, 1.0)),
    }
    if not isinstance(value, dict):
        raise EdgecamError(f"config {where}: expected a table of label = {{option = value}}, got {value!r}")
    out = []
    for label, opts in value.items():
        if not isinstance(opts, dict):
            raise EdgecamError(f"config {where}.{label}: expected a table, got {opts!r}")
        checked, table = {}, f"track.labels.{label}"
        for key, v in opts.items():
            if key not in allowed:
                raise EdgecamError(f"config: unknown key [{table}] {key} (known: {', '.join(allowed)})")
            checked[key] = _coerce(table, key, v, _opt(*allowed[key]))
        out.append((str(label), tuple(sorted(checked.items()))))
    return tuple(out)


def _parse_zones(where, value):
    from .zones import parse_zones

    return parse_zones(where, value)


def _parse_masks(where, value):
    from .zones import parse_masks

    return parse_masks(where, value)


@dataclass(frozen=True)
class ModelConfig:
    """Which model runs and how: path, labels, CPU threads, detector backend."""

    path: Optional[str] = field(
        default=None,
        metadata=_opt(str, help="model file (.tflite); default: the cached default model", cli="model"),
    )
    labels: Optional[str] = field(
        default=None,
        metadata=_opt(str, help="label file; default: the one installed with the model", cli="labels"),
    )
    threads: Optional[int] = field(
        default=None,
        metadata=_opt(int, _between(1, 64), "interpreter threads; default: number of cores", cli="threads"),
    )
    delegate: str = field(
        default="cpu",
        metadata=_opt(
            str,
            _one_of("cpu", "edgetpu"),
            "cpu or edgetpu (Coral); an alias of detector: edgetpu with any other detector (auto too) is an error",
            cli="delegate",
        ),
    )
    detector: Optional[str] = field(
        default=None,
        metadata=_opt(
            str,
            _one_of(*backends.CHOICES),
            f"detector backend: {backends.choices_help()}; default: the delegate",
            cli="detector",
        ),
    )

    def __post_init__(self):
        # Checked on every build (file, environment, options), so `config check`, `run` and
        # `doctor` refuse the same files. "auto" may choose another backend than the Coral the
        # delegate names, so it contradicts it too.
        if self.delegate == "edgetpu" and self.detector not in (None, "edgetpu"):
            raise EdgecamError(
                f"config [model] delegate = 'edgetpu' contradicts detector = "
                f"{self.detector!r}: remove delegate (an alias of detector)"
            )

    @property
    def backend(self) -> str:
        """The detector backend asked for: `detector`, else the `delegate` alias."""
        return self.detector or self.delegate


@dataclass(frozen=True)
class DetectConfig:
    """What counts as a detection and which labels are watched."""

    threshold: float = field(
        default=0.5, metadata=_opt(float, _between(0.0, 1.0), "minimum score", cli="threshold")
    )
    classes: Tuple[str, ...] = field(
        default=(), metadata=_opt(list, help="only report these labels (empty: all)", cli="classes")
    )
    max_detections: int = field(
        default=20, metadata=_opt(int, _between(1, 1000), "at most this many per frame", cli="max-detections")
    )
    min_area: float = field(
        default=0.0,
        metadata=_opt(
            float, _between(0.0, 1.0), "ignore boxes smaller than this fraction of the frame", cli="min-area"
        ),
    )
    resize: str = field(
        default="stretch",
        metadata=_opt(
            str, _one_of("stretch", "letterbox"), "how frames are fitted to the model input", cli="resize"
        ),
    )
    watch: Tuple[str, ...] = field(
        default=("person",),
        metadata=_opt(list, help="labels that make events, counts and snapshots", cli="watch"),
    )
    regions: str = field(
        default="full",
        metadata=_opt(
            str,
            _one_of("full", "motion", "tiles"),
            "where the model looks: full (the whole frame), motion (also crops around motion and tracked objects, for small, far objects), tiles (also a fixed grid of crops); see docs/events.md, Detection at a distance",
            cli="regions",
        ),
    )
    max_regions: int = field(
        default=4,
        metadata=_opt(
            int,
            _between(1, 64),
            "at most this many crops per frame beside the whole frame (regions = motion)",
        ),
    )
    tile_size: int = field(
        default=0,
        metadata=_opt(
            int,
            _between(0, 8192),
            "side of a tile in frame pixels (regions = tiles); 0: the model input's side",
        ),
    )


@dataclass(frozen=True)
class SourceConfig:
    """Where frames come from and at what size."""

    uri: str = field(
        default="auto",
        metadata=_opt(
            str,
            help="auto, picamera, a camera index or /dev/videoN, rtsp://..., a video file, an image or a folder",
            cli="source",
        ),
    )
    width: int = field(
        default=1280, metadata=_opt(int, _between(16, 8192), "capture width (cameras)", cli="width")
    )
    height: int = field(
        default=720, metadata=_opt(int, _between(16, 8192), "capture height (cameras)", cli="height")
    )
    fps: float = field(
        default=30.0, metadata=_opt(float, _between(0.1, 240.0), "capture frame rate (cameras)", cli="fps")
    )
    loop: bool = field(default=False, metadata=_opt(bool, help="repeat file sources", cli="loop"))
    stall_timeout: float = field(
        default=5.0,
        metadata=_opt(float, _positive, "seconds without a frame before a live source is reopened"),
    )
    realtime: bool = field(
        default=False,
        metadata=_opt(bool, help="pace a video file at its own fps, like a live camera", cli="realtime"),
    )


@dataclass(frozen=True)
class OutputConfig:
    """Local outputs: annotated video or JPEGs, snapshots of watched labels."""

    path: Optional[str] = field(
        default=None,
        metadata=_opt(str, help="FILE.mp4 for annotated video, or DIR/ for annotated JPEGs", cli="output"),
    )
    snapshot_dir: Optional[str] = field(
        default=None, metadata=_opt(str, help="write a JPEG when a watched label is seen", cli="snapshot-dir")
    )
    snapshot_interval: float = _snapshot_interval()


@dataclass(frozen=True)
class MqttConfig:
    """Broker connection and publishing options (see docs/mqtt.md)."""

    host: Optional[str] = field(default=None, metadata=_opt(str, help="broker host; unset: MQTT off"))
    port: int = field(default=1883, metadata=_opt(int, _between(1, 65535), "broker port"))
    device_id: Optional[str] = field(
        default=None,
        metadata=_opt(
            str,
            help="default: the hostname, sanitised; on a Pi still named raspberrypi, rpi-<board serial>",
            cli="device-id",
        ),
    )
    client_id: Optional[str] = field(default=None, metadata=_opt(str, help="default: edgecam-<device_id>"))
    user: Optional[str] = field(default=None, metadata=_opt(str, help="username", cli="mqtt-user"))
    password_file: Optional[str] = field(
        default=None,
        metadata=_opt(
            str, help="file holding the password (or env EDGECAM_MQTT_PASSWORD)", cli="mqtt-password-file"
        ),
    )
    tls_ca: Optional[str] = field(
        default=None, metadata=_opt(str, help="CA file: turns TLS on", cli="mqtt-tls-ca")
    )
    tls_cert: Optional[str] = field(default=None, metadata=_opt(str, help="client certificate"))
    tls_key: Optional[str] = field(default=None, metadata=_opt(str, help="client key"))
    tls_insecure: bool = field(
        default=False, metadata=_opt(bool, help="skip server certificate checks (never in production)")
    )
    keepalive: int = field(default=60, metadata=_opt(int, _between(5, 3600), "seconds"))
    protocol: str = field(default="5", metadata=_opt(str, _one_of("5", "3.1.1"), "MQTT protocol version"))
    prefix: Optional[str] = field(
        default=None, metadata=_opt(str, help="topic prefix; default edgecam/<device_id>")
    )
    discovery: bool = field(default=True, metadata=_opt(bool, help="publish Home Assistant discovery"))
    discovery_prefix: str = field(
        default="homeassistant", metadata=_opt(str, help="Home Assistant discovery prefix")
    )
    detections_interval: float = field(
        default=0.0,
        metadata=_opt(
            float, _non_negative, "at most one detections message per this many seconds (0: every frame)"
        ),
    )
    stats_interval: float = field(
        default=10.0, metadata=_opt(float, _positive, "seconds between stats messages")
    )
    snapshot_interval: float = _snapshot_interval()
    max_packet: int = field(
        default=1_000_000,
        metadata=_opt(
            int,
            _between(1024, 268_435_455),
            "largest MQTT packet sent, in bytes (keep it under the broker's max_packet_size); a bigger snapshot is re-encoded smaller, else dropped with a warning",
        ),
    )
    spool_max: int = field(
        default=10000,
        metadata=_opt(int, _between(1, 10_000_000), "events kept on disk while the broker is unreachable"),
    )


@dataclass(frozen=True)
class EventsConfig:
    """Per-label events and occupancy of the watched labels (see docs/events.md), on MQTT and
    in --json alike; with [track] on, the tracker's events replace the per-label ones."""

    start_frames: int = field(
        default=2,
        metadata=_opt(int, _between(1, 1000), "frames a watched label must be seen to start an event"),
    )
    end_frames: int = field(
        default=10, metadata=_opt(int, _between(1, 100000), "frames it must be absent to end it")
    )
    occupancy_off_delay: float = field(
        default=5.0,
        metadata=_opt(
            float,
            _non_negative,
            "seconds an occupancy stays on after the last sighting; detection paused this long ends what is open",
        ),
    )


# Keys that moved to another section: still read where they were, with a warning.
MOVED_KEYS = {
    ("mqtt", "event_start_frames"): ("events", "start_frames"),
    ("mqtt", "event_end_frames"): ("events", "end_frames"),
    ("mqtt", "occupancy_off_delay"): ("events", "occupancy_off_delay"),
}


@dataclass(frozen=True)
class PipelineConfig:
    """How the stages run: inference workers and whether frames may be dropped."""

    workers: int = field(
        default=0,
        metadata=_opt(
            int,
            _between(0, 16),
            "interpreters working on consecutive frames (throughput mode); 1: latency mode; 0: 1 for cameras, streams, the Edge TPU and motion gating, one per core (up to 4) for files",
            cli="workers",
        ),
    )
    drop: Optional[bool] = field(
        default=None,
        metadata=_opt(
            bool,
            help="drop frames when inference is busy; default: yes for live sources, no for files",
            cli="drop",
        ),
    )
    max_frames: Optional[int] = field(
        default=None, metadata=_opt(int, _positive, "stop after this many processed frames", cli="max-frames")
    )
    duration: Optional[float] = field(
        default=None, metadata=_opt(float, _positive, "stop after this many seconds", cli="duration")
    )


@dataclass(frozen=True)
class ServiceConfig:
    """Process-level settings: state directory, logging, web preview."""

    state_dir: Optional[str] = field(
        default=None,
        metadata=_opt(str, help="default $STATE_DIRECTORY, else ~/.local/state/edgecam", cli="state-dir"),
    )
    log_level: str = field(
        default="info",
        metadata=_opt(str, _one_of("debug", "info", "warning", "error"), "log level", cli="log-level"),
    )
    web: Optional[str] = field(
        default=None, metadata=_opt(str, help="HOST:PORT of the preview server (off when unset)", cli="web")
    )
    web_token: Optional[str] = field(
        default=None, metadata=_opt(str, help="token for the preview server (or env EDGECAM_WEB_TOKEN)")
    )
    web_fps: float = field(
        default=10.0,
        metadata=_opt(
            float,
            _between(0.1, 60.0),
            "at most this many preview JPEGs per second (encoded once for all viewers)",
        ),
    )
    web_max_streams: int = field(
        default=4, metadata=_opt(int, _between(1, 64), "concurrent /stream.mjpg viewers; more get 503")
    )


@dataclass(frozen=True)
class TrackConfig:
    """Tracked objects and their start/update/end events; zones and masks (see docs/events.md)."""

    enabled: bool = field(
        default=False,
        metadata=_opt(bool, help="track watched labels and emit start/update/end events", cli="track"),
    )
    min_hits: int = field(
        default=3,
        metadata=_opt(int, _between(1, 1000), "frames an object must be matched before its track starts"),
    )
    min_age: float = field(
        default=0.4,
        metadata=_opt(
            float,
            _between(0.0, 3600.0),
            "seconds an object must be matched (every frame) before its track starts",
        ),
    )
    max_missed: int = field(
        default=10,
        metadata=_opt(int, _between(0, 100000), "inferred frames without it before its track ends"),
    )
    max_lost: float = field(
        default=2.0,
        metadata=_opt(
            float,
            _between(0.0, 86400.0),
            "and seconds without it before its track ends (source time for files)",
        ),
    )
    iou: float = field(
        default=0.3, metadata=_opt(float, _between(0.0, 1.0), "minimum IoU with the predicted box to match")
    )
    max_distance: float = field(
        default=0.15,
        metadata=_opt(
            float, _between(0.0, 1.0), "else match centres this close (fraction of the frame diagonal)"
        ),
    )
    labels: Tuple = field(
        default=(),
        metadata=_opt(
            dict, help="per-label overrides: [track.labels.car] max_missed = 30", parse=_parse_label_overrides
        ),
    )
    zones: Tuple = field(
        default=(),
        metadata=_opt(
            dict,
            help="[track.zones] name = [[x, y], ...] or {points = [...], labels = [...]}, normalised",
            parse=_parse_zones,
        ),
    )
    masks: Tuple = field(
        default=(),
        metadata=_opt(
            list,
            help="polygons [[x, y], ...] where detections are ignored (by bottom-centre)",
            parse=_parse_masks,
        ),
    )
    required_zones: Tuple[str, ...] = field(
        default=(), metadata=_opt(list, help="events start only once the object entered one of these zones")
    )
    update_interval: float = field(
        default=5.0,
        metadata=_opt(float, _non_negative, "at most one score update per track per this many seconds"),
    )
    snapshot_dir: Optional[str] = field(
        default=None, metadata=_opt(str, help="write each ended track's best frame and crop as JPEGs here")
    )
    require_motion: bool = field(
        default=True,
        metadata=_opt(
            bool,
            help="an object starts its event only once it was seen moving: its box moved, or motion was measured in it (an object in view from the start that never moves, a rock taken for a person, starts none); false: still objects start too (a still photo)",
            cli="require-motion",
        ),
    )


@dataclass(frozen=True)
class MotionConfig:
    """Motion gating: infer only on motion, while objects are tracked, or every keepalive seconds."""

    enabled: bool = field(
        default=False, metadata=_opt(bool, help="skip inference on frames without motion", cli="motion")
    )
    threshold: int = field(
        default=25, metadata=_opt(int, _between(1, 255), "grey-level change that counts as motion")
    )
    min_area: float = field(
        default=0.002,
        metadata=_opt(float, _between(0.0, 1.0), "moving fraction of the frame that triggers inference"),
    )
    keepalive: float = field(
        default=10.0,
        metadata=_opt(float, _positive, "seconds between inferences when nothing moves", cli="keepalive"),
    )
    width: int = field(
        default=160, metadata=_opt(int, _between(16, 1920), "width of the grey frame motion is measured on")
    )


CLIP_ENCODERS = ("auto", "libx264", "h264_v4l2m2m")
CLIP_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


@dataclass(frozen=True)
class ClipsConfig:
    """Event clips: an H.264 MP4 per tracked event, with pre-roll, within a disk budget (docs/clips.md)."""

    enabled: bool = field(
        default=False, metadata=_opt(bool, help="record a clip of each event (needs [track] enabled)")
    )
    dir: Optional[str] = field(
        default=None, metadata=_opt(str, help="folder of the clips; default: clips/ in the state directory")
    )
    pre_roll: float = field(
        default=3.0, metadata=_opt(float, _between(0.0, 30.0), "seconds before an event's first sighting")
    )
    post_roll: float = field(
        default=3.0, metadata=_opt(float, _between(0.0, 60.0), "seconds after its last sighting")
    )
    max_seconds: float = field(
        default=60.0,
        metadata=_opt(float, _between(2.0, 3600.0), "longest clip; a longer event goes on in the next clip"),
    )
    max_mb: float = field(
        default=1024.0,
        metadata=_opt(
            float, _non_negative, "disk budget of the clips folder, oldest deleted first (0: none)"
        ),
    )
    max_days: float = field(
        default=7.0, metadata=_opt(float, _non_negative, "delete clips older than this (0: never)")
    )
    annotate: bool = field(
        default=False,
        metadata=_opt(
            bool, help="burn the boxes into the video (default: raw video, boxes in the JSON sidecar)"
        ),
    )
    encoder: str = field(
        default="auto",
        metadata=_opt(
            str,
            _one_of(*CLIP_ENCODERS),
            "H.264 encoder; auto: h264_v4l2m2m where the Pi 4's hardware encoder is, else libx264",
        ),
    )
    preset: str = field(
        default="ultrafast",
        metadata=_opt(str, _one_of(*CLIP_PRESETS), "libx264 speed preset (slower: smaller files, more CPU)"),
    )
    bitrate: int = field(
        default=2000,
        metadata=_opt(int, _between(100, 100000), "kbit/s cap of the video (sizes the pre-roll buffer)"),
    )
    keyframe_interval: float = field(
        default=1.0, metadata=_opt(float, _between(0.1, 10.0), "seconds between keyframes")
    )
    url: Optional[str] = field(
        default=None,
        metadata=_opt(
            str,
            help="base URL of the clips in MQTT events; default: the preview server's /clips/ with [service] web set",
        ),
    )


@dataclass(frozen=True)
class Config:
    """The whole configuration, one typed section per TOML table."""

    model: ModelConfig = field(default_factory=ModelConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    clips: ClipsConfig = field(default_factory=ClipsConfig)


SECTIONS: Dict[str, Callable[[], Any]] = {
    f.name: cast(Callable[[], Any], f.default_factory) for f in dataclasses.fields(Config)
}


def _coerce(section: str, key: str, value: Any, meta: Mapping[str, Any]) -> Any:
    kind, where = meta["kind"], f"[{section}] {key}"
    if meta.get("parse") is not None:
        return meta["parse"](where, value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise EdgecamError(f"config {where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if kind is str and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EdgecamError(f"config {where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    check = meta.get("check")
    if check is not None:
        verdict = check(value)
        if verdict is not True:
            raise EdgecamError(f"config {where} = {value!r}: {verdict}")
    return value


def build_section(section: str, values: Mapping[str, Any], base: Any = None) -> Any:
    """A section dataclass from `values` on top of `base` (defaults when None), validated."""
    cls_factory = SECTIONS.get(section)
    if cls_factory is None:
        raise EdgecamError(f"config: unknown section [{section}] (known: {', '.join(SECTIONS)})")
    base = base if base is not None else cls_factory()
    known = {f.name: f for f in dataclasses.fields(base)}
    changes = {}
    for key, value in values.items():
        if key not in known:
            raise EdgecamError(f"config: unknown key [{section}] {key} (known: {', '.join(known)})")
        changes[key] = None if value is None else _coerce(section, key, value, known[key].metadata)
    return dataclasses.replace(base, **changes)


def from_mapping(data: Mapping[str, Any], base: Optional[Config] = None) -> Config:
    """A Config from nested mappings ({section: {key: value}}) on top of `base`."""
    base = base or Config()
    sections = {}
    for section, values in _moved_keys_in_place(data).items():
        if section not in SECTIONS:
            raise EdgecamError(f"config: unknown section [{section}] (known: {', '.join(SECTIONS)})")
        if not isinstance(values, Mapping):
            raise EdgecamError(f"config: [{section}] must be a table")
        sections[section] = build_section(section, values, getattr(base, section))
    return dataclasses.replace(base, **sections)


def _moved_keys_in_place(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """`data` with the MOVED_KEYS put where they now live (a key given in its new place
    wins), each named in one warning."""
    moved = [
        (old, new)
        for old, new in MOVED_KEYS.items()
        if isinstance(data.get(old[0]), Mapping) and old[1] in data[old[0]]
    ]
    if not moved:
        return data
    out = {
        section: dict(values) if isinstance(values, Mapping) else values for section, values in data.items()
    }
    for (old_section, old_key), (new_section, new_key) in moved:
        value = out[old_section].pop(old_key)
        target = out.setdefault(new_section, {})
        if isinstance(target, dict):  # else from_mapping says the section must be a table
            target.setdefault(new_key, value)
        log.warning(
            "config [%s] %s is now [%s] %s: move it there", old_section, old_key, new_section, new_key
        )
    return out


def load_file(path: str) -> Config:
    """Read and validate a TOML config file."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise EdgecamError(f"config file not found: {path}") from None
    except OSError as exc:
        raise EdgecamError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise EdgecamError(f"config file {path} is not valid TOML: {exc}") from None
    return from_mapping(data)


def check_combination(config: Config) -> Config:
    """`config`, or an EdgecamError for settings of two sections that cannot go together.

    Checked on the whole config (file, environment and options merged), never on one layer:
    a file with [clips] on may leave --track to the command line. `config check`, `run` and
    `doctor` all call this one function, so they refuse the same configs with the same line.
    """
    if config.clips.enabled and not config.track.enabled:
        raise EdgecamError("[clips] needs tracking: set [track] enabled = true (or give --track)")
    return config


def state_dir(config: Config, env: Optional[Mapping[str, str]] = None) -> Path:
    """Where the spool and state live (not created here): `[service] state_dir`, else
    systemd's $STATE_DIRECTORY, else ~/.local/state/edgecam."""
    env = os.environ if env is None else env
    chosen = config.service.state_dir or env.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(chosen or Path.home() / ".local" / "state" / "edgecam").expanduser()


def default_config_path(env: Optional[Mapping[str, str]] = None) -> str:
    """The file read when none is named: config.toml in $CONFIGURATION_DIRECTORY when set,
    else /etc/edgecam/config.toml (see docs/configuration.md).

    systemd sets that variable only for a unit with ConfigurationDirectory=. edgecam's own
    unit has none (it would make /etc/edgecam writable) and names its file with --config; the
    variable serves a unit of one's own and the tests, which keep away from /etc with it.
    """
    env = os.environ if env is None else env
    folder = env.get("CONFIGURATION_DIRECTORY", "").split(":")[0]
    return os.path.join(folder, CONFIG_FILE_NAME) if folder else DEFAULT_CONFIG_PATH


def _note_on_stderr(message: str) -> None:
    sys.stderr.write(f"edgecam: note: {message}\n")


def load_default(path: str, note: Callable[[str], None] = _note_on_stderr) -> Config:
    """The default file when present, else the defaults.

    After install.sh the default is the service's private file (0640 root:edgecam): a user's
    own run that may not read it gets the defaults and one `note`, not an error. A file named
    explicitly (--config) that cannot be read stays an error (load_file).
    """
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        return Config()
    except PermissionError as exc:
        note(
            f"skipped {path} ({exc.strerror}: it is the edgecam service's config); using the "
            "defaults; give --config FILE to use a config file of your own"
        )
        return Config()
    except OSError:
        pass  # load_file names the problem
    return load_file(path)


def resolve(
    config_path: Optional[str],
    overrides: Mapping[str, Mapping[str, Any]],
    env: Optional[Mapping[str, str]] = None,
    note: Callable[[str], None] = _note_on_stderr,
) -> Config:
    """File (explicit, else the default file when present and readable) < env EDGECAM_* <
    overrides. `note(message)` is told when an unreadable default file is skipped.

    `overrides` holds only the options a user actually gave; None values are ignored.
    """
    env = os.environ if env is None else env
    if config_path:
        config = load_file(config_path)
    else:
        config = load_default(default_config_path(env), note)
    config = from_mapping(env_overrides(env), config)
    given = {s: {k: v for k, v in vals.items() if v is not None} for s, vals in overrides.items()}
    return check_combination(from_mapping({s: v for s, v in given.items() if v}, config))


_ENV_KEY = re.compile(r"^EDGECAM_([A-Z]+)__([A-Z0-9_]+)$")


def env_overrides(env: Mapping[str, str]) -> Dict[str, Dict[str, Any]]:
    """Settings from EDGECAM_<SECTION>__<KEY> variables (strings, parsed like TOML scalars)."""
    out: Dict[str, Dict[str, Any]] = {}
    for name, raw in env.items():
        m = _ENV_KEY.match(name)
        if not m:
            continue
        section, key = m.group(1).lower(), m.group(2).lower()
        out.setdefault(section, {})[key] = _parse_scalar(raw)
    return out


def _parse_scalar(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def command_line_keys() -> List[Tuple[str, str, Mapping[str, Any]]]:
    """(section, key, metadata) of every key with an `edgecam run` option, in table order."""
    return [
        (section, f.name, f.metadata)
        for section, factory in SECTIONS.items()
        for f in dataclasses.fields(factory())
        if f.metadata.get("cli")
    ]


def reference() -> List[Tuple[str, str, str, str]]:
    """(section, key, default, help) for every setting: the config reference in docs/configuration.md."""
    rows = []
    for section, factory in SECTIONS.items():
        for f in dataclasses.fields(factory()):
            default = getattr(factory(), f.name)
            rows.append((section, f.name, repr(default), f.metadata.get("help", "")))
    return rows


def reference_markdown() -> str:
    """The config reference as Markdown tables, one per section (embedded in docs/configuration.md)."""
    out, section = [], None
    for sec, key, default, help_text in reference():
        if sec != section:
            out += ["", f"**[{sec}]**", "", "| key | default | meaning |", "|---|---|---|"]
            section = sec
        out.append(f"| `{key}` | `{default}` | {help_text} |")
    return "\n".join(out).strip() + "\n"
