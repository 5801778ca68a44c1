"""Test videos with known ground truth, made with OpenCV from the real photos in ../shared/images.

Objects are real crops of what the real detector (the shared SSD model) finds in the shared
photos, pasted on a real background blurred until the detector finds nothing in it, and moved
along known paths. Nothing is stored: every frame is made on demand.

API (used by tests/test_tracking.py, tests/test_bench_events.py, scripts/bench_events.py,
scripts/bench_motion.py):

- `SPRITES`: name -> `Sprite`, a crop (with some context around the object) and the box the
  detector finds in it. `sprite(name, height)` scales one so that its box is `height` px tall.
- `Actor(id, sprite, height, path, z=0, hidden=())`: one object. `path` is keyframes
  `(t, x, y)`: seconds into its shot and the bottom centre of its box in pixels, linear in
  between (two keyframes at one place make a pause); the object is in the shot from the first
  keyframe to the last, and may start or end outside the frame (entering, leaving). Higher `z`
  is drawn in front. `hidden`: `(t, frames)` pairs: from `t` on, the object is blurred beyond
  recognition for `frames` frames (a detection dropout).
- `Fixed(id, label, box)`: an object that is part of the background photo (pixel box).
- `Shot(background, duration, actors=(), fixed=())`; `Scene(name, fps, size, shots)` plays its
  shots one after another (a scene cut between two shots).
- `scene.n_frames`, `scene.frames()` (a generator of BGR frames), `scene.frame(i)`,
  `scene.truth(i)` -> tuple of `Truth(id, label, box, visible, hidden)` (box: pixel x1, y1, x2,
  y2 clipped to the frame; `visible`: fraction of the box inside the frame and not covered by
  an object in front; `hidden`: blurred this frame), `scene.labels()` -> {id: label},
  `scene.write(path)` -> an MJPG .avi at the scene's fps.
- `FIXTURES`: name -> function(fps) -> Scene, the benchmark's scenes (any fps, e.g. 10 and 30);
  `photo_cut_scene()`: the five shared photos, 12 frames each, 640x480, 10 fps (issue 16).

The older frame lists (`cat_frames`, `crossing_frames`, `static_frames`) remain for the
tracking and motion tests.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

import media
from conftest import IMAGES

Box = Tuple[int, int, int, int]  # pixels: x1, y1, x2, y2

CAT_BOX = (90, 94, 919, 704)  # where the detector finds the cat in cat_720p.jpg (x1, y1, x2, y2)


@dataclass(frozen=True)
class Sprite:
    """A real object: a crop of a shared photo and the detector's box on it (crop pixels)."""

    label: str
    image: np.ndarray
    box: Box

    def scaled(self, height: int) -> "Sprite":
        """This sprite resized so that its box is `height` pixels tall."""
        f = height / (self.box[3] - self.box[1])
        img = cv2.resize(self.image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        return Sprite(self.label, img, tuple(int(round(v * f)) for v in self.box))


# Where the real detector (shared SSD, whole photo resized to 300x300) finds each object, and
# how much of the photo around the box the crop keeps (the dogs need more context to be found).
SOURCES: Dict[str, Tuple[str, str, Box, float]] = {
    "person_grace": ("grace_hopper.bmp", "person", (4, 30, 505, 591), 0.12),
    "person_kite": ("kite_and_cold.jpg", "person", (224, 700, 276, 842), 0.12),
    "dog_left": ("pets.jpg", "dog", (121, 49, 250, 295), 0.4),
    "dog_right": ("pets.jpg", "dog", (343, 162, 495, 369), 0.4),
    "car": ("traffic.bmp", "car", (51, 151, 126, 202), 0.12),
    "cat": ("cat_720p.jpg", "cat", CAT_BOX, 0.12),
}
# Sizes (box height in px, in a 480 px tall frame) at which each is found reliably when pasted
# on the blurred backgrounds (tests/test_bench_events.py checks them).
MIN_HEIGHT = {"person_grace": 120, "person_kite": 100, "dog_left": 210, "dog_right": 200, "car": 130, "cat": 150}


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    img = cv2.imread(str(IMAGES / name))
    assert img is not None, f"cannot read {IMAGES / name}"
    return img


def _load_sprite(name: str) -> Sprite:
    photo, label, (x1, y1, x2, y2), margin = SOURCES[name]
    img = _photo(photo)
    h, w = img.shape[:2]
    mx, my = int((x2 - x1) * margin), int((y2 - y1) * margin)
    cx1, cy1, cx2, cy2 = max(0, x1 - mx), max(0, y1 - my), min(w, x2 + mx), min(h, y2 + my)
    return Sprite(label, img[cy1:cy2, cx1:cx2].copy(), (x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1))


SPRITES: Dict[str, Sprite] = {}


def sprite(name: str, height: int) -> Sprite:
    """The sprite `name` (a key of SOURCES) scaled so its box is `height` px tall."""
    if name not in SPRITES:
        SPRITES[name] = _load_sprite(name)
    return SPRITES[name].scaled(height)


def background(width: int, height: int, photo: str = "kite_and_cold.jpg") -> np.ndarray:
    """A static, object-free scene: a shared photo blurred beyond recognition."""
    img = cv2.resize(_photo(photo), (width, height))
    return cv2.GaussianBlur(img, (0, 0), 25)


def crop(name: str, box: Tuple[int, int, int, int], scale: float) -> np.ndarray:
    """A crop of a shared photo, resized by `scale`."""
    x1, y1, x2, y2 = box
    img = _photo(name)[y1:y2, x1:x2]
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 10.0) -> Path:
    """Frames into an MJPG .avi (a container every OpenCV build can write and read)."""
    return media.write_video(path, frames, fps, fourcc="MJPG")


