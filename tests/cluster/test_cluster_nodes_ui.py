"""The web UI of a cluster node (headless Chromium): the overview shows the cluster
(JetStream servers, durability) and every node, and a node that stops turns "not
running" there."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pigeon.broker import Broker
from pigeon.cluster.natsserver import LocalCluster
from pigeon.config import Config

from .pigeon_process import Process, serve, stop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def _config(cluster: LocalCluster, name: str) -> Config:
    return Config(
        mqtt_port=None,
        port=0,
        data_dir=None,
        management_port=0,
        cluster=",".join(cluster.urls),
        cluster_monitor=",".join(cluster.monitor_urls),
        node_name=name,
        cluster_node_timeout=1.5,
    )


@pytest.fixture
def page(nats_cluster: LocalCluster, tmp_path: Path) -> Iterator[tuple[Any, Process]]:
    """Node a's UI, logged in, with node b (a process) running beside it."""
    other = serve(nats_cluster, "pigeon-ui-b@test", tmp_path, 1.5)
    try:
        with (
            Broker.in_thread(_config(nats_cluster, "pigeon-ui-a@test")) as broker,
            playwright.sync_playwright() as driver,
        ):
            browser = driver.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            opened = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            opened.on("pageerror", lambda e: errors.append(str(e)))
            opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            assert broker.management_url is not None
            opened.goto(broker.management_url)
            opened.fill("input[name=user]", "guest")
            opened.fill("input[name=password]", "guest")
            opened.click("#login button[type=submit]")
            opened.wait_for_selector("main[data-page='#/'] .tiles")
            yield opened, other
            browser.close()  # (before the broker's loop is closed from this thread)
            assert errors == []
    finally:
        stop(other)


def _panel_until(opened: Any, words: str, within: float = 10.0) -> str:
    """The node panel's text once it contains ``words`` (reloading to refresh it)."""
    deadline = time.monotonic() + within
    while True:
        opened.wait_for_selector("#node h2")
        text = str(opened.inner_text("#node"))
        if words in text:
            return text
        assert time.monotonic() < deadline, text
        opened.reload()


def test_overview_shows_the_cluster_and_its_nodes(page: tuple[Any, Process]) -> None:
    opened, other = page
    cluster = opened.inner_text("#cluster")
    assert "always-sync" in cluster and "n1" in cluster
    text = _panel_until(opened, "2 of 2 running")
    assert "pigeon-ui-a@test" in text and "pigeon-ui-b@test" in text
    opened.wait_for_selector("#nodes")  # the table of nodes
    stop(other)  # node b stops cleanly: it says so at once
    text = _panel_until(opened, "1 of 2 running")
    assert "not running" in text
