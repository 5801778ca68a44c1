"""Run an SSD-style TFLite detection model on a frame and return Detections in frame coordinates."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from .backends import LoadRequest
from .datatypes import BBox, DetectOptions, Detection, Frame, FrameResult, FrameState
from .errors import EdgecamError
from .filtering import allowed_ids, keep
from .labels import check_labels_fit, label_for, load_labels
from .modelinfo import ssd_options
from .regions import Region, from_region, suppress_duplicates
from .runtime import (
    DETECTION_POSTPROCESS_OP,
    Runtime,
    find_runtime,
    input_converter,
    input_details,
    input_size,
    load_interpreter,
    output_tensors,
    set_input,
)
from .stats import Stopwatch
from .tflite_graph import Graph, read_graph

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transform:
    """How a frame was fitted into the model input: scale and padding in input pixels.

    Maps a box normalised to the model input back to one normalised to the original frame.
    """

    frame_w: int
    frame_h: int
    input_w: int
    input_h: int
    scale_x: float
    scale_y: float
    pad_x: float = 0.0
    pad_y: float = 0.0

    def to_frame(self, ymin: float, xmin: float, ymax: float, xmax: float) -> BBox:
        """A model-space (ymin, xmin, ymax, xmax) box as a normalised frame BBox, clipped."""

        def fx(x):
            return (x * self.input_w - self.pad_x) / self.scale_x / self.frame_w

        def fy(y):
            return (y * self.input_h - self.pad_y) / self.scale_y / self.frame_h

        return BBox(fx(xmin), fy(ymin), fx(xmax), fy(ymax)).clip()


def fit_transform(frame_w: int, frame_h: int, input_w: int, input_h: int, resize: str) -> Transform:
    """The Transform for stretching, or letterboxing (aspect kept, centred, padded) a frame."""
    if resize == "letterbox":
        s = min(input_w / frame_w, input_h / frame_h)
        new_w, new_h = int(round(frame_w * s)), int(round(frame_h * s))
        return Transform(
            frame_w,
            frame_h,
            input_w,
            input_h,
            new_w / frame_w,
            new_h / frame_h,
            (input_w - new_w) // 2,
            (input_h - new_h) // 2,
        )
    return Transform(frame_w, frame_h, input_w, input_h, input_w / frame_w, input_h / frame_h)


def fit_image(image: np.ndarray, t: Transform) -> np.ndarray:
    """The BGR image resized (and padded for letterbox) to the model input size."""
    new_w, new_h = int(round(t.frame_w * t.scale_x)), int(round(t.frame_h * t.scale_y))
    if (new_w, new_h) == (image.shape[1], image.shape[0]):
        resized = image
    else:
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if (new_w, new_h) == (t.input_w, t.input_h):
        return resized
    px, py = int(t.pad_x), int(t.pad_y)
    return cv2.copyMakeBorder(
        resized, py, t.input_h - new_h - py, px, t.input_w - new_w - px, cv2.BORDER_CONSTANT, value=(0, 0, 0)
    )


@dataclass(frozen=True)
class OutputMap:
    """Which output (by position in the output details) holds boxes, classes, scores and the
    count: decided once, when the model loads (see `output_roles`)."""

    boxes: int
    classes: int
    scores: int
    count: int


def output_roles(details: Sequence[Mapping], graph: Optional[Graph] = None) -> OutputMap:
    """The OutputMap of an SSD model's outputs, or a ValueError when they are not boxes
    [1,N,4], two [1,N] tensors and a count [1].

    Boxes and the count are told by their shapes; which of the two [1,N] tensors holds the
    classes and which the scores, by the graph's SSD post-process op, whose outputs are
    boxes, classes, scores, count in that order whatever order the model lists its outputs in
    (TF2 exports list scores first). Without the graph (or the op), the TF1 order: classes
    before scores.
    """
    boxes = [i for i, d in enumerate(details) if len(d["shape"]) == 3 and d["shape"][-1] == 4]
    count = [i for i, d in enumerate(details) if int(np.prod(d["shape"])) == 1]
    pair = [i for i, d in enumerate(details) if len(d["shape"]) == 2 and i not in boxes]
    if len(details) != 4 or len(boxes) != 1 or len(count) != 1 or len(pair) != 2:
        shapes = [list(map(int, d["shape"])) for d in details]
        raise ValueError(f"outputs {shapes} are not boxes/classes/scores/count")
    classes, scores = pair
    op = graph.custom_op(DETECTION_POSTPROCESS_OP) if graph is not None else None
    if op is not None and len(op.outputs) == 4:
        op_classes, op_scores = op.outputs[1], op.outputs[2]
        tensor = [d.get("index") for d in details]
        if tensor[scores] == op_classes and tensor[classes] == op_scores:
            classes, scores = scores, classes
    return OutputMap(boxes[0], classes, scores, count[0])


def image_to_input(
    image: np.ndarray,
    input_wh: Tuple[int, int],
    convert: Optional[Callable[[np.ndarray], np.ndarray]] = None,
    resize: str = "stretch",
    model_input: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, Transform]:
    """BGR frame -> (model input, transform back to the frame), for any model: the frame
    fitted to `input_wh` (stretched or letterboxed), as RGB, then `convert`ed.

    `convert` is `runtime.input_converter` of a TFLite model's input; None leaves the RGB
    image (e.g. a Hailo HEF takes it as is). `model_input` is a BGR image already at the
    input size (e.g. picamera2's lores stream); it is used as is in stretch mode.
    """
    h, w = image.shape[:2]
    t = fit_transform(w, h, input_wh[0], input_wh[1], resize)
    if model_input is not None and resize == "stretch" and model_input.shape[1::-1] == tuple(input_wh):
        fitted = model_input
    else:
        fitted = fit_image(image, t)
    rgb = cv2.cvtColor(fitted, cv2.COLOR_BGR2RGB)
    return (rgb if convert is None else convert(rgb)), t


class Detector:
    """A loaded detection model with its labels and options; `detect(frame)` runs it.

    Not thread-safe: one Detector per inference thread (the interpreter owns its buffers).
    """

    def __init__(
        self,
        interpreter,
        labels: Mapping[int, str],
        options: DetectOptions,
        runtime: Runtime,
        model_path: str,
        threads: Optional[int],
        delegate: Optional[str],
        outputs: Optional[OutputMap] = None,
    ):
        self.interpreter = interpreter
        self.labels = dict(labels)
        self.options = options
        self.runtime = runtime
        self.model_path = model_path
        self.threads = threads
        self.delegate = delegate or "cpu"
        inp = input_details(interpreter)
        self._input_index = inp["index"]
        self._to_tensor = input_converter(inp)
        self.input_dtype = np.dtype(inp["dtype"])
        self.input_size = input_size(interpreter)
        self._outputs = interpreter.get_output_details()
        # `outputs` comes from the model's graph (Detector.load); given none, the shapes and
        # the TF1 order decide.
        self.output_map = outputs if outputs is not None else output_roles(self._outputs)
        self._allowed = allowed_ids(self.labels, options.classes)

    @classmethod
    def load(
        cls,
        model_path: str,
        labels_path: Optional[str] = None,
        *,
        threads: Optional[int] = None,
        delegate: Optional[str] = None,
        options: DetectOptions = DetectOptions(),
        runtime: Optional[Runtime] = None,
    ) -> "Detector":
        """Load and check a model and its labels; a warm-up invoke runs before returning."""
        runtime = runtime or find_runtime()
        interpreter = load_interpreter(model_path, threads=threads, delegate=delegate, runtime=runtime)
        graph = _read_graph(model_path)
        outputs, num_classes = _check_is_detector(interpreter, model_path, graph)
        labels = {}
        if labels_path:
            labels = load_labels(labels_path)
            if num_classes:
                check_labels_fit(labels, num_classes, labels_path)
        detector = cls(interpreter, labels, options, runtime, model_path, threads, delegate, outputs)
        detector.invoke(
            np.zeros((1, detector.input_size[1], detector.input_size[0], 3), detector.input_dtype)
        )
        return detector

    def preprocess(
        self, image: np.ndarray, model_input: Optional[np.ndarray] = None
    ) -> Tuple[np.ndarray, Transform]:
        """BGR frame -> (input tensor, transform back to the frame) (see `image_to_input`)."""
        return image_to_input(image, self.input_size, self._to_tensor, self.options.resize, model_input)

    @property
    def name(self) -> str:
        """The backend name: `cpu`, or `edgetpu` with the Coral delegate."""
        return self.delegate

    @property
    def sensor(self) -> None:
        """An interpreter detects on this machine, not on the camera's sensor."""
        return None

    def describe(self) -> str:
        """Where the model runs (the runtime and its version), for the start-up log line."""
        return self.runtime.describe()

    def prepare(self, frame: Frame) -> Tuple[np.ndarray, Transform]:
        """The backend interface (edgecam.backends): preprocess the frame's image."""
        return self.preprocess(frame.image, frame.model_input)

    def timings(self, _raw) -> Dict[str, float]:
        """Times measured outside this process: none for an interpreter."""
        return {}

    def invoke(self, tensor: np.ndarray) -> Tuple[np.ndarray, ...]:
        """Run the interpreter on an input tensor; the raw outputs in the model's order (copied)."""
        set_input(self.interpreter, tensor, self._input_index)
        self.interpreter.invoke()
        return output_tensors(self.interpreter, self._outputs)

    def split_outputs(self, raw: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(boxes [N,4], classes [N], scores [N], count) from raw outputs, by the output map."""
        m = self.output_map
        classes, scores = raw[m.classes][0], raw[m.scores][0]
        count = int(raw[m.count].reshape(-1)[0])
        return raw[m.boxes][0], classes, scores, max(0, min(count, len(classes)))

    def postprocess(
        self, raw: Sequence[np.ndarray], transform: Transform, threshold: Optional[float] = None
    ) -> Tuple[Detection, ...]:
        """Detections above the threshold, allowed and large enough, best first."""
        floor = self.options.threshold if threshold is None else threshold
        boxes, classes, scores, n = self.split_outputs(raw)
        # Only candidates over the threshold are decoded: most of the N outputs score near 0.
        candidates = (
            Detection(label_for(self.labels, int(c)), int(c), float(s), transform.to_frame(*map(float, b)))
            for b, c, s in zip(boxes[:n], classes[:n], scores[:n])
            if s >= floor
        )
        return keep(candidates, self.options, self._allowed, threshold)

    def close(self) -> None:
        """Nothing to release: the interpreter is freed with the object."""

    def detect(self, frame: Frame, threshold: Optional[float] = None) -> FrameResult:
        """Detect and time one frame (see `timed_detect`)."""
        return timed_detect(self, frame, threshold)


def load_interpreters(request: LoadRequest, delegate: Optional[str]) -> List[Detector]:
    """One Detector per worker on the request's model (the first warms up the runtime the
    others share)."""
    model = request.model
    if model is None:
        raise ValueError("the TFLite backends need a model path (models.resolve_model)")
    first = Detector.load(
        model, request.labels, threads=request.threads, delegate=delegate, options=request.options
    )
    rest = [
        Detector.load(
            model,
            request.labels,
            threads=request.threads,
            delegate=delegate,
            options=request.options,
            runtime=first.runtime,
        )
        for _ in range(request.workers - 1)
    ]
    return [first, *rest]


def load_cpu(request: LoadRequest) -> List[Detector]:
    """The `cpu` backend's loader (edgecam.backends.REGISTRY): interpreters on the CPU."""
    return load_interpreters(request, "cpu")


def load_edgetpu(request: LoadRequest) -> List[Detector]:
    """The `edgetpu` backend's loader: interpreters with the Coral delegate."""
    return load_interpreters(request, "edgetpu")


def timed_detect(
    backend,
    frame: Frame,
    threshold: Optional[float] = None,
    prepared: Optional[tuple] = None,
    regions: Sequence[Region] = (),
) -> FrameResult:
    """Prepare, invoke and postprocess one frame on any backend (edgecam.backends: the
    interface), timing each stage in ms: the one place a frame is detected and timed (the
    pipeline, the probe, Detector.detect). Times the backend measured elsewhere (an IMX500's
    sensor) are added to the timings.

    `prepared` is this frame's `prepare()` done earlier (e.g. on the capture thread);
    `threshold` overrides the options' one. A frame the backend has nothing to say about
    (prepare gives None) comes back in state NO_INFORMATION.

    `regions` are crops (edgecam.regions) run after the whole frame, each fitted to the model
    input on its own; their boxes are mapped back to the frame and merged with the frame's
    by `regions.suppress_duplicates`, which every frame's detections go through. The timings
    then add up every pass, and the result's `invokes` counts them.
    """
    watch = Stopwatch()
    prepared = prepared or backend.prepare(frame)
    if prepared is None:  # e.g. an IMX500 frame without outputs: no information
        return FrameResult(frame, (), 0.0, {}, state=FrameState.NO_INFORMATION)
    tensor, transform = prepared
    watch.lap("preprocess")
    raw = backend.invoke(tensor)
    invoke_ms = watch.lap("invoke")
    detections = backend.postprocess(raw, transform, threshold)
    watch.lap("postprocess")
    timings = backend.timings(raw)
    if regions:
        found = list(detections)
        for region in regions:
            crop = dataclasses.replace(frame, image=region.crop(frame.image), model_input=None)
            tensor, transform = backend.prepare(crop)
            watch.lap("preprocess")
            raw = backend.invoke(tensor)
            invoke_ms += watch.lap("invoke")
            found += from_region(region, backend.postprocess(raw, transform, threshold))
            watch.lap("postprocess")
        # The options' rules again, now on frame boxes: min_area, and the per-frame count.
        detections = keep(found, backend.options, None, threshold)
    detections = suppress_duplicates(detections)
    watch.lap("postprocess")
    return FrameResult(frame, detections, invoke_ms, {**watch.laps, **timings}, invokes=1 + len(regions))


def _read_graph(model_path: str) -> Optional[Graph]:
    """The model's graph, or None when the file cannot be read as one."""
    try:
        with open(model_path, "rb") as fh:
            return read_graph(fh.read())
    except (OSError, ValueError):
        return None


def _check_is_detector(
    interpreter, model_path: str, graph: Optional[Graph]
) -> Tuple[OutputMap, Optional[int]]:
    """(the output map, num_classes of the SSD post-process), or an EdgecamError for a
    model that is no detector."""
    try:
        outputs = output_roles(interpreter.get_output_details(), graph)
    except ValueError as exc:
        raise EdgecamError(
            f"{model_path} is not an SSD detection model ({exc}; no "
            f"{DETECTION_POSTPROCESS_OP}): give a detection model such as "
            "ssd_mobilenet_v1_coco, or use `edgecam probe` for classifiers"
        ) from None
    ssd = ssd_options(graph) if graph is not None else None
    return outputs, (ssd.num_classes or None) if ssd is not None else None
