"""Resource alarms, as RabbitMQ has them: while any is raised, publishers wait.

Something watches memory and disk (``pigeon.resources``) and raises or clears
named alarms here; protocols listen and block or unblock their publishing
connections. Listeners hear only the changes between "no alarm" and "some
alarm", so a client is told once, whatever the number of alarms.
"""

from __future__ import annotations

from collections.abc import Callable


class Alarms:
    def __init__(self) -> None:
        self.active: set[str] = set()
        self.listeners: list[Callable[[bool], object]] = []

    def __bool__(self) -> bool:
        return bool(self.active)

    @property
    def reason(self) -> str:
        """RabbitMQ's wording for connection.blocked."""
        if "disk" in self.active and "memory" in self.active:
            return "low on memory and disk"
        return "low on disk" if "disk" in self.active else "low on memory"

    def set(self, name: str, raised: bool) -> None:
        was = bool(self.active)
        if raised:
            self.active.add(name)
        else:
            self.active.discard(name)
        if bool(self.active) != was:
            for listener in list(self.listeners):
                listener(bool(self.active))
