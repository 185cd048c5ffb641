"""MQTT in the web UI (headless Chromium): the connection list shows the protocol and the
client id, an MQTT connection's page its session, the queue list marks the queues that
serve MQTT sessions. Screenshots go to ``docs/images/`` with ``PIGEON_UI_SCREENSHOTS``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest
from admin_helpers import Running
from mqtt_helpers import Paho, poll
from test_ui import CHROMIUM, browser, page, session, shot, visit

__all__ = ["browser", "page", "session"]  # the UI tests' fixtures, shared
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


@pytest.fixture
def device(running: Running, uid: str) -> Iterator[Paho]:
    port = running.broker.mqtt_port
    assert port is not None
    client = Paho(port, f"sensor-{uid}")
    client.connect(keepalive=25, expiry=120, clean=False)
    client.subscribe("sensors/+/temperature", 1)
    client.subscribe("alerts/#", 0)
    yield client
    client.stop()


def test_mqtt_connections_sessions_and_queues_in_the_ui(
    page: Any, running: Running, device: Paho, uid: str
) -> None:
    client_id = device.client_id
    poll(lambda: any(c.get("client_id") == client_id for c in running.api.get("/api/connections")))
    amqp = pika.BlockingConnection(pika.URLParameters(running.broker.amqp_url))
    try:
        visit(page, running, "#/connections", "#connections td:has-text('AMQP 0-9-1')")
        page.wait_for_selector(f"#connections td:has-text('{client_id}')")
        shot(page, "ui-connections-mqtt")
    finally:
        amqp.close()
    row = page.locator("#connections tbody tr", has_text=client_id)
    assert "MQTT 5.0" in row.inner_text()

    row.locator("a").first.click()
    page.wait_for_selector("main .facts dt:has-text('Client id')")
    facts = page.inner_text("main .facts")
    for expected in (client_id, "MQTT 5.0", "25 s", "120 s"):
        assert expected in facts
    assert "Clean session\nno" in facts and "Will\nno" in facts
    page.wait_for_selector("#connection-summary .tile:has-text('Subscriptions')")
    assert "2" in page.inner_text("#connection-summary .tile:has-text('Subscriptions') b")
    shot(page, "ui-connection-mqtt")

    queue = f"mqtt-subscription-{client_id}qos1"
    page.click(f"main .facts a:has-text('{queue}')")
    page.wait_for_selector("main .facts dt:has-text('MQTT')")
    assert client_id in page.inner_text("main .facts")

    running.api.request("PUT", f"/api/queues/%2F/orders-{uid}", {"durable": True})
    visit(page, running, "#/queues", f"#queues td:has-text('{queue}')")
    plain = page.locator("#queues tbody tr", has_text=f"orders-{uid}")
    assert plain.locator(".mqtt").count() == 0
    cell = page.locator("#queues tbody tr", has_text=queue).locator("td:nth-child(2)")
    assert cell.locator(".mqtt .tag").inner_text() == "MQTT"
    assert cell.locator(".mqtt-client").inner_text() == client_id
    shot(page, "ui-queues-mqtt")
