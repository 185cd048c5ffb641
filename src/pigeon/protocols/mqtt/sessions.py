"""The client identifiers of a broker's MQTT sessions, and what a session keeps while
its client is away.

A client id is unique per vhost: a second CONNECT with the same id takes the
session over and the first connection is closed ([MQTT-3.1.4-3]). What the
queue does not keep (the QoS 2 packet ids received and not yet released, the
deliveries waiting for PUBCOMP, a will waiting for its delay) is kept here,
so that a persistent session resumes where it stopped ([MQTT-4.3.3-9]).

The packet ids of a persistent session (and its shared subscriptions) are kept
in the store too, as one document per session (kind ``mqtt-session``), written
once at the end of a connection's turn that changed them, before the turn's
answers wait for the store's barrier: a PUBREC is never on the wire before its
packet id is on disk, and a PUBLISH
resent after a crash or restart is recognised and not routed twice
([MQTT-4.3.3-10]). The document goes when the ids are settled or the session
ends; a restored one waits one session expiry interval for its client (as the
session's queue waits by ``x-expires``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pigeon.core.ports import Scheduler, Store, TimerHandle
from pigeon.protocols.mqtt.subscriptions import Subscription

if TYPE_CHECKING:
    from pigeon.core.message import Message

log = logging.getLogger("pigeon.mqtt")

KIND = "mqtt-session"  # the store's documents of persistent sessions


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
    # Retained QoS 1/2 messages sent and not acknowledged when the connection ended.
    retained: list[tuple[str, Message, Subscription]] = field(default_factory=list)
    # Shared subscriptions ("$share/group/filter" -> its subscription), made again when a
    # persistent session resumes.
    shared: dict[str, Subscription] = field(default_factory=dict)
    will_timer: TimerHandle | None = None
    expiry_timer: TimerHandle | None = None  # forgets the state when the session expires
    # Seconds the session outlives its connection (0: a clean session, kept in memory only).
    expiry: int = 0
    saved: bool = False  # the store has a document of it
    dirty: bool = False  # changed since the document was written
    on_change: Callable[[SessionState], None] | None = None

    def changed(self) -> None:
        """The packet ids (or shared subscriptions) changed: a persistent session's
        document is written again at the end of the connection's turn (:meth:`flush`)."""
        if self.on_change is not None and (self.expiry or self.saved):
            self.dirty = True

    def flush(self) -> None:
        """Write the document once for all the turn's changes, before the turn's answers
        wait for the store's barrier (so a PUBREC never precedes its packet id on disk)."""
        if self.dirty and self.on_change is not None:
            self.dirty = False
            self.on_change(self)

    def document(self) -> dict[str, Any]:
        return {
            "release": sorted(self.awaiting_release),
            "complete": sorted(self.awaiting_complete),
            "expiry": self.expiry,
            "shared": {name: one.arguments() for name, one in self.shared.items()},
        }

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

    def __init__(self, store: Store | None = None) -> None:
        self.owners: dict[tuple[str, str], Owner] = {}
        self.states: dict[tuple[str, str], SessionState] = {}
        self.store = store

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
            self.forget(existing)
        state = SessionState(vhost, client_id, on_change=self.save)
        self.states[key] = state
        return state, False

    def forget(self, state: SessionState) -> None:
        state.cancel_expiry()
        key = (state.vhost, state.client_id)
        if self.states.get(key) is state:
            del self.states[key]
        if state.saved and self.store is not None:
            state.saved = False
            self.store.delete_document(KIND, _key(state.vhost, state.client_id))

    def save(self, state: SessionState) -> None:
        """Keep a persistent session's packet ids in the store (none: no document)."""
        store = self.store
        if store is None:
            return
        if state.expiry and (state.awaiting_release or state.awaiting_complete or state.shared):
            store.save_document(KIND, _key(state.vhost, state.client_id), state.document())
            state.saved = True
        elif state.saved:
            state.saved = False
            store.delete_document(KIND, _key(state.vhost, state.client_id))

    def restore(self, documents: Mapping[str, Any], scheduler: Scheduler) -> int:
        """The sessions an earlier run kept (the store's ``mqtt-session`` documents), each
        waiting one expiry interval for its client; how many came back."""
        restored = 0
        for key, value in documents.items():
            try:
                vhost, client_id = json.loads(key)
                state = SessionState(
                    str(vhost),
                    str(client_id),
                    awaiting_release={int(n) for n in value["release"]},
                    awaiting_complete={int(n) for n in value["complete"]},
                    expiry=int(value["expiry"]),
                    shared=_shared(value.get("shared", {})),
                    saved=True,
                    on_change=self.save,
                )
            except (KeyError, TypeError, ValueError) as error:
                log.warning("a stored MQTT session is damaged (%s): %r", error, key)
                continue
            self.states[(state.vhost, state.client_id)] = state
            state.expiry_timer = scheduler.call_later(state.expiry, self._forgetting(state))
            restored += 1
        return restored

    def connected(self) -> int:
        return len(self.owners)

    def _forgetting(self, state: SessionState) -> Callable[[], None]:
        return lambda: self.forget(state)


def _shared(saved: dict[str, Any]) -> dict[str, Subscription]:
    found = {name: Subscription.from_arguments(arguments) for name, arguments in saved.items()}
    return {name: one for name, one in found.items() if one is not None}


def _key(vhost: str, client_id: str) -> str:
    return json.dumps([vhost, client_id])
