"""The client identifiers of a broker's MQTT sessions, and what a session keeps while
its client is away.

A client id is unique per vhost: a second CONNECT with the same id takes the
session over and the first connection is closed ([MQTT-3.1.4-3]). What the
queue does not keep (the QoS 2 packet ids received and not yet released, the
deliveries waiting for PUBCOMP, a will waiting for its delay) is kept here,
so that a persistent session resumes where it stopped ([MQTT-4.3.3-9]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pigeon.core.ports import TimerHandle


class Owner(Protocol):
    """A live connection holding a client id."""

    def taken_over(self) -> None:
        """Another connection took this client id: close, saying so (5.0: 0x8E)."""
        ...


@dataclass(eq=False)
class SessionState:
    """What a session keeps between its connections (in memory)."""

    vhost: str
    client_id: str
    # QoS 2 publishes received (PUBREC sent) and not yet released by PUBREL.
    awaiting_release: set[int] = field(default_factory=set)
    # Deliveries acknowledged by PUBREC whose PUBCOMP has not arrived.
    awaiting_complete: set[int] = field(default_factory=set)
    # Deliveries in flight when the connection ended, (queue, entry seq) -> packet id:
    # sent again with that id [MQTT-4.4.0-1], so a QoS 2 one is not taken for a new one.
    resend_ids: dict[tuple[str, int], int] = field(default_factory=dict)
    will_timer: TimerHandle | None = None
    expiry_timer: TimerHandle | None = None  # forgets the state when the session expires

    def cancel_will(self) -> None:
        if self.will_timer is not None:
            self.will_timer.cancel()
            self.will_timer = None

    def cancel_expiry(self) -> None:
        if self.expiry_timer is not None:
            self.expiry_timer.cancel()
            self.expiry_timer = None


class SessionRegistry:
    """(vhost, client id) -> the connection holding it, and the kept session states."""

    def __init__(self) -> None:
        self.owners: dict[tuple[str, str], Owner] = {}
        self.states: dict[tuple[str, str], SessionState] = {}

    def claim(self, vhost: str, client_id: str, owner: Owner) -> None:
        """``owner`` holds the id now; the previous holder, if any, is taken over."""
        key = (vhost, client_id)
        previous = self.owners.get(key)
        self.owners[key] = owner
        if previous is not None and previous is not owner:
            previous.taken_over()

    def release(self, vhost: str, client_id: str, owner: Owner) -> None:
        key = (vhost, client_id)
        if self.owners.get(key) is owner:
            del self.owners[key]

    def state(self, vhost: str, client_id: str, *, clean: bool) -> tuple[SessionState, bool]:
        """The session's kept state (a new one when ``clean``), and whether it existed."""
        key = (vhost, client_id)
        existing = self.states.get(key)
        if existing is not None:
            existing.cancel_will()  # [MQTT-3.1.3-9]: the client is back in time
            existing.cancel_expiry()
            if not clean:
                return existing, True
        state = SessionState(vhost, client_id)
        self.states[key] = state
        return state, False

    def forget(self, state: SessionState) -> None:
        state.cancel_expiry()
        key = (state.vhost, state.client_id)
        if self.states.get(key) is state:
            del self.states[key]

    def connected(self) -> int:
        return len(self.owners)
