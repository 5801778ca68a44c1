"""Stand-in for picamera2.outputs: the `Output` base an encoder writes to.

As picamera2's: `recording` is False until start(); outputframe(frame, keyframe, timestamp,
packet, audio) is what an encoder calls with each encoded frame (bytes, whether it is a key
frame, microseconds since the encoder's first frame, and for the libav encoders the PyAV
packet itself); the base class drops it.
"""

from __future__ import annotations


class Output:
    """Where an encoder's frames go (subclass and override outputframe)."""

    def __init__(self, pts=None):
        self.recording = False
        self.ptsoutput = pts

    def start(self):
        self.recording = True

    def stop(self):
        self.recording = False

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
        pass

    def outputtimestamp(self, timestamp):
        if self.ptsoutput is not None and timestamp is not None:
            print(f"{timestamp // 1000}.{timestamp % 1000:03}", file=self.ptsoutput, flush=True)
