"""Compares two `edgecam run --json` outputs (x86 reference, arm64 run) photo by photo.

    pi-compare.py REFERENCE.jsonl OTHER.jsonl   same photos, same labels, scores and box
                                                coordinates within TOLERANCE of each other
    pi-compare.py --json-only FILE.jsonl        every line of FILE is one JSON object

Detections are paired greedily by label and nearest box. A detection without a partner is
accepted only when its score is within TOLERANCE of the threshold (0.5): the other side may
have scored it just under. Prints one line per photo and exits 1 on any mismatch.
"""
import json
import sys
from pathlib import PurePath

TOLERANCE = 0.02
THRESHOLD = 0.5


def read_frames(path):
    """{photo file name: [detection, ...]} from the frame lines of a --json output.

    Lines that are not JSON are skipped here: `--json-only` is the check for them.
    """
    frames = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("type") == "frame":
                frames[PurePath(record["source"]).name] = record["detections"]
    return frames


def box_distance(a, b):
    """Largest coordinate difference between two normalised boxes."""
    return max(abs(x - y) for x, y in zip(a["box"], b["box"]))


def compare(ref, other):
    """(problems, largest score difference, largest box difference) for one photo."""
    problems, score_diff, box_diff = [], 0.0, 0.0
    unpaired = list(other)
    for det in sorted(ref, key=lambda d: -d["score"]):
        same_label = [d for d in unpaired if d["label"] == det["label"]]
        if not same_label:
            if det["score"] >= THRESHOLD + TOLERANCE:
                problems.append("%s %.3f missing" % (det["label"], det["score"]))
            continue
        partner = min(same_label, key=lambda d: box_distance(det, d))
        unpaired.remove(partner)
        score_diff = max(score_diff, abs(det["score"] - partner["score"]))
        box_diff = max(box_diff, box_distance(det, partner))
    for det in unpaired:
        if det["score"] >= THRESHOLD + TOLERANCE:
            problems.append("extra %s %.3f" % (det["label"], det["score"]))
    if score_diff > TOLERANCE:
        problems.append("score differs by %.3f" % score_diff)
    if box_diff > TOLERANCE:
        problems.append("box differs by %.3f" % box_diff)
    return problems, score_diff, box_diff


def json_only(path):
    """True when every line of the file is a JSON object."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                if not isinstance(json.loads(line), dict):
                    raise ValueError("not an object")
            except ValueError:
                print("    line %d is not JSON: %s" % (number, line.rstrip()[:100]))
                return False
    return True


def main(argv):
    if argv[:1] == ["--json-only"]:
        return 0 if json_only(argv[1]) else 1
    ref, other = read_frames(argv[0]), read_frames(argv[1])
    ok = sorted(ref) == sorted(other) and len(ref) > 0
    if not ok:
        print("    photos differ: %s vs %s" % (sorted(ref), sorted(other)))
    for name in sorted(set(ref) & set(other)):
        problems, score_diff, box_diff = compare(ref[name], other[name])
        ok = ok and not problems
        print("    %-18s %2d vs %2d detections, max score diff %.4f, max box diff %.4f%s" % (
            name, len(ref[name]), len(other[name]), score_diff, box_diff,
            "" if not problems else ": " + "; ".join(problems)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
