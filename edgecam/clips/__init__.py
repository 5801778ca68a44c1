"""Event clips: a short H.264 MP4 per tracked event, with pre-roll, within a disk budget.

Parts, one job each:
- `packets`: an encoded packet and the pre-roll ring of them (bounded in seconds and bytes);
- `encoder`: frames -> H.264 packets through PyAV (libx264, or the Pi 4's h264_v4l2m2m);
- `writer`: one clip file (temporary name, renamed when complete) and its JSON sidecar;
- `store`: the clips folder: names, listing, the disk budget, leftovers of a crash;
- `plan`: which frames belong to which clip, from the events (a pipeline processor);
- `picamera`, `stream`: taps of a camera's own H.264 (picamera2's encoder, an RTSP camera's
  packets), recorded instead of encoding frames;
- `sink`: the pipeline sink that encodes every frame (or takes a tap's packets) and writes
  what the plan asks for.

See docs/clips.md.
"""
