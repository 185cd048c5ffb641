"""Users and permissions kept across restarts, in the store, as one document.

They change rarely (the management API, definitions import), through many
code paths; rather than hook each one, this compares the definitions once a
second and writes them when they differ, and once more at shutdown. The
document is RabbitMQ's definitions shape, so hashes move both ways.
"""

from __future__ import annotations

import logging
from typing import Any

from pigeon.auth.users import PermissionSet, TopicPermission, User, UserStore, parse_password_hash
from pigeon.core.ports import Scheduler, Snapshot, Store, TimerHandle

log = logging.getLogger("pigeon.accounts")

KIND, KEY = "auth", "definitions"
INTERVAL = 1.0
# RabbitMQ's loopback_users default: these may only log in from this machine.
LOOPBACK_USERS = frozenset({"guest"})


def restore(snapshot: Snapshot) -> UserStore | None:
    """The users saved by an earlier run, or None when there are none."""
    saved = snapshot.documents.get(KIND, {}).get(KEY)
    if not isinstance(saved, dict):
        return None
    users = UserStore()
    try:
        for entry in saved.get("users", []):
            name = entry["name"]
            users.users[name] = User(
                name, parse_password_hash(entry["password_hash"], entry.get("hashing_algorithm")),
                frozenset(entry.get("tags", [])), loopback_only=name in LOOPBACK_USERS)
        for entry in saved.get("permissions", []):
            users.set_permission(entry["vhost"], entry["user"], PermissionSet(
                entry["configure"], entry["write"], entry["read"]))
        for entry in saved.get("topic_permissions", []):
            users.set_topic_permission(entry["vhost"], entry["user"], TopicPermission(
                entry["exchange"], entry["write"], entry["read"]))
    except (KeyError, TypeError, ValueError) as error:
        log.warning("stored users are damaged (%s); starting with the default user", error)
        return None
    return users


class AccountSaver:
    def __init__(self, users: UserStore, store: Store, scheduler: Scheduler) -> None:
        self.users = users
        self.store = store
        self.scheduler = scheduler
        self._saved: dict[str, Any] | None = None
        self._timer: TimerHandle | None = None

    def start(self) -> None:
        self.save()
        self._timer = self.scheduler.call_later(INTERVAL, self._tick)

    def _tick(self) -> None:
        self.save()
        self._timer = self.scheduler.call_later(INTERVAL, self._tick)

    def save(self) -> None:
        current = self.users.definitions()
        if current != self._saved:
            self.store.save_document(KIND, KEY, current)
            self._saved = current

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.save()
