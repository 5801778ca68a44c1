"""Stand-in for picamera2.encoders, with real encoding (PyAV's libx264) of the frames the
stand-in camera makes.

picamera2 picks `H264Encoder` at import: the V4L2 hardware encoder (/dev/video11,
bcm2835-codec) on a Pi 4 and earlier, else `LibavH264Encoder`, libx264 through PyAV in
software, which is what a Pi 5 gets. This machine has no bcm2835 codec either, so here
`H264Encoder` is `LibavH264Encoder`, as on a Pi 5. Its behaviour, as picamera2's:
- start_encoder() gives it the stream's size, format and stride, and a frame rate;
- each frame is encoded from the stream's buffer (BGR for "RGB888") with `preset`
  ultrafast and `tune` zerolatency, `iperiod` frames between keyframes, time base 1 us,
  FFmpeg choosing the thread count (frame threads: packets can come out frames late);
- timestamps are the request's SensorTimestamp in us, minus the first one's
  (`firsttimestamp`): the first frame is 0;
- with `repeat` (the default) the SPS/PPS headers come with every keyframe;
- each packet goes to every output as outputframe(bytes, keyframe, timestamp=pts, packet=p);
- a request is held until the next frame was encoded (`_request_release_delay` 1);
- stop() flushes what libav still holds to the outputs, then stops them.
"""

from __future__ import annotations

import collections
import threading
from enum import Enum
from fractions import Fraction

from ..outputs import Output


class Quality(Enum):
    """picamera2's quality levels (used when no bitrate was given)."""

    VERY_LOW = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    VERY_HIGH = 4


class Encoder:
    """picamera2's encoder base: size, format, outputs, start/stop, timestamps."""

    def __init__(self):
        self.width = self.height = self.stride = 0
        self.format = None
        self._output = []
        self._running = False
        self.name = None
        self._lock = threading.Lock()
        self.firsttimestamp = None

    @property
    def running(self):
        return self._running

    @property
    def output(self):
        return self._output[0] if len(self._output) == 1 else self._output

    @output.setter
    def output(self, value):
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, Output) for v in values):
            raise RuntimeError("Must pass Output")
        self._output = values

    def encode(self, stream, request):
        with self._lock:
            self._encode(stream, request)

    def start(self, quality=None):
        with self._lock:
            if self._running:
                raise RuntimeError("Encoder already running")
            self._setup(quality)
            self._running = True
            for out in self._output:
                out.start()
            self._start()

    def stop(self):
        with self._lock:
            if not self._running:
                raise RuntimeError("Encoder already stopped")
            self._running = False
            self._stop()
            for out in self._output:
                out.stop()

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
        for out in self._output:
            out.outputframe(frame, keyframe, timestamp, packet, audio)

    def _timestamp(self, request):
        ts = int(request.request.metadata["SensorTimestamp"] / 1000)  # ns to us
        if self.firsttimestamp is None:
            self.firsttimestamp = ts
            return 0
        return ts - self.firsttimestamp

    def _setup(self, quality):
        pass

    def _start(self):
        pass

    def _stop(self):
        pass

    def _encode(self, stream, request):
        pass


class LibavH264Encoder(Encoder):
    """libx264 through PyAV (see the module docstring)."""

    def __init__(self, bitrate=None, repeat=True, iperiod=30, framerate=30, qp=None, profile=None):
        super().__init__()
        self.bitrate, self.repeat, self.iperiod, self.framerate = bitrate, repeat, iperiod, framerate
        self.qp, self.profile, self.preset = qp, profile, None
        self.threads = 0  # FFmpeg chooses
        self._request_release_delay = 1
        self._request_release_queue = None
        self.frames_encoded = 0

    def _setup(self, quality):
        if quality is not None or (self.bitrate is None and self.qp is None):
            table = {Quality.VERY_LOW: 3, Quality.LOW: 4, Quality.MEDIUM: 7, Quality.HIGH: 10,
                     Quality.VERY_HIGH: 14}
            quality = Quality.MEDIUM if quality is None else quality
            scale = (self.width * self.height * (self.framerate or 30) / (1920 * 1080 * 30)) ** 0.5
            self.bitrate = int(table[quality] * 1_000_000 * scale)

    def _start(self):
        import av
        self._av = av
        self._container = av.open("/dev/null", "w", format="null")
        self._stream = self._container.add_stream("h264", rate=self.framerate)
        ctx = self._stream.codec_context
        ctx.thread_count = self.threads
        ctx.thread_type = av.codec.context.ThreadType.FRAME
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        if self.bitrate is not None:
            ctx.bit_rate = self.bitrate
        ctx.gop_size = self.iperiod or (1 << 31) - 1
        ctx.options["preset"] = self.preset or "ultrafast"
        ctx.options["deblock"] = "1"
        if not self.repeat:
            ctx.flags |= av.codec.context.Flags.GLOBAL_HEADER
        ctx.time_base = Fraction(1, 1000000)
        ctx.options["tune"] = "zerolatency"
        formats = {"YUV420": "yuv420p", "BGR888": "rgb24", "RGB888": "bgr24", "XBGR8888": "rgba",
                   "XRGB8888": "bgra"}
        self._av_input_format = formats[self.format]
        self._request_release_queue = collections.deque()

    def _encode(self, stream, request):
        request.acquire()
        self._request_release_queue.append(request)
        timestamp_us = self._timestamp(request)
        array = request.make_array(stream)
        frame = self._av.VideoFrame.from_ndarray(array, format=self._av_input_format)
        frame.pts = timestamp_us
        for packet in self._stream.encode(frame):
            self.outputframe(bytes(packet), packet.is_keyframe, timestamp=packet.pts, packet=packet)
        self.frames_encoded += 1
        while len(self._request_release_queue) > self._request_release_delay:
            self._request_release_queue.popleft().release()

    def _stop(self):
        for packet in self._stream.encode():
            self.outputframe(bytes(packet), packet.is_keyframe, timestamp=packet.pts, packet=packet)
        while self._request_release_queue:
            self._request_release_queue.popleft().release()
        self._container.close()


# No bcm2835-codec-encode at /dev/video11 here (as on a Pi 5): picamera2 falls back to libav.
H264Encoder = LibavH264Encoder
