"""CONNECT: the client id, the login and the vhost, RabbitMQ's MQTT way.

- A username ``vhost:user`` logs in to that vhost; a plain one to the configured
  MQTT vhost (RabbitMQ's ``mqtt.vhost``).
- No username: the configured anonymous user (the default user, guest), from
  loopback only unless configured otherwise (RabbitMQ's ``allow_anonymous`` with
  a guest user that may connect from loopback only).
- No username nor password, over TLS with a verified client certificate, and
  certificate logins on (RabbitMQ's ``mqtt.ssl_cert_login``): the user the
  certificate names (its CN or subject, ``ssl_cert_login_from``), no password.
  A username and password, when given, come first, as in RabbitMQ.
- An empty client id: 5.0 gets an assigned one [MQTT-3.2.2-16]; 3.1.1 only with
  a clean session, else return code 0x02 [MQTT-3.1.3-8].
- A 5.0 Authentication Method (enhanced authentication, §4.12): none is
  supported, so CONNACK 0x8C Bad authentication method, as RabbitMQ answers.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pigeon.protocols.mqtt.packets import MQTT_5, Connect
from pigeon.protocols.mqtt.reasons import ProtocolViolation, ReasonCode
from pigeon.protocols.mqtt.settings import (
    ANONYMOUS_ALWAYS,
    ANONYMOUS_LOOPBACK,
    MQTTSettings,
)
from pigeon.protocols.mqtt.topics import check_topic_name

VHOST_SEPARATOR = ":"
MAX_CLIENT_ID = 23  # 3.1.1: what a server must accept at least [MQTT-3.1.3-5]; we accept more


@dataclass(frozen=True, slots=True)
class Login:
    """Who a CONNECT says it is."""

    client_id: str
    assigned: bool  # the server chose the id (5.0 tells the client)
    vhost: str
    username: str | None  # None: anonymous, or the user the client certificate names
    password: str
    by_certificate: bool = False  # the verified client certificate names the user


def refuse(reason: ReasonCode, text: str) -> ProtocolViolation:
    return ProtocolViolation(reason, text)


def client_id_of(connect: Connect) -> tuple[str, bool]:
    """The session's client id and whether the server assigned it."""
    if connect.client_id:
        return connect.client_id, False
    if connect.protocol_level != MQTT_5 and not connect.clean_start:
        raise refuse(
            ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
            "an empty client id needs a clean session",  # [MQTT-3.1.3-8]
        )
    return "pigeon-" + secrets.token_urlsafe(16), True


def login_of(
    connect: Connect, settings: MQTTSettings, *, loopback: bool, certificate: bool = False
) -> Login:
    """``certificate``: the client presented a certificate that verified."""
    if connect.properties.authentication_method is not None:
        # Enhanced authentication (§4.12) is not offered: [MQTT-4.12.0-1].
        raise refuse(
            ReasonCode.BAD_AUTHENTICATION_METHOD,
            f"authentication method {connect.properties.authentication_method!r} not supported",
        )
    client_id, assigned = client_id_of(connect)
    if connect.will is not None:
        # A will is published to its topic: a topic name, within the limits [MQTT-3.3.2-2]
        # (5.0: CONNACK 0x90 Topic Name invalid).
        check_topic_name(connect.will.topic, settings.topic_limits)
    if len(client_id.encode("utf-8")) > settings.max_client_id_length:
        # A server may refuse a client id [MQTT-3.1.3-9]: 5.0 0x85, 3.1.1 return code 2.
        raise refuse(
            ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
            f"client id longer than {settings.max_client_id_length} bytes",
        )
    vhost = settings.vhost
    username = connect.username
    if username is not None and VHOST_SEPARATOR in username:
        vhost, username = username.split(VHOST_SEPARATOR, 1)
    if connect.password is not None and username is None:
        # [MQTT-3.1.2-22] in 3.1.1; 5.0 allows it, and RabbitMQ refuses it too.
        raise refuse(ReasonCode.BAD_USER_NAME_OR_PASSWORD, "a password without a username")
    try:
        password = (connect.password or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise refuse(ReasonCode.BAD_USER_NAME_OR_PASSWORD, "the password is not UTF-8") from None
    if username is None and connect.password is None and certificate and settings.cert_login:
        return Login(client_id, assigned, vhost, None, "", by_certificate=True)
    if username is None:
        allowed = settings.anonymous == ANONYMOUS_ALWAYS or (
            settings.anonymous == ANONYMOUS_LOOPBACK and loopback
        )
        if not allowed:
            raise refuse(ReasonCode.BAD_USER_NAME_OR_PASSWORD, "anonymous login refused")
    return Login(client_id, assigned, vhost, username, password)