def paste(frame: np.ndarray, obj: np.ndarray, x: int, y: int) -> Box:
    """Put `obj` into `frame` with its top-left corner at (x, y), clipped to the frame;
    returns the pixel rectangle it covers (possibly empty)."""
    h, w = frame.shape[:2]
    x1, y1 = max(0, x), max(0, y)
    x2, y2 = min(w, x + obj.shape[1]), min(h, y + obj.shape[0])
    if x2 > x1 and y2 > y1:
        frame[y1:y2, x1:x2] = obj[y1 - y:y2 - y, x1 - x:x2 - x]
    return x1, y1, max(x1, x2), max(y1, y2)


# -- scenes with ground truth ------------------------------------------------------------------
@dataclass(frozen=True)
class Truth:
    """Where one real object is in one frame."""

    id: int
    label: str
    box: Box
    visible: float
    hidden: bool = False

    @property
    def observable(self) -> bool:
        """Whether a detector could be expected to find it: mostly visible and not blurred."""
        return self.visible >= 0.5 and not self.hidden


@dataclass(frozen=True)
class Actor:
    """An object moving along keyframes `(t, x, y)` (bottom centre of its box, pixels)."""

    id: int
    sprite: str
    height: int
    path: Tuple[Tuple[float, float, float], ...]
    z: int = 0
    hidden: Tuple[Tuple[float, int], ...] = ()

    def position(self, t: float) -> Optional[Tuple[float, float]]:
        """The bottom centre at time `t` (seconds into the shot), None outside the path."""
        p = self.path
        if t < p[0][0] - 1e-9 or t > p[-1][0] + 1e-9:
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(p, p[1:]):
            if t <= t1 + 1e-9:
                f = 0.0 if t1 <= t0 else min(1.0, max(0.0, (t - t0) / (t1 - t0)))
                return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
        return p[-1][1], p[-1][2]

    def is_hidden(self, t: float, fps: float) -> bool:
        """True in the frames of a dropout."""
        return any(t0 - 1e-9 <= t < t0 + n / fps - 1e-9 for t0, n in self.hidden)


@dataclass(frozen=True)
class Fixed:
    """An object that is part of the background photo itself."""

    id: int
    label: str
    box: Box


@dataclass(frozen=True)
class Shot:
    """One continuous camera view: a background and the objects in it for `duration` s."""

    background: Callable[[int, int], np.ndarray]
    duration: float
    actors: Tuple[Actor, ...] = ()
    fixed: Tuple[Fixed, ...] = ()


