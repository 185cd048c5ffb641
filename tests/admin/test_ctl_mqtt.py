"""``pigeon ctl`` lists MQTT connections and sessions (as ``rabbitmqctl
list_mqtt_connections`` does), run as a process against a real broker."""

from __future__ import annotations

import json

from admin_helpers import Running
from mqtt_helpers import Paho, poll
from test_ctl import ctl


def test_mqtt_connections_and_sessions_are_listed(running: Running, uid: str) -> None:
    port = running.broker.mqtt_port
    assert port is not None
    client_id = f"ctl-mqtt-{uid}"
    client = Paho(port, client_id, version=4, clean_session=False)
    try:
        client.connect(keepalive=42)
        client.subscribe("ctl/+", 1)
        poll(lambda: client_id in ctl(running, "list", "connections").stdout)
        table = ctl(running, "list", "connections").stdout.splitlines()
        assert table[0].split() == ["name", "protocol", "client_id", "user", "vhost", "channels"]
        row = next(line for line in table if client_id in line)
        assert "MQTT 3.1.1" in row

        lines = ctl(running, "list-mqtt-connections").stdout.splitlines()
        assert lines[0].split() == [
            "client_id",
            "conn_name",
            "protocol",
            "user",
            "vhost",
            "keepalive",
            "clean_sess",
        ]
        mine = next(line for line in lines if line.startswith(client_id))
        assert mine.split()[-5:] == ["3.1.1", "guest", "/", "42", "False"]
        assert all("AMQP" not in line for line in lines)

        picked = ctl(running, "list-mqtt-connections", "client_id", "keepalive").stdout
        assert picked.splitlines()[0].split() == ["client_id", "keepalive"]
        same = ctl(running, "list", "mqtt-connections").stdout
        assert client_id in same

        client.stop()
        sessions = json.loads(ctl(running, "list", "mqtt-sessions", "--format", "json").stdout)
        away = next(s for s in sessions if s["client_id"] == client_id)
        assert (away["connected"], away["subscriptions"]) == (False, 1)
    finally:
        client.stop()
