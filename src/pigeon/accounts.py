"""Users and permissions kept across restarts, in the store, as one document.

They change rarely (the management API, definitions import, the embedded
API), always through :class:`UserStore`'s methods, which tell the saver: the
document is queued for the store in the same loop turn as the change, so a
reply that waits for the store's barrier (the management API's) goes out
once the change is on disk. The document is RabbitMQ's definitions shape, so
hashes move both ways; data folders of earlier versions load unchanged.
"""

from __future__ import annotations

import logging

from pigeon.auth.users import PermissionSet, TopicPermission, UserStore, user_from_row
from pigeon.core.ports import Snapshot, Store

log = logging.getLogger("pigeon.accounts")

KIND, KEY = "auth", "definitions"
# RabbitMQ's loopback_users default: these may only log in from this machine.
LOOPBACK_USERS = frozenset({"guest"})


def restore(snapshot: Snapshot, *, rabbit_compatible: bool = False) -> UserStore | None:
    """The users saved by an earlier run, or None when there are none."""
    saved = snapshot.documents.get(KIND, {}).get(KEY)
    if not isinstance(saved, dict):
        return None
    users = UserStore(rabbit_compatible=rabbit_compatible)
    try:
        for entry in saved.get("users", []):
            name = entry["name"]
            users.users[name] = user_from_row(
                entry, frozenset(entry.get("tags", [])), loopback_only=name in LOOPBACK_USERS
            )
        for entry in saved.get("permissions", []):
            users.set_permission(
                entry["vhost"],
                entry["user"],
                PermissionSet(entry["configure"], entry["write"], entry["read"]),
            )
        for entry in saved.get("topic_permissions", []):
            users.set_topic_permission(
                entry["vhost"],
                entry["user"],
                TopicPermission(entry["exchange"], entry["write"], entry["read"]),
            )
    except (KeyError, TypeError, ValueError) as error:
        log.warning("stored users are damaged (%s); starting with the default user", error)
        return None
    return users


class AccountSaver:
    """Writes the users' document to the store whenever they change."""

    def __init__(self, users: UserStore, store: Store) -> None:
        self.users = users
        self.store = store

    def start(self) -> None:
        self.save()  # the defaults of a new folder, or the loaded users as they are
        self.users.on_change = self.save

    def save(self) -> None:
        # The whole document (small: users change rarely); the store keeps only the
        # last of several saves queued in one batch.
        self.store.save_document(KIND, KEY, self.users.definitions())

    def stop(self) -> None:
        self.users.on_change = None