@dataclass(frozen=True)
class Scene:
    """A video with known ground truth: shots played in order at `fps`."""

    name: str
    fps: float
    size: Tuple[int, int]
    shots: Tuple[Shot, ...]

    @property
    def _starts(self) -> List[int]:
        out, n = [], 0
        for s in self.shots:
            out.append(n)
            n += int(round(s.duration * self.fps))
        return out + [n]

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return self._starts[-1]

    def _locate(self, i: int) -> Tuple[Shot, float]:
        starts = self._starts
        if not 0 <= i < starts[-1]:
            raise IndexError(i)
        k = max(j for j in range(len(self.shots)) if starts[j] <= i)
        return self.shots[k], (i - starts[k]) / self.fps

    def _render(self, i: int) -> Tuple[np.ndarray, Tuple[Truth, ...]]:
        shot, t = self._locate(i)
        w, h = self.size
        frame = _background(shot.background, w, h).copy()
        owner = np.full((h, w), -1, np.int32)  # which object each pixel shows
        boxes: Dict[int, Tuple[Actor, Box, bool]] = {}
        for a in sorted(shot.actors, key=lambda a: a.z):
            pos = a.position(t)
            if pos is None:
                continue
            sp = _scaled(a.sprite, a.height)
            bx1, by1, bx2, by2 = sp.box
            x0 = int(round(pos[0] - (bx1 + bx2) / 2))
            y0 = int(round(pos[1] - by2))
            hidden = a.is_hidden(t, self.fps)
            rx1, ry1, rx2, ry2 = paste(frame, _blurred(a.sprite, a.height) if hidden else sp.image, x0, y0)
            owner[ry1:ry2, rx1:rx2] = a.id
            boxes[a.id] = (a, (x0 + bx1, y0 + by1, x0 + bx2, y0 + by2), hidden)
        truth = [Truth(f.id, f.label, f.box, 1.0) for f in shot.fixed]
        for aid, (a, (x1, y1, x2, y2), hidden) in boxes.items():
            area = (x2 - x1) * (y2 - y1)
            c = (max(0, x1), max(0, y1), min(w, x2), min(h, y2))
            if c[2] <= c[0] or c[3] <= c[1]:
                continue
            shown = int(np.count_nonzero(owner[c[1]:c[3], c[0]:c[2]] == aid))
            truth.append(Truth(aid, SOURCES[a.sprite][1], c, round(shown / area, 3), hidden))
        return frame, tuple(sorted(truth, key=lambda x: x.id))

    def frame(self, i: int) -> np.ndarray:
        """Frame `i` (BGR)."""
        return self._render(i)[0]

    def truth(self, i: int) -> Tuple[Truth, ...]:
        """The objects in frame `i` (at least partly inside the frame), by id."""
        return self._render(i)[1]

    def frames(self) -> Iterator[np.ndarray]:
        """Every frame in order, made one at a time."""
        for i in range(self.n_frames):
            yield self.frame(i)

    def truths(self) -> List[Tuple[Truth, ...]]:
        """The ground truth of every frame."""
        return [self.truth(i) for i in range(self.n_frames)]

    def labels(self) -> Dict[int, str]:
        """Every object's id and label."""
        out = {}
        for shot in self.shots:
            out.update({f.id: f.label for f in shot.fixed})
            out.update({a.id: SOURCES[a.sprite][1] for a in shot.actors})
        return out

    def write(self, path: Path) -> Path:
        """The scene as an MJPG .avi at its fps."""
        return write_video(path, list(self.frames()), self.fps)


@functools.lru_cache(maxsize=64)
def _scaled(name: str, height: int) -> Sprite:
    return sprite(name, height)


@functools.lru_cache(maxsize=64)
def _blurred(name: str, height: int) -> np.ndarray:
    return cv2.GaussianBlur(_scaled(name, height).image, (0, 0), 12)


@functools.lru_cache(maxsize=16)
def _background(make: Callable[[int, int], np.ndarray], w: int, h: int) -> np.ndarray:
    return make(w, h)


def _blurred_photo(photo: str) -> Callable[[int, int], np.ndarray]:
    return functools.partial(_bg_of, photo)


@functools.lru_cache(maxsize=None)
def _bg_of(photo: str, w: int, h: int) -> np.ndarray:
    return background(w, h, photo)


KITE_BG = _blurred_photo("kite_and_cold.jpg")
PETS_BG = _blurred_photo("pets.jpg")

SIZE = (640, 480)


