"""Runtime parameters and global parameters: values kept for plugins' components.

RabbitMQ stores federation upstreams, shovels and other plugin settings as
runtime parameters (component, vhost, name -> JSON value), and node-wide
values such as ``cluster_name`` as global parameters. Pigeon keeps them, in
the store and in definitions, so tools that manage them (rabbitmqadmin,
Terraform, Ansible) work and a RabbitMQ export round-trips. The components
listed here are kept without effect: Pigeon has no federation or shovel yet.
Policies, operator policies and vhost limits are components too in
RabbitMQ's API; those live with their vhost (:mod:`pigeon.core.policies`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pigeon.core.policies import document_key
from pigeon.core.ports import Store
from pigeon.errors import NotFound, PreconditionFailed

# Components kept as plain values (RabbitMQ's federation and shovel plugins).
STORED_COMPONENTS = ("federation-upstream", "federation-upstream-set", "shovel")
PARAMETER, GLOBAL_PARAMETER = "parameter", "global_parameter"


class Parameters:
    def __init__(self, store: Store | None, cluster_name: str) -> None:
        self.store = store
        self.values: dict[tuple[str, str, str], Any] = {}  # (component, vhost, name)
        self.global_values: dict[str, Any] = {"cluster_name": cluster_name}

    @staticmethod
    def check_component(component: str) -> None:
        if component not in STORED_COMPONENTS:
            raise PreconditionFailed(f"Validation failed\n\ncomponent {component} not found\n")

    def set(self, component: str, vhost: str, name: str, value: Any) -> bool:
        """Keep a value; True if it is new."""
        self.check_component(component)
        key = (component, vhost, name)
        created = key not in self.values
        self.values[key] = value
        if self.store is not None:
            self.store.save_document(PARAMETER, document_key(*key), value)
        return created

    def clear(self, component: str, vhost: str, name: str) -> None:
        if self.values.pop((component, vhost, name), None) is None:
            raise NotFound(f"no parameter '{name}' of '{component}' in vhost '{vhost}'")
        if self.store is not None:
            self.store.delete_document(PARAMETER, document_key(component, vhost, name))

    def set_global(self, name: str, value: Any) -> bool:
        created = name not in self.global_values
        self.global_values[name] = value
        if self.store is not None:
            self.store.save_document(GLOBAL_PARAMETER, name, value)
        return created

    def clear_global(self, name: str) -> None:
        if name not in self.global_values:
            raise NotFound(f"no global parameter '{name}'")
        del self.global_values[name]
        if self.store is not None:
            self.store.delete_document(GLOBAL_PARAMETER, name)

    def forget_vhost(self, vhost: str, *, record: bool = True) -> None:
        for key in [k for k in self.values if k[1] == vhost]:
            if record:
                self.clear(*key)
            else:  # replayed from a log: the store has it already
                del self.values[key]

    def restore(self, documents: Mapping[str, Mapping[str, Any]]) -> None:
        for key, value in documents.get(PARAMETER, {}).items():
            try:
                component, vhost, name = _split(key)
            except ValueError:
                continue  # not a key this module wrote
            self.values[(component, vhost, name)] = value
        self.global_values.update(documents.get(GLOBAL_PARAMETER, {}))


def _split(key: str) -> tuple[str, str, str]:
    parts = json.loads(key)
    if not (isinstance(parts, list) and len(parts) == 3 and all(isinstance(p, str) for p in parts)):
        raise ValueError(key)
    return parts[0], parts[1], parts[2]
