"""TLS, username/password and an ACL limiting a device to its own prefix (real mosquitto)."""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as paho

from edgecam.comms.mqtt import MqttCommunicator
from mqtt_helpers import build_mqtt, detect_config, frame_result, mqtt_config
from waiting import wait_until

PREFIX = "edgecam/cam1"


def test_tls_with_a_ca_made_by_the_fixture(mqtt_tls_broker, tmp_path, subscriber_factory):
    broker = mqtt_tls_broker
    sub = subscriber_factory(broker.host, broker.port, f"{PREFIX}/#", ca=broker.ca)
    sink, comm, _d, _l = build_mqtt(mqtt_config(broker, tls_ca=broker.ca), detect_config(),
                                    tmp_path / "state", "ssd")
    try:
        assert sub.wait_topic(f"{PREFIX}/availability") == [b"online"]
        sink.handle(frame_result(0))
        assert sub.wait_topic(f"{PREFIX}/detections")
    finally:
        sink.close()


def test_tls_refuses_a_server_signed_by_another_ca(mqtt_tls_broker, caplog):
    caplog.set_level(logging.INFO, logger="edgecam.mqtt")
    broker = mqtt_tls_broker
    comm = MqttCommunicator(broker.host, broker.port, client_id="edgecam-wrong-ca",
                            availability_topic=f"{PREFIX}/availability", tls_ca=broker.other_ca)
    comm.start()
    try:
        # Until the handshake has failed (paho's next attempt would come 3 s later).
        assert wait_until(lambda: any("cannot reach broker" in r.getMessage()
                                      for r in caplog.records), 10)
        assert not comm.connected  # verification is on by default
    finally:
        comm.stop()


def test_password_from_file_and_acl_rejects_publishing_outside_the_prefix(
        mqtt_acl_broker, tmp_path, subscriber_factory, caplog):
    broker = mqtt_acl_broker
    caplog.set_level(logging.DEBUG)
    sub = subscriber_factory(broker.host, broker.port, "#", username="watcher",
                             password="watcher-secret")
    sink, comm, _d, _l = build_mqtt(
        mqtt_config(broker, user="cam1", password_file=str(broker.password_file)),
        detect_config(), tmp_path / "state", "ssd")
    try:
        assert sub.wait_topic(f"{PREFIX}/availability") == [b"online"]
        sink.handle(frame_result(0))
        assert sub.wait_topic(f"{PREFIX}/detections")
        assert "cam1-secret" not in caplog.text  # the password is never logged

        acks = {}
        cond = threading.Condition()

        def on_ack(mid, accepted):
            with cond:
                acks[mid] = accepted
                cond.notify_all()
        comm.add_ack_listener(on_ack)
        mid = comm.publish("edgecam/cam2/events", b'{"v": 1}', qos=1)
        with cond:
            assert cond.wait_for(lambda: mid in acks, 5)
        assert acks[mid] is False  # MQTT v5 PUBACK reason code: not authorised
        comm.publish("edgecam/cam2/detections", b"{}", qos=0)
        sink.handle(frame_result(1))  # a later allowed message proves the others had time
        sub.wait_topic(f"{PREFIX}/detections", count=2)
        assert not any(m.topic.startswith("edgecam/cam2") for m in sub.messages)
    finally:
        sink.close()


def test_wrong_password_is_refused_and_logged_once(mqtt_acl_broker, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="edgecam.mqtt")
    broker = mqtt_acl_broker
    answers = []  # every CONNACK the broker sends: one per connection attempt
    on_connect = MqttCommunicator._on_connect
    monkeypatch.setattr(MqttCommunicator, "_on_connect",
                        lambda self, *args: (answers.append(args[3]), on_connect(self, *args)))
    sink, comm, _d, _l = build_mqtt(mqtt_config(broker, user="cam1"), detect_config(),
                                    tmp_path / "state", "ssd",
                                    env={"EDGECAM_MQTT_PASSWORD": "not-the-password"})
    try:
        assert wait_until(lambda: len(answers) >= 2, 10), "at least two attempts"
        assert all(a.is_failure for a in answers)
        assert not comm.connected
        refused = [r for r in caplog.records if "refused the connection" in r.getMessage()]
        assert len(refused) == 1 and "not-the-password" not in caplog.text
    finally:
        sink.close()


def test_mqtt_311_protocol_option(mqtt_broker, tmp_path, subscriber_factory):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, f"{PREFIX}/#",
                             protocol=paho.MQTTv311)
    sink, comm, _d, _l = build_mqtt(mqtt_config(mqtt_broker, protocol="3.1.1"), detect_config(),
                                    tmp_path / "state", "ssd")
    try:
        assert comm._client.protocol == paho.MQTTv311
        assert sub.wait_topic(f"{PREFIX}/availability") == [b"online"]
    finally:
        sink.close()
