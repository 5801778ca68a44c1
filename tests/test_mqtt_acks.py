"""Only the broker's acknowledgements of QoS 1 messages reach the spool (AckFilter)."""

from __future__ import annotations

import threading
import time

from edgecam.comms.acks import AckFilter
from edgecam.comms.mqtt import MqttCommunicator


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_written_qos0_reports_are_not_acks_and_qos1_acks_pass_once():
    acks = AckFilter()
    assert acks.sent(5) is None
    assert acks.reported(4, True) is False      # a QoS 0 message written: not ours to forward
    assert acks.reported(5, True) is True       # the PUBACK of the QoS 1 message
    assert acks.reported(5, True) is False      # reported twice: forwarded once
    assert len(acks) == 0


def test_an_ack_reported_before_publish_returned_is_still_claimed_with_its_outcome():
    acks = AckFilter()
    assert acks.reported(9, False) is False     # paho's thread was quicker than publish()
    assert acks.sent(9) is False                # ... so sent() hands over the (rejected) ack
    assert len(acks) == 0


def test_after_a_wrap_a_stale_qos0_number_does_not_acknowledge_a_new_event():
    clock = Clock()
    acks = AckFilter(horizon=2.0, clock=clock)
    assert acks.reported(7, True) is False      # QoS 0 message number 7 written
    clock.now += 60                             # 65,535 messages later the counter wraps
    assert acks.sent(7) is None                 # event 7 still waits for its own PUBACK
    assert len(acks) == 1
    assert acks.reported(7, True) is True


def test_only_qos1_acks_reach_listeners_with_a_real_broker(mqtt_broker):
    comm = MqttCommunicator(mqtt_broker.host, mqtt_broker.port, client_id="acks-test",
                            availability_topic="edgecam/acks/availability")
    got, lock, qos1 = [], threading.Lock(), []

    def on_ack(mid, ok):
        with lock:
            got.append((mid, ok))

    comm.add_ack_listener(on_ack)
    comm.start()
    try:
        deadline = time.monotonic() + 10
        while not comm.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert comm.connected
        for i in range(200):
            comm.publish("edgecam/acks/detections", b"{}")          # per-frame, QoS 0
            if i % 20 == 0:
                qos1.append(comm.publish("edgecam/acks/events", b"{}", qos=1))
        deadline = time.monotonic() + 10
        while len(got) < len(qos1) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # anything extra would have arrived by now
        assert sorted(mid for mid, _ in got) == sorted(qos1)
        assert all(ok for _, ok in got)
    finally:
        comm.stop()