def street(fps: float) -> Scene:
    """Two people walk across in opposite directions, one passing in front of the other, both
    passing in front of a car parked mid-frame; each enters at one edge and leaves at the other."""
    car = Actor(1, "car", 130, ((0.0, 330, 330), (8.0, 330, 330)), z=0)
    walker = Actor(2, "person_kite", 220, ((0.0, -40, 465), (6.5, 680, 465)), z=2)
    bust = Actor(3, "person_grace", 170, ((1.0, 720, 410), (7.5, -80, 410)), z=1)
    return Scene("street", fps, SIZE, (Shot(KITE_BG, 8.0, (car, walker, bust)),))


def pause_dropout(fps: float) -> Scene:
    """A dog walks in, passes in front of a sitting cat, pauses for 2 s, is hidden (blurred) for
    5 frames while walking on, and leaves; a person walks across (in front of the cat, behind the
    dog) with two 2-frame dropouts."""
    cat = Actor(1, "cat", 170, ((0.0, 500, 360), (8.0, 500, 360)), z=0)
    dog = Actor(2, "dog_left", 220, ((0.0, -50, 472), (2.0, 250, 472), (4.0, 250, 472), (7.0, 700, 472)),
                z=2, hidden=((5.0, 5),))
    person = Actor(3, "person_kite", 190, ((0.5, 700, 330), (7.5, -40, 330)), z=1,
                   hidden=((2.5, 2), (5.5, 2)))
    return Scene("pause_dropout", fps, SIZE, (Shot(KITE_BG, 8.0, (cat, dog, person)),))


def scene_cut(fps: float) -> Scene:
    """A person stands beside a parked car; the view cuts to another place, where a dog sits
    where the person stood and a person stands where the car was (the old tracks, coasting,
    must not take or hide them), and a second dog walks across in front of them."""
    first = (Actor(1, "car", 140, ((0.0, 460, 330), (3.0, 460, 330))),
             Actor(2, "person_grace", 200, ((0.0, 170, 420), (3.0, 200, 420))))
    second = (Actor(3, "dog_right", 210, ((0.0, 200, 420), (4.0, 180, 420))),
              Actor(4, "person_kite", 200, ((0.0, 460, 430), (4.0, 480, 430))),
              Actor(5, "dog_left", 220, ((0.5, 720, 475), (4.0, -80, 475)), z=1))
    return Scene("scene_cut", fps, SIZE, (Shot(KITE_BG, 3.0, first), Shot(PETS_BG, 4.0, second)))


FIXTURES: Dict[str, Callable[[float], Scene]] = {
    "street": street, "pause_dropout": pause_dropout, "scene_cut": scene_cut,
}


def _photo_shot(photo: str, boxes: Sequence[Tuple[int, str, Box]], size: Tuple[int, int]) -> Shot:
    img = _photo(photo)
    fx, fy = size[0] / img.shape[1], size[1] / img.shape[0]
    fixed = tuple(Fixed(i, label, (int(x1 * fx), int(y1 * fy), int(x2 * fx), int(y2 * fy)))
                  for i, label, (x1, y1, x2, y2) in boxes)
    return Shot(functools.partial(_photo_resized, photo), 1.0, fixed=fixed)


@functools.lru_cache(maxsize=None)
def _photo_resized(photo: str, w: int, h: int) -> np.ndarray:
    return cv2.resize(_photo(photo), (w, h))


def photo_cut_scene(fps: float = 10.0, size: Tuple[int, int] = (640, 480)) -> Scene:
    """The five shared photos, resized to `size`, 12 frames each at 10 fps (issue 16's video);
    the truth is what the detector finds in each photo at score >= 0.5 (persons, dogs, cars, cat)."""
    shots = (
        _photo_shot("cat_720p.jpg", [(1, "cat", CAT_BOX)], size),
        _photo_shot("grace_hopper.bmp", [(2, "person", (4, 30, 505, 591))], size),
        _photo_shot("kite_and_cold.jpg", [(3, "person", (69, 517, 93, 556)), (4, "person", (27, 523, 47, 559)),
                                          (5, "person", (1075, 392, 1097, 416)),
                                          (6, "person", (135, 534, 156, 562)),
                                          (7, "person", (224, 701, 276, 841))], size),
        _photo_shot("pets.jpg", [(8, "dog", (121, 49, 250, 295)), (9, "dog", (343, 162, 495, 369))], size),
        _photo_shot("traffic.bmp", [(10, "car", (51, 151, 126, 202)), (11, "car", (213, 144, 256, 190))], size),
    )
    return Scene("photo_cut", fps, size, tuple(
        Shot(s.background, 12 / fps, s.actors, s.fixed) for s in shots))


