"""Users and permissions are queued for the store when they change (issue 13, part 2).

The management API answers once the store's barrier after the change has run, so
the save must be queued in the same loop turn as the change: no timer, no later
comparison. A definitions import saves the document once, not once per row.
"""

from __future__ import annotations

from store_helpers import Opener, synced

from pigeon import accounts
from pigeon.auth.users import PermissionSet, TopicPermission, UserStore


async def test_every_change_is_queued_at_once_and_restored(open_store: Opener) -> None:
    store = open_store()
    store.load()
    users = UserStore()
    users.add_user("guest", "guest", frozenset({"administrator"}), loopback_only=True)
    users.set_permission("/", "guest")
    saver = accounts.AccountSaver(users, store)
    saver.start()
    changes = [
        lambda: users.add_user("ann", "secret", frozenset({"monitoring"})),
        lambda: users.set_permission("/", "ann", PermissionSet("^ann-", ".*", ".*")),
        lambda: users.set_topic_permission("/", "ann", TopicPermission("amq.topic", "^a")),
        lambda: users.delete_permission("/", "guest"),
        lambda: users.add_user("bob", "secret"),
        lambda: users.delete_user("bob"),
    ]
    for change in changes:
        before = store.written
        change()
        assert store.written > before, "a change was not queued for the store"
    await synced(store)
    store.close()

    restored = accounts.restore(open_store().load())
    assert restored is not None
    assert restored.definitions() == users.definitions()
    assert set(restored.users) == {"guest", "ann"}
    assert restored.permission("/", "guest") is None


async def test_a_batch_of_changes_is_saved_once(open_store: Opener) -> None:
    store = open_store()
    store.load()
    users = UserStore()
    accounts.AccountSaver(users, store).start()
    before = store.written
    with users.batch():
        users.add_user("importer", "pw")
        for n in range(500):
            users.set_permission(f"vhost-{n}", "importer")
        assert store.written == before, "saved inside the batch"
    assert store.written == before + 1
    await synced(store)
    store.close()
    restored = accounts.restore(open_store().load())
    assert restored is not None and len(restored.permissions) == 500
