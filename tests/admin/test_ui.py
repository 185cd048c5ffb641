"""The web UI in headless Chromium (Debian's ``chromium``) against a real broker.

Every page loads without console errors; every action reaches the broker (checked
through the HTTP API or pika afterwards); the queue list pages on the server; the
main menu works from the keyboard; dark mode toggles. Screenshots go to
``docs/images/`` when ``PIGEON_UI_SCREENSHOTS`` names that folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from admin_helpers import Running, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
SCREENSHOTS = os.environ.get("PIGEON_UI_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser(running: Running) -> Iterator[Any]:
    # Depends on the broker so it closes first: Playwright's loop must be gone before the
    # broker's thread shuts its own loop down from this thread.
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


def logged_in(
    browser: Any, running: Running, user: str = "guest", password: str = "guest", **options: Any
) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: errors.append(str(e)))
    opened.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None
        ),
    )
    opened.goto(running.base + "/")
    opened.fill("input[name=user]", user)
    opened.fill("input[name=password]", password)
    opened.click("#login button[type=submit]")
    opened.wait_for_selector("main[data-page='#/'] .tiles")
    return context, opened, errors


@pytest.fixture(scope="module")
def session(browser: Any, running: Running) -> Iterator[tuple[Any, list[str]]]:
    """One logged-in tab for the module: each test reloads it (fresh page state, the
    login kept in sessionStorage), which is quicker than a new browser context."""
    context, opened, errors = logged_in(browser, running)
    yield opened, errors
    context.close()


@pytest.fixture
def page(session: tuple[Any, list[str]], running: Running) -> Iterator[Any]:
    opened, errors = session
    opened.evaluate("location.hash = '#/'")
    opened.reload()
    opened.wait_for_selector("main[data-page='#/'] .tiles")
    errors.clear()
    yield opened
    assert errors == []


def shot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def visit(page: Any, running: Running, hash_: str, selector: str) -> None:
    page.goto(running.base + "/" + hash_)
    page.wait_for_selector(f"main[data-page='{hash_}'] {selector}")


def confirm(page: Any) -> None:
    page.wait_for_selector("dialog[open] #confirm-yes")
    page.click("#confirm-yes")


def test_overview_charts_and_node_panel(page: Any, running: Running) -> None:
    assert "Publish /s" in page.inner_text(".tiles")
    page.wait_for_selector("#node meter")
    node = page.inner_text("#node")
    for words in ("Memory", "Disk free", "File descriptors", "Connections"):
        assert words in node
    # This broker has no data folder: the panel says so rather than "0 B" and "0 ms".
    assert "no data folder: messages in memory only" in node
    assert "Store write latency" not in node and "Store size" not in node
    # Axes: y ticks and time labels (hh:mm:ss over the last ten minutes).
    ticks = page.locator("#chart-depth text.tick").all_text_contents()
    assert "0" in ticks and any(t.count(":") == 2 for t in ticks)
    page.hover("#chart-depth svg")
    page.wait_for_selector("#chart-depth .tip:not([hidden])")
    page.mouse.move(0, 0)
    page.wait_for_selector("#chart-depth .tip", state="hidden")
    page.focus("#chart-depth svg")  # the keyboard reads a chart too
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("#chart-depth .tip:not([hidden]):has-text('Ready: 0')")
    assert "Queued messages" in (page.get_attribute("#chart-depth svg", "aria-label") or "")
    page.select_option("#range-select", "3600")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#chart-depth text.tick')]"
        ".some(t => /^\\d\\d:\\d\\d$/.test(t.textContent))"
    )
    page.select_option("#range-select", "600")
    # The refresh interval: paused, nothing is fetched; back to 5 s, the overview is.
    page.select_option("#refresh-select", "0")
    assert page.evaluate("localStorage.getItem('pigeon.refresh')") == "0"
    with page.expect_request(lambda r: "/api/overview" in r.url, timeout=8000):
        page.select_option("#refresh-select", "5000")


def test_every_page_loads(page: Any, running: Running, uid: str) -> None:
    api = running.api
    queue, exchange = f"ui-load-{uid}", f"ui-load-x-{uid}"
    api.request("PUT", f"/api/queues/%2F/{queue}", {})
    api.request("PUT", f"/api/exchanges/%2F/{exchange}", {"type": "topic"})
    for hash_, selector in (
        ("#/queues", "#queues"),
        ("#/exchanges", "#exchanges"),
        ("#/connections", "#connections"),
        ("#/channels", "#channels"),
        ("#/users", "#users"),
        ("#/vhosts", "#vhosts"),
        ("#/policies", "#policies"),
        ("#/limits", "#vhost-limits"),
        ("#/definitions", "#import"),
        (f"#/queues/%2F/{queue}", "#queue-summary .tiles"),
        (f"#/exchanges/%2F/{exchange}", "#bindings-out"),
        ("#/exchanges/%2F/amq.default", "#publish"),
        ("#/users/guest", "#user-permissions"),
    ):
        visit(page, running, hash_, selector)
    visit(page, running, "#/exchanges", "#exchanges")
    assert "amq.topic" in page.inner_text("#exchanges")
    visit(page, running, "#/users", "#users")
    assert "guest" in page.inner_text("#users")


def test_wrong_password_is_refused(browser: Any, running: Running) -> None:
    context = browser.new_context()
    opened = context.new_page()
    opened.goto(running.base + "/")
    opened.fill("input[name=user]", "guest")
    opened.fill("input[name=password]", "nope")
    opened.click("button[type=submit]")
    opened.wait_for_selector("#login-error:has-text('Login failed')")
    context.close()


def test_a_management_user_sees_no_admin_and_no_node_panel(
    browser: Any, running: Running, uid: str
) -> None:
    user = f"ui-mgmt-{uid}"
    running.api.request("PUT", f"/api/users/{user}", {"password": "pw", "tags": "management"})
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    running.api.request("PUT", f"/api/permissions/%2F/{user}", everything)
    context, opened, errors = logged_in(browser, running, user, "pw")
    try:
        opened.wait_for_selector("#node:has-text('needs the monitoring tag')")
        assert opened.locator("#nav a.admin").is_hidden()
        opened.goto(running.base + "/#/queues")
        opened.wait_for_selector("main[data-page='#/queues'] #queues")
    finally:
        context.close()
    assert errors == []


def test_queue_list_sorts(page: Any, running: Running, uid: str) -> None:
    for name in (f"ui-b-{uid}", f"ui-a-{uid}"):
        running.api.request("PUT", f"/api/queues/%2F/{name}", {})
    visit(page, running, "#/queues", "#queues")
    page.fill("#queue-filter-name", uid)
    page.press("#queue-filter-name", "Enter")
    page.wait_for_selector("#queues caption:has-text('2 matching')")
    page.click("#queues-sort-name")
    page.wait_for_selector("#queues th[data-key=name][aria-sort=descending]")
    names = page.locator("#queues tbody tr td:nth-child(2)").all_inner_texts()
    assert names == [f"ui-b-{uid}", f"ui-a-{uid}"]
    page.fill("#queue-filter-name", "")
    page.press("#queue-filter-name", "Enter")
    page.wait_for_selector("#queues caption:not(:has-text('matching'))")
    shot(page, "ui-queues")


def test_queue_pagination_and_regex_filter(page: Any, running: Running, uid: str) -> None:
    prefix = f"ui-many-{uid}"

    async def declare() -> None:
        assert running.broker.node is not None
        vhost = running.broker.node.vhosts["/"]
        for n in range(300):
            vhost.declare_queue(f"{prefix}-{n:03}", owner=None)

    running.on_loop(declare())
    visit(page, running, "#/queues", "#queues")
    page.fill("#queue-filter-name", prefix)
    page.select_option("#queue-filter select[name=size]", "100")
    page.press("#queue-filter-name", "Enter")
    page.wait_for_selector("#page-of:has-text('Page 1 of 3')")
    assert page.locator("#queues tbody tr").count() == 100
    page.click("#page-next")
    page.wait_for_selector("#page-of:has-text('Page 2 of 3')")
    assert f"{prefix}-100" in page.inner_text("#queues tbody tr:first-child")
    page.fill("#queue-filter-name", f"^{prefix}-2[0-4]")
    page.check("#queue-filter input[name=regex]")
    page.press("#queue-filter-name", "Enter")
    page.wait_for_selector("#queues caption:has-text('50 matching')")
    assert page.inner_text("#page-of") == "Page 1 of 1"


@pytest.mark.slow
def test_ten_thousand_queues_stay_usable(page: Any, running: Running, uid: str) -> None:
    prefix = f"ui-10k-{uid}"

    async def declare() -> None:
        assert running.broker.node is not None
        vhost = running.broker.node.vhosts["/"]
        for n in range(10_000):
            vhost.declare_queue(f"{prefix}-{n:05}", owner=None)

    running.on_loop(declare())
    visit(page, running, "#/queues", "#queues")
    page.fill("#queue-filter-name", f"{prefix}-0999")
    page.press("#queue-filter-name", "Enter")
    page.wait_for_selector("#queues caption:has-text('10 matching')", timeout=5000)
    page.fill("#queue-filter-name", "")
    page.press("#queue-filter-name", "Enter")
    page.wait_for_selector("#page-of:text-is('Page 1 of 200')", timeout=5000)  # 50 a page


def test_queue_actions(page: Any, running: Running, uid: str) -> None:
    api = running.api
    queue, other = f"ui-q-{uid}", f"ui-q-other-{uid}"
    for name in (queue, other):
        api.request("PUT", f"/api/queues/%2F/{name}", {"arguments": {"x-max-length": 100}})
    visit(page, running, f"#/queues/%2F/{queue}", "#publish")
    assert "Lim" in page.inner_text("#queue-summary .features")
    page.fill("#publish-routing-key", queue)
    page.click("#publish details:has-text('Headers') summary")
    page.fill("#publish-h-name-0", "origin")
    page.fill("#publish-h-value-0", "browser")
    page.click("#publish details:has-text('Properties') summary")
    page.fill("#publish-correlation_id", f"corr-{uid}")
    page.fill("#publish-payload", "hello from the browser")
    page.click("#publish button[type=submit]")
    page.wait_for_selector("#flash:has-text('Message published')")
    assert api.get(f"/api/queues/%2F/{queue}")["messages_ready"] == 1
    page.click("#get button[type=submit]")  # requeue: the message stays
    page.wait_for_selector("#got:has-text('hello from the browser')")
    got = page.inner_text("#got")
    for words in (f"corr-{uid}", "origin", "browser", "Redelivered", queue):
        assert words in got
    page.click("#get button[type=submit]")
    page.wait_for_selector("#got dd:text-is('true')")  # redelivered the second time
    shot(page, "ui-queue")
    page.select_option("#get-ackmode", "reject_requeue_false")
    page.click("#get button[type=submit]")
    wait_for(lambda: api.get(f"/api/queues/%2F/{queue}")["messages"] == 0)
    for n in range(3):
        api.request(
            "POST",
            "/api/exchanges/%2F/amq.default/publish",
            {
                "routing_key": queue,
                "payload": str(n),
                "payload_encoding": "string",
                "properties": {},
            },
        )
    page.fill("#move-destination", other)
    page.click("#move button[type=submit]")
    page.wait_for_selector("#flash:has-text('Moved 3 messages')")
    assert api.get(f"/api/queues/%2F/{queue}")["messages"] == 0
    assert api.get(f"/api/queues/%2F/{other}")["messages_ready"] == 3
    visit(page, running, f"#/queues/%2F/{other}", "#purge")
    page.click("#purge")
    page.click("#confirm-no")  # cancelled: nothing happens
    assert api.get(f"/api/queues/%2F/{other}")["messages_ready"] == 3
    page.click("#purge")
    confirm(page)
    page.wait_for_selector("#flash:has-text('Queue purged')")
    assert api.get(f"/api/queues/%2F/{other}")["messages_ready"] == 0
    page.click("#delete")
    confirm(page)
    page.wait_for_selector("main[data-page='#/queues'] #queues")
    assert api.request("GET", f"/api/queues/%2F/{other}").status == 404


def test_add_queue(page: Any, running: Running, uid: str) -> None:
    visit(page, running, "#/queues", "#add-queue")
    page.fill("#add-queue input[name=name]", f"ui-new-{uid}")
    page.select_option("#add-queue select[name=type]", "quorum")
    page.click("#add-queue button[type=submit]")
    page.wait_for_selector("#flash:has-text('Queue declared')")
    assert running.api.get(f"/api/queues/%2F/ui-new-{uid}")["type"] == "quorum"


def test_exchange_page_bindings_publish_delete(page: Any, running: Running, uid: str) -> None:
    api = running.api
    exchange, queue = f"ui-x-{uid}", f"ui-xq-{uid}"
    api.request("PUT", f"/api/queues/%2F/{queue}", {})
    visit(page, running, "#/exchanges", "#add-exchange")
    page.fill("#add-exchange input[name=name]", exchange)
    page.select_option("#add-exchange select[name=type]", "topic")
    page.click("#add-exchange button[type=submit]")
    page.wait_for_selector(f"#exchanges a:text-is('{exchange}')")
    assert api.get(f"/api/exchanges/%2F/{exchange}")["type"] == "topic"
    page.click(f"#exchanges a:text-is('{exchange}')")
    page.wait_for_selector("#bind")
    page.fill("#bind input[name=other]", queue)
    page.fill("#bind input[name=routing_key]", "orders.*")
    page.click("#bind button[type=submit]")
    page.wait_for_selector("#bindings-out td:text-is('orders.*')")
    assert [b["routing_key"] for b in api.get(f"/api/bindings/%2F/e/{exchange}/q/{queue}")] == [
        "orders.*"
    ]
    page.fill("#publish-routing-key", "orders.new")
    page.fill("#publish-payload", "routed")
    page.click("#publish button[type=submit]")
    page.wait_for_selector("#flash:has-text('Message published')")
    assert api.get(f"/api/queues/%2F/{queue}")["messages_ready"] == 1
    shot(page, "ui-exchange")
    page.click("#bindings-out button:has-text('Unbind')")
    page.wait_for_selector("#flash:has-text('Binding removed')")
    assert api.get(f"/api/bindings/%2F/e/{exchange}/q/{queue}") == []
    page.click("#delete")
    confirm(page)
    page.wait_for_selector("main[data-page='#/exchanges'] #exchanges")
    assert api.request("GET", f"/api/exchanges/%2F/{exchange}").status == 404


def test_connection_and_channel_pages(page: Any, running: Running, uid: str) -> None:
    port = running.broker.amqp_port
    params = pika.ConnectionParameters("127.0.0.1", port, client_properties={"product": uid})
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        visit(page, running, "#/connections", "#connections")
        page.wait_for_selector(f"#connections tr:has-text('{uid}')")
        page.click(f"#connections tr:has-text('{uid}') a")
        channel.basic_publish("", f"nowhere-{uid}", b"m")
        page.wait_for_selector("#connection-summary #channels tbody a")
        # The rates chart over the selected range, with its legend and time axis.
        page.select_option("#range-select", "3600")
        page.wait_for_selector("#chart-connection-rates svg text.tick")
        assert "Publish" in page.inner_text("#chart-connection-rates")
        page.select_option("#range-select", "600")
        page.wait_for_selector("#chart-connection-rates svg text.tick")
        page.click("#connection-summary #channels tbody a")
        page.wait_for_selector("#channel-summary .tiles")
        assert "Confirm mode" in page.inner_text("#channel-summary")
        page.wait_for_selector("#chart-channel-rates svg text.tick")
        label = page.get_attribute("#chart-channel-rates svg", "aria-label") or ""
        assert "Message rates, last 10 min" in label and "Publish" in label
        visit(page, running, "#/channels", "#channels")
        page.goto(running.base + "/#/connections")
        page.wait_for_selector(f"#connections tr:has-text('{uid}') a")
        page.click(f"#connections tr:has-text('{uid}') a")
        page.click("#close-connection")
        confirm(page)
        page.wait_for_selector("#flash:has-text('Connection closed')")

        def closed() -> bool:
            listed = running.api.get("/api/connections")
            return uid not in [c["client_properties"].get("product") for c in listed]

        wait_for(closed)
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
            connection.process_data_events(time_limit=1)
    finally:
        if connection.is_open:
            connection.close()


def test_policies_page_and_the_policy_of_a_queue(page: Any, running: Running, uid: str) -> None:
    api = running.api
    queue, policy = f"ui-pol-{uid}", f"ui-policy-{uid}"
    api.request("PUT", f"/api/queues/%2F/{queue}", {})
    visit(page, running, "#/policies", "#add-policy")
    page.fill("#add-policy input[name=name]", policy)
    page.fill("#add-policy input[name=pattern]", f"^{queue}$")
    page.select_option("#add-policy select[name=apply-to]", "queues")
    page.fill("#add-policy textarea[name=definition]", '{"max-length": 9}')
    page.click("#add-policy button[type=submit]")
    page.wait_for_selector(f"#policies:has-text('{policy}')")
    assert api.get(f"/api/policies/%2F/{policy}")["definition"] == {"max-length": 9}
    visit(page, running, "#/queues", "#queues")
    page.fill("#queue-filter-name", queue)
    page.press("#queue-filter-name", "Enter")
    page.wait_for_selector(f"#queues tr:has-text('{queue}'):has-text('{policy}')")
    page.click(f"a[href='#/queues/%2F/{queue}']")
    page.wait_for_selector("#policy #effective")
    assert policy in page.inner_text("#policy")
    assert "max-length" in page.inner_text("#effective")
    shot(page, "ui-queue-policy")
    visit(page, running, "#/policies", f"#policies tr:has-text('{policy}') button.danger")
    page.click(f"#policies tr:has-text('{policy}') button.danger")
    confirm(page)
    page.wait_for_selector("#flash:has-text('Policy deleted')")
    assert api.get(f"/api/queues/%2F/{queue}")["policy"] is None


def test_users_permissions_and_limits(page: Any, running: Running, uid: str) -> None:
    api = running.api
    user = f"ui-user-{uid}"
    visit(page, running, "#/users", "#add-user")
    page.fill("#add-user input[name=name]", user)
    page.fill("#add-user input[name=password]", "secret")
    page.check("#add-user input[value=monitoring]")
    page.click("#add-user button[type=submit]")
    page.wait_for_selector(f"#users a:text-is('{user}')")
    assert sorted(api.get(f"/api/users/{user}")["tags"]) == ["management", "monitoring"]
    page.click(f"#users a:text-is('{user}')")
    page.wait_for_selector("#set-permission")
    page.fill("#set-permission input[name=write]", "^orders")
    page.click("#set-permission button[type=submit]")
    page.wait_for_selector("#user-permissions td:text-is('^orders')")
    assert api.get(f"/api/permissions/%2F/{user}")["write"] == "^orders"
    page.fill("#set-topic-permission input[name=read]", "^eu\\.")
    page.click("#set-topic-permission button[type=submit]")
    page.wait_for_selector("#user-topic-permissions td:text-is('amq.topic')")
    assert api.get(f"/api/topic-permissions/%2F/{user}")[0]["read"] == "^eu\\."
    page.uncheck("#edit-user input[value=monitoring]")
    page.check("#edit-user input[value=policymaker]")
    page.click("#edit-user button[type=submit]")
    page.wait_for_selector("#flash:has-text('User updated')")
    assert sorted(api.get(f"/api/users/{user}")["tags"]) == ["management", "policymaker"]
    assert api.as_user(user, "secret").request("GET", "/api/whoami").status == 200
    page.click("#user-topic-permissions button:has-text('Clear')")
    page.wait_for_selector("#flash:has-text('Topic permission cleared')")
    assert api.get(f"/api/topic-permissions/%2F/{user}") == []
    visit(page, running, "#/limits", "#set-user-limit")
    page.select_option("#set-user-limit select[name=owner]", user)
    page.select_option("#set-user-limit select[name=name]", "max-channels")
    page.fill("#set-user-limit input[name=value]", "7")
    page.click("#set-user-limit button[type=submit]")
    page.wait_for_selector(f"#user-limits tr:has-text('{user}')")
    assert api.get(f"/api/user-limits/{user}")[0]["value"] == {"max-channels": 7}
    page.click(f"#user-limits tr:has-text('{user}') button")
    page.wait_for_selector(f"#user-limits:not(:has-text('{user}'))")
    visit(page, running, f"#/users/{user}", "#delete-user")
    page.click("#delete-user")
    confirm(page)
    page.wait_for_selector("main[data-page='#/users'] #users")
    assert api.request("GET", f"/api/users/{user}").status == 404


def test_vhosts_and_definitions(page: Any, running: Running, uid: str, tmp_path: Path) -> None:
    api = running.api
    vhost = f"ui-vhost-{uid}"
    visit(page, running, "#/vhosts", "#add-vhost")
    page.fill("#add-vhost input[name=name]", vhost)
    page.click("#add-vhost button[type=submit]")
    page.wait_for_selector(f"#vhosts td:text-is('{vhost}')")
    assert api.request("GET", f"/api/vhosts/{vhost}").status == 200
    page.wait_for_selector(f"#vhost-select option[value='{vhost}']", state="attached")
    api.request("PUT", f"/api/queues/{vhost}/only-here", {})
    visit(page, running, "#/queues", "#queues")
    page.select_option("#vhost-select", vhost)
    page.wait_for_selector("#queues caption:text-is('Queues: 1')")
    assert "only-here" in page.inner_text("#queues tbody")
    page.select_option("#vhost-select", "")
    visit(page, running, "#/vhosts", "#vhosts")
    page.click(f"#vhosts tr:has-text('{vhost}') button.danger")
    confirm(page)
    page.wait_for_selector(f"#vhosts:not(:has-text('{vhost}'))")
    assert api.request("GET", f"/api/vhosts/{vhost}").status == 404
    assert page.locator(f"#vhost-select option[value='{vhost}']").count() == 0
    visit(page, running, "#/definitions", "#import")
    with page.expect_download() as download:
        page.click("#export-link")
    saved = tmp_path / "definitions.json"
    download.value.save_as(saved)
    assert "guest" in [u["name"] for u in json.loads(saved.read_text())["users"]]
    queue = f"ui-imported-{uid}"
    definitions = {
        "queues": [
            {"name": queue, "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}}
        ]
    }
    page.fill("#import-text", json.dumps(definitions))
    page.click("#import button[type=submit]")
    page.wait_for_selector("#flash:has-text('Definitions imported')")
    assert api.get(f"/api/queues/%2F/{queue}")["durable"] is True


def test_main_menu_from_the_keyboard(page: Any, running: Running) -> None:
    page.reload()  # sequential focus starts at the top of the document
    page.wait_for_selector("main[data-page='#/'] .tiles")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    seen = []
    for _ in range(6):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert seen == ["Overview", "Connections", "Channels", "Exchanges", "Queues", "Admin"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")  # Queues
    page.wait_for_selector("main[data-page='#/queues'] #queues")
    assert page.get_attribute("#nav a[href='#/queues']", "aria-current") == "page"
    # Focus moves to the new page, as on a page load: the next Tab is its first field.
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "queue-filter-name"
    page.keyboard.type("no-such-queue")
    page.keyboard.press("Enter")
    page.wait_for_selector("#queues caption:has-text('0 matching')")
    page.reload()
    page.wait_for_selector("main[data-page='#/queues'] #queues")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the skip link
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.evaluate("location.hash") == "#/queues"


def test_dark_mode_toggles(browser: Any, running: Running) -> None:
    context, opened, errors = logged_in(browser, running, color_scheme="dark")
    try:
        assert opened.get_attribute("html", "data-theme") == "dark"
        opened.click("#theme-toggle")
        assert opened.get_attribute("html", "data-theme") == "light"
        assert opened.get_attribute("#theme-toggle", "aria-pressed") == "false"
        opened.wait_for_selector("#node meter")
        shot(opened, "ui-overview")  # last, so that the charts show the other tests' traffic
        opened.click("#theme-toggle")
        assert opened.get_attribute("html", "data-theme") == "dark"
        opened.reload()
        opened.wait_for_selector("main[data-page='#/'] #node meter")
        assert opened.get_attribute("html", "data-theme") == "dark"
        background = opened.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(20, 24, 30)"
        shot(opened, "ui-overview-dark")
    finally:
        context.close()
    assert errors == []