# -- frame lists of the older tracking and motion tests ------------------------------------------
def cat_frames(still_before: int = 5, moving: int = 30, still_after: int = 20,
               size=(640, 360)) -> List[np.ndarray]:
    """The cat walks left to right along the bottom of an empty scene, then is gone."""
    w, h = size
    bg = background(w, h)
    cat = crop("cat_720p.jpg", CAT_BOX, 200 / (CAT_BOX[2] - CAT_BOX[0]))
    frames = [bg.copy() for _ in range(still_before)]
    for i in range(moving):
        f = bg.copy()
        paste(f, cat, int(i * (w - cat.shape[1]) / (moving - 1)), h - cat.shape[0] - 10)
        frames.append(f)
    return frames + [bg.copy() for _ in range(still_after)]


def crossing_frames(moving: int = 40, still_after: int = 20, size=(640, 480)) -> List[np.ndarray]:
    """Two cats walking in opposite directions (the second one mirrored), the first passing in
    front of the second: at the crossing the back cat's upper part is hidden and their boxes
    overlap (IoU ~0.3), so a matcher that only looks at overlap could swap them."""
    w, h = size
    bg = background(w, h)
    a = crop("cat_720p.jpg", CAT_BOX, 220 / (CAT_BOX[2] - CAT_BOX[0]))
    b = a[:, ::-1].copy()
    frames = []
    for i in range(moving):
        f = bg.copy()
        xa = int(10 + i * (w - 20 - a.shape[1]) / (moving - 1))
        xb = int(w - 10 - b.shape[1] - i * (w - 20 - b.shape[1]) / (moving - 1))
        paste(f, b, xb, 270)
        paste(f, a, xa, 130)
        frames.append(f)
    return frames + [bg.copy() for _ in range(still_after)]


def static_frames(n: int, size=(640, 360)) -> List[np.ndarray]:
    """An empty scene that never changes."""
    bg = background(*size)
    return [bg.copy() for _ in range(n)]


# -- detection at a distance ([detect] regions) ------------------------------------------------
WIDE = (1280, 720)


def small_objects(fps: float) -> Scene:
    """Far objects in a 1280x720 view, 40-80 px tall (a few percent of the frame): six walk in
    from an edge, one after another (at most two in view at a time), cross part of the view
    and leave or stop. The whole frame fitted to 300x300 shows each at 10-35 px, below what
    the SSD finds; a crop around each shows it at 1-2x."""
    walks = (  # sprite, box height, start s, (x from, x to), y of the feet
        ("person_grace", 60, 0.0, (-30, 520), 300),
        ("car", 40, 1.5, (1310, 700), 560),
        ("dog_right", 60, 3.5, (-40, 480), 650),
        ("person_kite", 80, 5.0, (1310, 760), 420),
        ("cat", 50, 7.0, (-40, 500), 200),
        ("dog_left", 70, 8.5, (1320, 820), 700),
    )
    actors = tuple(Actor(i + 1, name, height, ((t, x0, y), (t + 3.5, x1, y)))
                   for i, (name, height, t, (x0, x1), y) in enumerate(walks))
    return Scene("small_objects", fps, WIDE, (Shot(KITE_BG, 12.0, actors),))


def twelve_objects(fps: float) -> Scene:
    """Twelve objects in view at once in a 1280x720 view, 60-150 px tall, in three rows walking
    left or right (more than the model's 10 boxes per pass): people, dogs, cars, a cat."""
    kinds = ("person_grace", "dog_right", "car", "person_kite", "cat", "dog_left")
    actors = []
    for i in range(12):
        row, col = divmod(i, 4)
        name = kinds[i % len(kinds)]
        height = (60, 100, 150)[row]
        y = (250, 450, 700)[row]
        x = 160 + col * 300 + (row * 60)
        step = 120 if (row + col) % 2 else -120
        actors.append(Actor(i + 1, name, height, ((0.0, x, y), (8.0, x + step, y))))
    return Scene("twelve_objects", fps, WIDE, (Shot(KITE_BG, 8.0, tuple(actors)),))


REGION_FIXTURES: Dict[str, Callable[[float], Scene]] = {
    "small_objects": small_objects, "twelve_objects": twelve_objects,
}
