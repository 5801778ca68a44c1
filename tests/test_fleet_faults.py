"""Faults under a small fleet, the short form of scripts/bench_fleet.py --faults: three real
`edgecam run` processes, real mosquittos (one restarted twice; a site bridged to a central
that goes away), a subscriber with a persistent session counting every event."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import bench_fleet as fleet  # noqa: E402

CAMERAS = 3


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    work = tmp_path_factory.mktemp("fleet")
    return fleet.scene_video(work / "scene.mp4", fps=1.0), fleet.fleet_config(work / "fleet.toml")


def test_broker_restarts_and_a_killed_camera_lose_and_duplicate_nothing(scene, tmp_path):
    video, config = scene
    out = fleet.restart_faults(CAMERAS, tmp_path / "fleet", video, config, down=1.0, run_s=1.0)
    events = out["events"]
    assert len(out["restarts"]) == 2  # every camera came back both times (or it raised)
    assert all(r["made_while_down"] >= 1 for r in out["restarts"])  # spooled meanwhile
    assert events["made"] >= 3 * CAMERAS
    assert (events["lost"], events["duplicated"], events["extra"]) == (0, 0, 0), events
    kill = out["kill"]
    assert kill["will_s"] is not None and kill["will_s"] <= kill["will_limit_s"]
    assert kill["orphans_ended_at_restart"] == kill["orphans"]
    assert events["restart_ends"] == kill["orphans"]  # and nothing else was ended so


def test_a_bridged_site_queues_while_the_central_broker_is_down(scene, tmp_path):
    video, config = scene
    out = fleet.bridge_fault(CAMERAS, tmp_path / "bridge", video, config, central_down=3.0,
                             run_s=1.0)
    assert out["made_while_down"] >= 1  # events were made while the central was away...
    assert (out["lost"], out["duplicated"], out["extra"]) == (0, 0, 0), out  # ...and delivered
