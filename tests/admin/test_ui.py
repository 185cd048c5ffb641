"""The web UI in headless Chromium (Debian's ``chromium``) against a real broker.

Few and fast: pages load without console errors, the queue table sorts, and
the queue page's actions (publish, get, purge) reach the broker. Screenshots go
to ``docs/images/`` when ``PIGEON_UI_SCREENSHOTS`` names that folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import Running

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


@pytest.fixture
def page(browser: Any, running: Running) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: errors.append(str(e)))
    opened.goto(running.base + "/")
    opened.fill("input[name=user]", "guest")
    opened.fill("input[name=password]", "guest")
    opened.click("button[type=submit]")
    opened.wait_for_selector(".tiles")
    yield opened
    context.close()
    assert errors == []


def shot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def test_pages_load(page: Any, running: Running) -> None:
    assert "Publish /s" in page.inner_text(".tiles")
    shot(page, "ui-overview")
    for hash_, table in (
        ("#/queues", "#queues"),
        ("#/exchanges", "#exchanges"),
        ("#/connections", "#connections"),
        ("#/channels", "#channels"),
        ("#/users", "#users"),
    ):
        page.goto(running.base + "/" + hash_)
        page.wait_for_selector(f"main[data-page='{hash_}'] {table}")
    assert "guest" in page.inner_text("#users")
    page.goto(running.base + "/#/exchanges")
    page.wait_for_selector("main[data-page='#/exchanges'] #exchanges")
    assert "amq.topic" in page.inner_text("#exchanges")


def test_wrong_password_is_refused(browser: Any, running: Running) -> None:
    context = browser.new_context()
    opened = context.new_page()
    opened.goto(running.base + "/")
    opened.fill("input[name=user]", "guest")
    opened.fill("input[name=password]", "nope")
    opened.click("button[type=submit]")
    opened.wait_for_selector("#login-error:has-text('Login failed')")
    context.close()


def test_queue_actions(page: Any, running: Running, uid: str) -> None:
    api = running.api
    for name in (f"ui-b-{uid}", f"ui-a-{uid}"):
        api.request("PUT", f"/api/queues/%2F/{name}", {})
    page.goto(running.base + "/#/queues")
    page.wait_for_selector("main[data-page='#/queues'] #queues")
    page.click("#queues th[data-key=name]")
    # The table re-renders after the click (and on its refresh timer): wait for the rows.
    page.wait_for_function(
        """uid => {
            const names = [...document.querySelectorAll('#queues tbody tr td:nth-child(2)')]
                .map(td => td.innerText).filter(n => n.includes(uid));
            return names.length === 2 && names[0] < names[1];
        }""",
        arg=uid,
    )
    names = [
        n for n in page.locator("#queues tbody tr td:nth-child(2)").all_inner_texts() if uid in n
    ]
    assert names == sorted(names)
    shot(page, "ui-queues")
    queue = f"ui-a-{uid}"
    page.click(f"a[href='#/queues/%2F/{queue}']")
    page.wait_for_selector("#publish")
    page.fill("#publish textarea", "hello from the browser")
    page.click("#publish button")
    page.wait_for_selector("#flash:has-text('Message published')")
    assert api.get(f"/api/queues/%2F/{queue}")["messages_ready"] == 1
    page.click("#get button")
    page.wait_for_selector("#got:has-text('hello from the browser')")
    shot(page, "ui-queue")
    page.click("#purge")
    page.wait_for_selector("#flash:has-text('Queue purged')")
    assert api.get(f"/api/queues/%2F/{queue}")["messages_ready"] == 0


def test_policies_page_and_the_policy_of_a_queue(page: Any, running: Running, uid: str) -> None:
    api = running.api
    queue, policy = f"ui-pol-{uid}", f"ui-policy-{uid}"
    api.request("PUT", f"/api/queues/%2F/{queue}", {})
    page.goto(running.base + "/#/policies")
    page.wait_for_selector("main[data-page='#/policies'] #add-policy")
    page.fill("#add-policy input[name=name]", policy)
    page.fill("#add-policy input[name=pattern]", f"^{queue}$")
    page.select_option("#add-policy select[name=apply-to]", "queues")
    page.fill("#add-policy textarea[name=definition]", '{"max-length": 9}')
    page.click("#add-policy button")
    page.wait_for_selector(f"#policies:has-text('{policy}')")
    assert api.get(f"/api/policies/%2F/{policy}")["definition"] == {"max-length": 9}
    page.goto(running.base + "/#/queues")
    page.wait_for_selector(f"#queues tr:has-text('{queue}'):has-text('{policy}')")
    page.click(f"a[href='#/queues/%2F/{queue}']")
    page.wait_for_selector("#policy #effective")
    assert policy in page.inner_text("#policy")
    assert "max-length" in page.inner_text("#effective")
    shot(page, "ui-queue-policy")
    page.goto(running.base + "/#/policies")
    page.wait_for_selector(f"#policies tr:has-text('{policy}') button.danger")
    page.click(f"#policies tr:has-text('{policy}') button.danger")
    page.wait_for_selector("#flash:has-text('Policy deleted')")
    assert api.get(f"/api/queues/%2F/{queue}")["policy"] is None
